//! The durable event log: named streams of records and consumer groups over them.
//!
//! One [`Bus`] trait with two backends that pass the same conformance suite
//! (`tests/it/conformance.rs`):
//!
//! * [`EmbeddedBus`]: tables in a SQLite file (WAL), the embedded default;
//! * [`NatsBus`]: NATS JetStream, for several nodes.
//!
//! The model is Kinesis with one shard per stream: every record gets a sequence number that
//! increases strictly within its stream (and is never reused, even after a trim), plus an
//! approximate arrival time. Readers start at a [`StartingPosition`]. A consumer group keeps a
//! committed offset (the last sequence number it finished) that survives restarts; the
//! [`run_consumer`] loop delivers batches at least once, with retries, bisect-on-error and a
//! dead-letter stream, like a Lambda event source mapping.
//!
//! Invariant: when `put`/`put_batch` returns `Ok`, the record is durable and readable.
//! Invariant: only this crate knows NATS; the SQL here touches only the bus's own tables.
//!
//! Open a bus with [`open`] (the URL picks the backend) or the backend constructors.

mod consumer;
mod embedded;
mod kinesis;
mod nats;

pub use consumer::{run_consumer, ConsumerOptions, HandlerError};
pub use embedded::EmbeddedBus;
pub use kinesis::{lambda_kinesis_event, stream_arn};
pub use nats::NatsBus;

use async_trait::async_trait;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A bus failure. The message is for logs; callers retry or report "unavailable".
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("stream {0} does not exist")]
    StreamNotFound(String),
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("bus backend error: {0}")]
    Backend(String),
    #[error("the bus is closed")]
    Closed,
}

/// A record's position in its stream. Shown as 20 zero-padded decimal digits, so string
/// order is numeric order (as with Kinesis sequence numbers, compare them as strings of
/// equal length, never as floats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SequenceNumber(u64);

impl SequenceNumber {
    pub const fn new(n: u64) -> SequenceNumber {
        SequenceNumber(n)
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    /// Parses the decimal form (padding optional).
    pub fn parse(s: &str) -> Result<SequenceNumber, BusError> {
        if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BusError::Invalid(format!("{s:?} is not a sequence number")));
        }
        s.parse::<u64>().map(SequenceNumber).map_err(|_| BusError::Invalid(format!("{s:?} is out of range")))
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:020}", self.0)
    }
}

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusRecord {
    pub sequence_number: SequenceNumber,
    pub partition_key: String,
    pub data: Vec<u8>,
    /// When the bus accepted the record (epoch ms). Never decreases along a stream on the
    /// embedded backend; on JetStream it is the server's receive time.
    pub approximate_arrival_timestamp_ms: i64,
}

/// One record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutRecord {
    pub partition_key: String,
    pub data: Vec<u8>,
}

impl PutRecord {
    pub fn new(partition_key: impl Into<String>, data: impl Into<Vec<u8>>) -> PutRecord {
        PutRecord { partition_key: partition_key.into(), data: data.into() }
    }
}

/// Where a reader or a new consumer group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    /// The oldest record still stored.
    TrimHorizon,
    /// Only records put after this point. A one-shot [`Bus::read`] from here is empty.
    Latest,
    /// The first record that arrived at or after this time (epoch ms).
    AtTimestamp(i64),
    /// The record after this sequence number.
    AfterSequence(SequenceNumber),
}

/// What [`Bus::describe_stream`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub name: String,
    pub record_count: u64,
    pub first_sequence: Option<SequenceNumber>,
    pub last_sequence: Option<SequenceNumber>,
}

/// A consumer group's reading session, from [`Bus::consumer`]. One active session per
/// group at a time (as one Lambda event source mapping owns a shard): opening a new session
/// restarts delivery from the committed offset.
#[async_trait]
pub trait GroupReader: Send {
    /// The next records after those this session already returned (at first: after the
    /// committed offset), up to `max`. Returns at once when some are stored, otherwise waits
    /// up to `wait` for at least one and may return none.
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<BusRecord>, BusError>;

    /// Marks every record up to `seq` (one this session returned) as done for the group.
    /// Durable when it returns `Ok`.
    async fn commit(&mut self, seq: SequenceNumber) -> Result<(), BusError>;

    /// The group's committed offset: every record up to it is done. `None` before anything
    /// was stored for the group's start.
    async fn committed(&mut self) -> Result<Option<SequenceNumber>, BusError>;
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// `embedded` or `nats`, for logs and benchmarks.
    fn backend(&self) -> &'static str;

    /// Creates a stream; `Ok(false)` if it already exists. Names are 1 to 128 characters,
    /// any except control characters.
    async fn create_stream(&self, name: &str) -> Result<bool, BusError>;

    /// Deletes a stream with its records and groups; `Ok(false)` if it did not exist.
    async fn delete_stream(&self, name: &str) -> Result<bool, BusError>;

    /// Stream names, sorted.
    async fn list_streams(&self) -> Result<Vec<String>, BusError>;

    async fn describe_stream(&self, name: &str) -> Result<StreamInfo, BusError>;

    /// Appends records in order, atomically on the embedded backend; their sequence numbers
    /// in the same order.
    async fn put_batch(&self, stream: &str, records: Vec<PutRecord>)
        -> Result<Vec<SequenceNumber>, BusError>;

    /// Appends one record.
    async fn put(
        &self,
        stream: &str,
        partition_key: &str,
        data: Vec<u8>,
    ) -> Result<SequenceNumber, BusError> {
        let seqs = self.put_batch(stream, vec![PutRecord::new(partition_key, data)]).await?;
        seqs.into_iter().next().ok_or_else(|| BusError::Backend("the put returned no sequence number".into()))
    }

