//! The conformance suite every bus backend passes. Each test gets a fresh bus.

use crate::harness::Ctx;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use voxbridge_bus::{
    run_consumer, Bus, BusError, BusRecord, ConsumerOptions, HandlerError, PutRecord, SequenceNumber,
    StartingPosition,
};

/// Generous bound for anything that should happen promptly; only reached on failure.
const PATIENCE: Duration = Duration::from_secs(30);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Waits until the wall clock has passed `ms`, so the next record's arrival time differs.
/// At most a millisecond or two.
async fn pass_ms(ms: i64) {
    while now_ms() <= ms {
        tokio::task::yield_now().await;
    }
}

async fn put_n(bus: &dyn Bus, stream: &str, prefix: &str, n: usize) -> Vec<SequenceNumber> {
    let records = (0..n).map(|i| PutRecord::new(format!("pk-{i}"), format!("{prefix}{i}"))).collect();
    bus.put_batch(stream, records).await.expect("put")
}

fn texts(records: &[BusRecord]) -> Vec<String> {
    records.iter().map(|r| String::from_utf8_lossy(&r.data).into_owned()).collect()
}

/// A running consumer loop whose handler reports every successful batch.
struct Running {
    batches: mpsc::UnboundedReceiver<Vec<BusRecord>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), BusError>>,
}

impl Running {
    /// `fail(batch)` says whether the handler fails on this call.
    fn start(
        bus: Arc<dyn Bus>,
        options: ConsumerOptions,
        fail: impl Fn(&[BusRecord]) -> bool + Send + Sync + 'static,
    ) -> Running {
        let (tx, batches) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let fail = Arc::new(fail);
        let handler = move |batch: Vec<BusRecord>| {
            let tx = tx.clone();
            let fail = fail.clone();
            async move {
                if fail(&batch) {
                    return Err(HandlerError::new("handler failed"));
                }
                let _ = tx.send(batch);
                Ok(())
            }
        };
        let task = tokio::spawn(run_consumer(bus, options, handler, async move {
            let _ = stopped.await;
        }));
        Running { batches, stop: Some(stop), task }
    }

    async fn next_batch(&mut self) -> Vec<BusRecord> {
        tokio::time::timeout(PATIENCE, self.batches.recv()).await.expect("a batch in time").expect("a batch")
    }

    /// Batches until `n` records arrived in all.
    async fn records(&mut self, n: usize) -> Vec<BusRecord> {
        let mut out = Vec::new();
        while out.len() < n {
            out.extend(self.next_batch().await);
        }
        out
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("consumer stops")
            .expect("join")
            .expect("consumer");
    }
}

fn options(stream: &str, group: &str) -> ConsumerOptions {
    let mut o = ConsumerOptions::new(stream, group);
    o.starting_position = StartingPosition::TrimHorizon;
    o.retry_backoff = Duration::from_millis(1);
    o.poll_wait = Duration::from_millis(200);
    o
}

