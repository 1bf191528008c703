//! The sans-IO interpreter: the host feeds an [`Event`] and the current time, the interpreter
//! runs actions until it must wait for the world, and hands back [`Command`]s to execute in
//! order.
//!
//! Nothing here blocks, reads a clock or does IO. Every action either moves on at once (setting
//! attributes, comparing, playing a prompt — playback is the host's job and completes before the
//! next command starts) or asks the host for something and waits (digits, a function result, a
//! queue placement, a flow or third-party transfer, a media stream, a timer). Each event may run
//! at most [`Environment::step_budget`] actions, so a flow that loops without waiting is
//! disconnected with a logged error instead of spinning.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use crate::model::{Action, ActionKind, Flow};
use crate::params::{scalar, truthy, InputValidation, Params, PromptSpec};
use crate::path;
use crate::phone;
use crate::state::{
    AgentInfo, AudioStream, ContactState, Ended, Environment, LogKind, Position, TargetQueue, Wait,
};

/// Amazon Connect's limit on all user-defined attributes of a contact (UTF-8 bytes).
pub const MAX_ATTRIBUTES_BYTES: usize = 32_768;
/// The largest Lambda response Amazon Connect accepts (UTF-8 bytes).
pub const MAX_RESPONSE_BYTES: usize = 32_768;

/// Something the host observed.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Run this flow from its `StartAction` (a new contact, or the flow a `TransferToFlow` named).
    Start,
    /// The keys the caller pressed for a [`Command::CollectDigits`], termination keys included or not.
    InputDigits(String),
    /// No key was pressed before the first-digit timeout.
    InputTimeout,
    FunctionResult(FunctionResult),
    QueueResult(QueueOutcome),
    /// Outcome of [`Command::TransferToFlow`] (only failures are expected: on success the host
    /// sends [`Event::Start`] to the next flow) or of [`Command::TransferToThirdParty`].
    TransferResult(Result<(), String>),
    /// Outcome of [`Command::StartMediaStreaming`].
    MediaStreamStarted(Result<AudioStream, String>),
    AgentConnected(AgentInfo),
    /// The timer of the last [`Command::StartTimer`] fired.
    TimerFired,
    /// The caller hung up.
    Disconnected,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FunctionResult {
    /// The function returned this JSON.
    Ok(Value),
    /// It threw, was unreachable or was throttled past the retries.
    Error(String),
    /// It did not answer within the invocation's time limit.
    Timeout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueOutcome {
    Queued,
    AtCapacity,
    Failed(String),
}

/// What to play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    Text(String),
    Ssml(String),
    PromptId(String),
}

/// Parameters of a DTMF collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectDigits {
    /// `None` for "until the termination sequence or the inter-digit timeout".
    pub max_digits: Option<u32>,
    pub first_digit_timeout_seconds: u32,
    pub inter_digit_timeout_seconds: u32,
    pub termination_sequence: Option<String>,
    /// Whether `*` clears the keys entered so far (the collector applies it).
    pub cancel_key: bool,
}

/// A Lambda invocation: `event` has the `ContactFlowEvent` shape Lambda handlers expect.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub function_arn: String,
    pub event: Value,
    pub timeout_seconds: u32,
    /// Asynchronous invocations are not awaited; their id is `$.LambdaInvocation.InvocationId`.
    pub asynchronous: bool,
    pub invocation_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub queue: TargetQueue,
    pub number: String,
    pub initial_delay_seconds: u32,
    pub maximum_attempts: u32,
    pub retry_delay_seconds: u32,
    pub contact_flow_id: Option<String>,
    pub caller_id: Option<String>,
}

/// Something the host must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    PlayPrompt(Prompt),
    /// Play these prompts in a loop until the flow moves on (`MessageParticipantIteratively`).
    PlayPromptsLoop(Vec<Prompt>),
    /// Collect keys; answer with [`Event::InputDigits`] or [`Event::InputTimeout`].
    CollectDigits(CollectDigits),
    /// Answer with [`Event::FunctionResult`] unless asynchronous.
    InvokeFunction(Invocation),
    /// Changed contact attributes, to persist (the CTR keeps them).
    SetAttributes(Vec<(String, String)>),
    SetQueue(TargetQueue),
    /// Answer with [`Event::QueueResult`].
    TransferToQueue(TargetQueue),
    TransferToAgent,
    /// Load the flow and send it [`Event::Start`] with this state, or report failure with
    /// [`Event::TransferResult`].
    TransferToFlow {
        flow_id: String,
    },
    /// Answer with [`Event::TransferResult`].
    TransferToThirdParty {
        number: String,
        timeout_seconds: u32,
        continue_flow: bool,
    },
    CompleteOutboundCall {
        caller_id: Option<String>,
    },
    CreateCallback(Callback),
    SetCallbackNumber(String),
    SetRecording {
        recorded_participants: Vec<String>,
        analytics: Option<Value>,
    },
    /// Answer with [`Event::MediaStreamStarted`].
    StartMediaStreaming {
        participants: Value,
    },
    StopMediaStreaming,
    SetEventHook {
        hook: String,
        flow_id: String,
    },
    SetFlowLogging(bool),
    SetVoice(String),
    UpdateContactData(Vec<(String, String)>),
    SetRoutingCriteria(Value),
    /// Answer with [`Event::TimerFired`] after this many seconds.
    StartTimer {
        seconds: u32,
    },
    Disconnect,
    EndFlow,
    /// A flow log line (emitted while `UpdateFlowLoggingBehavior` is Enabled, and for errors).
    Log(String),
}

