//! Queued callbacks: the telephony system asks Voxbridge to call a caller back
//! (`POST /telephony/v1/voiceCalls/{vendorCallKey}/callback`), the request is stored as a
//! `CallbackRequest` record and handed to the org's router, which offers it to an agent when it
//! is due — in the caller's original place in line. The agent who accepts it gets an outbound
//! VoiceCall to the customer and reports how it went
//! (`POST /console/api/v1/callbacks/{id}/outcome`): no answer (or busy) schedules the next
//! attempt after the retry delay until the attempts run out; answered or voicemail completes it.
//!
//! `CallbackRequest.Status` goes `Requested` → `Scheduled` (with `DueDateTime`) → `Queued` →
//! `Dialing` (with `OutboundCallId`) → `Scheduled` again, `Completed` or `Exhausted`. A restart
//! schedules every unfinished request again; one interrupted while dialing is retried at once
//! with the same attempt number.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use voxbridge_core::time::{format_ms, parse_iso_ms};
use voxbridge_core::{ApiError, ErrorCode, Fields, KeyPrefix, Record, SfId};
use voxbridge_routing::CallbackOutcome;
use voxbridge_store::{Store, StoreError, WriteOp};

use crate::agent_api::agent;
use crate::body;
use crate::console_calls::is_e164;
use crate::error::Result;
use crate::omni::{Ask, CallbackTell, Tell};
use crate::telephony::open_conversation;
use crate::wire::ErrorBody;
use crate::App;

type AppState = State<Arc<App>>;

/// The most attempts one callback may make.
const MAX_ATTEMPTS: i64 = 10;
/// The longest initial or retry delay: one week.
const MAX_DELAY_SECONDS: i64 = 7 * 24 * 3600;
/// Retry delay when the request names none.
const DEFAULT_RETRY_SECONDS: i64 = 300;

/// Whether a routing work id is a callback's (a CallbackRequest record id).
pub(crate) fn is_callback_id(id: &str) -> bool {
    SfId::parse_with(id, KeyPrefix::CallbackRequest).is_ok()
}

/// The outbound call a callback's current attempt dialed, when `id` is a callback's.
pub(crate) async fn outbound_call(
    store: &dyn Store,
    org: &SfId,
    id: &str,
) -> Result<Option<SfId>, StoreError> {
    let Ok(id) = SfId::parse_with(id, KeyPrefix::CallbackRequest) else { return Ok(None) };
    Ok(store
        .get(org, &id)
        .await?
        .and_then(|r| r.str("OutboundCallId").and_then(|c| SfId::parse_with(c, KeyPrefix::VoiceCall).ok())))
}

/// Body of the callback request. Members are read as any JSON so a wrong one is named in the
/// error rather than failing the whole body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallbackRequestBody {
    /// The number to call back, E.164.
    #[schema(value_type = String, example = "+14155550123")]
    pub callback_number: Option<Value>,
    /// Queue id, developer name or routing-map external id; default: the queue the call waits in.
    #[schema(value_type = Option<String>, example = "Support")]
    pub queue: Option<Value>,
    /// 0 to 604800; default 0.
    #[schema(value_type = Option<i64>, example = 60)]
    pub initial_delay_seconds: Option<Value>,
    /// 1 to 10; default 1.
    #[schema(value_type = Option<i64>, example = 3)]
    pub max_attempts: Option<Value>,
    /// 0 to 604800; default 300.
    #[schema(value_type = Option<i64>, example = 300)]
    pub retry_delay_seconds: Option<Value>,
}

/// Answer of the callback request.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallbackCreated {
    /// The CallbackRequest's id, also the callback's work id in the console.
    pub id: String,
    pub voice_call_id: String,
    pub queue_id: String,
    pub callback_number: String,
    pub max_attempts: i64,
    /// `Requested`; then `Scheduled`, `Queued`, `Dialing`, `Completed` or `Exhausted`.
    pub status: String,
}

fn int_arg(v: Option<&Value>, name: &str, default: i64, min: i64, max: i64) -> Result<i64, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(v) => match v.as_i64() {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid(name, format!("must be a whole number from {min} to {max}"))),
        },
    }
}

fn str_arg<'a>(v: Option<&'a Value>, name: &str) -> Result<Option<&'a str>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim()).filter(|s| !s.is_empty())),
        Some(_) => Err(ApiError::invalid(name, "must be a string")),
    }
}

