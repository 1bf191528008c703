//! The server's event pipelines on the bus (`bus.url`): what the contact center emits and
//! the CTR sync that consumes it.
//!
//! * Streams: `ctr` (one contact trace record per ended contact) and `contact-events`
//!   (EventBridge "Amazon Connect Contact Event" envelopes), both with the ContactId as the
//!   partition key, filled by [`BusSink`], the contact center's sink; `ctr-dead-letter`
//!   receives the CTRs the sync gave up on.
//! * `vb-ctr-sync`: a consumer group on `ctr` (from the oldest record, like the reference
//!   Lambda's TRIM_HORIZON mapping) run by [`voxbridge_bus::run_consumer`]. For each CTR,
//!   [`CtrSync`] backs it up to the object store (`ctr/<ContactId>.json`) first, applies the
//!   skip rules, transforms it and updates — or, for a missed or abandoned call, creates —
//!   the VoiceCall through the CRM REST API as the demo connected app's API user. Failures
//!   are retried with backoff, then dead-lettered; `voxbridge ctr resync` (also run on the
//!   `ctr.resync_schedule`) repairs what is left.
//!
//! Delivery is at least once and unordered, so a CTR is applied only when its
//! `LastUpdateTimestamp` is at least the last applied one, which the sync keeps in the
//! backup's tags (`applied-last-update`); the backup itself always holds the newest CTR.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinSet;
use voxbridge_bus::{Bus, BusRecord, ConsumerOptions, HandlerError, StartingPosition};
use voxbridge_contacts::ContactSink;
use voxbridge_functions::ctr_sync::{self, CustomField, FieldMapping, SkipReason};
use voxbridge_functions::salesforce::{CrmClient, CrmConfig};

use crate::config::{redact_url, Config};
use crate::datadir::{DataDir, SetupFile};
use crate::objects::Objects;

pub const CTR_STREAM: &str = "ctr";
pub const CONTACT_EVENTS_STREAM: &str = "contact-events";
pub const CTR_DEAD_LETTER_STREAM: &str = "ctr-dead-letter";
pub const CTR_SYNC_GROUP: &str = "vb-ctr-sync";

/// Tags the sync keeps on a CTR backup.
pub const TAG_APPLIED: &str = "applied-last-update";
pub const TAG_VOICE_CALL: &str = "voice-call-id";
pub const TAG_STATUS: &str = "sync-status";
pub const TAG_STALE: &str = "last-stale-update";

/// Retries of a failing CTR before it is dead-lettered (about 6 s of backoff in all).
const MAX_RETRIES: u32 = 5;
/// Contacts of one batch synced at once.
const PARALLEL_CONTACTS: usize = 32;
/// How long the custom fields of VoiceCall (from describe) are trusted.
const DESCRIBE_TTL: Duration = Duration::from_secs(60);

/// The object key of a contact's CTR backup.
pub fn backup_key(contact_id: &str) -> String {
    format!("ctr/{contact_id}.json")
}

