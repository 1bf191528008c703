//! The router's vocabulary: ids, presence, the specs the host describes queues, agents and
//! work with, the configuration, and the [`Input`]s and [`Output`]s of [`crate::Router`].
//!
//! Outputs implement `Display` as one short line (`offer ada c1 expires=20000`), which is what
//! hosts log and what the scenario snapshots show.

use std::collections::BTreeMap;
use std::fmt;

use crate::hours::Hours;

macro_rules! id {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }
    };
}

id!(AgentId, "An agent (a CRM user mapped to the call center), e.g. its user id.");
id!(QueueId, "A queue (a CRM `Group` of type Queue), e.g. its id or developer name.");
id!(WorkId, "A work item: one voice call (its VoiceCall id) or one callback.");

/// An agent's presence status. `Offline` means logged out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Presence {
    Available,
    Busy,
    Offline,
    /// A status of the contact center's own (`Lunch`, `Training`, `Missed`); whether it is
    /// routable is looked up in [`Config::custom_statuses`] (unknown names are not).
    Custom(String),
}

impl fmt::Display for Presence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Presence::Available => f.write_str("Available"),
            Presence::Busy => f.write_str("Busy"),
            Presence::Offline => f.write_str("Offline"),
            Presence::Custom(name) => f.write_str(name),
        }
    }
}

/// A skill an agent has, or a skill a work item requires (then `level` is the minimum).
/// Names compare case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skill {
    pub name: String,
    pub level: u32,
}

impl Skill {
    pub fn new(name: impl Into<String>, level: u32) -> Self {
        Self { name: name.into(), level }
    }
}

/// A queue as the host defines it (re-sending a spec updates the queue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub id: QueueId,
    pub name: String,
    /// Lower is served first when an agent serves several queues (Omni-Channel's convention).
    pub priority: u32,
    /// The most contacts that may wait in the queue; new arrivals beyond it overflow.
    pub capacity: Option<u32>,
    /// Opening hours; arrivals while closed overflow or get `NoAgentsAvailable`.
    pub hours: Option<Hours>,
    /// Where contacts go when nobody staffs this queue for `Config::overflow_after_ms`.
    pub overflow: Option<QueueId>,
}

impl QueueSpec {
    pub fn new(id: impl Into<String>) -> Self {
        let id = QueueId::new(id);
        Self { name: id.0.clone(), id, priority: 1, capacity: None, hours: None, overflow: None }
    }
}

/// An agent as the host describes it at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSpec {
    pub id: AgentId,
    /// Capacity in units; a voice call takes 1 unit by default, so 1 means one call at a time.
    pub capacity: u32,
    pub skills: Vec<Skill>,
    /// The queues this agent serves (its routing configuration).
    pub queues: Vec<QueueId>,
}

impl AgentSpec {
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: AgentId::new(id), capacity: 1, skills: Vec::new(), queues: Vec::new() }
    }
}

/// Where a work item is routed: what the PendingServiceRouting points at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    Queue(QueueId),
    /// Direct to an agent (direct-to-rep numbers, `agent` routing rules).
    Agent(AgentId),
    /// Any agent whose skills match (skills-based routing without a queue).
    Skills,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Queue(q) => write!(f, "queue:{q}"),
            Target::Agent(a) => write!(f, "agent:{a}"),
            Target::Skills => f.write_str("skills"),
        }
    }
}

/// A request to route one work item (a PendingServiceRouting was created).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkSpec {
    pub id: WorkId,
    pub target: Target,
    /// Required skills with minimum levels; an agent must have every one at that level or more.
    pub skills: Vec<Skill>,
    /// Lower is served first within a queue.
    pub priority: u32,
    /// Where the work goes when its target cannot take it (agent unavailable, queue unstaffed,
    /// full or unknown).
    pub fallback: Option<QueueId>,
    /// Capacity units the work takes (1 for a voice call).
    pub units: u32,
    /// When the caller first joined the line; defaults to now. Callbacks and transfers pass the
    /// original time so the caller keeps their place.
    pub original_enqueued_at: Option<u64>,
}

