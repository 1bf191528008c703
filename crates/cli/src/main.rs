//! The `voxbridge` binary: serve the API, create and describe the demo setup, mint tokens,
//! make keys, and act on live calls.
//!
//! Output meant for people goes to standard output; logs go to standard error so `token`
//! and `info --json` can be piped.

mod bench;
mod bench_crm;
mod bench_flows;
mod bench_pipelines;
mod bench_routing;
mod call_interactive;
mod calls;
mod callsim;
mod config;
mod crm_login;
mod ctr;
mod datadir;
mod info;
mod keys;
mod metadata;
mod objects;
mod pipelines;
mod provision;
mod rules;
mod serve;
mod stream;
mod token;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::config::{Config, Overrides};
use crate::datadir::DataDir;

#[derive(Debug, Parser)]
#[command(
    name = "voxbridge",
    version,
    about = "Voxbridge: a self-hostable contact-center voice platform",
    long_about = "Voxbridge: a self-hostable contact-center voice platform.\n\n\
                  Start with `voxbridge serve`: it creates a demo org in ./data and serves the \
                  Telephony Integration API on http://127.0.0.1:8080/telephony/v1.",
    propagate_version = true
)]
struct Cli {
    /// Configuration file (TOML, `version = 1`). Also VOXBRIDGE_CONFIG.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory: database, keys, setup.json, TLS certificate. Also VOXBRIDGE_DATA;
    /// default ./data.
    #[arg(long, global = true, value_name = "DIR")]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (creates the demo setup on first start).
    Serve(ServeArgs),
    /// Create the demo setup (or refresh setup.json) without serving.
    Setup(SetupArgs),
    /// Show the org, call centers, numbers, queues, agents and URLs.
    Info(InfoArgs),
    /// Print a signed bearer token (RS256 JWT) for a call center, or with --crm log in to
    /// the CRM REST API and print an access token.
    Token(TokenArgs),
    /// Manage RSA key pairs.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Act on a live voice call through the admin API.
    #[command(subcommand)]
    Calls(CallsCommand),
    /// Measure a server's throughput and latency against the performance targets.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Simulate calls through the contact flows of a running server.
    #[command(subcommand)]
    Call(callsim::CallCommand),
    /// Check contact flows (Amazon Connect exports).
    #[command(subcommand)]
    Flows(callsim::FlowsCommand),
    /// Back up and restore call-center metadata (call centers, queues, routing map, phone
    /// channels, routing definitions, custom fields) as files, e.g. around a sandbox refresh.
    #[command(subcommand)]
    Metadata(metadata::MetadataCommand),
    /// Read and write the event bus's streams (CTRs, contact events).
    #[command(subcommand)]
    Stream(stream::StreamCommand),
    /// List, store, read and tag objects in the object store (CTR backups).
    #[command(subcommand)]
    Objects(objects::ObjectsCommand),
    /// Re-sync VoiceCalls that no CTR sync reached.
    #[command(subcommand)]
    Ctr(ctr::CtrCommand),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// HTTP listen address, or `off`. Also VOXBRIDGE_HTTP; default 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// HTTPS listen address, or `off` (the default). Also VOXBRIDGE_HTTPS.
    #[arg(long, value_name = "ADDR")]
    https: Option<String>,
    /// Store URL: sqlite://PATH or postgres://USER:PASSWORD@HOST/DB. Also
    /// VOXBRIDGE_DATABASE_URL(_FILE); default sqlite://<data>/voxbridge.db.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Contact flows for the call simulator: a directory of flow exports (*.json) and
    /// flows.toml (numbers, subflow ids, queues, external functions); see docs/flows.md.
    /// Default: <data>/flows, where the first start writes Voxbridge's sample flows.
    #[arg(long, value_name = "DIR", env = "VOXBRIDGE_FLOWS")]
    flows: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct SetupArgs {
    /// Store URL (see `serve --help`).
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

#[derive(Debug, Args)]
struct InfoArgs {
    /// Print JSON for scripts instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// Log in to the CRM REST API (OAuth 2.0 JWT bearer flow with the connected app's key)
    /// and print the access token.
    #[arg(long, conflicts_with_all = ["call_center", "ttl", "no_jti"])]
    crm: bool,
    /// With --crm: the username to log in as [default: the connected app's API user,
    /// integration@demo.voxbridge.local].
    #[arg(long, value_name = "USERNAME", requires = "crm")]
    user: Option<String>,
    /// With --crm: the connected app's consumer key [default: the app whose private key is
    /// in the data dir].
    #[arg(long, value_name = "KEY", requires = "crm")]
    consumer_key: Option<String>,
    /// With --crm: server root URL [default: `server.public_url`, else the HTTP address,
    /// http://127.0.0.1:8080].
    #[arg(long, value_name = "BASE", requires = "crm")]
    url: Option<String>,
    /// With --crm: print the whole token response (access_token, instance_url, ...) as JSON.
    #[arg(long, requires = "crm")]
    json: bool,
    /// API name of the call center (the token's `sub`).
    #[arg(long, value_name = "NAME", default_value = voxbridge_core::setup::DEMO_CALL_CENTER)]
    call_center: String,
    /// Seconds until the token expires.
    #[arg(long, value_name = "SECS", default_value_t = token::DEFAULT_TTL_SECS)]
    ttl: u64,
    /// The `aud` claim [default: the configured audience, https://scrt.salesforce.com; with
    /// --crm the first of `crm.login_audiences`, https://login.salesforce.com]
    #[arg(long, value_name = "AUD")]
    audience: Option<String>,
    /// Leave out the `jti` claim (tokens with a jti are refused when replayed).
    #[arg(long)]
    no_jti: bool,
    /// Private key to sign with [default: <data>/keys/<NAME>.private.pem; with --crm the
    /// connected app's, <data>/keys/VoxbridgeIntegration.private.pem].
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Generate an RSA key pair: DIR/private.pem (mode 0600) and DIR/public.pem.
    Generate(KeysGenerateArgs),
}

#[derive(Debug, Args)]
struct KeysGenerateArgs {
    /// Directory to write the key pair to (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Key size: 2048 (recommended) or 4096.
    #[arg(long, default_value_t = 2048)]
    bits: usize,
    /// Replace an existing key pair in DIR.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Subcommand)]
enum CallsCommand {
    /// Put a call on hold.
    Hold(CallArgs),
    /// Take a call off hold.
    Resume(CallArgs),
    /// Pause the call's recording.
    PauseRecording(CallArgs),
    /// Resume the call's recording.
    ResumeRecording(CallArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Load the Telephony Integration API of a fresh server over HTTP: echo baseline, call
    /// creation, single and bulk transcripts, delivery to live subscribers, memory with many
    /// open conversations.
    ///
    /// Starts `voxbridge serve` as a child process on a temporary data directory (the global
    /// --data and --config are not used) with the per-org limits raised out of the way, and
    /// loads it from this process. Progress goes to standard error, results to standard
    /// output.
    Telephony(bench::TelephonyArgs),
    /// Load the CRM REST API of a fresh server over HTTP on a large VoiceCall table: a
    /// record by Id (baseline), SOQL equality on VendorCallKey, a five-minute SOQL range on
    /// CallStartDateTime, Case creation.
    ///
    /// Provisions a temporary data directory (the global --data and --config are not used),
    /// seeds the VoiceCall records straight through the store, then starts `voxbridge serve`
    /// on it as a child process, logs in with the demo connected app and loads it from this
    /// process. Progress goes to standard error, results to standard output.
    Crm(bench_crm::CrmArgs),
    /// Omni-Channel routing and console events in this process, over real HTTP and
    /// WebSockets: executeOmniFlow to the offer on the agent's console with 1,000 agents and
    /// 100 queues, a transcript to 500 consoles, and a bare WebSocket echo baseline.
    ///
    /// Seeds a temporary store (the global --data and --config are not used). Progress goes
    /// to standard error, results to standard output.
    Routing(bench_routing::RoutingArgs),
    /// Run contacts through the sample inbound flow and its Omni-Channel subflow in this
    /// process, with in-process functions answering like the real ones: contacts per second
    /// against a parse-only baseline, interpreter time per action, memory per active contact.
    ///
    /// Needs no server or data directory. Progress goes to standard error, results to
    /// standard output.
    Flows(bench_flows::FlowsArgs),
    /// Run the CTR sync in this process against a fresh org: CTRs per second synced into
    /// VoiceCalls and hang-up-to-final-record lag at a fixed rate, against a baseline of
    /// publish-and-consume with no work, on the embedded bus and (with --bus) NATS JetStream.
    ///
    /// Needs no server or data directory. Progress goes to standard error, results to
    /// standard output.
    Pipelines(bench_pipelines::PipelinesArgs),
}

#[derive(Debug, Args)]
struct CallArgs {
    /// The VoiceCall id (or vendor call key).
    #[arg(value_name = "CALL_ID")]
    call_id: String,
    /// Call center whose token authorizes the change.
    #[arg(long, value_name = "NAME", default_value = voxbridge_core::setup::DEMO_CALL_CENTER)]
    call_center: String,
    /// Server root URL [default: `server.public_url`, else the HTTP address, http://127.0.0.1:8080].
    #[arg(long, value_name = "BASE")]
    url: Option<String>,
    /// Private key to sign the token with [default: <data>/keys/<NAME>.private.pem].
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn load_config(
    cli: &Cli,
    http: Option<String>,
    https: Option<String>,
    database_url: Option<String>,
) -> Result<Config> {
    let overrides =
        Overrides { config: cli.config.clone(), data_dir: cli.data.clone(), http, https, database_url };
    config::load(&overrides, &config::process_env())
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Serve(args) => {
            let mut config =
                load_config(&cli, args.http.clone(), args.https.clone(), args.database_url.clone())?;
            config.flows_dir = args.flows.clone();
            init_logging(&config.log_filter);
            tracing::debug!(?config, "configuration");
            runtime()?.block_on(serve::run(&config))
        }
        Command::Setup(args) => {
            let config = load_config(&cli, None, None, args.database_url.clone())?;
            init_logging(&config.log_filter);
            let provisioned = runtime()?.block_on(async {
                let (store, provisioned) = serve::prepare(&config).await?;
                store.close().await;
                Ok::<_, anyhow::Error>(provisioned)
            })?;
            let data = DataDir::new(&config.data_dir);
            match &provisioned.created {
                Some(_) => println!("Created the demo org {}.", provisioned.setup.org.id),
                None => {
                    println!("The store already has org {}; refreshed setup.json.", provisioned.setup.org.id)
                }
            }
            if let Some(dir) = &provisioned.flows_installed {
                println!("Installed the sample flows in {}.", dir.display());
            }
            if let (None, Some(i)) = (&provisioned.created, &provisioned.integration) {
                println!(
                    "Added the connected app `{}` and API user {} for the CRM REST API.",
                    i.app_name, i.username
                );
            }
            println!("Setup written to {}.", data.setup_json().display());
            println!(
                "Next: `voxbridge serve{0}`, or `voxbridge info{0}` for details.",
                serve::data_flag(&config.data_dir)
            );
            Ok(())
        }
        Command::Info(args) => {
            let mut config = load_config(&cli, None, None, None)?;
            // What `serve` would run: VOXBRIDGE_FLOWS, else <data>/flows.
            config.flows_dir =
                std::env::var_os("VOXBRIDGE_FLOWS").filter(|v| !v.is_empty()).map(PathBuf::from);
            init_logging("warn");
            let report = info::gather(&config)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", info::human(&report));
            }
            Ok(())
        }
        Command::Token(args) if args.crm => {
            let config = load_config(&cli, None, None, None)?;
            let data = DataDir::new(&config.data_dir);
            let setup = data.read_setup()?;
            let audience = match &args.audience {
                Some(a) => a.clone(),
                None => config.login_audiences.first().cloned().unwrap_or_default(),
            };
            let login = crm_login::resolve(
                &data,
                &setup,
                args.consumer_key.as_deref(),
                args.user.as_deref(),
                args.key.as_deref(),
                &audience,
            )?;
            let base = args.url.clone().unwrap_or_else(|| config.base_url());
            let body = runtime()?.block_on(crm_login::login(&base, &login, &data))?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                println!("{}", body["access_token"].as_str().unwrap_or_default());
            }
            Ok(())
        }
        Command::Token(args) => {
            let config = load_config(&cli, None, None, None)?;
            let data = DataDir::new(&config.data_dir);
            let setup = data.read_setup()?;
            if args.ttl > config.max_token_lifetime_secs {
                eprintln!(
                    "warning: --ttl {} is longer than the server accepts ({}s, `auth.max_token_lifetime_secs`); \
                     the token will be refused",
                    args.ttl, config.max_token_lifetime_secs
                );
            }
            let audience = args.audience.clone().unwrap_or_else(|| config.audience.clone());
            let jwt = token::mint(
                &data,
                &setup,
                &args.call_center,
                args.key.as_deref(),
                &audience,
                args.ttl,
                !args.no_jti,
            )?;
            println!("{jwt}");
            Ok(())
        }
        Command::Keys(KeysCommand::Generate(args)) => {
            keys::generate_into(&args.out, args.bits, args.force)?;
            let private = args.out.join("private.pem");
            let public = args.out.join("public.pem");
            println!("Wrote {} (keep it secret) and {}.", private.display(), public.display());
            println!();
            println!("Register the public key for a call center in the configuration file:");
            println!();
            println!("  [[call_centers]]");
            println!("  api_name = \"MyCallCenter\"");
            println!("  public_key_file = \"{}\"", std::path::absolute(&public).unwrap_or(public).display());
            println!();
            println!("then restart `voxbridge serve` and sign tokens with:");
            println!("  voxbridge token --call-center MyCallCenter --key {}", private.display());
            Ok(())
        }
        Command::Bench(BenchCommand::Telephony(args)) => {
            init_logging("warn");
            runtime()?.block_on(bench::telephony(args))
        }
        Command::Bench(BenchCommand::Crm(args)) => {
            init_logging("warn");
            runtime()?.block_on(bench_crm::crm(args))
        }
        Command::Bench(BenchCommand::Routing(args)) => {
            init_logging("warn");
            runtime()?.block_on(bench_routing::routing(args))
        }
        Command::Bench(BenchCommand::Flows(args)) => {
            init_logging("warn");
            bench_flows::run(args)
        }
        Command::Bench(BenchCommand::Pipelines(args)) => {
            init_logging("warn");
            bench_pipelines::run(args)
        }
        Command::Stream(command) => {
            let config = load_config(&cli, None, None, None)?;
            init_logging("warn");
            stream::run(command, &config)
        }
        Command::Objects(command) => {
            let config = load_config(&cli, None, None, None)?;
            init_logging("warn");
            objects::run(command, &config)
        }
        Command::Ctr(command) => {
            let config = load_config(&cli, None, None, None)?;
            init_logging(&config.log_filter);
            ctr::run(command, &config)
        }
        Command::Call(command) => {
            let config = load_config(&cli, None, None, None)?;
            init_logging("warn");
            callsim::call(command, &config)
        }
        Command::Metadata(command) => {
            let config = load_config(&cli, None, None, None)?;
            init_logging(&config.log_filter);
            metadata::run(command, &config)
        }
        Command::Flows(command) => {
            if !callsim::flows(command)? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Calls(command) => {
            let (action, args) = match command {
                CallsCommand::Hold(a) => (calls::Action::Hold, a),
                CallsCommand::Resume(a) => (calls::Action::Resume, a),
                CallsCommand::PauseRecording(a) => (calls::Action::PauseRecording, a),
                CallsCommand::ResumeRecording(a) => (calls::Action::ResumeRecording, a),
            };
            let config = load_config(&cli, None, None, None)?;
            let data = DataDir::new(&config.data_dir);
            let setup = data.read_setup()?;
            // Short-lived and without jti reuse concerns: one request per token.
            let jwt = token::mint(
                &data,
                &setup,
                &args.call_center,
                args.key.as_deref(),
                &config.audience,
                60,
                true,
            )?;
            let base = args.url.clone().unwrap_or_else(|| config.base_url());
            let body = runtime()?.block_on(calls::send(&base, &args.call_id, &jwt, action, &data))?;
            println!("{}", serde_json::to_string_pretty(&body)?);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
