//! Handlers of the Telephony Integration REST API (`/telephony/v1/voiceCalls…`), with the
//! semantics and bodies of the guide's chapter 3.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use voxbridge_core::routing::{self, Target};
use voxbridge_core::signals::{self, Phase, RawEvent};
use voxbridge_core::time::{format_ms, parse_iso_ms};
use voxbridge_core::transcript::{self, Gate, SenderType};
use voxbridge_core::voicecall::{self, CallUpdate, FieldDef, InitiationMethod, NewCall};
use voxbridge_core::{ApiError, ErrorCode, Fields, KeyPrefix, Record, SfId, TranscriptEntry};
use voxbridge_store::WriteOp;

use crate::auth::{self, Caller};
use crate::body;
use crate::error::Result;
use crate::omni::Tell;
use crate::wire::*;
use crate::App;

type AppState = State<Arc<App>>;

const PROVIDER_HEADER: &str = "telephony-provider-name";

fn provider(headers: &HeaderMap) -> Option<String> {
    headers.get(PROVIDER_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string).filter(|s| !s.is_empty())
}

impl App {
    pub(crate) async fn caller(&self, headers: &HeaderMap) -> Result<Caller> {
        Ok(auth::authenticate(headers, &*self.store, &self.keys, &self.settings, self.now_ms()).await?)
    }

    pub(crate) fn new_id(&self, prefix: KeyPrefix) -> SfId {
        SfId::generate(prefix, &mut rand::thread_rng())
    }

    /// The VoiceCall named by a voiceCallId or a vendorCallKey (the newest call with that
    /// key), if it belongs to the caller's call center.
    pub(crate) async fn find_call(&self, caller: &Caller, call_id: &str) -> Result<Option<Record>> {
        body::check_key("CALL ID", call_id)?;
        let found = match SfId::parse_with(call_id, KeyPrefix::VoiceCall) {
            Ok(id) => self.store.get(&caller.org, &id).await?,
            Err(_) => {
                self.store.find_by_key(&caller.org, "VoiceCall", call_id).await?.into_iter().next_back()
            }
        };
        match found {
            Some(r) if r.sobject == "VoiceCall" => {
                if r.str("CallCenterId") != Some(caller.call_center_id().as_str()) {
                    return Err(ApiError::new(
                        ErrorCode::Forbidden,
                        format!("voice call {call_id} belongs to another call center"),
                    )
                    .into());
                }
                Ok(Some(r))
            }
            _ => Ok(None),
        }
    }

    pub(crate) async fn require_call(&self, caller: &Caller, call_id: &str) -> Result<Record> {
        self.find_call(caller, call_id).await?.ok_or_else(|| {
            ApiError::not_found(format!(
                "no voice call with voiceCallId or vendorCallKey `{call_id}` in this call center"
            ))
            .into()
        })
    }

    /// The conversation whose first call has this vendorCallKey.
    pub(crate) async fn conversation_by_key(&self, caller: &Caller, key: &str) -> Result<Arc<Record>> {
        body::check_key("vendorCallKey", key)?;
        let now = self.now_ms();
        let cache_key = (caller.org.clone(), key.to_string());
        let conv = match self.conversations.get(&cache_key, now) {
            Some(c) => Some(c),
            None => {
                let generation = self.conversations.generation();
                let mut found = self.store.find_by_key(&caller.org, "Conversation", key).await?;
                // Several call centers may use the same key; cache only an unambiguous one.
                if found.len() == 1 {
                    let c = Arc::new(found.remove(0));
                    self.conversations.put(cache_key, c.clone(), now, generation);
                    Some(c)
                } else {
                    found
                        .into_iter()
                        .find(|c| c.str("CallCenterId") == Some(caller.call_center_id().as_str()))
                        .map(Arc::new)
                }
            }
        };
        if let Some(c) = conv.filter(|c| c.str("CallCenterId") == Some(caller.call_center_id().as_str())) {
            return Ok(c);
        }
        if SfId::parse_with(key, KeyPrefix::VoiceCall).is_ok() {
            return Err(ApiError::invalid(
                "vendorCallKey",
                "must be the telephony system's key of the conversation's first call, not a voiceCallId",
            )
            .into());
        }
        if let Some(call) = self.find_call(caller, key).await? {
            let first = match call.str("ConversationId").and_then(|id| SfId::parse(id).ok()) {
                Some(id) => self.store.get(&caller.org, &id).await?.and_then(|c| c.key.clone()),
                None => None,
            };
            return Err(ApiError::invalid(
                "vendorCallKey",
                format!(
                    "`{key}` is not the first call of its conversation; use `{}`",
                    first.unwrap_or_else(|| "the first call's vendorCallKey".into())
                ),
            )
            .into());
        }
        Err(ApiError::not_found(format!("Conversation does not exist for vendorCallKey `{key}`")).into())
    }

    /// Drops a conversation's cached state after this process changed it.
    pub(crate) fn forget_conversation(&self, org: &SfId, key: Option<&str>) {
        if let Some(k) = key {
            self.conversations.remove(&(org.clone(), k.to_string()));
        }
    }

    async fn field_defs(&self, org: &SfId) -> Result<Arc<Vec<FieldDef>>> {
        let now = self.now_ms();
        if let Some(defs) = self.field_defs.get(org, now) {
            return Ok(defs);
        }
        let generation = self.field_defs.generation();
        let mut defs = voicecall::standard_attribute_fields();
        for r in self.store.list(org, "CustomField").await? {
            if r.str("Object").is_some_and(|o| o.eq_ignore_ascii_case("VoiceCall")) {
                defs.extend(FieldDef::from_record(&r));
            }
        }
        let defs = Arc::new(defs);
        self.field_defs.put(org.clone(), defs.clone(), now, generation);
        Ok(defs)
    }

    /// Active calls of an org, loaded from the store on first use.
    async fn ensure_active_loaded(&self, org: &SfId) -> Result<()> {
        if self.with_counters(org, |c| c.active.is_some()) {
            return Ok(());
        }
        let calls = self.store.list(org, "VoiceCall").await?;
        let active = calls
            .into_iter()
            .filter(|c| c.str("CallDisposition") != Some("completed"))
            .map(|c| c.id)
            .collect();
        self.with_counters(org, |c| {
            if c.active.is_none() {
                c.active = Some(active);
            }
        });
        Ok(())
    }

    fn set_active(&self, org: &SfId, id: &SfId, active: bool) {
        self.with_counters(org, |c| {
            if let Some(set) = c.active.as_mut() {
                if active {
                    set.insert(id.clone());
                } else {
                    set.remove(id);
                }
            }
        });
    }

    /// Resolves a queue given as id, developer name or the telephony system's external id.
    pub(crate) async fn resolve_queue(&self, caller: &Caller, q: &str) -> Result<Option<Record>> {
        if let Ok(id) = SfId::parse_with(q, KeyPrefix::Group) {
            return Ok(self.store.get(&caller.org, &id).await?);
        }
        if let Some(g) = self.store.find_by_key(&caller.org, "Group", q).await?.into_iter().next() {
            return Ok(Some(g));
        }
        for m in self.store.find_by_key(&caller.org, "CallCenterRoutingMap", q).await? {
            if m.str("CallCenterId") != Some(caller.call_center_id().as_str()) {
                continue;
            }
            if let Some(id) =
                m.str("ReferenceRecordId").and_then(|s| SfId::parse_with(s, KeyPrefix::Group).ok())
            {
                return Ok(self.store.get(&caller.org, &id).await?);
            }
        }
        Ok(None)
    }