    /// Up to `max` stored records from `from`, in sequence order.
    async fn read(
        &self,
        stream: &str,
        from: StartingPosition,
        max: usize,
    ) -> Result<Vec<BusRecord>, BusError>;

    /// Retention: removes the records that arrived before `before_ms`; how many went.
    /// Sequence numbers are not reused afterwards.
    async fn trim(&self, stream: &str, before_ms: i64) -> Result<u64, BusError>;

    /// Opens a reading session of consumer group `group` on `stream`. A group seen for the
    /// first time starts at `start` (resolved now: `Latest` means after the records stored
    /// at this moment); an existing group resumes after its committed offset.
    async fn consumer(
        &self,
        stream: &str,
        group: &str,
        start: StartingPosition,
    ) -> Result<Box<dyn GroupReader>, BusError>;

    /// Finishes pending writes and closes connections. Later calls fail.
    async fn close(&self) {}
}

/// Opens the bus a URL names:
///
/// * `sqlite://PATH` or `sqlite:PATH`: [`EmbeddedBus`] on that file (created if missing).
///   It may be the store's own database file: the bus's tables are all named `bus_*` and
///   it keeps its own migration table.
/// * `nats://HOST:PORT[?prefix=NAME]`: [`NatsBus`]; JetStream stream names get the prefix
///   (default `vb_`; letters, digits, `_` and `-`).
pub async fn open(url: &str) -> Result<Arc<dyn Bus>, BusError> {
    // Parsed to owned values first: borrowing the URL across the awaits would make the
    // future `Send` for one lifetime only.
    match Location::parse(url)? {
        Location::Sqlite(path) => Ok(Arc::new(EmbeddedBus::open(path).await?)),
        Location::Nats { url, prefix } => Ok(Arc::new(NatsBus::connect(&url, &prefix).await?)),
    }
}

/// Where [`open`] goes, parsed from its URL.
#[derive(Debug, PartialEq, Eq)]
enum Location {
    Sqlite(String),
    Nats { url: String, prefix: String },
}

impl Location {
    fn parse(url: &str) -> Result<Location, BusError> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("nats://") {
            let (addr, query) = rest.split_once('?').unwrap_or((rest, ""));
            let mut prefix = nats::DEFAULT_PREFIX.to_string();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some(("prefix", value)) => prefix = value.to_string(),
                    _ => return Err(BusError::Invalid(format!("unknown NATS URL parameter {pair:?}"))),
                }
            }
            return Ok(Location::Nats { url: format!("nats://{addr}"), prefix });
        }
        match url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            Some(p) if !p.is_empty() && !p.starts_with(":memory:") && !p.contains("mode=memory") => {
                Ok(Location::Sqlite(p.to_string()))
            }
            Some(_) => Err(BusError::Invalid("the bus URL must name a database file".into())),
            None => Err(BusError::Invalid(format!("unsupported bus URL {url:?} (use sqlite:// or nats://)"))),
        }
    }
}

/// Checks a stream or group name (the same rule on both backends).
fn check_name(what: &str, name: &str) -> Result<(), BusError> {
    if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
        return Err(BusError::Invalid(format!(
            "{what} name {name:?} must be 1 to 128 characters without control characters"
        )));
    }
    Ok(())
}

/// Partition keys are 1 to 256 characters, as on Kinesis, without control characters (the
/// JetStream backend carries them in a message header).
fn check_partition_key(key: &str) -> Result<(), BusError> {
    if key.is_empty() || key.chars().count() > 256 || key.chars().any(char::is_control) {
        return Err(BusError::Invalid(format!(
            "partition key {key:?} must be 1 to 256 characters without control characters"
        )));
    }
    Ok(())
}

/// Wall-clock epoch milliseconds.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_sort_as_strings() {
        let a = SequenceNumber::new(9).to_string();
        let b = SequenceNumber::new(10).to_string();
        assert_eq!(a, "00000000000000000009");
        assert!(a < b);
        assert_eq!(SequenceNumber::parse(&b).ok(), Some(SequenceNumber::new(10)));
        assert_eq!(SequenceNumber::parse("7").ok(), Some(SequenceNumber::new(7)));
        assert!(SequenceNumber::parse("").is_err());
        assert!(SequenceNumber::parse("-1").is_err());
        assert!(SequenceNumber::parse("99999999999999999999").is_err());
    }

    #[test]
    fn locations() {
        let parse = |u: &str| Location::parse(u).map_err(|e| e.to_string());
        assert_eq!(parse("sqlite:///var/lib/vb/bus.db"), Ok(Location::Sqlite("/var/lib/vb/bus.db".into())));
        assert_eq!(parse("sqlite:data/bus.db"), Ok(Location::Sqlite("data/bus.db".into())));
        assert_eq!(
            parse("nats://127.0.0.1:4222?prefix=vbtest_x_"),
            Ok(Location::Nats { url: "nats://127.0.0.1:4222".into(), prefix: "vbtest_x_".into() })
        );
        assert_eq!(
            parse("nats://h:1"),
            Ok(Location::Nats { url: "nats://h:1".into(), prefix: nats::DEFAULT_PREFIX.into() })
        );
        assert!(parse("redis://x").is_err());
        assert!(parse("sqlite://").is_err());
        assert!(parse("sqlite::memory:").is_err());
        assert!(parse("nats://127.0.0.1:1?color=red").is_err());
    }
}
