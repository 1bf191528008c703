//! The agent console's API under `/console/api/v1` (`docs/console-api.md`): console sessions,
//! presence, offers, wrap-up, the agent's state, the supervisor's queue view, and a WebSocket
//! of routing and conversation events.
//!
//! A console session is opened with a CRM access token (the OAuth 2.0 JWT bearer login of the
//! CRM REST API): the agent's own, or an administrator's opening a session for an agent (a
//! single sign-on gateway, the demo). Session tokens are opaque (`<org id>!<random>`) and stored
//! only as their SHA-256 in `ConsoleSession` records. Errors are `{"errorCode", "message"}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, mpsc};
use voxbridge_core::time::format_ms;
use voxbridge_core::{ApiError, ErrorCode, KeyPrefix, Record, SfId};
use voxbridge_store::WriteOp;

use crate::error::Result;
use crate::omni::Ask;
use crate::App;

type AppState = State<Arc<App>>;

/// Profile whose CRM users may open console sessions for any agent of their org.
pub(crate) const ADMIN_PROFILE: &str = "System Administrator";

/// An authenticated console session.
pub(crate) struct Agent {
    pub(crate) org: SfId,
    pub(crate) user: SfId,
}

fn invalid_session() -> ApiError {
    ApiError::new(ErrorCode::InvalidSessionId, "console session expired or invalid; log in again")
}

fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

async fn agent_of(app: &App, token: Option<&str>) -> Result<Agent> {
    let token = token.ok_or_else(invalid_session)?;
    let org = token
        .split('!')
        .next()
        .and_then(|o| SfId::parse_with(o, KeyPrefix::Organization).ok())
        .ok_or_else(invalid_session)?;
    let session = app
        .store
        .find_by_key(&org, "ConsoleSession", &hash_token(token))
        .await?
        .into_iter()
        .next()
        .ok_or_else(invalid_session)?;
    if session.i64("ExpiresAt").unwrap_or(0) <= app.now_ms() {
        return Err(invalid_session().into());
    }
    let user = session.str("UserId").and_then(|u| SfId::parse(u).ok()).ok_or_else(invalid_session)?;
    Ok(Agent { org, user })
}

pub(crate) async fn agent(app: &App, headers: &HeaderMap) -> Result<Agent> {
    agent_of(app, bearer(headers)).await
}

pub(crate) fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            ErrorCode::MalformedRequest,
            format!("the body is not valid JSON for this request: {e}"),
        )
        .into()
    })
}

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
}

/// `POST /console/api/v1/sessions`: opens a console session for `username`, authorized by a
/// CRM access token of that user or of an administrator of the same org.
pub async fn login(State(app): AppState, headers: HeaderMap, bytes: Bytes) -> Result<Response> {
    let crm = crate::crm::session(&app, &headers).await.map_err(|e| e.error)?;
    let req: LoginRequest = body(&bytes)?;
    let Some(user) = app.store.find_by_key(&crm.org, "User", &req.username).await?.into_iter().next() else {
        return Err(ApiError::not_found(format!("no user `{}` in this org", req.username)).into());
    };
    if user.bool("IsActive") == Some(false) {
        return Err(
            ApiError::new(ErrorCode::Forbidden, format!("user `{}` is not active", req.username)).into()
        );
    }
    if user.id != crm.user {
        let caller = app.store.get(&crm.org, &crm.user).await?;
        if caller.as_ref().and_then(|c| c.str("ProfileName")) != Some(ADMIN_PROFILE) {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "only the agent or an administrator may open the agent's console session",
            )
            .into());
        }
    }
    let maps = app.omni.routing_maps(&crm.org, app.now_ms()).await?;
    if !maps.iter().any(|m| m.str("ReferenceRecordId").is_some_and(|r| user.id.matches(r))) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("user `{}` is not an agent: no call center's routing map lists them", req.username),
        )
        .into());
    }
    let random: [u8; 24] = rand::thread_rng().gen();
    let token = format!("{}!{}", crm.org, random.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let now = app.now_ms();
    let expires = now + app.settings.session_lifetime.as_millis() as i64;
    let mut s = Record::new(
        app.new_id(KeyPrefix::AuthSession),
        crm.org.clone(),
        "ConsoleSession",
        Some(hash_token(&token)),
        now,
    );
    s.set("UserId", user.id.to_string());
    s.set("ExpiresAt", expires);
    s.set("OpenedById", crm.user.to_string());
    app.store.apply(vec![WriteOp::Insert(s)]).await?;
    Ok(Json(json!({
        "token": token,
        "expiresAt": format_ms(expires),
        "agent": {"id": user.id.to_string(), "username": user.str("Username"), "name": user.str("Name")},
    }))
    .into_response())
}

