//! The object store on a real S3-compatible server (moto's, started per test on a port of its
//! own choosing; see `s3_server`): `voxbridge objects` on an `s3://` URL with the standard AWS
//! variables, and `voxbridge serve` whose CTR sync backs a simulated call's CTR up into the
//! bucket, tags it, emits the bucket's `Object Created` event and repairs the VoiceCall from
//! the backup. The objects are checked in the bucket itself, through a client of our own.

use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::ObjectStore;
use serde_json::{json, Value};

use crate::pipelines::{tags, Crm};
use crate::s3_server::{S3Server, ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use crate::{eventually, serve_with_sample_flows, succeeded, voxbridge};

/// AWS variables of the caller's environment that would change what the tests sign with.
const INHERITED_AWS: [&str; 6] = [
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID_FILE",
];

/// Runs the binary with `env` as its only AWS variables.
fn run_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = voxbridge(dir, args);
    for v in INHERITED_AWS.iter().chain(&[
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SECRET_ACCESS_KEY_FILE",
    ]) {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied()).output().expect("the voxbridge binary runs")
}

fn ok_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    succeeded(args, run_with(dir, args, env))
}

/// The keys in the whole bucket, read with a client of our own.
fn bucket_keys(server: &S3Server, bucket: &str) -> Vec<String> {
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&server.endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(bucket)
        .with_access_key_id(ACCESS_KEY_ID)
        .with_secret_access_key(SECRET_ACCESS_KEY)
        .build()
        .unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(store);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut keys: Vec<String> =
        rt.block_on(store.list(None).map_ok(|m| m.location.to_string()).try_collect()).unwrap();
    keys.sort();
    keys
}