    async fn resolve_user(&self, org: &SfId, u: &str) -> Result<Option<Record>> {
        if let Ok(id) = SfId::parse_with(u, KeyPrefix::User) {
            return Ok(self.store.get(org, &id).await?);
        }
        Ok(self.store.find_by_key(org, "User", u).await?.into_iter().next())
    }

    /// The routing map's external id for a queue or user of the caller's call center.
    async fn external_id(&self, caller: &Caller, record_id: &SfId) -> Result<Option<String>> {
        let maps = self.omni.routing_maps(&caller.org, self.now_ms()).await?;
        Ok(maps
            .iter()
            .find(|m| {
                m.str("CallCenterId") == Some(caller.call_center_id().as_str())
                    && m.str("ReferenceRecordId").is_some_and(|r| record_id.matches(r))
            })
            .and_then(|m| m.str("ExternalId").map(str::to_string)))
    }

    fn publish(&self, caller: &Caller, conversation_key: Option<&str>, kind: &'static str, data: Value) {
        if let Some(k) = conversation_key {
            self.hub.publish(caller.org.as_str(), k, kind, data);
        }
    }

    /// A new open conversation of the caller's call center; see [`open_conversation`].
    fn new_conversation(
        &self,
        caller: &Caller,
        key: &str,
        start_ms: i64,
        first_call: &SfId,
        now: i64,
    ) -> Record {
        let id = self.new_id(KeyPrefix::Conversation);
        let center = caller.call_center_id().to_string();
        open_conversation(id, &caller.org, &center, key, start_ms, first_call, now)
    }

    async fn conversation_key_of(&self, caller: &Caller, call: &Record) -> Result<Option<String>> {
        match call.str("ConversationId").and_then(|id| SfId::parse(id).ok()) {
            Some(id) => Ok(self.store.get(&caller.org, &id).await?.and_then(|c| c.key)),
            None => Ok(None),
        }
    }
}

fn required(v: Option<String>, name: &str) -> Result<String, ApiError> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).ok_or_else(|| ApiError::required(name))
}

fn iso(v: Option<&str>, name: &str) -> Result<Option<i64>, ApiError> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => match parse_iso_ms(s) {
            Some(ms) => Ok(Some(ms)),
            None if s.chars().all(|c| c.is_ascii_digit()) => {
                s.parse::<i64>().map(Some).map_err(|_| ApiError::invalid(name, "is not a date-time"))
            }
            None => Err(ApiError::invalid(
                name,
                format!("must be an ISO-8601 date-time such as 2019-07-02T17:32:28Z, got `{s}`"),
            )),
        },
    }
}

/// `POST /telephony/v1/voiceCalls`
#[utoipa::path(post, path = "/telephony/v1/voiceCalls", tag = "Voice calls",
    request_body(content((CreateVoiceCallRequest = "application/json"), (CreateVoiceCallRequest = "application/xml"))),
    params(("Telephony-Provider-Name" = Option<String>, Header, description = "Name of the calling telephony system")),
    responses((status = 200, body = CreateVoiceCallResponse), (status = "4XX", body = ErrorBody)),
    security(("jwt" = [])))]
