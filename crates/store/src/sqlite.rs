//! The SQLite backend: one database file in WAL mode, the embedded default.
//!
//! Durability: WAL with `synchronous=NORMAL`. A transaction is written to the WAL file
//! before the caller hears `Ok`, so it survives a crash or kill of the process; only a power
//! loss or an operating-system crash can lose the most recent commits (never corrupting the
//! file), because the WAL is fsynced at checkpoints rather than at every commit. Surviving
//! process crashes is what Voxbridge promises for the embedded backend; deployments that need
//! more run PostgreSQL.
//!
//! Connections: one dedicated writer connection owned by the group-commit writer task
//! (SQLite admits one writer at a time anyway, and `BEGIN IMMEDIATE` takes the write lock
//! up front), plus a pool of read-only connections. WAL lets readers run concurrently with
//! the writer and see every transaction committed before their query started.

use crate::range::{self, Param};
use crate::sql::{self, Migration};
use crate::writer::{Backend, Claim, DbResult, WriterHandle};
use crate::{db_error, Store, StoreError, WriteOp, WriteOutcome};
use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, Executor};
use std::collections::HashSet;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use voxbridge_core::{Record, SfId, TranscriptEntry};

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "initial", sql: include_str!("../migrations/sqlite/0001_initial.sql") },
    Migration {
        version: 2,
        name: "range_indexes",
        sql: include_str!("../migrations/sqlite/0002_range_indexes.sql"),
    },
];

/// Indexed date-times are read with the expression of migration 2.
const DIALECT: range::Dialect =
    range::Dialect { expr: |field| format!("json_extract(fields, '$.{field}')"), quoted: false };

/// How long a connection waits for a lock before failing. Only checkpoints and another
/// process opening the same file can make it wait at all.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read connections; each runs queries on its own SQLite worker thread.
const READERS: u32 = 4;

/// The SQLite [`Store`].
pub struct SqliteStore {
    path: PathBuf,
    reads: SqlitePool,
    writer: WriterHandle,
    stop_checkpoints: tokio::sync::watch::Sender<bool>,
    checkpointer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// How often the checkpointer copies committed WAL pages into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// The named background worker "vb-sqlite-checkpointer": passive checkpoints on its own
/// connection, so the writer's commits never wait for one. A passive checkpoint copies what
/// no reader still needs and never blocks the writer; the WAL is reused from its start once
/// a checkpoint has caught up. A final truncating checkpoint runs at close.
async fn checkpointer(mut conn: SqliteConnection, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Err(e) = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
                    tracing::warn!(error = %e, "SQLite checkpoint failed");
                }
            }
            _ = stopped.changed() => break,
        }
    }
    if let Err(e) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").await {
        tracing::debug!(error = %e, "final SQLite checkpoint did not complete");
    }
    let _ = conn.close().await;
}