/// Opens the configured bus and creates the streams the server uses.
pub async fn open_bus(config: &Config) -> Result<Arc<dyn Bus>> {
    if let Some(path) =
        config.bus_url.strip_prefix("sqlite://").or_else(|| config.bus_url.strip_prefix("sqlite:"))
    {
        if let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    let bus = voxbridge_bus::open(&config.bus_url).await.with_context(|| {
        format!(
            "cannot open the event bus at {}; check `bus.url` / VOXBRIDGE_BUS_URL and that it is reachable",
            redact_url(&config.bus_url)
        )
    })?;
    for stream in [
        CTR_STREAM,
        CONTACT_EVENTS_STREAM,
        CTR_DEAD_LETTER_STREAM,
        crate::rules::OBJECT_EVENTS_STREAM,
        crate::rules::CONTACT_LENS_STREAM,
        crate::rules::RULES_DEAD_LETTER_STREAM,
    ] {
        bus.create_stream(stream).await.with_context(|| format!("cannot create the stream {stream}"))?;
    }
    Ok(bus)
}

/// A record on its way to the bus.
struct Outgoing {
    stream: &'static str,
    partition_key: String,
    data: Vec<u8>,
}

/// The contact center's sink: contact events and CTRs go to their streams, keyed by
/// ContactId. The contact's task only queues them (the sink must not block it); a writer
/// task puts them in order.
pub struct BusSink {
    tx: mpsc::UnboundedSender<Outgoing>,
}

impl BusSink {
    fn send(&self, stream: &'static str, contact_id: Option<&str>, value: &Value) {
        let partition_key = contact_id.filter(|c| !c.is_empty()).unwrap_or("unknown").to_string();
        let data = value.to_string().into_bytes();
        if self.tx.send(Outgoing { stream, partition_key, data }).is_err() {
            tracing::error!(stream, "the bus writer has stopped; a record was dropped");
        }
    }
}

impl ContactSink for BusSink {
    fn contact_event(&self, event: &Value) {
        let contact = event.get("detail").and_then(|d| d.get("contactId")).and_then(Value::as_str);
        self.send(CONTACT_EVENTS_STREAM, contact, event);
    }

    fn contact_ended(&self, ctr: &Value) {
        self.send(CTR_STREAM, ctr_sync::contact_id(ctr), ctr);
    }
}

/// Puts queued records until `stop`, then the ones still queued, so a graceful shutdown
/// loses none.
async fn write_records(
    bus: Arc<dyn Bus>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let next = tokio::select! {
            biased;
            r = rx.recv() => r,
            () = stopped(&mut stop) => {
                rx.close();
                rx.recv().await
            }
        };
        let Some(r) = next else { break };
        let mut delay = Duration::from_millis(100);
        let mut attempts = 0;
        while let Err(e) = bus.put(r.stream, &r.partition_key, r.data.clone()).await {
            attempts += 1;
            if attempts >= 8 {
                tracing::error!(error = %e, stream = r.stream, partition_key = %r.partition_key, "giving up on a record");
                break;
            }
            tracing::warn!(error = %e, stream = r.stream, "bus put failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

/// What the sync did with one CTR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied {
        voice_call_id: String,
        created: bool,
    },
    Skipped(SkipReason),
    /// An older CTR than the one already applied.
    Stale,
}

/// Applies CTRs to VoiceCall records (see the module docs).
pub struct CtrSync {
    crm: CrmClient,
    objects: Objects,
    mapping: FieldMapping,
    /// The call center VoiceCalls created from CTRs belong to.
    call_center_id: Option<String>,
    /// VoiceCall's custom fields by lower-case name, with when they were described.
    custom_fields: Mutex<Option<(Instant, HashMap<String, CustomField>)>>,
}

impl CtrSync {
    pub fn new(
        crm: CrmClient,
        objects: Objects,
        mapping: FieldMapping,
        call_center_id: Option<String>,
    ) -> CtrSync {
        CtrSync { crm, objects, mapping, call_center_id, custom_fields: Mutex::new(None) }
    }

    pub fn crm(&self) -> &CrmClient {
        &self.crm
    }

    /// The same sync, its backups emitting `Object Created` events on the bus.
    pub fn with_object_events(mut self, bus: Arc<dyn Bus>) -> CtrSync {
        self.objects = self.objects.with_events(bus);
        self
    }

    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    /// Backs the CTR up, then applies it.
    pub async fn handle(&self, ctr: &Value) -> Result<Outcome> {
        let Some(contact_id) = ctr_sync::contact_id(ctr) else {
            return Ok(Outcome::Skipped(SkipReason::MissingContactId));
        };
        let first = self.backup(contact_id, ctr).await?;
        self.apply_checked(ctr, !first).await
    }

    /// Stores the CTR at `ctr/<ContactId>.json` unless the stored one is newer; whether it
    /// is the contact's first backup.
    pub async fn backup(&self, contact_id: &str, ctr: &Value) -> Result<bool> {
        let key = backup_key(contact_id);
        let old = self.objects.get(&key).await?;
        let first = old.is_none();
        if let Some(old) = old {
            let old: Value = serde_json::from_slice(&old).unwrap_or(Value::Null);
            if let (Some(stored), Some(incoming)) =
                (ctr_sync::last_update_ms(&old), ctr_sync::last_update_ms(ctr))
            {
                if stored > incoming {
                    return Ok(false);
                }
            }
        }
        self.objects.put(&key, serde_json::to_vec_pretty(ctr)?).await?;
        Ok(first)
    }

    /// Applies a CTR (already backed up) to its VoiceCall: skip rules, ordering, transform,
    /// update or create.
    pub async fn apply(&self, ctr: &Value) -> Result<Outcome> {
        self.apply_checked(ctr, true).await
    }

    /// [`CtrSync::apply`]; `check_applied` false skips reading what was applied before,
    /// for a contact whose first backup was just stored (deleting a backup drops its tags,
    /// so nothing can have been applied).
    async fn apply_checked(&self, ctr: &Value, check_applied: bool) -> Result<Outcome> {
        if let Err(reason) = ctr_sync::should_process(ctr) {
            if let Some(id) = ctr_sync::contact_id(ctr) {
                self.tag(id, &[(TAG_STATUS, format!("skipped: {reason}"))]).await;
            }
            return Ok(Outcome::Skipped(reason));
        }
        let contact_id = ctr_sync::contact_id(ctr).unwrap_or_default().to_string();
        let key = backup_key(&contact_id);
        let tags = if check_applied {
            self.objects.tags(&key).await.unwrap_or_default()
        } else {
            Default::default()
        };
        let applied = tags.get(TAG_APPLIED).and_then(|t| ctr_sync::parse_time_ms(t));
        let incoming = ctr_sync::last_update_ms(ctr);
        if !ctr_sync::supersedes(incoming, applied) {
            let shown = ctr.get("LastUpdateTimestamp").and_then(Value::as_str).unwrap_or("").to_string();
            self.tag(&contact_id, &[(TAG_STALE, shown)]).await;
            return Ok(Outcome::Stale);
        }
        let transformed = ctr_sync::transform(ctr, &self.mapping);
        let existing = self.find_voice_call(&contact_id).await?;
        let custom = if transformed.call_attributes().is_empty() {
            HashMap::new()
        } else {
            self.custom_fields().await?
        };
        let mut fields =
            ctr_sync::voice_call_fields(&transformed, existing.as_ref().map(|(_, f)| f), &|name: &str| {
                custom.get(&name.to_ascii_lowercase()).cloned()
            });
        let (voice_call_id, created) = match existing {
            Some((id, _)) => {
                let resp =
                    self.crm.patch(&format!("sobjects/VoiceCall/{id}"), &Value::Object(fields)).await?;
                if !resp.is_success() {
                    bail!("updating VoiceCall {id} failed ({}): {}", resp.status, resp.error_message());
                }
                (id, false)
            }
            None => {
                if let Some(cc) = &self.call_center_id {
                    fields.insert("CallCenterId".into(), json!(cc));
                }
                let resp = self.crm.post("sobjects/VoiceCall", &Value::Object(fields)).await?;
                if !resp.is_success() {
                    bail!(
                        "creating the VoiceCall of {contact_id} failed ({}): {}",
                        resp.status,
                        resp.error_message()
                    );
                }
                let id = resp.body.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
                (id, true)
            }
        };
        let shown = ctr.get("LastUpdateTimestamp").and_then(Value::as_str).unwrap_or("").to_string();
        let mut new_tags = vec![(TAG_STATUS, "applied".to_string()), (TAG_VOICE_CALL, voice_call_id.clone())];
        if !shown.is_empty() {
            new_tags.push((TAG_APPLIED, shown));
        }
        self.tag(&contact_id, &new_tags).await;
        Ok(Outcome::Applied { voice_call_id, created })
    }

    /// Tags the contact's backup; a failure is logged only (the VoiceCall is what counts,
    /// and a lost tag at worst lets an older CTR through once).
    async fn tag(&self, contact_id: &str, tags: &[(&str, String)]) {
        // `handle` stored the backup first, so it exists.
        if let Err(e) = self.objects.merge_tags_of_stored(&backup_key(contact_id), tags).await {
            tracing::warn!(contact_id, "cannot tag the CTR backup: {e:#}");
        }
    }

    /// The VoiceCall whose vendor call key is the ContactId: its id and fields.
    async fn find_voice_call(&self, contact_id: &str) -> Result<Option<(String, Map<String, Value>)>> {
        let soql = format!(
            "SELECT Id, CallDisposition FROM VoiceCall WHERE VendorCallKey = '{}'",
            soql_string(contact_id)
        );
        let resp = self.crm.query(&soql).await?;
        if !resp.is_success() {
            bail!(
                "looking up the VoiceCall of {contact_id} failed ({}): {}",
                resp.status,
                resp.error_message()
            );
        }
        let first = resp.body.get("records").and_then(Value::as_array).and_then(|r| r.first());
        Ok(first.and_then(|r| {
            let id = r.get("Id").and_then(Value::as_str)?.to_string();
            Some((id, r.as_object().cloned().unwrap_or_default()))
        }))
    }

    /// VoiceCall's custom fields, from describe, cached for a minute.
    async fn custom_fields(&self) -> Result<HashMap<String, CustomField>> {
        let mut cached = self.custom_fields.lock().await;
        if let Some((at, fields)) = cached.as_ref() {
            if at.elapsed() < DESCRIBE_TTL {
                return Ok(fields.clone());
            }
        }
        let resp = self.crm.get("sobjects/VoiceCall/describe").await?;
        if !resp.is_success() {
            bail!("describing VoiceCall failed ({}): {}", resp.status, resp.error_message());
        }
        let fields: HashMap<String, CustomField> = resp
            .body
            .get("fields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|f| f.get("custom").and_then(Value::as_bool) == Some(true))
            .filter_map(|f| {
                let name = f.get("name").and_then(Value::as_str)?.to_string();
                let ty = f.get("type").and_then(Value::as_str).unwrap_or("string");
                let text = matches!(ty, "string" | "textarea" | "phone" | "email" | "url" | "picklist");
                Some((name.to_ascii_lowercase(), CustomField { name, text }))
            })
            .collect();
        *cached = Some((Instant::now(), fields.clone()));
        Ok(fields)
    }
}

/// Escapes a SOQL string literal's content.
pub fn soql_string(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

/// A CRM client for the demo connected app's API user, as `voxbridge token --crm` logs in.
pub fn crm_client(config: &Config, data: &DataDir, setup: &SetupFile, base_url: &str) -> Result<CrmClient> {
    let audience = config.login_audiences.first().cloned().unwrap_or_default();
    let login = crate::crm_login::resolve(data, setup, None, None, None, &audience)?;
    let pem = std::fs::read_to_string(&login.key_file)
        .with_context(|| format!("cannot read the private key {}", login.key_file.display()))?;
    CrmClient::new(CrmConfig::new(base_url, login.consumer_key, login.username, login.audience, pem))
        .map_err(|e| anyhow!(e))
}

/// The CTR sync of a data dir, talking to the CRM at `base_url`.
pub fn ctr_sync(config: &Config, data: &DataDir, setup: &SetupFile, base_url: &str) -> Result<CtrSync> {
    let crm = crm_client(config, data, setup, base_url)?;
    let objects = Objects::from_config(config)?;
    let call_center =
        setup.call_centers.iter().find(|c| c.private_key_file.is_some()).or(setup.call_centers.first());
    Ok(CtrSync::new(crm, objects, config.ctr_fields.clone(), call_center.map(|c| c.id.clone())))
}

/// Handles one batch of the `ctr` stream. Contacts are synced concurrently (up to
/// [`PARALLEL_CONTACTS`]), each contact's CTRs in stream order; the batch fails when any
/// CTR fails, and redelivery is harmless since applying a CTR again changes nothing.
pub(crate) async fn sync_batch(
    sync: &CtrSync,
    bus: &dyn Bus,
    records: Vec<BusRecord>,
) -> Result<(), HandlerError> {
    let mut contacts: Vec<(String, Vec<Value>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for r in records {
        let ctr: Value = match serde_json::from_slice(&r.data) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                // Retrying cannot fix a record that is not a CTR: straight to the dead letters.
                tracing::error!(sequence = %r.sequence_number, "a record on the ctr stream is not a JSON object; dead-lettered");
                bus.put(CTR_DEAD_LETTER_STREAM, &r.partition_key, r.data)
                    .await
                    .map_err(|e| HandlerError::new(e.to_string()))?;
                continue;
            }
        };
        let contact = ctr_sync::contact_id(&ctr).unwrap_or("").to_string();
        match index.get(&contact) {
            Some(&i) => contacts[i].1.push(ctr),
            None => {
                index.insert(contact.clone(), contacts.len());
                contacts.push((contact, vec![ctr]));
            }
        }
    }
    let failures: Vec<HandlerError> = futures::stream::iter(contacts)
        .map(|(contact, ctrs)| async move {
            for ctr in &ctrs {
                match sync.handle(ctr).await {
                    Ok(Outcome::Applied { voice_call_id, created }) => {
                        tracing::info!(contact_id = %contact, voice_call_id, created, "CTR synced");
                    }
                    Ok(Outcome::Skipped(reason)) => {
                        tracing::info!(contact_id = %contact, "CTR not synced: {reason}")
                    }
                    Ok(Outcome::Stale) => {
                        tracing::info!(contact_id = %contact, "an older CTR than the one applied; ignored")
                    }
                    Err(e) => {
                        tracing::warn!(contact_id = %contact, "CTR sync failed: {e:#}");
                        return Some(HandlerError::new(format!("{contact}: {e:#}")));
                    }
                }
            }
            None
        })
        .buffer_unordered(PARALLEL_CONTACTS)
        .filter_map(|f| async move { f })
        .collect()
        .await;
    match failures.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The running pipelines; [`Pipelines::shutdown`] stops them.
pub struct Pipelines {
    bus: Arc<dyn Bus>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// Starts the bus writer behind the returned sink.
pub fn start(bus: Arc<dyn Bus>) -> (Pipelines, Arc<BusSink>) {
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let (tx, rx) = mpsc::unbounded_channel();
    tasks.spawn(write_records(bus.clone(), rx, stop_rx));
    (Pipelines { bus, stop, tasks }, Arc::new(BusSink { tx }))
}

impl Pipelines {
    /// The bus the pipelines run on.
    pub fn bus(&self) -> Arc<dyn Bus> {
        self.bus.clone()
    }

    /// Turns true when the pipelines stop.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Runs a task until shutdown (which waits for it, up to a limit).
    pub fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// Starts the CTR sync consumer and, with a schedule, the scheduled resync.
    pub fn start_sync(&mut self, sync: Arc<CtrSync>, schedule: Option<voxbridge_events::Schedule>) {
        let options = sync_options();
        let (consumer_bus, handler_bus, handler_sync) = (self.bus.clone(), self.bus.clone(), sync.clone());
        let mut stop = self.stop.subscribe();
        self.tasks.spawn(async move {
            let handler = move |records: Vec<BusRecord>| {
                let (sync, bus) = (handler_sync.clone(), handler_bus.clone());
                async move { sync_batch(&sync, bus.as_ref(), records).await }
            };
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = voxbridge_bus::run_consumer(consumer_bus, options, handler, shutdown).await {
                tracing::error!("the CTR sync ({CTR_SYNC_GROUP}) cannot start: {e}");
            }
        });
        if let Some(schedule) = schedule {
            self.tasks.spawn(resync_on_schedule(sync, schedule, self.stop.subscribe()));
        }
    }
}

/// How `vb-ctr-sync` consumes `ctr` (see the module docs).
pub(crate) fn sync_options() -> ConsumerOptions {
    let mut options = ConsumerOptions::new(CTR_STREAM, CTR_SYNC_GROUP);
    options.starting_position = StartingPosition::TrimHorizon;
    options.max_retries = Some(MAX_RETRIES);
    options.bisect_on_error = true;
    options.dead_letter_stream = Some(CTR_DEAD_LETTER_STREAM.to_string());
    options.retry_backoff = Duration::from_millis(200);
    options
}

/// Runs the resync whenever the schedule fires, until stopped.
async fn resync_on_schedule(
    sync: Arc<CtrSync>,
    schedule: voxbridge_events::Schedule,
    mut stop: watch::Receiver<bool>,
) {
    let anchor = now_ms();
    loop {
        let now = now_ms();
        let Some(next) = schedule.next_after(now, anchor) else { return };
        let wait = Duration::from_millis(u64::try_from(next.saturating_sub(now)).unwrap_or(0));
        tokio::select! {
            () = stopped(&mut stop) => return,
            () = tokio::time::sleep(wait) => {}
        }
        let result = tokio::select! {
            () = stopped(&mut stop) => return,
            r = crate::ctr::resync(&sync, None) => r,
        };
        match result {
            Ok(report) => tracing::info!("scheduled CTR resync: {report}"),
            Err(e) => tracing::warn!("scheduled CTR resync failed: {e:#}"),
        }
    }
}

impl Pipelines {
    /// Stops the consumer and the schedule and puts what the sink still holds.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let done = tokio::time::timeout(Duration::from_secs(10), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if done.is_err() {
            tracing::warn!("the pipelines did not stop within 10 s");
            self.tasks.abort_all();
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