/// Runs one flow for any number of contacts; cheap to create (two references).
pub struct Interpreter<'a> {
    flow: &'a Flow,
    env: &'a Environment,
}

enum Next {
    Goto(usize),
    Wait(usize, Wait),
    End(Ended),
    Stay,
}

impl<'a> Interpreter<'a> {
    pub fn new(flow: &'a Flow, env: &'a Environment) -> Interpreter<'a> {
        Interpreter { flow, env }
    }

    /// Feeds one event at `now_ms` (epoch milliseconds) and returns the commands to execute.
    pub fn step(&self, state: &mut ContactState, now_ms: i64, event: Event) -> Vec<Command> {
        state.now_ms = now_ms;
        let mut run =
            Run { flow: self.flow, env: self.env, state, out: Vec::new(), label: Cow::Borrowed("") };
        let next = run.on_event(event);
        run.drive(next);
        run.out
    }
}

struct Run<'a, 's> {
    flow: &'a Flow,
    env: &'a Environment,
    state: &'s mut ContactState,
    out: Vec<Command>,
    /// The branch the current action took, for its log line.
    label: Cow<'static, str>,
}

impl Run<'_, '_> {
    fn on_event(&mut self, event: Event) -> Next {
        let summary = event_summary(&event);
        self.state.push_log(None, LogKind::Event, summary);
        if let Event::Start = event {
            self.state.loop_counters.clear();
            return match self.flow.position(&self.flow.start_action) {
                Some(i) => Next::Goto(i),
                None => self.fail(
                    None,
                    format!("StartAction {:?} is not an action of the flow", self.flow.start_action),
                ),
            };
        }
        if let Event::Disconnected = event {
            return Next::End(Ended::CustomerHungUp);
        }
        if let Event::AgentConnected(agent) = event {
            self.state.agent = Some(agent);
            return Next::Stay;
        }
        let (i, wait) = match self.state.position {
            Position::Waiting { action, wait } => (action, wait),
            _ => {
                self.state.push_log(
                    None,
                    LogKind::Warning,
                    "ignored: the flow is not waiting for an event".into(),
                );
                return Next::Stay;
            }
        };
        let Some(action) = self.flow.actions.get(i) else {
            return self.fail(None, "the contact is positioned outside this flow".into());
        };
        let next = match (wait, event) {
            (Wait::Digits, Event::InputDigits(d)) => self.input_result(action, Some(d)),
            (Wait::Digits, Event::InputTimeout) => self.input_result(action, None),
            (Wait::Function, Event::FunctionResult(r)) => self.function_result(action, r),
            (Wait::Queue, Event::QueueResult(QueueOutcome::Queued)) => {
                self.label = "queued".into();
                Next::End(Ended::Queued)
            }
            (Wait::Queue, Event::QueueResult(QueueOutcome::AtCapacity)) => {
                self.error(action, "QueueAtCapacity")
            }
            (Wait::Queue, Event::QueueResult(QueueOutcome::Failed(e))) => {
                self.note(action, format!("queue transfer failed: {e}"));
                self.error(action, "NoMatchingError")
            }
            (Wait::Transfer, Event::TransferResult(Ok(()))) => {
                if action.kind == ActionKind::TransferParticipantToThirdParty
                    && truthy(action.param_str("ContinueFlowExecution"))
                {
                    self.success(action)
                } else if action.kind == ActionKind::TransferParticipantToThirdParty {
                    self.label = "transferred".into();
                    Next::End(Ended::TransferredToThirdParty)
                } else {
                    self.label = "transferred".into();
                    Next::End(Ended::FlowEnded)
                }
            }
            (Wait::Transfer, Event::TransferResult(Err(e))) => {
                self.note(action, format!("transfer failed: {e}"));
                self.error(action, "NoMatchingError")
            }
            (Wait::MediaStream, Event::MediaStreamStarted(Ok(mut stream))) => {
                if stream.start_timestamp.is_none() {
                    stream.start_timestamp = Some(self.state.now_ms.to_string());
                }
                self.state.customer_audio = Some(stream);
                self.success(action)
            }
            (Wait::MediaStream, Event::MediaStreamStarted(Err(e))) => {
                self.note(action, format!("media streaming failed: {e}"));
                self.error(action, "NoMatchingError")
            }
            (Wait::Timer, Event::TimerFired) => {
                self.condition(action, "MessagesInterrupted").unwrap_or_else(|| {
                    self.label = "still playing".into();
                    Next::Wait(i, Wait::Timer)
                })
            }
            (wait, other) => {
                let msg = format!("ignored {}: waiting for {wait:?}", event_summary(&other));
                self.state.push_log(Some(&action.identifier), LogKind::Warning, msg);
                return Next::Stay;
            }
        };
        self.log_action(action, "resumed");
        next
    }

    fn drive(&mut self, mut next: Next) {
        let mut budget = self.env.step_budget;
        loop {
            match next {
                Next::Goto(i) => {
                    if budget == 0 {
                        let msg = format!(
                            "stopped after {} actions without waiting for the caller or the host; disconnecting",
                            self.env.step_budget
                        );
                        next = self.fail(self.flow.actions.get(i).map(|a| a.identifier.clone()), msg);
                        continue;
                    }
                    budget -= 1;
                    next = self.execute(i);
                }
                Next::Wait(i, wait) => {
                    self.state.position = Position::Waiting { action: i, wait };
                    return;
                }
                Next::End(e) => {
                    self.state.position = Position::Ended(e);
                    return;
                }
                Next::Stay => return,
            }
        }
    }

