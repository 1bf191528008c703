//! `voxbridge metadata retrieve|deploy`: back up an org's call-center metadata as files and
//! restore it, as an admin does around a sandbox refresh.
//!
//! The metadata is what configures the contact center rather than what it records: the
//! telephony provider's vendor info, connected apps (with their public keys and
//! pre-authorized users and profiles), call centers (with theirs), queues, the routing map,
//! phone channels, routing definitions, custom fields, messaging templates and automations.
//! `retrieve` reads them from the store of the data dir (`--data`/`--config`, the same store
//! `serve` uses) and writes one JSON file per type into the output directory, records
//! sorted by key so backups diff cleanly; `--package package.xml` limits it to the types and
//! members a Metadata-API manifest names. References between records (a routing map's
//! queue, a channel's call center) are written by the target's type and key, not its id, so
//! a backup deploys into an org whose ids differ.
//!
//! `deploy` provisions the data dir's store as `setup` does (a fresh one gets the demo
//! org), then upserts every record by type and key in dependency order and refreshes
//! `setup.json`. Keys are restored from the backup: after a refresh the telephony provider
//! still signs with the private key it had, so the call center and connected app must
//! verify with the public key they had (`--keep-keys` keeps the target's keys instead).
//! A connected app is matched by consumer key, else by name, so the refreshed org's own
//! app takes the backup's consumer key rather than gaining a twin. Records whose references
//! cannot be resolved (an agent who does not exist there) are skipped and reported. Run it
//! with the server stopped, or restart the server after: the server caches call-center
//! keys and field definitions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use voxbridge_core::{KeyPrefix, Record, SfId};
use voxbridge_store::{Store, WriteOp};

use crate::config::Config;
use crate::datadir::DataDir;

/// The metadata types, in dependency order (referenced types first).
pub const TYPES: &[&str] = &[
    "ConversationVendorInfo",
    "ConnectedApp",
    "CallCenter",
    "Group",
    "FlowDefinitionView",
    "CustomField",
    "CallCenterRoutingMap",
    "ConversationChannelDefinition",
    "MessagingTemplate",
    "Automation",
];

/// Fields `--keep-keys` leaves alone on call centers and connected apps the target has.
const KEY_FIELDS: &[&str] = &["PublicKey", "Certificate"];

/// The types whose records carry a key that verifies someone's signatures.
const KEYED_TYPES: &[&str] = &["CallCenter", "ConnectedApp"];

/// The manifest's name and format version.
const MANIFEST: &str = "metadata.json";
const FORMAT_VERSION: u64 = 1;

#[derive(Debug, Subcommand)]
pub enum MetadataCommand {
    /// Write the org's call-center metadata (vendor info, connected apps, call centers,
    /// queues, routing map, phone channels, routing definitions, custom fields, messaging
    /// templates, automations) to DIR, one JSON file per type.
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
    /// A Metadata-API `package.xml` naming the types and members to retrieve (`*` for
    /// every member of a type); without it, everything.
    #[arg(long, value_name = "FILE")]
    package: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Directory written by `voxbridge metadata retrieve`.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Show what would change without writing.
    #[arg(long)]
    dry_run: bool,
    /// Keep the target's public keys and certificates on call centers and connected apps
    /// it already has, instead of restoring the backup's.
    #[arg(long)]
    keep_keys: bool,
}

/// `voxbridge metadata …`
pub fn run(command: &MetadataCommand, config: &Config) -> Result<()> {
    crate::runtime()?.block_on(async {
        match command {
            MetadataCommand::Retrieve(args) => retrieve(config, &args.out, args.package.as_deref()).await,
            MetadataCommand::Deploy(args) => {
                let options = DeployOptions { dry_run: args.dry_run, keep_keys: args.keep_keys };
                deploy(config, &args.dir, options).await
            }
        }
    })
}

