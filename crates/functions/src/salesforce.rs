//! The CRM REST API client ([`CrmClient`]) and the built-in `InvokeSalesforceRestApiFunction`
//! built on it.
//!
//! [`CrmClient`] logs in the way an integration does — the OAuth 2.0 JWT bearer flow: an
//! RS256 assertion signed with the connected app's private key (`iss` its consumer key, `sub`
//! the API user, `aud` the login audience, `exp` under three minutes ahead) posted to
//! `{base}/services/oauth2/token` — caches the access token until shortly before it expires,
//! and logs in again once when the API answers 401 (the session was revoked or timed out
//! early). Its `get`/`post`/`patch`/`delete` helpers answer the status and the JSON body;
//! what a non-2xx answer means is the caller's business.
//!
//! [`InvokeSalesforceRestApi`] is the guide's `InvokeSalesforceRestApiFunction`: flows create,
//! update and query CRM records with it. [`build_request`] is its sans-IO half — from the
//! `ContactFlowEvent`'s parameters (`methodName` and the method's own) it builds the request —
//! and [`shape_answer`] turns the API's answer into the function's:
//!
//! | `methodName` | request | answer |
//! | --- | --- | --- |
//! | `createRecord` | `POST sobjects/{objectApiName}`, the other parameters as fields | `{success, recordId}` |
//! | `updateRecord` | `PATCH sobjects/{objectApiName}/{recordId}`, likewise | `{success}` |
//! | `queryRecord` | `GET query?q=` `soql` with every `{key}` replaced by the parameter `key` | the first record without `attributes`; `{}` when none |
//! | `searchRecord` | `GET search?q=` `sosl` | the first hit; `{}` when none |
//! | `realtimeAlertEvent` | `POST sobjects/RealtimeAlertEvent`, the other parameters as fields | `{success, id, errors}` |
//! | `uploadTranscript` | `POST connect/conversations/upload`, multipart: one `transcripts.txt` part per `[contactId, ndjson]` pair of `contactIdsPayloadMap` | the API's answer |
//! | `fetchUploadIdsStatus` | `GET connect/conversations/upload?uploadId=a,b` from `uploadIds` (list or text) | the API's answer |
//! | `retryCTRSync` | `GET query?q=` `soql` (default [`RETRY_CTR_SYNC_SOQL`]), every page | `{totalSize, records, resynced, status}` |
//! | `SFSPhoneCallFlowQuery` | the Field Service settings, then the technician en route to the caller | `{status, engPhone}`; never fails |
//!
//! Any non-2xx answer, or a 2xx one with `success: false`, fails the invocation (the
//! flow's error branch) with the API's error code and message. The answer is flattened for
//! flows, which read it as a flat string map ([`flatten`]: `records.0.Id`, `Account.Name`).
//!
//! Where Voxbridge departs from the reference Lambda: it substitutes every placeholder (the
//! reference keeps only the last key's replacement) and escapes the values for a SOQL string
//! literal; it sends `objectApiName` as given (the reference rewrites `VoiceCall` to
//! `Voicecall`, which the API's case-insensitive names make needless) and refuses names that
//! are not API names; `fetchUploadIdsStatus` sends the guide's `uploadId` parameter; a
//! warm-up event answers without calling the API. The outbound-number and voicemail lookups
//! (`fetchOutboundPhoneNumber`, `fetchAgentPhoneNumber`, `fetchDefaultVoicemailGreetingUrl`)
//! read messaging channels Voxbridge does not keep: they fail as unsupported methods.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::external::truncate;
use crate::{system_now_ms, Clock, FunctionError, SystemClock};

/// The API version the client calls unless configured otherwise.
pub const DEFAULT_API_VERSION: &str = "v62.0";
/// How far ahead login assertions expire: the platform refuses more than three minutes, and
/// a few seconds of margin keep a slow clock on either side from tipping it over.
pub const ASSERTION_TTL_SECS: i64 = 170;
/// How long an access token is assumed to live when the login answer does not say (the
/// platform's default session timeout, and Voxbridge's `crm.session_lifetime_secs`).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(2 * 60 * 60);
/// A cached token is dropped this long before it expires (at most half its lifetime), so a
/// request never starts with a token about to die.
pub const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Where and as whom [`CrmClient`] logs in.
#[derive(Clone)]
pub struct CrmConfig {
    /// The server root, e.g. `http://127.0.0.1:8080`: login at `{base_url}/services/oauth2/token`,
    /// the API at `{base_url}/services/data/{api_version}`.
    pub base_url: String,
    /// The connected app's consumer key (`iss` of the assertion).
    pub consumer_key: String,
    /// The API user's username (`sub`).
    pub username: String,
    /// The login audience (`aud`), e.g. `https://login.salesforce.com`.
    pub audience: String,
    /// PEM (PKCS#8 or PKCS#1) RSA private key whose public half is on the connected app.
    pub private_key_pem: String,
    /// `v62.0`; see [`DEFAULT_API_VERSION`].
    pub api_version: String,
    /// How long a token lives when the login answer has no `expires_in`.
    pub token_lifetime: Duration,
}