/// `DELETE /console/api/v1/sessions/current`: ends the session (presence is left as is).
pub async fn logout(State(app): AppState, headers: HeaderMap) -> Result<Response> {
    let me = agent(&app, &headers).await?;
    let token = bearer(&headers).unwrap_or("");
    let ops: Vec<WriteOp> = app
        .store
        .find_by_key(&me.org, "ConsoleSession", &hash_token(token))
        .await?
        .into_iter()
        .map(|r| WriteOp::Delete { org: me.org.clone(), id: r.id })
        .collect();
    app.store.apply(ops).await?;
    Ok(Json(json!({"status": "LoggedOut"})).into_response())
}

async fn ask(app: &App, org: &SfId, a: Ask) -> Result<Response> {
    Ok(Json(app.omni.ask(org, a).await?).into_response())
}

/// `GET /console/api/v1/presence`
pub async fn get_presence(State(app): AppState, headers: HeaderMap) -> Result<Response> {
    let me = agent(&app, &headers).await?;
    let state = app.omni.ask(&me.org, Ask::State { agent: me.user }).await?;
    Ok(Json(state["presence"].clone()).into_response())
}

#[derive(Deserialize)]
struct PresenceRequest {
    status: String,
}

/// `PUT /console/api/v1/presence` with `{"status": "Available" | "Busy" | "Offline" | custom}`.
pub async fn put_presence(State(app): AppState, headers: HeaderMap, bytes: Bytes) -> Result<Response> {
    let me = agent(&app, &headers).await?;
    let req: PresenceRequest = body(&bytes)?;
    let status = req.status.trim().to_string();
    if status.is_empty() || status.len() > 80 || status.chars().any(char::is_control) {
        return Err(ApiError::invalid("status", "must be 1 to 80 printable characters").into());
    }
    ask(&app, &me.org, Ask::SetPresence { agent: me.user, status }).await
}

/// `POST /console/api/v1/offers/{id}/accept`: the AgentWork exists when this answers.
pub async fn accept(State(app): AppState, Path(id): Path<String>, headers: HeaderMap) -> Result<Response> {
    let me = agent(&app, &headers).await?;
    ask(&app, &me.org, Ask::Accept { agent: me.user, work: id }).await
}

/// `POST /console/api/v1/offers/{id}/decline`
pub async fn decline(State(app): AppState, Path(id): Path<String>, headers: HeaderMap) -> Result<Response> {
    let me = agent(&app, &headers).await?;
    ask(&app, &me.org, Ask::Decline { agent: me.user, work: id }).await
}

/// `POST /console/api/v1/work/{id}/wrapup`: after-call work is done.
pub async fn wrap_up(State(app): AppState, Path(id): Path<String>, headers: HeaderMap) -> Result<Response> {
    let me = agent(&app, &headers).await?;
    ask(&app, &me.org, Ask::WrapUp { agent: me.user, work: id }).await
}

/// `GET /console/api/v1/state`: presence, ringing offers and accepted work.
pub async fn state(State(app): AppState, headers: HeaderMap) -> Result<Response> {
    let me = agent(&app, &headers).await?;
    ask(&app, &me.org, Ask::State { agent: me.user }).await
}

/// `GET /console/api/v1/queues`: backlog, oldest contact and agents per queue.
pub async fn queues(State(app): AppState, headers: HeaderMap) -> Result<Response> {
    let me = agent(&app, &headers).await?;
    ask(&app, &me.org, Ask::Queues).await
}

