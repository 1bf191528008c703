//! Platform events of the CRM REST API: `RealtimeAlertEvent`, published with
//! `POST /services/data/vNN.N/sobjects/RealtimeAlertEvent` and delivered to subscribers of
//! `/event/RealtimeAlertEvent`.
//!
//! Every event is stored with a replay id that grows by one per org, so a subscriber that
//! lost its connection resumes where it left off: `GET /services/data/vNN.N/event/
//! RealtimeAlertEvent?replayId=N` (Server-Sent Events) sends the stored events after `N`,
//! then new ones as they are published. `replayId=-1` (the default) means new events only,
//! `-2` every stored one, as on the platform.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;
use voxbridge_core::time::{format_ms, parse_iso_ms};
use voxbridge_core::{ErrorCode, KeyPrefix, Record, SfId};

use crate::crm::{CrmError, Session};
use crate::App;

/// Platform events Voxbridge accepts.
pub const EVENTS: &[&str] = &["RealtimeAlertEvent"];

const SEVERITIES: &[&str] = &["Critical", "Warning", "Information"];

/// The hub topic of an event channel (conversation keys never start with `/`).
fn channel(name: &str) -> String {
    format!("/event/{name}")
}

pub fn is_platform_event(name: &str) -> Option<&'static str> {
    EVENTS.iter().copied().find(|e| e.eq_ignore_ascii_case(name))
}

/// Checks a `RealtimeAlertEvent` body: `Name`, `Description`, `Severity` and `Source` are
/// required; `EventDateTime` is a date-time; `Payload` is text.
fn check(body: Map<String, Value>) -> Result<Map<String, Value>, CrmError> {
    let mut out = Map::new();
    for (name, value) in body {
        if name == "attributes" {
            continue;
        }
        let known = ["Name", "Description", "Severity", "Source", "EventDateTime", "Payload"];
        let Some(field) = known.iter().find(|k| k.eq_ignore_ascii_case(&name)) else {
            return Err(CrmError::on(
                ErrorCode::InvalidField,
                format!("No such column '{name}' on sobject of type RealtimeAlertEvent"),
                &name,
            ));
        };
        let text = match &value {
            Value::String(s) if !s.contains('\0') => s.clone(),
            Value::Null => continue,
            _ => {
                return Err(CrmError::on(
                    ErrorCode::JsonParserError,
                    format!("{field}: must be a string, got {value}"),
                    field,
                ))
            }
        };
        let stored = match *field {
            "Severity" => match SEVERITIES.iter().find(|s| s.eq_ignore_ascii_case(&text)) {
                Some(s) => Value::from(*s),
                None => {
                    return Err(CrmError::on(
                        ErrorCode::InvalidFieldValue,
                        format!("Severity: bad value for restricted picklist field: {text} (Critical, Warning or Information)"),
                        field,
                    ))
                }
            },
            "EventDateTime" => match parse_iso_ms(&text) {
                Some(ms) => Value::from(format_ms(ms)),
                None => {
                    return Err(CrmError::on(
                        ErrorCode::JsonParserError,
                        format!("EventDateTime: not a date-time: {text}"),
                        field,
                    ))
                }
            },
            _ => Value::from(text),
        };
        out.insert(field.to_string(), stored);
    }
    let missing: Vec<String> = ["Name", "Description", "Severity", "Source"]
        .iter()
        .filter(|f| out.get(**f).and_then(Value::as_str).is_none_or(str::is_empty))
        .map(|f| f.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(CrmError {
            error: voxbridge_core::ApiError::new(
                ErrorCode::RequiredFieldMissing,
                format!("Required fields are missing: [{}]", missing.join(", ")),
            ),
            fields: missing,
        });
    }
    Ok(out)
}

fn message(name: &str, r: &Record) -> Value {
    let mut payload = r.fields.clone();
    let replay = payload.remove("ReplayId").unwrap_or(Value::Null);
    payload.insert("CreatedDate".into(), format_ms(r.created_ms).into());
    json!({"channel": channel(name), "data": {"schema": name, "payload": payload, "event": {"replayId": replay}}})
}