impl WorkSpec {
    pub fn new(id: impl Into<String>, target: Target) -> Self {
        Self {
            id: WorkId::new(id),
            target,
            skills: Vec::new(),
            priority: 1,
            fallback: None,
            units: 1,
            original_enqueued_at: None,
        }
    }
}

/// A queued callback (CreateCallbackContact / Request a Callback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackSpec {
    /// The callback work item; `route.id` is the callback's own id.
    pub route: WorkSpec,
    /// The waiting call the callback replaces: it leaves the queue and the callback inherits its
    /// place in line.
    pub replaces: Option<WorkId>,
    pub initial_delay_ms: u64,
    /// At least 1.
    pub max_attempts: u32,
    pub retry_delay_ms: u64,
}

/// What happened when the agent's outbound call to the customer was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackOutcome {
    Answered,
    NoAnswer,
    /// Reached voicemail: counts as completed (the agent may leave a message).
    Voicemail,
}

/// Timeouts and policies. Durations are milliseconds; zero durations are raised to 1 ms so every
/// deadline lies in the future.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How long an offer rings before it counts as missed.
    pub offer_timeout_ms: u64,
    /// How long an agent who declined or missed a work item is skipped for that item.
    pub reoffer_cooldown_ms: u64,
    /// Consecutive missed offers that put an agent into `missed_status`; 0 disables.
    pub missed_offers_limit: u32,
    /// The non-routable status given to agents who miss too many offers.
    pub missed_status: String,
    /// Custom statuses and whether they are routable.
    pub custom_statuses: BTreeMap<String, bool>,
    /// After-call work after a hang-up; 0 closes the work at hang-up.
    pub wrap_up_ms: u64,
    /// How long a contact waits in a queue nobody staffs before it overflows.
    pub overflow_after_ms: u64,
    /// How long a direct-to-agent contact waits for a busy agent before its fallback queue.
    pub direct_wait_ms: u64,
    /// Priority of the skills pool among queues when an agent could serve both.
    pub skills_priority: u32,
    /// An assigned call without hang-up for this long asks the host for a reconciliation.
    pub max_work_ms: u64,
    /// How long the host has to answer such a request before the work is closed as lost.
    pub reconcile_grace_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            offer_timeout_ms: 20_000,
            reoffer_cooldown_ms: 60_000,
            missed_offers_limit: 3,
            missed_status: "Missed".into(),
            custom_statuses: BTreeMap::new(),
            wrap_up_ms: 60_000,
            overflow_after_ms: 60_000,
            direct_wait_ms: 30_000,
            skills_priority: 1,
            max_work_ms: 4 * 3_600_000,
            reconcile_grace_ms: 60_000,
        }
    }
}

/// Everything that can happen to the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Creates or updates a queue.
    DefineQueue(QueueSpec),
    /// Logs an agent in (or updates a logged-in agent's skills, queues and capacity).
    AgentLogin {
        agent: AgentSpec,
        presence: Presence,
    },
    AgentLogout {
        agent: AgentId,
    },
    SetPresence {
        agent: AgentId,
        presence: Presence,
    },
    /// A PendingServiceRouting was created (executeOmniFlow, route a voice call, a transfer).
    /// For a work item still waiting, it replaces its routing.
    RouteWork(WorkSpec),
    OfferAccepted {
        agent: AgentId,
        work: WorkId,
    },
    OfferDeclined {
        agent: AgentId,
        work: WorkId,
    },
    /// The telephony side could not connect an accepted call to the agent.
    ConnectFailed {
        work: WorkId,
    },
    /// The call hung up.
    WorkEnded {
        work: WorkId,
    },
    /// The agent finished after-call work.
    WrapUpEnded {
        work: WorkId,
    },
    /// Closes accepted work and routes the call again (to `target`, or where it was routed).
    Reroute {
        work: WorkId,
        target: Option<Target>,
    },
    /// Drops pending routing (the PendingServiceRouting was deleted); accepted work stays.
    ClearRouting {
        work: WorkId,
    },
    /// The caller hung up before being connected.
    CallerAbandoned {
        work: WorkId,
    },
    RequestCallback(CallbackSpec),
    CallbackOutcome {
        work: WorkId,
        outcome: CallbackOutcome,
    },
    /// The calls the telephony side says are alive, as of `taken_at`. Calls the router knows
    /// that were routed before `taken_at` and are missing are over.
    Reconcile {
        taken_at: u64,
        alive: Vec<WorkId>,
    },
    /// Nothing happened but time passed: fires due timers.
    Tick,
}

