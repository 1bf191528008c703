//! The flow library and the telephony configuration that comes with it: flows by name, id
//! or ARN (parsed once), phone numbers bound to flows, telephony-side queues with their hours
//! of operation, agents, quick connects, and function bindings.
//!
//! A flows directory holds flow exports (`*.json`, as the Amazon Connect console writes them)
//! and an optional `flows.toml`:
//!
//! ```toml
//! instance_arn = "arn:aws:connect:us-east-1:123456789012:instance/voxbridge"   # optional
//!
//! [[flows]]                       # optional: every *.json is loaded anyway
//! file = "Sample_SCV_Omni-Channel_Subflow_-_Basic_Routing_with_Case_Creation.json"
//! name = "Omni-Channel Subflow"   # default: the file name without .json, `_` read as space
//! id = "b1c37cdd-aa53-4dd1-899d-3021d7151b2b"  # what TransferToFlow ARNs end with
//!
//! [[numbers]]
//! number = "+15550100100"
//! flow = "Sample SCV Inbound Flow"
//!
//! [[queues]]
//! name = "BasicQueue"
//! id = "d56943a9-7293-4220-a60d-99500d362f12"
//! arn = "…"                        # default: <instance_arn>/queue/<id>
//! capacity = 100                   # contacts waiting at once (default 100)
//! hours = "Business hours"         # default: the built-in "24x7" hours
//!
//! [[hours]]
//! name = "Business hours"
//! id = "b7e1…"                     # default: the name
//! time_zone = "America/New_York"   # IANA name (default UTC)
//! monday = ["09:00-17:00"]         # sunday … saturday: open ranges, local time; none: closed
//! friday = ["09:00-12:00", "13:00-17:00"]
//!
//! [[agents]]
//! username = "alice"
//! id = "4c2e…"                     # default: the username
//! arn = "…"                        # default: <instance_arn>/agent/<id>
//! queues = ["BasicQueue"]          # the routing profile's queues (names or ids); default: all
//!
//! [[quick_connects]]
//! name = "Billing"
//! type = "queue"                   # queue | agent | phone
//! target = "Billing"               # a queue or agent (name or id), or an E.164 number
//! flow = "Sample SCV Transfer Flow For Queue Transfers"   # the transfer flow (optional)
//!
//! [[functions]]
//! arn = "arn:aws:lambda:us-east-1:123456789012:function:CustomerLookup"
//! url = "http://127.0.0.1:9000/lookup"   # an external function
//! timeout_seconds = 3              # optional
//! reserved_concurrency = 10        # optional
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use voxbridge_flows::{ActionKind, Diagnostic, Flow, HoursOfOperation, OpenRange, Severity};
use voxbridge_functions::Registry;

/// The default Amazon Connect instance ARN of the telephony side.
pub const DEFAULT_INSTANCE_ARN: &str = "arn:aws:connect:us-east-1:123456789012:instance/voxbridge";
/// Contacts a queue holds when its capacity is not configured.
pub const DEFAULT_QUEUE_CAPACITY: usize = 100;

/// A flow of the library.
#[derive(Debug)]
pub struct LibraryFlow {
    pub name: String,
    /// The id TransferToFlow ARNs end with (defaults to the name).
    pub id: String,
    pub arn: String,
    pub file: Option<PathBuf>,
    pub flow: Flow,
}

/// The hours every queue without `hours` has: always open.
pub const ALWAYS_OPEN: &str = "24x7";

/// A telephony-side queue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    pub id: String,
    #[serde(default)]
    pub arn: Option<String>,
    #[serde(default)]
    pub capacity: Option<usize>,
    #[serde(default)]
    pub outbound_caller_id: Option<String>,
    /// The name or id of the queue's hours of operation ([`ALWAYS_OPEN`] when unset).
    #[serde(default)]
    pub hours: Option<String>,
}

/// Queues and agents a library has besides those of its flows.toml.
#[derive(Debug, Clone, Default)]
pub struct LibraryDefaults {
    pub queues: Vec<QueueConfig>,
    pub agents: Vec<AgentConfig>,
}

/// Hours of operation: weekly open ranges in an IANA time zone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HoursConfig {
    pub name: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub sunday: Vec<String>,
    #[serde(default)]
    pub monday: Vec<String>,
    #[serde(default)]
    pub tuesday: Vec<String>,
    #[serde(default)]
    pub wednesday: Vec<String>,
    #[serde(default)]
    pub thursday: Vec<String>,
    #[serde(default)]
    pub friday: Vec<String>,
    #[serde(default)]
    pub saturday: Vec<String>,
}

