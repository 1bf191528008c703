//! `voxbridge bench routing`: Omni-Channel routing decisions and console event delivery,
//! measured through the real server over real HTTP and WebSockets, in this process.
//!
//! The bench seeds a temporary store (SQLite unless `--database-url`) with the demo org plus
//! `--queues` queues and `--agents` agents who are Available, each serving five queues; the
//! server's router restores them at start. Every agent's console keeps a WebSocket open.
//!
//! (a) Routing: calls are routed one at a time with executeOmniFlow to queue `i mod queues`;
//! the latency is from sending the request to the offer arriving on the agent's WebSocket
//! (PendingServiceRouting commit, the router's decision, the console event). (b) Delivery: one
//! agent holds a call with `--clients` consoles open; transcripts are posted one at a time and
//! the latency is from sending each to its arrival on every console. (c) Baseline: a bare
//! WebSocket echo server in the same process, `--clients` clients all sending at once, the
//! floor of what a WebSocket message costs here.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::Message;
use voxbridge_core::setup::demo_setup;
use voxbridge_core::{KeyPrefix, Record, SfId};
use voxbridge_store::{Store, WriteOp};

use crate::bench::{histogram, met, progress, render_verdicts, Machine, Status, Verdict};
use crate::{keys, token};

/// Target: routing decision p99 (PendingServiceRouting to offer) with 1,000 agents, 100 queues.
const TARGET_ROUTING_P99_MS: f64 = 20.0;
/// Target: transcript to 500 consoles, p99.
const TARGET_DELIVERY_P99_MS: f64 = 50.0;
/// Queues each agent serves.
const QUEUES_PER_AGENT: u64 = 5;
/// How long one event may take before the bench counts it lost.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Records per store batch while seeding.
const SEED_BATCH: usize = 500;

#[derive(Debug, Args)]
pub struct RoutingArgs {
    /// Agents, all Available, each serving five queues.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(2..=20_000))]
    agents: u64,
    /// Queues.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    queues: u64,
    /// Calls routed, one at a time; at most half the agents, so every call finds one free.
    #[arg(long, value_name = "N", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    calls: u64,
    /// Consoles receiving each transcript (and clients of the echo baseline).
    #[arg(long, value_name = "N", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..=5_000))]
    clients: u64,
    /// Transcript messages (and echo rounds) measured.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    messages: u64,
    /// Store to run on (`sqlite://PATH` or `postgres://…?schema=NAME`); default: a temporary
    /// SQLite file.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Print the results as JSON (progress still goes to standard error).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Latency {
    samples: u64,
    lost: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>, lost: u64) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            samples: h.len(),
            lost,
            p50_ms: ms(h.value_at_quantile(0.5)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    version: &'static str,
    machine: Machine,
    backend: String,
    agents: u64,
    queues: u64,
    clients: u64,
    /// executeOmniFlow answered (PendingServiceRouting committed).
    route_answer: Latency,
    /// Request sent to offer received on the agent's WebSocket.
    route_to_offer: Latency,
    /// Transcript sent to its arrival on each console.
    transcript_delivery: Latency,
    /// Transcript POST answered.
    transcript_answer: Latency,
    /// Bare WebSocket echo round trip with the same number of clients.
    echo_baseline: Latency,
    verdicts: Vec<Verdict>,
}