    /// Stops the contact: logs, disconnects.
    fn fail(&mut self, action: Option<String>, message: String) -> Next {
        self.out.push(Command::Log(format!("error: {message}")));
        self.state.push_log(action.as_deref(), LogKind::Error, message);
        self.out.push(Command::Disconnect);
        Next::End(Ended::Error)
    }

    fn note(&mut self, action: &Action, message: String) {
        self.state.push_log(Some(&action.identifier), LogKind::Warning, message);
    }

    fn log_action(&mut self, action: &Action, message: &str) {
        let mut line = String::with_capacity(64);
        let _ = write!(line, "{}: {message}", action.kind);
        if !self.label.is_empty() {
            let _ = write!(line, " -> {}", self.label);
        }
        self.label = Cow::Borrowed("");
        if self.state.flow_logging {
            self.out.push(Command::Log(format!("{} {line}", action.identifier)));
        }
        self.state.push_log(Some(&action.identifier), LogKind::Action, line);
    }

    fn goto(&mut self, action: &Action, target: &str, label: Cow<'static, str>) -> Next {
        match self.flow.position(target) {
            Some(i) => {
                self.label = label;
                Next::Goto(i)
            }
            None => {
                self.fail(Some(action.identifier.clone()), format!("branch target {target:?} does not exist"))
            }
        }
    }

    fn success(&mut self, action: &Action) -> Next {
        match &action.transitions.next_action {
            Some(t) => self.goto(action, t, Cow::Borrowed("next")),
            None => self.fail(Some(action.identifier.clone()), "the success branch is not connected".into()),
        }
    }

    /// Takes the `error_type` branch, else `NoMatchingError`, else stops the contact.
    fn error(&mut self, action: &Action, error_type: &'static str) -> Next {
        let t = &action.transitions;
        if let Some(target) = t.error_target(error_type) {
            return self.goto(action, target, Cow::Owned(format!("error {error_type}")));
        }
        if let Some(target) = t.error_target("NoMatchingError") {
            return self.goto(
                action,
                target,
                Cow::Owned(format!("error {error_type} (NoMatchingError branch)")),
            );
        }
        self.fail(Some(action.identifier.clone()), format!("error {error_type} has no branch to take"))
    }

    /// The first condition `value` satisfies, if any.
    fn condition(&mut self, action: &Action, value: &str) -> Option<Next> {
        let c = action.transitions.conditions().iter().find(|c| c.condition.matches(value))?;
        let label = format!(
            "condition {} {:?}",
            c.condition.operator.as_str(),
            c.condition.operands.first().map(String::as_str).unwrap_or("")
        );
        Some(self.goto(action, &c.next_action, Cow::Owned(label)))
    }

    fn value(&self, raw: &str) -> Option<String> {
        path::value(self.state, self.env, raw).map(Cow::into_owned)
    }

    fn param_value(&self, action: &Action, key: &str) -> Option<String> {
        let raw = scalar(action.param(key))?;
        self.value(&raw).filter(|v| !v.is_empty())
    }

    fn prompt(&self, spec: &PromptSpec) -> Prompt {
        let i = |t: &str| path::interpolate(self.state, self.env, t).into_owned();
        match spec {
            PromptSpec::Text(t) => Prompt::Text(i(t)),
            PromptSpec::Ssml(s) => Prompt::Ssml(i(s)),
            PromptSpec::PromptId(p) => Prompt::PromptId(i(p)),
        }
    }

    fn execute(&mut self, i: usize) -> Next {
        let flow = self.flow;
        let Some(a) = flow.actions.get(i) else {
            return self.fail(None, "jumped outside the flow".into());
        };
        let (message, next) = self.run_action(i, a);
        self.log_action(a, &message);
        next
    }

