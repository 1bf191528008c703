//! Voxbridge's own sample flows (`crates/contacts/flows`, installed into `<data>/flows` by
//! `voxbridge serve`): every shipped flow and every Salesforce sample flow imports and
//! validates with functions bound to the built-ins, and scripted calls through the main ones
//! against a real server take the path they promise — the inbound flow still queues the call
//! when createVoiceCall fails twice, the callback subflow stores a number and creates a
//! callback, and the guide's recipes set the attributes they are about.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{json, Value};
use voxbridge_contacts::{
    validate_flow, CallerScript, ContactCenter, ContactResult, FlowLibrary, InboundCall, Step,
};
use voxbridge_flows::Severity;
use voxbridge_functions::telephony::{self, InvokeTelephonyIntegrationApi};
use voxbridge_functions::{Function, FunctionError, FunctionOptions, ManualClock, Registry};
use voxbridge_server::Settings;

use crate::harness::{fixture_dir, redact, TestServer, CALLER, CONTACT_ID, NOW_MS};

/// The shipped sample flows and their flows.toml.
fn samples_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/flows"))
}

/// The Salesforce sample exports in the shared fixtures, when that checkout is next to this
/// one; else the repository's verbatim copies of them.
fn shared_fixtures_dir() -> PathBuf {
    let shared = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures/flows"));
    if shared.is_dir() {
        shared
    } else {
        fixture_dir()
    }
}

const SALESFORCE_REST_NAME: &str = "InvokeSalesforceRestApiFunction";
const SALESFORCE_REST_PLACEHOLDER: &str = "%%INVOKE_SALESFORCE_REST_API_FUNCTION_ARN%%";

/// A built-in known by name only: validation resolves ARNs, it never invokes.
struct NameOnly(&'static str);

/// What `Function::invoke` returns (the trait is declared with `async_trait`).
type Invocation<'a> = Pin<Box<dyn Future<Output = Result<Value, FunctionError>> + Send + 'a>>;

impl Function for NameOnly {
    fn name(&self) -> &str {
        self.0
    }
    fn invoke<'s, 'a>(&'s self, _event: Value) -> Invocation<'a>
    where
        's: 'a,
        Self: 'a,
    {
        Box::pin(async { Err(FunctionError::failed("not invocable")) })
    }
}

/// The built-in functions and their placeholders, as `voxbridge flows validate` binds them.
fn builtins() -> Registry {
    let r = Registry::new();
    for (name, placeholder) in
        [(telephony::NAME, telephony::PLACEHOLDER), (SALESFORCE_REST_NAME, SALESFORCE_REST_PLACEHOLDER)]
    {
        r.register(Arc::new(NameOnly(name)), FunctionOptions::default());
        r.bind(placeholder, name);
    }
    r
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// Parameters as the console exports them: every scalar is a string.
fn non_string_scalars(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, v)| non_string_scalars(v, &format!("{path}.{k}"), out)),
        Value::Array(a) => {
            a.iter().enumerate().for_each(|(i, v)| non_string_scalars(v, &format!("{path}[{i}]"), out))
        }
        Value::String(_) => {}
        other => out.push(format!("{path} = {other}")),
    }
}

