//! Bringing a store and data directory to a usable state: the demo org on first start,
//! the demo connected app and API user of the CRM REST API (also added to orgs made before
//! it existed), call centers from the configuration upserted on every start,
//! `setup.json` rewritten from what the store holds, and Voxbridge's sample flows written to
//! `<data>/flows` once.
//!
//! `setup.json` is always derived from the store rather than written once, so a crash
//! between inserting the demo org and writing the file, a moved data directory or a shared
//! PostgreSQL database all end up with a correct file on the next start.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use voxbridge_core::setup::{
    self, CallCenterKey, DemoSummary, IntegrationSummary, DEMO_API_USER, DEMO_CALL_CENTER,
    DEMO_CONNECTED_APP, DEMO_CONNECTED_APP_KEY_NAME,
};
use voxbridge_core::{Record, SfId};
use voxbridge_store::{Store, WriteOp};

use crate::config::{CallCenterConfig, Config, KeyFile};
use crate::datadir::{
    AgentInfo, CallCenterInfo, ConnectedAppInfo, CustomFieldInfo, DataDir, OrgInfo, PhoneChannelInfo,
    QueueInfo, RoutingInfo, SetupFile, SETUP_VERSION,
};
use crate::keys;

/// The result of [`provision`].
pub struct Provisioned {
    pub setup: SetupFile,
    /// Set when this call created the demo org.
    pub created: Option<DemoSummary>,
    /// Set when this call added the demo connected app or its API user.
    pub integration: Option<IntegrationSummary>,
    /// Set when this call wrote the sample flows (to this directory).
    pub flows_installed: Option<PathBuf>,
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Makes sure the store has an org (creating the demo org if it has none), applies the
/// configured call centers, and rewrites `setup.json`.
pub async fn provision(store: &dyn Store, config: &Config, data: &DataDir) -> Result<Provisioned> {
    let orgs = store.orgs().await.context("cannot read organizations from the store")?;
    // Prefer the org this data dir described before, so a shared database with several
    // orgs keeps serving the same one.
    let previous = data.read_setup().ok().map(|s| s.org.id);
    let chosen = previous
        .as_deref()
        .and_then(|p| orgs.iter().find(|o| o.id.as_str() == p))
        .or_else(|| orgs.first())
        .map(|o| o.id.clone());
    let (org, created) = match chosen {
        Some(org) => (org, None),
        None => {
            let summary = create_demo(store, data).await?;
            (summary.org_id.clone(), Some(summary))
        }
    };
    let integration = ensure_integration(store, &org, data).await?;
    ensure_demo_recipes(store, &org).await?;
    for cc in &config.call_centers {
        upsert_call_center(store, &org, cc).await?;
    }
    let setup = setup_from_store(store, &org, config, data).await?;
    data.write_setup(&setup)?;
    let flows_installed = install_sample_flows(data)?;
    Ok(Provisioned { setup, created, integration, flows_installed })
}

macro_rules! sample {
    ($file:literal) => {
        ($file, include_str!(concat!("../../contacts/flows/", $file)))
    };
}

/// Voxbridge's sample flows and their `flows.toml` (`crates/contacts/flows`), embedded so a
/// fresh data directory runs simulated calls without any setup.
pub const SAMPLE_FLOWS: &[(&str, &str)] = &[
    sample!("flows.toml"),
    sample!("Voxbridge_Inbound_Flow.json"),
    sample!("Voxbridge_Omni-Channel_Subflow.json"),
    sample!("Voxbridge_Callback_Subflow.json"),
    sample!("Voxbridge_Transcription_Subflow_with_Contact_Lens.json"),
    sample!("Voxbridge_Transcription_Subflow_with_Amazon_Transcribe.json"),
    sample!("Voxbridge_Voicemail_Subflow.json"),
    sample!("Voxbridge_Transfer_Flow_for_Agent_Transfers.json"),
    sample!("Voxbridge_Transfer_Flow_for_Queue_Transfers.json"),
    sample!("Voxbridge_Transfer_Flow_for_Omni-Channel_Transfers.json"),
    sample!("Voxbridge_Outbound_Flow.json"),
    sample!("Voxbridge_Agent_Whisper_Flow.json"),
    sample!("Voxbridge_Recipe_-_Route_To_Agent.json"),
    sample!("Voxbridge_Recipe_-_Pass_IVR_Data.json"),
    sample!("Voxbridge_Recipe_-_New_or_Existing_Case.json"),
    sample!("Voxbridge_Recipe_-_SMS_Transfer.json"),
    sample!("Voxbridge_Recipe_-_Record_Type.json"),
    sample!("Voxbridge_Recipe_-_Disable_Recording.json"),
    sample!("Voxbridge_Recipe_-_Disable_CTR_Sync.json"),
];

/// Writes the sample flows to `<data>/flows` when that directory does not exist; returns it
/// when it did. An existing directory is never touched, so a user's edits survive restarts
/// (delete it to get the samples back). The files go to a temporary directory first and are
/// renamed into place, so a crash never leaves half a library that later starts would keep.
pub fn install_sample_flows(data: &DataDir) -> Result<Option<PathBuf>> {
    let dir = data.flows_dir();
    if dir.exists() {
        return Ok(None);
    }
    let tmp = data.root().join(".flows.tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("cannot remove {}", tmp.display()))?;
    }
    fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    for (file, text) in SAMPLE_FLOWS {
        let path = tmp.join(file);
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    fs::rename(&tmp, &dir).with_context(|| format!("cannot create {}", dir.display()))?;
    tracing::info!(dir = %dir.display(), "installed the sample flows");
    Ok(Some(dir))
}

/// The key pair `<data>/keys/<stem>.*.pem`: the existing private key when there is one
/// (so what signs today still verifies after the database is reset), else a new one. The
/// public half is (re)written beside it.
fn local_key_pair(data: &DataDir, stem: &str, what: &str) -> Result<keys::KeyPair> {
    let keys_dir = data.keys_dir();
    fs::create_dir_all(&keys_dir).with_context(|| format!("cannot create {}", keys_dir.display()))?;
    let private_path = data.resolve(&DataDir::private_key_rel(stem));
    let public_path = data.resolve(&DataDir::public_key_rel(stem));
    let pair = if private_path.exists() {
        tracing::info!(path = %private_path.display(), "reusing the {what}'s key pair");
        keys::load(&private_path)?
    } else {
        tracing::info!("generating the {what}'s RSA-2048 key pair");
        let pair = keys::generate(2048)?;
        // Keys first: if inserting fails, the next start reuses them instead of orphaning.
        keys::write_private(&private_path, &pair.private_pem, false)?;
        pair
    };
    keys::write_public(&public_path, &pair.public_pem, true)?;
    Ok(pair)
}

/// Creates the demo org: reuses the demo key pair if one is already in the data dir (so
/// tokens keep verifying after the database is reset), else generates one.
async fn create_demo(store: &dyn Store, data: &DataDir) -> Result<DemoSummary> {
    let pair = local_key_pair(data, DEMO_CALL_CENTER, "demo call center")?;
    let demo = setup::demo_setup(&mut rand::thread_rng(), now_ms(), &pair.public_pem);
    let ops = demo.records.into_iter().map(WriteOp::Insert).collect();
    store.apply(ops).await.context("cannot store the demo org")?;
    tracing::info!(org = %demo.summary.org_id, "created the demo org");
    Ok(demo.summary)
}

/// Adds the demo connected app `Voxbridge Integration` and the API user
/// `integration@demo.voxbridge.local` to the org when either is missing, so an org made
/// before the CRM REST API existed can log in too. Does nothing when both are there.
async fn ensure_integration(
    store: &dyn Store,
    org: &SfId,
    data: &DataDir,
) -> Result<Option<IntegrationSummary>> {
    let apps = store.list(org, "ConnectedApp").await.context("cannot list connected apps")?;
    let has_app = apps.iter().any(|a| a.str("Name") == Some(DEMO_CONNECTED_APP));
    let has_user = !store.find_by_key(org, "User", DEMO_API_USER).await?.is_empty();
    if has_app && has_user {
        return Ok(None);
    }
    // Only a new app needs the key; a missing user alone is added with the app left as is.
    let public_pem = if has_app {
        String::new()
    } else {
        local_key_pair(data, DEMO_CONNECTED_APP_KEY_NAME, "demo connected app")?.public_pem
    };
    let mut integration = setup::demo_integration(&mut rand::thread_rng(), org, now_ms(), &public_pem);
    if let Some(app) = apps.iter().find(|a| a.str("Name") == Some(DEMO_CONNECTED_APP)) {
        integration.summary.app_id = app.id.clone();
        integration.summary.consumer_key = app.key.clone().unwrap_or_default();
    }
    let ops: Vec<WriteOp> = integration
        .records
        .into_iter()
        .filter(|r| if r.sobject == "ConnectedApp" { !has_app } else { !has_user })
        .map(WriteOp::Insert)
        .collect();
    store.apply(ops).await.context("cannot store the demo connected app and API user")?;
    tracing::info!(
        app = !has_app,
        user = !has_user,
        "added the demo connected app and API user for the CRM REST API"
    );
    Ok(Some(integration.summary))
}

/// Gives the demo org (the one with the demo call center) the records added to the demo
/// after it may have been made: the telephony vendor info and the guide's Voice Actions
/// recipe (custom fields, messaging template, automation). Only records whose key is
/// missing are added, so an admin's edits stay; a deleted one comes back on the next start,
/// so deactivate the automation (`Active` = false) rather than delete it.
async fn ensure_demo_recipes(store: &dyn Store, org: &SfId) -> Result<()> {
    if store.find_by_key(org, "CallCenter", DEMO_CALL_CENTER).await?.is_empty() {
        return Ok(());
    }
    let mut rng = rand::thread_rng();
    let mut wanted = vec![setup::vendor_info_record(&mut rng, org, now_ms())];
    wanted.extend(setup::demo_voice_actions(&mut rng, org, now_ms()));
    let mut ops = Vec::new();
    for r in wanted {
        let key = r.key.clone().unwrap_or_default();
        if store.find_by_key(org, &r.sobject, &key).await?.is_empty() {
            ops.push(WriteOp::Insert(r));
        }
    }
    if !ops.is_empty() {
        let n = ops.len();
        store.apply(ops).await.context("cannot store the demo recipes")?;
        tracing::info!(records = n, "added the demo vendor info and Voice Actions recipe");
    }
    Ok(())
}

/// Reads a call center's key file from the configuration and checks it is the kind of PEM
/// it claims to be, so a swapped file fails at start rather than on the first token.
fn read_key(cc: &CallCenterConfig) -> Result<CallCenterKey> {
    let (path, labels, field): (_, &[&str], _) = match &cc.key {
        KeyFile::PublicKey(p) => (p, &["PUBLIC KEY", "RSA PUBLIC KEY"], "public_key_file"),
        KeyFile::Certificate(p) => (p, &["CERTIFICATE"], "certificate_file"),
    };
    let pem = fs::read_to_string(path)
        .with_context(|| format!("call center `{}`: cannot read {field} {}", cc.api_name, path.display()))?;
    if !labels.iter().any(|l| pem.contains(&format!("-----BEGIN {l}-----"))) {
        bail!(
            "call center `{}`: {field} {} is not a PEM {}",
            cc.api_name,
            path.display(),
            labels.join(" or ")
        );
    }
    Ok(match cc.key {
        KeyFile::PublicKey(_) => CallCenterKey::PublicKey(pem),
        KeyFile::Certificate(_) => CallCenterKey::Certificate(pem),
    })
}

/// Inserts or updates one configured call center; leaves it untouched when nothing changed.
async fn upsert_call_center(store: &dyn Store, org: &SfId, cc: &CallCenterConfig) -> Result<()> {
    let key = read_key(cc)?;
    let existing = store.find_by_key(org, "CallCenter", &cc.api_name).await?;
    match existing.first() {
        None => {
            let record = setup::call_center_record(
                &mut rand::thread_rng(),
                org,
                &cc.api_name,
                &cc.name,
                &key,
                cc.unified_routing,
                now_ms(),
            );
            store
                .insert(record)
                .await
                .with_context(|| format!("cannot store call center `{}`", cc.api_name))?;
            tracing::info!(call_center = %cc.api_name, "registered call center from the configuration");
        }
        Some(record) => {
            let mut patch = setup::call_center_patch(&key, cc.unified_routing);
            patch.insert("Name".into(), cc.name.as_str().into());
            let unchanged = patch.iter().all(|(k, v)| record.fields.get(k).unwrap_or(&Value::Null) == v);
            if !unchanged {
                store.update(org, &record.id, patch, now_ms()).await?;
                tracing::info!(call_center = %cc.api_name, "updated call center from the configuration");
            }
        }
    }
    Ok(())
}

/// Describes the org as the store holds it.
pub async fn setup_from_store(
    store: &dyn Store,
    org: &SfId,
    config: &Config,
    data: &DataDir,
) -> Result<SetupFile> {
    let org_record = store.get(org, org).await?.context("the chosen org disappeared from the store")?;
    let list = |sobject: &'static str| async move {
        store.list(org, sobject).await.with_context(|| format!("cannot list {sobject} records"))
    };
    let call_centers = list("CallCenter").await?;
    let channels = list("ConversationChannelDefinition").await?;
    let flows = list("FlowDefinitionView").await?;
    let groups = list("Group").await?;
    let users = list("User").await?;
    let maps = list("CallCenterRoutingMap").await?;
    let fields = list("CustomField").await?;
    let apps = list("ConnectedApp").await?;

    let mut external: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for m in &maps {
        if let (Some(reference), Some(ext)) = (m.str("ReferenceRecordId"), m.str("ExternalId")) {
            external.entry(reference).or_default().push(ext.to_string());
        }
    }
    let external_of = |id: &SfId| external.get(id.as_str()).cloned().unwrap_or_default();
    let text = |r: &Record, f: &str| r.str(f).unwrap_or_default().to_string();

    let call_center_infos = call_centers
        .iter()
        .map(|r| {
            let api_name = r.key.clone().unwrap_or_else(|| text(r, "InternalName"));
            let private_rel = DataDir::private_key_rel(&api_name);
            let public_rel = DataDir::public_key_rel(&api_name);
            let configured = config.call_centers.iter().find(|c| c.api_name == api_name);
            let public_key_file = match configured.map(|c| &c.key) {
                Some(KeyFile::PublicKey(p) | KeyFile::Certificate(p)) => Some(p.display().to_string()),
                None => data.resolve(&public_rel).exists().then_some(public_rel),
            };
            CallCenterInfo {
                id: r.id.to_string(),
                id18: r.id.to_18(),
                name: text(r, "Name"),
                unified_routing: r.bool("UnifiedRouting").unwrap_or(false),
                key_kind: if r.str("Certificate").is_some() { "certificate" } else { "public_key" }
                    .to_string(),
                private_key_file: data.resolve(&private_rel).exists().then_some(private_rel),
                public_key_file,
                api_name,
            }
        })
        .collect();

    let name_of = |records: &[Record], id: Option<&str>| -> Option<String> {
        let id = id?;
        records.iter().find(|r| r.id.matches(id)).and_then(|r| r.key.clone()).or(Some(id.to_string()))
    };
    let phone_channels = channels
        .iter()
        .map(|r| PhoneChannelInfo {
            id: r.id.to_string(),
            phone_number: r.key.clone().unwrap_or_else(|| text(r, "PhoneNumber")),
            call_center: name_of(&call_centers, r.str("CallCenterId")),
            routing_definition: r.str("RoutingDefinition").map(str::to_string),
            fallback_queue: name_of(&groups, r.str("FallbackQueueId")),
        })
        .collect();
    let routing_definitions = flows
        .iter()
        .map(|r| RoutingInfo {
            developer_name: text(r, "DeveloperName"),
            label: text(r, "Label"),
            rule: r.fields.get("Rule").cloned().unwrap_or(Value::Null),
        })
        .collect();
    let queues = groups
        .iter()
        .filter(|r| r.str("Type") == Some("Queue"))
        .map(|r| QueueInfo {
            id: r.id.to_string(),
            id18: r.id.to_18(),
            developer_name: text(r, "DeveloperName"),
            name: text(r, "Name"),
            external_ids: external_of(&r.id),
        })
        .collect();
    let connected_apps: Vec<ConnectedAppInfo> = apps
        .iter()
        .map(|r| {
            let name = text(r, "Name");
            let stem = DataDir::app_key_stem(&name);
            let (private_rel, public_rel) = (DataDir::private_key_rel(&stem), DataDir::public_key_rel(&stem));
            ConnectedAppInfo {
                id: r.id.to_string(),
                id18: r.id.to_18(),
                consumer_key: r.key.clone().unwrap_or_else(|| text(r, "ConsumerKey")),
                key_kind: if r.str("Certificate").is_some() { "certificate" } else { "public_key" }
                    .to_string(),
                private_key_file: data.resolve(&private_rel).exists().then_some(private_rel),
                public_key_file: data.resolve(&public_rel).exists().then_some(public_rel),
                users: app_users(r, &users),
                name,
            }
        })
        .collect();
    // API users are not agents unless something routes to them.
    let api_users: Vec<&str> =
        connected_apps.iter().flat_map(|a| a.users.iter().map(String::as_str)).collect();
    let agents = users
        .iter()
        .filter(|r| {
            !external_of(&r.id).is_empty() || !r.str("Username").is_some_and(|u| api_users.contains(&u))
        })
        .map(|r| AgentInfo {
            id: r.id.to_string(),
            id18: r.id.to_18(),
            username: text(r, "Username"),
            name: text(r, "Name"),
            external_ids: external_of(&r.id),
        })
        .collect();
    let custom_fields = fields
        .iter()
        .map(|r| CustomFieldInfo {
            field: r.key.clone().unwrap_or_else(|| format!("{}.{}", text(r, "Object"), text(r, "Name"))),
            kind: text(r, "Type"),
            length: r.i64("Length"),
            required: r.bool("Required").unwrap_or(false),
            picklist_values: r
                .fields
                .get("PicklistValues")
                .and_then(Value::as_array)
                .map(|values| values.iter().filter_map(Value::as_str).map(str::to_string).collect()),
        })
        .collect();

    Ok(SetupFile {
        version: SETUP_VERSION,
        written_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        org: OrgInfo { id: org.to_string(), id18: org.to_18(), name: text(&org_record, "Name") },
        call_centers: call_center_infos,
        phone_channels,
        routing_definitions,
        queues,
        agents,
        custom_fields,
        connected_apps,
    })
}

/// The usernames a connected app lets log in, as the login checks them: pre-authorized by
/// name, then active users of a pre-authorized profile.
fn app_users(app: &Record, users: &[Record]) -> Vec<String> {
    let list = |field: &str| -> Vec<&str> {
        app.fields
            .get(field)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    let profiles = list("PreAuthorizedProfiles");
    let mut out: Vec<String> = list("PreAuthorizedUsers").into_iter().map(str::to_string).collect();
    for u in users {
        let active = u.bool("IsActive").unwrap_or(true);
        if let (true, Some(name), Some(profile)) = (active, u.str("Username"), u.str("ProfileName")) {
            if profiles.contains(&profile) && !out.iter().any(|o| o == name) {
                out.push(name.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_flow_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contacts/flows");
        let mut on_disk: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = SAMPLE_FLOWS.iter().map(|(f, _)| f.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
    }

    #[test]
    fn sample_flows_are_installed_once_and_never_overwritten() {
        let root = tempfile::tempdir().unwrap();
        let data = DataDir::new(root.path());
        let dir = install_sample_flows(&data).unwrap().expect("installed on first start");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), SAMPLE_FLOWS.len());
        let inbound = dir.join("Voxbridge_Inbound_Flow.json");
        fs::write(&inbound, "my edit").unwrap();
        assert_eq!(install_sample_flows(&data).unwrap(), None);
        assert_eq!(fs::read_to_string(&inbound).unwrap(), "my edit");
        assert!(!root.path().join(".flows.tmp").exists());
    }
}