    fn run_action(&mut self, i: usize, a: &Action) -> (String, Next) {
        match (&a.kind, &a.params) {
            (ActionKind::UpdateContactAttributes, Params::Attributes { attributes, target_contact }) => {
                self.update_attributes(a, attributes, target_contact.as_deref())
            }
            (ActionKind::MessageParticipant, Params::Message(spec)) => match spec {
                Some(spec) => {
                    let p = self.prompt(spec);
                    let msg = format!("play {}", prompt_summary(&p));
                    self.out.push(Command::PlayPrompt(p));
                    (msg, self.success(a))
                }
                None => ("no prompt to play".into(), self.error(a, "NoMatchingError")),
            },
            (ActionKind::MessageParticipantIteratively, Params::Messages { prompts, interrupt_seconds }) => {
                let prompts: Vec<Prompt> = prompts.iter().map(|p| self.prompt(p)).collect();
                let n = prompts.len();
                self.out.push(Command::PlayPromptsLoop(prompts));
                let seconds = interrupt_seconds.as_deref().and_then(|s| s.trim().parse::<u32>().ok());
                if let Some(seconds) = seconds {
                    self.out.push(Command::StartTimer { seconds });
                }
                self.label = "wait".into();
                (
                    format!("play {n} prompts in a loop, interrupt every {seconds:?} s"),
                    Next::Wait(i, Wait::Timer),
                )
            }
            (ActionKind::GetParticipantInput, Params::Input(p)) => {
                if let Some(spec) = &p.prompt {
                    let prompt = self.prompt(spec);
                    self.out.push(Command::PlayPrompt(prompt));
                }
                let store = truthy(p.store_input.as_deref());
                let first = parse_u32(p.time_limit_seconds.as_deref()).unwrap_or(5);
                let inter = parse_u32(p.interdigit_seconds.as_deref()).unwrap_or(5);
                let max_digits = if !store {
                    Some(1)
                } else {
                    match &p.validation {
                        Some(InputValidation::Custom { maximum_length }) => {
                            Some(parse_u32(maximum_length.as_deref()).unwrap_or(20))
                        }
                        _ => Some(20),
                    }
                };
                let collect = CollectDigits {
                    max_digits,
                    first_digit_timeout_seconds: first,
                    inter_digit_timeout_seconds: inter,
                    termination_sequence: p.termination_sequence.clone().filter(|t| store && !t.is_empty()),
                    cancel_key: store && !truthy(p.disable_cancel_key.as_deref()),
                };
                self.out.push(Command::CollectDigits(collect));
                self.label = "wait".into();
                (format!("collect {} digit(s)", max_digits.unwrap_or(0)), Next::Wait(i, Wait::Digits))
            }
            (ActionKind::InvokeLambdaFunction, Params::Lambda(l)) => {
                let Some(arn) =
                    l.function_arn.as_deref().and_then(|r| self.value(r)).filter(|s| !s.is_empty())
                else {
                    return ("no function ARN".into(), self.error(a, "NoMatchingError"));
                };
                let asynchronous = l.invocation_type.as_deref() == Some("ASYNCHRONOUS");
                let max = if asynchronous { 60 } else { 8 };
                let timeout = parse_u32(l.time_limit_seconds.as_deref()).unwrap_or(8).clamp(1, max);
                let mut parameters = Map::new();
                for (k, v) in &l.attributes {
                    parameters.insert(k.clone(), Value::String(self.value(v).unwrap_or_default()));
                }
                self.state.invocations += 1;
                let invocation_id = format!("{}-{}", self.state.contact_id, self.state.invocations);
                let event = json!({
                    "Details": { "ContactData": contact_data(self.state, self.env), "Parameters": parameters },
                    "Name": "ContactFlowEvent",
                });
                let msg =
                    format!("invoke {arn} ({}, {timeout} s)", if asynchronous { "async" } else { "sync" });
                self.out.push(Command::InvokeFunction(Invocation {
                    function_arn: arn,
                    event,
                    timeout_seconds: timeout,
                    asynchronous,
                    invocation_id: invocation_id.clone(),
                }));
                if asynchronous {
                    self.state.lambda_invocation_id = Some(invocation_id);
                    (msg, self.success(a))
                } else {
                    self.label = "wait".into();
                    (msg, Next::Wait(i, Wait::Function))
                }
            }
            (ActionKind::Compare, _) => {
                let value = self.param_value(a, "ComparisonValue").unwrap_or_default();
                let msg = format!("value {value:?}");
                let next = self.condition(a, &value).unwrap_or_else(|| self.error(a, "NoMatchingCondition"));
                (msg, next)
            }
            (ActionKind::Loop, _) => {
                let count = match self.param_value(a, "LoopCount").map(|c| c.trim().parse::<u32>()) {
                    Some(Ok(n)) => n,
                    _ => {
                        self.note(a, "LoopCount is not a whole number; looping 0 times".into());
                        0
                    }
                };
                let done = self.state.loop_counters.get(&i).copied().unwrap_or(0);
                let (result, msg) = if done < count {
                    self.state.loop_counters.insert(i, done + 1);
                    ("ContinueLooping", format!("iteration {} of {count}", done + 1))
                } else {
                    // A finished loop starts over the next time the flow enters it.
                    self.state.loop_counters.remove(&i);
                    ("DoneLooping", format!("done after {count}"))
                };
                let next = self.condition(a, result).unwrap_or_else(|| self.success(a));
                (msg, next)
            }
            (ActionKind::DistributeByPercentage, _) => {
                let roll = (self.state.next_random() % 100 + 1).to_string();
                let next = self.condition(a, &roll).unwrap_or_else(|| self.error(a, "NoMatchingCondition"));
                (format!("drew {roll}"), next)
            }
            (ActionKind::CheckMetricData, _) => self.check_metric(a),
            (ActionKind::CheckHoursOfOperation, _) => self.check_hours(a),
            (ActionKind::UpdateContactTargetQueue, _) => self.set_queue(a),
            (ActionKind::TransferContactToQueue, _) => match &self.state.queue {
                Some(q) => {
                    let msg = format!("transfer to queue {:?}", q.name);
                    self.out.push(Command::TransferToQueue(q.clone()));
                    self.label = "wait".into();
                    (msg, Next::Wait(i, Wait::Queue))
                }
                None => ("no working queue is set".into(), self.error(a, "NoMatchingError")),
            },
            (ActionKind::TransferToFlow, _) => match self.param_value(a, "ContactFlowId") {
                Some(flow_id) => {
                    let msg = format!("transfer to flow {flow_id}");
                    self.out.push(Command::TransferToFlow { flow_id });
                    self.label = "wait".into();
                    (msg, Next::Wait(i, Wait::Transfer))
                }
                None => ("the flow id is empty".into(), self.error(a, "NoMatchingError")),
            },
            (ActionKind::TransferContactToAgent, _) => {
                self.out.push(Command::TransferToAgent);
                self.label = "end".into();
                ("transfer to agent".into(), Next::End(Ended::TransferredToAgent))
            }
            (ActionKind::TransferParticipantToThirdParty, _) => {
                let number = self.param_value(a, "ThirdPartyPhoneNumber").unwrap_or_default();
                if !phone::is_e164(&number) {
                    return (format!("{number:?} is not an E.164 number"), self.error(a, "NoMatchingError"));
                }
                let timeout_seconds =
                    parse_u32(a.param_str("ThirdPartyConnectionTimeLimitSeconds")).unwrap_or(30);
                let continue_flow = truthy(a.param_str("ContinueFlowExecution"));
                let msg = format!("transfer to {number}");
                self.out.push(Command::TransferToThirdParty { number, timeout_seconds, continue_flow });
                self.label = "wait".into();
                (msg, Next::Wait(i, Wait::Transfer))
            }
            (ActionKind::CompleteOutboundCall, _) => {
                let caller_id = a
                    .param("CallerId")
                    .and_then(|c| scalar(c.get("Number")))
                    .and_then(|raw| self.value(&raw))
                    .filter(|s| !s.is_empty());
                let msg = format!("complete outbound call, caller id {caller_id:?}");
                self.out.push(Command::CompleteOutboundCall { caller_id });
                (msg, self.success(a))
            }
            (ActionKind::CreateCallbackContact, Params::Callback(c)) => self.create_callback(a, c),
            (ActionKind::UpdateContactCallbackNumber, _) => {
                let number = self.param_value(a, "CallbackNumber").unwrap_or_default();
                if !phone::is_e164(&number) {
                    (format!("{number:?} is not an E.164 number"), self.error(a, "InvalidCallbackNumber"))
                } else if !phone::is_dialable(&number, &self.env.dialable_country_codes) {
                    (format!("{number} is not dialable"), self.error(a, "CallbackNumberNotDialable"))
                } else {
                    let msg = format!("callback number {number}");
                    self.state.callback_number = Some(number.clone());
                    self.out.push(Command::SetCallbackNumber(number));
                    (msg, self.success(a))
                }
            }
            (ActionKind::UpdateContactRecordingBehavior, _) => {
                let recorded: Vec<String> = a
                    .param("RecordingBehavior")
                    .and_then(|r| r.get("RecordedParticipants"))
                    .and_then(Value::as_array)
                    .map(|l| l.iter().filter_map(|v| scalar(Some(v))).collect())
                    .unwrap_or_else(|| self.state.recorded_participants.clone());
                let analytics = a.param("AnalyticsBehavior").cloned();
                let msg = format!(
                    "record {recorded:?}, analytics {}",
                    if analytics.is_some() { "on" } else { "off" }
                );
                self.state.recorded_participants = recorded.clone();
                self.out.push(Command::SetRecording { recorded_participants: recorded, analytics });
                (msg, self.success(a))
            }
            (ActionKind::UpdateContactMediaStreamingBehavior, _) => {
                if a.param_str("MediaStreamingState") == Some("Enabled") {
                    let participants = a.param("Participants").cloned().unwrap_or(Value::Array(Vec::new()));
                    self.out.push(Command::StartMediaStreaming { participants });
                    self.label = "wait".into();
                    ("start media streaming".into(), Next::Wait(i, Wait::MediaStream))
                } else {
                    let now = self.state.now_ms.to_string();
                    if let Some(s) = &mut self.state.customer_audio {
                        s.stop_timestamp = Some(now);
                    }
                    self.out.push(Command::StopMediaStreaming);
                    ("stop media streaming".into(), self.success(a))
                }
            }
            (ActionKind::UpdateContactEventHooks, _) => {
                let hook = a.param("EventHooks").and_then(Value::as_object).and_then(|m| m.iter().next());
                let Some((name, raw)) = hook else {
                    return ("no event hook".into(), self.error(a, "NoMatchingError"));
                };
                match scalar(Some(raw)).and_then(|r| self.value(&r)).filter(|s| !s.is_empty()) {
                    Some(flow_id) => {
                        let msg = format!("{name} = {flow_id}");
                        self.state.event_hooks.insert(name.clone(), flow_id.clone());
                        self.out.push(Command::SetEventHook { hook: name.clone(), flow_id });
                        (msg, self.success(a))
                    }
                    None => (format!("{name} has no flow"), self.error(a, "NoMatchingError")),
                }
            }
            (ActionKind::UpdateFlowLoggingBehavior, _) => {
                let on = a.param_str("FlowLoggingBehavior") == Some("Enabled");
                self.state.flow_logging = on;
                self.out.push(Command::SetFlowLogging(on));
                (format!("flow logging {}", if on { "on" } else { "off" }), self.success(a))
            }
            (ActionKind::UpdateContactData, _) => self.update_contact_data(a),
            (ActionKind::UpdateContactTextToSpeechVoice, _) => match self.param_value(a, "TextToSpeechVoice")
            {
                Some(voice) => {
                    let msg = format!("voice {voice}");
                    self.state.text_to_speech_voice = voice.clone();
                    self.out.push(Command::SetVoice(voice));
                    (msg, self.success(a))
                }
                None => ("no voice".into(), self.success(a)),
            },
            (ActionKind::UpdateContactRoutingCriteria, _) => match a.param("RoutingCriteria") {
                Some(c) => {
                    self.state.routing_criteria = Some(c.clone());
                    self.out.push(Command::SetRoutingCriteria(c.clone()));
                    ("routing criteria set".into(), self.success(a))
                }
                None => ("no routing criteria".into(), self.error(a, "NoMatchingError")),
            },
            (ActionKind::DisconnectParticipant, _) => {
                self.out.push(Command::Disconnect);
                self.label = "end".into();
                ("disconnect".into(), Next::End(Ended::Disconnected))
            }
            (ActionKind::EndFlowExecution, _) => {
                self.out.push(Command::EndFlow);
                self.label = "end".into();
                ("end of flow".into(), Next::End(Ended::FlowEnded))
            }
            (ActionKind::StartVoiceIdStream | ActionKind::CheckVoiceId, _) => {
                ("Voice ID is not available in Voxbridge".into(), self.error(a, "NoMatchingError"))
            }
            (kind, _) => (format!("{kind} is not supported"), self.error(a, "NoMatchingError")),
        }
    }

