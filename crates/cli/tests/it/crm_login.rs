//! The CRM REST API's login from the binary's side: the demo connected app and API user
//! (also added to data dirs made before the CRM API existed), `info` describing the login,
//! and `voxbridge token --crm` against a real `voxbridge serve`.

use std::fs;

use serde_json::Value;
use voxbridge_store::WriteOp;

use crate::serving::Server;
use crate::{fails, ok, setup_and_info};

#[test]
fn demo_setup_has_a_connected_app_and_api_user() {
    let dir = tempfile::tempdir().unwrap();
    let info = setup_and_info(dir.path());
    let app = &info["connected_apps"][0];
    assert_eq!(app["name"], "Voxbridge Integration");
    assert!(app["id"].as_str().unwrap().starts_with("0H4"));
    let consumer_key = app["consumer_key"].as_str().unwrap();
    assert!(consumer_key.starts_with("3MVG9") && consumer_key.len() == 85, "{consumer_key}");
    assert_eq!(app["users"], serde_json::json!(["integration@demo.voxbridge.local"]));
    let private = app["private_key_file"].as_str().unwrap();
    assert!(private.ends_with("data/keys/VoxbridgeIntegration.private.pem"), "{private}");
    assert!(fs::read_to_string(private).unwrap().contains("BEGIN PRIVATE KEY"));
    assert!(app["public_key_file"].as_str().unwrap().ends_with("data/keys/VoxbridgeIntegration.public.pem"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(private).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // The API user is not an agent.
    let agents: Vec<&str> =
        info["agents"].as_array().unwrap().iter().map(|a| a["username"].as_str().unwrap()).collect();
    assert_eq!(
        agents,
        ["ada@demo.voxbridge.local", "grace@demo.voxbridge.local", "alan@demo.voxbridge.local"]
    );

    let crm = &info["crm"];
    assert_eq!(crm["consumer_key"], consumer_key);
    assert_eq!(crm["private_key_file"], private);
    assert_eq!(crm["username"], "integration@demo.voxbridge.local");
    assert_eq!(crm["login_audience"], "https://login.salesforce.com");
    assert_eq!(crm["token_url"], "http://127.0.0.1:8080/services/oauth2/token");
    assert_eq!(crm["instance_url"], "http://127.0.0.1:8080");
    assert_eq!(crm["session_lifetime_secs"], 7200);
    assert_eq!(crm["token_command"], "voxbridge token --crm --data data");
    assert_eq!(info["urls"]["crm_api"], "http://127.0.0.1:8080/services/data");

    let text = ok(dir.path(), &["info", "--data", "data"]);
    for needle in [consumer_key, private, "integration@demo.voxbridge.local", "/services/oauth2/token"] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[test]
fn a_data_dir_from_before_the_crm_api_gets_the_app_on_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let info = setup_and_info(dir.path());
    let org = info["org"]["id"].as_str().unwrap();

    // Take the data dir back to what an older voxbridge left: no connected app, no API
    // user, no key pair, and a setup.json without `connected_apps`.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("data/voxbridge.db").display());
        let store = voxbridge_store::open(&url).await.unwrap();
        let org = voxbridge_core::SfId::parse(org).unwrap();
        let mut ops = Vec::new();
        for r in store.list(&org, "ConnectedApp").await.unwrap() {
            ops.push(WriteOp::Delete { org: org.clone(), id: r.id });
        }
        for r in store.find_by_key(&org, "User", "integration@demo.voxbridge.local").await.unwrap() {
            ops.push(WriteOp::Delete { org: org.clone(), id: r.id });
        }
        assert_eq!(ops.len(), 2);
        store.apply(ops).await.unwrap();
        store.close().await;
    });
    for f in ["VoxbridgeIntegration.private.pem", "VoxbridgeIntegration.public.pem"] {
        fs::remove_file(dir.path().join("data/keys").join(f)).unwrap();
    }
    let setup_json = dir.path().join("data/setup.json");
    let mut old: Value = serde_json::from_str(&fs::read_to_string(&setup_json).unwrap()).unwrap();
    old.as_object_mut().unwrap().remove("connected_apps");
    fs::write(&setup_json, old.to_string()).unwrap();
    let info: Value = serde_json::from_str(&ok(dir.path(), &["info", "--json", "--data", "data"])).unwrap();
    assert_eq!(info["connected_apps"], serde_json::json!([]), "an old setup.json still reads");
    assert!(info["crm"].is_null());
    let err = fails(dir.path(), &["token", "--crm", "--data", "data"], &[]);
    assert!(err.contains("no connected app") && err.contains("voxbridge serve"), "{err}");

    let out = ok(dir.path(), &["setup", "--data", "data"]);
    assert!(out.contains("Added the connected app `Voxbridge Integration`"), "{out}");
    let info: Value = serde_json::from_str(&ok(dir.path(), &["info", "--json", "--data", "data"])).unwrap();
    assert_eq!(info["org"]["id"], org, "same org");
    let app = info["connected_apps"][0].clone();
    assert_eq!(app["users"][0], "integration@demo.voxbridge.local");
    assert!(app["private_key_file"].as_str().is_some_and(|p| fs::metadata(p).is_ok()));

    // Idempotent: nothing is added, and the consumer key stays, on later starts.
    let out = ok(dir.path(), &["setup", "--data", "data"]);
    assert!(!out.contains("Added"), "{out}");
    let again: Value = serde_json::from_str(&ok(dir.path(), &["info", "--json", "--data", "data"])).unwrap();
    assert_eq!(again["connected_apps"], serde_json::json!([app]));
}

