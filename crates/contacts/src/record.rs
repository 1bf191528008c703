//! What a finished contact leaves behind, built from its timeline without IO: the contact
//! trace record (Amazon Connect's CTR data model) and the contact events (EventBridge
//! `aws.connect` "Amazon Connect Contact Event" envelopes).
//!
//! CTR timestamps use `yyyy-mm-ddThh:mm:ssZ` and durations whole seconds, as Connect writes
//! them; contact event timestamps carry milliseconds (`yyyy-MM-ddTHH:mm:ss.SSSZ`).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use voxbridge_flows::{Ended, Endpoint};

/// Everything about a contact the records need.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactTimeline {
    pub contact_id: String,
    pub initial_contact_id: String,
    pub previous_contact_id: Option<String>,
    pub channel: String,
    pub initiation_method: String,
    pub instance_arn: String,
    pub customer_endpoint: Option<Endpoint>,
    pub system_endpoint: Option<Endpoint>,
    pub attributes: BTreeMap<String, String>,
    pub initiation_ms: i64,
    pub connected_to_system_ms: Option<i64>,
    pub queue: Option<QueueVisit>,
    pub disconnect_ms: i64,
    pub disconnect_reason: Option<String>,
    pub recording: bool,
    /// The agent the contact was connected to.
    pub agent: Option<AgentVisit>,
    /// The contact an agent transferred this one to.
    pub next_contact_id: Option<String>,
    pub transfer_completed_ms: Option<i64>,
    /// The number an agent transferred the contact to.
    pub transferred_to_endpoint: Option<Endpoint>,
}

/// The agent a contact was connected to, and the holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentVisit {
    pub arn: String,
    pub username: String,
    pub routing_profile: String,
    pub connected_ms: i64,
    pub number_of_holds: u32,
    /// Total time on hold, in milliseconds.
    pub hold_ms: i64,
    pub longest_hold_ms: i64,
    /// When the agent hung up while the caller stayed (for the disconnect flow); the contact's
    /// disconnect otherwise.
    pub left_ms: Option<i64>,
}

/// The queue the contact waited in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueVisit {
    pub name: String,
    pub arn: String,
    pub enqueue_ms: i64,
    pub dequeue_ms: Option<i64>,
    /// `STANDARD`, or `AGENT` for an agent's own queue.
    pub queue_type: &'static str,
}

/// `DisconnectReason` of a contact whose flow ended this way (and, for `Queued`, the caller
/// hung up while waiting).
pub fn disconnect_reason(ended: Option<&Ended>) -> &'static str {
    match ended {
        Some(Ended::Disconnected | Ended::FlowEnded | Ended::Error) => "CONTACT_FLOW_DISCONNECT",
        Some(Ended::TransferredToThirdParty) => "THIRD_PARTY_DISCONNECT",
        Some(Ended::TransferredToAgent) => "AGENT_DISCONNECT",
        Some(Ended::Queued | Ended::CustomerHungUp) | None => "CUSTOMER_DISCONNECT",
    }
}

/// `2019-07-02T17:32:28Z`.
pub fn ctr_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `2019-07-02T17:32:28.123Z`.
pub fn event_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The AWS account id inside an ARN (`arn:aws:connect:REGION:ACCOUNT:…`).
fn account(arn: &str) -> &str {
    arn.split(':').nth(4).unwrap_or("")
}

fn region(arn: &str) -> &str {
    arn.split(':').nth(3).unwrap_or("")
}

fn endpoint(e: &Option<Endpoint>) -> Value {
    match e {
        Some(e) => json!({"Address": e.address, "Type": e.kind}),
        None => Value::Null,
    }
}

