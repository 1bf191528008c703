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
        5 => (agent(), work()).prop_map(|(agent, work)| Input::OfferAccepted { agent, work }),
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

/// Time steps: mostly small, sometimes large jumps (and sometimes backwards, which the router
/// must treat as "no time passed").
fn steps() -> impl Strategy<Value = Vec<(i64, Input)>> {
    prop::collection::vec(
        (prop_oneof![4 => 0..15_000i64, 1 => 0..200_000i64, 1 => -5_000..0i64], input()),
        1..120,
    )
}

fn run(steps: &[(i64, Input)]) -> Result<Vec<Vec<Output>>, TestCaseError> {
    let mut router = Router::new(config());
    let mut now: i64 = 1_000_000;
    let mut log = Vec::new();
    for (i, (dt, input)) in steps.iter().enumerate() {
        now += dt;
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