/// Why an offer was withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RescindReason {
    CallerAbandoned,
    Cleared,
    Rerouted,
    AgentUnavailable,
    Reconciled,
    ConvertedToCallback,
}

/// Why a connection to an agent failed (not the agent's fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The agent accepted after the offer had expired or been withdrawn.
    OfferNoLongerValid,
    /// The telephony side reported it could not bridge the call.
    Telephony,
}

/// Why an AgentWork closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    Completed,
    WrapUpTimedOut,
    Rerouted,
    /// No hang-up arrived; reconciliation says the call is gone (or the host did not answer).
    HangUpLost,
    ConnectFailed,
    CallbackNoAnswer,
}

/// Why routing ended without an agent (the PendingServiceRouting goes away).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Abandoned,
    Cleared,
    Reconciled,
    ConvertedToCallback,
    QueueFull,
    UnknownQueue,
}

/// Why a work item overflowed or nobody can take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverflowReason {
    /// Nobody in a routable status serves the queue.
    Unstaffed,
    /// Staffed, but nobody has the required skills.
    NoSkilledAgent,
    /// The direct agent is unavailable, declined or did not answer in time.
    AgentUnavailable,
    Closed,
    Full,
    UnknownQueue,
}

/// Why an agent's presence changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceReason {
    Requested,
    MissedOffers,
}

/// How a callback ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackResult {
    Answered,
    Voicemail,
    /// Every attempt went unanswered.
    Exhausted,
}

/// Queue metrics for CheckMetricData and the supervisor view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMetrics {
    pub queue: QueueId,
    /// Agents serving the queue who are logged in (any status but Offline).
    pub agents_online: u32,
    /// Agents serving the queue in a routable status (busy on calls or not).
    pub agents_staffed: u32,
    /// Agents serving the queue in a routable status with free capacity.
    pub agents_available: u32,
    /// Contacts waiting or ringing an agent.
    pub contacts_in_queue: u32,
    /// When the longest-waiting contact entered the queue.
    pub oldest_enqueued_at: Option<u64>,
}

impl QueueMetrics {
    pub fn oldest_contact_age_ms(&self, now_ms: u64) -> u64 {
        self.oldest_enqueued_at.map_or(0, |t| now_ms.saturating_sub(t))
    }
}

