//! `voxbridge call interactive`: a live simulated call driven from the terminal.
//!
//! It starts a live call (`POST /simulator/v1/calls` with `"live": true`), prints the event log
//! with the same renderer as `call simulate` as the call goes on, says what the call waits for,
//! and reads one command a line from standard input:
//!
//! * keys (`1`, `1234#`) answer an input prompt; `silence` lets it time out; `wait N` lets N
//!   seconds pass; `hangup` hangs up (so does the end of input);
//! * `agent connect [NAME]`, `hold`, `resume`, `transfer queue|agent|quick NAME`, `disconnect`
//!   act as the agent (`agent` may be left out before all but `connect`).
//!
//! Refused commands print the server's reason and the call goes on. Input may be piped, so a
//! whole call can be scripted line by line. While it waits for a line, the call is looked at
//! every second, so what happens elsewhere shows at once — an agent who accepts the call in
//! the agent console (Omni-Channel routing connects the contact) or ends it there.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};

use crate::callsim::{render_step, summary};
use crate::config::Config;
use crate::datadir::DataDir;

#[derive(Debug, Args)]
pub struct InteractiveArgs {
    /// The dialed number (bound to a flow in flows.toml).
    #[arg(long, value_name = "NUMBER")]
    to: String,
    /// The caller's number.
    #[arg(long, value_name = "NUMBER", default_value = "+14155550123")]
    from: String,
    /// Also list every flow action with the branch it took.
    #[arg(long, short)]
    verbose: bool,
    /// Call center whose token authorizes the requests.
    #[arg(long, value_name = "NAME", default_value = voxbridge_core::setup::DEMO_CALL_CENTER)]
    call_center: String,
    /// Server root URL [default: `server.public_url`, else the HTTP address, http://127.0.0.1:8080].
    #[arg(long, value_name = "BASE")]
    url: Option<String>,
    /// Private key to sign the tokens with [default: <data>/keys/<NAME>.private.pem].
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
}

const HELP: &str = "commands: KEYS (e.g. 1234#) | silence | wait N | hangup | agent connect [NAME] | \
hold | resume | transfer queue|agent|quick NAME | disconnect | help";

/// What one input line asks for: the path under the contact and the body.
fn parse_command(line: &str) -> Result<Option<(&'static str, Value)>, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let words = match words.as_slice() {
        ["agent", rest @ ..] if !rest.is_empty() => rest,
        w => w,
    };
    let agent = |action: &str| Ok(Some(("agent", json!({"action": action}))));
    match words {
        [] => Ok(None),
        ["help" | "?"] => Err(HELP.to_string()),
        ["hangup" | "bye"] => Ok(Some(("input", json!({"hangup": true})))),
        ["silence" | "timeout"] => Ok(Some(("input", json!({"silence": true})))),
        ["wait", n] => match n.trim_end_matches('s').parse::<u32>() {
            Ok(seconds) => Ok(Some(("input", json!({"wait": seconds})))),
            Err(_) => Err(format!("wait {n}: give whole seconds")),
        },
        ["connect"] => agent("connect"),
        ["connect", name] => Ok(Some(("agent", json!({"action": "connect", "agent": name})))),
        ["hold"] => agent("hold"),
        ["resume"] => agent("resume"),
        ["disconnect"] => agent("disconnect"),
        ["transfer", kind, name @ ..] if !name.is_empty() => {
            let field = match *kind {
                "queue" => "queue",
                "agent" => "agent",
                "quick" | "quick-connect" => "quickConnect",
                other => return Err(format!("transfer {other}: transfer queue|agent|quick NAME")),
            };
            Ok(Some(("agent", json!({"action": "transfer", field: name.join(" ")}))))
        }
        [keys] if keys.chars().all(|c| c.is_ascii_digit() || c == '*' || c == '#') => {
            Ok(Some(("input", json!({"digits": keys}))))
        }
        _ => Err(format!("{line:?} is not a command; {HELP}")),
    }
}