pub async fn create_voice_call(State(app): AppState, headers: HeaderMap, bytes: Bytes) -> Result<Response> {
    let caller = app.caller(&headers).await?;
    let req: CreateVoiceCallRequest = body::parse(&headers, &bytes)?;
    let api_name = required(req.call_center_api_name, "callCenterApiName")?;
    if !api_name.eq_ignore_ascii_case(caller.api_name()) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("the token is for call center `{}` but the body names `{api_name}`", caller.api_name()),
        )
        .into());
    }
    let vendor_call_key = required(req.vendor_call_key, "vendorCallKey")?;
    if vendor_call_key.len() > 255 {
        return Err(ApiError::invalid("vendorCallKey", "is longer than 255 characters").into());
    }
    let initiation = InitiationMethod::parse(&required(req.initiation_method, "initiationMethod")?)?;
    let start_ms =
        iso(req.start_time.as_deref(), "startTime")?.ok_or_else(|| ApiError::required("startTime"))?;
    let call_subtype = voicecall::parse_call_subtype(req.call_subtype.as_deref())?;
    let call_origin =
        req.call_origin.as_deref().filter(|s| !s.is_empty()).map(voicecall::parse_call_origin).transpose()?;
    let end_user = req.participants.first().ok_or_else(|| ApiError::required("participants"))?;
    if end_user.participant_key.as_deref().is_none_or(|k| k.trim().is_empty()) {
        return Err(ApiError::required("participants[0].participantKey").into());
    }
    if let Some(kind) = end_user.kind.as_deref() {
        if kind != "END_USER" {
            return Err(
                ApiError::invalid("participants[0].type", format!("must be END_USER, got `{kind}`")).into()
            );
        }
    }
    let to = req.to.filter(|s| !s.is_empty()).unwrap_or_else(|| "WEBRTC_DEFAULT".into());
    let from = req.from.filter(|s| !s.is_empty()).unwrap_or_else(|| "WEBRTC_DEFAULT".into());

    // A retried create of the same inbound call answers with the call already made.
    if initiation == InitiationMethod::Inbound {
        if let Some(existing) = app.find_call(&caller, &vendor_call_key).await? {
            if existing.str("CallType") == Some("Inbound") {
                let resp =
                    CreateVoiceCallResponse { voice_call_id: existing.id.to_string(), errors: json!([]) };
                return Ok(Json(resp).into_response());
            }
        }
    }

    let parent = match initiation {
        InitiationMethod::Transfer => {
            let p = required(req.parent_voice_call_id, "parentVoiceCallId").map_err(|_| {
                ApiError::new(
                    ErrorCode::RequiredFieldMissing,
                    "`parentVoiceCallId` is required when initiationMethod is Transfer",
                )
            })?;
            Some(app.find_call(&caller, &p).await?.ok_or_else(|| {
                ApiError::invalid(
                    "parentVoiceCallId",
                    format!("`{p}` names no voice call of this call center"),
                )
            })?)
        }
        InitiationMethod::Inbound => None,
    };
    let mut errors = Vec::new();
    let queue = match (&parent, req.queue.as_deref().filter(|q| !q.is_empty())) {
        (Some(_), Some(q)) => match app.resolve_queue(&caller, q).await? {
            Some(g) => {
                Some((g.id.to_string(), g.str("Name").unwrap_or(g.key.as_deref().unwrap_or("")).to_string()))
            }
            None => {
                errors.push(format!("queue: `{q}` is not a queue of this call center or its routing map"));
                None
            }
        },
        _ => None,
    };

    // Limits: calls per second and concurrent calls, per org.
    app.ensure_active_loaded(&caller.org).await?;
    let now = app.now_ms();
    let limits = &app.settings.limits;
    let over = app.with_counters(&caller.org, |c| {
        let active = c.active.as_ref().map(|a| a.len() as u64).unwrap_or(0);
        if active >= limits.max_concurrent_calls {
            return Some(format!(
                "the org has {active} active calls, the limit is {}",
                limits.max_concurrent_calls
            ));
        }
        if !c.calls.try_take(now, 1) {
            return Some(format!("more than {} calls started in one second", limits.calls_per_second));
        }
        None
    });
    if let Some(why) = over {
        return Err(ApiError::limit(why).into());
    }

    let defs = app.field_defs(&caller.org).await?;
    let new_call = NewCall {
        call_center_id: caller.call_center_id().to_string(),
        vendor_call_key: vendor_call_key.clone(),
        to,
        from,
        initiation,
        start_ms,
        call_subtype,
        call_origin,
        queue,
        provider: provider(&headers),
        attributes: req.call_attributes.unwrap_or_default(),
    };
    let (fields, attr_errors) = voicecall::new_call_fields(&new_call, &defs);
    errors.extend(attr_errors);
    let call_id = app.new_id(KeyPrefix::VoiceCall);
    let mut call =
        Record::new(call_id.clone(), caller.org.clone(), "VoiceCall", Some(vendor_call_key.clone()), now);
    call.fields = fields;
    let mut ops = Vec::new();
    let conversation_key;
    match &parent {
        None => {
            let conv = app.new_conversation(&caller, &vendor_call_key, start_ms, &call_id, now);
            let conv_id = conv.id.clone();
            call.set("ConversationId", conv_id.to_string());
            let mut part = Record::new(
                app.new_id(KeyPrefix::ConversationParticipant),
                caller.org.clone(),
                "ConversationParticipant",
                Some(conv_id.to_string()),
                now,
            );
            part.set("ConversationId", conv_id.to_string());
            part.set("ParticipantRole", "END_USER");
            // The end user's own identifier is not stored, for privacy.
            part.set("ParticipantKey", "END_USER");
            ops.push(WriteOp::Insert(conv));
            ops.push(WriteOp::Insert(part));
            conversation_key = vendor_call_key.clone();
        }
        Some(p) => {
            call.set("PreviousCallId", p.id.to_string());
            let conv_id = p.str("ConversationId").and_then(|s| SfId::parse(s).ok());
            let conv = match &conv_id {
                Some(id) => app.store.get(&caller.org, id).await?,
                None => None,
            };
            conversation_key =
                conv.as_ref().and_then(|c| c.key.clone()).unwrap_or_else(|| vendor_call_key.clone());
            if let Some(c) = conv {
                call.set("ConversationId", c.id.to_string());
                let mut reopen = Fields::new();
                reopen.insert("Status".into(), "Open".into());
                reopen.insert("EndTime".into(), Value::Null);
                ops.push(WriteOp::Update { org: caller.org.clone(), id: c.id, patch: reopen, now_ms: now });
            }
            let mut link = Fields::new();
            link.insert("NextCallId".into(), call_id.to_string().into());
            ops.push(WriteOp::Update { org: caller.org.clone(), id: p.id.clone(), patch: link, now_ms: now });
        }
    }
    ops.insert(0, WriteOp::Insert(call));
    if let Err(e) = app.store.apply(ops).await {
        app.with_counters(&caller.org, |c| c.calls.give_back(now, 1));
        return Err(e.into());
    }
    if parent.is_some() {
        // The transfer reopened the conversation.
        app.forget_conversation(&caller.org, Some(&conversation_key));
    }
    app.set_active(&caller.org, &call_id, true);
    crate::automations::created(&app, &caller.org, "VoiceCall", &call_id).await;
    if !errors.is_empty() {
        tracing::info!(voice_call = %call_id, errors = ?errors, "voice call created with field errors");
    }
    app.publish(
        &caller,
        Some(&conversation_key),
        "callstarted",
        json!({"voiceCallId": call_id.to_string(), "vendorCallKey": vendor_call_key, "callType": initiation.call_type()}),
    );
    let resp = CreateVoiceCallResponse {
        voice_call_id: call_id.to_string(),
        errors: voicecall::errors_value(&errors),
    };
    Ok(Json(resp).into_response())
}

/// `PATCH /telephony/v1/voiceCalls/{CALL ID}`
#[utoipa::path(patch, path = "/telephony/v1/voiceCalls/{callId}", tag = "Voice calls",
    params(("callId" = String, Path, description = "voiceCallId or vendorCallKey")),
    request_body(content((UpdateVoiceCallRequest = "application/json"), (UpdateVoiceCallRequest = "application/xml"))),
    responses((status = 200, body = StatusResponse, description = "`{\"status\":\"pending\"}` once the update is stored"), (status = "4XX", body = ErrorBody)),
    security(("jwt" = [])))]
