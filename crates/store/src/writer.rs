//! Group commit: one background writer per store turns many concurrent small writes into
//! few transactions.
//!
//! Why: a durable commit costs a log write (SQLite's WAL, PostgreSQL's WAL flush plus a
//! round trip) however small the transaction. With hundreds of concurrent HTTP requests
//! each doing one small write, committing them one at a time caps throughput at the commit
//! rate. So every write method sends a job to a channel; the writer task takes the first
//! waiting job, drains whatever else is queued (up to [`MAX_BATCH`] jobs), runs them all in
//! one transaction on its own connection, commits, and only then answers each caller. Under
//! light load a batch is a single job, so latency does not suffer.
//!
//! Keeping callers in one batch independent:
//! * expected outcomes (duplicate id, missing record, duplicate transcript message, a jti
//!   still live) never raise database errors: statements use `ON CONFLICT` and row counts,
//!   so the transaction stays usable (PostgreSQL aborts a transaction on any error);
//! * an `apply` of several ops runs inside a SAVEPOINT; if one of its ops fails, the writer
//!   rolls back to the savepoint and only that caller gets the error. A single-op `apply`
//!   needs no savepoint: an op that fails has written nothing;
//! * an unexpected database error anywhere rolls the whole batch back, and the writer runs
//!   it again in halves (recursively), so only a job that really fails reports it;
//! * a failed COMMIT fails every job of the batch: none of it is committed (re-running
//!   could misreport writes whose commit outcome is unknown).
//!
//! The writer ends once every handle is dropped or [`WriterHandle::close`] is called, after
//! finishing the jobs already queued.

use crate::{db_error, range, StoreError, WriteOp, WriteOutcome};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;
use voxbridge_core::{Fields, Record, SfId, TranscriptEntry};

/// Most jobs in one transaction. Bounds the latency one batch adds and the size of the bulk
/// statements.
pub(crate) const MAX_BATCH: usize = 512;

/// Jobs waiting for the writer before callers feel backpressure.
const QUEUE: usize = 8192;

/// Expired jti claims are deleted at most this often (in the callers' clock).
const PURGE_EVERY_MS: i64 = 60_000;

pub(crate) type DbResult<T> = Result<T, sqlx::Error>;

/// One token-id claim (see `Store::claim_jti`).
#[derive(Debug)]
pub(crate) struct Claim {
    pub issuer: String,
    pub jti: String,
    pub exp_ms: i64,
    pub now_ms: i64,
}

/// What a backend's writer connection can do. Each method is one or a few statements on
/// the dedicated writer connection; transactions are driven by the batch logic here.
pub(crate) trait Backend: Send + 'static {
    /// `sqlite` or `postgres`, for the task's tracing span.
    const NAME: &'static str;

    fn begin(&mut self) -> impl Future<Output = DbResult<()>> + Send;
    fn commit(&mut self) -> impl Future<Output = DbResult<()>> + Send;
    fn rollback(&mut self) -> impl Future<Output = DbResult<()>> + Send;
    fn savepoint(&mut self) -> impl Future<Output = DbResult<()>> + Send;
    fn release_savepoint(&mut self) -> impl Future<Output = DbResult<()>> + Send;
    /// Undoes everything since the savepoint and releases it.
    fn rollback_to_savepoint(&mut self) -> impl Future<Output = DbResult<()>> + Send;

    /// `false` if a record with this id exists (nothing written).
    fn insert_record(&mut self, record: &Record, fields: &str)
        -> impl Future<Output = DbResult<bool>> + Send;
    /// The type and fields JSON of a record, locked for update where the database needs that.
    fn record_fields(
        &mut self,
        org: &SfId,
        id: &SfId,
    ) -> impl Future<Output = DbResult<Option<(String, String)>>> + Send;
    fn update_fields(
        &mut self,
        org: &SfId,
        id: &SfId,
        fields: &str,
        now_ms: i64,
    ) -> impl Future<Output = DbResult<bool>> + Send;
    fn delete_record(&mut self, org: &SfId, id: &SfId) -> impl Future<Output = DbResult<bool>> + Send;

    /// Inserts entries whose `(conversation, message_id)` pairs are distinct, in order;
    /// for each, `true` if stored, `false` if that pair was already stored.
    fn insert_entries(
        &mut self,
        entries: &[&TranscriptEntry],
    ) -> impl Future<Output = DbResult<Vec<bool>>> + Send;
    /// Replaces the text of one entry; `true` if it exists.
    fn update_entry_text(
        &mut self,
        org: &SfId,
        conversation: &SfId,
        message_id: &str,
        content: &str,
    ) -> impl Future<Output = DbResult<bool>> + Send;
    /// Claims distinct `(issuer, jti)` pairs; for each, whether the claim won.
    fn claim_jtis(&mut self, claims: &[&Claim]) -> impl Future<Output = DbResult<Vec<bool>>> + Send;
    fn purge_claims(&mut self, now_ms: i64) -> impl Future<Output = DbResult<u64>> + Send;

    fn ping(&mut self) -> impl Future<Output = DbResult<()>> + Send;
    /// Refreshes the query planner's statistics (outside any transaction). PostgreSQL
    /// plans badly from stale statistics, and autovacuum may be off or late.
    fn refresh_statistics(&mut self) -> impl Future<Output = DbResult<()>> + Send;
    /// Replaces a broken writer connection.
    fn reconnect(&mut self) -> impl Future<Output = DbResult<()>> + Send;
    fn close(self) -> impl Future<Output = ()> + Send;
}

