//! The flow library and the telephony configuration that comes with it: flows by name, id
//! or ARN (parsed once), phone numbers bound to flows, telephony-side queues, and function
//! bindings.
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
use voxbridge_flows::{ActionKind, Diagnostic, Flow, Severity};
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

/// A telephony-side queue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
        }
    }

    /// Loads every `*.json` flow of `dir` and its `flows.toml`, if any.
    pub fn load_dir(dir: &Path) -> Result<FlowLibrary, LibraryError> {
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
        lib.queues = config.queues;
        lib.functions = config.functions;
        Ok(lib)
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
