//! The built-in `PostCallAnalysisTriggerFunction`: when a Contact Lens post-call analysis
//! file lands in the object store, its sentiment goes to the call's conversation as
//! post-call intelligence signals.
//!
//! Input: the S3 EventBridge "Object Created" event (a default rule sends every one under
//! `Analysis/Voice/`). The key (`detail.object.key`, URL-decoded with `+` as a space) must
//! look like `Analysis/Voice/YYYY/MM/DD/<36-character contact id>…json`; redacted copies
//! (any key containing `Redacted`) and other keys are ignored.
//!
//! The file's `CustomerMetadata.ContactId` names the contact. The reference asks Amazon
//! Connect's DescribeContact for when the agent connected and when the contact ended; here
//! they come from the contact's CTR backup (`ctr/<ContactId>.json`, kept by the CTR sync):
//! `Agent.ConnectedToAgentTimestamp` (else the contact's start) and `DisconnectTimestamp`.
//!
//! Signals ([`signals`], sans-IO), sorted by start time:
//!
//! * per participant of `ConversationCharacteristics.Sentiment.OverallSentiment`, one
//!   sentiment over the whole call (connected to disconnect). Contact Lens scores run from
//!   −5 to +5 and the API takes −1000 to 1000 for `IntelligenceSignal__Sentiment` (the only
//!   post-call type it stores), so the score is scaled by 200;
//! * per `Transcript` turn, one sentiment from connected + `BeginOffsetMillis` to connected +
//!   `EndOffsetMillis`: POSITIVE → 1000, NEUTRAL and MIXED → 0, NEGATIVE → −1000; another
//!   label fails the invocation, as in the reference. The participant is the turn's
//!   `ParticipantId` mapped to its role through `Participants`.
//!
//! They go to `POST /voiceCalls/{ContactId}/postConversationEvents` as
//! `{"service":"AmazonConnectContactLens","events":[…]}` in chunks of 25; 429 and 5xx answers
//! are retried 3 times, the n-th after n seconds.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::contact_events::{send_with_retries, TelephonyApi};
use crate::telephony::HttpMethod;
use crate::{Function, FunctionError};

/// The reference name; rules' target ARNs end with it.
pub const NAME: &str = "PostCallAnalysisTriggerFunction";
/// `service` of the requests.
pub const SERVICE: &str = "AmazonConnectContactLens";
/// Signals per request.
pub const CHUNK: usize = 25;
/// Retries of a chunk answered with 429 or 5xx.
pub const RETRIES: u32 = 3;
/// Overall scores (−5..5) times this give the API's −1000..1000.
pub const OVERALL_SCALE: f64 = 200.0;

/// Read access to the object store.
#[async_trait]
pub trait ObjectReader: Send + Sync {
    /// The object's bytes, `None` when there is none.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String>;

    /// Keys under `prefix` (whole path parts), sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, String>;
}

/// What an Object Created event means to this function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// An analysis file to process, by key.
    Analysis(String),
    /// Nothing to do, and why.
    Ignore(String),
}

/// Decides from the event whether its object is a post-call analysis file.
pub fn trigger(event: &Value) -> Trigger {
    let Some(raw) = event.get("detail").and_then(|d| d.get("object")).and_then(|o| o.get("key")) else {
        return Trigger::Ignore("the event names no object key".into());
    };
    let Some(raw) = raw.as_str() else {
        return Trigger::Ignore("the object key is not text".into());
    };
    let key = url_decode(raw);
    if key.contains("Redacted") {
        return Trigger::Ignore(format!("{key} is a redacted copy"));
    }
    if !is_analysis_key(&key) {
        return Trigger::Ignore(format!("{key} is not a post-call analysis file"));
    }
    Trigger::Analysis(key)
}

