//! The binary against PostgreSQL: the URL from a `_FILE` secret, and a second data
//! directory on the same database rebuilding `setup.json` from the store.
//!
//! PostgreSQL comes from `VOXBRIDGE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); `VOXBRIDGE_SKIP_POSTGRES=1` skips.

use serde_json::Value;
use sqlx::Connection;

use crate::{ok, run};

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn postgres_url() -> Option<String> {
    if std::env::var("VOXBRIDGE_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
        eprintln!("VOXBRIDGE_SKIP_POSTGRES=1: skipping a PostgreSQL test");
        return None;
    }
    Some(std::env::var("VOXBRIDGE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string()))
}

/// Drops the test schema when the test ends, passed or not.
struct Schema {
    url: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                let _ = sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            }
        });
    }
}

#[test]
fn setup_on_postgres_and_rebuild_from_the_store() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema { url: url.clone(), name: format!("vb_cli_{}", uuid::Uuid::new_v4().simple()) };
    let sep = if url.contains('?') { '&' } else { '?' };
    let db_url = format!("{url}{sep}schema={}", schema.name);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("db-url"), format!("{db_url}\n")).unwrap();
    let env = [("VOXBRIDGE_DATABASE_URL_FILE", "db-url")];
    let out = run(dir.path(), &["setup", "--data", "one"], &env);
    assert!(
        out.status.success(),
        "PostgreSQL at {url} is not usable (set VOXBRIDGE_SKIP_POSTGRES=1 to skip): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = run(dir.path(), &["info", "--json", "--data", "one"], &env);
    let first: Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(first["database"]["backend"], "postgres");

    // A fresh data dir on the same database finds the org instead of making another.
    let out = ok(dir.path(), &["setup", "--data", "two", "--database-url", &db_url]);
    assert!(out.contains("already has org"), "{out}");
    let second: Value = serde_json::from_str(&ok(dir.path(), &["info", "--json", "--data", "two"])).unwrap();
    assert_eq!(second["org"], first["org"]);
    assert_eq!(second["queues"], first["queues"]);
    assert_eq!(second["agents"], first["agents"]);
    assert_eq!(second["phone_channels"], first["phone_channels"]);
    // Its keys stayed in the first data dir.
    assert!(second["call_centers"][0]["private_key_file"].is_null());
    assert!(second["token_command"].is_null());
}
