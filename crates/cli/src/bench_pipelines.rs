//! `voxbridge bench pipelines`: how fast the CTR sync turns contact trace records into
//! VoiceCall fields, and how long after a hang-up a call's record is final.
//!
//! Everything runs in this process: a fresh demo org in a temporary data directory, the
//! server's HTTP API on a local port, the event bus (embedded in the temporary directory, or
//! NATS JetStream with `--bus nats://…`, under a stream prefix of the bench's own, deleted
//! afterwards) and the real CTR sync — `pipelines::sync_batch` with `vb-ctr-sync`'s consumer
//! options: each CTR is backed up to the object store and its VoiceCall looked up and
//! created through the CRM REST API over HTTP (the CTRs are of missed calls, so every one
//! creates a VoiceCall). Per bus, four measurements:
//!
//! * **baseline throughput** — N records put on a stream, then consumed by a consumer group
//!   doing nothing: what the bus alone allows;
//! * **sync throughput** — N CTRs put on `ctr`, then synced: CTRs per second;
//! * **baseline lag** and **sync lag** — records put at a fixed rate (`--rate`, one every
//!   1/rate s) for `--seconds`, while the consumer runs: the time from the bus accepting a
//!   record (the hang-up) to the end of the batch that handled it (the VoiceCall final),
//!   p50 and p99.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};
use voxbridge_bus::{Bus, BusRecord, ConsumerOptions, HandlerError, PutRecord, StartingPosition};

use crate::bench::{met, progress, render_verdicts, thousands, Machine, Verdict};
use crate::config::{Env, Overrides};
use crate::datadir::DataDir;
use crate::pipelines::{CtrSync, CTR_STREAM};

/// Targets (see docs/performance.md), on 2 cores.
const TARGET_CTRS_PER_SEC: f64 = 2_000.0;
const TARGET_LAG_P99_MS: f64 = 1_000.0;

const BASELINE_STREAM: &str = "bench-baseline";
const BASELINE_GROUP: &str = "bench-baseline";
/// Records per put in the throughput runs' fill.
const FILL_BATCH: usize = 500;

#[derive(Debug, Args)]
pub struct PipelinesArgs {
    /// CTRs (and baseline records) for the throughput runs.
    #[arg(long, value_name = "N", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    ctrs: u64,
    /// Hang-ups per second in the lag runs.
    #[arg(long, value_name = "N", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    rate: u64,
    /// How long each lag run puts records.
    #[arg(long, value_name = "SECONDS", default_value_t = 8,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    seconds: u64,
    /// Also run on this NATS JetStream server (`nats://HOST:PORT`).
    #[arg(long, value_name = "URL")]
    bus: Option<String>,
    /// Print the results as JSON (progress still goes to standard error).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    version: &'static str,
    machine: Machine,
    ctrs: u64,
    rate: u64,
    seconds: u64,
    buses: Vec<BusReport>,
}

#[derive(Debug, Serialize)]
struct BusReport {
    bus: String,
    baseline: Throughput,
    sync: Throughput,
    baseline_lag: Lag,
    sync_lag: Lag,
    /// CTRs the sync gave up on (dead letters), over both sync runs.
    dead_letters: u64,
    verdicts: Vec<Verdict>,
}

#[derive(Debug, Serialize)]
struct Throughput {
    records: u64,
    seconds: f64,
    per_sec: f64,
    /// CPU time (user + system, all threads: the sync, the bus and the CRM server of this
    /// process) per record; unlike `per_sec` it hardly changes when other processes share
    /// the cores. `None` without `/proc`.
    cpu_ms_per_record: Option<f64>,
}

/// This process's CPU time so far (user + system), from `/proc/self/stat`.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces): state is the first, utime and
    // stime the 12th and 13th, in USER_HZ ticks (100 per second in Linux's /proc ABI).
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let ticks = fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks.saturating_mul(10)))
}

