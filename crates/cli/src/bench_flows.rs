//! `voxbridge bench flows`: how fast the telephony half runs contacts through flows, in this
//! process, with nothing else in the way.
//!
//! The flows are the embedded samples (the inbound flow and its Omni-Channel subflow, as a
//! fresh `voxbridge serve` installs them). `InvokeTelephonyIntegrationApiFunction` is
//! replaced by an in-process function answering like the real one (a VoiceCall id for
//! `createVoiceCall`, a queue for `executeOmniFlow`), so no HTTP or CRM work is measured.
//! Four measurements, each against its target:
//!
//! * **memory per active contact** — first, while the heap is still young: N contacts are
//!   run to the point where they wait in queue and their `ContactState`s (attributes,
//!   position, execution log) are kept alive; the growth of the resident set divided by N.
//!   The allocator may hand out pages freed before, so the figure is a floor; measuring
//!   first keeps that small.
//! * **contacts per second end to end** — `ContactCenter::simulate` (interpreter, function
//!   registry with time limits and metrics, queues, event log, CTR and contact events) on
//!   the async runtime's worker threads, many contacts in flight.
//! * **parse-only baseline** — parsing the same two flow exports on the same number of
//!   threads, per second: what a contact would cost if flows were parsed per call rather
//!   than once per library.
//! * **interpreter time per action** — one thread feeding `Interpreter::step` directly with a
//!   minimal host loop; total time divided by the actions the execution logs record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};
use voxbridge_contacts::{CallerScript, ContactCenter, FlowLibrary, InboundCall, Step};
use voxbridge_flows::{
    Command, ContactState, Ended, Event, FunctionResult, Interpreter, LogKind, QueueOutcome,
};
use voxbridge_functions::{telephony, Function, FunctionError, FunctionOptions, Registry, SystemClock};

use crate::bench::{met, progress, render_verdicts, thousands, Machine, Status, Verdict};
use crate::provision::SAMPLE_FLOWS;

/// Targets (see docs/performance.md), on 2 cores.
const TARGET_CONTACTS_PER_SEC: f64 = 2_000.0;
const TARGET_US_PER_ACTION: f64 = 5.0;
const TARGET_BYTES_PER_CONTACT: f64 = 20.0 * 1024.0;

const INBOUND_FILE: &str = "Voxbridge_Inbound_Flow.json";
const OMNI_FILE: &str = "Voxbridge_Omni-Channel_Subflow.json";
const DEMO_NUMBER: &str = voxbridge_core::setup::DEMO_PHONE_NUMBER;
const CALLER: &str = "+14155550123";
/// The queue the in-process `executeOmniFlow` routes to.
const SUPPORT_QUEUE_ID: &str = "3f9d0c5e-0000-4000-8000-00000000beef";
/// The interpreter's clock in the sans-IO measurements (any fixed time does).
const NOW_MS: i64 = 1_736_960_400_000;

#[derive(Debug, Args)]
pub struct FlowsArgs {
    /// Contacts to run end to end (after a warm-up of a tenth as many).
    #[arg(long, value_name = "N", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    contacts: u64,
    /// Contacts in flight at once in the end-to-end run.
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    concurrency: u64,
    /// Active contacts held at once for the memory measurement.
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    active: u64,
    /// Print the results as JSON (progress still goes to standard error).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    version: &'static str,
    machine: Machine,
    flows: Vec<&'static str>,
    memory: MemoryReport,
    end_to_end: EndToEndReport,
    parse_baseline: ParseReport,
    interpreter: InterpreterReport,
    verdicts: Vec<Verdict>,
}

#[derive(Debug, Serialize)]
struct MemoryReport {
    active_contacts: u64,
    rss_before_mb: Option<f64>,
    rss_after_mb: Option<f64>,
    bytes_per_contact: Option<f64>,
}

#[derive(Debug, Serialize)]
struct EndToEndReport {
    contacts: u64,
    concurrency: u64,
    threads: usize,
    seconds: f64,
    contacts_per_sec: f64,
    /// Flow actions one contact runs (from its event log).
    actions_per_contact: f64,
    /// Contacts that did not end queued.
    failures: u64,
    first_failure: Option<String>,
}

