//! Voxbridge's own endpoints beside the guide's API, for the telephony side, the console and
//! operators: reading a call with its conversation and transcript, setting hold and
//! recording-pause state (which decide whether transcripts are stored), and subscribing to a
//! conversation's live events. They use the same call-center JWTs as the telephony API.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use voxbridge_core::{ApiError, ErrorCode, Fields, Record, SfId};
use voxbridge_store::WriteOp;

use crate::auth;
use crate::body;
use crate::error::Result;
use crate::wire::{CallStateRequest, CallStateResponse, ErrorBody, Message, ResultResponse};
use crate::{events, App};

type AppState = State<Arc<App>>;

fn record_json(r: &Record) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("Id".into(), r.id.to_string().into());
    m.insert("attributes".into(), json!({"type": r.sobject}));
    for (k, v) in &r.fields {
        m.insert(k.clone(), v.clone());
    }
    Value::Object(m)
}

async fn conversation_of(app: &App, org: &SfId, call: &Record) -> Result<Record> {
    let id = call.str("ConversationId").and_then(|s| SfId::parse(s).ok());
    let conv = match id {
        Some(id) => app.store.get(org, &id).await?,
        None => None,
    };
    conv.ok_or_else(|| ApiError::new(ErrorCode::InvalidState, "the voice call has no conversation").into())
}

/// `GET /admin/v1/voiceCalls/{CALL_ID}`: the call, its conversation, recordings, routing,
/// signals and transcript.
#[utoipa::path(get, path = "/admin/v1/voiceCalls/{callId}", tag = "Admin",
    params(("callId" = String, Path, description = "voiceCallId or vendorCallKey")),
    responses((status = 200, description = "the call with related records", body = Object), (status = "4XX", body = ErrorBody)),
    security(("jwt" = [])))]
pub async fn get_voice_call(
    State(app): AppState,
    Path(call_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let caller = app.caller(&headers).await?;
    let call = app.require_call(&caller, &call_id).await?;
    let conv = conversation_of(&app, &caller.org, &call).await?;
    let recordings = app.store.find_by_key(&caller.org, "VoiceCallRecording", call.id.as_str()).await?;
    let routing = app.store.find_by_key(&caller.org, "PendingServiceRouting", call.id.as_str()).await?;
    let signals =
        app.store.find_by_key(&caller.org, "ConversationIntelligenceSignal", conv.id.as_str()).await?;
    let participants =
        app.store.find_by_key(&caller.org, "ConversationParticipant", conv.id.as_str()).await?;
    let entries = app.store.entries(&caller.org, &conv.id).await?;
    let transcript: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({"Id": e.id.to_string(), "messageId": e.message_id, "senderType": e.sender_type,
                "participantId": e.participant_id, "content": e.content, "startTime": e.start_ms, "endTime": e.end_ms})
        })
        .collect();
    Ok(Json(json!({
        "voiceCall": record_json(&call),
        "conversation": record_json(&conv),
        "participants": participants.iter().map(record_json).collect::<Vec<_>>(),
        "recordings": recordings.iter().map(record_json).collect::<Vec<_>>(),
        "pendingServiceRouting": routing.iter().map(record_json).collect::<Vec<_>>(),
        "signals": signals.iter().map(record_json).collect::<Vec<_>>(),
        "transcript": transcript,
    }))
    .into_response())
}

/// `PATCH /admin/v1/voiceCalls/{CALL_ID}/state`: puts the call on hold or pauses its
/// recording (or undoes either). While either is set, transcripts are not stored.
#[utoipa::path(patch, path = "/admin/v1/voiceCalls/{callId}/state", tag = "Admin",
    params(("callId" = String, Path, description = "voiceCallId or vendorCallKey")),
    request_body(content((CallStateRequest = "application/json"), (CallStateRequest = "application/xml"))),
    responses((status = 200, body = CallStateResponse), (status = "4XX", body = ErrorBody)),
    security(("jwt" = [])))]
