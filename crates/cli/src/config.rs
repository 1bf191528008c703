//! Configuration: a versioned TOML file, `VOXBRIDGE_*` environment variables and
//! command-line flags, resolved into one [`Config`].
//!
//! Precedence, highest first: command-line flag, environment variable, file, default. Every
//! environment variable `VOXBRIDGE_X` may instead be given as `VOXBRIDGE_X_FILE`, naming a
//! file that holds the value, so secrets such as a database password can come from a
//! mounted secret instead of the process environment. The environment is passed in as a
//! map so resolution is a pure function of its inputs and testable without globals.
//!
//! Every error names where the offending value came from (flag, variable, or TOML key and
//! file) and what would be accepted, because a server that refuses to start should say how
//! to fix it.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use voxbridge_server::{Limits, Settings};

/// The configuration format this binary reads.
pub const VERSION: i64 = 1;
pub const DEFAULT_DATA_DIR: &str = "./data";
pub const DEFAULT_HTTP: &str = "127.0.0.1:8080";
/// The guide asks for tokens that expire "within 3 minutes"; a server cannot demand less.
pub const MIN_TOKEN_LIFETIME_SECS: u64 = 180;
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 3600;
/// Bounds of a CRM access token's lifetime: a minute (shorter is a typo for hours) to the
/// platform's longest session timeout, 24 hours.
pub const MIN_SESSION_LIFETIME_SECS: u64 = 60;
pub const MAX_SESSION_LIFETIME_SECS: u64 = 24 * 3600;
/// How often the server re-syncs VoiceCalls whose CTR sync did not happen.
pub const DEFAULT_CTR_RESYNC_SCHEDULE: &str = "rate(15 minutes)";

/// Environment variables by name. Only `VOXBRIDGE_*` ones and [`AWS_VARS`] matter.
pub type Env = BTreeMap<String, String>;

/// The standard AWS variables an S3 object store falls back to (each also as `NAME_FILE`).
pub const AWS_VARS: [&str; 7] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL",
];

/// The `VOXBRIDGE_*` and [`AWS_VARS`] variables of this process. Non-UTF-8 values are ignored.
pub fn process_env() -> Env {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| {
            k.starts_with("VOXBRIDGE_")
                || AWS_VARS.iter().any(|v| k == v || k.strip_suffix("_FILE") == Some(v))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The file format. Every field is optional so absence can fall through to env/defaults;
// unknown keys are refused so a typo never silently does nothing.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[allow(dead_code)] // checked before deserializing, kept so the key is known
    version: Option<toml::Value>,
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    tls: TlsSection,
    #[serde(default)]
    auth: AuthSection,
    #[serde(default)]
    crm: CrmSection,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    log: LogSection,
    #[serde(default)]
    call_centers: Vec<CallCenterSection>,
    #[serde(default)]
    bus: BusSection,
    #[serde(default)]
    objects: ObjectsSection,
    #[serde(default)]
    ctr: CtrSection,
    #[serde(default)]
    rules: Vec<crate::rules::RuleSection>,
    #[serde(default)]
    messaging: MessagingSection,
}

/// `[messaging]`: the automations' messaging channels and the outbox's retries.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessagingSection {
    retry_base_ms: Option<u64>,
    retry_max_ms: Option<u64>,
    /// Channel developer name → its webhook.
    #[serde(default)]
    channels: BTreeMap<String, ChannelSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelSection {
    webhook_url: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BusSection {
    url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectsSection {
    url: Option<String>,
    /// With `s3://`: the S3-compatible service's URL, region and credentials (else the
    /// standard `AWS_*` environment variables).
    endpoint: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    allow_http: Option<bool>,
    #[serde(default)]
    expiration: Vec<crate::rules::ExpirationSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CtrSection {
    resync_schedule: Option<String>,
    /// VoiceCall field name → CTR path.
    fields: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    http: Option<String>,
    https: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    public_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthSection {
    audience: Option<String>,
    require_audience: Option<bool>,
    max_token_lifetime_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CrmSection {
    login_audiences: Option<Vec<String>>,
    session_lifetime_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    max_concurrent_calls: Option<u64>,
    calls_per_second: Option<u64>,
    utterances_per_second: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogSection {
    filter: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallCenterSection {
    api_name: String,
    name: Option<String>,
    public_key_file: Option<PathBuf>,
    certificate_file: Option<PathBuf>,
    unified_routing: Option<bool>,
}

// ---------------------------------------------------------------------------------------
// The resolved configuration.

/// How a call center brought in through the configuration proves its tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFile {
    PublicKey(PathBuf),
    Certificate(PathBuf),
}

/// A `[[call_centers]]` entry: upserted as a CallCenter record under the org at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallCenterConfig {
    pub api_name: String,
    pub name: String,
    pub key: KeyFile,
    pub unified_routing: bool,
}

/// Everything the binary's commands need, resolved from flags, environment and file.
#[derive(Clone)]
pub struct Config {
    /// The file read, if any.
    pub file: Option<PathBuf>,
    pub data_dir: PathBuf,
    /// `None` when turned off.
    pub http: Option<SocketAddr>,
    /// `None` (the default) when HTTPS is off.
    pub https: Option<SocketAddr>,
    /// May hold a password: print only [`Config::database_url_redacted`].
    pub database_url: String,
    /// The URL clients reach this server at, when it differs from the listen address
    /// (behind a proxy). Without a trailing slash.
    pub public_url: Option<String>,
    /// Both or neither; neither means a self-signed certificate under the data dir.
    pub tls: Option<TlsFiles>,
    pub audience: String,
    pub require_audience: bool,
    pub max_token_lifetime_secs: u64,
    /// Accepted `aud` values of CRM login assertions; the first is what `voxbridge token
    /// --crm` signs for.
    pub login_audiences: Vec<String>,
    /// How long a CRM access token stays valid.
    pub session_lifetime_secs: u64,
    pub limits: Limits,
    pub log_filter: String,
    pub call_centers: Vec<CallCenterConfig>,
    /// Contact flows for the call simulator (`serve --flows DIR`); `None` turns it off.
    pub flows_dir: Option<PathBuf>,
    /// The event bus: `sqlite://PATH` (default `<data>/bus.db`) or `nats://HOST:PORT`.
    pub bus_url: String,
    /// The object store's root directory (CTR backups): `file:///PATH` or a path.
    pub objects_dir: PathBuf,
    /// `objects.url = "s3://BUCKET[/PREFIX]"`: the S3-compatible bucket instead of a directory.
    pub objects_s3: Option<S3Objects>,
    /// When the server re-syncs VoiceCalls that missed their CTR (`rate(…)` or `cron(…)`).
    pub ctr_resync_schedule: String,
    /// Extra CTR values synced to custom VoiceCall fields.
    pub ctr_fields: voxbridge_functions::ctr_sync::FieldMapping,
    /// `[[rules]]`: event and schedule rules besides (or replacing) the built-in ones.
    pub rules: Vec<crate::rules::Rule>,
    /// `[[objects.expiration]]`: objects deleted after so many days, per prefix.
    pub object_expiration: Vec<crate::rules::Expiration>,
    /// Messaging channels (webhooks may carry secrets: never printed) and retries.
    pub messaging: voxbridge_server::MessagingSettings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("file", &self.file)
            .field("data_dir", &self.data_dir)
            .field("http", &self.http)
            .field("https", &self.https)
            .field("database_url", &self.database_url_redacted())
            .field("public_url", &self.public_url)
            .field("tls", &self.tls)
            .field("audience", &self.audience)
            .field("require_audience", &self.require_audience)
            .field("max_token_lifetime_secs", &self.max_token_lifetime_secs)
            .field("login_audiences", &self.login_audiences)
            .field("session_lifetime_secs", &self.session_lifetime_secs)
            .field("limits", &self.limits)
            .field("log_filter", &self.log_filter)
            .field("call_centers", &self.call_centers)
            .field("bus_url", &redact_url(&self.bus_url))
            .field("objects_dir", &self.objects_dir)
            .field("objects_s3", &self.objects_s3)
            .field("ctr_resync_schedule", &self.ctr_resync_schedule)
            .finish()
    }
}

impl Config {
    /// The HTTP layer's settings.
    pub fn settings(&self) -> Settings {
        // The struct update keeps this compiling when the server grows settings.
        #[allow(clippy::needless_update)]
        Settings {
            audience: self.audience.clone(),
            require_audience: self.require_audience,
            max_token_lifetime: Duration::from_secs(self.max_token_lifetime_secs),
            limits: self.limits.clone(),
            public_url: self.public_url.clone(),
            login_audiences: self.login_audiences.clone(),
            session_lifetime: Duration::from_secs(self.session_lifetime_secs),
            messaging: self.messaging.clone(),
            ..Settings::default()
        }
    }

    /// The database URL with any password replaced by `***`.
    pub fn database_url_redacted(&self) -> String {
        redact_url(&self.database_url)
    }

    /// The root URL clients use: `public_url`, else the HTTP listener, else the HTTPS one.
    pub fn base_url(&self) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        match (self.http, self.https) {
            (Some(addr), _) => format!("http://{}", reachable(addr)),
            (None, Some(addr)) => format!("https://{}", reachable(addr)),
            (None, None) => format!("http://{DEFAULT_HTTP}"),
        }
    }

    /// The HTTP root URL, if HTTP is on.
    pub fn http_url(&self) -> Option<String> {
        self.http.map(|a| format!("http://{}", reachable(a)))
    }

    /// The HTTPS root URL, if HTTPS is on.
    pub fn https_url(&self) -> Option<String> {
        self.https.map(|a| format!("https://{}", reachable(a)))
    }
}

/// The address a local client connects to for a listen address: a wildcard listener is
/// reached through loopback.
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port()),
        _ => addr,
    }
}

/// Replaces the password of `scheme://user:password@host/...` with `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else { return url.to_string() };
    let user = userinfo.split_once(':').map(|(u, _)| format!("{u}:***")).unwrap_or(userinfo.to_string());
    format!("{scheme}://{user}@{host}{tail}")
}

