//! `voxbridge bench crm`: measures the CRM REST API of a real server over real HTTP on a
//! large VoiceCall table and compares the figures with the performance targets.
//!
//! The bench provisions a fresh, temporary data directory (and, for PostgreSQL, a schema of
//! its own) with `voxbridge setup`, seeds N VoiceCall records straight through the store
//! (batches of [`SEED_BATCH`] inserts, far faster than the API), then starts `voxbridge
//! serve` on the same database, logs in with the demo connected app (JWT bearer) and loads
//! the server from this process: N tokio tasks, each with its own keep-alive connection,
//! send requests back to back.
//!
//! Scenarios: (a) a record by primary key, the baseline; (b) SOQL equality on the
//! `VendorCallKey` external key; (c) a SOQL range on `CallStartDateTime` over a
//! five-minute window, which the server fetches through the store's range index;
//! (d) creating Cases; (e) uploading a 10,000-entry transcript of a closed conversation
//! (`connect/conversations/upload`), one upload at a time, each to its own conversation.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use rand::Rng;
use serde::Serialize;
use voxbridge_core::{KeyPrefix, Record, SfId};
use voxbridge_store::WriteOp;

use crate::bench::{
    drop_schema, errors_note, histogram, met, progress, render_verdicts, thousands, truncate, BackendChoice,
    Machine, ServerProcess, Status, Verdict, DEFAULT_POSTGRES_URL, KEEP_ERRORS,
};
use crate::datadir::DataDir;

/// Records inserted per store batch while seeding.
const SEED_BATCH: usize = 1000;
/// Seeding prints progress every this many records.
const SEED_PROGRESS: u64 = 100_000;
/// Seeded calls start spread over this many days before now.
const SPREAD_DAYS: i64 = 30;
/// The CRM API version the bench calls.
const API: &str = "/services/data/v62.0";
/// Warm-up before each measured window.
const WARMUP: Duration = Duration::from_secs(1);
/// The window of the range scenario.
const RANGE_MINUTES: i64 = 5;
/// Entries per conversation upload, and how many uploads are timed.
const UPLOAD_ENTRIES: usize = 10_000;
const UPLOAD_ROUNDS: usize = 3;
/// Multipart boundary of the upload bodies.
const BOUNDARY: &str = "voxbridge-bench-crm-upload";
/// A scenario stops early after this many errors without a single success.
const GIVE_UP_AFTER_ERRORS: u64 = 1000;
/// Per-request timeout: a full scan of a large table is slow, but not this slow.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Target (docs/performance.md): indexed lookups p99 under 5 ms on 2 cores.
const TARGET_LOOKUP_P99_MS: f64 = 5.0;
/// Target (docs/performance.md): a 10,000-entry upload processed in under 2 s.
const TARGET_UPLOAD_MS: f64 = 2000.0;

#[derive(Debug, Args)]
pub struct CrmArgs {
    /// Store the server runs on.
    #[arg(long, value_enum, default_value_t = BackendChoice::Sqlite)]
    backend: BackendChoice,
    /// VoiceCall records to seed before measuring.
    #[arg(long, value_name = "N", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1000..=100_000_000))]
    records: u64,
    /// Seconds each scenario is measured (after a 1 s warm-up).
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3000))]
    duration: u64,
    /// Concurrent clients (tasks, each with its own keep-alive connection) of scenarios a
    /// to d; uploads (e) go one at a time. Kept low by default: the targets are latencies,
    /// and on 2 cores more clients measure queueing, not the lookup.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    concurrency: u64,
    /// PostgreSQL to measure on; the bench works in a schema of its own and drops it after.
    #[arg(long, value_name = "URL", default_value = DEFAULT_POSTGRES_URL)]
    postgres_url: String,
    /// Print the results as JSON (progress still goes to standard error).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct JsonReport {
    version: &'static str,
    machine: Machine,
    records: u64,
    duration_secs: u64,
    concurrency: u64,
    backends: Vec<BackendReport>,
}

