//! The built-in `HandleContactEventsFunction`, and the Telephony Integration API client the
//! pipeline functions share.
//!
//! HandleContactEventsFunction takes EventBridge "Amazon Connect Contact Event" envelopes
//! (a default rule sends it every contact event) and cleans up Omni-Channel routing the way
//! the reference Lambda does:
//!
//! * `DISCONNECTED` of an `INBOUND` or `TRANSFER` contact without `detail.agentInfo` (a
//!   missed or abandoned call) → `cancelOmniFlowExecution`
//!   (`PATCH /voiceCalls/{contactId}/clearRouting`), so no PendingServiceRouting outlives
//!   the call;
//! * `CONTACT_DATA_UPDATED` whose first routing step targets agents
//!   (`expression.attributeCondition.matchCriteria.agentsCriteria`) and has expired →
//!   `rerouteFlowExecution` (`PATCH /voiceCalls/{contactId}/reroute`). When the event lists
//!   `updatedProperties`, they must include `RoutingCriteria.Step.Status`.
//!
//! [`decide`] is the sans-IO half; the request itself comes from
//! [`telephony::build_request`], so it is byte for byte what InvokeTelephonyIntegrationApiFunction
//! sends for the same method, and goes out through a [`TelephonyApi`].
//!
//! [`TelephonyClient`] is that API over HTTP with a fresh RS256 JWT per request; unlike the
//! flow function it hands back the status, so callers can retry 429 and 5xx answers.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use crate::external::truncate;
use crate::telephony::{self, HttpMethod, TelephonyApiConfig, TOKEN_LIFETIME};
use crate::{system_now_ms, Clock, Function, FunctionError, SystemClock};

/// The reference name; rules' target ARNs end with it.
pub const NAME: &str = "HandleContactEventsFunction";

/// What to do with one contact event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Call the Telephony Integration API method (`cancelOmniFlowExecution` or
    /// `rerouteFlowExecution`) for the contact (`None` when the event names none).
    Call { method: &'static str, contact_id: Option<String> },
    /// Nothing to do, and why.
    Ignore(&'static str),
}

/// Decides what the event asks for (see the module docs).
pub fn decide(event: &Value) -> Decision {
    let detail = event.get("detail").unwrap_or(&Value::Null);
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let contact_id = text(detail.get("contactId")).filter(|c| !c.is_empty());
    let event_type = detail.get("eventType").and_then(Value::as_str).unwrap_or("");
    match event_type {
        "DISCONNECTED" => {
            let method = detail.get("initiationMethod").and_then(Value::as_str).unwrap_or("");
            if !matches!(method, "INBOUND" | "TRANSFER") {
                return Decision::Ignore("not an inbound or transfer contact");
            }
            // The envelope sample spells it both ways; either means an agent took the call.
            let agent = detail.get("agentInfo").or_else(|| detail.get("AgentInfo"));
            if agent.is_some_and(|a| !a.is_null()) {
                return Decision::Ignore("an agent took the contact");
            }
            Decision::Call { method: "cancelOmniFlowExecution", contact_id }
        }
        "CONTACT_DATA_UPDATED" => {
            if let Some(updated) = detail.get("updatedProperties").and_then(Value::as_array) {
                if !updated.iter().any(|p| p.as_str() == Some("RoutingCriteria.Step.Status")) {
                    return Decision::Ignore("the routing step status did not change");
                }
            }
            let step = detail.get("routingCriteria").and_then(|r| r.get("steps")).and_then(|s| s.get(0));
            let Some(step) = step else {
                return Decision::Ignore("no routing step");
            };
            let to_agents = step
                .get("expression")
                .and_then(|e| e.get("attributeCondition"))
                .and_then(|c| c.get("matchCriteria"))
                .and_then(|m| m.get("agentsCriteria"))
                .is_some();
            if !to_agents {
                return Decision::Ignore("the routing step does not target agents");
            }
            if step.get("status").and_then(Value::as_str) != Some("EXPIRED") {
                return Decision::Ignore("the routing step has not expired");
            }
            Decision::Call { method: "rerouteFlowExecution", contact_id }
        }
        _ => Decision::Ignore("not a DISCONNECTED or CONTACT_DATA_UPDATED event"),
    }
}

/// The synthetic event one function hands InvokeTelephonyIntegrationApiFunction.
pub fn api_event(method: &str, contact_id: Option<&str>) -> Value {
    let mut params = Map::new();
    params.insert("methodName".into(), json!(method));
    if let Some(c) = contact_id {
        params.insert("contactId".into(), json!(c));
    }
    json!({"Details": {"Parameters": Value::Object(params)}})
}

/// An answer of the Telephony Integration API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiAnswer {
    pub status: u16,
    /// The JSON body (`{}` when empty, the text as a JSON string when it is not JSON).
    pub body: Value,
}

impl ApiAnswer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Whether a retry may help: 429 and 5xx.
    pub fn is_retryable(&self) -> bool {
        self.status == 429 || self.status >= 500
    }
}

