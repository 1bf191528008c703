//! Per-contact state ([`ContactState`]) and the host-supplied snapshot of the contact center
//! ([`Environment`]: queues, agents, metrics, hours of operation).
//!
//! The state is what `$.` references read and what the flow changes. It also carries the
//! interpreter's own bookkeeping (where the contact is, loop counters, the execution log),
//! which is private so hosts cannot put it in an impossible position.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

/// `Address` and `Type` of a participant endpoint (`$.CustomerEndpoint.*`, `$.SystemEndpoint.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub address: String,
    /// `TELEPHONE_NUMBER` for voice.
    pub kind: String,
}

impl Endpoint {
    pub fn phone(address: impl Into<String>) -> Endpoint {
        Endpoint { address: address.into(), kind: "TELEPHONE_NUMBER".into() }
    }
}

/// The working queue (`$.Queue.*`) set by `UpdateContactTargetQueue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetQueue {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub outbound_caller_id: Option<String>,
    /// The hours of operation of the queue (`None` for agent queues: always open).
    pub hours_of_operation_id: Option<String>,
    /// Set when the working queue is an agent's personal queue (`AgentId`).
    pub agent_id: Option<String>,
}

/// The customer audio stream (`$.MediaStreams.Customer.Audio.*`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AudioStream {
    pub stream_arn: String,
    /// Epoch milliseconds as text, as Amazon Connect hands them to Lambda.
    pub start_timestamp: Option<String>,
    pub stop_timestamp: Option<String>,
    pub start_fragment_number: Option<String>,
}

/// An agent as the flow sees it (`$.Agent.*`), and as the host describes agents.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentInfo {
    pub id: String,
    pub arn: String,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    /// Metrics of the agent's personal queue (for `CheckMetricData` with `AgentId`).
    pub metrics: QueueMetrics,
}

/// Real-time metrics of a queue, supplied by the host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueMetrics {
    pub agents_online: u64,
    pub agents_available: u64,
    pub agents_staffed: u64,
    pub contacts_in_queue: u64,
    /// Age of the oldest contact in the queue, in milliseconds.
    pub oldest_contact_age_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueInfo {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub outbound_caller_id: Option<String>,
    pub hours_of_operation_id: Option<String>,
    pub metrics: QueueMetrics,
}

/// One open interval in a week, in the hours' local time. `day` 0 is Sunday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenRange {
    pub day: u8,
    pub start_minute: u16,
    /// Exclusive; 1440 means midnight at the end of the day.
    pub end_minute: u16,
}

/// Hours of operation. Time zones are the host's business: it passes the UTC offset in force
/// now (so DST needs no tz database here), or simply decides with `override_open`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HoursOfOperation {
    pub id: String,
    pub arn: String,
    pub utc_offset_minutes: i32,
    pub open: Vec<OpenRange>,
    /// When set, the answer regardless of the schedule (holidays, emergencies, tests).
    pub override_open: Option<bool>,
}

impl HoursOfOperation {
    /// Whether the hours are open at `now_ms` (epoch milliseconds, UTC).
    pub fn is_open(&self, now_ms: i64) -> bool {
        if let Some(open) = self.override_open {
            return open;
        }
        let local_minutes = now_ms.div_euclid(60_000).saturating_add(i64::from(self.utc_offset_minutes));
        let day_number = local_minutes.div_euclid(1440);
        // 1970-01-01 was a Thursday (day 4 counting from Sunday).
        let day = (day_number + 4).rem_euclid(7) as u8;
        let minute = local_minutes.rem_euclid(1440) as u16;
        self.open.iter().any(|r| r.day == day && r.start_minute <= minute && minute < r.end_minute)
    }
}

/// What the host knows about the contact center, read by the interpreter, never written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// `$.InstanceARN`, also the prefix of agent-queue ARNs.
    pub instance_arn: String,
    pub queues: Vec<QueueInfo>,
    pub agents: Vec<AgentInfo>,
    pub hours: Vec<HoursOfOperation>,
    /// Country calling codes (without `+`) callbacks may dial; empty means any.
    pub dialable_country_codes: Vec<String>,
    /// Actions one event may run before the contact is disconnected as looping.
    pub step_budget: usize,
}

impl Default for Environment {
    fn default() -> Self {
        Environment {
            instance_arn: "arn:aws:connect:local:000000000000:instance/voxbridge".into(),
            queues: Vec::new(),
            agents: Vec::new(),
            hours: Vec::new(),
            dialable_country_codes: Vec::new(),
            step_budget: DEFAULT_STEP_BUDGET,
        }
    }
}

pub const DEFAULT_STEP_BUDGET: usize = 1_000;

impl Environment {
    /// A queue by id, by ARN, or by the last ARN segment (flows use all three).
    pub fn queue(&self, key: &str) -> Option<&QueueInfo> {
        self.queues.iter().find(|q| matches_id(&q.id, &q.arn, key))
    }

    pub fn agent(&self, key: &str) -> Option<&AgentInfo> {
        self.agents.iter().find(|a| matches_id(&a.id, &a.arn, key))
    }

    pub fn hours_of_operation(&self, key: &str) -> Option<&HoursOfOperation> {
        self.hours.iter().find(|h| matches_id(&h.id, &h.arn, key))
    }
}

