//! The consumer loop: a Lambda-style event source mapping over one consumer group.
//!
//! Delivery is at least once. A batch's offset is committed only after the handler has
//! succeeded for every record of it (or given up on them into the dead-letter stream), so a
//! crash or shutdown anywhere before the commit redelivers the batch to the next session.
//!
//! On a handler error: with `bisect_on_error`, a batch of several records is split in halves
//! at once and each half is delivered on its own (left first, so order is kept), down to
//! single records; a batch that cannot be split is retried up to `max_retries` times with
//! exponential backoff, then its records go to the dead-letter stream (or, without one, are
//! dropped with an error in the log, as Lambda discards them) and the loop moves on.

use crate::{Bus, BusError, BusRecord, GroupReader, PutRecord, StartingPosition};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Longest pause between two retries of a failing batch or a failing bus call.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How a [`run_consumer`] loop reads and retries. Field defaults follow Lambda's Kinesis
/// event source mapping where it has one.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    pub stream: String,
    pub group: String,
    /// Most records per handler call (default 100).
    pub batch_size: usize,
    /// How long to keep gathering records for a batch that is not yet full, counted from
    /// the first record (default 0: hand over whatever is there).
    pub batching_window: Duration,
    /// Where a group seen for the first time starts (default `Latest`).
    pub starting_position: StartingPosition,
    /// Retries of a failing (unsplittable) batch before it is dead-lettered; `None` retries
    /// until it succeeds (Lambda's -1, the default).
    pub max_retries: Option<u32>,
    /// Split failing batches in halves to isolate the failing record (default off).
    pub bisect_on_error: bool,
    /// Stream that receives given-up records, with their partition key and data unchanged
    /// (created when the loop starts).
    pub dead_letter_stream: Option<String>,
    /// First retry delay; it doubles on each retry up to 30 s (default 100 ms).
    pub retry_backoff: Duration,
    /// How long one fetch waits for new records before asking again (default 1 s). Shorter
    /// means faster shutdown on an idle stream, longer means fewer idle queries.
    pub poll_wait: Duration,
}

impl ConsumerOptions {
    pub fn new(stream: impl Into<String>, group: impl Into<String>) -> ConsumerOptions {
        ConsumerOptions {
            stream: stream.into(),
            group: group.into(),
            batch_size: 100,
            batching_window: Duration::ZERO,
            starting_position: StartingPosition::Latest,
            max_retries: None,
            bisect_on_error: false,
            dead_letter_stream: None,
            retry_backoff: Duration::from_millis(100),
            poll_wait: Duration::from_secs(1),
        }
    }
}

/// A handler's failure: the batch is retried (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

impl HandlerError {
    pub fn new(message: impl Into<String>) -> HandlerError {
        HandlerError(message.into())
    }
}

