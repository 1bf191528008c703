//! The built-in `InvokeTelephonyIntegrationApiFunction`: the guide's Lambda that calls the
//! Telephony Integration API, as a partner telephony system would — over HTTP, with a fresh
//! RS256 JWT per call.
//!
//! [`build_request`] is the sans-IO half: from the `ContactFlowEvent` and the time it builds the
//! method, path and body the reference Lambda sends (`methodName` in the parameters):
//!
//! | method | request |
//! | --- | --- |
//! | `createVoiceCall` | `POST /voiceCalls` (Inbound; PSTN or WebRTC from `SegmentAttributes["connect:Subtype"]`) |
//! | `createTransferVC` | `POST /voiceCalls` (Transfer, `parentVoiceCallId` = PreviousContactId, `queue` = Queue.ARN) |
//! | `updateVoiceCall` | `PATCH /voiceCalls/{contactId}` with `fieldValues` + `callCenterApiName` |
//! | `executeOmniFlow` | `PATCH /voiceCalls/{contactId}/omniFlow` (`flowInput-*` → `flowInputParameters`) |
//! | `cancelOmniFlowExecution` | `PATCH /voiceCalls/{contactId}/clearRouting`, body `null` |
//! | `rerouteFlowExecution` | `PATCH /voiceCalls/{contactId}/reroute`, body `null` |
//! | `sendMessage` | `POST /voiceCalls/{contactId}/messages` with `fieldValues` + `callCenterApiName` |
//! | `createCallback` | `POST /voiceCalls/{contactId}/callback` (Voxbridge's queued callback: `callbackNumber`, else the customer's address; `queue`; the delays and attempts as numbers) |
//!
//! `contactId` in the parameters overrides `ContactData.ContactId`. `fieldValues` is the
//! parameter of that name when it is an object (events from other functions); from a flow,
//! whose parameters are flat text, it is the other parameters.
//!
//! The answer is the API's response body. Any non-2xx answer (429 included) fails the
//! invocation, so the flow takes its error branch — except `sendMessage`, which answers
//! `{"result":"Error"}` as the reference does (its callers must not retry).
//!
//! Flows read the answer as a flat string map (the Lambda block's default response
//! validation), so it is flattened ([`flatten_answer`]): top-level `null`s become `""` (the
//! Omni-Channel samples expect the target they were not given — `agent` when routed to a queue
//! — to be empty, not missing) and nested members become their JSON text (the create answer's
//! `errors` list is `"[]"`), so a call created with field errors is still a success.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use crate::external::truncate;
use crate::{is_warm_up, iso_ms, system_now_ms, Clock, Function, FunctionError, SystemClock};

/// The reference name; flows' ARNs end with it.
pub const NAME: &str = "InvokeTelephonyIntegrationApiFunction";
/// The placeholder the sample flows' templates use for this function's ARN.
pub const PLACEHOLDER: &str = "%%INVOKE_TELEPHONY_FUNCTION_ARN%%";
/// How long each signed token is valid (the reference Lambda's 5 minutes).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// What the function needs to reach the API (the reference's `SALESFORCE_ORG_ID`,
/// `CALL_CENTER_API_NAME`, `SCRT_ENDPOINT_BASE` and the private key).
#[derive(Clone)]
pub struct TelephonyApiConfig {
    /// `iss` of the tokens.
    pub org_id: String,
    /// `sub` of the tokens and `callCenterApiName` of the bodies.
    pub call_center_api_name: String,
    /// `aud` of the tokens (`https://scrt.salesforce.com`).
    pub audience: String,
    /// The API root, e.g. `http://127.0.0.1:8080/telephony/v1` (no trailing slash needed).
    pub base_url: String,
    /// PEM (PKCS#8 or PKCS#1) RSA private key.
    pub private_key_pem: String,
    /// `Telephony-Provider-Name` header.
    pub provider_name: String,
}

impl std::fmt::Debug for TelephonyApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("TelephonyApiConfig")
            .field("org_id", &self.org_id)
            .field("call_center_api_name", &self.call_center_api_name)
            .field("audience", &self.audience)
            .field("base_url", &self.base_url)
            .field("provider_name", &self.provider_name)
            .finish_non_exhaustive()
    }
}

/// HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Post,
    Patch,
}