pub async fn routing(args: &RoutingArgs) -> Result<()> {
    if args.calls * 2 > args.agents {
        bail!(
            "--calls {} needs at least {} agents (--agents), so every call finds a free one",
            args.calls,
            args.calls * 2
        );
    }
    let machine = Machine::detect();
    progress(&format!(
        "voxbridge bench routing: {} agents, {} queues, {} calls, {} consoles, on {} CPU(s) ({})",
        args.agents, args.queues, args.calls, args.clients, machine.cpus, machine.cpu_model
    ));
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let url =
        args.database_url.clone().unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.path().display()));
    let store = voxbridge_store::open(&url).await.with_context(|| format!("cannot open the store {url}"))?;
    let backend = store.backend().to_string();
    let seeded = seed(&*store, args).await?;

    let settings = voxbridge_server::Settings {
        limits: voxbridge_server::Limits {
            calls_per_second: 1_000_000,
            utterances_per_second: 1_000_000,
            ..Default::default()
        },
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = voxbridge_server::router(store.clone(), settings);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    let ctx = Ctx { base, client, seeded };
    let result = run(&ctx, args, machine, backend).await;
    server.abort();
    store.close().await;
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

struct Seeded {
    org: String,
    key_pem: String,
    /// Console session tokens, by agent index.
    tokens: Vec<String>,
    /// Developer names of the queues.
    queues: Vec<String>,
}

struct Ctx {
    base: String,
    client: reqwest::Client,
    seeded: Seeded,
}

impl Ctx {
    fn telephony_token(&self) -> Result<String> {
        let claims = token::Claims::new(
            &self.seeded.org,
            voxbridge_core::setup::DEMO_CALL_CENTER,
            &voxbridge_server::Settings::default().audience,
            600,
            false,
        );
        token::sign(&claims, self.seeded.key_pem.as_bytes())
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut req = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(bearer);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{path} answered {status}: {body}");
        }
        Ok(body)
    }

    fn ws_url(&self, path: &str, token: &str) -> String {
        format!("{}{path}?access_token={token}", self.base.replace("http://", "ws://"))
    }
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The demo org, the bench's queues and agents (Available, with console sessions).
async fn seed(store: &dyn Store, args: &RoutingArgs) -> Result<Seeded> {
    let started = Instant::now();
    let pair = keys::generate(2048)?;
    let mut rng = rand::thread_rng();
    let now = chrono::Utc::now().timestamp_millis();
    let setup = demo_setup(&mut rng, now, &pair.public_pem);
    let org = setup.summary.org_id.clone();
    let cc = setup.summary.call_center_id.to_string();
    let mut records = setup.records;
    let map = |rng: &mut rand::rngs::ThreadRng, reference: &SfId, external: String| {
        let mut m = Record::new(
            SfId::generate(KeyPrefix::CallCenterRoutingMap, rng),
            org.clone(),
            "CallCenterRoutingMap",
            Some(external.clone()),
            now,
        );
        m.set("CallCenterId", cc.as_str());
        m.set("ReferenceRecordId", reference.to_string());
        m.set("ExternalId", external);
        m
    };
    let mut queues = Vec::new();
    for q in 0..args.queues {
        let name = format!("BenchQ{q}");
        let id = SfId::generate(KeyPrefix::Group, &mut rng);
        let mut g = Record::new(id.clone(), org.clone(), "Group", Some(name.clone()), now);
        g.set("Name", format!("Bench queue {q}"));
        g.set("DeveloperName", name.as_str());
        g.set("Type", "Queue");
        records.push(g);
        records.push(map(&mut rng, &id, format!("bench-queue-{q}")));
        queues.push(name);
    }
    let mut tokens = Vec::new();
    for a in 0..args.agents {
        let username = format!("agent{a}@bench.voxbridge.local");
        let id = SfId::generate(KeyPrefix::User, &mut rng);
        let mut u = Record::new(id.clone(), org.clone(), "User", Some(username.clone()), now);
        u.set("Username", username.as_str());
        u.set("Name", format!("Agent {a}"));
        u.set("IsActive", true);
        u.set("ServicePresenceStatus", "Available");
        let served: Vec<String> = (0..QUEUES_PER_AGENT.min(args.queues))
            .map(|k| queues[((a + k) % args.queues) as usize].clone())
            .collect();
        u.set("RoutingQueues", json!(served));
        records.push(u);
        records.push(map(&mut rng, &id, format!("bench-agent-{a}")));
        let secret: [u8; 16] = rng.gen();
        let token = format!("{org}!{}", secret.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let mut s = Record::new(
            SfId::generate(KeyPrefix::AuthSession, &mut rng),
            org.clone(),
            "ConsoleSession",
            Some(hash(&token)),
            now,
        );
        s.set("UserId", id.to_string());
        s.set("ExpiresAt", now + 3_600_000);
        records.push(s);
        tokens.push(token);
    }
    let total = records.len();
    let mut batch = Vec::with_capacity(SEED_BATCH);
    for r in records {
        batch.push(WriteOp::Insert(r));
        if batch.len() == SEED_BATCH {
            store.apply(std::mem::take(&mut batch)).await?;
        }
    }
    if !batch.is_empty() {
        store.apply(batch).await?;
    }
    progress(&format!("seeded {total} records in {:.1} s", started.elapsed().as_secs_f64()));
    Ok(Seeded { org: org.to_string(), key_pem: pair.private_pem.to_string(), tokens, queues })
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a console WebSocket and waits for its first (`state`) message.
async fn console(url: &str) -> Result<Socket> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.context("WebSocket connect")?;
    match tokio::time::timeout(EVENT_TIMEOUT, ws.next()).await {
        Ok(Some(Ok(Message::Text(_)))) => Ok(ws),
        other => bail!("the console socket did not start: {other:?}"),
    }
}

/// Reads a console's events and reports those of `kind` as (data, arrival time).
fn watch(
    mut ws: Socket,
    kind: &'static str,
    tx: mpsc::UnboundedSender<(usize, Value, Instant)>,
    index: usize,
) {
    tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg {
                let at = Instant::now();
                if let Ok(v) = serde_json::from_str::<Value>(&t) {
                    if v["type"] == kind && tx.send((index, v, at)).is_err() {
                        break;
                    }
                }
            }
        }
    });
}

