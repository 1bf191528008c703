//! The caller script, the DTMF collector, queues and the records, without a server.

use std::collections::BTreeMap;

use serde_json::json;
use voxbridge_contacts::queue::{EnqueueError, Queues};
use voxbridge_contacts::record::{contact_events, contact_trace_record, ContactTimeline, QueueVisit};
use voxbridge_contacts::script::collect;
use voxbridge_contacts::{CallerInput, CallerScript};
use voxbridge_flows::Endpoint;

#[test]
fn caller_scripts_parse() {
    let mut s = CallerScript::parse("1, 1234#,,w3:56,timeout,hangup,-").unwrap();
    let keys = |k: &str, w| Some(CallerInput::Keys { wait_seconds: w, keys: k.into() });
    assert_eq!(s.next_input(), keys("1", 0));
    assert_eq!(s.next_input(), keys("1234#", 0));
    assert_eq!(s.next_input(), Some(CallerInput::Silence));
    assert_eq!(s.next_input(), keys("56", 3));
    assert_eq!(s.next_input(), Some(CallerInput::Silence));
    assert_eq!(s.next_input(), Some(CallerInput::HangUp));
    assert_eq!(s.next_input(), Some(CallerInput::Silence));
    assert_eq!(s.next_input(), None);
    assert_eq!(CallerScript::parse("").unwrap().remaining(), 0);
    assert!(CallerScript::parse("12a").unwrap_err().contains("'a' is not a phone key"));
    assert!(CallerScript::parse("wx:1").is_err());
    assert!(CallerScript::parse("wx").is_err());
}

#[test]
fn the_collector_applies_cancel_and_max_digits() {
    assert_eq!(collect("12*34#", true, None), "34#");
    assert_eq!(collect("12*34#", false, None), "12*34#");
    assert_eq!(collect("123456", false, Some(4)), "1234");
    assert_eq!(collect("", true, Some(1)), "");
}

#[test]
fn queues_have_capacity_and_metrics() {
    let q = Queues::default();
    q.declare("a", 2);
    assert_eq!(q.enqueue("b", "c1", 0), Err(EnqueueError::UnknownQueue("b".into())));
    q.enqueue("a", "c1", 1_000).unwrap();
    q.enqueue("a", "c2", 5_000).unwrap();
    assert_eq!(q.enqueue("a", "c3", 6_000), Err(EnqueueError::AtCapacity));
    let m = q.metrics("a", 11_000);
    assert_eq!((m.contacts_in_queue, m.oldest_contact_age_ms), (2, 10_000));
    q.remove("c1");
    assert_eq!(q.metrics("a", 11_000).oldest_contact_age_ms, 6_000);
    assert_eq!(q.len("a"), 1);
}

fn timeline() -> ContactTimeline {
    ContactTimeline {
        contact_id: "c-1".into(),
        initial_contact_id: "c-1".into(),
        previous_contact_id: None,
        channel: "VOICE".into(),
        initiation_method: "INBOUND".into(),
        instance_arn: "arn:aws:connect:us-east-1:123456789012:instance/i".into(),
        customer_endpoint: Some(Endpoint::phone("+14155550123")),
        system_endpoint: Some(Endpoint::phone("+15550100100")),
        attributes: BTreeMap::from([("voiceCallId".to_string(), "0LQ1".to_string())]),
        initiation_ms: 1_736_960_400_000,
        connected_to_system_ms: Some(1_736_960_400_000),
        queue: Some(QueueVisit {
            name: "Support".into(),
            arn: "arn:aws:connect:us-east-1:123456789012:instance/i/queue/q".into(),
            enqueue_ms: 1_736_960_405_500,
            dequeue_ms: Some(1_736_960_465_000),
            queue_type: "STANDARD",
        }),
        disconnect_ms: 1_736_960_465_000,
        disconnect_reason: Some("CUSTOMER_DISCONNECT".into()),
        recording: false,
        agent: None,
        next_contact_id: None,
        transfer_completed_ms: None,
        transferred_to_endpoint: None,
    }
}

#[test]
fn the_ctr_follows_the_data_model() {
    let ctr = contact_trace_record(&timeline());
    assert_eq!(ctr["AWSAccountId"], "123456789012");
    assert_eq!(ctr["InitiationTimestamp"], "2025-01-15T17:00:00Z");
    assert_eq!(ctr["ConnectedToSystemTimestamp"], "2025-01-15T17:00:00Z");
    assert_eq!(ctr["DisconnectTimestamp"], "2025-01-15T17:01:05Z");
    assert_eq!(ctr["Queue"]["EnqueueTimestamp"], "2025-01-15T17:00:05Z");
    assert_eq!(ctr["Queue"]["Duration"], 59);
    assert_eq!(ctr["Agent"], serde_json::Value::Null);
    assert_eq!(ctr["CustomerEndpoint"], json!({"Address": "+14155550123", "Type": "TELEPHONE_NUMBER"}));
    assert_eq!(ctr["Attributes"], json!({"voiceCallId": "0LQ1"}));
}

#[test]
fn contact_events_have_the_eventbridge_shape() {
    let mut n = 0;
    let events = contact_events(&timeline(), || {
        n += 1;
        format!("id-{n}")
    });
    assert_eq!(events.len(), 4);
    let queued = &events[2];
    assert_eq!(queued["source"], "aws.connect");
    assert_eq!(queued["detail-type"], "Amazon Connect Contact Event");
    assert_eq!(queued["id"], "id-3");
    assert_eq!(queued["account"], "123456789012");
    assert_eq!(queued["region"], "us-east-1");
    assert_eq!(queued["detail"]["eventType"], "QUEUED");
    assert_eq!(queued["detail"]["queueInfo"]["enqueueTimestamp"], "2025-01-15T17:00:05.500Z");
    assert_eq!(events[3]["detail"]["disconnectTimestamp"], "2025-01-15T17:01:05.000Z");
    assert_eq!(events[3]["resources"][1], "arn:aws:connect:us-east-1:123456789012:instance/i/contact/c-1");
}
