//! The call simulator's HTTP endpoints.
//!
//! * `POST /simulator/v1/calls` with `{"to": "+15550100100", "from": "+14155550123",
//!   "input": "1,agent:connect,w30,agent:disconnect"}` runs an inbound call through the flow
//!   bound to `to`, with the caller's and agent's steps from `input`, to its end and answers
//!   the event log (steps, attributes, queue, agent, disposition, VoiceCall id, CTRs and
//!   contact events).
//! * With `"live": true` the call keeps running: the answer is its live view (contact id,
//!   state, what it waits for, the log so far) once it first waits, and
//!   `GET /simulator/v1/contacts/{id}`, `POST …/contacts/{id}/input` (`{"digits": "12#"}`,
//!   `{"silence": true}`, `{"wait": 30}`, `{"hangup": true}`) and `POST …/contacts/{id}/agent`
//!   (`{"action": "connect|hold|resume|transfer|disconnect", "agent", "queue",
//!   "quickConnect"}`) read and drive it; each step answers the view once carried out. When
//!   the contact center has an `AgentRouting` (the binary's follows this server's live
//!   conversation events over HTTP), the agent who accepts a queued live call in the agent
//!   console connects to it, and ending it there disconnects it.
//!
//! The contact center is the telephony half ([`voxbridge_contacts::ContactCenter`]); the binary
//! attaches it as an `Extension<Simulator>` layer. Its functions reach this server's CRM half
//! only over HTTP, through the Telephony Integration API, like any partner system. Without the
//! layer the endpoint answers 404 and says how to turn the simulator on.
//!
//! The request needs a telephony bearer token, like the admin endpoints; when the simulator is
//! bound to an org, tokens of other orgs are refused.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use voxbridge_contacts::{
    AgentAction, CallError, CallerInput, CallerScript, ContactCenter, InboundCall, LiveError, TransferTarget,
};
use voxbridge_core::{ApiError, ErrorCode};

use crate::error::Error;
use crate::App;

/// The contact center the simulator runs calls in.
#[derive(Clone)]
pub struct Simulator {
    pub center: Arc<ContactCenter>,
    /// When set, only tokens of this org may place simulated calls (the org the contact
    /// center's functions act for).
    pub org_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallRequest {
    to: String,
    from: String,
    #[serde(default)]
    input: String,
    /// The ContactId to use (a fresh UUID by default).
    #[serde(default, rename = "contactId")]
    contact_id: Option<String>,
    /// Keep the call running and drive it step by step.
    #[serde(default)]
    live: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputRequest {
    #[serde(default)]
    digits: Option<String>,
    #[serde(default)]
    silence: bool,
    #[serde(default)]
    wait: Option<u32>,
    #[serde(default)]
    hangup: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AgentRequest {
    action: String,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    queue: Option<String>,
    #[serde(default)]
    quick_connect: Option<String>,
}

/// The simulator of the request's org (401 without a token, 404 when off, 403 for another org).
async fn simulator(
    app: &App,
    simulator: Option<Extension<Simulator>>,
    headers: &HeaderMap,
) -> Result<Simulator, Error> {
    let caller = app.caller(headers).await?;
    let Some(Extension(sim)) = simulator else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "the call simulator is off; start the server with `voxbridge serve --flows DIR`",
        )
        .into());
    };
    if sim.org_id.as_deref().is_some_and(|org| !same_org(org, caller.org.as_str())) {
        return Err(ApiError::new(ErrorCode::Forbidden, "the call simulator acts for another org").into());
    }
    Ok(sim)
}

pub(crate) async fn simulate_call(
    State(app): State<Arc<App>>,
    simulator_ext: Option<Extension<Simulator>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let sim = simulator(&app, simulator_ext, &headers).await?;
    let req: CallRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(ErrorCode::MalformedRequest, format!("invalid call request: {e}")))?;
    let input =
        CallerScript::parse(&req.input).map_err(|e| ApiError::new(ErrorCode::InvalidFieldValue, e))?;
    let call = InboundCall { to: req.to, from: req.from, input, contact_id: req.contact_id };
    if req.live {
        if call.input.remaining() > 0 {
            return Err(ApiError::new(
                ErrorCode::InvalidFieldValue,
                "a live call takes its steps from …/contacts/{id}/input and …/agent, not from input",
            )
            .into());
        }
        let view = sim.center.start_live(call).await.map_err(live_error)?;
        return Ok((axum::http::StatusCode::CREATED, Json(view)).into_response());
    }
    match sim.center.simulate(call).await {
        Ok(result) => Ok(Json(result).into_response()),
        Err(e) => Err(call_error(e)),
    }
}

