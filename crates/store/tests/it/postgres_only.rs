//! What only the PostgreSQL backend has: schemas, and a URL with `?schema=`.

use crate::conformance::{entry, id, voice_call};
use crate::harness::{connect_pg, drop_schema, postgres_url, random_schema, unreachable};
use voxbridge_core::KeyPrefix;
use voxbridge_store::{Store, StoreError};

/// Two stores in two schemas of one database do not see each other; reconnecting to a
/// schema finds its data and migrates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_isolate_and_persist() {
    let Some(url) = postgres_url() else { return };
    let (first, second) = (random_schema(), random_schema());
    let a = connect_pg(&url, &first).await;
    let b = connect_pg(&url, &second).await;
    assert_eq!(a.schema(), Some(first.as_str()));
    let org = id(KeyPrefix::Organization);
    let call = voice_call(&org, "vck-1", 1);
    a.insert(call.clone()).await.unwrap();
    assert_eq!(b.get(&org, &call.id).await.unwrap(), None);
    b.insert(call.clone()).await.unwrap(); // no conflict across schemas
    a.close().await;
    b.close().await;

    let again = connect_pg(&url, &first).await;
    assert_eq!(again.get(&org, &call.id).await.unwrap(), Some(call));
    again.close().await;
    drop_schema(&url, &first).await;
    drop_schema(&url, &second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_by_url_with_schema() {
    let Some(url) = postgres_url() else { return };
    let schema = random_schema();
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = voxbridge_store::open(&format!("{url}{sep}schema={schema}"))
        .await
        .unwrap_or_else(|e| unreachable(&url, e));
    assert_eq!(store.backend(), "postgres");
    let org = id(KeyPrefix::Organization);
    store.insert(voice_call(&org, "k", 1)).await.unwrap();
    store.close().await;

    // The rows went to that schema.
    let check = connect_pg(&url, &schema).await;
    assert_eq!(check.list(&org, "VoiceCall").await.unwrap().len(), 1);
    check.close().await;
    drop_schema(&url, &schema).await;

    assert!(voxbridge_store::open(&format!("{url}{sep}schema=Bad-Name")).await.is_err());
}

/// A connection failure names no password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_hide_passwords() {
    let err = voxbridge_store::open("postgres://vb:hunter2@127.0.0.1:1/db")
        .await
        .err()
        .expect("nothing listens on port 1");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

/// A write the database rejects (here: a message id too long for PostgreSQL's unique
/// index) fails alone: the writers batched with it still succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_write_fails_alone() {
    crate::harness::on_postgres(|s| async move {
        let org = id(KeyPrefix::Organization);
        let conv = id(KeyPrefix::Conversation);
        let mut tasks = Vec::new();
        for t in 0..100 {
            let (s, org, conv) = (s.clone(), org.clone(), conv.clone());
            tasks.push(tokio::spawn(async move {
                let message_id = if t == 50 { incompressible(10_000) } else { format!("m{t}") };
                let e = entry(&org, &conv, &message_id, t);
                let call = voice_call(&org, &format!("vck-{t}"), 1);
                let (appended, inserted) = tokio::join!(s.append_entries(vec![e]), s.insert(call));
                inserted.unwrap();
                (t, appended)
            }));
        }
        for task in tasks {
            let (t, appended) = task.await.unwrap();
            match appended {
                Ok(stored) => assert!(t != 50 && stored == [true], "task {t}: {stored:?}"),
                Err(e) => assert!(t == 50 && matches!(e, StoreError::Database(_)), "task {t}: {e}"),
            }
        }
        assert_eq!(s.entries(&org, &conv).await.unwrap().len(), 99);
        assert_eq!(s.list(&org, "VoiceCall").await.unwrap().len(), 100);
    })
    .await;
}

/// Random text that does not compress below PostgreSQL's index-entry limit.
fn incompressible(len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..len).map(|_| rng.gen_range(b'!'..=b'~') as char).collect()
}
