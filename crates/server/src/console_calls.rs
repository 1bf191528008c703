//! Call control for the agent console (`docs/console-api.md`, "Call control"): what the
//! Toolkit API's actions do on a call the agent holds — mute, hold, recording pause, end,
//! digits, transfers and three-way calls, preview calls — plus flags and notes, the VoiceCall
//! record (read, and update of the fields the Lightning Data Service allows), Next Best
//! Action recommendations, Voice Extension registrations, and the console's static files.
//!
//! A call is held when the org's router says the agent's work for it is `Assigned` (or in
//! `WrapUp`, for the record, notes and flags). Hold and recording pause set the conversation's
//! `OnHold` / `RecordingPaused` exactly as the admin state endpoint does, so the transcript
//! gate refuses utterances meanwhile. Every change is published on the conversation's live
//! events, which the console WebSocket forwards as `conversation` events.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use voxbridge_core::time::format_ms;
use voxbridge_core::voicecall::{validate_attributes, FieldDef};
use voxbridge_core::{ApiError, ErrorCode, Fields, KeyPrefix, Record, SfId};
use voxbridge_store::WriteOp;

use crate::agent_api::{agent, Agent, ADMIN_PROFILE};
use crate::error::Result;
use crate::omni::{Ask, Tell};
use crate::telephony::open_conversation;
use crate::{nba, App};

type AppState = State<Arc<App>>;

/// Standard VoiceCall fields the console may update; custom (`__c`) fields come on top.
const UPDATABLE: [&str; 3] = ["CallResolution", "RelatedRecordId", "Description"];

/// A call as seen by the session asking about it.
struct Held {
    call: Record,
    conv: Record,
    /// The conversation's live-event key (vendorCallKey of its first call).
    key: String,
    /// `Agent` when the session holds the call, else `Supervisor`.
    role: &'static str,
    /// `Assigned` or `WrapUp` for the holder, empty for a supervisor.
    stage: String,
    display_name: String,
}

impl Held {
    /// The telephony system's id of the call, the Toolkit API's `callId`.
    fn call_id(&self) -> String {
        self.call.key.clone().unwrap_or_else(|| self.call.id.to_string())
    }

    fn on_call(&self) -> Result<()> {
        if self.stage == "Assigned" {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorCode::InvalidState,
            match self.stage.as_str() {
                "WrapUp" => "the call has ended; only the record, notes and flags can change in wrap-up",
                _ => "you are not on this call",
            },
        )
        .into())
    }

    fn caller_number(&self) -> String {
        let field =
            if self.call.str("CallType") == Some("Outbound") { "ToPhoneNumber" } else { "FromPhoneNumber" };
        self.call.str(field).unwrap_or("").to_string()
    }

    fn third_party(&self) -> Option<&Map<String, Value>> {
        self.conv.fields.get("ThirdParty").and_then(Value::as_object)
    }
}

fn not_found(id: &str) -> crate::error::Error {
    ApiError::not_found(format!("no voice call `{id}` in this org")).into()
}

/// The stage of the agent's work for `id` in the router, if any.
async fn stage_of(app: &App, me: &Agent, id: &str) -> Result<Option<String>> {
    let state = app.omni.ask(&me.org, Ask::State { agent: me.user.clone() }).await?;
    Ok(state["work"]
        .as_array()
        // A callback's work holds the outbound call it dialed.
        .and_then(|w| w.iter().find(|w| w["workId"] == id || w["voiceCallId"] == id))
        .and_then(|w| w["stage"].as_str())
        .map(str::to_string))
}

async fn load(app: &App, me: &Agent, id: &str, supervisor_ok: bool) -> Result<Held> {
    // A callback's work id stands for the outbound call it dialed.
    let dialed = crate::callbacks::outbound_call(&*app.store, &me.org, id).await?;
    let call_id = match dialed {
        Some(c) => c,
        None => SfId::parse_with(id, KeyPrefix::VoiceCall).map_err(|_| not_found(id))?,
    };
    let call = app
        .store
        .get(&me.org, &call_id)
        .await?
        .filter(|r| r.sobject == "VoiceCall")
        .ok_or_else(|| not_found(id))?;
    let conv = match call.str("ConversationId").and_then(|c| SfId::parse(c).ok()) {
        Some(c) => app.store.get(&me.org, &c).await?,
        None => None,
    }
    .ok_or_else(|| ApiError::new(ErrorCode::InvalidState, "the voice call has no conversation"))?;
    let stage = stage_of(app, me, call.id.as_str()).await?;
    let role = match &stage {
        Some(s) if s == "Assigned" || s == "WrapUp" => "Agent",
        _ if supervisor_ok => "Supervisor",
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidState,
                format!("you are not on call {id}; accept it first"),
            )
            .into())
        }
    };
    let user = app.store.get(&me.org, &me.user).await?;
    let display_name = user.as_ref().and_then(|u| u.str("Name")).unwrap_or("").to_string();
    let key = conv.key.clone().unwrap_or_default();
    Ok(Held {
        call,
        conv,
        key,
        role,
        stage: stage.filter(|_| role == "Agent").unwrap_or_default(),
        display_name,
    })
}

fn object(bytes: &Bytes) -> Result<Map<String, Value>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ApiError::new(ErrorCode::MalformedRequest, "the body must be a JSON object").into()),
    }
}

fn string_arg<'a>(body: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ApiError::invalid(name, "must be a string").into()),
    }
}

/// `participantType` of hold/resume: `Initial_Caller` (default) or `Third_Party`.
fn participant_type(body: &Map<String, Value>, allowed: &[&str]) -> Result<String> {
    let p = string_arg(body, "participantType")?.unwrap_or(allowed[0]);
    if !allowed.contains(&p) {
        return Err(ApiError::invalid(
            "participantType",
            format!(
                "must be one of {}, got `{p}`",
                allowed.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", ")
            ),
        )
        .into());
    }
    Ok(p.to_string())
}