fn matches_id(id: &str, arn: &str, key: &str) -> bool {
    !key.is_empty() && (id == key || arn == key || arn.rsplit('/').next() == Some(key))
}

/// Why a contact's flow execution ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    Disconnected,
    /// `EndFlowExecution` (whisper, queue and hold flows).
    FlowEnded,
    Queued,
    TransferredToAgent,
    TransferredToThirdParty,
    /// The caller hung up.
    CustomerHungUp,
    /// The interpreter stopped the contact (step budget, missing branch, …); see the log.
    Error,
}

/// Where the interpreter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    Function,
    Digits,
    Queue,
    /// `TransferToFlow` (the host starts the next flow or reports failure) and third-party transfers.
    Transfer,
    MediaStream,
    Timer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Position {
    NotStarted,
    Waiting { action: usize, wait: Wait },
    Ended(Ended),
}

/// One line of the execution log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Epoch milliseconds of the event that caused it.
    pub at_ms: i64,
    /// The action's Identifier, or `None` for events and contact-level notes.
    pub action: Option<String>,
    pub kind: LogKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    Event,
    Action,
    Warning,
    Error,
}

/// The execution log keeps this many entries; older ones are dropped and counted.
pub const LOG_CAPACITY: usize = 10_000;

/// Everything about one contact that flows read and write.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactState {
    pub contact_id: String,
    pub initial_contact_id: String,
    pub previous_contact_id: Option<String>,
    /// `VOICE`.
    pub channel: String,
    /// `INBOUND`, `OUTBOUND`, `TRANSFER`, `CALLBACK`, `API`, …
    pub initiation_method: String,
    pub customer_endpoint: Option<Endpoint>,
    pub system_endpoint: Option<Endpoint>,
    /// `$.Attributes`; ordered so logs and Lambda events are deterministic.
    pub attributes: BTreeMap<String, String>,
    /// `$.External`: the last Lambda response (an object), replaced on every invocation.
    pub external: Value,
    pub stored_customer_input: Option<String>,
    pub queue: Option<TargetQueue>,
    pub agent: Option<AgentInfo>,
    pub customer_audio: Option<AudioStream>,
    pub language_code: String,
    pub text_to_speech_voice: String,
    pub customer_id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub callback_number: Option<String>,
    /// `$.LambdaInvocation.InvocationId` of the last asynchronous invocation.
    pub lambda_invocation_id: Option<String>,
    pub recorded_participants: Vec<String>,
    pub flow_logging: bool,
    pub event_hooks: BTreeMap<String, String>,
    pub routing_criteria: Option<Value>,
    /// Seed of the deterministic generator behind `DistributeByPercentage`.
    pub rng: u64,
    pub(crate) position: Position,
    pub(crate) loop_counters: HashMap<usize, u32>,
    pub(crate) invocations: u64,
    pub(crate) now_ms: i64,
    pub(crate) log: Vec<LogEntry>,
    pub(crate) log_dropped: usize,
}

impl ContactState {
    /// A new inbound voice contact from `customer` to `system` (E.164 numbers).
    pub fn inbound(contact_id: impl Into<String>, customer: &str, system: &str) -> ContactState {
        let contact_id = contact_id.into();
        ContactState {
            initial_contact_id: contact_id.clone(),
            contact_id,
            previous_contact_id: None,
            channel: "VOICE".into(),
            initiation_method: "INBOUND".into(),
            customer_endpoint: Some(Endpoint::phone(customer)),
            system_endpoint: Some(Endpoint::phone(system)),
            attributes: BTreeMap::new(),
            external: Value::Object(Default::default()),
            stored_customer_input: None,
            queue: None,
            agent: None,
            customer_audio: None,
            language_code: "en-US".into(),
            text_to_speech_voice: "Joanna".into(),
            customer_id: None,
            name: None,
            description: None,
            callback_number: None,
            lambda_invocation_id: None,
            recorded_participants: Vec::new(),
            flow_logging: false,
            event_hooks: BTreeMap::new(),
            routing_criteria: None,
            rng: 0x5eed,
            position: Position::NotStarted,
            loop_counters: HashMap::new(),
            invocations: 0,
            now_ms: 0,
            log: Vec::new(),
            log_dropped: 0,
        }
    }

    /// The execution log, oldest first (at most [`LOG_CAPACITY`] entries).
    pub fn log(&self) -> &[LogEntry] {
        &self.log
    }

    /// How many old log entries were dropped to respect [`LOG_CAPACITY`].
    pub fn log_dropped(&self) -> usize {
        self.log_dropped
    }

    /// `Some(reason)` once the flow execution is over.
    pub fn ended(&self) -> Option<&Ended> {
        match &self.position {
            Position::Ended(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the interpreter is waiting for the host (digits, a function result, …).
    pub fn is_waiting(&self) -> bool {
        matches!(self.position, Position::Waiting { .. })
    }

    pub(crate) fn push_log(&mut self, action: Option<&str>, kind: LogKind, message: String) {
        if self.log.len() >= LOG_CAPACITY {
            // Drop the oldest half at once so a long-lived contact pays O(1) amortised.
            let half = LOG_CAPACITY / 2;
            self.log.drain(..half);
            self.log_dropped += half;
        }
        self.log.push(LogEntry { at_ms: self.now_ms, action: action.map(str::to_owned), kind, message });
    }

    /// The next pseudo-random number (splitmix64): deterministic for a given seed.
    pub(crate) fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
