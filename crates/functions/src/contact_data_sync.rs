//! The built-in `ContactDataSync` function: backfills Contact Lens transcripts into the CRM
//! through the Connect REST API's conversation upload, and reports on uploads.
//!
//! Invoked directly (not from a flow) with one of
//!
//! * `{"operation":"uploadTranscript","payload":[{"contactId","relatedRecords":[…]}]}` — up
//!   to [`MAX_CONTACT_IDS`] contacts. For each, the contact's record (its CTR backup, what
//!   DescribeContact answers in the reference) must show an agent and a start time; the
//!   newest post-call analysis file `Analysis/Voice/YYYY/MM/DD/<contactId>…json` of the
//!   contact's start date becomes the transcript ([`transcript`], sans-IO). Contacts go up in
//!   batches of [`BATCH_SIZE`], one multipart `POST connect/conversations/upload` each
//!   (through the CRM REST API as the demo connected app's API user);
//! * `{"operation":"fetchUploadIdsStatus","uploadIds":[…]}` — `GET
//!   connect/conversations/upload?uploadId=…`.
//!
//! Anything else answers `{"statusCode":400,"body":…}`, as the reference does.
//!
//! The transcript is NDJSON: `{"type":"conversation","payload":{"conversationId"}}`, then a
//! `conversationEntry` per turn with `id`, `messageText`, `clientDuration` 1, the request's
//! `relatedRecords` and a sender (`END_USER` for the customer; agent turns as `Chatbot`,
//! the `VIRTUAL_AGENT` sender type real-time Contact Lens transcripts have, since the turn
//! names no user). Each entry's `clientSentTimestamp` is the time the agent connected (else
//! the contact's start) plus that turn's own `BeginOffsetMillis`, so entries land where they
//! were said.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::post_call::{call_window, ctr_backup_key, ObjectReader};
use crate::salesforce::{self, CrmClient};
use crate::{Function, FunctionError};

pub const NAME: &str = "ContactDataSync";
/// Most contacts per uploadTranscript invocation.
pub const MAX_CONTACT_IDS: usize = 100;
/// Contacts per upload request.
pub const BATCH_SIZE: usize = 10;

/// A checked invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// `(contactId, relatedRecords)` pairs.
    UploadTranscript(Vec<(String, Vec<String>)>),
    FetchUploadIdsStatus(Vec<String>),
}

/// Checks the event; `Err` is the 400 message.
pub fn parse(event: &Value) -> Result<Operation, String> {
    match event.get("operation").and_then(Value::as_str) {
        Some("uploadTranscript") => {
            let list = event
                .get("payload")
                .and_then(Value::as_array)
                .ok_or("uploadTranscript needs `payload`: a list of {contactId, relatedRecords}")?;
            if list.is_empty() {
                return Err("`payload` names no contact".into());
            }
            if list.len() > MAX_CONTACT_IDS {
                return Err(format!("at most {MAX_CONTACT_IDS} contacts per invocation, got {}", list.len()));
            }
            let mut out = Vec::with_capacity(list.len());
            for (i, item) in list.iter().enumerate() {
                let id = item
                    .get("contactId")
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty())
                    .ok_or_else(|| format!("payload[{i}].contactId is missing"))?;
                let related: Vec<String> = item
                    .get("relatedRecords")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect();
                out.push((id.trim().to_string(), related));
            }
            Ok(Operation::UploadTranscript(out))
        }
        Some("fetchUploadIdsStatus") => {
            let ids: Vec<String> = event
                .get("uploadIds")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if ids.is_empty() {
                return Err("fetchUploadIdsStatus needs `uploadIds`: a list of upload ids".into());
            }
            Ok(Operation::FetchUploadIdsStatus(ids))
        }
        Some(other) => {
            Err(format!("unknown operation {other:?}; use uploadTranscript or fetchUploadIdsStatus"))
        }
        None => Err("the event has no `operation`".into()),
    }
}

