//! Property tests: random sequences of inputs over a small world (4 agents, 3 queues, 6 work
//! ids, short timeouts so timers fire often) never panic, the router's invariants hold after
//! every step, and the same inputs always give the same outputs.

use proptest::prelude::*;
use voxbridge_routing::*;

fn agent() -> impl Strategy<Value = AgentId> {
    (0..4u8).prop_map(|i| AgentId::new(format!("a{i}")))
}

fn queue() -> impl Strategy<Value = QueueId> {
    (0..4u8).prop_map(|i| QueueId::new(format!("q{i}"))) // q3 is never defined
}

fn work() -> impl Strategy<Value = WorkId> {
    (0..6u8).prop_map(|i| WorkId::new(format!("w{i}")))
}

fn skills() -> impl Strategy<Value = Vec<Skill>> {
    prop::collection::vec((prop::sample::select(vec!["en", "FR"]), 0..4u32), 0..3)
        .prop_map(|v| v.into_iter().map(|(n, l)| Skill::new(n, l)).collect())
}

fn presence() -> impl Strategy<Value = Presence> {
    prop_oneof![
        3 => Just(Presence::Available),
        1 => Just(Presence::Busy),
        1 => Just(Presence::Offline),
        1 => Just(Presence::Custom("Lunch".into())),
        1 => Just(Presence::Custom("Backoffice".into())),
        1 => Just(Presence::Custom("Missed".into())),
    ]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![4 => queue().prop_map(Target::Queue), 2 => agent().prop_map(Target::Agent), 1 => Just(Target::Skills)]
}

fn work_spec() -> impl Strategy<Value = WorkSpec> {
    (work(), target(), skills(), 0..3u32, prop::option::of(queue()), 0..3u32, prop::option::of(0..200_000u64))
        .prop_map(|(id, target, skills, priority, fallback, units, since)| WorkSpec {
            id,
            target,
            skills,
            priority,
            fallback,
            units,
            original_enqueued_at: since,
        })
}

fn hours() -> impl Strategy<Value = Option<Hours>> {
    prop::option::of((0..7u8, 0..1440u16, 0..1441u16, -600..600i32).prop_map(|(day, s, e, off)| Hours {
        utc_offset_minutes: off,
        open: vec![OpenRange { day, start_minute: s, end_minute: e }],
    }))
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        2 => (queue(), 0..3u32, prop::option::of(0..3u32), hours(), prop::option::of(queue())).prop_map(
            |(id, priority, capacity, hours, overflow)| Input::DefineQueue(QueueSpec {
                priority, capacity, hours, overflow, ..QueueSpec::new(id.0)
            })
        ),
        3 => (agent(), 0..3u32, skills(), prop::collection::vec(queue(), 0..3), presence()).prop_map(
            |(id, capacity, skills, queues, presence)| Input::AgentLogin {
                agent: AgentSpec { id, capacity, skills, queues }, presence
            }
        ),
        1 => agent().prop_map(|agent| Input::AgentLogout { agent }),
        3 => (agent(), presence()).prop_map(|(agent, presence)| Input::SetPresence { agent, presence }),
        6 => work_spec().prop_map(Input::RouteWork),
        1 => (agent(), work()).prop_map(|(agent, work)| Input::OfferAccepted { agent, work }),
        2 => (agent(), work()).prop_map(|(agent, work)| Input::OfferDeclined { agent, work }),
        1 => work().prop_map(|work| Input::ConnectFailed { work }),
        3 => work().prop_map(|work| Input::WorkEnded { work }),
        2 => work().prop_map(|work| Input::WrapUpEnded { work }),
        2 => (work(), prop::option::of(target())).prop_map(|(work, target)| Input::Reroute { work, target }),
        1 => work().prop_map(|work| Input::ClearRouting { work }),
        1 => work().prop_map(|work| Input::CallerAbandoned { work }),
        2 => (work_spec(), prop::option::of(work()), 0..60_000u64, 0..4u32, 0..60_000u64).prop_map(
            |(route, replaces, initial_delay_ms, max_attempts, retry_delay_ms)| Input::RequestCallback(
                CallbackSpec { route, replaces, initial_delay_ms, max_attempts, retry_delay_ms }
            )
        ),
        2 => (work(), prop::sample::select(vec![
            CallbackOutcome::Answered, CallbackOutcome::NoAnswer, CallbackOutcome::Voicemail
        ])).prop_map(|(work, outcome)| Input::CallbackOutcome { work, outcome }),
        1 => (0..400_000u64, prop::collection::vec(work(), 0..4))
            .prop_map(|(taken_at, alive)| Input::Reconcile { taken_at, alive }),
        4 => Just(Input::Tick),
    ]
}

fn config() -> Config {
    let mut c = Config {
        offer_timeout_ms: 10_000,
        reoffer_cooldown_ms: 5_000,
        missed_offers_limit: 2,
        wrap_up_ms: 5_000,
        overflow_after_ms: 20_000,
        direct_wait_ms: 10_000,
        max_work_ms: 60_000,
        reconcile_grace_ms: 10_000,
        ..Config::default()
    };
    c.custom_statuses.insert("Lunch".into(), false);
    c.custom_statuses.insert("Backoffice".into(), true);
    c
}