/// Values given on the command line; they win over everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub http: Option<String>,
    pub https: Option<String>,
    pub database_url: Option<String>,
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone)]
enum Origin {
    Flag(&'static str),
    Env(String),
    File { key: String, file: PathBuf },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "command-line flag {flag}"),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::File { key, file } => write!(f, "`{key}` in {}", file.display()),
        }
    }
}

/// A parsed configuration file.
struct LoadedFile {
    path: PathBuf,
    config: FileConfig,
}

impl LoadedFile {
    fn origin(&self, key: &str) -> Origin {
        Origin::File { key: key.to_string(), file: self.path.clone() }
    }

    /// Relative paths in the file are relative to the file's directory, so a config and
    /// the keys beside it can move together.
    fn path(&self, p: &Path) -> PathBuf {
        match self.path.parent() {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }
}

/// Reads the configuration file (from `--config` or `VOXBRIDGE_CONFIG`, if any) and
/// resolves everything.
pub fn load(overrides: &Overrides, env: &Env) -> Result<Config> {
    let path = match &overrides.config {
        Some(p) => Some(p.clone()),
        None => env_var(env, "VOXBRIDGE_CONFIG")?.map(|(v, _)| PathBuf::from(v)),
    };
    let file = match path {
        None => None,
        Some(path) => {
            let text = fs::read_to_string(&path).with_context(|| {
                format!(
                    "cannot read configuration file {}; check the path given to --config or VOXBRIDGE_CONFIG",
                    path.display()
                )
            })?;
            let config = parse_file(&path, &text)?;
            Some(LoadedFile { path, config })
        }
    };
    resolve(file.as_ref(), overrides, env)
}

/// Parses a configuration file's text; `path` is for messages only.
fn parse_file(path: &Path, text: &str) -> Result<FileConfig> {
    let shown = path.display();
    let table: toml::Table = toml::from_str(text).map_err(|e| anyhow!("{shown} is not valid TOML: {e}"))?;
    // The version is checked first: a file written for another version would otherwise
    // fail on whatever key changed, which hides the real problem.
    match table.get("version") {
        None => bail!(
            "{shown} has no `version`; add `version = {VERSION}` as its first line \
             (see docs/configuration.md)"
        ),
        Some(toml::Value::Integer(v)) if *v == VERSION => {}
        Some(other) => bail!(
            "{shown} has `version = {other}`, but this voxbridge reads configuration version \
             {VERSION} only; see docs/configuration.md for the format"
        ),
    }
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message().to_string();
        let line = inner.span().map(|s| line_of(text, s.start));
        let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
        if let Some(unknown) = message.strip_prefix("unknown field ") {
            // The path normally ends with the unknown key itself; add it if it does not.
            let name = unknown.split(',').next().unwrap_or(unknown).trim_matches('`');
            let full = if key == name || key.ends_with(&format!(".{name}")) {
                key.clone()
            } else if key == "." || key.is_empty() {
                name.to_string()
            } else {
                format!("{key}.{name}")
            };
            let expected = unknown.split_once(", ").map(|(_, e)| format!("; {e}")).unwrap_or_default();
            anyhow!("{shown}: unknown key `{full}`{at}{expected}")
        } else {
            anyhow!("{shown}: invalid value for `{key}`{at}: {message}")
        }
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map(|t| t.matches('\n').count() + 1).unwrap_or(1)
}

/// Reads `name` or `name_FILE` from the environment.
fn env_var(env: &Env, name: &str) -> Result<Option<(String, Origin)>> {
    let file_var = format!("{name}_FILE");
    match (env.get(name), env.get(&file_var)) {
        (Some(_), Some(_)) => bail!("both {name} and {file_var} are set; unset one of them"),
        (Some(v), None) => Ok(Some((v.clone(), Origin::Env(name.to_string())))),
        (None, Some(path)) => {
            let text = fs::read_to_string(path)
                .with_context(|| format!("{file_var} names {path}, which cannot be read"))?;
            // Secret files usually end with a newline that is not part of the value.
            Ok(Some((text.trim_end_matches(['\n', '\r']).to_string(), Origin::Env(file_var))))
        }
        (None, None) => Ok(None),
    }
}

/// A string setting: flag, else environment, else file.
fn string_setting(
    flag: Option<(&String, &'static str)>,
    env: &Env,
    var: &str,
    file: Option<(&LoadedFile, Option<&String>, &str)>,
) -> Result<Option<(String, Origin)>> {
    if let Some((v, name)) = flag {
        return Ok(Some((v.clone(), Origin::Flag(name))));
    }
    if let Some(found) = env_var(env, var)? {
        return Ok(Some(found));
    }
    Ok(file.and_then(|(f, v, key)| v.map(|v| (v.clone(), f.origin(key)))))
}

/// A typed setting: environment (parsed), else file.
fn parsed_setting<T: FromStr>(
    env: &Env,
    var: &str,
    file: Option<&LoadedFile>,
    pick: impl Fn(&FileConfig) -> Option<T>,
    key: &str,
    expected: &str,
) -> Result<Option<(T, Origin)>> {
    if let Some((raw, origin)) = env_var(env, var)? {
        let value = raw.trim().parse().map_err(|_| anyhow!("{origin} is `{raw}`, expected {expected}"))?;
        return Ok(Some((value, origin)));
    }
    Ok(file.and_then(|f| pick(&f.config).map(|v| (v, f.origin(key)))))
}

/// A boolean as people write it in environment variables.
#[derive(Debug, Clone, Copy)]
struct Flag(bool);

impl FromStr for Flag {
    type Err = ();
    fn from_str(s: &str) -> Result<Flag, ()> {
        match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Flag(true)),
            "false" | "0" | "no" | "off" => Ok(Flag(false)),
            _ => Err(()),
        }
    }
}

/// Parses a listen address; `off` or empty turns the listener off.
fn listen_addr(raw: &str, origin: &Origin) -> Result<Option<SocketAddr>> {
    let raw = raw.trim();
    if raw.is_empty() || raw.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    // `localhost` is what people type; resolving it would be a DNS lookup, and it always
    // means loopback here.
    let normalized = match raw.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None => raw.to_string(),
    };
    normalized.parse().map(Some).map_err(|_| {
        anyhow!("{origin} is `{raw}`, expected an address like 127.0.0.1:8080, 0.0.0.0:8443 or [::]:8080, or `off`")
    })
}

