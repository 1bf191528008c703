//! Rules and the pipeline functions end to end against `voxbridge serve --flows`: a call that
//! ends in the queue without an agent loses its PendingServiceRouting through the default
//! contact-event rule (HandleContactEventsFunction's clearRouting); a Contact Lens analysis
//! file put with `voxbridge objects put` becomes post-call sentiment signals on the call
//! (PostCallAnalysisTriggerFunction); Contact Lens segment records put on
//! `contact-lens-segments` become transcript entries (the Contact Lens consumer and
//! processor).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::serving::Server;
use crate::{eventually, ok, sample_flows};

/// The Telephony Integration API and the admin view, as the demo call center.
struct Api {
    dir: PathBuf,
    base: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Api {
    fn new(dir: &Path, base: &str) -> Api {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Api { dir: dir.to_path_buf(), base: base.to_string(), http: reqwest::Client::new(), rt }
    }

    fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let token =
            ok(&self.dir, &["token", "--call-center", "DemoCallCenter", "--data", "data"]).trim().to_string();
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(b) = body {
            request = request.json(&b);
        }
        self.rt.block_on(async {
            let resp = request.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json().await.unwrap_or(Value::Null))
        })
    }

    /// `GET /admin/v1/voiceCalls/{id}`: the call with its routing, signals and transcript.
    fn view(&self, call: &str) -> Value {
        let (status, body) = self.send(reqwest::Method::GET, &format!("/admin/v1/voiceCalls/{call}"), None);
        assert_eq!(status, 200, "{body}");
        body
    }
}

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../functions/tests/data").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn rules_run_the_pipeline_functions_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let flows = sample_flows(d);
    let mut server = Server::start(
        d,
        &["serve", "--data", "data", "--http", "127.0.0.1:0", "--flows", flows.to_str().unwrap()],
    );
    let addr = server.wait_for("listening on http://");
    let rules = server.wait_for("  Rules:          ");
    assert!(rules.starts_with("3 rules (vb-rules on `contact-events`, `object-events`"), "{rules}");
    assert!(!rules.contains("no function for"), "{rules}");
    let url = format!("http://{addr}");
    let api = Api::new(d, &url);

    // A call that ends in the queue: the default rule clears its routing.
    let log: Value = serde_json::from_str(&ok(
        d,
        &["call", "simulate", "--data", "data", "--url", &url, "--to", "+15550100100", "--json"],
    ))
    .unwrap();
    assert_eq!(log["disposition"], "QUEUED", "{log}");
    assert!(log["agent"].is_null());
    let contact = log["contactId"].as_str().unwrap().to_string();
    let call = log["voiceCallId"].as_str().unwrap().to_string();
    eventually("clearRouting through the default rule", || {
        api.view(&call)["pendingServiceRouting"].as_array().unwrap().is_empty().then_some(())
    });

    // The telephony side ends the call, the CTR sync backs its CTR up: a Contact Lens
    // analysis file for it becomes post-call signals.
    let ended = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let (status, body) = api.send(
        reqwest::Method::PATCH,
        &format!("/telephony/v1/voiceCalls/{contact}"),
        Some(json!({"callCenterApiName": "DemoCallCenter", "endTime": ended, "isActiveCall": false})),
    );
    assert_eq!(status, 200, "{body}");
    eventually("the CTR backup", || {
        ok(d, &["objects", "list", "--prefix", "ctr", "--data", "data"]).contains(&contact).then_some(())
    });
    let mut analysis = fixture("scv_contactlens_postcall_analysis_output.json");
    analysis["CustomerMetadata"]["ContactId"] = json!(contact);
    let turns = analysis["Transcript"].as_array().unwrap().len();
    let day = chrono::Utc::now().format("%Y/%m/%d");
    let key = format!("Analysis/Voice/{day}/{contact}_analysis_2026-01-01T000000Z.json");
    // A redacted copy is ignored; the raw file is processed.
    let redacted = format!("Analysis/Voice/Redacted/{day}/{contact}_analysis_redacted.json");
    ok(d, &["objects", "put", &redacted, &analysis.to_string(), "--data", "data"]);
    let stored = ok(d, &["objects", "put", &key, &analysis.to_string(), "--data", "data"]);
    assert!(stored.starts_with("stored"), "{stored}");
    let signals = eventually("the post-call signals", || {
        let signals = api.view(&call)["signals"].as_array().cloned().unwrap_or_default();
        (signals.len() >= 2 + turns).then_some(signals)
    });
    assert_eq!(signals.len(), 2 + turns, "one per turn and one overall per participant");
    assert!(signals.iter().all(|s| s["Phase"] == "PostCall" && s["Type"] == "IntelligenceSignal__Sentiment"));
    assert!(signals.iter().any(|s| s["Participant"] == "CUSTOMER" && s["Value"] == "160"), "{signals:?}");
    let events = ok(d, &["stream", "tail", "--stream", "object-events", "--data", "data"]);
    assert!(events.contains("\"Object Created\"") && events.contains(&key), "{events}");
    let dead = ok(d, &["stream", "tail", "--stream", "rules-dead-letter", "--data", "data"]);
    assert!(dead.trim().is_empty(), "{dead}");

    // A live call: Contact Lens segments on their stream become its transcript.
    let live = uuid::Uuid::new_v4().to_string();
    let started =
        (chrono::Utc::now() - chrono::Duration::seconds(60)).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let (status, body) = api.send(
        reqwest::Method::POST,
        "/telephony/v1/voiceCalls",
        Some(json!({
            "callCenterApiName": "DemoCallCenter", "vendorCallKey": live, "to": "+15550100100",
            "from": "+14155550123", "initiationMethod": "Inbound", "startTime": started,
            "participants": [{"participantKey": "+14155550123", "type": "END_USER"}],
        })),
    );
    assert_eq!(status, 200, "{body}");
    let live_call = body["voiceCallId"].as_str().unwrap().to_string();
    let mut utterance = fixture("scv_contactlens_realtime_segment_utterance.json");
    utterance["ContactId"] = json!(live);
    let mut customer = utterance.clone();
    customer["Segments"][0]["Utterance"]["Id"] = json!("utterance-2");
    customer["Segments"][0]["Utterance"]["ParticipantRole"] = json!("CUSTOMER");
    customer["Segments"][0]["Utterance"]["PartialContent"] = json!("Hello there.");
    let mut categories = fixture("scv_contactlens_realtime_segment_categories.json");
    categories["ContactId"] = json!(live);
    for record in [json!({"EventType": "STARTED", "ContactId": live}), utterance, customer, categories] {
        ok(
            d,
            &[
                "stream",
                "put",
                "--stream",
                "contact-lens-segments",
                "--partition-key",
                &live,
                &record.to_string(),
                "--data",
                "data",
            ],
        );
    }
    let transcript = eventually("the transcript entries", || {
        let t = api.view(&live_call)["transcript"].as_array().cloned().unwrap_or_default();
        (t.len() >= 2).then_some(t)
    });
    let text = serde_json::to_string(&transcript).unwrap();
    assert!(text.contains("Testing.") && text.contains("Hello there."), "{text}");
    assert!(text.contains("VIRTUAL_AGENT") && text.contains("END_USER"), "{text}");
}

#[test]
fn bench_pipelines_runs_a_tiny_count_and_reports_against_the_targets() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        ok(dir.path(), &["bench", "pipelines", "--ctrs", "20", "--rate", "20", "--seconds", "1", "--json"]);
    let report: Value = serde_json::from_str(&out).unwrap();
    let bus = &report["buses"][0];
    assert_eq!(bus["bus"], "embedded", "{report}");
    assert_eq!(bus["sync"]["records"], 20);
    assert!(bus["sync"]["per_sec"].as_f64().unwrap() > 0.0, "{report}");
    assert!(bus["baseline"]["per_sec"].as_f64().unwrap() > 0.0, "{report}");
    assert_eq!(bus["sync_lag"]["records"], 20);
    assert!(bus["sync_lag"]["p99_ms"].as_f64().unwrap() >= bus["sync_lag"]["p50_ms"].as_f64().unwrap());
    assert_eq!(bus["dead_letters"], 0, "{report}");
    assert_eq!(bus["verdicts"].as_array().unwrap().len(), 2, "{report}");

    let help = ok(dir.path(), &["bench", "pipelines", "--help"]);
    for option in ["--ctrs", "--rate", "--seconds", "--bus", "--json"] {
        assert!(help.contains(option), "{help}");
    }
}
