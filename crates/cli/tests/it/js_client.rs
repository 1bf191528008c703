//! The guide's JavaScript sample client (tests/js/sample.js: `jsonwebtoken`, `axios` and
//! `uuid` from npm) creates a voice call on a real `voxbridge serve`. This proves that
//! tokens signed by the library real clients use, and their requests, are accepted as is.
//!
//! Needs Node.js and `npm ci` in crates/cli/tests/js (`scripts/test` does both). Without
//! them the test says so and passes, unless VOXBRIDGE_REQUIRE_JS=1.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::serving::Server;
use crate::setup_and_info;

#[test]
fn guide_sample_client_creates_a_voice_call() {
    let js = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    let node_ok = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !node_ok || !js.join("node_modules/jsonwebtoken").exists() {
        assert!(
            std::env::var("VOXBRIDGE_REQUIRE_JS").as_deref() != Ok("1"),
            "Node.js and the npm packages are required: run `npm ci` in {}",
            js.display()
        );
        eprintln!("skipped: Node.js or {}/node_modules missing (scripts/test installs them)", js.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let info = setup_and_info(dir.path());
    let org = info["org"]["id"].as_str().unwrap().to_string();
    let demo = &info["call_centers"][0];
    let public_key = demo["public_key_file"].as_str().unwrap();
    let private_key = demo["private_key_file"].as_str().unwrap().to_string();
    // The sample names its call center HVCC: register it with the demo key pair.
    std::fs::write(
        dir.path().join("voxbridge.toml"),
        format!("version = 1\n\n[[call_centers]]\napi_name = \"HVCC\"\npublic_key_file = \"{public_key}\"\n"),
    )
    .unwrap();
    let mut server = Server::start(
        dir.path(),
        &["serve", "--config", "voxbridge.toml", "--data", "data", "--http", "127.0.0.1:0"],
    );
    let base = server.wait_for("listening on ");
    let out = Command::new("node")
        .arg("sample.js")
        .current_dir(&js)
        .env("SCRT_ENDPOINT_BASE", format!("{}/telephony/v1", base.trim()))
        .env("SALESFORCE_ORG_ID", &org)
        .env("SCV_PRIVATE_KEY_FILE", &private_key)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "sample client failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let body: Value = serde_json::from_str(stdout.trim()).expect("the sample prints the response body");
    assert!(body["voiceCallId"].as_str().is_some_and(|id| id.starts_with("0LQ")), "{body}");
    assert_eq!(body["errors"], serde_json::json!([]));
}
