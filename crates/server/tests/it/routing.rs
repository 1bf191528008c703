//! Execute Omni-Channel flow, reroute and clear routing: the order of precedence, routing
//! map external ids, and PendingServiceRouting records.

use reqwest::Method;
use serde_json::json;

use crate::both_backends;
use crate::harness::{Backend, TestServer};

both_backends!(omni_flow_precedence, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let id = s.create_call("r-1", "2024-01-01T00:00:00Z").await;
    let support = s.demo.queues.iter().find(|q| q.developer_name == "Support").unwrap();
    let billing = s.demo.queues.iter().find(|q| q.developer_name == "Billing").unwrap();
    let path = format!("/telephony/v1/voiceCalls/{id}/omniFlow");
    // 1. The phone channel's flow wins over the request's.
    let (status, body) = s.call(Method::PATCH, &path, Some(json!({"dialedNumber": "+15550100100", "flowDevName": "nope", "flowInputParameters": {"Department": "Billing"}}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"agent": null, "queue": billing.external_id}));
    let psr = &s.inspect(&id).await["pendingServiceRouting"];
    assert_eq!(psr.as_array().unwrap().len(), 1);
    assert_eq!(psr[0]["QueueId"], billing.id.as_str());
    // 2. Unknown number: the request's flow, then its fallback queue.
    let (_, body) = s
        .call(
            Method::PATCH,
            &path,
            Some(json!({"dialedNumber": "+19990000000", "flowDevName": "nope", "fallbackQueue": "Support"})),
        )
        .await;
    assert_eq!(body, json!({"agent": null, "queue": support.external_id}));
    assert_eq!(
        s.inspect(&id).await["pendingServiceRouting"].as_array().unwrap().len(),
        1,
        "replaced, not added"
    );
    // Routing to an agent answers with the agent's external id.
    let agent = &s.demo.agents[0];
    let agent_flow = s
        .demo
        .routing_definitions
        .iter()
        .find(|r| r.rule["type"] == "agent")
        .map(|r| r.developer_name.clone());
    if let Some(flow) = agent_flow {
        let (_, body) = s
            .call(Method::PATCH, &path, Some(json!({"dialedNumber": "+19990000000", "flowDevName": flow})))
            .await;
        assert!(body["agent"].is_string(), "{body}");
        let _ = agent;
    }
    // Nothing works: errors.
    let (status, body) = s
        .call(
            Method::PATCH,
            &path,
            Some(json!({"dialedNumber": "+19990000000", "fallbackQueue": "00G111222333444"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["errors"].as_array().unwrap().len() >= 2, "{body}");
    let (status, body) = s.call(Method::PATCH, &path, Some(json!({"flowDevName": "x"}))).await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("REQUIRED_FIELD_MISSING")));

    // clearRouting deletes the PSR; an ended call has none either.
    let (status, body) =
        s.call(Method::PATCH, &format!("/telephony/v1/voiceCalls/{id}/clearRouting"), None).await;
    assert_eq!((status, body), (200, json!({"status": "Success"})));
    assert!(s.inspect(&id).await["pendingServiceRouting"].as_array().unwrap().is_empty());
});

both_backends!(reroute_needs_unified_routing, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let id = s.create_call("rr-1", "2024-01-01T00:00:00Z").await;
    let (status, body) = s.call(Method::POST, &format!("/telephony/v1/voiceCalls/{id}/reroute"), None).await;
    assert_eq!((status, body), (200, json!({"status": "Success"})));
    assert_eq!(s.inspect(&id).await["pendingServiceRouting"].as_array().unwrap().len(), 1);
    let (status, body) =
        s.call_as("LegacyCallCenter", Method::POST, "/telephony/v1/voiceCalls/whatever/reroute", None).await;
    assert_eq!((status, body["errorCode"].as_str()), (409, Some("INVALID_STATE")));
});

