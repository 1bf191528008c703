//! The simulated caller's script: what they key in at each input prompt, how long they wait,
//! and what the agent does once the contact reaches one.
//!
//! `"1,1234#"` answers the first prompt with `1` and the second with `1234#`. Each
//! comma-separated item is one step of the call:
//!
//! * keys — `0`-`9`, `*`, `#` (spaces ignored): the answer to the next input prompt (keys
//!   pressed while talking to an agent are only noted);
//! * an empty item, `-` or `timeout` — the caller stays silent (the first-digit timeout);
//! * `wN:KEYS` — the caller waits N seconds first (past the prompt's timeout it is silence);
//! * `wN` — N seconds pass (in queue: the queue flow's timers fire; with an agent: talk time);
//!   at an input prompt it is silence;
//! * `hangup` — the caller hangs up;
//! * `agent:connect` or `agent:connect:NAME` — an agent (the first free one serving the queue,
//!   or the one named) accepts the queued contact;
//! * `agent:hold`, `agent:resume` — the agent puts the caller on hold and takes them off;
//! * `agent:transfer:queue:NAME`, `agent:transfer:agent:NAME`, `agent:transfer:quick:NAME` —
//!   the agent transfers the caller (a new contact, InitiationMethod `TRANSFER`);
//! * `agent:disconnect` — the agent hangs up.
//!
//! Agent steps wait for the contact to reach a queue (input prompts before then are silence).
//! When the script runs out, the caller stays silent at prompts and hangs up once they would
//! otherwise wait (in queue, with an agent).

use std::collections::VecDeque;

/// One step of the caller (or of the agent they reach).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerInput {
    Keys {
        wait_seconds: u32,
        keys: String,
    },
    Silence,
    HangUp,
    /// Time passes.
    Wait {
        seconds: u32,
    },
    Agent(AgentAction),
}

/// What an agent does to the contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentAction {
    /// Accept the queued contact: this agent (username, id or ARN), or the first free one
    /// serving the queue.
    Connect {
        agent: Option<String>,
    },
    Hold,
    Resume,
    Transfer(TransferTarget),
    /// The agent hangs up.
    Disconnect,
}

/// Where an agent transfers a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTarget {
    Queue(String),
    Agent(String),
    QuickConnect(String),
}

impl std::fmt::Display for AgentAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentAction::Connect { agent: None } => write!(f, "connect"),
            AgentAction::Connect { agent: Some(a) } => write!(f, "connect {a}"),
            AgentAction::Hold => write!(f, "hold"),
            AgentAction::Resume => write!(f, "resume"),
            AgentAction::Transfer(TransferTarget::Queue(q)) => write!(f, "transfer to queue {q}"),
            AgentAction::Transfer(TransferTarget::Agent(a)) => write!(f, "transfer to agent {a}"),
            AgentAction::Transfer(TransferTarget::QuickConnect(q)) => {
                write!(f, "transfer to quick connect {q}")
            }
            AgentAction::Disconnect => write!(f, "disconnect"),
        }
    }
}

/// The steps, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerScript {
    inputs: VecDeque<CallerInput>,
}

impl CallerScript {
    /// Parses the script syntax; the error names the bad item.
    pub fn parse(text: &str) -> Result<CallerScript, String> {
        let mut inputs = VecDeque::new();
        if text.trim().is_empty() {
            return Ok(CallerScript { inputs });
        }
        for (i, raw) in text.split(',').enumerate() {
            let input = parse_item(raw.trim())
                .map_err(|e| format!("input item {} ({:?}): {e}", i + 1, raw.trim()))?;
            inputs.push_back(input);
        }
        Ok(CallerScript { inputs })
    }

    /// The next step.
    pub fn next_input(&mut self) -> Option<CallerInput> {
        self.inputs.pop_front()
    }

    /// The next step, left in place.
    pub fn peek(&self) -> Option<&CallerInput> {
        self.inputs.front()
    }

    pub fn remaining(&self) -> usize {
        self.inputs.len()
    }
}

/// One script item (also one live command: `agent:hold`, `w30`, `12#`).
pub fn parse_item(item: &str) -> Result<CallerInput, String> {
    let lower = item.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("agent:") {
        return parse_agent(rest, item.get(6..).unwrap_or("")).map(CallerInput::Agent);
    }
    Ok(match lower.as_str() {
        "" | "-" | "timeout" => CallerInput::Silence,
        "hangup" => CallerInput::HangUp,
        _ => {
            let (wait_seconds, keys) = match item.strip_prefix(['w', 'W']) {
                Some(rest) => {
                    let Some((n, keys)) = rest.split_once(':') else {
                        let seconds = rest
                            .trim()
                            .parse::<u32>()
                            .map_err(|_| "write wN (wait N seconds) or wN:KEYS".to_string())?;
                        return Ok(CallerInput::Wait { seconds });
                    };
                    let n = n.trim().parse::<u32>().map_err(|_| "N must be whole seconds".to_string())?;
                    (n, keys)
                }
                None => (0, item),
            };
            let keys: String = keys.chars().filter(|c| !c.is_whitespace()).collect();
            if let Some(bad) = keys.chars().find(|c| !(c.is_ascii_digit() || *c == '*' || *c == '#')) {
                return Err(format!("{bad:?} is not a phone key"));
            }
            if keys.is_empty() {
                CallerInput::Silence
            } else {
                CallerInput::Keys { wait_seconds, keys }
            }
        }
    })
}

/// `connect[:NAME]`, `hold`, `resume`, `disconnect`, `transfer:queue|agent|quick:NAME`
/// (`lower` for the keywords, `original` keeps the name's case).
fn parse_agent(lower: &str, original: &str) -> Result<AgentAction, String> {
    let name = |prefix: &str| original.get(prefix.len()..).map(str::trim).filter(|s| !s.is_empty());
    let action = match lower.trim() {
        "connect" => AgentAction::Connect { agent: None },
        "hold" => AgentAction::Hold,
        "resume" => AgentAction::Resume,
        "disconnect" | "hangup" => AgentAction::Disconnect,
        l if l.starts_with("connect:") => {
            AgentAction::Connect { agent: name("connect:").map(str::to_string) }
        }
        l if l.starts_with("transfer:queue:") => AgentAction::Transfer(TransferTarget::Queue(
            name("transfer:queue:").ok_or("name the queue")?.to_string(),
        )),
        l if l.starts_with("transfer:agent:") => AgentAction::Transfer(TransferTarget::Agent(
            name("transfer:agent:").ok_or("name the agent")?.to_string(),
        )),
        l if l.starts_with("transfer:quick:") => AgentAction::Transfer(TransferTarget::QuickConnect(
            name("transfer:quick:").ok_or("name the quick connect")?.to_string(),
        )),
        _ => {
            return Err("agent steps are agent:connect[:NAME], agent:hold, agent:resume, \
                        agent:transfer:queue|agent|quick:NAME, agent:disconnect"
                .to_string())
        }
    };
    Ok(action)
}

/// What a DTMF collector hears: the keys with `*` clearing what came before it (when the
/// prompt has a cancel key), cut at `max_digits`.
pub fn collect(keys: &str, cancel_key: bool, max_digits: Option<u32>) -> String {
    let mut out = String::new();
    for c in keys.chars() {
        if cancel_key && c == '*' {
            out.clear();
            continue;
        }
        out.push(c);
        if max_digits.is_some_and(|m| out.chars().count() >= m as usize) {
            break;
        }
    }
    out
}