impl CrmConfig {
    /// A configuration with the default API version and token lifetime.
    pub fn new(
        base_url: impl Into<String>,
        consumer_key: impl Into<String>,
        username: impl Into<String>,
        audience: impl Into<String>,
        private_key_pem: impl Into<String>,
    ) -> CrmConfig {
        CrmConfig {
            base_url: base_url.into(),
            consumer_key: consumer_key.into(),
            username: username.into(),
            audience: audience.into(),
            private_key_pem: private_key_pem.into(),
            api_version: DEFAULT_API_VERSION.to_string(),
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
        }
    }
}

impl std::fmt::Debug for CrmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("CrmConfig")
            .field("base_url", &self.base_url)
            .field("consumer_key", &self.consumer_key)
            .field("username", &self.username)
            .field("audience", &self.audience)
            .field("api_version", &self.api_version)
            .field("token_lifetime", &self.token_lifetime)
            .finish_non_exhaustive()
    }
}

/// HTTP methods of the CRM API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
    Patch,
    Delete,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }
}

/// One part of a `multipart/form-data` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: String,
    pub data: String,
}

/// A request body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Empty,
    Json(Value),
    Multipart(Vec<Part>),
}

impl Body {
    /// The `Content-Type` and bytes to send (`None` for no body). Multipart boundaries come
    /// from `boundary`, which must not occur in the parts.
    pub fn encode(&self, boundary: &str) -> Option<(String, Vec<u8>)> {
        match self {
            Body::Empty => None,
            Body::Json(v) => Some(("application/json".to_string(), v.to_string().into_bytes())),
            Body::Multipart(parts) => {
                let mut out = String::new();
                for p in parts {
                    out.push_str(&format!("--{boundary}\r\n"));
                    out.push_str(&format!(
                        "Content-Disposition: form-data; name=\"{}\"",
                        disposition(&p.name)
                    ));
                    if let Some(f) = &p.filename {
                        out.push_str(&format!("; filename=\"{}\"", disposition(f)));
                    }
                    out.push_str(&format!("\r\nContent-Type: {}\r\n\r\n", p.content_type));
                    out.push_str(&p.data);
                    out.push_str("\r\n");
                }
                out.push_str(&format!("--{boundary}--\r\n"));
                Some((format!("multipart/form-data; boundary={boundary}"), out.into_bytes()))
            }
        }
    }
}

/// A name inside a quoted `Content-Disposition` parameter, escaped as browsers do.
fn disposition(s: &str) -> String {
    s.replace('"', "%22").replace('\r', "%0D").replace('\n', "%0A")
}

/// A CRM API answer: the status and the body (JSON when it parses, else the text as a JSON
/// string; `null` when empty).
#[derive(Debug, Clone, PartialEq)]
pub struct CrmResponse {
    pub status: u16,
    pub body: Value,
}

impl CrmResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The error the body reports: `ERROR_CODE: message` of the platform's error array
    /// `[{"message","errorCode"}]`, or of an OAuth `{"error","error_description"}`, else the
    /// body's text.
    pub fn error_message(&self) -> String {
        let first = self.body.as_array().and_then(|a| a.first()).unwrap_or(&self.body);
        let code = first.get("errorCode").or_else(|| first.get("error")).and_then(Value::as_str);
        let message = first.get("message").or_else(|| first.get("error_description")).and_then(Value::as_str);
        match (code, message) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (None, Some(m)) => m.to_string(),
            (Some(c), None) => c.to_string(),
            (None, None) => match &self.body {
                Value::String(s) => truncate(s),
                Value::Null => String::new(),
                other => truncate(&other.to_string()),
            },
        }
    }

    fn parse(status: u16, text: &str) -> CrmResponse {
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
        };
        CrmResponse { status, body }
    }
}