pub async fn put_read_order_and_sequence_numbers(ctx: Ctx) {
    let bus = ctx.bus;
    assert!(bus.create_stream("ctr").await.expect("create"));
    let mut seqs = Vec::new();
    for i in 0..5 {
        seqs.push(bus.put("ctr", &format!("contact-{i}"), format!("r{i}").into_bytes()).await.expect("put"));
    }
    let batch = (5..10).map(|i| PutRecord::new(format!("contact-{i}"), format!("r{i}"))).collect();
    seqs.extend(bus.put_batch("ctr", batch).await.expect("put batch"));
    assert_eq!(seqs.len(), 10);
    for pair in seqs.windows(2) {
        assert!(pair[0] < pair[1], "sequence numbers increase: {pair:?}");
        let (a, b) = (pair[0].to_string(), pair[1].to_string());
        assert!(a.len() == 20 && b.len() == 20 && a < b, "string forms sort too: {a} {b}");
    }

    let all = bus.read("ctr", StartingPosition::TrimHorizon, 100).await.expect("read");
    assert_eq!(texts(&all), (0..10).map(|i| format!("r{i}")).collect::<Vec<_>>());
    assert_eq!(all.iter().map(|r| r.sequence_number).collect::<Vec<_>>(), seqs);
    assert_eq!(all[3].partition_key, "contact-3");
    assert!(all
        .windows(2)
        .all(|w| w[0].approximate_arrival_timestamp_ms <= w[1].approximate_arrival_timestamp_ms));
    let now = now_ms();
    assert!(all.iter().all(|r| (now - r.approximate_arrival_timestamp_ms).abs() < 60_000));

    assert_eq!(
        texts(&bus.read("ctr", StartingPosition::TrimHorizon, 3).await.expect("read")),
        ["r0", "r1", "r2"]
    );
    let after = bus.read("ctr", StartingPosition::AfterSequence(seqs[6]), 100).await.expect("read after");
    assert_eq!(texts(&after), ["r7", "r8", "r9"]);
    assert!(bus.read("ctr", StartingPosition::AfterSequence(seqs[9]), 100).await.expect("read").is_empty());
    assert!(bus.read("ctr", StartingPosition::TrimHorizon, 0).await.expect("read").is_empty());
    bus.close().await;
}

pub async fn streams_create_list_describe_delete(ctx: Ctx) {
    let bus = ctx.bus;
    assert!(bus.list_streams().await.expect("list").is_empty());
    assert!(bus.create_stream("contact.events").await.expect("create"));
    assert!(bus.create_stream("ctr_stream").await.expect("create"));
    assert!(!bus.create_stream("ctr_stream").await.expect("create again"), "second create says it existed");
    assert_eq!(bus.list_streams().await.expect("list"), ["contact.events", "ctr_stream"]);

    let empty = bus.describe_stream("ctr_stream").await.expect("describe");
    assert_eq!(
        (empty.name.as_str(), empty.record_count, empty.first_sequence, empty.last_sequence),
        ("ctr_stream", 0, None, None)
    );
    let seqs = put_n(bus.as_ref(), "ctr_stream", "x", 3).await;
    let info = bus.describe_stream("ctr_stream").await.expect("describe");
    assert_eq!(
        (info.record_count, info.first_sequence, info.last_sequence),
        (3, Some(seqs[0]), Some(seqs[2]))
    );
    assert_eq!(bus.describe_stream("contact.events").await.expect("describe").record_count, 0);

    assert!(matches!(bus.describe_stream("nope").await, Err(BusError::StreamNotFound(_))));
    assert!(matches!(bus.put("nope", "k", b"x".to_vec()).await, Err(BusError::StreamNotFound(_))));
    assert!(matches!(
        bus.read("nope", StartingPosition::TrimHorizon, 1).await,
        Err(BusError::StreamNotFound(_))
    ));
    assert!(matches!(bus.trim("nope", 0).await, Err(BusError::StreamNotFound(_))));
    assert!(bus.consumer("nope", "g", StartingPosition::TrimHorizon).await.is_err());

    assert!(bus.delete_stream("ctr_stream").await.expect("delete"));
    assert!(!bus.delete_stream("ctr_stream").await.expect("delete again"));
    assert_eq!(bus.list_streams().await.expect("list"), ["contact.events"]);
    // A stream created again under the same name starts empty.
    assert!(bus.create_stream("ctr_stream").await.expect("create"));
    assert_eq!(bus.describe_stream("ctr_stream").await.expect("describe").record_count, 0);
    bus.close().await;
}

