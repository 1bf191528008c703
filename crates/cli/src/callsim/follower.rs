//! Omni-Channel routing drives the telephony side's agents: a live contact that reaches a
//! queue follows its conversation's live events on the CRM half
//! (`GET /live/v1/conversations/{vendorCallKey}`, Server-Sent Events, with a call-center JWT
//! signed as InvokeTelephonyIntegrationApiFunction signs them). A `routing` event with status
//! `Assigned` (an agent accepted the offer in the console) connects the contact to the
//! telephony agent of that CRM user; `hold` and `resume` of the caller (the console's call
//! control, or the admin state endpoint) hold and resume it, which runs its hold flows;
//! `callended` (the agent ended the call) disconnects it.
//!
//! Only wire contracts: HTTP and the events' JSON, as a partner telephony system would use.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use voxbridge_contacts::routing::BoxFuture;
use voxbridge_contacts::{AgentAction, AgentRouting, CallerInput, FollowedCall, Following, LiveSteps};
use voxbridge_functions::telephony::InvokeTelephonyIntegrationApi;

/// How long the follower waits for the stream's answer, then for its `ready` event.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// Follows conversations over the CRM half's live events.
pub struct SseRouting {
    client: reqwest::Client,
    /// This server's root URL.
    base_url: String,
    /// Signs the call center's tokens.
    signer: Arc<InvokeTelephonyIntegrationApi>,
    /// CRM user id (15-character form) → the telephony agent's username.
    agents: HashMap<String, String>,
}

impl SseRouting {
    /// `agents` maps CRM user ids to telephony agents' usernames (setup.json's agents).
    pub fn new(
        base_url: &str,
        signer: Arc<InvokeTelephonyIntegrationApi>,
        agents: impl IntoIterator<Item = (String, String)>,
    ) -> SseRouting {
        SseRouting {
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            base_url: base_url.trim_end_matches('/').to_string(),
            signer,
            agents: agents.into_iter().map(|(id, username)| (short_id(&id).to_string(), username)).collect(),
        }
    }

    async fn start(&self, call: FollowedCall, steps: LiveSteps) -> Result<Following, String> {
        let token = self.signer.sign_token().map_err(|e| e.to_string())?;
        let url = format!("{}/live/v1/conversations/{}", self.base_url, call.conversation_key);
        let request = self.client.get(&url).bearer_auth(token).header("Accept", "text/event-stream").send();
        let resp = tokio::time::timeout(READY_WITHIN, request)
            .await
            .map_err(|_| format!("{url} did not answer"))?
            .map_err(|e| format!("cannot reach {url}: {e}"))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(format!("{url} answered {status}: {}", text.chars().take(300).collect::<String>()));
        }
        let mut stream = resp.bytes_stream();
        let mut parser = SseParser::default();
        // Listening starts with `ready`; only then is the caller told, so nothing is missed.
        let ready = tokio::time::timeout(READY_WITHIN, async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| e.to_string())?;
                if parser.push(&chunk).iter().any(|(event, _)| event == "ready") {
                    return Ok(());
                }
            }
            Err("the stream ended before it was ready".to_string())
        })
        .await;
        ready.map_err(|_| format!("{url} sent no ready event"))??;
        let agents = self.agents.clone();
        let key = call.conversation_key;
        let task = tokio::spawn(async move {
            while let Some(Ok(chunk)) = stream.next().await {
                for (event, data) in parser.push(&chunk) {
                    let Some(input) = step_for(&event, &data, &agents) else { continue };
                    if let Err(e) = steps.send(input).await {
                        tracing::info!(conversation = %key, "a routing step was not carried out: {e}");
                    }
                    if steps.is_closed() {
                        return;
                    }
                }
            }
        });
        Ok(Following::task(task.abort_handle()))
    }
}

impl AgentRouting for SseRouting {
    fn follow<'a>(
        &'a self,
        call: FollowedCall,
        steps: LiveSteps,
    ) -> BoxFuture<'a, Result<Following, String>> {
        Box::pin(self.start(call, steps))
    }
}

/// The live call's step for a conversation event, if it asks for one.
fn step_for(event: &str, data: &str, agents: &HashMap<String, String>) -> Option<CallerInput> {
    let data: Value = serde_json::from_str(data).ok()?;
    match event {
        "routing" if data["status"] == "Assigned" => {
            let user = data["userId"].as_str()?;
            let agent = agents.get(short_id(user)).cloned().unwrap_or_else(|| user.to_string());
            Some(CallerInput::Agent(AgentAction::Connect { agent: Some(agent) }))
        }
        // A third party's hold is the CRM half's own; only the caller's reaches the contact.
        "hold" | "resume" if data["participantType"].as_str().is_some_and(|p| p != "Initial_Caller") => None,
        "hold" => Some(CallerInput::Agent(AgentAction::Hold)),
        "resume" => Some(CallerInput::Agent(AgentAction::Resume)),
        "callended" => Some(CallerInput::Agent(AgentAction::Disconnect)),
        _ => None,
    }
}

/// Ids compare on their 15-character form.
fn short_id(id: &str) -> &str {
    id.get(..15).unwrap_or(id)
}

/// Server-Sent Events split from a byte stream: `(event, data)` pairs.
#[derive(Default)]
struct SseParser {
    buffer: Vec<u8>,
    event: String,
    data: Vec<String>,
}

impl SseParser {
    fn push(&mut self, bytes: &[u8]) -> Vec<(String, String)> {
        self.buffer.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() || !self.event.is_empty() {
                    let event = std::mem::take(&mut self.event);
                    let event = if event.is_empty() { "message".to_string() } else { event };
                    out.push((event, std::mem::take(&mut self.data).join("\n")));
                }
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.event = value.to_string(),
                "data" => self.data.push(value.to_string()),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b"event: ready\ndata: {\"a\"").is_empty());
        let got = p.push(b":1}\n\n: keep-alive\n\nevent: routing\r\ndata: {}\r\n\r\n");
        assert_eq!(got, vec![("ready".into(), "{\"a\":1}".into()), ("routing".into(), "{}".into())]);
    }

    #[test]
    fn assigned_routing_connects_the_agent_of_the_user() {
        let agents = HashMap::from([("005VX0000000001".to_string(), "ada@demo".to_string())]);
        let data = r#"{"status":"Assigned","userId":"005VX0000000001AAA","agentWorkId":"0BzVX0"}"#;
        assert_eq!(
            step_for("routing", data, &agents),
            Some(CallerInput::Agent(AgentAction::Connect { agent: Some("ada@demo".into()) }))
        );
        assert_eq!(step_for("routing", r#"{"queue":"x"}"#, &agents), None);
        assert_eq!(step_for("callended", "{}", &agents), Some(CallerInput::Agent(AgentAction::Disconnect)));
        let caller = r#"{"participantType":"Initial_Caller"}"#;
        assert_eq!(step_for("hold", caller, &agents), Some(CallerInput::Agent(AgentAction::Hold)));
        assert_eq!(step_for("resume", "{}", &agents), Some(CallerInput::Agent(AgentAction::Resume)));
        assert_eq!(step_for("hold", r#"{"participantType":"Third_Party"}"#, &agents), None);
        assert_eq!(step_for("transcript", "{}", &agents), None);
        assert_eq!(step_for("routing", "not json", &agents), None);
    }
}