enum Request {
    Apply(Vec<WriteOp>),
    Append(Vec<TranscriptEntry>),
    Claim(Claim),
    /// New texts of existing entries of one conversation: `(org, conversation, [(message id, text)])`.
    EditEntries(SfId, SfId, Vec<(String, String)>),
}

enum Answer {
    Applied(Vec<WriteOutcome>),
    Appended(Vec<bool>),
    Claimed(bool),
    Edited(Vec<bool>),
}

type Reply = oneshot::Sender<Result<Answer, StoreError>>;

enum Message {
    Job(Request, Reply),
    Close,
}

/// The store's end of the writer: cheap to share, one per store.
pub(crate) struct WriterHandle {
    tx: mpsc::Sender<Message>,
    done: watch::Receiver<bool>,
}

impl WriterHandle {
    /// Starts the writer task on the current Tokio runtime.
    pub fn spawn<B: Backend>(backend: B) -> WriterHandle {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (done_tx, done) = watch::channel(false);
        let span = tracing::info_span!("store_writer", backend = B::NAME);
        tokio::spawn(run(backend, rx, done_tx).instrument(span));
        WriterHandle { tx, done }
    }

    async fn call(&self, request: Request) -> Result<Answer, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Message::Job(request, reply))
            .await
            .map_err(|_| StoreError::Database("the store is closed".into()))?;
        answer.await.map_err(|_| StoreError::Database("the store writer stopped".into()))?
    }

    pub async fn apply(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>, StoreError> {
        for op in &ops {
            if let WriteOp::Insert(r) = op {
                no_nul("sObject type", &r.sobject)?;
                no_nul("key", r.key.as_deref().unwrap_or(""))?;
            }
        }
        match self.call(Request::Apply(ops)).await? {
            Answer::Applied(out) => Ok(out),
            _ => Err(mismatch()),
        }
    }

    pub async fn append(&self, entries: Vec<TranscriptEntry>) -> Result<Vec<bool>, StoreError> {
        for e in &entries {
            no_nul("message id", &e.message_id)?;
            no_nul("vendor call key", &e.vendor_call_key)?;
            no_nul("sender type", &e.sender_type)?;
            no_nul("participant id", &e.participant_id)?;
            no_nul("content", &e.content)?;
        }
        match self.call(Request::Append(entries)).await? {
            Answer::Appended(out) => Ok(out),
            _ => Err(mismatch()),
        }
    }

    pub async fn edit_entries(
        &self,
        org: SfId,
        conversation: SfId,
        edits: Vec<(String, String)>,
    ) -> Result<Vec<bool>, StoreError> {
        for (id, text) in &edits {
            no_nul("message id", id)?;
            no_nul("content", text)?;
        }
        match self.call(Request::EditEntries(org, conversation, edits)).await? {
            Answer::Edited(out) => Ok(out),
            _ => Err(mismatch()),
        }
    }

    pub async fn claim(&self, claim: Claim) -> Result<bool, StoreError> {
        no_nul("issuer", &claim.issuer)?;
        no_nul("token id", &claim.jti)?;
        match self.call(Request::Claim(claim)).await? {
            Answer::Claimed(out) => Ok(out),
            _ => Err(mismatch()),
        }
    }

    /// Asks the writer to finish the queued jobs and stop, and waits until it has closed
    /// its connection.
    pub async fn close(&self) {
        // Fails only if the writer already stopped taking messages; either way, wait.
        let _ = self.tx.send(Message::Close).await;
        let mut done = self.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }
}