#[derive(Debug, Serialize)]
struct ParseReport {
    /// Times both flow exports were parsed.
    parses: u64,
    threads: usize,
    seconds: f64,
    parses_per_sec: f64,
}

#[derive(Debug, Serialize)]
struct InterpreterReport {
    contacts: u64,
    actions: u64,
    seconds: f64,
    us_per_action: f64,
    us_per_contact: f64,
}

/// `voxbridge bench flows`.
pub fn run(args: &FlowsArgs) -> Result<()> {
    let machine = Machine::detect();
    progress(&format!(
        "voxbridge bench flows: {} contacts ({} in flight), {} held for memory, {} CPU(s) ({})",
        thousands(args.contacts as f64),
        args.concurrency,
        thousands(args.active as f64),
        machine.cpus,
        machine.cpu_model
    ));
    let library = library()?;

    let memory = memory(&library, args.active)?;
    let runtime = crate::runtime()?;
    let end_to_end = runtime.block_on(end_to_end(library.clone(), args))?;
    drop(runtime);
    let parse_baseline = parse_baseline(args.contacts.max(1_000), machine.cpus)?;
    let interpreter = interpreter(&library, args.contacts)?;

    let verdicts = verdicts(&memory, &end_to_end, &parse_baseline, &interpreter);
    let report = Report {
        version: env!("CARGO_PKG_VERSION"),
        machine,
        flows: vec![INBOUND_FILE, OMNI_FILE],
        memory,
        end_to_end,
        parse_baseline,
        interpreter,
        verdicts,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

/// The sample library, as `serve` installs it, plus the queue the in-process routing answers
/// with. It is loaded from a temporary directory, removed once the flows are parsed.
fn library() -> Result<Arc<FlowLibrary>> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    for (file, text) in SAMPLE_FLOWS {
        let text = if *file == "flows.toml" {
            // Room for every contact in flight, so the queue never answers at capacity.
            format!(
                "{text}\n[[queues]]\nname = \"Support\"\nid = \"{SUPPORT_QUEUE_ID}\"\ncapacity = 10000000\n"
            )
        } else {
            text.to_string()
        };
        std::fs::write(dir.path().join(file), text)?;
    }
    let library = FlowLibrary::load_dir(dir.path()).context("the sample flows do not load")?;
    Ok(Arc::new(library))
}

fn support_arn(library: &FlowLibrary) -> String {
    format!("{}/queue/{SUPPORT_QUEUE_ID}", library.instance_arn)
}

/// What the real InvokeTelephonyIntegrationApiFunction answers (flattened for flows), without
/// calling anything.
fn answer(method: &str, n: u64, support_arn: &str) -> Value {
    match method {
        "createVoiceCall" | "createTransferVC" => {
            json!({"voiceCallId": format!("0LQVX0{n:09}"), "errors": "[]"})
        }
        "executeOmniFlow" => json!({"agent": "", "queue": support_arn}),
        _ => json!({}),
    }
}

/// The in-process stand-in for InvokeTelephonyIntegrationApiFunction.
struct InProcessTelephony {
    calls: AtomicU64,
    support_arn: String,
}

#[async_trait::async_trait]
impl Function for InProcessTelephony {
    fn name(&self) -> &str {
        telephony::NAME
    }
    async fn invoke(&self, event: Value) -> Result<Value, FunctionError> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let method = event["Details"]["Parameters"]["methodName"].as_str().unwrap_or("");
        Ok(answer(method, n, &self.support_arn))
    }
}

fn center(library: Arc<FlowLibrary>) -> ContactCenter {
    let registry = Registry::new();
    let function = InProcessTelephony { calls: AtomicU64::new(0), support_arn: support_arn(&library) };
    registry.register(Arc::new(function), FunctionOptions::default());
    registry.bind(telephony::PLACEHOLDER, telephony::NAME);
    ContactCenter::new(library, Arc::new(registry), Arc::new(SystemClock))
}

