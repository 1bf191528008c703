//! Crash safety of the CTR sync: `voxbridge serve` is SIGKILLed while a burst of 1,000
//! contacts ends (their CTRs put on the `ctr` stream of the embedded bus by another
//! process, as the contact center of another node would), restarted on the same data dir,
//! and every contact ends with exactly one VoiceCall carrying its CTR's values. A contact
//! whose backup landed but whose VoiceCall was never updated (the kill fell between the two)
//! is completed by `voxbridge ctr resync`.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use voxbridge_bus::PutRecord;

use crate::serving::Server;
use crate::{eventually_within, ok};

/// Contacts ending in the burst.
const CONTACTS: usize = 1000;
/// Backups stored when the server is killed: well into the burst, far from its end.
const KILL_AFTER_BACKUPS: usize = 250;

/// A missed call's CTR; its queue name and duration tell the contacts apart.
fn ctr(contact_id: &str, i: usize) -> Value {
    let seconds = 10 + i % 500;
    let end = chrono::DateTime::parse_from_rfc3339("2026-01-01T10:00:00Z").unwrap()
        + chrono::Duration::seconds(seconds as i64);
    let end = end.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    json!({
        "ContactId": contact_id,
        "InitiationMethod": "INBOUND",
        "Channel": "VOICE",
        "InitiationTimestamp": "2026-01-01T10:00:00Z",
        "DisconnectTimestamp": end,
        "LastUpdateTimestamp": end,
        "CustomerEndpoint": {"Address": "+14155550199", "Type": "TELEPHONE_NUMBER"},
        "SystemEndpoint": {"Address": "+15550100100", "Type": "TELEPHONE_NUMBER"},
        "Queue": {"Name": format!("Burst-{i}"), "EnqueueTimestamp": "2026-01-01T10:00:01Z", "Duration": 5},
        "DisconnectReason": "CUSTOMER_DISCONNECT",
    })
}

fn start(d: &Path) -> (Server, String) {
    let mut server = Server::start(d, &["serve", "--data", "data", "--http", "127.0.0.1:0"]);
    let addr = server.wait_for("listening on http://");
    let sync = server.wait_for("  CTR sync:       ");
    assert!(sync.starts_with("vb-ctr-sync on `ctr`"), "{sync}");
    (server, format!("http://{addr}"))
}