/// PostgreSQL cannot store NUL characters in text, SQLite can: both refuse them, so the
/// backends behave alike and such a value never reaches (and fails) a shared batch. Record
/// fields are exempt: their JSON encoding escapes NUL.
fn no_nul(what: &str, value: &str) -> Result<(), StoreError> {
    if value.contains('\0') {
        return Err(StoreError::Database(format!(
            "the {what} contains a NUL character, which cannot be stored"
        )));
    }
    Ok(())
}

fn mismatch() -> StoreError {
    StoreError::Database("internal error: the writer answered a different request".into())
}

struct State {
    last_purge_ms: Option<i64>,
    /// Jobs committed since the planner statistics were last refreshed, and the size of
    /// the next refresh interval (it doubles, so a growing table is re-analysed at 1k, 2k,
    /// 4k… writes and then every `MAX_ANALYZE_EVERY`).
    since_analyze: usize,
    analyze_every: usize,
}

const FIRST_ANALYZE_AFTER: usize = 1_000;
const MAX_ANALYZE_EVERY: usize = 100_000;

async fn run<B: Backend>(mut backend: B, mut rx: mpsc::Receiver<Message>, done: watch::Sender<bool>) {
    let mut state = State { last_purge_ms: None, since_analyze: 0, analyze_every: FIRST_ANALYZE_AFTER };
    let mut messages = Vec::with_capacity(MAX_BATCH);
    // `recv_many` waits for the first message, then takes whatever else is queued. After
    // `close` it still returns what was queued before, then 0.
    while rx.recv_many(&mut messages, MAX_BATCH).await > 0 {
        let mut jobs = Vec::with_capacity(messages.len());
        for message in messages.drain(..) {
            match message {
                Message::Job(request, reply) => jobs.push((request, reply)),
                Message::Close => rx.close(),
            }
        }
        if !jobs.is_empty() {
            state.since_analyze += jobs.len();
            process(&mut backend, jobs, &mut state).await;
            if state.since_analyze >= state.analyze_every {
                state.since_analyze = 0;
                state.analyze_every = (state.analyze_every * 2).min(MAX_ANALYZE_EVERY);
                if let Err(e) = backend.refresh_statistics().await {
                    tracing::warn!(error = %e, "refreshing planner statistics failed");
                }
            }
        }
    }
    backend.close().await;
    tracing::debug!("store writer stopped");
    let _ = done.send(true);
}

async fn process<B: Backend>(b: &mut B, jobs: Vec<(Request, Reply)>, state: &mut State) {
    let requests: Vec<&Request> = jobs.iter().map(|(r, _)| r).collect();
    let mut answers: Vec<Option<Result<Answer, StoreError>>> = requests.iter().map(|_| None).collect();
    // Slices `start..end` of the batch still to run, the next one last. A slice whose
    // statements fail is retried in halves, so one bad job costs about 2·log2(batch) extra
    // transactions rather than one per job, and the others' writes still commit.
    let mut todo = vec![(0, requests.len())];
    while let Some((start, end)) = todo.pop() {
        match run_batch(b, &requests[start..end], state).await {
            Ok(done) => {
                for (slot, answer) in answers[start..end].iter_mut().zip(done) {
                    *slot = Some(answer);
                }
            }
            Err(Failure::Commit(e)) => {
                tracing::error!(error = %e, jobs = end - start, "commit failed");
                recover(b).await;
                for slot in &mut answers[start..end] {
                    *slot = Some(Err(db_error("commit failed", &e)));
                }
            }
            Err(Failure::Statement(e)) if end - start == 1 => {
                tracing::warn!(error = %e, "write failed");
                recover(b).await;
                answers[start] = Some(Err(db_error("write failed", &e)));
            }
            Err(Failure::Statement(e)) => {
                tracing::warn!(error = %e, jobs = end - start, "batch failed; retrying it in halves");
                recover(b).await;
                let mid = start + (end - start) / 2;
                todo.push((mid, end));
                todo.push((start, mid));
            }
        }
    }
    drop(requests);
    for ((_, reply), answer) in jobs.into_iter().zip(answers) {
        // The caller may have gone away (request cancelled); the write stands regardless.
        let _ = reply.send(answer.unwrap_or_else(|| Err(mismatch())));
    }
}

