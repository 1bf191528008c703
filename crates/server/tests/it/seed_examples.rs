//! Every request/response example of the guide's chapter 3, sent as written (the only
//! changes: the call center is the demo one, the ids are those the server generated, and
//! the calls of the bulk example are created first), in a
//! realistic order. The whole exchange is one snapshot, shared by both backends.

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::harness::{redact, TestServer};

const KEY: &str = "5324881f-1e84-4367-8930-f69a74b30ca6";

struct Exchange {
    log: Vec<Value>,
}

impl Exchange {
    async fn send(
        &mut self,
        s: &TestServer,
        name: &str,
        method: Method,
        path: &str,
        body: Option<(&str, String)>,
    ) -> Value {
        let token = s.token("DemoCallCenter");
        let (status, resp) = s.raw(method.clone(), path, Some(&token), body.clone()).await;
        let request = body.map(|(ct, b)| {
            if ct == "application/json" {
                serde_json::from_str(&b).unwrap_or(Value::String(b))
            } else {
                Value::String(b)
            }
        });
        self.log.push(json!({"example": name, "request": format!("{method} {path}"), "body": request, "status": status, "response": resp}));
        resp
    }
}

fn j(v: Value) -> Option<(&'static str, String)> {
    Some(("application/json", v.to_string()))
}