pub async fn starting_positions(ctx: Ctx) {
    let bus = ctx.bus;
    bus.create_stream("s").await.expect("create");
    put_n(bus.as_ref(), "s", "old", 3).await;
    let mut latest = bus.consumer("s", "latest", StartingPosition::Latest).await.expect("latest group");
    let mut horizon =
        bus.consumer("s", "horizon", StartingPosition::TrimHorizon).await.expect("horizon group");

    let old = bus.read("s", StartingPosition::TrimHorizon, 10).await.expect("read");
    pass_ms(old.iter().map(|r| r.approximate_arrival_timestamp_ms).max().unwrap_or(0)).await;
    let mark = now_ms();
    put_n(bus.as_ref(), "s", "new", 2).await;

    assert!(bus.read("s", StartingPosition::Latest, 10).await.expect("read latest").is_empty());
    let at = bus.read("s", StartingPosition::AtTimestamp(mark), 10).await.expect("read at");
    assert_eq!(texts(&at), ["new0", "new1"]);
    assert!(at.iter().all(|r| r.approximate_arrival_timestamp_ms >= mark));
    assert_eq!(bus.read("s", StartingPosition::AtTimestamp(0), 10).await.expect("read at 0").len(), 5);
    assert!(bus
        .read("s", StartingPosition::AtTimestamp(now_ms() + 60_000), 10)
        .await
        .expect("future")
        .is_empty());

    let got = latest.fetch(10, Duration::ZERO).await.expect("fetch latest");
    assert_eq!(texts(&got), ["new0", "new1"], "LATEST sees only what came after the group was created");
    let got = horizon.fetch(10, Duration::ZERO).await.expect("fetch horizon");
    assert_eq!(texts(&got), ["old0", "old1", "old2", "new0", "new1"]);
    let mut at_group = bus.consumer("s", "at", StartingPosition::AtTimestamp(mark)).await.expect("at group");
    assert_eq!(texts(&at_group.fetch(10, Duration::ZERO).await.expect("fetch at")), ["new0", "new1"]);
    let mut after =
        bus.consumer("s", "after", StartingPosition::AfterSequence(old[1].sequence_number)).await.expect("g");
    assert_eq!(texts(&after.fetch(10, Duration::ZERO).await.expect("fetch after")), ["old2", "new0", "new1"]);

    // A fetch with nothing new waits for a record put meanwhile.
    let waiter = tokio::spawn(async move { latest.fetch(10, PATIENCE).await });
    bus.put("s", "k", b"later".to_vec()).await.expect("put");
    let got = waiter.await.expect("join").expect("fetch");
    assert_eq!(texts(&got), ["later"]);
    bus.close().await;
}

pub async fn batch_size(ctx: Ctx) {
    let bus = ctx.bus;
    bus.create_stream("s").await.expect("create");
    put_n(bus.as_ref(), "s", "r", 25).await;
    let mut o = options("s", "g");
    o.batch_size = 10;
    let mut run = Running::start(bus.clone(), o, |_| false);
    let sizes = [run.next_batch().await.len(), run.next_batch().await.len(), run.next_batch().await.len()];
    assert_eq!(sizes, [10, 10, 5]);
    run.stop().await;
    bus.close().await;
}

pub async fn batching_window_waits_for_more(ctx: Ctx) {
    let bus = ctx.bus;
    bus.create_stream("s").await.expect("create");
    put_n(bus.as_ref(), "s", "r", 2).await;
    let window = Duration::from_millis(400);
    let mut o = options("s", "g");
    o.batch_size = 10;
    o.batching_window = window;
    let started = std::time::Instant::now();
    let mut run = Running::start(bus.clone(), o, |_| false);
    let batch = run.next_batch().await;
    assert_eq!(texts(&batch), ["r0", "r1"]);
    assert!(started.elapsed() >= window, "a batch that is not full waits out the window");
    run.stop().await;
    bus.close().await;
}

pub async fn full_batch_does_not_wait_for_window(ctx: Ctx) {
    let bus = ctx.bus;
    bus.create_stream("s").await.expect("create");
    put_n(bus.as_ref(), "s", "r", 4).await;
    let mut o = options("s", "g");
    o.batch_size = 2;
    o.batching_window = Duration::from_secs(3600);
    let mut run = Running::start(bus.clone(), o, |_| false);
    // PATIENCE is far below the window: these arrive because the batches are full.
    assert_eq!(texts(&run.next_batch().await), ["r0", "r1"]);
    assert_eq!(texts(&run.next_batch().await), ["r2", "r3"]);
    run.stop().await;
    bus.close().await;
}

