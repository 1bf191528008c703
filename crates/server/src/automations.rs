//! Automations live: the org's `Automation` records (`docs/automations.md`) run after a
//! record is created or updated through the Telephony or CRM REST API and after a platform
//! event is published, and their messaging notifications are delivered by the outbox.
//!
//! The engine (`voxbridge_automations`) decides; this module carries out its effects with
//! the store: finds through SOQL, creates and updates checked against the object's fields,
//! platform events, and `MessagingOutbox` records. Writes an automation makes do not
//! trigger automations again (so no definition can loop), and a failing automation never
//! fails the request that triggered it: the write it follows is committed already, and the
//! failure is logged with the automation's name and the reason.
//!
//! Messaging: a notification becomes a `MessagingOutbox` record (key `Pending`) in the same
//! step, and the named background worker `vb-messaging-outbox` POSTs it to its channel's
//! webhook with the header `Idempotency-Key` (the outbox record's id), logging every attempt
//! as a `MessagingDeliveryAttempt` record. Only a 2xx answer marks it `Delivered` (key
//! `Delivered`); anything else is retried with exponential backoff, forever, also across
//! restarts, since the outbox is in the store. A crash between a webhook's 2xx and the
//! record's update sends the message again with the same key: delivery is at least once,
//! and receivers deduplicate by `Idempotency-Key`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use voxbridge_automations::{Automation, Effect, Feedback, TriggerEvent};
use voxbridge_core::time::format_ms;
use voxbridge_core::{ErrorCode, KeyPrefix, Record, SfId};
use voxbridge_store::WriteOp;

use crate::crm::{CrmError, Session};
use crate::App;

/// Messaging channels and the outbox worker's retry schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagingSettings {
    /// Webhook URL per channel developer name (`Text_US_15551234567`).
    pub channels: BTreeMap<String, String>,
    /// Delay before the second attempt; doubled for each further one.
    pub retry_base: Duration,
    /// The longest delay between attempts.
    pub retry_max: Duration,
    /// How long a webhook may take to answer.
    pub request_timeout: Duration,
}

impl Default for MessagingSettings {
    fn default() -> Self {
        MessagingSettings {
            channels: BTreeMap::new(),
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(15 * 60),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// The delay after `attempts` failed attempts: `base · 2^(attempts-1)`, at most `max`.
pub fn backoff(settings: &MessagingSettings, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(30));
    settings.retry_base.saturating_mul(factor).min(settings.retry_max)
}

/// The org's automations, checked, cached like field definitions.
pub(crate) struct Automations {
    cache: crate::cache::TtlCache<SfId, Arc<Vec<Arc<Automation>>>>,
    /// Wakes the outbox worker when a message is queued.
    wake: tokio::sync::Notify,
}

impl Automations {
    pub(crate) fn new() -> Automations {
        Automations {
            cache: crate::cache::TtlCache::new(crate::CACHE_TTL_MS, 10_000),
            wake: Default::default(),
        }
    }
}

/// Checks an `Automation` record's `Definition` before a CRM REST API write stores it.
pub(crate) fn check_record(
    sobject: &str,
    name: Option<&str>,
    fields: &Map<String, Value>,
) -> Result<(), CrmError> {
    if !sobject.eq_ignore_ascii_case("Automation") {
        return Ok(());
    }
    let Some(definition) = fields.get("Definition") else { return Ok(()) };
    let definition = match definition {
        Value::String(text) => serde_json::from_str(text).map_err(|e| {
            CrmError::on(ErrorCode::InvalidFieldValue, format!("Definition: not JSON: {e}"), "Definition")
        })?,
        other => other.clone(),
    };
    let name = name.or_else(|| fields.get("DeveloperName").and_then(Value::as_str)).unwrap_or("Automation");
    voxbridge_automations::parse(name, &definition).map(|_| ()).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        CrmError::on(
            ErrorCode::InvalidFieldValue,
            format!("Definition: {} mistake(s): {}", list.len(), list.join("; ")),
            "Definition",
        )
    })
}

