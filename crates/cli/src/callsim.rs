//! The telephony half in the binary: the call simulator and flow tools.
//!
//! * [`attach`] (used by `serve --flows DIR`) loads the flow library, binds the built-in
//!   InvokeTelephonyIntegrationApiFunction to the demo call center's private key, org id and
//!   this server's own HTTP address — it calls the Telephony Integration API over HTTP, the
//!   wire contract — and attaches the contact center to the router.
//! * `voxbridge call simulate` posts to `/simulator/v1/calls` and prints the step list (or
//!   the JSON event log).
//! * `voxbridge flows validate FILE…` prints each flow's diagnostics.
//! * [`follower`]: queued live calls follow their conversation's live events, so the agent
//!   who accepts a call in the agent console connects to it (Omni-Channel routing).
//! * [`hangup`]: when a contact ends, its VoiceCall ends too (`isActiveCall: false`), which
//!   closes the conversation.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use voxbridge_contacts::{
    register_external_functions, validate_flow, AgentConfig, ContactCenter, FlowLibrary, LibraryDefaults,
    QueueConfig,
};
use voxbridge_flows::Severity;
use voxbridge_functions::telephony::{self, InvokeTelephonyIntegrationApi, TelephonyApiConfig};
use voxbridge_functions::{FunctionOptions, Registry, SystemClock};

use crate::config::Config;
use crate::datadir::{DataDir, SetupFile};

mod follower;
mod hangup;