#[derive(Deserialize)]
pub struct WsQuery {
    access_token: Option<String>,
    /// Also send the org's queue changes (the supervisor view).
    #[serde(default)]
    supervisor: bool,
}

/// `GET /console/api/v1/events`: a WebSocket of the agent's events. Browsers cannot set
/// headers on WebSockets, so the session token may come as `?access_token=`.
pub async fn events(
    State(app): AppState,
    Query(q): Query<WsQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response> {
    let token = bearer(&headers).map(str::to_string).or(q.access_token);
    let me = agent_of(&app, token.as_deref()).await?;
    // Subscribe before reading the state, so nothing falls between the two.
    let rx = app.omni.subscribe(&me.org, &me.user);
    let queues = q.supervisor.then(|| app.omni.subscribe_queues(&me.org));
    let state = app.omni.ask(&me.org, Ask::State { agent: me.user.clone() }).await?;
    Ok(ws.on_upgrade(move |socket| run_socket(app, me, rx, queues, state, socket)))
}

fn text(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

async fn run_socket(
    app: Arc<App>,
    me: Agent,
    mut rx: broadcast::Receiver<crate::omni::ConsoleEvent>,
    mut queues: Option<broadcast::Receiver<crate::omni::ConsoleEvent>>,
    state: Value,
    mut socket: WebSocket,
) {
    let (conv_tx, mut conv_rx) = mpsc::channel::<Value>(256);
    let mut watched: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let watch = |watched: &mut HashMap<String, tokio::task::JoinHandle<()>>, work: &Value| {
        let (Some(id), Some(key)) = (work["workId"].as_str(), work["conversationKey"].as_str()) else {
            return;
        };
        if watched.contains_key(id) {
            return;
        }
        let mut sub = app.hub.subscribe(me.org.as_str(), key);
        let tx = conv_tx.clone();
        let (work, key) = (id.to_string(), key.to_string());
        let task = tokio::spawn(async move {
            loop {
                let msg = match sub.recv().await {
                    Ok(ev) => json!({"type": "conversation", "event": ev.kind, "workId": work,
                                     "conversationKey": key, "data": ev.data}),
                    Err(broadcast::error::RecvError::Lagged(n)) => json!({"type": "lagged", "missed": n}),
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if tx.send(msg).await.is_err() {
                    break;
                }
            }
        });
        watched.insert(id.to_string(), task);
    };
    if let Some(work) = state["work"].as_array() {
        for w in work {
            watch(&mut watched, w);
        }
    }
    if socket.send(text(json!({"type": "state", "data": state}))).await.is_ok() {
        loop {
            tokio::select! {
                ev = rx.recv() => {
                    let msg = match ev {
                        Ok(ev) => {
                            match ev.kind {
                                "assigned" => watch(&mut watched, &ev.data),
                                "ended" => {
                                    if let Some(t) = ev.data["workId"].as_str().and_then(|w| watched.remove(w)) {
                                        t.abort();
                                    }
                                }
                                _ => {}
                            }
                            json!({"type": ev.kind, "data": *ev.data})
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => json!({"type": "lagged", "missed": n}),
                        Err(broadcast::error::RecvError::Closed) => break,
                    };
                    if socket.send(text(msg)).await.is_err() {
                        break;
                    }
                }
                ev = async { queues.as_mut()?.recv().await.ok() }, if queues.is_some() => {
                    let msg = match ev {
                        Some(ev) => json!({"type": ev.kind, "data": *ev.data}),
                        // Lagging behind queue changes is harmless (the next one has the
                        // totals); a closed channel ends them.
                        None => {
                            if queues.as_ref().is_some_and(|q| q.is_closed()) {
                                queues = None;
                            }
                            continue;
                        }
                    };
                    if socket.send(text(msg)).await.is_err() {
                        break;
                    }
                }
                Some(msg) = conv_rx.recv() => {
                    if socket.send(text(msg)).await.is_err() {
                        break;
                    }
                }
                incoming = socket.recv() => match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                    Some(Ok(_)) => {}
                },
            }
        }
    }
    for (_, t) in watched {
        t.abort();
    }
}
