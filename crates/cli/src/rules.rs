//! Rules: EventBridge's role in `serve`. A rule sends the events that match its pattern — or
//! a "Scheduled Event" on its schedule — to a function of the registry the contact center
//! uses, named by function name or ARN.
//!
//! * Configuration: `[[rules]]` (`name`, `event_pattern` as JSON text or an inline table,
//!   or `schedule = "rate(…)"|"cron(…)"`, `target`, `enabled`) over the built-in
//!   [`default_rules`]; a configured rule replaces the default rule of the same name (so
//!   `enabled = false` turns a default off).
//! * `vb-rules`: a consumer group on `contact-events` and `object-events` (the object
//!   store's `Object Created` events). Every enabled pattern rule is matched with
//!   `voxbridge_events`; each match is one invocation, tried up to three times (an
//!   asynchronous Lambda invocation's two retries), then put on `rules-dead-letter` with
//!   the rule, the target and the error.
//! * The scheduler fires schedule rules from the server's start.
//! * `vb-contact-lens`: a consumer group on `contact-lens-segments` handing batches of up to
//!   5 records, in the Lambda Kinesis event shape, to ContactLensConsumerFunction (the
//!   reference's event source mapping: batch 5, 1 s window).
//! * `vb-objects-expiry`: deletes objects older than their prefix's `[[objects.expiration]]`
//!   days, at start and every hour (an S3 lifecycle rule's "Set Data Expiration").
//!
//! The built-in pipeline functions (HandleContactEvents, PostCallAnalysisTrigger, the
//! Contact Lens consumer and processor, ContactDataSync) are registered here.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use async_trait::async_trait;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;
use voxbridge_bus::{Bus, BusRecord, ConsumerOptions, HandlerError, StartingPosition};
use voxbridge_events::{Pattern, Schedule};
use voxbridge_functions::contact_data_sync::ContactDataSync;
use voxbridge_functions::contact_events::{self, HandleContactEvents, TelephonyClient};
use voxbridge_functions::contact_lens::{self, ContactLensConsumer, ContactLensProcessor};
use voxbridge_functions::post_call::{self, ObjectReader, PostCallAnalysisTrigger};
use voxbridge_functions::salesforce::CrmClient;
use voxbridge_functions::telephony::TelephonyApiConfig;
use voxbridge_functions::{FunctionOptions, Registry};

use crate::config::Config;
use crate::datadir::{DataDir, SetupFile};
use crate::objects::Objects;
use crate::pipelines::{Pipelines, CONTACT_EVENTS_STREAM};

pub const OBJECT_EVENTS_STREAM: &str = "object-events";
pub const CONTACT_LENS_STREAM: &str = "contact-lens-segments";
pub const RULES_DEAD_LETTER_STREAM: &str = "rules-dead-letter";
pub const RULES_GROUP: &str = "vb-rules";
pub const CONTACT_LENS_GROUP: &str = "vb-contact-lens";

/// Tries of one invocation (the first and two retries).
const ATTEMPTS: u32 = 3;
/// How long one invocation may run.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Invocations of one batch running at once.
const PARALLEL: usize = 16;
/// How often expired objects are looked for.
const EXPIRY_EVERY: Duration = Duration::from_secs(3600);

/// `[[rules]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSection {
    name: String,
    #[serde(default)]
    description: Option<String>,
    /// JSON text or a TOML table.
    #[serde(default)]
    event_pattern: Option<toml::Value>,
    #[serde(default)]
    schedule: Option<String>,
    target: String,
    #[serde(default)]
    enabled: Option<bool>,
}

/// `[[objects.expiration]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpirationSection {
    prefix: String,
    days: u32,
}

/// What triggers a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// The pattern and its JSON, for display.
    Pattern(Pattern, Value),
    /// The schedule and its expression.
    Schedule(Schedule, String),
}

/// A checked rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub description: String,
    pub trigger: Trigger,
    /// A function name or ARN, resolved by the registry.
    pub target: String,
    pub enabled: bool,
}

/// Objects under `prefix` older than `days` are deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiration {
    pub prefix: String,
    pub days: u32,
}

fn pattern_rule(name: &str, description: &str, pattern: Value, target: &str) -> Rule {
    // The built-in patterns are constants that parse; an empty pattern would match nothing
    // it should not, since every built-in names its source.
    let parsed = Pattern::from_value(&pattern).unwrap_or_else(|_| {
        Pattern::from_value(&json!({"source": ["voxbridge.never"]})).expect("a literal pattern parses")
    });
    Rule {
        name: name.into(),
        description: description.into(),
        trigger: Trigger::Pattern(parsed, pattern),
        target: target.into(),
        enabled: true,
    }
}

