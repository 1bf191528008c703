//! Integration tests of the store: one conformance suite (`conformance`) run against SQLite
//! (a temp file per test) and PostgreSQL (a throwaway schema per test), plus tests of
//! what only one backend has (file durability, schemas) and opt-in throughput benchmarks.
//!
//! PostgreSQL comes from `VOXBRIDGE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). If it is unreachable the PostgreSQL tests fail;
//! set `VOXBRIDGE_SKIP_POSTGRES=1` to skip them deliberately.

mod conformance;
mod harness;
mod postgres_only;
mod sqlite_only;

/// Generates one test per conformance function for each backend, so both run the very same
/// list: `on_sqlite::NAME` and `on_postgres::NAME`.
macro_rules! conformance_suite {
    ($($test:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::harness::on_sqlite(crate::conformance::$test).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::harness::on_postgres(crate::conformance::$test).await;
                }
            )*
        }
    };
}

conformance_suite!(
    insert_get_duplicate,
    update_merges_fields,
    update_missing_or_other_org,
    delete_records,
    apply_mixed_ops,
    failing_apply_is_atomic,
    empty_writes,
    find_by_key_order_and_org_isolation,
    list_is_scoped_and_ordered,
    find_range_bounds_order_and_scope,
    find_range_follows_updates_and_timestamps,
    orgs_lists_organizations,
    append_dedupes_within_and_across_calls,
    entries_order_and_scope,
    edit_entries_replaces_text,
    claim_jti_replay_and_expiry,
    concurrent_writes_all_visible,
    concurrent_conflicts_have_one_winner,
    nul_characters,
    close_refuses_later_writes,
);
