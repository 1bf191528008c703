//! Minting the RS256 bearer tokens the Telephony Integration API expects.
//!
//! Claims follow the guide: `iss` is the org id (15 characters), `sub` the call center's
//! API name, `aud` the authorization server, `exp` a few minutes ahead, and an optional
//! `jti` the server remembers to refuse replays.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::datadir::{DataDir, SetupFile};

pub const DEFAULT_TTL_SECS: u64 = 300;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

impl Claims {
    pub fn new(org_id: &str, call_center: &str, audience: &str, ttl_secs: u64, with_jti: bool) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            iss: org_id.to_string(),
            sub: call_center.to_string(),
            aud: audience.to_string(),
            exp: now.saturating_add(ttl_secs.min(i64::MAX as u64) as i64),
            iat: now,
            jti: with_jti.then(|| uuid::Uuid::new_v4().to_string()),
        }
    }
}

/// Signs `claims` with a PEM RSA private key.
pub fn sign(claims: &Claims, private_key_pem: &[u8]) -> Result<String> {
    let key = EncodingKey::from_rsa_pem(private_key_pem)
        .context("the private key is not an RSA key in PEM form")?;
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key).context("signing the token failed")
}

/// The private key to sign for `call_center` with: the one given, else the one the data
/// dir holds for it.
pub fn private_key_for(
    data: &DataDir,
    setup: &SetupFile,
    call_center: &str,
    explicit: Option<&Path>,
) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let known = setup.call_center(call_center);
    if known.is_none() {
        let names: Vec<&str> = setup.call_centers.iter().map(|c| c.api_name.as_str()).collect();
        bail!(
            "no call center `{call_center}` in {}; known call centers: {}",
            data.setup_json().display(),
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        );
    }
    match known.and_then(|c| c.private_key_file.as_deref()) {
        Some(rel) => Ok(data.resolve(rel)),
        None => bail!(
            "the data dir holds no private key for call center `{call_center}` (its public key came from \
             the configuration); pass --key FILE with the private key that matches it"
        ),
    }
}

/// Reads the key file and signs a token for `call_center` of `setup`'s org.
pub fn mint(
    data: &DataDir,
    setup: &SetupFile,
    call_center: &str,
    key: Option<&Path>,
    audience: &str,
    ttl_secs: u64,
    with_jti: bool,
) -> Result<String> {
    if ttl_secs == 0 {
        bail!("--ttl must be at least 1 second");
    }
    let key_path = private_key_for(data, setup, call_center, key)?;
    let pem = std::fs::read(&key_path)
        .with_context(|| format!("cannot read private key {}", key_path.display()))?;
    let claims = Claims::new(&setup.org.id, call_center, audience, ttl_secs, with_jti);
    sign(&claims, &pem).with_context(|| format!("with key {}", key_path.display()))
}