/// One API request, before signing and sending.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiRequest {
    /// The reference `methodName`.
    pub method_name: String,
    pub http_method: HttpMethod,
    /// Relative to the base URL, starting with `/voiceCalls`.
    pub path: String,
    /// The JSON body (`Value::Null` is sent as `null`).
    pub body: Value,
    /// Whether to send `Telephony-Provider-Name` (not on clearRouting and reroute).
    pub provider_header: bool,
}

/// Builds the request the reference Lambda sends for `event` at `now_ms`; `Err` is the
/// message of the error the Lambda throws (unsupported method, missing contact id).
pub fn build_request(event: &Value, call_center_api_name: &str, now_ms: i64) -> Result<ApiRequest, String> {
    let details = event.get("Details").unwrap_or(&Value::Null);
    let params = details.get("Parameters").unwrap_or(&Value::Null);
    let contact = details.get("ContactData").unwrap_or(&Value::Null);
    let method_name = text(params.get("methodName")).unwrap_or_default();
    let contact_id = text(params.get("contactId"))
        .filter(|s| !s.is_empty())
        .or_else(|| text(contact.get("ContactId")))
        .unwrap_or_default();
    let field_values = field_values(params);
    let attributes = contact.get("Attributes").and_then(Value::as_object);
    let attribute =
        |k: &str| attributes.and_then(|a| a.get(k)).and_then(|v| text(Some(v))).filter(|s| !s.is_empty());
    let address = |k: &str| text(contact.get(k).and_then(|e| e.get("Address"))).filter(|s| !s.is_empty());
    let need_contact = |id: &str| {
        if id.is_empty() {
            Err(format!("{method_name}: no contactId in the parameters or the contact data"))
        } else {
            Ok(())
        }
    };
    let enc = |id: &str| percent_encode(id);
    let cc = call_center_api_name;
    let req = |http_method, path: String, body, provider_header| ApiRequest {
        method_name: method_name.clone(),
        http_method,
        path,
        body,
        provider_header,
    };
    match method_name.as_str() {
        "createVoiceCall" => {
            need_contact(&contact_id)?;
            // The reference reads SegmentAttributes without a guard; a missing subtype is PSTN.
            let webrtc = contact
                .get("SegmentAttributes")
                .and_then(|s| s.get("connect:Subtype"))
                .and_then(|s| s.get("ValueString"))
                .and_then(Value::as_str)
                == Some("connect:WebRTC");
            let (from, to, participant_key, subtype) = if webrtc {
                let from = attribute("WebRTC_From")
                    .or_else(|| address("CustomerEndpoint"))
                    .unwrap_or_else(|| "WebRTC_Default".into());
                let to = attribute("WebRTC_To")
                    .or_else(|| address("SystemEndpoint"))
                    .unwrap_or_else(|| "WebRTC_Default".into());
                (Some(from), Some(to), Some("WebRTC_Default".to_string()), "WebRTC")
            } else {
                let from = address("CustomerEndpoint");
                (from.clone(), address("SystemEndpoint"), from, "PSTN")
            };
            let mut body = Map::new();
            body.insert("callCenterApiName".into(), json!(cc));
            body.insert("vendorCallKey".into(), json!(contact_id));
            put(&mut body, "to", to);
            put(&mut body, "from", from);
            body.insert("initiationMethod".into(), json!("Inbound"));
            body.insert("startTime".into(), json!(iso_ms(now_ms)));
            body.insert("callSubtype".into(), json!(subtype));
            body.insert("participants".into(), json!([participant(participant_key)]));
            body.insert("callAttributes".into(), json!(call_attributes(attributes)));
            put(&mut body, "callOrigin", attribute("callOrigin"));
            Ok(req(HttpMethod::Post, "/voiceCalls".into(), Value::Object(body), true))
        }
        "createTransferVC" => {
            need_contact(&contact_id)?;
            let from = address("CustomerEndpoint");
            let mut body = Map::new();
            body.insert("callCenterApiName".into(), json!(cc));
            body.insert("vendorCallKey".into(), json!(contact_id));
            put(&mut body, "to", address("SystemEndpoint"));
            put(&mut body, "from", from.clone());
            body.insert("initiationMethod".into(), json!("Transfer"));
            body.insert("startTime".into(), json!(iso_ms(now_ms)));
            body.insert("participants".into(), json!([participant(from)]));
            body.insert("callAttributes".into(), json!(call_attributes(attributes)));
            put(
                &mut body,
                "parentVoiceCallId",
                text(contact.get("PreviousContactId")).filter(|s| !s.is_empty()),
            );
            put(
                &mut body,
                "queue",
                text(contact.get("Queue").and_then(|q| q.get("ARN"))).filter(|s| !s.is_empty()),
            );
            Ok(req(HttpMethod::Post, "/voiceCalls".into(), Value::Object(body), true))
        }
        "updateVoiceCall" => {
            need_contact(&contact_id)?;
            let mut body = field_values;
            body.insert("callCenterApiName".into(), json!(cc));
            Ok(req(HttpMethod::Patch, format!("/voiceCalls/{}", enc(&contact_id)), Value::Object(body), true))
        }
        "executeOmniFlow" => {
            need_contact(&contact_id)?;
            let flow_inputs: Map<String, Value> = params
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| k.strip_prefix("flowInput-").map(|k| (k.to_string(), v.clone())))
                .collect();
            let dialed = address("SystemEndpoint").or_else(|| text(field_values.get("dialedNumber")));
            let mut body = Map::new();
            put(&mut body, "flowDevName", text(params.get("flowDevName")));
            put(&mut body, "fallbackQueue", text(params.get("fallbackQueue")));
            put(&mut body, "dialedNumber", dialed);
            body.insert("flowInputParameters".into(), Value::Object(flow_inputs));
            put(&mut body, "transferTarget", text(params.get("transferTarget")).filter(|s| !s.is_empty()));
            Ok(req(
                HttpMethod::Patch,
                format!("/voiceCalls/{}/omniFlow", enc(&contact_id)),
                Value::Object(body),
                true,
            ))
        }
        "cancelOmniFlowExecution" => {
            need_contact(&contact_id)?;
            Ok(req(
                HttpMethod::Patch,
                format!("/voiceCalls/{}/clearRouting", enc(&contact_id)),
                Value::Null,
                false,
            ))
        }
        "rerouteFlowExecution" => {
            need_contact(&contact_id)?;
            Ok(req(
                HttpMethod::Patch,
                format!("/voiceCalls/{}/reroute", enc(&contact_id)),
                Value::Null,
                false,
            ))
        }
        "sendMessage" => {
            need_contact(&contact_id)?;
            let mut body = field_values;
            body.insert("callCenterApiName".into(), json!(cc));
            Ok(req(
                HttpMethod::Post,
                format!("/voiceCalls/{}/messages", enc(&contact_id)),
                Value::Object(body),
                true,
            ))
        }
        "createCallback" => {
            need_contact(&contact_id)?;
            let mut body = Map::new();
            put(
                &mut body,
                "callbackNumber",
                text(params.get("callbackNumber"))
                    .filter(|s| !s.is_empty())
                    .or_else(|| address("CustomerEndpoint")),
            );
            put(&mut body, "queue", text(params.get("queue")).filter(|s| !s.is_empty()));
            // A flow passes text; the API takes numbers (anything else is left for it to refuse).
            for k in ["initialDelaySeconds", "maxAttempts", "retryDelaySeconds"] {
                if let Some(v) = text(params.get(k)).filter(|s| !s.is_empty()) {
                    body.insert(k.into(), v.trim().parse::<i64>().map_or(Value::String(v), |n| json!(n)));
                }
            }
            Ok(req(
                HttpMethod::Post,
                format!("/voiceCalls/{}/callback", enc(&contact_id)),
                Value::Object(body),
                false,
            ))
        }
        other => Err(format!("Unsupported method: {other}")),
    }
}

