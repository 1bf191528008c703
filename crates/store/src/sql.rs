//! SQL shared by both backends: the read queries, row decoding and the migration list type.
//!
//! Both backends accept `$N` placeholders (SQLite treats `$1` as parameter 1), so every
//! statement that is valid in both dialects lives here once; the backend modules keep only
//! what differs (upserts with bulk parameters, locking, transaction control).

use crate::StoreError;
use sqlx::{ColumnIndex, Decode, Row, Type};
use voxbridge_core::{Fields, Record, SfId, TranscriptEntry};

/// One versioned schema change, applied once, in order, inside a transaction.
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Records which migrations a database has had. Identical in both dialects.
pub(crate) const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS vb_schema_migrations (
    version    BIGINT PRIMARY KEY,
    name       TEXT   NOT NULL,
    applied_ms BIGINT NOT NULL
)";

pub(crate) const SELECT_MIGRATIONS: &str = "SELECT version FROM vb_schema_migrations ORDER BY version";
pub(crate) const INSERT_MIGRATION: &str =
    "INSERT INTO vb_schema_migrations (version, name, applied_ms) VALUES ($1, $2, $3)";

/// Which of `migrations` still have to run, given the versions a database reports. Fails
/// when the database was migrated by a newer Voxbridge: running old code on a newer schema
/// could silently lose data.
pub(crate) fn pending<'m>(
    migrations: &'m [Migration],
    applied: &[i64],
) -> Result<Vec<&'m Migration>, StoreError> {
    let known = migrations.iter().map(|m| m.version).max().unwrap_or(0);
    if let Some(newest) = applied.iter().copied().max().filter(|v| *v > known) {
        return Err(StoreError::Database(format!(
            "the database schema is at version {newest}, newer than this build knows ({known}); \
             upgrade Voxbridge"
        )));
    }
    Ok(migrations.iter().filter(|m| !applied.contains(&m.version)).collect())
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

macro_rules! record_columns {
    () => {
        "SELECT id, org, sobject, key, fields, created_ms, modified_ms FROM records"
    };
}

pub(crate) const SELECT_RECORD: &str = concat!(record_columns!(), " WHERE id = $1 AND org = $2");
pub(crate) const SELECT_BY_KEY: &str =
    concat!(record_columns!(), " WHERE org = $1 AND sobject = $2 AND key = $3 ORDER BY created_ms, seq");
/// The key lookup without `ORDER BY`: with an ORDER BY, PostgreSQL's planner may walk the
/// `(org, sobject, created_ms)` index and filter on the key when its statistics are stale,
/// reading the whole object for every lookup. Without it the key index is the only
/// sensible plan; the few rows are sorted in Rust by `(created_ms, seq)` (column 7).
pub(crate) const SELECT_BY_KEY_UNORDERED: &str =
    "SELECT id, org, sobject, key, fields, created_ms, modified_ms, seq \
     FROM records WHERE org = $1 AND sobject = $2 AND key = $3";
pub(crate) const SELECT_LIST: &str =
    concat!(record_columns!(), " WHERE org = $1 AND sobject = $2 ORDER BY created_ms, seq");
pub(crate) const SELECT_ORGS: &str =
    concat!(record_columns!(), " WHERE sobject = 'Organization' AND org = id ORDER BY created_ms, seq");

pub(crate) const UPDATE_ENTRY_TEXT: &str =
    "UPDATE transcript_entries SET content = $1 WHERE org = $2 AND conversation = $3 AND message_id = $4";

pub(crate) const SELECT_ENTRIES: &str = "SELECT id, org, conversation, message_id, vendor_call_key, \
     sender_type, participant_id, content, start_ms, end_ms, created_ms \
     FROM transcript_entries WHERE conversation = $1 AND org = $2 ORDER BY start_ms, seq";

// Write statements valid in both dialects. Inserts never raise on a duplicate: the row
// count says what happened, so a PostgreSQL transaction is never aborted by an expected
// outcome (see `writer`).
pub(crate) const INSERT_RECORD: &str = "INSERT INTO records \
     (id, org, sobject, key, fields, created_ms, modified_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (id) DO NOTHING";
pub(crate) const UPDATE_FIELDS: &str =
    "UPDATE records SET fields = $1, modified_ms = $2 WHERE id = $3 AND org = $4";
pub(crate) const DELETE_RECORD: &str = "DELETE FROM records WHERE id = $1 AND org = $2";
pub(crate) const PURGE_CLAIMS: &str = "DELETE FROM jti_claims WHERE exp_ms <= $1";

fn id_column(value: String, column: &str) -> Result<SfId, StoreError> {
    SfId::parse(&value).map_err(|e| StoreError::Corrupt(format!("{column} {value:?} is not an id: {e}")))
}

fn column<'r, R, T>(row: &'r R, index: usize) -> Result<T, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(index).map_err(|e| StoreError::Corrupt(format!("column {index}: {e}")))
}

/// Decodes a row selected with the record columns, in their order.
pub(crate) fn record_from_row<R>(row: &R) -> Result<Record, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let id = id_column(column(row, 0)?, "id")?;
    let fields: String = column(row, 4)?;
    let fields: Fields = serde_json::from_str(&fields)
        .map_err(|e| StoreError::Corrupt(format!("fields of record {id} are not a JSON object: {e}")))?;
    Ok(Record {
        org: id_column(column(row, 1)?, "org")?,
        sobject: column(row, 2)?,
        key: column(row, 3)?,
        fields,
        created_ms: column(row, 5)?,
        modified_ms: column(row, 6)?,
        id,
    })
}

/// Decodes a row of [`SELECT_ENTRIES`].
pub(crate) fn entry_from_row<R>(row: &R) -> Result<TranscriptEntry, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(TranscriptEntry {
        id: id_column(column(row, 0)?, "id")?,
        org: id_column(column(row, 1)?, "org")?,
        conversation: id_column(column(row, 2)?, "conversation")?,
        message_id: column(row, 3)?,
        vendor_call_key: column(row, 4)?,
        sender_type: column(row, 5)?,
        participant_id: column(row, 6)?,
        content: column(row, 7)?,
        start_ms: column(row, 8)?,
        end_ms: column(row, 9)?,
        created_ms: column(row, 10)?,
    })
}

/// Reads `(a, b)` text pairs, the `RETURNING` shape of the bulk upserts.
pub(crate) fn key_pair<R>(row: &R) -> Result<(String, String), sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok((row.try_get(0)?, row.try_get(1)?))
}