/// Checks the writer connection after a failure and replaces it if it is gone.
async fn recover<B: Backend>(b: &mut B) {
    if b.ping().await.is_err() {
        match b.reconnect().await {
            Ok(()) => tracing::info!("store writer reconnected"),
            Err(e) => tracing::error!(error = %e, "store writer cannot reconnect"),
        }
    }
}

enum Failure {
    /// A statement failed; the transaction was rolled back and nothing is committed.
    Statement(sqlx::Error),
    /// COMMIT failed: nothing is committed (or, if the connection broke, unknown).
    Commit(sqlx::Error),
}

/// Runs `requests` in one transaction and commits.
async fn run_batch<B: Backend>(
    b: &mut B,
    requests: &[&Request],
    state: &mut State,
) -> Result<Vec<Result<Answer, StoreError>>, Failure> {
    // A batch of transcript appends only is a single INSERT statement, atomic and durable
    // on its own in autocommit: BEGIN and COMMIT would only add two round trips.
    if requests.iter().all(|r| matches!(r, Request::Append(_))) {
        return run_requests(b, requests, state).await.map_err(Failure::Statement);
    }
    b.begin().await.map_err(Failure::Statement)?;
    let answers = match run_requests(b, requests, state).await {
        Ok(answers) => answers,
        Err(e) => {
            // SQLite ends the transaction by itself on some errors; a failing ROLLBACK then
            // only says so.
            let _ = b.rollback().await;
            return Err(Failure::Statement(e));
        }
    };
    if let Err(e) = b.commit().await {
        let _ = b.rollback().await;
        return Err(Failure::Commit(e));
    }
    Ok(answers)
}

/// The statements of one batch, inside its transaction. Claims, transcript entries and
/// records live in separate tables, so running each kind together (in arrival order within
/// the kind) is indistinguishable from running the jobs strictly in arrival order.
async fn run_requests<B: Backend>(
    b: &mut B,
    requests: &[&Request],
    state: &mut State,
) -> DbResult<Vec<Result<Answer, StoreError>>> {
    let mut answers: Vec<Option<Result<Answer, StoreError>>> = requests.iter().map(|_| None).collect();

    let claims: Vec<(usize, &Claim)> = requests
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            Request::Claim(c) => Some((i, c)),
            _ => None,
        })
        .collect();
    if !claims.is_empty() {
        for (i, won) in claim_all(b, &claims, state).await? {
            answers[i] = Some(Ok(Answer::Claimed(won)));
        }
    }

    let appends: Vec<(usize, &[TranscriptEntry])> = requests
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            Request::Append(e) => Some((i, e.as_slice())),
            _ => None,
        })
        .collect();
    if !appends.is_empty() {
        for (i, stored) in append_all(b, &appends).await? {
            answers[i] = Some(Ok(Answer::Appended(stored)));
        }
    }

    for (i, request) in requests.iter().enumerate() {
        if let Request::EditEntries(org, conversation, edits) = request {
            let mut done = Vec::with_capacity(edits.len());
            for (id, text) in edits {
                done.push(b.update_entry_text(org, conversation, id, text).await?);
            }
            answers[i] = Some(Ok(Answer::Edited(done)));
        }
    }

    for (i, request) in requests.iter().enumerate() {
        let Request::Apply(ops) = request else { continue };
        let guarded = ops.len() > 1;
        if guarded {
            b.savepoint().await?;
        }
        match apply_ops(b, ops).await {
            Ok(outcomes) => {
                if guarded {
                    b.release_savepoint().await?;
                }
                answers[i] = Some(Ok(Answer::Applied(outcomes)));
            }
            Err(OpError::Store(e)) => {
                if guarded {
                    b.rollback_to_savepoint().await?;
                }
                answers[i] = Some(Err(e));
            }
            Err(OpError::Db(e)) => return Err(e),
        }
    }

    Ok(answers.into_iter().map(|a| a.unwrap_or_else(|| Err(mismatch()))).collect())
}

