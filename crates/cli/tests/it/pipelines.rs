//! The event pipelines end to end: `serve --flows` puts each contact's events and CTR on
//! the bus, the CTR sync writes the CTR to the VoiceCall through the CRM REST API (with a
//! backup in the object store, newest CTR winning, failures dead-lettered), `ctr resync`
//! repairs a VoiceCall that lost its CTR fields — on the embedded bus and on NATS JetStream
//! (`VOXBRIDGE_TEST_NATS_URL`, skipped with `VOXBRIDGE_SKIP_NATS=1`); `stream` and `objects`
//! round trips.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::{eventually, eventually_within, fails, ok, run, sample_flows, serve_with_sample_flows};

/// The CRM REST API as the demo integration user (also used by the S3 object store tests).
pub(crate) struct Crm {
    base: String,
    token: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Crm {
    pub(crate) fn login(dir: &Path, base: &str) -> Crm {
        let token = ok(dir, &["token", "--crm", "--url", base, "--data", "data"]).trim().to_string();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Crm { base: base.to_string(), token, http: reqwest::Client::new(), rt }
    }

    pub(crate) fn voice_call(&self, contact_id: &str) -> Value {
        self.first(&format!(
            "SELECT Id, CustomerHoldDuration, NumberOfHolds, CallDisposition, CallEndDateTime, QueueName, \
             DisconnectReason FROM VoiceCall WHERE VendorCallKey = '{contact_id}'"
        ))
    }

    /// The first record a query answers (null when none).
    fn first(&self, soql: &str) -> Value {
        let request = self
            .http
            .get(format!("{}/services/data/v62.0/query", self.base))
            .query(&[("q", soql)])
            .bearer_auth(&self.token);
        self.rt.block_on(async {
            let resp = request.send().await.unwrap();
            assert!(resp.status().is_success(), "{}", resp.status());
            let body: Value = resp.json().await.unwrap();
            body["records"][0].clone()
        })
    }

    pub(crate) fn patch(&self, id: &str, fields: Value) {
        let request = self
            .http
            .patch(format!("{}/services/data/v62.0/sobjects/VoiceCall/{id}", self.base))
            .bearer_auth(&self.token)
            .json(&fields);
        let status = self.rt.block_on(async { request.send().await.unwrap().status() });
        assert_eq!(status.as_u16(), 204);
    }
}

pub(crate) fn tags(dir: &Path, key: &str) -> Value {
    let mut args = vec!["objects", "tag", key, "--data", "data"];
    if dir.join("voxbridge.toml").is_file() {
        args.extend(["--config", "voxbridge.toml"]);
    }
    serde_json::from_str(&ok(dir, &args)).unwrap()
}

#[test]
fn a_simulated_call_is_synced_from_the_ctr_stream_and_resynced_from_its_backup() {
    pipeline_end_to_end(None);
}

#[test]
fn the_ctr_sync_runs_on_nats_jetstream() {
    let Some(nats) = nats_url() else { return };
    pipeline_end_to_end(Some(&nats));
    delete_streams(&nats);
}

/// Deletes the streams under the test's own prefix.
fn delete_streams(url: &str) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let bus = voxbridge_bus::open(url).await.unwrap();
        for stream in bus.list_streams().await.unwrap() {
            bus.delete_stream(&stream).await.unwrap();
        }
        bus.close().await;
    });
}

