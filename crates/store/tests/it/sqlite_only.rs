//! What only the SQLite backend has: a file that outlives the store and the process.

use crate::conformance::{entry, id, voice_call};
use std::path::Path;
use std::process::Command;
use voxbridge_core::KeyPrefix;
use voxbridge_store::{SqliteStore, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/voxbridge.db");
    let org = id(KeyPrefix::Organization);
    let conv = id(KeyPrefix::Conversation);
    let call = voice_call(&org, "vck-1", 1);
    {
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.path(), path);
        store.insert(call.clone()).await.unwrap();
        store.append_entries(vec![entry(&org, &conv, "m1", 1)]).await.unwrap();
        assert!(store.claim_jti("iss", "j", 10_000, 1).await.unwrap());
        // Dropped without close: acknowledged writes are already committed.
    }
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.get(&org, &call.id).await.unwrap(), Some(call.clone()));
    assert_eq!(store.entries(&org, &conv).await.unwrap().len(), 1);
    assert!(!store.claim_jti("iss", "j", 10_000, 2).await.unwrap(), "claims survive too");
    store.close().await;

    // A third open (after a clean close) finds the schema current and migrates nothing.
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.list(&org, "VoiceCall").await.unwrap(), [call]);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_by_url() {
    let dir = tempfile::tempdir().unwrap();
    let org = id(KeyPrefix::Organization);
    let call = voice_call(&org, "vck-1", 1);
    let path = dir.path().join("a.db");
    let by_scheme = voxbridge_store::open(&format!("sqlite://{}", path.display())).await.unwrap();
    assert_eq!(by_scheme.backend(), "sqlite");
    by_scheme.insert(call.clone()).await.unwrap();
    by_scheme.close().await;

    for url in [format!("sqlite:{}", path.display()), path.display().to_string()] {
        let store = voxbridge_store::open(&url).await.unwrap();
        assert_eq!(store.get(&org, &call.id).await.unwrap().as_ref(), Some(&call), "{url}");
        store.close().await;
    }
    assert!(voxbridge_store::open("sqlite::memory:").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    SqliteStore::open(&path).await.unwrap().close().await;
    {
        use sqlx::Connection;
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        sqlx::raw_sql(
            "INSERT INTO vb_schema_migrations (version, name, applied_ms) VALUES (999, 'future', 0)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let err = SqliteStore::open(&path).await.err().expect("a newer schema must be refused");
    assert!(err.to_string().contains("version 999"), "{err}");
}

const CRASH_DB: &str = "VOXBRIDGE_STORE_CRASH_DB";
const CRASH_WRITES: usize = 300;

/// Child half of `survives_process_abort`: writes, prints each acknowledged id, then aborts
/// the process mid-stream without closing anything. Does nothing unless the parent runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Ok(path) = std::env::var(CRASH_DB) else { return };
    let store = std::sync::Arc::new(SqliteStore::open(&path).await.unwrap());
    let org = voxbridge_core::SfId::parse("00DVX0000000001").unwrap();
    let conv = voxbridge_core::SfId::parse("0dwVX0000000001").unwrap();
    let mut tasks = Vec::new();
    for t in 0..CRASH_WRITES {
        let store = store.clone();
        let (org, conv) = (org.clone(), conv.clone());
        tasks.push(tokio::spawn(async move {
            let call = voice_call(&org, &format!("vck-{t}"), 1);
            store.insert(call.clone()).await.unwrap();
            store.append_entries(vec![entry(&org, &conv, &format!("m{t}"), 1)]).await.unwrap();
            // Acknowledged: both writes returned Ok.
            println!("ACK {} m{t}", call.id);
        }));
    }
    // Abort as soon as half are acknowledged, with the rest in flight.
    for task in tasks.into_iter().take(CRASH_WRITES / 2) {
        task.await.unwrap();
    }
    std::process::abort();
}

/// Everything acknowledged before the process died is in the file afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_process_abort() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "sqlite_only::crash_child", "--nocapture", "--test-threads=1"])
        .env(CRASH_DB, &path)
        .output()
        .expect("run the child process");
    assert!(!out.status.success(), "the child must die by abort");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let acks: Vec<(&str, &str)> =
        stdout.lines().filter_map(|l| l.strip_prefix("ACK ")).filter_map(|l| l.split_once(' ')).collect();
    assert!(acks.len() >= CRASH_WRITES / 2, "child acknowledged only {} writes: {stdout}", acks.len());

    check_acks(&path, &acks).await;
}

async fn check_acks(path: &Path, acks: &[(&str, &str)]) {
    let store = SqliteStore::open(path).await.unwrap();
    let org = voxbridge_core::SfId::parse("00DVX0000000001").unwrap();
    let conv = voxbridge_core::SfId::parse("0dwVX0000000001").unwrap();
    let entries = store.entries(&org, &conv).await.unwrap();
    for (call_id, message) in acks {
        let call_id = voxbridge_core::SfId::parse(call_id).unwrap();
        assert!(store.get(&org, &call_id).await.unwrap().is_some(), "acknowledged {call_id} lost");
        assert!(entries.iter().any(|e| e.message_id == *message), "acknowledged entry {message} lost");
    }
    store.close().await;
}
