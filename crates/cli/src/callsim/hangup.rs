//! Hang-up: when a contact ends, the telephony side ends its VoiceCall on the CRM half, as a
//! partner telephony system does, so the conversation closes and post-call signals are
//! accepted. [`HangupSink`] wraps the contact center's sink: for every ended contact whose
//! flow created a VoiceCall (the `voiceCallId` contact attribute) it sends
//! `PATCH /telephony/v1/voiceCalls/{voiceCallId}` with `isActiveCall: false`, the CTR's end
//! time and hold metrics, signed as InvokeTelephonyIntegrationApiFunction signs its requests.
//!
//! The update overwrites the call's hold metrics (absent ones read as zero), so they come
//! from the CTR — the same values the CTR sync writes — and it waits (up to 10 s) for the
//! sync to have written the call: `voxbridge ctr resync` takes a call without hold metrics
//! for one the sync never reached. A contact whose `voiceCallId` was inherited (a transfer
//! whose flow created no call of its own) is left alone: the call must carry the contact's
//! id as its vendorCallKey.
//!
//! Only wire contracts: HTTP and JSON.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use voxbridge_contacts::ContactSink;
use voxbridge_functions::telephony::InvokeTelephonyIntegrationApi;

/// Waits between attempts after a 429, a 5xx or a connection failure.
const RETRY_DELAYS: [Duration; 3] = [Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(3)];
/// How long the hang-up waits for the CTR sync to write the call first, and how often it looks.
const SYNC_WAIT: Duration = Duration::from_secs(10);
const SYNC_POLL: Duration = Duration::from_millis(250);

/// The end of one contact's call: where and what to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Hangup {
    pub contact_id: String,
    pub voice_call_id: String,
    /// The `PATCH /voiceCalls/{id}` body, without `callCenterApiName`.
    pub body: Value,
}

impl Hangup {
    /// The hang-up a CTR calls for; `None` when the contact created no VoiceCall.
    pub fn from_ctr(ctr: &Value) -> Option<Hangup> {
        let text =
            |v: Option<&Value>| v.and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        let contact_id = text(ctr.get("ContactId"))?;
        let voice_call_id = text(ctr.get("Attributes").and_then(|a| a.get("voiceCallId")))?;
        let mut body = Map::new();
        body.insert("isActiveCall".into(), json!(false));
        if let Some(end) = text(ctr.get("DisconnectTimestamp")) {
            body.insert("endTime".into(), json!(end));
        }
        let agent = ctr.get("Agent").filter(|a| a.is_object());
        for (api, ctr_field) in [
            ("totalHoldDuration", "CustomerHoldDuration"),
            ("numberOfHolds", "NumberOfHolds"),
            ("longestHoldDuration", "LongestHoldDuration"),
            ("agentInteractionDuration", "AgentInteractionDuration"),
        ] {
            let n = agent.and_then(|a| a.get(ctr_field)).and_then(whole_seconds);
            if let Some(n) = n {
                body.insert(api.into(), json!(n));
            }
        }
        Some(Hangup { contact_id, voice_call_id, body: Value::Object(body) })
    }
}

/// A non-negative whole number from a CTR number (seconds or a count).
fn whole_seconds(v: &Value) -> Option<i64> {
    let f = v.as_f64()?;
    (f.is_finite() && f >= 0.0 && f <= f64::from(i32::MAX)).then(|| f.round() as i64)
}

/// Ends the CRM half's call of every ended contact, then hands everything to `inner`.
pub struct HangupSink {
    inner: Arc<dyn ContactSink>,
    client: Arc<Client>,
}

impl HangupSink {
    /// `base_url` is this server's root URL; `signer` signs the call center's tokens.
    pub fn new(
        inner: Arc<dyn ContactSink>,
        base_url: &str,
        signer: Arc<InvokeTelephonyIntegrationApi>,
    ) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        HangupSink {
            inner,
            client: Arc::new(Client { http, base_url: base_url.trim_end_matches('/').into(), signer }),
        }
    }
}

impl ContactSink for HangupSink {
    fn contact_event(&self, event: &Value) {
        self.inner.contact_event(event);
    }

    fn contact_ended(&self, ctr: &Value) {
        self.inner.contact_ended(ctr);
        let Some(hangup) = Hangup::from_ctr(ctr) else { return };
        // Called from the contact's task: the requests run on their own.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let client = self.client.clone();
                rt.spawn(async move { client.end(hangup).await });
            }
            Err(_) => {
                tracing::warn!(contact = %hangup.contact_id, "no runtime to end the contact's VoiceCall on")
            }
        }
    }
}

struct Client {
    http: reqwest::Client,
    base_url: String,
    signer: Arc<InvokeTelephonyIntegrationApi>,
}

/// How one attempt went.
enum Attempt<T> {
    Done(T),
    Retry(String),
    Fail(String),
}

