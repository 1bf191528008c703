//! The Connect REST API's conversation resources (the guide's chapter 5): bulk upload of
//! transcripts for closed conversations, the status of uploads, and reading a
//! conversation's entries.
//!
//! An upload is `multipart/form-data` with one part per conversation, named by its
//! conversation identifier (the vendorCallKey of its first call), holding JSON objects one
//! after another: a `conversation` object, then `conversationEntry` objects. It is
//! processed before the answer, so its status is final at once; it is stored as a
//! `ConversationUpload` record for the status resource.

use std::sync::Arc;

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use voxbridge_core::time::parse_iso_ms;
use voxbridge_core::transcript::{stored_participant, SenderType};
use voxbridge_core::{ErrorCode, KeyPrefix, Record, SfId, TranscriptEntry};

use crate::crm::{check_version, session, CrmError, Session};
use crate::App;

type AppState = State<Arc<App>>;

/// Payload `role` → Voxbridge sender type, and back for reading (the SOQL `ParticipantRole`
/// names of the guide's mapping table).
fn sender_of_role(role: &str) -> Option<SenderType> {
    match role.to_ascii_uppercase().as_str() {
        "AGENT" => Some(SenderType::HumanAgent),
        "END_USER" | "ENDUSER" => Some(SenderType::EndUser),
        "SUPERVISOR" => Some(SenderType::Supervisor),
        "CHATBOT" => Some(SenderType::VirtualAgent),
        "SYSTEM" | "ROUTER" => Some(SenderType::ExternalUser),
        _ => None,
    }
}

fn role_of_sender(sender: &str) -> &'static str {
    match sender {
        "HUMAN_AGENT" => "Agent",
        "END_USER" => "EndUser",
        "SUPERVISOR" => "Supervisor",
        "VIRTUAL_AGENT" => "Chatbot",
        _ => "System",
    }
}

/// The outcome of one conversation's part.
struct Outcome {
    conversation: String,
    status: &'static str,
    error: Option<String>,
    ok: usize,
    failed: Vec<String>,
}

async fn process_part(app: &App, s: &Session, name: &str, data: &[u8]) -> Result<Outcome, CrmError> {
    let mut out =
        Outcome { conversation: name.to_string(), status: "FAILED", error: None, ok: 0, failed: Vec::new() };
    let values: Result<Vec<Value>, _> =
        serde_json::Deserializer::from_slice(data).into_iter::<Value>().collect();
    let values = match values {
        Ok(v) => v,
        Err(e) => {
            out.error = Some(format!("the part is not a sequence of JSON objects: {e}"));
            return Ok(out);
        }
    };
    let conv = app.store.find_by_key(&s.org, "Conversation", name).await?.into_iter().next();
    let Some(conv) = conv else {
        out.error = Some(format!("Conversation does not exist: {name}"));
        return Ok(out);
    };
    if conv.str("Status") != Some("Closed") {
        out.error = Some("only closed conversations accept uploads".into());
        return Ok(out);
    }
    let start = conv.str("StartTime").and_then(parse_iso_ms).unwrap_or(i64::MIN);
    let end = conv.str("EndTime").and_then(parse_iso_ms).unwrap_or(i64::MAX);
    let now = app.now_ms();
    let mut entries = Vec::new();
    for v in values.iter().filter(|v| v["type"] == "conversationEntry") {
        let p = &v["payload"];
        let id = p["id"].as_str().map(str::to_string).or_else(|| p["id"].as_i64().map(|n| n.to_string()));
        let Some(id) = id.filter(|i| !i.is_empty() && i.len() <= 255 && !i.contains('\0')) else {
            out.failed.push(String::new());
            continue;
        };
        let at = p["clientSentTimestamp"].as_i64();
        let text = p["messageText"].as_str().filter(|t| !t.contains('\0'));
        let sender = p["sender"]["role"].as_str().and_then(sender_of_role);
        let subject = p["sender"]["subject"].as_str().unwrap_or("");
        let participant = sender.and_then(|st| stored_participant(st, subject, name).ok());
        match (at, text, sender, participant) {
            (Some(at), Some(text), Some(sender), Some(participant)) if at >= start && at <= end => {
                let duration = p["clientDuration"].as_i64().unwrap_or(0).max(0);
                entries.push(TranscriptEntry {
                    id: SfId::generate(KeyPrefix::ConversationEntry, &mut rand::thread_rng()),
                    org: s.org.clone(),
                    conversation: conv.id.clone(),
                    message_id: id,
                    vendor_call_key: name.to_string(),
                    sender_type: sender.as_str().to_string(),
                    participant_id: participant,
                    content: text.to_string(),
                    start_ms: at,
                    end_ms: at.saturating_add(duration),
                    created_ms: now,
                });
            }
            _ => out.failed.push(id),
        }
    }
    out.ok = entries.len();
    if !entries.is_empty() {
        app.store.append_entries(entries).await?;
    }
    if out.failed.is_empty() {
        out.status = "SUCCESS";
    } else {
        out.error = Some(if out.ok == 0 {
            "Failed to process any conversation entries.".into()
        } else {
            format!(
                "Failed to process {} of {} conversation entries.",
                out.failed.len(),
                out.failed.len() + out.ok
            )
        });
    }
    Ok(out)
}

