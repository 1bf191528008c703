//! The built-in `ContactLensConsumerFunction` and `ContactLensProcessorFunction`: Contact
//! Lens real-time segments become live transcripts and conversation events on the call.
//!
//! Both take the Lambda Kinesis event (`Records[].kinesis.data`, base64 of one segment
//! record: `EventType` `STARTED`, `SEGMENTS`, `COMPLETED` or `FAILED`, with `ContactId` and
//! `Segments`). The consumer checks the batch (more than 5 records: logged and dropped, as
//! the reference does) and hands it to the processor. The reference invokes the processor
//! asynchronously; here it runs inline, so segments of a contact reach the API in the order
//! the stream holds them.
//!
//! The processor ([`plan`], sans-IO) acts on `SEGMENTS` records only (`FAILED` is logged):
//!
//! * each `Segments[].Utterance` becomes a transcript message: `messageId` = `Id`,
//!   `content` = `PartialContent`, `endTime` = the record's arrival time, `startTime` =
//!   `endTime` − (`EndOffsetMillis` − `BeginOffsetMillis`); role `AGENT` → `VIRTUAL_AGENT`,
//!   anything else → `END_USER`. Messages are grouped per contact and sent to
//!   `POST /voiceCalls/messages` as `{"entries":[{"vendorCallKey","messages"}]}`, split to
//!   the API's limit of 5 calls of 5 messages per request;
//! * each segment's `Categories.MatchedCategories` become one
//!   `POST /voiceCalls/{ContactId}/realtimeConversationEvents` with an
//!   `IntelligenceSignal__Category` event per category (`details`: its first point of
//!   interest) and `persist: false`;
//! * full `Transcript` segments are ignored.
//!
//! Answers of 429 and 5xx are retried 3 times; failures after that are logged and counted,
//! never thrown (a Kinesis trigger would otherwise redeliver the whole batch).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::contact_events::{send_with_retries, TelephonyApi};
use crate::telephony::HttpMethod;
use crate::{Clock, Function, FunctionError, SystemClock};

pub const CONSUMER_NAME: &str = "ContactLensConsumerFunction";
pub const PROCESSOR_NAME: &str = "ContactLensProcessorFunction";
/// `service` of conversation events.
pub const SERVICE: &str = "AmazonConnectContactLens";
/// Most records the consumer takes in one batch.
pub const MAX_RECORDS: usize = 5;
/// The bulk messages endpoint's limits: calls per request, messages per call.
pub const MAX_ENTRIES: usize = 5;
pub const MAX_MESSAGES: usize = 5;
/// Retries of a request answered with 429 or 5xx.
pub const RETRIES: u32 = 3;

/// One segment record out of a Kinesis record.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentRecord {
    pub data: Value,
    /// The record's arrival time, epoch ms.
    pub arrival_ms: i64,
}

/// The segment records of a Lambda Kinesis event; records that do not decode to JSON are
/// skipped with a warning.
pub fn records(event: &Value) -> Vec<SegmentRecord> {
    let mut out = Vec::new();
    for (i, r) in event.get("Records").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let k = r.get("kinesis").unwrap_or(&Value::Null);
        let decoded = k
            .get("data")
            .and_then(Value::as_str)
            .and_then(base64_decode)
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let Some(data) = decoded else {
            tracing::warn!(record = i, "a Contact Lens record is not base64 of JSON; skipped");
            continue;
        };
        let arrival_ms = k
            .get("approximateArrivalTimestamp")
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite())
            .map(|s| (s * 1000.0).round() as i64)
            .unwrap_or(0);
        out.push(SegmentRecord { data, arrival_ms });
    }
    out
}

/// The requests a batch of segment records calls for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Bodies for `POST /voiceCalls/messages`.
    pub bulk_messages: Vec<Value>,
    /// `(ContactId, body)` for `POST /voiceCalls/{ContactId}/realtimeConversationEvents`.
    pub category_events: Vec<(String, Value)>,
    /// How many utterances the bodies carry.
    pub utterances: usize,
}

/// What to send for `records` (see the module docs); `now_ms` stamps category events.
pub fn plan(records: &[SegmentRecord], now_ms: i64) -> Plan {
    let mut per_contact: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    // Contacts in the order they first appear, so requests follow the stream.
    let mut order: Vec<String> = Vec::new();
    let mut out = Plan::default();
    for r in records {
        let d = &r.data;
        let contact = d.get("ContactId").and_then(Value::as_str).unwrap_or("").to_string();
        match d.get("EventType").and_then(Value::as_str).unwrap_or("") {
            "SEGMENTS" => {}
            "FAILED" => {
                tracing::error!(contact_id = %contact, "Contact Lens real-time analysis failed");
                continue;
            }
            other => {
                tracing::debug!(contact_id = %contact, event_type = other, "Contact Lens event");
                continue;
            }
        }
        if contact.is_empty() {
            tracing::warn!("a Contact Lens SEGMENTS record without ContactId; skipped");
            continue;
        }
        for segment in d.get("Segments").and_then(Value::as_array).into_iter().flatten() {
            if let Some(u) = segment.get("Utterance") {
                if let Some(m) = message(u, r.arrival_ms) {
                    if !per_contact.contains_key(&contact) {
                        order.push(contact.clone());
                    }
                    per_contact.entry(contact.clone()).or_default().push(m);
                    out.utterances += 1;
                }
            }
            if let Some(c) = segment.get("Categories") {
                let details = c.get("MatchedDetails");
                let events: Vec<Value> = c
                    .get("MatchedCategories")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|name| {
                        let poi = details
                            .and_then(|d| d.get(name))
                            .and_then(|d| d.get("PointsOfInterest"))
                            .and_then(|p| p.get(0))
                            .cloned()
                            .unwrap_or(Value::Null);
                        json!({"type": "IntelligenceSignal__Category", "value": name, "startTime": now_ms, "details": poi})
                    })
                    .collect();
                if !events.is_empty() {
                    out.category_events.push((
                        contact.clone(),
                        json!({"service": SERVICE, "events": events, "persist": false}),
                    ));
                }
            }
        }
    }
    // Each contact's messages in slices of MAX_MESSAGES, packed MAX_ENTRIES to a request.
    let mut entries = Vec::new();
    for contact in order {
        for slice in per_contact.get(&contact).map(Vec::as_slice).unwrap_or(&[]).chunks(MAX_MESSAGES) {
            entries.push(json!({"vendorCallKey": contact, "messages": slice}));
        }
    }
    out.bulk_messages = entries.chunks(MAX_ENTRIES).map(|c| json!({"entries": c})).collect();
    out
}

