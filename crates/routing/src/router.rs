//! The router: one authoritative state machine for queues, agents, offers, AgentWork and
//! callbacks. [`Router::handle`] takes the time and one [`Input`] and returns the [`Output`]s.
//!
//! Each call first fires the timers due by `now` (each at its own deadline, so outcomes do not
//! depend on how often the host ticks), applies the input, offers waiting work to free agents,
//! fires any timer the input made due, and reports changed queue metrics.
//!
//! Work waits in a *pool*: a queue, one agent's direct line, or the skills pool (any agent).
//! Each pool keeps its backlog ordered by (work priority, original enqueue time, arrival
//! sequence), so a callback or a transfer that carries the original enqueue time keeps its place.
//!
//! Complexity: offering work in a pool is O(agents in the pool · log) plus the backlog entries
//! skipped because no free agent has their skills; an agent freeing up re-examines only the
//! pools it serves; timers live in one ordered set (O(log n) each); `Reconcile` is O(work).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use crate::model::*;

/// Overflow hops per work item before it stops moving (guards against fallback cycles).
pub(crate) const MAX_HOPS: u32 = 8;
/// Timers fired per `handle` call; the rest fire on the next call (guards pathological configs).
const MAX_TIMERS_PER_CALL: usize = 100_000;

/// Where waiting work sits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Pool {
    Agent(AgentId),
    Queue(QueueId),
    Skills,
}

impl Pool {
    pub(crate) fn of(target: &Target) -> Pool {
        match target {
            Target::Queue(q) => Pool::Queue(q.clone()),
            Target::Agent(a) => Pool::Agent(a.clone()),
            Target::Skills => Pool::Skills,
        }
    }
}