/// The org's active automations; invalid ones are logged (with every mistake) and skipped.
async fn load(app: &App, org: &SfId) -> Vec<Arc<Automation>> {
    let now = app.now_ms();
    if let Some(list) = app.automations.cache.get(org, now) {
        return list.to_vec();
    }
    let generation = app.automations.cache.generation();
    let records = match app.store.list(org, "Automation").await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(%org, error = %e, "cannot load automations");
            return Vec::new();
        }
    };
    let mut list = Vec::new();
    for r in records.iter().filter(|r| r.bool("Active").unwrap_or(false)) {
        let name = r.key.clone().or_else(|| r.str("DeveloperName").map(str::to_string)).unwrap_or_default();
        let definition = match r.fields.get("Definition") {
            Some(Value::String(text)) => serde_json::from_str(text).unwrap_or(Value::Null),
            Some(v) => v.clone(),
            None => Value::Null,
        };
        match voxbridge_automations::parse(&name, &definition) {
            Ok(a) => list.push(Arc::new(a)),
            Err(errors) => {
                let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
                tracing::error!(%org, automation = %name, ?errors, "automation skipped: its definition is invalid");
            }
        }
    }
    app.automations.cache.put(org.clone(), Arc::new(list.clone()), now, generation);
    list
}

/// Runs the org's automations on an `sobject` record just created or updated. Call it
/// after the write has committed. The record is read only when an automation listens.
pub(crate) async fn after_write(app: &App, org: &SfId, sobject: &str, id: &SfId, event: TriggerEvent) {
    if sobject.eq_ignore_ascii_case("Automation") {
        app.automations.cache.remove(org);
    }
    let automations = load(app, org).await;
    if !automations.iter().any(|a| a.listens(sobject, event)) {
        return;
    }
    let record = match app.store.get(org, id).await {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(%org, %id, error = %e, "cannot read the record automations run on");
            return;
        }
    };
    run_all(app, org, &record, event).await;
}

/// [`after_write`] for a created record.
pub(crate) async fn created(app: &App, org: &SfId, sobject: &str, id: &SfId) {
    after_write(app, org, sobject, id, TriggerEvent::Create).await
}

/// [`after_write`] for an updated record.
pub(crate) async fn updated(app: &App, org: &SfId, sobject: &str, id: &SfId) {
    after_write(app, org, sobject, id, TriggerEvent::Update).await
}

/// Runs the org's automations on a platform event just published.
pub(crate) async fn after_event(app: &App, org: &SfId, event: &Record) {
    run_all(app, org, event, TriggerEvent::Publish).await;
}

async fn run_all(app: &App, org: &SfId, record: &Record, event: TriggerEvent) {
    let automations = load(app, org).await;
    for a in automations.iter().filter(|a| a.listens(&record.sobject, event)) {
        let mut fields = record.fields.clone();
        fields.insert("Id".into(), record.id.to_18().into());
        if let Err(why) = run_one(app, org, record, a, fields).await {
            tracing::warn!(%org, automation = %a.name, record = %record.id, error = %why, "automation failed");
        }
    }
}

async fn run_one(
    app: &App,
    org: &SfId,
    trigger: &Record,
    a: &Automation,
    fields: Map<String, Value>,
) -> Result<(), String> {
    let Some(mut run) = a.start(fields).map_err(|e| e.to_string())? else { return Ok(()) };
    let mut feedback = None;
    while let Some(effect) = run.next(feedback.take()).map_err(|e| e.to_string())? {
        tracing::debug!(automation = %a.name, ?effect, "automation effect");
        feedback = Some(match effect {
            Effect::Find { soql } => Feedback::Found(find(app, org, &soql).await?),
            Effect::Create { object, fields } => {
                Feedback::Created { id: create(app, org, &object, fields).await? }
            }
            Effect::Update { id, fields } => {
                update(app, org, &id, fields).await?;
                Feedback::Done
            }
            Effect::Notify { name, channel, template, recipient, context } => {
                let text = message_text(app, org, &template).await?;
                let body = run.render(&text);
                enqueue(app, org, &a.name, &name, &channel, &template, &recipient, &context, &body).await?;
                Feedback::Done
            }
            Effect::Publish { event, fields } => {
                let name = crate::platform_events::is_platform_event(&event)
                    .ok_or_else(|| format!("publish: `{event}` is not a platform event"))?;
                let session = Session { org: org.clone(), user: org.clone() };
                crate::platform_events::emit(app, &session, name, fields)
                    .await
                    .map_err(|e| e.error.message)?;
                Feedback::Done
            }
        });
    }
    tracing::info!(%org, automation = %a.name, record = %trigger.id, path = ?run.trace(), "automation ran");
    Ok(())
}

