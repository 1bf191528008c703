//! The pipeline functions against the golden payloads (`tests/data/`): HandleContactEvents'
//! decisions and requests, PostCallAnalysisTrigger's keys, signals, chunks and retries,
//! the Contact Lens consumer and processor's transcript and category requests, and
//! ContactDataSync's checks and transcripts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use voxbridge_functions::contact_data_sync::{self, Operation};
use voxbridge_functions::contact_events::{self, ApiAnswer, Decision, HandleContactEvents, TelephonyApi};
use voxbridge_functions::contact_lens::{self, ContactLensConsumer, ContactLensProcessor};
use voxbridge_functions::post_call::{self, ObjectReader, PostCallAnalysisTrigger, Trigger};
use voxbridge_functions::telephony::HttpMethod;
use voxbridge_functions::Function;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A Telephony API that records requests and answers with the queued statuses (then 200).
#[derive(Default)]
struct FakeApi {
    seen: Mutex<Vec<(HttpMethod, String, Value, bool)>>,
    statuses: Mutex<Vec<u16>>,
}

impl FakeApi {
    fn answering(statuses: &[u16]) -> Arc<FakeApi> {
        Arc::new(FakeApi {
            seen: Mutex::default(),
            statuses: Mutex::new(statuses.iter().rev().copied().collect()),
        })
    }

    fn seen(&self) -> Vec<(HttpMethod, String, Value, bool)> {
        self.seen.lock().unwrap().clone()
    }
}

#[async_trait]
impl TelephonyApi for FakeApi {
    async fn send(
        &self,
        method: HttpMethod,
        path: &str,
        body: &Value,
        provider_header: bool,
    ) -> Result<ApiAnswer, voxbridge_functions::FunctionError> {
        self.seen.lock().unwrap().push((method, path.to_string(), body.clone(), provider_header));
        let status = self.statuses.lock().unwrap().pop().unwrap_or(200);
        Ok(ApiAnswer { status, body: json!({"status": "ok"}) })
    }
}

#[derive(Default)]
struct FakeObjects(HashMap<String, Vec<u8>>);

#[async_trait]
impl ObjectReader for FakeObjects {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self.0.get(key).cloned())
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        let mut keys: Vec<String> =
            self.0.keys().filter(|k| k.starts_with(&format!("{prefix}/"))).cloned().collect();
        keys.sort();
        Ok(keys)
    }
}

// ---- HandleContactEventsFunction ----

#[test]
fn contact_event_fixtures_decide_like_the_reference() {
    assert_eq!(
        contact_events::decide(&fixture("scv_eventbridge_contact_event_disconnected_min.json")),
        Decision::Call { method: "cancelOmniFlowExecution", contact_id: None }
    );
    assert_eq!(
        contact_events::decide(&fixture("scv_eventbridge_contact_event_routing_expired_min.json")),
        Decision::Call { method: "rerouteFlowExecution", contact_id: None }
    );
}

#[test]
fn contact_events_that_need_nothing() {
    let mut answered = fixture("scv_eventbridge_contact_event_disconnected_min.json");
    answered["detail"]["agentInfo"] = json!({"agentArn": "arn:agent"});
    assert!(matches!(contact_events::decide(&answered), Decision::Ignore(_)));
    let mut outbound = fixture("scv_eventbridge_contact_event_disconnected_min.json");
    outbound["detail"]["initiationMethod"] = json!("OUTBOUND");
    assert!(matches!(contact_events::decide(&outbound), Decision::Ignore(_)));
    let mut active = fixture("scv_eventbridge_contact_event_routing_expired_min.json");
    active["detail"]["routingCriteria"]["steps"][0]["status"] = json!("ACTIVE");
    assert!(matches!(contact_events::decide(&active), Decision::Ignore(_)));
    let mut other_change = fixture("scv_eventbridge_contact_event_routing_expired_min.json");
    other_change["detail"]["updatedProperties"] = json!(["Attributes"]);
    assert!(matches!(contact_events::decide(&other_change), Decision::Ignore(_)));
    other_change["detail"]["updatedProperties"] = json!(["RoutingCriteria.Step.Status"]);
    assert!(matches!(contact_events::decide(&other_change), Decision::Call { .. }));
    for junk in [json!(null), json!([]), json!({"detail": 5}), json!({"detail": {"eventType": "QUEUED"}})] {
        assert!(matches!(contact_events::decide(&junk), Decision::Ignore(_)), "{junk}");
    }
}