/// Largest upload body. The server's default body limit (2 MB) is below a 10,000-entry
/// transcript (about 230 bytes an entry); parts are read whole, so the limit bounds memory.
const UPLOAD_LIMIT: usize = 32 * 1024 * 1024;

/// `POST /services/data/vNN.N/connect/conversations/upload`
pub async fn upload(State(app): AppState, request: axum::extract::Request) -> Response {
    use axum::handler::Handler;
    read_upload.layer(axum::extract::DefaultBodyLimit::max(UPLOAD_LIMIT)).call(request, app).await
}

async fn read_upload(
    State(app): AppState,
    Path(v): Path<String>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Result<Response, CrmError> {
    check_version(&v)?;
    let s = session(&app, &headers).await?;
    let mut results = Vec::new();
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return Err(CrmError::new(
                    ErrorCode::MalformedRequest,
                    format!("the multipart body is malformed: {e}"),
                ))
            }
        };
        let name = field.name().unwrap_or("").to_string();
        if name.is_empty() || name.len() > 255 || name.contains('\0') {
            return Err(CrmError::new(
                ErrorCode::MalformedRequest,
                "every part must be named by its conversation identifier",
            ));
        }
        let data = field.bytes().await.map_err(|e| {
            CrmError::new(ErrorCode::MalformedRequest, format!("part `{name}` could not be read: {e}"))
        })?;
        let outcome = process_part(&app, &s, &name, &data).await?;
        let upload_id = uuid::Uuid::new_v4().to_string();
        let now = app.now_ms();
        let mut r = Record::new(
            SfId::generate(KeyPrefix::ConversationUpload, &mut rand::thread_rng()),
            s.org.clone(),
            "ConversationUpload",
            Some(upload_id.clone()),
            now,
        );
        r.set("ConversationIdentifier", outcome.conversation.clone());
        r.set("Status", outcome.status);
        r.set("ErrorDetail", outcome.error.clone().map(Value::from).unwrap_or(Value::Null));
        r.set("SuccessEntryCount", outcome.ok as i64);
        r.set("FailedEntryIds", json!(outcome.failed));
        app.store.insert(r).await?;
        results.push(json!({"conversationIdentifier": outcome.conversation, "errorDetail": outcome.error, "status": outcome.status, "uploadId": upload_id}));
    }
    if results.is_empty() {
        return Err(CrmError::new(
            ErrorCode::RequiredFieldMissing,
            "the upload has no parts; send one part per conversation",
        ));
    }
    Ok((StatusCode::CREATED, Json(json!({"conversationBulkUploadsResults": results}))).into_response())
}

#[derive(Deserialize)]
pub struct UploadIds {
    #[serde(rename = "uploadId")]
    upload_id: Option<String>,
}

/// `GET /services/data/vNN.N/connect/conversations/upload?uploadId=a,b`: all succeeded →
/// `conversationBulkUploadsResults`; otherwise the detailed `conversationBulkUploadStatuses`.
pub async fn upload_status(
    State(app): AppState,
    Path(v): Path<String>,
    Query(q): Query<UploadIds>,
    headers: HeaderMap,
) -> Result<Response, CrmError> {
    check_version(&v)?;
    let s = session(&app, &headers).await?;
    let ids: Vec<String> = q
        .upload_id
        .unwrap_or_default()
        .split(',')
        .map(|i| i.trim().to_string())
        .filter(|i| !i.is_empty())
        .collect();
    if ids.is_empty() {
        return Err(CrmError::on(
            ErrorCode::RequiredFieldMissing,
            "uploadId is required (comma-separated ids)",
            "uploadId",
        ));
    }
    let mut uploads = Vec::new();
    for id in &ids {
        let r =
            app.store.find_by_key(&s.org, "ConversationUpload", id).await?.into_iter().next().ok_or_else(
                || {
                    CrmError::new(
                        ErrorCode::NotFound,
                        format!("The requested resource does not exist: no upload {id}"),
                    )
                },
            )?;
        uploads.push((id.clone(), r));
    }
    if uploads.iter().all(|(_, r)| r.str("Status") == Some("SUCCESS")) {
        let results: Vec<Value> = uploads
            .iter()
            .map(|(id, r)| json!({"conversationIdentifier": r.str("ConversationIdentifier"), "errorDetail": null, "status": "SUCCESS", "uploadId": id}))
            .collect();
        return Ok(Json(json!({"conversationBulkUploadsResults": results})).into_response());
    }
    let statuses: Vec<Value> = uploads
        .iter()
        .map(|(id, r)| {
            let failed = r.fields.get("FailedEntryIds").cloned().unwrap_or(json!([]));
            json!({
                "conversationId": r.str("ConversationIdentifier"),
                "errorDetail": r.fields.get("ErrorDetail").cloned().unwrap_or(Value::Null),
                "failedEntryCount": failed.as_array().map(Vec::len).unwrap_or(0),
                "failedEntryIds": failed,
                "lastUpdatedTimestamp": r.modified_ms,
                "status": r.str("Status"),
                "successEntryCount": r.i64("SuccessEntryCount").unwrap_or(0),
                "uploadId": id,
            })
        })
        .collect();
    Ok(Json(json!({"conversationBulkUploadStatuses": statuses})).into_response())
}