/// Runs the consumer loop until `shutdown` completes. Work in flight when it does is
/// abandoned uncommitted (so it is delivered again later). Errors only if the group cannot
/// be opened; later bus errors are logged and retried.
pub async fn run_consumer<H, Fut, S>(
    bus: Arc<dyn Bus>,
    options: ConsumerOptions,
    mut handler: H,
    shutdown: S,
) -> Result<(), BusError>
where
    H: FnMut(Vec<BusRecord>) -> Fut + Send,
    Fut: Future<Output = Result<(), HandlerError>> + Send,
    S: Future<Output = ()> + Send,
{
    if options.batch_size == 0 {
        return Err(BusError::Invalid("batch_size must be at least 1".into()));
    }
    if let Some(dlq) = &options.dead_letter_stream {
        bus.create_stream(dlq).await?;
    }
    let mut reader = bus.consumer(&options.stream, &options.group, options.starting_position).await?;
    tracing::debug!(stream = %options.stream, group = %options.group, "consumer started");
    tokio::pin!(shutdown);
    let mut backoff = options.retry_backoff;
    loop {
        let round = async {
            let batch = gather(reader.as_mut(), &options).await?;
            let Some(last) = batch.last().map(|r| r.sequence_number) else { return Ok(()) };
            deliver(bus.as_ref(), &options, &mut handler, batch).await;
            reader.commit(last).await
        };
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            result = round => match result {
                Ok(()) => backoff = options.retry_backoff,
                Err(e) => {
                    tracing::warn!(error = %e, stream = %options.stream, group = %options.group, "consumer bus call failed");
                    tokio::select! {
                        biased;
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            },
        }
    }
    tracing::debug!(stream = %options.stream, group = %options.group, "consumer stopped");
    Ok(())
}

/// One batch: waits for a first record, then gathers more until the batch is full or the
/// batching window has passed. A fetch error after the first records ends the batch early
/// rather than losing what this session already took.
async fn gather(reader: &mut dyn GroupReader, options: &ConsumerOptions) -> Result<Vec<BusRecord>, BusError> {
    let mut batch = reader.fetch(options.batch_size, options.poll_wait).await?;
    if batch.is_empty() || options.batching_window.is_zero() {
        return Ok(batch);
    }
    let deadline = Instant::now() + options.batching_window;
    while batch.len() < options.batch_size {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        match reader.fetch(options.batch_size - batch.len(), deadline - now).await {
            Ok(more) => batch.extend(more),
            Err(e) => {
                tracing::warn!(error = %e, "fetch failed while gathering a batch");
                break;
            }
        }
    }
    Ok(batch)
}

/// Hands `batch` to the handler until every record succeeded or was given up on.
async fn deliver<H, Fut>(bus: &dyn Bus, options: &ConsumerOptions, handler: &mut H, batch: Vec<BusRecord>)
where
    H: FnMut(Vec<BusRecord>) -> Fut,
    Fut: Future<Output = Result<(), HandlerError>>,
{
    // Parts still to deliver, the next one last.
    let mut todo = vec![batch];
    while let Some(part) = todo.pop() {
        let mut retries = 0u32;
        let mut delay = options.retry_backoff;
        loop {
            let error = match handler(part.clone()).await {
                Ok(()) => break,
                Err(e) => e,
            };
            if options.bisect_on_error && part.len() > 1 {
                tracing::info!(error = %error, records = part.len(), "handler failed; splitting the batch");
                let mut left = part;
                let right = left.split_off(left.len() / 2);
                todo.push(right);
                todo.push(left);
                break;
            }
            if options.max_retries.is_some_and(|max| retries >= max) {
                dead_letter(bus, options, part, &error).await;
                break;
            }
            tracing::info!(error = %error, records = part.len(), retries, "handler failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_BACKOFF);
            retries += 1;
        }
    }
}

/// Sends given-up records to the dead-letter stream, retrying the put until it works: the
/// records must not be lost, and the offset cannot move past them before.
async fn dead_letter(bus: &dyn Bus, options: &ConsumerOptions, part: Vec<BusRecord>, error: &HandlerError) {
    let first = part.first().map(|r| r.sequence_number.to_string()).unwrap_or_default();
    let last = part.last().map(|r| r.sequence_number.to_string()).unwrap_or_default();
    let Some(dlq) = &options.dead_letter_stream else {
        tracing::error!(stream = %options.stream, group = %options.group, %first, %last, %error,
            "records dropped after the last retry (no dead-letter stream)");
        return;
    };
    tracing::error!(stream = %options.stream, group = %options.group, %first, %last, %error, dead_letter = %dlq,
        "records sent to the dead-letter stream after the last retry");
    let records: Vec<PutRecord> = part.into_iter().map(|r| PutRecord::new(r.partition_key, r.data)).collect();
    let mut delay = options.retry_backoff;
    while let Err(e) = bus.put_batch(dlq, records.clone()).await {
        tracing::warn!(error = %e, dead_letter = %dlq, "dead-letter put failed; retrying");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SequenceNumber;
    use async_trait::async_trait;

    /// Records that become available at scripted (virtual) times.
    struct Scripted {
        start: Instant,
        /// (available after, sequence number), in order.
        script: Vec<(Duration, u64)>,
        next: usize,
    }

    #[async_trait]
    impl GroupReader for Scripted {
        async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<BusRecord>, BusError> {
            let deadline = Instant::now() + wait;
            loop {
                let now = Instant::now();
                let mut out = Vec::new();
                while out.len() < max
                    && self.script.get(self.next).is_some_and(|(at, _)| self.start + *at <= now)
                {
                    let seq = self.script[self.next].1;
                    out.push(BusRecord {
                        sequence_number: SequenceNumber::new(seq),
                        partition_key: "k".into(),
                        data: Vec::new(),
                        approximate_arrival_timestamp_ms: 0,
                    });
                    self.next += 1;
                }
                if !out.is_empty() || now >= deadline {
                    return Ok(out);
                }
                let due =
                    self.script.get(self.next).map_or(deadline, |(at, _)| (self.start + *at).min(deadline));
                tokio::time::sleep_until(due).await;
            }
        }

        async fn commit(&mut self, _: SequenceNumber) -> Result<(), BusError> {
            Ok(())
        }

        async fn committed(&mut self) -> Result<Option<SequenceNumber>, BusError> {
            Ok(None)
        }
    }

    fn seqs(records: &[BusRecord]) -> Vec<u64> {
        records.iter().map(|r| r.sequence_number.get()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn batching_window_in_virtual_time() {
        let s = Duration::from_secs;
        let start = Instant::now();
        let mut reader = Scripted {
            start,
            script: vec![(s(0), 1), (s(2), 2), (s(15), 3), (s(16), 4), (s(17), 5)],
            next: 0,
        };
        let mut options = ConsumerOptions::new("s", "g");
        options.batching_window = s(10);
        options.batch_size = 2;
        options.poll_wait = s(60);

        // The first record opens a window of 10 s; the second fills the batch at 2 s.
        assert_eq!(seqs(&gather(&mut reader, &options).await.unwrap_or_default()), [1, 2]);
        assert_eq!(start.elapsed(), s(2));
        // Nothing until 15 s, then the batch fills at 16 s.
        assert_eq!(seqs(&gather(&mut reader, &options).await.unwrap_or_default()), [3, 4]);
        assert_eq!(start.elapsed(), s(16));
        // A batch that does not fill is handed over when its window ends.
        assert_eq!(seqs(&gather(&mut reader, &options).await.unwrap_or_default()), [5]);
        assert_eq!(start.elapsed(), s(27));
        // An idle stream: the fetch gives up after the poll wait.
        assert!(gather(&mut reader, &options).await.unwrap_or_default().is_empty());
        assert_eq!(start.elapsed(), s(87));

        // Without a window, whatever is there goes at once.
        let mut reader = Scripted { start: Instant::now(), script: vec![(s(0), 1), (s(1), 2)], next: 0 };
        options.batching_window = Duration::ZERO;
        assert_eq!(seqs(&gather(&mut reader, &options).await.unwrap_or_default()), [1]);
    }
}