/// E.164: `+`, a non-zero digit, 1 to 14 more digits.
pub(crate) fn is_e164(s: &str) -> bool {
    let Some(d) = s.strip_prefix('+') else { return false };
    (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
}

/// The Toolkit API's DTMF characters: 0–9, `*`, `#`, A–D and `,` (a pause).
pub(crate) fn valid_digits(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_digit() || b"*#ABCD,".contains(&b))
}

impl App {
    async fn patch_conversation(&self, org: &SfId, held: &Held, patch: Fields) -> Result<()> {
        let now = self.now_ms();
        self.store
            .apply(vec![WriteOp::Update { org: org.clone(), id: held.conv.id.clone(), patch, now_ms: now }])
            .await?;
        self.forget_conversation(org, held.conv.key.as_deref());
        Ok(())
    }

    fn live(&self, org: &SfId, held: &Held, kind: &'static str, extra: Value) {
        let mut data = json!({"voiceCallId": held.call.id.to_string(), "callId": held.call_id()});
        if let (Some(d), Value::Object(e)) = (data.as_object_mut(), extra) {
            d.extend(e);
        }
        self.hub.publish(org.as_str(), &held.key, kind, data);
    }

    /// Ends the VoiceCall as a hang-up from the telephony side does: completed, conversation
    /// closed, routing told (which starts the agent's wrap-up).
    async fn end_voice_call(&self, org: &SfId, held: &Held) -> Result<()> {
        let now = self.now_ms();
        let mut patch = Fields::new();
        patch.insert("CallDisposition".into(), "completed".into());
        if held.call.str("CallEndDateTime").is_none() {
            patch.insert("CallEndDateTime".into(), format_ms(now).into());
        }
        let mut ops =
            vec![WriteOp::Update { org: org.clone(), id: held.call.id.clone(), patch, now_ms: now }];
        if held.call.str("NextCallId").is_none_or(str::is_empty) {
            let mut close = Fields::new();
            close.insert("Status".into(), "Closed".into());
            close.insert("EndTime".into(), format_ms(now).into());
            close.insert("OnHold".into(), false.into());
            close.insert("ThirdParty".into(), Value::Null);
            ops.push(WriteOp::Update {
                org: org.clone(),
                id: held.conv.id.clone(),
                patch: close,
                now_ms: now,
            });
        }
        for psr in self.store.find_by_key(org, "PendingServiceRouting", held.call.id.as_str()).await? {
            ops.push(WriteOp::Delete { org: org.clone(), id: psr.id });
        }
        self.store.apply(ops).await?;
        self.forget_conversation(org, held.conv.key.as_deref());
        self.omni.send(org, Tell::Ended { call: held.call.id.clone() }).await;
        self.live(org, held, "callended", json!({"created": false, "endedBy": "Agent"}));
        Ok(())
    }

    /// Routes an accepted call somewhere else through the router (an Omni-Channel transfer):
    /// a fresh PendingServiceRouting, then the router closes the agent's work and offers it.
    async fn transfer(&self, org: &SfId, held: &Held, target: &Target) -> Result<()> {
        let now = self.now_ms();
        let mut ops = Vec::new();
        for psr in self.store.find_by_key(org, "PendingServiceRouting", held.call.id.as_str()).await? {
            ops.push(WriteOp::Delete { org: org.clone(), id: psr.id });
        }
        let mut psr = Record::new(
            self.new_id(KeyPrefix::PendingServiceRouting),
            org.clone(),
            "PendingServiceRouting",
            Some(held.call.id.to_string()),
            now,
        );
        psr.set("WorkItemId", held.call.id.to_string());
        psr.set("RoutingType", "Omni");
        psr.set("IsPushed", false);
        psr.set("IsTransfer", true);
        let (queue, user) = match target {
            Target::Queue(q, _) => (Some(q.id.clone()), None),
            Target::Agent(u, _) => (None, Some(u.id.clone())),
        };
        if let Some(q) = &queue {
            psr.set("QueueId", q.to_string());
        }
        if let Some(u) = &user {
            psr.set("UserId", u.to_string());
        }
        ops.push(WriteOp::Insert(psr));
        let mut clear = Fields::new();
        clear.insert("ThirdParty".into(), Value::Null);
        clear.insert("ThirdPartyOnHold".into(), false.into());
        clear.insert("OnHold".into(), false.into());
        ops.push(WriteOp::Update { org: org.clone(), id: held.conv.id.clone(), patch: clear, now_ms: now });
        self.store.apply(ops).await?;
        self.forget_conversation(org, held.conv.key.as_deref());
        let tell =
            Tell::Route { call: held.call.id.clone(), queue, user, conversation_key: Some(held.key.clone()) };
        self.omni.send(org, tell).await;
        self.hub.publish(
            org.as_str(),
            &held.key,
            "routing",
            json!({"voiceCallId": held.call.id.to_string(), "transferred": true, "to": target.name()}),
        );
        Ok(())
    }
}

/// Where `addParticipant` with `AgentOrQueueId` goes.
enum Target {
    Queue(Record, String),
    Agent(Record, String),
}

impl Target {
    fn name(&self) -> &str {
        match self {
            Target::Queue(_, n) | Target::Agent(_, n) => n,
        }
    }
}

