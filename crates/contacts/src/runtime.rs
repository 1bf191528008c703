//! The contact runtime: runs one contact through its flows by feeding the sans-IO interpreter
//! and carrying out its commands — prompts the caller "hears", digits from the caller's
//! script, function invocations through the [`Registry`] (with the block's time limit),
//! subflow transfers from the [`FlowLibrary`], queue placement — and records everything in an
//! event log, then builds the contact trace record and the contact events.
//!
//! Time comes from the [`Clock`] passed in plus the simulated time the caller spends (waiting
//! before keying, silences, timers), so with a fixed clock a run is deterministic. Nothing
//! sleeps: a caller's silence advances simulated time instead of waiting for it.
//!
//! The simulated caller hangs up once the contact is queued (there are no agents on the
//! telephony side yet), when their script says so, or when the flow waits for something the
//! simulator cannot give (a prompt loop with no end).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use voxbridge_flows::{
    AudioStream, Command, ContactState, Ended, Environment, Event, FunctionResult, Interpreter, LogKind,
    Prompt, QueueInfo, QueueOutcome,
};
use voxbridge_functions::{Clock, FunctionError, Registry};

use crate::library::{FlowLibrary, LibraryFlow, DEFAULT_QUEUE_CAPACITY};
use crate::queue::{EnqueueError, Queues};
use crate::record::{self, ContactTimeline, QueueVisit};
use crate::script::{collect, CallerInput, CallerScript};
use crate::sink::{ContactSink, NoSink};

/// Events one contact may feed the interpreter before the runtime gives up on it.
const MAX_EVENTS: usize = 2_000;
/// Timers a contact may fire before the simulated caller hangs up (prompt loops in queue).
const MAX_TIMERS: u32 = 3;

/// An inbound call to simulate.
#[derive(Debug, Clone, Default)]
pub struct InboundCall {
    /// The dialed number (bound to a flow).
    pub to: String,
    /// The caller's number.
    pub from: String,
    pub input: CallerScript,
    /// The ContactId to use (a fresh UUID when `None`).
    pub contact_id: Option<String>,
}

/// Why a call could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("no flow is bound to the number {0}")]
    NoFlowForNumber(String),
    #[error("{0:?} is not a phone number")]
    BadNumber(String),
}

/// One line of a contact's event log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogStep {
    /// ISO-8601 with milliseconds.
    pub at: String,
    #[serde(flatten)]
    pub step: Step,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Step {
    /// The contact entered a flow.
    #[serde(rename_all = "camelCase")]
    Flow {
        flow: String,
        flow_id: String,
    },
    /// An action ran (the interpreter's log line, with the branch taken).
    Action {
        action: String,
        message: String,
    },
    /// A note about an action (input received, …).
    Note {
        action: Option<String>,
        message: String,
    },
    Warning {
        action: Option<String>,
        message: String,
    },
    Error {
        action: Option<String>,
        message: String,
    },
    /// The caller heard a prompt.
    #[serde(rename_all = "camelCase")]
    Prompt {
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ssml: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        prompt_id: Option<String>,
    },
    /// The caller's answer to an input prompt.
    #[serde(rename_all = "camelCase")]
    Input {
        keys: Option<String>,
        timeout: bool,
        waited_seconds: u32,
    },
    #[serde(rename_all = "camelCase")]
    Function {
        arn: String,
        function: Option<String>,
        asynchronous: bool,
        event: Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        response: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        duration_ms: u64,
    },
    Attributes {
        set: BTreeMap<String, String>,
    },
    #[serde(rename_all = "camelCase")]
    WorkingQueue {
        name: String,
        arn: String,
    },
    Queue {
        name: String,
        arn: String,
        result: String,
    },
    /// Any other command the host carried out, described.
    Command {
        command: String,
    },
    /// The caller hung up.
    HangUp,
    Disconnect {
        reason: String,
    },
}

/// A queue as the result names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueRef {
    pub name: String,
    pub arn: String,
}