#[test]
fn every_shipped_flow_validates_cleanly_and_opens_in_a_designer() {
    let library = FlowLibrary::load_dir(&samples_dir()).unwrap();
    let registry = builtins();
    assert_eq!(library.flows().count(), json_files(&samples_dir()).len(), "flows.toml names every file");
    for f in library.flows() {
        let diagnostics = validate_flow(&f.flow, &registry, Some(&library));
        assert!(diagnostics.is_empty(), "{}: {diagnostics:#?}", f.name);
    }
    for path in json_files(&samples_dir()) {
        let text = std::fs::read_to_string(&path).unwrap();
        let raw: Value = serde_json::from_str(&text).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        assert_eq!(raw["Version"], "2019-10-30", "{name}");
        let mut bad = Vec::new();
        for (i, action) in raw["Actions"].as_array().unwrap().iter().enumerate() {
            non_string_scalars(&action["Parameters"], &format!("Actions[{i}].Parameters"), &mut bad);
            let id = action["Identifier"].as_str().unwrap();
            assert!(
                raw["Metadata"]["ActionMetadata"][id]["position"]["x"].is_number(),
                "{name}: no designer position for {id}"
            );
        }
        assert!(bad.is_empty(), "{name}: {bad:?}");
        // The export round-trips.
        let flow = voxbridge_flows::parse_flow(&text).unwrap();
        assert_eq!(flow.to_json(), raw, "{name}");
    }
    let numbers = library.numbers();
    assert!(
        numbers.contains(&(voxbridge_core::setup::DEMO_PHONE_NUMBER.into(), "Voxbridge Inbound Flow".into())),
        "{numbers:?}"
    );
}

#[test]
fn every_salesforce_sample_flow_imports_and_validates_without_errors() {
    let registry = builtins();
    let files = json_files(&shared_fixtures_dir());
    assert!(files.len() >= 23, "{files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let flow = voxbridge_flows::parse_flow(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let errors: Vec<_> = validate_flow(&flow, &registry, None)
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
}

// ---------------------------------------------------------------------------------------
// Scripted calls against a real server

/// The shipped flows in a temporary directory, with the demo org's queues declared under
/// their routing-map ARNs (as `voxbridge serve` adds them).
fn installed(server: &TestServer) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(samples_dir()).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    let mut toml = std::fs::read_to_string(dir.path().join("flows.toml")).unwrap();
    for q in &server.demo.queues {
        let id = q.external_id.rsplit('/').next().unwrap();
        toml.push_str(&format!(
            "\n[[queues]]\nname = \"{}\"\nid = \"{id}\"\narn = \"{}\"\n",
            q.developer_name, q.external_id
        ));
    }
    std::fs::write(dir.path().join("flows.toml"), toml).unwrap();
    dir
}

/// The real telephony function, except that the listed methods fail like an unreachable
/// Lambda.
struct Failing {
    inner: InvokeTelephonyIntegrationApi,
    methods: &'static [&'static str],
}

impl Function for Failing {
    fn name(&self) -> &str {
        telephony::NAME
    }
    fn invoke<'s, 'a>(&'s self, event: Value) -> Invocation<'a>
    where
        's: 'a,
        Self: 'a,
    {
        Box::pin(async move {
            let method = event["Details"]["Parameters"]["methodName"].as_str().unwrap_or("").to_string();
            if self.methods.contains(&method.as_str()) {
                return Err(FunctionError::failed(format!("{method} is down")));
            }
            self.inner.invoke(event).await
        })
    }
}

struct Samples {
    server: TestServer,
    center: ContactCenter,
    calls: std::sync::atomic::AtomicU32,
    _flows: tempfile::TempDir,
}

async fn samples(failing: &'static [&'static str]) -> Samples {
    let server = TestServer::start(Settings::default()).await;
    let flows = installed(&server);
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let library = Arc::new(FlowLibrary::load_dir(flows.path()).unwrap());
    let registry = Arc::new(Registry::new());
    let inner = server.telephony_function(clock.clone());
    registry.register(Arc::new(Failing { inner, methods: failing }), FunctionOptions::default());
    registry.bind(telephony::PLACEHOLDER, telephony::NAME);
    let center = ContactCenter::new(library, registry, clock);
    Samples { server, center, calls: Default::default(), _flows: flows }
}

impl Samples {
    /// A call with a fresh contact id (the first is [`CONTACT_ID`]): each creates its own
    /// VoiceCall, keyed by the contact id.
    async fn call(&self, to: &str, input: &str) -> ContactResult {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let contact_id = match n {
            0 => CONTACT_ID.to_string(),
            n => format!("c0ffee00-0000-4000-8000-{n:012}"),
        };
        self.center
            .simulate(InboundCall {
                to: to.into(),
                from: CALLER.into(),
                input: CallerScript::parse(input).unwrap(),
                contact_id: Some(contact_id),
            })
            .await
            .unwrap()
    }
}