/// A NATS URL with a stream-name prefix of its own, unless NATS tests are skipped.
fn nats_url() -> Option<String> {
    if std::env::var("VOXBRIDGE_SKIP_NATS").is_ok_and(|v| v == "1") {
        return None;
    }
    let nats = std::env::var("VOXBRIDGE_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let prefix = format!("vbtest_cli_{}_", uuid::Uuid::new_v4().simple());
    Some(format!("{}?prefix={prefix}", nats.split('?').next().unwrap_or(&nats)))
}

/// Places a call through `serve --flows` on the default embedded bus or on `bus_url`, and
/// follows its CTR through the sync, duplicates, the resync and the dead letters.
fn pipeline_end_to_end(bus_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Extra CTR values for custom fields: the "Customize Synced CTR Fields" recipe.
    let mut config =
        "version = 1\n[ctr.fields]\nPriority__c = \"Attributes.Priority\"\nMyField__c = \"Queue.Duration\"\n"
            .to_string();
    match bus_url {
        Some(url) => config.push_str(&format!("[bus]\nurl = \"{url}\"\n")),
        // The shortest schedule EventBridge allows, so the scheduled resync runs in the test.
        None => config.push_str("[ctr]\nresync_schedule = \"rate(1 minute)\"\n"),
    }
    std::fs::write(d.join("voxbridge.toml"), config).unwrap();
    let vb = |args: &[&str]| ok(d, &[args, &["--config", "voxbridge.toml"]].concat());
    let mut server = serve_with_sample_flows(d);
    let addr = server.wait_for("listening on http://");
    let bus = server.wait_for("  Event bus:      ");
    let expected = if bus_url.is_some() { "nats (nats://" } else { "embedded (sqlite://data/bus.db)" };
    assert!(bus.starts_with(expected), "{bus}");
    let sync = server.wait_for("  CTR sync:       ");
    assert!(sync.starts_with("vb-ctr-sync on `ctr`"), "{sync}");
    let url = format!("http://{addr}");

    let log: Value = serde_json::from_str(&vb(&[
        "call",
        "simulate",
        "--data",
        "data",
        "--url",
        &url,
        "--to",
        "+15550100100",
        "--json",
    ]))
    .unwrap();
    let contact = log["contactId"].as_str().unwrap().to_string();
    let voice_call_id = log["voiceCallId"].as_str().unwrap().to_string();

    // The sync fills the CTR fields of the VoiceCall the flow created.
    let crm = Crm::login(d, &url);
    let call = eventually("the CTR fields", || {
        let c = crm.voice_call(&contact);
        (!c["CustomerHoldDuration"].is_null()).then_some(c)
    });
    let id18 = call["Id"].as_str().unwrap().to_string();
    assert!(id18.starts_with(&voice_call_id), "{id18} is {voice_call_id}");
    assert_eq!(call["CustomerHoldDuration"], 0);
    assert_eq!(call["NumberOfHolds"], 0);
    assert_eq!(call["CallDisposition"], "completed");
    assert_eq!(call["QueueName"], "Support");
    assert_eq!(call["DisconnectReason"], log["ctr"]["DisconnectReason"]);
    assert!(call["CallEndDateTime"].as_str().is_some_and(|t| t.ends_with(".000Z")), "{call}");

    // The backup, tagged with what was applied.
    let key = format!("ctr/{contact}.json");
    let backup: Value = serde_json::from_str(&vb(&["objects", "get", &key, "--data", "data"])).unwrap();
    assert_eq!(backup["ContactId"], contact.as_str());
    let last_update = backup["LastUpdateTimestamp"].as_str().unwrap().to_string();
    let t = tags(d, &key);
    assert_eq!(t["applied-last-update"], last_update.as_str());
    assert_eq!(t["voice-call-id"], id18.as_str());
    let listed = vb(&["objects", "list", "--prefix", "ctr", "--data", "data"]);
    assert!(listed.contains(&key), "{listed}");

    // The contact's events are on their stream, keyed by ContactId.
    let events = vb(&["stream", "tail", "--stream", "contact-events", "--data", "data"]);
    let types: Vec<String> = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["PartitionKey"] == contact.as_str())
        .map(|e| e["Data"]["detail"]["eventType"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(types.first().map(String::as_str), Some("INITIATED"), "{events}");
    assert_eq!(types.last().map(String::as_str), Some("DISCONNECTED"), "{events}");

    // A duplicate with an older LastUpdateTimestamp changes nothing.
    let mut stale = backup.clone();
    stale["LastUpdateTimestamp"] = json!("2001-01-01T00:00:00Z");
    stale["Queue"]["Name"] = json!("Stale");
    let put = vb(&[
        "stream",
        "put",
        "--stream",
        "ctr",
        "--partition-key",
        &contact,
        &stale.to_string(),
        "--data",
        "data",
    ]);
    assert!(put.contains("\"SequenceNumber\""), "{put}");
    eventually("the stale CTR to be seen", || {
        (tags(d, &key)["last-stale-update"] == "2001-01-01T00:00:00Z").then_some(())
    });
    assert_eq!(crm.voice_call(&contact)["QueueName"], "Support");
    let kept: Value = serde_json::from_str(&vb(&["objects", "get", &key, "--data", "data"])).unwrap();
    assert_eq!(kept["LastUpdateTimestamp"], last_update.as_str(), "the backup keeps the newest CTR");

    // A newer one wins.
    let mut newer = backup.clone();
    newer["LastUpdateTimestamp"] = json!("2099-01-01T00:00:00Z");
    newer["Queue"]["Name"] = json!("Billing");
    vb(&[
        "stream",
        "put",
        "--stream",
        "ctr",
        "--partition-key",
        &contact,
        &newer.to_string(),
        "--data",
        "data",
    ]);
    eventually("the newer CTR", || (crm.voice_call(&contact)["QueueName"] == "Billing").then_some(()));

    // A VoiceCall whose CTR fields are gone is repaired from the backup.
    crm.patch(
        &voice_call_id,
        json!({"CustomerHoldDuration": null, "NumberOfHolds": null, "QueueName": null}),
    );
    assert!(crm.voice_call(&contact)["CustomerHoldDuration"].is_null());
    let report: Value = serde_json::from_str(&vb(&[
        "ctr", "resync", "--url", &url, "--since", "1h", "--json", "--data", "data",
    ]))
    .unwrap();
    assert_eq!(report["found"], 1, "{report}");
    assert_eq!(report["resynced"], 1, "{report}");
    let call = crm.voice_call(&contact);
    assert_eq!(call["CustomerHoldDuration"], 0);
    assert_eq!(call["QueueName"], "Billing");
    let report = vb(&["ctr", "resync", "--url", &url, "--data", "data"]);
    assert!(report.starts_with("0 VoiceCall(s) without CTR fields"), "{report}");
    if bus_url.is_none() {
        // The server's own resync, on its schedule, repairs it too.
        crm.patch(&voice_call_id, json!({"CustomerHoldDuration": null, "QueueName": null}));
        eventually_within("the scheduled resync", Duration::from_secs(150), || {
            let c = crm.voice_call(&contact);
            (c["CustomerHoldDuration"] == 0 && c["QueueName"] == "Billing").then_some(())
        });
    }

    // The CTR of a contact without a VoiceCall (a missed call) creates one.
    let missed = uuid::Uuid::new_v4().to_string();
    let ctr = json!({
        "ContactId": missed,
        "InitiationMethod": "INBOUND",
        "Channel": "VOICE",
        "InitiationTimestamp": "2026-01-01T10:00:00Z",
        "DisconnectTimestamp": "2026-01-01T10:01:30Z",
        "LastUpdateTimestamp": "2026-01-01T10:01:31Z",
        "CustomerEndpoint": {"Address": "+14155550199", "Type": "TELEPHONE_NUMBER"},
        "SystemEndpoint": {"Address": "+15550100100", "Type": "TELEPHONE_NUMBER"},
        "Queue": {"Name": "Support", "EnqueueTimestamp": "2026-01-01T10:00:10Z", "Duration": 80},
        "DisconnectReason": "CUSTOMER_DISCONNECT",
        "Attributes": {"sfdc-Department__c": "Billing", "Priority": "3"},
    });
    vb(&["stream", "put", "--stream", "ctr", "--partition-key", &missed, &ctr.to_string(), "--data", "data"]);
    let soql = format!(
        "SELECT Id, CallType, FromPhoneNumber, ToPhoneNumber, CallDurationInSeconds, CallDisposition, \
         CustomerHoldDuration, CallCenterId, Department__c, Priority__c, MyField__c FROM VoiceCall \
         WHERE VendorCallKey = '{missed}'"
    );
    let created = eventually("the missed call's VoiceCall", || {
        let c = crm.first(&soql);
        (!c.is_null()).then_some(c)
    });
    assert_eq!(created["CallType"], "Inbound");
    assert_eq!(created["FromPhoneNumber"], "+14155550199");
    assert_eq!(created["ToPhoneNumber"], "+15550100100");
    assert_eq!(created["CallDurationInSeconds"], 90);
    assert_eq!(created["CallDisposition"], "completed");
    assert_eq!(created["CustomerHoldDuration"], 0);
    assert!(created["CallCenterId"].as_str().is_some_and(|c| c.starts_with("04v")), "{created}");
    assert_eq!(created["Department__c"], "Billing");
    assert_eq!(created["Priority__c"].as_f64(), Some(3.0));
    assert_eq!(created["MyField__c"], "80");

    // A record that is no CTR goes to the dead-letter stream at once; one that keeps failing
    // (its ContactId cannot name a backup) after its retries.
    vb(&["stream", "put", "--stream", "ctr", "--partition-key", "junk", "not json", "--data", "data"]);
    let failing = json!({"ContactId": "bad/../id", "InitiationMethod": "INBOUND"}).to_string();
    vb(&["stream", "put", "--stream", "ctr", "--partition-key", "bad", &failing, "--data", "data"]);
    eventually("the dead letters", || {
        let dead = vb(&["stream", "tail", "--stream", "ctr-dead-letter", "--data", "data"]);
        (dead.contains("\"Data\":\"not json\"") && dead.contains("bad/../id")).then_some(())
    });
}

#[test]
fn stream_put_and_tail_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let err =
        fails(d, &["stream", "put", "--stream", "demo", "--partition-key", "k", "{}", "--data", "data"], &[]);
    assert!(err.contains("stream demo does not exist"), "{err}");
    for (key, data) in [("a", r#"{"n":1}"#), ("b", "plain text")] {
        ok(
            d,
            &[
                "stream",
                "put",
                "--stream",
                "demo",
                "--create",
                "--partition-key",
                key,
                data,
                "--data",
                "data",
            ],
        );
    }
    let lines: Vec<Value> = ok(d, &["stream", "tail", "--stream", "demo", "--data", "data"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["PartitionKey"], "a");
    assert_eq!(lines[0]["Data"], json!({"n": 1}));
    assert_eq!(lines[1]["Data"], "plain text");
    assert_eq!(lines[0]["SequenceNumber"].as_str().map(str::len), Some(20));

    let limited = ok(d, &["stream", "tail", "--stream", "demo", "--limit", "1", "--data", "data"]);
    assert_eq!(limited.lines().count(), 1);
    assert!(ok(d, &["stream", "tail", "--stream", "demo", "--from", "latest", "--data", "data"]).is_empty());
    assert!(ok(
        d,
        &["stream", "tail", "--stream", "demo", "--from", "2999-01-01T00:00:00Z", "--data", "data"]
    )
    .is_empty());
    let all =
        ok(d, &["stream", "tail", "--stream", "demo", "--from", "2000-01-01T00:00:00Z", "--data", "data"]);
    assert_eq!(all.lines().count(), 2);
    let list = ok(d, &["stream", "list", "--data", "data"]);
    assert!(list.contains("demo") && list.contains("ctr") && list.contains("contact-events"), "{list}");
    let err = fails(d, &["stream", "tail", "--stream", "demo", "--from", "soon", "--data", "data"], &[]);
    assert!(err.contains("trim-horizon"), "{err}");

    // --follow from latest waits for what is put after it started.
    let follower = crate::voxbridge(
        d,
        &[
            "stream", "tail", "--stream", "demo", "--from", "latest", "--follow", "--limit", "1", "--data",
            "data",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    struct Reap(Option<std::process::Child>);
    impl Drop for Reap {
        fn drop(&mut self) {
            if let Some(c) = self.0.as_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let mut follower = Reap(Some(follower));
    // Until the follower has seen one: a put made before it read the stream's end is not
    // for it, so put again.
    eventually("the follower to see a new record", || {
        ok(
            d,
            &[
                "stream",
                "put",
                "--stream",
                "demo",
                "--partition-key",
                "f",
                r#"{"late":true}"#,
                "--data",
                "data",
            ],
        );
        follower.0.as_mut().and_then(|c| c.try_wait().unwrap())
    });
    let out = follower.0.take().unwrap().wait_with_output().unwrap();
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["Data"], json!({"late": true}));
}

#[test]
fn stream_round_trip_on_nats() {
    let Some(url) = nats_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let env = [("VOXBRIDGE_BUS_URL", url.as_str())];
    let out = run(
        dir.path(),
        &["stream", "put", "--stream", "ctr", "--partition-key", "c1", r#"{"ContactId":"c1"}"#],
        &env,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(dir.path(), &["stream", "tail", "--stream", "ctr"], &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["Data"]["ContactId"], "c1");
    assert_eq!(line["PartitionKey"], "c1");
    let out = run(dir.path(), &["stream", "list", "--json"], &env);
    let streams: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(streams.as_array().unwrap().iter().any(|s| s["StreamName"] == "ctr" && s["RecordCount"] == 1));
    delete_streams(&url);
}

#[test]
fn objects_put_get_list_and_tag() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["objects", "put", "notes/a.txt", "hello", "--data", "data"]);
    std::fs::write(d.join("b.json"), r#"{"b":2}"#).unwrap();
    ok(d, &["objects", "put", "notes/b.json", "--file", "b.json", "--data", "data"]);
    assert_eq!(ok(d, &["objects", "get", "notes/a.txt", "--data", "data"]), "hello");
    assert!(d.join("data/objects/notes/a.txt").is_file());
    let list: Value = serde_json::from_str(&ok(d, &["objects", "list", "--json", "--data", "data"])).unwrap();
    let keys: Vec<&str> = list.as_array().unwrap().iter().map(|o| o["Key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["notes/a.txt", "notes/b.json"]);
    assert_eq!(list[0]["Size"], 5);

    assert_eq!(tags(d, "notes/a.txt"), json!({}));
    ok(d, &["objects", "tag", "notes/a.txt", "owner=ops", "tier=cold", "--data", "data"]);
    assert_eq!(tags(d, "notes/a.txt"), json!({"owner": "ops", "tier": "cold"}));
    ok(d, &["objects", "tag", "notes/a.txt", "tier=hot", "--data", "data"]);
    assert_eq!(tags(d, "notes/a.txt"), json!({"tier": "hot"}), "a new tag set replaces the old one");
    ok(d, &["objects", "tag", "notes/a.txt", "--clear", "--data", "data"]);
    assert_eq!(tags(d, "notes/a.txt"), json!({}));
    // Tags are not objects.
    let listed = ok(d, &["objects", "list", "--data", "data"]);
    assert_eq!(listed.lines().count(), 2, "{listed}");

    let err = fails(d, &["objects", "get", "notes/missing", "--data", "data"], &[]);
    assert!(err.contains("there is no object notes/missing"), "{err}");
    let err = fails(d, &["objects", "tag", "notes/missing", "a=b", "--data", "data"], &[]);
    assert!(err.contains("no object notes/missing"), "{err}");
    let err = fails(d, &["objects", "put", "../escape", "x", "--data", "data"], &[]);
    assert!(err.contains("not an object key"), "{err}");
    let err = fails(d, &["objects", "tag", "notes/a.txt", "novalue", "--data", "data"], &[]);
    assert!(err.contains("KEY=VALUE"), "{err}");
}

#[test]
fn pipeline_commands_have_help() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["stream", "--help"][..],
        &["stream", "put", "--help"],
        &["stream", "tail", "--help"],
        &["stream", "list", "--help"],
        &["objects", "--help"],
        &["objects", "list", "--help"],
        &["objects", "put", "--help"],
        &["objects", "get", "--help"],
        &["objects", "tag", "--help"],
        &["ctr", "--help"],
        &["ctr", "resync", "--help"],
    ] {
        let out = ok(dir.path(), args);
        assert!(out.contains("Usage: voxbridge"), "{args:?}: {out}");
    }
    let tail = ok(dir.path(), &["stream", "tail", "--help"]);
    assert!(tail.contains("trim-horizon") && tail.contains("--follow"), "{tail}");
}

#[cfg(unix)]
#[test]
fn serve_puts_every_record_and_closes_the_bus_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::mpsc;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let flows = sample_flows(d);
    let mut child = crate::voxbridge(
        d,
        &["serve", "--data", "data", "--http", "127.0.0.1:0", "--flows", flows.to_str().unwrap()],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Kills the server if the test fails before it exits.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Reap(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Waits (bounded) for a line starting with `prefix`.
    let wait_for = |prefix: &str| loop {
        let line = lines.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("no {prefix:?}"));
        if let Some(rest) = line.strip_prefix(prefix) {
            break rest.to_string();
        }
    };
    let addr = wait_for("listening on http://");
    let url = format!("http://{addr}");
    let log: Value = serde_json::from_str(&ok(
        d,
        &["call", "simulate", "--data", "data", "--url", &url, "--to", "+15550100100", "--json"],
    ))
    .unwrap();
    let contact = log["contactId"].as_str().unwrap().to_string();

    let sent = std::process::Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status();
    assert!(sent.is_ok_and(|s| s.success()));
    wait_for("stopped");
    let status = eventually("the server to exit", || child.0.try_wait().unwrap());
    assert!(status.success());

    // Every record of the contact was put before the bus closed.
    let ctrs = ok(d, &["stream", "tail", "--stream", "ctr", "--data", "data"]);
    assert!(ctrs.contains(&contact), "{ctrs}");
    let events = ok(d, &["stream", "tail", "--stream", "contact-events", "--data", "data"]);
    assert!(events.contains("\"DISCONNECTED\"") && events.contains(&contact), "{events}");
}