/// Resolves a configuration from an already parsed file, flags and environment.
fn resolve(file: Option<&LoadedFile>, o: &Overrides, env: &Env) -> Result<Config> {
    let from_file =
        |pick: fn(&FileConfig) -> Option<&String>, key: &'static str| file.map(|f| (f, pick(&f.config), key));

    // Data dir: a path; relative file values are relative to the file.
    let data_dir = match &o.data_dir {
        Some(d) => d.clone(),
        None => match env_var(env, "VOXBRIDGE_DATA")? {
            Some((v, origin)) if v.trim().is_empty() => bail!("{origin} is empty; give a directory"),
            Some((v, _)) => PathBuf::from(v),
            None => match file.and_then(|f| f.config.server.data_dir.as_ref().map(|d| f.path(d))) {
                Some(d) => d,
                None => PathBuf::from(DEFAULT_DATA_DIR),
            },
        },
    };

    let http = match string_setting(
        o.http.as_ref().map(|v| (v, "--http")),
        env,
        "VOXBRIDGE_HTTP",
        from_file(|c| c.server.http.as_ref(), "server.http"),
    )? {
        Some((raw, origin)) => listen_addr(&raw, &origin)?,
        None => Some(DEFAULT_HTTP.parse().expect("default address parses")),
    };
    let https = match string_setting(
        o.https.as_ref().map(|v| (v, "--https")),
        env,
        "VOXBRIDGE_HTTPS",
        from_file(|c| c.server.https.as_ref(), "server.https"),
    )? {
        Some((raw, origin)) => listen_addr(&raw, &origin)?,
        None => None,
    };
    if http.is_none() && https.is_none() {
        bail!("both HTTP and HTTPS are turned off; give at least one listen address (--http or --https)");
    }

    let database_url = match string_setting(
        o.database_url.as_ref().map(|v| (v, "--database-url")),
        env,
        "VOXBRIDGE_DATABASE_URL",
        from_file(|c| c.server.database_url.as_ref(), "server.database_url"),
    )? {
        Some((url, origin)) => {
            let url = url.trim().to_string();
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
            {
                // The value may hold a password: show only its redacted form.
                bail!(
                    "{origin} is `{}`, expected sqlite://PATH or postgres://USER:PASSWORD@HOST/DB",
                    redact_url(&url)
                );
            }
            url
        }
        None => format!("sqlite://{}", data_dir.join("voxbridge.db").display()),
    };

    let public_url = match string_setting(
        None,
        env,
        "VOXBRIDGE_PUBLIC_URL",
        from_file(|c| c.server.public_url.as_ref(), "server.public_url"),
    )? {
        Some((url, origin)) => {
            let url = url.trim().trim_end_matches('/').to_string();
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
                bail!("{origin} is `{url}`, expected a URL like https://voice.example.com");
            }
            Some(url)
        }
        None => None,
    };

    // An empty variable clears a path the file set.
    let tls_path = |var: &str, pick: fn(&FileConfig) -> Option<&PathBuf>| -> Result<Option<PathBuf>> {
        Ok(match env_var(env, var)? {
            Some((v, _)) if !v.trim().is_empty() => Some(PathBuf::from(v)),
            Some(_) => None,
            None => file.and_then(|f| pick(&f.config).map(|p| f.path(p))),
        })
    };
    let cert = tls_path("VOXBRIDGE_TLS_CERT", |c| c.tls.cert.as_ref())?;
    let key = tls_path("VOXBRIDGE_TLS_KEY", |c| c.tls.key.as_ref())?;
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        (Some(_), None) => bail!(
            "a TLS certificate is configured but no key; set `tls.key` (or VOXBRIDGE_TLS_KEY) too, \
             or neither to use a self-signed certificate"
        ),
        (None, Some(_)) => bail!(
            "a TLS key is configured but no certificate; set `tls.cert` (or VOXBRIDGE_TLS_CERT) too, \
             or neither to use a self-signed certificate"
        ),
    };

    let defaults = Settings::default();
    let audience = match string_setting(
        None,
        env,
        "VOXBRIDGE_AUTH_AUDIENCE",
        from_file(|c| c.auth.audience.as_ref(), "auth.audience"),
    )? {
        Some((a, origin)) if a.trim().is_empty() => {
            bail!("{origin} is empty; give the expected `aud` claim, e.g. https://scrt.salesforce.com")
        }
        Some((a, _)) => a.trim().to_string(),
        None => defaults.audience.clone(),
    };
    let require_audience = parsed_setting::<Flag>(
        env,
        "VOXBRIDGE_AUTH_REQUIRE_AUDIENCE",
        file,
        |c| c.auth.require_audience.map(Flag),
        "auth.require_audience",
        "true or false",
    )?
    .map(|(f, _)| f.0)
    .unwrap_or(defaults.require_audience);
    let max_token_lifetime_secs = match parsed_setting::<u64>(
        env,
        "VOXBRIDGE_AUTH_MAX_TOKEN_LIFETIME_SECS",
        file,
        |c| c.auth.max_token_lifetime_secs,
        "auth.max_token_lifetime_secs",
        "a number of seconds",
    )? {
        Some((secs, origin)) => {
            if !(MIN_TOKEN_LIFETIME_SECS..=MAX_TOKEN_LIFETIME_SECS).contains(&secs) {
                bail!(
                    "{origin} is {secs}, expected between {MIN_TOKEN_LIFETIME_SECS} and \
                     {MAX_TOKEN_LIFETIME_SECS} seconds (the guide's tokens expire within 3 minutes)"
                );
            }
            secs
        }
        None => defaults.max_token_lifetime.as_secs(),
    };

    let login_audiences = match env_var(env, "VOXBRIDGE_CRM_LOGIN_AUDIENCES")? {
        // One variable holds the list: comma- or space-separated.
        Some((raw, origin)) => {
            let list: Vec<String> =
                raw.split([',', ' ', '\n', '\t']).filter(|a| !a.is_empty()).map(str::to_string).collect();
            login_audiences(list, &origin)?
        }
        None => match file
            .and_then(|f| f.config.crm.login_audiences.clone().map(|v| (v, f.origin("crm.login_audiences"))))
        {
            Some((list, origin)) => login_audiences(list, &origin)?,
            None => defaults.login_audiences.clone(),
        },
    };
    let session_lifetime_secs = match parsed_setting::<u64>(
        env,
        "VOXBRIDGE_CRM_SESSION_LIFETIME_SECS",
        file,
        |c| c.crm.session_lifetime_secs,
        "crm.session_lifetime_secs",
        "a number of seconds",
    )? {
        Some((secs, origin)) => {
            if !(MIN_SESSION_LIFETIME_SECS..=MAX_SESSION_LIFETIME_SECS).contains(&secs) {
                bail!(
                    "{origin} is {secs}, expected between {MIN_SESSION_LIFETIME_SECS} and \
                     {MAX_SESSION_LIFETIME_SECS} seconds (24 hours)"
                );
            }
            secs
        }
        None => defaults.session_lifetime.as_secs(),
    };

    let limit = |var: &str, pick: fn(&FileConfig) -> Option<u64>, key: &str, default: u64| -> Result<u64> {
        match parsed_setting::<u64>(env, var, file, pick, key, "a positive whole number")? {
            Some((0, origin)) => bail!("{origin} is 0; limits must be at least 1"),
            Some((v, _)) => Ok(v),
            None => Ok(default),
        }
    };
    let limits = Limits {
        max_concurrent_calls: limit(
            "VOXBRIDGE_LIMITS_MAX_CONCURRENT_CALLS",
            |c| c.limits.max_concurrent_calls,
            "limits.max_concurrent_calls",
            defaults.limits.max_concurrent_calls,
        )?,
        calls_per_second: limit(
            "VOXBRIDGE_LIMITS_CALLS_PER_SECOND",
            |c| c.limits.calls_per_second,
            "limits.calls_per_second",
            defaults.limits.calls_per_second,
        )?,
        utterances_per_second: limit(
            "VOXBRIDGE_LIMITS_UTTERANCES_PER_SECOND",
            |c| c.limits.utterances_per_second,
            "limits.utterances_per_second",
            defaults.limits.utterances_per_second,
        )?,
    };

    let log_filter =
        match string_setting(None, env, "VOXBRIDGE_LOG", from_file(|c| c.log.filter.as_ref(), "log.filter"))?
        {
            Some((f, origin)) => {
                tracing_subscriber::EnvFilter::try_new(f.trim()).map_err(|e| {
                    anyhow!(
                        "{origin} is `{f}`, expected a log filter like `info` or `voxbridge=debug,info`: {e}"
                    )
                })?;
                f.trim().to_string()
            }
            None => "info".to_string(),
        };

    let call_centers = match file {
        Some(f) => call_centers(f)?,
        None => Vec::new(),
    };

    let bus_url =
        match string_setting(None, env, "VOXBRIDGE_BUS_URL", from_file(|c| c.bus.url.as_ref(), "bus.url"))? {
            Some((url, origin)) => {
                let url = url.trim().to_string();
                let valid = url.starts_with("nats://")
                    || url
                        .strip_prefix("sqlite://")
                        .or_else(|| url.strip_prefix("sqlite:"))
                        .is_some_and(|p| !p.is_empty());
                if !valid {
                    bail!("{origin} is `{}`, expected sqlite://PATH or nats://HOST:PORT", redact_url(&url));
                }
                url
            }
            None => format!("sqlite://{}", data_dir.join("bus.db").display()),
        };
    let objects_dir = match string_setting(
        None,
        env,
        "VOXBRIDGE_OBJECTS_URL",
        from_file(|c| c.objects.url.as_ref(), "objects.url"),
    )? {
        Some((url, _)) if url.trim().starts_with("s3://") => data_dir.join("objects"),
        Some((url, origin)) => {
            let url = url.trim();
            let path = match url.split_once("://") {
                Some(("file", p)) => p,
                Some(_) => {
                    bail!("{origin} is `{url}`, expected file:///PATH, a directory or s3://BUCKET[/PREFIX]")
                }
                None => url,
            };
            if path.is_empty() {
                bail!("{origin} is empty; give a directory, e.g. file:///var/lib/voxbridge/objects");
            }
            match (file, &origin) {
                (Some(f), Origin::File { .. }) => f.path(Path::new(path)),
                _ => PathBuf::from(path),
            }
        }
        None => data_dir.join("objects"),
    };
    let objects_s3 = match string_setting(
        None,
        env,
        "VOXBRIDGE_OBJECTS_URL",
        from_file(|c| c.objects.url.as_ref(), "objects.url"),
    )? {
        Some((url, origin)) if url.trim().starts_with("s3://") => {
            Some(s3_objects(url.trim(), &origin, file, env)?)
        }
        _ => None,
    };
    let ctr_resync_schedule = match string_setting(
        None,
        env,
        "VOXBRIDGE_CTR_RESYNC_SCHEDULE",
        from_file(|c| c.ctr.resync_schedule.as_ref(), "ctr.resync_schedule"),
    )? {
        Some((s, origin)) => {
            voxbridge_events::Schedule::parse(s.trim()).map_err(|e| {
                anyhow!(
                    "{origin} is `{s}`, expected a schedule like rate(15 minutes) or cron(0 * * * ? *): {e}"
                )
            })?;
            s.trim().to_string()
        }
        None => DEFAULT_CTR_RESYNC_SCHEDULE.to_string(),
    };
    let ctr_fields = match file.and_then(|f| f.config.ctr.fields.as_ref().map(|m| (f, m))) {
        Some((f, m)) => voxbridge_functions::ctr_sync::FieldMapping::parse(
            m.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .map_err(|e| anyhow!("{}: {e}", f.origin("ctr.fields")))?,
        None => voxbridge_functions::ctr_sync::FieldMapping::default(),
    };

    let messaging = match file {
        Some(f) => messaging(&f.config.messaging, |key| f.origin(key).to_string())?,
        None => voxbridge_server::MessagingSettings::default(),
    };

    let (rules, object_expiration) = match file {
        Some(f) => (
            crate::rules::parse_rules(&f.config.rules, |key| f.origin(key).to_string())?,
            crate::rules::parse_expiration(&f.config.objects.expiration, |key| f.origin(key).to_string())?,
        ),
        None => (Vec::new(), Vec::new()),
    };

    Ok(Config {
        file: file.map(|f| f.path.clone()),
        data_dir,
        http,
        https,
        database_url,
        public_url,
        tls,
        audience,
        require_audience,
        max_token_lifetime_secs,
        login_audiences,
        session_lifetime_secs,
        limits,
        log_filter,
        call_centers,
        flows_dir: None,
        bus_url,
        objects_dir,
        objects_s3,
        ctr_resync_schedule,
        ctr_fields,
        messaging,
        rules,
        object_expiration,
    })
}