pub async fn update_voice_call(
    State(app): AppState,
    Path(call_id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response> {
    let caller = app.caller(&headers).await?;
    let req: UpdateVoiceCallRequest = body::parse(&headers, &bytes)?;
    let now = app.now_ms();
    let start_ms = iso(req.start_time.as_deref(), "startTime")?;
    let end_ms = iso(req.end_time.as_deref(), "endTime")?;
    let enqueue_ms = iso(req.enqueue_time.as_deref(), "enqueueTime")?;
    let accept_ms = iso(req.accept_time.as_deref(), "acceptTime")?;
    for (name, v) in [
        ("totalHoldDuration", req.total_hold_duration),
        ("longestHoldDuration", req.longest_hold_duration),
        ("numberOfHolds", req.number_of_holds),
        ("agentInteractionDuration", req.agent_interaction_duration),
        ("totalRecordingDuration", req.total_recording_duration),
    ] {
        if v.is_some_and(|v| !(0..=i32::MAX as i64).contains(&v)) {
            return Err(ApiError::invalid(name, "must be a non-negative 32-bit integer").into());
        }
    }
    let disconnect = match req.disconnect_reason {
        None => None,
        Some(d) => {
            let value = required(d.value, "disconnectReason.value")?;
            let is_error = d.is_error.ok_or_else(|| ApiError::required("disconnectReason.isError"))?;
            Some((value, is_error))
        }
    };
    let call_origin =
        req.call_origin.as_deref().filter(|s| !s.is_empty()).map(voicecall::parse_call_origin).transpose()?;
    let mut errors = Vec::new();
    let agent_user_id = match req.agent.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(a) => match app.resolve_user(&caller.org, a).await? {
            Some(u) => Some(u.id.to_string()),
            None => {
                errors.push(format!("agent: no user `{a}`"));
                None
            }
        },
    };

    let mut ops = Vec::new();
    let existing = app.find_call(&caller, &call_id).await?;
    let created = existing.is_none();
    let call = match existing {
        Some(c) => c,
        None => {
            // Missed and abandoned calls: the update creates the record.
            if SfId::parse_with(&call_id, KeyPrefix::VoiceCall).is_ok() {
                return Err(ApiError::not_found(format!(
                    "no voice call with id `{call_id}` in this call center"
                ))
                .into());
            }
            let (call, create_ops) = missing_call(
                &app,
                &caller,
                &call_id,
                &req.initiation_method,
                &req.parent_call_identifier,
                req.call_subtype.as_deref(),
                start_ms.or(enqueue_ms).unwrap_or(now),
                &headers,
                now,
            )
            .await?;
            ops.extend(create_ops);
            call
        }
    };
    let update = CallUpdate {
        start_ms,
        end_ms,
        enqueue_ms,
        accept_ms,
        from_number: req.from_number,
        total_hold: req.total_hold_duration,
        longest_hold: req.longest_hold_duration,
        number_of_holds: req.number_of_holds,
        queue_name: req.queue,
        agent_user_id,
        agent_interaction: req.agent_interaction_duration,
        call_origin,
        recording_location: req.recording_location.filter(|s| !s.is_empty()),
        total_recording: req.total_recording_duration,
        attributes: req.call_attributes.unwrap_or_default(),
        is_active: req.is_active_call.unwrap_or(false),
        disconnect,
        provider: provider(&headers),
    };
    let defs = app.field_defs(&caller.org).await?;
    let plan = voicecall::plan_update(&call, &update, &defs, now);
    errors.extend(plan.errors.iter().cloned());

    // First write: the recording (and the creation of a missing call).
    if let Some(rec_fields) = plan.recording {
        let rec_id = app.new_id(KeyPrefix::VoiceCallRecording);
        let mut rec = Record::new(
            rec_id.clone(),
            caller.org.clone(),
            "VoiceCallRecording",
            Some(call.id.to_string()),
            now,
        );
        rec.fields = rec_fields;
        ops.push(WriteOp::Insert(rec));
        let mut link = Fields::new();
        link.insert("CallRecordingId".into(), rec_id.to_string().into());
        link.insert("IsRecorded".into(), true.into());
        ops.push(WriteOp::Update { org: caller.org.clone(), id: call.id.clone(), patch: link, now_ms: now });
    }
    if !ops.is_empty() {
        app.store.apply(std::mem::take(&mut ops)).await?;
    }

    // Second write: the call's fields, the conversation and routing.
    ops.push(WriteOp::Update { org: caller.org.clone(), id: call.id.clone(), patch: plan.call, now_ms: now });
    let conversation = match call.str("ConversationId").and_then(|s| SfId::parse(s).ok()) {
        Some(id) => app.store.get(&caller.org, &id).await?,
        None => None,
    };
    if plan.close_conversation {
        if let Some(conv) = &conversation {
            let mut close = Fields::new();
            close.insert("Status".into(), "Closed".into());
            close.insert("EndTime".into(), format_ms(end_ms.unwrap_or(now)).into());
            ops.push(WriteOp::Update {
                org: caller.org.clone(),
                id: conv.id.clone(),
                patch: close,
                now_ms: now,
            });
        }
    } else if update.is_active {
        if let Some(conv) = conversation.as_ref().filter(|c| c.str("Status") == Some("Closed")) {
            let mut reopen = Fields::new();
            reopen.insert("Status".into(), "Open".into());
            reopen.insert("EndTime".into(), Value::Null);
            ops.push(WriteOp::Update {
                org: caller.org.clone(),
                id: conv.id.clone(),
                patch: reopen,
                now_ms: now,
            });
        }
    }
    if plan.clear_routing {
        for psr in app.store.find_by_key(&caller.org, "PendingServiceRouting", call.id.as_str()).await? {
            ops.push(WriteOp::Delete { org: caller.org.clone(), id: psr.id });
        }
    }
    app.store.apply(ops).await?;
    crate::automations::updated(&app, &caller.org, "VoiceCall", &call.id).await;
    if plan.clear_routing {
        app.omni.send(&caller.org, Tell::Ended { call: call.id.clone() }).await;
    }
    app.forget_conversation(&caller.org, conversation.as_ref().and_then(|c| c.key.as_deref()));
    app.ensure_active_loaded(&caller.org).await?;
    app.set_active(&caller.org, &call.id, update.is_active);
    if !errors.is_empty() {
        tracing::info!(voice_call = %call.id, errors = ?errors, "voice call updated with field errors");
    }
    let key = conversation.and_then(|c| c.key);
    let kind = if update.is_active { "callupdated" } else { "callended" };
    app.publish(
        &caller,
        key.as_deref(),
        kind,
        json!({"voiceCallId": call.id.to_string(), "created": created}),
    );
    Ok(Json(StatusResponse { status: "pending".into() }).into_response())
}

/// Records for a call first heard of through an update (missed and abandoned calls).
#[allow(clippy::too_many_arguments)]
async fn missing_call(
    app: &App,
    caller: &Caller,
    vendor_call_key: &str,
    initiation: &Option<String>,
    parent_key: &Option<String>,
    call_subtype: Option<&str>,
    start_ms: i64,
    headers: &HeaderMap,
    now: i64,
) -> Result<(Record, Vec<WriteOp>)> {
    let initiation = match initiation.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("transfer") | Some("queue_transfer") => InitiationMethod::Transfer,
        _ => InitiationMethod::Inbound,
    };
    let parent = match (initiation, parent_key.as_deref().filter(|s| !s.is_empty())) {
        (InitiationMethod::Transfer, Some(p)) => app.find_call(caller, p).await?,
        _ => None,
    };
    let new_call = NewCall {
        call_center_id: caller.call_center_id().to_string(),
        vendor_call_key: vendor_call_key.to_string(),
        to: "WEBRTC_DEFAULT".into(),
        from: "WEBRTC_DEFAULT".into(),
        initiation: if parent.is_some() { InitiationMethod::Transfer } else { InitiationMethod::Inbound },
        start_ms,
        call_subtype: voicecall::parse_call_subtype(call_subtype).unwrap_or("PSTN"),
        call_origin: None,
        queue: None,
        provider: provider(headers),
        attributes: Fields::new(),
    };
    let (fields, _) = voicecall::new_call_fields(&new_call, &[]);
    let call_id = app.new_id(KeyPrefix::VoiceCall);
    let mut call =
        Record::new(call_id.clone(), caller.org.clone(), "VoiceCall", Some(vendor_call_key.to_string()), now);
    call.fields = fields;
    let mut ops = Vec::new();
    match parent {
        Some(p) => {
            call.set("PreviousCallId", p.id.to_string());
            if let Some(c) = p.str("ConversationId") {
                call.set("ConversationId", c.to_string());
            }
            let mut link = Fields::new();
            link.insert("NextCallId".into(), call_id.to_string().into());
            ops.push(WriteOp::Update { org: caller.org.clone(), id: p.id.clone(), patch: link, now_ms: now });
        }
        None => {
            let conv = app.new_conversation(caller, vendor_call_key, start_ms, &call_id, now);
            call.set("ConversationId", conv.id.to_string());
            ops.push(WriteOp::Insert(conv));
        }
    }
    ops.insert(0, WriteOp::Insert(call.clone()));
    Ok((call, ops))
}

/// A message checked against its conversation, ready to store.
struct Checked {
    entry: TranscriptEntry,
}