async fn find(app: &App, org: &SfId, soql: &str) -> Result<Option<Map<String, Value>>, String> {
    let schema = crate::crm::schema(app, org).await.map_err(|e| e.error.message)?;
    let query = voxbridge_soql::parse_query(soql).map_err(|e| format!("find: {e}"))?;
    let bound = voxbridge_soql::bind(&query, &schema).map_err(|e| format!("find: {e}"))?;
    let source = crate::crm::load_for(app, org, &bound).await.map_err(|e| e.error.message)?;
    let result = voxbridge_soql::evaluate(&bound, &source, &voxbridge_soql::EvalContext::new(app.now_ms()));
    let body = result.to_json();
    Ok(body["records"].as_array().and_then(|r| r.first()).and_then(Value::as_object).cloned())
}

async fn create(app: &App, org: &SfId, object: &str, fields: Map<String, Value>) -> Result<String, String> {
    let schema = crate::crm::schema(app, org).await.map_err(|e| e.error.message)?;
    let o = crate::crm::object(&schema, object).map_err(|e| format!("create: {}", e.error.message))?;
    let custom = app.store.list(org, "CustomField").await.map_err(|e| e.to_string())?;
    let mut fields = crate::crm::check_fields(o, fields, &custom)
        .map_err(|e| format!("create {object}: {}", e.error.message))?;
    let prefix = KeyPrefix::from_sobject(&o.name).unwrap_or(KeyPrefix::CustomObject);
    let id = app.new_id(prefix);
    if o.name == "Case" {
        let number = app.next_case_number(org).await.map_err(|e| e.error.message)?;
        fields.insert("CaseNumber".into(), number.into());
        fields.entry("Status".to_string()).or_insert_with(|| "New".into());
        fields.entry("IsClosed".to_string()).or_insert(false.into());
    }
    let key = o.key_field.as_ref().and_then(|k| fields.get(k)).and_then(Value::as_str).map(str::to_string);
    let mut record = Record::new(id.clone(), org.clone(), o.name.clone(), key, app.now_ms());
    record.fields = fields;
    app.store.insert(record).await.map_err(|e| e.to_string())?;
    Ok(id.to_18())
}

async fn update(app: &App, org: &SfId, id: &str, fields: Map<String, Value>) -> Result<(), String> {
    let id = SfId::parse(id).map_err(|e| format!("update: `{id}` is not an id: {e}"))?;
    let existing = app
        .store
        .get(org, &id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("update: no record {id}"))?;
    let schema = crate::crm::schema(app, org).await.map_err(|e| e.error.message)?;
    let o =
        crate::crm::object(&schema, &existing.sobject).map_err(|e| format!("update: {}", e.error.message))?;
    let custom = app.store.list(org, "CustomField").await.map_err(|e| e.to_string())?;
    let patch = crate::crm::check_fields(o, fields, &custom)
        .map_err(|e| format!("update {}: {}", o.name, e.error.message))?;
    if o.key_field.as_ref().is_some_and(|k| patch.contains_key(k)) {
        return Err(format!(
            "update: {} is the lookup key of {}; automations do not change it",
            o.key_field.as_deref().unwrap_or(""),
            o.name
        ));
    }
    app.store.update(org, &id, patch, app.now_ms()).await.map_err(|e| e.to_string())?;
    Ok(())
}

async fn message_text(app: &App, org: &SfId, template: &str) -> Result<String, String> {
    let found = app.store.find_by_key(org, "MessagingTemplate", template).await.map_err(|e| e.to_string())?;
    found
        .first()
        .and_then(|t| t.str("Message").map(str::to_string))
        .ok_or_else(|| format!("notify: no messaging template `{template}`"))
}