/// The `[objects]` settings of an S3 bucket: endpoint, region, plain HTTP and credentials,
/// each from `VOXBRIDGE_OBJECTS_*`, the file, then the standard `AWS_*` variables.
fn s3_objects(url: &str, origin: &Origin, file: Option<&LoadedFile>, env: &Env) -> Result<S3Objects> {
    let (bucket, prefix) = S3Objects::parse_url(url).map_err(|e| anyhow!("{origin}: {e}"))?;
    let section = file.map(|f| (f, &f.config.objects));
    let in_file = |pick: fn(&ObjectsSection) -> Option<&String>, key: &'static str| {
        section.and_then(|(f, o)| pick(o).map(|v| (v.trim().to_string(), f.origin(key))))
    };
    // The first of: the VOXBRIDGE_ variable, the file's key, then the AWS variables in order.
    let setting =
        |var: &str, file_value: Option<(String, Origin)>, aws: &[&str]| -> Result<Option<(String, Origin)>> {
            if let Some((v, o)) = env_var(env, var)? {
                return Ok(Some((v.trim().to_string(), o)));
            }
            if file_value.is_some() {
                return Ok(file_value);
            }
            for var in aws {
                if let Some((v, o)) = env_var(env, var)? {
                    return Ok(Some((v.trim().to_string(), o)));
                }
            }
            Ok(None)
        };
    let endpoint = setting(
        "VOXBRIDGE_OBJECTS_ENDPOINT",
        in_file(|o| o.endpoint.as_ref(), "objects.endpoint"),
        &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"],
    )?;
    let region = setting(
        "VOXBRIDGE_OBJECTS_REGION",
        in_file(|o| o.region.as_ref(), "objects.region"),
        &["AWS_REGION", "AWS_DEFAULT_REGION"],
    )?;
    let allow_http = parsed_setting::<Flag>(
        env,
        "VOXBRIDGE_OBJECTS_ALLOW_HTTP",
        file,
        |c| c.objects.allow_http.map(Flag),
        "objects.allow_http",
        "true or false",
    )?
    .is_some_and(|(f, _)| f.0);

    if let Some((e, origin)) = &endpoint {
        let Some((scheme, rest)) = e.split_once("://") else {
            bail!("{origin} is `{e}`, expected an http(s) URL such as http://127.0.0.1:9000");
        };
        if !matches!(scheme, "http" | "https") || rest.is_empty() {
            bail!("{origin} is `{}`, expected an http(s) URL such as http://127.0.0.1:9000", redact_url(e));
        }
        if rest.split('/').next().is_some_and(|authority| authority.contains('@')) {
            bail!("{origin} has credentials in it; give them as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
        }
        if scheme == "http" && !allow_http {
            bail!(
                "{origin} is `{e}`, plain HTTP; set `objects.allow_http = true` (or \
                 VOXBRIDGE_OBJECTS_ALLOW_HTTP=true) for a local service, or use https://"
            );
        }
    }
    let region = match (region, &endpoint) {
        (Some((r, origin)), _) if r.is_empty() => bail!("{origin} is empty; give a region such as us-east-1"),
        (Some((r, _)), _) => r,
        // S3-compatible services mostly ignore the region, but requests are signed for one.
        (None, Some(_)) => "us-east-1".to_string(),
        (None, None) => bail!(
            "{origin} names the S3 bucket `{bucket}` on AWS, which needs its region: set `objects.region` \
             (or VOXBRIDGE_OBJECTS_REGION, AWS_REGION); for another S3-compatible service set \
             `objects.endpoint` (or VOXBRIDGE_OBJECTS_ENDPOINT)"
        ),
    };

    // Credentials: both keys from the file, else both AWS variables, else (AWS only) the
    // instance's credential chain (web identity, container or instance metadata).
    let key_id = in_file(|o| o.access_key_id.as_ref(), "objects.access_key_id");
    let secret = in_file(|o| o.secret_access_key.as_ref(), "objects.secret_access_key");
    let (access_key_id, secret_access_key, session_token) = match (key_id, secret) {
        (Some((k, _)), Some((s, _))) => (Some(k), Some(s), None),
        (None, None) => {
            let k = env_var(env, "AWS_ACCESS_KEY_ID")?;
            let s = env_var(env, "AWS_SECRET_ACCESS_KEY")?;
            match (k, s) {
                (Some((k, _)), Some((s, _))) => (
                    Some(k.trim().to_string()),
                    Some(s.trim().to_string()),
                    env_var(env, "AWS_SESSION_TOKEN")?.map(|(t, _)| t.trim().to_string()),
                ),
                (None, None) => (None, None, None),
                (Some(_), None) | (None, Some(_)) => {
                    bail!("give both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither")
                }
            }
        }
        (Some((_, o)), None) | (None, Some((_, o))) => {
            bail!("{o}: give both `objects.access_key_id` and `objects.secret_access_key`, or neither (then AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY apply)")
        }
    };
    if let (Some((e, _)), None) = (&endpoint, &access_key_id) {
        bail!(
            "{origin} names the S3 bucket `{bucket}` at {e}, which needs credentials: set AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY (or `objects.access_key_id` and `objects.secret_access_key`)"
        );
    }
    if access_key_id.as_deref().is_some_and(str::is_empty)
        || secret_access_key.as_deref().is_some_and(str::is_empty)
    {
        bail!("the S3 access key id and secret access key must not be empty");
    }
    Ok(S3Objects {
        bucket,
        prefix,
        endpoint: endpoint.map(|(e, _)| e.trim_end_matches('/').to_string()),
        region,
        access_key_id,
        secret_access_key,
        session_token,
        allow_http,
    })
}

