//! Omni-Channel routing live in the server: one named tokio task per org owns a
//! [`voxbridge_routing::Router`] and carries out its outputs as records (PendingServiceRouting,
//! AgentWork, agents' presence on their User records) and as console events.
//!
//! The task is started at an org's first use. It builds the router from the org's queues
//! (`Group` records of type Queue), its agents (Users with a CallCenterRoutingMap entry) and
//! restores what the store says was going on: waiting work from PendingServiceRouting, accepted
//! work from open AgentWork, presence from `User.ServicePresenceStatus`. Calls that ended while
//! nobody routed them are reconciled away at once.
//!
//! Queued callbacks ([`crate::callbacks`]) are work items too: scheduled, offered when due in
//! the caller's original place in line, and dialed (an outbound VoiceCall) when accepted.
//!
//! The Telephony API's handlers keep writing the PendingServiceRouting the guide documents and
//! then tell the router ([`Omni::send`]); the agent API asks it ([`Omni::ask`]) and answers only
//! after the resulting records are committed. Timers come from `Router::next_deadline` and run
//! on tokio's clock, shifted by [`RoutingClock::advance`] (for tests and tools).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;
use voxbridge_core::time::format_ms;
use voxbridge_core::{ApiError, ErrorCode, Fields, KeyPrefix, Record, SfId};
use voxbridge_routing::{
    AgentId, AgentSpec, CallbackOutcome, CallbackResult, CallbackSpec, Config, Input, Output, Presence,
    QueueId, QueueSpec, Router, Target, WorkId, WorkSpec, WorkState,
};
use voxbridge_store::{Store, StoreError, WriteOp};

use crate::cache::TtlCache;
use crate::events::Hub;

/// Messages waiting for an org's router; senders wait when it is full.
const INBOX: usize = 4096;
/// Console events buffered per agent (and for supervisors) for slow WebSocket clients.
const EVENTS: usize = 1024;

/// Routing configuration of the server.
#[derive(Debug, Clone, Default)]
pub struct RoutingSettings {
    /// Offer timeouts, wrap-up, overflow and reconciliation times.
    pub config: Config,
    pub clock: RoutingClock,
}

/// The routers' clock: wall-clock epoch milliseconds at start, then tokio's monotonic clock
/// (so paused time drives it), plus any [`RoutingClock::advance`].
#[derive(Debug, Clone)]
pub struct RoutingClock(Arc<ClockInner>);

#[derive(Debug)]
struct ClockInner {
    epoch_ms: u64,
    start: Instant,
    skew_ms: AtomicU64,
    changed: watch::Sender<u64>,
}

impl Default for RoutingClock {
    fn default() -> Self {
        let epoch_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        RoutingClock(Arc::new(ClockInner {
            epoch_ms,
            start: Instant::now(),
            skew_ms: AtomicU64::new(0),
            changed: watch::channel(0).0,
        }))
    }
}

impl RoutingClock {
    /// Routing time, epoch milliseconds.
    pub fn now_ms(&self) -> u64 {
        let elapsed = Instant::now().saturating_duration_since(self.0.start).as_millis() as u64;
        self.0.epoch_ms.saturating_add(elapsed).saturating_add(self.0.skew_ms.load(Ordering::SeqCst))
    }

    /// Moves routing time forward and lets every router fire the timers now due.
    pub fn advance(&self, by: Duration) {
        let total = self.0.skew_ms.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
        self.0.changed.send_replace(total.saturating_add(by.as_millis() as u64));
    }
}

/// One event for a console: its type and JSON data.
#[derive(Debug, Clone)]
pub struct ConsoleEvent {
    pub kind: &'static str,
    pub data: Arc<Value>,
}

/// An org's console event channels: one per agent with a console open, so an event wakes only
/// its agent's sockets, and one for supervisors (queue changes).
struct Channels {
    agents: Mutex<HashMap<String, broadcast::Sender<ConsoleEvent>>>,
    queues: broadcast::Sender<ConsoleEvent>,
}

impl Default for Channels {
    fn default() -> Self {
        Channels { agents: Mutex::new(HashMap::new()), queues: broadcast::channel(EVENTS).0 }
    }
}

impl Channels {
    fn agent(&self, agent: &str) -> broadcast::Receiver<ConsoleEvent> {
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        match agents.get(agent) {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = broadcast::channel(EVENTS);
                agents.insert(agent.to_string(), tx);
                rx
            }
        }
    }

    fn send(&self, agent: Option<&str>, kind: &'static str, data: Value) {
        match agent {
            Some(a) => {
                let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(tx) = agents.get(a) {
                    if tx.send(ConsoleEvent { kind, data: Arc::new(data) }).is_err() {
                        // Nobody listens any more.
                        agents.remove(a);
                    }
                }
            }
            None => {
                if self.queues.receiver_count() > 0 {
                    let _ = self.queues.send(ConsoleEvent { kind, data: Arc::new(data) });
                }
            }
        }
    }
}

/// What the agent API asks an org's router.
#[derive(Debug)]
pub enum Ask {
    SetPresence {
        agent: SfId,
        status: String,
    },
    Accept {
        agent: SfId,
        work: String,
    },
    Decline {
        agent: SfId,
        work: String,
    },
    WrapUp {
        agent: SfId,
        work: String,
    },
    State {
        agent: SfId,
    },
    Queues,
    /// How the agent's outbound call of an accepted callback went.
    CallbackOutcome {
        agent: SfId,
        callback: String,
        outcome: CallbackOutcome,
    },
}

/// What the Telephony API tells an org's router after committing its records.
#[derive(Debug)]
pub enum Tell {
    /// executeOmniFlow, a transfer, or reroute. Accepted work is closed and routed again.
    Route {
        call: SfId,
        queue: Option<SfId>,
        user: Option<SfId>,
        conversation_key: Option<String>,
    },
    Clear {
        call: SfId,
    },
    /// The call ended (end time or a final disposition).
    Ended {
        call: SfId,
    },
    /// A committed CallbackRequest to schedule (see [`crate::callbacks`]).
    Callback(CallbackTell),
}

