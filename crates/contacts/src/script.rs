//! The simulated caller's script: what they key in at each input prompt.
//!
//! `"1,1234#"` answers the first prompt with `1` and the second with `1234#`. Each
//! comma-separated item answers one prompt:
//!
//! * keys — `0`-`9`, `*`, `#` (spaces ignored);
//! * an empty item, `-` or `timeout` — the caller stays silent (the first-digit timeout);
//! * `wN:KEYS` — the caller waits N seconds first (past the prompt's timeout it is silence);
//! * `hangup` — the caller hangs up instead of answering.
//!
//! When the script runs out, the caller stays silent.

use std::collections::VecDeque;

/// One answer to an input prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerInput {
    Keys { wait_seconds: u32, keys: String },
    Silence,
    HangUp,
}

/// The answers, in order.
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
            let item = raw.trim();
            let input = match item.to_ascii_lowercase().as_str() {
                "" | "-" | "timeout" => CallerInput::Silence,
                "hangup" => CallerInput::HangUp,
                _ => {
                    let (wait_seconds, keys) = match item.strip_prefix(['w', 'W']) {
                        Some(rest) => {
                            let (n, keys) = rest
                                .split_once(':')
                                .ok_or_else(|| format!("input item {} ({item:?}): write wN:KEYS", i + 1))?;
                            let n = n.trim().parse::<u32>().map_err(|_| {
                                format!("input item {} ({item:?}): N must be whole seconds", i + 1)
                            })?;
                            (n, keys)
                        }
                        None => (0, item),
                    };
                    let keys: String = keys.chars().filter(|c| !c.is_whitespace()).collect();
                    if let Some(bad) = keys.chars().find(|c| !(c.is_ascii_digit() || *c == '*' || *c == '#'))
                    {
                        return Err(format!("input item {} ({item:?}): {bad:?} is not a phone key", i + 1));
                    }
                    if keys.is_empty() {
                        CallerInput::Silence
                    } else {
                        CallerInput::Keys { wait_seconds, keys }
                    }
                }
            };
            inputs.push_back(input);
        }
        Ok(CallerScript { inputs })
    }

    /// The answer to the next input prompt.
    pub fn next_input(&mut self) -> Option<CallerInput> {
        self.inputs.pop_front()
    }

    pub fn remaining(&self) -> usize {
        self.inputs.len()
    }
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