    fn update_attributes(
        &mut self,
        a: &Action,
        pairs: &[(String, String)],
        target: Option<&str>,
    ) -> (String, Next) {
        if target == Some("Related") {
            return ("this contact has no related contact".into(), self.error(a, "NoMatchingError"));
        }
        let mut resolved = Vec::with_capacity(pairs.len());
        for (k, raw) in pairs {
            match self.value(raw) {
                Some(v) => resolved.push((k.clone(), v)),
                // All or nothing: one missing reference fails the whole block.
                None => {
                    return (format!("{raw} is not set; nothing changed"), self.error(a, "NoMatchingError"))
                }
            }
        }
        let size: usize = self
            .state
            .attributes
            .iter()
            .filter(|(k, _)| !resolved.iter().any(|(rk, _)| rk == *k))
            .map(|(k, v)| k.len() + v.len())
            .chain(resolved.iter().map(|(k, v)| k.len() + v.len()))
            .sum();
        if size > MAX_ATTRIBUTES_BYTES {
            let msg =
                format!("attributes would take {size} bytes (limit {MAX_ATTRIBUTES_BYTES}); nothing changed");
            return (msg, self.error(a, "NoMatchingError"));
        }
        let mut msg = String::from("set");
        for (k, v) in &resolved {
            let _ = write!(msg, " {k}={v:?}");
            self.state.attributes.insert(k.clone(), v.clone());
        }
        self.out.push(Command::SetAttributes(resolved));
        (msg, self.success(a))
    }