#[tokio::test]
async fn handle_contact_events_clears_routing_and_reroutes() {
    let api = FakeApi::answering(&[]);
    let f = HandleContactEvents::new(api.clone(), "DemoCallCenter");
    let mut disconnected = fixture("scv_eventbridge_contact_event_disconnected_min.json");
    disconnected["detail"]["contactId"] = json!("c-1");
    let answer = f.invoke(disconnected).await.unwrap();
    assert_eq!(answer["methodName"], "cancelOmniFlowExecution");
    let mut expired = fixture("scv_eventbridge_contact_event_routing_expired_min.json");
    expired["detail"]["contactId"] = json!("c 2");
    f.invoke(expired).await.unwrap();
    let seen = api.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[0].0, seen[0].1.as_str(), &seen[0].2, seen[0].3),
        (HttpMethod::Patch, "/voiceCalls/c-1/clearRouting", &Value::Null, false)
    );
    assert_eq!(seen[1].1, "/voiceCalls/c%202/reroute");
    // The fixture itself names no contact: the function fails as the reference's API call does.
    let err = f.invoke(fixture("scv_eventbridge_contact_event_disconnected_min.json")).await.unwrap_err();
    assert!(err.to_string().contains("contactId"), "{err}");
    // An API error fails the invocation.
    let failing = HandleContactEvents::new(FakeApi::answering(&[404]), "DemoCallCenter");
    let mut e = fixture("scv_eventbridge_contact_event_disconnected_min.json");
    e["detail"]["contactId"] = json!("c-3");
    assert!(failing.invoke(e).await.unwrap_err().to_string().contains("404"));
}

// ---- PostCallAnalysisTriggerFunction ----

#[test]
fn object_created_keys() {
    let event = fixture("scv_eventbridge_s3_object_created_postcall.json");
    assert_eq!(
        post_call::trigger(&event),
        Trigger::Analysis(
            "Analysis/Voice/2022/03/30/4aff0437-fda0-4f80-95a9-08b9e5924997_analysis_2022-03-30T23:55:23Z.json".into()
        )
    );
    let with_key = |k: &str| json!({"detail": {"object": {"key": k}}});
    for ignored in [
        "Analysis/Voice/Redacted/2022/03/30/4aff0437-fda0-4f80-95a9-08b9e5924997_analysis_redacted.json",
        "Analysis/Voice/2022/03/30/short.json",
        "ctr/4aff0437-fda0-4f80-95a9-08b9e5924997.json",
        "Analysis/Voice/22/03/30/4aff0437-fda0-4f80-95a9-08b9e5924997_analysis.json",
    ] {
        assert!(matches!(post_call::trigger(&with_key(ignored)), Trigger::Ignore(_)), "{ignored}");
    }
    // URL-encoded keys are decoded, `+` being a space.
    assert_eq!(
        post_call::trigger(&with_key("Analysis/Voice/2022/03/30/4aff0437-fda0-4f80-95a9-08b9e5924997_analysis_2022-03-30T23%3A55%3A23Z.json")),
        Trigger::Analysis("Analysis/Voice/2022/03/30/4aff0437-fda0-4f80-95a9-08b9e5924997_analysis_2022-03-30T23:55:23Z.json".into())
    );
    assert_eq!(post_call::url_decode("a+b%2Fc%zz%"), "a b/c%zz%");
    assert!(matches!(post_call::trigger(&json!({})), Trigger::Ignore(_)));
}

