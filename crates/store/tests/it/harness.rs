//! Runs a test body against a fresh store and cleans up afterwards, even if the body
//! panics (the panic is re-raised after cleanup).

use rand::Rng;
use sqlx::Connection;
use std::future::Future;
use std::sync::Arc;
use voxbridge_store::{PgStore, SqliteStore, Store};

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Runs `body` against a SQLite store in a temporary directory.
pub async fn on_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("voxbridge.db")).await.expect("open the SQLite store"));
    let outcome = tokio::spawn(body(store.clone())).await;
    store.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// `None` when PostgreSQL tests are deliberately skipped.
pub fn postgres_url() -> Option<String> {
    if std::env::var("VOXBRIDGE_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
        eprintln!("VOXBRIDGE_SKIP_POSTGRES=1: skipping a PostgreSQL test");
        return None;
    }
    Some(std::env::var("VOXBRIDGE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string()))
}

/// A schema name no other test uses.
pub fn random_schema() -> String {
    let mut rng = rand::thread_rng();
    let suffix: String = (0..12).map(|_| (b'a' + rng.gen_range(0..26)) as char).collect();
    format!("vb_test_{suffix}")
}

pub fn unreachable(url: &str, err: impl std::fmt::Display) -> ! {
    panic!(
        "PostgreSQL at {url} is not usable: {err}. Start it, point VOXBRIDGE_TEST_POSTGRES_URL \
         at a database that is, or set VOXBRIDGE_SKIP_POSTGRES=1 to skip the PostgreSQL tests"
    )
}

pub async fn connect_pg(url: &str, schema: &str) -> PgStore {
    PgStore::connect(url, Some(schema)).await.unwrap_or_else(|e| unreachable(url, e))
}

pub async fn drop_schema(url: &str, schema: &str) {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| unreachable(url, e));
    sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&mut conn)
        .await
        .expect("drop the test schema");
    let _ = conn.close().await;
}

/// Runs `body` against a PostgreSQL store in a fresh schema, dropped afterwards.
pub async fn on_postgres<F, Fut>(body: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(url) = postgres_url() else { return };
    let schema = random_schema();
    let store: Arc<dyn Store> = Arc::new(connect_pg(&url, &schema).await);
    let outcome = tokio::spawn(body(store.clone())).await;
    store.close().await;
    drop_schema(&url, &schema).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
