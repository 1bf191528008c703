//! Opt-in throughput checks of group commit (ignored by default; they print rates, they do
//! not assert them, since machines differ):
//!
//! ```text
//! cargo test -p voxbridge-store --release --test it bench_ -- --ignored --nocapture --test-threads=1
//! ```
//!
//! Each simulates many concurrent HTTP requests doing one small write each: a transcript
//! utterance (plus the request's token-id claim), or a voice-call create (a few records plus
//! the claim).

use crate::conformance::{entry, id, voice_call};
use crate::harness::{on_postgres, on_sqlite};
use std::sync::Arc;
use std::time::Instant;
use voxbridge_core::{KeyPrefix, Record};
use voxbridge_store::{Store, WriteOp};

const CLIENTS: usize = 256;

async fn utterances(s: Arc<dyn Store>) {
    const PER_CLIENT: usize = 200;
    let org = id(KeyPrefix::Organization);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (s, org) = (s.clone(), org.clone());
        tasks.push(tokio::spawn(async move {
            let conv = id(KeyPrefix::Conversation);
            for i in 0..PER_CLIENT {
                assert!(s.claim_jti("iss", &format!("u-{c}-{i}"), i64::MAX, 1).await.unwrap());
                let stored =
                    s.append_entries(vec![entry(&org, &conv, &format!("m{i}"), i as i64)]).await.unwrap();
                assert_eq!(stored, [true]);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = CLIENTS * PER_CLIENT;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{}: {n} utterances (each with a jti claim) in {secs:.2}s = {:.0}/s",
        s.backend(),
        n as f64 / secs
    );
}

async fn voice_calls(s: Arc<dyn Store>) {
    const PER_CLIENT: usize = 40;
    let org = id(KeyPrefix::Organization);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (s, org) = (s.clone(), org.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_CLIENT {
                let key = format!("vck-{c}-{i}");
                assert!(s.claim_jti("iss", &key, i64::MAX, 1).await.unwrap());
                assert!(s.find_by_key(&org, "VoiceCall", &key).await.unwrap().is_empty());
                let call = voice_call(&org, &key, 1);
                let conv = Record::new(
                    id(KeyPrefix::Conversation),
                    org.clone(),
                    "Conversation",
                    Some(key.clone()),
                    1,
                );
                let routing = Record::new(
                    id(KeyPrefix::PendingServiceRouting),
                    org.clone(),
                    "PendingServiceRouting",
                    None,
                    1,
                );
                s.apply(vec![WriteOp::Insert(conv), WriteOp::Insert(call), WriteOp::Insert(routing)])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = CLIENTS * PER_CLIENT;
    let secs = start.elapsed().as_secs_f64();
    println!("{}: {n} voice-call creates in {secs:.2}s = {:.0}/s", s.backend(), n as f64 / secs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn bench_utterances_sqlite() {
    on_sqlite(utterances).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn bench_utterances_postgres() {
    on_postgres(utterances).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn bench_voice_calls_sqlite() {
    on_sqlite(voice_calls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn bench_voice_calls_postgres() {
    on_postgres(voice_calls).await;
}
