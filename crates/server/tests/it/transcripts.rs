//! The transcript rules: the conversation window, hold and recording pause, duplicate
//! message ids, privacy rewrites, bulk limits and per-call results, live delivery.

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::harness::{Backend, TestServer};

const START: &str = "2024-03-01T10:00:00Z";
const T0: i64 = 1_709_287_200_000; // START in ms

fn msg(id: &str, at: i64, sender: &str, participant: &str) -> Value {
    json!({"participantId": participant, "messageId": id, "startTime": at, "endTime": at + 500, "content": format!("utterance {id}"), "senderType": sender})
}

async fn post(s: &TestServer, key: &str, m: Value) -> (u16, Value) {
    s.call(Method::POST, &format!("/telephony/v1/voiceCalls/{key}/messages"), Some(m)).await
}

async fn set_state(s: &TestServer, call: &str, body: Value) {
    let (status, resp) =
        s.call(Method::PATCH, &format!("/admin/v1/voiceCalls/{call}/state"), Some(body)).await;
    assert_eq!(status, 200, "{resp}");
}

both_backends!(window_hold_pause_and_duplicates, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let id = s.create_call("tr-1", START).await;
    assert_eq!(
        post(&s, "tr-1", msg("m1", T0 + 1000, "END_USER", "+14155550123")).await,
        (200, json!({"result": "Accepted"}))
    );
    // Same messageId again: accepted, stored once.
    assert_eq!(post(&s, "tr-1", msg("m1", T0 + 1000, "END_USER", "x")).await.0, 200);
    // Before the conversation started.
    let (status, body) = post(&s, "tr-1", msg("early", T0 - 60_000, "END_USER", "x")).await;
    assert_eq!(status, 409);
    assert!(body["message"].as_str().unwrap().contains("before the conversation started"), "{body}");
    // On hold: refused, and so during a recording pause.
    set_state(&s, &id, json!({"onHold": true})).await;
    let (status, body) = post(&s, "tr-1", msg("held", T0 + 2000, "HUMAN_AGENT", "005VX0000000001")).await;
    assert_eq!((status, body["message"].as_str()), (409, Some("not stored: the call is on hold")));
    set_state(&s, &id, json!({"onHold": false, "recordingPaused": true})).await;
    let (status, body) = post(&s, "tr-1", msg("paused", T0 + 3000, "SUPERVISOR", "boss")).await;
    assert_eq!((status, body["message"].as_str()), (409, Some("not stored: recording is paused")));
    set_state(&s, &id, json!({"recordingPaused": false})).await;
    assert_eq!(post(&s, "tr-1", msg("m2", T0 + 4000, "VIRTUAL_AGENT", "bot-7")).await.0, 200);
    assert_eq!(post(&s, "tr-1", msg("m3", T0 + 5000, "EXTERNAL_USER", "ext-9")).await.0, 200);
    // A HUMAN_AGENT must be a user id.
    let (status, body) = post(&s, "tr-1", msg("m4", T0 + 6000, "HUMAN_AGENT", "alice")).await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("INVALID_FIELD_VALUE")));
    // The call ends at T0+10s; later utterances are refused.
    let (status, _) = s
        .call(
            Method::PATCH,
            "/telephony/v1/voiceCalls/tr-1",
            Some(json!({"endTime": "2024-03-01T10:00:10Z"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = post(&s, "tr-1", msg("late", T0 + 60_000, "END_USER", "x")).await;
    assert!(
        status == 409 && body["message"].as_str().unwrap().contains("after the conversation ended"),
        "{body}"
    );

    let view = s.inspect(&id).await;
    let t: Vec<(String, String)> = view["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (e["messageId"].as_str().unwrap().to_string(), e["participantId"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(
        t,
        vec![
            ("m1".to_string(), "tr-1END_USER".to_string()),
            ("m2".to_string(), "tr-1VIRTUAL_AGENT".to_string()),
            ("m3".to_string(), "ext-9".to_string()),
        ]
    );
    assert_eq!(view["conversation"]["Status"], "Closed");
});

both_backends!(bulk_limits_and_multi_status, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let a = s.create_call("bulk-a", START).await;
    s.create_call("bulk-b", START).await;
    let six: Vec<Value> = (0..6).map(|i| msg(&format!("x{i}"), T0 + 1000, "END_USER", "x")).collect();
    let (status, body) = s
        .call(
            Method::POST,
            "/telephony/v1/voiceCalls/messages",
            Some(json!({"entries": [{"vendorCallKey": "bulk-a", "messages": six}]})),
        )
        .await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("BATCH_TOO_LARGE")), "{body}");
    let entries: Vec<Value> = (0..6)
        .map(|i| json!({"vendorCallKey": format!("k{i}"), "messages": [msg("y", T0, "END_USER", "x")]}))
        .collect();
    let (status, body) =
        s.call(Method::POST, "/telephony/v1/voiceCalls/messages", Some(json!({"entries": entries}))).await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("BATCH_TOO_LARGE")));
    assert!(body["message"].as_str().unwrap().contains("at most 5"));

    // One call on hold does not stop the other.
    set_state(&s, &a, json!({"onHold": true})).await;
    let (status, body) = s.call(Method::POST, "/telephony/v1/voiceCalls/messages", Some(json!({"entries": [
        {"vendorCallKey": "bulk-a", "messages": [msg("a1", T0 + 1000, "END_USER", "x")]},
        {"vendorCallKey": "bulk-b", "messages": [msg("b1", T0 + 1000, "END_USER", "x"), msg("b2", T0 + 2000, "HUMAN_AGENT", "005VX0000000001")]},
        {"vendorCallKey": "nope", "messages": [msg("n1", T0 + 1000, "END_USER", "x")]}
    ]}))).await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["result"], "Multi-Status: A few messages were not processed");
    let e = body["errorResponse"]["errorResponseEntries"].as_array().unwrap();
    assert_eq!(e.len(), 3);
    assert_eq!((e[0]["vendorCallKey"].as_str(), e[0]["status"].as_u64()), (Some("bulk-a"), Some(409)));
    assert_eq!((e[1]["vendorCallKey"].as_str(), e[1]["status"].as_u64()), (Some("bulk-b"), Some(202)));
    assert_eq!(e[1]["message"], "Successfully Processed Transcripts with Id(s) [b1, b2]");
    assert_eq!((e[2]["vendorCallKey"].as_str(), e[2]["status"].as_u64()), (Some("nope"), Some(400)));
    assert!(e[2]["message"]
        .as_str()
        .unwrap()
        .starts_with("Error Processing Transcript with Id(s) [n1]. Error:"));

    set_state(&s, &a, json!({"onHold": false})).await;
    let (status, body) = s
        .call(
            Method::POST,
            "/telephony/v1/voiceCalls/messages",
            Some(json!({"entries": [
        {"vendorCallKey": "bulk-a", "messages": [msg("a1", T0 + 1000, "END_USER", "x")]}]})),
        )
        .await;
    assert_eq!((status, body), (200, json!({"result": "Accepted"})));
});