/// A queued callback for the router: the CallbackRequest record's id is its work id.
#[derive(Debug, Clone)]
pub struct CallbackTell {
    pub id: SfId,
    /// The caller's call: while it waits in line the callback takes its place.
    pub call: SfId,
    pub queue: SfId,
    pub number: String,
    /// When the caller first joined the line, routing time.
    pub enqueued_at: Option<u64>,
    pub initial_delay_ms: u64,
    /// Attempts already made (restored callbacks), and the most allowed.
    pub attempts_made: u32,
    pub max_attempts: u32,
    pub retry_delay_ms: u64,
}

enum Msg {
    Tell(Tell),
    Ask(Ask, oneshot::Sender<Result<Value, ApiError>>),
}

#[derive(Clone)]
struct OrgHandle {
    tx: mpsc::Sender<Msg>,
    events: Arc<Channels>,
}

/// The routers of all orgs this process serves.
pub struct Omni {
    store: Arc<dyn Store>,
    settings: RoutingSettings,
    orgs: Mutex<HashMap<SfId, OrgHandle>>,
    /// Each org's CallCenterRoutingMap, which every executeOmniFlow reads (it lists every
    /// agent and queue, so reading it per call is what a large contact center cannot afford).
    maps: TtlCache<SfId, Arc<Vec<Record>>>,
    /// The conversations' live events, where an accepted call's routing is published.
    hub: Hub,
}

/// How long another process's change to a routing map may take to be seen here.
const MAPS_TTL_MS: i64 = 2_000;

impl Omni {
    pub fn new(store: Arc<dyn Store>, settings: RoutingSettings) -> Omni {
        Omni {
            store,
            settings,
            orgs: Mutex::new(HashMap::new()),
            maps: TtlCache::new(MAPS_TTL_MS, 10_000),
            hub: Hub::default(),
        }
    }

    /// The conversations' live-event hub the routers publish to (the server's hub).
    pub(crate) fn hub(&self) -> Hub {
        self.hub.clone()
    }

    /// The org's routing map entries, cached for a moment.
    pub(crate) async fn routing_maps(&self, org: &SfId, now_ms: i64) -> Result<Arc<Vec<Record>>, StoreError> {
        if let Some(maps) = self.maps.get(org, now_ms) {
            return Ok(maps);
        }
        let generation = self.maps.generation();
        let maps = Arc::new(self.store.list(org, "CallCenterRoutingMap").await?);
        self.maps.put(org.clone(), maps.clone(), now_ms, generation);
        Ok(maps)
    }

    fn handle(&self, org: &SfId) -> OrgHandle {
        let mut orgs = self.orgs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = orgs.get(org).filter(|h| !h.tx.is_closed()) {
            return h.clone();
        }
        let (tx, rx) = mpsc::channel(INBOX);
        let events = Arc::new(Channels::default());
        let handle = OrgHandle { tx, events: events.clone() };
        orgs.insert(org.clone(), handle.clone());
        let mut host = Host::new(org.clone(), self.store.clone(), &self.settings, events);
        host.hub = self.hub.clone();
        let span = tracing::info_span!("vb-omni", org = %org);
        tokio::spawn(host.run(rx).instrument(span));
        handle
    }

    /// Tells the org's router about a committed Telephony API change.
    pub async fn send(&self, org: &SfId, tell: Tell) {
        if self.handle(org).tx.send(Msg::Tell(tell)).await.is_err() {
            tracing::warn!(org = %org, "the org's router stopped; the change is picked up at its restart");
        }
    }

    /// Asks the org's router; the answer comes after its records are committed.
    pub async fn ask(&self, org: &SfId, ask: Ask) -> Result<Value, ApiError> {
        let (tx, rx) = oneshot::channel();
        let unavailable = || ApiError::new(ErrorCode::Unavailable, "routing is restarting; retry later");
        self.handle(org).tx.send(Msg::Ask(ask, tx)).await.map_err(|_| unavailable())?;
        rx.await.map_err(|_| unavailable())?
    }

    /// One agent's console events (starts the org's router if needed).
    pub fn subscribe(&self, org: &SfId, agent: &SfId) -> broadcast::Receiver<ConsoleEvent> {
        self.handle(org).events.agent(agent.as_str())
    }

    /// The org's queue changes, for supervisors.
    pub fn subscribe_queues(&self, org: &SfId) -> broadcast::Receiver<ConsoleEvent> {
        self.handle(org).events.queues.subscribe()
    }

    /// Starts the routers of every org in the store, so restored work is routed at once.
    pub async fn start_all(&self) -> Result<(), StoreError> {
        for org in self.store.orgs().await? {
            self.handle(&org.id);
        }
        Ok(())
    }
}

/// What the host keeps about a work item beside the router.
#[derive(Debug, Clone, Default)]
struct WorkMeta {
    conversation_key: Option<String>,
    agent_work: Option<SfId>,
    queue: Option<String>,
    callback: Option<CallbackMeta>,
}

/// A callback's bookkeeping beside the router's (which counts attempts from its own start, so a
/// restored callback adds the attempts made before).
#[derive(Debug, Clone, Default)]
struct CallbackMeta {
    number: String,
    original_call: String,
    attempts_made: u32,
    attempt: u32,
    max_attempts: u32,
    /// The outbound VoiceCall of the current attempt, once the agent accepted it.
    outbound: Option<SfId>,
}

#[derive(Debug, Clone)]
struct AgentMeta {
    username: String,
    name: String,
}

struct Host {
    org: SfId,
    store: Arc<dyn Store>,
    router: Router,
    clock: RoutingClock,
    events: Arc<Channels>,
    works: HashMap<String, WorkMeta>,
    agents: HashMap<String, AgentMeta>,
    /// Queue id → (developer name, label).
    queues: HashMap<String, (String, String)>,
    /// Set while restoring: outputs re-create state that is already recorded.
    restoring: bool,
    hub: Hub,
    /// Outbound VoiceCall id → the callback it dials, so its hang-up ends the callback's work.
    dialing: HashMap<String, String>,
}