fn participant(key: Option<String>) -> Value {
    match key {
        Some(k) => json!({"participantKey": k, "type": "END_USER"}),
        None => json!({"type": "END_USER"}),
    }
}

fn put(body: &mut Map<String, Value>, key: &str, value: Option<String>) {
    if let Some(v) = value {
        body.insert(key.to_string(), Value::String(v));
    }
}

/// A scalar parameter as text (flows send text; other functions may send numbers).
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `Parameters.fieldValues` when it is an object; otherwise the flat parameters other than
/// `methodName` and `contactId` (a flow cannot pass an object).
fn field_values(params: &Value) -> Map<String, Value> {
    if let Some(Value::Object(m)) = params.get("fieldValues") {
        return m.clone();
    }
    params
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !matches!(k.as_str(), "methodName" | "contactId" | "fieldValues"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The `sfdc-*` attributes without the prefix, as a JSON string.
pub fn call_attributes(attributes: Option<&Map<String, Value>>) -> String {
    let map: Map<String, Value> = attributes
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| k.strip_prefix("sfdc-").map(|k| (k.to_string(), v.clone())))
        .collect();
    Value::Object(map).to_string()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The built-in function.
pub struct InvokeTelephonyIntegrationApi {
    config: TelephonyApiConfig,
    key: jsonwebtoken::EncodingKey,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for InvokeTelephonyIntegrationApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvokeTelephonyIntegrationApi").field("config", &self.config).finish_non_exhaustive()
    }
}

impl InvokeTelephonyIntegrationApi {
    /// Fails when the private key is not an RSA PEM key.
    pub fn new(config: TelephonyApiConfig) -> Result<InvokeTelephonyIntegrationApi, String> {
        InvokeTelephonyIntegrationApi::with_clock(config, Arc::new(SystemClock))
    }

    pub fn with_clock(
        config: TelephonyApiConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<InvokeTelephonyIntegrationApi, String> {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(config.private_key_pem.as_bytes())
            .map_err(|e| format!("the telephony API private key is not an RSA PEM key: {e}"))?;
        Ok(InvokeTelephonyIntegrationApi { config, key, client: reqwest::Client::new(), clock })
    }

    pub fn config(&self) -> &TelephonyApiConfig {
        &self.config
    }

    /// A fresh token: `iss` org, `sub` call center, `aud`, `iat`, `exp` in 5 minutes, `jti`.
    pub fn sign_token(&self) -> Result<String, FunctionError> {
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

    async fn send(&self, request: &ApiRequest) -> Result<Value, FunctionError> {
        let url = format!("{}{}", self.config.base_url.trim_end_matches('/'), request.path);
        let token = self.sign_token()?;
        let builder = match request.http_method {
            HttpMethod::Post => self.client.post(&url),
            HttpMethod::Patch => self.client.patch(&url),
        };
        let mut builder = builder
            .bearer_auth(token)
            .header("Content-Type", "application/json")
            .body(request.body.to_string());
        if request.provider_header {
            builder = builder.header("Telephony-Provider-Name", &self.config.provider_name);
        }
        let resp = builder.send().await.map_err(|e| {
            FunctionError::failed(format!("{}: cannot reach {url}: {e}", request.method_name))
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(FunctionError::failed(format!(
                "{} failed with HTTP {}: {}",
                request.method_name,
                status.as_u16(),
                truncate(&text)
            )));
        }
        let body = if text.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_str(&text).map_err(|_| {
                FunctionError::failed(format!(
                    "{}: the answer is not JSON: {}",
                    request.method_name,
                    truncate(&text)
                ))
            })?
        };
        Ok(flatten_answer(body))
    }
}

/// The answer as a flat string map (see the module docs): top-level `null` members as `""`,
/// nested members (arrays, objects) as their JSON text; scalars unchanged.
pub fn flatten_answer(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| match v {
                    Value::Null => (k, Value::String(String::new())),
                    Value::Array(_) | Value::Object(_) => {
                        let text = v.to_string();
                        (k, Value::String(text))
                    }
                    scalar => (k, scalar),
                })
                .collect(),
        ),
        other => other,
    }
}

#[async_trait]
impl Function for InvokeTelephonyIntegrationApi {
    fn name(&self) -> &str {
        NAME
    }

    async fn invoke(&self, event: Value) -> Result<Value, FunctionError> {
        if is_warm_up(&event) {
            return Ok(json!({"statusCode": 200, "message": "Keep Lambda Warm"}));
        }
        let request = build_request(&event, &self.config.call_center_api_name, self.clock.now_ms())
            .map_err(FunctionError::failed)?;
        let result = self.send(&request).await;
        match result {
            Err(e) if request.method_name == "sendMessage" => {
                tracing::warn!(error = %e, "sendMessage failed");
                Ok(json!({"result": "Error"}))
            }
            other => other,
        }
    }
}
