//! The PostgreSQL backend.
//!
//! Same design as SQLite: one dedicated writer connection owned by the group-commit writer
//! task, and a pool for reads. A commit is durable as PostgreSQL's `synchronous_commit`
//! setting makes it (on by default: flushed to the server's WAL).
//!
//! Schemas: [`PgStore::connect`] can put the store in its own schema, created if missing
//! and set as `search_path` on every connection, so several stores (or test runs) share
//! one database without seeing each other.
//!
//! Several Voxbridge processes may share one PostgreSQL store: writes lock what they
//! read-modify-write (`SELECT ... FOR UPDATE`), upserts settle concurrent inserts, and
//! migrations run under an advisory lock.

use crate::range::{self, Param};
use crate::sql::{self, Migration};
use crate::writer::{Backend, Claim, DbResult, WriterHandle};
use crate::{db_error, Store, StoreError, WriteOp, WriteOutcome};
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, Row};
use std::collections::HashSet;
use std::ops::Bound;
use std::str::FromStr;
use std::sync::Arc;
use voxbridge_core::{Record, SfId, TranscriptEntry};

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "initial", sql: include_str!("../migrations/postgres/0001_initial.sql") },
    Migration {
        version: 2,
        name: "range_indexes",
        sql: include_str!("../migrations/postgres/0002_range_indexes.sql"),
    },
];

/// Indexed date-times are read with the expression of migration 2: the value's JSON text,
/// quotes included. PostgreSQL text cannot hold NUL, so parsing JSON with a `\u0000`
/// escape anywhere in it fails (which would fail the write); the expression first turns
/// those escapes into `\u0020`, harmless for dates and still valid JSON wherever the six
/// characters appear. Byte order (`COLLATE "C"`): canonical date-times sort by time that
/// way whatever the database's default collation.
const DIALECT: range::Dialect = range::Dialect {
    expr: |field| {
        format!("(((replace(fields, E'\\\\u0000', E'\\\\u0020')::json -> '{field}')::text) COLLATE \"C\")")
    },
    quoted: true,
};

/// Read connections.
const READERS: u32 = 8;

/// The PostgreSQL [`Store`].
pub struct PgStore {
    schema: Option<String>,
    reads: PgPool,
    writer: WriterHandle,
}