/// The object-store folder of a day's analysis files, from an ISO time (`2024-04-26T…`).
pub fn analysis_prefix(start_iso: &str) -> Option<String> {
    let date = start_iso.get(..10)?;
    let mut parts = date.split('-');
    let (Some(y), Some(m), Some(d), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let ok =
        y.len() == 4 && m.len() == 2 && d.len() == 2 && date.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    ok.then(|| format!("Analysis/Voice/{y}/{m}/{d}"))
}

/// The transcript NDJSON of one analysis file (see the module docs).
pub fn transcript(contact_id: &str, related: &[String], analysis: &Value, base_ms: i64) -> String {
    let mut lines =
        vec![json!({"type": "conversation", "payload": {"conversationId": contact_id}}).to_string()];
    for turn in analysis.get("Transcript").and_then(Value::as_array).into_iter().flatten() {
        let Some(id) = turn.get("Id").and_then(Value::as_str) else { continue };
        let participant = turn.get("ParticipantId").and_then(Value::as_str).unwrap_or("");
        let (role, kind) =
            if participant == "CUSTOMER" { ("END_USER", "END_USER") } else { ("Chatbot", "VIRTUAL_AGENT") };
        let begin = turn.get("BeginOffsetMillis").and_then(Value::as_i64).unwrap_or(0).max(0);
        lines.push(
            json!({
                "type": "conversationEntry",
                "payload": {
                    "conversationId": contact_id,
                    "id": id,
                    "clientSentTimestamp": base_ms.saturating_add(begin),
                    "clientDuration": 1,
                    "messageText": turn.get("Content").and_then(Value::as_str).unwrap_or(""),
                    "relatedRecords": related,
                    "sender": {"appType": "TELEPHONY_INTEGRATION", "subject": format!("{contact_id}{kind}"), "role": role},
                },
            })
            .to_string(),
        );
    }
    lines.join("\n")
}

/// Why a contact was left out.
fn skip(contact: &str, reason: impl Into<String>) -> Value {
    json!({"contactId": contact, "reason": reason.into()})
}

/// The built-in function.
pub struct ContactDataSync {
    crm: Arc<CrmClient>,
    objects: Arc<dyn ObjectReader>,
}

impl ContactDataSync {
    pub fn new(crm: Arc<CrmClient>, objects: Arc<dyn ObjectReader>) -> ContactDataSync {
        ContactDataSync { crm, objects }
    }

    /// The transcript of one contact, or why there is none.
    async fn contact_transcript(&self, contact: &str, related: &[String]) -> Result<String, String> {
        let ctr = self
            .objects
            .get(&ctr_backup_key(contact))
            .await?
            .ok_or_else(|| "no contact record (CTR backup)".to_string())?;
        let ctr: Value =
            serde_json::from_slice(&ctr).map_err(|_| "the contact record is not JSON".to_string())?;
        if ctr.get("Agent").is_none_or(Value::is_null) {
            return Err("the contact has no agent".into());
        }
        let start = ctr
            .get("InitiationTimestamp")
            .and_then(Value::as_str)
            .ok_or_else(|| "the contact has no InitiationTimestamp".to_string())?;
        let prefix =
            analysis_prefix(start).ok_or_else(|| format!("InitiationTimestamp {start:?} is not a date"))?;
        let key = self
            .objects
            .list(&prefix)
            .await?
            .into_iter()
            .rfind(|k| k.contains(contact) && !k.contains("Redacted"))
            .ok_or_else(|| format!("no analysis file under {prefix}/"))?;
        let bytes = self.objects.get(&key).await?.ok_or_else(|| format!("{key} is gone"))?;
        let analysis: Value = serde_json::from_slice(&bytes).map_err(|_| format!("{key} is not JSON"))?;
        let (base, _) = call_window(&ctr).ok_or("the contact record has no times")?;
        Ok(transcript(contact, related, &analysis, base))
    }

    async fn crm_call(&self, params: Value) -> Result<Value, FunctionError> {
        let event = json!({"Details": {"Parameters": params}});
        let request = salesforce::build_request(&event).map_err(FunctionError::failed)?;
        let resp = self
            .crm
            .send(request.http_method, &request.path, &request.body)
            .await
            .map_err(|e| FunctionError::failed(e.to_string()))?;
        if !resp.is_success() {
            return Err(FunctionError::failed(format!(
                "the Connect API answered {}: {}",
                resp.status,
                resp.error_message()
            )));
        }
        Ok(resp.body)
    }
}

#[async_trait]
impl Function for ContactDataSync {
    fn name(&self) -> &str {
        NAME
    }

    async fn invoke(&self, event: Value) -> Result<Value, FunctionError> {
        let operation = match parse(&event) {
            Ok(op) => op,
            Err(message) => return Ok(json!({"statusCode": 400, "body": {"error": message}})),
        };
        match operation {
            Operation::FetchUploadIdsStatus(ids) => {
                self.crm_call(json!({"methodName": "fetchUploadIdsStatus", "uploadIds": ids})).await
            }
            Operation::UploadTranscript(contacts) => {
                let mut ready = Vec::new();
                let mut skipped = Vec::new();
                for (contact, related) in &contacts {
                    match self.contact_transcript(contact, related).await {
                        Ok(t) => ready.push(json!([contact, t])),
                        Err(reason) => skipped.push(skip(contact, reason)),
                    }
                }
                let mut results = Vec::new();
                for batch in ready.chunks(BATCH_SIZE) {
                    let params = json!({"methodName": "uploadTranscript", "contactIdsPayloadMap": Value::Array(batch.to_vec()).to_string()});
                    let answer = self.crm_call(params).await?;
                    results.extend(
                        answer
                            .get("conversationBulkUploadsResults")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default(),
                    );
                }
                Ok(json!({"conversationBulkUploadsResults": results, "skipped": skipped}))
            }
        }
    }
}
