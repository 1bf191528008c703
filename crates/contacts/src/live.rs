//! Live contacts: a call that keeps running in the contact center while its caller and agent
//! steps arrive one at a time (the simulator's `POST /simulator/v1/calls` with `"live": true`,
//! then `…/contacts/{id}/input` and `…/contacts/{id}/agent`).
//!
//! Each live call runs the same engine as a scripted simulation, in its own task, reading its
//! steps from a channel. A step is answered once the contact has carried it out and waits
//! again (or has ended), so the answer shows its effects; a step the contact cannot take now
//! (an agent action before an agent is connected, an unknown agent) is refused with the
//! reason and changes nothing.
//!
//! Memory is bounded: at most [`MAX_RUNNING`] live calls run at once, the last
//! [`MAX_FINISHED`] finished ones stay readable, each keeps at most [`MAX_STEPS`] log lines,
//! and a call nobody drives for [`IDLE_LIMIT`] hangs up.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::runtime::{CallError, ContactCenter, ContactResult, Driver, InboundCall, LogStep, Waiting};
use crate::script::CallerInput;

/// Live calls running at once.
pub const MAX_RUNNING: usize = 256;
/// Finished live calls kept readable.
pub const MAX_FINISHED: usize = 256;
/// Log lines a live call keeps (the oldest are dropped first).
pub const MAX_STEPS: usize = 10_000;
/// A live call with no step for this long hangs up.
pub const IDLE_LIMIT: Duration = Duration::from_secs(600);

use crate::routing::{LiveSteps, Reply};

type Steps = mpsc::Sender<(CallerInput, Reply)>;

/// Where a live call reads its next step.
pub(crate) struct Inbox {
    rx: mpsc::Receiver<(CallerInput, Reply)>,
    /// The call's own step channel, for a routing follower; weak, so the call still ends
    /// when nothing else drives it.
    tx: mpsc::WeakSender<(CallerInput, Reply)>,
}

impl Inbox {
    /// A handle that sends steps to this call.
    pub(crate) fn steps(&self) -> Option<LiveSteps> {
        self.tx.upgrade().map(LiveSteps::new)
    }

    /// The next step; `None` when nobody drove the call for [`IDLE_LIMIT`] or the registry is
    /// gone (the caller hangs up).
    pub(crate) async fn next(&mut self) -> Option<(CallerInput, Reply)> {
        tokio::time::timeout(IDLE_LIMIT, self.rx.recv()).await.ok().flatten()
    }
}

/// What a live call looks like now.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveView {
    /// The call's first contact id (its key).
    pub contact_id: String,
    /// The contact the caller is on now (transfers start new contacts).
    pub current_contact_id: String,
    /// `running` (carrying out a step), `waiting` (for the next step) or `ended`.
    pub state: &'static str,
    /// What the contact waits for.
    pub waiting: Option<Waiting>,
    /// The log lines dropped to respect [`MAX_STEPS`].
    pub steps_dropped: usize,
    pub steps: Vec<LogStep>,
    pub contact_events: Vec<Value>,
    /// The finished call, once it has ended.
    pub result: Option<ContactResult>,
}

/// The shared view of one live call, written by its task.
pub(crate) struct LiveSlot {
    view: Mutex<LiveView>,
}

impl LiveSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, LiveView> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// New log lines, the contact events so far, and what the contact waits for now.
    pub(crate) fn update(
        &self,
        new_steps: &[LogStep],
        events: &[Value],
        current: &str,
        waiting: Option<Waiting>,
    ) {
        let mut v = self.lock();
        v.steps.extend_from_slice(new_steps);
        if v.steps.len() > MAX_STEPS {
            let drop = v.steps.len() - MAX_STEPS;
            v.steps.drain(..drop);
            v.steps_dropped += drop;
        }
        v.contact_events = events.to_vec();
        v.current_contact_id = current.to_string();
        v.state = if waiting.is_some() { "waiting" } else { "running" };
        v.waiting = waiting;
    }

    /// The call ended with `result`, whose steps are those not in the view yet.
    pub(crate) fn finish(&self, result: &ContactResult) {
        let new = &result.steps;
        let last = result.transferred_contacts.last().unwrap_or(&result.ctr);
        let current = last["ContactId"].as_str().unwrap_or(&result.contact_id).to_string();
        self.update(new, &result.contact_events, &current, None);
        let mut v = self.lock();
        v.state = "ended";
        let mut kept = result.clone();
        // The view already holds the (bounded) log.
        kept.steps.clear();
        v.result = Some(kept);
    }

    fn snapshot(&self) -> LiveView {
        self.lock().clone()
    }
}