both_backends!(transfers_link_calls, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let first = s.create_call("t-1", "2024-01-01T00:00:00Z").await;
    let support = s.demo.queues.iter().find(|q| q.developer_name == "Support").unwrap();
    let (status, body) = s
        .call(
            Method::POST,
            "/telephony/v1/voiceCalls",
            Some(json!({
        "callCenterApiName": "DemoCallCenter", "vendorCallKey": "t-2", "initiationMethod": "Transfer",
        "parentVoiceCallId": "t-1", "queue": support.external_id, "startTime": "2024-01-01T00:01:00Z",
        "participants": [{"participantKey": "p", "type": "END_USER"}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let second = body["voiceCallId"].as_str().unwrap().to_string();
    let a = s.inspect(&first).await;
    let b = s.inspect(&second).await;
    assert_eq!(a["voiceCall"]["NextCallId"], second.as_str());
    assert_eq!(b["voiceCall"]["PreviousCallId"], first.as_str());
    assert_eq!(b["voiceCall"]["OwnerId"], support.id.as_str());
    assert_eq!(b["voiceCall"]["CallType"], "Transfer");
    assert_eq!(a["conversation"]["Id"], b["conversation"]["Id"]);
    // Ending the first call keeps the conversation open: it continues in the transfer.
    s.call(
        Method::PATCH,
        &format!("/telephony/v1/voiceCalls/{first}"),
        Some(json!({"endTime": "2024-01-01T00:01:00Z"})),
    )
    .await;
    assert_eq!(s.inspect(&first).await["conversation"]["Status"], "Open");
    // Transcripts go to the first call's key; the transfer's key is refused with a hint.
    let (status, body) = s
        .call(
            Method::POST,
            "/telephony/v1/voiceCalls/t-2/messages",
            Some(json!({
        "participantId": "x", "messageId": "m", "startTime": 1704067300000i64, "endTime": 1704067300001i64,
        "content": "hi", "senderType": "END_USER"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("use `t-1`"), "{body}");
    // Transfer without parent.
    let (status, body) = s
        .call(
            Method::POST,
            "/telephony/v1/voiceCalls",
            Some(json!({
        "callCenterApiName": "DemoCallCenter", "vendorCallKey": "t-3", "initiationMethod": "Transfer",
        "startTime": "2024-01-01T00:01:00Z", "participants": [{"participantKey": "p", "type": "END_USER"}]})),
        )
        .await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("REQUIRED_FIELD_MISSING")));
});

both_backends!(update_creates_missing_calls_and_recordings, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    // An abandoned call the API never saw: the update creates it.
    let (status, body) = s
        .call(
            Method::PATCH,
            "/telephony/v1/voiceCalls/abandoned-1",
            Some(json!({
        "startTime": "2024-01-01T00:00:00Z", "endTime": "2024-01-01T00:00:42Z", "initiationMethod": "INBOUND",
        "callAttributes": "{\"sf_realtime_transcription_status__c\": \"passed\"}"})),
        )
        .await;
    assert_eq!((status, body), (200, json!({"status": "pending"})));
    let v = s.inspect("abandoned-1").await;
    assert_eq!(v["voiceCall"]["CallDisposition"], "completed");
    assert_eq!(v["voiceCall"]["CallDurationInSeconds"], 42);
    assert_eq!(v["voiceCall"]["sf_realtime_transcription_status__c"], "passed");
    // A recording: first write creates the VoiceCallRecording, duration defaults to interaction + hold.
    let id = s.create_call("rec-1", "2024-01-01T00:00:00Z").await;
    let (status, _) = s.call(Method::PATCH, &format!("/telephony/v1/voiceCalls/{id}"), Some(json!({
        "isActiveCall": true, "recordingLocation": "s3://bucket/rec-1.wav", "agentInteractionDuration": 30, "totalHoldDuration": 12}))).await;
    assert_eq!(status, 200);
    let v = s.inspect(&id).await;
    assert_eq!(v["voiceCall"]["CallDisposition"], "in-progress");
    assert_eq!(v["recordings"][0]["DurationInSeconds"], 42);
    assert_eq!(v["voiceCall"]["CallRecordingId"], v["recordings"][0]["Id"]);
    assert_eq!(v["conversation"]["Status"], "Open");
    // Bad values: precise 400s.
    let (status, body) = s
        .call(
            Method::PATCH,
            &format!("/telephony/v1/voiceCalls/{id}"),
            Some(json!({"numberOfHolds": "many"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("numberOfHolds"), "{body}");
    let (status, body) = s
        .call(
            Method::PATCH,
            &format!("/telephony/v1/voiceCalls/{id}"),
            Some(json!({"disconnectReason": {"value": "X"}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
});
