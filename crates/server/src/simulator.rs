//! The call simulator's HTTP endpoint: `POST /simulator/v1/calls` with
//! `{"to": "+15550100100", "from": "+14155550123", "input": "1,1234#"}` runs an inbound
//! contact through the flow bound to `to` and answers the contact's event log (steps,
//! attributes, queue, disposition, VoiceCall id, CTR and contact events).
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
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use voxbridge_contacts::{CallError, CallerScript, ContactCenter, InboundCall};
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
}

pub(crate) async fn simulate_call(
    State(app): State<Arc<App>>,
    simulator: Option<Extension<Simulator>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let caller = app.caller(&headers).await?;
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
    let req: CallRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(ErrorCode::MalformedRequest, format!("invalid call request: {e}")))?;
    let input =
        CallerScript::parse(&req.input).map_err(|e| ApiError::new(ErrorCode::InvalidFieldValue, e))?;
    let call = InboundCall { to: req.to, from: req.from, input, contact_id: req.contact_id };
    match sim.center.simulate(call).await {
        Ok(result) => Ok(Json(result).into_response()),
        Err(e @ CallError::NoFlowForNumber(_)) => {
            Err(ApiError::new(ErrorCode::NotFound, e.to_string()).into())
        }
        Err(e @ CallError::BadNumber(_)) => {
            Err(ApiError::new(ErrorCode::InvalidFieldValue, e.to_string()).into())
        }
    }
}

/// Org ids compare on their 15-character form.
fn same_org(a: &str, b: &str) -> bool {
    a.get(..15).unwrap_or(a) == b.get(..15).unwrap_or(b)
}