/// The rules every server has unless configured otherwise.
pub fn default_rules() -> Vec<Rule> {
    let mut rules = vec![
        pattern_rule(
            "vb-handle-contact-events",
            "missed and abandoned calls lose their routing; expired agent steps are rerouted",
            json!({"source": ["aws.connect"], "detail-type": ["Amazon Connect Contact Event"], "detail": {"eventType": ["DISCONNECTED", "CONTACT_DATA_UPDATED"]}}),
            contact_events::NAME,
        ),
        pattern_rule(
            "vb-post-call-analysis",
            "Contact Lens post-call analysis files become post-call sentiment signals",
            json!({"source": ["aws.s3"], "detail-type": ["Object Created"], "detail": {"object": {"key": [{"prefix": "Analysis/Voice/"}]}}}),
            post_call::NAME,
        ),
    ];
    if let Ok(every) = Schedule::parse("rate(5 minutes)") {
        rules.push(Rule {
            name: "vb-warm-telephony".into(),
            description: "keeps InvokeTelephonyIntegrationApiFunction warm".into(),
            trigger: Trigger::Schedule(every, "rate(5 minutes)".into()),
            target: voxbridge_functions::telephony::NAME.into(),
            enabled: true,
        });
    }
    rules
}

/// Checks `[[rules]]`; `origin(key)` names where a key came from for errors.
pub fn parse_rules(sections: &[RuleSection], origin: impl Fn(&str) -> String) -> Result<Vec<Rule>> {
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(sections.len());
    for (i, s) in sections.iter().enumerate() {
        let at = |k: &str| origin(&format!("rules[{i}].{k}"));
        let name = s.name.trim();
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            bail!("{} must be 1 to 64 characters", at("name"));
        }
        if !names.insert(name.to_string()) {
            bail!("{} `{name}` names two rules", at("name"));
        }
        if s.target.trim().is_empty() {
            bail!("{} is empty; name a function (HandleContactEventsFunction) or its ARN", at("target"));
        }
        let trigger = match (&s.event_pattern, &s.schedule) {
            (Some(p), None) => {
                let value = match p {
                    toml::Value::String(text) => serde_json::from_str::<Value>(text)
                        .map_err(|e| anyhow!("{} is not JSON: {e}", at("event_pattern")))?,
                    other => serde_json::to_value(other)
                        .map_err(|e| anyhow!("{} cannot be read: {e}", at("event_pattern")))?,
                };
                let pattern = Pattern::from_value(&value).map_err(|e| {
                    let path = if e.path.is_empty() { String::new() } else { format!(" at {}", e.path) };
                    anyhow!("{} is not an event pattern{path}: {}", at("event_pattern"), e.reason)
                })?;
                Trigger::Pattern(pattern, value)
            }
            (None, Some(expr)) => {
                let schedule = Schedule::parse(expr.trim()).map_err(|e| {
                    anyhow!("{} is `{expr}`, expected rate(…) or cron(…): {}", at("schedule"), e.0)
                })?;
                Trigger::Schedule(schedule, expr.trim().to_string())
            }
            (Some(_), Some(_)) => {
                bail!("{} has both event_pattern and schedule; keep one", origin(&format!("rules[{i}]")))
            }
            (None, None) => bail!("{} needs event_pattern or schedule", origin(&format!("rules[{i}]"))),
        };
        out.push(Rule {
            name: name.to_string(),
            description: s.description.clone().unwrap_or_default(),
            trigger,
            target: s.target.trim().to_string(),
            enabled: s.enabled.unwrap_or(true),
        });
    }
    Ok(out)
}

/// Checks `[[objects.expiration]]`.
pub fn parse_expiration(
    sections: &[ExpirationSection],
    origin: impl Fn(&str) -> String,
) -> Result<Vec<Expiration>> {
    let mut out = Vec::with_capacity(sections.len());
    for (i, s) in sections.iter().enumerate() {
        let prefix = s.prefix.trim().trim_matches('/');
        if prefix.is_empty() || prefix.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
            bail!(
                "{} is `{}`, expected a key prefix such as `ctr` or `Analysis/Voice`",
                origin(&format!("objects.expiration[{i}].prefix")),
                s.prefix
            );
        }
        if s.days == 0 {
            bail!("{} must be at least 1", origin(&format!("objects.expiration[{i}].days")));
        }
        out.push(Expiration { prefix: prefix.to_string(), days: s.days });
    }
    Ok(out)
}