pub async fn at_least_once_retries_until_success(ctx: Ctx) {
    let bus = ctx.bus;
    bus.create_stream("s").await.expect("create");
    let seqs = put_n(bus.as_ref(), "s", "r", 3).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let o = options("s", "g");
    // Fails twice, then succeeds; no retry limit.
    let mut run = Running::start(bus.clone(), o, move |_| counter.fetch_add(1, Ordering::SeqCst) < 2);
    assert_eq!(texts(&run.next_batch().await), ["r0", "r1", "r2"], "the same batch comes back whole");
    run.stop().await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    let mut reader = bus.consumer("s", "g", StartingPosition::TrimHorizon).await.expect("reopen group");
    assert_eq!(reader.committed().await.expect("committed"), Some(seqs[2]), "committed after success");
    assert!(reader.fetch(10, Duration::ZERO).await.expect("fetch").is_empty());
    bus.close().await;
}

pub async fn bisect_isolates_poison_record(ctx: Ctx) {
    let bus = ctx.bus;
    bus.create_stream("s").await.expect("create");
    let records = (0..8)
        .map(|i| {
            PutRecord::new(format!("pk-{i}"), if i == 4 { "poison".to_string() } else { format!("r{i}") })
        })
        .collect();
    let seqs = bus.put_batch("s", records).await.expect("put");
    let mut o = options("s", "g");
    o.bisect_on_error = true;
    o.max_retries = Some(2);
    o.dead_letter_stream = Some("s-dlq".into());
    let mut run = Running::start(bus.clone(), o, |batch| batch.iter().any(|r| r.data == b"poison"));
    let handled = run.records(7).await;
    assert_eq!(texts(&handled), ["r0", "r1", "r2", "r3", "r5", "r6", "r7"], "order kept around the poison");
    run.stop().await;

    let dlq = bus.read("s-dlq", StartingPosition::TrimHorizon, 10).await.expect("read the dead letters");
    assert_eq!(texts(&dlq), ["poison"]);
    assert_eq!(dlq[0].partition_key, "pk-4");
    let mut reader = bus.consumer("s", "g", StartingPosition::TrimHorizon).await.expect("reopen group");
    assert_eq!(reader.committed().await.expect("committed"), Some(seqs[7]), "the loop moved past the poison");
    bus.close().await;
}

pub async fn without_bisect_whole_batch_is_dead_lettered(ctx: Ctx) {
    let bus = ctx.bus;
    bus.create_stream("s").await.expect("create");
    put_n(bus.as_ref(), "s", "bad", 3).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let mut o = options("s", "g");
    // Exactly the bad records make the first batch, whenever the good one arrives.
    o.batch_size = 3;
    o.max_retries = Some(2);
    o.dead_letter_stream = Some("dead".into());
    let mut run = Running::start(bus.clone(), o, move |batch| {
        counter.fetch_add(1, Ordering::SeqCst);
        batch.iter().any(|r| r.data.starts_with(b"bad"))
    });
    // A good record after the bad batch shows the loop moved on.
    bus.put("s", "k", b"good".to_vec()).await.expect("put");
    let next = run.next_batch().await;
    assert_eq!(texts(&next), ["good"]);
    run.stop().await;
    assert_eq!(calls.load(Ordering::SeqCst), 4, "one try and two retries, then the good batch");
    let dead = bus.read("dead", StartingPosition::TrimHorizon, 10).await.expect("read the dead letters");
    assert_eq!(texts(&dead), ["bad0", "bad1", "bad2"]);
    bus.close().await;
}