async fn end_to_end(library: Arc<FlowLibrary>, args: &FlowsArgs) -> Result<EndToEndReport> {
    let center = Arc::new(center(library));
    let warmup = (args.contacts / 10).max(1);
    run_contacts(&center, warmup, args.concurrency, None).await?;
    let done = Arc::new(AtomicU64::new(0));
    // A thread of its own: the contact tasks rarely yield, so a ticking task would starve.
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let ticker = {
        let done = done.clone();
        let total = args.contacts;
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_millis(250))
            {
                if terminal {
                    let n = done.load(Ordering::Relaxed);
                    eprint!("\r  end to end: {} / {} contacts", thousands(n as f64), thousands(total as f64));
                }
            }
        })
    };
    let started = Instant::now();
    let outcome = run_contacts(&center, args.contacts, args.concurrency, Some(done)).await;
    let seconds = started.elapsed().as_secs_f64();
    drop(stop);
    let _ = ticker.join();
    eprintln!("\r  end to end: {} contacts in {seconds:.2} s          ", thousands(args.contacts as f64));
    let (failures, first_failure, actions) = outcome?;
    Ok(EndToEndReport {
        contacts: args.contacts,
        concurrency: args.concurrency,
        threads: tokio::runtime::Handle::current().metrics().num_workers(),
        seconds,
        contacts_per_sec: args.contacts as f64 / seconds.max(1e-9),
        actions_per_contact: actions as f64 / args.contacts as f64,
        failures,
        first_failure,
    })
}

/// Runs `total` contacts with `concurrency` in flight; returns the failures, the first one
/// described, and the actions run.
async fn run_contacts(
    center: &Arc<ContactCenter>,
    total: u64,
    concurrency: u64,
    done: Option<Arc<AtomicU64>>,
) -> Result<(u64, Option<String>, u64)> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.min(total) {
        let (center, next, done) = (center.clone(), next.clone(), done.clone());
        tasks.spawn(async move {
            let (mut failures, mut first, mut actions) = (0u64, None, 0u64);
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let call = InboundCall {
                    to: DEMO_NUMBER.into(),
                    from: CALLER.into(),
                    input: CallerScript::default(),
                    contact_id: None,
                };
                match center.simulate(call).await {
                    Ok(r) => {
                        actions +=
                            r.steps.iter().filter(|s| matches!(s.step, Step::Action { .. })).count() as u64;
                        if r.disposition != "QUEUED" {
                            failures += 1;
                            first.get_or_insert_with(|| {
                                format!(
                                    "ended {} ({})",
                                    r.disposition,
                                    r.attributes.get("error").cloned().unwrap_or_default()
                                )
                            });
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        first.get_or_insert_with(|| e.to_string());
                    }
                }
                if let Some(d) = &done {
                    d.fetch_add(1, Ordering::Relaxed);
                }
            }
            (failures, first, actions)
        });
    }
    let (mut failures, mut first, mut actions) = (0, None, 0);
    while let Some(joined) = tasks.join_next().await {
        let (f, e, a) = joined.context("a bench task panicked")?;
        failures += f;
        actions += a;
        if first.is_none() {
            first = e;
        }
    }
    Ok((failures, first, actions))
}

fn parse_baseline(parses: u64, threads: usize) -> Result<ParseReport> {
    let texts: Vec<&'static str> = [INBOUND_FILE, OMNI_FILE]
        .iter()
        .map(|f| {
            SAMPLE_FLOWS.iter().find(|(n, _)| n == f).map(|(_, t)| *t).context("a sample flow is missing")
        })
        .collect::<Result<_>>()?;
    let next = AtomicU64::new(0);
    let started = Instant::now();
    let ok = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| {
                    while next.fetch_add(1, Ordering::Relaxed) < parses {
                        for text in &texts {
                            if voxbridge_flows::parse_flow(text).is_err() {
                                return false;
                            }
                        }
                    }
                    true
                })
            })
            .collect();
        handles.into_iter().all(|h| h.join().unwrap_or(false))
    });
    let seconds = started.elapsed().as_secs_f64();
    if !ok {
        bail!("a sample flow does not parse");
    }
    progress(&format!("  parse baseline: {} parses in {seconds:.2} s", thousands(parses as f64)));
    Ok(ParseReport {
        parses,
        threads: threads.max(1),
        seconds,
        parses_per_sec: parses as f64 / seconds.max(1e-9),
    })
}