/// The rules in force: the defaults, each replaced by a configured rule of its name, then
/// the other configured rules.
pub fn effective_rules(configured: &[Rule]) -> Vec<Rule> {
    let mut out: Vec<Rule> = default_rules()
        .into_iter()
        .map(|d| configured.iter().find(|c| c.name == d.name).cloned().unwrap_or(d))
        .collect();
    for c in configured {
        if !out.iter().any(|r| r.name == c.name) {
            out.push(c.clone());
        }
    }
    out
}

/// The rules whose pattern matches `event`.
pub fn matching<'a>(rules: &'a [Rule], event: &Value) -> Vec<&'a Rule> {
    rules
        .iter()
        .filter(|r| r.enabled)
        .filter(|r| matches!(&r.trigger, Trigger::Pattern(p, _) if p.matches(event)))
        .collect()
}

/// The EventBridge "Scheduled Event" a schedule rule sends.
pub fn scheduled_event(rule: &str, at_ms: i64) -> Value {
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": iso_seconds(at_ms),
        "region": REGION,
        "resources": [format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{rule}")],
        "detail": {},
    })
}

/// The account and region Voxbridge's events name (there is no AWS account behind them).
pub const ACCOUNT: &str = "000000000000";
pub const REGION: &str = "local";

fn iso_seconds(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The object store as the functions read it.
pub struct ObjectsReader(pub Objects);

#[async_trait]
impl ObjectReader for ObjectsReader {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.0.get(key).await.map_err(|e| format!("{e:#}"))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        Ok(self
            .0
            .list(Some(prefix))
            .await
            .map_err(|e| format!("{e:#}"))?
            .into_iter()
            .map(|o| o.key)
            .collect())
    }
}

/// Registers the built-in pipeline functions; ContactDataSync only with a CRM client.
pub fn register_functions(
    registry: &Registry,
    telephony: TelephonyApiConfig,
    crm: Option<Arc<CrmClient>>,
    objects: Objects,
) -> Result<()> {
    let api: Arc<dyn contact_events::TelephonyApi> =
        Arc::new(TelephonyClient::new(telephony.clone()).map_err(anyhow::Error::msg)?);
    let reader: Arc<dyn ObjectReader> = Arc::new(ObjectsReader(objects));
    registry.register(
        Arc::new(HandleContactEvents::new(api.clone(), telephony.call_center_api_name.clone())),
        FunctionOptions::default(),
    );
    registry.register(
        Arc::new(PostCallAnalysisTrigger::new(api.clone(), reader.clone())),
        FunctionOptions::default(),
    );
    let processor = Arc::new(ContactLensProcessor::new(api));
    registry.register(processor.clone(), FunctionOptions::default());
    registry.register(Arc::new(ContactLensConsumer::new(processor)), FunctionOptions::default());
    if let Some(crm) = crm {
        registry.register(Arc::new(ContactDataSync::new(crm, reader)), FunctionOptions::default());
    }
    Ok(())
}

/// Invokes `rule`'s target with `event`, retrying; the last error when every try failed.
async fn invoke(registry: &Registry, rule: &Rule, event: &Value) -> Result<Value, String> {
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
        }
        match registry.invoke(&rule.target, event.clone(), INVOKE_TIMEOUT).await.result {
            Ok(v) => return Ok(v),
            // Retrying cannot bind a missing function.
            Err(e @ voxbridge_functions::FunctionError::NotFound(_)) => return Err(e.to_string()),
            Err(e) => {
                tracing::debug!(rule = %rule.name, attempt, error = %e, "rule target failed");
                last = e.to_string();
            }
        }
    }
    Err(last)
}