#[derive(Debug, Subcommand)]
pub enum CallCommand {
    /// Place a simulated inbound call through the flow bound to the dialed number and show
    /// every step: prompts, keys, function calls, attributes, queue, the VoiceCall created.
    ///
    /// The server must run with `--flows DIR`.
    Simulate(SimulateArgs),
    /// Place a live simulated call and drive it from the terminal: prompts and steps print as
    /// they happen; type keys to answer prompts, and commands for the caller and the agent
    /// (`help` lists them). End of input hangs up.
    ///
    /// The server must run with `--flows DIR`.
    Interactive(crate::call_interactive::InteractiveArgs),
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The dialed number (bound to a flow in flows.toml).
    #[arg(long, value_name = "NUMBER")]
    to: String,
    /// The caller's number.
    #[arg(long, value_name = "NUMBER", default_value = "+14155550123")]
    from: String,
    /// The caller's and agent's steps, comma-separated: keys for each input prompt (`1,1234#`;
    /// an empty item is silence, `w5:12` waits 5 s first), `w30` (30 s pass), `hangup`, and
    /// agent steps once queued: `agent:connect[:NAME]`, `agent:hold`, `agent:resume`,
    /// `agent:transfer:queue|agent|quick:NAME`, `agent:disconnect`.
    #[arg(long, value_name = "KEYS", default_value = "")]
    input: String,
    /// Print the contact's JSON event log instead of the step list.
    #[arg(long)]
    json: bool,
    /// Also list every flow action with the branch it took.
    #[arg(long, short)]
    verbose: bool,
    /// Call center whose token authorizes the request.
    #[arg(long, value_name = "NAME", default_value = voxbridge_core::setup::DEMO_CALL_CENTER)]
    call_center: String,
    /// Server root URL [default: `server.public_url`, else the HTTP address, http://127.0.0.1:8080].
    #[arg(long, value_name = "BASE")]
    url: Option<String>,
    /// Private key to sign the token with [default: <data>/keys/<NAME>.private.pem].
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum FlowsCommand {
    /// Parse and validate flow exports; unknown function ARNs are warnings. Exits with 1
    /// when a flow has errors.
    Validate(ValidateArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Flow files (Amazon Connect exports, `*.json`).
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
}

/// `voxbridge call …`
pub fn call(command: &CallCommand, config: &Config) -> Result<()> {
    let args = match command {
        CallCommand::Simulate(args) => args,
        CallCommand::Interactive(args) => return crate::call_interactive::run(args, config),
    };
    let data = DataDir::new(&config.data_dir);
    let setup = data.read_setup()?;
    let jwt = crate::token::mint(
        &data,
        &setup,
        &args.call_center,
        args.key.as_deref(),
        &config.audience,
        60,
        true,
    )?;
    let base = args.url.clone().unwrap_or_else(|| config.base_url());
    let base = base.trim_end_matches('/').to_string();
    let url = format!("{base}/simulator/v1/calls");
    let body = json!({"to": args.to, "from": args.from, "input": args.input});
    let client = crate::calls::client(&base, &data)?;
    let log: Value = crate::runtime()?.block_on(async {
        let resp = client.post(&url).bearer_auth(jwt).json(&body).send().await.with_context(|| {
            format!("cannot reach {url}; is `voxbridge serve --flows DIR` running there? (set --url)")
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let message =
                value.get("message").and_then(Value::as_str).map(str::to_string).unwrap_or(value.to_string());
            bail!("{url} answered {status}: {message}");
        }
        Ok(value)
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&log)?);
    } else {
        print!("{}", render(&log, args.verbose));
    }
    Ok(())
}

/// The event log as a step list for people.
pub fn render(log: &Value, verbose: bool) -> String {
    use std::fmt::Write as _;
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Contact {} from {} to {} (flow \"{}\")",
        s(&log["contactId"]),
        s(&log["from"]),
        s(&log["to"]),
        s(&log["flow"])
    );
    for step in log["steps"].as_array().into_iter().flatten() {
        if let Some(line) = render_step(step, verbose) {
            let _ = writeln!(out, "{line}");
        }
    }
    let _ = writeln!(out, "{}", summary(log));
    out
}

/// One step of the event log as a line (`None` for flow actions unless `verbose`).
pub fn render_step(step: &Value, verbose: bool) -> Option<String> {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let at = s(&step["at"]);
    let time = at.get(11..23).unwrap_or(&at).to_string();
    let line = match step["type"].as_str().unwrap_or("") {
        "flow" => format!("flow       {}", s(&step["flow"])),
        "prompt" => {
            let text =
                step.get("text").or(step.get("ssml")).or(step.get("promptId")).cloned().unwrap_or_default();
            format!("prompt     {}", text)
        }
        "input" if step["timeout"] == true => {
            format!("input      (silence, {} s)", step["waitedSeconds"])
        }
        "input" => format!("input      {}", s(&step["keys"])),
        "function" => {
            let name = step["function"].as_str().unwrap_or("(no function)");
            let method = step["event"]["Details"]["Parameters"]["methodName"].as_str().unwrap_or("");
            let outcome = match step.get("error") {
                Some(e) => format!("ERROR {}", s(e)),
                None => step.get("response").map(Value::to_string).unwrap_or_default(),
            };
            format!("function   {name} {method} -> {outcome} ({} ms)", step["durationMs"])
        }
        "attributes" => {
            let set: Vec<String> = step["set"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            format!("attributes {}", set.join(" "))
        }
        "workingQueue" => format!("queue      working queue {}", s(&step["name"])),
        "queue" => format!("queue      {}: {}", s(&step["name"]), s(&step["result"])),
        "contact" => format!(
            "contact    {} ({} from {})",
            s(&step["contactId"]),
            s(&step["initiationMethod"]),
            s(&step["previousContactId"])
        ),
        "wait" => format!("wait       {} s", step["seconds"]),
        "agent" => match step["detail"].as_str() {
            Some(d) => format!("agent      {} {} {d}", s(&step["agent"]), s(&step["action"])),
            None => format!("agent      {} {}", s(&step["agent"]), s(&step["action"])),
        },
        "command" => format!("           {}", s(&step["command"])),
        "hangUp" => "hang up    the caller hangs up".to_string(),
        "disconnect" => format!("disconnect {}", s(&step["reason"])),
        "warning" => format!("warning    {}", s(&step["message"])),
        "error" => format!("error      {}", s(&step["message"])),
        "action" | "note" if verbose => format!("  action   {}", s(&step["message"])),
        _ => return None,
    };
    Some(format!("  {time}  {line}"))
}

/// The last line of a finished call: how it ended, the queue, agent and VoiceCall.
pub fn summary(log: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = format!("Result: {}", log["disposition"].as_str().unwrap_or(""));
    if let Some(q) = log["queue"]["name"].as_str() {
        let _ = write!(out, " in {q}");
    }
    if let Some(a) = log["agent"].as_str() {
        let _ = write!(out, "; agent {a}");
    }
    match log["voiceCallId"].as_str() {
        Some(id) => {
            let _ = write!(out, "; VoiceCall {id}");
        }
        None => out.push_str("; no VoiceCall"),
    }
    let _ = write!(out, "; disconnect reason {}", log["disconnectReason"].as_str().unwrap_or(""));
    out
}

/// The registry of built-in functions, for validation (no keys needed).
fn builtin_names() -> Registry {
    let r = Registry::new();
    r.register(Arc::new(NameOnly(telephony::NAME)), FunctionOptions::default());
    r.bind(telephony::PLACEHOLDER, telephony::NAME);
    r.register(Arc::new(NameOnly(voxbridge_functions::salesforce::NAME)), FunctionOptions::default());
    r.bind(voxbridge_functions::salesforce::PLACEHOLDER, voxbridge_functions::salesforce::NAME);
    r
}

/// A function known by name only (validation never invokes it).
struct NameOnly(&'static str);

#[async_trait::async_trait]
impl voxbridge_functions::Function for NameOnly {
    fn name(&self) -> &str {
        self.0
    }
    async fn invoke(&self, _event: Value) -> Result<Value, voxbridge_functions::FunctionError> {
        Err(voxbridge_functions::FunctionError::failed("not invocable"))
    }
}

/// `voxbridge flows …`; returns whether every flow is free of errors.
pub fn flows(command: &FlowsCommand) -> Result<bool> {
    let FlowsCommand::Validate(args) = command;
    let registry = builtin_names();
    let mut ok = true;
    for file in &args.files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        let flow = match voxbridge_flows::parse_flow(&text) {
            Ok(f) => f,
            Err(e) => {
                println!("{}: error: {e}", file.display());
                ok = false;
                continue;
            }
        };
        let diagnostics = validate_flow(&flow, &registry, None);
        if diagnostics.is_empty() {
            println!("{}: ok ({} actions)", file.display(), flow.actions.len());
        }
        for d in &diagnostics {
            ok &= d.severity != Severity::Error;
            println!("{}: {d}", file.display());
        }
    }
    Ok(ok)
}

/// Attaches the call simulator to `app`, running the flows of `config.flows_dir` (`--flows`,
/// `VOXBRIDGE_FLOWS`), else those of `<data>/flows` (the sample flows, installed on first
/// start). The flows call the functions of `registry` (see [`registry`]). Queued live calls
/// follow their Omni-Channel routing on this server at `base_url` ([`follower`]): the agent who
/// accepts the call in the console connects to it.
///
/// Flows the user named must load; the default directory is a convenience, so when it is
/// missing or cannot be loaded the server starts without the simulator and says why.
pub fn attach(
    app: axum::Router,
    config: &Config,
    data: &DataDir,
    setup: &SetupFile,
    registry: Arc<Registry>,
    base_url: &str,
    sink: Arc<dyn voxbridge_contacts::ContactSink>,
) -> Result<axum::Router> {
    let (dir, named) = match &config.flows_dir {
        Some(dir) => (dir.clone(), true),
        None => (data.flows_dir(), false),
    };
    if !named && !dir.is_dir() {
        return Ok(app);
    }
    let center = match contact_center(&dir, setup, registry) {
        Ok(center) => center,
        Err(e) if !named => {
            tracing::warn!("the call simulator is off: {e:#}");
            println!("  Call simulator: off ({e:#})");
            return Ok(app);
        }
        Err(e) => return Err(e),
    };
    println!(
        "  Call simulator: {} flows from {}; {}",
        center.library().flows().count(),
        dir.display(),
        match center.library().numbers().as_slice() {
            [] => "no numbers bound (flows.toml [[numbers]])".to_string(),
            numbers => numbers.iter().map(|(n, f)| format!("{n} -> {f}")).collect::<Vec<_>>().join(", "),
        }
    );
    let center = match routing_follower(config, data, setup, base_url) {
        Ok(follower) => center.with_routing(Arc::new(follower)),
        Err(e) => {
            tracing::warn!("live calls do not follow Omni-Channel routing: {e:#}");
            center
        }
    };
    let sink: Arc<dyn voxbridge_contacts::ContactSink> = match telephony_config(config, data, setup, base_url)
        .and_then(|c| InvokeTelephonyIntegrationApi::new(c).map_err(anyhow::Error::msg))
    {
        Ok(signer) => Arc::new(hangup::HangupSink::new(sink, base_url, Arc::new(signer))),
        Err(e) => {
            tracing::warn!("ended contacts leave their VoiceCalls open: {e:#}");
            sink
        }
    };
    Ok(app.layer(axum::Extension(voxbridge_server::simulator::Simulator {
        center: Arc::new(center.with_sink(sink)),
        org_id: Some(setup.org.id.clone()),
    })))
}

/// Follows live calls' routing as the call center with a private key, mapping the CRM half's
/// agents (setup.json) to the telephony agents of the same username.
fn routing_follower(
    config: &Config,
    data: &DataDir,
    setup: &SetupFile,
    base_url: &str,
) -> Result<follower::SseRouting> {
    let signer = InvokeTelephonyIntegrationApi::new(telephony_config(config, data, setup, base_url)?)
        .map_err(anyhow::Error::msg)?;
    let agents = setup.agents.iter().map(|a| (a.id.clone(), a.username.clone()));
    Ok(follower::SseRouting::new(base_url, Arc::new(signer), agents))
}

fn contact_center(dir: &Path, setup: &SetupFile, registry: Arc<Registry>) -> Result<ContactCenter> {
    // The CRM half's queues and agents, under the ids its routing map gives them, so the
    // answers of executeOmniFlow name queues the telephony side knows; the agents take
    // contacts from every queue.
    let mut defaults = LibraryDefaults::default();
    for q in &setup.queues {
        for arn in q.external_ids.iter().filter(|a| a.contains("/queue/")) {
            defaults.queues.push(QueueConfig {
                name: q.developer_name.clone(),
                id: arn.rsplit('/').next().unwrap_or(arn).to_string(),
                arn: Some(arn.clone()),
                ..QueueConfig::default()
            });
        }
    }
    for a in &setup.agents {
        for arn in a.external_ids.iter().filter(|x| x.contains("/agent/")) {
            let (first_name, last_name) = match a.name.split_once(' ') {
                Some((f, l)) => (Some(f.to_string()), Some(l.to_string())),
                None => (Some(a.name.clone()), None),
            };
            defaults.agents.push(AgentConfig {
                username: a.username.clone(),
                id: Some(arn.rsplit('/').next().unwrap_or(arn).to_string()),
                arn: Some(arn.clone()),
                first_name,
                last_name,
                ..AgentConfig::default()
            });
        }
    }
    let library = FlowLibrary::load_dir_with(dir, defaults)
        .with_context(|| format!("cannot load the flows in {}", dir.display()))?;
    register_external_functions(&library, &registry);
    for f in library.flows() {
        for d in validate_flow(&f.flow, &registry, Some(&library)) {
            match d.severity {
                Severity::Error => tracing::error!(flow = %f.name, "{d}"),
                Severity::Warning => tracing::warn!(flow = %f.name, "{d}"),
            }
        }
    }
    Ok(ContactCenter::new(Arc::new(library), registry, Arc::new(SystemClock)))
}

/// How the built-in functions reach this server's Telephony Integration API at `base_url`:
/// as the call center of setup.json that has a private key.
pub fn telephony_config(
    config: &Config,
    data: &DataDir,
    setup: &SetupFile,
    base_url: &str,
) -> Result<TelephonyApiConfig> {
    let call_center = setup.call_centers.iter().find(|c| c.private_key_file.is_some()).context(
        "no call center in setup.json has a private key for InvokeTelephonyIntegrationApiFunction",
    )?;
    let key_path = data.resolve(call_center.private_key_file.as_deref().unwrap_or_default());
    let private_key_pem =
        std::fs::read_to_string(&key_path).with_context(|| format!("cannot read {}", key_path.display()))?;
    Ok(TelephonyApiConfig {
        org_id: setup.org.id.clone(),
        call_center_api_name: call_center.api_name.clone(),
        audience: config.audience.clone(),
        base_url: format!("{}/telephony/v1", base_url.trim_end_matches('/')),
        private_key_pem,
        provider_name: "amazon-connect".into(),
    })
}

/// The server's function registry, shared by the contact center and the rules: the
/// built-in InvokeTelephonyIntegrationApiFunction and InvokeSalesforceRestApiFunction, which
/// call this server at `base_url` over HTTP.
pub fn registry(config: &Config, data: &DataDir, setup: &SetupFile, base_url: &str) -> Result<Registry> {
    let registry = Registry::new();
    let function = InvokeTelephonyIntegrationApi::new(telephony_config(config, data, setup, base_url)?)
        .map_err(anyhow::Error::msg)?;
    registry.register(Arc::new(function), FunctionOptions::default());
    registry.bind(telephony::PLACEHOLDER, telephony::NAME);
    // InvokeSalesforceRestApiFunction calls this server's CRM REST API as the demo connected
    // app's API user (JWT bearer login with the app's key from the data dir).
    match setup.connected_app(None).filter(|a| a.private_key_file.is_some()) {
        Some(app) if !app.users.is_empty() => {
            let key_path = data.resolve(app.private_key_file.as_deref().unwrap_or_default());
            let pem = std::fs::read_to_string(&key_path)
                .with_context(|| format!("cannot read {}", key_path.display()))?;
            let audience = config.login_audiences.first().cloned().unwrap_or_default();
            let mut crm = voxbridge_functions::salesforce::CrmConfig::new(
                base_url.trim_end_matches('/'),
                &app.consumer_key,
                &app.users[0],
                audience,
                pem,
            );
            crm.token_lifetime = std::time::Duration::from_secs(config.session_lifetime_secs);
            let client = voxbridge_functions::salesforce::CrmClient::new(crm).map_err(anyhow::Error::msg)?;
            let function = voxbridge_functions::salesforce::InvokeSalesforceRestApi::new(Arc::new(client));
            registry.register(Arc::new(function), FunctionOptions::default());
            registry
                .bind(voxbridge_functions::salesforce::PLACEHOLDER, voxbridge_functions::salesforce::NAME);
        }
        _ => tracing::warn!(
            "no connected app with a private key and a user in setup.json: flows cannot call \
             InvokeSalesforceRestApiFunction"
        ),
    }
    Ok(registry)
}