/// `(methodName, error)` of every function call.
fn calls(result: &ContactResult) -> Vec<(String, Option<String>)> {
    result
        .steps
        .iter()
        .filter_map(|s| match &s.step {
            Step::Function { event, error, .. } => Some((
                event["Details"]["Parameters"]["methodName"].as_str().unwrap_or("").to_string(),
                error.clone(),
            )),
            _ => None,
        })
        .collect()
}

fn flows_entered(result: &ContactResult) -> Vec<String> {
    result
        .steps
        .iter()
        .filter_map(|s| match &s.step {
            Step::Flow { flow, .. } => Some(flow.clone()),
            _ => None,
        })
        .collect()
}

/// The event log for a snapshot: function events cut down to their parameters (the contact
/// data repeats what the other steps show), generated ids and durations redacted.
fn event_log(result: &ContactResult) -> Value {
    let mut steps = serde_json::to_value(&result.steps).unwrap();
    for step in steps.as_array_mut().unwrap() {
        if step["type"] == "function" {
            step["event"] = step["event"]["Details"]["Parameters"].clone();
        }
    }
    let log = json!({
        "disposition": result.disposition,
        "queue": result.queue.as_ref().map(|q| &q.name),
        "attributes": result.attributes,
        "steps": steps,
    });
    redact(&log, &["durationMs"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_sample_creates_the_voice_call_and_queues_in_support() {
    let s = samples(&[]).await;
    let result = s.call(&s.server.demo.phone_number, "").await;
    assert_eq!(result.disposition, "QUEUED", "{:#?}", result.steps);
    assert_eq!(result.queue.as_ref().unwrap().name, "Support");
    assert_eq!(flows_entered(&result), ["Voxbridge Inbound Flow", "Voxbridge Omni-Channel Subflow"]);
    let methods: Vec<String> = calls(&result).into_iter().map(|(m, _)| m).collect();
    assert_eq!(methods, ["createVoiceCall", "executeOmniFlow"]);
    let voice_call = result.voice_call_id.clone().expect("a VoiceCall");
    let (status, view) = s.server.inspect(CONTACT_ID).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["voiceCall"]["Id"], json!(voice_call));
    insta::assert_json_snapshot!(event_log(&result));
}

/// Voice resiliency: createVoiceCall fails twice, the flow records why and still routes; the
/// Omni-Channel subflow cannot route a call the CRM does not know, so the basic queue takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_sample_reaches_a_queue_when_create_voice_call_fails_twice() {
    let s = samples(&["createVoiceCall"]).await;
    let result = s.call(&s.server.demo.phone_number, "").await;
    assert_eq!(result.disposition, "QUEUED", "{:#?}", result.steps);
    let c = calls(&result);
    let methods: Vec<&str> = c.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(methods, ["createVoiceCall", "createVoiceCall", "executeOmniFlow"]);
    assert!(c[0].1.is_some() && c[1].1.is_some(), "{c:?}");
    assert_eq!(result.voice_call_id, None);
    assert!(result.attributes["error"].ends_with("failed."), "{:?}", result.attributes);
    assert_eq!(result.queue.as_ref().unwrap().name, "BasicQueue");
    insta::assert_json_snapshot!(event_log(&result));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_subflow_stores_the_number_and_creates_a_callback() {
    let s = samples(&[]).await;
    // A wrong number first: the subflow says so and asks again.
    let result = s.call("+15550100106", "12#,4155550199#").await;
    assert_eq!(result.attributes["callbackNumber"], "+14155550199", "{:#?}", result.steps);
    let commands: Vec<&str> = result
        .steps
        .iter()
        .filter_map(|s| match &s.step {
            Step::Command { command } => Some(command.as_str()),
            _ => None,
        })
        .collect();
    assert!(commands.contains(&"callback number +14155550199"), "{commands:?}");
    assert!(
        commands.iter().any(|c| c.starts_with("create callback to +14155550199 in queue BasicQueue")),
        "{commands:?}"
    );
    assert_eq!(result.disposition, "DISCONNECTED");
    insta::assert_json_snapshot!(event_log(&result));
}

/// The `callAttributes` createVoiceCall sent, as JSON.
fn call_attributes(result: &ContactResult) -> Value {
    let event = result
        .steps
        .iter()
        .find_map(|s| match &s.step {
            Step::Function { event, .. }
                if event["Details"]["Parameters"]["methodName"] == "createVoiceCall" =>
            {
                Some(event.clone())
            }
            _ => None,
        })
        .expect("createVoiceCall was invoked");
    let attributes = event["Details"]["ContactData"]["Attributes"].as_object().unwrap().clone();
    serde_json::from_str(&telephony::call_attributes(Some(&attributes))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_or_existing_case_recipe_sets_the_ivr_type_and_input() {
    let s = samples(&[]).await;
    let existing = s.call("+15550100102", "1,1234#").await;
    assert_eq!(existing.disposition, "QUEUED", "{:#?}", existing.steps);
    assert_eq!(existing.attributes["sfdc-IVRType__c"], "ExistingCase");
    assert_eq!(existing.attributes["sfdc-IVRInput__c"], "1234");
    assert_eq!(call_attributes(&existing)["IVRType__c"], "ExistingCase");
    assert_eq!(
        flows_entered(&existing),
        [
            "Voxbridge Recipe - New or Existing Case",
            "Voxbridge Recipe - Route To Agent",
            "Voxbridge Omni-Channel Subflow"
        ]
    );
    insta::assert_json_snapshot!(event_log(&existing));

    let new = s.call("+15550100102", "2").await;
    assert_eq!(new.attributes["sfdc-IVRType__c"], "NewCase");
    assert_eq!(new.attributes["sfdc-IVRInput__c"], "New Voice Case");
    assert_eq!(new.disposition, "QUEUED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_transfer_recipe_creates_the_voice_call_and_hangs_up() {
    let s = samples(&[]).await;
    let result = s.call("+15550100102", "3").await;
    assert_eq!(result.attributes["sfdc-IVRType__c"], "IVRTransfer");
    assert_eq!(call_attributes(&result)["IVRType__c"], "IVRTransfer");
    assert!(result.voice_call_id.is_some(), "{:#?}", result.steps);
    assert_eq!(result.disposition, "DISCONNECTED");
    assert_eq!(result.queue, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_recipes_set_what_they_promise_before_the_voice_call_is_created() {
    let s = samples(&[]).await;
    let cases: [(&str, &str, &str); 4] = [
        ("+15550100101", "sfdc-MyField__c", "Custom data from the IVR"),
        ("+15550100103", "sfdc-RecordTypeId", "012000000000000AAA"),
        ("+15550100104", "callRecordingDisabled", "true"),
        ("+15550100105", "NoSync", "true"),
    ];
    for (number, attribute, value) in cases {
        let result = s.call(number, "").await;
        assert_eq!(result.disposition, "QUEUED", "{number}: {:#?}", result.steps);
        assert_eq!(result.attributes.get(attribute).map(String::as_str), Some(value), "{number}");
        assert!(result.voice_call_id.is_some(), "{number}: {:#?}", result.steps);
        let sent = call_attributes(&result);
        if let Some(field) = attribute.strip_prefix("sfdc-") {
            assert_eq!(sent[field], value, "{number}: {sent}");
        }
        if attribute == "callRecordingDisabled" {
            let recording: Vec<&str> = result
                .steps
                .iter()
                .filter_map(|s| match &s.step {
                    Step::Command { command } if command.starts_with("record ") => Some(command.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(recording, ["record []"], "{number}");
        }
    }
    // The CRM half stored the IVR's data on the VoiceCall of the first call.
    let (status, view) = s.server.inspect(CONTACT_ID).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["voiceCall"]["MyField__c"], "Custom data from the IVR", "{view}");
}
