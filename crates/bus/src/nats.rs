//! The NATS JetStream backend.
//!
//! Mapping: a bus stream is a JetStream stream (file storage) named `<prefix><encoded
//! name>` that captures the one subject of the same name; the encoding keeps letters, digits
//! and `-` and writes every other byte as `_XX` (hex), so any bus name is a valid, distinct
//! JetStream name and `list_streams` can decode it. Sequence numbers are the stream
//! sequences; the arrival time is the server's receive time; the partition key travels in
//! the `Vb-Partition-Key` header.
//!
//! A consumer group is a durable pull consumer (explicit "ack all"), so its committed offset
//! is the consumer's ack floor, kept by the server. Opening a session recreates the durable
//! consumer to start right after that offset: otherwise records fetched but never
//! acknowledged by a crashed session would only come back after the ack wait. That is why a
//! group has one active session at a time. One-shot reads use short-lived ephemeral
//! consumers.

use crate::{
    check_name, check_partition_key, Bus, BusError, BusRecord, GroupReader, PutRecord, SequenceNumber,
    StartingPosition, StreamInfo,
};
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::{self, stream, ErrorCode};
use async_trait::async_trait;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::time::Duration;

/// The stream-name prefix when the URL sets none.
pub(crate) const DEFAULT_PREFIX: &str = "vb_";
const KEY_HEADER: &str = "Vb-Partition-Key";
/// Fetched-but-unacknowledged records are redelivered by the server after this; sessions
/// ignore such redeliveries (they already hold the records), so it only needs to be long.
const ACK_WAIT: Duration = Duration::from_secs(600);
/// Ephemeral read consumers vanish after this long unused, if their deletion failed.
const EPHEMERAL_IDLE: Duration = Duration::from_secs(30);

/// The JetStream [`Bus`].
pub struct NatsBus {
    client: async_nats::Client,
    js: jetstream::Context,
    prefix: String,
}

impl NatsBus {
    /// Connects to the NATS server at `url` (`nats://host:port`); JetStream names get
    /// `prefix` (letters, digits, `_`, `-`; may be empty).
    pub async fn connect(url: &str, prefix: &str) -> Result<NatsBus, BusError> {
        if !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') || prefix.len() > 64 {
            return Err(BusError::Invalid(format!(
                "the NATS stream prefix {prefix:?} may hold only letters, digits, '_' and '-' (64 at most)"
            )));
        }
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| BusError::Backend(format!("cannot connect to NATS at {url}: {e}")))?;
        let js = jetstream::new(client.clone());
        tracing::info!(%url, %prefix, "NATS JetStream bus connected");
        Ok(NatsBus { client, js, prefix: prefix.to_string() })
    }

    fn js_name(&self, name: &str) -> String {
        format!("{}{}", self.prefix, encode(name))
    }

    async fn stream(&self, name: &str) -> Result<stream::Stream, BusError> {
        self.js.get_stream(self.js_name(name)).await.map_err(|e| match e.kind() {
            jetstream::context::GetStreamErrorKind::JetStream(j)
                if j.error_code() == ErrorCode::STREAM_NOT_FOUND =>
            {
                BusError::StreamNotFound(name.to_string())
            }
            _ => backend("looking up a stream", e),
        })
    }

    /// Records from `policy` on, up to `max`, through an ephemeral consumer.
    async fn read_from(
        &self,
        stream: &stream::Stream,
        policy: DeliverPolicy,
        max: usize,
    ) -> Result<Vec<BusRecord>, BusError> {
        let config = pull::Config {
            deliver_policy: policy,
            ack_policy: AckPolicy::None,
            inactive_threshold: EPHEMERAL_IDLE,
            ..Default::default()
        };
        let consumer: PullConsumer =
            stream.create_consumer(config).await.map_err(|e| backend("creating a reader", e))?;
        let result = async {
            let mut out = Vec::new();
            // A no-wait fetch returns at most what the server allows per request; go on
            // until a fetch comes back short.
            while out.len() < max {
                let want = max - out.len();
                let mut got = 0;
                let mut batch = consumer
                    .fetch()
                    .max_messages(want)
                    .messages()
                    .await
                    .map_err(|e| backend("reading records", e))?;
                while let Some(message) = batch.next().await {
                    let message = message.map_err(|e| backend("reading records", e))?;
                    out.push(to_record(&message)?.1);
                    got += 1;
                }
                if got < want {
                    break;
                }
            }
            Ok(out)
        }
        .await;
        let name = consumer.cached_info().name.clone();
        if let Err(e) = stream.delete_consumer(&name).await {
            tracing::debug!(error = %e, "could not delete an ephemeral reader; it expires by itself");
        }
        result
    }

    /// The sequence number before the first record that arrived at or after `ms`, or the
    /// last sequence number if none did.
    async fn offset_at(&self, stream: &mut stream::Stream, ms: i64) -> Result<u64, BusError> {
        let first = self.read_from(stream, by_start_time(ms)?, 1).await?;
        match first.first() {
            Some(r) => Ok(r.sequence_number.get().saturating_sub(1)),
            None => {
                Ok(stream.info().await.map_err(|e| backend("describing a stream", e))?.state.last_sequence)
            }
        }
    }
}

