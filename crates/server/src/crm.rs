//! The CRM REST API subset under `/services`: OAuth 2.0 JWT bearer login, the API version
//! list, sObject describe and CRUD, SOQL queries and SOSL searches — shaped like the
//! platform's REST API so existing clients and libraries work unchanged but for the login
//! URL.
//!
//! Errors are the platform's array body `[{"message", "errorCode", "fields"}]`; OAuth errors
//! are `{"error", "error_description"}`. Access tokens are opaque (`<org id>!<random>`);
//! the store keeps only their SHA-256, so a database dump does not leak live sessions.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use voxbridge_core::{ApiError, ErrorCode, Fields, KeyPrefix, Record, SfId};
use voxbridge_soql::{self as soql, FieldType, KeyLookup, MemorySource, ObjectDef, QueryErrorCode, Schema};
use voxbridge_store::{StoreError, WriteOp};

use crate::App;

type AppState = State<Arc<App>>;

/// API versions served, oldest first.
pub const VERSIONS: std::ops::RangeInclusive<u32> = 50..=64;

/// Records per page of a query answer.
const PAGE_SIZE: usize = 2000;

/// A CRM API error: the error code, message and the fields it concerns.
#[derive(Debug)]
pub struct CrmError {
    pub error: ApiError,
    pub fields: Vec<String>,
}

impl CrmError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> CrmError {
        CrmError { error: ApiError::new(code, message), fields: Vec::new() }
    }

    pub(crate) fn on(code: ErrorCode, message: impl Into<String>, field: &str) -> CrmError {
        CrmError { error: ApiError::new(code, message), fields: vec![field.to_string()] }
    }
}

impl From<ApiError> for CrmError {
    fn from(error: ApiError) -> Self {
        CrmError { error, fields: Vec::new() }
    }
}

impl From<StoreError> for CrmError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        CrmError::new(ErrorCode::Unavailable, "the store could not complete the request; retry later")
    }
}

impl From<soql::QueryError> for CrmError {
    fn from(e: soql::QueryError) -> Self {
        let code = match e.code {
            QueryErrorCode::MalformedQuery => ErrorCode::MalformedQuery,
            QueryErrorCode::MalformedSearch => ErrorCode::MalformedSearch,
            QueryErrorCode::InvalidField => ErrorCode::InvalidField,
            QueryErrorCode::InvalidType => ErrorCode::InvalidType,
            QueryErrorCode::InvalidQueryFilterOperator => ErrorCode::InvalidQueryFilterOperator,
            QueryErrorCode::NumberOutsideValidRange => ErrorCode::NumberOutsideValidRange,
            QueryErrorCode::InvalidSearch => ErrorCode::InvalidSearch,
        };
        CrmError::new(code, e.message())
    }
}

impl IntoResponse for CrmError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.error.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let body = json!([{ "message": self.error.message, "errorCode": self.error.code.as_str(), "fields": self.fields }]);
        (status, Json(body)).into_response()
    }
}

type CrmResult<T> = Result<T, CrmError>;

/// The answer for a path under `/services` that no route serves, in the platform's shape
/// (clients index the error array).
pub(crate) fn unknown_resource(path: &str) -> Response {
    CrmError::new(ErrorCode::NotFound, format!("The requested resource does not exist: {path}"))
        .into_response()
}

/// The answer for a method a `/services` resource does not allow, in the platform's shape.
pub(crate) fn method_not_allowed(method: &str, path: &str) -> Response {
    CrmError::new(ErrorCode::MethodNotAllowed, format!("HTTP Method '{method}' not allowed on {path}"))
        .into_response()
}

/// An OAuth error: `{"error", "error_description"}`.
struct OAuthError(ApiError);

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
        (status, Json(json!({"error": self.0.code.as_str(), "error_description": self.0.message})))
            .into_response()
    }
}

fn oauth(code: ErrorCode, message: impl Into<String>) -> OAuthError {
    OAuthError(ApiError::new(code, message))
}

fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The instance URL clients should call: the configured public URL, else the host the
/// request was sent to: its `Host` header, else the authority of its URI, which is where
/// HTTP/2 puts the host (`:authority`; HTTP/2 clients send no `Host`).
fn instance_url(app: &App, headers: &HeaderMap, uri: &axum::http::Uri) -> String {
    if let Some(u) = &app.settings.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let authority = uri.authority().map(|a| match a.port() {
        Some(port) => format!("{}:{port}", a.host()),
        None => a.host().to_string(),
    });
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(authority.as_deref())
        .unwrap_or("127.0.0.1:8080");
    let scheme =
        headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).or(uri.scheme_str()).unwrap_or("http");
    format!("{scheme}://{host}")
}

#[derive(Deserialize)]
struct UnverifiedAssertion {
    iss: Option<String>,
    sub: Option<String>,
    prn: Option<String>,
    aud: Option<Value>,
    /// A number, or a string holding one: simple-salesforce and other clients send
    /// `"exp": "1700000000"`, which the platform accepts.
    exp: Option<Value>,
}

/// Seconds since the epoch from a numeric or numeric-string claim.
fn numeric_date(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().filter(|f| f.is_finite()).map(|f| f as i64))
        }
        _ => None,
    }
}