fn store_err(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "store failure in routing");
    ApiError::new(ErrorCode::Unavailable, "the store could not complete the request; retry later")
}

fn presence_of(status: &str) -> Presence {
    match status {
        "Available" => Presence::Available,
        "Busy" => Presence::Busy,
        "Offline" | "" => Presence::Offline,
        other => Presence::Custom(other.to_string()),
    }
}

impl Host {
    fn new(org: SfId, store: Arc<dyn Store>, s: &RoutingSettings, events: Arc<Channels>) -> Host {
        Host {
            org,
            store,
            router: Router::new(s.config.clone()),
            clock: s.clock.clone(),
            events,
            works: HashMap::new(),
            agents: HashMap::new(),
            queues: HashMap::new(),
            restoring: false,
            hub: Hub::default(),
            dialing: HashMap::new(),
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        if let Err(e) = self.restore().await {
            // Dropping the inbox makes the next use start a fresh task that tries again.
            tracing::error!(error = %e, "cannot load the org's routing state");
            return;
        }
        let mut clock = self.clock.0.changed.subscribe();
        loop {
            let sleep = self.router.next_deadline().map(|d| {
                let wait = d.saturating_sub(self.clock.now_ms());
                Instant::now() + Duration::from_millis(wait)
            });
            tokio::select! {
                msg = rx.recv() => match msg {
                    None => break,
                    Some(Msg::Tell(t)) => self.tell(t).await,
                    Some(Msg::Ask(a, reply)) => {
                        let answer = self.ask(a).await;
                        let _ = reply.send(answer);
                    }
                },
                _ = async { tokio::time::sleep_until(sleep.unwrap_or_else(Instant::now)).await }, if sleep.is_some() => {
                    self.input(Input::Tick).await;
                }
                changed = clock.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    self.input(Input::Tick).await;
                }
            }
        }
    }

    // ----- loading and restoring -----

    async fn restore(&mut self) -> Result<(), StoreError> {
        let org = self.org.clone();
        let mapped: BTreeSet<String> = self
            .store
            .list(&org, "CallCenterRoutingMap")
            .await?
            .iter()
            .filter_map(|m| m.str("ReferenceRecordId").map(str::to_string))
            .collect();
        let now = self.clock.now_ms();
        self.restoring = true;
        for g in self.store.list(&org, "Group").await? {
            if g.str("Type").is_none_or(|t| t == "Queue") {
                self.define_queue(&g, now).await;
            }
        }
        let mut works = self.store.list(&org, "AgentWork").await?;
        works.retain(|w| w.str("Status") == Some("Opened"));
        works.sort_by_key(|w| w.created_ms);
        let busy: BTreeSet<&str> = works.iter().filter_map(|w| w.str("UserId")).collect();
        // Agents with accepted work log in routable for a moment so the work can be given back
        // to them, then get their recorded presence.
        let mut presences = Vec::new();
        for u in self.store.list(&org, "User").await? {
            if !mapped.contains(u.id.as_str()) {
                continue;
            }
            self.agents.insert(u.id.to_string(), agent_meta(&u));
            let presence = presence_of(u.str("ServicePresenceStatus").unwrap_or("Offline"));
            if presence != Presence::Offline || busy.contains(u.id.as_str()) {
                let agent = self.agent_spec(&u);
                self.input_at(now, Input::AgentLogin { agent, presence: Presence::Available }).await;
                presences.push((AgentId::new(u.id.as_str()), presence));
            }
        }
        let mut alive = Vec::new();
        for w in &works {
            let (Some(call), Some(user)) = (w.str("WorkItemId"), w.str("UserId")) else { continue };
            if crate::callbacks::is_callback_id(call) {
                continue;
            }
            let meta = WorkMeta {
                conversation_key: self.conversation_key(call).await?,
                agent_work: Some(w.id.clone()),
                queue: w.str("OriginalQueueId").map(str::to_string),
                callback: None,
            };
            self.works.insert(call.to_string(), meta);
            let mut spec = WorkSpec::new(call, Target::Agent(AgentId::new(user)));
            spec.original_enqueued_at = Some(w.created_ms.max(0) as u64);
            self.input_at(now, Input::RouteWork(spec)).await;
            let agent = AgentId::new(user);
            self.input_at(now, Input::OfferAccepted { agent, work: WorkId::new(call) }).await;
            if w.str("AfterConversationStartDateTime").is_some() {
                self.input_at(now, Input::WorkEnded { work: WorkId::new(call) }).await;
            }
            alive.push(call.to_string());
        }
        for (agent, presence) in presences {
            let input = match presence {
                // A logout keeps accepted calls until they end.
                Presence::Offline => Input::AgentLogout { agent },
                p => Input::SetPresence { agent, presence: p },
            };
            self.input_at(now, input).await;
        }
        self.restoring = false;
        let mut pending = self.store.list(&org, "PendingServiceRouting").await?;
        pending.sort_by_key(|p| p.created_ms);
        for p in pending {
            let Some(call) = p.str("WorkItemId").map(str::to_string) else { continue };
            let target = match (p.str("UserId"), p.str("QueueId")) {
                (Some(u), _) => Target::Agent(AgentId::new(u)),
                (None, Some(q)) => Target::Queue(QueueId::new(q)),
                (None, None) => continue,
            };
            let meta = WorkMeta {
                conversation_key: self.conversation_key(&call).await?,
                agent_work: None,
                queue: p.str("QueueId").map(str::to_string),
                callback: None,
            };
            self.works.insert(call.clone(), meta);
            let mut spec = WorkSpec::new(call.as_str(), target);
            spec.original_enqueued_at = Some(p.created_ms.max(0) as u64);
            self.input_at(now, Input::RouteWork(spec)).await;
            alive.push(call);
        }
        for t in crate::callbacks::restore(&*self.store, &org, &works, now).await? {
            self.callback(t).await;
        }
        // Calls that ended while nobody was routing them.
        self.reconcile(alive).await?;
        Ok(())
    }

