//! simple-salesforce, a widely used third-party Salesforce client for Python, logs in to a
//! real `voxbridge serve` and works a Contact and a Case through the CRM REST API
//! (tests/python/test_simple_salesforce.py). This proves the login, paths, response shapes
//! and error bodies are what an unmodified client of the platform expects.
//!
//! The library always builds `https://` URLs, so the server listens on HTTPS with the data
//! dir's self-signed certificate, which the script trusts through REQUESTS_CA_BUNDLE.
//!
//! Needs the virtual environment crates/cli/tests/python/.venv with the pinned
//! requirements.txt (`scripts/test` makes it). Without it the test says so and passes,
//! unless VOXBRIDGE_REQUIRE_PYTHON=1.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::ok;
use crate::serving::Server;

/// An audience this server's configuration adds to the platform's login URLs, for the
/// script's own assertions.
const LOCAL_AUDIENCE: &str = "https://crm.voxbridge.test";

#[test]
fn simple_salesforce_logs_in_and_works_records() {
    let dir_py = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let python = dir_py.join(".venv/bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import simple_salesforce"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        assert!(
            std::env::var("VOXBRIDGE_REQUIRE_PYTHON").as_deref() != Ok("1"),
            "the Python client needs {}: python3 -m venv {0}/.venv && {0}/.venv/bin/pip install -r {0}/requirements.txt",
            dir_py.display()
        );
        eprintln!("skipped: no simple-salesforce in {} (scripts/test installs it)", python.display());
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("voxbridge.toml"),
        format!(
            "version = 1\n[server]\nhttp = \"off\"\nhttps = \"127.0.0.1:0\"\n\
             [crm]\nlogin_audiences = [\"https://login.salesforce.com\", \"{LOCAL_AUDIENCE}\"]\n"
        ),
    )
    .unwrap();
    let args = ["--config", "voxbridge.toml", "--data", "data"];
    let mut server = Server::start(dir.path(), &[&["serve"][..], &args].concat());
    let base = format!("https://{}", server.wait_for("listening on https://"));
    let info: Value =
        serde_json::from_str(&ok(dir.path(), &[&["info", "--json"][..], &args].concat())).unwrap();
    let crm = &info["crm"];
    let login: Value = serde_json::from_str(&ok(
        dir.path(),
        &[&["token", "--crm", "--json", "--url", &base][..], &args].concat(),
    ))
    .unwrap();

    let out = Command::new(&python)
        .arg("test_simple_salesforce.py")
        .current_dir(&dir_py)
        .env("VOXBRIDGE_BASE", &base)
        .env("VOXBRIDGE_CONSUMER_KEY", crm["consumer_key"].as_str().unwrap())
        .env("VOXBRIDGE_USERNAME", crm["username"].as_str().unwrap())
        .env("VOXBRIDGE_PRIVATE_KEY_FILE", crm["private_key_file"].as_str().unwrap())
        .env("VOXBRIDGE_LOGIN_AUDIENCE", LOCAL_AUDIENCE)
        .env("VOXBRIDGE_ACCESS_TOKEN", login["access_token"].as_str().unwrap())
        .env("VOXBRIDGE_INSTANCE_URL", login["instance_url"].as_str().unwrap())
        .env("REQUESTS_CA_BUNDLE", dir.path().join("data/tls/cert.pem"))
        // No proxy between the script and the local server.
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .output()
        .expect("the virtual environment's python runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "simple-salesforce script failed:\n{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // unittest reports on standard error; make sure tests ran rather than none.
    assert!(stderr.contains("\nOK") && !stderr.contains("Ran 0 tests"), "{stderr}");
}
