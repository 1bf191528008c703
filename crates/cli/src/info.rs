//! `voxbridge info`: what a data directory and configuration set up, for people (default)
//! and for scripts (`--json`, a stable object described in docs/configuration.md): the
//! org, call centers, numbers, queues, agents, the CRM REST API's login, URLs and limits.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::config::{Config, KeyFile};
use crate::datadir::{
    AgentInfo, CustomFieldInfo, DataDir, OrgInfo, PhoneChannelInfo, QueueInfo, RoutingInfo,
};
use crate::serve::data_flag;

#[derive(Debug, Serialize)]
pub struct Info {
    pub data_dir: String,
    pub config_file: Option<String>,
    pub setup_file: String,
    pub written_at: String,
    pub org: OrgInfo,
    pub call_centers: Vec<CallCenterOut>,
    pub phone_channels: Vec<PhoneChannelInfo>,
    pub routing_definitions: Vec<RoutingInfo>,
    pub queues: Vec<QueueInfo>,
    pub agents: Vec<AgentInfo>,
    pub custom_fields: Vec<CustomFieldInfo>,
    pub connected_apps: Vec<ConnectedAppOut>,
    /// How to log in to the CRM REST API; `None` when the org has no connected app.
    pub crm: Option<CrmOut>,
    pub urls: Urls,
    pub tls: TlsOut,
    pub database: DatabaseOut,
    pub auth: AuthOut,
    pub limits: LimitsOut,
    /// A command that prints a token for the first call center with a local private key.
    pub token_command: Option<String>,
    pub flows: FlowsOut,
}

/// The contact flows `serve` runs for the call simulator.
#[derive(Debug, Serialize)]
pub struct FlowsOut {
    /// Absolute path of the flows directory.
    pub dir: String,
    /// `VOXBRIDGE_FLOWS`, or `default` (`<data>/flows`, where the sample flows are installed).
    pub source: String,
    /// Whether the directory exists (`serve` runs without the simulator when the default
    /// directory is missing).
    pub exists: bool,
    /// A command that simulates a call to the demo number.
    pub simulate_command: String,
}

