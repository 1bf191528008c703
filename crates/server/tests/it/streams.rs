//! The event bus over HTTP (`/streams/v1`) against a real embedded bus: put and read
//! records from every starting position, and the error answers.

use std::sync::Arc;

use axum::Extension;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use voxbridge_server::streams::Streams;

use crate::harness::{Backend, TestServer};

/// The demo server's store and keys, served again with an embedded bus attached.
struct WithBus {
    server: TestServer,
    base: String,
    bus: Arc<dyn voxbridge_bus::Bus>,
    _dir: tempfile::TempDir,
}

impl WithBus {
    async fn start(org_id: Option<String>) -> WithBus {
        let server = TestServer::start(Backend::Sqlite).await;
        let dir = tempfile::tempdir().unwrap();
        let bus = voxbridge_bus::open(&format!("sqlite://{}/bus.db", dir.path().display())).await.unwrap();
        bus.create_stream("ctr").await.unwrap();
        let app = voxbridge_server::router(server.store.clone(), Default::default())
            .layer(Extension(Streams { bus: bus.clone(), org_id }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        WithBus { server, base, bus, _dir: dir }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .server
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.server.token("DemoCallCenter"));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_read_from_every_position() {
    let s = WithBus::start(None).await;
    let (status, body) = s
        .call(
            Method::POST,
            "/streams/v1/ctr/records",
            Some(json!({"partitionKey": "c-1", "data": b64(b"hello")})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let first = body["sequenceNumber"].as_str().unwrap().to_string();
    assert_eq!(first.len(), 20);
    assert_eq!(body["shardId"], "shardId-000000000000");
    let (status, body) = s
        .call(
            Method::POST,
            "/streams/v1/ctr/records",
            Some(json!({"partitionKey": "c-2", "json": {"ContactId": "c-2"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let second = body["sequenceNumber"].as_str().unwrap().to_string();
    assert!(first < second);

    let (status, list) = s.call(Method::GET, "/streams/v1", None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        list["streams"],
        json!([{"name": "ctr", "recordCount": 2, "firstSequenceNumber": first, "lastSequenceNumber": second}])
    );

    let (status, read) = s.call(Method::GET, "/streams/v1/ctr/records", None).await;
    assert_eq!(status, 200, "{read}");
    let records = read["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["partitionKey"], "c-1");
    assert_eq!(records[0]["data"], b64(b"hello"));
    assert!(records[0].get("json").is_none(), "not JSON: {read}");
    assert_eq!(records[1]["json"], json!({"ContactId": "c-2"}));
    assert!(records[1]["approximateArrivalTimestamp"].as_i64().unwrap() > 0);
    assert_eq!(read["nextAfter"], second.as_str());

    let (_, read) = s.call(Method::GET, "/streams/v1/ctr/records?limit=1", None).await;
    assert_eq!(read["records"].as_array().unwrap().len(), 1);
    assert_eq!(read["nextAfter"], first.as_str());
    let (_, read) = s.call(Method::GET, &format!("/streams/v1/ctr/records?after={first}"), None).await;
    assert_eq!(read["records"][0]["sequenceNumber"], second.as_str());
    let (_, read) = s.call(Method::GET, &format!("/streams/v1/ctr/records?after={second}"), None).await;
    assert_eq!((read["records"].as_array().unwrap().len(), &read["nextAfter"]), (0, &json!(second)));

    // LATEST reads nothing but says where the stream stands, so the next read sees new puts.
    let (_, read) = s.call(Method::GET, "/streams/v1/ctr/records?from=LATEST", None).await;
    assert_eq!((read["records"].as_array().unwrap().len(), &read["nextAfter"]), (0, &json!(second)));
    let third = s.bus.put("ctr", "c-3", b"x".to_vec()).await.unwrap().to_string();
    let (_, read) = s.call(Method::GET, &format!("/streams/v1/ctr/records?after={second}"), None).await;
    assert_eq!(read["records"][0]["sequenceNumber"], third.as_str());

    let (_, read) = s
        .call(Method::GET, "/streams/v1/ctr/records?from=AT_TIMESTAMP&timestamp=2000-01-01T00:00:00Z", None)
        .await;
    assert_eq!(read["records"].as_array().unwrap().len(), 3);
    let far = "/streams/v1/ctr/records?from=AT_TIMESTAMP&timestamp=4102444800000";
    let (_, read) = s.call(Method::GET, far, None).await;
    assert_eq!(read["records"].as_array().unwrap().len(), 0);

    // A record of exactly 1 MiB is accepted.
    let big = vec![b'a'; 1024 * 1024];
    let (status, body) = s
        .call(
            Method::POST,
            "/streams/v1/ctr/records",
            Some(json!({"partitionKey": "big", "data": b64(&big)})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_say_what_is_wrong() {
    let s = WithBus::start(None).await;
    let put = |body: Value| s.call(Method::POST, "/streams/v1/ctr/records", Some(body));
    let cases: Vec<(u16, &str, &str, (u16, Value))> = vec![
        (
            404,
            "NOT_FOUND",
            "stream `nope` does not exist",
            s.call(Method::POST, "/streams/v1/nope/records", Some(json!({"partitionKey": "k", "data": ""})))
                .await,
        ),
        (
            404,
            "NOT_FOUND",
            "stream `nope` does not exist",
            s.call(Method::GET, "/streams/v1/nope/records", None).await,
        ),
        (
            400,
            "INVALID_FIELD_VALUE",
            "`data` is not base64",
            put(json!({"partitionKey": "k", "data": "%%%"})).await,
        ),
        (
            400,
            "INVALID_FIELD_VALUE",
            "not both",
            put(json!({"partitionKey": "k", "data": "", "json": 1})).await,
        ),
        (400, "REQUIRED_FIELD_MISSING", "send `data`", put(json!({"partitionKey": "k"})).await),
        (400, "MALFORMED_REQUEST", "partitionKey", put(json!({"data": ""})).await),
        (400, "INVALID_FIELD_VALUE", "partition key", put(json!({"partitionKey": "", "data": ""})).await),
        (
            413,
            "PAYLOAD_TOO_LARGE",
            "at most 1048576",
            put(json!({"partitionKey": "k", "data": b64(&vec![0u8; 1024 * 1024 + 1])})).await,
        ),
        (
            400,
            "INVALID_FIELD_VALUE",
            "`limit` must be 1 to 1000",
            s.call(Method::GET, "/streams/v1/ctr/records?limit=0", None).await,
        ),
        (
            400,
            "INVALID_FIELD_VALUE",
            "`limit` must be 1 to 1000",
            s.call(Method::GET, "/streams/v1/ctr/records?limit=1001", None).await,
        ),
        (
            400,
            "INVALID_FIELD_VALUE",
            "`from` must be",
            s.call(Method::GET, "/streams/v1/ctr/records?from=OLDEST", None).await,
        ),
        (
            400,
            "REQUIRED_FIELD_MISSING",
            "needs `timestamp`",
            s.call(Method::GET, "/streams/v1/ctr/records?from=AT_TIMESTAMP", None).await,
        ),
        (
            400,
            "INVALID_FIELD_VALUE",
            "`after` must be a sequence number",
            s.call(Method::GET, "/streams/v1/ctr/records?after=abc", None).await,
        ),
    ];
    for (status, code, text, (got, body)) in cases {
        assert_eq!((got, body["errorCode"].as_str()), (status, Some(code)), "{body}");
        assert!(body["message"].as_str().unwrap().contains(text), "{text:?} not in {body}");
    }
    // Nothing was stored by the refused puts.
    assert_eq!(s.bus.describe_stream("ctr").await.unwrap().record_count, 0);

    let resp = reqwest::get(format!("{}/streams/v1", s.base)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_bus_or_for_another_org() {
    // The plain test server has no bus attached.
    let plain = TestServer::start(Backend::Sqlite).await;
    let (status, body) = plain.call(Method::GET, "/streams/v1", None).await;
    assert_eq!((status, body["errorCode"].as_str()), (404, Some("NOT_FOUND")));
    assert!(body["message"].as_str().unwrap().contains("voxbridge serve"), "{body}");

    let s = WithBus::start(Some("00D000000000001AAA".into())).await;
    let (status, body) = s.call(Method::GET, "/streams/v1", None).await;
    assert_eq!((status, body["errorCode"].as_str()), (403, Some("FORBIDDEN")), "{body}");
}