fn gate_of(conv: &Record) -> Gate {
    Gate {
        start_ms: conv.str("StartTime").and_then(parse_iso_ms).unwrap_or(0),
        end_ms: if conv.str("Status") == Some("Closed") {
            conv.str("EndTime").and_then(parse_iso_ms)
        } else {
            None
        },
        on_hold: conv.bool("OnHold").unwrap_or(false),
        recording_paused: conv.bool("RecordingPaused").unwrap_or(false),
    }
}

fn check_message(
    app: &App,
    caller: &Caller,
    conv: &Record,
    msg: Message,
    now: i64,
) -> Result<Checked, (Option<String>, ApiError)> {
    let message_id = msg.message_id.clone().filter(|s| !s.trim().is_empty());
    let fail = |e: ApiError| (message_id.clone(), e);
    let message_id = message_id.clone().ok_or_else(|| fail(ApiError::required("messageId")))?;
    if message_id.len() > 255 {
        return Err(fail(ApiError::invalid("messageId", "is longer than 255 characters")));
    }
    let sender = SenderType::parse(msg.sender_type.as_deref().unwrap_or("")).map_err(fail)?;
    let start_ms = msg.start_time.ok_or_else(|| fail(ApiError::required("startTime")))?;
    let end_ms = msg.end_time.ok_or_else(|| fail(ApiError::required("endTime")))?;
    let content = msg.content.ok_or_else(|| fail(ApiError::required("content")))?;
    if content.len() > 100_000 {
        return Err(fail(ApiError::invalid("content", "is longer than 100,000 bytes")));
    }
    let key = conv.key.as_deref().unwrap_or("");
    let participant =
        transcript::stored_participant(sender, msg.participant_id.as_deref().unwrap_or(""), key)
            .map_err(fail)?;
    transcript::check_gate(&gate_of(conv), start_ms, end_ms).map_err(fail)?;
    Ok(Checked {
        entry: TranscriptEntry {
            id: app.new_id(KeyPrefix::ConversationEntry),
            org: caller.org.clone(),
            conversation: conv.id.clone(),
            message_id,
            vendor_call_key: key.to_string(),
            sender_type: sender.as_str().to_string(),
            participant_id: participant,
            content,
            start_ms,
            end_ms,
            created_ms: now,
        },
    })
}

fn transcript_event(e: &TranscriptEntry) -> Value {
    json!({
        "messageId": e.message_id,
        "senderType": e.sender_type,
        "participantId": e.participant_id,
        "content": e.content,
        "startTime": e.start_ms,
        "endTime": e.end_ms,
    })
}

/// `POST /telephony/v1/voiceCalls/{vendorCallKey}/messages`
#[utoipa::path(post, path = "/telephony/v1/voiceCalls/{vendorCallKey}/messages", tag = "Transcripts",
    params(("vendorCallKey" = String, Path, description = "vendorCallKey of the conversation's first call")),
    request_body(content((Message = "application/json"), (Message = "application/xml"))),
    responses((status = 200, body = ResultResponse, description = "`{\"result\":\"Accepted\"}`; a repeated messageId is accepted and stored once"),
        (status = 409, body = ErrorBody, description = "not stored: outside the conversation, on hold, or recording paused"),
        (status = 429, body = ErrorBody), (status = "4XX", body = ErrorBody)),
    security(("jwt" = [])))]
pub async fn create_message(
    State(app): AppState,
    Path(key): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response> {
    let caller = app.caller(&headers).await?;
    let msg: Message = body::parse(&headers, &bytes)?;
    let conv = app.conversation_by_key(&caller, &key).await?;
    let now = app.now_ms();
    let checked = check_message(&app, &caller, &conv, msg, now).map_err(|(_, e)| e)?;
    if !app.with_counters(&caller.org, |c| c.utterances.try_take(now, 1)) {
        return Err(ApiError::limit(format!(
            "more than {} transcript utterances in one second; this utterance was not stored",
            app.settings.limits.utterances_per_second
        ))
        .into());
    }
    let key = conv.key.as_deref().unwrap_or("");
    let event = app.hub.is_watched(caller.org.as_str(), key).then(|| transcript_event(&checked.entry));
    let stored = app.store.append_entries(vec![checked.entry]).await?;
    if let (Some(event), Some(true)) = (event, stored.first()) {
        app.publish(&caller, Some(key), "transcript", event);
    }
    Ok(Json(ResultResponse { result: "Accepted".into(), error_response: None }).into_response())
}

/// Most voice calls and messages per call in one bulk request.
const BULK_MAX: usize = 5;

/// `POST /telephony/v1/voiceCalls/messages`
#[utoipa::path(post, path = "/telephony/v1/voiceCalls/messages", tag = "Transcripts",
    request_body(content((BulkMessagesRequest = "application/json"), (BulkMessagesRequest = "application/xml"))),
    responses((status = 200, body = ResultResponse, description = "all accepted"),
        (status = 207, body = ResultResponse, description = "Multi-Status: per-call results"),
        (status = 400, body = ErrorBody, description = "malformed, or more than 5 calls or 5 messages per call")),
    security(("jwt" = [])))]