impl PgStore {
    /// Connects to the database at `url` (a `postgres://` URL as the driver understands
    /// it), brings the schema up to date and starts the writer task. With `schema`, the
    /// store lives in that schema (lower-case letters, digits, `_`; created if missing).
    /// Needs a Tokio runtime.
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<PgStore, StoreError> {
        if let Some(name) = schema {
            check_schema_name(name)?;
        }
        let options = PgConnectOptions::from_str(url).map_err(|e| db_error("invalid PostgreSQL URL", &e))?;
        let set_path: Option<Arc<str>> = schema.map(|s| Arc::from(format!("SET search_path TO \"{s}\"")));

        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(|e| db_error("cannot connect to PostgreSQL", &e))?;
        if let Some(name) = schema {
            conn.execute(format!("CREATE SCHEMA IF NOT EXISTS \"{name}\"").as_str())
                .await
                .map_err(|e| db_error("cannot create the schema", &e))?;
        }
        let mut writer = PgWriter { conn, options: options.clone(), set_path: set_path.clone() };
        writer.enter_schema().await.map_err(|e| db_error("cannot set the search path", &e))?;
        migrate(&mut writer.conn).await?;

        let reads = PgPoolOptions::new()
            .max_connections(READERS)
            // A broken connection fails its query and is replaced; pinging before every
            // read cost a round trip per request.
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                let set_path = set_path.clone();
                Box::pin(async move {
                    if let Some(set_path) = set_path {
                        conn.execute(&*set_path).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| db_error("cannot connect to PostgreSQL", &e))?;

        let writer = WriterHandle::spawn(writer);
        tracing::info!(schema = schema.unwrap_or("(search_path default)"), "PostgreSQL store open");
        Ok(PgStore { schema: schema.map(str::to_string), reads, writer })
    }

    /// The schema given to [`PgStore::connect`], if any.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }
}

/// Schema names are interpolated into SQL, so they are restricted to a safe alphabet.
fn check_schema_name(name: &str) -> Result<(), StoreError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if valid {
        Ok(())
    } else {
        Err(StoreError::Database(format!(
            "invalid schema name {name:?}: use up to 63 lower-case letters, digits and _, not starting with a digit"
        )))
    }
}

async fn migrate(conn: &mut PgConnection) -> Result<(), StoreError> {
    let err = |e: sqlx::Error| db_error("migrating the database", &e);
    let mut tx = conn.begin().await.map_err(err)?;
    // Serializes processes migrating the same schema at once (the lock ends with the
    // transaction); CREATE TABLE IF NOT EXISTS alone races.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('voxbridge-migrate:' || current_schema()))")
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    sqlx::raw_sql(sql::CREATE_MIGRATIONS_TABLE).execute(&mut *tx).await.map_err(err)?;
    let applied: Vec<i64> =
        sqlx::query_scalar(sql::SELECT_MIGRATIONS).fetch_all(&mut *tx).await.map_err(err)?;
    for m in sql::pending(MIGRATIONS, &applied)? {
        tracing::info!(version = m.version, name = m.name, "applying PostgreSQL migration");
        sqlx::raw_sql(m.sql).execute(&mut *tx).await.map_err(err)?;
        sqlx::query(sql::INSERT_MIGRATION)
            .bind(m.version)
            .bind(m.name)
            .bind(sql::now_ms())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
    }
    tx.commit().await.map_err(err)
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn apply(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>, StoreError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        self.writer.apply(ops).await
    }

    async fn get(&self, org: &SfId, id: &SfId) -> Result<Option<Record>, StoreError> {
        let row = sqlx::query(sql::SELECT_RECORD)
            .bind(id.as_str())
            .bind(org.as_str())
            .fetch_optional(&self.reads)
            .await
            .map_err(|e| db_error("reading a record", &e))?;
        row.as_ref().map(sql::record_from_row).transpose()
    }

    async fn find_by_key(&self, org: &SfId, sobject: &str, key: &str) -> Result<Vec<Record>, StoreError> {
        let rows = sqlx::query(sql::SELECT_BY_KEY_UNORDERED)
            .bind(org.as_str())
            .bind(sobject)
            .bind(key)
            .fetch_all(&self.reads)
            .await
            .map_err(|e| db_error("finding records by key", &e))?;
        let mut keyed = rows
            .iter()
            .map(|row| Ok((sql::record_from_row(row)?, row.try_get::<i64, _>(7).unwrap_or(0))))
            .collect::<Result<Vec<(Record, i64)>, StoreError>>()?;
        keyed.sort_by_key(|(r, seq)| (r.created_ms, *seq));
        Ok(keyed.into_iter().map(|(r, _)| r).collect())
    }

    async fn find_range(
        &self,
        org: &SfId,
        sobject: &str,
        field: &str,
        lower: Bound<i64>,
        upper: Bound<i64>,
        limit: Option<u64>,
    ) -> Result<Vec<Record>, StoreError> {
        let column = range::column(sobject, field)
            .ok_or_else(|| StoreError::Database(format!("{sobject}.{field} has no range index")))?;
        let Some((text, params)) = range::range_select(sobject, column, lower, upper, limit, &DIALECT) else {
            return Ok(Vec::new());
        };
        let mut query = sqlx::query(&text).bind(org.as_str());
        for p in params {
            query = match p {
                Param::Text(s) => query.bind(s),
                Param::Int(n) => query.bind(n),
            };
        }
        let rows =
            query.fetch_all(&self.reads).await.map_err(|e| db_error("finding records in a range", &e))?;
        rows.iter().map(sql::record_from_row).collect()
    }

    async fn list(&self, org: &SfId, sobject: &str) -> Result<Vec<Record>, StoreError> {
        let rows = sqlx::query(sql::SELECT_LIST)
            .bind(org.as_str())
            .bind(sobject)
            .fetch_all(&self.reads)
            .await
            .map_err(|e| db_error("listing records", &e))?;
        rows.iter().map(sql::record_from_row).collect()
    }

    async fn orgs(&self) -> Result<Vec<Record>, StoreError> {
        let rows = sqlx::query(sql::SELECT_ORGS)
            .fetch_all(&self.reads)
            .await
            .map_err(|e| db_error("listing organizations", &e))?;
        rows.iter().map(sql::record_from_row).collect()
    }

    async fn append_entries(&self, entries: Vec<TranscriptEntry>) -> Result<Vec<bool>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        self.writer.append(entries).await
    }

    async fn edit_entries(
        &self,
        org: &SfId,
        conversation: &SfId,
        edits: Vec<(String, String)>,
    ) -> Result<Vec<bool>, StoreError> {
        if edits.is_empty() {
            return Ok(Vec::new());
        }
        self.writer.edit_entries(org.clone(), conversation.clone(), edits).await
    }

