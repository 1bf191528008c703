//! `serve --flows DIR` with the sample flows, `call simulate` against it (the VoiceCall is
//! created through the Telephony Integration API of the same server), and `flows validate`.

use std::path::PathBuf;

use serde_json::Value;

use crate::serving::Server;
use crate::{fails, ok};

fn sample_flows(dir: &std::path::Path) -> PathBuf {
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    for e in std::fs::read_dir(repo.join("crates/flows/tests/data/flows")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            std::fs::copy(&p, flows.join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::copy(repo.join("docs/examples/flows/flows.toml"), flows.join("flows.toml")).unwrap();
    flows
}

#[test]
fn a_simulated_call_creates_the_voice_call_and_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let flows = sample_flows(dir.path());
    let flows = flows.to_str().unwrap();
    let mut server =
        Server::start(dir.path(), &["serve", "--data", "data", "--http", "127.0.0.1:0", "--flows", flows]);
    let addr = server.wait_for("listening on http://");
    let simulator = server.wait_for("  Call simulator: ");
    assert!(simulator.contains("+15550100100 -> Sample SCV Inbound Flow"), "{simulator}");
    let url = format!("http://{addr}");

    let args = [
        "call",
        "simulate",
        "--data",
        "data",
        "--url",
        &url,
        "--to",
        "+15550100100",
        "--from",
        "+14155550123",
    ];
    let text = ok(dir.path(), &args);
    assert!(text.contains("function   InvokeTelephonyIntegrationApiFunction createVoiceCall"), "{text}");
    assert!(text.contains("Result: QUEUED in Support; VoiceCall 0LQ"), "{text}");

    let mut json_args = args.to_vec();
    json_args.push("--json");
    let log: Value = serde_json::from_str(&ok(dir.path(), &json_args)).unwrap();
    assert_eq!(log["disposition"], "QUEUED");
    let contact = log["contactId"].as_str().unwrap();
    assert_eq!(log["ctr"]["ContactId"], contact);

    let err = fails(
        dir.path(),
        &["call", "simulate", "--data", "data", "--url", &url, "--to", "+15550109999"],
        &[],
    );
    assert!(err.contains("no flow is bound to the number +15550109999"), "{err}");
}

#[test]
fn flows_validate_prints_diagnostics_and_fails_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let flows = sample_flows(dir.path());
    let inbound = flows.join("Sample_SCV_Inbound_Flow.json");
    let out = ok(dir.path(), &["flows", "validate", inbound.to_str().unwrap()]);
    assert!(out.contains("Sample_SCV_Inbound_Flow.json: ok (13 actions)"), "{out}");

    let legacy = dir.path().join("legacy.json");
    std::fs::write(&legacy, r#"{"modules":[],"version":"1","start":"a"}"#).unwrap();
    let out = crate::run(dir.path(), &["flows", "validate", legacy.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("legacy"));
}
