//! A small script language for routing scenarios: timed inputs in, a log of every input and the
//! outputs it produced out (snapshotted with insta). Invariants are checked after every step.
//!
//! ```text
//! # comment
//! config offer_timeout=20s missed_limit=2 wrap_up=30s statuses=Lunch:no,Backoffice:yes
//! show metrics                       # include QueueMetrics outputs in the log (off by default)
//! @0 queue support priority=1 overflow=general capacity=5
//! @0 login ada queues=support skills=english:3 cap=1 presence=Available
//! @1s route c1 queue=support need=english:2 priority=1 fallback=general since=500
//! @1s route c2 agent=ada fallback=support      (or: skills need=…)
//! @2s accept ada c1 | decline ada c1 | connect-failed c1 | ended c1 | wrapped c1
//! @2s reroute c1 queue=billing | clear c1 | abandon c1 | tick | logout ada | presence ada Busy
//! @2s callback cb1 queue=support replaces=c1 delay=60s attempts=3 retry=30s
//! @2s outcome cb1 answered|no-answer|voicemail
//! @2s reconcile taken=1500 alive=c1,c2
//! @2s metrics support | work c1 | agent ada        (queries: print, change nothing)
//! ```
//! Times take `ms` (default), `s`, `m` or `h`.

use std::collections::BTreeMap;
use std::fmt::Write;

use voxbridge_routing::*;

pub fn run_file(name: &str) -> String {
    let path = format!("{}/tests/it/scenarios/{name}.scn", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    run(&text)
}

pub fn run(script: &str) -> String {
    let mut config = Config::default();
    let mut router: Option<Router> = None;
    let mut show_metrics = false;
    let mut log = String::new();
    for (n, raw) in script.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let fail = |msg: String| -> ! { panic!("line {}: {msg}: `{raw}`", n + 1) };
        let words: Vec<&str> = line.split_whitespace().collect();
        if words[0] == "config" {
            config = parse_config(&words[1..]).unwrap_or_else(|e| fail(e));
            continue;
        }
        if line == "show metrics" {
            show_metrics = true;
            continue;
        }
        let Some(at) = words[0].strip_prefix('@') else { fail("expected @TIME".into()) };
        let at = duration(at).unwrap_or_else(|e| fail(e));
        let router = router.get_or_insert_with(|| Router::new(config.clone()));
        let cmd = &words[1..];
        writeln!(log, "@{at} {}", cmd.join(" ")).unwrap();
        if let Some(text) = query(router, at, cmd) {
            writeln!(log, "  = {text}").unwrap();
            continue;
        }
        let input = parse_input(cmd).unwrap_or_else(|e| fail(e));
        for out in router.handle(at, input) {
            if show_metrics || !matches!(out, Output::QueueMetrics(_)) {
                writeln!(log, "  {out}").unwrap();
            }
        }
        if let Err(e) = router.check_invariants() {
            fail(format!("invariant broken: {e}\n{log}"));
        }
    }
    log
}

fn query(router: &Router, at: u64, cmd: &[&str]) -> Option<String> {
    let [what, id] = cmd else { return None };
    Some(match *what {
        "metrics" => match router.metrics(&QueueId::new(*id)) {
            Some(m) => {
                format!("{} (oldest age {}ms)", Output::QueueMetrics(m.clone()), m.oldest_contact_age_ms(at))
            }
            None => "unknown queue".into(),
        },
        "work" => format!("{:?}", router.work(&WorkId::new(*id))),
        "agent" => format!("{:?}", router.agent(&AgentId::new(*id))),
        _ => return None,
    })
}

fn duration(s: &str) -> Result<u64, String> {
    let bad = || format!("bad time `{s}`");
    let (mut total, mut num) = (0u64, String::new());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let mul = match c {
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            _ => return Err(bad()),
        };
        total += num.parse::<u64>().map_err(|_| bad())? * mul;
        num.clear();
    }
    if !num.is_empty() {
        total += num.parse::<u64>().map_err(|_| bad())?;
    }
    Ok(total)
}

/// `key=value` arguments and bare words.
struct Args<'a> {
    kv: BTreeMap<&'a str, &'a str>,
    words: Vec<&'a str>,
}

impl<'a> Args<'a> {
    fn new(words: &[&'a str]) -> Self {
        let mut kv = BTreeMap::new();
        let mut bare = Vec::new();
        for w in words {
            match w.split_once('=') {
                Some((k, v)) => {
                    kv.insert(k, v);
                }
                None => bare.push(*w),
            }
        }
        Args { kv, words: bare }
    }

    fn word(&self, i: usize) -> Result<&'a str, String> {
        self.words.get(i).copied().ok_or_else(|| format!("missing argument {}", i + 1))
    }