async fn run(ctx: &Ctx, args: &RoutingArgs, machine: Machine, backend: String) -> Result<Report> {
    // Every agent's console; the router has restored them when the first answers.
    let started = Instant::now();
    let (offer_tx, mut offers) = mpsc::unbounded_channel();
    for (i, t) in ctx.seeded.tokens.iter().enumerate() {
        let ws = console(&ctx.ws_url("/console/api/v1/events", t)).await?;
        watch(ws, "offer", offer_tx.clone(), i);
    }
    let q = ctx.send(reqwest::Method::GET, "/console/api/v1/queues", &ctx.seeded.tokens[0], None).await?;
    let available: u64 = q["queues"]
        .as_array()
        .map(|a| a.iter().filter_map(|q| q["agentsAvailable"].as_u64()).sum())
        .unwrap_or(0);
    progress(&format!(
        "{} consoles connected in {:.1} s; {available} agent-queue pairs available",
        ctx.seeded.tokens.len(),
        started.elapsed().as_secs_f64()
    ));

    // (a) Routing decisions.
    let jwt = ctx.telephony_token()?;
    let call_start = chrono::Utc::now() - chrono::Duration::minutes(10);
    let call_start_iso = call_start.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let mut answer = histogram();
    let mut offer = histogram();
    let mut lost = 0;
    for i in 0..args.calls {
        let queue = &ctx.seeded.queues[(i % args.queues) as usize];
        let routed = route_one(ctx, &jwt, &call_start_iso, queue, &mut offers).await?;
        let _ = answer.record(routed.answered.as_micros() as u64);
        match routed.offered {
            Some((_, d)) => {
                let _ = offer.record(d.as_micros() as u64);
            }
            None => lost += 1,
        }
    }
    progress(&format!(
        "routed {} calls: offer p50 {:.2} ms, p99 {:.2} ms",
        args.calls,
        offer.value_at_quantile(0.5) as f64 / 1000.0,
        offer.value_at_quantile(0.99) as f64 / 1000.0
    ));

    // (b) Transcript delivery to one agent's consoles.
    // A fresh call, accepted at once (the first ones' offers have rung out by now).
    let routed = route_one(ctx, &jwt, &call_start_iso, &ctx.seeded.queues[0], &mut offers).await?;
    let Some((agent, _)) = routed.offered else { bail!("no agent was offered the delivery call") };
    let (call, key) = (routed.call, routed.key);
    let token = &ctx.seeded.tokens[agent];
    ctx.send(reqwest::Method::POST, &format!("/console/api/v1/offers/{call}/accept"), token, None).await?;
    let (msg_tx, mut msgs) = mpsc::unbounded_channel();
    for i in 0..args.clients as usize {
        let ws = console(&ctx.ws_url("/console/api/v1/events", token)).await?;
        watch(ws, "conversation", msg_tx.clone(), i);
    }
    drop(msg_tx);
    let mut delivery = histogram();
    let mut post = histogram();
    let mut delivery_lost = 0;
    let start_ms = call_start.timestamp_millis();
    for m in 0..args.messages {
        let id = format!("m{m}");
        let at = start_ms + 1000 + m as i64;
        let t0 = Instant::now();
        ctx.send(
            reqwest::Method::POST,
            &format!("/telephony/v1/voiceCalls/{key}/messages"),
            &jwt,
            Some(json!({"participantId": "bench", "messageId": id, "startTime": at, "endTime": at + 1,
                        "content": "bench utterance", "senderType": "END_USER"})),
        )
        .await?;
        let _ = post.record(t0.elapsed().as_micros() as u64);
        let mut got = 0;
        let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
        while got < args.clients {
            match tokio::time::timeout_at(deadline, msgs.recv()).await {
                Ok(Some((_, v, when))) => {
                    if v["event"] == "transcript" && v["data"]["messageId"] == id.as_str() {
                        let _ = delivery.record(when.duration_since(t0).as_micros() as u64);
                        got += 1;
                    }
                }
                _ => {
                    delivery_lost += args.clients - got;
                    break;
                }
            }
        }
    }
    progress(&format!(
        "delivered {} transcripts to {} consoles: p50 {:.2} ms, p99 {:.2} ms",
        args.messages,
        args.clients,
        delivery.value_at_quantile(0.5) as f64 / 1000.0,
        delivery.value_at_quantile(0.99) as f64 / 1000.0
    ));

    // (c) The bare WebSocket echo baseline.
    let echo = echo_baseline(args).await?;
    progress(&format!(
        "echo baseline: p50 {:.2} ms, p99 {:.2} ms",
        echo.value_at_quantile(0.5) as f64 / 1000.0,
        echo.value_at_quantile(0.99) as f64 / 1000.0
    ));

    let route_to_offer = Latency::of(&offer, lost);
    let transcript_delivery = Latency::of(&delivery, delivery_lost);
    let echo_baseline = Latency::of(&echo, 0);
    let verdicts = vec![
        Verdict {
            target: format!(
                "routing p99 < {TARGET_ROUTING_P99_MS} ms ({} agents, {} queues)",
                args.agents, args.queues
            ),
            measured: format!("p99 {:.2} ms, {} lost", route_to_offer.p99_ms, lost),
            status: met(route_to_offer.p99_ms < TARGET_ROUTING_P99_MS && lost == 0),
        },
        Verdict {
            target: format!("transcript to {} consoles p99 < {TARGET_DELIVERY_P99_MS} ms", args.clients),
            measured: format!(
                "p99 {:.2} ms (echo baseline p99 {:.2} ms), {} lost",
                transcript_delivery.p99_ms, echo_baseline.p99_ms, delivery_lost
            ),
            status: if transcript_delivery.samples == 0 {
                Status::NotMeasured
            } else {
                met(transcript_delivery.p99_ms < TARGET_DELIVERY_P99_MS && delivery_lost == 0)
            },
        },
    ];
    Ok(Report {
        version: env!("CARGO_PKG_VERSION"),
        machine,
        backend,
        agents: args.agents,
        queues: args.queues,
        clients: args.clients,
        route_answer: Latency::of(&answer, 0),
        route_to_offer,
        transcript_delivery,
        transcript_answer: Latency::of(&post, 0),
        echo_baseline,
        verdicts,
    })
}

