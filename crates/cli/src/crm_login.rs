//! `voxbridge token --crm`: logs in to the CRM REST API the way an integration does, with
//! the OAuth 2.0 JWT bearer flow: an RS256 assertion signed with the connected app's
//! private key (`iss` its consumer key, `sub` the API user, `aud` a login audience, `exp`
//! less than three minutes ahead) posted to `{base}/services/oauth2/token`.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::datadir::{ConnectedAppInfo, DataDir, SetupFile};

/// How far ahead the assertion expires: the platform refuses more than three minutes, and
/// a few seconds of margin keep a slow clock on either side from tipping it over.
pub const ASSERTION_TTL_SECS: i64 = 170;

/// The claims of a JWT bearer assertion.
#[derive(Debug, Serialize)]
pub struct Assertion {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
}

/// What to log in with, resolved from the flags, the configuration and `setup.json`.
#[derive(Debug)]
pub struct Login {
    pub app_name: String,
    pub consumer_key: String,
    pub username: String,
    pub audience: String,
    pub key_file: std::path::PathBuf,
}

/// Picks the connected app, its private key and the user, or says what to pass instead.
pub fn resolve(
    data: &DataDir,
    setup: &SetupFile,
    consumer_key: Option<&str>,
    user: Option<&str>,
    key: Option<&std::path::Path>,
    audience: &str,
) -> Result<Login> {
    let app: &ConnectedAppInfo = match setup.connected_app(consumer_key) {
        Some(a) => a,
        None if setup.connected_apps.is_empty() => bail!(
            "{} lists no connected app; start `voxbridge serve` (or run `voxbridge setup`) once with the \
             same --data/--config to add the demo one",
            data.setup_json().display()
        ),
        None => {
            let known: Vec<String> =
                setup.connected_apps.iter().map(|a| format!("{} ({})", a.consumer_key, a.name)).collect();
            bail!(
                "no connected app has consumer key `{}`; known: {}",
                consumer_key.unwrap_or_default(),
                known.join(", ")
            )
        }
    };
    let key_file = match (key, &app.private_key_file) {
        (Some(k), _) => k.to_path_buf(),
        (None, Some(rel)) => data.resolve(rel),
        (None, None) => bail!(
            "the data dir holds no private key for connected app `{}`; pass --key FILE with the private \
             key whose public half is registered on it",
            app.name
        ),
    };
    let username = match (user, app.users.first()) {
        (Some(u), _) => u.to_string(),
        (None, Some(u)) => u.clone(),
        (None, None) => bail!("connected app `{}` pre-authorizes no user; pass --user USERNAME", app.name),
    };
    Ok(Login {
        app_name: app.name.clone(),
        consumer_key: app.consumer_key.clone(),
        username,
        audience: audience.to_string(),
        key_file,
    })
}

/// Signs the assertion for `login`, expiring [`ASSERTION_TTL_SECS`] from now.
pub fn assertion(login: &Login) -> Result<String> {
    let pem = std::fs::read(&login.key_file)
        .with_context(|| format!("cannot read private key {}", login.key_file.display()))?;
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem)
        .with_context(|| format!("{} is not an RSA private key in PEM form", login.key_file.display()))?;
    let claims = Assertion {
        iss: login.consumer_key.clone(),
        sub: login.username.clone(),
        aud: login.audience.clone(),
        exp: chrono::Utc::now().timestamp() + ASSERTION_TTL_SECS,
    };
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key)
        .context("signing the assertion failed")
}

/// Posts the assertion to `{base}/services/oauth2/token` and returns the token response.
pub async fn login(base: &str, login: &Login, data: &DataDir) -> Result<Value> {
    let base = base.trim_end_matches('/');
    let url = format!("{base}/services/oauth2/token");
    let assertion = assertion(login)?;
    let client = crate::calls::client(base, data)?;
    let response = client
        .post(&url)
        .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &assertion)])
        .send()
        .await
        .with_context(|| {
            format!("cannot reach {url}; is `voxbridge serve` running at {base}? (set --url)")
        })?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if !status.is_success() {
        let code = body["error"].as_str().unwrap_or_default();
        let description = body["error_description"].as_str().unwrap_or_default();
        if code.is_empty() {
            bail!("{url} answered {status}: {body}; is {base} a Voxbridge server?");
        }
        bail!("{url} refused the login: {code}: {description}{}", hint(code, description, login));
    }
    if body["access_token"].as_str().is_none() {
        bail!("{url} answered without an access token: {body}");
    }
    Ok(body)
}

/// What to try when the server refuses the login.
fn hint(code: &str, description: &str, login: &Login) -> String {
    if code == "invalid_client_id" {
        format!(
            "; the server's org has no app with consumer key {}: is --url the server of this data dir?",
            login.consumer_key
        )
    } else if description.contains("audience") {
        format!(
            "; pass --audience with one the server accepts, or add {} to `crm.login_audiences` in the \
             server's configuration",
            login.audience
        )
    } else if description.contains("signature") {
        format!(
            "; {} does not match the public key registered on `{}`: pass the right --key",
            login.key_file.display(),
            login.app_name
        )
    } else if description.contains("user") {
        format!("; check --user (now {})", login.username)
    } else if description.contains("exp") {
        "; check this machine's clock".to_string()
    } else {
        String::new()
    }
}