    async fn conversation_key(&self, call: &str) -> Result<Option<String>, StoreError> {
        let Ok(id) = SfId::parse(call) else { return Ok(None) };
        let Some(c) = self.store.get(&self.org, &id).await? else { return Ok(None) };
        match c.str("ConversationId").and_then(|s| SfId::parse(s).ok()) {
            Some(conv) => Ok(self.store.get(&self.org, &conv).await?.and_then(|c| c.key)),
            None => Ok(None),
        }
    }

    async fn user(&self, id: &str) -> Result<Option<Record>, StoreError> {
        let Ok(id) = SfId::parse(id) else { return Ok(None) };
        Ok(self.store.get(&self.org, &id).await?.filter(|r| r.sobject == "User"))
    }

    async fn define_queue(&mut self, g: &Record, now: u64) {
        let developer = g.str("DeveloperName").or(g.key.as_deref()).unwrap_or("").to_string();
        let label = g.str("Name").unwrap_or(&developer).to_string();
        self.queues.insert(g.id.to_string(), (developer, label.clone()));
        let mut spec = QueueSpec::new(g.id.as_str());
        spec.name = label;
        self.input_at(now, Input::DefineQueue(spec)).await;
    }

    /// An agent serves the queues named in `User.RoutingQueues` (ids or developer names),
    /// else every queue of the org; `User.RoutingCapacity` calls at a time, else one.
    fn agent_spec(&self, u: &Record) -> AgentSpec {
        let mut spec = AgentSpec::new(u.id.as_str());
        let named: Option<Vec<String>> = u
            .fields
            .get("RoutingQueues")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect());
        spec.queues = self
            .queues
            .iter()
            .filter(|(id, (dev, _))| named.as_ref().is_none_or(|n| n.iter().any(|x| x == *id || x == dev)))
            .map(|(id, _)| QueueId::new(id.as_str()))
            .collect();
        spec.queues.sort();
        spec.capacity = u.i64("RoutingCapacity").and_then(|c| u32::try_from(c).ok()).unwrap_or(1).max(1);
        spec
    }

    // ----- inputs -----

    async fn input(&mut self, input: Input) -> Vec<Output> {
        let now = self.clock.now_ms();
        self.input_at(now, input).await
    }

    async fn input_at(&mut self, now: u64, input: Input) -> Vec<Output> {
        let outputs = self.router.handle(now, input);
        if let Err(e) = self.carry_out(&outputs, now).await {
            // The router's state stands; the records catch up at the next restart's restore.
            tracing::error!(error = %e, "routing outputs not recorded");
        }
        outputs
    }

    async fn tell(&mut self, t: Tell) {
        match t {
            Tell::Route { call, queue, user, conversation_key } => {
                if let Some(q) = &queue {
                    if !self.queues.contains_key(q.as_str()) {
                        match self.store.get(&self.org, q).await {
                            Ok(Some(g)) => self.define_queue(&g, self.clock.now_ms()).await,
                            Ok(None) => {}
                            Err(e) => tracing::error!(error = %e, "cannot load queue"),
                        }
                    }
                }
                let target = match (user, &queue) {
                    (Some(u), _) => Target::Agent(AgentId::new(u.as_str())),
                    (None, Some(q)) => Target::Queue(QueueId::new(q.as_str())),
                    (None, None) => return,
                };
                let meta = self.works.entry(call.to_string()).or_default();
                if conversation_key.is_some() {
                    meta.conversation_key = conversation_key;
                }
                meta.queue = queue.map(|q| q.to_string());
                let work = WorkId::new(call.as_str());
                let accepted = matches!(
                    self.router.work(&work),
                    Some(WorkState::Assigned { .. } | WorkState::WrapUp { .. })
                );
                if accepted {
                    self.input(Input::Reroute { work, target: Some(target) }).await;
                } else {
                    self.input(Input::RouteWork(WorkSpec::new(call.as_str(), target))).await;
                }
            }
            Tell::Clear { call } => {
                self.input(Input::ClearRouting { work: WorkId::new(call.as_str()) }).await;
            }
            Tell::Callback(t) => self.callback(t).await,
            Tell::Ended { call } => {
                // The outbound call of a callback: its end is the end of the callback's work.
                let work = match self.dialing.remove(call.as_str()) {
                    Some(cb) => WorkId::new(cb),
                    None => WorkId::new(call.as_str()),
                };
                match self.router.work(&work) {
                    Some(WorkState::Assigned { .. }) => {
                        self.input(Input::WorkEnded { work }).await;
                    }
                    Some(WorkState::Queued { .. } | WorkState::Offered { .. }) => {
                        self.input(Input::CallerAbandoned { work }).await;
                    }
                    _ => {}
                }
            }
        }
    }

    async fn ask(&mut self, a: Ask) -> Result<Value, ApiError> {
        match a {
            Ask::SetPresence { agent, status } => self.set_presence(agent, status).await,
            Ask::Accept { agent, work } => {
                self.check_offer(&agent, &work)?;
                let out = self
                    .input(Input::OfferAccepted {
                        agent: AgentId::new(agent.as_str()),
                        work: WorkId::new(work.as_str()),
                    })
                    .await;
                ignored(&out)?;
                if out.iter().any(|o| matches!(o, Output::ConnectFailed { .. })) {
                    return Err(ApiError::new(
                        ErrorCode::InvalidState,
                        format!("offer {work} is no longer valid"),
                    ));
                }
                Ok(self.work_view(&work))
            }
            Ask::Decline { agent, work } => {
                self.check_offer(&agent, &work)?;
                let out = self
                    .input(Input::OfferDeclined {
                        agent: AgentId::new(agent.as_str()),
                        work: WorkId::new(work.as_str()),
                    })
                    .await;
                ignored(&out)?;
                Ok(json!({"status": "Declined", "workId": work}))
            }
            Ask::WrapUp { agent, work } => {
                match self.router.work(&WorkId::new(work.as_str())) {
                    Some(WorkState::WrapUp { agent: a, .. }) if a.as_str() == agent.as_str() => {}
                    Some(WorkState::Assigned { agent: a }) if a.as_str() == agent.as_str() => {
                        return Err(ApiError::new(
                            ErrorCode::InvalidState,
                            format!("work {work} is still on a call; wrap-up starts when the call ends"),
                        ))
                    }
                    _ => return Err(ApiError::not_found(format!("no work {work} of yours in wrap-up"))),
                }
                let out = self.input(Input::WrapUpEnded { work: WorkId::new(work.as_str()) }).await;
                ignored(&out)?;
                Ok(json!({"status": "Closed", "workId": work}))
            }
            Ask::State { agent } => Ok(self.state_view(&agent)),
            Ask::Queues => Ok(self.queues_view()),
            Ask::CallbackOutcome { agent, callback, outcome } => {
                self.callback_outcome(agent, callback, outcome).await
            }
        }
    }

    async fn callback(&mut self, t: CallbackTell) {
        // A router started by this very request restored it from its record already.
        if self.router.work(&WorkId::new(t.id.as_str())).is_some() {
            return;
        }
        if !self.queues.contains_key(t.queue.as_str()) {
            match self.store.get(&self.org, &t.queue).await {
                Ok(Some(g)) => self.define_queue(&g, self.clock.now_ms()).await,
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "cannot load queue"),
            }
        }
        let meta = WorkMeta {
            queue: Some(t.queue.to_string()),
            callback: Some(CallbackMeta {
                number: t.number,
                original_call: t.call.to_string(),
                attempts_made: t.attempts_made,
                attempt: t.attempts_made + 1,
                max_attempts: t.max_attempts,
                outbound: None,
            }),
            ..Default::default()
        };
        self.works.insert(t.id.to_string(), meta);
        let mut route = WorkSpec::new(t.id.as_str(), Target::Queue(QueueId::new(t.queue.as_str())));
        route.original_enqueued_at = t.enqueued_at;
        // A call still waiting in line is replaced: the callback takes its place.
        let waiting = matches!(
            self.router.work(&WorkId::new(t.call.as_str())),
            Some(WorkState::Queued { .. } | WorkState::Offered { .. })
        );
        let spec = CallbackSpec {
            route,
            replaces: waiting.then(|| WorkId::new(t.call.as_str())),
            initial_delay_ms: t.initial_delay_ms,
            max_attempts: t.max_attempts.saturating_sub(t.attempts_made).max(1),
            retry_delay_ms: t.retry_delay_ms,
        };
        let out = self.input(Input::RequestCallback(spec)).await;
        if out.iter().any(|o| matches!(o, Output::InputIgnored { .. })) {
            self.works.remove(t.id.as_str());
        }
    }

    async fn callback_outcome(
        &mut self,
        agent: SfId,
        callback: String,
        outcome: CallbackOutcome,
    ) -> Result<Value, ApiError> {
        let work = WorkId::new(callback.as_str());
        let meta = self.works.get(callback.as_str()).and_then(|m| m.callback.clone());
        match (self.router.work(&work), &meta) {
            (Some(WorkState::Assigned { agent: a }), Some(_)) if a.as_str() == agent.as_str() => {}
            _ => return Err(ApiError::not_found(format!("no accepted callback {callback} of yours"))),
        }
        let meta = meta.unwrap_or_default();
        let out = self.input(Input::CallbackOutcome { work: work.clone(), outcome }).await;
        ignored(&out)?;
        if outcome == CallbackOutcome::NoAnswer {
            // Nobody picked up: the attempt's outbound call is over.
            if let Some(call) = &meta.outbound {
                self.dialing.remove(call.as_str());
                let now = self.clock.now_ms();
                crate::callbacks::end_outbound(&*self.store, &self.org, call, now)
                    .await
                    .map_err(store_err)?;
            }
        }
        let status = out
            .iter()
            .find_map(|o| match o {
                Output::CallbackScheduled { due_at, .. } => Some(("Scheduled", Some(*due_at))),
                Output::CallbackFinished { result: CallbackResult::Exhausted, .. } => {
                    Some(("Exhausted", None))
                }
                Output::CallbackFinished { .. } => Some(("Completed", None)),
                _ => None,
            })
            .unwrap_or(("Completed", None));
        Ok(json!({
            "callbackId": callback, "status": status.0, "attempt": meta.attempt,
            "maxAttempts": meta.max_attempts,
            "nextAttemptAt": status.1.map(|d| format_ms(d as i64)),
            "voiceCallId": meta.outbound.map(|c| c.to_string()),
        }))
    }

    fn check_offer(&self, agent: &SfId, work: &str) -> Result<(), ApiError> {
        match self.router.work(&WorkId::new(work)) {
            Some(WorkState::Offered { agent: a, .. }) if a.as_str() == agent.as_str() => Ok(()),
            _ => Err(ApiError::not_found(format!("no offer {work} is ringing for you"))),
        }
    }

    async fn set_presence(&mut self, agent: SfId, status: String) -> Result<Value, ApiError> {
        let presence = presence_of(&status);
        let id = AgentId::new(agent.as_str());
        let known = self.router.agent(&id).is_some();
        let out = match (&presence, known) {
            (Presence::Offline, false) => {
                self.record_presence(agent.as_str(), "Offline").await.map_err(store_err)?;
                Vec::new()
            }
            (Presence::Offline, true) => self.input(Input::AgentLogout { agent: id }).await,
            (_, true) => self.input(Input::SetPresence { agent: id, presence }).await,
            (_, false) => {
                let Some(u) = self.user(agent.as_str()).await.map_err(store_err)? else {
                    return Err(ApiError::not_found("the agent no longer exists"));
                };
                self.agents.insert(u.id.to_string(), agent_meta(&u));
                let spec = self.agent_spec(&u);
                self.input(Input::AgentLogin { agent: spec, presence }).await
            }
        };
        ignored(&out)?;
        Ok(self.presence_view(agent.as_str()))
    }

    // ----- views -----

    fn presence_view(&self, agent: &str) -> Value {
        match self.router.agent(&AgentId::new(agent)) {
            Some(a) => json!({
                "status": a.presence.to_string(), "routable": a.routable,
                "load": a.load, "capacity": a.capacity,
            }),
            None => json!({"status": "Offline", "routable": false, "load": 0, "capacity": 0}),
        }
    }

    fn work_view(&self, work: &str) -> Value {
        let meta = self.works.get(work).cloned().unwrap_or_default();
        let (stage, extra) = match self.router.work(&WorkId::new(work)) {
            Some(WorkState::Offered { expires_at, .. }) => ("Offered", json!(format_ms(expires_at as i64))),
            Some(WorkState::Assigned { .. }) => ("Assigned", Value::Null),
            Some(WorkState::WrapUp { until, .. }) => ("WrapUp", json!(format_ms(until as i64))),
            Some(WorkState::Queued { .. }) => ("Queued", Value::Null),
            Some(WorkState::CallbackScheduled { .. }) => ("CallbackScheduled", Value::Null),
            None => ("Closed", Value::Null),
        };
        let voice_call = match &meta.callback {
            Some(c) => c.outbound.as_ref().map(|o| o.to_string()),
            None => Some(work.to_string()),
        };
        let mut v = json!({
            "workId": work, "voiceCallId": voice_call, "stage": stage,
            "kind": if meta.callback.is_some() { "callback" } else { "call" },
            "conversationKey": meta.conversation_key, "queueId": meta.queue,
            "queueName": meta.queue.as_ref().and_then(|q| self.queues.get(q)).map(|q| q.1.clone()),
            "agentWorkId": meta.agent_work.map(|a| a.to_string()),
        });
        if let Some(c) = &meta.callback {
            v["callbackId"] = json!(work);
            v["callbackNumber"] = json!(c.number);
            v["attempt"] = json!(c.attempt);
            v["maxAttempts"] = json!(c.max_attempts);
            v["originalVoiceCallId"] = json!(c.original_call);
        }
        match stage {
            "Offered" => v["expiresAt"] = extra,
            "WrapUp" => v["wrapUpEndsAt"] = extra,
            _ => {}
        }
        v
    }

    fn state_view(&self, agent: &SfId) -> Value {
        let mut offers = Vec::new();
        let mut work = Vec::new();
        if let Some(a) = self.router.agent(&AgentId::new(agent.as_str())) {
            for w in &a.works {
                let v = self.work_view(w.as_str());
                if v["stage"] == "Offered" {
                    offers.push(v);
                } else {
                    work.push(v);
                }
            }
        }
        let meta = self.agents.get(agent.as_str());
        json!({
            "agent": {"id": agent.to_string(), "username": meta.map(|m| m.username.clone()),
                      "name": meta.map(|m| m.name.clone())},
            "presence": self.presence_view(agent.as_str()),
            "offers": offers,
            "work": work,
        })
    }

    fn queues_view(&self) -> Value {
        let now = self.clock.now_ms();
        let mut queues: Vec<(&String, &(String, String))> = self.queues.iter().collect();
        queues.sort_by(|a, b| a.1 .0.cmp(&b.1 .0));
        let list: Vec<Value> = queues
            .into_iter()
            .filter_map(|(id, (dev, name))| {
                let m = self.router.metrics(&QueueId::new(id.as_str()))?;
                Some(json!({
                    "id": id, "developerName": dev, "name": name,
                    "backlog": m.contacts_in_queue,
                    "oldestContactAgeMs": m.oldest_contact_age_ms(now),
                    "agentsAvailable": m.agents_available,
                    "agentsStaffed": m.agents_staffed,
                    "agentsOnline": m.agents_online,
                }))
            })
            .collect();
        json!({"queues": list})
    }

    // ----- outputs -----

    fn emit(&self, agent: Option<&AgentId>, kind: &'static str, data: Value) {
        self.events.send(agent.map(AgentId::as_str), kind, data);
    }

    async fn record_presence(&self, agent: &str, status: &str) -> Result<(), StoreError> {
        let Ok(id) = SfId::parse(agent) else { return Ok(()) };
        let mut patch = Fields::new();
        patch.insert("ServicePresenceStatus".into(), status.into());
        self.update(id, patch, self.clock.now_ms()).await
    }

    /// Changes fields of one of the org's records (presence, AgentWork, callbacks).
    async fn update(&self, id: SfId, patch: Fields, now: u64) -> Result<(), StoreError> {
        self.store
            .apply(vec![WriteOp::Update { org: self.org.clone(), id, patch, now_ms: now as i64 }])
            .await?;
        Ok(())
    }

    async fn pending_of(&self, work: &WorkId) -> Result<Vec<Record>, StoreError> {
        self.store.find_by_key(&self.org, "PendingServiceRouting", work.as_str()).await
    }

    fn agent_work(&self, agent: &AgentId, work: &WorkId, status: &str, now: u64) -> Record {
        let mut aw = Record::new(
            SfId::generate(KeyPrefix::AgentWork, &mut rand::thread_rng()),
            self.org.clone(),
            "AgentWork",
            Some(work.to_string()),
            now as i64,
        );
        let meta = self.works.get(work.as_str());
        aw.set("WorkItemId", work.to_string());
        aw.set("UserId", agent.to_string());
        aw.set("Status", status);
        aw.set("RoutingType", "Omni");
        aw.set("ServiceChannel", "sfdc_phone");
        if let Some(q) = meta.and_then(|m| m.queue.clone()) {
            aw.set("OriginalQueueId", q);
        }
        aw
    }

    async fn carry_out(&mut self, outputs: &[Output], now: u64) -> Result<(), StoreError> {
        let at = format_ms(now as i64);
        for o in outputs {
            match o {
                Output::Queued { work, target } => {
                    if self.restoring {
                        continue;
                    }
                    let (queue, user) = match target {
                        Target::Queue(q) => (Some(q.as_str()), None),
                        Target::Agent(a) => (None, Some(a.as_str())),
                        Target::Skills => (None, None),
                    };
                    let mut ops = Vec::new();
                    let existing = self.pending_of(work).await?;
                    match existing.last() {
                        Some(p) if p.str("QueueId") == queue && p.str("UserId") == user => {}
                        Some(p) => {
                            let mut patch = Fields::new();
                            patch.insert("QueueId".into(), queue.into());
                            patch.insert("UserId".into(), user.into());
                            ops.push(WriteOp::Update {
                                org: self.org.clone(),
                                id: p.id.clone(),
                                patch,
                                now_ms: now as i64,
                            });
                        }
                        // The handlers write PendingServiceRouting; one already gone was cleared
                        // after this routing, so it is not brought back.
                        None => {}
                    }
                    if !ops.is_empty() {
                        self.store.apply(ops).await?;
                    }
                    if let (Some(q), Some(m)) = (queue, self.works.get_mut(work.as_str())) {
                        m.queue = Some(q.to_string());
                    }
                }
                Output::Offer { agent, work, .. } => {
                    if self.restoring {
                        continue;
                    }
                    let v = self.work_view(work.as_str());
                    self.emit(Some(agent), "offer", v);
                }
                Output::OfferRescinded { agent, work, reason } => {
                    self.emit(
                        Some(agent),
                        "offerEnded",
                        json!({"workId": work.as_str(), "reason": format!("{reason:?}")}),
                    );
                }
                Output::OfferMissed { agent, work } | Output::OfferRejected { agent, work } => {
                    let (status, reason) = if matches!(o, Output::OfferMissed { .. }) {
                        ("DeclinedOnPushTimeout", "Missed")
                    } else {
                        ("Declined", "Declined")
                    };
                    let mut aw = self.agent_work(agent, work, status, now);
                    aw.set("DeclineDateTime", at.clone());
                    self.store.apply(vec![WriteOp::Insert(aw)]).await?;
                    self.emit(Some(agent), "offerEnded", json!({"workId": work.as_str(), "reason": reason}));
                }
                Output::ConnectFailed { agent, work, reason } => {
                    self.emit(
                        Some(agent),
                        "offerEnded",
                        json!({"workId": work.as_str(), "reason": format!("{reason:?}")}),
                    );
                }
                Output::WorkAssigned { agent, work, queue } => {
                    if self.restoring {
                        continue;
                    }
                    if let (Some(q), Some(m)) = (queue, self.works.get_mut(work.as_str())) {
                        m.queue = Some(q.to_string());
                    }
                    let mut ops: Vec<WriteOp> = self
                        .pending_of(work)
                        .await?
                        .into_iter()
                        .map(|p| WriteOp::Delete { org: self.org.clone(), id: p.id })
                        .collect();
                    let mut aw = self.agent_work(agent, work, "Opened", now);
                    aw.set("AssignedDateTime", at.clone());
                    aw.set("AcceptDateTime", at.clone());
                    let aw_id = aw.id.clone();
                    ops.push(WriteOp::Insert(aw));
                    self.store.apply(ops).await?;
                    // An accepted callback dials the customer for the agent.
                    if let Some(cb) = self.works.get(work.as_str()).and_then(|m| m.callback.clone()) {
                        let call = crate::callbacks::dial(
                            &*self.store,
                            &self.org,
                            work.as_str(),
                            agent.as_str(),
                            cb.attempt,
                            now,
                        )
                        .await?;
                        if let Some((call, key)) = call {
                            self.dialing.insert(call.to_string(), work.to_string());
                            if let Some(m) = self.works.get_mut(work.as_str()) {
                                m.conversation_key = Some(key);
                                if let Some(c) = m.callback.as_mut() {
                                    c.outbound = Some(call);
                                }
                            }
                        }
                    }
                    self.works.entry(work.to_string()).or_default().agent_work = Some(aw_id.clone());
                    let v = self.work_view(work.as_str());
                    self.emit(Some(agent), "assigned", v);
                    // The telephony side learns from the conversation's live events which
                    // agent took the call (it connects its contact to that agent).
                    if let Some(key) = self.works.get(work.as_str()).and_then(|m| m.conversation_key.clone())
                    {
                        let data = json!({"status": "Assigned", "userId": agent.as_str(),
                            "agentWorkId": aw_id.to_string(), "voiceCallId": work.as_str()});
                        self.hub.publish(self.org.as_str(), &key, "routing", data);
                    }
                }
                Output::WrapUpStarted { agent, work, ends_at } => {
                    if let Some(aw) = self.works.get(work.as_str()).and_then(|m| m.agent_work.clone()) {
                        if !self.restoring {
                            let mut patch = Fields::new();
                            patch.insert("AfterConversationStartDateTime".into(), at.clone().into());
                            self.update(aw, patch, now).await?;
                        }
                    }
                    self.emit(
                        Some(agent),
                        "wrapUp",
                        json!({"workId": work.as_str(), "wrapUpEndsAt": format_ms(*ends_at as i64)}),
                    );
                }
                Output::AgentWorkClosed { agent, work, reason } => {
                    // A rerouted (transferred) call is routed again: keep what is known of it
                    // (its conversation key) for the next agent's work.
                    let meta = match self.router.work(work) {
                        Some(_) => self
                            .works
                            .get_mut(work.as_str())
                            .map(|m| WorkMeta { agent_work: m.agent_work.take(), ..m.clone() }),
                        None => self.works.remove(work.as_str()),
                    };
                    // A callback's next attempt dials a new call.
                    if let Some(c) = self.works.get_mut(work.as_str()).and_then(|m| m.callback.as_mut()) {
                        c.outbound = None;
                    }
                    if let Some(aw) = meta.as_ref().and_then(|m| m.agent_work.clone()) {
                        let open = self
                            .store
                            .get(&self.org, &aw)
                            .await?
                            .is_some_and(|r| r.str("Status") != Some("Closed"));
                        if open {
                            let mut patch = Fields::new();
                            patch.insert("Status".into(), "Closed".into());
                            patch.insert("CloseDateTime".into(), at.clone().into());
                            patch.insert("CloseReason".into(), format!("{reason:?}").into());
                            self.update(aw, patch, now).await?;
                        }
                    }
                    self.emit(
                        Some(agent),
                        "ended",
                        json!({"workId": work.as_str(), "reason": format!("{reason:?}")}),
                    );
                }
                Output::RoutingEnded { work, reason } => {
                    self.works.remove(work.as_str());
                    let ops: Vec<WriteOp> = self
                        .pending_of(work)
                        .await?
                        .into_iter()
                        .map(|p| WriteOp::Delete { org: self.org.clone(), id: p.id })
                        .collect();
                    if !ops.is_empty() {
                        self.store.apply(ops).await?;
                    }
                    tracing::debug!(work = %work, reason = ?reason, "routing ended");
                }
                Output::ReconcileRequested { .. } => {
                    let alive: Vec<String> = self.router.work_ids().map(|w| w.to_string()).collect();
                    Box::pin(self.reconcile(alive)).await?;
                }
                Output::AgentStateChanged { agent, presence, .. } => {
                    if !self.restoring {
                        self.record_presence(agent.as_str(), &presence.to_string()).await?;
                    }
                    self.emit(Some(agent), "presence", self.presence_view(agent.as_str()));
                }
                Output::QueueMetrics(m) => {
                    if !self.restoring {
                        self.emit(
                            None,
                            "queue",
                            json!({
                                "id": m.queue.as_str(), "backlog": m.contacts_in_queue,
                                "agentsAvailable": m.agents_available, "agentsStaffed": m.agents_staffed,
                                "agentsOnline": m.agents_online,
                            }),
                        );
                    }
                }
                Output::InputIgnored { input, reason } => {
                    tracing::debug!(input, reason, "routing input ignored");
                }
                Output::CallbackScheduled { work, attempt, due_at } => {
                    let attempt = self.callback_attempt(work, *attempt);
                    let mut patch = Fields::new();
                    patch.insert("Status".into(), "Scheduled".into());
                    patch.insert("Attempt".into(), attempt.into());
                    patch.insert("DueDateTime".into(), format_ms(*due_at as i64).into());
                    self.patch_callback(work, patch, now).await?;
                }
                Output::CallbackDue { work, attempt } => {
                    let attempt = self.callback_attempt(work, *attempt);
                    let mut patch = Fields::new();
                    patch.insert("Status".into(), "Queued".into());
                    patch.insert("Attempt".into(), attempt.into());
                    self.patch_callback(work, patch, now).await?;
                }
                Output::CallbackFinished { work, result, .. } => {
                    let mut patch = Fields::new();
                    let status = if *result == CallbackResult::Exhausted { "Exhausted" } else { "Completed" };
                    patch.insert("Status".into(), status.into());
                    patch.insert("Result".into(), format!("{result:?}").into());
                    patch.insert("FinishedDateTime".into(), at.clone().into());
                    self.patch_callback(work, patch, now).await?;
                }
                Output::Overflowed { .. } | Output::NoAgentsAvailable { .. } => {
                    tracing::info!(output = %o, "routing");
                }
            }
        }
        Ok(())
    }

    /// The attempt number of a callback counted over restarts; remembered for its views.
    fn callback_attempt(&mut self, work: &WorkId, router_attempt: u32) -> u32 {
        match self.works.get_mut(work.as_str()).and_then(|m| m.callback.as_mut()) {
            Some(c) => {
                c.attempt = c.attempts_made + router_attempt;
                c.attempt
            }
            None => router_attempt,
        }
    }

    async fn patch_callback(&self, work: &WorkId, patch: Fields, now: u64) -> Result<(), StoreError> {
        let Ok(id) = SfId::parse_with(work.as_str(), KeyPrefix::CallbackRequest) else { return Ok(()) };
        self.update(id, patch, now).await
    }

    /// Tells the router which of `candidates` are calls still going on (their VoiceCall has
    /// no final disposition); the others were hung up without the router hearing of it.
    async fn reconcile(&mut self, candidates: Vec<String>) -> Result<(), StoreError> {
        let mut alive = Vec::new();
        for c in candidates {
            // A callback lives as long as the call it dialed (or until it dials one).
            let call = match self.works.get(&c).and_then(|m| m.callback.as_ref()) {
                Some(cb) => match &cb.outbound {
                    Some(call) => call.to_string(),
                    None => {
                        alive.push(WorkId::new(c));
                        continue;
                    }
                },
                None => c.clone(),
            };
            let Ok(id) = SfId::parse(&call) else { continue };
            let call = self.store.get(&self.org, &id).await?;
            let ended = call.as_ref().is_none_or(|r| {
                r.str("CallDisposition") == Some("completed") || r.str("CallEndDateTime").is_some()
            });
            if !ended {
                alive.push(WorkId::new(c));
            }
        }
        let now = self.clock.now_ms();
        let outputs = self.router.handle(now, Input::Reconcile { taken_at: now, alive });
        // Reconcile outputs never request another reconciliation, so this does not recurse.
        Box::pin(self.carry_out(&outputs, now)).await
    }
}

fn agent_meta(u: &Record) -> AgentMeta {
    AgentMeta {
        username: u.str("Username").or(u.key.as_deref()).unwrap_or("").to_string(),
        name: u.str("Name").unwrap_or("").to_string(),
    }
}

/// The first refusal among outputs, as an API error.
fn ignored(outputs: &[Output]) -> Result<(), ApiError> {
    match outputs.iter().find_map(|o| match o {
        Output::InputIgnored { reason, .. } => Some(reason.clone()),
        _ => None,
    }) {
        Some(reason) => Err(ApiError::new(ErrorCode::InvalidState, reason)),
        None => Ok(()),
    }
}