#[test]
fn objects_put_get_list_and_tag_on_an_s3_bucket() {
    let Some(server) = S3Server::start() else { return };
    server.create_bucket("vb-cli");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The bucket from the environment alone, credentials from the standard AWS variables.
    let env = [
        ("VOXBRIDGE_OBJECTS_URL", "s3://vb-cli/site-a"),
        ("VOXBRIDGE_OBJECTS_ENDPOINT", server.endpoint.as_str()),
        ("VOXBRIDGE_OBJECTS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
    ];
    let vb = |args: &[&str]| ok_with(d, &[args, &["--data", "data"]].concat(), &env);

    let stored = vb(&["objects", "put", "notes/a.txt", "hello"]);
    assert!(stored.contains("s3://vb-cli/site-a"), "{stored}");
    std::fs::write(d.join("b.json"), r#"{"b":2}"#).unwrap();
    vb(&["objects", "put", "notes/b.json", "--file", "b.json"]);
    assert_eq!(vb(&["objects", "get", "notes/a.txt"]), "hello");
    let list: Value = serde_json::from_str(&vb(&["objects", "list", "--json"])).unwrap();
    let keys: Vec<&str> = list.as_array().unwrap().iter().map(|o| o["Key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["notes/a.txt", "notes/b.json"]);
    assert_eq!(list[0]["Size"], 5);
    assert_eq!(vb(&["objects", "list", "--prefix", "notes"]).lines().count(), 2);
    assert_eq!(vb(&["objects", "list", "--prefix", "other"]), "");
    // In the bucket under the prefix, not in the data directory.
    assert_eq!(bucket_keys(&server, "vb-cli"), ["site-a/notes/a.txt", "site-a/notes/b.json"]);
    assert!(!d.join("data/objects/notes").exists());

    // Tags live beside the data, per bucket and prefix; replacing an object keeps them.
    vb(&["objects", "tag", "notes/a.txt", "owner=ops", "tier=cold"]);
    let show = |key: &str| -> Value { serde_json::from_str(&vb(&["objects", "tag", key])).unwrap() };
    assert_eq!(show("notes/a.txt"), json!({"owner": "ops", "tier": "cold"}));
    assert!(d.join("data/object-tags/vb-cli/site-a/tags.db").is_file());
    vb(&["objects", "put", "notes/a.txt", "hello again"]);
    assert_eq!(show("notes/a.txt"), json!({"owner": "ops", "tier": "cold"}));
    vb(&["objects", "tag", "notes/a.txt", "--clear"]);
    assert_eq!(show("notes/a.txt"), json!({}));

    // The put's event names the real bucket.
    let events = vb(&["stream", "tail", "--stream", "object-events"]);
    let event: Value = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["PartitionKey"] == "notes/b.json")
        .unwrap_or_else(|| panic!("no event of notes/b.json in {events}"));
    assert_eq!(event["Data"]["detail"]["bucket"]["name"], "vb-cli", "{event}");
    assert_eq!(event["Data"]["resources"][0], "arn:aws:s3:::vb-cli", "{event}");

    let fail = |args: &[&str], env: &[(&str, &str)]| {
        let out = run_with(d, &[args, &["--data", "data"]].concat(), env);
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    };
    let err = fail(&["objects", "get", "notes/missing"], &env);
    assert!(err.contains("there is no object notes/missing in s3://vb-cli/site-a"), "{err}");
    // What to set, and never the secret.
    let err = fail(&["objects", "list"], &env[..3]);
    assert!(err.contains("needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"), "{err}");
    let wrong = [
        &env[..4],
        &[("AWS_SECRET_ACCESS_KEY", "not-the-secret"), ("VOXBRIDGE_OBJECTS_URL", "s3://vb-nowhere")],
    ]
    .concat();
    let err = fail(&["objects", "list"], &wrong);
    assert!(err.contains("s3://vb-nowhere") && !err.contains("not-the-secret"), "{err}");
}

#[test]
fn serve_backs_ctrs_up_into_an_s3_bucket_and_resyncs_from_it() {
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("vb-serve");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The bucket and its credentials from the configuration file this time.
    std::fs::write(
        d.join("voxbridge.toml"),
        format!(
            "version = 1\n[objects]\nurl = \"s3://vb-serve/backups\"\nendpoint = \"{}\"\nallow_http = true\n\
             access_key_id = \"{ACCESS_KEY_ID}\"\nsecret_access_key = \"{SECRET_ACCESS_KEY}\"\n",
            s3.endpoint
        ),
    )
    .unwrap();
    let vb =
        |args: &[&str]| ok_with(d, &[args, &["--config", "voxbridge.toml", "--data", "data"]].concat(), &[]);
    let mut server = serve_with_sample_flows(d);
    let addr = server.wait_for("listening on http://");
    let sync = server.wait_for("  CTR sync:       ");
    assert!(sync.contains("backups in s3://vb-serve/backups at http://127.0.0.1:"), "{sync}");
    let url = format!("http://{addr}");

    let log: Value =
        serde_json::from_str(&vb(&["call", "simulate", "--url", &url, "--to", "+15550100100", "--json"]))
            .unwrap();
    let contact = log["contactId"].as_str().unwrap().to_string();
    let crm = Crm::login(d, &url);
    let call = eventually("the CTR fields", || {
        let c = crm.voice_call(&contact);
        (!c["CustomerHoldDuration"].is_null()).then_some(c)
    });
    assert_eq!(call["QueueName"], "Support");
    let id18 = call["Id"].as_str().unwrap().to_string();

    // The backup is in the bucket, tagged with what was applied.
    let key = format!("ctr/{contact}.json");
    assert!(bucket_keys(&s3, "vb-serve").contains(&format!("backups/{key}")));
    assert!(!d.join("data/objects/ctr").exists());
    let backup: Value = serde_json::from_str(&vb(&["objects", "get", &key])).unwrap();
    assert_eq!(backup["ContactId"], contact.as_str());
    let t = tags(d, &key);
    assert_eq!(t["applied-last-update"], backup["LastUpdateTimestamp"], "{t}");
    assert_eq!(t["voice-call-id"], id18.as_str());
    let events = vb(&["stream", "tail", "--stream", "object-events"]);
    let event: Value = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["PartitionKey"] == key.as_str())
        .unwrap_or_else(|| panic!("no event of {key} in {events}"));
    assert_eq!(event["Data"]["detail"]["bucket"]["name"], "vb-serve", "{event}");

    // A VoiceCall that lost its CTR fields is repaired from the backup in the bucket.
    crm.patch(&id18, json!({"CustomerHoldDuration": null, "QueueName": null}));
    let report: Value =
        serde_json::from_str(&vb(&["ctr", "resync", "--url", &url, "--since", "1h", "--json"])).unwrap();
    assert_eq!(report["resynced"], 1, "{report}");
    let call = crm.voice_call(&contact);
    assert_eq!(
        (call["CustomerHoldDuration"].clone(), call["QueueName"].clone()),
        (json!(0), json!("Support"))
    );
}