/// The CRM REST API as the demo integration user.
struct Crm {
    base: String,
    token: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Crm {
    fn login(dir: &Path, base: &str) -> Crm {
        let token = ok(dir, &["token", "--crm", "--url", base, "--data", "data"]).trim().to_string();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Crm { base: base.to_string(), token, http: reqwest::Client::new(), rt }
    }

    /// Every record a query answers, following `nextRecordsUrl`.
    fn all(&self, soql: &str) -> Vec<Value> {
        self.rt.block_on(async {
            let mut out = Vec::new();
            let first = self
                .http
                .get(format!("{}/services/data/v62.0/query", self.base))
                .query(&[("q", soql)])
                .bearer_auth(&self.token);
            let mut body: Value =
                first.send().await.unwrap().error_for_status().unwrap().json().await.unwrap();
            loop {
                out.extend(body["records"].as_array().cloned().unwrap_or_default());
                let Some(next) = body["nextRecordsUrl"].as_str().filter(|_| body["done"] == false) else {
                    return out;
                };
                let req = self.http.get(format!("{}{next}", self.base)).bearer_auth(&self.token);
                body = req.send().await.unwrap().error_for_status().unwrap().json().await.unwrap();
            }
        })
    }

    fn create_voice_call(&self, fields: Value) -> String {
        let req = self
            .http
            .post(format!("{}/services/data/v62.0/sobjects/VoiceCall", self.base))
            .bearer_auth(&self.token)
            .json(&fields);
        self.rt.block_on(async {
            let body: Value = req.send().await.unwrap().error_for_status().unwrap().json().await.unwrap();
            body["id"].as_str().unwrap().to_string()
        })
    }
}

fn backups(d: &Path) -> usize {
    std::fs::read_dir(d.join("data/objects/ctr")).map(|e| e.count()).unwrap_or(0)
}

#[test]
fn a_sigkill_during_a_burst_of_ctrs_loses_and_duplicates_no_voice_call() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["setup", "--data", "data"]);
    let (server, url) = start(d);
    let crm = Crm::login(d, &url);

    // A call the telephony side opened; its CTR will be backed up but never synced.
    let orphan = uuid::Uuid::new_v4().to_string();
    let orphan_id = crm.create_voice_call(json!({
        "VendorCallKey": orphan, "CallType": "Inbound", "FromPhoneNumber": "+14155550199",
        "ToPhoneNumber": "+15550100100", "CallStartDateTime": "2026-01-01T10:00:00.000Z",
    }));

    // The burst: 1,000 contacts end, their CTRs put in batches of 20 by another process's
    // bus handle while the server syncs them; the server is killed mid-burst.
    let contacts: Vec<String> = (0..CONTACTS).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let bus_url = format!("sqlite://{}", d.join("data/bus.db").display());
    let burst = {
        let contacts = contacts.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let bus = voxbridge_bus::open(&bus_url).await.unwrap();
                for (n, chunk) in contacts.chunks(20).enumerate() {
                    let records = chunk
                        .iter()
                        .enumerate()
                        .map(|(k, c)| PutRecord::new(c, ctr(c, n * 20 + k).to_string().into_bytes()))
                        .collect();
                    bus.put_batch("ctr", records).await.unwrap();
                }
                bus.close().await;
            })
        })
    };
    eventually_within("backups to land", Duration::from_secs(30), || {
        (backups(d) >= KILL_AFTER_BACKUPS).then_some(())
    });
    // Dropping the server SIGKILLs it (`Child::kill`) and reaps it.
    drop(server);
    let at_kill = backups(d);
    assert!(at_kill < CONTACTS, "the burst was over before the kill ({at_kill} backups)");
    burst.join().unwrap();

    // The kill fell between the orphan's backup and its sync: its backup is there, its
    // VoiceCall untouched (written while the server is down).
    let orphan_ctr = ctr(&orphan, 7777);
    ok(d, &["objects", "put", &format!("ctr/{orphan}.json"), &orphan_ctr.to_string(), "--data", "data"]);

    let (_server, url) = start(d);
    let crm = Crm::login(d, &url);
    let soql = "SELECT Id, VendorCallKey, QueueName, CallDurationInSeconds, CustomerHoldDuration, \
                CallDisposition FROM VoiceCall";
    let calls = eventually_within("every contact's VoiceCall", Duration::from_secs(45), || {
        let calls = crm.all(soql);
        let synced =
            calls.iter().filter(|c| c["QueueName"].as_str().is_some_and(|q| q.starts_with("Burst-")));
        (synced.count() >= CONTACTS).then_some(calls)
    });
    let mut by_key: HashMap<&str, Vec<&Value>> = HashMap::new();
    for c in &calls {
        if let Some(k) = c["VendorCallKey"].as_str() {
            by_key.entry(k).or_default().push(c);
        }
    }
    for (i, contact) in contacts.iter().enumerate() {
        let found = by_key.get(contact.as_str()).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(found.len(), 1, "contact {i} has {} VoiceCalls: {found:?}", found.len());
        let call = found[0];
        assert_eq!(call["QueueName"], format!("Burst-{i}"), "{call}");
        assert_eq!(call["CallDurationInSeconds"], 10 + i % 500, "{call}");
        assert_eq!(call["CustomerHoldDuration"], 0, "{call}");
        assert_eq!(call["CallDisposition"], "completed", "{call}");
    }

    // The retry job completes the orphan from its backup.
    let orphan_call = by_key.get(orphan.as_str()).and_then(|v| v.first()).unwrap();
    assert!(orphan_call["CustomerHoldDuration"].is_null(), "{orphan_call}");
    let report: Value = serde_json::from_str(&ok(
        d,
        &["ctr", "resync", "--url", &url, "--since", "1h", "--json", "--data", "data"],
    ))
    .unwrap();
    assert_eq!(report["resynced"], 1, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    let orphans = crm.all(&format!("{soql} WHERE VendorCallKey = '{orphan}'"));
    assert_eq!(orphans.len(), 1, "{orphans:?}");
    assert!(orphans[0]["Id"].as_str().is_some_and(|id| id.starts_with(&orphan_id)), "{orphans:?}");
    assert_eq!(orphans[0]["QueueName"], "Burst-7777");
    assert_eq!(orphans[0]["CallDurationInSeconds"], 10 + 7777 % 500);
    assert_eq!(orphans[0]["CustomerHoldDuration"], 0);
}