#[test]
fn post_call_signals_of_the_golden_analysis() {
    let analysis = fixture("scv_contactlens_postcall_analysis_output.json");
    assert_eq!(post_call::contact_id(&analysis), Some("7c77422d-f9ba-4111-ad48-b2f5dadf854a"));
    let (connected, ended) = (1_700_000_000_000, 1_700_000_090_000);
    let signals = post_call::signals(&analysis, connected, ended).unwrap();
    let turns = analysis["Transcript"].as_array().unwrap();
    assert_eq!(signals.len(), 2 + turns.len());
    // The overall scores (AGENT 0, CUSTOMER 0.8) span the call, scaled to the API's range.
    let overall: Vec<&Value> = signals.iter().filter(|s| s["endTime"] == ended).collect();
    assert_eq!(overall.len(), 2);
    assert!(overall.iter().any(|s| s["participant"] == "CUSTOMER" && s["value"] == "160"));
    assert!(overall.iter().any(|s| s["participant"] == "AGENT" && s["value"] == "0"));
    // Every turn: its own offsets from the agent's connection, its label's value.
    for turn in turns {
        let start = connected + turn["BeginOffsetMillis"].as_i64().unwrap();
        let s = signals
            .iter()
            .find(|s| {
                s["startTime"] == start
                    && s["endTime"] == connected + turn["EndOffsetMillis"].as_i64().unwrap()
            })
            .unwrap_or_else(|| panic!("no signal for {turn}"));
        let expected = match turn["Sentiment"].as_str().unwrap() {
            "POSITIVE" => "1000",
            "NEGATIVE" => "-1000",
            _ => "0",
        };
        assert_eq!(s["value"], expected);
        assert_eq!(s["participant"], turn["ParticipantId"]);
        assert_eq!(s["type"], "IntelligenceSignal__Sentiment");
    }
    let starts: Vec<i64> = signals.iter().map(|s| s["startTime"].as_i64().unwrap()).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "sorted by start time");
    // An unknown label fails, as in the reference.
    let mut bad = analysis.clone();
    bad["Transcript"][0]["Sentiment"] = json!("ANGRY");
    assert!(post_call::signals(&bad, connected, ended).is_err());
}

#[test]
fn post_call_chunks_of_25() {
    let turns: Vec<Value> = (0..60)
        .map(|i| json!({"Id": format!("t{i}"), "ParticipantId": "CUSTOMER", "Sentiment": "NEUTRAL", "BeginOffsetMillis": i * 10, "EndOffsetMillis": i * 10 + 5}))
        .collect();
    let analysis = json!({"Transcript": turns, "ConversationCharacteristics": {"Sentiment": {"OverallSentiment": {"AGENT": 1, "CUSTOMER": -5}}}});
    let signals = post_call::signals(&analysis, 0, 1000).unwrap();
    let bodies = post_call::request_bodies(&signals);
    let sizes: Vec<usize> = bodies.iter().map(|b| b["events"].as_array().unwrap().len()).collect();
    assert_eq!(sizes, [25, 25, 12]);
    assert!(bodies.iter().all(|b| b["service"] == "AmazonConnectContactLens"));
}

fn post_call_objects() -> (Arc<FakeObjects>, Value) {
    let analysis = fixture("scv_contactlens_postcall_analysis_output.json");
    let contact = "7c77422d-f9ba-4111-ad48-b2f5dadf854a";
    let key = format!("Analysis/Voice/2022/06/22/{contact}_analysis_2022-06-22T17:00:00Z.json");
    let ctr = json!({"ContactId": contact, "InitiationTimestamp": "2022-06-22T16:55:00Z", "Agent": {"ConnectedToAgentTimestamp": "2022-06-22T16:55:10Z"}, "DisconnectTimestamp": "2022-06-22T16:57:00Z"});
    let mut map = HashMap::new();
    map.insert(key.clone(), analysis.to_string().into_bytes());
    map.insert(format!("ctr/{contact}.json"), ctr.to_string().into_bytes());
    (
        Arc::new(FakeObjects(map)),
        json!({"detail-type": "Object Created", "source": "aws.s3", "detail": {"object": {"key": key}}}),
    )
}