pub async fn restart_resumes_from_committed_offset(mut ctx: Ctx) {
    ctx.bus.create_stream("s").await.expect("create");
    let seqs = put_n(ctx.bus.as_ref(), "s", "r", 10).await;
    {
        let mut reader = ctx.bus.consumer("s", "g", StartingPosition::TrimHorizon).await.expect("group");
        assert_eq!(reader.committed().await.expect("committed"), Some(SequenceNumber::new(0)));
        let first = reader.fetch(4, Duration::ZERO).await.expect("fetch");
        assert_eq!(texts(&first), ["r0", "r1", "r2", "r3"]);
        reader.commit(seqs[3]).await.expect("commit");
        // Read but never committed: must come back after the restart.
        let more = reader.fetch(3, Duration::ZERO).await.expect("fetch");
        assert_eq!(texts(&more), ["r4", "r5", "r6"]);
    }
    ctx.reopen().await;
    // The start position only applies to a new group.
    let mut reader = ctx.bus.consumer("s", "g", StartingPosition::Latest).await.expect("group again");
    assert_eq!(reader.committed().await.expect("committed"), Some(seqs[3]));
    let rest = reader.fetch(100, Duration::ZERO).await.expect("fetch");
    assert_eq!(texts(&rest), ["r4", "r5", "r6", "r7", "r8", "r9"]);
    assert!(matches!(reader.commit(SequenceNumber::new(seqs[9].get() + 5)).await, Err(BusError::Invalid(_))));
    reader.commit(seqs[9]).await.expect("commit");
    drop(reader);
    ctx.reopen().await;
    let mut reader = ctx.bus.consumer("s", "g", StartingPosition::TrimHorizon).await.expect("group again");
    assert_eq!(reader.committed().await.expect("committed"), Some(seqs[9]));
    assert!(reader.fetch(100, Duration::ZERO).await.expect("fetch").is_empty());
    ctx.bus.close().await;
}

pub async fn consumer_loop_resumes_after_restart(mut ctx: Ctx) {
    ctx.bus.create_stream("s").await.expect("create");
    put_n(ctx.bus.as_ref(), "s", "a", 5).await;
    let mut o = options("s", "g");
    o.batch_size = 5;
    let mut run = Running::start(ctx.bus.clone(), o.clone(), |_| false);
    assert_eq!(run.records(5).await.len(), 5);
    run.stop().await;
    ctx.reopen().await;
    put_n(ctx.bus.as_ref(), "s", "b", 3).await;
    let mut run = Running::start(ctx.bus.clone(), o, |_| false);
    assert_eq!(texts(&run.records(3).await), ["b0", "b1", "b2"], "nothing handled before comes again");
    run.stop().await;
    ctx.bus.close().await;
}

pub async fn two_groups_each_see_every_record(ctx: Ctx) {
    let bus = ctx.bus;
    bus.create_stream("s").await.expect("create");
    put_n(bus.as_ref(), "s", "r", 20).await;
    let mut a = Running::start(bus.clone(), options("s", "a"), |_| false);
    let mut b = Running::start(bus.clone(), options("s", "b"), |_| false);
    put_n(bus.as_ref(), "s", "late", 5).await;
    let expected: Vec<String> =
        (0..20).map(|i| format!("r{i}")).chain((0..5).map(|i| format!("late{i}"))).collect();
    assert_eq!(texts(&a.records(25).await), expected);
    assert_eq!(texts(&b.records(25).await), expected);
    a.stop().await;
    b.stop().await;
    bus.close().await;
}