pub async fn create_messages_bulk(
    State(app): AppState,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response> {
    let caller = app.caller(&headers).await?;
    let req: BulkMessagesRequest = body::parse(&headers, &bytes)?;
    if req.entries.is_empty() {
        return Err(ApiError::required("entries").into());
    }
    if req.entries.len() > BULK_MAX {
        return Err(ApiError::new(
            ErrorCode::BatchTooLarge,
            format!(
                "`entries` has {} voice calls; at most {BULK_MAX} are allowed per request",
                req.entries.len()
            ),
        )
        .into());
    }
    for (i, e) in req.entries.iter().enumerate() {
        if e.messages.len() > BULK_MAX {
            return Err(ApiError::new(
                ErrorCode::BatchTooLarge,
                format!(
                    "`entries[{i}].messages` has {} messages; at most {BULK_MAX} are allowed per voice call",
                    e.messages.len()
                ),
            )
            .into());
        }
        if e.messages.is_empty() {
            return Err(ApiError::required(&format!("entries[{i}].messages")).into());
        }
    }
    let now = app.now_ms();
    // Per entry: accepted message ids, and failures grouped by (status, message).
    struct Outcome {
        key: String,
        conv_key: Option<String>,
        accepted: Vec<String>,
        failed: BTreeMap<(u16, String), Vec<String>>,
    }
    let mut outcomes = Vec::new();
    let mut to_store: Vec<(usize, TranscriptEntry)> = Vec::new();
    for entry in req.entries {
        let key = entry.vendor_call_key.unwrap_or_default();
        let mut out = Outcome { key: key.clone(), conv_key: None, accepted: vec![], failed: BTreeMap::new() };
        let ids = |msgs: &[Message]| {
            msgs.iter().map(|m| m.message_id.clone().unwrap_or_default()).collect::<Vec<_>>()
        };
        if key.trim().is_empty() {
            out.failed
                .insert((400, "required field `vendorCallKey` is missing".into()), ids(&entry.messages));
            outcomes.push(out);
            continue;
        }
        let conv = match app.conversation_by_key(&caller, &key).await {
            Ok(c) => c,
            Err(e) => {
                let status = if e.0.code == ErrorCode::NotFound { 400 } else { e.0.code.status() };
                if e.0.code == ErrorCode::Unavailable {
                    return Err(e);
                }
                out.failed.insert((status, e.0.message), ids(&entry.messages));
                outcomes.push(out);
                continue;
            }
        };
        out.conv_key = conv.key.clone();
        for msg in entry.messages {
            match check_message(&app, &caller, &conv, msg, now) {
                Ok(c) => to_store.push((outcomes.len(), c.entry)),
                Err((id, e)) => {
                    out.failed.entry((e.code.status(), e.message)).or_default().push(id.unwrap_or_default())
                }
            }
        }
        outcomes.push(out);
    }
    // The utterance budget applies to what would be stored.
    if !to_store.is_empty()
        && !app.with_counters(&caller.org, |c| c.utterances.try_take(now, to_store.len() as u64))
    {
        let msg = ApiError::limit(format!(
            "more than {} transcript utterances in one second; these utterances were not stored",
            app.settings.limits.utterances_per_second
        ))
        .message;
        for (i, e) in to_store.drain(..) {
            outcomes[i].failed.entry((429, msg.clone())).or_default().push(e.message_id);
        }
    }
    let events: Vec<(usize, Value)> = to_store.iter().map(|(i, e)| (*i, transcript_event(e))).collect();
    let owners: Vec<usize> = to_store.iter().map(|(i, _)| *i).collect();
    let ids: Vec<String> = to_store.iter().map(|(_, e)| e.message_id.clone()).collect();
    let stored = app.store.append_entries(to_store.into_iter().map(|(_, e)| e).collect()).await?;
    for (n, owner) in owners.iter().enumerate() {
        outcomes[*owner].accepted.push(ids[n].clone());
        if stored.get(n) == Some(&true) {
            let (_, ev) = &events[n];
            app.publish(&caller, outcomes[*owner].conv_key.as_deref(), "transcript", ev.clone());
        }
    }
    if outcomes.iter().all(|o| o.failed.is_empty()) {
        return Ok(Json(ResultResponse { result: "Accepted".into(), error_response: None }).into_response());
    }
    let mut entries = Vec::new();
    for o in outcomes {
        for ((status, message), ids) in o.failed {
            entries.push(BulkEntryStatus {
                vendor_call_key: o.key.clone(),
                status,
                message: format!(
                    "Error Processing Transcript with Id(s) [{}]. Error: {message}",
                    ids.join(", ")
                ),
            });
        }
        if !o.accepted.is_empty() {
            entries.push(BulkEntryStatus {
                vendor_call_key: o.key.clone(),
                status: 202,
                message: format!("Successfully Processed Transcripts with Id(s) [{}]", o.accepted.join(", ")),
            });
        }
    }
    let body = ResultResponse {
        result: "Multi-Status: A few messages were not processed".into(),
        error_response: Some(BulkErrorResponse { error_response_entries: entries }),
    };
    Ok((StatusCode::MULTI_STATUS, Json(body)).into_response())
}

/// Digits of a phone number, for matching numbers written in different formats.
fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Outcome of routing: the chosen agent or queue ids and the definition used.
struct Routed {
    agent: Option<(SfId, String)>,
    queue: Option<(SfId, String)>,
    definition: Option<String>,
}

impl App {
    /// Runs the guide's order of precedence; `Err` lists why every step failed.
    async fn route(
        &self,
        caller: &Caller,
        dialed: &str,
        flow: Option<&str>,
        fallback: Option<&str>,
        inputs: &Fields,
    ) -> Result<std::result::Result<Routed, Vec<String>>> {
        let mut errors = Vec::new();
        let want = digits(dialed);
        let channels = self.store.list(&caller.org, "ConversationChannelDefinition").await?;
        let channel = channels.into_iter().find(|c| {
            c.str("CallCenterId").is_none_or(|cc| cc == caller.call_center_id().as_str())
                && (c.key.as_deref() == Some(dialed)
                    || (!want.is_empty() && c.str("PhoneNumber").map(digits) == Some(want.clone())))
        });
        let mut steps: Vec<(Option<String>, Option<String>)> = Vec::new();
        match &channel {
            Some(c) => steps.push((
                c.str("RoutingDefinition").map(str::to_string),
                c.str("FallbackQueueId").map(str::to_string),
            )),
            None => errors.push(format!("no phone channel for dialed number {dialed}")),
        }
        steps.push((flow.map(str::to_string), fallback.map(str::to_string)));
        for (flow, fallback) in steps {
            if let Some(flow) = flow.filter(|f| !f.is_empty()) {
                match self.run_definition(caller, &flow, inputs).await? {
                    Ok(mut r) => {
                        r.definition = Some(flow);
                        return Ok(Ok(r));
                    }
                    Err(e) => errors.push(e),
                }
            }
            if let Some(q) = fallback.filter(|f| !f.is_empty()) {
                match self.queue_target(caller, &q).await? {
                    Ok(queue) => return Ok(Ok(Routed { agent: None, queue: Some(queue), definition: None })),
                    Err(e) => errors.push(e),
                }
            }
        }
        if errors.is_empty() {
            errors.push("nothing to route with: no phone channel, flowDevName or fallbackQueue".into());
        }
        Ok(Err(errors))
    }

    async fn run_definition(
        &self,
        caller: &Caller,
        flow: &str,
        inputs: &Fields,
    ) -> Result<std::result::Result<Routed, String>> {
        let Some(def) =
            self.store.find_by_key(&caller.org, "FlowDefinitionView", flow).await?.into_iter().next()
        else {
            return Ok(Err(format!("no Omni-Channel flow `{flow}`")));
        };
        let rule = def.fields.get("Rule").cloned().unwrap_or(Value::Null);
        let rule = match rule {
            Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::Null),
            other => other,
        };
        match routing::evaluate(&rule, inputs) {
            Err(e) => Ok(Err(format!("flow `{flow}` failed: {e}"))),
            Ok(Target::Queue(q)) => Ok(self.queue_target(caller, &q).await?.map(|queue| Routed {
                agent: None,
                queue: Some(queue),
                definition: None,
            })),
            Ok(Target::Agent(a)) => {
                let Some(user) = self.resolve_user(&caller.org, &a).await? else {
                    return Ok(Err(format!("flow `{flow}` routes to agent `{a}`, who does not exist")));
                };
                match self.external_id(caller, &user.id).await? {
                    Some(ext) => {
                        Ok(Ok(Routed { agent: Some((user.id, ext)), queue: None, definition: None }))
                    }
                    None => Ok(Err(format!(
                        "agent `{a}` is not mapped to a telephony agent in the call center's routing map"
                    ))),
                }
            }
        }
    }

    async fn queue_target(
        &self,
        caller: &Caller,
        q: &str,
    ) -> Result<std::result::Result<(SfId, String), String>> {
        let Some(queue) = self.resolve_queue(caller, q).await? else {
            return Ok(Err(format!("no queue `{q}`")));
        };
        Ok(match self.external_id(caller, &queue.id).await? {
            Some(ext) => Ok((queue.id, ext)),
            None => Err(format!(
                "queue `{q}` is not mapped to a telephony queue in the call center's routing map"
            )),
        })
    }

    /// Replaces the call's PendingServiceRouting with one for `routed`.
    async fn store_routing(&self, caller: &Caller, call: &Record, routed: &Routed, now: i64) -> Result<()> {
        let mut ops = Vec::new();
        for psr in self.store.find_by_key(&caller.org, "PendingServiceRouting", call.id.as_str()).await? {
            ops.push(WriteOp::Delete { org: caller.org.clone(), id: psr.id });
        }
        let mut psr = Record::new(
            self.new_id(KeyPrefix::PendingServiceRouting),
            caller.org.clone(),
            "PendingServiceRouting",
            Some(call.id.to_string()),
            now,
        );
        psr.set("WorkItemId", call.id.to_string());
        psr.set("RoutingType", "Omni");
        psr.set("IsPushed", false);
        if let Some((id, _)) = &routed.queue {
            psr.set("QueueId", id.to_string());
        }
        if let Some((id, _)) = &routed.agent {
            psr.set("UserId", id.to_string());
        }
        if let Some(d) = &routed.definition {
            psr.set("RoutingDefinition", d.clone());
        }
        ops.push(WriteOp::Insert(psr));
        let mut patch = Fields::new();
        patch.insert("CallQueuedDateTime".into(), format_ms(now).into());
        ops.push(WriteOp::Update { org: caller.org.clone(), id: call.id.clone(), patch, now_ms: now });
        self.store.apply(ops).await?;
        Ok(())
    }
}