/// Why [`CrmClient`] got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrmError {
    /// The login was refused (or its answer had no token).
    #[error("the CRM login failed: {0}")]
    Login(String),
    /// No HTTP answer (connection refused, TLS, timeout).
    #[error("cannot reach {url}: {message}")]
    Unreachable { url: String, message: String },
}

impl From<CrmError> for FunctionError {
    fn from(e: CrmError) -> FunctionError {
        FunctionError::failed(e.to_string())
    }
}

struct CachedToken {
    access_token: String,
    /// When to log in again instead of using it (the clock's milliseconds).
    refresh_at_ms: i64,
}

/// A client of the CRM REST API (see the module docs). Cheap to share behind an `Arc`;
/// concurrent requests share one login.
pub struct CrmClient {
    config: CrmConfig,
    key: jsonwebtoken::EncodingKey,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    token: tokio::sync::Mutex<Option<CachedToken>>,
    logins: AtomicU64,
}

impl std::fmt::Debug for CrmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrmClient").field("config", &self.config).finish_non_exhaustive()
    }
}

impl CrmClient {
    /// Fails when the private key is not an RSA PEM key.
    pub fn new(config: CrmConfig) -> Result<CrmClient, String> {
        CrmClient::with_clock(config, Arc::new(SystemClock))
    }

    /// `clock` decides when a cached token is too old; assertions always use the system
    /// clock, since the server checks their `exp` against its own.
    pub fn with_clock(config: CrmConfig, clock: Arc<dyn Clock>) -> Result<CrmClient, String> {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(config.private_key_pem.as_bytes())
            .map_err(|e| format!("the connected app's private key is not an RSA PEM key: {e}"))?;
        Ok(CrmClient {
            config,
            key,
            http: reqwest::Client::new(),
            clock,
            token: tokio::sync::Mutex::new(None),
            logins: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &CrmConfig {
        &self.config
    }

    /// `/services/data/v62.0`: what relative paths are resolved against.
    pub fn data_path(&self) -> String {
        format!("/services/data/{}", self.config.api_version)
    }

    /// The URL of `path`: paths starting with `/services/` are taken from the server root;
    /// others are relative to [`CrmClient::data_path`] (`sobjects/Case`, `/query?q=…`).
    pub fn url(&self, path: &str) -> String {
        let base = self.config.base_url.trim_end_matches('/');
        if path.starts_with("/services/") {
            format!("{base}{path}")
        } else {
            format!("{base}{}/{}", self.data_path(), path.trim_start_matches('/'))
        }
    }

    /// How many logins the client has sent that the server answered (refused ones too).
    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    /// The signed login assertion, expiring [`ASSERTION_TTL_SECS`] from now.
    pub fn assertion(&self) -> Result<String, CrmError> {
        let claims = json!({
            "iss": self.config.consumer_key,
            "sub": self.config.username,
            "aud": self.config.audience,
            "exp": system_now_ms() / 1000 + ASSERTION_TTL_SECS,
        });
        jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &self.key)
            .map_err(|e| CrmError::Login(format!("cannot sign the assertion: {e}")))
    }

    /// The cached access token, logging in when there is none or it is about to expire.
    pub async fn access_token(&self) -> Result<String, CrmError> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref() {
            if self.clock.now_ms() < t.refresh_at_ms {
                return Ok(t.access_token.clone());
            }
        }
        let fresh = self.login().await?;
        let token = fresh.access_token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Drops the cached token unless it has already been replaced by another one than
    /// `stale` (another request may have logged in meanwhile).
    async fn forget(&self, stale: &str) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| t.access_token == stale) {
            *cached = None;
        }
    }

