//! `voxbridge metadata retrieve|deploy`: back up an org's call-center metadata as files and
//! restore it, as an admin does around a sandbox refresh.
//!
//! The metadata is what configures the contact center rather than what it records: call
//! centers, queues, the routing map, phone channels, routing definitions and VoiceCall
//! custom fields. `retrieve` reads them from the store of the data dir (`--data`/`--config`,
//! the same store `serve` uses) and writes one JSON file per type into the output directory,
//! records sorted by key so backups diff cleanly. References between records (a routing
//! map's queue, a channel's call center) are written by the target's type and key, not its
//! id, so a backup deploys into an org whose ids differ.
//!
//! `deploy` provisions the data dir's store as `setup` does (a fresh one gets the demo
//! org), then upserts every record by type and key in dependency order and refreshes
//! `setup.json`. A call center that already exists keeps its own `PublicKey`/`Certificate`:
//! its private key is in the target's data dir, and the backup's key would lock it out.
//! Records whose references cannot be resolved (an agent who does not exist there) are
//! skipped and reported. Run it with the server stopped, or restart the server after: the
//! server caches call-center keys and field definitions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use voxbridge_core::{KeyPrefix, Record, SfId};
use voxbridge_store::Store;

use crate::config::Config;
use crate::datadir::DataDir;

/// The metadata types, in dependency order (referenced types first).
pub const TYPES: &[&str] = &[
    "CallCenter",
    "Group",
    "FlowDefinitionView",
    "CustomField",
    "CallCenterRoutingMap",
    "ConversationChannelDefinition",
];

/// Fields a deploy leaves alone on call centers that already exist in the target.
const KEY_FIELDS: &[&str] = &["PublicKey", "Certificate"];

/// The manifest's name and format version.
const MANIFEST: &str = "metadata.json";
const FORMAT_VERSION: u64 = 1;

#[derive(Debug, Subcommand)]
pub enum MetadataCommand {
    /// Write the org's call-center metadata (call centers, queues, routing map, phone
    /// channels, routing definitions, custom fields) to DIR, one JSON file per type.
    Retrieve(RetrieveArgs),
    /// Create or update the metadata of a directory written by `retrieve` in this data dir's
    /// org (provisioning it first if the store is new), then refresh setup.json.
    Deploy(DeployArgs),
}

#[derive(Debug, Args)]
pub struct RetrieveArgs {
    /// Directory to write (created if missing; existing metadata files are replaced).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Directory written by `voxbridge metadata retrieve`.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Show what would change without writing.
    #[arg(long)]
    dry_run: bool,
}

/// `voxbridge metadata …`
pub fn run(command: &MetadataCommand, config: &Config) -> Result<()> {
    crate::runtime()?.block_on(async {
        match command {
            MetadataCommand::Retrieve(args) => retrieve(config, &args.out).await,
            MetadataCommand::Deploy(args) => deploy(config, &args.dir, args.dry_run).await,
        }
    })
}