#[derive(Debug, Serialize)]
struct Lag {
    records: u64,
    /// The rate actually reached.
    put_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// What a consumer has handled: how many records and each one's lag.
#[derive(Default)]
struct Seen {
    done: AtomicU64,
    lags_ms: Mutex<Vec<i64>>,
}

impl Seen {
    fn record(&self, records: &[BusRecord], now_ms: i64) {
        let mut lags = self.lags_ms.lock().unwrap_or_else(|e| e.into_inner());
        lags.extend(records.iter().map(|r| now_ms.saturating_sub(r.approximate_arrival_timestamp_ms)));
        self.done.fetch_add(records.len() as u64, Ordering::SeqCst);
    }
}

pub fn run(args: &PipelinesArgs) -> Result<()> {
    let machine = Machine::detect();
    let mut buses = vec!["embedded".to_string()];
    buses.extend(args.bus.clone());
    progress(&format!(
        "voxbridge bench pipelines: {} CTRs, {}/s for {} s, on {} ({} CPU(s), {})",
        thousands(args.ctrs as f64),
        args.rate,
        args.seconds,
        buses.join(" and "),
        machine.cpus,
        machine.cpu_model
    ));
    let runtime = crate::runtime()?;
    let mut reports = Vec::new();
    // The data directories go at the end: deleting one run's tens of thousands of backup
    // files just before the next run would slow that run's file creation (the file system
    // scans past recently freed inodes), which is the bench's doing, not the sync's.
    let mut dirs = Vec::new();
    for bus in &buses {
        let dir = tempfile::Builder::new().prefix("voxbridge-bench-pipelines-").tempdir()?;
        let report = runtime
            .block_on(run_bus(args, bus, dir.path()))
            .with_context(|| format!("the {bus} bench failed"))?;
        dirs.push(dir);
        if !args.json {
            print!("{}", render(&report, args));
        }
        reports.push(report);
    }
    if args.json {
        let report = Report {
            version: env!("CARGO_PKG_VERSION"),
            machine,
            ctrs: args.ctrs,
            rate: args.rate,
            seconds: args.seconds,
            buses: reports,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// A fresh org served in-process, the sync and the bus: the four measurements.
async fn run_bus(args: &PipelinesArgs, which: &str, dir: &std::path::Path) -> Result<BusReport> {
    let overrides = Overrides {
        data_dir: Some(dir.join("data")),
        http: Some("127.0.0.1:0".into()),
        ..Overrides::default()
    };
    let mut config = crate::config::load(&overrides, &Env::new())?;
    config.bus_url = if which == "embedded" {
        format!("sqlite://{}", dir.join("bus.db").display())
    } else {
        let base = which.split('?').next().unwrap_or(which);
        format!("{base}?prefix=vbbench_{}_", uuid::Uuid::new_v4().simple())
    };
    let tag = format!("[{}]", if which == "embedded" { "embedded" } else { "nats" });
    progress(&format!("{tag} provisioning the demo org in {}", dir.display()));
    let (store, provisioned) = crate::serve::prepare(&config).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = voxbridge_server::router(store.clone(), config.settings());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    let bus = crate::pipelines::open_bus(&config).await?;
    bus.create_stream(BASELINE_STREAM).await?;
    let data = DataDir::new(&config.data_dir);
    // As in `serve`: every backup also emits its Object Created event.
    let sync = crate::pipelines::ctr_sync(&config, &data, &provisioned.setup, &base)?
        .with_object_events(bus.clone());
    let sync = Arc::new(sync);

    let result = measure(args, &tag, bus.clone(), sync).await;

    if which != "embedded" {
        for stream in bus.list_streams().await.unwrap_or_default() {
            let _ = bus.delete_stream(&stream).await;
        }
    }
    bus.close().await;
    server.abort();
    store.close().await;
    let mut report = result?;
    report.bus = if which == "embedded" { "embedded".into() } else { crate::config::redact_url(which) };
    Ok(report)
}

async fn measure(
    args: &PipelinesArgs,
    tag: &str,
    bus: Arc<dyn Bus>,
    sync: Arc<CtrSync>,
) -> Result<BusReport> {
    // Throughput: fill, then consume everything.
    progress(&format!(
        "{tag} baseline: {} records through a consumer doing nothing",
        thousands(args.ctrs as f64)
    ));
    fill(bus.as_ref(), BASELINE_STREAM, args.ctrs, |i| json!({"n": i})).await?;
    let baseline = consume_all(bus.clone(), baseline_options(), args.ctrs, noop()).await?;
    progress(&format!("{tag}   {} records/s", thousands(baseline.per_sec)));
    progress(&format!("{tag} sync: {} CTRs through vb-ctr-sync", thousands(args.ctrs as f64)));
    fill(bus.as_ref(), CTR_STREAM, args.ctrs, |_| ctr(chrono::Utc::now().timestamp_millis())).await?;
    let synced =
        consume_all(bus.clone(), crate::pipelines::sync_options(), args.ctrs, syncing(&sync, &bus)).await?;
    progress(&format!("{tag}   {} CTRs/s", thousands(synced.per_sec)));

    // Lag at a fixed rate, the consumer running.
    progress(&format!("{tag} baseline lag: {}/s for {} s", args.rate, args.seconds));
    let baseline_lag =
        at_rate(bus.clone(), BASELINE_STREAM, baseline_options(), args, noop(), |i| json!({"n": i})).await?;
    progress(&format!("{tag}   p50 {:.1} ms, p99 {:.1} ms", baseline_lag.p50_ms, baseline_lag.p99_ms));
    progress(&format!("{tag} sync lag: {} hang-ups/s for {} s", args.rate, args.seconds));
    let sync_lag = at_rate(
        bus.clone(),
        CTR_STREAM,
        crate::pipelines::sync_options(),
        args,
        syncing(&sync, &bus),
        |_| ctr(chrono::Utc::now().timestamp_millis()),
    )
    .await?;
    progress(&format!("{tag}   p50 {:.1} ms, p99 {:.1} ms", sync_lag.p50_ms, sync_lag.p99_ms));
    let dead_letters = bus
        .describe_stream(crate::pipelines::CTR_DEAD_LETTER_STREAM)
        .await
        .map(|s| s.record_count)
        .unwrap_or(0);
    let verdicts = verdicts(&synced, &sync_lag, args.rate, dead_letters);
    Ok(BusReport {
        bus: String::new(),
        baseline,
        sync: synced,
        baseline_lag,
        sync_lag,
        dead_letters,
        verdicts,
    })
}

fn baseline_options() -> ConsumerOptions {
    let mut options = ConsumerOptions::new(BASELINE_STREAM, BASELINE_GROUP);
    options.starting_position = StartingPosition::TrimHorizon;
    options
}

type Handler = Arc<
    dyn Fn(Vec<BusRecord>) -> futures::future::BoxFuture<'static, Result<(), HandlerError>> + Send + Sync,
>;

/// A handler that does nothing.
fn noop() -> Handler {
    Arc::new(|_records| Box::pin(async { Ok(()) }))
}

/// The CTR sync's own batch handler.
fn syncing(sync: &Arc<CtrSync>, bus: &Arc<dyn Bus>) -> Handler {
    let (sync, bus) = (sync.clone(), bus.clone());
    Arc::new(move |records| {
        let (sync, bus) = (sync.clone(), bus.clone());
        Box::pin(async move { crate::pipelines::sync_batch(&sync, bus.as_ref(), records).await })
    })
}

/// A missed call's CTR, hung up at `now_ms`.
fn ctr(now_ms: i64) -> Value {
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    json!({
        "AWSContactTraceRecordFormatVersion": "2017-03-10",
        "Channel": "VOICE",
        "ContactId": uuid::Uuid::new_v4().to_string(),
        "InitiationMethod": "INBOUND",
        "InitiationTimestamp": time(now_ms - 60_000),
        "ConnectedToSystemTimestamp": time(now_ms - 60_000),
        "DisconnectTimestamp": time(now_ms),
        "LastUpdateTimestamp": time(now_ms),
        "DisconnectReason": "CUSTOMER_DISCONNECT",
        "CustomerEndpoint": {"Address": "+14155550123", "Type": "TELEPHONE_NUMBER"},
        "SystemEndpoint": {"Address": voxbridge_core::setup::DEMO_PHONE_NUMBER, "Type": "TELEPHONE_NUMBER"},
        "Queue": {"Name": "Support", "EnqueueTimestamp": time(now_ms - 50_000)},
        "Agent": null,
        "Attributes": {},
    })
}

/// Puts `n` records made by `make` in batches.
async fn fill(bus: &dyn Bus, stream: &str, n: u64, make: impl Fn(u64) -> Value) -> Result<()> {
    let mut i = 0;
    while i < n {
        let batch: Vec<PutRecord> = (i..n.min(i + FILL_BATCH as u64))
            .map(|k| {
                let v = make(k);
                let key =
                    v.get("ContactId").and_then(Value::as_str).map_or_else(|| k.to_string(), str::to_string);
                PutRecord::new(&key, v.to_string().into_bytes())
            })
            .collect();
        i += batch.len() as u64;
        bus.put_batch(stream, batch).await?;
    }
    Ok(())
}

/// Runs a consumer until it has handled `n` records; how fast.
async fn consume_all(
    bus: Arc<dyn Bus>,
    options: ConsumerOptions,
    n: u64,
    handler: Handler,
) -> Result<Throughput> {
    let seen = Arc::new(Seen::default());
    let started = Instant::now();
    let cpu_before = process_cpu();
    let (stop, consumer) = spawn_consumer(bus, options, handler, seen.clone());
    let limit = Duration::from_secs(600);
    while seen.done.load(Ordering::SeqCst) < n {
        if started.elapsed() > limit {
            let _ = stop.send(true);
            bail!(
                "only {} of {n} records were consumed within {} s",
                seen.done.load(Ordering::SeqCst),
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = process_cpu().zip(cpu_before).map(|(after, before)| after.saturating_sub(before));
    let _ = stop.send(true);
    let _ = consumer.await;
    Ok(Throughput {
        records: n,
        seconds,
        per_sec: n as f64 / seconds.max(1e-9),
        cpu_ms_per_record: cpu.map(|c| c.as_secs_f64() * 1000.0 / n.max(1) as f64),
    })
}

fn spawn_consumer(
    bus: Arc<dyn Bus>,
    mut options: ConsumerOptions,
    handler: Handler,
    seen: Arc<Seen>,
) -> (tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    // Short polls: the lag runs measure the bus, not an idle wait.
    options.poll_wait = Duration::from_millis(200);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let wrapped = move |records: Vec<BusRecord>| {
            let (handler, seen) = (handler.clone(), seen.clone());
            async move {
                let arrived: Vec<BusRecord> = records
                    .iter()
                    .map(|r| BusRecord {
                        sequence_number: r.sequence_number,
                        partition_key: String::new(),
                        data: Vec::new(),
                        approximate_arrival_timestamp_ms: r.approximate_arrival_timestamp_ms,
                    })
                    .collect();
                handler(records).await?;
                seen.record(&arrived, chrono::Utc::now().timestamp_millis());
                Ok(())
            }
        };
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        if let Err(e) = voxbridge_bus::run_consumer(bus, options, wrapped, shutdown).await {
            tracing::error!("the bench consumer failed: {e}");
        }
    });
    (stop, task)
}

/// Puts a record every 1/rate s for the run's seconds while the consumer runs; the lags.
async fn at_rate(
    bus: Arc<dyn Bus>,
    stream: &'static str,
    options: ConsumerOptions,
    args: &PipelinesArgs,
    handler: Handler,
    make: impl Fn(u64) -> Value,
) -> Result<Lag> {
    let seen = Arc::new(Seen::default());
    let (stop, consumer) = spawn_consumer(bus.clone(), options, handler, seen.clone());
    let total = args.rate * args.seconds;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut puts = tokio::task::JoinSet::new();
    for i in 0..total {
        tick.tick().await;
        let v = make(i);
        let key = v.get("ContactId").and_then(Value::as_str).map_or_else(|| i.to_string(), str::to_string);
        let bus = bus.clone();
        // A put of its own per hang-up, so a slow put does not hold the next one back.
        puts.spawn(async move { bus.put(stream, &key, v.to_string().into_bytes()).await });
    }
    while let Some(r) = puts.join_next().await {
        r.context("a put task failed")??;
    }
    let put_seconds = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.done.load(Ordering::SeqCst) < total {
        if Instant::now() > deadline {
            let _ = stop.send(true);
            bail!(
                "only {} of {total} records were handled within 120 s of the last put",
                seen.done.load(Ordering::SeqCst)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop.send(true);
    let _ = consumer.await;
    let mut lags = std::mem::take(&mut *seen.lags_ms.lock().unwrap_or_else(|e| e.into_inner()));
    lags.sort_unstable();
    let pct = |p: f64| {
        let i = ((lags.len() as f64 * p).ceil() as usize).clamp(1, lags.len().max(1)) - 1;
        lags.get(i).copied().unwrap_or(0) as f64
    };
    Ok(Lag {
        records: total,
        put_per_sec: total as f64 / put_seconds.max(1e-9),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: lags.last().copied().unwrap_or(0) as f64,
    })
}

fn verdicts(sync: &Throughput, lag: &Lag, rate: u64, dead_letters: u64) -> Vec<Verdict> {
    vec![
        Verdict {
            target: format!(">= {} CTRs/s synced", thousands(TARGET_CTRS_PER_SEC)),
            measured: format!("{} CTRs/s ({} dead letters)", thousands(sync.per_sec), dead_letters),
            status: met(sync.per_sec >= TARGET_CTRS_PER_SEC && dead_letters == 0),
        },
        Verdict {
            target: format!("lag p99 < {} ms at {rate} hang-ups/s", thousands(TARGET_LAG_P99_MS)),
            measured: format!("p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms", lag.p50_ms, lag.p99_ms, lag.max_ms),
            status: met(lag.p99_ms < TARGET_LAG_P99_MS),
        },
    ]
}

fn render(r: &BusReport, args: &PipelinesArgs) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "bus: {}", r.bus);
    let _ = writeln!(
        o,
        "  throughput ({} records)   baseline {:>10}/s   sync {:>8} CTRs/s",
        thousands(args.ctrs as f64),
        thousands(r.baseline.per_sec),
        thousands(r.sync.per_sec)
    );
    if let Some(ms) = r.sync.cpu_ms_per_record {
        let _ = writeln!(o, "  CPU per CTR (all threads)  {ms:.2} ms");
    }
    for (name, lag) in [("baseline", &r.baseline_lag), ("sync", &r.sync_lag)] {
        let _ = writeln!(
            o,
            "  lag {name:<8} at {:>5.0}/s  p50 {:>7.1} ms   p99 {:>7.1} ms   max {:>7.1} ms",
            lag.put_per_sec, lag.p50_ms, lag.p99_ms, lag.max_ms
        );
    }
    o.push_str(&render_verdicts(&r.bus, &r.verdicts));
    o
}
