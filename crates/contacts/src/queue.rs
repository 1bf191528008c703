//! Telephony-side queues: contacts waiting, with a capacity (Amazon Connect's "maximum
//! contacts in queue"; past it a transfer takes `QueueAtCapacity`), and the real-time metrics
//! flows read with `CheckMetricData`.
//!
//! A queued contact waits until an agent accepts it or the caller hangs up; the contact
//! runtime takes it out either way.

use std::collections::HashMap;
use std::sync::Mutex;

use voxbridge_flows::QueueMetrics;

/// The queues of one contact center.
#[derive(Debug, Default)]
pub struct Queues {
    inner: Mutex<HashMap<String, QueueState>>,
}

#[derive(Debug, Default)]
struct QueueState {
    capacity: usize,
    /// `(contact id, enqueue time in epoch ms)`, oldest first.
    waiting: Vec<(String, i64)>,
}

/// Why a contact could not be queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueError {
    AtCapacity,
    UnknownQueue(String),
}

impl Queues {
    /// Declares a queue (by id) with its capacity; waiting contacts are kept.
    pub fn declare(&self, id: &str, capacity: usize) {
        let mut all = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        all.entry(id.to_string()).or_default().capacity = capacity;
    }

    pub fn enqueue(&self, id: &str, contact_id: &str, now_ms: i64) -> Result<(), EnqueueError> {
        let mut all = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let q = all.get_mut(id).ok_or_else(|| EnqueueError::UnknownQueue(id.to_string()))?;
        if q.waiting.len() >= q.capacity {
            return Err(EnqueueError::AtCapacity);
        }
        q.waiting.push((contact_id.to_string(), now_ms));
        Ok(())
    }

    /// Removes a contact from whichever queue holds it.
    pub fn remove(&self, contact_id: &str) {
        let mut all = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for q in all.values_mut() {
            q.waiting.retain(|(c, _)| c != contact_id);
        }
    }

    /// Contacts waiting in the queue now.
    pub fn len(&self, id: &str) -> usize {
        let all = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        all.get(id).map_or(0, |q| q.waiting.len())
    }

    pub fn is_empty(&self, id: &str) -> bool {
        self.len(id) == 0
    }

    /// The queue's contact metrics at `now_ms` (agent counts are 0; the contact center fills
    /// them in from its agents).
    pub fn metrics(&self, id: &str, now_ms: i64) -> QueueMetrics {
        let all = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(q) = all.get(id) else { return QueueMetrics::default() };
        QueueMetrics {
            contacts_in_queue: q.waiting.len() as u64,
            oldest_contact_age_ms: q.waiting.first().map_or(0, |(_, at)| (now_ms - at).max(0) as u64),
            ..QueueMetrics::default()
        }
    }
}