fn backend(context: &str, e: impl std::fmt::Display) -> BusError {
    BusError::Backend(format!("{context}: {e}"))
}

fn by_start_time(ms: i64) -> Result<DeliverPolicy, BusError> {
    let start_time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| BusError::Invalid(format!("timestamp {ms} is out of range: {e}")))?;
    Ok(DeliverPolicy::ByStartTime { start_time })
}

/// The stream sequence and the record of a JetStream message.
fn to_record(message: &jetstream::Message) -> Result<(u64, BusRecord), BusError> {
    let info = message.info().map_err(|e| backend("reading a record's metadata", e))?;
    let seq = info.stream_sequence;
    let ms = info.published.unix_timestamp_nanos() / 1_000_000;
    let partition_key = message
        .headers
        .as_ref()
        .and_then(|h| h.get(KEY_HEADER))
        .map(|v| v.as_str().to_string())
        .unwrap_or_default();
    Ok((
        seq,
        BusRecord {
            sequence_number: SequenceNumber::new(seq),
            partition_key,
            data: message.payload.to_vec(),
            approximate_arrival_timestamp_ms: i64::try_from(ms).unwrap_or(0),
        },
    ))
}

/// Bus name to JetStream name: letters, digits and `-` stay, other bytes become `_XX`.
fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02X}"));
        }
    }
    out
}