    fn input_result(&mut self, a: &Action, digits: Option<String>) -> Next {
        let Params::Input(p) = &a.params else { return self.error(a, "NoMatchingError") };
        let store = truthy(p.store_input.as_deref());
        let digits = digits.filter(|d| !d.is_empty());
        if !store {
            let Some(d) = digits else { return self.error(a, "InputTimeLimitExceeded") };
            let key: String = d.chars().take(1).collect();
            self.note_input(a, &key);
            return self.condition(a, &key).unwrap_or_else(|| self.error(a, "NoMatchingCondition"));
        }
        let Some(mut d) = digits else {
            // Store customer input: a timeout takes the success branch with the value "Timeout".
            self.state.stored_customer_input = Some("Timeout".into());
            self.note_input(a, "Timeout");
            return self.success(a);
        };
        if let Some(t) = p.termination_sequence.as_deref().filter(|t| !t.is_empty()) {
            if let Some(stripped) = d.strip_suffix(t) {
                d.truncate(stripped.len());
            }
        }
        match &p.validation {
            Some(InputValidation::Phone { number_format, country_code }) => {
                let format = number_format.as_deref().unwrap_or("Local");
                let country = country_code.as_deref().unwrap_or("US");
                match phone::normalize(&d, format, country) {
                    Some(e164) => {
                        self.note_input(a, &e164);
                        self.state.stored_customer_input = Some(e164);
                        self.success(a)
                    }
                    None => {
                        self.note_input(a, &d);
                        self.state.stored_customer_input = Some(d);
                        self.error(a, "InvalidPhoneNumber")
                    }
                }
            }
            other => {
                let max = match other {
                    Some(InputValidation::Custom { maximum_length }) => parse_u32(maximum_length.as_deref()),
                    _ => None,
                };
                if let Some(max) = max {
                    if let Some((cut, _)) = d.char_indices().nth(max as usize) {
                        d.truncate(cut);
                    }
                }
                self.note_input(a, &d);
                self.state.stored_customer_input = Some(d);
                self.success(a)
            }
        }
    }

    fn note_input(&mut self, a: &Action, input: &str) {
        self.state.push_log(Some(&a.identifier), LogKind::Event, format!("input {input:?}"));
    }

    fn function_result(&mut self, a: &Action, result: FunctionResult) -> Next {
        let response_type = match &a.params {
            Params::Lambda(l) => l.response_type.as_deref().unwrap_or("STRING_MAP"),
            _ => "STRING_MAP",
        };
        let outcome = match result {
            FunctionResult::Ok(v) => check_response(v, response_type == "JSON"),
            FunctionResult::Error(e) => Err(format!("function failed: {e}")),
            FunctionResult::Timeout => Err("function timed out".into()),
        };
        match outcome {
            Ok(v) => {
                self.state.external = v;
                self.success(a)
            }
            Err(e) => {
                // $.External is replaced on every invocation; a failed one leaves it empty.
                self.state.external = Value::Object(Map::new());
                self.note(a, e);
                self.error(a, "NoMatchingError")
            }
        }
    }