/// `POST /services/oauth2/token` with the JWT bearer grant.
pub async fn token(State(app): AppState, uri: axum::http::Uri, headers: HeaderMap, bytes: Bytes) -> Response {
    match token_inner(&app, &headers, &uri, &bytes).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn token_inner(
    app: &App,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    bytes: &[u8],
) -> Result<Response, OAuthError> {
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes).map_err(|_| {
        oauth(ErrorCode::InvalidRequest, "the body must be application/x-www-form-urlencoded")
    })?;
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match get("grant_type") {
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {}
        Some(other) => {
            return Err(oauth(
                ErrorCode::UnsupportedGrantType,
                format!(
                    "grant type `{other}` is not supported; use urn:ietf:params:oauth:grant-type:jwt-bearer"
                ),
            ))
        }
        None => return Err(oauth(ErrorCode::InvalidRequest, "grant_type is missing")),
    }
    let assertion =
        get("assertion").ok_or_else(|| oauth(ErrorCode::InvalidRequest, "assertion is missing"))?;
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| oauth(ErrorCode::InvalidGrant, "invalid assertion: not a JWT signed with RS256"))?;
    if header.alg != Algorithm::RS256 {
        return Err(oauth(ErrorCode::InvalidGrant, "invalid assertion: the algorithm must be RS256"));
    }
    let claims: UnverifiedAssertion = assertion
        .split('.')
        .nth(1)
        .and_then(|p| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            oauth(ErrorCode::InvalidGrant, "invalid assertion: the claims are not a JSON object")
        })?;
    let consumer_key = claims
        .iss
        .filter(|s| !s.is_empty())
        .ok_or_else(|| oauth(ErrorCode::InvalidGrant, "invalid assertion: no `iss` (the consumer key)"))?;
    // `prn` is the older name of the subject and wins when both are present.
    let username = claims
        .prn
        .or(claims.sub)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| oauth(ErrorCode::InvalidGrant, "invalid assertion: no `sub` (the username)"))?;
    let now = app.now_ms() / 1000;
    let exp = claims
        .exp
        .as_ref()
        .and_then(numeric_date)
        .ok_or_else(|| oauth(ErrorCode::InvalidGrant, "invalid assertion: no numeric `exp`"))?;
    if exp <= now {
        return Err(oauth(
            ErrorCode::InvalidGrant,
            "expired authorization code: the assertion's `exp` is past",
        ));
    }
    // The platform allows assertions at most three minutes ahead; a little clock skew is tolerated.
    if exp - now > 180 + 60 {
        return Err(oauth(ErrorCode::InvalidGrant, "invalid assertion: `exp` is more than 3 minutes ahead"));
    }
    let auds: Vec<String> = match claims.aud {
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(a)) => a.into_iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    };
    let accepted = &app.settings.login_audiences;
    if !auds.iter().any(|a| accepted.iter().any(|x| x.trim_end_matches('/') == a.trim_end_matches('/'))) {
        return Err(oauth(
            ErrorCode::InvalidGrant,
            format!("audience is invalid: `aud` must be one of {}", accepted.join(", ")),
        ));
    }

    let store = &*app.store;
    let failed = |e: StoreError| {
        tracing::error!(error = %e, "store failure during login");
        oauth(ErrorCode::Unavailable, "the store could not complete the request; retry later")
    };
    let mut found = None;
    for org in store.orgs().await.map_err(failed)? {
        if let Some(app_record) = store
            .find_by_key(&org.id, "ConnectedApp", &consumer_key)
            .await
            .map_err(failed)?
            .into_iter()
            .next()
        {
            found = Some((org.id, app_record));
            break;
        }
    }
    let (org, connected_app) = found.ok_or_else(|| {
        oauth(ErrorCode::InvalidClientId, "client identifier invalid: no connected app has this consumer key")
    })?;
    let pem = connected_app.str("Certificate").or_else(|| connected_app.str("PublicKey")).unwrap_or("");
    let key = DecodingKey::from_rsa_pem(pem.as_bytes())
        .map_err(|_| oauth(ErrorCode::InvalidGrant, "the connected app has no usable certificate"))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(assertion, &key, &validation).map_err(|_| {
        oauth(
            ErrorCode::InvalidGrant,
            "invalid assertion: the signature does not verify with the connected app's certificate",
        )
    })?;
    let user = store
        .find_by_key(&org, "User", &username)
        .await
        .map_err(failed)?
        .into_iter()
        .next()
        .filter(|u| u.bool("IsActive").unwrap_or(true))
        .ok_or_else(|| {
            oauth(ErrorCode::InvalidGrant, format!("user `{username}` does not exist or is inactive"))
        })?;
    let listed = |field: &str, value: Option<&str>| {
        connected_app
            .fields
            .get(field)
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v.as_str().is_some() && v.as_str() == value))
    };
    if !listed("PreAuthorizedUsers", Some(username.as_str()))
        && !listed("PreAuthorizedProfiles", user.str("ProfileName"))
    {
        return Err(oauth(ErrorCode::InvalidGrant, format!("user hasn't approved this consumer: `{username}` is not pre-authorized for the connected app")));
    }

    let raw: Vec<u8> = (0..48).map(|_| rand::thread_rng().gen()).collect();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let access_token = format!("{}!{}", org.as_str(), secret);
    let now_ms = app.now_ms();
    let ttl_ms = app.settings.session_lifetime.as_millis() as i64;
    let mut session = Record::new(
        SfId::generate(KeyPrefix::AuthSession, &mut rand::thread_rng()),
        org.clone(),
        "AuthSession",
        Some(hash_token(&access_token)),
        now_ms,
    );
    session.set("UserId", user.id.to_string());
    session.set("ConnectedAppId", connected_app.id.to_string());
    session.set("ExpiresAt", now_ms + ttl_ms);
    store.insert(session).await.map_err(failed)?;
    let instance = instance_url(app, headers, uri);
    Ok(Json(json!({
        "access_token": access_token,
        "scope": connected_app.fields.get("Scopes").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" ")).filter(|s| !s.is_empty()).unwrap_or_else(|| "api".into()),
        "instance_url": instance,
        "id": format!("{instance}/id/{}/{}", org.to_18(), user.id.to_18()),
        "token_type": "Bearer",
        "issued_at": now_ms.to_string(),
    }))
    .into_response())
}