/// An S3-compatible bucket as the object store (`objects.url = "s3://BUCKET[/PREFIX]"`),
/// checked when the configuration loads.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Objects {
    pub bucket: String,
    /// Keys are stored under this prefix (no leading or trailing `/`).
    pub prefix: Option<String>,
    /// The service's URL; `None` is AWS itself.
    pub endpoint: Option<String>,
    pub region: String,
    /// With the secret, or neither: then AWS's credential chain applies (AWS only).
    pub access_key_id: Option<String>,
    /// Never printed.
    pub secret_access_key: Option<String>,
    /// Never printed.
    pub session_token: Option<String>,
    /// Allows a plain `http://` endpoint (MinIO and other local services).
    pub allow_http: bool,
}

impl S3Objects {
    /// `s3://BUCKET[/PREFIX]`, for messages.
    pub fn url(&self) -> String {
        match &self.prefix {
            Some(p) => format!("s3://{}/{p}", self.bucket),
            None => format!("s3://{}", self.bucket),
        }
    }
}

impl fmt::Debug for S3Objects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Objects")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "***"))
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl S3Objects {
    /// The bucket and prefix of `s3://BUCKET[/PREFIX]`. Bucket names follow S3's rules:
    /// 3 to 63 lowercase letters, digits, `.` and `-`, starting and ending with a letter or
    /// digit.
    pub fn parse_url(url: &str) -> Result<(String, Option<String>)> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| anyhow!("`{url}` is not an s3:// URL"))?;
        if rest.contains(['?', '#']) {
            bail!("`{url}` has a query or fragment; give the endpoint, region and credentials as `objects.*` keys or AWS_* variables");
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let valid = (3..=63).contains(&bucket.len())
            && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
            && edge_ok(bucket.chars().next())
            && edge_ok(bucket.chars().last());
        if !valid {
            bail!(
                "`{bucket}` in `{url}` is not a bucket name (3 to 63 lowercase letters, digits, `.` and `-`, \
                 starting and ending with a letter or digit)"
            );
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|part| part == "." || part == "..") || prefix.contains("//") {
            bail!("the prefix `{prefix}` in `{url}` has empty, `.` or `..` parts");
        }
        Ok((bucket.to_string(), (!prefix.is_empty()).then(|| prefix.to_string())))
    }
}

/// Checks `[messaging]`: webhooks are http(s) URLs, delays are positive.
fn messaging(
    section: &MessagingSection,
    origin: impl Fn(&str) -> String,
) -> Result<voxbridge_server::MessagingSettings> {
    let mut out = voxbridge_server::MessagingSettings::default();
    for (name, channel) in &section.channels {
        let url = channel.webhook_url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
            bail!(
                "{} is `{url}`, expected an http:// or https:// URL",
                origin(&format!("messaging.channels.{name}.webhook_url"))
            );
        }
        out.channels.insert(name.clone(), url.to_string());
    }
    for (value, key, field) in [
        (section.retry_base_ms, "messaging.retry_base_ms", &mut out.retry_base),
        (section.retry_max_ms, "messaging.retry_max_ms", &mut out.retry_max),
    ] {
        match value {
            Some(0) => bail!("{} is 0; give a delay in milliseconds, at least 1", origin(key)),
            Some(ms) => *field = Duration::from_millis(ms),
            None => {}
        }
    }
    if out.retry_max < out.retry_base {
        bail!("{} is below messaging.retry_base_ms", origin("messaging.retry_max_ms"));
    }
    Ok(out)
}

/// Checks the accepted login audiences: at least one, each a URL (the platform's are
/// `https://login.salesforce.com` and the like). A trailing slash is dropped, as the login
/// compares without it.
fn login_audiences(list: Vec<String>, origin: &Origin) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for a in list {
        let a = a.trim().trim_end_matches('/');
        let valid = (a.starts_with("https://") || a.starts_with("http://"))
            && a.len() > "https://".len()
            && !a.contains(char::is_whitespace);
        if !valid {
            bail!("{origin} has `{a}`, expected URLs like https://login.salesforce.com");
        }
        if !out.iter().any(|o| o == a) {
            out.push(a.to_string());
        }
    }
    if out.is_empty() {
        bail!(
            "{origin} is empty, so no login assertion would be accepted; list at least one audience, \
             e.g. https://login.salesforce.com"
        );
    }
    Ok(out)
}