/// Handles one batch of events: every match of every record, up to [`PARALLEL`] at once.
async fn route_batch(
    rules: Arc<Vec<Rule>>,
    registry: Arc<Registry>,
    bus: &dyn Bus,
    records: Vec<BusRecord>,
) -> Result<(), HandlerError> {
    let mut jobs: Vec<(usize, Value)> = Vec::new();
    for r in &records {
        let Ok(event) = serde_json::from_slice::<Value>(&r.data) else {
            tracing::warn!(sequence = %r.sequence_number, "an event that is not JSON; no rule applies");
            continue;
        };
        for (i, rule) in rules.iter().enumerate() {
            if matching(std::slice::from_ref(rule), &event).is_empty() {
                continue;
            }
            jobs.push((i, event.clone()));
        }
    }
    // Owned jobs (an index and the event) keep the futures free of borrowed closures.
    let failures: Vec<Value> = futures::stream::iter(jobs)
        .map(|(i, event)| {
            let (rules, registry) = (rules.clone(), registry.clone());
            async move {
                let rule = &rules[i];
                match invoke(&registry, rule, &event).await {
                    Ok(answer) => {
                        tracing::debug!(rule = %rule.name, target = %rule.target, %answer, "rule target invoked");
                        None
                    }
                    Err(error) => {
                        tracing::warn!(rule = %rule.name, target = %rule.target, %error, "rule target failed; dead-lettered");
                        Some(json!({"rule": rule.name, "target": rule.target, "error": error, "event": event}))
                    }
                }
            }
        })
        .buffer_unordered(PARALLEL)
        .filter_map(|f| async move { f })
        .collect()
        .await;
    for letter in failures {
        let key = letter["rule"].as_str().unwrap_or("rule").to_string();
        bus.put(RULES_DEAD_LETTER_STREAM, &key, letter.to_string().into_bytes())
            .await
            .map_err(|e| HandlerError::new(e.to_string()))?;
    }
    Ok(())
}

/// Runs a consumer of `options` with `handler` until the pipelines stop.
fn spawn_consumer<F, Fut>(pipelines: &mut Pipelines, options: ConsumerOptions, handler: F)
where
    F: Fn(Vec<BusRecord>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    let bus = pipelines.bus();
    let mut stop = pipelines.stop_signal();
    let name = format!("{} on {}", options.group, options.stream);
    pipelines.spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = voxbridge_bus::run_consumer(bus, options, handler, shutdown).await {
            tracing::error!("the consumer {name} cannot start: {e}");
        }
    });
}

/// Starts the rules worker, the scheduler, the Contact Lens consumer and the object expiry;
/// says what runs, for the banner.
pub fn start(
    pipelines: &mut Pipelines,
    rules: Vec<Rule>,
    registry: Arc<Registry>,
    objects: Objects,
    expiration: Vec<Expiration>,
) -> String {
    let rules = Arc::new(rules);
    for stream in [CONTACT_EVENTS_STREAM, OBJECT_EVENTS_STREAM] {
        let mut options = ConsumerOptions::new(stream, RULES_GROUP);
        options.starting_position = StartingPosition::TrimHorizon;
        let (rules, registry, bus) = (rules.clone(), registry.clone(), pipelines.bus());
        spawn_consumer(pipelines, options, move |records| {
            let (rules, registry, bus) = (rules.clone(), registry.clone(), bus.clone());
            async move { route_batch(rules, registry, bus.as_ref(), records).await }
        });
    }
    for rule in rules.iter().filter(|r| r.enabled) {
        if let Trigger::Schedule(schedule, _) = &rule.trigger {
            pipelines.spawn(fire_on_schedule(
                rule.clone(),
                schedule.clone(),
                registry.clone(),
                pipelines.stop_signal(),
            ));
        }
    }
    let mut options = ConsumerOptions::new(CONTACT_LENS_STREAM, CONTACT_LENS_GROUP);
    options.starting_position = StartingPosition::TrimHorizon;
    options.batch_size = contact_lens::MAX_RECORDS;
    options.batching_window = Duration::from_secs(1);
    options.bisect_on_error = true;
    options.max_retries = Some(0);
    let arn = voxbridge_bus::stream_arn(REGION, ACCOUNT, CONTACT_LENS_STREAM);
    let lens_registry = registry.clone();
    spawn_consumer(pipelines, options, move |records| {
        let (registry, arn) = (lens_registry.clone(), arn.clone());
        async move {
            let event = voxbridge_bus::lambda_kinesis_event(&arn, &records);
            let invoked = registry.invoke(contact_lens::CONSUMER_NAME, event, INVOKE_TIMEOUT).await;
            invoked.result.map(|_| ()).map_err(|e| HandlerError::new(e.to_string()))
        }
    });
    if !expiration.is_empty() {
        pipelines.spawn(expire_objects(objects, expiration.clone(), pipelines.stop_signal()));
    }
    let active = rules.iter().filter(|r| r.enabled).count();
    let missing: Vec<&str> = rules
        .iter()
        .filter(|r| r.enabled && !registry.is_known(&r.target))
        .map(|r| r.target.as_str())
        .collect();
    let mut banner = format!(
        "{active} rules ({RULES_GROUP} on `{CONTACT_EVENTS_STREAM}`, `{OBJECT_EVENTS_STREAM}`; {CONTACT_LENS_GROUP} on `{CONTACT_LENS_STREAM}`)"
    );
    if !missing.is_empty() {
        banner.push_str(&format!("; no function for {}", missing.join(", ")));
    }
    if !expiration.is_empty() {
        let list: Vec<String> =
            expiration.iter().map(|e| format!("{}/ after {} d", e.prefix, e.days)).collect();
        banner.push_str(&format!("; expiry {}", list.join(", ")));
    }
    banner
}