/// What the call waits for, as a line for people.
fn waiting_line(view: &Value) -> Option<String> {
    let w = &view["waiting"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    Some(match w["for"].as_str()? {
        "digits" => format!(
            "> keys? ({}{} s to the first key)",
            w["prompt"].as_str().map(|p| format!("\"{p}\", ")).unwrap_or_default(),
            w["timeoutSeconds"]
        ),
        "agent" => {
            format!(
                "> in queue {}, waiting for an agent (agent connect, wait N, hangup; or accept it in the agent console)",
                s(&w["queue"])
            )
        }
        "talking" if w["onHold"] == true => {
            format!("> on hold with {} (resume, wait N, hangup)", s(&w["agent"]))
        }
        "talking" => format!("> talking to {} (hold, transfer …, disconnect, hangup)", s(&w["agent"])),
        other => format!("> waiting for {other}"),
    })
}

struct Session {
    client: reqwest::Client,
    base: String,
    data: DataDir,
    setup: crate::datadir::SetupFile,
    args_call_center: String,
    key: Option<PathBuf>,
    audience: String,
}

impl Session {
    /// Posts `body` to `path`; `Err(message)` carries a refusal the user can correct.
    async fn post(&self, path: &str, body: &Value) -> Result<Result<Value, String>> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// `method` on `path` with a fresh token; `Err(message)` carries a refusal.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Result<Value, String>> {
        // A fresh token each time: tokens carry a one-time jti.
        let jwt = crate::token::mint(
            &self.data,
            &self.setup,
            &self.args_call_center,
            self.key.as_deref(),
            &self.audience,
            60,
            true,
        )?;
        let url = format!("{}{path}", self.base);
        let mut request = self.client.request(method, &url).bearer_auth(jwt);
        if let Some(body) = body {
            request = request.json(body);
        }
        let resp = request.send().await.with_context(|| {
            format!("cannot reach {url}; is `voxbridge serve --flows DIR` running there? (set --url)")
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(Ok(value));
        }
        let message =
            value.get("message").and_then(Value::as_str).map(str::to_string).unwrap_or(value.to_string());
        if status.is_client_error() && status != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(Err(message));
        }
        bail!("{url} answered {status}: {message}")
    }
}

/// Prints the steps not printed yet; returns how many steps have been printed in all.
fn print_new(view: &Value, printed: usize, verbose: bool) -> usize {
    let dropped = view["stepsDropped"].as_u64().unwrap_or(0) as usize;
    let steps = view["steps"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let skip = printed.saturating_sub(dropped);
    for step in steps.iter().skip(skip) {
        if let Some(line) = render_step(step, verbose) {
            println!("{line}");
        }
    }
    dropped + steps.len()
}

/// `voxbridge call interactive`.
pub fn run(args: &InteractiveArgs, config: &Config) -> Result<()> {
    let data = DataDir::new(&config.data_dir);
    let setup = data.read_setup()?;
    let base = args.url.clone().unwrap_or_else(|| config.base_url());
    let base = base.trim_end_matches('/').to_string();
    let session = Session {
        client: crate::calls::client(&base, &data)?,
        base,
        data,
        setup,
        args_call_center: args.call_center.clone(),
        key: args.key.clone(),
        audience: config.audience.clone(),
    };
    crate::runtime()?.block_on(async {
        let body = json!({"to": args.to, "from": args.from, "live": true});
        let mut view = match session.post("/simulator/v1/calls", &body).await? {
            Ok(v) => v,
            Err(message) => bail!("{message}"),
        };
        let id = view["contactId"].as_str().unwrap_or("").to_string();
        println!("Contact {id} from {} to {} (live; type help for the commands)", args.from, args.to);
        let mut printed = 0;
        // Standard input is read on its own thread, so the call can be looked at meanwhile.
        let (tx, mut lines) = tokio::sync::mpsc::channel::<std::io::Result<String>>(16);
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
        let contact = format!("/simulator/v1/contacts/{id}");
        let mut shown = Value::Null;
        loop {
            printed = print_new(&view, printed, args.verbose);
            if view["state"] == "ended" {
                let mut result = view["result"].clone();
                if let Value::Object(m) = &mut result {
                    m.insert("steps".into(), json!([]));
                }
                println!("{}", summary(&result));
                return Ok(());
            }
            if view["waiting"] != shown {
                shown = view["waiting"].clone();
                if let Some(line) = waiting_line(&view) {
                    println!("{line}");
                }
            }
            let line = tokio::select! {
                line = lines.recv() => line,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    if let Ok(now) = session.send(reqwest::Method::GET, &contact, None).await? {
                        view = now;
                    }
                    continue;
                }
            };
            let line = match line {
                Some(line) => line.context("cannot read standard input")?,
                // The end of input hangs up.
                None => "hangup".to_string(),
            };
            let (path, body) = match parse_command(line.trim()) {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(message) => {
                    println!("! {message}");
                    continue;
                }
            };
            match session.post(&format!("/simulator/v1/contacts/{id}/{path}"), &body).await? {
                Ok(v) => view = v,
                Err(message) => println!("! {message}"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse_command("12#").unwrap(), Some(("input", json!({"digits": "12#"}))));
        assert_eq!(parse_command("wait 30").unwrap(), Some(("input", json!({"wait": 30}))));
        assert_eq!(parse_command("agent connect").unwrap(), Some(("agent", json!({"action": "connect"}))));
        assert_eq!(
            parse_command("connect ada").unwrap(),
            Some(("agent", json!({"action": "connect", "agent": "ada"})))
        );
        assert_eq!(
            parse_command("agent transfer quick To billing").unwrap(),
            Some(("agent", json!({"action": "transfer", "quickConnect": "To billing"})))
        );
        assert_eq!(parse_command("").unwrap(), None);
        assert!(parse_command("dance").unwrap_err().contains("not a command"));
        assert!(parse_command("wait x").is_err());
    }
}