#[allow(clippy::too_many_arguments)]
async fn enqueue(
    app: &App,
    org: &SfId,
    automation: &str,
    name: &str,
    channel: &str,
    template: &str,
    recipient: &str,
    context: &str,
    body: &str,
) -> Result<(), String> {
    if recipient.trim().is_empty() {
        return Err(format!("{name}: the recipient is blank"));
    }
    let now = app.now_ms();
    let mut r = Record::new(
        app.new_id(KeyPrefix::MessagingOutbox),
        org.clone(),
        "MessagingOutbox",
        Some(PENDING.into()),
        now,
    );
    r.set("Status", PENDING);
    r.set("Channel", channel);
    r.set("Template", template);
    r.set("Recipient", recipient);
    r.set("ContextRecordId", context);
    r.set("Message", body);
    r.set("Automation", automation);
    r.set("Action", name);
    r.set("Attempts", 0);
    r.set("NextAttemptAt", format_ms(now));
    app.store.insert(r).await.map_err(|e| e.to_string())?;
    app.automations.wake.notify_one();
    Ok(())
}

const PENDING: &str = "Pending";
const DELIVERED: &str = "Delivered";

/// The named background worker `vb-messaging-outbox`: delivers pending outbox records of
/// every org, oldest due first, and sleeps until the next one is due or a message is
/// queued. One message at a time, so a message is never in flight twice in one process.
pub(crate) async fn outbox_worker(app: Arc<App>) {
    let client = match reqwest::Client::builder().timeout(app.settings.messaging.request_timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "vb-messaging-outbox cannot start its HTTP client");
            return;
        }
    };
    tracing::info!(channels = app.settings.messaging.channels.len(), "vb-messaging-outbox started");
    // The first pass attempts every pending message: a restart is when an operator has
    // configured a channel or fixed a webhook, so waiting out old backoffs helps no one.
    let mut first = true;
    loop {
        let next_due = match deliver_due(&app, &client, std::mem::take(&mut first)).await {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, "vb-messaging-outbox cannot read the outbox; retrying");
                Some(app.now_ms() + app.settings.messaging.retry_base.as_millis() as i64)
            }
        };
        // Wake at the next due attempt, when a message is queued, and once a minute anyway
        // (another process may have queued one).
        let wait_ms = next_due.map(|t| (t - app.now_ms()).clamp(0, 60_000)).unwrap_or(60_000);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
            _ = app.automations.wake.notified() => {}
        }
    }
}

/// Attempts every due message once; returns when the next pending one is due (epoch ms).
async fn deliver_due(
    app: &App,
    client: &reqwest::Client,
    all: bool,
) -> Result<Option<i64>, voxbridge_store::StoreError> {
    let mut next: Option<i64> = None;
    for org in app.store.orgs().await? {
        let mut pending = app.store.find_by_key(&org.id, "MessagingOutbox", PENDING).await?;
        pending.sort_by_key(|r| (due_ms(r), r.created_ms));
        for msg in pending {
            let due = due_ms(&msg);
            if due > app.now_ms() && !all {
                next = Some(next.map_or(due, |n| n.min(due)));
                continue;
            }
            if let Some(retry_at) = attempt(app, client, &org.id, msg).await? {
                next = Some(next.map_or(retry_at, |n| n.min(retry_at)));
            }
        }
    }
    Ok(next)
}

fn due_ms(r: &Record) -> i64 {
    r.str("NextAttemptAt").and_then(voxbridge_core::time::parse_iso_ms).unwrap_or(0)
}