both_backends!(chapter_3_examples, |backend| async move {
    let s = TestServer::start(backend).await;
    let mut x = Exchange { log: vec![] };

    let created = x
        .send(
            &s,
            "Create a Voice Call Record",
            Method::POST,
            "/telephony/v1/voiceCalls",
            j(json!({
                "callCenterApiName": "DemoCallCenter",
                "vendorCallKey": KEY,
                "to": "+14152988103",
                "from": "+18669483147",
                "initiationMethod": "Inbound",
                "startTime": "2019-07-02T17:32:28Z",
                "callSubtype": "PSTN",
                "participants": [{"participantKey": "4081456688", "type": "END_USER"}],
                "callAttributes": "{\"MyField__c\": \"abc\"}"
            })),
        )
        .await;
    let id = created["voiceCallId"].as_str().expect("voiceCallId").to_string();

    x.send(&s, "Create a Voice Call Record (field errors)", Method::POST, "/telephony/v1/voiceCalls", j(json!({
        "callCenterApiName": "DemoCallCenter",
        "vendorCallKey": "errors-example-1",
        "to": "+14152988103",
        "from": "+18669483147",
        "initiationMethod": "Inbound",
        "startTime": "2019-07-02T17:32:28Z",
        "participants": [{"participantKey": "4081456688", "type": "END_USER"}],
        "callAttributes": "{\"MyField__c\": \"abc\", \"Department__c\": \"Marketing\", \"Text__c\": \"sample123456890\"}"
    }))).await;

    x.send(
        &s,
        "Create a Voice Call Record (XML)",
        Method::POST,
        "/telephony/v1/voiceCalls",
        Some((
            "application/xml",
            r#"<?xml version="1.0" encoding="UTF-8"?>
<voiceCall>
  <callCenterApiName>DemoCallCenter</callCenterApiName>
  <vendorCallKey>xml-example-1</vendorCallKey>
  <to>+14152988103</to>
  <from>+18669483147</from>
  <initiationMethod>Inbound</initiationMethod>
  <startTime>2019-07-02T17:32:28Z</startTime>
  <participants><participantKey>4081456688</participantKey><type>END_USER</type></participants>
  <callAttributes>{"MyField__c": "abc"}</callAttributes>
</voiceCall>"#
                .to_string(),
        )),
    )
    .await;

    for (name, participant, sender) in [
        ("Create a Transcript (VIRTUAL_AGENT)", format!("{KEY}VIRTUAL_AGENT"), "VIRTUAL_AGENT"),
        ("Create a Transcript (HUMAN_AGENT, same messageId)", "005123456789abc".to_string(), "HUMAN_AGENT"),
        (
            "Create a Transcript (EXTERNAL_USER, same messageId)",
            "a12355ce-03be-4335-a28891293sz".to_string(),
            "EXTERNAL_USER",
        ),
    ] {
        x.send(
            &s,
            name,
            Method::POST,
            &format!("/telephony/v1/voiceCalls/{KEY}/messages"),
            j(json!({
                "participantId": participant,
                "messageId": "57904eb6-5352-4c5e-adf6-5f100572cf5d116",
                "startTime": 1573503300000i64,
                "endTime": 1573503300000i64,
                "content": "Hello All",
                "senderType": sender
            })),
        )
        .await;
    }

    // The bulk example names three calls; two of them exist.
    s.create_call("b09955ce-03be-4335-a28891293zs-18895", "2019-11-11T00:00:00Z").await;
    s.create_call("b01211ce-03be-4335-a28891293sz-188978", "2019-11-11T00:00:00Z").await;
    x.send(&s, "Create Transcripts in Bulk", Method::POST, "/telephony/v1/voiceCalls/messages", j(json!({
        "entries": [
            {"vendorCallKey": "b09955ce-03be-4335-a28891293zs-18895", "messages": [
                {"startTime": 1573503300000i64, "endTime": 1573503300001i64, "participantId": "b09955ce-03be-4335-a28891293zs-18895END_USER",
                 "messageId": "b09955ce-03be4335xz-a28891293zs", "senderType": "END_USER", "content": "Hello All"},
                {"startTime": 1573503300002i64, "endTime": 1573503300003i64, "participantId": "b09955ce-03be-4335-a28891293zs-18895VIRTUAL_AGENT",
                 "messageId": "b09955ce-03be4335ej-a28891293sz", "senderType": "VIRTUAL_AGENT", "content": "Hello All"}]},
            {"vendorCallKey": "b09955ce-03be-4335-a28891293sz-188952", "messages": [
                {"startTime": 1573503300012i64, "endTime": 1573503300013i64, "participantId": "VIRTUAL_AGENT",
                 "messageId": "b2922012ne-t13081984si-t04021978re", "senderType": "b09955ce-03be-4335-a28891293sz-188952VIRTUAL_AGENT", "content": "Hello All"}]},
            {"vendorCallKey": "b01211ce-03be-4335-a28891293sz-188978", "messages": [
                {"startTime": 1573503300000i64, "endTime": 1573503300001i64, "participantId": "005123456789abc",
                 "messageId": "a2922012ne-t13081984si-t04021978re", "senderType": "HUMAN_AGENT", "content": "Hello everyone"},
                {"startTime": 1573503300002i64, "endTime": 1573503300003i64, "participantId": "a12355ce-03be-4335-a28891293sz",
                 "messageId": "b09955ce-03be4335ej-a28891293sz", "senderType": "EXTERNAL_USER", "content": "Hello"}]}
        ]
    }))).await;

    x.send(&s, "Send a Real-Time Conversation Event (categories)", Method::POST, &format!("/telephony/v1/voiceCalls/{KEY}/realtimeConversationEvents"), j(json!({
        "service": "AmazonConnectContactLens",
        "events": [
            {"type": "IntelligenceSignal__Category", "value": "OrderStatusCheckingHelp", "startTime": 1573503300},
            {"type": "IntelligenceSignal__Category", "value": "CustomerAngry", "startTime": 1573503450}
        ]
    }))).await;
    x.send(&s, "Send a Real-Time Conversation Event (sentiment, not persisted)", Method::POST, &format!("/telephony/v1/voiceCalls/{KEY}/realtimeConversationEvents"), j(json!({
        "service": "CxoneAgentAssistService",
        "persist": false,
        "events": [{"type": "IntelligenceSignal__Sentiment", "value": "400.13", "startTime": 16898867880000i64, "score": 10, "participant": "CUSTOMER"}]
    }))).await;

    // As printed in the guide (a comma is missing), then corrected.
    x.send(
        &s,
        "Execute an Omni-Channel Flow (as printed)",
        Method::PATCH,
        &format!("/telephony/v1/voiceCalls/{id}/omniFlow"),
        Some((
            "application/json",
            r#"{
  "dialedNumber": "+18445791189"
  "flowDevName": "Route_VoiceCall",
  "fallbackQueue": "00G111222333444",
  "flowInputParameters": {
    "Input1": "one",
    "Input2": "two"
  }
}"#
            .to_string(),
        )),
    )
    .await;
    x.send(
        &s,
        "Execute an Omni-Channel Flow",
        Method::PATCH,
        &format!("/telephony/v1/voiceCalls/{id}/omniFlow"),
        j(json!({
            "dialedNumber": "+18445791189",
            "flowDevName": "Route_VoiceCall",
            "fallbackQueue": "00G111222333444",
            "flowInputParameters": {"Input1": "one", "Input2": "two"}
        })),
    )
    .await;
    x.send(
        &s,
        "Execute an Omni-Channel Flow (phone channel, Billing)",
        Method::PATCH,
        &format!("/telephony/v1/voiceCalls/{id}/omniFlow"),
        j(json!({
            "dialedNumber": "+1 (555) 010-0100",
            "flowInputParameters": "{\"Department\": \"Billing\"}"
        })),
    )
    .await;
    x.send(
        &s,
        "Reroute a Voice Call",
        Method::POST,
        &format!("/telephony/v1/voiceCalls/{KEY}/reroute"),
        None,
    )
    .await;
    x.send(&s, "Clear Routing", Method::PATCH, &format!("/telephony/v1/voiceCalls/{id}/clearRouting"), None)
        .await;

    x.send(&s, "Store a Post-Call Conversation Event (call still open)", Method::POST, &format!("/telephony/v1/voiceCalls/{KEY}/postConversationEvents"), j(json!({
        "service": "AmazonConnectContactLens",
        "events": [{"type": "IntelligenceSignal__Sentiment", "value": "1000", "startTime": 1573503300, "endTime": 1573532140, "participant": "AGENT"}]
    }))).await;

    x.send(
        &s,
        "Update a Voice Call Record",
        Method::PATCH,
        &format!("/telephony/v1/voiceCalls/{id}"),
        j(json!({
            "startTime": "2020-08-26T21:21:14Z",
            "endTime": "2019-08-26T21:21:34Z",
            "enqueueTime": "2019-08-26T21:21:34Z",
            "acceptTime": "2019-08-26T21:21:24Z",
            "numberOfHolds": 20,
            "longestHoldDuration": 10,
            "callAttributes": "{ \"dateCustomField__c\": \"2019-08-28T21:21:34Z\", \"checkbox__c\": false }",
            "disconnectReason": {"value": "TELECOM_PROBLEM", "isError": true}
        })),
    )
    .await;

    x.send(&s, "Store a Post-Call Conversation Event", Method::POST, &format!("/telephony/v1/voiceCalls/{KEY}/postConversationEvents"), j(json!({
        "service": "AmazonConnectContactLens",
        "events": [
            {"type": "IntelligenceSignal__Sentiment", "value": "1000", "startTime": 1573503300, "endTime": 1573532140, "participant": "AGENT"},
            {"type": "IntelligenceSignal__Sentiment", "value": "-1000", "startTime": 1573503301, "endTime": 1573503320, "participant": "CUSTOMER"}
        ]
    }))).await;

    x.send(
        &s,
        "Create a Transcript after the call ended",
        Method::POST,
        &format!("/telephony/v1/voiceCalls/{KEY}/messages"),
        j(json!({
            "participantId": format!("{KEY}END_USER"), "messageId": "late-1", "startTime": 1893456000000i64,
            "endTime": 1893456000000i64, "content": "Are you still there?", "senderType": "END_USER"
        })),
    )
    .await;

    let (_, state) =
        s.call_as("DemoCallCenter", Method::GET, &format!("/admin/v1/voiceCalls/{id}"), None).await;
    let volatile = ["CallQueuedDateTime", "createdDate"];
    let snapshot =
        json!({"exchanges": redact(&Value::Array(x.log), &volatile), "stored": redact(&state, &volatile)});
    insta::assert_json_snapshot!("chapter_3_examples", snapshot);
});
