//! Live calls through the inbound sample against a real server: started, read and driven one
//! step at a time; refused steps change nothing; the sink gets each contact event as it
//! happens and the trace record at the end.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use voxbridge_contacts::{
    AgentAction, CallerInput, ContactCenter, ContactSink, FlowLibrary, InboundCall, LiveError, Step,
    TransferTarget,
};
use voxbridge_functions::{ManualClock, Registry};
use voxbridge_server::Settings;

use crate::agents::AGENTS;
use crate::harness::{center, flows_dir, TestServer, CALLER, NOW_MS};
use crate::hours::{action, write_flow};

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
    ctrs: Mutex<Vec<Value>>,
}

impl ContactSink for Recorder {
    fn contact_event(&self, event: &Value) {
        self.events.lock().unwrap().push(event["detail"]["eventType"].as_str().unwrap_or("").to_string());
    }
    fn contact_ended(&self, ctr: &Value) {
        self.ctrs.lock().unwrap().push(ctr.clone());
    }
}

impl Recorder {
    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_call_is_driven_step_by_step_and_the_sink_sees_it_happen() {
    let server = TestServer::start(Settings::default()).await;
    let flows = flows_dir(&server.demo, AGENTS);
    let recorder = Arc::new(Recorder::default());
    let center = Arc::new(
        center(&server, flows.path(), Arc::new(ManualClock::new(NOW_MS))).with_sink(recorder.clone()),
    );
    let id = "11111111-0000-4000-8000-000000000001";
    let call = InboundCall {
        to: server.demo.phone_number.clone(),
        from: CALLER.into(),
        contact_id: Some(id.into()),
        ..Default::default()
    };

    // The inbound sample runs to the queue and waits there for an agent.
    let view = center.start_live(call.clone()).await.unwrap();
    assert_eq!(view.contact_id, id);
    assert_eq!(view.state, "waiting");
    assert_eq!(serde_json::to_value(&view.waiting).unwrap()["for"], "agent");
    assert_eq!(serde_json::to_value(&view.waiting).unwrap()["queue"], "Support");
    assert!(view.result.is_none());
    assert_eq!(recorder.events(), ["INITIATED", "CONNECTED_TO_SYSTEM", "QUEUED"]);
    assert!(recorder.ctrs.lock().unwrap().is_empty());
    assert!(
        matches!(center.start_live(call).await, Err(LiveError::Refused(m)) if m.contains("exists already"))
    );

    // Steps the contact cannot take now are refused and change nothing.
    let before = center.live().get(id).unwrap().steps.len();
    let hold = CallerInput::Agent(AgentAction::Hold);
    let e = center.live().send(id, hold.clone()).await.unwrap_err();
    assert_eq!(e.to_string(), "agent hold: the contact is waiting in queue, not with an agent");
    let e =
        center.live().send(id, CallerInput::Agent(AgentAction::Connect { agent: Some("bob".into()) })).await;
    assert_eq!(e.unwrap_err().to_string(), "agent bob does not take contacts from Support");
    assert_eq!(center.live().get(id).unwrap().steps.len(), before);

    let view = center.live().send(id, CallerInput::Wait { seconds: 20 }).await.unwrap();
    assert_eq!(view.steps.len(), before + 1);
    let view =
        center.live().send(id, CallerInput::Agent(AgentAction::Connect { agent: None })).await.unwrap();
    let waiting = serde_json::to_value(&view.waiting).unwrap();
    assert_eq!((waiting["for"].as_str(), waiting["agent"].as_str()), (Some("talking"), Some("alice")));
    assert_eq!(recorder.events().last().unwrap(), "CONNECTED_TO_AGENT");
    assert_eq!(center.agent_contact("alice").as_deref(), Some(id));

    center.live().send(id, hold.clone()).await.unwrap();
    let e = center.live().send(id, hold).await.unwrap_err();
    assert_eq!(e.to_string(), "the caller is already on hold");
    center.live().send(id, CallerInput::Wait { seconds: 12 }).await.unwrap();
    center.live().send(id, CallerInput::Agent(AgentAction::Resume)).await.unwrap();

    // A transfer: the view follows the new contact, also under its own id.
    let view = center
        .live()
        .send(id, CallerInput::Agent(AgentAction::Transfer(TransferTarget::Queue("Billing".into()))))
        .await
        .unwrap();
    assert_ne!(view.current_contact_id, id);
    let next = view.current_contact_id.clone();
    assert_eq!(center.live().get(&next).unwrap().contact_id, id);
    assert_eq!(recorder.ctrs.lock().unwrap().len(), 1, "the first contact ended");
    assert_eq!(recorder.ctrs.lock().unwrap()[0]["Agent"]["NumberOfHolds"], 1);
    center.live().send(&next, CallerInput::Agent(AgentAction::Connect { agent: None })).await.unwrap();
    let view = center.live().send(&next, CallerInput::HangUp).await.unwrap();

    assert_eq!(view.state, "ended");
    let result = view.result.unwrap();
    assert_eq!(result.ctr["Agent"]["CustomerHoldDuration"], 12);
    assert_eq!(result.ctr["Queue"]["Duration"], 20);
    assert_eq!(result.transferred_contacts[0]["Agent"]["Username"], "bob");
    assert_eq!(result.transferred_contacts[0]["DisconnectReason"], "CUSTOMER_DISCONNECT");
    assert_eq!(
        recorder.events(),
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
    assert_eq!(recorder.ctrs.lock().unwrap().len(), 2);
    assert_eq!(center.agent_contact("bob"), None);

    // Finished calls stay readable; they take no more steps.
    assert_eq!(center.live().get(id).unwrap().state, "ended");
    assert!(matches!(center.live().send(id, CallerInput::HangUp).await, Err(LiveError::Ended(_))));
    assert!(matches!(center.live().get("nope"), Err(LiveError::NotFound(_))));
}

/// A menu: "Press 1 for sales" (5 s); 1 queues in Sales, silence or other keys say goodbye.
fn menu(dir: &std::path::Path) {
    let menu = json!({"Identifier": "menu", "Type": "GetParticipantInput",
        "Parameters": {"Text": "Press 1 for sales.", "StoreInput": "False", "InputTimeLimitSeconds": "5"},
        "Transitions": {"NextAction": "bye",
            "Conditions": [{"NextAction": "set", "Condition": {"Operator": "Equals", "Operands": ["1"]}}],
            "Errors": [{"NextAction": "again", "ErrorType": "InputTimeLimitExceeded"},
                       {"NextAction": "bye", "ErrorType": "NoMatchingCondition"},
                       {"NextAction": "bye", "ErrorType": "NoMatchingError"}]}});
    write_flow(
        dir,
        "Menu",
        "menu",
        vec![
            menu,
            action("again", "MessageParticipant", json!({"Text": "Sorry, I did not hear you."}), "menu"),
            action("set", "UpdateContactTargetQueue", json!({"QueueId": "sales"}), "queue"),
            action("queue", "TransferContactToQueue", json!({}), "bye"),
            json!({"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}),
        ],
    );
    std::fs::write(
        dir.join("flows.toml"),
        "[[numbers]]\nnumber = \"+15550100009\"\nflow = \"Menu\"\n\n[[queues]]\nname = \"Sales\"\nid = \"sales\"\n\n\
         [[agents]]\nusername = \"dana\"\n",
    )
    .unwrap();
}

#[tokio::test]
async fn a_live_caller_answers_prompts_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    menu(dir.path());
    let lib = FlowLibrary::load_dir(dir.path()).unwrap();
    let center = Arc::new(ContactCenter::new(
        Arc::new(lib),
        Arc::new(Registry::new()),
        Arc::new(ManualClock::new(NOW_MS)),
    ));
    let call = InboundCall { to: "+15550100009".into(), from: CALLER.into(), ..Default::default() };
    let view = center.start_live(call).await.unwrap();
    let id = view.contact_id.clone();
    let digits =
        json!({"for": "digits", "prompt": "Press 1 for sales.", "timeoutSeconds": 5, "maxDigits": 1});
    assert_eq!(serde_json::to_value(&view.waiting).unwrap(), digits);

    // Not yet an agent's turn; silence times out and the menu asks again.
    let e = center.live().send(&id, CallerInput::Agent(AgentAction::Connect { agent: None })).await;
    assert_eq!(e.unwrap_err().to_string(), "agent connect: no agent is on the contact yet");
    let view = center.live().send(&id, CallerInput::Silence).await.unwrap();
    assert_eq!(serde_json::to_value(&view.waiting).unwrap(), digits);
    let prompts: Vec<Value> = view
        .steps
        .iter()
        .filter(|s| matches!(s.step, Step::Prompt { .. }))
        .map(|s| serde_json::to_value(s).unwrap()["text"].clone())
        .collect();
    assert_eq!(prompts, ["Press 1 for sales.", "Sorry, I did not hear you.", "Press 1 for sales."]);
    assert_eq!(
        view.steps.last().unwrap().at,
        "2025-01-15T17:00:05.000Z",
        "the timeout took 5 simulated seconds"
    );

    let view =
        center.live().send(&id, CallerInput::Keys { wait_seconds: 2, keys: "1".into() }).await.unwrap();
    assert_eq!(serde_json::to_value(&view.waiting).unwrap(), json!({"for": "agent", "queue": "Sales"}));
    let view = center.live().send(&id, CallerInput::HangUp).await.unwrap();
    assert_eq!(view.state, "ended");
    let result = view.result.unwrap();
    assert_eq!(
        (result.disposition.as_str(), result.disconnect_reason.as_str()),
        ("QUEUED", "CUSTOMER_DISCONNECT")
    );
    assert_eq!(result.ctr["Queue"]["EnqueueTimestamp"], "2025-01-15T17:00:07Z");
    assert_eq!(result.ctr["Agent"], Value::Null);
}