pub async fn set_call_state(
    State(app): AppState,
    Path(call_id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response> {
    let caller = app.caller(&headers).await?;
    let req: CallStateRequest = body::parse(&headers, &bytes)?;
    if req.on_hold.is_none() && req.recording_paused.is_none() {
        return Err(ApiError::new(
            ErrorCode::RequiredFieldMissing,
            "send `onHold` or `recordingPaused` (true or false)",
        )
        .into());
    }
    let call = app.require_call(&caller, &call_id).await?;
    let conv = conversation_of(&app, &caller.org, &call).await?;
    let now = app.now_ms();
    let mut patch = Fields::new();
    if let Some(h) = req.on_hold {
        patch.insert("OnHold".into(), h.into());
    }
    if let Some(p) = req.recording_paused {
        patch.insert("RecordingPaused".into(), p.into());
    }
    app.store
        .apply(vec![WriteOp::Update { org: caller.org.clone(), id: conv.id.clone(), patch, now_ms: now }])
        .await?;
    app.forget_conversation(&caller.org, conv.key.as_deref());
    let on_hold = req.on_hold.unwrap_or(conv.bool("OnHold").unwrap_or(false));
    let recording_paused = req.recording_paused.unwrap_or(conv.bool("RecordingPaused").unwrap_or(false));
    let data = json!({"voiceCallId": call.id.to_string()});
    let key = conv.key.as_deref().unwrap_or("");
    if let Some(h) = req.on_hold {
        app.hub.publish(caller.org.as_str(), key, if h { "hold" } else { "resume" }, data.clone());
    }
    if let Some(p) = req.recording_paused {
        app.hub.publish(caller.org.as_str(), key, if p { "pauserecording" } else { "resumerecording" }, data);
    }
    Ok(Json(CallStateResponse { on_hold, recording_paused }).into_response())
}

#[derive(Deserialize)]
pub struct TokenQuery {
    access_token: Option<String>,
}

/// `GET /live/v1/conversations/{vendorCallKey}`: Server-Sent Events of one conversation.
/// Browsers' EventSource cannot set headers, so the token may come as `?access_token=`.
#[utoipa::path(get, path = "/live/v1/conversations/{vendorCallKey}", tag = "Live events",
    params(("vendorCallKey" = String, Path, description = "vendorCallKey of the conversation's first call"),
        ("access_token" = Option<String>, Query, description = "the JWT, when an Authorization header cannot be sent")),
    responses((status = 200, content_type = "text/event-stream", description = "events: ready, transcript, signal, callstarted, callupdated, callended, hold, resume, pauserecording, resumerecording, routing, lagged"),
        (status = "4XX", body = ErrorBody)),
    security(("jwt" = [])))]
pub async fn subscribe(
    State(app): AppState,
    Path(key): Path<String>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let now = app.now_ms();
    let caller = match q.access_token {
        Some(t) => auth::authenticate_token(&t, &*app.store, &app.keys, &app.settings, now).await?,
        None => app.caller(&headers).await?,
    };
    let conv = app.conversation_by_key(&caller, &key).await?;
    let rx = app.hub.subscribe(caller.org.as_str(), &key);
    let ready =
        json!({"conversationId": conv.id.to_string(), "vendorCallKey": key, "status": conv.str("Status")});
    Ok(events::sse(rx, ready).into_response())
}

/// `POST /admin/v1/echo`: authenticates and parses a transcript message like the messages
/// endpoint, then answers without touching the store. Benchmarks measure the store's cost
/// against it.
#[utoipa::path(post, path = "/admin/v1/echo", tag = "Admin",
    request_body(content((Message = "application/json"), (Message = "application/xml"))),
    responses((status = 200, body = ResultResponse), (status = "4XX", body = ErrorBody)),
    security(("jwt" = [])))]
pub async fn echo(State(app): AppState, headers: HeaderMap, bytes: Bytes) -> Result<Response> {
    let _caller = app.caller(&headers).await?;
    let _msg: Message = body::parse(&headers, &bytes)?;
    Ok(Json(ResultResponse { result: "Accepted".into(), error_response: None }).into_response())
}