async fn retrieve(config: &Config, out: &Path) -> Result<()> {
    let data = DataDir::new(&config.data_dir);
    let setup = data.read_setup()?;
    let org = SfId::parse(&setup.org.id).with_context(|| format!("setup.json's org id {}", setup.org.id))?;
    let store = crate::serve::open_store(config).await?;
    let result = retrieve_from(&*store, &org).await;
    store.close().await;
    let files = result?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut counts = Map::new();
    for (sobject, records) in &files {
        let path = out.join(format!("{sobject}.json"));
        let body = json!({"sobject": sobject, "records": records});
        write_json(&path, &body)?;
        counts.insert(sobject.clone(), records.len().into());
        println!("{:<30} {:>4} records  {}", sobject, records.len(), path.display());
    }
    let manifest = json!({
        "version": FORMAT_VERSION,
        "org": {"id": setup.org.id, "name": setup.org.name},
        "retrievedAt": voxbridge_functions::iso_ms(crate::provision::now_ms()),
        "types": counts,
    });
    write_json(&out.join(MANIFEST), &manifest)?;
    println!("Retrieved the metadata of org {} into {}.", setup.org.id, out.display());
    Ok(())
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v)? + "\n";
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Every metadata type's records as `{key, fields}`, sorted by key; ids in fields become
/// `{"$ref": {"sobject", "key"}}` when they name a keyed record of the org.
pub async fn retrieve_from(store: &dyn Store, org: &SfId) -> Result<BTreeMap<String, Vec<Value>>> {
    let mut out = BTreeMap::new();
    for sobject in TYPES {
        let mut records = store.list(org, sobject).await.with_context(|| format!("cannot list {sobject}"))?;
        if *sobject == "Group" {
            records.retain(|r| r.str("Type").is_none_or(|t| t.eq_ignore_ascii_case("Queue")));
        }
        records.sort_by(|a, b| a.key.cmp(&b.key));
        let mut list = Vec::with_capacity(records.len());
        for r in records {
            let Some(key) = r.key.clone() else {
                tracing::warn!(sobject, id = %r.id, "a record without a key cannot be deployed; skipped");
                continue;
            };
            let mut fields = Map::new();
            for (name, value) in &r.fields {
                fields.insert(name.clone(), portable(store, org, value).await?);
            }
            list.push(json!({"key": key, "fields": fields}));
        }
        out.insert(sobject.to_string(), list);
    }
    Ok(out)
}

/// `value` with an id of a keyed record of the org replaced by a reference to its key.
async fn portable(store: &dyn Store, org: &SfId, value: &Value) -> Result<Value> {
    let Some(id) = value.as_str().and_then(|s| SfId::parse(s).ok()) else {
        return Ok(value.clone());
    };
    match store.get(org, &id).await? {
        Some(target) if target.key.is_some() => {
            Ok(json!({"$ref": {"sobject": target.sobject, "key": target.key}}))
        }
        _ => Ok(value.clone()),
    }
}

/// What a deploy did (or would do) per type.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// `key: why` of records not deployed.
    pub skipped: Vec<String>,
}

async fn deploy(config: &Config, dir: &Path, dry_run: bool) -> Result<()> {
    let files = read_dir(dir)?;
    let data = DataDir::new(&config.data_dir);
    let (store, provisioned) = crate::serve::prepare(config).await?;
    let result = async {
        let org = SfId::parse(&provisioned.setup.org.id)?;
        let outcomes = deploy_into(&*store, &org, &files, dry_run, crate::provision::now_ms()).await?;
        if !dry_run {
            let setup = crate::provision::setup_from_store(&*store, &org, config, &data).await?;
            data.write_setup(&setup)?;
        }
        Ok::<_, anyhow::Error>((org, outcomes))
    }
    .await;
    store.close().await;
    let (org, outcomes) = result?;
    let mut skipped = 0;
    for (sobject, o) in &outcomes {
        println!(
            "{:<30} {} created, {} updated, {} unchanged, {} skipped",
            sobject,
            o.created,
            o.updated,
            o.unchanged,
            o.skipped.len()
        );
        for s in &o.skipped {
            println!("  skipped {s}");
        }
        skipped += o.skipped.len();
    }
    let verb = if dry_run { "Would deploy" } else { "Deployed" };
    println!(
        "{verb} the metadata of {} into org {org}{}.",
        dir.display(),
        if skipped > 0 { " (with skips)" } else { "" }
    );
    if !dry_run {
        println!("Restart `voxbridge serve` if it is running, so it reads the new call centers and fields.");
    }
    Ok(())
}

