//! One test per scenario file in `scenarios/`: the script's log is an insta snapshot.

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let log = crate::script::run_file(stringify!($name));
                insta::assert_snapshot!(stringify!($name), log);
            }
        )*
    };
}

scenarios!(
    offer_accept,
    offer_timeout_next_agent,
    decline,
    lost_hangup_reconciled,
    missed_offers_presence,
    missed_rejected_failed,
    skills_levels,
    direct_agent_fallback,
    priorities_and_callback_place,
    callback_attempts,
    reroute,
    clear_routing,
    overflow_unserved_queue,
    queue_metrics,
    capacity_and_queue_priority,
);