fn decode(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            let hex = encoded.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[async_trait]
impl Bus for NatsBus {
    fn backend(&self) -> &'static str {
        "nats"
    }

    async fn create_stream(&self, name: &str) -> Result<bool, BusError> {
        check_name("stream", name)?;
        match self.stream(name).await {
            Ok(_) => return Ok(false),
            Err(BusError::StreamNotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let js_name = self.js_name(name);
        let config = stream::Config {
            name: js_name.clone(),
            subjects: vec![js_name],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            allow_direct: true,
            ..Default::default()
        };
        match self.js.create_stream(config).await {
            Ok(_) => Ok(true),
            // Lost a race with another creator: the stream is there, which is what counts.
            Err(e) => match self.stream(name).await {
                Ok(_) => Ok(false),
                Err(_) => Err(backend("creating a stream", e)),
            },
        }
    }

    async fn delete_stream(&self, name: &str) -> Result<bool, BusError> {
        match self.stream(name).await {
            Ok(_) => {}
            Err(BusError::StreamNotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        }
        self.js.delete_stream(self.js_name(name)).await.map_err(|e| backend("deleting a stream", e))?;
        Ok(true)
    }

    async fn list_streams(&self) -> Result<Vec<String>, BusError> {
        let mut names = self.js.stream_names();
        let mut out = Vec::new();
        while let Some(name) = names.next().await {
            let name = name.map_err(|e| backend("listing streams", e))?;
            if let Some(decoded) = name.strip_prefix(self.prefix.as_str()).and_then(decode) {
                out.push(decoded);
            }
        }
        out.sort();
        Ok(out)
    }

    async fn describe_stream(&self, name: &str) -> Result<StreamInfo, BusError> {
        let mut stream = self.stream(name).await?;
        let state = stream.info().await.map_err(|e| backend("describing a stream", e))?.state.clone();
        let (first, last) = if state.messages == 0 {
            (None, None)
        } else {
            (Some(SequenceNumber::new(state.first_sequence)), Some(SequenceNumber::new(state.last_sequence)))
        };
        Ok(StreamInfo {
            name: name.to_string(),
            record_count: state.messages,
            first_sequence: first,
            last_sequence: last,
        })
    }

    async fn put_batch(
        &self,
        stream: &str,
        records: Vec<PutRecord>,
    ) -> Result<Vec<SequenceNumber>, BusError> {
        for r in &records {
            check_partition_key(&r.partition_key)?;
        }
        let subject = self.js_name(stream);
        // Publish everything first, then collect the acks: one connection keeps the order,
        // and the round trips overlap.
        let mut acks = Vec::with_capacity(records.len());
        for r in records {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(KEY_HEADER, r.partition_key.as_str());
            let ack = self
                .js
                .publish_with_headers(subject.clone(), headers, r.data.into())
                .await
                .map_err(|e| backend("publishing a record", e))?;
            acks.push(ack);
        }
        let mut seqs = Vec::with_capacity(acks.len());
        for ack in acks {
            let ack = ack.await.map_err(|e| match e.kind() {
                jetstream::context::PublishErrorKind::StreamNotFound => {
                    BusError::StreamNotFound(stream.to_string())
                }
                _ => backend("publishing a record", e),
            })?;
            seqs.push(SequenceNumber::new(ack.sequence));
        }
        Ok(seqs)
    }

    async fn read(
        &self,
        stream: &str,
        from: StartingPosition,
        max: usize,
    ) -> Result<Vec<BusRecord>, BusError> {
        let js_stream = self.stream(stream).await?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let policy = match from {
            StartingPosition::Latest => return Ok(Vec::new()),
            StartingPosition::TrimHorizon => DeliverPolicy::All,
            StartingPosition::AfterSequence(seq) => {
                DeliverPolicy::ByStartSequence { start_sequence: seq.get().saturating_add(1) }
            }
            StartingPosition::AtTimestamp(ms) => by_start_time(ms)?,
        };
        self.read_from(&js_stream, policy, max).await
    }

    async fn trim(&self, stream: &str, before_ms: i64) -> Result<u64, BusError> {
        let mut js_stream = self.stream(stream).await?;
        let keep_from = self.read_from(&js_stream, by_start_time(before_ms)?, 1).await?;
        let purge = match keep_from.first() {
            // Purges everything below that sequence.
            Some(r) => js_stream.purge().sequence(r.sequence_number.get()).await,
            None => js_stream.purge().await,
        };
        let purged = purge.map_err(|e| backend("trimming a stream", e))?.purged;
        // Refresh the cached info for later calls on this handle (none today).
        let _ = js_stream.info().await;
        Ok(purged)
    }

    async fn consumer(
        &self,
        stream: &str,
        group: &str,
        start: StartingPosition,
    ) -> Result<Box<dyn GroupReader>, BusError> {
        check_name("group", group)?;
        let mut js_stream = self.stream(stream).await?;
        let durable = encode(group);
        let offset = match js_stream.consumer_info(&durable).await {
            Ok(info) => {
                let offset = committed_offset(&info);
                js_stream.delete_consumer(&durable).await.map_err(|e| backend("reopening a group", e))?;
                offset
            }
            Err(e) if matches!(e.kind(), ConsumerInfoErrorKind::NotFound) => match start {
                StartingPosition::TrimHorizon => 0,
                StartingPosition::AfterSequence(seq) => seq.get(),
                StartingPosition::Latest => {
                    js_stream.info().await.map_err(|e| backend("describing a stream", e))?.state.last_sequence
                }
                StartingPosition::AtTimestamp(ms) => self.offset_at(&mut js_stream, ms).await?,
            },
            Err(e) => return Err(backend("looking up a group", e)),
        };
        let config = pull::Config {
            durable_name: Some(durable.clone()),
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: offset.saturating_add(1) },
            ack_policy: AckPolicy::All,
            ack_wait: ACK_WAIT,
            max_deliver: -1,
            max_ack_pending: -1,
            ..Default::default()
        };
        let consumer: PullConsumer =
            js_stream.create_consumer(config).await.map_err(|e| backend("creating a group consumer", e))?;
        Ok(Box::new(NatsReader {
            stream: js_stream,
            durable,
            consumer,
            cursor: offset,
            unacked: BTreeMap::new(),
        }))
    }

    async fn close(&self) {
        if let Err(e) = self.client.flush().await {
            tracing::debug!(error = %e, "flushing the NATS connection on close");
        }
    }
}

/// What a durable consumer has committed: its ack floor, or just before where it started
/// if nothing was acknowledged yet.
fn committed_offset(info: &async_nats::jetstream::consumer::Info) -> u64 {
    let start = match info.config.deliver_policy {
        DeliverPolicy::ByStartSequence { start_sequence } => start_sequence.saturating_sub(1),
        _ => 0,
    };
    info.ack_floor.stream_sequence.max(start)
}

struct NatsReader {
    stream: stream::Stream,
    durable: String,
    consumer: PullConsumer,
    /// The last stream sequence this session returned.
    cursor: u64,
    /// Returned records' messages, kept to acknowledge them on commit.
    unacked: BTreeMap<u64, jetstream::Message>,
}

impl NatsReader {
    /// One pull of up to `max` messages: without waiting, or waiting up to `wait` for them.
    async fn pull(&mut self, max: usize, wait: Option<Duration>) -> Result<Vec<BusRecord>, BusError> {
        let batch = match wait {
            None => self.consumer.fetch().max_messages(max).messages().await,
            Some(wait) => self.consumer.batch().max_messages(max).expires(wait).messages().await,
        };
        let mut batch = batch.map_err(|e| backend("fetching records", e))?;
        let mut out = Vec::new();
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| backend("fetching records", e))?;
            let (seq, record) = to_record(&message)?;
            // A redelivery after the ack wait: this session already has it.
            if seq <= self.cursor {
                continue;
            }
            self.cursor = seq;
            self.unacked.insert(seq, message);
            out.push(record);
        }
        Ok(out)
    }
}