    async fn login(&self) -> Result<CachedToken, CrmError> {
        let url = format!("{}/services/oauth2/token", self.config.base_url.trim_end_matches('/'));
        let assertion = self.assertion()?;
        let form = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
            percent_encode(&assertion)
        );
        let started = self.clock.now_ms();
        let resp = self
            .http
            .post(&url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|e| CrmError::Unreachable { url: url.clone(), message: e.to_string() })?;
        self.logins.fetch_add(1, Ordering::Relaxed);
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let answer = CrmResponse::parse(status, &text);
        if !answer.is_success() {
            return Err(CrmError::Login(format!("HTTP {status}: {}", answer.error_message())));
        }
        let access_token = answer
            .body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| CrmError::Login("the answer has no access_token".into()))?
            .to_string();
        let lifetime_ms = answer
            .body
            .get("expires_in")
            .and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
            .filter(|s| *s > 0)
            .map(|s| s.saturating_mul(1000))
            .unwrap_or(self.config.token_lifetime.as_millis().min(i64::MAX as u128) as i64);
        let margin = (TOKEN_REFRESH_MARGIN.as_millis() as i64).min(lifetime_ms / 2);
        Ok(CachedToken { access_token, refresh_at_ms: started.saturating_add(lifetime_ms - margin) })
    }

    /// Sends one request with the cached token; on a 401 logs in again and retries once.
    pub async fn send(&self, method: HttpMethod, path: &str, body: &Body) -> Result<CrmResponse, CrmError> {
        let token = self.access_token().await?;
        let first = self.send_once(method, path, body, &token).await?;
        if first.status != 401 {
            return Ok(first);
        }
        self.forget(&token).await;
        let token = self.access_token().await?;
        self.send_once(method, path, body, &token).await
    }

    async fn send_once(
        &self,
        method: HttpMethod,
        path: &str,
        body: &Body,
        token: &str,
    ) -> Result<CrmResponse, CrmError> {
        let url = self.url(path);
        let builder = match method {
            HttpMethod::Get => self.http.get(&url),
            HttpMethod::Post => self.http.post(&url),
            HttpMethod::Patch => self.http.patch(&url),
            HttpMethod::Delete => self.http.delete(&url),
        };
        let mut builder = builder.bearer_auth(token).header("Accept", "application/json");
        let boundary = format!("voxbridge-{}", uuid::Uuid::new_v4().simple());
        if let Some((content_type, bytes)) = body.encode(&boundary) {
            builder = builder.header("Content-Type", content_type).body(bytes);
        }
        let resp = builder
            .send()
            .await
            .map_err(|e| CrmError::Unreachable { url: url.clone(), message: e.to_string() })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Ok(CrmResponse::parse(status, &text))
    }

    pub async fn get(&self, path: &str) -> Result<CrmResponse, CrmError> {
        self.send(HttpMethod::Get, path, &Body::Empty).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<CrmResponse, CrmError> {
        self.send(HttpMethod::Post, path, &Body::Json(body.clone())).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<CrmResponse, CrmError> {
        self.send(HttpMethod::Patch, path, &Body::Json(body.clone())).await
    }

    pub async fn delete(&self, path: &str) -> Result<CrmResponse, CrmError> {
        self.send(HttpMethod::Delete, path, &Body::Empty).await
    }

    /// `GET query?q=SOQL` (one page; follow `nextRecordsUrl` with [`CrmClient::get`]).
    pub async fn query(&self, soql: &str) -> Result<CrmResponse, CrmError> {
        self.get(&format!("query?q={}", percent_encode(soql))).await
    }
}

/// Percent-encodes everything but the unreserved characters (a query-string value).
pub fn percent_encode(s: &str) -> String {
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

// ---------------------------------------------------------------------------------------
// InvokeSalesforceRestApiFunction
// ---------------------------------------------------------------------------------------

/// The reference name; flows' ARNs end with it.
pub const NAME: &str = "InvokeSalesforceRestApiFunction";
/// The placeholder flow templates may use for this function's ARN.
pub const PLACEHOLDER: &str = "%%INVOKE_SALESFORCE_REST_API_FUNCTION_ARN%%";
/// The query `retryCTRSync` runs when the event names none (the guide's example: calls the
/// CTR sync never updated have no hold duration).
pub const RETRY_CTR_SYNC_SOQL: &str =
    "SELECT Id, VendorCallKey FROM VoiceCall WHERE CustomerHoldDuration = null";
/// The Field Service lookup's first query: which appointment status means "on the way".
pub const SFS_SETTINGS_SOQL: &str = "SELECT ApptAssistantStatus FROM FieldServiceOrgSettings";
/// The appointment status the Field Service lookup uses when the org sets none.
const SFS_DEFAULT_STATUS: &str = "En Route";
/// Pages of a `retryCTRSync` query followed at most (2,000 records each).
const MAX_PAGES: usize = 50;

/// Parameters that configure the call rather than name record fields.
const NON_FIELD_NAMES: &[&str] =
    &["methodName", "objectApiName", "recordId", "secretName", "accessTokenSecretName"];

/// One CRM API request of the function, before it is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiRequest {
    /// The reference `methodName`.
    pub method_name: String,
    pub http_method: HttpMethod,
    /// Relative to the API version root (`sobjects/Case`, `query?q=…`).
    pub path: String,
    pub body: Body,
}

/// Builds the request the reference Lambda sends for `event` (`methodName` and the other
/// `Details.Parameters`); `Err` is the message of the error the function fails with
/// (unsupported method, missing or malformed parameter).
pub fn build_request(event: &Value) -> Result<ApiRequest, String> {
    let params = event
        .get("Details")
        .and_then(|d| d.get("Parameters"))
        .and_then(Value::as_object)
        .ok_or("the event has no Details.Parameters")?;
    let method_name = text(params.get("methodName")).unwrap_or_default();
    let need = |k: &str| {
        text(params.get(k))
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| format!("{method_name}: the parameter `{k}` is missing"))
    };
    let req = |http_method, path: String, body| ApiRequest {
        method_name: method_name.clone(),
        http_method,
        path,
        body,
    };
    let fields = |skip: &[&str]| -> Map {
        params
            .iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    match method_name.as_str() {
        "createRecord" => {
            let object = api_name(&need("objectApiName")?, "objectApiName")?;
            Ok(req(
                HttpMethod::Post,
                format!("sobjects/{object}"),
                Body::Json(Value::Object(fields(NON_FIELD_NAMES))),
            ))
        }
        "updateRecord" => {
            let object = api_name(&need("objectApiName")?, "objectApiName")?;
            let id = api_name(&need("recordId")?, "recordId")?;
            Ok(req(
                HttpMethod::Patch,
                format!("sobjects/{object}/{id}"),
                Body::Json(Value::Object(fields(NON_FIELD_NAMES))),
            ))
        }
        "queryRecord" => {
            let soql = substitute(&need("soql")?, params);
            Ok(req(HttpMethod::Get, format!("query?q={}", percent_encode(&soql)), Body::Empty))
        }
        "searchRecord" => {
            // SOSL's own braces (`FIND {term}`) rule out placeholder substitution here.
            let sosl = need("sosl")?;
            Ok(req(HttpMethod::Get, format!("search?q={}", percent_encode(&sosl)), Body::Empty))
        }
        "realtimeAlertEvent" => Ok(req(
            HttpMethod::Post,
            "sobjects/RealtimeAlertEvent".into(),
            Body::Json(Value::Object(fields(&["methodName", "secretName", "accessTokenSecretName"]))),
        )),
        "uploadTranscript" => {
            let parts = transcript_parts(params.get("contactIdsPayloadMap"))?;
            Ok(req(HttpMethod::Post, "connect/conversations/upload".into(), Body::Multipart(parts)))
        }
        "fetchUploadIdsStatus" => {
            let ids = upload_ids(params.get("uploadIds"))?;
            // The guide's parameter is `uploadId`, a comma-separated list.
            Ok(req(
                HttpMethod::Get,
                format!("connect/conversations/upload?uploadId={}", percent_encode(&ids.join(","))),
                Body::Empty,
            ))
        }
        "retryCTRSync" => {
            let soql = text(params.get("soql"))
                .filter(|s| !s.trim().is_empty())
                .map(|s| substitute(&s, params))
                .unwrap_or_else(|| RETRY_CTR_SYNC_SOQL.to_string());
            Ok(req(HttpMethod::Get, format!("query?q={}", percent_encode(&soql)), Body::Empty))
        }
        // The first of its queries; the lookup goes on in `InvokeSalesforceRestApi::answer`.
        "SFSPhoneCallFlowQuery" => {
            Ok(req(HttpMethod::Get, format!("query?q={}", percent_encode(SFS_SETTINGS_SOQL)), Body::Empty))
        }
        "" => Err("Unsupported method: the parameter `methodName` is missing".into()),
        other => Err(format!("Unsupported method: {other}")),
    }
}

type Map = serde_json::Map<String, Value>;

/// A scalar parameter as text (flows send text; other functions may send numbers).
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An sObject name or record id, which become path segments: letters, digits and `_` only.
fn api_name(s: &str, param: &str) -> Result<String, String> {
    let s = s.trim();
    if !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(s.to_string())
    } else {
        Err(format!("the parameter `{param}` must be an API name or id (letters, digits, _), not {s:?}"))
    }
}