#[derive(Debug, Serialize)]
struct BackendReport {
    backend: String,
    records: u64,
    seed_seconds: f64,
    seed_records_per_sec: f64,
    scenarios: Vec<ScenarioReport>,
    /// Peak resident memory of the server over the run, in MB (Linux).
    server_peak_rss_mb: Option<f64>,
    verdicts: Vec<Verdict>,
}

#[derive(Debug, Serialize)]
struct ScenarioReport {
    id: &'static str,
    name: &'static str,
    clients: usize,
    requests: u64,
    errors: u64,
    seconds: f64,
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    first_errors: Vec<String>,
}

/// Runs the bench and prints the report.
pub async fn crm(args: &CrmArgs) -> Result<()> {
    let backends: &[&str] = match args.backend {
        BackendChoice::Sqlite => &["sqlite"],
        BackendChoice::Postgres => &["postgres"],
        BackendChoice::Both => &["sqlite", "postgres"],
    };
    let machine = Machine::detect();
    progress(&format!(
        "voxbridge bench crm: {} on {} CPU(s) ({}), {} VoiceCall records, {} clients, {} s per scenario",
        backends.join(" and "),
        machine.cpus,
        machine.cpu_model,
        thousands(args.records as f64),
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
            records: args.records,
            duration_secs: args.duration,
            concurrency: args.concurrency,
            backends: reports,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

async fn run_backend(args: &CrmArgs, backend: &str) -> Result<BackendReport> {
    let dir = tempfile::Builder::new().prefix("voxbridge-bench-crm-").tempdir()?;
    let data = dir.path().join("data");
    let (db_url, schema) = match backend {
        "postgres" => {
            let schema = format!("vb_bench_{}", uuid::Uuid::new_v4().simple());
            let sep = if args.postgres_url.contains('?') { '&' } else { '?' };
            (format!("{}{sep}schema={schema}", args.postgres_url), Some(schema))
        }
        _ => (format!("sqlite://{}", data.join("voxbridge.db").display()), None),
    };
    let tag = format!("[{backend}]");
    let result = async {
        progress(&format!("{tag} provisioning the demo org in {}", data.display()));
        setup(&data, &db_url, &dir.path().join("setup.log"))?;
        let seeded = seed(&tag, &data, &db_url, args.records).await?;
        progress(&format!("{tag} starting `voxbridge serve` on {}", data.display()));
        let server = ServerProcess::start(&data, Some(&db_url), dir.path().join("server.log"))?;
        let outcome = measure(args, &tag, &server, &data, &seeded).await;
        let peak = server.rss_mb().map(|(_, peak)| peak);
        if outcome.is_err() {
            eprintln!("{tag} server log (last lines):\n{}", server.log_tail());
        }
        progress(&format!("{tag} stopping the server"));
        server.stop();
        outcome.map(|scenarios| {
            let verdicts = verdicts(&scenarios);
            BackendReport {
                backend: backend.to_string(),
                records: args.records,
                seed_seconds: seeded.seconds,
                seed_records_per_sec: args.records as f64 / seeded.seconds.max(1e-9),
                scenarios,
                server_peak_rss_mb: peak,
                verdicts,
            }
        })
    }
    .await;
    if let Some(schema) = schema {
        match drop_schema(&args.postgres_url, &schema).await {
            Ok(()) => progress(&format!("{tag} dropped schema {schema}")),
            Err(e) => eprintln!(
                "{tag} warning: could not drop schema {schema} ({e:#}); drop it with \
                 psql -c 'DROP SCHEMA {schema} CASCADE'"
            ),
        }
    }
    result
}

/// `voxbridge setup` (this same binary) on the bench's data directory and database.
fn setup(data: &Path, db_url: &str, log: &Path) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the voxbridge binary")?;
    let mut cmd = Command::new(exe);
    cmd.args(["setup", "--data"]).arg(data).args(["--database-url", db_url]);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("VOXBRIDGE_") {
            cmd.env_remove(k);
        }
    }
    let out = std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .context("cannot run `voxbridge setup`")?;
    if !status.success() {
        bail!("`voxbridge setup` failed:\n{}", std::fs::read_to_string(log).unwrap_or_default());
    }
    Ok(())
}

/// What the scenarios need to know about the seeded records.
struct Seeded {
    ids: Vec<String>,
    keys: Vec<String>,
    /// Start of the seeded time span, in milliseconds.
    from_ms: i64,
    seconds: f64,
    /// Closed conversations waiting for an upload each, and when their calls began.
    upload_keys: Vec<String>,
    upload_from_ms: i64,
}

/// The vendor call key of seeded record `i`.
fn seed_key(i: u64) -> String {
    format!("bench-crm-{i:08}")
}

/// The UTC `yyyy-mm-ddThh:mm:ss.000Z` form of a time in milliseconds.
fn iso_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

async fn seed(tag: &str, data: &Path, db_url: &str, records: u64) -> Result<Seeded> {
    let setup = DataDir::new(data).read_setup()?;
    let org = SfId::parse(&setup.org.id).context("setup.json holds no valid org id")?;
    let call_center = setup.call_centers.first().map(|c| c.id.clone()).unwrap_or_default();
    let store = voxbridge_store::open(db_url).await.context("cannot open the bench's store")?;
    let now = chrono::Utc::now().timestamp_millis();
    let from_ms = now - SPREAD_DAYS * 86_400_000;
    let step = (SPREAD_DAYS * 86_400_000) / records.max(1) as i64;
    let (types, dispositions) = (["Inbound", "Outbound", "Transfer"], ["completed", "no-answer", "busy"]);
    let mut rng = rand::thread_rng();
    let mut ids = Vec::with_capacity(records as usize);
    let mut keys = Vec::with_capacity(records as usize);
    progress(&format!("{tag} seeding {} VoiceCall records through the store", thousands(records as f64)));
    let started = Instant::now();
    let mut i = 0u64;
    while i < records {
        let end = (i + SEED_BATCH as u64).min(records);
        let mut ops = Vec::with_capacity(SEED_BATCH);
        for n in i..end {
            let id = SfId::generate(KeyPrefix::VoiceCall, &mut rng);
            let key = seed_key(n);
            let mut r = Record::new(id.clone(), org.clone(), "VoiceCall", Some(key.clone()), now);
            r.set("VendorCallKey", key.clone());
            r.set("CallStartDateTime", iso_ms(from_ms + n as i64 * step));
            r.set("CallType", types[(n % 3) as usize]);
            r.set("CallDisposition", dispositions[(n % 3) as usize]);
            r.set("CallCenterId", call_center.clone());
            r.set("ConversationId", SfId::generate(KeyPrefix::Conversation, &mut rng).to_string());
            ops.push(WriteOp::Insert(r));
            ids.push(id.to_string());
            keys.push(key);
        }
        store.apply(ops).await.context("seeding VoiceCall records failed")?;
        if end / SEED_PROGRESS > i / SEED_PROGRESS || end == records {
            let secs = started.elapsed().as_secs_f64();
            progress(&format!(
                "{tag}    {} records in {secs:.1} s ({} /s)",
                thousands(end as f64),
                thousands(end as f64 / secs.max(1e-9))
            ));
        }
        i = end;
    }
    let seconds = started.elapsed().as_secs_f64();
    // Uploads are accepted for closed conversations only, for entries within their span.
    let upload_from_ms = now - 2 * 3_600_000;
    let mut upload_keys = Vec::with_capacity(UPLOAD_ROUNDS);
    let mut ops = Vec::with_capacity(UPLOAD_ROUNDS);
    for n in 0..UPLOAD_ROUNDS {
        let key = format!("bench-crm-upload-{n}");
        let id = SfId::generate(KeyPrefix::Conversation, &mut rng);
        let mut r = Record::new(id, org.clone(), "Conversation", Some(key.clone()), now);
        r.set("ConversationIdentifier", key.clone());
        r.set("Status", "Closed");
        r.set("StartTime", iso_ms(upload_from_ms));
        r.set("EndTime", iso_ms(upload_from_ms + 3_600_000));
        ops.push(WriteOp::Insert(r));
        upload_keys.push(key);
    }
    store.apply(ops).await.context("seeding conversations failed")?;
    store.close().await;
    Ok(Seeded { ids, keys, from_ms, seconds, upload_keys, upload_from_ms })
}

/// One request of a scenario.
struct Req {
    post: Option<String>,
    path: String,
}

async fn measure(
    args: &CrmArgs,
    tag: &str,
    server: &ServerProcess,
    data: &Path,
    seeded: &Seeded,
) -> Result<Vec<ScenarioReport>> {
    let data_dir = DataDir::new(data);
    let setup = data_dir.read_setup()?;
    let audience = voxbridge_server::Settings::default().login_audiences.first().cloned().unwrap_or_default();
    let login = crate::crm_login::resolve(&data_dir, &setup, None, None, None, &audience)?;
    let body = crate::crm_login::login(&server.base, &login, &data_dir).await?;
    let token = body["access_token"].as_str().context("no access token")?.to_string();
    let concurrency = args.concurrency as usize;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency * 2)
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let ctx = Arc::new(Ctx { base: server.base.clone(), client, token });
    let window = Window::fixed(Duration::from_secs(args.duration));
    let ids = Arc::new(seeded.ids.clone());
    let keys = Arc::new(seeded.keys.clone());
    let span_windows = (SPREAD_DAYS * 24 * 60 / RANGE_MINUTES - 1) as u64;
    let from_ms = seeded.from_ms;
    let mut out = Vec::new();

    progress(&format!("{tag} a  baseline: GET {API}/sobjects/VoiceCall/{{id}}: {} s", args.duration));
    let ids2 = ids.clone();
    let r = load(&ctx, concurrency, window, move |_| Req {
        post: None,
        path: format!("{API}/sobjects/VoiceCall/{}", ids2[rand::thread_rng().gen_range(0..ids2.len())]),
    })
    .await?;
    out.push(finish(tag, "a", "by Id (baseline)", r));

    progress(&format!("{tag} b  SOQL WHERE VendorCallKey = '…': {} s", args.duration));
    let keys2 = keys.clone();
    let r = load(&ctx, concurrency, window, move |_| {
        let key = &keys2[rand::thread_rng().gen_range(0..keys2.len())];
        Req {
            post: None,
            path: query_path(&format!("SELECT Id, CallType FROM VoiceCall WHERE VendorCallKey = '{key}'")),
        }
    })
    .await?;
    out.push(finish(tag, "b", "SOQL VendorCallKey =", r));

    progress(&format!("{tag} c  SOQL CallStartDateTime {RANGE_MINUTES}-minute range: {} s", args.duration));
    let r = load(&ctx, concurrency, window, move |_| {
        let start = from_ms + rand::thread_rng().gen_range(0..span_windows) as i64 * RANGE_MINUTES * 60_000;
        let soql = format!(
            "SELECT Id, VendorCallKey FROM VoiceCall WHERE CallStartDateTime >= {} AND CallStartDateTime < {}",
            iso_ms(start),
            iso_ms(start + RANGE_MINUTES * 60_000)
        );
        Req { post: None, path: query_path(&soql) }
    })
    .await?;
    out.push(finish(tag, "c", "SOQL 5 min range", r));

    progress(&format!("{tag} d  create: POST {API}/sobjects/Case: {} s", args.duration));
    let r = load(&ctx, concurrency, window, move |seq| Req {
        post: Some(format!(
            r#"{{"Subject":"Bench case {seq}","Status":"New","Origin":"Phone","Description":"Caller asked about an invoice."}}"#
        )),
        path: format!("{API}/sobjects/Case"),
    })
    .await?;
    out.push(finish(tag, "d", "create Case", r));

    progress(&format!(
        "{tag} e  upload: POST {API}/connect/conversations/upload, {} entries, {UPLOAD_ROUNDS} times",
        thousands(UPLOAD_ENTRIES as f64)
    ));
    let r = uploads(&ctx, seeded).await?;
    out.push(finish(tag, "e", "upload 10,000 entries", r));
    Ok(out)
}