impl SqliteStore {
    /// Opens (creating if missing, with its parent directories) the database file at
    /// `path`, brings its schema up to date and starts the writer task. Needs a Tokio
    /// runtime.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                StoreError::Database(format!("cannot create the directory {}: {e}", dir.display()))
            })?;
        }
        let base = SqliteConnectOptions::new().filename(&path).busy_timeout(BUSY_TIMEOUT).foreign_keys(false);

        let writer_options = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            // Savepoints (one per multi-op request in a group commit) spill their statement
            // journals to temp files by default; in memory they cost no file writes.
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-32000")
            // The writer never checkpoints: copying WAL pages into the database would stall
            // every commit behind it. The checkpointer task does it beside the writer.
            .pragma("wal_autocheckpoint", "0")
            .thread_name(|_| "vb-sqlite-writer".to_string());
        let mut conn = SqliteConnection::connect_with(&writer_options)
            .await
            .map_err(|e| db_error(&format!("cannot open {}", path.display()), &e))?;
        migrate(&mut conn).await?;

        // Opened after the writer so the file (and its WAL) exist.
        let reads = SqlitePoolOptions::new()
            .max_connections(READERS)
            // Local file connections do not go stale; the ping cost a thread hand-off per read.
            .test_before_acquire(false)
            .connect_with(base.clone().read_only(true).thread_name(|id| format!("vb-sqlite-read-{id}")))
            .await
            .map_err(|e| db_error(&format!("cannot open {} for reading", path.display()), &e))?;

        let checkpoints = SqliteConnection::connect_with(
            &base.clone().thread_name(|_| "vb-sqlite-checkpointer".to_string()),
        )
        .await
        .map_err(|e| db_error(&format!("cannot open {} for checkpoints", path.display()), &e))?;
        let (stop_checkpoints, stopped) = tokio::sync::watch::channel(false);
        let checkpointer = tokio::spawn(checkpointer(checkpoints, stopped));

        let writer = WriterHandle::spawn(SqliteWriter { conn, options: writer_options });
        tracing::info!(path = %path.display(), "SQLite store open");
        Ok(SqliteStore {
            path,
            reads,
            writer,
            stop_checkpoints,
            checkpointer: Mutex::new(Some(checkpointer)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

async fn migrate(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    let err = |e: sqlx::Error| db_error("migrating the database", &e);
    // IMMEDIATE: two processes opening one file at once must not both migrate.
    sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await.map_err(err)?;
    let result = async {
        sqlx::raw_sql(sql::CREATE_MIGRATIONS_TABLE).execute(&mut *conn).await.map_err(err)?;
        let applied: Vec<i64> =
            sqlx::query_scalar(sql::SELECT_MIGRATIONS).fetch_all(&mut *conn).await.map_err(err)?;
        for m in sql::pending(MIGRATIONS, &applied)? {
            tracing::info!(version = m.version, name = m.name, "applying SQLite migration");
            sqlx::raw_sql(m.sql).execute(&mut *conn).await.map_err(err)?;
            sqlx::query(sql::INSERT_MIGRATION)
                .bind(m.version)
                .bind(m.name)
                .bind(sql::now_ms())
                .execute(&mut *conn)
                .await
                .map_err(err)?;
        }
        Ok::<(), StoreError>(())
    }
    .await;
    match result {
        Ok(()) => sqlx::raw_sql("COMMIT").execute(&mut *conn).await.map(drop).map_err(err),
        Err(e) => {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            Err(e)
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
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
        let rows = sqlx::query(sql::SELECT_BY_KEY)
            .bind(org.as_str())
            .bind(sobject)
            .bind(key)
            .fetch_all(&self.reads)
            .await
            .map_err(|e| db_error("finding records by key", &e))?;
        rows.iter().map(sql::record_from_row).collect()
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
        let _ = self.stop_checkpoints.send(true);
        let task = self.checkpointer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// The writer task's connection.
struct SqliteWriter {
    conn: SqliteConnection,
    options: SqliteConnectOptions,
}

impl SqliteWriter {
    async fn exec(&mut self, statement: &'static str) -> DbResult<()> {
        self.conn.execute(sqlx::raw_sql(statement)).await.map(drop)
    }
}

// Bulk statements take their rows as one JSON array parameter (`json_each`), so a batch of
// any size is one prepared statement and one call into the SQLite worker thread.
const INSERT_ENTRIES: &str = "INSERT INTO transcript_entries \
     (id, org, conversation, message_id, vendor_call_key, sender_type, participant_id, content, \
      start_ms, end_ms, created_ms) \
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, \
            value ->> 6, value ->> 7, value ->> 8, value ->> 9, value ->> 10 \
     FROM json_each($1) WHERE true ORDER BY key \
     ON CONFLICT (conversation, message_id) DO NOTHING \
     RETURNING conversation, message_id";

// A row conflicts when the pair was claimed before; the update (a re-claim) happens only if
// that claim expired at this claimant's `now`, and RETURNING reports inserted or updated rows.
const CLAIM_JTIS: &str = "INSERT INTO jti_claims (issuer, jti, exp_ms, claimed_ms) \
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each($1) WHERE true \
     ON CONFLICT (issuer, jti) DO UPDATE SET exp_ms = excluded.exp_ms, claimed_ms = excluded.claimed_ms \
     WHERE jti_claims.exp_ms <= excluded.claimed_ms \
     RETURNING issuer, jti";

fn encode_error(e: serde_json::Error) -> sqlx::Error {
    sqlx::Error::Encode(Box::new(e))
}

impl Backend for SqliteWriter {
    const NAME: &'static str = "sqlite";

    async fn begin(&mut self) -> DbResult<()> {
        self.exec("BEGIN IMMEDIATE").await
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
        self.exec("RELEASE vb_job").await
    }

    async fn rollback_to_savepoint(&mut self) -> DbResult<()> {
        self.exec("ROLLBACK TO vb_job; RELEASE vb_job").await
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
        sqlx::query_as("SELECT sobject, fields FROM records WHERE id = $1 AND org = $2")
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
        let rows: Vec<_> = entries
            .iter()
            .map(|e| {
                (
                    e.id.as_str(),
                    e.org.as_str(),
                    e.conversation.as_str(),
                    &e.message_id,
                    &e.vendor_call_key,
                    &e.sender_type,
                    &e.participant_id,
                    &e.content,
                    e.start_ms,
                    e.end_ms,
                    e.created_ms,
                )
            })
            .collect();
        let stored = sqlx::query(INSERT_ENTRIES)
            .bind(serde_json::to_string(&rows).map_err(encode_error)?)
            .fetch_all(&mut self.conn)
            .await?;
        let stored: HashSet<(String, String)> = stored.iter().map(sql::key_pair).collect::<DbResult<_>>()?;
        Ok(entries
            .iter()
            .map(|e| stored.contains(&(e.conversation.as_str().to_string(), e.message_id.clone())))
            .collect())
    }

    async fn claim_jtis(&mut self, claims: &[&Claim]) -> DbResult<Vec<bool>> {
        let rows: Vec<_> = claims.iter().map(|c| (&c.issuer, &c.jti, c.exp_ms, c.now_ms)).collect();
        let won = sqlx::query(CLAIM_JTIS)
            .bind(serde_json::to_string(&rows).map_err(encode_error)?)
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
        self.conn.execute("PRAGMA optimize").await.map(|_| ())
    }

    async fn reconnect(&mut self) -> DbResult<()> {
        self.conn = SqliteConnection::connect_with(&self.options).await?;
        Ok(())
    }

    async fn close(self) {
        if let Err(e) = self.conn.close().await {
            tracing::warn!(error = %e, "closing the SQLite writer connection");
        }
    }
}