/// Replaces every `{key}` in `soql` whose key is a parameter with that parameter's value,
/// escaped for a SOQL string literal (`\` and `'`), so a caller's input cannot end the quoted
/// value and change the query. One pass: substituted text is not searched again; unknown
/// placeholders stay as they are.
pub fn substitute(soql: &str, params: &Map) -> String {
    let mut out = String::with_capacity(soql.len());
    let mut rest = soql;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let key = &after[..close];
            let value = (key != "soql").then(|| text(params.get(key))).flatten()?;
            Some((close, value))
        });
        match value {
            Some((close, value)) => {
                out.push_str(&soql_escape(&value));
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `s` escaped for the inside of a SOQL string literal.
pub fn soql_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

/// `contactIdsPayloadMap`: JSON text (or the array itself) of `[[contactId, ndjson], …]`,
/// one part per contact named by its id, with the reference's file name.
fn transcript_parts(v: Option<&Value>) -> Result<Vec<Part>, String> {
    let bad = || {
        "uploadTranscript: `contactIdsPayloadMap` must be a JSON list of [contactId, transcript] pairs"
            .to_string()
    };
    let parsed;
    let list = match v {
        Some(Value::String(s)) => {
            parsed = serde_json::from_str::<Value>(s).map_err(|_| bad())?;
            &parsed
        }
        Some(v @ Value::Array(_)) => v,
        _ => return Err(bad()),
    };
    let pairs = list.as_array().ok_or_else(bad)?;
    let mut parts = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let (Some(id), Some(data)) = (pair.get(0).and_then(|v| text(Some(v))), pair.get(1)) else {
            return Err(bad());
        };
        let data = match data {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if id.is_empty() {
            return Err(bad());
        }
        // The same contact twice: the later transcript wins, as in the reference's Map.
        parts.retain(|p: &Part| p.name != id);
        parts.push(Part {
            name: id,
            filename: Some("transcripts.txt".into()),
            content_type: "text/plain".into(),
            data,
        });
    }
    if parts.is_empty() {
        return Err("uploadTranscript: `contactIdsPayloadMap` names no contact".into());
    }
    Ok(parts)
}

/// `uploadIds`: a list, JSON text of one, or comma-separated text.
fn upload_ids(v: Option<&Value>) -> Result<Vec<String>, String> {
    let items: Vec<String> = match v {
        Some(Value::Array(a)) => a.iter().filter_map(|v| text(Some(v))).collect(),
        Some(Value::String(s)) if s.trim_start().starts_with('[') => serde_json::from_str::<Vec<Value>>(s)
            .map_err(|_| "fetchUploadIdsStatus: `uploadIds` is not a JSON list".to_string())?
            .iter()
            .filter_map(|v| text(Some(v)))
            .collect(),
        Some(Value::String(s)) => s.split(',').map(str::to_string).collect(),
        _ => Vec::new(),
    };
    let items: Vec<String> =
        items.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    if items.is_empty() {
        return Err("fetchUploadIdsStatus: the parameter `uploadIds` is missing".into());
    }
    Ok(items)
}

/// The answer of `request` from the API's `response`, as the reference shapes it (before
/// flattening); `Err` is the message the function fails with. Pure.
pub fn shape_answer(request: &ApiRequest, response: &CrmResponse) -> Result<Value, String> {
    let method = request.method_name.as_str();
    if !response.is_success() {
        return Err(format!("{method} failed with HTTP {}: {}", response.status, response.error_message()));
    }
    let body = &response.body;
    // A 2xx answer that reports a failure (`success: false`) fails too.
    if body.get("success") == Some(&Value::Bool(false)) {
        return Err(format!("{method} failed: {}", errors_text(body)));
    }
    Ok(match method {
        "createRecord" => {
            json!({"success": true, "recordId": body.get("id").cloned().unwrap_or(Value::Null)})
        }
        "updateRecord" => json!({"success": true}),
        "queryRecord" => match body.get("records").and_then(Value::as_array).and_then(|r| r.first()) {
            Some(first) => without_attributes(first),
            None => json!({}),
        },
        "searchRecord" => body
            .get("searchRecords")
            .and_then(Value::as_array)
            .and_then(|r| r.first())
            .cloned()
            .unwrap_or(json!({})),
        "realtimeAlertEvent" => json!({
            "success": body.get("success").cloned().unwrap_or(Value::Bool(true)),
            "id": body.get("id").cloned().unwrap_or(Value::Null),
            "errors": body.get("errors").cloned().unwrap_or(json!([])),
        }),
        _ => body.clone(),
    })
}

fn errors_text(body: &Value) -> String {
    match body.get("errors").and_then(Value::as_array) {
        Some(errors) if !errors.is_empty() => errors
            .iter()
            .map(|e| {
                e.get("message").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| e.to_string())
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => "the API answered success: false".into(),
    }
}

/// A query row without its `attributes` (at every level: related records have them too).
fn without_attributes(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != "attributes")
                .map(|(k, v)| (k.clone(), without_attributes(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_attributes).collect()),
        other => other.clone(),
    }
}

fn first_record(body: &Value) -> Option<&Value> {
    body.get("records").and_then(Value::as_array).and_then(|r| r.first())
}

/// The caller's number for the Field Service lookup: `CustomerEndpoint.Address` when it is
/// a phone number (an optional `+`, then digits; 8 to 20 characters), else `None`.
pub fn sfs_caller_phone(event: &Value) -> Option<String> {
    let address = event.pointer("/Details/ContactData/CustomerEndpoint/Address").and_then(Value::as_str)?;
    let digits = address.strip_prefix('+').unwrap_or(address);
    let valid =
        (8..=20).contains(&address.len()) && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    valid.then(|| address.to_string())
}

/// The query for the technician of the caller's appointment in `status` who is on the way.
pub fn sfs_technician_soql(status: &str, phone: &str) -> String {
    format!(
        "SELECT ServiceResource.RelatedRecord.Phone FROM AssignedResource \
         WHERE (LocationStatus IN ('EnRoute', 'LastMile')) AND (ServiceAppointment.Status = '{}') \
         AND (ServiceAppointment.Contact.Phone = '{}') ORDER BY AssignedResourceNumber DESC LIMIT 1",
        soql_escape(status),
        soql_escape(phone)
    )
}

/// The calls `retryCTRSync` found: each VoiceCall's `Id` and `VendorCallKey` (the contact id
/// its contact trace record is filed under).
pub fn resync_candidates(records: &[Value]) -> Vec<(String, String)> {
    records
        .iter()
        .filter_map(|r| {
            let id = r.get("Id").and_then(Value::as_str)?;
            let key = r.get("VendorCallKey").and_then(Value::as_str).unwrap_or_default();
            Some((id.to_string(), key.to_string()))
        })
        .collect()
}

/// `v` as a flat string map for flows (the Lambda block's STRING_MAP): nested members become
/// dotted keys, array items their index (`records.0.Id`, `Account.Name`), as the reference's
/// `flat` does; `null` becomes `""` and empty lists and objects their JSON text (`[]`, `{}`),
/// so every member is a scalar the flow can store. A non-object is wrapped as `{"result": v}`.
pub fn flatten(v: &Value) -> Value {
    let mut out = Map::new();
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                flatten_into(&mut out, k.clone(), v);
            }
        }
        other => flatten_into(&mut out, "result".into(), other),
    }
    Value::Object(out)
}