struct Routed {
    call: String,
    key: String,
    answered: Duration,
    /// The agent offered the call, and when (from sending executeOmniFlow).
    offered: Option<(usize, Duration)>,
}

/// Creates a call, routes it to `queue` and waits for its offer.
async fn route_one(
    ctx: &Ctx,
    jwt: &str,
    start_iso: &str,
    queue: &str,
    offers: &mut mpsc::UnboundedReceiver<(usize, Value, Instant)>,
) -> Result<Routed> {
    let key = format!("bench-routing-{}", uuid::Uuid::new_v4().simple());
    let created = ctx
        .send(reqwest::Method::POST, "/telephony/v1/voiceCalls", jwt, Some(json!({
            "callCenterApiName": voxbridge_core::setup::DEMO_CALL_CENTER, "vendorCallKey": key,
            "to": "+15550100100", "from": "+14155550123", "initiationMethod": "Inbound",
            "startTime": start_iso, "participants": [{"participantKey": "+14155550123", "type": "END_USER"}],
        })))
        .await?;
    let call = created["voiceCallId"].as_str().unwrap_or_default().to_string();
    let t0 = Instant::now();
    ctx.send(
        reqwest::Method::PATCH,
        &format!("/telephony/v1/voiceCalls/{call}/omniFlow"),
        jwt,
        Some(json!({"dialedNumber": "+10000000000", "fallbackQueue": queue})),
    )
    .await?;
    let answered = t0.elapsed();
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    let offered = loop {
        match tokio::time::timeout_at(deadline, offers.recv()).await {
            Ok(Some((agent, v, at))) if v["data"]["workId"] == call.as_str() => {
                break Some((agent, at.duration_since(t0)));
            }
            Ok(Some(_)) => {}
            _ => break None,
        }
    };
    Ok(Routed { call, key, answered, offered })
}

