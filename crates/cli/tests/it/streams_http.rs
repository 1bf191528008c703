//! `serve` serves its bus under `/streams/v1`, and `stream put|tail --url` use it.

use serde_json::{json, Value};

use crate::serving::Server;
use crate::{fails, ok};

#[test]
fn stream_put_and_tail_over_the_servers_api() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut server = Server::start(d, &["serve", "--data", "data", "--http", "127.0.0.1:0"]);
    let addr = server.wait_for("listening on http://");
    let api = server.wait_for("  Streams API:    ");
    assert!(api.ends_with("/streams/v1"), "{api}");
    let url = format!("http://{addr}");

    for (key, data) in [("a", r#"{"n":1}"#), ("b", "plain text")] {
        let put = ok(
            d,
            &[
                "stream",
                "put",
                "--url",
                &url,
                "--stream",
                "contact-events",
                "--partition-key",
                key,
                data,
                "--data",
                "data",
            ],
        );
        let put: Value = serde_json::from_str(put.trim()).unwrap();
        assert_eq!(put["ShardId"], "shardId-000000000000", "{put}");
    }
    let tail = |from: &str| -> Vec<Value> {
        ok(
            d,
            &[
                "stream",
                "tail",
                "--url",
                &url,
                "--stream",
                "contact-events",
                "--from",
                from,
                "--data",
                "data",
            ],
        )
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
    };
    let lines = tail("trim-horizon");
    let mine: Vec<&Value> =
        lines.iter().filter(|l| l["PartitionKey"] == "a" || l["PartitionKey"] == "b").collect();
    assert_eq!(mine.len(), 2, "{lines:?}");
    assert_eq!(mine[0]["Data"], json!({"n": 1}));
    assert_eq!(mine[1]["Data"], "plain text");
    assert!(tail("latest").is_empty());

    let err = fails(
        d,
        &["stream", "put", "--url", &url, "--stream", "nope", "--partition-key", "k", "{}", "--data", "data"],
        &[],
    );
    assert!(err.contains("404") && err.contains("stream `nope` does not exist"), "{err}");
}
