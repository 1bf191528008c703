//! Telephony-side agents on scripted calls through the sample flows against a real server:
//! a queued caller waits until an agent connects (or hangs up), the agent holds, resumes,
//! transfers (a new TRANSFER contact that runs the sample transfer flows) and hangs up; the
//! CTRs and contact events say so. One table row per script.

use std::sync::Arc;

use serde_json::{json, Value};
use voxbridge_contacts::{CallerScript, ContactResult, InboundCall, Step};
use voxbridge_functions::ManualClock;
use voxbridge_server::Settings;

use crate::harness::{center, flows_dir, TestServer, CALLER, NOW_MS};

/// Agents, and quick connects to the sample transfer flows.
pub const AGENTS: &str = r#"
[[agents]]
username = "alice"
queues = ["Support", "BasicQueue"]

[[agents]]
username = "bob"
queues = ["Billing"]

[[quick_connects]]
name = "To billing"
type = "queue"
target = "Billing"
flow = "Sample SCV Transfer Flow For Queue Transfers"

[[quick_connects]]
name = "To bob"
type = "agent"
target = "bob"
flow = "Sample SCV Transfer Flow For Agent Transfers"

[[quick_connects]]
name = "Outside"
type = "phone"
target = "+14155550199"
"#;

fn event_types(r: &ContactResult) -> Vec<String> {
    r.contact_events
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                &e["detail"]["contactId"].as_str().unwrap_or("")[..4],
                e["detail"]["eventType"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn warnings(r: &ContactResult) -> Vec<String> {
    r.steps
        .iter()
        .filter_map(|s| match &s.step {
            Step::Warning { action: None, message } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

struct Case {
    script: &'static str,
    reason: &'static str,
    /// `(contact, event type)`, contact `a` the first, `b` the next.
    events: &'static [&'static str],
    /// Fields of the first contact's CTR.
    ctr: Value,
    warning: Option<&'static str>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_agents_connect_hold_and_hang_up() {
    let server = TestServer::start(Settings::default()).await;
    let flows = flows_dir(&server.demo, AGENTS);
    let center = center(&server, flows.path(), Arc::new(ManualClock::new(NOW_MS)));
    const CONNECTED: &[&str] =
        &["a:INITIATED", "a:CONNECTED_TO_SYSTEM", "a:QUEUED", "a:CONNECTED_TO_AGENT", "a:DISCONNECTED"];
    const ABANDONED: &[&str] = &["a:INITIATED", "a:CONNECTED_TO_SYSTEM", "a:QUEUED", "a:DISCONNECTED"];
    let cases = [
        Case {
            script: "agent:connect,w30,agent:hold,w10,agent:resume,w5,agent:hold,w20,agent:resume,agent:disconnect",
            reason: "AGENT_DISCONNECT",
            events: CONNECTED,
            ctr: json!({"Agent": {"Username": "alice", "NumberOfHolds": 2, "CustomerHoldDuration": 30,
                "LongestHoldDuration": 20, "AgentInteractionDuration": 35,
                "ConnectedToAgentTimestamp": "2025-01-15T17:00:00Z"},
                "AgentConnectionAttempts": 1, "Queue": {"Duration": 0}, "DisconnectTimestamp": "2025-01-15T17:01:05Z"}),
            warning: None,
        },
        Case {
            script: "w20,agent:connect,w10,hangup",
            reason: "CUSTOMER_DISCONNECT",
            events: CONNECTED,
            ctr: json!({"Agent": {"NumberOfHolds": 0, "ConnectedToAgentTimestamp": "2025-01-15T17:00:20Z"},
                "Queue": {"Duration": 20, "DequeueTimestamp": "2025-01-15T17:00:20Z"}}),
            warning: None,
        },
        // Abandoned: the caller waits 45 s and the script ends.
        Case {
            script: "w45",
            reason: "CUSTOMER_DISCONNECT",
            events: ABANDONED,
            ctr: json!({"Agent": null, "AgentConnectionAttempts": 0, "Queue": {"Duration": 45}}),
            warning: None,
        },
        // The agent hangs up while the caller is on hold: the hold counts until then.
        Case {
            script: "agent:connect:alice,w5,agent:hold,w15,agent:disconnect",
            reason: "AGENT_DISCONNECT",
            events: CONNECTED,
            ctr: json!({"Agent": {"NumberOfHolds": 1, "CustomerHoldDuration": 15, "AgentInteractionDuration": 5}}),
            warning: None,
        },
        Case {
            script: "agent:connect:bob",
            reason: "CUSTOMER_DISCONNECT",
            events: ABANDONED,
            ctr: json!({"Agent": null}),
            warning: Some("agent bob does not take contacts from Support"),
        },
        Case {
            script: "agent:connect:nobody",
            reason: "CUSTOMER_DISCONNECT",
            events: ABANDONED,
            ctr: json!({"Agent": null}),
            warning: Some("no agent nobody"),
        },
        Case {
            script: "agent:hold,agent:connect,agent:resume,agent:connect",
            reason: "CUSTOMER_DISCONNECT",
            events: CONNECTED,
            ctr: json!({"Agent": {"Username": "alice", "NumberOfHolds": 0}}),
            warning: Some("agent hold: the contact is waiting in queue, not with an agent"),
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let contact_id = format!("a{i:03}0000-0000-4000-8000-000000000000");
        let result = center
            .simulate(InboundCall {
                to: server.demo.phone_number.clone(),
                from: CALLER.into(),
                input: CallerScript::parse(case.script).unwrap(),
                contact_id: Some(contact_id.clone()),
            })
            .await
            .unwrap();
        let ctx = format!("{}: {:#?}", case.script, result.steps);
        assert_eq!(result.disposition, "QUEUED", "{ctx}");
        assert_eq!(result.disconnect_reason, case.reason, "{ctx}");
        assert_eq!(result.ctr["DisconnectReason"], case.reason, "{ctx}");
        let expected: Vec<String> =
            case.events.iter().map(|e| e.replacen("a:", &format!("{}:", &contact_id[..4]), 1)).collect();
        assert_eq!(event_types(&result), expected, "{ctx}");
        assert_json_includes(&result.ctr, &case.ctr, case.script);
        match case.warning {
            Some(w) => {
                assert!(warnings(&result).iter().any(|m| m == w), "{}: {:?}", case.script, warnings(&result))
            }
            None => assert!(warnings(&result).is_empty(), "{}: {:?}", case.script, warnings(&result)),
        }
        // The agent is free again and the queue empty.
        assert_eq!(center.queues().len(server.demo.queues[0].external_id.rsplit('/').next().unwrap()), 0);
        assert_eq!(center.agent_contact("alice"), None, "{ctx}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_transfer_to_quick_connects_queues_agents_and_numbers() {
    let server = TestServer::start(Settings::default()).await;
    let flows = flows_dir(&server.demo, AGENTS);
    let center = center(&server, flows.path(), Arc::new(ManualClock::new(NOW_MS)));
    let run = |id: &str, script: &str| {
        let call = InboundCall {
            to: server.demo.phone_number.clone(),
            from: CALLER.into(),
            input: CallerScript::parse(script).unwrap(),
            contact_id: Some(id.into()),
        };
        let center = &center;
        async move { center.simulate(call).await.unwrap() }
    };

    // A queue quick connect: the queue transfer flow creates the new contact's VoiceCall,
    // checks the hours and staffing of Billing and queues it there; bob takes it.
    let r = run(
        "b0000000-0000-4000-8000-000000000001",
        "agent:connect,w10,agent:transfer:quick:To billing,w3,agent:connect,w5,agent:disconnect",
    )
    .await;
    let ctx = format!("{:#?}", r.steps);
    assert_eq!(r.transferred_contacts.len(), 1, "{ctx}");
    let (first, next) = (&r.ctr, &r.transferred_contacts[0]);
    let next_id = next["ContactId"].as_str().unwrap();
    assert_eq!(first["NextContactId"], next_id);
    assert_eq!(first["TransferCompletedTimestamp"], "2025-01-15T17:00:10Z");
    assert_eq!(first["DisconnectReason"], "AGENT_DISCONNECT");
    assert_eq!(first["Agent"]["Username"], "alice");
    assert_eq!(next["InitiationMethod"], "TRANSFER");
    assert_eq!(next["PreviousContactId"], "b0000000-0000-4000-8000-000000000001");
    assert_eq!(next["InitialContactId"], "b0000000-0000-4000-8000-000000000001");
    assert_eq!(next["Queue"]["Name"], "Billing");
    assert_eq!(next["Queue"]["Duration"], 3);
    assert_eq!(next["Agent"]["Username"], "bob");
    assert_eq!(next["DisconnectReason"], "AGENT_DISCONNECT");
    assert!(next["Attributes"]["voiceCallId"].as_str().is_some_and(|v| v.starts_with("0LQ")), "{next}");
    assert!(r.steps.iter().any(|s| matches!(&s.step, Step::Flow { flow, .. } if flow == "Sample SCV Transfer Flow For Queue Transfers")), "{ctx}");
    assert_eq!(r.agent.as_deref(), Some("bob"));
    let types: Vec<&str> =
        r.contact_events.iter().map(|e| e["detail"]["eventType"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "INITIATED",
            "CONNECTED_TO_SYSTEM",
            "QUEUED",
            "CONNECTED_TO_AGENT",
            "DISCONNECTED",
            "INITIATED",
            "CONNECTED_TO_SYSTEM",
            "QUEUED",
            "CONNECTED_TO_AGENT",
            "DISCONNECTED"
        ]
    );
    assert_eq!(r.contact_events[5]["detail"]["previousContactId"], "b0000000-0000-4000-8000-000000000001");

    // An agent quick connect: the agent transfer flow sends the contact to bob's own queue.
    let r = run(
        "b0000000-0000-4000-8000-000000000002",
        "agent:connect,agent:transfer:quick:To bob,agent:connect,agent:disconnect",
    )
    .await;
    let next = &r.transferred_contacts[0];
    assert_eq!(
        next["Queue"]["ARN"].as_str().unwrap().rsplit_once("/queue/").unwrap().1,
        "agent/bob",
        "{next}"
    );
    assert_eq!(next["Agent"]["Username"], "bob");
    assert_eq!(r.contact_events[7]["detail"]["queueInfo"]["queueType"], "AGENT");
    // Only bob takes contacts from his queue: alice cannot.
    let r = run(
        "b0000000-0000-4000-8000-000000000003",
        "agent:connect,agent:transfer:agent:bob,agent:connect:alice,w2",
    )
    .await;
    assert_eq!(r.transferred_contacts[0]["Agent"], Value::Null);
    assert!(warnings(&r).iter().any(|w| w.contains("alice does not take contacts")), "{:?}", warnings(&r));

    // A direct queue transfer, no flow.
    let r = run(
        "b0000000-0000-4000-8000-000000000004",
        "agent:connect,agent:transfer:queue:Billing,agent:connect,hangup",
    )
    .await;
    let next = &r.transferred_contacts[0];
    assert_eq!(
        (next["Queue"]["Name"].as_str(), next["Agent"]["Username"].as_str()),
        (Some("Billing"), Some("bob"))
    );
    assert_eq!(next["DisconnectReason"], "CUSTOMER_DISCONNECT");

    // A phone quick connect: the caller leaves for the number.
    let r = run("b0000000-0000-4000-8000-000000000005", "agent:connect,agent:transfer:quick:Outside").await;
    assert!(r.transferred_contacts.is_empty());
    assert_eq!(
        r.ctr["TransferredToEndpoint"],
        json!({"Address": "+14155550199", "Type": "TELEPHONE_NUMBER"})
    );
    assert_eq!(r.ctr["DisconnectReason"], "THIRD_PARTY_DISCONNECT");

    // Unknown targets are refused and the call goes on.
    let r = run(
        "b0000000-0000-4000-8000-000000000006",
        "agent:connect,agent:transfer:quick:Nowhere,agent:transfer:queue:Nope,agent:disconnect",
    )
    .await;
    assert_eq!(warnings(&r), ["no quick connect Nowhere", "no queue Nope"]);
    assert_eq!(r.disconnect_reason, "AGENT_DISCONNECT");
}

/// Every field of `expected` (recursively) is in `actual` with that value.
pub fn assert_json_includes(actual: &Value, expected: &Value, ctx: &str) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (k, v) in e {
                assert!(a.contains_key(k) || v.is_null(), "{ctx}: no {k} in {actual}");
                assert_json_includes(a.get(k).unwrap_or(&Value::Null), v, ctx);
            }
        }
        _ => assert_eq!(actual, expected, "{ctx}"),
    }
}
