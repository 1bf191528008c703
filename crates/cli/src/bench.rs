//! `voxbridge bench telephony`: measures the Telephony Integration API of a real server over
//! real HTTP and compares the figures with the performance targets.
//!
//! The bench starts `voxbridge serve` (this same binary) as a child process on a fresh,
//! temporary data directory (and, for PostgreSQL, a schema of its own), raises the per-org
//! limits so they never answer 429, and loads the server from this process: N tokio tasks,
//! each with its own keep-alive connection, send requests back to back. One token without
//! `jti` is signed per scenario and reused, so the bench measures the API, not the replay
//! table.
//!
//! The load generator shares the machine's CPUs with the server (unlike in production, where
//! the telephony system runs elsewhere), so the figures are a floor for that hardware.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::datadir::DataDir;
use crate::token;

/// Per-scenario warm-up before measuring: connections, caches and the JIT-free but
/// allocation-heavy first requests settle.
const WARMUP: Duration = Duration::from_secs(1);
/// Conversations the transcript scenarios spread their messages over.
const TRANSCRIPT_CONVERSATIONS: usize = 200;
/// Conversations with a live subscriber in the delivery scenario.
const SUBSCRIPTIONS: usize = 20;
/// Messages per second sent to each subscribed conversation (20 × 20 = 400 utterances/s: a
/// busy contact center, far below saturation, so the figure is delivery latency, not
/// queueing).
const MESSAGES_PER_SUBSCRIPTION_PER_SEC: u64 = 20;
/// How many error answers of a scenario are kept and printed.
pub(crate) const KEEP_ERRORS: usize = 3;
/// A scenario stops early after this many errors without a single success: the server is
/// gone or misconfigured, and spinning on it teaches nothing.
const GIVE_UP_AFTER_ERRORS: u64 = 1000;
/// Limits for the child server: high enough never to apply.
const NO_LIMIT: &str = "1000000000";
/// Token lifetime; the child accepts up to the configurable maximum (3600 s).
const TOKEN_TTL_SECS: u64 = 3600;

pub(crate) const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Targets (see docs/performance.md).
const TARGET_UTTERANCES_PER_SEC: f64 = 10_000.0;
const TARGET_SINGLE_VS_BASELINE: f64 = 0.5;
const TARGET_CREATES_PER_SEC: f64 = 500.0;
const TARGET_DELIVERY_P99_MS: f64 = 25.0;
const TARGET_CONVERSATIONS: u64 = 50_000;
const TARGET_RSS_MB: f64 = 500.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Debug, Args)]
pub struct TelephonyArgs {
    /// Store the server runs on.
    #[arg(long, value_enum, default_value_t = BackendChoice::Sqlite)]
    backend: BackendChoice,
    /// Seconds each throughput scenario is measured (after a 1 s warm-up).
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3000))]
    duration: u64,
    /// Concurrent clients (tasks, each with its own keep-alive connection).
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    concurrency: u64,
    /// PostgreSQL to measure on; the bench works in a schema of its own and drops it after.
    #[arg(long, value_name = "URL", default_value = DEFAULT_POSTGRES_URL)]
    postgres_url: String,
    /// Open conversations to hold for the memory measurement.
    #[arg(long, value_name = "N", default_value_t = TARGET_CONVERSATIONS,
          value_parser = clap::value_parser!(u64).range(200..))]
    conversations: u64,
    /// Print the results as JSON (progress still goes to standard error).
    #[arg(long)]
    json: bool,
}

