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

//!
//! Open a store with [`open`] (a URL picks the backend) or with the backend constructors
//! [`SqliteStore::open`] and [`PgStore::connect`].

mod postgres;
mod range;
mod sql;
mod sqlite;
mod writer;

pub use postgres::PgStore;
pub use range::{has_range_index, RANGE_FIELDS};
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use std::ops::Bound;
use std::sync::Arc;
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

    /// Records of one type whose indexed date-time `field` lies within the bounds (epoch
    /// milliseconds), ordered by that field, then oldest first; records without a value
    /// are left out. At most `limit` records when given. Fails with
    /// [`StoreError::Database`] for a field without a range index ([`has_range_index`]).
    async fn find_range(
        &self,
        org: &SfId,
        sobject: &str,
        field: &str,
        lower: Bound<i64>,
        upper: Bound<i64>,
        limit: Option<u64>,
    ) -> Result<Vec<Record>, StoreError>;

    /// All records of one type in an org, oldest first.
    async fn list(&self, org: &SfId, sobject: &str) -> Result<Vec<Record>, StoreError>;

    /// All organizations (records of type `Organization`, whose org is their own id).
    async fn orgs(&self) -> Result<Vec<Record>, StoreError>;

    /// Appends transcript entries. For each entry, `true` if stored, `false` if an entry
    /// with the same `(conversation, message_id)` already exists (it is left unchanged).
    async fn append_entries(&self, entries: Vec<TranscriptEntry>) -> Result<Vec<bool>, StoreError>;

    /// Replaces the text of existing entries of a conversation (corrections, redaction),
    /// given as `(message id, new text)`; for each, `true` if the entry exists.
    async fn edit_entries(
        &self,
        org: &SfId,
        conversation: &SfId,
        edits: Vec<(String, String)>,
    ) -> Result<Vec<bool>, StoreError>;

    /// A conversation's entries ordered by `start_ms`, then insertion order.
    async fn entries(&self, org: &SfId, conversation: &SfId) -> Result<Vec<TranscriptEntry>, StoreError>;

    /// Records a token id. `false` if the same `(issuer, jti)` was claimed before and its
    /// token has not yet expired at `now_ms`. Expired claims may be purged.
    async fn claim_jti(&self, issuer: &str, jti: &str, exp_ms: i64, now_ms: i64) -> Result<bool, StoreError>;

    /// Stops taking writes, lets the background writer finish everything already queued,
    /// then closes the database connections. Later calls fail with
    /// [`StoreError::Database`]. Calling it twice is harmless.
    ///
    /// Added to the trait (with a no-op default) because [`open`] hands out
    /// `Arc<dyn Store>` and a server shutting down needs a way to drain the writer and
    /// close the SQLite file cleanly. Not calling it loses nothing that was acknowledged:
    /// dropping the last handle also drains the writer.
    async fn close(&self) {}

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

/// Opens the store a URL names:
///
/// * `sqlite://PATH`, `sqlite:PATH` or a plain file path: [`SqliteStore`] on that file,
///   created if missing (`sqlite:///var/lib/voxbridge/db.sqlite` is an absolute path,
///   `sqlite://data/db.sqlite` a relative one). The rest of the URL is the path verbatim;
///   in-memory databases are refused because the store's several connections would each
///   see a different one.
/// * `postgres://...` or `postgresql://...`: [`PgStore`]. One extra query parameter is
///   understood, `schema=NAME` (lower-case letters, digits and `_`): the schema is created
///   if missing and put first on every connection's `search_path`. All other parameters
///   (`sslmode`, `application_name`, `options`, ...) go to the PostgreSQL driver unchanged.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    match Location::parse(url)? {
        Location::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path).await?)),
        Location::Postgres { url, schema } => Ok(Arc::new(PgStore::connect(&url, schema.as_deref()).await?)),
    }
}

/// Where [`open`] goes, parsed from its URL.
#[derive(Debug, PartialEq, Eq)]
enum Location {
    Sqlite(String),
    Postgres { url: String, schema: Option<String> },
}

impl Location {
    fn parse(url: &str) -> Result<Location, StoreError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let (base, query) = match url.split_once('?') {
                Some((base, query)) => (base, query),
                None => (url, ""),
            };
            let mut schema = None;
            let mut rest = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                match pair.strip_prefix("schema=") {
                    Some(name) => schema = Some(name.to_string()),
                    None => rest.push(pair),
                }
            }
            let url = if rest.is_empty() { base.to_string() } else { format!("{base}?{}", rest.join("&")) };
            return Ok(Location::Postgres { url, schema });
        }
        let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
        if path.is_empty() {
            return Err(StoreError::Database("the database URL names no file".into()));
        }
        if path.starts_with(":memory:") || path.contains("mode=memory") {
            return Err(StoreError::Database(
                "in-memory SQLite databases are not supported; name a file".into(),
            ));
        }
        Ok(Location::Sqlite(path.to_string()))
    }
}

/// Turns a driver error into a [`StoreError`], dropping anything that looks like
/// credentials in a URL (`scheme://user:password@host` becomes `scheme://***@host`).
fn db_error(context: &str, err: &sqlx::Error) -> StoreError {
    StoreError::Database(format!("{context}: {}", redact(&err.to_string())))
}

fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end =
            tail.find(|c: char| c == '/' || c == '?' || c.is_whitespace()).unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(userinfo_end) => {
                out.push_str("***");
                rest = &tail[userinfo_end..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let sqlite = |p: &str| Ok(Location::Sqlite(p.to_string()));
        assert_eq!(
            Location::parse("sqlite:///var/lib/vb.db").map_err(|e| e.to_string()),
            sqlite("/var/lib/vb.db")
        );
        assert_eq!(Location::parse("sqlite://data/vb.db").map_err(|e| e.to_string()), sqlite("data/vb.db"));
        assert_eq!(Location::parse("sqlite:vb.db").map_err(|e| e.to_string()), sqlite("vb.db"));
        assert_eq!(Location::parse("/tmp/x.sqlite").map_err(|e| e.to_string()), sqlite("/tmp/x.sqlite"));
        assert!(Location::parse("sqlite::memory:").is_err());
        assert!(Location::parse("sqlite://").is_err());
        assert_eq!(
            Location::parse("postgres://u@h:5432/db?sslmode=disable&schema=vb_1&application_name=x").ok(),
            Some(Location::Postgres {
                url: "postgres://u@h:5432/db?sslmode=disable&application_name=x".into(),
                schema: Some("vb_1".into())
            })
        );
        assert_eq!(
            Location::parse("postgresql://h/db").ok(),
            Some(Location::Postgres { url: "postgresql://h/db".into(), schema: None })
        );
    }

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact("cannot reach postgres://bob:s3cret@db:5432/x now"),
            "cannot reach postgres://***@db:5432/x now"
        );
        assert_eq!(redact("plain message"), "plain message");
        assert_eq!(redact("a://host/p and b://u@h"), "a://host/p and b://***@h");
    }
}