    async fn entries(&self, org: &SfId, conversation: &SfId) -> Result<Vec<TranscriptEntry>, StoreError> {
        let rows = sqlx::query(sql::SELECT_ENTRIES)
            .bind(conversation.as_str())
            .bind(org.as_str())
            .fetch_all(&self.reads)
            .await
            .map_err(|e| db_error("reading transcript entries", &e))?;
        rows.iter().map(sql::entry_from_row).collect()
    }

    async fn claim_jti(&self, issuer: &str, jti: &str, exp_ms: i64, now_ms: i64) -> Result<bool, StoreError> {
        self.writer.claim(Claim { issuer: issuer.to_string(), jti: jti.to_string(), exp_ms, now_ms }).await
    }

    async fn close(&self) {
        self.writer.close().await;
        self.reads.close().await;
    }
}

/// The writer task's connection.
struct PgWriter {
    conn: PgConnection,
    options: PgConnectOptions,
    set_path: Option<Arc<str>>,
}

impl PgWriter {
    /// Simple-protocol statement: one round trip, nothing to prepare.
    async fn exec(&mut self, statement: &'static str) -> DbResult<()> {
        self.conn.execute(sqlx::raw_sql(statement)).await.map(drop)
    }

    async fn enter_schema(&mut self) -> DbResult<()> {
        if let Some(set_path) = self.set_path.clone() {
            self.conn.execute(&*set_path).await?;
        }
        Ok(())
    }
}

// Bulk statements take their rows as parallel arrays (UNNEST), so a batch of any size is
// one prepared statement and one round trip. WITH ORDINALITY keeps the callers' order for
// the insertion sequence.
const INSERT_ENTRIES: &str = "INSERT INTO transcript_entries \
     (id, org, conversation, message_id, vendor_call_key, sender_type, participant_id, content, \
      start_ms, end_ms, created_ms) \
     SELECT id, org, conversation, message_id, vendor_call_key, sender_type, participant_id, content, \
            start_ms, end_ms, created_ms \
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
                 $8::text[], $9::int8[], $10::int8[], $11::int8[]) \
          WITH ORDINALITY AS t(id, org, conversation, message_id, vendor_call_key, sender_type, \
                               participant_id, content, start_ms, end_ms, created_ms, ord) \
     ORDER BY ord \
     ON CONFLICT (conversation, message_id) DO NOTHING \
     RETURNING conversation, message_id";

// A row conflicts when the pair was claimed before; the update (a re-claim) happens only if
// that claim expired at this claimant's `now`, and RETURNING reports inserted or updated rows.
const CLAIM_JTIS: &str = "INSERT INTO jti_claims (issuer, jti, exp_ms, claimed_ms) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[]) \
     ON CONFLICT (issuer, jti) DO UPDATE SET exp_ms = EXCLUDED.exp_ms, claimed_ms = EXCLUDED.claimed_ms \
     WHERE jti_claims.exp_ms <= EXCLUDED.claimed_ms \
     RETURNING issuer, jti";

impl Backend for PgWriter {
    const NAME: &'static str = "postgres";

    async fn begin(&mut self) -> DbResult<()> {
        self.exec("BEGIN").await
    }

    async fn commit(&mut self) -> DbResult<()> {
        self.exec("COMMIT").await
    }

    async fn rollback(&mut self) -> DbResult<()> {
        self.exec("ROLLBACK").await
    }

    async fn savepoint(&mut self) -> DbResult<()> {
        self.exec("SAVEPOINT vb_job").await
    }

    async fn release_savepoint(&mut self) -> DbResult<()> {
        self.exec("RELEASE SAVEPOINT vb_job").await
    }

    async fn rollback_to_savepoint(&mut self) -> DbResult<()> {
        self.exec("ROLLBACK TO SAVEPOINT vb_job; RELEASE SAVEPOINT vb_job").await
    }

