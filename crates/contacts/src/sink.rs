//! Where a contact's records go as they happen: a [`ContactSink`] attached to the
//! [`ContactCenter`](crate::ContactCenter) gets every contact event (the EventBridge
//! `aws.connect` "Amazon Connect Contact Event" envelope) when it occurs and the contact trace
//! record when the contact ends — for a live contact while it is still running, not only in
//! the finished result.

/// Receives contact events and contact trace records. Called from the task running the
/// contact, so implementations must return quickly (hand the value to a channel or a bus).
pub trait ContactSink: Send + Sync {
    /// One contact event (EventBridge envelope; `detail.eventType` is `INITIATED`,
    /// `CONNECTED_TO_SYSTEM`, `QUEUED`, `CONNECTED_TO_AGENT`, `DISCONNECTED`, …), in the order
    /// they happen for each contact.
    fn contact_event(&self, event: &serde_json::Value);
    /// The contact trace record of a contact that has ended (after its `DISCONNECTED` event).
    fn contact_ended(&self, ctr: &serde_json::Value);
}

/// A sink that drops everything (the default).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSink;

impl ContactSink for NoSink {
    fn contact_event(&self, _event: &serde_json::Value) {}
    fn contact_ended(&self, _ctr: &serde_json::Value) {}
}