/// The caller of a CRM API request.
pub struct Session {
    pub org: SfId,
    pub user: SfId,
}

fn invalid_session() -> CrmError {
    CrmError::new(ErrorCode::InvalidSessionId, "Session expired or invalid")
}

pub(crate) async fn session(app: &App, headers: &HeaderMap) -> CrmResult<Session> {
    let value =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(invalid_session)?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("OAuth "))
        .ok_or_else(invalid_session)?
        .trim();
    let org = token
        .split('!')
        .next()
        .and_then(|o| SfId::parse_with(o, KeyPrefix::Organization).ok())
        .ok_or_else(invalid_session)?;
    let found = app
        .store
        .find_by_key(&org, "AuthSession", &hash_token(token))
        .await?
        .into_iter()
        .next()
        .ok_or_else(invalid_session)?;
    if found.i64("ExpiresAt").unwrap_or(0) <= app.now_ms() {
        return Err(invalid_session());
    }
    let user = found.str("UserId").and_then(|u| SfId::parse(u).ok()).ok_or_else(invalid_session)?;
    Ok(Session { org, user })
}

pub(crate) fn check_version(v: &str) -> CrmResult<String> {
    let n = v.strip_prefix('v').and_then(|n| n.strip_suffix(".0")).and_then(|n| n.parse::<u32>().ok());
    match n {
        Some(n) if VERSIONS.contains(&n) => Ok(format!("{n}.0")),
        _ => Err(CrmError::new(
            ErrorCode::NotFound,
            format!(
                "The requested resource does not exist: API version `{v}` is not served; use v{}.0 to v{}.0",
                VERSIONS.start(),
                VERSIONS.end()
            ),
        )),
    }
}

/// `GET /services/data/`: the versions served.
pub async fn versions() -> Response {
    let list: Vec<Value> = VERSIONS
        .map(|v| json!({"label": format!("Voxbridge {v}.0"), "url": format!("/services/data/v{v}.0"), "version": format!("{v}.0")}))
        .collect();
    Json(list).into_response()
}

/// `GET /services/data/vNN.N/`: the resources of a version.
pub async fn resources(Path(v): Path<String>) -> CrmResult<Response> {
    let v = check_version(&v)?;
    Ok(Json(json!({
        "sobjects": format!("/services/data/v{v}/sobjects"),
        "query": format!("/services/data/v{v}/query"),
        "search": format!("/services/data/v{v}/search"),
    }))
    .into_response())
}

/// The org's schema: the standard objects plus its custom fields.
pub(crate) async fn schema(app: &App, org: &SfId) -> CrmResult<Schema> {
    Ok(schema_with_fields(app, org).await?.0)
}

/// [`schema`], with the org's CustomField records it was built from (writes check values
/// against them).
pub(crate) async fn schema_with_fields(app: &App, org: &SfId) -> CrmResult<(Schema, Vec<Record>)> {
    let mut schema = Schema::standard();
    let custom = app.store.list(org, "CustomField").await?;
    for (r, e) in schema.add_custom_field_records(custom.iter()) {
        tracing::warn!(field = ?r.key, error = ?e, "custom field definition skipped");
    }
    Ok((schema, custom))
}

pub(crate) fn object<'s>(schema: &'s Schema, name: &str) -> CrmResult<&'s ObjectDef> {
    schema.object(name).ok_or_else(|| {
        CrmError::new(
            ErrorCode::NotFound,
            format!("The requested resource does not exist: sObject type '{name}' is not supported."),
        )
    })
}

fn type_name(t: FieldType) -> &'static str {
    match t {
        FieldType::Id => "id",
        FieldType::String => "string",
        FieldType::TextArea => "textarea",
        FieldType::Phone => "phone",
        FieldType::Email => "email",
        FieldType::Url => "url",
        FieldType::Picklist => "picklist",
        FieldType::Boolean => "boolean",
        FieldType::Int => "int",
        FieldType::Double => "double",
        FieldType::Date => "date",
        FieldType::DateTime => "datetime",
        FieldType::Reference => "reference",
    }
}

/// Fields the server maintains; clients cannot set them.
const SYSTEM_FIELDS: &[&str] = &[
    "Id",
    "CreatedDate",
    "LastModifiedDate",
    "SystemModstamp",
    "CreatedById",
    "LastModifiedById",
    "CaseNumber",
    "IsDeleted",
];

fn key_prefix_of(name: &str) -> Option<&'static str> {
    KeyPrefix::from_sobject(name).map(KeyPrefix::as_str)
}

