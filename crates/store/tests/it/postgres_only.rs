//! What only the PostgreSQL backend has: schemas, and a URL with `?schema=`.

use crate::conformance::{id, voice_call};
use crate::harness::{connect_pg, drop_schema, postgres_url, random_schema, unreachable};
use voxbridge_core::KeyPrefix;
use voxbridge_store::Store;

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