/// Where the pipeline functions send Telephony Integration API requests.
#[async_trait]
pub trait TelephonyApi: Send + Sync {
    /// Sends one request; `path` is relative to the API root (`/voiceCalls/...`). `Err` only
    /// when there is no answer at all (unreachable, signing failed).
    async fn send(
        &self,
        method: HttpMethod,
        path: &str,
        body: &Value,
        provider_header: bool,
    ) -> Result<ApiAnswer, FunctionError>;
}

/// The Telephony Integration API over HTTP, signing a fresh token per request as the
/// reference Lambdas do.
pub struct TelephonyClient {
    config: TelephonyApiConfig,
    key: jsonwebtoken::EncodingKey,
    http: reqwest::Client,
}

impl std::fmt::Debug for TelephonyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelephonyClient").field("config", &self.config).finish_non_exhaustive()
    }
}

impl TelephonyClient {
    /// Fails when the private key is not an RSA PEM key.
    pub fn new(config: TelephonyApiConfig) -> Result<TelephonyClient, String> {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(config.private_key_pem.as_bytes())
            .map_err(|e| format!("the telephony API private key is not an RSA PEM key: {e}"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(TelephonyClient { config, key, http })
    }

    pub fn config(&self) -> &TelephonyApiConfig {
        &self.config
    }

    fn sign(&self) -> Result<String, FunctionError> {
        let now = system_now_ms() / 1000;
        let claims = json!({
            "iss": self.config.org_id,
            "sub": self.config.call_center_api_name,
            "aud": self.config.audience,
            "iat": now,
            "exp": now + TOKEN_LIFETIME.as_secs() as i64,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &self.key)
            .map_err(|e| FunctionError::failed(format!("cannot sign the token: {e}")))
    }
}

#[async_trait]
impl TelephonyApi for TelephonyClient {
    async fn send(
        &self,
        method: HttpMethod,
        path: &str,
        body: &Value,
        provider_header: bool,
    ) -> Result<ApiAnswer, FunctionError> {
        let url = format!("{}{}", self.config.base_url.trim_end_matches('/'), path);
        let token = self.sign()?;
        let builder = match method {
            HttpMethod::Post => self.http.post(&url),
            HttpMethod::Patch => self.http.patch(&url),
        };
        let mut builder =
            builder.bearer_auth(token).header("Content-Type", "application/json").body(body.to_string());
        if provider_header {
            builder = builder.header("Telephony-Provider-Name", &self.config.provider_name);
        }
        let resp =
            builder.send().await.map_err(|e| FunctionError::failed(format!("cannot reach {url}: {e}")))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let body = if text.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(truncate(&text)))
        };
        Ok(ApiAnswer { status, body })
    }
}

/// Sends a request, retrying 429 and 5xx answers up to `retries` times with a delay of
/// `retry number × step` (the reference's axios-retry policy with a 1 s step).
pub async fn send_with_retries(
    api: &dyn TelephonyApi,
    method: HttpMethod,
    path: &str,
    body: &Value,
    retries: u32,
    step: Duration,
) -> Result<ApiAnswer, FunctionError> {
    let mut attempt = 0;
    loop {
        let answer = api.send(method, path, body, true).await;
        match &answer {
            Ok(a) if a.is_retryable() && attempt < retries => {}
            _ => return answer,
        }
        attempt += 1;
        tokio::time::sleep(step * attempt).await;
    }
}

/// The built-in function.
pub struct HandleContactEvents {
    api: Arc<dyn TelephonyApi>,
    call_center_api_name: String,
    clock: Arc<dyn Clock>,
}

impl HandleContactEvents {
    pub fn new(api: Arc<dyn TelephonyApi>, call_center_api_name: impl Into<String>) -> HandleContactEvents {
        HandleContactEvents {
            api,
            call_center_api_name: call_center_api_name.into(),
            clock: Arc::new(SystemClock),
        }
    }
}

#[async_trait]
impl Function for HandleContactEvents {
    fn name(&self) -> &str {
        NAME
    }

    async fn invoke(&self, event: Value) -> Result<Value, FunctionError> {
        let (method, contact_id) = match decide(&event) {
            Decision::Ignore(reason) => return Ok(json!({"result": "Ignored", "reason": reason})),
            Decision::Call { method, contact_id } => (method, contact_id),
        };
        let request = telephony::build_request(
            &api_event(method, contact_id.as_deref()),
            &self.call_center_api_name,
            self.clock.now_ms(),
        )
        .map_err(FunctionError::failed)?;
        let answer =
            self.api.send(request.http_method, &request.path, &request.body, request.provider_header).await?;
        if !answer.is_success() {
            return Err(FunctionError::failed(format!(
                "{method} failed with HTTP {}: {}",
                answer.status,
                truncate(&answer.body.to_string())
            )));
        }
        Ok(json!({"result": "Success", "methodName": method, "contactId": contact_id, "answer": answer.body}))
    }
}