/// Runs one contact through the interpreter with a minimal synchronous host until it is
/// queued (or ends otherwise); returns its state.
fn interpret(
    library: &FlowLibrary,
    env: &voxbridge_flows::Environment,
    id: u64,
    support_arn: &str,
) -> Result<ContactState> {
    let mut flow = library.flow_for_number(DEMO_NUMBER).context("no flow for the demo number")?;
    let mut state = ContactState::inbound(format!("bench-{id}"), CALLER, DEMO_NUMBER);
    let mut pending = vec![Event::Start];
    let mut events = 0;
    while let Some(event) = pending.pop() {
        events += 1;
        if events > 10_000 {
            bail!("a contact did not end");
        }
        for command in Interpreter::new(&flow.flow, env).step(&mut state, NOW_MS, event) {
            let answer = match command {
                Command::InvokeFunction(inv) if !inv.asynchronous => {
                    let method = inv.event["Details"]["Parameters"]["methodName"].as_str().unwrap_or("");
                    Some(Event::FunctionResult(FunctionResult::Ok(answer(method, id, support_arn))))
                }
                Command::TransferToQueue(_) => Some(Event::QueueResult(QueueOutcome::Queued)),
                Command::TransferToFlow { flow_id } => match library.get(&flow_id) {
                    Some(next) => {
                        flow = next;
                        Some(Event::Start)
                    }
                    None => Some(Event::TransferResult(Err(format!("no flow {flow_id}")))),
                },
                Command::CollectDigits(_) => Some(Event::InputTimeout),
                Command::TransferToThirdParty { .. } => Some(Event::TransferResult(Ok(()))),
                Command::StartMediaStreaming { .. } => {
                    Some(Event::MediaStreamStarted(Err("no media".into())))
                }
                Command::StartTimer { .. } => Some(Event::Disconnected),
                _ => None,
            };
            pending.extend(answer);
        }
        if state.ended().is_some() && pending.is_empty() {
            break;
        }
    }
    Ok(state)
}

fn interpreter(library: &Arc<FlowLibrary>, contacts: u64) -> Result<InterpreterReport> {
    let env = center(library.clone()).environment(NOW_MS);
    let support = support_arn(library);
    for i in 0..(contacts / 10).max(1) {
        interpret(library, &env, i, &support)?;
    }
    let mut actions = 0u64;
    let started = Instant::now();
    for i in 0..contacts {
        let state = interpret(library, &env, i, &support)?;
        if state.ended() != Some(&Ended::Queued) {
            bail!("the inbound flow did not queue the contact: {:?}", state.ended());
        }
        actions += state.log().iter().filter(|e| e.kind == LogKind::Action).count() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    progress(&format!(
        "  interpreter: {} contacts, {} actions in {seconds:.2} s",
        thousands(contacts as f64),
        thousands(actions as f64)
    ));
    Ok(InterpreterReport {
        contacts,
        actions,
        seconds,
        us_per_action: seconds * 1e6 / actions.max(1) as f64,
        us_per_contact: seconds * 1e6 / contacts.max(1) as f64,
    })
}

fn memory(library: &Arc<FlowLibrary>, active: u64) -> Result<MemoryReport> {
    let env = center(library.clone()).environment(NOW_MS);
    let support = support_arn(library);
    // Warm the allocator and the library's lazily built parts with a few contacts first.
    for i in 0..100 {
        interpret(library, &env, i, &support)?;
    }
    let before = rss_bytes();
    let mut held = Vec::with_capacity(active as usize);
    for i in 0..active {
        held.push(interpret(library, &env, i, &support)?);
    }
    let after = rss_bytes();
    let queued = held.iter().filter(|s| s.ended() == Some(&Ended::Queued)).count();
    drop(held);
    if queued as u64 != active {
        bail!("only {queued} of {active} contacts reached the queue");
    }
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    let report = MemoryReport {
        active_contacts: active,
        rss_before_mb: before.map(mb),
        rss_after_mb: after.map(mb),
        bytes_per_contact: match (before, after) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / active as f64),
            _ => None,
        },
    };
    progress(&format!(
        "  memory: {} contacts held, {}",
        thousands(active as f64),
        report
            .bytes_per_contact
            .map(|b| format!("{} bytes each", thousands(b)))
            .unwrap_or("RSS unknown".into())
    ));
    Ok(report)
}