/// A step is either a raw input (often about ids in the wrong state, which must be ignored
/// safely) or an action on work in a given state, resolved against the router when it runs so
/// that offers do get accepted, calls do end and callbacks do get outcomes.
#[derive(Debug, Clone)]
enum Step {
    Raw(Input),
    Accept(usize),
    Decline(usize),
    End(usize),
    Wrap(usize),
    Outcome(usize, CallbackOutcome),
    Transfer(usize, Target),
}

fn step() -> impl Strategy<Value = Step> {
    let i = 0..8usize;
    prop_oneof![
        10 => input().prop_map(Step::Raw),
        6 => i.clone().prop_map(Step::Accept),
        2 => i.clone().prop_map(Step::Decline),
        4 => i.clone().prop_map(Step::End),
        3 => i.clone().prop_map(Step::Wrap),
        2 => (i.clone(), prop::sample::select(vec![
            CallbackOutcome::Answered, CallbackOutcome::NoAnswer, CallbackOutcome::Voicemail
        ])).prop_map(|(i, o)| Step::Outcome(i, o)),
        1 => (i, target()).prop_map(|(i, t)| Step::Transfer(i, t)),
    ]
}

fn resolve(router: &Router, step: &Step) -> Input {
    let pick = |i: usize, offered: bool, wrap: bool| {
        let matching: Vec<(WorkId, AgentId)> = router
            .work_ids()
            .filter_map(|id| match router.work(id)? {
                WorkState::Offered { agent, .. } if offered => Some((id.clone(), agent)),
                WorkState::Assigned { agent } if !offered && !wrap => Some((id.clone(), agent)),
                WorkState::WrapUp { agent, .. } if wrap => Some((id.clone(), agent)),
                _ => None,
            })
            .collect();
        (!matching.is_empty()).then(|| matching[i % matching.len()].clone())
    };
    let found = match step {
        Step::Raw(input) => return input.clone(),
        Step::Accept(i) => pick(*i, true, false).map(|(work, agent)| Input::OfferAccepted { agent, work }),
        Step::Decline(i) => pick(*i, true, false).map(|(work, agent)| Input::OfferDeclined { agent, work }),
        Step::End(i) => pick(*i, false, false).map(|(work, _)| Input::WorkEnded { work }),
        Step::Wrap(i) => pick(*i, false, true).map(|(work, _)| Input::WrapUpEnded { work }),
        Step::Outcome(i, outcome) => {
            pick(*i, false, false).map(|(work, _)| Input::CallbackOutcome { work, outcome: *outcome })
        }
        Step::Transfer(i, t) => {
            pick(*i, false, false).map(|(work, _)| Input::Reroute { work, target: Some(t.clone()) })
        }
    };
    found.unwrap_or(Input::Tick)
}

/// Time steps: mostly small, sometimes large jumps (and sometimes backwards, which the router
/// must treat as "no time passed").
fn steps() -> impl Strategy<Value = Vec<(i64, Step)>> {
    prop::collection::vec(
        (prop_oneof![4 => 0..15_000i64, 1 => 0..200_000i64, 1 => -5_000..0i64], step()),
        1..150,
    )
}

fn run(steps: &[(i64, Step)]) -> Result<Vec<Vec<Output>>, TestCaseError> {
    let mut router = Router::new(config());
    let mut now: i64 = 1_000_000;
    let mut log = Vec::new();
    // A staffed world to start from (random steps redefine and log in/out freely): q0
    // overflows to q1 and q2 back to q0; agents serve overlapping queues with various skills.
    for (q, overflow) in [("q0", Some("q1")), ("q1", None), ("q2", Some("q0"))] {
        let spec = QueueSpec { overflow: overflow.map(QueueId::from), ..QueueSpec::new(q) };
        log.push(router.handle(now as u64, Input::DefineQueue(spec)));
    }
    for (i, queues) in [["q0", "q1"], ["q1", "q2"], ["q0", "q2"], ["q2", "q2"]].iter().enumerate() {
        let agent = AgentSpec {
            capacity: 1 + (i as u32 % 2),
            skills: vec![Skill::new("en", i as u32), Skill::new("fr", 3 - i as u32)],
            queues: queues.iter().map(|q| QueueId::from(*q)).collect(),
            ..AgentSpec::new(format!("a{i}"))
        };
        log.push(router.handle(now as u64, Input::AgentLogin { agent, presence: Presence::Available }));
    }
    for (i, (dt, step)) in steps.iter().enumerate() {
        now += dt;
        let input = resolve(&router, step);
        let out = router.handle(now as u64, input.clone());
        if let Err(e) = router.check_invariants() {
            return Err(TestCaseError::fail(format!("after step {i} ({input:?}): {e}")));
        }
        log.push(out);
    }
    Ok(log)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_after_every_input(steps in steps()) {
        run(&steps)?;
    }

    #[test]
    fn same_inputs_same_outputs(steps in steps()) {
        prop_assert_eq!(run(&steps)?, run(&steps)?);
    }
}
