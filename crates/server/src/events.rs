//! Live conversation events for subscribers (the agent console, supervisors, tools):
//! transcripts, intelligence signals, call-state and routing changes, fanned out per
//! conversation over Server-Sent Events.
//!
//! Delivery is best-effort and in order per conversation; a subscriber that falls more than
//! `CAPACITY` events behind is told how many it missed (`lagged` event) and continues. The
//! durable record of transcripts and signals is the store, not this hub.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde_json::Value;
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

const CAPACITY: usize = 256;

/// One event: its SSE event name and JSON data.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    pub kind: &'static str,
    pub data: Value,
}

/// Per-conversation broadcast channels, created when the first subscriber arrives and
/// dropped when the last one leaves. Clones share the channels (Omni-Channel routing publishes
/// through its own clone).
#[derive(Default, Clone)]
pub struct Hub {
    channels: Arc<Mutex<HashMap<String, broadcast::Sender<LiveEvent>>>>,
}

fn topic(org: &str, conversation_key: &str) -> String {
    format!("{org}/{conversation_key}")
}

impl Hub {
    pub fn publish(&self, org: &str, conversation_key: &str, kind: &'static str, data: Value) {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let t = topic(org, conversation_key);
        if let Some(tx) = channels.get(&t) {
            if tx.send(LiveEvent { kind, data }).is_err() {
                channels.remove(&t);
            }
        }
    }

    /// Whether anyone listens to a conversation, so callers can skip building events.
    pub fn is_watched(&self, org: &str, conversation_key: &str) -> bool {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.contains_key(&topic(org, conversation_key))
    }

    pub fn subscribe(&self, org: &str, conversation_key: &str) -> broadcast::Receiver<LiveEvent> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let t = topic(org, conversation_key);
        match channels.get(&t) {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = broadcast::channel(CAPACITY);
                channels.insert(t, tx);
                rx
            }
        }
    }

    /// Number of conversations with live subscribers.
    pub fn topics(&self) -> usize {
        self.channels.lock().map(|c| c.len()).unwrap_or(0)
    }
}

/// The SSE response for one subscription; starts with a `ready` event.
pub fn sse(
    rx: broadcast::Receiver<LiveEvent>,
    ready: Value,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let first = tokio_stream::once(Ok(Event::default().event("ready").data(ready.to_string())));
    let rest = BroadcastStream::new(rx).map(|item| {
        Ok(match item {
            Ok(ev) => Event::default().event(ev.kind).data(ev.data.to_string()),
            Err(BroadcastStreamRecvError::Lagged(n)) => {
                Event::default().event("lagged").data(serde_json::json!({ "missed": n }).to_string())
            }
        })
    });
    Sse::new(first.chain(rest)).keep_alive(KeepAlive::default())
}