/// A finished contact: its event log and records.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactResult {
    pub contact_id: String,
    pub initial_contact_id: String,
    pub from: String,
    pub to: String,
    /// The flow the number is bound to.
    pub flow: String,
    /// How the flow ended: `QUEUED`, `DISCONNECTED`, `FLOW_ENDED`, `CUSTOMER_HUNG_UP`,
    /// `TRANSFERRED_TO_AGENT`, `TRANSFERRED_TO_THIRD_PARTY`, `ERROR`.
    pub disposition: String,
    pub disconnect_reason: String,
    /// The `voiceCallId` attribute, when the flow stored one.
    pub voice_call_id: Option<String>,
    /// The queue the contact was placed in.
    pub queue: Option<QueueRef>,
    pub attributes: BTreeMap<String, String>,
    pub steps: Vec<LogStep>,
    /// The contact trace record.
    pub ctr: Value,
    /// Contact events (EventBridge `aws.connect` envelopes), in order.
    pub contact_events: Vec<Value>,
}

/// The telephony side of one contact center: flows, numbers, queues and functions.
pub struct ContactCenter {
    library: Arc<FlowLibrary>,
    functions: Arc<Registry>,
    queues: Queues,
    clock: Arc<dyn Clock>,
    sink: Arc<dyn ContactSink>,
}

impl ContactCenter {
    pub fn new(library: Arc<FlowLibrary>, functions: Arc<Registry>, clock: Arc<dyn Clock>) -> ContactCenter {
        let queues = Queues::default();
        for q in &library.queues {
            queues.declare(&q.id, q.capacity.unwrap_or(DEFAULT_QUEUE_CAPACITY));
        }
        ContactCenter { library, functions, queues, clock, sink: Arc::new(NoSink) }
    }

    /// Sends every contact event and contact trace record to `sink` as they happen.
    pub fn with_sink(mut self, sink: Arc<dyn ContactSink>) -> ContactCenter {
        self.sink = sink;
        self
    }

    /// Replaces the sink of a contact center already built.
    pub fn set_sink(&mut self, sink: Arc<dyn ContactSink>) {
        self.sink = sink;
    }

    pub fn library(&self) -> &FlowLibrary {
        &self.library
    }

    pub fn functions(&self) -> &Arc<Registry> {
        &self.functions
    }

    pub fn queues(&self) -> &Queues {
        &self.queues
    }

    /// The snapshot the interpreter reads at `now_ms`.
    pub fn environment(&self, now_ms: i64) -> Environment {
        Environment {
            instance_arn: self.library.instance_arn.clone(),
            queues: self
                .library
                .queues
                .iter()
                .map(|q| QueueInfo {
                    id: q.id.clone(),
                    arn: self.library.queue_arn(q),
                    name: q.name.clone(),
                    outbound_caller_id: q.outbound_caller_id.clone(),
                    hours_of_operation_id: None,
                    metrics: self.queues.metrics(&q.id, now_ms),
                })
                .collect(),
            ..Environment::default()
        }
    }

    /// Runs an inbound call through the flow bound to its number, to the end.
    pub async fn simulate(&self, call: InboundCall) -> Result<ContactResult, CallError> {
        let to = crate::library::normalize_number(&call.to)
            .ok_or_else(|| CallError::BadNumber(call.to.clone()))?;
        let from = crate::library::normalize_number(&call.from)
            .ok_or_else(|| CallError::BadNumber(call.from.clone()))?;
        let flow = self.library.flow_for_number(&to).ok_or_else(|| CallError::NoFlowForNumber(to.clone()))?;
        let contact_id = call.contact_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut state = ContactState::inbound(contact_id.clone(), &from, &to);
        state.rng = seed(&contact_id);
        let run = Run {
            center: self,
            state,
            script: call.input,
            start_ms: self.clock.now_ms(),
            offset_ms: 0,
            steps: Vec::new(),
            seen_log: 0,
            queue: None,
            timers: 0,
            recording: false,
        };
        Ok(run.go(flow, from, to).await)
    }
}

/// A seed for `DistributeByPercentage` derived from the contact id (FNV-1a).
fn seed(contact_id: &str) -> u64 {
    contact_id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

struct Run<'c> {
    center: &'c ContactCenter,
    state: ContactState,
    script: CallerScript,
    start_ms: i64,
    /// Simulated time the caller spent (waits, silences, timers).
    offset_ms: i64,
    steps: Vec<LogStep>,
    /// Interpreter log entries already copied (counting dropped ones).
    seen_log: usize,
    queue: Option<QueueVisit>,
    timers: u32,
    recording: bool,
}