impl Client {
    async fn end(&self, hangup: Hangup) {
        let contact = hangup.contact_id.clone();
        match self.wait_for_sync(&hangup).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(%contact, "the contact's voiceCallId names another contact's call; not ending it");
                return;
            }
            Err(e) => {
                tracing::warn!(%contact, "cannot end the contact's VoiceCall: {e}");
                return;
            }
        }
        let mut body = hangup.body.clone();
        if let Some(m) = body.as_object_mut() {
            m.insert("callCenterApiName".into(), json!(self.signer.config().call_center_api_name));
        }
        let url = format!("{}/telephony/v1/voiceCalls/{}", self.base_url, enc(&hangup.voice_call_id));
        match self.with_retries(|| self.send(reqwest::Method::PATCH, &url, Some(&body))).await {
            Ok(_) => tracing::debug!(%contact, "ended the contact's VoiceCall"),
            Err(e) => tracing::warn!(%contact, "cannot end the contact's VoiceCall: {e}"),
        }
    }

    /// Whether the VoiceCall of `voiceCallId` belongs to this contact (its vendorCallKey),
    /// once the CTR sync has written it or [`SYNC_WAIT`] has passed. The update writes the
    /// hold metrics, which the CTR resync reads as "synced", so it goes after the sync.
    async fn wait_for_sync(&self, hangup: &Hangup) -> Result<bool, String> {
        let url = format!("{}/admin/v1/voiceCalls/{}", self.base_url, enc(&hangup.voice_call_id));
        let deadline = tokio::time::Instant::now() + SYNC_WAIT;
        loop {
            let view = self.with_retries(|| self.send(reqwest::Method::GET, &url, None)).await?;
            let call = &view["voiceCall"];
            if call["VendorCallKey"].as_str() != Some(hangup.contact_id.as_str()) {
                return Ok(false);
            }
            if !call["CustomerHoldDuration"].is_null() || tokio::time::Instant::now() >= deadline {
                return Ok(true);
            }
            tokio::time::sleep(SYNC_POLL).await;
        }
    }

    async fn with_retries<F, Fut>(&self, mut attempt: F) -> Result<Value, String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Attempt<Value>>,
    {
        let mut delays = RETRY_DELAYS.iter();
        loop {
            match attempt().await {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(e) => match delays.next() {
                    Some(d) => tokio::time::sleep(*d).await,
                    None => return Err(e),
                },
            }
        }
    }

    async fn send(&self, method: reqwest::Method, url: &str, body: Option<&Value>) -> Attempt<Value> {
        let token = match self.signer.sign_token() {
            Ok(t) => t,
            Err(e) => return Attempt::Fail(e.to_string()),
        };
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(token)
            .header("Telephony-Provider-Name", &self.signer.config().provider_name);
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b.to_string());
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Attempt::Retry(format!("cannot reach {url}: {e}")),
        };
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let shown: String = text.chars().take(300).collect();
        if status.is_success() {
            return Attempt::Done(serde_json::from_str(&text).unwrap_or(Value::Null));
        }
        let e = format!("{url} answered {status}: {shown}");
        if status.as_u16() == 429 || status.is_server_error() {
            Attempt::Retry(e)
        } else {
            Attempt::Fail(e)
        }
    }
}

/// A path segment: ids are letters and digits, but a CTR may carry anything.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hangups_of_ctrs() {
        let ctr = json!({
            "ContactId": "c-1", "DisconnectTimestamp": "2026-01-31T10:05:00.000Z",
            "Attributes": {"voiceCallId": "0LQxx0000000001"},
            "Agent": {"CustomerHoldDuration": 10, "NumberOfHolds": 1, "LongestHoldDuration": 10.4,
                      "AgentInteractionDuration": 35}
        });
        assert_eq!(
            Hangup::from_ctr(&ctr),
            Some(Hangup {
                contact_id: "c-1".into(),
                voice_call_id: "0LQxx0000000001".into(),
                body: json!({"isActiveCall": false, "endTime": "2026-01-31T10:05:00.000Z",
                    "totalHoldDuration": 10, "numberOfHolds": 1, "longestHoldDuration": 10,
                    "agentInteractionDuration": 35}),
            })
        );
        // No agent: the metrics stay out (the API reads them as zero, as the CTR sync writes).
        let ctr = json!({"ContactId": "c-2", "Attributes": {"voiceCallId": "0LQ2"}, "Agent": null});
        assert_eq!(Hangup::from_ctr(&ctr).map(|h| h.body), Some(json!({"isActiveCall": false})));
        for no_call in [
            json!({"ContactId": "c-3", "Attributes": {}}),
            json!({"ContactId": "c-3", "Attributes": {"voiceCallId": ""}}),
            json!({"Attributes": {"voiceCallId": "0LQ3"}}),
            json!("not a CTR"),
        ] {
            assert_eq!(Hangup::from_ctr(&no_call), None, "{no_call}");
        }
        assert_eq!(whole_seconds(&json!(-1)), None);
        assert_eq!(enc("a/b c"), "a%2Fb%20c");
    }
}