fn describe_object(o: &ObjectDef, v: &str) -> Value {
    let fields: Vec<Value> = o
        .fields
        .iter()
        .filter(|f| f.alias_of.is_none())
        .map(|f| {
            let system = SYSTEM_FIELDS.contains(&f.name.as_str());
            json!({
                "name": f.name,
                "label": label(&f.name),
                "type": type_name(f.ty),
                "soapType": format!("xsd:{}", f.ty.soap_name()),
                "length": if f.ty.is_text() { 255 } else { 0 },
                "nillable": f.name != "Id",
                "createable": !system,
                "updateable": !system,
                "custom": f.name.ends_with("__c"),
                "nameField": f.name_field,
                "referenceTo": f.reference_to,
                "relationshipName": f.relationship_name,
                "idLookup": f.name == "Id" || o.key_field.as_deref() == Some(f.name.as_str()),
            })
        })
        .collect();
    json!({
        "name": o.name,
        "label": label(&o.name),
        "custom": o.name.ends_with("__c"),
        "keyPrefix": key_prefix_of(&o.name),
        "createable": true,
        "updateable": true,
        "deletable": true,
        "queryable": true,
        "searchable": o.searchable,
        "fields": fields,
        "urls": {
            "sobject": format!("/services/data/v{v}/sobjects/{}", o.name),
            "describe": format!("/services/data/v{v}/sobjects/{}/describe", o.name),
            "rowTemplate": format!("/services/data/v{v}/sobjects/{}/{{ID}}", o.name),
        },
    })
}

/// `CallStartDateTime` → `Call Start Date Time`; custom fields lose `__c`.
fn label(name: &str) -> String {
    let base = name.strip_suffix("__c").unwrap_or(name);
    let mut out = String::new();
    let mut prev_lower = false;
    for c in base.chars() {
        if c == '_' {
            out.push(' ');
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower {
            out.push(' ');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c);
    }
    out
}

/// `GET /services/data/vNN.N/sobjects`: the global describe.
pub async fn describe_global(
    State(app): AppState,
    Path(v): Path<String>,
    headers: HeaderMap,
) -> CrmResult<Response> {
    let v = check_version(&v)?;
    let s = session(&app, &headers).await?;
    let schema = schema(&app, &s.org).await?;
    let sobjects: Vec<Value> = schema
        .objects()
        .map(|o| {
            json!({"name": o.name, "label": label(&o.name), "keyPrefix": key_prefix_of(&o.name), "custom": o.name.ends_with("__c"),
                "createable": true, "queryable": true, "searchable": o.searchable,
                "urls": {"sobject": format!("/services/data/v{v}/sobjects/{}", o.name), "describe": format!("/services/data/v{v}/sobjects/{}/describe", o.name)}})
        })
        .collect();
    Ok(Json(json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects})).into_response())
}

/// `GET /services/data/vNN.N/sobjects/{Type}/describe`
pub async fn describe(
    State(app): AppState,
    Path((v, ty)): Path<(String, String)>,
    headers: HeaderMap,
) -> CrmResult<Response> {
    let v = check_version(&v)?;
    let s = session(&app, &headers).await?;
    let schema = schema(&app, &s.org).await?;
    Ok(Json(describe_object(object(&schema, &ty)?, &v)).into_response())
}

/// `GET /services/data/vNN.N/sobjects/{Type}`: basic information about the object.
pub async fn sobject_info(
    State(app): AppState,
    Path((v, ty)): Path<(String, String)>,
    headers: HeaderMap,
) -> CrmResult<Response> {
    let v = check_version(&v)?;
    let s = session(&app, &headers).await?;
    let schema = schema(&app, &s.org).await?;
    let o = object(&schema, &ty)?;
    let recent: Vec<Value> = app
        .store
        .list(&s.org, &o.name)
        .await?
        .iter()
        .rev()
        .take(10)
        .map(|r| record_json(r, o, &v, None))
        .collect();
    Ok(Json(json!({"objectDescribe": {"name": o.name, "label": label(&o.name), "keyPrefix": key_prefix_of(&o.name)}, "recentItems": recent})).into_response())
}

/// A record in REST shape; `only` restricts the fields.
fn record_json(r: &Record, o: &ObjectDef, v: &str, only: Option<&[String]>) -> Value {
    let mut m = Map::new();
    m.insert(
        "attributes".into(),
        json!({"type": o.name, "url": format!("/services/data/v{v}/sobjects/{}/{}", o.name, r.id.to_18())}),
    );
    let wanted = |name: &str| only.is_none_or(|f| f.iter().any(|w| w.eq_ignore_ascii_case(name)));
    // The platform answers with the Id even when `fields` leaves it out.
    m.insert("Id".into(), r.id.to_18().into());
    for f in &o.fields {
        if f.name == "Id" || f.alias_of.is_some() || !wanted(&f.name) {
            continue;
        }
        let value = match f.name.as_str() {
            "CreatedDate" => voxbridge_core::time::format_ms(r.created_ms).replace('Z', "+0000").into(),
            "LastModifiedDate" | "SystemModstamp" => {
                voxbridge_core::time::format_ms(r.modified_ms).replace('Z', "+0000").into()
            }
            _ => match r.fields.get(&f.name) {
                Some(Value::String(s)) if f.ty.is_id() => SfId::parse(s)
                    .map(|id| Value::from(id.to_18()))
                    .unwrap_or_else(|_| Value::from(s.clone())),
                Some(x) => x.clone(),
                None => Value::Null,
            },
        };
        m.insert(f.name.clone(), value);
    }
    Value::Object(m)
}

pub(crate) fn parse_id(id: &str, o: &ObjectDef) -> CrmResult<SfId> {
    let parsed = SfId::parse(id).map_err(|e| {
        CrmError::on(
            ErrorCode::MalformedId,
            format!("{} ID: id value of incorrect type: {id} ({e})", o.name),
            "Id",
        )
    })?;
    if let Some(p) = key_prefix_of(&o.name) {
        if parsed.prefix_str() != p {
            return Err(CrmError::on(
                ErrorCode::MalformedId,
                format!("{} ID: id value of incorrect type: {id}", o.name),
                "Id",
            ));
        }
    }
    Ok(parsed)
}