async fn resolve_target(app: &App, org: &SfId, value: &str) -> Result<Target> {
    let by_id = match SfId::parse(value) {
        Ok(id) => app.store.get(org, &id).await?,
        Err(_) => None,
    };
    let record = match by_id {
        Some(r) => Some(r),
        None => {
            let mut found = app.store.find_by_key(org, "Group", value).await?;
            found.extend(app.store.find_by_key(org, "User", value).await?);
            found.into_iter().next()
        }
    };
    let unknown = || ApiError::invalid("contactValue", format!("`{value}` is no agent or queue of this org"));
    let record = record.ok_or_else(unknown)?;
    match record.sobject.as_str() {
        "Group" => {
            let name = record.str("Name").or(record.key.as_deref()).unwrap_or(value).to_string();
            Ok(Target::Queue(record, name))
        }
        "User" => {
            let maps = app.store.list(org, "CallCenterRoutingMap").await?;
            if !maps.iter().any(|m| m.str("ReferenceRecordId").is_some_and(|r| record.id.matches(r))) {
                return Err(
                    ApiError::invalid("contactValue", format!("user `{value}` is not an agent")).into()
                );
            }
            let name = record.str("Name").or(record.key.as_deref()).unwrap_or(value).to_string();
            Ok(Target::Agent(record, name))
        }
        _ => Err(unknown().into()),
    }
}

fn ok(status: &str, extra: Value) -> Response {
    let mut v = json!({"status": status});
    if let (Some(m), Value::Object(e)) = (v.as_object_mut(), extra) {
        m.extend(e);
    }
    Json(v).into_response()
}

/// `POST /console/api/v1/calls/{id}/{action}`: one Toolkit API action on a held call.
pub async fn action(
    State(app): AppState,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response> {
    let me = agent(&app, &headers).await?;
    let body = object(&bytes)?;
    let supervisor_ok = matches!(action.as_str(), "lowerFlag" | "note");
    let held = load(&app, &me, &id, supervisor_ok).await?;
    let org = &me.org;
    match action.as_str() {
        "mute" | "unmute" => {
            held.on_call()?;
            let muted = action == "mute";
            let mut patch = Fields::new();
            patch.insert("AgentMuted".into(), muted.into());
            app.patch_conversation(org, &held, patch).await?;
            app.live(org, &held, if muted { "mute" } else { "unmute" }, json!({}));
            Ok(ok(if muted { "Muted" } else { "Unmuted" }, json!({})))
        }
        "hold" | "resume" => {
            held.on_call()?;
            let who = participant_type(&body, &["Initial_Caller", "Third_Party"])?;
            let on = action == "hold";
            let mut patch = Fields::new();
            let participant = if who == "Third_Party" {
                let Some(tp) = held.third_party() else {
                    return Err(ApiError::new(ErrorCode::InvalidState, "there is no third party on this call").into());
                };
                patch.insert("ThirdPartyOnHold".into(), on.into());
                tp.get("name").and_then(Value::as_str).unwrap_or("").to_string()
            } else {
                // The transcript gate reads this, as with the admin state endpoint.
                patch.insert("OnHold".into(), on.into());
                held.caller_number()
            };
            app.patch_conversation(org, &held, patch).await?;
            app.live(
                org,
                &held,
                if on { "hold" } else { "resume" },
                json!({"participant": participant, "participantType": who}),
            );
            Ok(ok(if on { "OnHold" } else { "Resumed" }, json!({"participantType": who})))
        }
        "pauseRecording" | "resumeRecording" => {
            held.on_call()?;
            let paused = action == "pauseRecording";
            let mut patch = Fields::new();
            patch.insert("RecordingPaused".into(), paused.into());
            app.patch_conversation(org, &held, patch).await?;
            app.live(org, &held, if paused { "pauserecording" } else { "resumerecording" }, json!({}));
            Ok(ok(if paused { "RecordingPaused" } else { "RecordingResumed" }, json!({})))
        }
        "endCall" => {
            held.on_call()?;
            let who = participant_type(&body, &["Agent", "Initial_Caller", "Third_Party"])?;
            if who == "Third_Party" {
                let Some(tp) = held.third_party() else {
                    return Err(ApiError::new(ErrorCode::InvalidState, "there is no third party on this call").into());
                };
                let name = tp.get("name").and_then(Value::as_str).unwrap_or("").to_string();
                let mut patch = Fields::new();
                patch.insert("ThirdParty".into(), Value::Null);
                patch.insert("ThirdPartyOnHold".into(), false.into());
                patch.insert("OnHold".into(), false.into());
                app.patch_conversation(org, &held, patch).await?;
                app.live(org, &held, "participantremoved", json!({"participant": name}));
                app.live(org, &held, "resume", json!({"participant": held.caller_number(), "participantType": "Initial_Caller"}));
                return Ok(ok("ParticipantRemoved", json!({"participantType": who})));
            }
            // The agent leaving a consult with an agent or queue completes the transfer.
            if who == "Agent" {
                if let Some(tp) = held.third_party().filter(|t| t.get("contactType") == Some(&json!("AgentOrQueueId"))) {
                    let value = tp.get("contactValue").and_then(Value::as_str).unwrap_or("").to_string();
                    let target = resolve_target(&app, org, &value).await?;
                    app.transfer(org, &held, &target).await?;
                    return Ok(ok("Transferred", json!({"to": target.name()})));
                }
            }
            app.end_voice_call(org, &held).await?;
            Ok(ok("Ended", json!({"participantType": who})))
        }
        "sendDigits" => {
            held.on_call()?;
            let digits = string_arg(&body, "digit")?.or(string_arg(&body, "digits")?).unwrap_or("");
            if !valid_digits(digits) {
                return Err(ApiError::invalid(
                    "digit",
                    "must be 1 to 64 of the characters 0-9, *, #, A, B, C, D and , (pause)",
                )
                .into());
            }
            app.live(org, &held, "digits", json!({"digits": digits}));
            Ok(ok("Sent", json!({"digits": digits})))
        }
        "addParticipant" => {
            held.on_call()?;
            add_participant(&app, org, &held, &body).await
        }
        "merge" | "swap" => {
            held.on_call()?;
            if held.third_party().is_none() {
                return Err(ApiError::new(
                    ErrorCode::InvalidState,
                    format!("{action} needs a three-way call; add a participant first"),
                )
                .into());
            }
            let mut patch = Fields::new();
            if action == "merge" {
                patch.insert("OnHold".into(), false.into());
                patch.insert("ThirdPartyOnHold".into(), false.into());
                app.patch_conversation(org, &held, patch).await?;
                app.live(org, &held, "conference", json!({}));
                Ok(ok("Conference", json!({})))
            } else {
                let caller_on_hold = !held.conv.bool("OnHold").unwrap_or(false);
                patch.insert("OnHold".into(), caller_on_hold.into());
                patch.insert("ThirdPartyOnHold".into(), (!caller_on_hold).into());
                app.patch_conversation(org, &held, patch).await?;
                app.live(org, &held, "swap", json!({"initialCallerOnHold": caller_on_hold}));
                Ok(ok("Swapped", json!({"initialCallerOnHold": caller_on_hold})))
            }
        }
        "raiseFlag" | "lowerFlag" | "note" => flag_or_note(&app, &me, &held, &action, &body).await,
        other => Err(ApiError::not_found(format!(
            "no call action `{other}`; use mute, unmute, hold, resume, pauseRecording, resumeRecording, endCall, \
             sendDigits, addParticipant, merge, swap, raiseFlag, lowerFlag or note"
        ))
        .into()),
    }
}

async fn add_participant(app: &App, org: &SfId, held: &Held, body: &Map<String, Value>) -> Result<Response> {
    let kind = string_arg(body, "contactType")?.ok_or_else(|| ApiError::required("contactType"))?;
    let value = string_arg(body, "contactValue")?.map(str::trim).filter(|v| !v.is_empty());
    let value = value.ok_or_else(|| ApiError::required("contactValue"))?;
    let blind = match body.get("isBlindTransfer") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::invalid("isBlindTransfer", "must be true or false").into()),
    };
    if held.third_party().is_some() {
        return Err(ApiError::new(ErrorCode::InvalidState, "a third party is already on the call").into());
    }
    let (name, target) = match kind {
        "PhoneNumber" => {
            if !is_e164(value) {
                return Err(ApiError::invalid(
                    "contactValue",
                    "must be a phone number in E.164 form, e.g. +14155550100",
                )
                .into());
            }
            (value.to_string(), None)
        }
        "AgentOrQueueId" => {
            let t = resolve_target(app, org, value).await?;
            (t.name().to_string(), Some(t))
        }
        other => {
            return Err(ApiError::invalid(
                "contactType",
                format!("must be \"PhoneNumber\" or \"AgentOrQueueId\", got `{other}`"),
            )
            .into())
        }
    };
    app.live(org, held, "participantadded", json!({"participant": name, "isBlindTransfer": blind}));
    if blind {
        match &target {
            Some(t) => app.transfer(org, held, t).await?,
            // A blind transfer out of the contact center: the call leaves the agent.
            None => app.end_voice_call(org, held).await?,
        }
        return Ok(ok("Transferred", json!({"to": name})));
    }
    // A consult: the caller waits on hold while the agent talks to the third party.
    let mut patch = Fields::new();
    patch.insert("ThirdParty".into(), json!({"contactType": kind, "contactValue": value, "name": name}));
    patch.insert("ThirdPartyOnHold".into(), false.into());
    patch.insert("OnHold".into(), true.into());
    app.patch_conversation(org, held, patch).await?;
    app.live(
        org,
        held,
        "hold",
        json!({"participant": held.caller_number(), "participantType": "Initial_Caller"}),
    );
    Ok(ok("Consulting", json!({"to": name})))
}