pub async fn concurrent_puts(ctx: Ctx) {
    let bus = ctx.bus;
    bus.create_stream("s").await.expect("create");
    let mut tasks = Vec::new();
    for t in 0..16 {
        let bus = bus.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                if i % 5 == 0 {
                    let batch =
                        (0..3).map(|j| PutRecord::new(format!("t{t}"), format!("t{t}-{i}-{j}"))).collect();
                    bus.put_batch("s", batch).await.expect("put batch");
                } else {
                    bus.put("s", &format!("t{t}"), format!("t{t}-{i}").into_bytes()).await.expect("put");
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("join");
    }
    let expected = 16 * (16 + 4 * 3);
    let all = bus.read("s", StartingPosition::TrimHorizon, 10_000).await.expect("read");
    assert_eq!(all.len(), expected);
    assert!(all.windows(2).all(|w| w[0].sequence_number < w[1].sequence_number), "in sequence order");
    let unique: HashSet<&[u8]> = all.iter().map(|r| r.data.as_slice()).collect();
    assert_eq!(unique.len(), expected, "each record once");
    for t in 0..16 {
        // Each writer awaited its puts one by one, so its records keep its order.
        let mine: Vec<String> = all
            .iter()
            .filter(|r| r.partition_key == format!("t{t}"))
            .map(|r| String::from_utf8_lossy(&r.data).into_owned())
            .collect();
        let mut expected_order = Vec::new();
        for i in 0..20 {
            if i % 5 == 0 {
                expected_order.extend((0..3).map(|j| format!("t{t}-{i}-{j}")));
            } else {
                expected_order.push(format!("t{t}-{i}"));
            }
        }
        assert_eq!(mine, expected_order);
    }
    assert_eq!(bus.describe_stream("s").await.expect("describe").record_count, expected as u64);
    bus.close().await;
}

pub async fn trim_keeps_sequence_numbers(ctx: Ctx) {
    let bus = ctx.bus;
    bus.create_stream("s").await.expect("create");
    put_n(bus.as_ref(), "s", "old", 3).await;
    let old = bus.read("s", StartingPosition::TrimHorizon, 10).await.expect("read");
    pass_ms(old.iter().map(|r| r.approximate_arrival_timestamp_ms).max().unwrap_or(0)).await;
    let mark = now_ms();
    let new = put_n(bus.as_ref(), "s", "new", 2).await;
    assert_eq!(bus.trim("s", mark).await.expect("trim"), 3);
    assert_eq!(bus.trim("s", mark).await.expect("trim again"), 0);
    let info = bus.describe_stream("s").await.expect("describe");
    assert_eq!((info.record_count, info.first_sequence, info.last_sequence), (2, Some(new[0]), Some(new[1])));
    assert_eq!(
        texts(&bus.read("s", StartingPosition::TrimHorizon, 10).await.expect("read")),
        ["new0", "new1"]
    );
    let mut g = bus.consumer("s", "g", StartingPosition::TrimHorizon).await.expect("group");
    assert_eq!(texts(&g.fetch(10, Duration::ZERO).await.expect("fetch")), ["new0", "new1"]);

    assert_eq!(bus.trim("s", now_ms() + 60_000).await.expect("trim all"), 2);
    let next = bus.put("s", "k", b"x".to_vec()).await.expect("put");
    assert!(next > new[1], "sequence numbers are not reused after a trim");
    bus.close().await;
}

pub async fn invalid_input_is_refused(ctx: Ctx) {
    let bus = ctx.bus;
    assert!(matches!(bus.create_stream("").await, Err(BusError::Invalid(_))));
    assert!(matches!(bus.create_stream("a\nb").await, Err(BusError::Invalid(_))));
    assert!(matches!(bus.create_stream(&"x".repeat(129)).await, Err(BusError::Invalid(_))));
    bus.create_stream("s").await.expect("create");
    assert!(matches!(bus.put("s", "", b"x".to_vec()).await, Err(BusError::Invalid(_))));
    assert!(matches!(bus.put("s", "a\r\nb", b"x".to_vec()).await, Err(BusError::Invalid(_))));
    assert!(matches!(bus.put("s", &"k".repeat(257), b"x".to_vec()).await, Err(BusError::Invalid(_))));
    assert!(bus.consumer("s", "", StartingPosition::TrimHorizon).await.is_err());
    // Empty data is a record like any other; a put batch of nothing is nothing.
    bus.put("s", "k", Vec::new()).await.expect("empty data");
    assert!(bus.put_batch("s", Vec::new()).await.expect("empty batch").is_empty());
    assert_eq!(bus.describe_stream("s").await.expect("describe").record_count, 1);
    bus.close().await;
}
