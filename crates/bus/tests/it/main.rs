//! Integration tests of the bus: one conformance suite (`conformance`) run against the
//! embedded backend (a temp SQLite file per test) and NATS JetStream (a random stream-name
//! prefix per test, its streams deleted afterwards).
//!
//! NATS comes from `VOXBRIDGE_TEST_NATS_URL` (default `nats://127.0.0.1:4222`). If it is
//! unreachable the NATS tests fail; set `VOXBRIDGE_SKIP_NATS=1` to skip them deliberately.

mod conformance;
mod harness;

/// Generates one test per conformance function for each backend, so both run the very same
/// list: `on_embedded::NAME` and `on_nats::NAME`.
macro_rules! conformance_suite {
    ($($test:ident),* $(,)?) => {
        mod on_embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::harness::on_embedded(crate::conformance::$test).await;
                }
            )*
        }
        mod on_nats {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::harness::on_nats(crate::conformance::$test).await;
                }
            )*
        }
    };
}

conformance_suite!(
    put_read_order_and_sequence_numbers,
    streams_create_list_describe_delete,
    starting_positions,
    batch_size,
    batching_window_waits_for_more,
    full_batch_does_not_wait_for_window,
    at_least_once_retries_until_success,
    bisect_isolates_poison_record,
    without_bisect_whole_batch_is_dead_lettered,
    restart_resumes_from_committed_offset,
    consumer_loop_resumes_after_restart,
    two_groups_each_see_every_record,
    concurrent_puts,
    trim_keeps_sequence_numbers,
    invalid_input_is_refused,
);