/// `GET /services/data/vNN.N/connect/conversation/{conversationIdentifier}/entries`
pub async fn entries(
    State(app): AppState,
    Path((v, identifier)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, CrmError> {
    check_version(&v)?;
    let s = session(&app, &headers).await?;
    let conv =
        app.store.find_by_key(&s.org, "Conversation", &identifier).await?.into_iter().next().ok_or_else(
            || {
                CrmError::new(
                    ErrorCode::NotFound,
                    format!("The requested resource does not exist: no conversation {identifier}"),
                )
            },
        )?;
    let first_call = conv.str("FirstVoiceCallId").and_then(|c| SfId::parse(c).ok()).map(|c| c.to_18());
    let list: Vec<Value> = app
        .store
        .entries(&s.org, &conv.id)
        .await?
        .iter()
        .map(|e| {
            json!({
                "identifier": e.message_id,
                "clientTimestamp": e.start_ms,
                "clientDuration": e.end_ms - e.start_ms,
                "serverReceivedTimestamp": e.created_ms,
                "messageText": e.content,
                "sender": {"appType": "telephony_integration", "role": role_of_sender(&e.sender_type), "subject": e.participant_id},
                "relatedRecords": first_call.iter().collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({"conversationIdentifier": identifier, "conversationEntries": list})).into_response())
}

/// `PATCH /services/data/vNN.N/connect/conversation/{conversationIdentifier}/entries`:
/// replaces the text of entries (corrections, redaction). Body
/// `{"conversationEntries": [{"identifier": "1", "messageText": "…"}]}` (`id` is accepted for
/// `identifier`); the answer lists, per entry, whether it was found and changed.
pub async fn update_entries(
    State(app): AppState,
    Path((v, identifier)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, CrmError> {
    check_version(&v)?;
    let s = session(&app, &headers).await?;
    let body: Value = serde_json::from_slice(&bytes)
        .map_err(|e| CrmError::new(ErrorCode::JsonParserError, format!("the body is not valid JSON: {e}")))?;
    let items = body["conversationEntries"].as_array().filter(|a| !a.is_empty()).ok_or_else(|| {
        CrmError::on(
            ErrorCode::RequiredFieldMissing,
            "conversationEntries (a non-empty array) is required",
            "conversationEntries",
        )
    })?;
    let mut edits = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let id = item["identifier"]
            .as_str()
            .or_else(|| item["id"].as_str())
            .filter(|s| !s.is_empty() && !s.contains('\0'));
        let text = item["messageText"].as_str().filter(|s| !s.contains('\0'));
        match (id, text) {
            (Some(id), Some(text)) => edits.push((id.to_string(), text.to_string())),
            _ => {
                return Err(CrmError::on(
                    ErrorCode::RequiredFieldMissing,
                    format!("conversationEntries[{i}] needs `identifier` and `messageText`"),
                    "conversationEntries",
                ))
            }
        }
    }
    let conv =
        app.store.find_by_key(&s.org, "Conversation", &identifier).await?.into_iter().next().ok_or_else(
            || {
                CrmError::new(
                    ErrorCode::NotFound,
                    format!("The requested resource does not exist: no conversation {identifier}"),
                )
            },
        )?;
    let ids: Vec<String> = edits.iter().map(|(id, _)| id.clone()).collect();
    let done = app.store.edit_entries(&s.org, &conv.id, edits).await?;
    let results: Vec<Value> =
        ids.iter().zip(done).map(|(id, ok)| json!({"identifier": id, "success": ok})).collect();
    Ok(Json(json!({"conversationIdentifier": identifier, "conversationEntries": results})).into_response())
}