async fn flag_or_note(
    app: &App,
    me: &Agent,
    held: &Held,
    action: &str,
    body: &Map<String, Value>,
) -> Result<Response> {
    let org = &me.org;
    let text = string_arg(body, "text")?.map(str::trim).unwrap_or("");
    if action != "lowerFlag" && text.is_empty() {
        return Err(ApiError::required("text").into());
    }
    if text.chars().count() > 2_000 {
        return Err(ApiError::invalid("text", "is longer than 2,000 characters").into());
    }
    let now = app.now_ms();
    let client_sent = match body.get("clientSentTimestamp") {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(now),
        _ => now,
    };
    let flags = app.store.find_by_key(org, "ConversationFlag", held.conv.id.as_str()).await?;
    let mut ops = Vec::new();
    let (kind, sobject_type): (&'static str, &str) = match action {
        "raiseFlag" => {
            if !flags.is_empty() {
                return Err(
                    ApiError::new(ErrorCode::InvalidState, "a flag is already raised on this call").into()
                );
            }
            let mut f = Record::new(
                app.new_id(KeyPrefix::ConversationEntry),
                org.clone(),
                "ConversationFlag",
                Some(held.conv.id.to_string()),
                now,
            );
            f.set("ConversationId", held.conv.id.to_string());
            f.set("VoiceCallId", held.call.id.to_string());
            f.set("Text", text);
            f.set("RaisedById", me.user.to_string());
            f.set("RaisedByName", held.display_name.clone());
            f.set("RaisedAt", format_ms(now));
            ops.push(WriteOp::Insert(f));
            ("flagraise", "FLAG_RAISE")
        }
        "lowerFlag" => {
            if flags.is_empty() {
                return Err(ApiError::new(ErrorCode::InvalidState, "no flag is raised on this call").into());
            }
            ops.extend(flags.into_iter().map(|f| WriteOp::Delete { org: org.clone(), id: f.id }));
            ("flaglower", "FLAG_LOWER")
        }
        _ => ("note", "NOTE"),
    };
    let mut note = Record::new(
        app.new_id(KeyPrefix::ConversationEntry),
        org.clone(),
        "ConversationNote",
        Some(held.conv.id.to_string()),
        now,
    );
    note.set("ConversationId", held.conv.id.to_string());
    note.set("VoiceCallId", held.call.id.to_string());
    note.set("Type", sobject_type);
    note.set("Text", if action == "lowerFlag" { Value::Null } else { text.into() });
    note.set("SenderRole", held.role);
    note.set("SenderName", held.display_name.clone());
    note.set("UserId", me.user.to_string());
    note.set("ClientSentTimestamp", client_sent);
    note.set("ServerReceivedTimestamp", now);
    let detail = note_detail(&note, &held.call_id());
    ops.push(WriteOp::Insert(note));
    app.store.apply(ops).await?;
    app.hub.publish(org.as_str(), &held.key, kind, detail.clone());
    Ok((StatusCode::CREATED, Json(detail)).into_response())
}

