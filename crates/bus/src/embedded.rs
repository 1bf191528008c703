//! The embedded backend: the bus's tables (`bus_*`, see `migrations/`) in a SQLite file in
//! WAL mode, either a file of its own (`<data>/bus.db`) or the store's database file.
//!
//! Writes go through one writer task doing group commit, as in the store: callers send jobs
//! to a channel; the writer takes everything queued (up to [`MAX_BATCH`] jobs), runs each
//! job inside a SAVEPOINT of one transaction (so a job that fails, say a put to a missing
//! stream, fails alone), commits once, then answers. A put is acknowledged only after its
//! commit, so it survives a crash of the process (`synchronous=NORMAL`: not necessarily a
//! power loss, like the store).
//!
//! Readers use a small pool of read-only connections. After each commit the writer bumps a
//! watch channel, so consumers waiting for records in this process wake at once; they also
//! poll every [`POLL`] in case another process appends to the same file.

use crate::{
    check_name, check_partition_key, now_ms, Bus, BusError, BusRecord, GroupReader, PutRecord,
    SequenceNumber, StartingPosition, StreamInfo,
};
use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Connection, Executor, Row};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

const MIGRATIONS: &[(i64, &str, &str)] = &[(1, "bus", include_str!("../migrations/0001_bus.sql"))];

/// Most jobs in one transaction.
const MAX_BATCH: usize = 256;
/// Jobs waiting for the writer before callers feel backpressure.
const QUEUE: usize = 4096;
const READERS: u32 = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a waiting consumer goes without looking at the table.
const POLL: Duration = Duration::from_millis(250);

/// The embedded [`Bus`].
pub struct EmbeddedBus {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    reads: SqlitePool,
    tx: mpsc::Sender<Message>,
    /// Bumped after every commit.
    commits: watch::Receiver<u64>,
    done: watch::Receiver<bool>,
}

enum Job {
    Create(String),
    Delete(String),
    Put {
        stream: String,
        records: Vec<PutRecord>,
    },
    Trim {
        stream: String,
        before_ms: i64,
    },
    /// Creates the group's offset from `start` if missing; answers the stored offset.
    Group {
        stream: String,
        group: String,
        start: StartingPosition,
    },
    Commit {
        stream: String,
        group: String,
        seq: u64,
    },
}

enum Answer {
    Flag(bool),
    Seqs(Vec<SequenceNumber>),
    Count(u64),
    Offset(u64),
    Done,
}

enum Message {
    Job(Job, oneshot::Sender<Result<Answer, BusError>>),
    Close,
}