#[tokio::test]
async fn post_call_function_retries_429_and_5xx() {
    let (objects, event) = post_call_objects();
    let api = FakeApi::answering(&[429, 503, 202]);
    let f =
        PostCallAnalysisTrigger::new(api.clone(), objects.clone()).with_retry_step(Duration::from_millis(1));
    let answer = f.invoke(event.clone()).await.unwrap();
    assert_eq!(answer["signals"], 17);
    let seen = api.seen();
    assert_eq!(seen.len(), 3, "two retries, then accepted");
    assert_eq!(seen[0].1, "/voiceCalls/7c77422d-f9ba-4111-ad48-b2f5dadf854a/postConversationEvents");
    assert_eq!(seen[0].2["events"][0]["startTime"], 1_655_916_910_000i64, "the agent's connection");
    // Four failures in a row exhaust the three retries: the invocation fails.
    let api = FakeApi::answering(&[500, 500, 500, 500]);
    let f = PostCallAnalysisTrigger::new(api.clone(), objects).with_retry_step(Duration::from_millis(1));
    assert!(f.invoke(event).await.is_err());
    assert_eq!(api.seen().len(), 4);
    // A 400 is not retried; a redacted copy is not even read.
    let (objects, event) = post_call_objects();
    let api = FakeApi::answering(&[400]);
    let f = PostCallAnalysisTrigger::new(api.clone(), objects).with_retry_step(Duration::from_millis(1));
    assert!(f.invoke(event).await.is_err());
    assert_eq!(api.seen().len(), 1);
    let redacted = json!({"detail": {"object": {"key": "Analysis/Voice/Redacted/2022/06/22/x.json"}}});
    assert_eq!(f.invoke(redacted).await.unwrap()["result"], "Ignored");
}

#[tokio::test]
async fn post_call_waits_for_the_contact_record() {
    let (objects, event) = post_call_objects();
    let mut map = objects.0.clone();
    map.retain(|k, _| !k.starts_with("ctr/"));
    let f = PostCallAnalysisTrigger::new(FakeApi::answering(&[]), Arc::new(FakeObjects(map)));
    assert!(f.invoke(event).await.unwrap_err().to_string().contains("no contact record"));
}

// ---- ContactLensConsumerFunction / ContactLensProcessorFunction ----

fn b64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn kinesis(records: &[(Value, f64)]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(data, at)| json!({"kinesis": {"data": b64(data.to_string().as_bytes()), "approximateArrivalTimestamp": at}, "eventSource": "aws:kinesis"}))
        .collect();
    json!({"Records": records})
}

#[test]
fn base64_round_trip() {
    for s in ["", "a", "ab", "abc", "abcd", "{\"x\":\"é\"}"] {
        assert_eq!(contact_lens::base64_decode(&b64(s.as_bytes())).unwrap(), s.as_bytes());
    }
    assert_eq!(contact_lens::base64_decode("!!"), None);
}

#[test]
fn utterance_becomes_a_bulk_message() {
    let event = kinesis(&[(fixture("scv_contactlens_realtime_segment_utterance.json"), 1_700_000_000.5)]);
    let plan = contact_lens::plan(&contact_lens::records(&event), 42);
    assert_eq!(plan.utterances, 1);
    assert!(plan.category_events.is_empty());
    assert_eq!(
        plan.bulk_messages,
        [json!({"entries": [{"vendorCallKey": "d5187cb8-f83f-471d-b724-bfb242b34b59", "messages": [{
            "participantId": "AGENT",
            "senderType": "VIRTUAL_AGENT",
            "messageId": "5a859b25-e047-454f-b47f-c78ee2a33f08",
            "startTime": 1_700_000_000_500i64 - 625,
            "endTime": 1_700_000_000_500i64,
            "content": "Testing.",
        }]}]})]
    );
}