/// What the host must carry out or record, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The PendingServiceRouting now points at `target` and the work waits there.
    Queued {
        work: WorkId,
        target: Target,
    },
    /// Push an offer to the agent's console; it expires at `expires_at`.
    Offer {
        agent: AgentId,
        work: WorkId,
        expires_at: u64,
    },
    /// Stop ringing: the offer is withdrawn.
    OfferRescinded {
        agent: AgentId,
        work: WorkId,
        reason: RescindReason,
    },
    /// The agent let the offer ring out (AgentWork `DeclinedOnPushTimeout`).
    OfferMissed {
        agent: AgentId,
        work: WorkId,
    },
    /// The agent declined the offer (AgentWork `Declined`).
    OfferRejected {
        agent: AgentId,
        work: WorkId,
    },
    /// The agent tried to take the call but it could not be connected.
    ConnectFailed {
        agent: AgentId,
        work: WorkId,
        reason: ConnectFailure,
    },
    /// AgentWork opened: the PendingServiceRouting is consumed; connect the call.
    WorkAssigned {
        agent: AgentId,
        work: WorkId,
        queue: Option<QueueId>,
    },
    /// The call ended; after-call work runs until `ends_at` at the latest.
    WrapUpStarted {
        agent: AgentId,
        work: WorkId,
        ends_at: u64,
    },
    /// AgentWork closed; the agent's capacity is free again.
    AgentWorkClosed {
        agent: AgentId,
        work: WorkId,
        reason: CloseReason,
    },
    /// Routing ended without an agent: delete the PendingServiceRouting.
    RoutingEnded {
        work: WorkId,
        reason: EndReason,
    },
    /// The work moved to another queue (a `Queued` follows).
    Overflowed {
        work: WorkId,
        from: Target,
        to: QueueId,
        reason: OverflowReason,
    },
    /// Nobody can take the work and it has nowhere to go: the flow should offer a callback or
    /// voicemail (or clear routing). Sent once per wait.
    NoAgentsAvailable {
        work: WorkId,
        target: Target,
        reason: OverflowReason,
    },
    /// A callback will enter its queue at `due_at`.
    CallbackScheduled {
        work: WorkId,
        attempt: u32,
        due_at: u64,
    },
    /// A callback attempt enters its queue now (keeping the caller's original place).
    CallbackDue {
        work: WorkId,
        attempt: u32,
    },
    /// The callback is over; for `Exhausted` the work is gone.
    CallbackFinished {
        work: WorkId,
        result: CallbackResult,
        attempts: u32,
    },
    /// The call has had no hang-up for `max_work_ms`: send a `Reconcile` snapshot.
    ReconcileRequested {
        work: WorkId,
    },
    AgentStateChanged {
        agent: AgentId,
        presence: Presence,
        reason: PresenceReason,
    },
    QueueMetrics(QueueMetrics),
    /// The input could not apply (unknown ids, wrong state); nothing changed.
    InputIgnored {
        input: &'static str,
        reason: String,
    },
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Queued { work, target } => write!(f, "queued {work} at {target}"),
            Output::Offer { agent, work, expires_at } => {
                write!(f, "offer {agent} {work} expires={expires_at}")
            }
            Output::OfferRescinded { agent, work, reason } => {
                write!(f, "offer-rescinded {agent} {work} {reason:?}")
            }
            Output::OfferMissed { agent, work } => write!(f, "missed {agent} {work}"),
            Output::OfferRejected { agent, work } => write!(f, "rejected {agent} {work}"),
            Output::ConnectFailed { agent, work, reason } => {
                write!(f, "failed-to-connect {agent} {work} {reason:?}")
            }
            Output::WorkAssigned { agent, work, queue } => match queue {
                Some(q) => write!(f, "assigned {agent} {work} from {q}"),
                None => write!(f, "assigned {agent} {work}"),
            },
            Output::WrapUpStarted { agent, work, ends_at } => {
                write!(f, "wrap-up {agent} {work} until={ends_at}")
            }
            Output::AgentWorkClosed { agent, work, reason } => {
                write!(f, "work-closed {agent} {work} {reason:?}")
            }
            Output::RoutingEnded { work, reason } => write!(f, "routing-ended {work} {reason:?}"),
            Output::Overflowed { work, from, to, reason } => {
                write!(f, "overflowed {work} {from} -> queue:{to} {reason:?}")
            }
            Output::NoAgentsAvailable { work, target, reason } => {
                write!(f, "no-agents-available {work} at {target} {reason:?}")
            }
            Output::CallbackScheduled { work, attempt, due_at } => {
                write!(f, "callback-scheduled {work} attempt={attempt} due={due_at}")
            }
            Output::CallbackDue { work, attempt } => write!(f, "callback-due {work} attempt={attempt}"),
            Output::CallbackFinished { work, result, attempts } => {
                write!(f, "callback-finished {work} {result:?} attempts={attempts}")
            }
            Output::ReconcileRequested { work } => write!(f, "reconcile-requested {work}"),
            Output::AgentStateChanged { agent, presence, reason } => {
                write!(f, "agent {agent} {presence} ({reason:?})")
            }
            Output::QueueMetrics(m) => write!(
                f,
                "metrics {} online={} staffed={} available={} in_queue={} oldest={}",
                m.queue,
                m.agents_online,
                m.agents_staffed,
                m.agents_available,
                m.contacts_in_queue,
                m.oldest_enqueued_at.map_or("-".to_string(), |t| t.to_string())
            ),
            Output::InputIgnored { input, reason } => write!(f, "ignored {input}: {reason}"),
        }
    }
}
