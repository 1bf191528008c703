//! `voxbridge calls ...`: operator actions on a live call through the admin API
//! (`PATCH /admin/v1/voiceCalls/{id}/state`), authenticated with a call-center token.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::datadir::DataDir;

/// A state change the admin endpoint understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Hold,
    Resume,
    PauseRecording,
    ResumeRecording,
}

impl Action {
    pub fn body(self) -> Value {
        match self {
            Action::Hold => json!({ "onHold": true }),
            Action::Resume => json!({ "onHold": false }),
            Action::PauseRecording => json!({ "recordingPaused": true }),
            Action::ResumeRecording => json!({ "recordingPaused": false }),
        }
    }
}

/// An HTTP client for `base` that also trusts this data dir's self-signed certificate, so
/// commands work against the local HTTPS listener without turning verification off.
pub fn client(base: &str, data: &DataDir) -> Result<reqwest::Client> {
    let mut client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
    if base.starts_with("https://") && data.tls_cert().is_file() {
        let pem = std::fs::read(data.tls_cert())
            .with_context(|| format!("cannot read {}", data.tls_cert().display()))?;
        client = client.add_root_certificate(
            reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", data.tls_cert().display()))?,
        );
    }
    Ok(client.build()?)
}

/// Sends the change and returns the response body. Non-2xx answers become errors that
/// carry the server's message.
pub async fn send(base: &str, call_id: &str, token: &str, action: Action, data: &DataDir) -> Result<Value> {
    let base = base.trim_end_matches('/');
    if call_id.is_empty() || !call_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        bail!("`{call_id}` is not a voice call id or vendor call key");
    }
    let url = format!("{base}/admin/v1/voiceCalls/{call_id}/state");
    let client = client(base, data)?;
    let response =
        client.patch(&url).bearer_auth(token).json(&action.body()).send().await.with_context(|| {
            format!("cannot reach {url}; is `voxbridge serve` running there? (set --url)")
        })?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if !status.is_success() {
        let hint = match status.as_u16() {
            401 => "; the token was refused: check --call-center and that its key is registered",
            _ => "",
        };
        bail!("{url} answered {status}: {body}{hint}");
    }
    Ok(body)
}