/// The multipart body of one conversation's upload: a `conversation` object, then
/// `entries` utterances 100 ms apart from `from_ms`, agent and caller in turn.
fn upload_body(key: &str, from_ms: i64, entries: usize, agent: &SfId) -> String {
    let mut part = format!(r#"{{"type":"conversation","payload":{{"conversationIdentifier":"{key}"}}}}"#);
    for n in 0..entries {
        let (role, subject) =
            if n % 2 == 0 { ("AGENT", agent.to_18()) } else { ("END_USER", "caller".into()) };
        part.push_str(
            &serde_json::json!({
                "type": "conversationEntry",
                "payload": {
                    "id": format!("m{n:05}"),
                    "clientSentTimestamp": from_ms + n as i64 * 100,
                    "clientDuration": 90,
                    "messageText": format!("Utterance {n}: I am calling about my last invoice."),
                    "sender": {"role": role, "subject": subject},
                }
            })
            .to_string(),
        );
    }
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{key}\"\r\nContent-Type: application/json\r\n\r\n\
         {part}\r\n--{BOUNDARY}--\r\n"
    )
}

/// Scenario e: each upload timed alone; one succeeds when every entry is stored.
async fn uploads(ctx: &Ctx, seeded: &Seeded) -> Result<LoadResult> {
    let agent = SfId::generate(KeyPrefix::User, &mut rand::thread_rng());
    let mut r = LoadResult {
        clients: 1,
        ok: 0,
        errors: 0,
        first_errors: Vec::new(),
        hist: histogram(),
        elapsed: Duration::ZERO,
    };
    for key in &seeded.upload_keys {
        let body = upload_body(key, seeded.upload_from_ms, UPLOAD_ENTRIES, &agent);
        let size = body.len();
        let t0 = Instant::now();
        let answer = ctx
            .client
            .post(format!("{}{API}/connect/conversations/upload", ctx.base))
            .header(reqwest::header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
            .bearer_auth(&ctx.token)
            .body(body)
            .send()
            .await;
        let outcome = match answer {
            Ok(resp) => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                if status.is_success() && text.contains("\"SUCCESS\"") {
                    Ok(())
                } else {
                    Err(format!("HTTP {status} ({size} bytes sent): {}", truncate(&text, 300)))
                }
            }
            Err(e) => Err(format!("no answer ({size} bytes sent): {e}")),
        };
        let took = t0.elapsed();
        r.elapsed += took;
        match outcome {
            Ok(()) => {
                r.ok += 1;
                r.hist.saturating_record(took.as_micros().max(1) as u64);
            }
            Err(e) => {
                r.errors += 1;
                if r.first_errors.len() < KEEP_ERRORS {
                    r.first_errors.push(e);
                }
            }
        }
    }
    Ok(r)
}

