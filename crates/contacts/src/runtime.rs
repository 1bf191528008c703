//! The contact runtime: runs one call through its flows by feeding the sans-IO interpreter
//! and carrying out its commands — prompts the caller "hears", digits from the caller,
//! function invocations through the [`Registry`] (with the block's time limit), subflow
//! transfers from the [`FlowLibrary`], queue placement — then keeps the contact in its queue
//! (running the customer queue flow, if the contact has one) until an agent accepts it, and
//! carries out what the agent does: the agent whisper flow, hold and resume, transfers (a new
//! contact that runs the transfer flow) and hanging up. Everything is recorded in an event
//! log; contact events go to the [`ContactSink`] as they happen, and each contact's trace
//! record when it ends.
//!
//! The caller and agent steps come from a [`CallerScript`] ([`ContactCenter::simulate`]) or
//! live, one at a time, from a channel ([`crate::live`]); the same engine runs both.
//!
//! Time comes from the [`Clock`] passed in plus the simulated time the caller spends (waiting
//! before keying, silences, waits in queue, timers), so with a fixed clock a run is
//! deterministic. Nothing sleeps: simulated waits advance time instead of waiting for it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use voxbridge_flows::{
    AgentInfo, AudioStream, Command, ContactState, Ended, Endpoint, Environment, Event, FunctionResult,
    Interpreter, LogKind, Prompt, QueueInfo, QueueMetrics, QueueOutcome, TargetQueue,
};
use voxbridge_functions::{Clock, FunctionError, Registry};

use crate::library::{Agent, FlowLibrary, LibraryFlow, QuickConnectType, DEFAULT_QUEUE_CAPACITY};
use crate::live::{Inbox, LiveContacts, LiveSlot};
use crate::queue::{EnqueueError, Queues};
use crate::record::{self, AgentVisit, ContactTimeline, QueueVisit};
use crate::routing::{AgentRouting, FollowedCall, Following};
use crate::script::{collect, AgentAction, CallerInput, CallerScript, TransferTarget};
use crate::sink::{ContactSink, NoSink};

/// Events one contact may feed the interpreter before the runtime gives up on it.
const MAX_EVENTS: usize = 2_000;
/// Timers a flow outside a queue may fire before the simulated caller hangs up (prompt loops
/// that wait for nothing the caller can give).
const MAX_TIMERS: u32 = 3;
/// Contacts one call may become through transfers.
const MAX_CONTACTS: usize = 20;
/// Retries of a throttled invocation ("up to 3 times within the timeout", as Amazon Connect).
const THROTTLE_RETRIES: u32 = 3;
/// The first retry's wait; each next one waits twice as long (simulated time).
const THROTTLE_BACKOFF_MS: i64 = 100;

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

/// What a running contact waits for (live contacts show it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "for", rename_all = "camelCase")]
pub enum Waiting {
    /// Keys for an input prompt.
    #[serde(rename_all = "camelCase")]
    Digits { prompt: Option<String>, timeout_seconds: u32, max_digits: Option<u32> },
    /// An agent, in a queue.
    Agent { queue: String },
    /// The caller talks to an agent.
    #[serde(rename_all = "camelCase")]
    Talking { agent: String, on_hold: bool },
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
        /// `$.LambdaInvocation.InvocationId` of an asynchronous invocation.
        #[serde(skip_serializing_if = "Option::is_none")]
        invocation_id: Option<String>,
        /// Retries after throttling.
        #[serde(skip_serializing_if = "is_zero")]
        retries: u32,
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
    /// A new contact of the call began (an agent's transfer).
    #[serde(rename_all = "camelCase")]
    Contact {
        contact_id: String,
        initiation_method: String,
        previous_contact_id: Option<String>,
    },
    /// Simulated time passed (the caller waiting in queue or talking).
    Wait {
        seconds: u32,
    },
    /// The agent acted: `connect`, `hold`, `resume`, `transfer`, `disconnect`.
    Agent {
        action: String,
        agent: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
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
    /// The last agent the caller talked to (username).
    pub agent: Option<String>,
    pub attributes: BTreeMap<String, String>,
    pub steps: Vec<LogStep>,
    /// The contact trace record of the call's first contact.
    pub ctr: Value,
    /// The trace records of the contacts agents' transfers created, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub transferred_contacts: Vec<Value>,
    /// Contact events (EventBridge `aws.connect` envelopes) of every contact, in order.
    pub contact_events: Vec<Value>,
}

/// The telephony side of one contact center: flows, numbers, queues, agents and functions.
pub struct ContactCenter {
    library: Arc<FlowLibrary>,
    functions: Arc<Registry>,
    queues: Queues,
    clock: Arc<dyn Clock>,
    sink: Arc<dyn ContactSink>,
    /// Agent id → the contact the agent is on.
    busy: Mutex<HashMap<String, String>>,
    live: LiveContacts,
    /// Follows the CRM half's routing of queued live contacts ([`crate::routing`]).
    routing: Option<Arc<dyn AgentRouting>>,
}

impl ContactCenter {
    pub fn new(library: Arc<FlowLibrary>, functions: Arc<Registry>, clock: Arc<dyn Clock>) -> ContactCenter {
        let queues = Queues::default();
        for q in &library.queues {
            queues.declare(&q.id, q.capacity.unwrap_or(DEFAULT_QUEUE_CAPACITY));
        }
        ContactCenter {
            library,
            functions,
            queues,
            clock,
            sink: Arc::new(NoSink),
            busy: Mutex::default(),
            live: LiveContacts::default(),
            routing: None,
        }
    }