impl EmbeddedBus {
    /// Opens (creating if missing, with parent directories) the database file at `path`,
    /// adds the bus's tables if missing and starts the writer. Needs a Tokio runtime.
    pub async fn open(path: impl AsRef<Path>) -> Result<EmbeddedBus, BusError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                BusError::Backend(format!("cannot create the directory {}: {e}", dir.display()))
            })?;
        }
        let base = SqliteConnectOptions::new().filename(&path).busy_timeout(BUSY_TIMEOUT);
        let writer_options = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .thread_name(|_| "vb-bus-writer".to_string());
        let mut conn = SqliteConnection::connect_with(&writer_options)
            .await
            .map_err(|e| db(&format!("cannot open {}", path.display()), e))?;
        migrate(&mut conn).await?;
        let reads = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(base.read_only(true).thread_name(|id| format!("vb-bus-read-{id}")))
            .await
            .map_err(|e| db(&format!("cannot open {} for reading", path.display()), e))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let (commit_tx, commits) = watch::channel(0);
        let (done_tx, done) = watch::channel(false);
        tokio::spawn(writer(conn, rx, commit_tx, done_tx));
        tracing::info!(path = %path.display(), "embedded bus open");
        Ok(EmbeddedBus { inner: Arc::new(Inner { path, reads, tx, commits, done }) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

impl Inner {
    async fn call(&self, job: Job) -> Result<Answer, BusError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Message::Job(job, reply)).await.map_err(|_| BusError::Closed)?;
        answer.await.map_err(|_| BusError::Closed)?
    }

    async fn stream_exists(&self, name: &str) -> Result<bool, BusError> {
        let row = sqlx::query("SELECT 1 FROM bus_streams WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.reads)
            .await
            .map_err(|e| db("reading streams", e))?;
        Ok(row.is_some())
    }

    async fn records_after(&self, stream: &str, after: u64, max: usize) -> Result<Vec<BusRecord>, BusError> {
        let rows = sqlx::query(
            "SELECT seq, partition_key, data, arrival_ms FROM bus_records \
             WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(stream)
        .bind(to_i64(after))
        .bind(to_i64(max as u64))
        .fetch_all(&self.reads)
        .await
        .map_err(|e| db("reading records", e))?;
        rows.iter().map(record_from_row).collect()
    }
}

fn record_from_row(row: &SqliteRow) -> Result<BusRecord, BusError> {
    let seq: i64 = row.try_get(0).map_err(|e| db("decoding a record", e))?;
    Ok(BusRecord {
        sequence_number: SequenceNumber::new(u64::try_from(seq).unwrap_or(0)),
        partition_key: row.try_get(1).map_err(|e| db("decoding a record", e))?,
        data: row.try_get(2).map_err(|e| db("decoding a record", e))?,
        approximate_arrival_timestamp_ms: row.try_get(3).map_err(|e| db("decoding a record", e))?,
    })
}

/// SQLite integers are signed; sequence numbers and limits beyond `i64::MAX` cannot occur.
fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn db(context: &str, e: sqlx::Error) -> BusError {
    BusError::Backend(format!("{context}: {e}"))
}

#[async_trait]
impl Bus for EmbeddedBus {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn create_stream(&self, name: &str) -> Result<bool, BusError> {
        check_name("stream", name)?;
        match self.inner.call(Job::Create(name.to_string())).await? {
            Answer::Flag(created) => Ok(created),
            _ => Err(mismatch()),
        }
    }

    async fn delete_stream(&self, name: &str) -> Result<bool, BusError> {
        match self.inner.call(Job::Delete(name.to_string())).await? {
            Answer::Flag(deleted) => Ok(deleted),
            _ => Err(mismatch()),
        }
    }

    async fn list_streams(&self) -> Result<Vec<String>, BusError> {
        sqlx::query_scalar("SELECT name FROM bus_streams ORDER BY name")
            .fetch_all(&self.inner.reads)
            .await
            .map_err(|e| db("listing streams", e))
    }

    async fn describe_stream(&self, name: &str) -> Result<StreamInfo, BusError> {
        if !self.inner.stream_exists(name).await? {
            return Err(BusError::StreamNotFound(name.to_string()));
        }
        let row = sqlx::query("SELECT COUNT(*), MIN(seq), MAX(seq) FROM bus_records WHERE stream = ?")
            .bind(name)
            .fetch_one(&self.inner.reads)
            .await
            .map_err(|e| db("describing a stream", e))?;
        let count: i64 = row.try_get(0).map_err(|e| db("describing a stream", e))?;
        let seq = |i: usize| -> Result<Option<SequenceNumber>, BusError> {
            let v: Option<i64> = row.try_get(i).map_err(|e| db("describing a stream", e))?;
            Ok(v.map(|v| SequenceNumber::new(u64::try_from(v).unwrap_or(0))))
        };
        Ok(StreamInfo {
            name: name.to_string(),
            record_count: u64::try_from(count).unwrap_or(0),
            first_sequence: seq(1)?,
            last_sequence: seq(2)?,
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
        if records.is_empty() {
            return Ok(Vec::new());
        }
        match self.inner.call(Job::Put { stream: stream.to_string(), records }).await? {
            Answer::Seqs(seqs) => Ok(seqs),
            _ => Err(mismatch()),
        }
    }

    async fn read(
        &self,
        stream: &str,
        from: StartingPosition,
        max: usize,
    ) -> Result<Vec<BusRecord>, BusError> {
        if !self.inner.stream_exists(stream).await? {
            return Err(BusError::StreamNotFound(stream.to_string()));
        }
        if max == 0 {
            return Ok(Vec::new());
        }
        match from {
            StartingPosition::Latest => Ok(Vec::new()),
            StartingPosition::TrimHorizon => self.inner.records_after(stream, 0, max).await,
            StartingPosition::AfterSequence(seq) => self.inner.records_after(stream, seq.get(), max).await,
            StartingPosition::AtTimestamp(ms) => {
                let rows = sqlx::query(
                    "SELECT seq, partition_key, data, arrival_ms FROM bus_records \
                     WHERE stream = ? AND arrival_ms >= ? ORDER BY seq LIMIT ?",
                )
                .bind(stream)
                .bind(ms)
                .bind(to_i64(max as u64))
                .fetch_all(&self.inner.reads)
                .await
                .map_err(|e| db("reading records", e))?;
                rows.iter().map(record_from_row).collect()
            }
        }
    }

    async fn trim(&self, stream: &str, before_ms: i64) -> Result<u64, BusError> {
        match self.inner.call(Job::Trim { stream: stream.to_string(), before_ms }).await? {
            Answer::Count(n) => Ok(n),
            _ => Err(mismatch()),
        }
    }

    async fn consumer(
        &self,
        stream: &str,
        group: &str,
        start: StartingPosition,
    ) -> Result<Box<dyn GroupReader>, BusError> {
        check_name("group", group)?;
        let job = Job::Group { stream: stream.to_string(), group: group.to_string(), start };
        let cursor = match self.inner.call(job).await? {
            Answer::Offset(seq) => seq,
            _ => return Err(mismatch()),
        };
        Ok(Box::new(EmbeddedReader {
            inner: self.inner.clone(),
            stream: stream.to_string(),
            group: group.to_string(),
            cursor,
            commits: self.inner.commits.clone(),
        }))
    }

    async fn close(&self) {
        let _ = self.inner.tx.send(Message::Close).await;
        let mut done = self.inner.done.clone();
        let _ = done.wait_for(|d| *d).await;
        self.inner.reads.close().await;
    }
}

fn mismatch() -> BusError {
    BusError::Backend("internal error: the writer answered a different request".into())
}

struct EmbeddedReader {
    inner: Arc<Inner>,
    stream: String,
    group: String,
    /// The last sequence number this session returned.
    cursor: u64,
    commits: watch::Receiver<u64>,
}

#[async_trait]
impl GroupReader for EmbeddedReader {
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<BusRecord>, BusError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = Instant::now() + wait;
        loop {
            // Marked seen before the query: a commit after it wakes the wait below.
            self.commits.borrow_and_update();
            let records = self.inner.records_after(&self.stream, self.cursor, max).await?;
            if let Some(last) = records.last() {
                self.cursor = last.sequence_number.get();
                return Ok(records);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(records);
            }
            let nap = (deadline - now).min(POLL);
            // A closed channel (writer gone) just makes this a timed poll.
            let _ = tokio::time::timeout(nap, self.commits.changed()).await;
        }
    }

    async fn commit(&mut self, seq: SequenceNumber) -> Result<(), BusError> {
        if seq.get() > self.cursor {
            return Err(BusError::Invalid(format!("cannot commit {seq}: this session has not read it")));
        }
        let job = Job::Commit { stream: self.stream.clone(), group: self.group.clone(), seq: seq.get() };
        match self.inner.call(job).await? {
            Answer::Done => Ok(()),
            _ => Err(mismatch()),
        }
    }

    async fn committed(&mut self) -> Result<Option<SequenceNumber>, BusError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM bus_offsets WHERE stream = ? AND grp = ?")
            .bind(&self.stream)
            .bind(&self.group)
            .fetch_optional(&self.inner.reads)
            .await
            .map_err(|e| db("reading an offset", e))?;
        Ok(seq.map(|s| SequenceNumber::new(u64::try_from(s).unwrap_or(0))))
    }
}

async fn migrate(conn: &mut SqliteConnection) -> Result<(), BusError> {
    let err = |e| db("migrating the bus tables", e);
    // IMMEDIATE: two processes opening one file at once must not both migrate.
    exec(conn, "BEGIN IMMEDIATE").await.map_err(err)?;
    let result = apply_migrations(conn).await;
    match result {
        Ok(()) => exec(conn, "COMMIT").await.map(drop).map_err(err),
        Err(e) => {
            let _ = exec(conn, "ROLLBACK").await;
            Err(err(e))
        }
    }
}

async fn apply_migrations(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    exec(
        conn,
        "CREATE TABLE IF NOT EXISTS bus_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, \
         applied_ms INTEGER NOT NULL)",
    )
    .await?;
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM bus_migrations").fetch_all(&mut *conn).await?;
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tracing::info!(version, name, "applying bus migration");
        exec(conn, sql).await?;
        sqlx::query("INSERT INTO bus_migrations (version, name, applied_ms) VALUES (?, ?, ?)")
            .bind(version)
            .bind(name)
            .bind(now_ms())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

type Reply = oneshot::Sender<Result<Answer, BusError>>;

/// The writer task (see the module docs).
async fn writer(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Message>,
    commits: watch::Sender<u64>,
    done: watch::Sender<bool>,
) {
    let mut messages = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut messages, MAX_BATCH).await > 0 {
        let mut jobs: Vec<(Job, Reply)> = Vec::with_capacity(messages.len());
        for message in messages.drain(..) {
            match message {
                Message::Job(job, reply) => jobs.push((job, reply)),
                Message::Close => rx.close(),
            }
        }
        if jobs.is_empty() {
            continue;
        }
        let answers = run_batch(&mut conn, &jobs).await;
        commits.send_modify(|n| *n = n.wrapping_add(1));
        for ((_, reply), answer) in jobs.into_iter().zip(answers) {
            // The caller may have gone; the write stands regardless.
            let _ = reply.send(answer);
        }
    }
    let _ = conn.close().await;
    let _ = done.send(true);
}

/// Runs the jobs in one transaction, each in a savepoint; every job gets an answer.
async fn run_batch(conn: &mut SqliteConnection, jobs: &[(Job, Reply)]) -> Vec<Result<Answer, BusError>> {
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE").await {
        let _ = conn.ping().await;
        return jobs.iter().map(|_| Err(db("starting a transaction", e.clone_lossy()))).collect();
    }
    let now = now_ms();
    let mut answers = Vec::with_capacity(jobs.len());
    for (job, _) in jobs {
        answers.push(run_in_savepoint(conn, job, now).await);
    }
    if let Err(e) = exec(conn, "COMMIT").await {
        tracing::error!(error = %e, "bus commit failed");
        let _ = exec(conn, "ROLLBACK").await;
        return jobs.iter().map(|_| Err(db("commit failed", e.clone_lossy()))).collect();
    }
    answers
}

/// One job; a failing job's writes are undone without disturbing the others.
async fn run_in_savepoint(conn: &mut SqliteConnection, job: &Job, now: i64) -> Result<Answer, BusError> {
    exec(conn, "SAVEPOINT job").await.map_err(|e| db("savepoint", e))?;
    let result = run_job(conn, job, now).await;
    let end = if result.is_ok() { "RELEASE job" } else { "ROLLBACK TO job; RELEASE job" };
    exec(conn, end).await.map_err(|e| db("savepoint", e))?;
    result
}

/// A statement without parameters. (`raw_sql(..).execute(&mut *conn)` would make the
/// writer task's future fail the `Send` check.)
async fn exec(conn: &mut SqliteConnection, sql: &str) -> Result<(), sqlx::Error> {
    conn.execute(sqlx::raw_sql(sql)).await.map(drop)
}

/// sqlx errors are not `Clone`; the message is what callers get anyway.
trait CloneLossy {
    fn clone_lossy(&self) -> sqlx::Error;
}

impl CloneLossy for sqlx::Error {
    fn clone_lossy(&self) -> sqlx::Error {
        sqlx::Error::Protocol(self.to_string())
    }
}

/// The stream's `(next_seq, last_arrival_ms)`, or `StreamNotFound`.
async fn stream_row(conn: &mut SqliteConnection, stream: &str) -> Result<(i64, i64), BusError> {
    let row = sqlx::query("SELECT next_seq, last_arrival_ms FROM bus_streams WHERE name = ?")
        .bind(stream)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| db("reading a stream", e))?;
    let row = row.ok_or_else(|| BusError::StreamNotFound(stream.to_string()))?;
    Ok((
        row.try_get(0).map_err(|e| db("reading a stream", e))?,
        row.try_get(1).map_err(|e| db("reading a stream", e))?,
    ))
}