#[derive(Deserialize)]
pub struct FieldsQuery {
    fields: Option<String>,
}

/// `GET /services/data/vNN.N/sobjects/{Type}/{id}`
pub async fn get_record(
    State(app): AppState,
    Path((v, ty, id)): Path<(String, String, String)>,
    Query(q): Query<FieldsQuery>,
    headers: HeaderMap,
) -> CrmResult<Response> {
    let v = check_version(&v)?;
    let s = session(&app, &headers).await?;
    let schema = schema(&app, &s.org).await?;
    let o = object(&schema, &ty)?;
    let id = parse_id(&id, o)?;
    let only: Option<Vec<String>> =
        q.fields.map(|f| f.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect());
    if let Some(fields) = &only {
        for f in fields {
            if o.field(f).is_none() {
                return Err(CrmError::on(
                    ErrorCode::InvalidField,
                    format!("No such column '{f}' on sobject of type {}", o.name),
                    f,
                ));
            }
        }
    }
    let r = app
        .store
        .get(&s.org, &id)
        .await?
        .filter(|r| r.sobject.eq_ignore_ascii_case(&o.name))
        .ok_or_else(not_found)?;
    Ok(Json(record_json(&r, o, &v, only.as_deref())).into_response())
}

fn not_found() -> CrmError {
    CrmError::new(ErrorCode::NotFound, "The requested resource does not exist")
}