impl Run<'_> {
    fn now(&self) -> i64 {
        // The clock may be the system clock: read it each time, plus the simulated time.
        self.center.clock.now_ms().max(self.start_ms) + self.offset_ms
    }

    fn push(&mut self, step: Step) {
        let at = record::event_time(self.now());
        self.steps.push(LogStep { at, step });
    }

    async fn go(mut self, first: Arc<LibraryFlow>, from: String, to: String) -> ContactResult {
        let initiation_ms = self.now();
        let mut current = first.clone();
        self.push(Step::Flow { flow: current.name.clone(), flow_id: current.id.clone() });
        let mut pending = VecDeque::from([Event::Start]);
        let mut fed = 0;
        loop {
            let Some(event) = pending.pop_front() else {
                if self.state.ended().is_some() {
                    break;
                }
                // The flow waits for something the simulated caller cannot give: hang up.
                self.push(Step::HangUp);
                pending.push_back(Event::Disconnected);
                continue;
            };
            fed += 1;
            if fed > MAX_EVENTS {
                self.push(Step::Error {
                    action: None,
                    message: format!("the contact took more than {MAX_EVENTS} events; disconnecting"),
                });
                break;
            }
            let now = self.now();
            let env = self.center.environment(now);
            let commands = Interpreter::new(&current.flow, &env).step(&mut self.state, now, event);
            self.copy_log();
            for command in commands {
                if let Some(answer) = self.execute(command, &mut current).await {
                    pending.push_back(answer);
                }
            }
            if self.state.ended().is_some() && pending.is_empty() {
                break;
            }
        }
        self.finish(first, initiation_ms, from, to)
    }

    fn copy_log(&mut self) {
        let dropped = self.state.log_dropped();
        let start = self.seen_log.saturating_sub(dropped);
        let entries: Vec<_> = self.state.log().iter().skip(start).cloned().collect();
        self.seen_log = dropped + self.state.log().len();
        for e in entries {
            let at = record::event_time(e.at_ms);
            let step = match (e.kind, e.action) {
                (LogKind::Event, None) => continue,
                (LogKind::Event, action) => Step::Note { action, message: e.message },
                (LogKind::Action, Some(action)) => Step::Action { action, message: e.message },
                (LogKind::Action, None) => Step::Note { action: None, message: e.message },
                (LogKind::Warning, action) => Step::Warning { action, message: e.message },
                (LogKind::Error, action) => Step::Error { action, message: e.message },
            };
            self.steps.push(LogStep { at, step });
        }
    }

    /// Carries out one command; returns the event that answers it, if any.
    async fn execute(&mut self, command: Command, current: &mut Arc<LibraryFlow>) -> Option<Event> {
        match command {
            Command::PlayPrompt(p) => {
                self.push(prompt_step(&p));
                None
            }
            Command::PlayPromptsLoop(ps) => {
                for p in &ps {
                    self.push(prompt_step(p));
                }
                None
            }
            Command::CollectDigits(c) => match self.script.next_input() {
                Some(CallerInput::Keys { wait_seconds, keys })
                    if wait_seconds < c.first_digit_timeout_seconds =>
                {
                    self.offset_ms += i64::from(wait_seconds) * 1000;
                    let heard = collect(&keys, c.cancel_key, c.max_digits);
                    self.push(Step::Input {
                        keys: Some(heard.clone()),
                        timeout: false,
                        waited_seconds: wait_seconds,
                    });
                    Some(Event::InputDigits(heard))
                }
                Some(CallerInput::HangUp) => {
                    self.push(Step::HangUp);
                    Some(Event::Disconnected)
                }
                _ => {
                    let waited = c.first_digit_timeout_seconds;
                    self.offset_ms += i64::from(waited) * 1000;
                    self.push(Step::Input { keys: None, timeout: true, waited_seconds: waited });
                    Some(Event::InputTimeout)
                }
            },
            Command::InvokeFunction(inv) => {
                let limit = Duration::from_secs(u64::from(inv.timeout_seconds.max(1)));
                let invoked = self.center.functions.invoke(&inv.function_arn, inv.event.clone(), limit).await;
                let (response, error) = match &invoked.result {
                    Ok(v) => (Some(v.clone()), None),
                    Err(e) => (None, Some(e.to_string())),
                };
                self.push(Step::Function {
                    arn: inv.function_arn.clone(),
                    function: invoked.function.clone(),
                    asynchronous: inv.asynchronous,
                    event: inv.event,
                    response,
                    error,
                    duration_ms: invoked.duration.as_millis() as u64,
                });
                if inv.asynchronous {
                    return None;
                }
                Some(Event::FunctionResult(match invoked.result {
                    Ok(v) => FunctionResult::Ok(v),
                    Err(FunctionError::Timeout(_)) => FunctionResult::Timeout,
                    Err(e) => FunctionResult::Error(e.to_string()),
                }))
            }
            Command::SetAttributes(set) => {
                self.push(Step::Attributes { set: set.into_iter().collect() });
                None
            }
            Command::SetQueue(q) => {
                self.push(Step::WorkingQueue { name: q.name, arn: q.arn });
                None
            }
            Command::TransferToQueue(q) => {
                let now = self.now();
                let outcome = if q.agent_id.is_some() {
                    QueueOutcome::Failed("agent queues are not available on the telephony side yet".into())
                } else {
                    match self.center.queues.enqueue(&q.id, &self.state.contact_id, now) {
                        Ok(()) => {
                            self.queue = Some(QueueVisit {
                                name: q.name.clone(),
                                arn: q.arn.clone(),
                                enqueue_ms: now,
                                dequeue_ms: None,
                            });
                            QueueOutcome::Queued
                        }
                        Err(EnqueueError::AtCapacity) => QueueOutcome::AtCapacity,
                        Err(EnqueueError::UnknownQueue(id)) => QueueOutcome::Failed(format!("no queue {id}")),
                    }
                };
                let result = match &outcome {
                    QueueOutcome::Queued => "QUEUED".to_string(),
                    QueueOutcome::AtCapacity => "AT_CAPACITY".to_string(),
                    QueueOutcome::Failed(e) => format!("FAILED: {e}"),
                };
                self.push(Step::Queue { name: q.name, arn: q.arn, result });
                Some(Event::QueueResult(outcome))
            }
            Command::TransferToFlow { flow_id } => match self.center.library.get(&flow_id) {
                Some(next) => {
                    self.push(Step::Flow { flow: next.name.clone(), flow_id: next.id.clone() });
                    *current = next;
                    Some(Event::Start)
                }
                None => {
                    self.push(Step::Warning {
                        action: None,
                        message: format!("no flow {flow_id} in the library"),
                    });
                    Some(Event::TransferResult(Err(format!("no flow {flow_id}"))))
                }
            },
            Command::TransferToThirdParty { number, timeout_seconds, continue_flow } => {
                self.push(Step::Command {
                    command: format!(
                        "transfer to {number} (timeout {timeout_seconds} s, continue flow: {continue_flow}); \
                         the simulated party answers"
                    ),
                });
                Some(Event::TransferResult(Ok(())))
            }
            Command::StartMediaStreaming { .. } => {
                let arn = &self.center.library.instance_arn;
                let region = arn.split(':').nth(3).unwrap_or("");
                let account = arn.split(':').nth(4).unwrap_or("");
                let stream = AudioStream {
                    stream_arn: format!(
                        "arn:aws:kinesisvideo:{region}:{account}:stream/voxbridge-contact-{}",
                        self.state.contact_id
                    ),
                    start_timestamp: Some(self.now().to_string()),
                    stop_timestamp: None,
                    start_fragment_number: Some("0".into()),
                };
                self.push(Step::Command {
                    command: format!("start media streaming to {}", stream.stream_arn),
                });
                Some(Event::MediaStreamStarted(Ok(stream)))
            }
            Command::StartTimer { seconds } => {
                self.offset_ms += i64::from(seconds) * 1000;
                if self.timers < MAX_TIMERS {
                    self.timers += 1;
                    self.push(Step::Command { command: format!("timer of {seconds} s fired") });
                    Some(Event::TimerFired)
                } else {
                    self.push(Step::HangUp);
                    Some(Event::Disconnected)
                }
            }
            Command::SetRecording { recorded_participants, analytics } => {
                self.recording = !recorded_participants.is_empty();
                self.push(Step::Command {
                    command: format!(
                        "record {recorded_participants:?}{}",
                        analytics.map(|a| format!(", analytics {a}")).unwrap_or_default()
                    ),
                });
                None
            }
            Command::Disconnect => {
                self.push(Step::Command { command: "disconnect".into() });
                None
            }
            Command::EndFlow => {
                self.push(Step::Command { command: "end flow".into() });
                None
            }
            // Flow logs repeat the execution log already copied.
            Command::Log(_) => None,
            other => {
                self.push(Step::Command { command: describe(&other) });
                None
            }
        }
    }

    fn finish(
        mut self,
        first: Arc<LibraryFlow>,
        initiation_ms: i64,
        from: String,
        to: String,
    ) -> ContactResult {
        let ended = self.state.ended().cloned();
        let reason = record::disconnect_reason(ended.as_ref()).to_string();
        self.push(Step::Disconnect { reason: reason.clone() });
        let disconnect_ms = self.now();
        self.center.queues.remove(&self.state.contact_id);
        if let Some(q) = &mut self.queue {
            q.dequeue_ms = Some(disconnect_ms);
        }
        let timeline = ContactTimeline {
            contact_id: self.state.contact_id.clone(),
            initial_contact_id: self.state.initial_contact_id.clone(),
            previous_contact_id: self.state.previous_contact_id.clone(),
            channel: self.state.channel.clone(),
            initiation_method: self.state.initiation_method.clone(),
            instance_arn: self.center.library.instance_arn.clone(),
            customer_endpoint: self.state.customer_endpoint.clone(),
            system_endpoint: self.state.system_endpoint.clone(),
            attributes: self.state.attributes.clone(),
            initiation_ms,
            // Inbound contacts are connected to the system when they arrive.
            connected_to_system_ms: Some(initiation_ms),
            queue: self.queue.clone(),
            disconnect_ms,
            disconnect_reason: Some(reason.clone()),
            recording: self.recording,
        };
        let ctr = record::contact_trace_record(&timeline);
        let contact_events = record::contact_events(&timeline, || uuid::Uuid::new_v4().to_string());
        for e in &contact_events {
            self.center.sink.contact_event(e);
        }
        self.center.sink.contact_ended(&ctr);
        let disposition = match ended {
            Some(Ended::Queued) => "QUEUED",
            Some(Ended::Disconnected) => "DISCONNECTED",
            Some(Ended::FlowEnded) => "FLOW_ENDED",
            Some(Ended::CustomerHungUp) => "CUSTOMER_HUNG_UP",
            Some(Ended::TransferredToAgent) => "TRANSFERRED_TO_AGENT",
            Some(Ended::TransferredToThirdParty) => "TRANSFERRED_TO_THIRD_PARTY",
            Some(Ended::Error) | None => "ERROR",
        };
        ContactResult {
            contact_id: self.state.contact_id.clone(),
            initial_contact_id: self.state.initial_contact_id.clone(),
            from,
            to,
            flow: first.name.clone(),
            disposition: disposition.to_string(),
            disconnect_reason: reason,
            voice_call_id: self.state.attributes.get("voiceCallId").filter(|v| !v.is_empty()).cloned(),
            queue: self.queue.as_ref().map(|q| QueueRef { name: q.name.clone(), arn: q.arn.clone() }),
            attributes: self.state.attributes.clone(),
            steps: self.steps,
            ctr,
            contact_events,
        }
    }
}