    async fn insert_record(&mut self, record: &Record, fields: &str) -> DbResult<bool> {
        let done = sqlx::query(sql::INSERT_RECORD)
            .bind(record.id.as_str())
            .bind(record.org.as_str())
            .bind(record.sobject.as_str())
            .bind(record.key.as_deref())
            .bind(fields)
            .bind(record.created_ms)
            .bind(record.modified_ms)
            .execute(&mut self.conn)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_fields(&mut self, org: &SfId, id: &SfId) -> DbResult<Option<(String, String)>> {
        // FOR UPDATE: another process must not merge into the same record between our read
        // and our write.
        sqlx::query_as("SELECT sobject, fields FROM records WHERE id = $1 AND org = $2 FOR UPDATE")
            .bind(id.as_str())
            .bind(org.as_str())
            .fetch_optional(&mut self.conn)
            .await
    }

    async fn update_fields(&mut self, org: &SfId, id: &SfId, fields: &str, now_ms: i64) -> DbResult<bool> {
        let done = sqlx::query(sql::UPDATE_FIELDS)
            .bind(fields)
            .bind(now_ms)
            .bind(id.as_str())
            .bind(org.as_str())
            .execute(&mut self.conn)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_record(&mut self, org: &SfId, id: &SfId) -> DbResult<bool> {
        let done = sqlx::query(sql::DELETE_RECORD)
            .bind(id.as_str())
            .bind(org.as_str())
            .execute(&mut self.conn)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_entries(&mut self, entries: &[&TranscriptEntry]) -> DbResult<Vec<bool>> {
        let text = |f: fn(&TranscriptEntry) -> &str| entries.iter().map(|e| f(e)).collect::<Vec<&str>>();
        let int = |f: fn(&TranscriptEntry) -> i64| entries.iter().map(|e| f(e)).collect::<Vec<i64>>();
        let stored = sqlx::query(INSERT_ENTRIES)
            .bind(text(|e| e.id.as_str()))
            .bind(text(|e| e.org.as_str()))
            .bind(text(|e| e.conversation.as_str()))
            .bind(text(|e| e.message_id.as_str()))
            .bind(text(|e| e.vendor_call_key.as_str()))
            .bind(text(|e| e.sender_type.as_str()))
            .bind(text(|e| e.participant_id.as_str()))
            .bind(text(|e| e.content.as_str()))
            .bind(int(|e| e.start_ms))
            .bind(int(|e| e.end_ms))
            .bind(int(|e| e.created_ms))
            .fetch_all(&mut self.conn)
            .await?;
        let stored: HashSet<(String, String)> = stored.iter().map(sql::key_pair).collect::<DbResult<_>>()?;
        Ok(entries
            .iter()
            .map(|e| stored.contains(&(e.conversation.as_str().to_string(), e.message_id.clone())))
            .collect())
    }

    async fn claim_jtis(&mut self, claims: &[&Claim]) -> DbResult<Vec<bool>> {
        let won = sqlx::query(CLAIM_JTIS)
            .bind(claims.iter().map(|c| c.issuer.as_str()).collect::<Vec<_>>())
            .bind(claims.iter().map(|c| c.jti.as_str()).collect::<Vec<_>>())
            .bind(claims.iter().map(|c| c.exp_ms).collect::<Vec<_>>())
            .bind(claims.iter().map(|c| c.now_ms).collect::<Vec<_>>())
            .fetch_all(&mut self.conn)
            .await?;
        let won: HashSet<(String, String)> = won.iter().map(sql::key_pair).collect::<DbResult<_>>()?;
        Ok(claims.iter().map(|c| won.contains(&(c.issuer.clone(), c.jti.clone()))).collect())
    }

    async fn purge_claims(&mut self, now_ms: i64) -> DbResult<u64> {
        let done = sqlx::query(sql::PURGE_CLAIMS).bind(now_ms).execute(&mut self.conn).await?;
        Ok(done.rows_affected())
    }

    async fn update_entry_text(
        &mut self,
        org: &SfId,
        conversation: &SfId,
        message_id: &str,
        content: &str,
    ) -> DbResult<bool> {
        let done = sqlx::query(sql::UPDATE_ENTRY_TEXT)
            .bind(content)
            .bind(org.as_str())
            .bind(conversation.as_str())
            .bind(message_id)
            .execute(&mut self.conn)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn ping(&mut self) -> DbResult<()> {
        self.conn.ping().await
    }

    async fn refresh_statistics(&mut self) -> DbResult<()> {
        self.conn.execute("ANALYZE records, transcript_entries").await.map(|_| ())
    }

    async fn reconnect(&mut self) -> DbResult<()> {
        self.conn = PgConnection::connect_with(&self.options).await?;
        self.enter_schema().await
    }

    async fn close(self) {
        if let Err(e) = self.conn.close().await {
            tracing::warn!(error = %e, "closing the PostgreSQL writer connection");
        }
    }
}
