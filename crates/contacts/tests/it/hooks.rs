//! What happens beside the main flow, with small flows and no server: the hold and customer
//! whisper event hooks, asynchronous Lambda invocations (the flow goes on at once), throttled
//! invocations retried with backoff in simulated time, and an [`AgentRouting`] that connects
//! and disconnects a live contact's agent.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use voxbridge_contacts::routing::BoxFuture;
use voxbridge_contacts::{
    AgentAction, AgentConfig, AgentRouting, CallerInput, CallerScript, ContactCenter, ContactResult,
    FlowLibrary, FollowedCall, Following, InboundCall, LibraryDefaults, LiveSteps, Step,
};
use voxbridge_functions::{Function, FunctionError, FunctionOptions, ManualClock, Registry};

use crate::hours::{action, write_flow};

/// Wednesday 2025-01-15 17:00 UTC.
const NOW_MS: i64 = 1_736_960_400_000;
const HELD: &str = "+15550100010";
const ASYNC: &str = "+15550100011";
const THROTTLED: &str = "+15550100012";
const NOTIFY_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:Notify";
const LOOKUP_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:Lookup";

type Invocation<'a> = Pin<Box<dyn Future<Output = Result<Value, FunctionError>> + Send + 'a>>;

/// Answers `{"answer": "yes"}` and reports each invocation's ContactId.
struct Notify(tokio::sync::mpsc::UnboundedSender<String>);