/// `Analysis/Voice/YYYY/MM/DD/<36 characters>…json`.
pub fn is_analysis_key(key: &str) -> bool {
    let Some(rest) = key.strip_prefix("Analysis/Voice/") else { return false };
    let parts: Vec<&str> = rest.splitn(4, '/').collect();
    let [year, month, day, file] = parts.as_slice() else { return false };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    digits(year, 4)
        && digits(month, 2)
        && digits(day, 2)
        && file.chars().count() > 36
        && !file.contains('/')
        && file.ends_with("json")
}

/// S3 event keys are URL-encoded with `+` for a space.
pub fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where the CTR sync keeps a contact's newest CTR.
pub fn ctr_backup_key(contact_id: &str) -> String {
    format!("ctr/{contact_id}.json")
}

/// The contact the analysis file belongs to.
pub fn contact_id(analysis: &Value) -> Option<&str> {
    analysis
        .get("CustomerMetadata")
        .and_then(|m| m.get("ContactId"))
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
}

/// When the agent connected (else the contact started) and when it ended, from a CTR, in
/// epoch ms.
pub fn call_window(ctr: &Value) -> Option<(i64, i64)> {
    let time = |v: Option<&Value>| v.and_then(Value::as_str).and_then(crate::ctr_sync::parse_time_ms);
    let connected = time(ctr.get("Agent").and_then(|a| a.get("ConnectedToAgentTimestamp")))
        .or_else(|| time(ctr.get("ConnectedToSystemTimestamp")))
        .or_else(|| time(ctr.get("InitiationTimestamp")))?;
    let disconnected = time(ctr.get("DisconnectTimestamp")).unwrap_or(connected);
    Some((connected, disconnected.max(connected)))
}

/// The per-turn value of a sentiment label.
pub fn label_value(label: &str) -> Option<&'static str> {
    match label {
        "POSITIVE" => Some("1000"),
        "NEUTRAL" | "MIXED" => Some("0"),
        "NEGATIVE" => Some("-1000"),
        _ => None,
    }
}

/// The post-call signals of an analysis file (see the module docs), sorted by start time.
pub fn signals(analysis: &Value, connected_ms: i64, disconnect_ms: i64) -> Result<Vec<Value>, String> {
    let roles: Vec<(String, String)> = analysis
        .get("Participants")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p.get("ParticipantId")?.as_str()?.to_string(),
                p.get("ParticipantRole")?.as_str()?.to_string(),
            ))
        })
        .collect();
    let role_of = |id: &str| {
        roles.iter().find(|(i, _)| i == id).map(|(_, r)| r.clone()).unwrap_or_else(|| id.to_string())
    };
    let mut out = Vec::new();
    let overall = analysis
        .get("ConversationCharacteristics")
        .and_then(|c| c.get("Sentiment"))
        .and_then(|s| s.get("OverallSentiment"))
        .and_then(Value::as_object);
    for participant in ["AGENT", "CUSTOMER"] {
        let Some(score) = overall.and_then(|o| o.get(participant)).and_then(number) else { continue };
        let scaled = (score * OVERALL_SCALE).clamp(-1000.0, 1000.0);
        out.push(json!({
            "type": "IntelligenceSignal__Sentiment",
            "value": format_number(scaled),
            "startTime": connected_ms,
            "endTime": disconnect_ms,
            "participant": participant,
        }));
    }
    for (i, turn) in analysis.get("Transcript").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let label = turn.get("Sentiment").and_then(Value::as_str).unwrap_or("");
        let value = label_value(label)
            .ok_or_else(|| format!("Transcript[{i}]: unknown sentiment label {label:?}"))?;
        let offset = |k: &str| turn.get(k).and_then(Value::as_i64).unwrap_or(0).max(0);
        let start = connected_ms.saturating_add(offset("BeginOffsetMillis"));
        let end = connected_ms.saturating_add(offset("EndOffsetMillis")).max(start);
        let participant = role_of(turn.get("ParticipantId").and_then(Value::as_str).unwrap_or(""));
        out.push(json!({
            "type": "IntelligenceSignal__Sentiment",
            "value": value,
            "startTime": start,
            "endTime": end,
            "participant": participant,
        }));
    }
    // The API wants each request's events sorted by start time.
    out.sort_by_key(|e| e.get("startTime").and_then(Value::as_i64).unwrap_or(0));
    Ok(out)
}