    fn check_metric(&mut self, a: &Action) -> (String, Next) {
        let metric_type = a.param_str("MetricType").unwrap_or("");
        let metrics = if let Some(q) = self.param_value(a, "QueueId") {
            self.env.queue(&q).map(|q| &q.metrics)
        } else if let Some(agent) = self.param_value(a, "AgentId") {
            self.env.agent(&agent).map(|a| &a.metrics)
        } else {
            match &self.state.queue {
                Some(TargetQueue { agent_id: Some(agent), .. }) => self.env.agent(agent).map(|a| &a.metrics),
                Some(q) => self.env.queue(&q.id).map(|q| &q.metrics),
                None => None,
            }
        };
        let Some(m) = metrics else {
            return ("no metrics for the queue".into(), self.error(a, "NoMatchingError"));
        };
        let value = match metric_type {
            "NumberOfAgentsAvailable" => m.agents_available,
            "NumberOfAgentsStaffed" => m.agents_staffed,
            "NumberOfAgentsOnline" => m.agents_online,
            "NumberOfContactsInQueue" => m.contacts_in_queue,
            // Compared in milliseconds: see README ("OldestContactInQueueAgeSeconds").
            "OldestContactInQueueAgeSeconds" => m.oldest_contact_age_ms,
            other => return (format!("unknown metric {other:?}"), self.error(a, "NoMatchingError")),
        };
        let v = value.to_string();
        let msg = format!("{metric_type} = {v}");
        let next = self.condition(a, &v).unwrap_or_else(|| self.error(a, "NoMatchingCondition"));
        (msg, next)
    }

    fn check_hours(&mut self, a: &Action) -> (String, Next) {
        let hours = match self.param_value(a, "HoursOfOperationId") {
            Some(id) => self.env.hours_of_operation(&id).map(Some),
            None => match &self.state.queue {
                Some(TargetQueue { hours_of_operation_id: Some(h), .. }) => {
                    self.env.hours_of_operation(h).map(Some)
                }
                // Agent queues have no hours of operation: always open.
                Some(TargetQueue { agent_id: Some(_), .. }) => Some(None),
                _ => None,
            },
        };
        let Some(hours) = hours else {
            return ("no hours of operation".into(), self.error(a, "NoMatchingError"));
        };
        let open = hours.is_none_or(|h| h.is_open(self.state.now_ms));
        let v = if open { "True" } else { "False" };
        let next = self.condition(a, v).unwrap_or_else(|| self.error(a, "NoMatchingError"));
        (format!("open: {v}"), next)
    }

    fn set_queue(&mut self, a: &Action) -> (String, Next) {
        let target = if let Some(raw) = scalar(a.param("QueueId")) {
            let Some(id) = self.value(&raw).filter(|s| !s.is_empty()) else {
                return (format!("QueueId {raw} is empty"), self.error(a, "NoMatchingError"));
            };
            match self.env.queue(&id) {
                Some(q) => TargetQueue {
                    id: q.id.clone(),
                    arn: q.arn.clone(),
                    name: q.name.clone(),
                    outbound_caller_id: q.outbound_caller_id.clone(),
                    hours_of_operation_id: q.hours_of_operation_id.clone(),
                    agent_id: None,
                },
                None => return (format!("unknown queue {id:?}"), self.error(a, "NoMatchingError")),
            }
        } else if let Some(raw) = scalar(a.param("AgentId")) {
            let Some(id) = self.value(&raw).filter(|s| !s.is_empty()) else {
                return (format!("AgentId {raw} is empty"), self.error(a, "NoMatchingError"));
            };
            match self.env.agent(&id) {
                Some(agent) => TargetQueue {
                    id: agent.id.clone(),
                    arn: format!("{}/queue/agent/{}", self.env.instance_arn, agent.id),
                    name: agent.username.clone(),
                    outbound_caller_id: None,
                    hours_of_operation_id: None,
                    agent_id: Some(agent.id.clone()),
                },
                None => return (format!("unknown agent {id:?}"), self.error(a, "NoMatchingError")),
            }
        } else {
            return ("neither QueueId nor AgentId".into(), self.error(a, "NoMatchingError"));
        };
        let msg = format!("working queue {:?}", target.name);
        self.state.queue = Some(target.clone());
        self.out.push(Command::SetQueue(target));
        (msg, self.success(a))
    }

    fn create_callback(&mut self, a: &Action, c: &crate::params::CallbackParams) -> (String, Next) {
        let queue =
            if let Some(q) = c.queue_id.as_deref().and_then(|r| self.value(r)).filter(|s| !s.is_empty()) {
                self.env.queue(&q).map(|q| TargetQueue {
                    id: q.id.clone(),
                    arn: q.arn.clone(),
                    name: q.name.clone(),
                    outbound_caller_id: q.outbound_caller_id.clone(),
                    hours_of_operation_id: q.hours_of_operation_id.clone(),
                    agent_id: None,
                })
            } else {
                self.state.queue.clone()
            };
        let Some(queue) = queue else {
            return ("no queue for the callback".into(), self.error(a, "NoMatchingError"));
        };
        // The callback dials $.CustomerCallbackNumber, which defaults to the caller's number.
        let number = self
            .state
            .callback_number
            .clone()
            .or_else(|| self.state.customer_endpoint.as_ref().map(|e| e.address.clone()));
        let Some(number) = number.filter(|n| phone::is_e164(n)) else {
            return ("no callback number".into(), self.error(a, "NoMatchingError"));
        };
        let cb = Callback {
            queue,
            number,
            initial_delay_seconds: parse_u32(c.initial_delay_seconds.as_deref()).unwrap_or(60),
            maximum_attempts: parse_u32(c.maximum_attempts.as_deref()).unwrap_or(1),
            retry_delay_seconds: parse_u32(c.retry_delay_seconds.as_deref()).unwrap_or(600),
            contact_flow_id: c
                .contact_flow_id
                .as_deref()
                .and_then(|r| self.value(r))
                .filter(|s| !s.is_empty()),
            caller_id: c.caller_id.as_deref().and_then(|r| self.value(r)).filter(|s| !s.is_empty()),
        };
        let msg = format!(
            "callback to {} via {:?} in {} s, {} attempt(s) {} s apart",
            cb.number, cb.queue.name, cb.initial_delay_seconds, cb.maximum_attempts, cb.retry_delay_seconds
        );
        self.out.push(Command::CreateCallback(cb));
        (msg, self.success(a))
    }