    /// Lets `routing` connect queued live contacts to the agents the CRM half assigns.
    pub fn with_routing(mut self, routing: Arc<dyn AgentRouting>) -> ContactCenter {
        self.routing = Some(routing);
        self
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

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The live contacts ([`crate::live`]).
    pub fn live(&self) -> &LiveContacts {
        &self.live
    }

    /// The contact an agent (by id) is on, if any.
    pub fn agent_contact(&self, agent_id: &str) -> Option<String> {
        self.busy.lock().unwrap_or_else(|e| e.into_inner()).get(agent_id).cloned()
    }

    /// The snapshot the interpreter reads at `now_ms`.
    pub fn environment(&self, now_ms: i64) -> Environment {
        let busy = self.busy.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let lib = &self.library;
        Environment {
            instance_arn: lib.instance_arn.clone(),
            queues: lib
                .queues
                .iter()
                .map(|q| {
                    let staffed = lib.agents.iter().filter(|a| lib.serves(a, &q.id)).count() as u64;
                    let available = lib
                        .agents
                        .iter()
                        .filter(|a| lib.serves(a, &q.id) && !busy.contains_key(&a.id))
                        .count() as u64;
                    QueueInfo {
                        id: q.id.clone(),
                        arn: lib.queue_arn(q),
                        name: q.name.clone(),
                        outbound_caller_id: q.outbound_caller_id.clone(),
                        hours_of_operation_id: lib.queue_hours(q).map(|h| h.id.clone()),
                        metrics: QueueMetrics {
                            agents_online: staffed,
                            agents_staffed: staffed,
                            agents_available: available,
                            ..self.queues.metrics(&q.id, now_ms)
                        },
                    }
                })
                .collect(),
            agents: lib
                .agents
                .iter()
                .map(|a| AgentInfo {
                    metrics: QueueMetrics {
                        agents_online: 1,
                        agents_staffed: 1,
                        agents_available: u64::from(!busy.contains_key(&a.id)),
                        ..QueueMetrics::default()
                    },
                    ..agent_info(a)
                })
                .collect(),
            hours: lib.hours.iter().map(|h| h.at(now_ms)).collect(),
            ..Environment::default()
        }
    }

    /// Runs an inbound call through the flow bound to its number, to the end, with the
    /// caller's (and agent's) steps from its script.
    pub async fn simulate(&self, call: InboundCall) -> Result<ContactResult, CallError> {
        let input = call.input.clone();
        let run = self.prepare(call, Driver::Script(input), None)?;
        Ok(run.go().await)
    }

    /// Checks the call and builds its run.
    pub(crate) fn prepare(
        &self,
        call: InboundCall,
        driver: Driver,
        live: Option<Arc<LiveSlot>>,
    ) -> Result<Run<'_>, CallError> {
        let to = crate::library::normalize_number(&call.to)
            .ok_or_else(|| CallError::BadNumber(call.to.clone()))?;
        let from = crate::library::normalize_number(&call.from)
            .ok_or_else(|| CallError::BadNumber(call.from.clone()))?;
        let flow = self.library.flow_for_number(&to).ok_or_else(|| CallError::NoFlowForNumber(to.clone()))?;
        let contact_id = call.contact_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut state = ContactState::inbound(contact_id.clone(), &from, &to);
        state.rng = seed(&contact_id);
        let start_ms = self.clock.now_ms();
        Ok(Run {
            center: self,
            driver,
            live,
            reply: None,
            start_ms,
            offset_ms: 0,
            steps: Vec::new(),
            leg: Leg::new(state, flow.clone(), start_ms),
            ctrs: Vec::new(),
            contact_events: Vec::new(),
            first_flow: flow,
            disposition: None,
            last_agent: None,
            pending_transfer: None,
            timers: 0,
            following: None,
            follow_tried: false,
            from,
            to,
        })
    }

    fn claim_agent(&self, agent_id: &str, contact_id: &str) -> bool {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        if busy.contains_key(agent_id) {
            return false;
        }
        busy.insert(agent_id.to_string(), contact_id.to_string());
        true
    }

    fn release_agent(&self, agent_id: &str) {
        self.busy.lock().unwrap_or_else(|e| e.into_inner()).remove(agent_id);
    }
}

fn agent_info(a: &Agent) -> AgentInfo {
    AgentInfo {
        id: a.id.clone(),
        arn: a.arn.clone(),
        username: a.username.clone(),
        first_name: a.first_name.clone(),
        last_name: a.last_name.clone(),
        metrics: QueueMetrics::default(),
    }
}

/// A seed for `DistributeByPercentage` derived from the contact id (FNV-1a).
fn seed(contact_id: &str) -> u64 {
    contact_id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Where the caller's and agent's steps come from.
pub(crate) enum Driver {
    Script(CallerScript),
    Live(Inbox),
}

/// Where one contact of the call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Running a flow.
    Flow,
    /// Waiting in a queue for an agent.
    Queued,
    Talking,
    OnHold,
    Ended,
}

/// One contact of the call (a transfer starts a new one).
struct Leg {
    state: ContactState,
    /// Interpreter log entries already copied (counting dropped ones).
    seen_log: usize,
    flow: Arc<LibraryFlow>,
    initiation_ms: i64,
    phase: Phase,
    queue: Option<QueueVisit>,
    /// The agent whose own queue holds the contact.
    agent_queue: Option<String>,
    agent: Option<AgentVisit>,
    agent_id: Option<String>,
    hold_started_ms: Option<i64>,
    /// When the customer queue flow's timer fires.
    timer_due_ms: Option<i64>,
    /// Times it fired.
    queue_timers: usize,
    recording: bool,
    reason: Option<String>,
    next_contact_id: Option<String>,
    transfer_completed_ms: Option<i64>,
    transferred_to: Option<Endpoint>,
}

impl Leg {
    fn new(state: ContactState, flow: Arc<LibraryFlow>, initiation_ms: i64) -> Leg {
        Leg {
            state,
            seen_log: 0,
            flow,
            initiation_ms,
            phase: Phase::Flow,
            queue: None,
            agent_queue: None,
            agent: None,
            agent_id: None,
            hold_started_ms: None,
            timer_due_ms: None,
            queue_timers: 0,
            recording: false,
            reason: None,
            next_contact_id: None,
            transfer_completed_ms: None,
            transferred_to: None,
        }
    }
}

pub(crate) struct Run<'c> {
    center: &'c ContactCenter,
    driver: Driver,
    live: Option<Arc<LiveSlot>>,
    /// The answer owed to the live command being carried out (sent at the next wait).
    reply: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
    start_ms: i64,
    /// Simulated time the caller spent (waits, silences, timers).
    offset_ms: i64,
    steps: Vec<LogStep>,
    leg: Leg,
    ctrs: Vec<Value>,
    contact_events: Vec<Value>,
    first_flow: Arc<LibraryFlow>,
    disposition: Option<&'static str>,
    last_agent: Option<String>,
    /// Where the next contact goes (set by a transfer): the queue or agent, and the flow.
    pending_transfer: Option<(TargetQueue, Option<String>)>,
    timers: u32,
    /// The routing follower of a live call, once it first queued (stops when dropped).
    following: Option<Following>,
    follow_tried: bool,
    from: String,
    to: String,
}