#[derive(Debug, Serialize)]
pub struct CallCenterOut {
    /// `None` for a call center in the configuration that no `serve` has registered yet.
    pub id: Option<String>,
    pub id18: Option<String>,
    pub api_name: String,
    pub name: String,
    pub unified_routing: bool,
    pub key_kind: String,
    /// `demo` (made in this data dir), `config` (from `[[call_centers]]`) or `store`.
    pub source: String,
    pub private_key_file: Option<String>,
    pub public_key_file: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ConnectedAppOut {
    pub id: String,
    pub id18: String,
    pub name: String,
    pub consumer_key: String,
    pub key_kind: String,
    /// Absolute; present when the private key lives in the data dir.
    pub private_key_file: Option<String>,
    pub public_key_file: Option<String>,
    /// Usernames that may log in through the app.
    pub users: Vec<String>,
}

/// The OAuth 2.0 JWT bearer login to the CRM REST API with the first connected app whose
/// private key is in the data dir (else the first).
#[derive(Debug, Serialize)]
pub struct CrmOut {
    pub connected_app: String,
    /// The assertion's `iss`.
    pub consumer_key: String,
    pub private_key_file: Option<String>,
    /// The assertion's `sub`: the app's first API user.
    pub username: Option<String>,
    /// The assertion's `aud`: the first accepted login audience.
    pub login_audience: String,
    pub login_audiences: Vec<String>,
    /// `{base}/services/oauth2/token`
    pub token_url: String,
    /// The `instance_url` a login answers with, where `/services/data/...` is served.
    pub instance_url: String,
    pub session_lifetime_secs: u64,
    /// A command that logs in and prints an access token.
    pub token_command: String,
}

#[derive(Debug, Serialize)]
pub struct Urls {
    /// Root URL clients use (public URL, else HTTP, else HTTPS).
    pub base: String,
    pub http: Option<String>,
    pub https: Option<String>,
    pub public: Option<String>,
    /// `{base}/telephony/v1`
    pub telephony_api: String,
    /// `{base}/services/data`: the CRM REST API's versions.
    pub crm_api: String,
    pub openapi: String,
    pub admin_api: String,
}

#[derive(Debug, Serialize)]
pub struct TlsOut {
    pub enabled: bool,
    pub self_signed: bool,
    pub cert: Option<String>,
    pub key: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DatabaseOut {
    pub backend: String,
    /// Password replaced by `***`.
    pub url: String,
}

#[derive(Debug, Serialize)]
pub struct AuthOut {
    pub audience: String,
    pub require_audience: bool,
    pub max_token_lifetime_secs: u64,
}

#[derive(Debug, Serialize)]
pub struct LimitsOut {
    pub max_concurrent_calls: u64,
    pub calls_per_second: u64,
    pub utterances_per_second: u64,
}

fn absolute(p: &Path) -> String {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()).display().to_string()
}

/// Collects the report from `setup.json` and the configuration.
pub fn gather(config: &Config) -> Result<Info> {
    let data = DataDir::new(&config.data_dir);
    let setup = data.read_setup()?;
    let resolve = |p: &str| absolute(&data.resolve(p));

    let mut call_centers: Vec<CallCenterOut> = setup
        .call_centers
        .iter()
        .map(|c| {
            let configured = config.call_centers.iter().any(|cc| cc.api_name == c.api_name);
            CallCenterOut {
                id: Some(c.id.clone()),
                id18: Some(c.id18.clone()),
                api_name: c.api_name.clone(),
                name: c.name.clone(),
                unified_routing: c.unified_routing,
                key_kind: c.key_kind.clone(),
                source: if configured {
                    "config"
                } else if c.private_key_file.is_some() {
                    "demo"
                } else {
                    "store"
                }
                .to_string(),
                private_key_file: c.private_key_file.as_deref().map(resolve),
                public_key_file: c.public_key_file.as_deref().map(resolve),
            }
        })
        .collect();
    for cc in &config.call_centers {
        if setup.call_center(&cc.api_name).is_none() {
            let (kind, path) = match &cc.key {
                KeyFile::PublicKey(p) => ("public_key", p),
                KeyFile::Certificate(p) => ("certificate", p),
            };
            call_centers.push(CallCenterOut {
                id: None,
                id18: None,
                api_name: cc.api_name.clone(),
                name: cc.name.clone(),
                unified_routing: cc.unified_routing,
                key_kind: kind.to_string(),
                source: "config".to_string(),
                private_key_file: None,
                public_key_file: Some(absolute(path)),
            });
        }
    }

    let base = config.base_url();
    let self_signed = config.tls.is_none();
    let (cert, key): (Option<PathBuf>, Option<PathBuf>) = match (&config.tls, config.https) {
        (Some(t), _) => (Some(t.cert.clone()), Some(t.key.clone())),
        (None, Some(_)) => (Some(data.tls_cert()), Some(data.tls_key())),
        (None, None) => (None, None),
    };
    let connected_apps: Vec<ConnectedAppOut> = setup
        .connected_apps
        .iter()
        .map(|a| ConnectedAppOut {
            id: a.id.clone(),
            id18: a.id18.clone(),
            name: a.name.clone(),
            consumer_key: a.consumer_key.clone(),
            key_kind: a.key_kind.clone(),
            private_key_file: a.private_key_file.as_deref().map(resolve),
            public_key_file: a.public_key_file.as_deref().map(resolve),
            users: a.users.clone(),
        })
        .collect();
    let crm = setup.connected_app(None).map(|a| CrmOut {
        connected_app: a.name.clone(),
        consumer_key: a.consumer_key.clone(),
        private_key_file: a.private_key_file.as_deref().map(resolve),
        username: a.users.first().cloned(),
        login_audience: config.login_audiences.first().cloned().unwrap_or_default(),
        login_audiences: config.login_audiences.clone(),
        token_url: format!("{base}/services/oauth2/token"),
        instance_url: base.clone(),
        session_lifetime_secs: config.session_lifetime_secs,
        token_command: format!("voxbridge token --crm{}", data_flag(&config.data_dir)),
    });

    let token_command = call_centers
        .iter()
        .find(|c| c.private_key_file.is_some())
        .map(|c| format!("voxbridge token --call-center {}{}", c.api_name, data_flag(&config.data_dir)));

    Ok(Info {
        data_dir: absolute(&config.data_dir),
        config_file: config.file.as_deref().map(absolute),
        setup_file: absolute(&data.setup_json()),
        written_at: setup.written_at.clone(),
        org: setup.org.clone(),
        call_centers,
        phone_channels: setup.phone_channels.clone(),
        routing_definitions: setup.routing_definitions.clone(),
        queues: setup.queues.clone(),
        agents: setup.agents.clone(),
        custom_fields: setup.custom_fields.clone(),
        connected_apps,
        crm,
        urls: Urls {
            telephony_api: format!("{base}/telephony/v1"),
            crm_api: format!("{base}/services/data"),
            openapi: format!("{base}/openapi.json"),
            admin_api: format!("{base}/admin/v1"),
            http: config.http_url(),
            https: config.https_url(),
            public: config.public_url.clone(),
            base,
        },
        tls: TlsOut {
            enabled: config.https.is_some(),
            self_signed: config.https.is_some() && self_signed,
            cert: cert.as_deref().map(absolute),
            key: key.as_deref().map(absolute),
        },
        database: DatabaseOut {
            backend: if config.database_url.starts_with("postgres") { "postgres" } else { "sqlite" }
                .to_string(),
            url: config.database_url_redacted(),
        },
        auth: AuthOut {
            audience: config.audience.clone(),
            require_audience: config.require_audience,
            max_token_lifetime_secs: config.max_token_lifetime_secs,
        },
        limits: LimitsOut {
            max_concurrent_calls: config.limits.max_concurrent_calls,
            calls_per_second: config.limits.calls_per_second,
            utterances_per_second: config.limits.utterances_per_second,
        },
        token_command,
        flows: {
            let (dir, source) = match &config.flows_dir {
                Some(d) => (d.clone(), "VOXBRIDGE_FLOWS"),
                None => (data.flows_dir(), "default"),
            };
            let number = setup.phone_channels.first().map(|p| p.phone_number.as_str()).unwrap_or("NUMBER");
            FlowsOut {
                dir: absolute(&dir),
                source: source.to_string(),
                exists: dir.is_dir(),
                simulate_command: format!(
                    "voxbridge call simulate --to {number} --from +14155550123{}",
                    data_flag(&config.data_dir)
                ),
            }
        },
    })
}

/// The report as text for a terminal.
pub fn human(info: &Info) -> String {
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(w, "Voxbridge setup in {} (written {})", info.data_dir, info.written_at);
    if let Some(file) = &info.config_file {
        let _ = writeln!(w, "Configuration: {file}");
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "Org             {}", info.org.name);
    let _ = writeln!(w, "  id            {} (18: {})", info.org.id, info.org.id18);

    let _ = writeln!(w, "\nCall centers");
    for c in &info.call_centers {
        let id = c.id.as_deref().unwrap_or("not registered yet: run `voxbridge serve`");
        let _ = writeln!(w, "  {}  ({}, {}; id {id})", c.api_name, c.name, c.source);
        let _ = writeln!(w, "    unified routing  {}", if c.unified_routing { "on" } else { "off" });
        if let Some(p) = &c.private_key_file {
            let _ = writeln!(w, "    private key      {p}");
        }
        if let Some(p) = &c.public_key_file {
            let label = if c.key_kind == "certificate" { "certificate " } else { "public key  " };
            let _ = writeln!(w, "    {label}     {p}");
        }
    }

    let _ = writeln!(w, "\nPhone numbers");
    for p in &info.phone_channels {
        let _ = writeln!(
            w,
            "  {}  -> {}, routing {}, fallback queue {}",
            p.phone_number,
            p.call_center.as_deref().unwrap_or("-"),
            p.routing_definition.as_deref().unwrap_or("-"),
            p.fallback_queue.as_deref().unwrap_or("-")
        );
    }

    let _ = writeln!(w, "\nRouting definitions");
    for r in &info.routing_definitions {
        let _ = writeln!(w, "  {:<18} {}", r.developer_name, r.rule);
    }

    let _ = writeln!(w, "\nQueues");
    for q in &info.queues {
        let _ = writeln!(w, "  {:<10} {}  {}", q.developer_name, q.id, q.external_ids.join(", "));
    }

    let _ = writeln!(w, "\nAgents");
    for a in &info.agents {
        let _ = writeln!(w, "  {:<28} {:<14} {}  {}", a.username, a.name, a.id, a.external_ids.join(", "));
    }

    let _ = writeln!(w, "\nVoiceCall custom fields");
    for f in &info.custom_fields {
        let detail = match (&f.length, &f.picklist_values) {
            (_, Some(values)) => format!("{}: {}", f.kind, values.join(", ")),
            (Some(len), None) => format!("{} {len}", f.kind),
            (None, None) => f.kind.clone(),
        };
        let _ = writeln!(w, "  {:<46} {detail}", f.field);
    }

    if let Some(crm) = &info.crm {
        let _ = writeln!(w, "\nCRM REST API login (OAuth 2.0 JWT bearer)");
        let _ = writeln!(w, "  connected app    {}", crm.connected_app);
        let _ = writeln!(w, "  consumer key     {}", crm.consumer_key);
        if let Some(p) = &crm.private_key_file {
            let _ = writeln!(w, "  private key      {p}");
        }
        if let Some(u) = &crm.username {
            let _ = writeln!(w, "  username         {u}");
        }
        let _ = writeln!(w, "  audience         {}", crm.login_audience);
        let _ = writeln!(w, "  token URL        {}", crm.token_url);
        let _ = writeln!(w, "  instance URL     {}", crm.instance_url);
    }

    let _ = writeln!(w, "\nEndpoints");
    let _ = writeln!(w, "  Telephony API    {}", info.urls.telephony_api);
    let _ = writeln!(w, "  CRM REST API     {}", info.urls.crm_api);
    if let (Some(https), Some(_)) = (&info.urls.https, &info.urls.http) {
        let _ = writeln!(w, "  over HTTPS       {https}/telephony/v1");
    }
    let _ = writeln!(w, "  OpenAPI          {}", info.urls.openapi);
    let _ = writeln!(w, "  Admin API        {}", info.urls.admin_api);
    match (&info.tls.enabled, &info.tls.cert) {
        (true, Some(cert)) => {
            let kind = if info.tls.self_signed { "self-signed " } else { "" };
            let _ = writeln!(w, "  TLS              {kind}certificate {cert}");
        }
        _ => {
            let _ = writeln!(w, "  TLS              off (enable with --https ADDR or `server.https`)");
        }
    }
    let _ = writeln!(w, "  Store            {} ({})", info.database.backend, info.database.url);
    let _ = writeln!(
        w,
        "  Tokens           aud {}, at most {}s ahead{}",
        info.auth.audience,
        info.auth.max_token_lifetime_secs,
        if info.auth.require_audience { ", aud required" } else { "" }
    );
    let _ = writeln!(
        w,
        "  Contact flows    {}{}",
        info.flows.dir,
        if info.flows.exists { "" } else { " (missing: the call simulator is off)" }
    );
    if let Some(cmd) = &info.token_command {
        let _ = writeln!(w, "\nGet a token:  {cmd}");
    }
    if let Some(crm) = &info.crm {
        let _ = writeln!(w, "CRM login:    {}", crm.token_command);
    }
    if info.flows.exists {
        let _ = writeln!(w, "Call a flow:  {}", info.flows.simulate_command);
    }
    o
}
