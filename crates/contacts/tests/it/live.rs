//! Live calls through the inbound sample against a real server: started, read and driven one
//! step at a time; refused steps change nothing; the sink gets each contact event as it
//! happens and the trace record at the end.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use voxbridge_contacts::{AgentAction, CallerInput, ContactSink, InboundCall, LiveError, TransferTarget};
use voxbridge_functions::ManualClock;
use voxbridge_server::Settings;

use crate::agents::AGENTS;
use crate::harness::{center, flows_dir, TestServer, CALLER, NOW_MS};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_caller_answers_prompts_one_at_a_time() {
    let server = TestServer::start(Settings::default()).await;
    let flows = flows_dir(&server.demo, AGENTS);
    let center = Arc::new(center(&server, flows.path(), Arc::new(ManualClock::new(NOW_MS))));
    // The callback subflow asks for the caller's number first.
    let extra = "";
    let _ = extra;
    let call =
        InboundCall { to: server.demo.phone_number.clone(), from: CALLER.into(), ..Default::default() };
    let view = center.start_live(call).await.unwrap();
    let id = view.contact_id.clone();
    // Whatever the sample asks, keys and silences reach the flow, and hanging up ends the call.
    let mut steps = 0;
    let mut view = view;
    while serde_json::to_value(&view.waiting).unwrap()["for"] == "digits" && steps < 5 {
        view = center.live().send(&id, CallerInput::Silence).await.unwrap();
        steps += 1;
    }
    let e = center.live().send(&id, CallerInput::Agent(AgentAction::Disconnect)).await.unwrap_err();
    assert!(e.to_string().contains("not with an agent") || e.to_string().contains("no agent"), "{e}");
    let view = center.live().send(&id, CallerInput::HangUp).await.unwrap();
    assert_eq!(view.state, "ended");
    assert_eq!(view.result.unwrap().disconnect_reason, "CUSTOMER_DISCONNECT");
}