fn query_path(soql: &str) -> String {
    let mut url = reqwest::Url::parse("http://localhost").expect("a valid URL");
    url.query_pairs_mut().append_pair("q", soql);
    format!("{API}/query?{}", url.query().unwrap_or_default())
}

struct Ctx {
    base: String,
    client: reqwest::Client,
    token: String,
}

struct LoadResult {
    clients: usize,
    ok: u64,
    errors: u64,
    first_errors: Vec<String>,
    hist: hdrhistogram::Histogram<u64>,
    elapsed: Duration,
}

/// How long a scenario is measured.
#[derive(Clone, Copy)]
struct Window {
    measured: Duration,
    /// Go on past the window until this many measured answers...
    min_answers: u64,
    /// ...but for no longer than this.
    overtime: Duration,
}

impl Window {
    fn fixed(measured: Duration) -> Window {
        Window { measured, min_answers: 0, overtime: Duration::ZERO }
    }
}

/// Runs `concurrency` tasks sending requests back to back for a warm-up plus the window.
/// Success is any 2xx answer.
async fn load<F>(ctx: &Arc<Ctx>, concurrency: usize, window: Window, make: F) -> Result<LoadResult>
where
    F: Fn(u64) -> Req + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let seq = Arc::new(AtomicU64::new(0));
    let errors_seen = Arc::new(Mutex::new(Vec::new()));
    let (ok_all, errors_all) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let give_up = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let (measure_from, deadline) = (start + WARMUP, start + WARMUP + window.measured);
    let hard_deadline = deadline + window.overtime;
    let measured_ok = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (ctx, make, seq, measured_ok) = (ctx.clone(), make.clone(), seq.clone(), measured_ok.clone());
        let (errors_seen, ok_all, errors_all, give_up) =
            (errors_seen.clone(), ok_all.clone(), errors_all.clone(), give_up.clone());
        tasks.spawn(async move {
            let mut hist = histogram();
            let (mut ok, mut last) = (0u64, measure_from);
            loop {
                let now = Instant::now();
                let short = measured_ok.load(Ordering::Relaxed) < window.min_answers;
                if (now >= deadline && !(short && now < hard_deadline)) || give_up.load(Ordering::Relaxed) {
                    break;
                }
                let req = make(seq.fetch_add(1, Ordering::Relaxed));
                let t0 = Instant::now();
                let outcome = send(&ctx, &req).await;
                let done = Instant::now();
                match outcome {
                    Ok(()) => {
                        ok_all.fetch_add(1, Ordering::Relaxed);
                        if t0 >= measure_from {
                            ok += 1;
                            measured_ok.fetch_add(1, Ordering::Relaxed);
                            last = last.max(done);
                            hist.saturating_record((done - t0).as_micros().max(1) as u64);
                        }
                    }
                    Err(e) => {
                        let errors = errors_all.fetch_add(1, Ordering::Relaxed) + 1;
                        let mut seen = errors_seen.lock().unwrap_or_else(|e| e.into_inner());
                        if seen.len() < KEEP_ERRORS {
                            seen.push(format!("{}: {e}", truncate(&req.path, 120)));
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
        clients: concurrency,
        ok: 0,
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
    result.errors = errors_all.load(Ordering::Relaxed);
    result.first_errors = std::mem::take(&mut *errors_seen.lock().unwrap_or_else(|e| e.into_inner()));
    result.elapsed = last.saturating_duration_since(measure_from);
    Ok(result)
}

async fn send(ctx: &Ctx, req: &Req) -> Result<(), String> {
    let url = format!("{}{}", ctx.base, req.path);
    let builder = match &req.post {
        Some(body) => {
            ctx.client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone())
        }
        None => ctx.client.get(url),
    };
    let resp = builder.bearer_auth(&ctx.token).send().await.map_err(|e| format!("no answer: {e}"))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| format!("HTTP {status}, body unreadable: {e}"))?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {status}: {}", truncate(&text, 300)))
    }
}

fn finish(tag: &str, id: &'static str, name: &'static str, r: LoadResult) -> ScenarioReport {
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let ms = |us: u64| us as f64 / 1000.0;
    let report = ScenarioReport {
        id,
        name,
        clients: r.clients,
        requests: r.ok,
        errors: r.errors,
        seconds: secs,
        requests_per_sec: r.ok as f64 / secs,
        p50_ms: ms(r.hist.value_at_quantile(0.5)),
        p99_ms: ms(r.hist.value_at_quantile(0.99)),
        max_ms: ms(r.hist.max()),
        first_errors: r.first_errors,
    };
    progress(&format!(
        "{tag} {id}  done: {} req/s, p50 {:.2} ms, p99 {:.2} ms{}",
        thousands(report.requests_per_sec),
        report.p50_ms,
        report.p99_ms,
        errors_note(report.errors, &report.first_errors)
    ));
    report
}

fn verdicts(scenarios: &[ScenarioReport]) -> Vec<Verdict> {
    let by_id = |id: &str| scenarios.iter().find(|s| s.id == id);
    let baseline = by_id("a").map(|s| s.p99_ms).unwrap_or(f64::NAN);
    let mut out = Vec::new();
    for (id, what) in
        [("b", "SOQL equality on VendorCallKey"), ("c", "SOQL 5 min range on CallStartDateTime")]
    {
        let target = format!("{what} p99 < {TARGET_LOOKUP_P99_MS:.0} ms");
        out.push(match by_id(id) {
            Some(s) if s.requests > 0 => Verdict {
                target,
                measured: format!(
                    "p99 {:.2} ms (p50 {:.2} ms, by-Id baseline p99 {baseline:.2} ms), {} req/s",
                    s.p99_ms,
                    s.p50_ms,
                    rate(s.requests_per_sec)
                ),
                status: met(s.p99_ms < TARGET_LOOKUP_P99_MS && s.errors == 0),
            },
            _ => Verdict { target, measured: "no successful request".into(), status: Status::NotMeasured },
        });
    }
    let target = format!(
        "{}-entry conversation upload processed < {:.0} s",
        thousands(UPLOAD_ENTRIES as f64),
        TARGET_UPLOAD_MS / 1000.0
    );
    out.push(match by_id("e") {
        Some(s) if s.requests > 0 => Verdict {
            target,
            measured: format!(
                "max {:.2} s (p50 {:.2} s) over {} uploads",
                s.max_ms / 1000.0,
                s.p50_ms / 1000.0,
                s.requests
            ),
            status: met(s.max_ms < TARGET_UPLOAD_MS && s.errors == 0),
        },
        _ => Verdict { target, measured: "no successful upload".into(), status: Status::NotMeasured },
    });
    out
}

fn render(r: &BackendReport, args: &CrmArgs, machine: &Machine) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "== {}: voxbridge {}, {} CPU(s) ({}), {} VoiceCall records, {} clients, {} s per scenario ==",
        r.backend,
        env!("CARGO_PKG_VERSION"),
        machine.cpus,
        machine.cpu_model,
        thousands(r.records as f64),
        args.concurrency,
        args.duration
    );
    let _ = writeln!(
        o,
        "seeded {} records through the store in {:.1} s ({} /s)",
        thousands(r.records as f64),
        r.seed_seconds,
        thousands(r.seed_records_per_sec)
    );
    let _ = writeln!(
        o,
        "{:<30} {:>7} {:>10} {:>9} {:>9} {:>9} {:>7}",
        "scenario", "clients", "req/s", "p50 ms", "p99 ms", "max ms", "errors"
    );
    for s in &r.scenarios {
        let _ = writeln!(
            o,
            "{:<30} {:>7} {:>10} {:>9.2} {:>9.2} {:>9.2} {:>7}",
            format!("{}  {}", s.id, s.name),
            s.clients,
            rate(s.requests_per_sec),
            s.p50_ms,
            s.p99_ms,
            s.max_ms,
            s.errors
        );
    }
    let _ = writeln!(
        o,
        "   c reads the CallStartDateTime index: about {} records per {RANGE_MINUTES}-minute window",
        thousands((r.records as f64 * RANGE_MINUTES as f64 / (SPREAD_DAYS * 24 * 60) as f64).round())
    );
    if let Some(peak) = r.server_peak_rss_mb {
        let _ = writeln!(o, "   server peak RSS {peak:.0} MB");
    }
    let errors: Vec<String> = r
        .scenarios
        .iter()
        .flat_map(|s| s.first_errors.iter().map(move |e| format!("{}: {e}", s.id)))
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

/// Requests per second: whole with separators, or with a decimal when below 100.
fn rate(v: f64) -> String {
    if v < 100.0 {
        format!("{v:.1}")
    } else {
        thousands(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_paths_are_url_encoded() {
        let p = query_path("SELECT Id FROM VoiceCall WHERE VendorCallKey = 'a b'");
        assert!(p.starts_with("/services/data/v62.0/query?q=SELECT+Id+FROM"), "{p}");
        assert!(p.ends_with("%27a+b%27"), "{p}");
    }

    #[test]
    fn times_are_iso_with_milliseconds() {
        assert_eq!(iso_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(seed_key(42), "bench-crm-00000042");
    }

    #[test]
    fn upload_bodies_are_one_part_of_json_objects() {
        let agent = SfId::generate(KeyPrefix::User, &mut rand::thread_rng());
        let body = upload_body("conv-1", 1_000, 3, &agent);
        assert!(body.starts_with(&format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"conv-1\"")));
        assert!(body.ends_with(&format!("\r\n--{BOUNDARY}--\r\n")));
        let json = body.split("\r\n\r\n").nth(1).unwrap().split("\r\n").next().unwrap();
        let values: Vec<serde_json::Value> =
            serde_json::Deserializer::from_str(json).into_iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(values.len(), 4);
        assert_eq!(values[3]["payload"]["clientSentTimestamp"], 1_200);
        assert_eq!(values[1]["payload"]["sender"]["role"], "AGENT");
        assert_eq!(values[2]["payload"]["sender"]["role"], "END_USER");
    }
}