async fn retrieve(config: &Config, out: &Path, package: Option<&Path>) -> Result<()> {
    let package = match package {
        Some(path) => Some(
            parse_package(
                &std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
            )
            .with_context(|| format!("{} is not a usable package.xml", path.display()))?,
        ),
        None => None,
    };
    let data = DataDir::new(&config.data_dir);
    let setup = data.read_setup()?;
    let org = SfId::parse(&setup.org.id).with_context(|| format!("setup.json's org id {}", setup.org.id))?;
    let store = crate::serve::open_store(config).await?;
    let result = retrieve_from(&*store, &org).await;
    store.close().await;
    let mut files = result?;
    if let Some(package) = &package {
        files = select(files, package)?;
    }
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

/// The types and members a Metadata-API `package.xml` names: `{type: [member, …]}`, where
/// `*` stands for every member. Only the parts a manifest needs are read (`<types>` with
/// `<members>` and `<name>`); comments and `<version>` are ignored.
pub fn parse_package(text: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let text = strip_comments(text);
    if !text.contains("<Package") {
        bail!("there is no <Package> element");
    }
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut rest = text.as_str();
    let mut index = 0;
    while let Some(start) = rest.find("<types>") {
        index += 1;
        let after = &rest[start + "<types>".len()..];
        let end = after.find("</types>").with_context(|| format!("<types> number {index} is not closed"))?;
        let block = &after[..end];
        let names = elements(block, "name");
        let [name] = names.as_slice() else {
            bail!("<types> number {index} needs exactly one <name>, it has {}", names.len());
        };
        let Some(sobject) = TYPES.iter().find(|t| t.eq_ignore_ascii_case(name)) else {
            bail!(
                "<types> number {index} names `{name}`, which is not a metadata type Voxbridge backs up ({})",
                TYPES.join(", ")
            );
        };
        let members = elements(block, "members");
        if members.is_empty() {
            bail!("<types> number {index} ({sobject}) has no <members>; use <members>*</members> for all");
        }
        out.entry(sobject.to_string()).or_default().extend(members);
        rest = &after[end..];
    }
    if out.is_empty() {
        bail!("it names no <types>");
    }
    Ok(out)
}

fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        rest = match rest[start..].find("-->") {
            Some(end) => &rest[start + end + 3..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// The trimmed, unescaped texts of the `<tag>…</tag>` elements in `block`.
fn elements(block: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = block;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        let text = after[..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&");
        out.push(text);
        rest = &after[end + close.len()..];
    }
    out
}

/// Whether a retrieved record (`{key, fields}`) is the package member `member`: by key, or
/// by its API name (`DeveloperName`, `InternalName`, or `Name` with every character other
/// than a letter or digit written `_`, as the Metadata API names a connected app).
fn is_member(record: &Value, member: &str) -> bool {
    if member == "*" || record["key"].as_str() == Some(member) {
        return true;
    }
    let fields = &record["fields"];
    ["DeveloperName", "InternalName", "Name"].iter().filter_map(|f| fields[*f].as_str()).any(|name| {
        name == member
            || name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect::<String>()
                == member
    })
}

/// The records of `files` a package names; an error when a named member does not exist.
pub fn select(
    mut files: BTreeMap<String, Vec<Value>>,
    package: &BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<String, Vec<Value>>> {
    let mut out = BTreeMap::new();
    for (sobject, members) in package {
        let records = files.remove(sobject).unwrap_or_default();
        for m in members.iter().filter(|m| *m != "*") {
            if !records.iter().any(|r| is_member(r, m)) {
                let have: Vec<&str> = records.iter().filter_map(|r| r["key"].as_str()).collect();
                bail!(
                    "package.xml names {sobject} `{m}`, which the org does not have (it has: {})",
                    if have.is_empty() { "none".to_string() } else { have.join(", ") }
                );
            }
        }
        let chosen = records.into_iter().filter(|r| members.iter().any(|m| is_member(r, m))).collect();
        out.insert(sobject.clone(), chosen);
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
    /// Things the admin should know about deployed records.
    pub notes: Vec<String>,
}

/// How to deploy.
#[derive(Debug, Default, Clone, Copy)]
pub struct DeployOptions {
    /// Only report what would change.
    pub dry_run: bool,
    /// Keep the target's keys on call centers and connected apps it has.
    pub keep_keys: bool,
}

async fn deploy(config: &Config, dir: &Path, options: DeployOptions) -> Result<()> {
    let dry_run = options.dry_run;
    let files = read_dir(dir)?;
    let data = DataDir::new(&config.data_dir);
    let (store, provisioned) = crate::serve::prepare(config).await?;
    let result = async {
        let org = SfId::parse(&provisioned.setup.org.id)?;
        let outcomes = deploy_into(&*store, &org, &files, options, crate::provision::now_ms()).await?;
        let notes = stale_local_keys(&*store, &org, &data, &outcomes).await?;
        if !dry_run {
            let setup = crate::provision::setup_from_store(&*store, &org, config, &data).await?;
            data.write_setup(&setup)?;
        }
        Ok::<_, anyhow::Error>((org, outcomes, notes))
    }
    .await;
    store.close().await;
    let (org, outcomes, notes) = result?;
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
    for n in &notes {
        println!("note: {n}");
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
            if *sobject == "Automation" {
                check_automation(&path, r)?;
            }
        }
        out.insert(sobject.to_string(), records.clone());
    }
    Ok(out)
}

/// Checks an automation's definition as the server will, so a deploy never stores one
/// that would not run.
fn check_automation(path: &Path, r: &Value) -> Result<()> {
    let key = r["key"].as_str().unwrap_or_default();
    let definition = match &r["fields"]["Definition"] {
        Value::String(text) => serde_json::from_str(text)
            .with_context(|| format!("{} automation {key}: Definition is not JSON", path.display()))?,
        other => other.clone(),
    };
    if let Err(errors) = voxbridge_automations::parse(key, &definition) {
        let list: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        bail!("{} automation {key} has {} mistake(s):\n{}", path.display(), list.len(), list.join("\n"));
    }
    Ok(())
}

/// Upserts `files` into `org` by type and key, in dependency order.
pub async fn deploy_into(
    store: &dyn Store,
    org: &SfId,
    files: &BTreeMap<String, Vec<Value>>,
    options: DeployOptions,
    now_ms: i64,
) -> Result<Vec<(String, Outcome)>> {
    let dry_run = options.dry_run;
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
            let mut existing = store.find_by_key(org, sobject, key).await?.into_iter().next();
            if existing.is_none() && *sobject == "ConnectedApp" {
                // The refreshed org's own app of that name takes the backup's consumer key.
                let name = fields.get("Name").and_then(Value::as_str);
                existing = store
                    .list(org, sobject)
                    .await?
                    .into_iter()
                    .find(|a| name.is_some() && a.str("Name") == name);
            }
            match existing {
                Some(current) => {
                    if KEYED_TYPES.contains(sobject) {
                        if options.keep_keys {
                            for k in KEY_FIELDS {
                                fields.remove(*k);
                            }
                        } else if KEY_FIELDS.iter().any(|k| fields.contains_key(*k)) {
                            // A restored key replaces the other kind too, so a stale one
                            // cannot keep verifying tokens.
                            for k in KEY_FIELDS {
                                fields.entry(k.to_string()).or_insert(Value::Null);
                            }
                        }
                    }
                    let changed: Map<String, Value> = fields
                        .into_iter()
                        .filter(|(k, v)| current.fields.get(k).unwrap_or(&Value::Null) != v)
                        .collect();
                    let rekey = current.key.as_deref() != Some(key);
                    if changed.is_empty() && !rekey {
                        o.unchanged += 1;
                        continue;
                    }
                    if KEYED_TYPES.contains(sobject) && KEY_FIELDS.iter().any(|k| changed.contains_key(*k)) {
                        o.notes.push(format!("{sobject} {key}: its key now is the backup's"));
                    }
                    if !dry_run {
                        if rekey {
                            // The key is a column: rewrite the record under the same id.
                            let mut r = current.clone();
                            r.fields.extend(changed);
                            r.key = Some(key.to_string());
                            r.modified_ms = now_ms;
                            store
                                .apply(vec![
                                    WriteOp::Delete { org: org.clone(), id: current.id.clone() },
                                    WriteOp::Insert(r),
                                ])
                                .await?;
                        } else {
                            store.update(org, &current.id, changed, now_ms).await?;
                        }
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

/// Notes for call centers and connected apps whose key a deploy replaced while the data
/// dir holds a private key for them: that key no longer signs for the org, so `voxbridge
/// token` and the call simulator need the telephony provider's private key in its place.
async fn stale_local_keys(
    store: &dyn Store,
    org: &SfId,
    data: &DataDir,
    outcomes: &[(String, Outcome)],
) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    for (sobject, o) in outcomes {
        for note in &o.notes {
            notes.push(note.clone());
        }
        if !KEYED_TYPES.contains(&sobject.as_str()) || o.notes.is_empty() {
            continue;
        }
        for r in store.list(org, sobject).await? {
            let stem = match sobject.as_str() {
                "CallCenter" => r.key.clone().unwrap_or_default(),
                _ => DataDir::app_key_stem(r.str("Name").unwrap_or_default()),
            };
            let private = data.resolve(&DataDir::private_key_rel(&stem));
            let public = data.resolve(&DataDir::public_key_rel(&stem));
            let local_public = std::fs::read_to_string(&public).unwrap_or_default();
            let stored = r.str("PublicKey").unwrap_or_default();
            if private.exists() && !local_public.is_empty() && local_public.trim() != stored.trim() {
                notes.push(format!(
                    "{} no longer matches {sobject} `{}`; put the private key it had before the refresh there",
                    private.display(),
                    r.key.as_deref().unwrap_or_default()
                ));
            }
        }
    }
    Ok(notes)
}