fn flatten_into(out: &mut Map, key: String, v: &Value) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                flatten_into(out, format!("{key}.{k}"), v);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, v) in a.iter().enumerate() {
                flatten_into(out, format!("{key}.{i}"), v);
            }
        }
        Value::Null => {
            out.insert(key, Value::String(String::new()));
        }
        Value::Object(_) | Value::Array(_) => {
            out.insert(key, Value::String(v.to_string()));
        }
        scalar => {
            out.insert(key, scalar.clone());
        }
    }
}

/// The built-in function (see the module docs).
#[derive(Debug, Clone)]
pub struct InvokeSalesforceRestApi {
    client: Arc<CrmClient>,
}

impl InvokeSalesforceRestApi {
    pub fn new(client: Arc<CrmClient>) -> InvokeSalesforceRestApi {
        InvokeSalesforceRestApi { client }
    }

    pub fn client(&self) -> &Arc<CrmClient> {
        &self.client
    }

    /// The answer to `event` before flattening (what another function calling this one in
    /// process wants: `conversationBulkUploadsResults` stays a list).
    pub async fn answer(&self, event: &Value) -> Result<Value, FunctionError> {
        let request = build_request(event).map_err(FunctionError::failed)?;
        if request.method_name == "SFSPhoneCallFlowQuery" {
            return Ok(self.field_service_lookup(event, &request).await);
        }
        let response = self.client.send(request.http_method, &request.path, &request.body).await?;
        if request.method_name == "retryCTRSync" {
            return self.retry_ctr_sync(&request, response).await;
        }
        shape_answer(&request, &response).map_err(FunctionError::failed)
    }

