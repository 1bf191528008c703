//! Verification of the Telephony Integration API's bearer JWTs.
//!
//! A token is accepted only if: its header says RS256 (nothing else, so `none`, HMAC and
//! key-confusion tokens fail before any key is touched); `iss` is an org id (15 or 18
//! characters) and `sub` names a call center of that org; the signature verifies with that
//! call center's registered public key or certificate; `exp` is present, not past and not
//! further ahead than the configured maximum; `aud`, when present (always, in strict mode),
//! is the configured audience; and a `jti`, when present, has not been seen before.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{header, HeaderMap};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::RwLock;
use voxbridge_core::{ApiError, ErrorCode, Record, SfId};
use voxbridge_store::Store;

use crate::Settings;

/// The authenticated caller: one call center of one org.
#[derive(Debug, Clone)]
pub struct Caller {
    pub org: SfId,
    pub call_center: Arc<Record>,
}

impl Caller {
    pub fn call_center_id(&self) -> &SfId {
        &self.call_center.id
    }

    pub fn api_name(&self) -> &str {
        self.call_center.key.as_deref().unwrap_or("")
    }
}

struct CallCenterKey {
    record: Arc<Record>,
    key: Option<DecodingKey>,
}

/// Call centers and their decoding keys, loaded from the store on first use.
#[derive(Default)]
pub struct KeyCache {
    entries: RwLock<HashMap<(SfId, String), Arc<CallCenterKey>>>,
}

impl KeyCache {
    async fn get(
        &self,
        store: &dyn Store,
        org: &SfId,
        api_name: &str,
    ) -> Result<Option<Arc<CallCenterKey>>, ApiError> {
        let k = (org.clone(), api_name.to_string());
        if let Some(e) = self.entries.read().await.get(&k) {
            return Ok(Some(e.clone()));
        }
        let found = store.find_by_key(org, "CallCenter", api_name).await.map_err(|e| {
            tracing::error!(error = %e, "call center lookup failed");
            ApiError::new(ErrorCode::Unavailable, "the store could not complete the request; retry later")
        })?;
        let Some(record) = found.into_iter().next() else { return Ok(None) };
        let pem = record.str("PublicKey").or_else(|| record.str("Certificate")).unwrap_or("");
        let key = DecodingKey::from_rsa_pem(pem.as_bytes()).ok();
        if key.is_none() {
            tracing::warn!(call_center = api_name, "call center has no usable public key or certificate");
        }
        let entry = Arc::new(CallCenterKey { record: Arc::new(record), key });
        self.entries.write().await.insert(k, entry.clone());
        Ok(Some(entry))
    }
}

#[derive(Deserialize)]
struct UnverifiedClaims {
    iss: Option<Value>,
    sub: Option<Value>,
    aud: Option<Value>,
    exp: Option<Value>,
    nbf: Option<Value>,
    jti: Option<Value>,
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidToken, msg)
}

fn as_secs(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

/// Clock skew tolerated on `nbf`.
const SKEW_SECS: i64 = 60;

/// Authenticates a request from its `Authorization` header.
pub async fn authenticate(
    headers: &HeaderMap,
    store: &dyn Store,
    keys: &KeyCache,
    settings: &Settings,
    now_ms: i64,
) -> Result<Caller, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| invalid("missing `Authorization: Bearer <JWT>` header"))?
        .to_str()
        .map_err(|_| invalid("the Authorization header is not valid text"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| invalid("the Authorization header must be `Bearer <JWT>`"))?;
    authenticate_token(token, store, keys, settings, now_ms).await
}

/// Authenticates a bare token (also used by subscriptions, which pass it as a query parameter).
pub async fn authenticate_token(
    token: &str,
    store: &dyn Store,
    keys: &KeyCache,
    settings: &Settings,
    now_ms: i64,
) -> Result<Caller, ApiError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| {
        invalid(
            "the bearer token is not a JWT signed with RS256 (header unreadable or algorithm not allowed)",
        )
    })?;
    if header.alg != Algorithm::RS256 {
        return Err(invalid(format!("token algorithm {:?} is not accepted; sign with RS256", header.alg)));
    }
    let payload = token.split('.').nth(1).ok_or_else(|| invalid("the bearer token is not a JWT"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| invalid("the token's claims are not base64url"))?;
    let claims: UnverifiedClaims =
        serde_json::from_slice(&bytes).map_err(|_| invalid("the token's claims are not a JSON object"))?;

    let iss = claims
        .iss
        .as_ref()
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("the token has no `iss` (the org id)"))?;
    let org = SfId::parse(iss).map_err(|e| invalid(format!("`iss` must be the org id: {e}")))?;
    if org.prefix_str() != "00D" {
        return Err(invalid("`iss` must be the org id (it starts with 00D)"));
    }
    let sub = claims
        .sub
        .as_ref()
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("the token has no `sub` (the call center API name)"))?;

    let now = now_ms.div_euclid(1000);
    let exp = claims
        .exp
        .as_ref()
        .ok_or_else(|| ApiError::new(ErrorCode::TokenExpired, "the token has no `exp`"))?;
    let exp = as_secs(exp)
        .ok_or_else(|| ApiError::new(ErrorCode::TokenExpired, "`exp` must be seconds since the epoch"))?;
    if exp <= now {
        return Err(ApiError::new(ErrorCode::TokenExpired, format!("the token expired {}s ago", now - exp)));
    }
    let max = settings.max_token_lifetime.as_secs() as i64;
    if exp - now > max + SKEW_SECS {
        return Err(ApiError::new(
            ErrorCode::TokenExpired,
            format!("the token's `exp` is {}s ahead; at most {max}s is accepted", exp - now),
        ));
    }
    if let Some(nbf) = claims.nbf.as_ref().and_then(as_secs) {
        if nbf > now + SKEW_SECS {
            return Err(invalid("the token is not valid yet (`nbf` is in the future)"));
        }
    }
    match &claims.aud {
        None if settings.require_audience => {
            return Err(invalid(format!("the token has no `aud`; it must be `{}`", settings.audience)))
        }
        None => {}
        Some(aud) => {
            let ok = match aud {
                Value::String(s) => *s == settings.audience,
                Value::Array(items) => items.iter().any(|a| a.as_str() == Some(settings.audience.as_str())),
                _ => false,
            };
            if !ok {
                return Err(invalid(format!("the token's `aud` must be `{}`", settings.audience)));
            }
        }
    }

    let entry = keys
        .get(store, &org, sub)
        .await?
        .ok_or_else(|| invalid(format!("org {iss} has no call center with API name `{sub}`")))?;
    let key = entry
        .key
        .as_ref()
        .ok_or_else(|| invalid(format!("call center `{sub}` has no usable public key registered")))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(token, key, &validation).map_err(|_| {
        invalid(format!("the token's signature does not verify with call center `{sub}`'s key"))
    })?;

    if let Some(jti) = &claims.jti {
        let jti = match jti {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let issuer = format!("{}/{}", org.as_str(), sub);
        let fresh = store.claim_jti(&issuer, &jti, exp.saturating_mul(1000), now_ms).await.map_err(|e| {
            tracing::error!(error = %e, "jti claim failed");
            ApiError::new(ErrorCode::Unavailable, "the store could not complete the request; retry later")
        })?;
        if !fresh {
            return Err(ApiError::new(
                ErrorCode::TokenReplayed,
                "this token's `jti` was already used; sign a new token",
            ));
        }
    }
    Ok(Caller { org, call_center: entry.record.clone() })
}
