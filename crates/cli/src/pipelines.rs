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

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinSet;
use voxbridge_bus::{Bus, BusRecord, ConsumerOptions, HandlerError, StartingPosition};
use voxbridge_contacts::ContactSink;
use voxbridge_functions::ctr_sync::{self, CustomField, FieldMapping, SkipReason};
use voxbridge_functions::salesforce::{Body, CrmClient, CrmConfig, HttpMethod};

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
/// Records per sObject Collections request (the API's limit).
const COLLECTION_SIZE: usize = 200;
/// CTRs per batch of `vb-ctr-sync`.
const SYNC_BATCH_SIZE: usize = 400;
/// ContactIds per VoiceCall lookup query.
const LOOKUP_SIZE: usize = 100;
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

/// VoiceCalls by vendor call key (ContactId): each one's id and fields.
type VoiceCalls = HashMap<String, (String, Map<String, Value>)>;

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

    /// Backs each CTR up, then applies them together: one lookup of their VoiceCalls, their
    /// updates and creates in sObject Collections requests, their backups written and
    /// tagged at once. The outcomes are in the order of `ctrs`. Of several CTRs of one
    /// contact only the newest counts (the others are [`Outcome::Stale`]), as if they had
    /// been applied in turn. An `Err` fails them all (nothing is half done that a retry
    /// would not finish).
    pub async fn handle_many(&self, ctrs: &[Value]) -> Result<Vec<Result<Outcome>>> {
        let mut outcomes: Vec<Option<Result<Outcome>>> = ctrs.iter().map(|_| None).collect();
        // The newest CTR of each contact, by index.
        let mut newest: HashMap<&str, usize> = HashMap::new();
        for (i, ctr) in ctrs.iter().enumerate() {
            let Some(contact_id) = ctr_sync::contact_id(ctr) else {
                outcomes[i] = Some(Ok(Outcome::Skipped(SkipReason::MissingContactId)));
                continue;
            };
            if let Some(j) = newest.insert(contact_id, i) {
                let (older, newer) = if ctr_sync::supersedes(
                    ctr_sync::last_update_ms(ctr),
                    ctr_sync::last_update_ms(&ctrs[j]),
                ) {
                    (j, i)
                } else {
                    (i, j)
                };
                newest.insert(contact_id, newer);
                outcomes[older] = Some(Ok(Outcome::Stale));
            }
        }
        let mut chosen: Vec<(&str, usize)> = newest.into_iter().collect();
        chosen.sort_by_key(|(_, i)| *i);
        let backed: Vec<(&str, &Value)> = chosen.iter().map(|(c, i)| (*c, &ctrs[*i])).collect();
        // The VoiceCalls are looked up while the backups are written (a read, which no
        // backup need precede); they are written only after.
        let to_sync: Vec<&str> =
            backed.iter().filter(|(_, ctr)| ctr_sync::should_process(ctr).is_ok()).map(|(c, _)| *c).collect();
        let (first, found) = tokio::try_join!(self.backup_many(&backed), self.find_voice_calls(&to_sync))?;
        let items: Vec<(&Value, bool)> = backed.iter().zip(&first).map(|((_, ctr), f)| (*ctr, !f)).collect();
        let applied = self.apply_found(&items, Some(&found)).await?;
        for ((_, i), outcome) in chosen.iter().zip(applied) {
            outcomes[*i] = Some(outcome);
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(anyhow!("the CTR was not handled"))))
            .collect())
    }

    /// Stores each CTR at `ctr/<ContactId>.json` unless the stored one is newer; whether it
    /// is the contact's first backup. One CTR per contact.
    async fn backup_many(&self, ctrs: &[(&str, &Value)]) -> Result<Vec<bool>> {
        let keys: Vec<String> = ctrs.iter().map(|(c, _)| backup_key(c)).collect();
        let stored = self.objects.get_many(&keys).await?;
        let mut writes = Vec::new();
        for ((key, (_, ctr)), old) in keys.iter().zip(ctrs).zip(&stored) {
            let newer_stored = old.as_ref().is_some_and(|old| {
                let old: Value = serde_json::from_slice(old).unwrap_or(Value::Null);
                matches!(
                    (ctr_sync::last_update_ms(&old), ctr_sync::last_update_ms(ctr)),
                    (Some(stored), Some(incoming)) if stored > incoming
                )
            });
            if !newer_stored {
                writes.push((key.clone(), serde_json::to_vec_pretty(ctr)?));
            }
        }
        self.objects.put_many(writes).await?;
        Ok(stored.iter().map(Option::is_none).collect())
    }

    /// Applies a CTR (already backed up) to its VoiceCall: skip rules, ordering, transform,
    /// update or create.
    pub async fn apply(&self, ctr: &Value) -> Result<Outcome> {
        let mut outcomes = self.apply_many(&[(ctr, true)]).await?;
        outcomes.pop().unwrap_or_else(|| Err(anyhow!("the sync returned no outcome")))
    }

    /// Applies CTRs of distinct contacts, each already backed up, with whether to read what
    /// was applied to it before (a contact whose first backup was just stored has nothing
    /// applied: deleting a backup drops its tags).
    pub async fn apply_many(&self, ctrs: &[(&Value, bool)]) -> Result<Vec<Result<Outcome>>> {
        self.apply_found(ctrs, None).await
    }

    /// [`CtrSync::apply_many`] with the VoiceCalls of the contacts already looked up, if
    /// they were.
    async fn apply_found(
        &self,
        ctrs: &[(&Value, bool)],
        found: Option<&VoiceCalls>,
    ) -> Result<Vec<Result<Outcome>>> {
        let mut outcomes: Vec<Option<Result<Outcome>>> = ctrs.iter().map(|_| None).collect();
        let mut tags: Vec<(String, Vec<(&str, String)>)> = Vec::new();
        let shown =
            |ctr: &Value| ctr.get("LastUpdateTimestamp").and_then(Value::as_str).unwrap_or("").to_string();
        // Skip rules first; then what each contact had applied.
        let mut pending: Vec<(usize, &str)> = Vec::new();
        for (i, (ctr, _)) in ctrs.iter().enumerate() {
            match ctr_sync::should_process(ctr) {
                Err(reason) => {
                    if let Some(id) = ctr_sync::contact_id(ctr) {
                        tags.push((backup_key(id), vec![(TAG_STATUS, format!("skipped: {reason}"))]));
                    }
                    outcomes[i] = Some(Ok(Outcome::Skipped(reason)));
                }
                Ok(()) => pending.push((i, ctr_sync::contact_id(ctr).unwrap_or_default())),
            }
        }
        let checked: Vec<String> =
            pending.iter().filter(|(i, _)| ctrs[*i].1).map(|(_, c)| backup_key(c)).collect();
        let applied_tags: HashMap<String, BTreeMap<String, String>> =
            checked.iter().cloned().zip(self.objects.tags_many(&checked).await.unwrap_or_default()).collect();
        pending.retain(|(i, contact_id)| {
            let key = backup_key(contact_id);
            let applied = applied_tags
                .get(&key)
                .and_then(|t| t.get(TAG_APPLIED))
                .and_then(|t| ctr_sync::parse_time_ms(t));
            if ctr_sync::supersedes(ctr_sync::last_update_ms(ctrs[*i].0), applied) {
                return true;
            }
            tags.push((key, vec![(TAG_STALE, shown(ctrs[*i].0))]));
            outcomes[*i] = Some(Ok(Outcome::Stale));
            false
        });
        // Transform, look the VoiceCalls up, then update and create them in collections.
        let transformed: Vec<ctr_sync::Transformed> =
            pending.iter().map(|(i, _)| ctr_sync::transform(ctrs[*i].0, &self.mapping)).collect();
        let custom = if transformed.iter().all(|t| t.call_attributes().is_empty()) {
            HashMap::new()
        } else {
            self.custom_fields().await?
        };
        let contact_ids: Vec<&str> = pending.iter().map(|(_, c)| *c).collect();
        let looked_up;
        let existing = match found {
            Some(found) => found,
            None => {
                looked_up = self.find_voice_calls(&contact_ids).await?;
                &looked_up
            }
        };
        let mut updates = Vec::new();
        let mut creates = Vec::new();
        for ((i, contact_id), t) in pending.iter().zip(&transformed) {
            let found = existing.get(*contact_id);
            let mut fields = ctr_sync::voice_call_fields(t, found.map(|(_, f)| f), &|name: &str| {
                custom.get(&name.to_ascii_lowercase()).cloned()
            });
            fields.insert("attributes".into(), json!({"type": "VoiceCall"}));
            match found {
                Some((id, _)) => {
                    fields.insert("id".into(), json!(id));
                    updates.push((*i, Value::Object(fields)));
                }
                None => {
                    if let Some(cc) = &self.call_center_id {
                        fields.insert("CallCenterId".into(), json!(cc));
                    }
                    creates.push((*i, Value::Object(fields)));
                }
            }
        }
        let (mut results, created) = tokio::try_join!(
            self.save_collection(HttpMethod::Patch, updates),
            self.save_collection(HttpMethod::Post, creates)
        )?;
        results.extend(created);
        for (i, created, result) in results {
            let ctr = ctrs[i].0;
            let contact_id = ctr_sync::contact_id(ctr).unwrap_or_default();
            outcomes[i] = Some(match result {
                Ok(voice_call_id) => {
                    let mut new_tags =
                        vec![(TAG_STATUS, "applied".to_string()), (TAG_VOICE_CALL, voice_call_id.clone())];
                    if !shown(ctr).is_empty() {
                        new_tags.push((TAG_APPLIED, shown(ctr)));
                    }
                    tags.push((backup_key(contact_id), new_tags));
                    Ok(Outcome::Applied { voice_call_id, created })
                }
                Err(why) => Err(anyhow!(
                    "{} the VoiceCall of {contact_id} failed: {why}",
                    if created { "creating" } else { "updating" }
                )),
            });
        }
        // A lost tag is logged only: the VoiceCall is what counts, and a lost tag at worst
        // lets an older CTR through once.
        if let Err(e) = self.objects.merge_tags_many(&tags).await {
            tracing::warn!(backups = tags.len(), "cannot tag the CTR backups: {e:#}");
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(anyhow!("the CTR was not applied"))))
            .collect())
    }

    /// Creates (`Post`) or updates (`Patch`) VoiceCalls in sObject Collections requests of up
    /// to 200: per record, its index, whether it was a create, and its id or why it failed.
    /// A request that fails as a whole fails the sync of the batch.
    async fn save_collection(
        &self,
        method: HttpMethod,
        records: Vec<(usize, Value)>,
    ) -> Result<Vec<(usize, bool, Result<String, String>)>> {
        let created = method == HttpMethod::Post;
        let requests = records.chunks(COLLECTION_SIZE).map(|chunk| async move {
            let body =
                json!({"allOrNone": false, "records": chunk.iter().map(|(_, r)| r).collect::<Vec<_>>()});
            let resp = self.crm.send(method, "composite/sobjects", &Body::Json(body)).await?;
            let results = resp.body.as_array().filter(|r| resp.is_success() && r.len() == chunk.len());
            let Some(results) = results else {
                bail!(
                    "{} {} VoiceCall(s) failed ({}): {}",
                    if created { "creating" } else { "updating" },
                    chunk.len(),
                    resp.status,
                    resp.error_message()
                );
            };
            Ok(chunk
                .iter()
                .zip(results)
                .map(|((i, _), r)| {
                    let result = match r.get("id").and_then(Value::as_str) {
                        Some(id) if r.get("success") == Some(&Value::Bool(true)) => Ok(id.to_string()),
                        _ => Err(r.get("errors").map(Value::to_string).unwrap_or_else(|| r.to_string())),
                    };
                    (*i, created, result)
                })
                .collect::<Vec<_>>())
        });
        Ok(futures::future::try_join_all(requests).await?.into_iter().flatten().collect())
    }

    /// The VoiceCalls whose vendor call keys are these ContactIds: by ContactId, each one's
    /// id and fields. One query per [`LOOKUP_SIZE`] contacts, all at once.
    async fn find_voice_calls(&self, contact_ids: &[&str]) -> Result<VoiceCalls> {
        let queries = contact_ids.chunks(LOOKUP_SIZE).map(|chunk| async move {
            let keys: Vec<String> = chunk.iter().map(|c| format!("'{}'", soql_string(c))).collect();
            let soql = format!(
                "SELECT Id, CallDisposition, VendorCallKey FROM VoiceCall WHERE VendorCallKey IN ({})",
                keys.join(", ")
            );
            let resp = self.crm.query(&soql).await?;
            if !resp.is_success() {
                bail!(
                    "looking up the VoiceCalls of {} contact(s) failed ({}): {}",
                    chunk.len(),
                    resp.status,
                    resp.error_message()
                );
            }
            Ok(resp.body)
        });
        let mut found = HashMap::new();
        for body in futures::future::try_join_all(queries).await? {
            for r in body.get("records").and_then(Value::as_array).into_iter().flatten() {
                let (Some(id), Some(key)) =
                    (r.get("Id").and_then(Value::as_str), r.get("VendorCallKey").and_then(Value::as_str))
                else {
                    continue;
                };
                found
                    .entry(key.to_string())
                    .or_insert_with(|| (id.to_string(), r.as_object().cloned().unwrap_or_default()));
            }
        }
        Ok(found)
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

/// Handles one batch of the `ctr` stream with [`CtrSync::handle_many`]: the whole batch in a
/// few requests. The batch fails when any CTR fails (the consumer retries it, bisecting), and
/// redelivery is harmless since applying a CTR again changes nothing.
pub(crate) async fn sync_batch(
    sync: &CtrSync,
    bus: &dyn Bus,
    records: Vec<BusRecord>,
) -> Result<(), HandlerError> {
    let mut ctrs = Vec::with_capacity(records.len());
    for r in records {
        match serde_json::from_slice(&r.data) {
            Ok(v @ Value::Object(_)) => ctrs.push(v),
            _ => {
                // Retrying cannot fix a record that is not a CTR: straight to the dead letters.
                tracing::error!(sequence = %r.sequence_number, "a record on the ctr stream is not a JSON object; dead-lettered");
                bus.put(CTR_DEAD_LETTER_STREAM, &r.partition_key, r.data)
                    .await
                    .map_err(|e| HandlerError::new(e.to_string()))?;
            }
        }
    }
    if ctrs.is_empty() {
        return Ok(());
    }
    let outcomes = sync.handle_many(&ctrs).await.map_err(|e| {
        tracing::warn!(ctrs = ctrs.len(), "CTR sync failed: {e:#}");
        HandlerError::new(format!("{e:#}"))
    })?;
    let (mut created, mut updated, mut skipped, mut stale) = (0, 0, 0, 0);
    let mut failure = None;
    for (ctr, outcome) in ctrs.iter().zip(outcomes) {
        let contact = ctr_sync::contact_id(ctr).unwrap_or("");
        match outcome {
            Ok(Outcome::Applied { voice_call_id, created: new }) => {
                tracing::debug!(contact_id = %contact, voice_call_id, created = new, "CTR synced");
                if new {
                    created += 1
                } else {
                    updated += 1
                }
            }
            Ok(Outcome::Skipped(reason)) => {
                tracing::info!(contact_id = %contact, "CTR not synced: {reason}");
                skipped += 1;
            }
            Ok(Outcome::Stale) => {
                tracing::debug!(contact_id = %contact, "an older CTR than the one applied; ignored");
                stale += 1;
            }
            Err(e) => {
                tracing::warn!(contact_id = %contact, "CTR sync failed: {e:#}");
                failure.get_or_insert_with(|| HandlerError::new(format!("{contact}: {e:#}")));
            }
        }
    }
    tracing::info!(created, updated, skipped, stale, "CTRs synced to VoiceCalls");
    match failure {
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
    // A backlog is synced in few large batches: each costs a handful of requests whatever
    // its size. Under a steady load batches stay small, since a batch takes what is there.
    options.batch_size = SYNC_BATCH_SIZE;
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