impl Run<'_> {
    fn now(&self) -> i64 {
        // The clock may be the system clock: read it each time, plus the simulated time.
        self.center.clock.now_ms().max(self.start_ms).saturating_add(self.offset_ms)
    }

    fn push(&mut self, step: Step) {
        let at = record::event_time(self.now());
        self.steps.push(LogStep { at, step });
    }

    fn warn(&mut self, message: String) {
        self.push(Step::Warning { action: None, message });
    }

    /// The answer owed once the run first waits (a live call's start).
    pub(crate) fn set_reply(&mut self, reply: tokio::sync::oneshot::Sender<Result<(), String>>) {
        self.reply = Some(reply);
    }

    pub(crate) async fn go(mut self) -> ContactResult {
        self.emit("INITIATED", self.leg.initiation_ms);
        self.emit("CONNECTED_TO_SYSTEM", self.leg.initiation_ms);
        let flow = self.leg.flow.clone();
        self.push(Step::Flow { flow: flow.name.clone(), flow_id: flow.id.clone() });
        self.run_flow(Event::Start).await;
        self.disposition = Some(disposition(self.leg.state.ended()));
        self.after_flow().await;
        let mut contacts = 1;
        loop {
            match self.leg.phase {
                Phase::Ended => {
                    let next = self.leg.next_contact_id.clone();
                    self.end_leg();
                    match next {
                        Some(id) if contacts < MAX_CONTACTS => {
                            contacts += 1;
                            self.start_transfer_leg(id).await;
                        }
                        Some(_) => {
                            self.warn(format!(
                                "the call became more than {MAX_CONTACTS} contacts; ending it"
                            ));
                            break;
                        }
                        None => break,
                    }
                }
                Phase::Queued => {
                    self.follow_routing().await;
                    self.in_queue().await
                }
                Phase::Talking | Phase::OnHold => self.talking().await,
                Phase::Flow => {
                    self.leg.reason.get_or_insert_with(|| "CONTACT_FLOW_DISCONNECT".into());
                    self.leg.phase = Phase::Ended;
                }
            }
        }
        self.finish()
    }

    /// The timeline of the current contact as it stands (disconnected at `disconnect_ms`).
    fn timeline(&self, disconnect_ms: i64) -> ContactTimeline {
        let s = &self.leg.state;
        let mut agent = self.leg.agent.clone();
        if let (Some(a), Some(h)) = (&mut agent, self.leg.hold_started_ms) {
            let held = (disconnect_ms - h).max(0);
            a.hold_ms += held;
            a.longest_hold_ms = a.longest_hold_ms.max(held);
        }
        ContactTimeline {
            contact_id: s.contact_id.clone(),
            initial_contact_id: s.initial_contact_id.clone(),
            previous_contact_id: s.previous_contact_id.clone(),
            channel: s.channel.clone(),
            initiation_method: s.initiation_method.clone(),
            instance_arn: self.center.library.instance_arn.clone(),
            customer_endpoint: s.customer_endpoint.clone(),
            system_endpoint: s.system_endpoint.clone(),
            attributes: s.attributes.clone(),
            initiation_ms: self.leg.initiation_ms,
            // Contacts are connected to the system when they arrive (inbound, transfers).
            connected_to_system_ms: Some(self.leg.initiation_ms),
            queue: self.leg.queue.clone(),
            disconnect_ms,
            disconnect_reason: self.leg.reason.clone(),
            recording: self.leg.recording,
            agent,
            next_contact_id: self.leg.next_contact_id.clone(),
            transfer_completed_ms: self.leg.transfer_completed_ms,
            transferred_to_endpoint: self.leg.transferred_to.clone(),
        }
    }

    /// Records a contact event of the current contact and hands it to the sink.
    fn emit(&mut self, event_type: &str, at_ms: i64) {
        let event =
            record::contact_event(&self.timeline(at_ms), event_type, at_ms, uuid::Uuid::new_v4().to_string());
        self.center.sink.contact_event(&event);
        self.contact_events.push(event);
    }

    /// Runs the current flow from `first` until it ends or (in queue) waits for its timer.
    async fn run_flow(&mut self, first: Event) {
        let mut pending = VecDeque::from([first]);
        let mut fed = 0;
        loop {
            let Some(event) = pending.pop_front() else {
                if self.leg.state.ended().is_some() || self.leg.timer_due_ms.is_some() {
                    return;
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
                self.leg.phase = Phase::Ended;
                self.leg.reason.get_or_insert_with(|| "CONTACT_FLOW_DISCONNECT".into());
                return;
            }
            let now = self.now();
            let env = self.center.environment(now);
            let flow = self.leg.flow.clone();
            let commands = Interpreter::new(&flow.flow, &env).step(&mut self.leg.state, now, event);
            self.copy_log();
            for command in commands {
                if let Some(answer) = self.execute(command).await {
                    pending.push_back(answer);
                }
            }
            if self.leg.state.ended().is_some() && pending.is_empty() {
                return;
            }
        }
    }

    /// Where the contact goes when its inbound or transfer flow has ended.
    async fn after_flow(&mut self) {
        if self.leg.phase == Phase::Ended {
            return;
        }
        let ended = self.leg.state.ended().cloned();
        match ended {
            Some(Ended::Queued) => self.leg.phase = Phase::Queued,
            Some(Ended::TransferredToAgent) => {
                let agent = self.leg.state.queue.as_ref().and_then(|q| q.agent_id.clone());
                match agent.and_then(|a| self.center.library.agent(&a).cloned()) {
                    Some(agent) => {
                        self.enqueue_for_agent(&agent);
                        self.leg.phase = Phase::Queued;
                    }
                    None => {
                        self.warn("transfer to agent: the working queue is not an agent's".into());
                        self.leg.reason = Some("CONTACT_FLOW_DISCONNECT".into());
                        self.leg.phase = Phase::Ended;
                    }
                }
            }
            other => {
                self.leg.reason = Some(record::disconnect_reason(other.as_ref()).into());
                self.leg.phase = Phase::Ended;
            }
        }
        if self.leg.phase == Phase::Queued {
            self.start_hook("CustomerQueue").await;
        }
    }

    /// Runs the flow the contact's event hook names, if it has one; true when it ran.
    async fn start_hook(&mut self, hook: &str) -> bool {
        let Some(flow_id) = self.leg.state.event_hooks.get(hook).cloned() else { return false };
        let Some(flow) = self.center.library.get(&flow_id) else {
            self.warn(format!("{hook} flow {flow_id} is not in the library"));
            return false;
        };
        self.push(Step::Flow { flow: flow.name.clone(), flow_id: flow.id.clone() });
        self.leg.flow = flow;
        self.leg.timer_due_ms = None;
        self.run_flow(Event::Start).await;
        let customer_flow = matches!(hook, "CustomerQueue" | "CustomerHold" | "CustomerWhisper");
        if customer_flow && self.leg.state.ended() == Some(&Ended::Disconnected) {
            self.leg.reason = Some("CONTACT_FLOW_DISCONNECT".into());
            self.leg.phase = Phase::Ended;
        }
        true
    }

    /// The next step of the caller or agent while the contact waits as `waiting`.
    async fn next_input(&mut self, waiting: Waiting) -> Option<CallerInput> {
        match &mut self.driver {
            Driver::Script(script) => {
                // Agent steps wait for the queue: prompts before then hear silence.
                if matches!(waiting, Waiting::Digits { .. })
                    && matches!(script.peek(), Some(CallerInput::Agent(_)))
                {
                    return Some(CallerInput::Silence);
                }
                script.next_input()
            }
            Driver::Live(_) => {
                self.publish(Some(waiting));
                if let Some(reply) = self.reply.take() {
                    let _ = reply.send(Ok(()));
                }
                let Driver::Live(inbox) = &mut self.driver else { return None };
                let (input, reply) = inbox.next().await?;
                self.reply = Some(reply);
                Some(input)
            }
        }
    }

    /// A step that cannot be carried out now: the live caller gets the error, a script a
    /// warning in the log.
    fn refuse(&mut self, message: String) {
        match self.reply.take() {
            Some(reply) => {
                let _ = reply.send(Err(message));
            }
            None => self.warn(message),
        }
    }

    /// Hands the steps so far and the state to the live view.
    fn publish(&mut self, waiting: Option<Waiting>) {
        if let Some(slot) = &self.live {
            slot.update(&self.steps, &self.contact_events, &self.leg.state.contact_id, waiting);
            // The view keeps the (bounded) log of a live call; the run need not.
            self.steps.clear();
        }
    }

    /// Asks the contact center's routing follower, once per live call, to follow the call's
    /// routing in the CRM half, so the agent it assigns connects (a note in the log either way).
    async fn follow_routing(&mut self) {
        if self.follow_tried {
            return;
        }
        let Some(routing) = self.center.routing.clone() else { return };
        let Driver::Live(inbox) = &self.driver else { return };
        self.follow_tried = true;
        let Some(steps) = inbox.steps() else { return };
        let state = &self.leg.state;
        let call = FollowedCall {
            conversation_key: state.initial_contact_id.clone(),
            contact_id: state.contact_id.clone(),
            voice_call_id: state.attributes.get("voiceCallId").filter(|v| !v.is_empty()).cloned(),
        };
        let key = call.conversation_key.clone();
        match routing.follow(call, steps).await {
            Ok(following) => {
                self.following = Some(following);
                self.push(Step::Note {
                    action: None,
                    message: format!("the agent comes from Omni-Channel routing of conversation {key}"),
                });
            }
            Err(e) => {
                self.warn(format!("Omni-Channel routing of conversation {key} cannot be followed: {e}"))
            }
        }
    }

    async fn in_queue(&mut self) {
        let queue = self.leg.queue.as_ref().map(|q| q.name.clone()).unwrap_or_default();
        match self.next_input(Waiting::Agent { queue }).await {
            None | Some(CallerInput::HangUp) => self.hang_up(),
            Some(CallerInput::Wait { seconds }) => self.pass(seconds).await,
            Some(CallerInput::Keys { keys, .. }) => self
                .push(Step::Note { action: None, message: format!("keys {keys} in queue: nobody listens") }),
            Some(CallerInput::Silence) => {}
            Some(CallerInput::Agent(AgentAction::Connect { agent })) => self.connect(agent.as_deref()).await,
            Some(CallerInput::Agent(other)) => {
                self.refuse(format!("agent {other}: the contact is waiting in queue, not with an agent"))
            }
        }
    }

    async fn talking(&mut self) {
        let waiting = Waiting::Talking {
            agent: self.leg.agent.as_ref().map(|a| a.username.clone()).unwrap_or_default(),
            on_hold: self.leg.phase == Phase::OnHold,
        };
        match self.next_input(waiting).await {
            None | Some(CallerInput::HangUp) => self.hang_up(),
            // On hold, the customer hold flow's timers fire as time passes.
            Some(CallerInput::Wait { seconds }) if self.leg.phase == Phase::OnHold => {
                self.pass(seconds).await
            }
            Some(CallerInput::Wait { seconds }) => {
                self.push(Step::Wait { seconds });
                self.advance(i64::from(seconds) * 1000);
            }
            Some(CallerInput::Keys { keys, .. }) => self.push(Step::Note {
                action: None,
                message: format!("keys {keys}: the agent hears the tones"),
            }),
            Some(CallerInput::Silence) => {}
            Some(CallerInput::Agent(action)) => self.agent_action(action).await,
        }
    }

    fn hang_up(&mut self) {
        self.push(Step::HangUp);
        self.leg.reason = Some("CUSTOMER_DISCONNECT".into());
        self.leg.phase = Phase::Ended;
    }

    fn agent_name(&self) -> String {
        self.leg.agent.as_ref().map(|a| a.username.clone()).unwrap_or_default()
    }

    async fn agent_action(&mut self, action: AgentAction) {
        let now = self.now();
        match action {
            AgentAction::Connect { .. } => self.refuse(format!("{} is already connected", self.agent_name())),
            AgentAction::Hold if self.leg.phase == Phase::OnHold => {
                self.refuse("the caller is already on hold".into())
            }
            AgentAction::Hold => {
                self.leg.phase = Phase::OnHold;
                self.leg.hold_started_ms = Some(now);
                if let Some(a) = &mut self.leg.agent {
                    a.number_of_holds += 1;
                }
                self.push(Step::Agent { action: "hold".into(), agent: self.agent_name(), detail: None });
                // The agent hears the agent hold flow, the caller the customer hold flow, which
                // keeps running (its timers) until the agent resumes.
                self.start_hook("AgentHold").await;
                self.start_hook("CustomerHold").await;
                if self.leg.phase != Phase::Ended {
                    self.leg.phase = Phase::OnHold;
                }
            }
            AgentAction::Resume => {
                let Some(started) = self.leg.hold_started_ms.take() else {
                    return self.refuse("the caller is not on hold".into());
                };
                self.close_hold(started, now);
                self.leg.timer_due_ms = None;
                self.leg.phase = Phase::Talking;
                self.push(Step::Agent { action: "resume".into(), agent: self.agent_name(), detail: None });
            }
            AgentAction::Disconnect => {
                self.push(Step::Agent {
                    action: "disconnect".into(),
                    agent: self.agent_name(),
                    detail: None,
                });
                self.leg.reason = Some("AGENT_DISCONNECT".into());
                if self.leg.state.event_hooks.contains_key("CustomerRemaining") {
                    self.agent_leaves(now);
                    // The caller stays on the line for the disconnect flow (a survey, …).
                    self.leg.phase = Phase::Flow;
                    self.start_hook("CustomerRemaining").await;
                }
                self.leg.phase = Phase::Ended;
            }
            AgentAction::Transfer(target) => self.transfer(target),
        }
    }

    /// The agent hangs up before the contact ends: the hold ends, the agent is free again.
    fn agent_leaves(&mut self, now: i64) {
        if let Some(started) = self.leg.hold_started_ms.take() {
            self.close_hold(started, now);
        }
        if let Some(a) = &mut self.leg.agent {
            a.left_ms = Some(now);
        }
        if let Some(agent) = self.leg.agent_id.take() {
            self.center.release_agent(&agent);
        }
    }

    fn close_hold(&mut self, started: i64, now: i64) {
        if let Some(a) = &mut self.leg.agent {
            let held = (now - started).max(0);
            a.hold_ms += held;
            a.longest_hold_ms = a.longest_hold_ms.max(held);
        }
    }

    /// Lets `seconds` of simulated time pass in queue, firing the queue flow's timers.
    async fn pass(&mut self, seconds: u32) {
        self.push(Step::Wait { seconds });
        let end = self.now().saturating_add(i64::from(seconds) * 1000);
        while let Some(due) = self.leg.timer_due_ms.filter(|d| *d <= end) {
            if !matches!(self.leg.phase, Phase::Queued | Phase::OnHold) {
                break;
            }
            self.advance((due - self.now()).max(0));
            self.leg.timer_due_ms = None;
            self.leg.queue_timers += 1;
            if self.leg.queue_timers > MAX_EVENTS {
                // A short timer and a long wait: the queue flow has said all it will.
                self.warn(format!("the queue flow's timer fired {MAX_EVENTS} times; it stops"));
                break;
            }
            let which = if self.leg.phase == Phase::OnHold { "hold" } else { "queue" };
            self.push(Step::Command { command: format!("{which} flow timer fired") });
            self.run_flow(Event::TimerFired).await;
            if self.leg.state.ended() == Some(&Ended::Disconnected) {
                self.leg.reason = Some("CONTACT_FLOW_DISCONNECT".into());
                self.leg.phase = Phase::Ended;
                return;
            }
        }
        self.advance((end - self.now()).max(0));
    }

    /// Advances simulated time.
    fn advance(&mut self, ms: i64) {
        self.offset_ms = self.offset_ms.saturating_add(ms);
    }

    /// An agent accepts the queued contact.
    async fn connect(&mut self, key: Option<&str>) {
        let lib = &self.center.library;
        let queue_id = self.leg.state.queue.as_ref().map(|q| q.id.clone()).unwrap_or_default();
        let candidates: Vec<Agent> = match (&self.leg.agent_queue, key) {
            (Some(own), _) => lib.agent(own).into_iter().cloned().collect(),
            (None, Some(k)) => lib.agent(k).into_iter().cloned().collect(),
            (None, None) => lib.agents.iter().filter(|a| lib.serves(a, &queue_id)).cloned().collect(),
        };
        let queue = self.leg.queue.as_ref().map(|q| q.name.clone()).unwrap_or_default();
        if let Some(k) = key {
            let serves = candidates.iter().any(|a| {
                (a.username == k || a.id == k || a.arn == k)
                    && (self.leg.agent_queue.is_some() || lib.serves(a, &queue_id))
            });
            if !serves {
                return self.refuse(match lib.agent(k) {
                    Some(_) => format!("agent {k} does not take contacts from {queue}"),
                    None => format!("no agent {k}"),
                });
            }
        }
        let contact_id = self.leg.state.contact_id.clone();
        let Some(agent) = candidates.into_iter().find(|a| self.center.claim_agent(&a.id, &contact_id)) else {
            return self.refuse(match key {
                Some(k) => format!("agent {k} is on another contact"),
                None => format!("no free agent takes contacts from {queue}"),
            });
        };
        let now = self.now();
        self.center.queues.remove(&contact_id);
        if let Some(q) = &mut self.leg.queue {
            q.dequeue_ms = Some(now);
        }
        self.leg.timer_due_ms = None;
        self.leg.agent = Some(AgentVisit {
            arn: agent.arn.clone(),
            username: agent.username.clone(),
            routing_profile: agent.routing_profile.clone(),
            connected_ms: now,
            number_of_holds: 0,
            hold_ms: 0,
            longest_hold_ms: 0,
            left_ms: None,
        });
        self.leg.agent_id = Some(agent.id.clone());
        self.last_agent = Some(agent.username.clone());
        self.leg.phase = Phase::Talking;
        self.push(Step::Agent { action: "connect".into(), agent: agent.username.clone(), detail: None });
        self.emit("CONNECTED_TO_AGENT", now);
        let env = self.center.environment(now);
        let flow = self.leg.flow.clone();
        Interpreter::new(&flow.flow, &env).step(
            &mut self.leg.state,
            now,
            Event::AgentConnected(agent_info(&agent)),
        );
        self.copy_log();
        // The whisper flows play to the agent, then to the caller, before the two are bridged.
        self.start_hook("AgentWhisper").await;
        if self.leg.phase != Phase::Ended {
            self.start_hook("CustomerWhisper").await;
        }
        if self.leg.phase != Phase::Ended {
            self.leg.phase = Phase::Talking;
        }
    }

    /// The agent transfers the caller: the current contact ends and a new one begins.
    fn transfer(&mut self, target: TransferTarget) {
        let lib = &self.center.library;
        let (kind, name, flow) = match &target {
            TransferTarget::Queue(q) => (QuickConnectType::Queue, q.clone(), None),
            TransferTarget::Agent(a) => (QuickConnectType::Agent, a.clone(), None),
            TransferTarget::QuickConnect(n) => match lib.quick_connect(n) {
                Some(qc) => (qc.kind, qc.target.clone(), qc.flow.clone()),
                None => return self.refuse(format!("no quick connect {n}")),
            },
        };
        let target_queue = match kind {
            QuickConnectType::Queue => match lib.queue(&name) {
                Some(q) => TargetQueue {
                    id: q.id.clone(),
                    arn: lib.queue_arn(q),
                    name: q.name.clone(),
                    outbound_caller_id: q.outbound_caller_id.clone(),
                    hours_of_operation_id: lib.queue_hours(q).map(|h| h.id.clone()),
                    agent_id: None,
                },
                None => return self.refuse(format!("no queue {name}")),
            },
            QuickConnectType::Agent => match lib.agent(&name) {
                Some(a) => TargetQueue {
                    id: a.id.clone(),
                    arn: format!("{}/queue/agent/{}", lib.instance_arn, a.id),
                    name: a.username.clone(),
                    outbound_caller_id: None,
                    hours_of_operation_id: None,
                    agent_id: Some(a.id.clone()),
                },
                None => return self.refuse(format!("no agent {name}")),
            },
            QuickConnectType::Phone => {
                let now = self.now();
                self.push(Step::Agent {
                    action: "transfer".into(),
                    agent: self.agent_name(),
                    detail: Some(format!("to {name}; the simulated party answers")),
                });
                self.leg.transfer_completed_ms = Some(now);
                self.leg.transferred_to = Some(Endpoint::phone(name));
                self.leg.reason = Some("THIRD_PARTY_DISCONNECT".into());
                self.leg.phase = Phase::Ended;
                return;
            }
        };
        let next_id = uuid::Uuid::new_v4().to_string();
        self.push(Step::Agent {
            action: "transfer".into(),
            agent: self.agent_name(),
            detail: Some(format!(
                "to {}{}",
                target_queue.name,
                flow.as_deref().map(|f| format!(" through {f}")).unwrap_or_default()
            )),
        });
        self.leg.transfer_completed_ms = Some(self.now());
        self.leg.next_contact_id = Some(next_id);
        // The agent leaves once the transfer is complete.
        self.leg.reason = Some("AGENT_DISCONNECT".into());
        self.leg.phase = Phase::Ended;
        self.pending_transfer = Some((target_queue, flow));
    }

    /// Begins the contact a transfer created: the transfer flow runs, or the contact goes
    /// straight to the queue or agent.
    async fn start_transfer_leg(&mut self, contact_id: String) {
        let Some((target, flow)) = self.pending_transfer.take() else { return };
        let old = &self.leg.state;
        let mut state = ContactState::inbound(
            contact_id.clone(),
            &old.customer_endpoint.as_ref().map(|e| e.address.clone()).unwrap_or_default(),
            &old.system_endpoint.as_ref().map(|e| e.address.clone()).unwrap_or_default(),
        );
        state.initial_contact_id = old.initial_contact_id.clone();
        state.previous_contact_id = Some(old.contact_id.clone());
        state.initiation_method = "TRANSFER".into();
        state.attributes = old.attributes.clone();
        state.rng = seed(&contact_id);
        state.queue = Some(target.clone());
        let flow = flow.and_then(|f| self.center.library.get(&f));
        let now = self.now();
        self.leg = Leg::new(state, flow.clone().unwrap_or_else(|| self.first_flow.clone()), now);
        self.timers = 0;
        self.push(Step::Contact {
            contact_id,
            initiation_method: "TRANSFER".into(),
            previous_contact_id: self.leg.state.previous_contact_id.clone(),
        });
        self.emit("INITIATED", now);
        self.emit("CONNECTED_TO_SYSTEM", now);
        match flow {
            Some(flow) => {
                self.push(Step::Flow { flow: flow.name.clone(), flow_id: flow.id.clone() });
                self.run_flow(Event::Start).await;
                self.after_flow().await;
            }
            None => {
                let agent = target.agent_id.as_deref().and_then(|a| self.center.library.agent(a).cloned());
                let queued = match agent {
                    Some(agent) => {
                        self.enqueue_for_agent(&agent);
                        true
                    }
                    None => self.enqueue(&target) == QueueOutcome::Queued,
                };
                if queued {
                    self.leg.phase = Phase::Queued;
                } else {
                    self.leg.reason = Some("CONTACT_FLOW_DISCONNECT".into());
                    self.leg.phase = Phase::Ended;
                }
            }
        }
    }

    /// Places the contact in a queue (logged, QUEUED emitted).
    fn enqueue(&mut self, q: &TargetQueue) -> QueueOutcome {
        let now = self.now();
        let outcome = match self.center.queues.enqueue(&q.id, &self.leg.state.contact_id, now) {
            Ok(()) => {
                self.leg.queue = Some(QueueVisit {
                    name: q.name.clone(),
                    arn: q.arn.clone(),
                    enqueue_ms: now,
                    dequeue_ms: None,
                    queue_type: "STANDARD",
                });
                QueueOutcome::Queued
            }
            Err(EnqueueError::AtCapacity) => QueueOutcome::AtCapacity,
            Err(EnqueueError::UnknownQueue(id)) => QueueOutcome::Failed(format!("no queue {id}")),
        };
        let result = match &outcome {
            QueueOutcome::Queued => "QUEUED".to_string(),
            QueueOutcome::AtCapacity => "AT_CAPACITY".to_string(),
            QueueOutcome::Failed(e) => format!("FAILED: {e}"),
        };
        self.push(Step::Queue { name: q.name.clone(), arn: q.arn.clone(), result });
        if outcome == QueueOutcome::Queued {
            self.emit("QUEUED", now);
        }
        outcome
    }

    /// Places the contact in an agent's own queue.
    fn enqueue_for_agent(&mut self, agent: &Agent) {
        let now = self.now();
        let arn = format!("{}/queue/agent/{}", self.center.library.instance_arn, agent.id);
        self.leg.queue = Some(QueueVisit {
            name: agent.username.clone(),
            arn: arn.clone(),
            enqueue_ms: now,
            dequeue_ms: None,
            queue_type: "AGENT",
        });
        self.leg.agent_queue = Some(agent.id.clone());
        self.push(Step::Queue { name: agent.username.clone(), arn, result: "QUEUED".into() });
        self.emit("QUEUED", now);
    }

    /// Ends the current contact: leaves the queue, frees the agent, emits DISCONNECTED and
    /// hands the trace record to the sink.
    fn end_leg(&mut self) {
        let reason = self.leg.reason.clone().unwrap_or_else(|| "CONTACT_FLOW_DISCONNECT".into());
        self.leg.reason = Some(reason.clone());
        self.push(Step::Disconnect { reason });
        let now = self.now();
        self.center.queues.remove(&self.leg.state.contact_id);
        if let Some(q) = &mut self.leg.queue {
            q.dequeue_ms.get_or_insert(now);
        }
        if let Some(started) = self.leg.hold_started_ms.take() {
            self.close_hold(started, now);
        }
        if let Some(agent) = self.leg.agent_id.take() {
            self.center.release_agent(&agent);
        }
        self.emit("DISCONNECTED", now);
        let ctr = record::contact_trace_record(&self.timeline(now));
        self.center.sink.contact_ended(&ctr);
        self.ctrs.push(ctr);
        self.leg.phase = Phase::Ended;
    }

    fn finish(mut self) -> ContactResult {
        let mut ctrs = std::mem::take(&mut self.ctrs).into_iter();
        let first = ctrs.next().unwrap_or(Value::Null);
        let state = &self.leg.state;
        let result = ContactResult {
            contact_id: first["ContactId"].as_str().unwrap_or(&state.contact_id).to_string(),
            initial_contact_id: state.initial_contact_id.clone(),
            from: self.from,
            to: self.to,
            flow: self.first_flow.name.clone(),
            disposition: self.disposition.unwrap_or("ERROR").to_string(),
            disconnect_reason: self.leg.reason.clone().unwrap_or_default(),
            voice_call_id: state.attributes.get("voiceCallId").filter(|v| !v.is_empty()).cloned(),
            queue: first["Queue"]["Name"].as_str().map(|name| QueueRef {
                name: name.to_string(),
                arn: first["Queue"]["ARN"].as_str().unwrap_or("").to_string(),
            }),
            agent: self.last_agent,
            attributes: state.attributes.clone(),
            steps: self.steps,
            ctr: first,
            transferred_contacts: ctrs.collect(),
            contact_events: self.contact_events,
        };
        if let Some(slot) = self.live.take() {
            slot.finish(&result);
        }
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Ok(()));
        }
        result
    }

    fn copy_log(&mut self) {
        let state = &self.leg.state;
        let dropped = state.log_dropped();
        let start = self.leg.seen_log.saturating_sub(dropped);
        let entries: Vec<_> = state.log().iter().skip(start).cloned().collect();
        self.leg.seen_log = dropped + state.log().len();
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
    async fn execute(&mut self, command: Command) -> Option<Event> {
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
            Command::CollectDigits(c) => {
                let prompt = self.steps.iter().rev().find_map(|s| match &s.step {
                    Step::Prompt { text, ssml, prompt_id } => {
                        text.clone().or(ssml.clone()).or(prompt_id.clone())
                    }
                    _ => None,
                });
                let waiting = Waiting::Digits {
                    prompt,
                    timeout_seconds: c.first_digit_timeout_seconds,
                    max_digits: c.max_digits,
                };
                loop {
                    return match self.next_input(waiting.clone()).await {
                        Some(CallerInput::Keys { wait_seconds, keys })
                            if wait_seconds < c.first_digit_timeout_seconds =>
                        {
                            self.advance(i64::from(wait_seconds) * 1000);
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
                        Some(CallerInput::Agent(a)) => {
                            self.refuse(format!("agent {a}: no agent is on the contact yet"));
                            continue;
                        }
                        _ => {
                            let waited = c.first_digit_timeout_seconds;
                            self.advance(i64::from(waited) * 1000);
                            self.push(Step::Input { keys: None, timeout: true, waited_seconds: waited });
                            Some(Event::InputTimeout)
                        }
                    };
                }
            }
            Command::InvokeFunction(inv) if inv.asynchronous => {
                // The flow goes on at once; the function runs on its own and its result is
                // not given to the flow (it has `$.LambdaInvocation.InvocationId`).
                let limit = Duration::from_secs(u64::from(inv.timeout_seconds.max(1)));
                let functions = self.center.functions.clone();
                let function = functions.resolve(&inv.function_arn);
                let (arn, event) = (inv.function_arn.clone(), inv.event.clone());
                tokio::spawn(async move {
                    let invoked = functions.invoke(&arn, event, limit).await;
                    if let Err(e) = invoked.result {
                        tracing::info!(function = %arn, "asynchronous invocation failed: {e}");
                    }
                });
                self.push(Step::Function {
                    arn: inv.function_arn,
                    function,
                    asynchronous: true,
                    invocation_id: Some(inv.invocation_id),
                    retries: 0,
                    event: inv.event,
                    response: None,
                    error: None,
                    duration_ms: 0,
                });
                None
            }
            Command::InvokeFunction(inv) => {
                let limit_ms = i64::from(inv.timeout_seconds.max(1)) * 1000;
                let limit = Duration::from_millis(limit_ms as u64);
                let mut invoked =
                    self.center.functions.invoke(&inv.function_arn, inv.event.clone(), limit).await;
                // Throttled invocations are retried with a doubling wait, within the time limit.
                let (mut retries, mut waited_ms) = (0, 0);
                while matches!(invoked.result, Err(FunctionError::Throttled(_))) && retries < THROTTLE_RETRIES
                {
                    let backoff = THROTTLE_BACKOFF_MS << retries;
                    if waited_ms + backoff >= limit_ms {
                        break;
                    }
                    waited_ms += backoff;
                    retries += 1;
                    self.advance(backoff);
                    // Lets other contacts' invocations finish (and free their slots) meanwhile.
                    tokio::task::yield_now().await;
                    let left = Duration::from_millis((limit_ms - waited_ms) as u64);
                    invoked = self.center.functions.invoke(&inv.function_arn, inv.event.clone(), left).await;
                }
                let (response, error) = match &invoked.result {
                    Ok(v) => (Some(v.clone()), None),
                    Err(e) => (None, Some(e.to_string())),
                };
                self.push(Step::Function {
                    arn: inv.function_arn.clone(),
                    function: invoked.function.clone(),
                    asynchronous: false,
                    invocation_id: None,
                    retries,
                    event: inv.event,
                    response,
                    error,
                    duration_ms: invoked.duration.as_millis() as u64,
                });
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
                let outcome = match q.agent_id.as_deref().map(|a| self.center.library.agent(a).cloned()) {
                    Some(Some(agent)) => {
                        self.enqueue_for_agent(&agent);
                        QueueOutcome::Queued
                    }
                    Some(None) => QueueOutcome::Failed(format!("no agent {}", q.name)),
                    None => self.enqueue(&q),
                };
                Some(Event::QueueResult(outcome))
            }
            Command::TransferToFlow { flow_id } => match self.center.library.get(&flow_id) {
                Some(next) => {
                    self.push(Step::Flow { flow: next.name.clone(), flow_id: next.id.clone() });
                    self.leg.flow = next;
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
                        self.leg.state.contact_id
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
            Command::StartTimer { seconds } if matches!(self.leg.phase, Phase::Queued | Phase::OnHold) => {
                // In queue and on hold the timer fires when simulated waits reach it.
                self.leg.timer_due_ms = Some(self.now().saturating_add(i64::from(seconds) * 1000));
                self.push(Step::Command { command: format!("timer of {seconds} s started") });
                None
            }
            Command::StartTimer { seconds } => {
                self.advance(i64::from(seconds) * 1000);
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
                self.leg.recording = !recorded_participants.is_empty();
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
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How a contact's first flow ended, as the result names it.
fn disposition(ended: Option<&Ended>) -> &'static str {
    match ended {
        Some(Ended::Queued) => "QUEUED",
        Some(Ended::Disconnected) => "DISCONNECTED",
        Some(Ended::FlowEnded) => "FLOW_ENDED",
        Some(Ended::CustomerHungUp) => "CUSTOMER_HUNG_UP",
        Some(Ended::TransferredToAgent) => "TRANSFERRED_TO_AGENT",
        Some(Ended::TransferredToThirdParty) => "TRANSFERRED_TO_THIRD_PARTY",
        Some(Ended::Error) | None => "ERROR",
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