    /// `SFSPhoneCallFlowQuery`: is a field technician on the way to the caller? Like the
    /// reference it never fails — the flow branches on `status`: `ANONYMOUS` (no usable
    /// caller number), `PHONE_NOT_FOUND` (no technician en route with a phone, or the org has
    /// no Field Service objects, or the API failed), `TRANSFER_CALL` with `engPhone`.
    async fn field_service_lookup(&self, event: &Value, settings: &ApiRequest) -> Value {
        let Some(phone) = sfs_caller_phone(event) else {
            return json!({"success": true, "statusCode": 200, "status": "ANONYMOUS"});
        };
        let status = match self.client.send(settings.http_method, &settings.path, &settings.body).await {
            Ok(r) if r.is_success() => first_record(&r.body)
                .and_then(|rec| rec.get("ApptAssistantStatus").and_then(Value::as_str).map(str::to_string))
                .filter(|s| !s.is_empty()),
            _ => None,
        }
        .unwrap_or_else(|| SFS_DEFAULT_STATUS.to_string());
        let found = match self.client.query(&sfs_technician_soql(&status, &phone)).await {
            Ok(r) if r.is_success() => first_record(&r.body)
                .and_then(|rec| {
                    rec.pointer("/ServiceResource/RelatedRecord/Phone").and_then(|p| text(Some(p)))
                })
                .filter(|p| !p.is_empty()),
            Ok(r) => {
                tracing::warn!(status = r.status, error = %r.error_message(), "SFSPhoneCallFlowQuery: query failed");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "SFSPhoneCallFlowQuery: query failed");
                None
            }
        };
        match found {
            Some(eng_phone) => {
                json!({"success": true, "statusCode": 200, "status": "TRANSFER_CALL", "engPhone": eng_phone})
            }
            None => json!({"success": true, "statusCode": 200, "status": "PHONE_NOT_FOUND",
                "msg": "Assign resource not found or no phone in AssignedResource record"}),
        }
    }

    /// `retryCTRSync`, the guide's "Retry CTR Sync" in three steps: (1) query the VoiceCalls the
    /// CTR sync never updated (every page); (2) fetch each one's contact trace record by its
    /// VendorCallKey; (3) update the VoiceCall from it. Step 1 is done here and its calls are
    /// answered as `records` (`Id`, `VendorCallKey`) with `totalSize`; steps 2 and 3 need the
    /// contact-record store and the CTR sync's transform, so `resynced` is 0 and `status`
    /// says `PENDING_RESYNC` until they are plugged in here.
    async fn retry_ctr_sync(&self, request: &ApiRequest, first: CrmResponse) -> Result<Value, FunctionError> {
        let mut response = first;
        let mut records: Vec<Value> = Vec::new();
        for _ in 0..MAX_PAGES {
            shape_answer(request, &response).map_err(FunctionError::failed)?;
            let page = response.body.get("records").and_then(Value::as_array).cloned().unwrap_or_default();
            records.extend(page.iter().map(without_attributes));
            let next = response.body.get("nextRecordsUrl").and_then(Value::as_str).map(str::to_string);
            let Some(next) = next.filter(|_| response.body.get("done") == Some(&Value::Bool(false))) else {
                break;
            };
            response = self.client.get(&next).await?;
        }
        if records.is_empty() {
            return Ok(json!({}));
        }
        let candidates = resync_candidates(&records);
        tracing::info!(calls = candidates.len(), "retryCTRSync: VoiceCalls without CTR fields");
        Ok(json!({
            "totalSize": records.len(),
            "resynced": 0,
            "status": "PENDING_RESYNC",
            "records": records,
        }))
    }
}

#[async_trait::async_trait]
impl crate::Function for InvokeSalesforceRestApi {
    fn name(&self) -> &str {
        NAME
    }

    async fn invoke(&self, event: Value) -> Result<Value, FunctionError> {
        if crate::is_warm_up(&event) {
            return Ok(json!({"statusCode": 200, "message": "Keep Lambda Warm"}));
        }
        Ok(flatten(&self.answer(&event).await?))
    }
}