/// `POST /telephony/v1/voiceCalls/{vendorCallKey}/callback`
#[utoipa::path(post, path = "/telephony/v1/voiceCalls/{vendorCallKey}/callback", tag = "Routing",
    params(("vendorCallKey" = String, Path, description = "vendorCallKey or voiceCallId of the caller's call")),
    request_body(content = CallbackRequestBody, content_type = "application/json"),
    responses((status = 201, body = CallbackCreated, description = "stored and scheduled"),
        (status = 400, body = ErrorBody, description = "a member is missing or invalid"),
        (status = 404, body = ErrorBody, description = "no such call in this call center"),
        (status = "4XX", body = ErrorBody)),
    security(("jwt" = [])))]
pub async fn request_callback(
    State(app): AppState,
    Path(call_key): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response> {
    let caller = app.caller(&headers).await?;
    let req: CallbackRequestBody = body::parse(&headers, &bytes)?;
    let number = str_arg(req.callback_number.as_ref(), "callbackNumber")?
        .ok_or_else(|| ApiError::required("callbackNumber"))?;
    if !is_e164(number) {
        return Err(ApiError::invalid("callbackNumber", "must be in E.164 form, e.g. +14155550100").into());
    }
    let initial =
        int_arg(req.initial_delay_seconds.as_ref(), "initialDelaySeconds", 0, 0, MAX_DELAY_SECONDS)?;
    let max_attempts = int_arg(req.max_attempts.as_ref(), "maxAttempts", 1, 1, MAX_ATTEMPTS)?;
    let retry = int_arg(
        req.retry_delay_seconds.as_ref(),
        "retryDelaySeconds",
        DEFAULT_RETRY_SECONDS,
        0,
        MAX_DELAY_SECONDS,
    )?;
    let queue_arg = str_arg(req.queue.as_ref(), "queue")?;
    let call = app.require_call(&caller, &call_key).await?;
    let org = &caller.org;
    let pending =
        app.store.find_by_key(org, "PendingServiceRouting", call.id.as_str()).await?.into_iter().next_back();
    let queue = match queue_arg {
        Some(q) => {
            app.resolve_queue(&caller, q)
                .await?
                .filter(|g| g.sobject == "Group")
                .ok_or_else(|| ApiError::invalid("queue", format!("no queue `{q}` in this call center")))?
                .id
        }
        // The queue the call waits in.
        None => pending
            .as_ref()
            .and_then(|p| p.str("QueueId"))
            .and_then(|q| SfId::parse_with(q, KeyPrefix::Group).ok())
            .ok_or_else(|| ApiError::required("queue"))?,
    };
    let now = app.now_ms();
    // The caller joined the line when the call was first routed.
    let enqueued = pending.as_ref().map_or(call.created_ms, |p| p.created_ms);
    let id = app.new_id(KeyPrefix::CallbackRequest);
    let mut r = Record::new(id.clone(), org.clone(), "CallbackRequest", Some(call.id.to_string()), now);
    for (k, v) in [
        ("VoiceCallId", json!(call.id.to_string())),
        ("VendorCallKey", json!(call.key)),
        ("CallCenterId", json!(caller.call_center_id().to_string())),
        ("CallbackNumber", json!(number)),
        // The customer sees the number they called.
        ("FromPhoneNumber", json!(call.str("ToPhoneNumber"))),
        ("QueueId", json!(queue.to_string())),
        ("InitialDelaySeconds", json!(initial)),
        ("MaxAttempts", json!(max_attempts)),
        ("RetryDelaySeconds", json!(retry)),
        ("Attempt", json!(0)),
        ("Status", json!("Requested")),
        ("OriginalEnqueuedMs", json!(enqueued)),
    ] {
        r.set(k, v);
    }
    app.store.apply(vec![WriteOp::Insert(r)]).await?;
    let tell = CallbackTell {
        id: id.clone(),
        call: call.id.clone(),
        queue: queue.clone(),
        number: number.to_string(),
        enqueued_at: Some(enqueued.max(0) as u64),
        initial_delay_ms: initial as u64 * 1000,
        attempts_made: 0,
        max_attempts: max_attempts as u32,
        retry_delay_ms: retry as u64 * 1000,
    };
    app.omni.send(org, Tell::Callback(tell)).await;
    let created = CallbackCreated {
        id: id.to_string(),
        voice_call_id: call.id.to_string(),
        queue_id: queue.to_string(),
        callback_number: number.to_string(),
        max_attempts,
        status: "Requested".into(),
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `POST /console/api/v1/callbacks/{id}/outcome`
pub async fn outcome(
    State(app): AppState,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response> {
    let me = agent(&app, &headers).await?;
    let Value::Object(req) = body::parse_value(&headers, &bytes)? else {
        return Err(ApiError::new(ErrorCode::MalformedRequest, "the body must be a JSON object").into());
    };
    let said = str_arg(req.get("outcome"), "outcome")?.ok_or_else(|| ApiError::required("outcome"))?;
    let outcome = match said {
        "Answered" => CallbackOutcome::Answered,
        // A busy line is an attempt nobody answered.
        "NoAnswer" | "Busy" => CallbackOutcome::NoAnswer,
        "Voicemail" => CallbackOutcome::Voicemail,
        _ => return Err(ApiError::invalid("outcome", "must be Answered, NoAnswer, Voicemail or Busy").into()),
    };
    if !is_callback_id(&id) {
        return Err(ApiError::not_found(format!("no callback `{id}` in this org")).into());
    }
    let ask = Ask::CallbackOutcome { agent: me.user.clone(), callback: id.clone(), outcome };
    let mut v = app.omni.ask(&me.org, ask).await?;
    if let Ok(rid) = SfId::parse(&id) {
        let mut patch = Fields::new();
        patch.insert("LastOutcome".into(), said.into());
        app.store
            .apply(vec![WriteOp::Update { org: me.org.clone(), id: rid, patch, now_ms: app.now_ms() }])
            .await?;
    }
    v["outcome"] = json!(said);
    Ok(Json(v).into_response())
}

/// Starts the outbound call of an accepted callback (simulated media): a VoiceCall of type
/// Outbound owned by the agent, its conversation, and the request marked `Dialing`. Returns the
/// call's id and vendorCallKey; `None` when the request is gone.
pub(crate) async fn dial(
    store: &dyn Store,
    org: &SfId,
    callback: &str,
    agent: &str,
    attempt: u32,
    now: u64,
) -> Result<Option<(SfId, String)>, StoreError> {
    let Ok(id) = SfId::parse_with(callback, KeyPrefix::CallbackRequest) else { return Ok(None) };
    let Some(req) = store.get(org, &id).await? else { return Ok(None) };
    let now = now as i64;
    let (call_id, conv_id) = {
        let mut rng = rand::thread_rng();
        (SfId::generate(KeyPrefix::VoiceCall, &mut rng), SfId::generate(KeyPrefix::Conversation, &mut rng))
    };
    let key = format!("callback-{}", uuid::Uuid::new_v4());
    let center = req.str("CallCenterId").unwrap_or("");
    let mut call = Record::new(call_id.clone(), org.clone(), "VoiceCall", Some(key.clone()), now);
    for (k, v) in [
        ("CallCenterId", json!(center)),
        ("VendorCallKey", json!(key)),
        ("VendorType", json!("ContactCenter")),
        ("CallType", json!("Outbound")),
        ("CallOrigin", json!("Callback")),
        ("CallDisposition", json!("in-progress")),
        ("CallStartDateTime", json!(format_ms(now))),
        ("FromPhoneNumber", json!(req.str("FromPhoneNumber").unwrap_or("WEBRTC_DEFAULT"))),
        ("ToPhoneNumber", json!(req.str("CallbackNumber"))),
        ("CallSubType", json!("PSTN")),
        ("OwnerId", json!(agent)),
        ("UserId", json!(agent)),
        ("ConversationId", json!(conv_id.to_string())),
        ("CallbackRequestId", json!(callback)),
        ("PreviousCallId", json!(req.str("VoiceCallId"))),
    ] {
        call.set(k, v);
    }
    let conv = open_conversation(conv_id, org, center, &key, now, &call_id, now);
    let mut patch = Fields::new();
    patch.insert("Status".into(), "Dialing".into());
    patch.insert("Attempt".into(), attempt.into());
    patch.insert("OutboundCallId".into(), call_id.to_string().into());
    patch.insert("AgentId".into(), agent.into());
    store
        .apply(vec![
            WriteOp::Insert(call),
            WriteOp::Insert(conv),
            WriteOp::Update { org: org.clone(), id, patch, now_ms: now },
        ])
        .await?;
    Ok(Some((call_id, key)))
}

/// Ends an attempt's outbound call that nobody answered: the call completed, its conversation
/// closed.
pub(crate) async fn end_outbound(
    store: &dyn Store,
    org: &SfId,
    call: &SfId,
    now: u64,
) -> Result<(), StoreError> {
    let Some(c) = store.get(org, call).await? else { return Ok(()) };
    let now = now as i64;
    let mut patch = Fields::new();
    patch.insert("CallDisposition".into(), "completed".into());
    patch.insert("CallEndDateTime".into(), format_ms(now).into());
    let mut ops = vec![WriteOp::Update { org: org.clone(), id: call.clone(), patch, now_ms: now }];
    if let Some(conv) = c.str("ConversationId").and_then(|s| SfId::parse(s).ok()) {
        let mut close = Fields::new();
        close.insert("Status".into(), "Closed".into());
        close.insert("EndTime".into(), format_ms(now).into());
        ops.push(WriteOp::Update { org: org.clone(), id: conv, patch: close, now_ms: now });
    }
    store.apply(ops).await?;
    Ok(())
}

/// The unfinished callbacks of an org, to schedule again at a restart. An attempt that was
/// dialing when the server stopped is retried at once: its AgentWork is closed and its call
/// ended.
pub(crate) async fn restore(
    store: &dyn Store,
    org: &SfId,
    open_work: &[Record],
    now: u64,
) -> Result<Vec<CallbackTell>, StoreError> {
    let mut requests = store.list(org, "CallbackRequest").await?;
    requests.sort_by_key(|r| r.created_ms);
    let mut tells = Vec::new();
    for r in requests {
        let status = r.str("Status").unwrap_or("");
        if !matches!(status, "Requested" | "Scheduled" | "Queued" | "Dialing") {
            continue;
        }
        let (Some(call), Some(queue)) = (
            r.str("VoiceCallId").and_then(|s| SfId::parse(s).ok()),
            r.str("QueueId").and_then(|s| SfId::parse(s).ok()),
        ) else {
            continue;
        };
        let attempt = r.i64("Attempt").unwrap_or(0).clamp(0, MAX_ATTEMPTS) as u32;
        let delay = match status {
            "Requested" => (r.i64("InitialDelaySeconds").unwrap_or(0).max(0) as u64 * 1000)
                .saturating_sub(now.saturating_sub(r.created_ms.max(0) as u64)),
            "Scheduled" => r
                .str("DueDateTime")
                .and_then(parse_iso_ms)
                .map_or(0, |due| (due.max(0) as u64).saturating_sub(now)),
            _ => 0,
        };
        if status == "Dialing" {
            let mut ops = Vec::new();
            for w in open_work.iter().filter(|w| w.str("WorkItemId") == Some(r.id.as_str())) {
                let mut patch = Fields::new();
                patch.insert("Status".into(), "Closed".into());
                patch.insert("CloseDateTime".into(), format_ms(now as i64).into());
                patch.insert("CloseReason".into(), "Restarted".into());
                ops.push(WriteOp::Update { org: org.clone(), id: w.id.clone(), patch, now_ms: now as i64 });
            }
            if !ops.is_empty() {
                store.apply(ops).await?;
            }
            if let Some(out) = r.str("OutboundCallId").and_then(|s| SfId::parse(s).ok()) {
                end_outbound(store, org, &out, now).await?;
            }
        }
        // A queued or dialing attempt is made again; a scheduled one has not been made yet.
        let attempts_made = attempt.saturating_sub(1);
        tells.push(CallbackTell {
            id: r.id.clone(),
            call,
            queue,
            number: r.str("CallbackNumber").unwrap_or("").to_string(),
            enqueued_at: r.i64("OriginalEnqueuedMs").map(|t| t.max(0) as u64),
            initial_delay_ms: delay,
            attempts_made,
            max_attempts: r.i64("MaxAttempts").unwrap_or(1).clamp(1, MAX_ATTEMPTS) as u32,
            retry_delay_ms: r.i64("RetryDelaySeconds").unwrap_or(DEFAULT_RETRY_SECONDS).max(0) as u64 * 1000,
        });
    }
    Ok(tells)
}