/// The request bodies: the signals in chunks of [`CHUNK`].
pub fn request_bodies(signals: &[Value]) -> Vec<Value> {
    signals.chunks(CHUNK).map(|c| json!({"service": SERVICE, "events": c})).collect()
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite())
}

/// A number as short text (`160`, `-500`, `12.5`).
fn format_number(v: f64) -> String {
    let s = format!("{:.2}", (v * 100.0).round() / 100.0);
    let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// The built-in function.
pub struct PostCallAnalysisTrigger {
    api: Arc<dyn TelephonyApi>,
    objects: Arc<dyn ObjectReader>,
    retry_step: Duration,
}

impl PostCallAnalysisTrigger {
    pub fn new(api: Arc<dyn TelephonyApi>, objects: Arc<dyn ObjectReader>) -> PostCallAnalysisTrigger {
        PostCallAnalysisTrigger { api, objects, retry_step: Duration::from_secs(1) }
    }

    /// The delay step between retries (1 s; tests shorten it).
    pub fn with_retry_step(mut self, step: Duration) -> PostCallAnalysisTrigger {
        self.retry_step = step;
        self
    }
}

#[async_trait]
impl Function for PostCallAnalysisTrigger {
    fn name(&self) -> &str {
        NAME
    }

    async fn invoke(&self, event: Value) -> Result<Value, FunctionError> {
        let key = match trigger(&event) {
            Trigger::Ignore(reason) => return Ok(json!({"result": "Ignored", "reason": reason})),
            Trigger::Analysis(key) => key,
        };
        let bytes = self
            .objects
            .get(&key)
            .await
            .map_err(FunctionError::failed)?
            .ok_or_else(|| FunctionError::failed(format!("there is no object {key}")))?;
        let analysis: Value = serde_json::from_slice(&bytes)
            .map_err(|e| FunctionError::failed(format!("{key} is not JSON: {e}")))?;
        let contact = contact_id(&analysis)
            .ok_or_else(|| FunctionError::failed(format!("{key} has no CustomerMetadata.ContactId")))?
            .to_string();
        let ctr_key = ctr_backup_key(&contact);
        let ctr = self.objects.get(&ctr_key).await.map_err(FunctionError::failed)?.ok_or_else(|| {
            // Not yet synced: failing lets the caller retry once the CTR has arrived.
            FunctionError::failed(format!("no contact record for {contact} yet ({ctr_key})"))
        })?;
        let ctr: Value = serde_json::from_slice(&ctr).unwrap_or(Value::Null);
        let (connected, disconnected) = call_window(&ctr)
            .ok_or_else(|| FunctionError::failed(format!("the contact record of {contact} has no times")))?;
        let signals = signals(&analysis, connected, disconnected).map_err(FunctionError::failed)?;
        let path =
            format!("/voiceCalls/{}/postConversationEvents", crate::salesforce::percent_encode(&contact));
        let mut sent = 0;
        let mut failures = Vec::new();
        for body in request_bodies(&signals) {
            let n = body["events"].as_array().map_or(0, Vec::len);
            match send_with_retries(
                self.api.as_ref(),
                HttpMethod::Post,
                &path,
                &body,
                RETRIES,
                self.retry_step,
            )
            .await
            {
                Ok(a) if a.is_success() => sent += n,
                Ok(a) => failures.push(format!("HTTP {}: {}", a.status, a.body)),
                Err(e) => failures.push(e.to_string()),
            }
        }
        if !failures.is_empty() {
            return Err(FunctionError::failed(format!(
                "{contact}: {sent} of {} signals sent; {}",
                signals.len(),
                failures.join("; ")
            )));
        }
        Ok(json!({"result": "Success", "contactId": contact, "signals": sent}))
    }
}