/// Hours of operation ready to be checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Hours {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub time_zone: chrono_tz::Tz,
    /// Sunday = 0; overnight ranges are split at midnight.
    pub open: Vec<OpenRange>,
}

impl Hours {
    /// The interpreter's view at `now_ms`: the ranges with the UTC offset in force then.
    pub fn at(&self, now_ms: i64) -> HoursOfOperation {
        use chrono::Offset as _;
        use chrono::TimeZone as _;
        let utc = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default().naive_utc();
        let offset = self.time_zone.offset_from_utc_datetime(&utc).fix().local_minus_utc() / 60;
        HoursOfOperation {
            id: self.id.clone(),
            arn: self.arn.clone(),
            utc_offset_minutes: offset,
            open: self.open.clone(),
            override_open: None,
        }
    }

    /// Whether the hours are open at `now_ms`.
    pub fn is_open(&self, now_ms: i64) -> bool {
        self.at(now_ms).is_open(now_ms)
    }
}

/// A telephony-side agent (a user with a routing profile).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub username: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub arn: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    /// The routing profile's queues (names or ids); empty: every queue.
    #[serde(default)]
    pub queues: Vec<String>,
    /// The routing profile's name (for the CTR).
    #[serde(default)]
    pub routing_profile: Option<String>,
}

/// An agent of the library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub username: String,
    pub id: String,
    pub arn: String,
    pub first_name: String,
    pub last_name: String,
    /// Ids of the queues the agent takes contacts from.
    pub queue_ids: Vec<String>,
    pub routing_profile: String,
}

/// What a quick connect transfers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuickConnectType {
    Queue,
    Agent,
    Phone,
}

/// A quick connect: a named transfer destination agents pick.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuickConnect {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: QuickConnectType,
    /// A queue or agent (name or id), or an E.164 number.
    pub target: String,
    /// The transfer flow the new contact runs (queue and agent quick connects); without it the
    /// contact goes straight to the queue or agent.
    #[serde(default)]
    pub flow: Option<String>,
}