/// One utterance as a transcript message; `None` without an id or text.
fn message(u: &Value, arrival_ms: i64) -> Option<Value> {
    let id = u.get("Id").and_then(Value::as_str).filter(|s| !s.is_empty())?;
    let content = u.get("PartialContent").and_then(Value::as_str)?;
    let offset = |k: &str| u.get(k).and_then(Value::as_i64).unwrap_or(0);
    let duration = offset("EndOffsetMillis").saturating_sub(offset("BeginOffsetMillis")).max(0);
    let role = u.get("ParticipantRole").and_then(Value::as_str).unwrap_or("");
    let sender = if role == "AGENT" { "VIRTUAL_AGENT" } else { "END_USER" };
    let participant = u.get("ParticipantId").and_then(Value::as_str).unwrap_or(sender);
    Some(json!({
        "participantId": participant,
        "senderType": sender,
        "messageId": id,
        "startTime": arrival_ms.saturating_sub(duration),
        "endTime": arrival_ms,
        "content": content,
    }))
}

/// Standard base64 (padding optional); `None` on anything else.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let trimmed = s.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in trimmed.bytes() {
        acc = (acc << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The processor.
pub struct ContactLensProcessor {
    api: Arc<dyn TelephonyApi>,
    clock: Arc<dyn Clock>,
    retry_step: Duration,
}

impl ContactLensProcessor {
    pub fn new(api: Arc<dyn TelephonyApi>) -> ContactLensProcessor {
        ContactLensProcessor { api, clock: Arc::new(SystemClock), retry_step: Duration::from_secs(1) }
    }

    /// The delay step between retries (1 s; tests shorten it).
    pub fn with_retry_step(mut self, step: Duration) -> ContactLensProcessor {
        self.retry_step = step;
        self
    }

    /// Sends one request with retries; a failure is logged and reported as `false`.
    async fn send(&self, path: &str, body: &Value) -> bool {
        match send_with_retries(self.api.as_ref(), HttpMethod::Post, path, body, RETRIES, self.retry_step)
            .await
        {
            Ok(a) if a.is_success() => true,
            Ok(a) => {
                tracing::warn!(path, status = a.status, answer = %a.body, "Contact Lens request refused");
                false
            }
            Err(e) => {
                tracing::warn!(path, error = %e, "Contact Lens request failed");
                false
            }
        }
    }
}

#[async_trait]
impl Function for ContactLensProcessor {
    fn name(&self) -> &str {
        PROCESSOR_NAME
    }

    async fn invoke(&self, event: Value) -> Result<Value, FunctionError> {
        let plan = plan(&records(&event), self.clock.now_ms());
        let mut failed = 0;
        for body in &plan.bulk_messages {
            if !self.send("/voiceCalls/messages", body).await {
                failed += 1;
            }
        }
        for (contact, body) in &plan.category_events {
            let path = format!(
                "/voiceCalls/{}/realtimeConversationEvents",
                crate::salesforce::percent_encode(contact)
            );
            if !self.send(&path, body).await {
                failed += 1;
            }
        }
        Ok(json!({
            "result": "Success",
            "utterances": plan.utterances,
            "categoryRequests": plan.category_events.len(),
            "failedRequests": failed,
        }))
    }
}

/// The consumer: checks the batch size and runs the processor.
pub struct ContactLensConsumer {
    processor: Arc<ContactLensProcessor>,
}

impl ContactLensConsumer {
    pub fn new(processor: Arc<ContactLensProcessor>) -> ContactLensConsumer {
        ContactLensConsumer { processor }
    }
}

#[async_trait]
impl Function for ContactLensConsumer {
    fn name(&self) -> &str {
        CONSUMER_NAME
    }

    async fn invoke(&self, event: Value) -> Result<Value, FunctionError> {
        let n = event.get("Records").and_then(Value::as_array).map_or(0, Vec::len);
        if n > MAX_RECORDS {
            tracing::error!(
                records = n,
                "more than {MAX_RECORDS} Contact Lens records in one batch; dropped"
            );
            return Ok(json!({"data": {"result": "Success"}}));
        }
        self.processor.invoke(event).await?;
        Ok(json!({"data": {"result": "Success"}}))
    }
}
