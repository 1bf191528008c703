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

    /// How many times the client has logged in.
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