#[test]
fn token_crm_logs_in_to_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let info = setup_and_info(dir.path());
    let mut server = Server::start(dir.path(), &["serve", "--http", "127.0.0.1:0", "--data", "data"]);
    let base = format!("http://{}", server.wait_for("listening on http://"));
    let hint = server.wait_for("  CRM login:");
    assert!(hint.contains("voxbridge token --crm --data data"), "{hint}");

    let token = ok(dir.path(), &["token", "--crm", "--url", &base, "--data", "data"]);
    let token = token.trim();
    assert!(token.starts_with(info["org"]["id"].as_str().unwrap()), "{token}");
    let response: Value = serde_json::from_str(&ok(
        dir.path(),
        &["token", "--crm", "--json", "--url", &base, "--data", "data"],
    ))
    .unwrap();
    assert_eq!(response["token_type"], "Bearer");
    assert_eq!(response["instance_url"], base.as_str());
    assert_ne!(response["access_token"].as_str(), Some(token), "a new session per login");

    // The access token opens the REST API.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (status, body) = rt.block_on(async {
        let resp = reqwest::Client::new()
            .get(format!("{base}/services/data/v62.0/query?q=SELECT+Username+FROM+User"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    });
    assert_eq!(status, 200, "{body}");
    assert!(body["records"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["Username"] == "integration@demo.voxbridge.local"));

    // Refusals say what to change.
    let err = fails(
        dir.path(),
        &["token", "--crm", "--url", &base, "--data", "data", "--user", "ada@demo.voxbridge.local"],
        &[],
    );
    assert!(err.contains("invalid_grant") && err.contains("--user"), "{err}");
    let err = fails(
        dir.path(),
        &["token", "--crm", "--url", &base, "--data", "data", "--audience", "https://elsewhere.example"],
        &[],
    );
    assert!(err.contains("audience") && err.contains("crm.login_audiences"), "{err}");
    let other_key = dir.path().join("other");
    ok(dir.path(), &["keys", "generate", "--out", other_key.to_str().unwrap()]);
    let err = fails(
        dir.path(),
        &["token", "--crm", "--url", &base, "--data", "data", "--key", "other/private.pem"],
        &[],
    );
    assert!(err.contains("signature") && err.contains("--key"), "{err}");
    let err = fails(dir.path(), &["token", "--crm", "--data", "data", "--consumer-key", "3MVG9nope"], &[]);
    assert!(err.contains("3MVG9nope") && err.contains("Voxbridge Integration"), "{err}");
    let err = fails(dir.path(), &["token", "--crm", "--url", "http://127.0.0.1:9", "--data", "data"], &[]);
    assert!(err.contains("cannot reach") && err.contains("voxbridge serve"), "{err}");
    let err =
        fails(dir.path(), &["token", "--crm", "--call-center", "DemoCallCenter", "--data", "data"], &[]);
    assert!(err.contains("cannot be used with"), "{err}");
    let err = fails(dir.path(), &["token", "--user", "x", "--data", "data"], &[]);
    assert!(err.contains("--crm"), "{err}");
}

#[test]
fn configured_login_audiences_and_https() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("voxbridge.toml"),
        "version = 1\n[server]\nhttp = \"off\"\nhttps = \"127.0.0.1:0\"\n\
         [crm]\nlogin_audiences = [\"https://crm.voxbridge.test\"]\nsession_lifetime_secs = 600\n",
    )
    .unwrap();
    let args = ["--config", "voxbridge.toml", "--data", "data"];
    let mut server = Server::start(dir.path(), &[&["serve"][..], &args].concat());
    let base = format!("https://{}", server.wait_for("listening on https://"));
    let info: Value =
        serde_json::from_str(&ok(dir.path(), &[&["info", "--json"][..], &args].concat())).unwrap();
    assert_eq!(info["crm"]["login_audience"], "https://crm.voxbridge.test");
    assert_eq!(info["crm"]["session_lifetime_secs"], 600);

    // The first configured audience is the default `aud`; the data dir's self-signed
    // certificate is trusted; the login answers with an https instance URL.
    let out = ok(dir.path(), &[&["token", "--crm", "--json", "--url", &base][..], &args].concat());
    let response: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(response["instance_url"], base.as_str());
    let err = fails(
        dir.path(),
        &[&["token", "--crm", "--url", &base, "--audience", "https://login.salesforce.com"][..], &args]
            .concat(),
        &[],
    );
    assert!(err.contains("https://crm.voxbridge.test"), "{err}");
}