/// Claims in arrival order. The bulk statement needs distinct keys, so the k-th claim of
/// a key within the batch goes in round k; rounds run in order, which keeps the outcome
/// identical to claiming one at a time.
async fn claim_all<B: Backend>(
    b: &mut B,
    claims: &[(usize, &Claim)],
    state: &mut State,
) -> DbResult<Vec<(usize, bool)>> {
    // Purging rows expired at the earliest `now` of the batch cannot change any claim's
    // outcome in it: such a row counts as expired for every claim of the batch.
    let now = claims.iter().map(|(_, c)| c.now_ms).min().unwrap_or(0);
    if state.last_purge_ms.is_none_or(|last| now.saturating_sub(last) >= PURGE_EVERY_MS) {
        let purged = b.purge_claims(now).await?;
        state.last_purge_ms = Some(now);
        tracing::debug!(purged, "purged expired token ids");
    }

    let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
    let mut rounds: Vec<Vec<(usize, &Claim)>> = Vec::new();
    for &(i, claim) in claims {
        let round = seen.entry((claim.issuer.as_str(), claim.jti.as_str())).or_insert(0);
        if rounds.len() <= *round {
            rounds.push(Vec::new());
        }
        rounds[*round].push((i, claim));
        *round += 1;
    }
    let mut out = Vec::with_capacity(claims.len());
    for round in rounds {
        let list: Vec<&Claim> = round.iter().map(|(_, c)| *c).collect();
        let won = b.claim_jtis(&list).await?;
        out.extend(round.iter().map(|(i, _)| *i).zip(won));
    }
    Ok(out)
}

/// Appends every job's entries in one bulk insert. The first entry of a
/// `(conversation, message_id)` pair in the batch is the candidate; later ones are
/// duplicates without asking the database.
async fn append_all<B: Backend>(
    b: &mut B,
    appends: &[(usize, &[TranscriptEntry])],
) -> DbResult<Vec<(usize, Vec<bool>)>> {
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    let mut candidates: Vec<&TranscriptEntry> = Vec::new();
    let mut slots: Vec<(usize, Vec<Option<usize>>)> = Vec::with_capacity(appends.len());
    for &(i, entries) in appends {
        let mut job = Vec::with_capacity(entries.len());
        for entry in entries {
            if seen.insert((entry.conversation.as_str(), entry.message_id.as_str())) {
                job.push(Some(candidates.len()));
                candidates.push(entry);
            } else {
                job.push(None);
            }
        }
        slots.push((i, job));
    }
    let stored = if candidates.is_empty() { Vec::new() } else { b.insert_entries(&candidates).await? };
    Ok(slots
        .into_iter()
        .map(|(i, job)| {
            (i, job.into_iter().map(|s| s.and_then(|k| stored.get(k).copied()).unwrap_or(false)).collect())
        })
        .collect())
}

enum OpError {
    /// The caller's ops cannot apply (duplicate id, corrupt stored fields).
    Store(StoreError),
    /// The database failed.
    Db(sqlx::Error),
}

impl From<sqlx::Error> for OpError {
    fn from(e: sqlx::Error) -> OpError {
        OpError::Db(e)
    }
}

async fn apply_ops<B: Backend>(b: &mut B, ops: &[WriteOp]) -> Result<Vec<WriteOutcome>, OpError> {
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops {
        let outcome = match op {
            WriteOp::Insert(record) => {
                let canonical = range::canonical_fields(&record.sobject, &record.fields);
                let fields = to_json(canonical.as_ref().unwrap_or(&record.fields))?;
                if !b.insert_record(record, &fields).await? {
                    return Err(OpError::Store(StoreError::Duplicate(record.id.clone())));
                }
                WriteOutcome::Inserted
            }
            WriteOp::Update { org, id, patch, now_ms } => match b.record_fields(org, id).await? {
                None => WriteOutcome::Missing,
                Some((sobject, stored)) => {
                    let mut fields: Fields = serde_json::from_str(&stored).map_err(|e| {
                        OpError::Store(StoreError::Corrupt(format!(
                            "fields of record {id} are not a JSON object: {e}"
                        )))
                    })?;
                    for (name, value) in patch {
                        fields.insert(name.clone(), value.clone());
                    }
                    if let Some(canonical) = range::canonical_fields(&sobject, &fields) {
                        fields = canonical;
                    }
                    let fields = to_json(&fields)?;
                    if b.update_fields(org, id, &fields, *now_ms).await? {
                        WriteOutcome::Updated
                    } else {
                        WriteOutcome::Missing
                    }
                }
            },
            WriteOp::Delete { org, id } => {
                if b.delete_record(org, id).await? {
                    WriteOutcome::Deleted
                } else {
                    WriteOutcome::Missing
                }
            }
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

fn to_json(fields: &Fields) -> Result<String, OpError> {
    serde_json::to_string(fields)
        .map_err(|e| OpError::Store(StoreError::Database(format!("cannot encode fields: {e}"))))
}