/// The contact trace record (reference: the CTR data model).
pub fn contact_trace_record(t: &ContactTimeline) -> Value {
    let attributes: Map<String, Value> =
        t.attributes.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    let queue = t.queue.as_ref().map_or(Value::Null, |q| {
        json!({
            "ARN": q.arn,
            "DequeueTimestamp": q.dequeue_ms.map(ctr_time),
            "Duration": q.dequeue_ms.map(|d| (d - q.enqueue_ms).max(0) / 1000),
            "EnqueueTimestamp": ctr_time(q.enqueue_ms),
            "Name": q.name,
        })
    });
    let agent = t.agent.as_ref().map_or(Value::Null, |a| {
        let routing_profile_id = a.routing_profile.replace(' ', "-").to_ascii_lowercase();
        json!({
            "ARN": a.arn,
            "AfterContactWorkDuration": null,
            "AfterContactWorkEndTimestamp": null,
            "AfterContactWorkStartTimestamp": null,
            "AgentInteractionDuration":
                ((a.left_ms.unwrap_or(t.disconnect_ms) - a.connected_ms - a.hold_ms).max(0) / 1000),
            "ConnectedToAgentTimestamp": ctr_time(a.connected_ms),
            "CustomerHoldDuration": a.hold_ms / 1000,
            "HierarchyGroups": null,
            "LongestHoldDuration": a.longest_hold_ms / 1000,
            "NumberOfHolds": a.number_of_holds,
            "RoutingProfile": {
                "ARN": format!("{}/routing-profile/{routing_profile_id}", t.instance_arn),
                "Name": a.routing_profile,
            },
            "Username": a.username,
        })
    });
    json!({
        "AWSAccountId": account(&t.instance_arn),
        "AWSContactTraceRecordFormatVersion": "2017-03-10",
        "Agent": agent,
        "AgentConnectionAttempts": u32::from(t.agent.is_some()),
        "Attributes": attributes,
        "Channel": t.channel,
        "ConnectedToSystemTimestamp": t.connected_to_system_ms.map(ctr_time),
        "ContactId": t.contact_id,
        "CustomerEndpoint": endpoint(&t.customer_endpoint),
        "DisconnectReason": t.disconnect_reason,
        "DisconnectTimestamp": ctr_time(t.disconnect_ms),
        "InitialContactId": t.initial_contact_id,
        "InitiationMethod": t.initiation_method,
        "InitiationTimestamp": ctr_time(t.initiation_ms),
        "InstanceARN": t.instance_arn,
        "LastUpdateTimestamp": ctr_time(t.disconnect_ms),
        "MediaStreams": [{"Type": "AUDIO"}],
        "NextContactId": t.next_contact_id,
        "PreviousContactId": t.previous_contact_id,
        "Queue": queue,
        "Recording": null,
        "Recordings": null,
        "RelatedContactId": null,
        "ScheduledTimestamp": null,
        "SystemEndpoint": endpoint(&t.system_endpoint),
        "TransferCompletedTimestamp": t.transfer_completed_ms.map(ctr_time),
        "TransferredToEndpoint": endpoint(&t.transferred_to_endpoint),
    })
}

/// One contact event of the timeline (as it stands at `at_ms`): `INITIATED`,
/// `CONNECTED_TO_SYSTEM`, `QUEUED`, `CONNECTED_TO_AGENT` or `DISCONNECTED`, with the detail
/// fields known by then. `id` is the envelope's `id`.
pub fn contact_event(t: &ContactTimeline, event_type: &str, at_ms: i64, id: String) -> Value {
    let mut detail = json!({
        "eventType": event_type,
        "contactId": t.contact_id,
        "initialContactId": t.initial_contact_id,
        "channel": t.channel,
        "instanceArn": t.instance_arn,
        "initiationMethod": t.initiation_method,
        "initiationTimestamp": event_time(t.initiation_ms),
    });
    if let Some(p) = &t.previous_contact_id {
        detail["previousContactId"] = json!(p);
    }
    let after_system = event_type != "INITIATED";
    if let (Some(c), true) = (t.connected_to_system_ms, after_system) {
        detail["connectedToSystemTimestamp"] = json!(event_time(c));
    }
    if let (Some(q), true) = (&t.queue, after_system && event_type != "CONNECTED_TO_SYSTEM") {
        detail["queueInfo"] = json!({"queueArn": q.arn, "queueType": q.queue_type, "enqueueTimestamp": event_time(q.enqueue_ms)});
    }
    if let (Some(a), true) = (&t.agent, matches!(event_type, "CONNECTED_TO_AGENT" | "DISCONNECTED")) {
        detail["agentInfo"] =
            json!({"agentArn": a.arn, "connectedToAgentTimestamp": event_time(a.connected_ms)});
    }
    if event_type == "DISCONNECTED" {
        detail["disconnectTimestamp"] = json!(event_time(t.disconnect_ms));
    }
    json!({
        "version": "0",
        "id": id,
        "detail-type": "Amazon Connect Contact Event",
        "source": "aws.connect",
        "account": account(&t.instance_arn),
        "time": ctr_time(at_ms),
        "region": region(&t.instance_arn),
        "resources": [t.instance_arn, format!("{}/contact/{}", t.instance_arn, t.contact_id)],
        "detail": detail,
    })
}

/// The contact events of a finished timeline, in order: INITIATED, CONNECTED_TO_SYSTEM,
/// QUEUED (if queued), CONNECTED_TO_AGENT (if an agent took it), DISCONNECTED. `ids` supplies
/// each envelope's `id`.
pub fn contact_events(t: &ContactTimeline, mut ids: impl FnMut() -> String) -> Vec<Value> {
    let mut out = vec![contact_event(t, "INITIATED", t.initiation_ms, ids())];
    if let Some(c) = t.connected_to_system_ms {
        out.push(contact_event(t, "CONNECTED_TO_SYSTEM", c, ids()));
    }
    if let Some(q) = &t.queue {
        out.push(contact_event(t, "QUEUED", q.enqueue_ms, ids()));
    }
    if let Some(a) = &t.agent {
        out.push(contact_event(t, "CONNECTED_TO_AGENT", a.connected_ms, ids()));
    }
    out.push(contact_event(t, "DISCONNECTED", t.disconnect_ms, ids()));
    out
}