/// A stored flag or note in the Toolkit API's `detail` shape.
fn note_detail(n: &Record, call_id: &str) -> Value {
    let text = n.fields.get("Text").cloned().unwrap_or(Value::Null);
    let format = if text.is_null() { Value::Null } else { json!("Text") };
    json!({
        "id": n.id.to_string(),
        "type": n.str("Type"),
        "clientSentTimestamp": n.i64("ClientSentTimestamp"),
        "serverReceivedTimestamp": n.i64("ServerReceivedTimestamp"),
        "content": {"formatType": format, "text": text},
        "callId": call_id,
        "sender": {"role": n.str("SenderRole"), "displayName": n.str("SenderName")},
    })
}

fn record_json(r: &Record) -> Value {
    let mut m = Map::new();
    m.insert("attributes".into(), json!({"type": r.sobject}));
    m.insert("Id".into(), r.id.to_string().into());
    for (k, v) in &r.fields {
        m.insert(k.clone(), v.clone());
    }
    Value::Object(m)
}

/// `GET /console/api/v1/calls/{id}`: the VoiceCall record and the call's console state.
/// Any console session of the org may read (supervisors monitor calls).
pub async fn get_call(State(app): AppState, Path(id): Path<String>, headers: HeaderMap) -> Result<Response> {
    let me = agent(&app, &headers).await?;
    let held = load(&app, &me, &id, true).await?;
    let org = &me.org;
    let notes = app.store.find_by_key(org, "ConversationNote", held.conv.id.as_str()).await?;
    let flag = app.store.find_by_key(org, "ConversationFlag", held.conv.id.as_str()).await?;
    let entries = app.store.entries(org, &held.conv.id).await?;
    let call_id = held.call_id();
    let mut notes: Vec<&Record> = notes.iter().collect();
    notes.sort_by_key(|n| n.i64("ServerReceivedTimestamp"));
    Ok(Json(json!({
        "voiceCall": record_json(&held.call),
        "callId": call_id,
        "callType": held.call.str("CallType").map(str::to_lowercase),
        "participant": held.caller_number(),
        "conversationKey": held.key,
        "role": held.role,
        "stage": held.stage,
        "state": {
            "onHold": held.conv.bool("OnHold").unwrap_or(false),
            "recordingPaused": held.conv.bool("RecordingPaused").unwrap_or(false),
            "muted": held.conv.bool("AgentMuted").unwrap_or(false),
            "thirdParty": held.third_party().cloned(),
            "thirdPartyOnHold": held.conv.bool("ThirdPartyOnHold").unwrap_or(false),
            "status": held.conv.str("Status"),
        },
        "flag": flag.first().map(|f| json!({"text": f.str("Text"), "raisedBy": f.str("RaisedByName"), "raisedAt": f.str("RaisedAt")})),
        "notes": notes.iter().map(|n| note_detail(n, &call_id)).collect::<Vec<_>>(),
        "transcript": entries.iter().map(|e| json!({
            "messageId": e.message_id, "senderType": e.sender_type, "content": e.content,
            "startTime": e.start_ms, "endTime": e.end_ms})).collect::<Vec<_>>(),
    }))
    .into_response())
}

async fn voice_call_defs(app: &App, org: &SfId) -> Result<Vec<FieldDef>> {
    Ok(app
        .store
        .list(org, "CustomField")
        .await?
        .iter()
        .filter(|r| r.str("Object").is_none_or(|o| o.eq_ignore_ascii_case("VoiceCall")))
        .filter_map(FieldDef::from_record)
        .collect())
}

/// `PATCH /console/api/v1/calls/{id}`: the Lightning Data Service update — custom fields,
/// `CallResolution`, `RelatedRecordId` and `Description` only, by the agent holding the call.
pub async fn update_call(
    State(app): AppState,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response> {
    let me = agent(&app, &headers).await?;
    let body = object(&bytes)?;
    let held = load(&app, &me, &id, false).await?;
    if body.is_empty() {
        return Err(ApiError::required("at least one field").into());
    }
    let refused: Vec<&str> =
        body.keys().map(String::as_str).filter(|k| !k.ends_with("__c") && !UPDATABLE.contains(k)).collect();
    if !refused.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidFieldForInsertUpdate,
            format!(
                "VoiceCall fields {} cannot be updated here; only custom fields, CallResolution, RelatedRecordId and Description can",
                refused.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")
            ),
        )
        .into());
    }
    let mut patch = Fields::new();
    let mut custom = Fields::new();
    for (k, v) in &body {
        if k.ends_with("__c") {
            custom.insert(k.clone(), v.clone());
            continue;
        }
        let max = match k.as_str() {
            "Description" => 32_000,
            "CallResolution" => 255,
            _ => 18,
        };
        match v {
            Value::Null => {}
            Value::String(s) if s.chars().count() > max => {
                return Err(ApiError::invalid(k, format!("is longer than {max} characters")).into())
            }
            Value::String(s) if k == "RelatedRecordId" && !s.is_empty() => {
                let rid = SfId::parse(s).map_err(|e| ApiError::invalid(k, e))?;
                if app.store.get(&me.org, &rid).await?.is_none() {
                    return Err(ApiError::invalid(k, format!("`{s}` names no record of this org")).into());
                }
            }
            Value::String(_) => {}
            _ => return Err(ApiError::invalid(k, "must be a string or null").into()),
        }
        patch.insert(k.clone(), v.clone());
    }
    if !custom.is_empty() {
        let defs: Vec<FieldDef> = voice_call_defs(&app, &me.org)
            .await?
            .into_iter()
            .filter(|d| custom.keys().any(|k| k.eq_ignore_ascii_case(&d.name)))
            .collect();
        let (good, errors) = validate_attributes(&custom, &defs);
        if !errors.is_empty() {
            return Err(ApiError::new(ErrorCode::InvalidFieldValue, errors.join("; ")).into());
        }
        patch.extend(good);
    }
    let names: Vec<String> = patch.keys().cloned().collect();
    let now = app.now_ms();
    app.store
        .apply(vec![WriteOp::Update { org: me.org.clone(), id: held.call.id.clone(), patch, now_ms: now }])
        .await?;
    app.live(&me.org, &held, "callupdated", json!({"created": false, "fields": names}));
    let call = app.store.get(&me.org, &held.call.id).await?.ok_or_else(|| not_found(&id))?;
    Ok(Json(record_json(&call)).into_response())
}