    fn get(&self, k: &str) -> Option<&'a str> {
        self.kv.get(k).copied()
    }

    fn time(&self, k: &str) -> Result<Option<u64>, String> {
        self.get(k).map(duration).transpose()
    }

    fn num(&self, k: &str) -> Result<Option<u32>, String> {
        self.get(k).map(|v| v.parse().map_err(|_| format!("bad number `{v}`"))).transpose()
    }

    fn list(&self, k: &str) -> Vec<&'a str> {
        self.get(k).map_or(Vec::new(), |v| v.split(',').filter(|s| !s.is_empty()).collect())
    }

    fn skills(&self, k: &str) -> Result<Vec<Skill>, String> {
        self.list(k)
            .into_iter()
            .map(|s| {
                let (name, level) = s.split_once(':').unwrap_or((s, "1"));
                Ok(Skill::new(name, level.parse().map_err(|_| format!("bad level `{s}`"))?))
            })
            .collect()
    }

    fn target(&self) -> Option<Target> {
        if let Some(q) = self.get("queue") {
            Some(Target::Queue(q.into()))
        } else if let Some(a) = self.get("agent") {
            Some(Target::Agent(a.into()))
        } else if self.words.contains(&"skills") {
            Some(Target::Skills)
        } else {
            None
        }
    }

    fn work_spec(&self, id: &str) -> Result<WorkSpec, String> {
        let target = self.target().ok_or("route needs queue=, agent= or skills")?;
        Ok(WorkSpec {
            skills: self.skills("need")?,
            priority: self.num("priority")?.unwrap_or(1),
            fallback: self.get("fallback").map(QueueId::from),
            units: self.num("units")?.unwrap_or(1),
            original_enqueued_at: self.time("since")?,
            ..WorkSpec::new(id, target)
        })
    }
}

fn presence(s: &str) -> Presence {
    match s {
        "Available" => Presence::Available,
        "Busy" => Presence::Busy,
        "Offline" => Presence::Offline,
        other => Presence::Custom(other.to_string()),
    }
}

fn parse_config(words: &[&str]) -> Result<Config, String> {
    let a = Args::new(words);
    let mut c = Config::default();
    let set = |v: &mut u64, k: &str| -> Result<(), String> {
        if let Some(t) = a.time(k)? {
            *v = t;
        }
        Ok(())
    };
    set(&mut c.offer_timeout_ms, "offer_timeout")?;
    set(&mut c.reoffer_cooldown_ms, "cooldown")?;
    set(&mut c.wrap_up_ms, "wrap_up")?;
    set(&mut c.overflow_after_ms, "overflow_after")?;
    set(&mut c.direct_wait_ms, "direct_wait")?;
    set(&mut c.max_work_ms, "max_work")?;
    set(&mut c.reconcile_grace_ms, "grace")?;
    if let Some(n) = a.num("missed_limit")? {
        c.missed_offers_limit = n;
    }
    if let Some(n) = a.num("skills_priority")? {
        c.skills_priority = n;
    }
    for s in a.list("statuses") {
        let (name, routable) = s.split_once(':').ok_or("statuses=Name:yes|no")?;
        c.custom_statuses.insert(name.into(), routable == "yes");
    }
    Ok(c)
}

fn parse_input(cmd: &[&str]) -> Result<Input, String> {
    let (&verb, rest) = cmd.split_first().ok_or("empty command")?;
    let a = Args::new(rest);
    let work = || a.word(0).map(WorkId::from);
    Ok(match verb {
        "queue" => Input::DefineQueue(QueueSpec {
            priority: a.num("priority")?.unwrap_or(1),
            capacity: a.num("capacity")?,
            overflow: a.get("overflow").map(QueueId::from),
            ..QueueSpec::new(a.word(0)?)
        }),
        "login" => Input::AgentLogin {
            agent: AgentSpec {
                capacity: a.num("cap")?.unwrap_or(1),
                skills: a.skills("skills")?,
                queues: a.list("queues").into_iter().map(QueueId::from).collect(),
                ..AgentSpec::new(a.word(0)?)
            },
            presence: presence(a.get("presence").unwrap_or("Available")),
        },
        "logout" => Input::AgentLogout { agent: a.word(0)?.into() },
        "presence" => Input::SetPresence { agent: a.word(0)?.into(), presence: presence(a.word(1)?) },
        "route" => Input::RouteWork(a.work_spec(a.word(0)?)?),
        "accept" => Input::OfferAccepted { agent: a.word(0)?.into(), work: a.word(1)?.into() },
        "decline" => Input::OfferDeclined { agent: a.word(0)?.into(), work: a.word(1)?.into() },
        "connect-failed" => Input::ConnectFailed { work: work()? },
        "ended" => Input::WorkEnded { work: work()? },
        "wrapped" => Input::WrapUpEnded { work: work()? },
        "reroute" => Input::Reroute { work: work()?, target: a.target() },
        "clear" => Input::ClearRouting { work: work()? },
        "abandon" => Input::CallerAbandoned { work: work()? },
        "tick" => Input::Tick,
        "callback" => Input::RequestCallback(CallbackSpec {
            route: a.work_spec(a.word(0)?)?,
            replaces: a.get("replaces").map(WorkId::from),
            initial_delay_ms: a.time("delay")?.unwrap_or(0),
            max_attempts: a.num("attempts")?.unwrap_or(1),
            retry_delay_ms: a.time("retry")?.unwrap_or(0),
        }),
        "outcome" => Input::CallbackOutcome {
            work: work()?,
            outcome: match a.word(1)? {
                "answered" => CallbackOutcome::Answered,
                "no-answer" => CallbackOutcome::NoAnswer,
                "voicemail" => CallbackOutcome::Voicemail,
                other => return Err(format!("unknown outcome `{other}`")),
            },
        },
        "reconcile" => Input::Reconcile {
            taken_at: a.time("taken")?.unwrap_or(u64::MAX),
            alive: a.list("alive").into_iter().map(WorkId::from).collect(),
        },
        other => return Err(format!("unknown command `{other}`")),
    })
}