#[test]
fn categories_become_realtime_events() {
    let event = kinesis(&[(fixture("scv_contactlens_realtime_segment_categories.json"), 1.0)]);
    let plan = contact_lens::plan(&contact_lens::records(&event), 42);
    assert!(plan.bulk_messages.is_empty());
    assert_eq!(
        plan.category_events,
        [(
            "d5187cb8-f83f-471d-b724-bfb242b34b59".to_string(),
            json!({"service": "AmazonConnectContactLens", "persist": false, "events": [{"type": "IntelligenceSignal__Category", "value": "keyWord", "startTime": 42, "details": {"BeginOffsetMillis": 5120, "EndOffsetMillis": 15495}}]})
        )]
    );
}

#[test]
fn messages_are_grouped_per_contact_within_the_api_limits() {
    let utterance = |contact: &str, i: usize| json!({"EventType": "SEGMENTS", "ContactId": contact, "Segments": [{"Utterance": {"Id": format!("{contact}-{i}"), "ParticipantRole": "CUSTOMER", "PartialContent": "hi", "BeginOffsetMillis": 0, "EndOffsetMillis": 10}}]});
    let mut records: Vec<(Value, f64)> = (0..12).map(|i| (utterance("a", i), 1.0)).collect();
    records.extend((0..3).map(|i| (utterance("b", i), 1.0)));
    records.push((json!({"EventType": "STARTED", "ContactId": "a"}), 1.0));
    records.push((json!({"EventType": "FAILED", "ContactId": "a"}), 1.0));
    records.extend((0..15).map(|i| (utterance("c", i), 1.0)));
    let plan = contact_lens::plan(&contact_lens::records(&kinesis(&records)), 0);
    assert_eq!(plan.utterances, 30);
    let shape: Vec<Vec<(String, usize)>> = plan
        .bulk_messages
        .iter()
        .map(|b| {
            b["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["vendorCallKey"].as_str().unwrap().to_string(),
                        e["messages"].as_array().unwrap().len(),
                    )
                })
                .collect()
        })
        .collect();
    let e = |c: &str, n| (c.to_string(), n);
    assert_eq!(
        shape,
        [vec![e("a", 5), e("a", 5), e("a", 2), e("b", 3), e("c", 5)], vec![e("c", 5), e("c", 5)]]
    );
    assert_eq!(plan.bulk_messages[0]["entries"][3]["messages"][0]["senderType"], "END_USER");
}

#[tokio::test]
async fn consumer_runs_the_processor_and_drops_oversized_batches() {
    let api = FakeApi::answering(&[]);
    let processor =
        Arc::new(ContactLensProcessor::new(api.clone()).with_retry_step(Duration::from_millis(1)));
    let consumer = ContactLensConsumer::new(processor);
    let utterance = fixture("scv_contactlens_realtime_segment_utterance.json");
    let categories = fixture("scv_contactlens_realtime_segment_categories.json");
    let answer = consumer.invoke(kinesis(&[(utterance.clone(), 1.0), (categories, 2.0)])).await.unwrap();
    assert_eq!(answer, json!({"data": {"result": "Success"}}));
    let paths: Vec<String> = api.seen().into_iter().map(|s| s.1).collect();
    assert_eq!(
        paths,
        [
            "/voiceCalls/messages",
            "/voiceCalls/d5187cb8-f83f-471d-b724-bfb242b34b59/realtimeConversationEvents"
        ]
    );
    let six: Vec<(Value, f64)> = (0..6).map(|_| (utterance.clone(), 1.0)).collect();
    consumer.invoke(kinesis(&six)).await.unwrap();
    assert_eq!(api.seen().len(), 2, "a batch of more than 5 records is dropped");
    // Errors are logged, never thrown.
    let failing =
        ContactLensProcessor::new(FakeApi::answering(&[400])).with_retry_step(Duration::from_millis(1));
    let answer = failing.invoke(kinesis(&[(utterance, 1.0)])).await.unwrap();
    assert_eq!(answer["failedRequests"], 1);
    assert_eq!(failing.invoke(json!("junk")).await.unwrap()["utterances"], 0);
}