/// The records of a directory written by `retrieve`, by type.
pub fn read_dir(dir: &Path) -> Result<BTreeMap<String, Vec<Value>>> {
    let manifest_path = dir.join(MANIFEST);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).with_context(|| {
            format!("cannot read {}; is {} a metadata backup?", manifest_path.display(), dir.display())
        })?)
        .with_context(|| format!("{} is not JSON", manifest_path.display()))?;
    if manifest["version"].as_u64() != Some(FORMAT_VERSION) {
        bail!(
            "{} has format version {}; this voxbridge reads version {FORMAT_VERSION}",
            manifest_path.display(),
            manifest["version"]
        );
    }
    let mut out = BTreeMap::new();
    for sobject in TYPES {
        let path = dir.join(format!("{sobject}.json"));
        if !path.exists() {
            continue;
        }
        let body: Value = serde_json::from_str(
            &std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?,
        )
        .with_context(|| format!("{} is not JSON", path.display()))?;
        let records = body["records"]
            .as_array()
            .with_context(|| format!("{} has no `records` list", path.display()))?;
        for (i, r) in records.iter().enumerate() {
            if r["key"].as_str().is_none_or(str::is_empty) || !r["fields"].is_object() {
                bail!("{} record {i}: each record needs a `key` and `fields`", path.display());
            }
        }
        out.insert(sobject.to_string(), records.clone());
    }
    Ok(out)
}

/// Upserts `files` into `org` by type and key, in dependency order.
pub async fn deploy_into(
    store: &dyn Store,
    org: &SfId,
    files: &BTreeMap<String, Vec<Value>>,
    dry_run: bool,
    now_ms: i64,
) -> Result<Vec<(String, Outcome)>> {
    let mut outcomes = Vec::new();
    for sobject in TYPES {
        let Some(records) = files.get(*sobject) else { continue };
        let mut o = Outcome::default();
        for r in records {
            let key = r["key"].as_str().unwrap_or_default();
            let mut fields = Map::new();
            let mut unresolved = None;
            for (name, value) in r["fields"].as_object().into_iter().flatten() {
                match resolve(store, org, value).await? {
                    Some(v) => {
                        fields.insert(name.clone(), v);
                    }
                    None => {
                        unresolved = Some(format!(
                            "{sobject} {key}: {name} names {} that does not exist here",
                            value["$ref"]
                        ))
                    }
                }
            }
            if let Some(why) = unresolved {
                o.skipped.push(why);
                continue;
            }
            let existing = store.find_by_key(org, sobject, key).await?.into_iter().next();
            match existing {
                Some(current) => {
                    if *sobject == "CallCenter" {
                        for k in KEY_FIELDS {
                            fields.remove(*k);
                        }
                    }
                    let changed: Map<String, Value> =
                        fields.into_iter().filter(|(k, v)| current.fields.get(k) != Some(v)).collect();
                    if changed.is_empty() {
                        o.unchanged += 1;
                        continue;
                    }
                    if !dry_run {
                        store.update(org, &current.id, changed, now_ms).await?;
                    }
                    o.updated += 1;
                }
                None => {
                    if !dry_run {
                        let prefix = KeyPrefix::from_sobject(sobject)
                            .with_context(|| format!("no id prefix for {sobject}"))?;
                        let id = SfId::generate(prefix, &mut rand::thread_rng());
                        let mut record =
                            Record::new(id, org.clone(), *sobject, Some(key.to_string()), now_ms);
                        record.fields = fields;
                        store.insert(record).await?;
                    }
                    o.created += 1;
                }
            }
        }
        outcomes.push((sobject.to_string(), o));
    }
    Ok(outcomes)
}

/// A field value with `$ref`s turned into the target's id in `org`; `None` when the target
/// does not exist there.
async fn resolve(store: &dyn Store, org: &SfId, value: &Value) -> Result<Option<Value>> {
    let Some(r) = value.get("$ref").filter(|_| value.as_object().is_some_and(|m| m.len() == 1)) else {
        return Ok(Some(value.clone()));
    };
    let (Some(sobject), Some(key)) = (r["sobject"].as_str(), r["key"].as_str()) else {
        return Ok(Some(value.clone()));
    };
    let found = store.find_by_key(org, sobject, key).await?.into_iter().next();
    Ok(found.map(|t| Value::String(t.id.to_string())))
}