/// An ARN bound to an external function.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionBinding {
    pub arn: String,
    pub url: String,
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    #[serde(default)]
    pub reserved_concurrency: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowsToml {
    #[serde(default)]
    instance_arn: Option<String>,
    #[serde(default)]
    flows: Vec<FlowEntry>,
    #[serde(default)]
    numbers: Vec<NumberEntry>,
    #[serde(default)]
    queues: Vec<QueueConfig>,
    #[serde(default)]
    functions: Vec<FunctionBinding>,
    #[serde(default)]
    hours: Vec<HoursConfig>,
    #[serde(default)]
    agents: Vec<AgentConfig>,
    #[serde(default)]
    quick_connects: Vec<QuickConnect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowEntry {
    file: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NumberEntry {
    number: String,
    flow: String,
}

/// Why a library could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Flows, numbers, queues and function bindings of one telephony deployment.
#[derive(Debug)]
pub struct FlowLibrary {
    pub instance_arn: String,
    flows: Vec<Arc<LibraryFlow>>,
    /// Lookup keys (name, id, ARN) → index.
    by_key: HashMap<String, usize>,
    /// E.164 number → flow index.
    numbers: BTreeMap<String, usize>,
    pub queues: Vec<QueueConfig>,
    pub functions: Vec<FunctionBinding>,
    /// Hours of operation, the built-in [`ALWAYS_OPEN`] first.
    pub hours: Vec<Hours>,
    pub agents: Vec<Agent>,
    pub quick_connects: Vec<QuickConnect>,
}

impl Default for FlowLibrary {
    fn default() -> Self {
        FlowLibrary::new(DEFAULT_INSTANCE_ARN)
    }
}

impl FlowLibrary {
    pub fn new(instance_arn: impl Into<String>) -> FlowLibrary {
        FlowLibrary {
            instance_arn: instance_arn.into(),
            flows: Vec::new(),
            by_key: HashMap::new(),
            numbers: BTreeMap::new(),
            queues: Vec::new(),
            functions: Vec::new(),
            hours: Vec::new(),
            agents: Vec::new(),
            quick_connects: Vec::new(),
        }
        .with_always_open()
    }

    fn with_always_open(mut self) -> FlowLibrary {
        let always = HoursConfig {
            name: ALWAYS_OPEN.into(),
            sunday: vec!["00:00-24:00".into()],
            monday: vec!["00:00-24:00".into()],
            tuesday: vec!["00:00-24:00".into()],
            wednesday: vec!["00:00-24:00".into()],
            thursday: vec!["00:00-24:00".into()],
            friday: vec!["00:00-24:00".into()],
            saturday: vec!["00:00-24:00".into()],
            ..HoursConfig::default()
        };
        if let Ok(h) = self.build_hours(&always) {
            self.hours.push(h);
        }
        self
    }

    /// Loads every `*.json` flow of `dir` and its `flows.toml`, if any.
    pub fn load_dir(dir: &Path) -> Result<FlowLibrary, LibraryError> {
        FlowLibrary::load_dir_with(dir, LibraryDefaults::default())
    }

    /// Like [`FlowLibrary::load_dir`], with queues and agents the deployment has anyway (the
    /// CRM half's): added unless flows.toml declares the same id or username, and known to
    /// flows.toml's agents and quick connects.
    pub fn load_dir_with(dir: &Path, defaults: LibraryDefaults) -> Result<FlowLibrary, LibraryError> {
        let toml_path = dir.join("flows.toml");
        let config: FlowsToml = match std::fs::read_to_string(&toml_path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| LibraryError::Invalid { path: toml_path.clone(), message: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FlowsToml::default(),
            Err(source) => return Err(LibraryError::Io { path: toml_path, source }),
        };
        let mut lib =
            FlowLibrary::new(config.instance_arn.unwrap_or_else(|| DEFAULT_INSTANCE_ARN.to_string()));
        let entries: HashMap<&str, &FlowEntry> = config.flows.iter().map(|e| (e.file.as_str(), e)).collect();
        for e in &config.flows {
            if !dir.join(&e.file).is_file() {
                return Err(LibraryError::Invalid {
                    path: toml_path.clone(),
                    message: format!("flow file {:?} does not exist", e.file),
                });
            }
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| LibraryError::Io { path: dir.to_path_buf(), source })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
            .collect();
        files.sort();
        for path in files {
            let file_name = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            let text = std::fs::read_to_string(&path)
                .map_err(|source| LibraryError::Io { path: path.clone(), source })?;
            let flow = voxbridge_flows::parse_flow(&text)
                .map_err(|e| LibraryError::Invalid { path: path.clone(), message: e.to_string() })?;
            let entry = entries.get(file_name.as_str());
            let name = entry.and_then(|e| e.name.clone()).unwrap_or_else(|| default_name(&file_name));
            let id = entry.and_then(|e| e.id.clone());
            lib.add(name, id, Some(path), flow)
                .map_err(|message| LibraryError::Invalid { path: toml_path.clone(), message })?;
        }
        for n in &config.numbers {
            lib.bind_number(&n.number, &n.flow)
                .map_err(|message| LibraryError::Invalid { path: toml_path.clone(), message })?;
        }
        let invalid = |message: String| LibraryError::Invalid { path: toml_path.clone(), message };
        for h in &config.hours {
            lib.add_hours(h).map_err(invalid)?;
        }
        for q in config.queues {
            lib.add_queue(q);
        }
        for q in defaults.queues {
            if !lib.queues.iter().any(|c| c.id == q.id) {
                lib.add_queue(q);
            }
        }
        lib.check_queue_hours().map_err(invalid)?;
        for a in &config.agents {
            lib.add_agent(a).map_err(invalid)?;
        }
        for a in &defaults.agents {
            let id = a.id.as_deref().unwrap_or(&a.username);
            if lib.agent(id).is_none() && lib.agent(&a.username).is_none() {
                lib.add_agent(a).map_err(invalid)?;
            }
        }
        for qc in config.quick_connects {
            lib.add_quick_connect(qc).map_err(invalid)?;
        }
        lib.functions = config.functions;
        Ok(lib)
    }

    fn build_hours(&self, h: &HoursConfig) -> Result<Hours, String> {
        let id = h.id.clone().unwrap_or_else(|| h.name.clone());
        let zone = h.time_zone.as_deref().unwrap_or("UTC");
        let time_zone: chrono_tz::Tz =
            zone.parse().map_err(|_| format!("hours {:?}: {zone:?} is not an IANA time zone", h.name))?;
        let mut open = Vec::new();
        let days = [&h.sunday, &h.monday, &h.tuesday, &h.wednesday, &h.thursday, &h.friday, &h.saturday];
        for (day, ranges) in days.into_iter().enumerate() {
            for r in ranges {
                let (start, end) = parse_range(r).ok_or_else(|| {
                    format!("hours {:?}: {r:?} is not a range like \"09:00-17:00\"", h.name)
                })?;
                let day = day as u8;
                if start < end {
                    open.push(OpenRange { day, start_minute: start, end_minute: end });
                } else {
                    // Past midnight: the rest of the day, then the next morning.
                    open.push(OpenRange { day, start_minute: start, end_minute: 1440 });
                    open.push(OpenRange { day: (day + 1) % 7, start_minute: 0, end_minute: end });
                }
            }
        }
        let arn = format!("{}/operating-hours/{id}", self.instance_arn);
        Ok(Hours { name: h.name.clone(), id, arn, time_zone, open })
    }

    /// Adds (or replaces, by name) hours of operation.
    pub fn add_hours(&mut self, h: &HoursConfig) -> Result<(), String> {
        let hours = self.build_hours(h)?;
        self.hours.retain(|x| x.name != hours.name && x.id != hours.id);
        self.hours.push(hours);
        Ok(())
    }

    /// Hours by name or id.
    pub fn hours(&self, key: &str) -> Option<&Hours> {
        self.hours.iter().find(|h| h.name == key || h.id == key || h.arn == key)
    }

    /// The hours of a queue: its own, or [`ALWAYS_OPEN`].
    pub fn queue_hours(&self, q: &QueueConfig) -> Option<&Hours> {
        self.hours(q.hours.as_deref().unwrap_or(ALWAYS_OPEN))
    }

    fn check_queue_hours(&self) -> Result<(), String> {
        for q in &self.queues {
            if let Some(h) = &q.hours {
                if self.hours(h).is_none() {
                    return Err(format!("queue {:?}: no hours named {h:?}", q.name));
                }
            }
        }
        Ok(())
    }

    /// A queue by name, id or ARN.
    pub fn queue(&self, key: &str) -> Option<&QueueConfig> {
        self.queues.iter().find(|q| q.name == key || q.id == key || self.queue_arn(q) == key)
    }

    /// Adds (or replaces, by username) an agent; its queues must exist.
    pub fn add_agent(&mut self, a: &AgentConfig) -> Result<(), String> {
        let id = a.id.clone().unwrap_or_else(|| a.username.clone());
        let arn = a.arn.clone().unwrap_or_else(|| format!("{}/agent/{id}", self.instance_arn));
        let mut queue_ids = Vec::new();
        for key in &a.queues {
            let q = self.queue(key).ok_or_else(|| format!("agent {:?}: no queue {key:?}", a.username))?;
            queue_ids.push(q.id.clone());
        }
        let (first, last) = a.username.split_once(['.', ' ']).unwrap_or((&a.username, ""));
        let agent = Agent {
            username: a.username.clone(),
            id,
            arn,
            first_name: a.first_name.clone().unwrap_or_else(|| first.to_string()),
            last_name: a.last_name.clone().unwrap_or_else(|| last.to_string()),
            queue_ids,
            routing_profile: a.routing_profile.clone().unwrap_or_else(|| "Basic Routing Profile".into()),
        };
        self.agents.retain(|x| x.username != agent.username && x.id != agent.id);
        self.agents.push(agent);
        Ok(())
    }

    /// An agent by username, id or ARN.
    pub fn agent(&self, key: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.username == key || a.id == key || a.arn == key)
    }

    /// Whether `agent` takes contacts from the queue `queue_id`.
    pub fn serves(&self, agent: &Agent, queue_id: &str) -> bool {
        agent.queue_ids.is_empty() || agent.queue_ids.iter().any(|q| q == queue_id)
    }

    /// Adds (or replaces, by name) a quick connect; its target and flow must exist.
    pub fn add_quick_connect(&mut self, qc: QuickConnect) -> Result<(), String> {
        let ok = match qc.kind {
            QuickConnectType::Queue => self.queue(&qc.target).is_some(),
            QuickConnectType::Agent => self.agent(&qc.target).is_some(),
            QuickConnectType::Phone => voxbridge_flows::phone::is_e164(&qc.target),
        };
        if !ok {
            return Err(format!("quick connect {:?}: no {:?} target {:?}", qc.name, qc.kind, qc.target));
        }
        if let Some(f) = &qc.flow {
            if self.get(f).is_none() {
                return Err(format!("quick connect {:?}: no flow named {f:?}", qc.name));
            }
        }
        self.quick_connects.retain(|x| x.name != qc.name);
        self.quick_connects.push(qc);
        Ok(())
    }

    pub fn quick_connect(&self, name: &str) -> Option<&QuickConnect> {
        self.quick_connects.iter().find(|q| q.name == name)
    }

    /// Adds a flow under `name` (and `id`, default the name). Names and ids must be unique.
    pub fn add(
        &mut self,
        name: String,
        id: Option<String>,
        file: Option<PathBuf>,
        flow: Flow,
    ) -> Result<(), String> {
        let id = id.unwrap_or_else(|| name.clone());
        let arn = format!("{}/contact-flow/{id}", self.instance_arn);
        for key in [&name, &id, &arn] {
            if self.by_key.contains_key(key.as_str()) {
                return Err(format!("two flows are named {key:?}"));
            }
        }
        let index = self.flows.len();
        for key in [&name, &id, &arn] {
            self.by_key.insert(key.clone(), index);
        }
        self.flows.push(Arc::new(LibraryFlow { name, id, arn, file, flow }));
        Ok(())
    }

    /// Binds a phone number (any format; stored as `+` and digits) to a flow.
    pub fn bind_number(&mut self, number: &str, flow: &str) -> Result<(), String> {
        let index =
            *self.by_key.get(flow).ok_or_else(|| format!("number {number}: no flow named {flow:?}"))?;
        let normalized =
            normalize_number(number).ok_or_else(|| format!("{number:?} is not a phone number"))?;
        self.numbers.insert(normalized, index);
        Ok(())
    }

    pub fn add_queue(&mut self, queue: QueueConfig) {
        self.queues.retain(|q| q.id != queue.id);
        self.queues.push(queue);
    }

    /// A flow by name, id, ARN, or an ARN ending in `/contact-flow/<id>` of another instance
    /// (the sample flows name their subflows with the ARNs of the instance they came from).
    pub fn get(&self, key: &str) -> Option<Arc<LibraryFlow>> {
        if let Some(&i) = self.by_key.get(key) {
            return self.flows.get(i).cloned();
        }
        let last = key.rsplit('/').next().unwrap_or(key);
        if key.contains(":contact-flow/") || key.contains("/contact-flow/") {
            return self.by_key.get(last).and_then(|&i| self.flows.get(i).cloned());
        }
        None
    }

    /// The flow a call to `number` starts in.
    pub fn flow_for_number(&self, number: &str) -> Option<Arc<LibraryFlow>> {
        let n = normalize_number(number)?;
        self.numbers.get(&n).and_then(|&i| self.flows.get(i).cloned())
    }

    pub fn flows(&self) -> impl Iterator<Item = &Arc<LibraryFlow>> {
        self.flows.iter()
    }

    /// `(number, flow name)` of every bound number.
    pub fn numbers(&self) -> Vec<(String, String)> {
        self.numbers.iter().map(|(n, &i)| (n.clone(), self.flows[i].name.clone())).collect()
    }

    /// The ARN of a configured queue.
    pub fn queue_arn(&self, q: &QueueConfig) -> String {
        q.arn.clone().unwrap_or_else(|| format!("{}/queue/{}", self.instance_arn, q.id))
    }
}

/// `"09:00-17:30"` → minutes `(540, 1050)`; `24:00` is the end of the day.
fn parse_range(text: &str) -> Option<(u16, u16)> {
    let (a, b) = text.trim().split_once('-')?;
    let minute = |t: &str| -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
        (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
    };
    let (start, end) = (minute(a)?, minute(b)?);
    (start != end && start < 1440).then_some((start, end))
}

/// The flow name a file gets by default: `Sample_SCV_Inbound_Flow.json` → `Sample SCV Inbound Flow`.
pub fn default_name(file_name: &str) -> String {
    file_name.strip_suffix(".json").unwrap_or(file_name).replace('_', " ")
}

/// `+` and the digits of a phone number (`+1 (555) 010-0100` → `+15550100100`); `None`
/// without digits.
pub fn normalize_number(number: &str) -> Option<String> {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    Some(format!("+{digits}"))
}

/// Validates a flow with function ARNs resolved through `functions`: unknown functions are
/// warnings, as are flows a `TransferToFlow` names but the library lacks (when given).
pub fn validate_flow(flow: &Flow, functions: &Registry, library: Option<&FlowLibrary>) -> Vec<Diagnostic> {
    let known: HashSet<String> = flow
        .actions
        .iter()
        .filter(|a| a.kind == ActionKind::InvokeLambdaFunction)
        .filter_map(|a| a.param_str("LambdaFunctionARN"))
        .filter(|arn| functions.is_known(arn))
        .map(str::to_string)
        .collect();
    let mut out = voxbridge_flows::validate(flow, &known);
    if let Some(lib) = library {
        for a in flow.actions.iter().filter(|a| a.kind == ActionKind::TransferToFlow) {
            if let Some(target) = a.param_str("ContactFlowId") {
                if !target.starts_with("$.") && lib.get(target).is_none() {
                    out.push(Diagnostic {
                        severity: Severity::Warning,
                        action: Some(a.identifier.clone()),
                        message: format!("the flow {target:?} is not in the library"),
                    });
                }
            }
        }
    }
    out
}