    fn update_contact_data(&mut self, a: &Action) -> (String, Next) {
        if a.param_str("TargetContact") == Some("Related") {
            return ("this contact has no related contact".into(), self.error(a, "NoMatchingError"));
        }
        let mut fields = Vec::new();
        if let Some(Value::Object(m)) = &a.parameters {
            for (k, raw) in m {
                if k == "TargetContact" {
                    continue;
                }
                let Some(raw) = scalar(Some(raw)) else { continue };
                let v = self.value(&raw).unwrap_or_default();
                match k.as_str() {
                    "LanguageCode" => self.state.language_code = v.clone(),
                    "CustomerId" => self.state.customer_id = Some(v.clone()),
                    "Name" => self.state.name = Some(v.clone()),
                    "Description" => self.state.description = Some(v.clone()),
                    // Voice ID settings and the rest are passed on to the host untouched.
                    _ => {}
                }
                fields.push((k.clone(), v));
            }
        }
        let msg = fields.iter().fold(String::from("set"), |mut s, (k, v)| {
            let _ = write!(s, " {k}={v:?}");
            s
        });
        self.out.push(Command::UpdateContactData(fields));
        (msg, self.success(a))
    }
}

/// Checks a Lambda response against `ResponseValidation`: a flat map of scalars (STRING_MAP,
/// the default) or any JSON object (JSON); at most [`MAX_RESPONSE_BYTES`].
fn check_response(v: Value, json: bool) -> Result<Value, String> {
    let Value::Object(map) = v else {
        return Err("the response is not a JSON object".into());
    };
    let size = Value::Object(map.clone()).to_string().len();
    if size > MAX_RESPONSE_BYTES {
        return Err(format!("the response is {size} bytes; the limit is {MAX_RESPONSE_BYTES}"));
    }
    if json {
        return Ok(Value::Object(map));
    }
    let mut flat = Map::with_capacity(map.len());
    for (k, v) in map {
        match scalar(Some(&v)) {
            Some(s) => {
                flat.insert(k, Value::String(s));
            }
            None if v.is_null() => {}
            None => return Err(format!("STRING_MAP responses must be flat, but {k:?} is nested")),
        }
    }
    Ok(Value::Object(flat))
}

/// `Details.ContactData` of a `ContactFlowEvent`.
pub fn contact_data(state: &ContactState, env: &Environment) -> Value {
    let endpoint = |e: &Option<crate::state::Endpoint>| match e {
        Some(e) => json!({ "Address": e.address, "Type": e.kind }),
        None => Value::Null,
    };
    let audio = match &state.customer_audio {
        Some(s) => json!({
            "StartFragmentNumber": s.start_fragment_number,
            "StartTimestamp": s.start_timestamp,
            "StopTimestamp": s.stop_timestamp,
            "StreamARN": s.stream_arn,
        }),
        None => Value::Null,
    };
    let queue = match &state.queue {
        Some(q) => json!({
            "ARN": q.arn,
            "Name": q.name,
            "OutboundCallerId": q.outbound_caller_id.as_ref().map(|a| json!({ "Address": a, "Type": "TELEPHONE_NUMBER" })),
        }),
        None => Value::Null,
    };
    let attributes: Map<String, Value> =
        state.attributes.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    json!({
        "Attributes": attributes,
        "Channel": state.channel,
        "ContactId": state.contact_id,
        "CustomerEndpoint": endpoint(&state.customer_endpoint),
        "CustomerId": state.customer_id,
        "Description": state.description,
        "InitialContactId": state.initial_contact_id,
        "InitiationMethod": state.initiation_method,
        "InstanceARN": env.instance_arn,
        "LanguageCode": state.language_code,
        "MediaStreams": { "Customer": { "Audio": audio } },
        "Name": state.name,
        "PreviousContactId": state.previous_contact_id.as_deref().unwrap_or(&state.contact_id),
        "Queue": queue,
        "References": {},
        "SystemEndpoint": endpoint(&state.system_endpoint),
    })
}

fn parse_u32(s: Option<&str>) -> Option<u32> {
    s?.trim().parse().ok()
}

fn prompt_summary(p: &Prompt) -> String {
    match p {
        Prompt::Text(t) => format!("text {t:?}"),
        Prompt::Ssml(s) => format!("ssml {s:?}"),
        Prompt::PromptId(id) => format!("prompt {id}"),
    }
}

fn event_summary(e: &Event) -> String {
    match e {
        Event::Start => "start".into(),
        Event::InputDigits(d) => format!("digits {d:?}"),
        Event::InputTimeout => "input timeout".into(),
        Event::FunctionResult(FunctionResult::Ok(v)) => format!("function ok {v}"),
        Event::FunctionResult(FunctionResult::Error(e)) => format!("function error {e:?}"),
        Event::FunctionResult(FunctionResult::Timeout) => "function timeout".into(),
        Event::QueueResult(q) => format!("queue {q:?}"),
        Event::TransferResult(Ok(())) => "transfer ok".into(),
        Event::TransferResult(Err(e)) => format!("transfer failed {e:?}"),
        Event::MediaStreamStarted(Ok(s)) => format!("media stream {}", s.stream_arn),
        Event::MediaStreamStarted(Err(e)) => format!("media stream failed {e:?}"),
        Event::AgentConnected(a) => format!("agent connected {}", a.username),
        Event::TimerFired => "timer fired".into(),
        Event::Disconnected => "customer disconnected".into(),
    }
}
