//! Agents chosen by the CRM half: when a live contact reaches a queue, the contact center asks
//! its [`AgentRouting`] (if it has one) to follow the call's routing. The CRM half's
//! Omni-Channel routing offers the call to its agents; when one accepts, the follower hands
//! the live call an agent `connect` step naming that agent, and when the agent ends the call
//! in the console, a `disconnect` step — the same steps an HTTP client of the simulator sends.
//!
//! This crate does no HTTP: the binary implements [`AgentRouting`] over the CRM half's wire
//! contracts (its live conversation events), as any partner telephony system would.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::{mpsc, oneshot};

use crate::script::CallerInput;

pub(crate) type Reply = oneshot::Sender<Result<(), String>>;

/// A future the trait's implementations return (the crate takes no `async-trait`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The call whose routing is followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowedCall {
    /// The conversation's key on the CRM half: the vendorCallKey of the call's first
    /// VoiceCall, which is the call's first ContactId.
    pub conversation_key: String,
    /// The contact now queued.
    pub contact_id: String,
    /// The `voiceCallId` attribute, when the flow stored one.
    pub voice_call_id: Option<String>,
}

/// Follows the CRM half's routing of live calls.
pub trait AgentRouting: Send + Sync {
    /// Starts following `call`: resolves once the follower listens (so nothing routed after
    /// it is missed) and gives a [`Following`] that stops it when dropped. The follower sends
    /// its steps through `steps`; a refused step changes nothing.
    fn follow<'a>(&'a self, call: FollowedCall, steps: LiveSteps)
        -> BoxFuture<'a, Result<Following, String>>;
}

/// Hands steps to one live call, as `POST /simulator/v1/contacts/{id}/agent` does.
#[derive(Clone)]
pub struct LiveSteps {
    tx: mpsc::Sender<(CallerInput, Reply)>,
}

impl LiveSteps {
    pub(crate) fn new(tx: mpsc::Sender<(CallerInput, Reply)>) -> LiveSteps {
        LiveSteps { tx }
    }

    /// Sends a step and waits until the call has carried it out; `Err` with the reason when
    /// the call refused it or has ended.
    pub async fn send(&self, input: CallerInput) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((input, reply)).await.map_err(|_| "the call has ended".to_string())?;
        match answer.await {
            Ok(result) => result,
            // The call ended while carrying the step out.
            Err(_) => Ok(()),
        }
    }

    /// Whether the call has ended (its steps go nowhere).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// A running follower; dropping it stops the follower.
#[derive(Debug, Default)]
pub struct Following {
    task: Option<tokio::task::AbortHandle>,
}

impl Following {
    /// Following done by a task, aborted when this is dropped.
    pub fn task(task: tokio::task::AbortHandle) -> Following {
        Following { task: Some(task) }
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}