/// Registers the pipeline functions in the server's registry and starts everything above;
/// `functions` is that registry with the URL its functions call (`None` without the HTTP
/// listener). Says what runs, for the banner.
pub fn start_in_serve(
    config: &Config,
    data: &DataDir,
    setup: &SetupFile,
    pipelines: &mut Pipelines,
    functions: Option<(Arc<Registry>, String)>,
) -> String {
    let Some((registry, base)) = functions else {
        return "off (needs the HTTP listener)".into();
    };
    let objects = match Objects::from_config(config) {
        Ok(o) => o.with_events(pipelines.bus()),
        Err(e) => return format!("off ({e:#})"),
    };
    match crate::callsim::telephony_config(config, data, setup, &base) {
        Ok(telephony) => {
            let crm = crate::pipelines::crm_client(config, data, setup, &base).ok().map(Arc::new);
            if let Err(e) = register_functions(&registry, telephony, crm, objects.clone()) {
                tracing::warn!("the pipeline functions are off: {e:#}");
            }
        }
        Err(e) => tracing::warn!("the pipeline functions are off: {e:#}"),
    }
    let rules = effective_rules(&config.rules);
    start(pipelines, rules, registry, objects, config.object_expiration.clone())
}

/// Invokes the rule's target whenever its schedule fires, until stopped.
async fn fire_on_schedule(
    rule: Rule,
    schedule: Schedule,
    registry: Arc<Registry>,
    mut stop: watch::Receiver<bool>,
) {
    let anchor = now_ms();
    loop {
        let now = now_ms();
        let Some(next) = schedule.next_after(now, anchor) else { return };
        let wait = Duration::from_millis(u64::try_from(next.saturating_sub(now)).unwrap_or(0));
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(wait) => {}
        }
        let event = scheduled_event(&rule.name, next);
        match invoke(&registry, &rule, &event).await {
            Ok(_) => tracing::debug!(rule = %rule.name, "scheduled rule fired"),
            Err(error) => {
                tracing::warn!(rule = %rule.name, target = %rule.target, %error, "scheduled rule failed")
            }
        }
    }
}

/// Deletes the objects past their prefix's age, now and every hour, until stopped.
async fn expire_objects(objects: Objects, rules: Vec<Expiration>, mut stop: watch::Receiver<bool>) {
    loop {
        match expire_once(&objects, &rules, now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "expired objects deleted"),
            Err(e) => tracing::warn!("object expiry failed: {e:#}"),
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(EXPIRY_EVERY) => {}
        }
    }
}