/// Validates `[[call_centers]]`: API names are unique identifiers and each entry names
/// exactly one key file.
fn call_centers(f: &LoadedFile) -> Result<Vec<CallCenterConfig>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, cc) in f.config.call_centers.iter().enumerate() {
        let at = |field: &str| f.origin(&format!("call_centers[{i}].{field}"));
        let name = cc.api_name.trim();
        let valid = !name.is_empty()
            && name.len() <= 80
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            bail!(
                "{} is `{}`, expected an API name: letters, digits and underscores, starting with a letter",
                at("api_name"),
                cc.api_name
            );
        }
        if !seen.insert(name.to_string()) {
            bail!("{} repeats `{name}`; each call center appears once", at("api_name"));
        }
        let key = match (&cc.public_key_file, &cc.certificate_file) {
            (Some(p), None) => KeyFile::PublicKey(f.path(p)),
            (None, Some(p)) => KeyFile::Certificate(f.path(p)),
            (Some(_), Some(_)) => bail!(
                "call_centers[{i}] (`{name}`) in {} sets both public_key_file and certificate_file; keep one",
                f.path.display()
            ),
            (None, None) => bail!(
                "call_centers[{i}] (`{name}`) in {} needs public_key_file or certificate_file \
                 (a PEM file; `voxbridge keys generate` makes a key pair)",
                f.path.display()
            ),
        };
        out.push(CallCenterConfig {
            api_name: name.to_string(),
            name: cc.name.clone().unwrap_or_else(|| name.to_string()),
            key,
            unified_routing: cc.unified_routing.unwrap_or(true),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn from_text(text: &str, o: &Overrides, e: &Env) -> Result<Config> {
        let path = PathBuf::from("/etc/voxbridge/voxbridge.toml");
        let config = parse_file(&path, text)?;
        resolve(Some(&LoadedFile { path, config }), o, e)
    }

    fn err(r: Result<Config>) -> String {
        format!("{:#}", r.expect_err("expected an error"))
    }

    #[test]
    fn defaults_without_file() {
        let c = resolve(None, &Overrides::default(), &Env::new()).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.http, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(c.https, None);
        assert_eq!(c.database_url, "sqlite://./data/voxbridge.db");
        assert_eq!(c.audience, "https://scrt.salesforce.com");
        assert_eq!(c.max_token_lifetime_secs, Settings::default().max_token_lifetime.as_secs());
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.base_url(), "http://127.0.0.1:8080");
        assert!(c.tls.is_none());
        assert_eq!(c.login_audiences, ["https://login.salesforce.com", "https://test.salesforce.com"]);
        assert_eq!(c.session_lifetime_secs, 7200);
        let s = c.settings();
        assert_eq!(s.login_audiences, Settings::default().login_audiences);
        assert_eq!(s.session_lifetime, Duration::from_secs(7200));
        assert_eq!(s.public_url, None);
    }

    #[test]
    fn crm_login_settings() {
        let text = "version = 1\n[server]\npublic_url = \"https://crm.example.com/\"\n\
                    [crm]\nlogin_audiences = [\"https://crm.example.com/\", \"https://login.salesforce.com\"]\n\
                    session_lifetime_secs = 900\n";
        let c = from_text(text, &Overrides::default(), &Env::new()).unwrap();
        assert_eq!(c.login_audiences, ["https://crm.example.com", "https://login.salesforce.com"]);
        let s = c.settings();
        assert_eq!(s.public_url.as_deref(), Some("https://crm.example.com"));
        assert_eq!(s.login_audiences, c.login_audiences);
        assert_eq!(s.session_lifetime, Duration::from_secs(900));

        let e = env(&[
            ("VOXBRIDGE_CRM_LOGIN_AUDIENCES", "https://a.example, https://b.example"),
            ("VOXBRIDGE_CRM_SESSION_LIFETIME_SECS", "3600"),
        ]);
        let c = from_text(text, &Overrides::default(), &e).unwrap();
        assert_eq!(c.login_audiences, ["https://a.example", "https://b.example"]);
        assert_eq!(c.session_lifetime_secs, 3600);

        let o = Overrides::default();
        let m = err(from_text("version = 1\n[crm]\nlogin_audiences = []\n", &o, &Env::new()));
        assert!(m.contains("`crm.login_audiences`") && m.contains("at least one"), "{m}");
        let m = err(from_text("version = 1\n[crm]\nlogin_audiences = [\"login\"]\n", &o, &Env::new()));
        assert!(m.contains("`login`") && m.contains("https://login.salesforce.com"), "{m}");
        let m = err(from_text("version = 1\n[crm]\nsession_lifetime_secs = 5\n", &o, &Env::new()));
        assert!(m.contains("`crm.session_lifetime_secs`") && m.contains("between 60 and 86400"), "{m}");
        let m = err(resolve(None, &o, &env(&[("VOXBRIDGE_CRM_SESSION_LIFETIME_SECS", "2h")])));
        assert!(m.contains("VOXBRIDGE_CRM_SESSION_LIFETIME_SECS is `2h`"), "{m}");
        let m = err(resolve(None, &o, &env(&[("VOXBRIDGE_CRM_LOGIN_AUDIENCES", " , ")])));
        assert!(m.contains("VOXBRIDGE_CRM_LOGIN_AUDIENCES is empty"), "{m}");
    }

    #[test]
    fn s3_object_store_settings() {
        let o = Overrides::default();
        let text = "version = 1\n[objects]\nurl = \"s3://vb-backups/prod/ctr-store/\"\n\
                    endpoint = \"http://127.0.0.1:9000\"\nregion = \"us-east-1\"\n\
                    access_key_id = \"AKIDEXAMPLE\"\nsecret_access_key = \"s3cr3t-value\"\nallow_http = true\n";
        let c = from_text(text, &o, &Env::new()).unwrap();
        let s3 = c.objects_s3.clone().unwrap();
        assert_eq!((s3.bucket.as_str(), s3.prefix.as_deref()), ("vb-backups", Some("prod/ctr-store")));
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(s3.allow_http);
        // The secret is never printed.
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t-value") && shown.contains("vb-backups"), "{shown}");

        // AWS itself: a region, and the credential chain when no keys are given.
        let aws = env(&[("AWS_REGION", "eu-west-1")]);
        let c = from_text("version = 1\n[objects]\nurl = \"s3://bucket\"\n", &o, &aws).unwrap();
        let s3 = c.objects_s3.unwrap();
        assert_eq!((s3.bucket.as_str(), s3.prefix, s3.region.as_str()), ("bucket", None, "eu-west-1"));
        assert_eq!((s3.endpoint, s3.access_key_id), (None, None));
        let m = err(from_text("version = 1\n[objects]\nurl = \"s3://bucket\"\n", &o, &Env::new()));
        assert!(
            m.contains("needs its region")
                && m.contains("`objects.region`")
                && m.contains("`objects.endpoint`"),
            "{m}"
        );
        let c = resolve(
            None,
            &o,
            &env(&[("VOXBRIDGE_OBJECTS_URL", "s3://from-env/x"), ("AWS_DEFAULT_REGION", "us-west-2")]),
        )
        .unwrap();
        assert_eq!(c.objects_s3.map(|s| (s.bucket, s.region)), Some(("from-env".into(), "us-west-2".into())));

        // An S3-compatible service from the environment alone: the endpoint, plain HTTP and
        // the standard AWS credentials; the region defaults.
        let local = env(&[
            ("VOXBRIDGE_OBJECTS_URL", "s3://backups"),
            ("VOXBRIDGE_OBJECTS_ENDPOINT", "http://127.0.0.1:9000/"),
            ("VOXBRIDGE_OBJECTS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "env-s3cr3t"),
            ("AWS_SESSION_TOKEN", "env-t0ken"),
        ]);
        let c = resolve(None, &o, &local).unwrap();
        let s3 = c.objects_s3.clone().unwrap();
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!((s3.region.as_str(), s3.access_key_id.as_deref()), ("us-east-1", Some("AKIDENV")));
        assert_eq!(s3.session_token.as_deref(), Some("env-t0ken"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("env-s3cr3t") && !shown.contains("env-t0ken"), "{shown}");
        // The file's keys win over the AWS variables, the VOXBRIDGE_ ones over the file.
        let text = "version = 1\n[objects]\nurl = \"s3://backups\"\nendpoint = \"https://s3.example.test\"\n\
                    access_key_id = \"AKIDFILE\"\nsecret_access_key = \"file-secret\"\n";
        let c =
            from_text(text, &o, &env(&[("AWS_ACCESS_KEY_ID", "AKIDENV"), ("AWS_SECRET_ACCESS_KEY", "x")]))
                .unwrap();
        let s3 = c.objects_s3.unwrap();
        assert_eq!((s3.access_key_id.as_deref(), s3.session_token), (Some("AKIDFILE"), None));
        let c = from_text(text, &o, &env(&[("VOXBRIDGE_OBJECTS_ENDPOINT", "https://other.test")])).unwrap();
        assert_eq!(c.objects_s3.unwrap().endpoint.as_deref(), Some("https://other.test"));

        // What to set when something is missing, and never a secret in the message.
        for (vars, expected) in [
            (
                &[("VOXBRIDGE_OBJECTS_ENDPOINT", "https://s3.example.test")][..],
                "needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ),
            (
                &[
                    ("VOXBRIDGE_OBJECTS_ENDPOINT", "http://127.0.0.1:9000"),
                    ("AWS_ACCESS_KEY_ID", "k"),
                    ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
                ][..],
                "set `objects.allow_http = true`",
            ),
            (
                &[("VOXBRIDGE_OBJECTS_ENDPOINT", "https://k:s3cr3t@s3.example.test")][..],
                "has credentials in it",
            ),
            (&[("VOXBRIDGE_OBJECTS_ENDPOINT", "ftp://s3.example.test")][..], "expected an http(s) URL"),
            (
                &[("AWS_REGION", "us-east-1"), ("AWS_ACCESS_KEY_ID", "k")][..],
                "give both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ),
        ] {
            let mut e = env(vars);
            e.insert("VOXBRIDGE_OBJECTS_URL".into(), "s3://backups".into());
            let m = err(resolve(None, &o, &e));
            assert!(m.contains(expected) && !m.contains("s3cr3t"), "{vars:?}: {m}");
        }
        let c = resolve(None, &o, &env(&[("VOXBRIDGE_OBJECTS_URL", "/srv/objects")])).unwrap();
        assert!(c.objects_s3.is_none());

        for (url, expected) in [
            ("s3://", "is not a bucket name"),
            ("s3://ab", "is not a bucket name"),
            ("s3://Upper", "is not a bucket name"),
            ("s3://-bucket", "is not a bucket name"),
            ("s3://bucket?region=x", "has a query or fragment"),
            ("s3://bucket/a/../b", "has empty, `.` or `..` parts"),
            ("s3://bucket/a//b", "has empty, `.` or `..` parts"),
        ] {
            let text = format!("version = 1\n[objects]\nurl = \"{url}\"\n");
            let m = err(from_text(&text, &o, &aws));
            assert!(m.contains("`objects.url`") && m.contains(expected), "{url}: {m}");
        }
        let m = err(from_text(
            "version = 1\n[objects]\nurl = \"s3://bucket\"\naccess_key_id = \"AKID\"\n",
            &o,
            &aws,
        ));
        assert!(m.contains("both `objects.access_key_id` and `objects.secret_access_key`"), "{m}");
        let m = err(from_text(
            "version = 1\n[objects]\nurl = \"s3://bucket\"\nendpoint = \"minio:9000\"\n",
            &o,
            &aws,
        ));
        assert!(m.contains("`objects.endpoint`") && m.contains("http(s) URL"), "{m}");
        let m = err(from_text("version = 1\n[objects]\nurl = \"gs://bucket\"\n", &o, &Env::new()));
        assert!(m.contains("s3://BUCKET[/PREFIX]"), "{m}");
    }

    #[test]
    fn example_file_parses_with_every_key() {
        let text = include_str!("../../../docs/examples/voxbridge.toml");
        let c = from_text(text, &Overrides::default(), &Env::new()).unwrap();
        assert_eq!(c.call_centers.len(), 1);
        assert!(c.https.is_some());
        assert_eq!(c.login_audiences.len(), 3);
        assert_eq!(c.session_lifetime_secs, 7200);
    }

    #[test]
    fn bus_objects_and_ctr_keys() {
        let o = Overrides::default();
        let c = from_text("version = 1\n", &o, &Env::new()).unwrap();
        assert_eq!(c.bus_url, "sqlite://./data/bus.db");
        assert_eq!(c.objects_dir, PathBuf::from("./data/objects"));
        assert_eq!(c.ctr_resync_schedule, DEFAULT_CTR_RESYNC_SCHEDULE);
        assert!(c.ctr_fields.is_empty());
        let text = "version = 1\n[bus]\nurl = \"nats://127.0.0.1:4222\"\n[objects]\nurl = \"file://blobs\"\n\
                    [ctr]\nresync_schedule = \"rate(1 hour)\"\n[ctr.fields]\nDisconnectReason__c = \"DisconnectReason\"\n";
        let c = from_text(text, &o, &Env::new()).unwrap();
        assert_eq!(c.bus_url, "nats://127.0.0.1:4222");
        assert_eq!(c.objects_dir, PathBuf::from("/etc/voxbridge/blobs"), "relative to the file");
        assert_eq!(c.ctr_resync_schedule, "rate(1 hour)");
        assert_eq!(c.ctr_fields.fields().len(), 1);
        let e =
            env(&[("VOXBRIDGE_BUS_URL", "sqlite:///tmp/b.db"), ("VOXBRIDGE_OBJECTS_URL", "/srv/objects")]);
        let c = from_text(text, &o, &e).unwrap();
        assert_eq!(c.bus_url, "sqlite:///tmp/b.db");
        assert_eq!(c.objects_dir, PathBuf::from("/srv/objects"));
        let m = err(resolve(None, &o, &env(&[("VOXBRIDGE_BUS_URL", "redis://x")])));
        assert!(m.contains("VOXBRIDGE_BUS_URL") && m.contains("nats://"), "{m}");
        let m = err(resolve(None, &o, &env(&[("VOXBRIDGE_OBJECTS_URL", "ftp://host/x")])));
        assert!(m.contains("VOXBRIDGE_OBJECTS_URL is `ftp://host/x`"), "{m}");
        let m = err(resolve(None, &o, &env(&[("VOXBRIDGE_CTR_RESYNC_SCHEDULE", "hourly")])));
        assert!(m.contains("rate(15 minutes)"), "{m}");
        let m = err(from_text("version = 1\n[ctr.fields]\n\"bad name\" = \"A\"\n", &o, &Env::new()));
        assert!(m.contains("ctr.fields"), "{m}");
    }

    #[test]
    fn precedence_flag_env_file_default() {
        let text = "version = 1\n[server]\nhttp = \"127.0.0.1:1001\"\ndata_dir = \"state\"\n";
        let c = from_text(text, &Overrides::default(), &Env::new()).unwrap();
        assert_eq!(c.http.unwrap().port(), 1001);
        assert_eq!(c.data_dir, PathBuf::from("/etc/voxbridge/state"), "relative to the file");
        assert_eq!(c.database_url, "sqlite:///etc/voxbridge/state/voxbridge.db");

        let e = env(&[("VOXBRIDGE_HTTP", "127.0.0.1:1002"), ("VOXBRIDGE_DATA", "envdata")]);
        let c = from_text(text, &Overrides::default(), &e).unwrap();
        assert_eq!(c.http.unwrap().port(), 1002);
        assert_eq!(c.data_dir, PathBuf::from("envdata"));

        let o = Overrides {
            http: Some("127.0.0.1:1003".into()),
            data_dir: Some("flagdata".into()),
            ..Overrides::default()
        };
        let c = from_text(text, &o, &e).unwrap();
        assert_eq!(c.http.unwrap().port(), 1003);
        assert_eq!(c.data_dir, PathBuf::from("flagdata"));
    }

    #[test]
    fn env_overrides_every_section() {
        let e = env(&[
            ("VOXBRIDGE_HTTPS", "0.0.0.0:8443"),
            ("VOXBRIDGE_DATABASE_URL", "postgres://vb:hunter2@db/voxbridge"),
            ("VOXBRIDGE_PUBLIC_URL", "https://voice.example.com/"),
            ("VOXBRIDGE_TLS_CERT", "/tls/cert.pem"),
            ("VOXBRIDGE_TLS_KEY", "/tls/key.pem"),
            ("VOXBRIDGE_AUTH_AUDIENCE", "https://voice.example.com"),
            ("VOXBRIDGE_AUTH_REQUIRE_AUDIENCE", "yes"),
            ("VOXBRIDGE_AUTH_MAX_TOKEN_LIFETIME_SECS", "600"),
            ("VOXBRIDGE_LIMITS_MAX_CONCURRENT_CALLS", "10"),
            ("VOXBRIDGE_LIMITS_CALLS_PER_SECOND", "2"),
            ("VOXBRIDGE_LIMITS_UTTERANCES_PER_SECOND", "30"),
            ("VOXBRIDGE_LOG", "debug"),
        ]);
        let text = "version = 1\n[auth]\nmax_token_lifetime_secs = 300\n[limits]\ncalls_per_second = 9\n";
        let c = from_text(text, &Overrides::default(), &e).unwrap();
        assert_eq!(c.https, Some("0.0.0.0:8443".parse().unwrap()));
        assert_eq!(c.https_url().unwrap(), "https://127.0.0.1:8443");
        assert_eq!(c.database_url_redacted(), "postgres://vb:***@db/voxbridge");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.base_url(), "https://voice.example.com");
        assert_eq!(c.tls, Some(TlsFiles { cert: "/tls/cert.pem".into(), key: "/tls/key.pem".into() }));
        let s = c.settings();
        assert_eq!(s.audience, "https://voice.example.com");
        assert!(s.require_audience);
        assert_eq!(s.max_token_lifetime, Duration::from_secs(600));
        assert_eq!(
            s.limits,
            Limits { max_concurrent_calls: 10, calls_per_second: 2, utterances_per_second: 30 }
        );
        assert_eq!(c.log_filter, "debug");
    }

    #[test]
    fn file_variants_read_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("db-url");
        fs::write(&secret, "postgres://vb:s3cret@db/voxbridge\n").unwrap();
        let e = env(&[("VOXBRIDGE_DATABASE_URL_FILE", secret.to_str().unwrap())]);
        let c = resolve(None, &Overrides::default(), &e).unwrap();
        assert_eq!(c.database_url, "postgres://vb:s3cret@db/voxbridge");

        let e = env(&[("VOXBRIDGE_DATABASE_URL_FILE", "/x"), ("VOXBRIDGE_DATABASE_URL", "sqlite://y")]);
        let m = err(resolve(None, &Overrides::default(), &e));
        assert!(m.contains("both VOXBRIDGE_DATABASE_URL and VOXBRIDGE_DATABASE_URL_FILE"), "{m}");

        let e = env(&[("VOXBRIDGE_DATABASE_URL_FILE", "/nonexistent/voxbridge-secret")]);
        let m = err(resolve(None, &Overrides::default(), &e));
        assert!(m.contains("VOXBRIDGE_DATABASE_URL_FILE names /nonexistent/voxbridge-secret"), "{m}");
    }

    #[test]
    fn missing_and_wrong_version() {
        let m = err(from_text("[server]\nhttp = \"127.0.0.1:1\"\n", &Overrides::default(), &Env::new()));
        assert!(m.contains("has no `version`") && m.contains("version = 1"), "{m}");
        let m = err(from_text("version = 2\n", &Overrides::default(), &Env::new()));
        assert!(m.contains("version = 2") && m.contains("version 1 only"), "{m}");
    }

    #[test]
    fn unknown_keys_are_named_with_their_path() {
        let m = err(from_text("version = 1\n[server]\nhtp = \"x\"\n", &Overrides::default(), &Env::new()));
        assert!(m.contains("unknown key `server.htp`"), "{m}");
        assert!(m.contains("line 3"), "{m}");
        assert!(m.contains("`http`"), "expected keys listed: {m}");
        let m = err(from_text("version = 1\ncolour = 1\n", &Overrides::default(), &Env::new()));
        assert!(m.contains("unknown key `colour`"), "{m}");
        let text = "version = 1\n[[call_centers]]\napi_name = \"A\"\npublic_key = \"x\"\n";
        let m = err(from_text(text, &Overrides::default(), &Env::new()));
        assert!(m.contains("unknown key `call_centers[0].public_key`"), "{m}");
    }

    #[test]
    fn bad_values_say_what_is_expected() {
        let o = Overrides::default();
        let e = Env::new();
        let m = err(from_text("version = 1\n[auth]\nmax_token_lifetime_secs = 10\n", &o, &e));
        assert!(m.contains("`auth.max_token_lifetime_secs`") && m.contains("between 180 and 3600"), "{m}");
        let m = err(from_text("version = 1\n[auth]\nmax_token_lifetime_secs = \"ten\"\n", &o, &e));
        assert!(m.contains("invalid value for `auth.max_token_lifetime_secs`"), "{m}");
        let m = err(from_text("version = 1\n[server]\nhttp = \"nowhere\"\n", &o, &e));
        assert!(m.contains("`server.http`") && m.contains("127.0.0.1:8080"), "{m}");
        let m = err(resolve(None, &o, &env(&[("VOXBRIDGE_LIMITS_CALLS_PER_SECOND", "lots")])));
        assert!(m.contains("VOXBRIDGE_LIMITS_CALLS_PER_SECOND is `lots`"), "{m}");
        let m = err(resolve(None, &o, &env(&[("VOXBRIDGE_LIMITS_CALLS_PER_SECOND", "0")])));
        assert!(m.contains("at least 1"), "{m}");
        let m = err(resolve(None, &Overrides { http: Some("x".into()), ..o.clone() }, &e));
        assert!(m.contains("command-line flag --http is `x`"), "{m}");
        let m = err(resolve(None, &o, &env(&[("VOXBRIDGE_DATABASE_URL", "mysql://u:pw@h/d")])));
        assert!(m.contains("mysql://u:***@h/d") && !m.contains("pw@"), "{m}");
        let m = err(from_text("version = 1\n[tls]\ncert = \"c.pem\"\n", &o, &e));
        assert!(m.contains("no key"), "{m}");
        let m = err(from_text("version = 1\nnot toml", &o, &e));
        assert!(m.contains("not valid TOML"), "{m}");
    }

    #[test]
    fn listeners_can_be_turned_off() {
        let e = env(&[("VOXBRIDGE_HTTP", "off"), ("VOXBRIDGE_HTTPS", "[::]:8443")]);
        let c = resolve(None, &Overrides::default(), &e).unwrap();
        assert_eq!(c.http, None);
        assert_eq!(c.base_url(), "https://[::1]:8443");
        let e = env(&[("VOXBRIDGE_HTTP", "off")]);
        assert!(err(resolve(None, &Overrides::default(), &e)).contains("at least one"));
        let o = Overrides { https: Some("off".into()), ..Overrides::default() };
        let c = from_text("version = 1\n[server]\nhttps = \"127.0.0.1:8443\"\n", &o, &Env::new()).unwrap();
        assert_eq!(c.https, None);
    }

    #[test]
    fn call_center_entries() {
        let text = "version = 1\n[[call_centers]]\napi_name = \"Acme\"\npublic_key_file = \"keys/acme.pem\"\n\
                    [[call_centers]]\napi_name = \"Beta\"\ncertificate_file = \"/abs/beta.crt\"\nunified_routing = false\n";
        let c = from_text(text, &Overrides::default(), &Env::new()).unwrap();
        assert_eq!(
            c.call_centers,
            vec![
                CallCenterConfig {
                    api_name: "Acme".into(),
                    name: "Acme".into(),
                    key: KeyFile::PublicKey("/etc/voxbridge/keys/acme.pem".into()),
                    unified_routing: true,
                },
                CallCenterConfig {
                    api_name: "Beta".into(),
                    name: "Beta".into(),
                    key: KeyFile::Certificate("/abs/beta.crt".into()),
                    unified_routing: false,
                },
            ]
        );
        let m = err(from_text(
            "version = 1\n[[call_centers]]\napi_name = \"A\"\n",
            &Overrides::default(),
            &Env::new(),
        ));
        assert!(m.contains("needs public_key_file or certificate_file"), "{m}");
        let m = err(from_text(
            "version = 1\n[[call_centers]]\napi_name = \"bad name\"\npublic_key_file = \"k\"\n",
            &Overrides::default(),
            &Env::new(),
        ));
        assert!(m.contains("call_centers[0].api_name"), "{m}");
    }

    #[test]
    fn messaging_channels() {
        let text = "version = 1\n[messaging]\nretry_base_ms = 50\n\
                    [messaging.channels.Text_US_15551234567]\nwebhook_url = \"https://sms.example/hook\"\n";
        let c = from_text(text, &Overrides::default(), &Env::new()).unwrap();
        assert_eq!(c.settings().messaging.channels["Text_US_15551234567"], "https://sms.example/hook");
        assert_eq!(c.messaging.retry_base, Duration::from_millis(50));
        let m = err(from_text(
            "version = 1\n[messaging.channels.X]\nwebhook_url = \"sms.example\"\n",
            &Overrides::default(),
            &Env::new(),
        ));
        assert!(m.contains("messaging.channels.X.webhook_url") && m.contains("http://"), "{m}");
        let m = err(from_text(
            "version = 1\n[messaging]\nretry_max_ms = 0\n",
            &Overrides::default(),
            &Env::new(),
        ));
        assert!(m.contains("messaging.retry_max_ms"), "{m}");
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_url("postgres://u:p@h:5432/db?x=1"), "postgres://u:***@h:5432/db?x=1");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://./data/x.db"), "sqlite://./data/x.db");
        assert_eq!(redact_url("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
    }
}