/// One delivery attempt, logged; returns when to retry when it failed.
async fn attempt(
    app: &App,
    client: &reqwest::Client,
    org: &SfId,
    msg: Record,
) -> Result<Option<i64>, voxbridge_store::StoreError> {
    let channel = msg.str("Channel").unwrap_or_default().to_string();
    let attempts = msg.i64("Attempts").unwrap_or(0).max(0) as u32 + 1;
    let started = app.now_ms();
    let outcome: Result<u16, String> = match app.settings.messaging.channels.get(&channel) {
        None => Err(format!("no webhook is configured for channel `{channel}`")),
        Some(url) => {
            let body = json!({
                "id": msg.id.to_18(),
                "channel": channel,
                "template": msg.str("Template"),
                "recipient": msg.str("Recipient"),
                "message": msg.str("Message"),
                "contextRecordId": msg.str("ContextRecordId"),
                "automation": msg.str("Automation"),
                "createdDate": format_ms(msg.created_ms),
                "attempt": attempts,
            });
            match client.post(url).header("Idempotency-Key", msg.id.to_18()).json(&body).send().await {
                Ok(resp) if resp.status().is_success() => Ok(resp.status().as_u16()),
                Ok(resp) => Err(format!("the webhook answered {}", resp.status())),
                Err(e) => Err(format!("the webhook cannot be reached: {e}")),
            }
        }
    };
    let now = app.now_ms();
    let mut log = Record::new(
        app.new_id(KeyPrefix::MessagingDeliveryAttempt),
        org.clone(),
        "MessagingDeliveryAttempt",
        Some(msg.id.to_string()),
        now,
    );
    log.set("OutboxId", msg.id.to_string());
    log.set("Attempt", attempts as i64);
    log.set("AttemptedAt", format_ms(started));
    log.set("DurationMs", now - started);
    log.set("Succeeded", outcome.is_ok());
    let (ops, retry_at) = match &outcome {
        Ok(status) => {
            log.set("StatusCode", *status as i64);
            // The key is a column: rewrite the record so it leaves the pending set.
            let mut done = msg.clone();
            done.key = Some(DELIVERED.into());
            done.set("Status", DELIVERED);
            done.set("Attempts", attempts as i64);
            done.set("DeliveredAt", format_ms(now));
            done.set("LastError", Value::Null);
            done.modified_ms = now;
            tracing::info!(%org, outbox = %msg.id, channel, attempt = attempts, status, "message delivered");
            let ops = vec![
                WriteOp::Insert(log),
                WriteOp::Delete { org: org.clone(), id: msg.id.clone() },
                WriteOp::Insert(done),
            ];
            (ops, None)
        }
        Err(why) => {
            log.set("Error", why.as_str());
            let retry_at = now + backoff(&app.settings.messaging, attempts).as_millis() as i64;
            let mut patch = Map::new();
            patch.insert("Attempts".into(), (attempts as i64).into());
            patch.insert("LastError".into(), why.as_str().into());
            patch.insert("NextAttemptAt".into(), format_ms(retry_at).into());
            tracing::warn!(%org, outbox = %msg.id, channel, attempt = attempts, error = %why,
                retry_at = %format_ms(retry_at), "message delivery failed");
            let ops = vec![
                WriteOp::Insert(log),
                WriteOp::Update { org: org.clone(), id: msg.id.clone(), patch, now_ms: now },
            ];
            (ops, Some(retry_at))
        }
    };
    app.store.apply(ops).await?;
    Ok(retry_at)
}

/// Starts the outbox worker when a tokio runtime is running.
pub(crate) fn start(app: &Arc<App>) {
    if tokio::runtime::Handle::try_current().is_ok() {
        let app = app.clone();
        let span = tracing::info_span!("vb-messaging-outbox");
        tokio::spawn(tracing::Instrument::instrument(outbox_worker(app), span));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = MessagingSettings {
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(60),
            ..Default::default()
        };
        let delays: Vec<u64> = (1..=7).map(|n| backoff(&s, n).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(&s, 0), Duration::from_secs(2));
        assert_eq!(backoff(&s, u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn automation_records_are_checked_before_they_are_stored() {
        let mut fields = Map::new();
        fields.insert("Definition".into(), json!({"trigger": {"object": "Case", "on": []}, "steps": []}));
        let e = check_record("Automation", Some("A"), &fields).unwrap_err();
        assert_eq!(
            e.error.message,
            "Definition: 2 mistake(s): trigger.on: lists no events; use create, update or publish; \
             steps: an automation needs at least one step"
        );
        assert!(check_record("Case", None, &fields).is_ok());
    }
}