/// `GET /simulator/v1/contacts/{id}`: the live call's view.
pub(crate) async fn get_contact(
    State(app): State<Arc<App>>,
    simulator_ext: Option<Extension<Simulator>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let sim = simulator(&app, simulator_ext, &headers).await?;
    let view = sim.center.live().get(&id).map_err(live_error)?;
    Ok(Json(view).into_response())
}

/// `POST /simulator/v1/contacts/{id}/input`: the caller keys, stays silent, waits or hangs up.
pub(crate) async fn contact_input(
    State(app): State<Arc<App>>,
    simulator_ext: Option<Extension<Simulator>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let sim = simulator(&app, simulator_ext, &headers).await?;
    let req: InputRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(ErrorCode::MalformedRequest, format!("invalid input request: {e}")))?;
    let given = usize::from(req.digits.is_some())
        + usize::from(req.silence)
        + usize::from(req.wait.is_some())
        + usize::from(req.hangup);
    if given != 1 {
        return Err(ApiError::new(
            ErrorCode::InvalidFieldValue,
            "give exactly one of digits, silence, wait and hangup",
        )
        .into());
    }
    let input = if req.hangup {
        CallerInput::HangUp
    } else if req.silence {
        CallerInput::Silence
    } else if let Some(seconds) = req.wait {
        CallerInput::Wait { seconds }
    } else {
        let digits = req.digits.unwrap_or_default();
        if digits.contains(',') || digits.trim().is_empty() {
            return Err(ApiError::new(ErrorCode::InvalidFieldValue, "digits: give the keys, like 12#").into());
        }
        match voxbridge_contacts::script::parse_item(&digits) {
            Ok(k @ CallerInput::Keys { .. }) => k,
            Ok(_) => {
                return Err(
                    ApiError::new(ErrorCode::InvalidFieldValue, "digits: give the keys, like 12#").into()
                )
            }
            Err(e) => return Err(ApiError::new(ErrorCode::InvalidFieldValue, format!("digits: {e}")).into()),
        }
    };
    let view = sim.center.live().send(&id, input).await.map_err(live_error)?;
    Ok(Json(view).into_response())
}

/// `POST /simulator/v1/contacts/{id}/agent`: the agent connects, holds, resumes, transfers or
/// hangs up.
pub(crate) async fn contact_agent(
    State(app): State<Arc<App>>,
    simulator_ext: Option<Extension<Simulator>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let sim = simulator(&app, simulator_ext, &headers).await?;
    let req: AgentRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(ErrorCode::MalformedRequest, format!("invalid agent request: {e}")))?;
    let action = match req.action.as_str() {
        "connect" => AgentAction::Connect { agent: req.agent },
        "hold" => AgentAction::Hold,
        "resume" => AgentAction::Resume,
        "disconnect" => AgentAction::Disconnect,
        "transfer" => match (req.agent, req.queue, req.quick_connect) {
            (Some(a), None, None) => AgentAction::Transfer(TransferTarget::Agent(a)),
            (None, Some(q), None) => AgentAction::Transfer(TransferTarget::Queue(q)),
            (None, None, Some(q)) => AgentAction::Transfer(TransferTarget::QuickConnect(q)),
            _ => {
                return Err(ApiError::new(
                    ErrorCode::InvalidFieldValue,
                    "transfer: give exactly one of agent, queue and quickConnect",
                )
                .into())
            }
        },
        other => {
            return Err(ApiError::new(
                ErrorCode::InvalidFieldValue,
                format!("action {other:?}: use connect, hold, resume, transfer or disconnect"),
            )
            .into())
        }
    };
    let view = sim.center.live().send(&id, CallerInput::Agent(action)).await.map_err(live_error)?;
    Ok(Json(view).into_response())
}

fn call_error(e: CallError) -> Error {
    match e {
        e @ CallError::NoFlowForNumber(_) => ApiError::new(ErrorCode::NotFound, e.to_string()).into(),
        e @ CallError::BadNumber(_) => ApiError::new(ErrorCode::InvalidFieldValue, e.to_string()).into(),
    }
}

fn live_error(e: LiveError) -> Error {
    match e {
        LiveError::Call(e) => call_error(e),
        e @ LiveError::NotFound(_) => ApiError::new(ErrorCode::NotFound, e.to_string()).into(),
        e @ (LiveError::Ended(_) | LiveError::Refused(_)) => {
            ApiError::new(ErrorCode::InvalidState, e.to_string()).into()
        }
        e @ LiveError::Busy => ApiError::new(ErrorCode::LimitExceeded, e.to_string()).into(),
    }
}

/// Org ids compare on their 15-character form.
fn same_org(a: &str, b: &str) -> bool {
    a.get(..15).unwrap_or(a) == b.get(..15).unwrap_or(b)
}