both_backends!(limits_answer_429, |backend: Backend| async move {
    let settings = voxbridge_server::Settings {
        limits: voxbridge_server::Limits {
            max_concurrent_calls: 2,
            calls_per_second: 1000,
            utterances_per_second: 1000,
        },
        ..Default::default()
    };
    let s = TestServer::start_with(backend, settings).await;
    s.create_call("l-1", START).await;
    s.create_call("l-2", START).await;
    let (status, body) = s
        .call(
            Method::POST,
            "/telephony/v1/voiceCalls",
            Some(json!({
        "callCenterApiName": "DemoCallCenter", "vendorCallKey": "l-3", "initiationMethod": "Inbound",
        "startTime": START, "participants": [{"participantKey": "p", "type": "END_USER"}]})),
        )
        .await;
    assert_eq!(status, 429);
    assert!(body["message"].as_str().unwrap().starts_with("SCV_LIMITS_ERROR"), "{body}");
    // Ending a call frees a slot.
    let (status, _) =
        s.call(Method::PATCH, "/telephony/v1/voiceCalls/l-1", Some(json!({"endTime": START}))).await;
    assert_eq!(status, 200);
    s.create_call("l-3", START).await;
});

both_backends!(live_events_reach_subscribers, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let id = s.create_call("live-1", START).await;
    let token = s.token("DemoCallCenter");
    let mut resp = s
        .client
        .get(format!("{}/live/v1/conversations/live-1?access_token={token}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut seen = String::new();
    // Read until the ready event arrived, then cause events.
    while !seen.contains("event: ready") {
        seen.push_str(&String::from_utf8_lossy(&resp.chunk().await.unwrap().unwrap()));
    }
    assert_eq!(post(&s, "live-1", msg("live-m1", T0 + 1000, "END_USER", "x")).await.0, 200);
    set_state(&s, &id, json!({"onHold": true})).await;
    while !seen.contains("event: hold") {
        seen.push_str(&String::from_utf8_lossy(&resp.chunk().await.unwrap().unwrap()));
    }
    assert!(seen.contains("event: transcript"), "{seen}");
    assert!(seen.contains("live-1END_USER"), "{seen}");
});

both_backends!(unstorable_input_is_a_clear_400, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    s.create_call("nul-1", START).await;
    let (status, body) = post(&s, "nul-1", msg("m\u{0}1", T0 + 1000, "END_USER", "x")).await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("MALFORMED_REQUEST")), "{body}");
    let long = "k".repeat(300);
    let (status, body) = post(&s, &long, msg("m1", T0 + 1000, "END_USER", "x")).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = s
        .call(Method::PATCH, &format!("/telephony/v1/voiceCalls/{long}"), Some(json!({"isActiveCall": true})))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) =
        s.call(Method::PATCH, "/telephony/v1/voiceCalls/a%00b", Some(json!({"isActiveCall": true}))).await;
    assert_eq!(status, 400);
});