impl Function for Notify {
    fn name(&self) -> &str {
        "Notify"
    }
    fn invoke<'s, 'a>(&'s self, event: Value) -> Invocation<'a>
    where
        's: 'a,
        Self: 'a,
    {
        Box::pin(async move {
            let _ = self.0.send(event["Details"]["ContactData"]["ContactId"].as_str().unwrap_or("").into());
            Ok(json!({"answer": "yes"}))
        })
    }
}

/// Holds its concurrency slot until `release` is set (yielding meanwhile).
struct Lookup {
    release: Arc<AtomicBool>,
}

impl Function for Lookup {
    fn name(&self) -> &str {
        "Lookup"
    }
    fn invoke<'s, 'a>(&'s self, event: Value) -> Invocation<'a>
    where
        's: 'a,
        Self: 'a,
    {
        Box::pin(async move {
            if event["hold"] == true {
                while !self.release.load(Ordering::SeqCst) {
                    tokio::task::yield_now().await;
                }
            }
            Ok(json!({"name": "Ada"}))
        })
    }
}

fn library(dir: &Path) {
    let bye =
        json!({"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}});
    let end = json!({"Identifier": "end", "Type": "EndFlowExecution", "Parameters": {}, "Transitions": {}});
    let hook = |id: &str, name: &str, flow: &str, next: &str| {
        action(id, "UpdateContactEventHooks", json!({"EventHooks": {name: flow}}), next)
    };
    write_flow(
        dir,
        "Held",
        "h1",
        vec![
            hook("h1", "CustomerHold", "Hold music", "h2"),
            hook("h2", "AgentHold", "Agent hold", "h3"),
            hook("h3", "CustomerWhisper", "Customer whisper", "h4"),
            hook("h4", "CustomerRemaining", "Survey", "set"),
            action("set", "UpdateContactTargetQueue", json!({"QueueId": "q"}), "queue"),
            action("queue", "TransferContactToQueue", json!({}), "bye"),
            bye.clone(),
        ],
    );
    write_flow(
        dir,
        "Hold music",
        "loop",
        vec![
            json!({"Identifier": "loop", "Type": "MessageParticipantIteratively",
                   "Parameters": {"Messages": [{"Text": "Please hold."}], "InterruptFrequencySeconds": "30"},
                   "Transitions": {"NextAction": "bye", "Conditions": [
                       {"NextAction": "still", "Condition": {"Operator": "Equals", "Operands": ["MessagesInterrupted"]}}],
                       "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}}),
            action("still", "MessageParticipant", json!({"Text": "Still on hold."}), "loop"),
            bye.clone(),
        ],
    );
    write_flow(
        dir,
        "Survey",
        "say",
        vec![
            action("say", "MessageParticipant", json!({"Text": "How did we do?"}), "mark"),
            action("mark", "UpdateContactAttributes", json!({"Attributes": {"survey": "offered"}}), "bye"),
            bye.clone(),
        ],
    );
    for (name, text) in [("Agent hold", "The caller is on hold."), ("Customer whisper", "You are connected.")]
    {
        write_flow(
            dir,
            name,
            "say",
            vec![action("say", "MessageParticipant", json!({"Text": text}), "end"), end.clone(), bye.clone()],
        );
    }
    let copy = |id: &str, attribute: &str, path: &str, next: &str| {
        action(id, "UpdateContactAttributes", json!({"Attributes": {attribute: path}}), next)
    };
    write_flow(
        dir,
        "Async",
        "invoke",
        vec![
            action(
                "invoke",
                "InvokeLambdaFunction",
                json!({"LambdaFunctionARN": NOTIFY_ARN, "InvocationType": "ASYNCHRONOUS",
                       "InvocationTimeLimitSeconds": "30"}),
                "copy",
            ),
            copy("copy", "invocation", "$.LambdaInvocation.InvocationId", "answer"),
            copy("answer", "answer", "$.External.answer", "bye"),
            bye.clone(),
        ],
    );
    write_flow(
        dir,
        "Throttled",
        "invoke",
        vec![
            json!({"Identifier": "invoke", "Type": "InvokeLambdaFunction",
                   "Parameters": {"LambdaFunctionARN": LOOKUP_ARN, "InvocationTimeLimitSeconds": "3"},
                   "Transitions": {"NextAction": "copy",
                       "Errors": [{"NextAction": "failed", "ErrorType": "NoMatchingError"}]}}),
            copy("copy", "name", "$.External.name", "bye"),
            action("failed", "UpdateContactAttributes", json!({"Attributes": {"failed": "true"}}), "bye"),
            bye,
        ],
    );
    std::fs::write(
        dir.join("flows.toml"),
        format!(
            "[[numbers]]\nnumber = \"{HELD}\"\nflow = \"Held\"\n\n[[numbers]]\nnumber = \"{ASYNC}\"\n\
             flow = \"Async\"\n\n[[numbers]]\nnumber = \"{THROTTLED}\"\nflow = \"Throttled\"\n\n\
             [[queues]]\nname = \"Queue\"\nid = \"q\"\n"
        ),
    )
    .unwrap();
}

struct Setup {
    center: Arc<ContactCenter>,
    notified: tokio::sync::mpsc::UnboundedReceiver<String>,
    release: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

/// The contact center: agent `ada` (CRM user `005VX0000000001`), `Notify`, and `Lookup`
/// with a reserved concurrency of `lookup_concurrency`.
fn setup(lookup_concurrency: u64) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    library(dir.path());
    let defaults = LibraryDefaults {
        agents: vec![AgentConfig { username: "ada".into(), ..AgentConfig::default() }],
        ..LibraryDefaults::default()
    };
    let library = FlowLibrary::load_dir_with(dir.path(), defaults).unwrap();
    let registry = Registry::new();
    let (tx, notified) = tokio::sync::mpsc::unbounded_channel();
    registry.register(Arc::new(Notify(tx)), FunctionOptions::default());
    let release = Arc::new(AtomicBool::new(false));
    registry.register(
        Arc::new(Lookup { release: release.clone() }),
        FunctionOptions { timeout: None, reserved_concurrency: Some(lookup_concurrency) },
    );
    let center =
        ContactCenter::new(Arc::new(library), Arc::new(registry), Arc::new(ManualClock::new(NOW_MS)));
    Setup { center: Arc::new(center), notified, release, _dir: dir }
}

async fn call(center: &ContactCenter, to: &str, script: &str) -> ContactResult {
    let input = CallerScript::parse(script).unwrap();
    let call =
        InboundCall { to: to.into(), from: "+14155550123".into(), input, contact_id: Some("c-1".into()) };
    center.simulate(call).await.unwrap()
}

/// The log as short lines: flows, prompts, agent steps, timers.
fn lines(r: &ContactResult) -> Vec<String> {
    r.steps
        .iter()
        .filter_map(|s| match &s.step {
            Step::Flow { flow, .. } => Some(format!("flow {flow}")),
            Step::Prompt { text: Some(t), .. } => Some(format!("prompt {t}")),
            Step::Agent { action, .. } => Some(format!("agent {action}")),
            Step::Command { command } if command.contains("fired") => Some(command.clone()),
            Step::Warning { message, .. } => Some(format!("warning {message}")),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn hold_runs_the_hold_flows_and_connecting_the_customer_whisper() {
    let s = setup(10);
    let r = call(&s.center, HELD, "agent:connect,w10,agent:hold,w65,agent:resume,w5,agent:disconnect").await;
    assert_eq!(
        lines(&r),
        [
            "flow Held",
            "agent connect",
            "flow Customer whisper",
            "prompt You are connected.",
            "agent hold",
            "flow Agent hold",
            "prompt The caller is on hold.",
            "flow Hold music",
            "prompt Please hold.",
            "hold flow timer fired",
            "prompt Still on hold.",
            "prompt Please hold.",
            "hold flow timer fired",
            "prompt Still on hold.",
            "prompt Please hold.",
            "agent resume",
            "agent disconnect",
            "flow Survey",
            "prompt How did we do?",
        ],
        "{:#?}",
        r.steps
    );
    assert_eq!(r.disconnect_reason, "AGENT_DISCONNECT");
    let agent = &r.ctr["Agent"];
    assert_eq!(
        (agent["NumberOfHolds"].as_u64(), agent["CustomerHoldDuration"].as_u64()),
        (Some(1), Some(65))
    );
    assert_eq!(agent["AgentInteractionDuration"], 15);
    // The caller stayed for the disconnect flow after the agent hung up.
    assert_eq!(r.attributes.get("survey").map(String::as_str), Some("offered"));
    assert_eq!(s.center.agent_contact("ada"), None);
    // After the resume, waits are talk time: the hold flow's timer no longer fires.
    let r = call(&s.center, HELD, "agent:connect,agent:hold,w10,agent:resume,w100,agent:disconnect").await;
    assert_eq!(lines(&r).iter().filter(|l| l.contains("timer fired")).count(), 0, "{:#?}", r.steps);
}

#[tokio::test]
async fn an_asynchronous_invocation_does_not_hold_the_flow_up() {
    let mut s = setup(10);
    let r = call(&s.center, ASYNC, "").await;
    let function = r.steps.iter().find_map(|s| match &s.step {
        Step::Function { asynchronous, invocation_id, response, error, .. } => {
            Some((*asynchronous, invocation_id.clone(), response.clone(), error.clone()))
        }
        _ => None,
    });
    assert_eq!(function, Some((true, Some("c-1-1".to_string()), None, None)));
    // The flow has the invocation's id, not its result.
    assert_eq!(r.attributes.get("invocation").map(String::as_str), Some("c-1-1"));
    assert!(r.attributes.get("answer").is_none_or(|a| a.is_empty()), "{:?}", r.attributes);
    // The function still runs.
    let invoked = tokio::time::timeout(Duration::from_secs(10), s.notified.recv()).await;
    assert_eq!(invoked.unwrap().as_deref(), Some("c-1"));
}

#[tokio::test]
async fn throttled_invocations_are_retried_then_take_the_error_branch() {
    // No concurrency at all: three retries 100, 200 and 400 ms apart, then the error branch.
    let s = setup(0);
    let r = call(&s.center, THROTTLED, "").await;
    let retries = r.steps.iter().find_map(|s| match &s.step {
        Step::Function { retries, error, .. } => Some((*retries, error.clone().unwrap_or_default())),
        _ => None,
    });
    let (retries, error) = retries.unwrap();
    assert_eq!(retries, 3);
    assert!(error.starts_with("TooManyRequestsException"), "{error}");
    assert_eq!(r.attributes.get("failed").map(String::as_str), Some("true"));
    assert_eq!(r.ctr["DisconnectTimestamp"], "2025-01-15T17:00:00Z");
    let last = r.steps.last().unwrap();
    assert_eq!(last.at, "2025-01-15T17:00:00.700Z", "{:#?}", r.steps);
    assert_eq!(s.center.functions().metrics_of("Lookup").unwrap().throttles, 4);

    // One slot, held by another invocation that ends while the contact backs off: the retry
    // gets the slot and the flow has the answer.
    let s = setup(1);
    let functions = s.center.functions().clone();
    let holder = tokio::spawn(async move {
        functions.invoke(LOOKUP_ARN, json!({"hold": true}), Duration::from_secs(30)).await.result
    });
    while s.center.functions().metrics_of("Lookup").unwrap().concurrent_executions == 0 {
        tokio::task::yield_now().await;
    }
    let release = s.release.clone();
    let watcher = tokio::spawn({
        let functions = s.center.functions().clone();
        async move {
            while functions.metrics_of("Lookup").unwrap().throttles == 0 {
                tokio::task::yield_now().await;
            }
            release.store(true, Ordering::SeqCst);
        }
    });
    let r = call(&s.center, THROTTLED, "").await;
    assert!(holder.await.unwrap().is_ok());
    watcher.await.unwrap();
    let retries = r.steps.iter().find_map(|s| match &s.step {
        Step::Function { retries, response, .. } => Some((*retries, response.clone())),
        _ => None,
    });
    let (retries, response) = retries.unwrap();
    assert!((1..=3).contains(&retries), "{:#?}", r.steps);
    assert_eq!(response, Some(json!({"name": "Ada"})));
    assert_eq!(r.attributes.get("name").map(String::as_str), Some("Ada"));
}

/// Connects the agent its CRM half assigns (here: at once) and disconnects after a wait.
struct Routing;

impl AgentRouting for Routing {
    fn follow<'a>(
        &'a self,
        call: FollowedCall,
        steps: LiveSteps,
    ) -> BoxFuture<'a, Result<Following, String>> {
        Box::pin(async move {
            assert_eq!(call.conversation_key, "c-1");
            let task = tokio::spawn(async move {
                let connect = CallerInput::Agent(AgentAction::Connect { agent: Some("ada".into()) });
                steps.send(connect).await.unwrap();
                steps.send(CallerInput::Wait { seconds: 30 }).await.unwrap();
                steps.send(CallerInput::Agent(AgentAction::Disconnect)).await.unwrap();
            });
            Ok(Following::task(task.abort_handle()))
        })
    }
}

#[tokio::test]
async fn a_routing_follower_connects_and_disconnects_a_live_contact() {
    let s = setup(10);
    let dir = tempfile::tempdir().unwrap();
    library(dir.path());
    let defaults = LibraryDefaults {
        agents: vec![AgentConfig { username: "ada".into(), ..AgentConfig::default() }],
        ..LibraryDefaults::default()
    };
    let library = Arc::new(FlowLibrary::load_dir_with(dir.path(), defaults).unwrap());
    let center = Arc::new(
        ContactCenter::new(library, s.center.functions().clone(), Arc::new(ManualClock::new(NOW_MS)))
            .with_routing(Arc::new(Routing)),
    );
    // Scripted calls do not follow routing.
    let scripted = call(&center, HELD, "").await;
    assert_eq!(scripted.disconnect_reason, "CUSTOMER_DISCONNECT");
    let call = InboundCall {
        to: HELD.into(),
        from: "+14155550123".into(),
        contact_id: Some("c-1".into()),
        ..Default::default()
    };
    center.start_live(call).await.unwrap();
    let mut view = center.live().get("c-1").unwrap();
    for _ in 0..1000 {
        if view.state == "ended" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        view = center.live().get("c-1").unwrap();
    }
    let result = view.result.expect("the contact ended");
    assert_eq!(result.disconnect_reason, "AGENT_DISCONNECT");
    assert_eq!(result.ctr["Agent"]["AgentInteractionDuration"], 30);
    let notes: Vec<&str> = view
        .steps
        .iter()
        .filter_map(|s| match &s.step {
            Step::Note { message, .. } => Some(message.as_str()),
            _ => None,
        })
        .collect();
    assert!(notes.contains(&"the agent comes from Omni-Channel routing of conversation c-1"), "{notes:?}");
}