fn prompt_step(p: &Prompt) -> Step {
    match p {
        Prompt::Text(t) => Step::Prompt { text: Some(t.clone()), ssml: None, prompt_id: None },
        Prompt::Ssml(s) => Step::Prompt { text: None, ssml: Some(s.clone()), prompt_id: None },
        Prompt::PromptId(id) => Step::Prompt { text: None, ssml: None, prompt_id: Some(id.clone()) },
    }
}

fn describe(c: &Command) -> String {
    match c {
        Command::TransferToAgent => "transfer to agent".into(),
        Command::CompleteOutboundCall { caller_id } => {
            format!("complete outbound call (caller id {})", caller_id.as_deref().unwrap_or("default"))
        }
        Command::CreateCallback(cb) => format!(
            "create callback to {} in queue {} after {} s ({} attempts, {} s apart)",
            cb.number, cb.queue.name, cb.initial_delay_seconds, cb.maximum_attempts, cb.retry_delay_seconds
        ),
        Command::SetCallbackNumber(n) => format!("callback number {n}"),
        Command::StopMediaStreaming => "stop media streaming".into(),
        Command::SetEventHook { hook, flow_id } => format!("event hook {hook} -> {flow_id}"),
        Command::SetFlowLogging(on) => format!("flow logging {}", if *on { "on" } else { "off" }),
        Command::SetVoice(v) => format!("text-to-speech voice {v}"),
        Command::UpdateContactData(fields) => format!("contact data {}", json!(fields)),
        Command::SetRoutingCriteria(v) => format!("routing criteria {v}"),
        other => format!("{other:?}"),
    }
}