/// `clients` WebSocket clients of a bare echo server all send at once, `messages` times.
async fn echo_baseline(args: &RoutingArgs) -> Result<Histogram<u64>> {
    use axum::extract::ws::{Message as AxumMessage, WebSocketUpgrade};
    let app = axum::Router::new().route(
        "/echo",
        axum::routing::get(|ws: WebSocketUpgrade| async move {
            ws.on_upgrade(|mut socket| async move {
                while let Some(Ok(msg)) = socket.recv().await {
                    if let AxumMessage::Text(t) = msg {
                        if socket.send(AxumMessage::Text(t)).await.is_err() {
                            break;
                        }
                    }
                }
            })
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}/echo", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let (go_tx, _) = broadcast::channel::<u64>(16);
    let (done_tx, mut done) = mpsc::unbounded_channel::<Option<u64>>();
    let mut clients = Vec::new();
    for _ in 0..args.clients {
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.context("echo connect")?;
        let mut go = go_tx.subscribe();
        let done = done_tx.clone();
        clients.push(tokio::spawn(async move {
            let mut ws = ws;
            while let Ok(round) = go.recv().await {
                let t0 = Instant::now();
                let ok = ws.send(Message::Text(round.to_string().into())).await.is_ok()
                    && matches!(ws.next().await, Some(Ok(Message::Text(_))));
                let _ = done.send(ok.then(|| t0.elapsed().as_micros() as u64));
            }
        }));
    }
    let mut h = histogram();
    for round in 0..args.messages {
        let _ = go_tx.send(round);
        for _ in 0..args.clients {
            match tokio::time::timeout(EVENT_TIMEOUT, done.recv()).await {
                Ok(Some(Some(us))) => {
                    let _ = h.record(us);
                }
                Ok(Some(None)) => {}
                _ => bail!("the echo baseline stalled"),
            }
        }
    }
    drop(go_tx);
    for c in clients {
        c.abort();
    }
    server.abort();
    Ok(h)
}

fn render(r: &Report) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "routing on {} ({} CPU(s), {}): {} agents, {} queues",
        r.backend, r.machine.cpus, r.machine.cpu_model, r.agents, r.queues
    );
    let _ = writeln!(
        o,
        "  {:<44} {:>8} {:>6} {:>9} {:>9} {:>9}",
        "", "samples", "lost", "p50 ms", "p99 ms", "max ms"
    );
    for (name, l) in [
        ("executeOmniFlow answered", &r.route_answer),
        ("executeOmniFlow sent -> offer on WebSocket", &r.route_to_offer),
        ("transcript POST answered", &r.transcript_answer),
        ("transcript sent -> each console", &r.transcript_delivery),
        ("bare WebSocket echo (baseline)", &r.echo_baseline),
    ] {
        let _ = writeln!(
            o,
            "  {:<44} {:>8} {:>6} {:>9.2} {:>9.2} {:>9.2}",
            name, l.samples, l.lost, l.p50_ms, l.p99_ms, l.max_ms
        );
    }
    o.push_str(&render_verdicts(&r.backend, &r.verdicts));
    o
}