pub(crate) fn json_body(headers: &HeaderMap, bytes: &[u8]) -> CrmResult<Map<String, Value>> {
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    if !ctype.to_ascii_lowercase().contains("json") {
        return Err(CrmError::new(
            ErrorCode::UnsupportedMediaType,
            format!("Content-Type `{ctype}` is not supported; send application/json"),
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => {
            Err(CrmError::new(ErrorCode::JsonParserError, "the body must be a JSON object of field values"))
        }
        Err(e) => Err(CrmError::new(ErrorCode::JsonParserError, format!("the body is not valid JSON: {e}"))),
    }
}

/// Checks field values against the object and returns what to store.
pub(crate) fn check_fields(o: &ObjectDef, body: Map<String, Value>, custom: &[Record]) -> CrmResult<Fields> {
    let mut out = Fields::new();
    for (name, value) in body {
        if name == "attributes" {
            continue;
        }
        let Some(f) = o.field(&name) else {
            return Err(CrmError::on(
                ErrorCode::InvalidField,
                format!("No such column '{name}' on sobject of type {}", o.name),
                &name,
            ));
        };
        if SYSTEM_FIELDS.iter().any(|s| s.eq_ignore_ascii_case(&f.name)) {
            return Err(CrmError::on(ErrorCode::InvalidFieldForInsertUpdate, format!("Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.", f.name), &f.name));
        }
        if crate::body::has_nul(&value) {
            return Err(CrmError::on(
                ErrorCode::JsonParserError,
                format!("{}: text contains a NUL character", f.name),
                &f.name,
            ));
        }
        let type_error = || {
            CrmError::on(
                ErrorCode::JsonParserError,
                format!(
                    "Cannot deserialize instance of {} from {value} for field {}",
                    f.ty.soap_name(),
                    f.name
                ),
                &f.name,
            )
        };
        let stored =
            match (f.ty, &value) {
                (_, Value::Null) => Value::Null,
                (FieldType::Boolean, Value::Bool(_)) => value.clone(),
                (FieldType::Boolean, Value::String(s))
                    if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") =>
                {
                    Value::Bool(s.eq_ignore_ascii_case("true"))
                }
                (FieldType::Int | FieldType::Double, Value::Number(_)) => value.clone(),
                (FieldType::Int | FieldType::Double, Value::String(s)) => s
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(type_error)?,
                (FieldType::Id | FieldType::Reference, Value::String(s)) if s.is_empty() => Value::Null,
                (FieldType::Id | FieldType::Reference, Value::String(s)) => {
                    let id = SfId::parse(s).map_err(|_| {
                        CrmError::on(
                            ErrorCode::MalformedId,
                            format!("{}: id value of incorrect type: {s}", f.name),
                            &f.name,
                        )
                    })?;
                    Value::String(id.to_string())
                }
                (FieldType::Date, Value::String(s)) => {
                    match chrono::NaiveDate::parse_from_str(s.get(..10).unwrap_or(""), "%Y-%m-%d") {
                        Ok(d) => Value::String(d.format("%Y-%m-%d").to_string()),
                        Err(_) => return Err(type_error()),
                    }
                }
                (FieldType::DateTime, Value::String(s)) => match voxbridge_core::time::parse_iso_ms(s) {
                    Some(ms) => Value::String(voxbridge_core::time::format_ms(ms)),
                    None => return Err(type_error()),
                },
                (t, Value::String(s)) if t.is_text() => {
                    let max = custom_length(custom, &o.name, &f.name)
                        .unwrap_or(if t == FieldType::TextArea { 131_072 } else { 255 });
                    if s.chars().count() > max {
                        return Err(CrmError::on(
                            ErrorCode::StringTooLong,
                            format!("{}: data value too large: {} (max length={max})", f.name, truncate(s)),
                            &f.name,
                        ));
                    }
                    value.clone()
                }
                (t, Value::Number(_) | Value::Bool(_)) if t.is_text() => Value::String(value.to_string()),
                _ => return Err(type_error()),
            };
        out.insert(f.name.clone(), stored);
    }
    Ok(out)
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}

fn custom_length(custom: &[Record], object: &str, field: &str) -> Option<usize> {
    custom
        .iter()
        .find(|r| {
            r.str("Object").is_some_and(|o| o.eq_ignore_ascii_case(object))
                && r.str("Name").is_some_and(|n| n.eq_ignore_ascii_case(field))
        })
        .and_then(|r| r.i64("Length"))
        .and_then(|l| usize::try_from(l).ok())
}

/// Fields an object cannot be created without.
fn required_fields(o: &ObjectDef, custom: &[Record]) -> Vec<String> {
    let mut req: Vec<String> = match o.name.as_str() {
        "Contact" => vec!["LastName".into()],
        "Account" => vec!["Name".into()],
        "Lead" => vec!["LastName".into(), "Company".into()],
        "User" => vec!["Username".into(), "LastName".into()],
        _ => vec![],
    };
    req.retain(|f| o.field(f).is_some());
    for r in custom {
        if r.str("Object").is_some_and(|x| x.eq_ignore_ascii_case(&o.name))
            && r.bool("Required") == Some(true)
        {
            if let Some(n) = r.str("Name") {
                req.push(n.to_string());
            }
        }
    }
    req
}

/// `POST /services/data/vNN.N/sobjects/{Type}` → 201 `{id, success, errors}`
pub async fn create_record(
    State(app): AppState,
    Path((v, ty)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> CrmResult<Response> {
    check_version(&v)?;
    let s = session(&app, &headers).await?;
    if let Some(event) = crate::platform_events::is_platform_event(&ty) {
        return crate::platform_events::publish(&app, &s, event, json_body(&headers, &bytes)?).await;
    }
    let (schema, custom) = schema_with_fields(&app, &s.org).await?;
    let o = object(&schema, &ty)?;
    let record = prepare_create(&app, &s, o, &custom, json_body(&headers, &bytes)?).await?;
    let id = record.id.clone();
    app.store.insert(record).await?;
    crate::automations::created(&app, &s.org, &o.name, &id).await;
    Ok((StatusCode::CREATED, Json(json!({"id": id.to_18(), "success": true, "errors": []}))).into_response())
}

/// Checks a create of an `o` record from `body` and returns the record to insert, with its
/// new id and the fields the platform sets (owner, case number).
pub(crate) async fn prepare_create(
    app: &App,
    s: &Session,
    o: &ObjectDef,
    custom: &[Record],
    body: Map<String, Value>,
) -> CrmResult<Record> {
    let mut fields = check_fields(o, body, custom)?;
    crate::automations::check_record(&o.name, None, &fields)?;
    let missing: Vec<String> = required_fields(o, custom)
        .into_iter()
        .filter(|f| fields.get(f).is_none_or(|v| v.is_null() || v == ""))
        .collect();
    if !missing.is_empty() {
        return Err(CrmError {
            error: ApiError::new(
                ErrorCode::RequiredFieldMissing,
                format!("Required fields are missing: [{}]", missing.join(", ")),
            ),
            fields: missing,
        });
    }
    let id = match KeyPrefix::from_sobject(&o.name) {
        Some(p) => SfId::generate(p, &mut rand::thread_rng()),
        None => SfId::generate(KeyPrefix::CustomObject, &mut rand::thread_rng()),
    };
    if o.name == "Case" {
        fields.insert("CaseNumber".into(), app.next_case_number(&s.org).await?.into());
        fields.entry("Status".to_string()).or_insert_with(|| "New".into());
        let closed =
            fields.get("Status").and_then(Value::as_str).is_some_and(|st| st.eq_ignore_ascii_case("Closed"));
        fields.insert("IsClosed".into(), closed.into());
    }
    fields.entry("OwnerId".to_string()).or_insert_with(|| s.user.to_string().into());
    if o.field("OwnerId").is_none() {
        fields.remove("OwnerId");
    }
    let key = o.key_field.as_ref().and_then(|k| fields.get(k)).and_then(Value::as_str).map(str::to_string);
    let mut record = Record::new(id, s.org.clone(), o.name.clone(), key, app.now_ms());
    record.fields = fields;
    Ok(record)
}

/// `PATCH /services/data/vNN.N/sobjects/{Type}/{id}` → 204
pub async fn update_record(
    State(app): AppState,
    Path((v, ty, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> CrmResult<Response> {
    check_version(&v)?;
    let s = session(&app, &headers).await?;
    let (schema, custom) = schema_with_fields(&app, &s.org).await?;
    let o = object(&schema, &ty)?;
    let id = parse_id(&id, o)?;
    let mut update = prepare_update(&app, &s, o, &custom, id, json_body(&headers, &bytes)?).await?;
    app.store.apply(std::mem::take(&mut update.ops)).await?;
    update.written(&app, &s.org, &o.name).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// An update, checked and ready to write.
pub(crate) struct PreparedUpdate {
    pub id: SfId,
    pub ops: Vec<WriteOp>,
    /// The key of the Conversation it changes, whose cached state must be dropped.
    conversation_key: Option<String>,
}

impl PreparedUpdate {
    /// What follows a committed update: the telephony API's cached conversation state is
    /// dropped and the org's automations run.
    pub(crate) async fn written(&self, app: &App, org: &SfId, sobject: &str) {
        app.forget_conversation(org, self.conversation_key.as_deref());
        crate::automations::updated(app, org, sobject, &self.id).await;
    }
}

/// Checks an update of the `o` record `id` with `body` and returns what to write.
pub(crate) async fn prepare_update(
    app: &App,
    s: &Session,
    o: &ObjectDef,
    custom: &[Record],
    id: SfId,
    body: Map<String, Value>,
) -> CrmResult<PreparedUpdate> {
    let mut patch = check_fields(o, body, custom)?;
    let existing = app
        .store
        .get(&s.org, &id)
        .await?
        .filter(|r| r.sobject.eq_ignore_ascii_case(&o.name))
        .ok_or_else(not_found)?;
    crate::automations::check_record(&o.name, existing.key.as_deref(), &patch)?;
    if o.name == "Case" {
        if let Some(st) = patch.get("Status").and_then(Value::as_str) {
            let closed = st.eq_ignore_ascii_case("Closed");
            patch.insert("IsClosed".into(), closed.into());
        }
    }
    let key_changes = o.key_field.as_ref().is_some_and(|k| patch.contains_key(k));
    let conversation_key = (o.name == "Conversation").then(|| existing.key.clone()).flatten();
    let ops = if key_changes {
        // The lookup key is a column: rewrite the record so it stays findable by key.
        let mut r = existing;
        for (k, v) in patch {
            r.fields.insert(k, v);
        }
        r.key =
            o.key_field.as_ref().and_then(|k| r.fields.get(k)).and_then(Value::as_str).map(str::to_string);
        r.modified_ms = app.now_ms();
        vec![WriteOp::Delete { org: s.org.clone(), id: id.clone() }, WriteOp::Insert(r)]
    } else {
        vec![WriteOp::Update { org: s.org.clone(), id: id.clone(), patch, now_ms: app.now_ms() }]
    };
    Ok(PreparedUpdate { id, ops, conversation_key })
}

/// `DELETE /services/data/vNN.N/sobjects/{Type}/{id}` → 204
pub async fn delete_record(
    State(app): AppState,
    Path((v, ty, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> CrmResult<Response> {
    check_version(&v)?;
    let s = session(&app, &headers).await?;
    let schema = schema(&app, &s.org).await?;
    let o = object(&schema, &ty)?;
    let id = parse_id(&id, o)?;
    let existing = app
        .store
        .get(&s.org, &id)
        .await?
        .filter(|r| r.sobject.eq_ignore_ascii_case(&o.name))
        .ok_or_else(not_found)?;
    app.store.apply(vec![WriteOp::Delete { org: s.org.clone(), id }]).await?;
    app.forget_conversation(&s.org, existing.key.as_deref().filter(|_| o.name == "Conversation"));
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
pub struct QueryText {
    q: Option<String>,
}

/// Loads what a bound query reads: candidates by key or by an indexed date-time range
/// when the filter allows, else the whole object, plus the parents it traverses.
pub(crate) async fn load_for(app: &App, org: &SfId, bound: &soql::BoundQuery) -> CrmResult<MemorySource> {
    load_at(app, org, bound, &soql::EvalContext::new(app.now_ms())).await
}

/// [`load_for`] with relative dates resolved by `ctx`, the context the query is then
/// evaluated in (so `TODAY` is the same day for both).
async fn load_at(
    app: &App,
    org: &SfId,
    bound: &soql::BoundQuery,
    ctx: &soql::EvalContext,
) -> CrmResult<MemorySource> {
    let records = candidates(app, org, bound, ctx).await?;
    let parents = bound.parent_ids(records.iter());
    let mut source = MemorySource::new(records);
    add_parents(app, org, &mut source, parents).await?;
    Ok(source)
}

/// The records a query may match. Transcript entries live apart from other records and
/// are read per conversation.
async fn candidates(
    app: &App,
    org: &SfId,
    bound: &soql::BoundQuery,
    ctx: &soql::EvalContext,
) -> CrmResult<Vec<Record>> {
    if bound.object.eq_ignore_ascii_case("ConversationEntry") {
        let conversations: Vec<SfId> = match bound.key_lookup() {
            Some(KeyLookup::Key { values, .. }) => {
                values.iter().filter_map(|v| SfId::parse(v).ok()).collect()
            }
            _ => app.store.list(org, "Conversation").await?.into_iter().map(|c| c.id).collect(),
        };
        let mut out = Vec::new();
        for c in conversations {
            out.extend(app.store.entries(org, &c).await?.iter().map(soql::transcript_record));
        }
        return Ok(out);
    }
    Ok(match bound.key_lookup() {
        Some(KeyLookup::Ids(ids)) => {
            let mut out = Vec::new();
            for id in ids {
                out.extend(
                    app.store.get(org, &id).await?.filter(|r| r.sobject.eq_ignore_ascii_case(&bound.object)),
                );
            }
            out
        }
        Some(KeyLookup::Key { values, .. }) => {
            let mut out = Vec::new();
            for v in values {
                out.extend(app.store.find_by_key(org, &bound.object, &v).await?);
            }
            out
        }
        // A range the store indexes narrows the scan; the evaluator applies the rest of
        // the filter to what comes back.
        None => match bound
            .range_lookups(ctx)
            .into_iter()
            .find(|r| voxbridge_store::has_range_index(&bound.object, &r.field))
        {
            Some(r) => app.store.find_range(org, &bound.object, &r.field, r.lower, r.upper, None).await?,
            None => app.store.list(org, &bound.object).await?,
        },
    })
}

async fn add_parents(app: &App, org: &SfId, source: &mut MemorySource, parents: Vec<SfId>) -> CrmResult<()> {
    let mut seen = HashSet::new();
    for id in parents {
        if seen.insert(id.clone()) {
            if let Some(p) = app.store.get(org, &id).await? {
                source.push(p);
            }
        }
    }
    Ok(())
}

/// `GET /services/data/vNN.N/query?q=SOQL` (and `queryAll`).
pub async fn query(
    State(app): AppState,
    Path(v): Path<String>,
    Query(q): Query<QueryText>,
    headers: HeaderMap,
) -> CrmResult<Response> {
    let v = check_version(&v)?;
    let s = session(&app, &headers).await?;
    let text =
        q.q.filter(|t| !t.trim().is_empty())
            .ok_or_else(|| CrmError::new(ErrorCode::MalformedQuery, "the query parameter `q` is missing"))?;
    let schema = schema(&app, &s.org).await?;
    let bound = soql::bind(&soql::parse_query(&text)?, &schema)?;
    // Record URLs name the version as the path does: `v62.0`.
    let ctx = soql::EvalContext::new(app.now_ms()).with_api_version(format!("v{v}"));
    let source = load_at(&app, &s.org, &bound, &ctx).await?;
    let result = soql::evaluate(&bound, &source, &ctx);
    let mut body = result.to_json();
    // Pages of 2,000 records; the rest is served from a cursor.
    if let Some(records) = body.get_mut("records").and_then(Value::as_array_mut) {
        if records.len() > PAGE_SIZE {
            let total = records.len();
            let rest: Vec<Value> = records.split_off(PAGE_SIZE);
            let locator = app.put_cursor(&s, rest, total, PAGE_SIZE);
            body["done"] = false.into();
            body["nextRecordsUrl"] = format!("/services/data/v{v}/query/{locator}-{PAGE_SIZE}").into();
        }
    }
    Ok(Json(body).into_response())
}

/// `GET /services/data/vNN.N/query/{locator}`: the next page of a query.
pub async fn query_more(
    State(app): AppState,
    Path((v, locator)): Path<(String, String)>,
    headers: HeaderMap,
) -> CrmResult<Response> {
    let v = check_version(&v)?;
    let s = session(&app, &headers).await?;
    let cursor_id = locator.split('-').next().unwrap_or("");
    let mut page = app
        .take_cursor(&s, cursor_id)
        .ok_or_else(|| CrmError::new(ErrorCode::InvalidQueryLocator, "invalid query locator"))?;
    let mut body = json!({"totalSize": page.total, "done": true});
    if page.records.len() > PAGE_SIZE {
        let rest = page.records.split_off(PAGE_SIZE);
        let next = page.offset + PAGE_SIZE;
        let locator = app.put_cursor(&s, rest, page.total, next);
        body["done"] = false.into();
        body["nextRecordsUrl"] = format!("/services/data/v{v}/query/{locator}-{next}").into();
    }
    let rest = page;
    body["records"] = Value::Array(rest.records);
    Ok(Json(body).into_response())
}

/// `GET /services/data/vNN.N/search?q=SOSL`
pub async fn search(
    State(app): AppState,
    Path(v): Path<String>,
    Query(q): Query<QueryText>,
    headers: HeaderMap,
) -> CrmResult<Response> {
    let v = check_version(&v)?;
    let s = session(&app, &headers).await?;
    let text =
        q.q.filter(|t| !t.trim().is_empty())
            .ok_or_else(|| CrmError::new(ErrorCode::MalformedSearch, "the query parameter `q` is missing"))?;
    let schema = schema(&app, &s.org).await?;
    let parsed = soql::parse_search(&text, &schema)?;
    let mut source = MemorySource::default();
    for r in &parsed.returning {
        let records = candidates(&app, &s.org, &r.query, &soql::EvalContext::new(app.now_ms())).await?;
        let parents = r.query.parent_ids(records.iter());
        for rec in records {
            source.push(rec);
        }
        add_parents(&app, &s.org, &mut source, parents).await?;
    }
    let ctx = soql::EvalContext::new(app.now_ms()).with_api_version(format!("v{v}"));
    Ok(Json(soql::search(&parsed, &source, &ctx).to_json()).into_response())
}

/// Remaining pages of a query, kept in memory for a while. `offset` is the position of the
/// first remaining record in the whole result.
pub struct Cursor {
    org: SfId,
    user: SfId,
    records: Vec<Value>,
    total: usize,
    offset: usize,
    created_ms: i64,
}

/// Cursors live 15 minutes, as on the platform.
const CURSOR_TTL_MS: i64 = 15 * 60 * 1000;

impl App {
    /// The org's next case number. The highest stored number is read once per org and
    /// counted up in memory after that, so numbering does not read every Case.
    pub(crate) async fn next_case_number(&self, org: &SfId) -> CrmResult<String> {
        let mut counters = self.case_numbers.lock().await;
        let last = match counters.get(org) {
            Some(n) => *n,
            None => self
                .store
                .list(org, "Case")
                .await?
                .iter()
                .filter_map(|c| c.str("CaseNumber").and_then(|n| n.parse::<u64>().ok()))
                .max()
                .unwrap_or(1000),
        };
        counters.insert(org.clone(), last + 1);
        Ok(format!("{:08}", last + 1))
    }

    fn put_cursor(&self, s: &Session, records: Vec<Value>, total: usize, offset: usize) -> String {
        let now = self.now_ms();
        let id = SfId::generate(KeyPrefix::QueryLocator, &mut rand::thread_rng()).to_string();
        let mut cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
        cursors.retain(|_, c| now - c.created_ms < CURSOR_TTL_MS);
        cursors.insert(
            id.clone(),
            Cursor { org: s.org.clone(), user: s.user.clone(), records, total, offset, created_ms: now },
        );
        id
    }

    fn take_cursor(&self, s: &Session, id: &str) -> Option<Cursor> {
        let mut cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
        let c = cursors.remove(id)?;
        (c.org == s.org && c.user == s.user).then_some(c)
    }
}