struct Entry {
    slot: Arc<LiveSlot>,
    tx: Steps,
}

#[derive(Default)]
struct Registry {
    by_id: HashMap<String, Entry>,
    /// Finished calls, oldest first.
    finished: VecDeque<String>,
}

/// The live calls of a contact center.
#[derive(Default)]
pub struct LiveContacts {
    inner: Mutex<Registry>,
}

/// Why a live step was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiveError {
    #[error("no live contact {0}")]
    NotFound(String),
    #[error("the contact {0} has ended")]
    Ended(String),
    /// The contact cannot take this step now.
    #[error("{0}")]
    Refused(String),
    #[error("{MAX_RUNNING} live contacts are running; end one first")]
    Busy,
    #[error(transparent)]
    Call(#[from] CallError),
}

impl LiveContacts {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry of `id`: a call's first contact id, or any contact it became.
    fn find(&self, id: &str) -> Option<(Arc<LiveSlot>, Steps)> {
        let reg = self.lock();
        if let Some(e) = reg.by_id.get(id) {
            return Some((e.slot.clone(), e.tx.clone()));
        }
        reg.by_id
            .values()
            .find(|e| e.slot.lock().current_contact_id == id)
            .map(|e| (e.slot.clone(), e.tx.clone()))
    }

    /// The live call's view.
    pub fn get(&self, id: &str) -> Result<LiveView, LiveError> {
        self.find(id).map(|(slot, _)| slot.snapshot()).ok_or_else(|| LiveError::NotFound(id.to_string()))
    }

    /// Hands a step to the live call and answers its view once the step is carried out.
    pub async fn send(&self, id: &str, input: CallerInput) -> Result<LiveView, LiveError> {
        let (slot, tx) = self.find(id).ok_or_else(|| LiveError::NotFound(id.to_string()))?;
        if slot.lock().state == "ended" {
            return Err(LiveError::Ended(id.to_string()));
        }
        let (reply, answer) = oneshot::channel();
        tx.send((input, reply)).await.map_err(|_| LiveError::Ended(id.to_string()))?;
        match answer.await {
            Ok(Ok(())) => Ok(slot.snapshot()),
            Ok(Err(message)) => Err(LiveError::Refused(message)),
            // The call ended while the step waited.
            Err(_) => Ok(slot.snapshot()),
        }
    }

    fn finished(&self, id: &str) {
        let mut reg = self.lock();
        reg.finished.push_back(id.to_string());
        while reg.finished.len() > MAX_FINISHED {
            if let Some(old) = reg.finished.pop_front() {
                reg.by_id.remove(&old);
            }
        }
    }
}

impl ContactCenter {
    /// Starts a live call: it runs in its own task until its first wait (an input prompt, a
    /// queue, …) or its end, and this answers its view then.
    pub async fn start_live(self: &Arc<Self>, mut call: InboundCall) -> Result<LiveView, LiveError> {
        let id = call.contact_id.get_or_insert_with(|| uuid::Uuid::new_v4().to_string()).clone();
        // Checks the numbers before anything is registered.
        drop(self.prepare(call.clone(), Driver::Script(Default::default()), None)?);
        let (tx, rx) = mpsc::channel(16);
        let slot = Arc::new(LiveSlot {
            view: Mutex::new(LiveView {
                contact_id: id.clone(),
                current_contact_id: id.clone(),
                state: "running",
                waiting: None,
                steps_dropped: 0,
                steps: Vec::new(),
                contact_events: Vec::new(),
                result: None,
            }),
        });
        {
            let mut reg = self.live().lock();
            let running = reg.by_id.len() - reg.finished.len();
            if running >= MAX_RUNNING {
                return Err(LiveError::Busy);
            }
            if reg.by_id.contains_key(&id) {
                return Err(LiveError::Refused(format!("the contact {id} exists already")));
            }
            reg.by_id.insert(id.clone(), Entry { slot: slot.clone(), tx: tx.clone() });
        }
        let center = self.clone();
        let weak = tx.downgrade();
        let task_slot = slot.clone();
        let task_id = id.clone();
        // The first wait is announced like an answered step.
        let (reply, started) = oneshot::channel();
        tokio::spawn(async move {
            match center.prepare(call, Driver::Live(Inbox { rx, tx: weak }), Some(task_slot)) {
                Ok(mut run) => {
                    run.set_reply(reply);
                    run.go().await;
                }
                Err(e) => {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
            center.live().finished(&task_id);
        });
        match started.await {
            Ok(Err(message)) => Err(LiveError::Refused(message)),
            _ => Ok(slot.snapshot()),
        }
    }
}