/// Runs the bench and prints the report.
pub async fn telephony(args: &TelephonyArgs) -> Result<()> {
    let backends: &[&str] = match args.backend {
        BackendChoice::Sqlite => &["sqlite"],
        BackendChoice::Postgres => &["postgres"],
        BackendChoice::Both => &["sqlite", "postgres"],
    };
    let machine = Machine::detect();
    progress(&format!(
        "voxbridge bench telephony: {} on {} CPU(s) ({}), {} clients, {} s per scenario",
        backends.join(" and "),
        machine.cpus,
        machine.cpu_model,
        args.concurrency,
        args.duration
    ));
    let mut reports = Vec::new();
    for backend in backends {
        let report =
            run_backend(args, backend).await.with_context(|| format!("the {backend} bench failed"))?;
        if !args.json {
            print!("{}", render(&report, args, &machine));
        }
        reports.push(report);
    }
    if args.json {
        let out = JsonReport {
            version: env!("CARGO_PKG_VERSION"),
            machine,
            duration_secs: args.duration,
            concurrency: args.concurrency,
            backends: reports,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

pub(crate) fn progress(line: &str) {
    eprintln!("{line}");
}

// ---------------------------------------------------------------------------------------
// Report types

#[derive(Debug, Serialize)]
struct JsonReport {
    version: &'static str,
    machine: Machine,
    duration_secs: u64,
    concurrency: u64,
    backends: Vec<BackendReport>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    pub(crate) cpus: usize,
    pub(crate) cpu_model: String,
}

impl Machine {
    pub(crate) fn detect() -> Machine {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        Machine { cpus, cpu_model }
    }
}

#[derive(Debug, Serialize)]
struct BackendReport {
    backend: String,
    scenarios: Vec<ScenarioReport>,
    delivery: DeliveryReport,
    memory: MemoryReport,
    verdicts: Vec<Verdict>,
}

#[derive(Debug, Clone, Serialize)]
struct ScenarioReport {
    id: &'static str,
    name: &'static str,
    requests: u64,
    errors: u64,
    seconds: f64,
    requests_per_sec: f64,
    /// Utterances per request for transcript scenarios.
    #[serde(skip_serializing_if = "Option::is_none")]
    utterances_per_sec: Option<f64>,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    first_errors: Vec<String>,
}

#[derive(Debug, Serialize)]
struct DeliveryReport {
    subscriptions: usize,
    target_rate_per_sec: u64,
    sent: u64,
    send_errors: u64,
    received: u64,
    lost: u64,
    lagged: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    post_p50_ms: f64,
    post_p99_ms: f64,
    first_errors: Vec<String>,
}

#[derive(Debug, Serialize)]
struct MemoryReport {
    open_conversations: u64,
    created_for_memory: u64,
    create_errors: u64,
    create_seconds: f64,
    rss_at_start_mb: Option<f64>,
    rss_mb: Option<f64>,
    peak_rss_mb: Option<f64>,
    first_errors: Vec<String>,
}

impl MemoryReport {
    /// Creates per second while filling up, when enough were made to tell.
    fn fill_rate(&self) -> Option<f64> {
        (self.created_for_memory >= 1000 && self.create_seconds > 0.0)
            .then(|| self.created_for_memory as f64 / self.create_seconds)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Met,
    Missed,
    NotMeasured,
}

#[derive(Debug, Serialize)]
pub(crate) struct Verdict {
    pub(crate) target: String,
    pub(crate) measured: String,
    pub(crate) status: Status,
}

// ---------------------------------------------------------------------------------------
// The child server

/// `voxbridge serve` on a temporary data directory; killed on drop if still running.
pub(crate) struct ServerProcess {
    child: Child,
    pub(crate) base: String,
    log: PathBuf,
}

impl ServerProcess {
    pub(crate) fn start(data: &Path, database_url: Option<&str>, log: PathBuf) -> Result<ServerProcess> {
        let exe = std::env::current_exe().context("cannot find the voxbridge binary to start a server")?;
        let mut cmd = Command::new(exe);
        cmd.args(["serve", "--http", "127.0.0.1:0", "--data"]).arg(data);
        if let Some(url) = database_url {
            cmd.args(["--database-url", url]);
        }
        // Nothing of the caller's configuration leaks in: the bench describes its own server.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("VOXBRIDGE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("VOXBRIDGE_LIMITS_MAX_CONCURRENT_CALLS", NO_LIMIT)
            .env("VOXBRIDGE_LIMITS_CALLS_PER_SECOND", NO_LIMIT)
            .env("VOXBRIDGE_LIMITS_UTTERANCES_PER_SECOND", NO_LIMIT)
            .env("VOXBRIDGE_AUTH_MAX_TOKEN_LIFETIME_SECS", TOKEN_TTL_SECS.to_string())
            .env("VOXBRIDGE_AUTH_AUDIENCE", audience())
            .env("VOXBRIDGE_LOG", "warn");
        let stderr =
            std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .context("cannot start `voxbridge serve`")?;
        let stdout = child.stdout.take().context("no stdout of the server")?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Keeps draining after the address is known so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut server = ServerProcess { child, base: String::new(), log };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("listening on http://") {
                        server.base = format!("http://{}", addr.trim());
                        return Ok(server);
                    }
                }
                Err(_) => bail!("the server did not start:\n{}", server.log_tail()),
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines the server logged, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        if tail.is_empty() {
            "(the server logged nothing)".into()
        } else {
            tail
        }
    }

    /// Resident memory of the server: (VmRSS, VmHWM) in MB, on Linux.
    pub(crate) fn rss_mb(&self) -> Option<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let kb = |name: &str| -> Option<f64> {
            let line = status.lines().find(|l| l.starts_with(name))?;
            line[name.len()..].trim().trim_end_matches("kB").trim().parse::<f64>().ok()
        };
        Some((kb("VmRSS:")? / 1024.0, kb("VmHWM:")? / 1024.0))
    }

    /// SIGTERM (graceful), then SIGKILL if it has not stopped within 15 s.
    pub(crate) fn stop(mut self) {
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn audience() -> String {
    voxbridge_server::Settings::default().audience
}

// ---------------------------------------------------------------------------------------
// One backend

/// What every scenario needs: where the server is, how to sign, a client.
struct Target {
    base: String,
    client: reqwest::Client,
    org: String,
    key_pem: Vec<u8>,
    /// Distinguishes this run's keys and message ids.
    run: String,
    /// Start time of every call the bench creates (10 minutes ago), so any message sent now
    /// falls inside its conversation.
    call_start_iso: String,
}

impl Target {
    fn token(&self) -> Result<String> {
        let claims = token::Claims::new(
            &self.org,
            voxbridge_core::setup::DEMO_CALL_CENTER,
            &audience(),
            TOKEN_TTL_SECS,
            false,
        );
        token::sign(&claims, &self.key_pem)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

async fn run_backend(args: &TelephonyArgs, backend: &str) -> Result<BackendReport> {
    let dir = tempfile::Builder::new().prefix("voxbridge-bench-").tempdir()?;
    let data = dir.path().join("data");
    let (db_url, schema) = match backend {
        "postgres" => {
            let schema = format!("vb_bench_{}", uuid::Uuid::new_v4().simple());
            let sep = if args.postgres_url.contains('?') { '&' } else { '?' };
            (Some(format!("{}{sep}schema={schema}", args.postgres_url)), Some(schema))
        }
        _ => (None, None),
    };
    let tag = format!("[{backend}]");
    progress(&format!("{tag} starting `voxbridge serve` on {}", data.display()));
    let mut started = false;
    let result = async {
        let server = ServerProcess::start(&data, db_url.as_deref(), dir.path().join("server.log"))?;
        started = true;
        let outcome = measure(args, backend, &server, &data).await;
        if outcome.is_err() {
            eprintln!("{tag} server log (last lines):\n{}", server.log_tail());
        }
        progress(&format!("{tag} stopping the server"));
        server.stop();
        outcome
    }
    .await;
    if let Some(schema) = schema {
        match drop_schema(&args.postgres_url, &schema).await {
            Ok(()) => progress(&format!("{tag} dropped schema {schema}")),
            // A server that never started may not have made the schema either.
            Err(_) if !started => {}
            Err(e) => eprintln!(
                "{tag} warning: could not drop schema {schema} ({e:#}); drop it with \
                 psql -c 'DROP SCHEMA {schema} CASCADE'"
            ),
        }
    }
    result
}

pub(crate) async fn drop_schema(url: &str, schema: &str) -> Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

async fn measure(
    args: &TelephonyArgs,
    backend: &str,
    server: &ServerProcess,
    data: &Path,
) -> Result<BackendReport> {
    let tag = format!("[{backend}]");
    let setup = DataDir::new(data).read_setup()?;
    let data_dir = DataDir::new(data);
    let key_path = token::private_key_for(&data_dir, &setup, voxbridge_core::setup::DEMO_CALL_CENTER, None)?;
    let key_pem = std::fs::read(&key_path).with_context(|| format!("cannot read {}", key_path.display()))?;
    let concurrency = args.concurrency as usize;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency * 2)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?;
    let run: String = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let call_start_iso =
        (chrono::Utc::now() - chrono::Duration::minutes(10)).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let target = Arc::new(Target {
        base: server.base.clone(),
        client,
        org: setup.org.id.clone(),
        key_pem,
        run,
        call_start_iso,
    });
    let rss_at_start = server.rss_mb().map(|(rss, _)| rss);
    let measured = Duration::from_secs(args.duration);
    let mut open_conversations = 0u64;
    let mut scenarios = Vec::new();

    // a. baseline: authentication and parsing only.
    progress(&format!("{tag} a  baseline (POST /admin/v1/echo): {} s", args.duration));
    let t = target.clone();
    let r = load(&target, concurrency, Stop::After(measured), move |seq| {
        ("/admin/v1/echo".to_string(), message_body(&format!("{}-a-{seq}", t.run), now_ms(), UTTERANCE))
    })
    .await?;
    scenarios.push(finish(&tag, "a", "baseline: echo", 0, r));

    // b. creating voice calls.
    progress(&format!("{tag} b  create voice call (POST /telephony/v1/voiceCalls): {} s", args.duration));
    let t = target.clone();
    let r = load(&target, concurrency, Stop::After(measured), move |seq| {
        (
            "/telephony/v1/voiceCalls".to_string(),
            create_body(&format!("bench-{}-b-{seq}", t.run), &t.call_start_iso),
        )
    })
    .await?;
    open_conversations += r.ok_total;
    scenarios.push(finish(&tag, "b", "create voice call", 0, r));

    // The conversations transcripts go to.
    progress(&format!(
        "{tag}    creating {TRANSCRIPT_CONVERSATIONS} conversations for the transcript scenarios"
    ));
    let keys: Arc<Vec<String>> =
        Arc::new((0..TRANSCRIPT_CONVERSATIONS).map(|i| format!("bench-{}-conv-{i}", target.run)).collect());
    let (t, k) = (target.clone(), keys.clone());
    let r = load(&target, concurrency.min(32), Stop::Count(keys.len() as u64), move |seq| {
        ("/telephony/v1/voiceCalls".to_string(), create_body(&k[seq as usize], &t.call_start_iso))
    })
    .await?;
    open_conversations += r.ok_total;
    if r.errors > 0 {
        bail!("creating the transcript conversations failed: {}", r.first_errors.join("; "));
    }

    // c. one message per request.
    progress(&format!(
        "{tag} c  single transcript (POST /telephony/v1/voiceCalls/{{key}}/messages): {} s",
        args.duration
    ));
    let (t, k) = (target.clone(), keys.clone());
    let r = load(&target, concurrency, Stop::After(measured), move |seq| {
        let key = &k[seq as usize % k.len()];
        (
            format!("/telephony/v1/voiceCalls/{key}/messages"),
            message_body(&format!("{}-c-{seq}", t.run), now_ms(), UTTERANCE),
        )
    })
    .await?;
    scenarios.push(finish(&tag, "c", "single transcript", 1, r));

    // d. the bulk endpoint at its maximum: 5 calls × 5 messages.
    progress(&format!("{tag} d  bulk 5x5 (POST /telephony/v1/voiceCalls/messages): {} s", args.duration));
    let (t, k) = (target.clone(), keys.clone());
    let r = load(&target, concurrency, Stop::After(measured), move |seq| {
        ("/telephony/v1/voiceCalls/messages".to_string(), bulk_body(&t.run, &k, seq))
    })
    .await?;
    scenarios.push(finish(&tag, "d", "bulk 5 calls x 5 messages", 25, r));

    // e. delivery latency to live subscribers.
    progress(&format!(
        "{tag} e  transcript delivery to {SUBSCRIPTIONS} SSE subscribers at {} messages/s: {} s",
        SUBSCRIPTIONS as u64 * MESSAGES_PER_SUBSCRIPTION_PER_SEC,
        args.duration
    ));
    let delivery = delivery(&target, &keys[..SUBSCRIPTIONS], measured).await?;
    progress(&format!(
        "{tag} e  done: {} sent, {} received, p50 {:.2} ms, p99 {:.2} ms{}",
        delivery.sent,
        delivery.received,
        delivery.p50_ms,
        delivery.p99_ms,
        errors_note(delivery.send_errors, &delivery.first_errors)
    ));

    // f. memory with many open conversations.
    let missing = args.conversations.saturating_sub(open_conversations);
    progress(&format!(
        "{tag} f  memory: {open_conversations} conversations open, creating {missing} more to reach {}",
        args.conversations
    ));
    let t = target.clone();
    let r = load(&target, concurrency, Stop::Count(missing), move |seq| {
        (
            "/telephony/v1/voiceCalls".to_string(),
            create_body(&format!("bench-{}-f-{seq}", t.run), &t.call_start_iso),
        )
    })
    .await?;
    open_conversations += r.ok_total;
    let (rss, peak) = match server.rss_mb() {
        Some((rss, peak)) => (Some(rss), Some(peak)),
        None => (None, None),
    };
    let memory = MemoryReport {
        open_conversations,
        created_for_memory: r.ok_total,
        create_errors: r.errors,
        create_seconds: r.elapsed.as_secs_f64(),
        rss_at_start_mb: rss_at_start,
        rss_mb: rss,
        peak_rss_mb: peak,
        first_errors: r.first_errors,
    };
    progress(&format!(
        "{tag} f  done: {} open conversations, RSS {}{}",
        memory.open_conversations,
        memory.rss_mb.map(|m| format!("{m:.1} MB")).unwrap_or_else(|| "unknown (no /proc)".into()),
        errors_note(memory.create_errors, &memory.first_errors)
    ));

    let verdicts = verdicts(&scenarios, &delivery, &memory);
    Ok(BackendReport { backend: backend.to_string(), scenarios, delivery, memory, verdicts })
}

pub(crate) fn errors_note(errors: u64, first: &[String]) -> String {
    if errors == 0 {
        String::new()
    } else {
        format!(", {errors} ERRORS, first: {}", first.join(" | "))
    }
}

/// Turns a load result into a scenario row and says how it went.
fn finish(tag: &str, id: &'static str, name: &'static str, utterances: u64, r: LoadResult) -> ScenarioReport {
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let rps = r.ok as f64 / secs;
    let ms = |us: u64| us as f64 / 1000.0;
    let report = ScenarioReport {
        id,
        name,
        requests: r.ok,
        errors: r.errors,
        seconds: secs,
        requests_per_sec: rps,
        utterances_per_sec: (utterances > 0).then_some(rps * utterances as f64),
        p50_ms: ms(r.hist.value_at_quantile(0.5)),
        p99_ms: ms(r.hist.value_at_quantile(0.99)),
        max_ms: ms(r.hist.max()),
        first_errors: r.first_errors,
    };
    progress(&format!(
        "{tag} {id}  done: {} req/s{}, p50 {:.2} ms, p99 {:.2} ms{}",
        thousands(report.requests_per_sec),
        report.utterances_per_sec.map(|u| format!(" ({} utterances/s)", thousands(u))).unwrap_or_default(),
        report.p50_ms,
        report.p99_ms,
        errors_note(report.errors, &report.first_errors)
    ));
    report
}

// ---------------------------------------------------------------------------------------
// Request bodies

/// A typical utterance: a sentence of a caller.
const UTTERANCE: &str = "Hi, I am calling about the invoice I received last week, the amount looks wrong.";

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A transcript message; `content` must need no JSON escaping.
fn message_body(message_id: &str, start_ms: i64, content: &str) -> String {
    format!(
        r#"{{"participantId":"bench-caller","messageId":"{message_id}","startTime":{start_ms},"endTime":{},"content":"{content}","senderType":"END_USER"}}"#,
        start_ms + 1500
    )
}

fn create_body(vendor_call_key: &str, start_iso: &str) -> String {
    format!(
        r#"{{"callCenterApiName":"{}","vendorCallKey":"{vendor_call_key}","to":"+15550100100","from":"+14155550123","initiationMethod":"Inbound","startTime":"{start_iso}","participants":[{{"participantKey":"+14155550123","type":"END_USER"}}]}}"#,
        voxbridge_core::setup::DEMO_CALL_CENTER
    )
}

/// Five consecutive conversations, five messages each.
fn bulk_body(run: &str, keys: &[String], seq: u64) -> String {
    let now = now_ms();
    let mut out = String::from(r#"{"entries":["#);
    for call in 0..5u64 {
        if call > 0 {
            out.push(',');
        }
        let key = &keys[((seq * 5 + call) % keys.len() as u64) as usize];
        out.push_str(&format!(r#"{{"vendorCallKey":"{key}","messages":["#));
        for m in 0..5u64 {
            if m > 0 {
                out.push(',');
            }
            out.push_str(&message_body(&format!("{run}-d-{seq}-{call}-{m}"), now + m as i64, UTTERANCE));
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    out
}

// ---------------------------------------------------------------------------------------
// Closed-loop load

enum Stop {
    /// Warm up, then measure for this long.
    After(Duration),
    /// Send exactly this many requests (no warm-up; for setting up state).
    Count(u64),
}

struct LoadResult {
    /// Successful requests in the measured window.
    ok: u64,
    /// Successful requests including the warm-up.
    ok_total: u64,
    /// Failed requests (any status but 200, or no answer), warm-up included.
    errors: u64,
    first_errors: Vec<String>,
    /// Latency of the measured successful requests, in microseconds.
    hist: Histogram<u64>,
    /// From the start of the measured window to the last answer.
    elapsed: Duration,
}

pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

/// Runs `concurrency` tasks that each send POSTs back to back until `stop`; `make` turns a
/// sequence number (unique in this call) into a path and JSON body. Success is HTTP 200:
/// the endpoints measured answer 200 only when everything was accepted (the bulk endpoint
/// answers 207 when any message failed).
async fn load<F>(target: &Arc<Target>, concurrency: usize, stop: Stop, make: F) -> Result<LoadResult>
where
    F: Fn(u64) -> (String, String) + Send + Sync + 'static,
{
    let token = Arc::new(target.token()?);
    let make = Arc::new(make);
    let seq = Arc::new(AtomicU64::new(0));
    let errors_seen = Arc::new(Mutex::new(Vec::new()));
    let (ok_all, errors_all) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let give_up = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let (measure_from, deadline, count) = match stop {
        Stop::After(d) => (start + WARMUP, Some(start + WARMUP + d), None),
        Stop::Count(n) => (start, None, Some(n)),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (target, token, make, seq) = (target.clone(), token.clone(), make.clone(), seq.clone());
        let (errors_seen, ok_all, errors_all, give_up) =
            (errors_seen.clone(), ok_all.clone(), errors_all.clone(), give_up.clone());
        tasks.spawn(async move {
            let mut hist = histogram();
            let (mut ok, mut last) = (0u64, measure_from);
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) || give_up.load(Ordering::Relaxed) {
                    break;
                }
                let n = seq.fetch_add(1, Ordering::Relaxed);
                if count.is_some_and(|c| n >= c) {
                    break;
                }
                let (path, body) = make(n);
                let t0 = Instant::now();
                let outcome = post(&target, &path, &token, body).await;
                let done = Instant::now();
                match outcome {
                    Ok(()) => {
                        ok_all.fetch_add(1, Ordering::Relaxed);
                        if t0 >= measure_from {
                            ok += 1;
                            last = last.max(done);
                            hist.saturating_record((done - t0).as_micros().max(1) as u64);
                        }
                    }
                    Err(e) => {
                        let errors = errors_all.fetch_add(1, Ordering::Relaxed) + 1;
                        let mut seen = errors_seen.lock().unwrap_or_else(|e| e.into_inner());
                        if seen.len() < KEEP_ERRORS {
                            seen.push(format!("POST {path}: {e}"));
                        }
                        if errors >= GIVE_UP_AFTER_ERRORS && ok_all.load(Ordering::Relaxed) == 0 {
                            give_up.store(true, Ordering::Relaxed);
                        }
                    }
                }
            }
            (ok, hist, last)
        });
    }
    let mut result = LoadResult {
        ok: 0,
        ok_total: 0,
        errors: 0,
        first_errors: Vec::new(),
        hist: histogram(),
        elapsed: Duration::ZERO,
    };
    let mut last = measure_from;
    while let Some(done) = tasks.join_next().await {
        let (ok, hist, l) = done.context("a load task panicked")?;
        result.ok += ok;
        result.hist.add(&hist).context("merging latency histograms")?;
        last = last.max(l);
    }
    result.ok_total = ok_all.load(Ordering::Relaxed);
    result.errors = errors_all.load(Ordering::Relaxed);
    result.first_errors = std::mem::take(&mut *errors_seen.lock().unwrap_or_else(|e| e.into_inner()));
    result.elapsed = last.saturating_duration_since(measure_from);
    Ok(result)
}

/// One POST; `Err` describes anything but a 200.
async fn post(target: &Target, path: &str, token: &str, body: String) -> Result<(), String> {
    let resp = target
        .client
        .post(target.url(path))
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Telephony-Provider-Name", "Voxbridge Bench")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let status = resp.status();
    // Read the whole body so the connection can be reused.
    let text = resp.text().await.map_err(|e| format!("HTTP {status}, body unreadable: {e}"))?;
    if status == reqwest::StatusCode::OK {
        Ok(())
    } else {
        Err(format!("HTTP {status}: {}", truncate(&text, 300)))
    }
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

// ---------------------------------------------------------------------------------------
// Delivery to subscribers

/// Delivery latency of one message: its content carries the send time as nanoseconds since
/// `epoch` (an `Instant` of this process), so the receiver needs no lookup table.
const STAMP: &str = "bench-e ";

/// One Server-Sent Event: its name and data.
#[derive(Debug, PartialEq)]
struct SseEvent {
    event: String,
    data: String,
}

/// Takes every complete event (ended by a blank line) off the front of `buf`.
fn take_events(buf: &mut Vec<u8>) -> Vec<SseEvent> {
    let mut out = Vec::new();
    while let Some(pos) = buf.windows(2).position(|w| w == b"\n\n") {
        let block: Vec<u8> = buf.drain(..pos + 2).collect();
        let text = String::from_utf8_lossy(&block);
        let (mut event, mut data) = (String::new(), String::new());
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if !event.is_empty() || !data.is_empty() {
            out.push(SseEvent { event, data });
        }
    }
    out
}

#[derive(Default)]
struct Received {
    hist: Option<Histogram<u64>>,
    count: u64,
    lagged: u64,
}

async fn delivery(target: &Arc<Target>, keys: &[String], measured: Duration) -> Result<DeliveryReport> {
    let token = target.token()?;
    let epoch = Instant::now();
    // No overall timeout: a subscription is one long response.
    let sse = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let received = Arc::new(Mutex::new(Received { hist: Some(histogram()), ..Default::default() }));
    let mut readers = tokio::task::JoinSet::new();
    for key in keys {
        let resp = sse
            .get(target.url(&format!("/live/v1/conversations/{key}")))
            .query(&[("access_token", token.as_str())])
            .send()
            .await
            .context("cannot subscribe to live events")?;
        let status = resp.status();
        if !status.is_success() {
            bail!("subscribing to {key} answered HTTP {status}: {}", resp.text().await.unwrap_or_default());
        }
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let received = received.clone();
        readers.spawn(async move {
            let mut ready = Some(ready_tx);
            let mut stream = resp.bytes_stream();
            let mut buf = Vec::new();
            while let Some(Ok(chunk)) = stream.next().await {
                let at = epoch.elapsed().as_nanos();
                buf.extend_from_slice(&chunk);
                for ev in take_events(&mut buf) {
                    match ev.event.as_str() {
                        "ready" => {
                            if let Some(tx) = ready.take() {
                                let _ = tx.send(());
                            }
                        }
                        "transcript" => {
                            let sent =
                                serde_json::from_str::<serde_json::Value>(&ev.data).ok().and_then(|v| {
                                    v["content"].as_str()?.strip_prefix(STAMP)?.parse::<u128>().ok()
                                });
                            if let Some(sent) = sent {
                                let mut r = received.lock().unwrap_or_else(|e| e.into_inner());
                                r.count += 1;
                                let us = (at.saturating_sub(sent) / 1000).max(1) as u64;
                                if let Some(h) = r.hist.as_mut() {
                                    h.saturating_record(us);
                                }
                            }
                        }
                        "lagged" => received.lock().unwrap_or_else(|e| e.into_inner()).lagged += 1,
                        _ => {}
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .context("no `ready` event within 10 s of subscribing")?
            .context("the subscription ended before its `ready` event")?;
    }

    // Open loop: each conversation gets a message every 1/rate seconds whatever the answers.
    let period = Duration::from_micros(1_000_000 / MESSAGES_PER_SUBSCRIPTION_PER_SEC);
    let deadline = Instant::now() + measured;
    let errors_seen = Arc::new(Mutex::new(Vec::new()));
    let token = Arc::new(token);
    let mut senders = tokio::task::JoinSet::new();
    for (i, key) in keys.iter().enumerate() {
        let (target, token, key, errors_seen) =
            (target.clone(), token.clone(), key.clone(), errors_seen.clone());
        senders.spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut sent, mut errors, mut hist) = (0u64, 0u64, histogram());
            let mut n = 0u64;
            loop {
                tick.tick().await;
                if Instant::now() >= deadline {
                    break;
                }
                n += 1;
                let id = format!("{}-e-{i}-{n}", target.run);
                let t0 = Instant::now();
                let content = format!("{STAMP}{}", epoch.elapsed().as_nanos());
                let body = message_body(&id, now_ms(), &content);
                match post(&target, &format!("/telephony/v1/voiceCalls/{key}/messages"), &token, body).await {
                    Ok(()) => {
                        sent += 1;
                        hist.saturating_record(t0.elapsed().as_micros().max(1) as u64);
                    }
                    Err(e) => {
                        errors += 1;
                        let mut seen = errors_seen.lock().unwrap_or_else(|e| e.into_inner());
                        if seen.len() < KEEP_ERRORS {
                            seen.push(e);
                        }
                    }
                }
            }
            (sent, errors, hist)
        });
    }
    let (mut sent, mut send_errors, mut post_hist) = (0u64, 0u64, histogram());
    while let Some(done) = senders.join_next().await {
        let (s, e, h) = done.context("a sender task panicked")?;
        sent += s;
        send_errors += e;
        post_hist.add(&h).context("merging latency histograms")?;
    }
    // Events of the last messages are still on their way; wait for them, boundedly.
    let wait_until = Instant::now() + Duration::from_secs(5);
    while received.lock().unwrap_or_else(|e| e.into_inner()).count < sent && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    readers.abort_all();
    let mut r = received.lock().unwrap_or_else(|e| e.into_inner());
    let hist = r.hist.take().unwrap_or_else(histogram);
    let ms = |us: u64| us as f64 / 1000.0;
    let first_errors = std::mem::take(&mut *errors_seen.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(DeliveryReport {
        subscriptions: keys.len(),
        target_rate_per_sec: keys.len() as u64 * MESSAGES_PER_SUBSCRIPTION_PER_SEC,
        sent,
        send_errors,
        received: r.count,
        lost: sent.saturating_sub(r.count),
        lagged: r.lagged,
        p50_ms: ms(hist.value_at_quantile(0.5)),
        p99_ms: ms(hist.value_at_quantile(0.99)),
        max_ms: ms(hist.max()),
        post_p50_ms: ms(post_hist.value_at_quantile(0.5)),
        post_p99_ms: ms(post_hist.value_at_quantile(0.99)),
        first_errors,
    })
}

// ---------------------------------------------------------------------------------------
// Verdicts and output

fn verdicts(scenarios: &[ScenarioReport], delivery: &DeliveryReport, memory: &MemoryReport) -> Vec<Verdict> {
    let by_id = |id: &str| scenarios.iter().find(|s| s.id == id);
    let rps = |id: &str| by_id(id).map(|s| s.requests_per_sec).unwrap_or(0.0);
    let mut out = Vec::new();

    let single = by_id("c").and_then(|s| s.utterances_per_sec).unwrap_or(0.0);
    let bulk = by_id("d").and_then(|s| s.utterances_per_sec).unwrap_or(0.0);
    let (best, which) = if bulk >= single { (bulk, "bulk 5x5") } else { (single, "single") };
    out.push(Verdict {
        target: format!("transcripts >= {} utterances/s, durable", thousands(TARGET_UTTERANCES_PER_SEC)),
        measured: format!(
            "{} utterances/s with {which} (single {}, bulk {})",
            thousands(best),
            thousands(single),
            thousands(bulk)
        ),
        status: met(best >= TARGET_UTTERANCES_PER_SEC),
    });

    let (c, a) = (rps("c"), rps("a"));
    let ratio = if a > 0.0 { c / a } else { 0.0 };
    out.push(Verdict {
        target: format!(
            "single transcript req/s >= {:.0}% of baseline req/s",
            TARGET_SINGLE_VS_BASELINE * 100.0
        ),
        measured: format!("{} vs {} req/s: {:.0}%", thousands(c), thousands(a), ratio * 100.0),
        status: met(ratio >= TARGET_SINGLE_VS_BASELINE),
    });

    // Creating calls must stay fast as the org fills up, so the fill of the memory scenario
    // (thousands of creates into a bigger table) counts too.
    let b = rps("b");
    let fill = memory.fill_rate();
    out.push(Verdict {
        target: format!("create voice call >= {} /s", thousands(TARGET_CREATES_PER_SEC)),
        measured: match fill {
            Some(f) => format!(
                "{} /s from empty; {} /s filling up to {} open",
                thousands(b),
                thousands(f),
                thousands(memory.open_conversations as f64)
            ),
            None => format!("{} /s", thousands(b)),
        },
        status: met(b >= TARGET_CREATES_PER_SEC && fill.is_none_or(|f| f >= TARGET_CREATES_PER_SEC)),
    });

    out.push(Verdict {
        target: format!("transcript delivery p99 < {TARGET_DELIVERY_P99_MS:.0} ms"),
        measured: format!(
            "p99 {:.2} ms (p50 {:.2} ms), {} of {} delivered",
            delivery.p99_ms, delivery.p50_ms, delivery.received, delivery.sent
        ),
        status: if delivery.received == 0 {
            Status::NotMeasured
        } else {
            met(delivery.p99_ms < TARGET_DELIVERY_P99_MS && delivery.lost == 0)
        },
    });

    let target =
        format!("{} open conversations < {TARGET_RSS_MB:.0} MB RSS", thousands(TARGET_CONVERSATIONS as f64));
    out.push(match memory.rss_mb {
        Some(rss) if memory.open_conversations >= TARGET_CONVERSATIONS => Verdict {
            target,
            measured: format!("{rss:.1} MB with {} open", thousands(memory.open_conversations as f64)),
            status: met(rss < TARGET_RSS_MB),
        },
        Some(rss) => Verdict {
            target,
            measured: format!(
                "{rss:.1} MB with only {} open (run with --conversations {TARGET_CONVERSATIONS})",
                thousands(memory.open_conversations as f64)
            ),
            status: Status::NotMeasured,
        },
        None => Verdict { target, measured: "RSS unknown (no /proc)".into(), status: Status::NotMeasured },
    });
    out
}

pub(crate) fn met(ok: bool) -> Status {
    if ok {
        Status::Met
    } else {
        Status::Missed
    }
}

/// `12345.6` as `12,346`.
pub(crate) fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let n = v.round() as i128;
    let digits = n.unsigned_abs().to_string();
    let groups: Vec<&str> =
        digits.as_bytes().rchunks(3).rev().map(|g| std::str::from_utf8(g).unwrap_or("?")).collect();
    let out = groups.join(",");
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn render(r: &BackendReport, args: &TelephonyArgs, machine: &Machine) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "== {}: voxbridge {}, {} CPU(s) ({}), {} clients, {} s per scenario ==",
        r.backend,
        env!("CARGO_PKG_VERSION"),
        machine.cpus,
        machine.cpu_model,
        args.concurrency,
        args.duration
    );
    let _ = writeln!(
        o,
        "{:<30} {:>10} {:>12} {:>9} {:>9} {:>9} {:>7}",
        "scenario", "req/s", "utter/s", "p50 ms", "p99 ms", "max ms", "errors"
    );
    for s in &r.scenarios {
        let _ = writeln!(
            o,
            "{:<30} {:>10} {:>12} {:>9.2} {:>9.2} {:>9.2} {:>7}",
            format!("{}  {}", s.id, s.name),
            thousands(s.requests_per_sec),
            s.utterances_per_sec.map(thousands).unwrap_or_else(|| "-".into()),
            s.p50_ms,
            s.p99_ms,
            s.max_ms,
            s.errors
        );
    }
    let d = &r.delivery;
    let _ = writeln!(
        o,
        "{:<30} {:>10} {:>12} {:>9.2} {:>9.2} {:>9.2} {:>7}",
        "e  delivery to SSE (event)",
        thousands(d.sent as f64 / args.duration as f64),
        "-",
        d.p50_ms,
        d.p99_ms,
        d.max_ms,
        d.send_errors
    );
    let _ = writeln!(
        o,
        "   {} subscriptions, {} sent, {} received, {} lost, {} lagged; POST p50 {:.2} ms, p99 {:.2} ms",
        d.subscriptions, d.sent, d.received, d.lost, d.lagged, d.post_p50_ms, d.post_p99_ms
    );
    let m = &r.memory;
    let mb = |v: Option<f64>| v.map(|v| format!("{v:.1} MB")).unwrap_or_else(|| "unknown".into());
    let _ = writeln!(
        o,
        "f  memory: {} open conversations, RSS {} (at start {}, peak {}); {} created in {:.1} s{}, {} errors",
        thousands(m.open_conversations as f64),
        mb(m.rss_mb),
        mb(m.rss_at_start_mb),
        mb(m.peak_rss_mb),
        thousands(m.created_for_memory as f64),
        m.create_seconds,
        m.fill_rate().map(|f| format!(" ({} /s)", thousands(f))).unwrap_or_default(),
        m.create_errors
    );
    let errors: Vec<String> = r
        .scenarios
        .iter()
        .flat_map(|s| s.first_errors.iter().map(move |e| format!("{}: {e}", s.id)))
        .chain(d.first_errors.iter().map(|e| format!("e: {e}")))
        .chain(m.first_errors.iter().map(|e| format!("f: {e}")))
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(o, "first errors:");
        for e in errors {
            let _ = writeln!(o, "   {e}");
        }
    }
    o.push_str(&render_verdicts(&r.backend, &r.verdicts));
    o
}

/// The `targets (backend):` block that ends every report.
pub(crate) fn render_verdicts(backend: &str, verdicts: &[Verdict]) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "targets ({backend}):");
    for v in verdicts {
        let status = match v.status {
            Status::Met => "met   ",
            Status::Missed => "MISSED",
            Status::NotMeasured => "n/a   ",
        };
        let _ = writeln!(o, "  [{status}] {:<52} {}", v.target, v.measured);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_are_split_at_blank_lines() {
        let mut buf = b"event: ready\ndata: {\"a\":1}\n\n: keep-alive\n\nevent: transcript\ndata: {\"content\":\"x\"}\n\nevent: tr"
            .to_vec();
        let events = take_events(&mut buf);
        assert_eq!(
            events,
            vec![
                SseEvent { event: "ready".into(), data: "{\"a\":1}".into() },
                SseEvent { event: "transcript".into(), data: "{\"content\":\"x\"}".into() },
            ]
        );
        assert_eq!(buf, b"event: tr");
    }

    #[test]
    fn bodies_are_json() {
        let keys: Vec<String> = (0..7).map(|i| format!("k{i}")).collect();
        let bulk: serde_json::Value = serde_json::from_str(&bulk_body("r", &keys, 3)).unwrap();
        assert_eq!(bulk["entries"].as_array().unwrap().len(), 5);
        assert_eq!(bulk["entries"][0]["vendorCallKey"], "k1");
        assert_eq!(bulk["entries"][4]["messages"].as_array().unwrap().len(), 5);
        let create: serde_json::Value =
            serde_json::from_str(&create_body("k", "2024-01-01T00:00:00.000Z")).unwrap();
        assert_eq!(create["vendorCallKey"], "k");
        let msg: serde_json::Value = serde_json::from_str(&message_body("m", 1000, UTTERANCE)).unwrap();
        assert_eq!(msg["endTime"], 2500);
    }

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(12345.6), "12,346");
        assert_eq!(thousands(1_000_000.0), "1,000,000");
        assert_eq!(thousands(-1234.0), "-1,234");
    }
}
