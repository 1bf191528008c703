//! The durable store behind every API.
//!
//! One [`Store`] trait with two backends: SQLite in WAL mode (the embedded default, one file
//! under the data dir) and PostgreSQL. Both pass the same conformance suite
//! (`tests/it/conformance.rs`).
//!
//! Invariant: when a write method returns `Ok`, the write is committed and survives a crash
//! of the process. Backends batch concurrent writes into one transaction (group commit) to
//! keep that promise cheap.
//!
//! Invariant: only this crate knows SQL.

use async_trait::async_trait;
use voxbridge_core::{Fields, Record, SfId, TranscriptEntry};

/// A store failure. Callers map it to `INTERNAL_ERROR`/`SERVICE_UNAVAILABLE`; the details
/// are for the log only.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a record with id {0} already exists")]
    Duplicate(SfId),
    #[error("database error: {0}")]
    Database(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// One write of an atomic batch.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// Insert a new record; fails the batch with [`StoreError::Duplicate`] if the id exists.
    Insert(Record),
    /// Merge `patch` into the record's fields (a `null` value stores null) and set
    /// `modified_ms`. A missing record is not an error: the outcome says so.
    Update { org: SfId, id: SfId, patch: Fields, now_ms: i64 },
    /// Delete a record if it exists.
    Delete { org: SfId, id: SfId },
}

/// What one [`WriteOp`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Inserted,
    Updated,
    Deleted,
    /// Update or delete of a record that does not exist.
    Missing,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`, for logs and benchmarks.
    fn backend(&self) -> &'static str;

    /// Applies the ops in order in one transaction: all or nothing.
    async fn apply(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>, StoreError>;

    /// The record with this id in this org.
    async fn get(&self, org: &SfId, id: &SfId) -> Result<Option<Record>, StoreError>;

    /// Records of one type whose lookup key equals `key`, oldest first.
    async fn find_by_key(&self, org: &SfId, sobject: &str, key: &str) -> Result<Vec<Record>, StoreError>;

    /// All records of one type in an org, oldest first.
    async fn list(&self, org: &SfId, sobject: &str) -> Result<Vec<Record>, StoreError>;

    /// All organizations (records of type `Organization`, whose org is their own id).
    async fn orgs(&self) -> Result<Vec<Record>, StoreError>;

    /// Appends transcript entries. For each entry, `true` if stored, `false` if an entry
    /// with the same `(conversation, message_id)` already exists (it is left unchanged).
    async fn append_entries(&self, entries: Vec<TranscriptEntry>) -> Result<Vec<bool>, StoreError>;

    /// A conversation's entries ordered by `start_ms`, then insertion order.
    async fn entries(&self, org: &SfId, conversation: &SfId) -> Result<Vec<TranscriptEntry>, StoreError>;

    /// Records a token id. `false` if the same `(issuer, jti)` was claimed before and its
    /// token has not yet expired at `now_ms`. Expired claims may be purged.
    async fn claim_jti(&self, issuer: &str, jti: &str, exp_ms: i64, now_ms: i64) -> Result<bool, StoreError>;

    /// Convenience: insert one record.
    async fn insert(&self, record: Record) -> Result<(), StoreError> {
        self.apply(vec![WriteOp::Insert(record)]).await.map(|_| ())
    }

    /// Convenience: update one record; `false` if it does not exist.
    async fn update(&self, org: &SfId, id: &SfId, patch: Fields, now_ms: i64) -> Result<bool, StoreError> {
        let out =
            self.apply(vec![WriteOp::Update { org: org.clone(), id: id.clone(), patch, now_ms }]).await?;
        Ok(out.first() == Some(&WriteOutcome::Updated))
    }
}
