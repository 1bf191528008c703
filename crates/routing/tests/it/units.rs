//! Checks of the query API and of behaviour easier to state in code than in a script.

use voxbridge_routing::*;

fn world(agents: usize, queues: usize) -> Router {
    let mut r = Router::new(Config::default());
    for q in 0..queues {
        r.handle(0, Input::DefineQueue(QueueSpec::new(format!("q{q}"))));
    }
    for a in 0..agents {
        // Each agent serves three queues.
        let queues = (0..3).map(|k| QueueId::new(format!("q{}", (a + k * 7) % queues))).collect();
        let agent = AgentSpec {
            queues,
            skills: vec![Skill::new("en", (a % 5) as u32)],
            ..AgentSpec::new(format!("a{a}"))
        };
        r.handle(0, Input::AgentLogin { agent, presence: Presence::Available });
    }
    r
}

#[test]
fn next_deadline_tells_the_host_when_to_tick() {
    let mut r = world(1, 1);
    assert_eq!(r.next_deadline(), None);
    r.handle(1_000, Input::RouteWork(WorkSpec::new("c1", Target::Queue("q0".into()))));
    assert_eq!(r.next_deadline(), Some(21_000));
    assert_eq!(r.work(&"c1".into()), Some(WorkState::Offered { agent: "a0".into(), expires_at: 21_000 }));
}

#[test]
fn time_going_backwards_counts_as_no_time() {
    let mut r = world(1, 1);
    r.handle(50_000, Input::RouteWork(WorkSpec::new("c1", Target::Queue("q0".into()))));
    let out = r.handle(10, Input::Tick);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(r.now(), 50_000);
    r.check_invariants().unwrap();
}

#[test]
fn metrics_of_unknown_queue_is_none() {
    let r = world(2, 1);
    assert_eq!(r.metrics(&"nope".into()), None);
    let m = r.metrics(&"q0".into()).unwrap();
    assert_eq!((m.agents_online, m.agents_staffed, m.agents_available, m.contacts_in_queue), (2, 2, 2, 0));
}

#[test]
fn closed_queue_without_fallback_keeps_the_call_and_says_so() {
    let mut r = world(1, 1);
    // Open Mondays 09:00-17:00 UTC; 1970-01-01 (t=0) was a Thursday.
    let hours = Hours {
        utc_offset_minutes: 0,
        open: vec![OpenRange { day: 1, start_minute: 540, end_minute: 1020 }],
    };
    r.handle(0, Input::DefineQueue(QueueSpec { hours: Some(hours), ..QueueSpec::new("q0") }));
    let out = r.handle(1_000, Input::RouteWork(WorkSpec::new("c1", Target::Queue("q0".into()))));
    let text: Vec<String> = out.iter().map(ToString::to_string).collect();
    assert!(text.contains(&"no-agents-available c1 at queue:q0 Closed".to_string()), "{text:?}");
}

/// The scale: 1,000 agents and 100 queues. Every call is decided within the same
/// `handle`; the worst decision time is printed (debug build, so only indicative).
#[test]
fn thousand_agents_hundred_queues() {
    let mut r = world(1_000, 100);
    let mut worst = std::time::Duration::ZERO;
    let mut offered = 0;
    for c in 0..3_000u64 {
        let spec = WorkSpec {
            skills: vec![Skill::new("en", (c % 3) as u32)],
            ..WorkSpec::new(format!("c{c}"), Target::Queue(QueueId::new(format!("q{}", c % 100))))
        };
        let start = std::time::Instant::now();
        let out = r.handle(1_000 + c, Input::RouteWork(spec));
        worst = worst.max(start.elapsed());
        offered += out.iter().filter(|o| matches!(o, Output::Offer { .. })).count();
    }
    // Everyone is busy (offers ringing); the rest wait. Accept them all and free agents.
    assert_eq!(offered, 1_000);
    r.check_invariants().unwrap();
    eprintln!("worst routing decision with 1,000 agents / 100 queues (debug build): {worst:?}");
}