/// Deletes the objects older than their rule's days at `now_ms`; how many went.
pub async fn expire_once(objects: &Objects, rules: &[Expiration], now_ms: i64) -> Result<usize> {
    let mut deleted = 0;
    for rule in rules {
        let cutoff = now_ms.saturating_sub(i64::from(rule.days).saturating_mul(86_400_000));
        for o in objects.list(Some(&rule.prefix)).await? {
            if o.modified_ms < cutoff && objects.delete(&o.key).await? {
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sections(toml_text: &str) -> Vec<RuleSection> {
        #[derive(Deserialize)]
        struct F {
            rules: Vec<RuleSection>,
        }
        toml::from_str::<F>(toml_text).unwrap().rules
    }

    #[test]
    fn rules_from_toml() {
        let rules = parse_rules(
            &sections(
                r#"
                [[rules]]
                name = "json"
                event_pattern = '{"source": ["aws.connect"]}'
                target = "HandleContactEventsFunction"

                [[rules]]
                name = "table"
                event_pattern = { source = ["aws.s3"], detail = { object = { key = [{ prefix = "x/" }] } } }
                target = "arn:aws:lambda:us-east-1:1:function:cc-PostCallAnalysisTriggerFunction"

                [[rules]]
                name = "vb-warm-telephony"
                schedule = "rate(1 minute)"
                target = "InvokeTelephonyIntegrationApiFunction"
                enabled = false
                "#,
            ),
            |k| format!("`{k}`"),
        )
        .unwrap();
        assert_eq!(rules.len(), 3);
        let s3 = json!({"source": "aws.s3", "detail": {"object": {"key": "x/1"}}});
        assert_eq!(matching(&rules, &s3).iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["table"]);
        let all = effective_rules(&rules);
        assert_eq!(all.len(), 5, "two defaults kept, one replaced, two added");
        assert!(!all.iter().find(|r| r.name == "vb-warm-telephony").unwrap().enabled);
    }

    #[test]
    fn bad_rules_say_where() {
        let cases = [
            ("[[rules]]\nname = \"a\"\ntarget = \"f\"", "needs event_pattern or schedule"),
            ("[[rules]]\nname = \"a\"\ntarget = \"f\"\nschedule = \"rate(0 minutes)\"", "rules[0].schedule"),
            ("[[rules]]\nname = \"a\"\ntarget = \"f\"\nevent_pattern = '{\"source\": \"x\"}'", "rules[0].event_pattern"),
            ("[[rules]]\nname = \"a\"\ntarget = \"f\"\nevent_pattern = 'nope'", "is not JSON"),
            ("[[rules]]\nname = \"a\"\ntarget = \" \"\nschedule = \"rate(1 minute)\"", "rules[0].target"),
            (
                "[[rules]]\nname = \"a\"\ntarget = \"f\"\nschedule = \"rate(1 minute)\"\n[[rules]]\nname = \"a\"\ntarget = \"f\"\nschedule = \"rate(1 minute)\"",
                "names two rules",
            ),
        ];
        for (text, needle) in cases {
            let err = parse_rules(&sections(text), |k| format!("`{k}`")).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn default_rules_match_what_the_pipelines_emit() {
        let rules = default_rules();
        let disconnected = json!({"source": "aws.connect", "detail-type": "Amazon Connect Contact Event", "detail": {"eventType": "DISCONNECTED"}});
        assert_eq!(matching(&rules, &disconnected)[0].target, contact_events::NAME);
        let queued = json!({"source": "aws.connect", "detail-type": "Amazon Connect Contact Event", "detail": {"eventType": "QUEUED"}});
        assert!(matching(&rules, &queued).is_empty());
        let analysis = crate::objects::object_created_event(
            crate::objects::BUCKET,
            "Analysis/Voice/2024/01/01/x.json",
            10,
            "e",
            1,
        );
        assert_eq!(matching(&rules, &analysis)[0].target, post_call::NAME);
        let ctr = crate::objects::object_created_event(crate::objects::BUCKET, "ctr/x.json", 10, "e", 1);
        assert!(matching(&rules, &ctr).is_empty());
        let e = scheduled_event("r", 0);
        assert_eq!(e["detail-type"], "Scheduled Event");
        assert_eq!(e["time"], "1970-01-01T00:00:00Z");
        assert!(voxbridge_functions::is_warm_up(&e));
    }

    #[tokio::test]
    async fn expiry_deletes_old_objects_under_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::open(dir.path()).unwrap();
        objects.put("ctr/a.json", b"{}".to_vec()).await.unwrap();
        objects.put("keep/b.json", b"{}".to_vec()).await.unwrap();
        let rules =
            parse_expiration(&[ExpirationSection { prefix: "ctr/".into(), days: 1 }], |k| k.to_string())
                .unwrap();
        assert_eq!(expire_once(&objects, &rules, now_ms()).await.unwrap(), 0, "not old yet");
        assert_eq!(expire_once(&objects, &rules, now_ms() + 2 * 86_400_000).await.unwrap(), 1);
        let keys: Vec<String> = objects.list(None).await.unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["keep/b.json"]);
        assert!(parse_expiration(&[ExpirationSection { prefix: "..".into(), days: 1 }], |k| k.to_string())
            .is_err());
        assert!(parse_expiration(&[ExpirationSection { prefix: "x".into(), days: 0 }], |k| k.to_string())
            .is_err());
    }
}