/// The resident set of this process, from `/proc/self/status`.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn verdicts(m: &MemoryReport, e: &EndToEndReport, p: &ParseReport, i: &InterpreterReport) -> Vec<Verdict> {
    let mut out = vec![Verdict {
        target: format!("end to end >= {} contacts/s", thousands(TARGET_CONTACTS_PER_SEC)),
        measured: format!(
            "{} contacts/s on {} threads ({:.0} actions each; parse-only baseline {} flow pairs/s)",
            thousands(e.contacts_per_sec),
            e.threads,
            e.actions_per_contact,
            thousands(p.parses_per_sec)
        ),
        status: met(e.contacts_per_sec >= TARGET_CONTACTS_PER_SEC && e.failures == 0),
    }];
    out.push(Verdict {
        target: format!("interpreter < {TARGET_US_PER_ACTION:.0} µs per action"),
        measured: format!("{:.2} µs per action ({:.1} µs per contact)", i.us_per_action, i.us_per_contact),
        status: met(i.us_per_action < TARGET_US_PER_ACTION),
    });
    let target = format!("< {:.0} KB per active contact", TARGET_BYTES_PER_CONTACT / 1024.0);
    out.push(match m.bytes_per_contact {
        Some(b) => Verdict {
            target,
            measured: format!(
                "{} bytes ({:.1} KB) with {} held",
                thousands(b),
                b / 1024.0,
                thousands(m.active_contacts as f64)
            ),
            status: if m.active_contacts >= 1_000 {
                met(b < TARGET_BYTES_PER_CONTACT)
            } else {
                Status::NotMeasured
            },
        },
        None => Verdict { target, measured: "RSS unknown (no /proc)".into(), status: Status::NotMeasured },
    });
    out
}

fn render(r: &Report) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "== flows: voxbridge {}, {} CPU(s) ({}); {} ==",
        r.version,
        r.machine.cpus,
        r.machine.cpu_model,
        r.flows.join(" + ")
    );
    let e = &r.end_to_end;
    let _ = writeln!(
        o,
        "end to end        {:>10} contacts/s   {} contacts, {} in flight, {} threads, {:.2} s, {:.0} actions each",
        thousands(e.contacts_per_sec),
        thousands(e.contacts as f64),
        e.concurrency,
        e.threads,
        e.seconds,
        e.actions_per_contact
    );
    if e.failures > 0 {
        let _ = writeln!(
            o,
            "   {} contacts did not end queued; first: {}",
            thousands(e.failures as f64),
            e.first_failure.as_deref().unwrap_or("-")
        );
    }
    let p = &r.parse_baseline;
    let _ = writeln!(
        o,
        "parse baseline    {:>10} parses/s     both flows parsed {} times on {} threads, {:.2} s",
        thousands(p.parses_per_sec),
        thousands(p.parses as f64),
        p.threads,
        p.seconds
    );
    let i = &r.interpreter;
    let _ = writeln!(
        o,
        "interpreter       {:>10.2} µs/action   {:.1} µs per contact, {} actions over {} contacts, 1 thread",
        i.us_per_action,
        i.us_per_contact,
        thousands(i.actions as f64),
        thousands(i.contacts as f64)
    );
    let m = &r.memory;
    let _ = writeln!(
        o,
        "memory            {:>10} bytes/contact  RSS {} -> {} MB holding {} queued contacts' state",
        m.bytes_per_contact.map(thousands).unwrap_or("-".into()),
        m.rss_before_mb.map(|v| format!("{v:.1}")).unwrap_or("-".into()),
        m.rss_after_mb.map(|v| format!("{v:.1}")).unwrap_or("-".into()),
        thousands(m.active_contacts as f64)
    );
    o.push_str(&render_verdicts("flows", &r.verdicts));
    o
}
