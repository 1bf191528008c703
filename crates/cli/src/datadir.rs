//! The data directory's layout and `setup.json`, the on-disk description of the org that
//! `info`, `token` and `calls` read so they work without opening the database.
//!
//! ```text
//! <data>/voxbridge.db                      SQLite database (default store)
//! <data>/setup.json                        the org, call centers, numbers, queues, agents
//! <data>/keys/<CallCenter>.private.pem     private key (0600) of a call center made here
//! <data>/keys/<CallCenter>.public.pem      its public half, registered on the CallCenter
//! <data>/keys/<ConnectedApp>.private.pem   private key (0600) of a connected app made here
//! <data>/keys/<ConnectedApp>.public.pem    its public half, registered on the ConnectedApp
//! <data>/tls/cert.pem, key.pem             self-signed certificate for HTTPS
//! <data>/flows/                            contact flows and flows.toml (the samples, written
//!                                          once on first start; `serve` uses them by default)
//! ```
//!
//! Paths inside `setup.json` are relative to the data directory so the directory can be
//! moved or mounted elsewhere.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn setup_json(&self) -> PathBuf {
        self.root.join("setup.json")
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// Relative to the data dir, as stored in `setup.json`.
    pub fn private_key_rel(api_name: &str) -> String {
        format!("keys/{api_name}.private.pem")
    }

    pub fn public_key_rel(api_name: &str) -> String {
        format!("keys/{api_name}.public.pem")
    }

    /// File stem of a connected app's key pair: its name without spaces or punctuation
    /// (`Voxbridge Integration` → `VoxbridgeIntegration`).
    pub fn app_key_stem(app_name: &str) -> String {
        app_name.chars().filter(char::is_ascii_alphanumeric).collect()
    }

    /// The contact flows `serve` runs unless `--flows`/`VOXBRIDGE_FLOWS` names others.
    pub fn flows_dir(&self) -> PathBuf {
        self.root.join("flows")
    }

    pub fn tls_dir(&self) -> PathBuf {
        self.root.join("tls")
    }

    pub fn tls_cert(&self) -> PathBuf {
        self.tls_dir().join("cert.pem")
    }

    pub fn tls_key(&self) -> PathBuf {
        self.tls_dir().join("key.pem")
    }

    /// A path from `setup.json` made usable from the current directory.
    pub fn resolve(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Reads `setup.json`, or says how to create it.
    pub fn read_setup(&self) -> Result<SetupFile> {
        let path = self.setup_json();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "{} has no setup yet ({} is missing); run `voxbridge serve` once or `voxbridge setup` \
                 with the same --data/--config",
                self.root.display(),
                path.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let setup: SetupFile = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a setup file this voxbridge understands; delete it and run `voxbridge setup` \
                 to write it again from the database",
                path.display()
            )
        })?;
        if setup.version != SETUP_VERSION {
            bail!(
                "{} has version {}, this voxbridge writes version {SETUP_VERSION}; run `voxbridge setup` to rewrite it",
                path.display(),
                setup.version
            );
        }
        Ok(setup)
    }

    /// Writes `setup.json` atomically (temp file + rename) so a reader never sees half.
    pub fn write_setup(&self, setup: &SetupFile) -> Result<()> {
        fs::create_dir_all(&self.root).with_context(|| format!("cannot create {}", self.root.display()))?;
        let path = self.setup_json();
        let tmp = self.root.join(".setup.json.tmp");
        let mut text = serde_json::to_string_pretty(setup)?;
        text.push('\n');
        fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}

pub const SETUP_VERSION: u32 = 1;

/// `setup.json`. Ids are given in both the 15- and 18-character forms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetupFile {
    pub version: u32,
    /// When the file was last written (ISO-8601 UTC).
    pub written_at: String,
    pub org: OrgInfo,
    pub call_centers: Vec<CallCenterInfo>,
    pub phone_channels: Vec<PhoneChannelInfo>,
    pub routing_definitions: Vec<RoutingInfo>,
    pub queues: Vec<QueueInfo>,
    pub agents: Vec<AgentInfo>,
    /// `VoiceCall.<Name>` of the declared custom fields.
    pub custom_fields: Vec<CustomFieldInfo>,
    /// Connected apps of the CRM REST API's JWT bearer login. Absent in files written
    /// before the CRM API existed; the next start fills it in.
    #[serde(default)]
    pub connected_apps: Vec<ConnectedAppInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrgInfo {
    pub id: String,
    pub id18: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallCenterInfo {
    pub id: String,
    pub id18: String,
    pub api_name: String,
    pub name: String,
    pub unified_routing: bool,
    /// `public_key` or `certificate`: what tokens are verified with.
    pub key_kind: String,
    /// Relative to the data dir; present when the private key lives there.
    pub private_key_file: Option<String>,
    /// Relative to the data dir, or absolute for call centers from the configuration.
    pub public_key_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectedAppInfo {
    pub id: String,
    pub id18: String,
    pub name: String,
    /// The `iss` of login assertions.
    pub consumer_key: String,
    /// `public_key` or `certificate`: what login assertions are verified with.
    pub key_kind: String,
    /// Relative to the data dir; present when the private key lives there.
    pub private_key_file: Option<String>,
    pub public_key_file: Option<String>,
    /// Usernames that may log in through the app: those pre-authorized by name, then the
    /// active users of the pre-authorized profiles.
    pub users: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhoneChannelInfo {
    pub id: String,
    pub phone_number: String,
    pub call_center: Option<String>,
    pub routing_definition: Option<String>,
    /// Developer name of the fallback queue.
    pub fallback_queue: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingInfo {
    pub developer_name: String,
    pub label: String,
    pub rule: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueInfo {
    pub id: String,
    pub id18: String,
    pub developer_name: String,
    pub name: String,
    /// The telephony system's ids of this queue, from CallCenterRoutingMap.
    pub external_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub id: String,
    pub id18: String,
    pub username: String,
    pub name: String,
    pub external_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomFieldInfo {
    /// `VoiceCall.Name__c`
    pub field: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub length: Option<i64>,
    pub required: bool,
    pub picklist_values: Option<Vec<String>>,
}

impl SetupFile {
    pub fn call_center(&self, api_name: &str) -> Option<&CallCenterInfo> {
        self.call_centers.iter().find(|c| c.api_name == api_name)
    }

    /// The connected app to log in with: the one with `consumer_key`, else the first whose
    /// private key lives in the data dir, else the first.
    pub fn connected_app(&self, consumer_key: Option<&str>) -> Option<&ConnectedAppInfo> {
        match consumer_key {
            Some(k) => self.connected_apps.iter().find(|a| a.consumer_key == k),
            None => self
                .connected_apps
                .iter()
                .find(|a| a.private_key_file.is_some())
                .or(self.connected_apps.first()),
        }
    }
}