/// Publishes an event: stores it with the org's next replay id, sends it to subscribers,
/// and runs the automations it triggers.
pub async fn publish(
    app: &App,
    s: &Session,
    name: &'static str,
    body: Map<String, Value>,
) -> Result<Response, CrmError> {
    let record = emit(app, s, name, body).await?;
    crate::automations::after_event(app, &s.org, &record).await;
    Ok((StatusCode::CREATED, Json(json!({"id": record.id.to_18(), "success": true, "errors": []})))
        .into_response())
}

/// Checks, stores and broadcasts an event (what an automation's publish does too, without
/// triggering automations again).
pub(crate) async fn emit(
    app: &App,
    s: &Session,
    name: &'static str,
    body: Map<String, Value>,
) -> Result<Record, CrmError> {
    let mut fields = check(body)?;
    fields.insert("CreatedById".into(), s.user.to_string().into());
    let now = app.now_ms();
    let record = {
        // Replay ids are handed out in commit order.
        let _order = app.event_order.lock().await;
        let last =
            app.store.list(&s.org, name).await?.iter().filter_map(|r| r.i64("ReplayId")).max().unwrap_or(0);
        fields.insert("ReplayId".into(), (last + 1).into());
        let mut r = Record::new(
            SfId::generate(KeyPrefix::PlatformEvent, &mut rand::thread_rng()),
            s.org.clone(),
            name,
            None,
            now,
        );
        r.fields = fields;
        app.store.insert(r.clone()).await?;
        r
    };
    app.hub.publish(s.org.as_str(), &channel(name), "event", message(name, &record));
    Ok(record)
}

#[derive(Deserialize)]
pub struct ReplayQuery {
    #[serde(rename = "replayId")]
    replay_id: Option<i64>,
}

/// `GET /services/data/vNN.N/event/{Event}?replayId=N`: stored events after N, then live ones.
pub async fn subscribe(
    State(app): State<Arc<App>>,
    Path((v, name)): Path<(String, String)>,
    Query(q): Query<ReplayQuery>,
    headers: HeaderMap,
) -> Result<Response, CrmError> {
    crate::crm::check_version(&v)?;
    let s = crate::crm::session(&app, &headers).await?;
    let name = is_platform_event(&name).ok_or_else(|| {
        CrmError::new(ErrorCode::NotFound, format!("no platform event channel /event/{name}"))
    })?;
    // Subscribe before reading the store, so nothing published in between is lost.
    let rx = app.hub.subscribe(s.org.as_str(), &channel(name));
    let stored = app.store.list(&s.org, name).await?;
    let last_stored = stored.iter().filter_map(|r| r.i64("ReplayId")).max().unwrap_or(0);
    let after = match q.replay_id.unwrap_or(-1) {
        -1 => last_stored,
        -2 => 0,
        n => n,
    };
    let mut replay: Vec<&Record> =
        stored.iter().filter(|r| r.i64("ReplayId").is_some_and(|id| id > after)).collect();
    replay.sort_by_key(|r| r.i64("ReplayId"));
    let backlog: Vec<Result<Event, Infallible>> = replay
        .iter()
        .map(|r| Ok(Event::default().event("event").data(message(name, r).to_string())))
        .collect();
    let ready = Event::default()
        .event("ready")
        .data(json!({"channel": channel(name), "replayId": after}).to_string());
    let live = BroadcastStream::new(rx).filter_map(move |item| match item {
        Ok(ev) => {
            let id = ev.data["data"]["event"]["replayId"].as_i64().unwrap_or(0);
            (id > last_stored.max(after))
                .then(|| Ok(Event::default().event(ev.kind).data(ev.data.to_string())))
        }
        Err(_) => Some(Ok(Event::default().event("lagged").data("{}"))),
    });
    let stream = tokio_stream::once(Ok(ready)).chain(tokio_stream::iter(backlog)).chain(live);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}