async fn run_job(conn: &mut SqliteConnection, job: &Job, now: i64) -> Result<Answer, BusError> {
    match job {
        Job::Create(name) => {
            let done = sqlx::query(
                "INSERT INTO bus_streams (name, created_ms, next_seq, last_arrival_ms) VALUES (?, ?, 1, 0) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(|e| db("creating a stream", e))?;
            Ok(Answer::Flag(done.rows_affected() == 1))
        }
        Job::Delete(name) => {
            let err = |e| db("deleting a stream", e);
            sqlx::query("DELETE FROM bus_records WHERE stream = ?")
                .bind(name)
                .execute(&mut *conn)
                .await
                .map_err(err)?;
            sqlx::query("DELETE FROM bus_offsets WHERE stream = ?")
                .bind(name)
                .execute(&mut *conn)
                .await
                .map_err(err)?;
            let done = sqlx::query("DELETE FROM bus_streams WHERE name = ?")
                .bind(name)
                .execute(&mut *conn)
                .await
                .map_err(err)?;
            Ok(Answer::Flag(done.rows_affected() == 1))
        }
        Job::Put { stream, records } => {
            let (mut next, last_arrival) = stream_row(conn, stream).await?;
            // Kept non-decreasing even if the wall clock steps back.
            let arrival = now.max(last_arrival);
            let mut seqs = Vec::with_capacity(records.len());
            for r in records {
                sqlx::query(
                    "INSERT INTO bus_records (stream, seq, partition_key, data, arrival_ms) VALUES (?, ?, ?, ?, ?)",
                )
                .bind(stream)
                .bind(next)
                .bind(&r.partition_key)
                .bind(&r.data)
                .bind(arrival)
                .execute(&mut *conn)
                .await
                .map_err(|e| db("appending a record", e))?;
                seqs.push(SequenceNumber::new(u64::try_from(next).unwrap_or(0)));
                next += 1;
            }
            sqlx::query("UPDATE bus_streams SET next_seq = ?, last_arrival_ms = ? WHERE name = ?")
                .bind(next)
                .bind(arrival)
                .bind(stream)
                .execute(&mut *conn)
                .await
                .map_err(|e| db("appending a record", e))?;
            Ok(Answer::Seqs(seqs))
        }
        Job::Trim { stream, before_ms } => {
            stream_row(conn, stream).await?;
            let done = sqlx::query("DELETE FROM bus_records WHERE stream = ? AND arrival_ms < ?")
                .bind(stream)
                .bind(before_ms)
                .execute(&mut *conn)
                .await
                .map_err(|e| db("trimming a stream", e))?;
            Ok(Answer::Count(done.rows_affected()))
        }
        Job::Group { stream, group, start } => {
            let (next, _) = stream_row(conn, stream).await?;
            let err = |e| db("opening a consumer group", e);
            let existing: Option<i64> =
                sqlx::query_scalar("SELECT seq FROM bus_offsets WHERE stream = ? AND grp = ?")
                    .bind(stream)
                    .bind(group)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(err)?;
            if let Some(seq) = existing {
                return Ok(Answer::Offset(u64::try_from(seq).unwrap_or(0)));
            }
            let offset = match start {
                StartingPosition::TrimHorizon => 0,
                StartingPosition::Latest => next - 1,
                StartingPosition::AfterSequence(seq) => to_i64(seq.get()),
                StartingPosition::AtTimestamp(ms) => {
                    let first: Option<i64> = sqlx::query_scalar(
                        "SELECT MIN(seq) FROM bus_records WHERE stream = ? AND arrival_ms >= ?",
                    )
                    .bind(stream)
                    .bind(ms)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(err)?;
                    first.map_or(next - 1, |f| f - 1)
                }
            };
            sqlx::query("INSERT INTO bus_offsets (stream, grp, seq, updated_ms) VALUES (?, ?, ?, ?)")
                .bind(stream)
                .bind(group)
                .bind(offset)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(err)?;
            Ok(Answer::Offset(u64::try_from(offset).unwrap_or(0)))
        }
        Job::Commit { stream, group, seq } => {
            sqlx::query(
                "UPDATE bus_offsets SET seq = MAX(seq, ?), updated_ms = ? WHERE stream = ? AND grp = ?",
            )
            .bind(to_i64(*seq))
            .bind(now)
            .bind(stream)
            .bind(group)
            .execute(&mut *conn)
            .await
            .map_err(|e| db("committing an offset", e))?;
            Ok(Answer::Done)
        }
    }
}