impl App {
    /// Hands a committed PendingServiceRouting to the org's router.
    async fn tell_route(&self, caller: &Caller, call: &Record, routed: &Routed, key: Option<String>) {
        let tell = Tell::Route {
            call: call.id.clone(),
            queue: routed.queue.as_ref().map(|q| q.0.clone()),
            user: routed.agent.as_ref().map(|a| a.0.clone()),
            conversation_key: key,
        };
        self.omni.send(&caller.org, tell).await;
    }
}

fn routing_errors(errors: Vec<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(ErrorsResponse { errors })).into_response()
}

/// `PATCH /telephony/v1/voiceCalls/{CALL_ID}/omniFlow`
#[utoipa::path(patch, path = "/telephony/v1/voiceCalls/{callId}/omniFlow", tag = "Routing",
    params(("callId" = String, Path, description = "voiceCallId or vendorCallKey")),
    request_body(content((OmniFlowRequest = "application/json"), (OmniFlowRequest = "application/xml"))),
    responses((status = 200, body = OmniFlowResponse, description = "routing map external ids of the chosen agent or queue"),
        (status = 400, body = ErrorsResponse, description = "routing failed at every step"), (status = "4XX", body = ErrorBody)),
    security(("jwt" = [])))]
pub async fn omni_flow(
    State(app): AppState,
    Path(call_id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response> {
    let caller = app.caller(&headers).await?;
    let req: OmniFlowRequest = body::parse(&headers, &bytes)?;
    let dialed = required(req.dialed_number, "dialedNumber")?;
    let call = app.require_call(&caller, &call_id).await?;
    let mut inputs = req.flow_input_parameters.unwrap_or_default();
    inputs.entry("recordId".to_string()).or_insert_with(|| call.id.to_string().into());
    let routed = match app
        .route(&caller, &dialed, req.flow_dev_name.as_deref(), req.fallback_queue.as_deref(), &inputs)
        .await?
    {
        Ok(r) => r,
        Err(errors) => return Ok(routing_errors(errors)),
    };
    let now = app.now_ms();
    app.store_routing(&caller, &call, &routed, now).await?;
    let key = app.conversation_key_of(&caller, &call).await?;
    app.tell_route(&caller, &call, &routed, key.clone()).await;
    let resp = OmniFlowResponse { agent: routed.agent.map(|a| a.1), queue: routed.queue.map(|q| q.1) };
    app.publish(
        &caller,
        key.as_deref(),
        "routing",
        json!({"voiceCallId": call.id.to_string(), "agent": resp.agent, "queue": resp.queue}),
    );
    Ok(Json(resp).into_response())
}

/// `POST /telephony/v1/voiceCalls/{CALL ID}/reroute`
#[utoipa::path(post, path = "/telephony/v1/voiceCalls/{callId}/reroute", tag = "Routing",
    params(("callId" = String, Path, description = "voiceCallId or vendorCallKey")),
    responses((status = 200, body = StatusResponse, description = "`{\"status\":\"Success\"}`"),
        (status = 409, body = ErrorBody, description = "the call center does not use Unified Routing"),
        (status = 400, body = ErrorsResponse, description = "routing failed"), (status = "4XX", body = ErrorBody)),
    security(("jwt" = [])))]
pub async fn reroute(
    State(app): AppState,
    Path(call_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let caller = app.caller(&headers).await?;
    if !caller.call_center.bool("UnifiedRouting").unwrap_or(false) {
        return Err(ApiError::new(
            ErrorCode::InvalidState,
            format!(
                "call center `{}` does not use Unified Routing with Omni-Channel; reroute is not available",
                caller.api_name()
            ),
        )
        .into());
    }
    let call = app.require_call(&caller, &call_id).await?;
    let now = app.now_ms();
    // Close the work already accepted for this call.
    let mut ops = Vec::new();
    for work in app.store.find_by_key(&caller.org, "AgentWork", call.id.as_str()).await? {
        if work.str("Status") == Some("Opened") {
            let mut patch = Fields::new();
            patch.insert("Status".into(), "Closed".into());
            patch.insert("CloseDateTime".into(), format_ms(now).into());
            ops.push(WriteOp::Update { org: caller.org.clone(), id: work.id, patch, now_ms: now });
        }
    }
    if !ops.is_empty() {
        app.store.apply(ops).await?;
    }
    let previous = app
        .store
        .find_by_key(&caller.org, "PendingServiceRouting", call.id.as_str())
        .await?
        .into_iter()
        .next_back();
    let flow = previous.as_ref().and_then(|p| p.str("RoutingDefinition").map(str::to_string));
    let dialed = call.str("ToPhoneNumber").unwrap_or("").to_string();
    let mut inputs = Fields::new();
    inputs.insert("recordId".into(), call.id.to_string().into());
    let routed = match app.route(&caller, &dialed, flow.as_deref(), None, &inputs).await? {
        Ok(r) => r,
        Err(errors) => return Ok(routing_errors(errors)),
    };
    app.store_routing(&caller, &call, &routed, now).await?;
    let key = app.conversation_key_of(&caller, &call).await?;
    app.tell_route(&caller, &call, &routed, key.clone()).await;
    app.publish(
        &caller,
        key.as_deref(),
        "routing",
        json!({"voiceCallId": call.id.to_string(), "rerouted": true}),
    );
    Ok(Json(StatusResponse { status: "Success".into() }).into_response())
}

/// `PATCH /telephony/v1/voiceCalls/{CALL_ID}/clearRouting`
#[utoipa::path(patch, path = "/telephony/v1/voiceCalls/{callId}/clearRouting", tag = "Routing",
    params(("callId" = String, Path, description = "voiceCallId or vendorCallKey")),
    responses((status = 200, body = StatusResponse, description = "`{\"status\":\"Success\"}`; the PendingServiceRouting is gone"), (status = "4XX", body = ErrorBody)),
    security(("jwt" = [])))]