#[async_trait]
impl GroupReader for NatsReader {
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<BusRecord>, BusError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut out = self.pull(max, None).await?;
        if out.is_empty() && wait >= Duration::from_millis(1) {
            out = self.pull(1, Some(wait)).await?;
            if !out.is_empty() && max > 1 {
                out.extend(self.pull(max - 1, None).await?);
            }
        }
        Ok(out)
    }

    async fn commit(&mut self, seq: SequenceNumber) -> Result<(), BusError> {
        let message = self.unacked.get(&seq.get()).ok_or_else(|| {
            BusError::Invalid(format!(
                "cannot commit {seq}: this session has not read it, or committed past it"
            ))
        })?;
        // "Ack all": acknowledges every earlier record too. The double ack waits for the
        // server's confirmation, so the offset is stored when this returns.
        message.double_ack().await.map_err(|e| backend("committing an offset", e))?;
        self.unacked = self.unacked.split_off(&(seq.get() + 1));
        Ok(())
    }

    async fn committed(&mut self) -> Result<Option<SequenceNumber>, BusError> {
        let info =
            self.stream.consumer_info(&self.durable).await.map_err(|e| backend("reading an offset", e))?;
        Ok(Some(SequenceNumber::new(committed_offset(&info))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in ["ctr", "contact-events", "a.b", "a_b", "ä b/c*>", ""] {
            let e = encode(name);
            assert!(e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{e}");
            assert_eq!(decode(&e).as_deref(), Some(name));
        }
        assert_ne!(encode("a.b"), encode("a_b"));
        assert_eq!(decode("_ZZ"), None);
        assert_eq!(decode("_4"), None);
    }
}