/// `POST /console/api/v1/calls` with `{"phoneNumber"}`: a preview call. The outbound VoiceCall
/// is routed to the agent and accepted at once, so it is held like any other call.
pub async fn start_preview_call(State(app): AppState, headers: HeaderMap, bytes: Bytes) -> Result<Response> {
    let me = agent(&app, &headers).await?;
    let body = object(&bytes)?;
    let number = string_arg(&body, "phoneNumber")?.map(str::trim).unwrap_or("");
    if number.is_empty() {
        return Err(ApiError::required("phoneNumber").into());
    }
    if !is_e164(number) {
        return Err(ApiError::invalid("phoneNumber", "must be in E.164 form, e.g. +14155550100").into());
    }
    let org = &me.org;
    let maps = app.store.list(org, "CallCenterRoutingMap").await?;
    let center = maps
        .iter()
        .find(|m| m.str("ReferenceRecordId").is_some_and(|r| me.user.matches(r)))
        .and_then(|m| m.str("CallCenterId"))
        .map(str::to_string);
    let Some(center) = center else {
        return Err(ApiError::new(ErrorCode::Forbidden, "you are in no call center's routing map").into());
    };
    let from = app
        .store
        .list(org, "ConversationChannelDefinition")
        .await?
        .iter()
        .find(|c| c.str("CallCenterId") == Some(center.as_str()))
        .and_then(|c| c.str("PhoneNumber"))
        .unwrap_or("WEBRTC_DEFAULT")
        .to_string();
    let now = app.now_ms();
    let key = format!("preview-{}", uuid::Uuid::new_v4());
    let call_id = app.new_id(KeyPrefix::VoiceCall);
    let conv_id = app.new_id(KeyPrefix::Conversation);
    let mut call = Record::new(call_id.clone(), org.clone(), "VoiceCall", Some(key.clone()), now);
    for (k, v) in [
        ("CallCenterId", json!(center)),
        ("VendorCallKey", json!(key)),
        ("VendorType", json!("ContactCenter")),
        ("CallType", json!("Outbound")),
        ("CallDisposition", json!("in-progress")),
        ("CallStartDateTime", json!(format_ms(now))),
        ("FromPhoneNumber", json!(from)),
        ("ToPhoneNumber", json!(number)),
        ("CallSubType", json!("PSTN")),
        ("CallOrigin", json!("Preview")),
        ("OwnerId", json!(me.user.to_string())),
        ("UserId", json!(me.user.to_string())),
        ("ConversationId", json!(conv_id.to_string())),
    ] {
        call.set(k, v);
    }
    let conv = open_conversation(conv_id.clone(), org, &center, &key, now, &call_id, now);
    let mut psr = Record::new(
        app.new_id(KeyPrefix::PendingServiceRouting),
        org.clone(),
        "PendingServiceRouting",
        Some(call_id.to_string()),
        now,
    );
    psr.set("WorkItemId", call_id.to_string());
    psr.set("RoutingType", "Omni");
    psr.set("IsPushed", false);
    psr.set("UserId", me.user.to_string());
    app.store.apply(vec![WriteOp::Insert(call), WriteOp::Insert(conv), WriteOp::Insert(psr)]).await?;
    let tell = Tell::Route {
        call: call_id.clone(),
        queue: None,
        user: Some(me.user.clone()),
        conversation_key: Some(key.clone()),
    };
    app.omni.send(org, tell).await;
    // The router offers it to this agent at once when they are routable with room.
    match app.omni.ask(org, Ask::Accept { agent: me.user.clone(), work: call_id.to_string() }).await {
        Ok(work) => Ok((
            StatusCode::CREATED,
            Json(json!({"voiceCallId": call_id.to_string(), "callId": key, "phoneNumber": number, "work": work})),
        )
            .into_response()),
        Err(_) => {
            app.omni.send(org, Tell::Clear { call: call_id.clone() }).await;
            let mut patch = Fields::new();
            patch.insert("CallDisposition".into(), "completed".into());
            patch.insert("CallEndDateTime".into(), format_ms(now).into());
            let mut close = Fields::new();
            close.insert("Status".into(), "Closed".into());
            close.insert("EndTime".into(), format_ms(now).into());
            let mut ops = vec![
                WriteOp::Update { org: org.clone(), id: call_id.clone(), patch, now_ms: now },
                WriteOp::Update { org: org.clone(), id: conv_id, patch: close, now_ms: now },
            ];
            for p in app.store.find_by_key(org, "PendingServiceRouting", call_id.as_str()).await? {
                ops.push(WriteOp::Delete { org: org.clone(), id: p.id });
            }
            app.store.apply(ops).await?;
            Err(ApiError::new(
                ErrorCode::InvalidState,
                "a preview call needs a routable presence (Available) with room for one more call",
            )
            .into())
        }
    }
}