pub async fn clear_routing(
    State(app): AppState,
    Path(call_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let caller = app.caller(&headers).await?;
    let call = app.require_call(&caller, &call_id).await?;
    let ops: Vec<WriteOp> = app
        .store
        .find_by_key(&caller.org, "PendingServiceRouting", call.id.as_str())
        .await?
        .into_iter()
        .map(|p| WriteOp::Delete { org: caller.org.clone(), id: p.id })
        .collect();
    if !ops.is_empty() {
        app.store.apply(ops).await?;
    }
    app.omni.send(&caller.org, Tell::Clear { call: call.id.clone() }).await;
    let key = app.conversation_key_of(&caller, &call).await?;
    app.publish(
        &caller,
        key.as_deref(),
        "routing",
        json!({"voiceCallId": call.id.to_string(), "cleared": true}),
    );
    Ok(Json(StatusResponse { status: "Success".into() }).into_response())
}

fn raw_events(events: Vec<ConversationEvent>) -> Vec<RawEvent> {
    events
        .into_iter()
        .map(|e| RawEvent {
            kind: e.kind,
            value: e.value,
            start_ms: e.start_time,
            end_ms: e.end_time,
            score: e.score,
            participant: e.participant,
        })
        .collect()
}

async fn store_signals(
    app: &App,
    caller: &Caller,
    conv: &Record,
    service: &str,
    phase: Phase,
    signals: &[signals::Signal],
) -> Result<()> {
    let now = app.now_ms();
    let voice_call = conv.str("FirstVoiceCallId").unwrap_or("").to_string();
    let ops = signals
        .iter()
        .map(|s| {
            let mut r = Record::new(
                app.new_id(KeyPrefix::IntelligenceSignal),
                caller.org.clone(),
                "ConversationIntelligenceSignal",
                Some(conv.id.to_string()),
                now,
            );
            r.set("ConversationId", conv.id.to_string());
            r.set("VoiceCallId", voice_call.clone());
            r.set("Type", s.kind);
            r.set("Value", s.value.clone());
            r.set("StartTime", s.start_ms);
            if let Some(e) = s.end_ms {
                r.set("EndTime", e);
            }
            if let Some(score) = s.score {
                r.set("Score", score);
            }
            if let Some(p) = s.participant {
                r.set("Participant", p);
            }
            r.set("Service", service);
            r.set("Phase", phase.as_str());
            WriteOp::Insert(r)
        })
        .collect();
    app.store.apply(ops).await?;
    Ok(())
}

fn signal_event(service: &str, s: &signals::Signal) -> Value {
    json!({"service": service, "type": s.kind, "value": s.value, "startTime": s.start_ms, "endTime": s.end_ms, "score": s.score, "participant": s.participant})
}

fn accepted_202() -> Response {
    (StatusCode::ACCEPTED, Json(StatusResponse { status: "202 Accepted".into() })).into_response()
}

/// `POST /telephony/v1/voiceCalls/{vendorCallKey}/realtimeConversationEvents`
#[utoipa::path(post, path = "/telephony/v1/voiceCalls/{vendorCallKey}/realtimeConversationEvents", tag = "Intelligence",
    params(("vendorCallKey" = String, Path, description = "vendorCallKey of the conversation's first call")),
    request_body(content((ConversationEventsRequest = "application/json"), (ConversationEventsRequest = "application/xml"))),
    responses((status = 202, body = StatusResponse, description = "`{\"status\":\"202 Accepted\"}`"),
        (status = 409, body = ErrorBody, description = "the conversation is closed"), (status = "4XX", body = ErrorBody)),
    security(("jwt" = [])))]
pub async fn realtime_events(
    State(app): AppState,
    Path(key): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response> {
    conversation_events(&app, &key, &headers, &bytes, Phase::Realtime).await
}

/// `POST /telephony/v1/voiceCalls/{vendorCallKey}/postConversationEvents`
#[utoipa::path(post, path = "/telephony/v1/voiceCalls/{vendorCallKey}/postConversationEvents", tag = "Intelligence",
    params(("vendorCallKey" = String, Path, description = "vendorCallKey of the conversation's first call")),
    request_body(content((ConversationEventsRequest = "application/json"), (ConversationEventsRequest = "application/xml"))),
    responses((status = 202, body = StatusResponse, description = "`{\"status\":\"202 Accepted\"}`"),
        (status = 409, body = ErrorBody, description = "the conversation is still open"), (status = "4XX", body = ErrorBody)),
    security(("jwt" = [])))]
pub async fn post_call_events(
    State(app): AppState,
    Path(key): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response> {
    conversation_events(&app, &key, &headers, &bytes, Phase::PostCall).await
}

/// Both signal endpoints: real-time signals need an open conversation (and may skip the
/// store with `persist: false`), post-call signals a closed one.
async fn conversation_events(
    app: &App,
    key: &str,
    headers: &HeaderMap,
    bytes: &[u8],
    phase: Phase,
) -> Result<Response> {
    let caller = app.caller(headers).await?;
    let req: ConversationEventsRequest = body::parse(headers, bytes)?;
    let service = required(req.service, "service")?;
    let signals = signals::validate(phase, &raw_events(req.events))?;
    let conv = app.conversation_by_key(&caller, key).await?;
    let closed = conv.str("Status") == Some("Closed");
    match phase {
        Phase::Realtime if closed => {
            return Err(ApiError::new(
                ErrorCode::InvalidState,
                "the conversation is closed; send post-call signals to postConversationEvents",
            )
            .into())
        }
        Phase::PostCall if !closed => {
            return Err(ApiError::new(
                ErrorCode::InvalidState,
                "the conversation is still open; post-call events are accepted after it closes",
            )
            .into())
        }
        _ => {}
    }
    if phase == Phase::PostCall || req.persist.unwrap_or(true) {
        store_signals(app, &caller, &conv, &service, phase, &signals).await?;
    }
    for s in &signals {
        app.publish(&caller, conv.key.as_deref(), "signal", signal_event(&service, s));
    }
    Ok(accepted_202())
}

/// A new open conversation whose first call is `first_call`; keyed by that call's
/// vendorCallKey, which every transcript of the conversation is posted under. Every call that
/// starts a conversation (inbound, preview, callback) builds it here.
pub(crate) fn open_conversation(
    id: SfId,
    org: &SfId,
    call_center: &str,
    key: &str,
    start_ms: i64,
    first_call: &SfId,
    now: i64,
) -> Record {
    let mut conv = Record::new(id, org.clone(), "Conversation", Some(key.to_string()), now);
    conv.set("ConversationIdentifier", key);
    conv.set("CallCenterId", call_center);
    conv.set("Status", "Open");
    conv.set("StartTime", format_ms(start_ms));
    conv.set("OnHold", false);
    conv.set("RecordingPaused", false);
    conv.set("FirstVoiceCallId", first_call.to_string());
    conv
}