/// A work item's place in line: lower sorts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct OrderKey {
    pub priority: u32,
    pub enqueued_at: u64,
    pub seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TimerKind {
    /// The deadline of the work's stage: offer expiry, wrap-up end, callback due, liveness check.
    Stage,
    /// Overflow out of the pool (unstaffed, no skilled agent, direct agent unavailable).
    Overflow,
    /// A decline cooldown ends: look at the pool again.
    Redispatch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stage {
    Waiting,
    Offered {
        agent: AgentId,
        expires_at: u64,
    },
    Assigned {
        agent: AgentId,
        since: u64,
    },
    WrapUp {
        agent: AgentId,
        until: u64,
    },
    CallbackScheduled {
        due_at: u64,
    },
    /// Transient inside one input while the work moves; never visible between calls.
    Detached,
}

#[derive(Debug, Clone)]
pub(crate) struct CallbackState {
    pub attempt: u32,
    pub max_attempts: u32,
    pub retry_delay_ms: u64,
    pub finished: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Work {
    pub spec: WorkSpec,
    pub key: OrderKey,
    pub stage: Stage,
    pub routed_at: u64,
    /// When the work entered its current pool.
    pub pool_since: u64,
    /// When a staffed pool is next checked for an agent with the required skills.
    pub skill_check_at: u64,
    /// Agents who declined or missed this work, and until when they are skipped.
    pub declined: Vec<(AgentId, u64)>,
    pub hops: u32,
    /// `NoAgentsAvailable` was sent for the current wait.
    pub notified: bool,
    pub callback: Option<CallbackState>,
    /// A reconciliation was requested and not yet answered.
    pub suspect: bool,
    pub timers: Vec<(u64, TimerKind)>,
}

impl Work {
    fn declined_by(&self, agent: &AgentId, now: u64) -> bool {
        self.declined.iter().any(|(a, until)| a == agent && *until > now)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Agent {
    pub spec: AgentSpec,
    pub skills: BTreeMap<String, u32>,
    pub presence: Presence,
    /// Units of offered, assigned and wrapping-up work.
    pub load: u32,
    pub works: BTreeSet<WorkId>,
    /// Last time the agent became routable or finished work: the longest idle is offered first.
    pub idle_since: u64,
    pub missed_in_row: u32,
}

impl Agent {
    fn has_skills(&self, required: &[Skill]) -> bool {
        required.iter().all(|s| self.skills.get(&s.name).is_some_and(|l| *l >= s.level))
    }

    pub(crate) fn pools(&self) -> BTreeSet<Pool> {
        let mut pools: BTreeSet<Pool> = self.spec.queues.iter().cloned().map(Pool::Queue).collect();
        pools.insert(Pool::Agent(self.spec.id.clone()));
        pools.insert(Pool::Skills);
        pools
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct PoolState {
    pub members: BTreeSet<AgentId>,
    /// Members in a routable status.
    pub staffed: u32,
    pub unstaffed_since: Option<u64>,
    /// Waiting work in line order.
    pub backlog: BTreeMap<OrderKey, WorkId>,
    /// Waiting and offered work by the time it entered the pool (contacts in queue, oldest).
    pub in_queue: BTreeSet<(u64, WorkId)>,
}

/// What a work item is doing, for hosts and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkState {
    Queued { target: Target },
    Offered { agent: AgentId, expires_at: u64 },
    Assigned { agent: AgentId },
    WrapUp { agent: AgentId, until: u64 },
    CallbackScheduled { due_at: u64, attempt: u32 },
}

/// An agent's routing state, for hosts and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentState {
    pub presence: Presence,
    pub routable: bool,
    pub load: u32,
    pub capacity: u32,
    pub works: Vec<WorkId>,
}

/// The routing state machine. See the module docs.
#[derive(Debug, Clone)]
pub struct Router {
    pub(crate) config: Config,
    pub(crate) now: u64,
    seq: u64,
    pub(crate) queues: BTreeMap<QueueId, QueueSpec>,
    pub(crate) agents: BTreeMap<AgentId, Agent>,
    pub(crate) works: BTreeMap<WorkId, Work>,
    pub(crate) pools: BTreeMap<Pool, PoolState>,
    pub(crate) timers: BTreeSet<(u64, WorkId, TimerKind)>,
    dirty_pools: BTreeSet<Pool>,
    dirty_metrics: BTreeSet<QueueId>,
    last_metrics: BTreeMap<QueueId, QueueMetrics>,
    out: Vec<Output>,
}

impl Router {
    pub fn new(mut config: Config) -> Router {
        for d in [
            &mut config.offer_timeout_ms,
            &mut config.reoffer_cooldown_ms,
            &mut config.overflow_after_ms,
            &mut config.max_work_ms,
            &mut config.reconcile_grace_ms,
        ] {
            *d = (*d).max(1);
        }
        let mut pools = BTreeMap::new();
        pools.insert(Pool::Skills, PoolState { unstaffed_since: Some(0), ..PoolState::default() });
        Router {
            config,
            now: 0,
            seq: 0,
            queues: BTreeMap::new(),
            agents: BTreeMap::new(),
            works: BTreeMap::new(),
            pools,
            timers: BTreeSet::new(),
            dirty_pools: BTreeSet::new(),
            dirty_metrics: BTreeSet::new(),
            last_metrics: BTreeMap::new(),
            out: Vec::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The latest time the router has seen.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// When the next timer fires: the host sends `Tick` then (or earlier).
    pub fn next_deadline(&self) -> Option<u64> {
        self.timers.first().map(|t| t.0)
    }

    /// Handles one input at `now_ms` (epoch ms; a time earlier than one already seen counts as
    /// that time). Never panics.
    pub fn handle(&mut self, now_ms: u64, input: Input) -> Vec<Output> {
        let now = now_ms.max(self.now);
        self.advance(now);
        self.now = now;
        self.apply(input);
        self.dispatch_dirty();
        self.advance(now);
        self.emit_metrics();
        std::mem::take(&mut self.out)
    }

    /// The metrics of one queue now.
    pub fn metrics(&self, queue: &QueueId) -> Option<QueueMetrics> {
        if !self.queues.contains_key(queue) && !self.pools.contains_key(&Pool::Queue(queue.clone())) {
            return None;
        }
        Some(self.compute_metrics(queue))
    }

    pub fn work(&self, id: &WorkId) -> Option<WorkState> {
        let w = self.works.get(id)?;
        Some(match &w.stage {
            Stage::Waiting | Stage::Detached => WorkState::Queued { target: w.spec.target.clone() },
            Stage::Offered { agent, expires_at } => {
                WorkState::Offered { agent: agent.clone(), expires_at: *expires_at }
            }
            Stage::Assigned { agent, .. } => WorkState::Assigned { agent: agent.clone() },
            Stage::WrapUp { agent, until } => WorkState::WrapUp { agent: agent.clone(), until: *until },
            Stage::CallbackScheduled { due_at } => WorkState::CallbackScheduled {
                due_at: *due_at,
                attempt: w.callback.as_ref().map_or(1, |c| c.attempt),
            },
        })
    }

    pub fn agent(&self, id: &AgentId) -> Option<AgentState> {
        let a = self.agents.get(id)?;
        Some(AgentState {
            presence: a.presence.clone(),
            routable: self.routable(a),
            load: a.load,
            capacity: a.spec.capacity,
            works: a.works.iter().cloned().collect(),
        })
    }

    /// Work items the router knows (waiting, offered, assigned, wrapping up, scheduled).
    pub fn work_ids(&self) -> impl Iterator<Item = &WorkId> {
        self.works.keys()
    }

    // ----- time -----

    fn advance(&mut self, now: u64) {
        for _ in 0..MAX_TIMERS_PER_CALL {
            let Some((at, wid, kind)) = self.timers.first().cloned() else { break };
            if at > now {
                break;
            }
            self.timers.remove(&(at, wid.clone(), kind));
            if let Some(w) = self.works.get_mut(&wid) {
                w.timers.retain(|t| *t != (at, kind));
            }
            self.now = self.now.max(at);
            self.fire(&wid, kind);
            self.dispatch_dirty();
        }
    }

    /// Sets the work's timer of `kind` (replacing the previous one, except cooldown redispatches,
    /// which accumulate).
    fn set_timer(&mut self, wid: &WorkId, kind: TimerKind, at: Option<u64>) {
        let Some(w) = self.works.get_mut(wid) else { return };
        if kind != TimerKind::Redispatch {
            for (t, k) in w.timers.iter().filter(|t| t.1 == kind) {
                self.timers.remove(&(*t, wid.clone(), *k));
            }
            w.timers.retain(|t| t.1 != kind);
        }
        if let Some(at) = at {
            if !w.timers.contains(&(at, kind)) {
                w.timers.push((at, kind));
                self.timers.insert((at, wid.clone(), kind));
            }
        }
    }

    fn fire(&mut self, wid: &WorkId, kind: TimerKind) {
        let Some(w) = self.works.get(wid) else { return };
        match kind {
            TimerKind::Redispatch => {
                if w.stage == Stage::Waiting {
                    self.dirty_pools.insert(Pool::of(&w.spec.target));
                }
            }
            TimerKind::Overflow => self.on_overflow(wid),
            TimerKind::Stage => match w.stage.clone() {
                Stage::Offered { agent, .. } => self.offer_missed(wid, &agent),
                Stage::Assigned { .. } => {
                    if w.suspect {
                        self.close(wid, CloseReason::HangUpLost);
                    } else {
                        let at = self.now.saturating_add(self.config.reconcile_grace_ms);
                        if let Some(w) = self.works.get_mut(wid) {
                            w.suspect = true;
                        }
                        self.out.push(Output::ReconcileRequested { work: wid.clone() });
                        self.set_timer(wid, TimerKind::Stage, Some(at));
                    }
                }
                Stage::WrapUp { .. } => self.close(wid, CloseReason::WrapUpTimedOut),
                Stage::CallbackScheduled { .. } => {
                    let attempt = w.callback.as_ref().map_or(1, |c| c.attempt);
                    self.out.push(Output::CallbackDue { work: wid.clone(), attempt });
                    if let Some(w) = self.works.get_mut(wid) {
                        w.stage = Stage::Detached;
                    }
                    self.arrive(wid);
                }
                Stage::Waiting | Stage::Detached => {}
            },
        }
    }

    // ----- inputs -----

    fn apply(&mut self, input: Input) {
        match input {
            Input::DefineQueue(spec) => self.define_queue(spec),
            Input::AgentLogin { agent, presence } => self.login(agent, presence),
            Input::AgentLogout { agent } => {
                if self.agents.contains_key(&agent) {
                    self.reconfigure(&agent, None, Presence::Offline, PresenceReason::Requested);
                } else {
                    self.ignore("AgentLogout", format!("unknown agent `{agent}`"));
                }
            }
            Input::SetPresence { agent, presence } => {
                if self.agents.contains_key(&agent) {
                    self.reconfigure(&agent, None, presence, PresenceReason::Requested);
                } else {
                    self.ignore("SetPresence", format!("unknown agent `{agent}`; log in first"));
                }
            }
            Input::RouteWork(spec) => self.route(spec),
            Input::OfferAccepted { agent, work } => self.accept(&agent, &work),
            Input::OfferDeclined { agent, work } => self.decline(&agent, &work),
            Input::ConnectFailed { work } => self.connect_failed(&work),
            Input::WorkEnded { work } => self.work_ended(&work),
            Input::WrapUpEnded { work } => match self.works.get(&work).map(|w| &w.stage) {
                Some(Stage::WrapUp { .. }) => self.close(&work, CloseReason::Completed),
                _ => self.ignore("WrapUpEnded", format!("work `{work}` is not in wrap-up")),
            },
            Input::Reroute { work, target } => self.reroute(&work, target),
            Input::ClearRouting { work } => self.clear_routing(&work),
            Input::CallerAbandoned { work } => self.abandon(&work),
            Input::RequestCallback(spec) => self.request_callback(spec),
            Input::CallbackOutcome { work, outcome } => self.callback_outcome(&work, outcome),
            Input::Reconcile { taken_at, alive } => self.reconcile(taken_at, alive),
            Input::Tick => {}
        }
    }

    fn ignore(&mut self, input: &'static str, reason: String) {
        self.out.push(Output::InputIgnored { input, reason });
    }

    fn define_queue(&mut self, spec: QueueSpec) {
        let id = spec.id.clone();
        self.queues.insert(id.clone(), spec);
        self.ensure_pool(&Pool::Queue(id.clone()));
        self.dirty_metrics.insert(id.clone());
        // An overflow destination may have appeared or gone for any waiting work (a rare admin
        // action, so O(work) is fine).
        let waiting: Vec<WorkId> =
            self.works.iter().filter(|(_, w)| w.stage == Stage::Waiting).map(|(id, _)| id.clone()).collect();
        for wid in waiting {
            self.recompute_overflow(&wid);
        }
    }

    fn login(&mut self, mut spec: AgentSpec, presence: Presence) {
        if presence == Presence::Offline {
            return self.ignore("AgentLogin", "cannot log in as Offline".into());
        }
        if let Some(a) = self.agents.get(&spec.id) {
            if a.load > spec.capacity {
                let reason = format!(
                    "agent `{}` has {} units of open work; capacity cannot drop below",
                    spec.id, a.load
                );
                return self.ignore("AgentLogin", reason);
            }
        }
        spec.queues.sort();
        spec.queues.dedup();
        let id = spec.id.clone();
        if !self.agents.contains_key(&id) {
            let agent = Agent {
                spec: AgentSpec { queues: Vec::new(), ..spec.clone() },
                skills: BTreeMap::new(),
                presence: Presence::Offline,
                load: 0,
                works: BTreeSet::new(),
                idle_since: self.now,
                missed_in_row: 0,
            };
            self.agents.insert(id.clone(), agent);
        }
        self.reconfigure(&id, Some(spec), presence, PresenceReason::Requested);
    }

    /// Applies a new spec and/or presence to a known agent, keeping pool membership, staffing,
    /// offers and metrics consistent.
    fn reconfigure(
        &mut self,
        id: &AgentId,
        spec: Option<AgentSpec>,
        presence: Presence,
        reason: PresenceReason,
    ) {
        let Some(agent) = self.agents.get(id) else { return };
        let old_pools = agent.pools();
        let old_routable = self.routable(agent);
        let old_presence = agent.presence.clone();
        for pool in &old_pools {
            if let Some(ps) = self.pools.get_mut(pool) {
                ps.members.remove(id);
                if old_routable {
                    ps.staffed = ps.staffed.saturating_sub(1);
                }
            }
        }
        let Some(agent) = self.agents.get_mut(id) else { return };
        if let Some(spec) = spec {
            agent.skills = spec.skills.iter().map(|s| (s.name.to_lowercase(), s.level)).collect();
            agent.spec = spec;
        }
        agent.presence = presence.clone();
        let Some(agent) = self.agents.get(id) else { return };
        let new_pools = agent.pools();
        let new_routable = self.routable(agent);
        for pool in &new_pools {
            self.ensure_pool(pool);
            if let Some(ps) = self.pools.get_mut(pool) {
                ps.members.insert(id.clone());
                if new_routable {
                    ps.staffed += 1;
                }
            }
        }
        if new_routable && !old_routable {
            if let Some(a) = self.agents.get_mut(id) {
                a.idle_since = self.now;
                a.missed_in_row = 0;
            }
        }
        for pool in old_pools.union(&new_pools) {
            self.update_staffing(pool);
            if let Pool::Queue(q) = pool {
                self.dirty_metrics.insert(q.clone());
            }
        }
        if new_routable {
            self.dirty_pools.extend(new_pools);
        } else {
            // Withdraw offers ringing on an agent who can no longer take them.
            let offered: Vec<WorkId> = self.agents.get(id).map_or(Vec::new(), |a| {
                a.works
                    .iter()
                    .filter(|w| matches!(self.works.get(*w).map(|w| &w.stage), Some(Stage::Offered { .. })))
                    .cloned()
                    .collect()
            });
            for wid in offered {
                self.out.push(Output::OfferRescinded {
                    agent: id.clone(),
                    work: wid.clone(),
                    reason: RescindReason::AgentUnavailable,
                });
                self.requeue(&wid, id, false);
            }
        }
        if presence != old_presence {
            self.out.push(Output::AgentStateChanged { agent: id.clone(), presence, reason });
        }
    }

    fn route(&mut self, mut spec: WorkSpec) {
        normalize(&mut spec);
        let wid = spec.id.clone();
        if let Some(w) = self.works.get_mut(&wid) {
            match w.stage {
                Stage::Assigned { .. } | Stage::WrapUp { .. } => {
                    let reason = format!("work `{wid}` is assigned to an agent; use Reroute");
                    return self.ignore("RouteWork", reason);
                }
                Stage::CallbackScheduled { .. } => {
                    // A scheduled callback keeps its schedule; only where it goes changes.
                    w.key.priority = spec.priority;
                    w.spec = spec;
                    return;
                }
                _ => {}
            }
            self.detach(&wid, RescindReason::Rerouted, CloseReason::Rerouted);
            if let Some(w) = self.works.get_mut(&wid) {
                w.key.priority = spec.priority;
                w.spec = spec;
                w.hops = 0;
            }
            return self.arrive(&wid);
        }
        let enqueued_at = spec.original_enqueued_at.map_or(self.now, |t| t.min(self.now));
        let key = OrderKey { priority: spec.priority, enqueued_at, seq: self.next_seq() };
        self.works.insert(wid.clone(), self.new_work(spec, key, None));
        self.arrive(&wid);
    }

    fn new_work(&self, spec: WorkSpec, key: OrderKey, callback: Option<CallbackState>) -> Work {
        Work {
            spec,
            key,
            stage: Stage::Detached,
            routed_at: self.now,
            pool_since: self.now,
            skill_check_at: self.now,
            declined: Vec::new(),
            hops: 0,
            notified: false,
            callback,
            suspect: false,
            timers: Vec::new(),
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn accept(&mut self, agent: &AgentId, wid: &WorkId) {
        if !self.agents.contains_key(agent) {
            return self.ignore("OfferAccepted", format!("unknown agent `{agent}`"));
        }
        match self.works.get(wid).map(|w| w.stage.clone()) {
            Some(Stage::Offered { agent: a, .. }) if &a == agent => {}
            Some(Stage::Assigned { agent: a, .. }) if &a == agent => {
                return self.ignore("OfferAccepted", format!("work `{wid}` is already accepted"));
            }
            _ => {
                // Late or stray accept: the agent answered a call that is no longer theirs.
                self.out.push(Output::ConnectFailed {
                    agent: agent.clone(),
                    work: wid.clone(),
                    reason: ConnectFailure::OfferNoLongerValid,
                });
                return;
            }
        }
        let now = self.now;
        let Some(w) = self.works.get_mut(wid) else { return };
        let pool = Pool::of(&w.spec.target);
        let since = w.pool_since;
        w.stage = Stage::Assigned { agent: agent.clone(), since: now };
        w.suspect = false;
        let queue = match &w.spec.target {
            Target::Queue(q) => Some(q.clone()),
            _ => None,
        };
        if let Some(ps) = self.pools.get_mut(&pool) {
            ps.in_queue.remove(&(since, wid.clone()));
        }
        if let Some(a) = self.agents.get_mut(agent) {
            a.missed_in_row = 0;
        }
        self.mark_metrics(&pool);
        self.set_timer(wid, TimerKind::Stage, Some(now.saturating_add(self.config.max_work_ms)));
        self.out.push(Output::WorkAssigned { agent: agent.clone(), work: wid.clone(), queue });
    }

    fn decline(&mut self, agent: &AgentId, wid: &WorkId) {
        match self.works.get(wid).map(|w| &w.stage) {
            Some(Stage::Offered { agent: a, .. }) if a == agent => {
                self.out.push(Output::OfferRejected { agent: agent.clone(), work: wid.clone() });
                self.requeue(wid, agent, true);
            }
            _ => self.ignore("OfferDeclined", format!("work `{wid}` is not offered to `{agent}`")),
        }
    }

    fn offer_missed(&mut self, wid: &WorkId, agent: &AgentId) {
        self.out.push(Output::OfferMissed { agent: agent.clone(), work: wid.clone() });
        self.requeue(wid, agent, true);
        let limit = self.config.missed_offers_limit;
        let Some(a) = self.agents.get_mut(agent) else { return };
        a.missed_in_row += 1;
        if limit > 0 && a.missed_in_row >= limit {
            a.missed_in_row = 0;
            let missed = Presence::Custom(self.config.missed_status.clone());
            self.reconfigure(agent, None, missed, PresenceReason::MissedOffers);
        }
    }

    fn connect_failed(&mut self, wid: &WorkId) {
        let Some(Stage::Assigned { agent, .. }) = self.works.get(wid).map(|w| w.stage.clone()) else {
            return self.ignore("ConnectFailed", format!("work `{wid}` is not assigned"));
        };
        self.out.push(Output::ConnectFailed {
            agent: agent.clone(),
            work: wid.clone(),
            reason: ConnectFailure::Telephony,
        });
        self.detach(wid, RescindReason::Rerouted, CloseReason::ConnectFailed);
        self.cool_down(wid, &agent);
        self.arrive(wid);
    }

    fn work_ended(&mut self, wid: &WorkId) {
        match self.works.get(wid).map(|w| w.stage.clone()) {
            None => self.ignore("WorkEnded", format!("unknown work `{wid}`")),
            Some(Stage::Waiting | Stage::Offered { .. }) => self.abandon(wid),
            Some(Stage::Assigned { agent, .. }) => {
                let online = self.agents.get(&agent).is_some_and(|a| a.presence != Presence::Offline);
                if self.config.wrap_up_ms == 0 || !online {
                    return self.close(wid, CloseReason::Completed);
                }
                let until = self.now.saturating_add(self.config.wrap_up_ms);
                if let Some(w) = self.works.get_mut(wid) {
                    w.stage = Stage::WrapUp { agent: agent.clone(), until };
                }
                self.set_timer(wid, TimerKind::Stage, Some(until));
                self.out.push(Output::WrapUpStarted { agent, work: wid.clone(), ends_at: until });
            }
            Some(Stage::WrapUp { .. }) => {} // a repeated hang-up
            Some(_) => self.ignore("WorkEnded", format!("work `{wid}` has no call yet")),
        }
    }

    fn reroute(&mut self, wid: &WorkId, target: Option<Target>) {
        let Some(stage) = self.works.get(wid).map(|w| w.stage.clone()) else {
            return self.ignore("Reroute", format!("unknown work `{wid}`"));
        };
        if let Stage::CallbackScheduled { .. } = stage {
            if let (Some(t), Some(w)) = (target, self.works.get_mut(wid)) {
                w.spec.target = t;
            }
            return;
        }
        self.detach(wid, RescindReason::Rerouted, CloseReason::Rerouted);
        if let Stage::Assigned { agent, .. } | Stage::WrapUp { agent, .. } = &stage {
            // The agent who transferred it away should not get it straight back.
            self.cool_down(wid, agent);
        }
        if let Some(w) = self.works.get_mut(wid) {
            if let Some(t) = target {
                w.spec.target = t;
            }
            w.hops = 0;
        }
        self.arrive(wid);
    }

    fn clear_routing(&mut self, wid: &WorkId) {
        match self.works.get(wid).map(|w| &w.stage) {
            None => self.ignore("ClearRouting", format!("unknown work `{wid}`")),
            Some(Stage::Assigned { .. } | Stage::WrapUp { .. }) => {
                self.ignore("ClearRouting", format!("work `{wid}` is accepted; nothing is pending"))
            }
            Some(_) => self.end_routing(wid, RescindReason::Cleared, EndReason::Cleared),
        }
    }

    fn abandon(&mut self, wid: &WorkId) {
        match self.works.get(wid).map(|w| &w.stage) {
            None => self.ignore("CallerAbandoned", format!("unknown work `{wid}`")),
            Some(Stage::Waiting | Stage::Offered { .. }) => {
                self.end_routing(wid, RescindReason::CallerAbandoned, EndReason::Abandoned)
            }
            Some(Stage::Assigned { .. }) => self.work_ended(wid),
            Some(_) => {}
        }
    }

    fn request_callback(&mut self, spec: CallbackSpec) {
        let CallbackSpec { route: mut work, replaces, initial_delay_ms, max_attempts, retry_delay_ms } = spec;
        normalize(&mut work);
        if self.works.contains_key(&work.id) {
            return self.ignore("RequestCallback", format!("work `{}` already exists", work.id));
        }
        let enqueued_at = work.original_enqueued_at.map_or(self.now, |t| t.min(self.now));
        let mut key = OrderKey { priority: work.priority, enqueued_at, seq: 0 };
        let replaced = replaces.filter(|r| {
            self.works.get(r).is_some_and(|w| {
                matches!(w.stage, Stage::Waiting | Stage::Offered { .. } | Stage::CallbackScheduled { .. })
            })
        });
        match replaced.as_ref().and_then(|r| self.works.get(r)) {
            // The caller's place in line: their original enqueue time and arrival order.
            Some(old) => (key.enqueued_at, key.seq) = (old.key.enqueued_at, old.key.seq),
            None => key.seq = self.next_seq(),
        }
        if let Some(old) = &replaced {
            self.end_routing(old, RescindReason::ConvertedToCallback, EndReason::ConvertedToCallback);
        }
        let wid = work.id.clone();
        let callback =
            CallbackState { attempt: 1, max_attempts: max_attempts.max(1), retry_delay_ms, finished: false };
        let mut w = self.new_work(work, key, Some(callback));
        let due_at = self.now.saturating_add(initial_delay_ms);
        w.stage = Stage::CallbackScheduled { due_at };
        self.works.insert(wid.clone(), w);
        self.set_timer(&wid, TimerKind::Stage, Some(due_at));
        self.out.push(Output::CallbackScheduled { work: wid, attempt: 1, due_at });
    }

    fn callback_outcome(&mut self, wid: &WorkId, outcome: CallbackOutcome) {
        let Some(w) = self.works.get_mut(wid) else {
            return self.ignore("CallbackOutcome", format!("unknown work `{wid}`"));
        };
        let (Stage::Assigned { .. }, Some(cb)) = (&w.stage, w.callback.as_mut()) else {
            return self.ignore("CallbackOutcome", format!("work `{wid}` is not an accepted callback"));
        };
        if cb.finished {
            return self.ignore("CallbackOutcome", format!("callback `{wid}` already finished"));
        }
        let attempts = cb.attempt;
        let result = match outcome {
            CallbackOutcome::Answered => CallbackResult::Answered,
            CallbackOutcome::Voicemail => CallbackResult::Voicemail,
            CallbackOutcome::NoAnswer => {
                let retry = (cb.attempt < cb.max_attempts).then(|| {
                    cb.attempt += 1;
                    (cb.attempt, self.now.saturating_add(cb.retry_delay_ms))
                });
                self.detach(wid, RescindReason::Rerouted, CloseReason::CallbackNoAnswer);
                match retry {
                    Some((attempt, due_at)) => {
                        if let Some(w) = self.works.get_mut(wid) {
                            w.stage = Stage::CallbackScheduled { due_at };
                        }
                        self.set_timer(wid, TimerKind::Stage, Some(due_at));
                        self.out.push(Output::CallbackScheduled { work: wid.clone(), attempt, due_at });
                    }
                    None => {
                        self.forget(wid);
                        let result = CallbackResult::Exhausted;
                        self.out.push(Output::CallbackFinished { work: wid.clone(), result, attempts });
                    }
                }
                return;
            }
        };
        // Answered or voicemail: the callback is done; the call goes on until hang-up.
        cb.finished = true;
        self.out.push(Output::CallbackFinished { work: wid.clone(), result, attempts });
    }

    fn reconcile(&mut self, taken_at: u64, alive: Vec<WorkId>) {
        let taken_at = taken_at.min(self.now);
        let alive: BTreeSet<WorkId> = alive.into_iter().collect();
        let max_work = self.config.max_work_ms;
        let ids: Vec<WorkId> = self.works.keys().cloned().collect();
        for wid in ids {
            let Some(w) = self.works.get_mut(&wid) else { continue };
            let is_alive = alive.contains(&wid);
            match w.stage {
                // A waiting callback has no call of its own yet.
                Stage::Waiting | Stage::Offered { .. }
                    if w.callback.is_none() && !is_alive && w.routed_at <= taken_at =>
                {
                    self.end_routing(&wid, RescindReason::Reconciled, EndReason::Reconciled);
                }
                Stage::Assigned { since, .. } if since <= taken_at => {
                    if is_alive {
                        w.suspect = false;
                        self.set_timer(&wid, TimerKind::Stage, Some(self.now.saturating_add(max_work)));
                    } else {
                        self.close(&wid, CloseReason::HangUpLost);
                    }
                }
                _ => {}
            }
        }
    }

    // ----- moving work -----

    /// Takes the work out of wherever it is (backlog, offer, agent), emitting the rescind or
    /// AgentWork close that implies. Leaves it `Detached` for the caller to place or forget.
    fn detach(&mut self, wid: &WorkId, rescind: RescindReason, close: CloseReason) {
        let Some(w) = self.works.get_mut(wid) else { return };
        let pool = Pool::of(&w.spec.target);
        let (key, since, units) = (w.key, w.pool_since, w.spec.units);
        let stage = std::mem::replace(&mut w.stage, Stage::Detached);
        match stage {
            Stage::Waiting => {
                if let Some(ps) = self.pools.get_mut(&pool) {
                    ps.backlog.remove(&key);
                    ps.in_queue.remove(&(since, wid.clone()));
                }
                self.mark_metrics(&pool);
            }
            Stage::Offered { agent, .. } => {
                if let Some(ps) = self.pools.get_mut(&pool) {
                    ps.in_queue.remove(&(since, wid.clone()));
                }
                self.mark_metrics(&pool);
                self.release(&agent, wid, units, false);
                self.out.push(Output::OfferRescinded { agent, work: wid.clone(), reason: rescind });
            }
            Stage::Assigned { agent, .. } | Stage::WrapUp { agent, .. } => {
                self.release(&agent, wid, units, true);
                self.out.push(Output::AgentWorkClosed { agent, work: wid.clone(), reason: close });
            }
            Stage::CallbackScheduled { .. } | Stage::Detached => {}
        }
        self.set_timer(wid, TimerKind::Stage, None);
        self.set_timer(wid, TimerKind::Overflow, None);
    }

    fn forget(&mut self, wid: &WorkId) {
        if let Some(w) = self.works.remove(wid) {
            for (t, k) in w.timers {
                self.timers.remove(&(t, wid.clone(), k));
            }
        }
    }

    fn close(&mut self, wid: &WorkId, reason: CloseReason) {
        self.detach(wid, RescindReason::Reconciled, reason);
        self.forget(wid);
    }

    fn end_routing(&mut self, wid: &WorkId, rescind: RescindReason, reason: EndReason) {
        self.detach(wid, rescind, CloseReason::Rerouted);
        self.forget(wid);
        self.out.push(Output::RoutingEnded { work: wid.clone(), reason });
    }

    fn release(&mut self, agent: &AgentId, wid: &WorkId, units: u32, finished_work: bool) {
        let now = self.now;
        let Some(a) = self.agents.get_mut(agent) else { return };
        if a.works.remove(wid) {
            a.load = a.load.saturating_sub(units);
        }
        if finished_work {
            a.idle_since = now;
        }
        let pools = a.pools();
        for pool in &pools {
            self.mark_metrics(pool);
        }
        self.dirty_pools.extend(pools);
    }

    fn cool_down(&mut self, wid: &WorkId, agent: &AgentId) {
        let until = self.now.saturating_add(self.config.reoffer_cooldown_ms);
        let now = self.now;
        let Some(w) = self.works.get_mut(wid) else { return };
        w.declined.retain(|(a, u)| a != agent && *u > now);
        w.declined.push((agent.clone(), until));
        self.set_timer(wid, TimerKind::Redispatch, Some(until));
    }

    /// An offer that did not turn into work goes back to its place in line.
    fn requeue(&mut self, wid: &WorkId, agent: &AgentId, cooldown: bool) {
        let Some(w) = self.works.get_mut(wid) else { return };
        let pool = Pool::of(&w.spec.target);
        w.stage = Stage::Waiting;
        let (key, units) = (w.key, w.spec.units);
        self.ensure_pool(&pool);
        if let Some(ps) = self.pools.get_mut(&pool) {
            ps.backlog.insert(key, wid.clone());
        }
        self.release(agent, wid, units, false);
        self.set_timer(wid, TimerKind::Stage, None);
        if cooldown {
            self.cool_down(wid, agent);
        }
        self.dirty_pools.insert(pool.clone());
        self.mark_metrics(&pool);
        self.recompute_overflow(wid);
    }

    /// Places detached work at its target, unless the target cannot take it.
    fn arrive(&mut self, wid: &WorkId) {
        let Some(w) = self.works.get(wid) else { return };
        if let Target::Queue(q) = &w.spec.target {
            let Some(qs) = self.queues.get(q) else {
                return self.divert(wid, OverflowReason::UnknownQueue, EndReason::UnknownQueue);
            };
            let in_queue = self.pools.get(&Pool::Queue(q.clone())).map_or(0, |p| p.in_queue.len());
            // A callback already holds a place in line, so capacity does not turn it away.
            if w.callback.is_none() && qs.capacity.is_some_and(|c| in_queue >= c as usize) {
                return self.divert(wid, OverflowReason::Full, EndReason::QueueFull);
            }
            if qs.hours.as_ref().is_some_and(|h| !h.is_open(self.now)) {
                if self.destination(wid).is_some() {
                    return self.divert(wid, OverflowReason::Closed, EndReason::UnknownQueue);
                }
                let target = w.spec.target.clone();
                self.enter_pool(wid);
                self.notify_no_agents(wid, target, OverflowReason::Closed);
                return;
            }
        }
        self.enter_pool(wid);
    }

    /// Sends the work to its overflow destination, or ends its routing when there is none.
    fn divert(&mut self, wid: &WorkId, reason: OverflowReason, end: EndReason) {
        match self.destination(wid) {
            Some(to) => self.overflow_to(wid, to, reason),
            None => {
                self.forget(wid);
                self.out.push(Output::RoutingEnded { work: wid.clone(), reason: end });
            }
        }
    }

    fn overflow_to(&mut self, wid: &WorkId, to: QueueId, reason: OverflowReason) {
        self.detach(wid, RescindReason::Rerouted, CloseReason::Rerouted);
        let Some(w) = self.works.get_mut(wid) else { return };
        let from = std::mem::replace(&mut w.spec.target, Target::Queue(to.clone()));
        w.hops += 1;
        self.out.push(Output::Overflowed { work: wid.clone(), from, to, reason });
        self.arrive(wid);
    }

    fn notify_no_agents(&mut self, wid: &WorkId, target: Target, reason: OverflowReason) {
        if let Some(w) = self.works.get_mut(wid) {
            if !w.notified {
                w.notified = true;
                self.out.push(Output::NoAgentsAvailable { work: wid.clone(), target, reason });
            }
        }
        self.recompute_overflow(wid);
    }

    fn enter_pool(&mut self, wid: &WorkId) {
        let now = self.now;
        let check = now.saturating_add(self.config.overflow_after_ms);
        let Some(w) = self.works.get_mut(wid) else { return };
        w.stage = Stage::Waiting;
        w.pool_since = now;
        w.skill_check_at = check;
        w.notified = false;
        w.suspect = false;
        let pool = Pool::of(&w.spec.target);
        let target = w.spec.target.clone();
        let key = w.key;
        self.ensure_pool(&pool);
        if let Some(ps) = self.pools.get_mut(&pool) {
            ps.backlog.insert(key, wid.clone());
            ps.in_queue.insert((now, wid.clone()));
        }
        self.out.push(Output::Queued { work: wid.clone(), target });
        self.mark_metrics(&pool);
        self.dirty_pools.insert(pool);
        self.recompute_overflow(wid);
    }

    /// The queue a work item overflows to: its own fallback first, then its queue's overflow
    /// queue; never the queue it is in, only defined queues, at most `MAX_HOPS` times.
    pub(crate) fn destination(&self, wid: &WorkId) -> Option<QueueId> {
        let w = self.works.get(wid)?;
        if w.hops >= MAX_HOPS {
            return None;
        }
        let current = match &w.spec.target {
            Target::Queue(q) => Some(q),
            _ => None,
        };
        let queue_overflow = current.and_then(|q| self.queues.get(q)).and_then(|q| q.overflow.clone());
        [w.spec.fallback.clone(), queue_overflow]
            .into_iter()
            .flatten()
            .find(|d| Some(d) != current && self.queues.contains_key(d))
    }

    /// When the work overflows out of its pool, if it ever does.
    pub(crate) fn overflow_deadline(&self, wid: &WorkId) -> Option<u64> {
        let w = self.works.get(wid)?;
        if w.stage != Stage::Waiting || (w.notified && self.destination(wid).is_none()) {
            return None;
        }
        let pool = Pool::of(&w.spec.target);
        let ps = self.pools.get(&pool);
        let staffed = ps.is_some_and(|p| p.staffed > 0);
        let unstaffed_for = ps.and_then(|p| p.unstaffed_since).unwrap_or(w.pool_since).max(w.pool_since);
        match &pool {
            Pool::Agent(a) if w.declined_by(a, self.now) => Some(self.now),
            Pool::Agent(_) if staffed => Some(w.pool_since.saturating_add(self.config.direct_wait_ms)),
            Pool::Agent(_) => Some(unstaffed_for),
            _ if !staffed => Some(unstaffed_for.saturating_add(self.config.overflow_after_ms)),
            _ if !w.spec.skills.is_empty() => Some(w.skill_check_at),
            _ => None,
        }
    }

    fn recompute_overflow(&mut self, wid: &WorkId) {
        let at = self.overflow_deadline(wid);
        self.set_timer(wid, TimerKind::Overflow, at);
    }

    fn on_overflow(&mut self, wid: &WorkId) {
        let Some(w) = self.works.get(wid) else { return };
        if w.stage != Stage::Waiting {
            return;
        }
        let pool = Pool::of(&w.spec.target);
        let staffed = self.pools.get(&pool).is_some_and(|p| p.staffed > 0);
        let reason = match pool {
            Pool::Agent(_) => OverflowReason::AgentUnavailable,
            _ if !staffed => OverflowReason::Unstaffed,
            _ if self.servable(wid) => {
                let next = self.now.saturating_add(self.config.overflow_after_ms);
                if let Some(w) = self.works.get_mut(wid) {
                    w.skill_check_at = next;
                }
                return self.recompute_overflow(wid);
            }
            _ => OverflowReason::NoSkilledAgent,
        };
        match self.destination(wid) {
            Some(to) => self.overflow_to(wid, to, reason),
            None => {
                let target = w.spec.target.clone();
                self.notify_no_agents(wid, target, reason);
            }
        }
    }

    /// Whether some routable member of the work's pool has its skills (capacity aside).
    fn servable(&self, wid: &WorkId) -> bool {
        let Some(w) = self.works.get(wid) else { return false };
        let Some(ps) = self.pools.get(&Pool::of(&w.spec.target)) else { return false };
        ps.members
            .iter()
            .filter_map(|a| self.agents.get(a))
            .any(|a| self.routable(a) && a.has_skills(&w.spec.skills))
    }

    // ----- offering -----

    fn dispatch_dirty(&mut self) {
        // Offering never frees an agent, so one pass settles; the bound is belt and braces.
        for _ in 0..4 {
            if self.dirty_pools.is_empty() {
                break;
            }
            let mut pools: Vec<(u32, Option<OrderKey>, Pool)> = std::mem::take(&mut self.dirty_pools)
                .into_iter()
                .filter_map(|p| {
                    let head = *self.pools.get(&p)?.backlog.keys().next()?;
                    Some((self.pool_rank(&p), Some(head), p))
                })
                .collect();
            // Direct work first, then queues by priority, then by their oldest contact.
            pools.sort();
            for (_, _, pool) in pools {
                self.dispatch(&pool);
            }
        }
    }

    fn pool_rank(&self, pool: &Pool) -> u32 {
        match pool {
            Pool::Agent(_) => 0,
            Pool::Queue(q) => self.queues.get(q).map_or(u32::MAX, |q| q.priority.saturating_add(1)),
            Pool::Skills => self.config.skills_priority.saturating_add(1),
        }
    }

    /// Offers the pool's waiting work, in line order, each to the least loaded, longest idle
    /// eligible agent.
    fn dispatch(&mut self, pool: &Pool) {
        let Some(ps) = self.pools.get(pool) else { return };
        if ps.backlog.is_empty() {
            return;
        }
        // (load, idle since, agent): the first is the best candidate.
        let mut candidates: Vec<(u32, u64, AgentId)> = ps
            .members
            .iter()
            .filter_map(|id| self.agents.get(id))
            .filter(|a| self.routable(a) && a.load < a.spec.capacity)
            .map(|a| (a.load, a.idle_since, a.spec.id.clone()))
            .collect();
        candidates.sort();
        let mut cursor: Option<OrderKey> = None;
        while !candidates.is_empty() {
            let Some(ps) = self.pools.get(pool) else { return };
            let next = match cursor {
                None => ps.backlog.iter().next(),
                Some(k) => ps.backlog.range((Bound::Excluded(k), Bound::Unbounded)).next(),
            };
            let Some((key, wid)) = next.map(|(k, w)| (*k, w.clone())) else { break };
            cursor = Some(key);
            let Some(w) = self.works.get(&wid) else { continue };
            let pick = candidates.iter().position(|(_, _, id)| {
                self.agents.get(id).is_some_and(|a| {
                    a.load.saturating_add(w.spec.units) <= a.spec.capacity
                        && a.has_skills(&w.spec.skills)
                        && !w.declined_by(id, self.now)
                })
            });
            let Some(i) = pick else { continue };
            let (_, idle, agent) = candidates.remove(i);
            self.offer(&wid, &agent);
            if let Some(a) = self.agents.get(&agent).filter(|a| a.load < a.spec.capacity) {
                let entry = (a.load, idle, agent);
                let at = candidates.partition_point(|c| *c < entry);
                candidates.insert(at, entry);
            }
        }
    }

    fn offer(&mut self, wid: &WorkId, agent: &AgentId) {
        let expires_at = self.now.saturating_add(self.config.offer_timeout_ms);
        let Some(w) = self.works.get_mut(wid) else { return };
        let pool = Pool::of(&w.spec.target);
        w.stage = Stage::Offered { agent: agent.clone(), expires_at };
        let (key, units) = (w.key, w.spec.units);
        if let Some(ps) = self.pools.get_mut(&pool) {
            ps.backlog.remove(&key);
        }
        if let Some(a) = self.agents.get_mut(agent) {
            a.load = a.load.saturating_add(units);
            a.works.insert(wid.clone());
            for pool in a.pools() {
                self.mark_metrics(&pool);
            }
        }
        self.set_timer(wid, TimerKind::Overflow, None);
        self.set_timer(wid, TimerKind::Stage, Some(expires_at));
        self.out.push(Output::Offer { agent: agent.clone(), work: wid.clone(), expires_at });
    }

    // ----- pools, staffing, metrics -----

    pub(crate) fn routable(&self, agent: &Agent) -> bool {
        let status = match &agent.presence {
            Presence::Available => true,
            Presence::Busy | Presence::Offline => false,
            Presence::Custom(name) => {
                *name != self.config.missed_status && self.config.custom_statuses.get(name) == Some(&true)
            }
        };
        status && agent.spec.capacity > 0
    }

    fn ensure_pool(&mut self, pool: &Pool) {
        if !self.pools.contains_key(pool) {
            let ps = PoolState { unstaffed_since: Some(self.now), ..PoolState::default() };
            self.pools.insert(pool.clone(), ps);
        }
    }

    fn waiting_in(&self, pool: &Pool) -> Vec<WorkId> {
        self.pools.get(pool).map_or(Vec::new(), |p| p.backlog.values().cloned().collect())
    }

    /// Starts or stops the pool's unstaffed clock and re-times its overflows when it changes.
    fn update_staffing(&mut self, pool: &Pool) {
        let now = self.now;
        let Some(ps) = self.pools.get_mut(pool) else { return };
        let changed = match (ps.staffed, ps.unstaffed_since) {
            (0, None) => {
                ps.unstaffed_since = Some(now);
                true
            }
            (n, Some(_)) if n > 0 => {
                ps.unstaffed_since = None;
                true
            }
            _ => false,
        };
        if changed {
            for wid in self.waiting_in(pool) {
                self.recompute_overflow(&wid);
            }
        }
    }

    fn mark_metrics(&mut self, pool: &Pool) {
        if let Pool::Queue(q) = pool {
            self.dirty_metrics.insert(q.clone());
        }
    }

    pub(crate) fn compute_metrics(&self, queue: &QueueId) -> QueueMetrics {
        let mut m = QueueMetrics {
            queue: queue.clone(),
            agents_online: 0,
            agents_staffed: 0,
            agents_available: 0,
            contacts_in_queue: 0,
            oldest_enqueued_at: None,
        };
        let Some(ps) = self.pools.get(&Pool::Queue(queue.clone())) else { return m };
        for a in ps.members.iter().filter_map(|id| self.agents.get(id)) {
            if a.presence != Presence::Offline {
                m.agents_online += 1;
            }
            if self.routable(a) {
                m.agents_staffed += 1;
                if a.load < a.spec.capacity {
                    m.agents_available += 1;
                }
            }
        }
        m.contacts_in_queue = u32::try_from(ps.in_queue.len()).unwrap_or(u32::MAX);
        m.oldest_enqueued_at = ps.in_queue.first().map(|(t, _)| *t);
        m
    }

    fn emit_metrics(&mut self) {
        for q in std::mem::take(&mut self.dirty_metrics) {
            let m = self.compute_metrics(&q);
            if self.last_metrics.get(&q) != Some(&m) {
                self.last_metrics.insert(q, m.clone());
                self.out.push(Output::QueueMetrics(m));
            }
        }
    }
}

fn normalize(spec: &mut WorkSpec) {
    spec.units = spec.units.max(1);
    for s in &mut spec.skills {
        s.name = s.name.to_lowercase();
    }
}