/// `GET /console/api/v1/flags`: raised flags of the org, oldest first (supervisor view).
pub async fn raised_flags(State(app): AppState, headers: HeaderMap) -> Result<Response> {
    let me = agent(&app, &headers).await?;
    let mut flags = app.store.list(&me.org, "ConversationFlag").await?;
    flags.sort_by_key(|f| f.created_ms);
    let list: Vec<Value> = flags
        .iter()
        .map(|f| {
            json!({"voiceCallId": f.str("VoiceCallId"), "conversationId": f.str("ConversationId"),
                   "text": f.str("Text"), "raisedBy": f.str("RaisedByName"), "raisedById": f.str("RaisedById"),
                   "raisedAt": f.str("RaisedAt")})
        })
        .collect();
    Ok(Json(json!({"flags": list})).into_response())
}

/// `GET /console/api/v1/calls`: calls of the org in progress (supervisor view).
pub async fn active_calls(State(app): AppState, headers: HeaderMap) -> Result<Response> {
    let me = agent(&app, &headers).await?;
    let works = app.store.list(&me.org, "AgentWork").await?;
    let mut list = Vec::new();
    for w in works
        .iter()
        .filter(|w| w.str("Status") == Some("Opened") && w.str("AfterConversationStartDateTime").is_none())
    {
        let user = match w.str("UserId").and_then(|u| SfId::parse(u).ok()) {
            Some(u) => app.store.get(&me.org, &u).await?,
            None => None,
        };
        list.push(json!({
            "voiceCallId": w.str("WorkItemId"), "agentId": w.str("UserId"),
            "agentName": user.as_ref().and_then(|u| u.str("Name")),
            "acceptedAt": w.str("AcceptDateTime"), "queueId": w.str("OriginalQueueId"),
        }));
    }
    Ok(Json(json!({"calls": list})).into_response())
}

/// `POST /console/api/v1/nextBestActions` with `{"recordId", "payload"}`: the recommendations
/// whose active strategies' filters pass for this request.
pub async fn next_best_actions(State(app): AppState, headers: HeaderMap, bytes: Bytes) -> Result<Response> {
    let me = agent(&app, &headers).await?;
    let body = object(&bytes)?;
    let record_id = string_arg(&body, "recordId")?.ok_or_else(|| ApiError::required("recordId"))?;
    let rid = SfId::parse(record_id).map_err(|e| ApiError::invalid("recordId", e))?;
    let record = app
        .store
        .get(&me.org, &rid)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no record `{record_id}` in this org")))?;
    let payload = match body.get("payload") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(ApiError::invalid("payload", "must be an object of key-value pairs").into()),
    };
    let strategies = app.store.list(&me.org, "RecommendationStrategy").await?;
    let recs = app.store.list(&me.org, "Recommendation").await?;
    let mut chosen: Vec<Value> = Vec::new();
    let mut errors = Vec::new();
    let rec_fields = record.fields.clone();
    for s in strategies.iter().filter(|s| s.bool("IsActive") != Some(false)) {
        let name = s.str("DeveloperName").or(s.key.as_deref()).unwrap_or("").to_string();
        let filter = match nba::parse(s.str("Filter").unwrap_or("true")) {
            Ok(f) => f,
            Err(e) => {
                errors.push(format!("strategy `{name}`: {e}"));
                continue;
            }
        };
        for r in recs.iter().filter(|r| r.bool("IsActive") != Some(false)) {
            let mut candidate = r.fields.clone();
            candidate.insert("Id".into(), r.id.to_string().into());
            let scope = nba::Scope { request: &payload, record: &rec_fields, candidate: &candidate };
            if nba::matches(&filter, &scope) && !chosen.iter().any(|c| c["id"] == r.id.as_str()) {
                chosen.push(json!({
                    "id": r.id.to_string(), "name": r.str("Name"), "description": r.str("Description"),
                    "acceptanceLabel": r.str("AcceptanceLabel"), "rejectionLabel": r.str("RejectionLabel"),
                    "actionReference": r.str("ActionReference"), "strategy": name,
                }));
            }
        }
    }
    Ok(Json(json!({"recordId": rid.to_string(), "recommendations": chosen, "errors": errors}))
        .into_response())
}

/// The org and user of an administrator's CRM access token.
async fn admin(app: &App, headers: &HeaderMap) -> Result<(SfId, SfId)> {
    let crm = crate::crm::session(app, headers).await.map_err(|e| e.error)?;
    let user = app.store.get(&crm.org, &crm.user).await?;
    if user.as_ref().and_then(|u| u.str("ProfileName")) != Some(ADMIN_PROFILE) {
        return Err(ApiError::new(ErrorCode::Forbidden, "only an administrator may change this").into());
    }
    Ok((crm.org, crm.user))
}