// ---- ContactDataSync ----

#[test]
fn upload_request_fixture_parses() {
    let op = contact_data_sync::parse(&fixture("scv_contactDataSync_uploadTranscript_request.json")).unwrap();
    assert_eq!(
        op,
        Operation::UploadTranscript(vec![
            ("8c6258f0-66fa-4137-a61f-68311bb6d300".into(), vec!["0LQSB000001m5RR".into()]),
            ("0e900fcd-6b3b-4445-8769-b32429eb3537".into(), vec!["0LQSB000001m1RQ".into()]),
        ])
    );
    let many: Vec<Value> = (0..101).map(|i| json!({"contactId": format!("c{i}")})).collect();
    assert!(contact_data_sync::parse(&json!({"operation": "uploadTranscript", "payload": many}))
        .unwrap_err()
        .contains("100"));
    assert!(contact_data_sync::parse(&json!({"operation": "uploadTranscript", "payload": [{}]})).is_err());
    assert!(contact_data_sync::parse(&json!({"operation": "nope"})).is_err());
    assert!(contact_data_sync::parse(&json!({"operation": "fetchUploadIdsStatus", "uploadIds": []})).is_err());
    assert_eq!(
        contact_data_sync::parse(&json!({"operation": "fetchUploadIdsStatus", "uploadIds": ["u1", " u2 "]}))
            .unwrap(),
        Operation::FetchUploadIdsStatus(vec!["u1".into(), "u2".into()])
    );
    assert!(contact_data_sync::parse(&json!(null)).is_err());
}

#[test]
fn transcript_entries_keep_their_own_timestamps() {
    let analysis = fixture("scv_contactlens_postcall_analysis_output.json");
    let base = 1_700_000_000_000;
    let related = vec!["0LQSB000001m5RR".to_string()];
    let ndjson = contact_data_sync::transcript("c-1", &related, &analysis, base);
    let lines: Vec<Value> = ndjson.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let turns = analysis["Transcript"].as_array().unwrap();
    assert_eq!(lines.len(), 1 + turns.len());
    assert_eq!(lines[0], json!({"type": "conversation", "payload": {"conversationId": "c-1"}}));
    for (line, turn) in lines[1..].iter().zip(turns) {
        let p = &line["payload"];
        assert_eq!(line["type"], "conversationEntry");
        assert_eq!(p["id"], turn["Id"]);
        assert_eq!(p["messageText"], turn["Content"]);
        assert_eq!(p["clientSentTimestamp"], base + turn["BeginOffsetMillis"].as_i64().unwrap());
        assert_eq!(p["clientDuration"], 1);
        assert_eq!(p["relatedRecords"], json!(related));
        let customer = turn["ParticipantId"] == "CUSTOMER";
        assert_eq!(p["sender"]["role"], if customer { "END_USER" } else { "Chatbot" });
        assert_eq!(p["sender"]["subject"], if customer { "c-1END_USER" } else { "c-1VIRTUAL_AGENT" });
    }
    assert_eq!(
        contact_data_sync::analysis_prefix("2024-04-26T16:31:23Z").as_deref(),
        Some("Analysis/Voice/2024/04/26")
    );
    assert_eq!(contact_data_sync::analysis_prefix("yesterday"), None);
}