/// `PUT /console/api/v1/admin/nextBestActions` (administrator's CRM access token): replaces the
/// org's recommendations and strategies, checking every strategy's filter.
pub async fn put_next_best_actions(
    State(app): AppState,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response> {
    let (org, _) = admin(&app, &headers).await?;
    let body = object(&bytes)?;
    let list = |name: &str| -> Result<Vec<Map<String, Value>>> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_object()
                        .cloned()
                        .ok_or_else(|| ApiError::invalid(name, "must be an array of objects").into())
                })
                .collect(),
            Some(_) => Err(ApiError::invalid(name, "must be an array of objects").into()),
        }
    };
    let (recs, strategies) = (list("recommendations")?, list("strategies")?);
    let now = app.now_ms();
    let mut ops = Vec::new();
    for ty in ["Recommendation", "RecommendationStrategy"] {
        for r in app.store.list(&org, ty).await? {
            ops.push(WriteOp::Delete { org: org.clone(), id: r.id });
        }
    }
    for (i, r) in recs.iter().enumerate() {
        if r.get("Name").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(ApiError::required(&format!("recommendations[{i}].Name")).into());
        }
        let mut rec =
            Record::new(app.new_id(KeyPrefix::CustomObject), org.clone(), "Recommendation", None, now);
        rec.fields = r.clone();
        ops.push(WriteOp::Insert(rec));
    }
    for (i, s) in strategies.iter().enumerate() {
        let name = s.get("DeveloperName").and_then(Value::as_str).filter(|n| !n.is_empty());
        let name = name.ok_or_else(|| ApiError::required(&format!("strategies[{i}].DeveloperName")))?;
        let filter = s.get("Filter").and_then(Value::as_str).unwrap_or("true");
        nba::parse(filter).map_err(|e| ApiError::invalid(&format!("strategies[{i}].Filter"), e))?;
        let mut rec = Record::new(
            app.new_id(KeyPrefix::CustomObject),
            org.clone(),
            "RecommendationStrategy",
            Some(name.into()),
            now,
        );
        rec.fields = s.clone();
        ops.push(WriteOp::Insert(rec));
    }
    app.store.apply(ops).await?;
    Ok(Json(json!({"recommendations": recs.len(), "strategies": strategies.len()})).into_response())
}

fn extension_json(r: &Record) -> Value {
    json!({"id": r.id.to_string(), "url": r.str("Url"), "label": r.str("Label")})
}

/// `GET /console/api/v1/extensions`: the org's Voice Extension components (any console session).
pub async fn list_extensions(State(app): AppState, headers: HeaderMap) -> Result<Response> {
    let org = match agent(&app, &headers).await {
        Ok(me) => me.org,
        // The Voice Extension page reads the list with the administrator's token.
        Err(_) => admin(&app, &headers).await?.0,
    };
    let mut list = app.store.list(&org, "VoiceExtension").await?;
    list.sort_by_key(|r| r.created_ms);
    Ok(Json(json!({"extensions": list.iter().map(extension_json).collect::<Vec<_>>()})).into_response())
}

/// `POST /console/api/v1/extensions` with `{"url", "label"}` (administrator's CRM access token).
pub async fn add_extension(State(app): AppState, headers: HeaderMap, bytes: Bytes) -> Result<Response> {
    let (org, user) = admin(&app, &headers).await?;
    let body = object(&bytes)?;
    let url = string_arg(&body, "url")?.map(str::trim).unwrap_or("");
    if url.is_empty() {
        return Err(ApiError::required("url").into());
    }
    let allowed = url.starts_with("https://")
        || url.starts_with("http://")
        || (url.starts_with('/') && !url.starts_with("//"));
    if !allowed || url.len() > 2_000 || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ApiError::invalid(
            "url",
            "must be an http(s) URL or a path on this server of an ES module, without spaces",
        )
        .into());
    }
    let label = string_arg(&body, "label")?.map(str::trim).filter(|l| !l.is_empty()).unwrap_or(url);
    if label.chars().count() > 80 {
        return Err(ApiError::invalid("label", "is longer than 80 characters").into());
    }
    if !app.store.find_by_key(&org, "VoiceExtension", url).await?.is_empty() {
        return Err(ApiError::new(ErrorCode::InvalidState, format!("`{url}` is already registered")).into());
    }
    let mut r = Record::new(
        app.new_id(KeyPrefix::CustomObject),
        org.clone(),
        "VoiceExtension",
        Some(url.into()),
        app.now_ms(),
    );
    r.set("Url", url);
    r.set("Label", label);
    r.set("CreatedById", user.to_string());
    let v = extension_json(&r);
    app.store.apply(vec![WriteOp::Insert(r)]).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// `DELETE /console/api/v1/extensions/{id}` (administrator's CRM access token).
pub async fn delete_extension(
    State(app): AppState,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let (org, _) = admin(&app, &headers).await?;
    let found = match SfId::parse(&id) {
        Ok(i) => app.store.get(&org, &i).await?.filter(|r| r.sobject == "VoiceExtension"),
        Err(_) => None,
    };
    let r = found.ok_or_else(|| ApiError::not_found(format!("no Voice Extension `{id}`")))?;
    app.store.apply(vec![WriteOp::Delete { org, id: r.id }]).await?;
    Ok(Json(json!({"status": "Deleted", "id": id})).into_response())
}

// ----- the console's static files, embedded in the binary -----

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

pub async fn console_page() -> Response {
    asset(HTML, include_str!("../console/index.html"))
}

pub async fn console_js() -> Response {
    asset(JS, include_str!("../console/console.js"))
}

pub async fn console_css() -> Response {
    asset("text/css; charset=utf-8", include_str!("../console/console.css"))
}

pub async fn toolkit_js() -> Response {
    asset(JS, include_str!("../console/toolkit.js"))
}

pub async fn extensions_page() -> Response {
    asset(HTML, include_str!("../console/extensions.html"))
}

pub async fn extensions_js() -> Response {
    asset(JS, include_str!("../console/extensions.js"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_and_digits() {
        for good in ["+14155550100", "+442071838750", "+12"] {
            assert!(is_e164(good), "{good}");
        }
        for bad in ["14155550100", "+0123", "+1", "+1415555010012345", "+1 415", "", "+"] {
            assert!(!is_e164(bad), "{bad}");
        }
        for good in ["1", "0123456789*#", "ABCD,"] {
            assert!(valid_digits(good), "{good}");
        }
        for bad in ["", "e", "1 2", "a", &"1".repeat(65)] {
            assert!(!valid_digits(bad), "{bad}");
        }
    }
}
