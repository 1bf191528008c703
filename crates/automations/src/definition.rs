//! Automation definitions: the JSON an `Automation` record's `Definition` holds, checked
//! into an [`Automation`] with every mistake reported at its JSON path.

use std::collections::BTreeSet;
use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value as Json};

use crate::formula::{self, Formula};

/// A mistake in a definition, at a JSON path such as `steps[0].decision.outcomes[1].when`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// What a trigger fires on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerEvent {
    /// A record of the object was created.
    Create,
    /// A record of the object was updated.
    Update,
    /// A platform event of that name was published.
    Publish,
}

impl TriggerEvent {
    fn parse(s: &str) -> Option<TriggerEvent> {
        match s {
            "create" => Some(TriggerEvent::Create),
            "update" => Some(TriggerEvent::Update),
            "publish" => Some(TriggerEvent::Publish),
            _ => None,
        }
    }
}

/// A checked automation.
#[derive(Debug, Clone, PartialEq)]
pub struct Automation {
    pub name: String,
    pub label: String,
    pub object: String,
    pub events: Vec<TriggerEvent>,
    pub condition: Option<Formula>,
    /// Named formulas, in definition order; each may use the ones before it.
    pub formulas: Vec<(String, Formula)>,
    pub steps: Vec<Step>,
}

/// One step of an automation.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Runs a SOQL query (`:name` binds a value) and keeps its first record as `var`.
    Find { var: String, soql: String },
    /// Creates a record; its id (and fields) are kept as `var`.
    Create { var: Option<String>, object: String, fields: Vec<(String, Formula)> },
    /// Updates the record whose id `record` computes.
    Update { record: Formula, fields: Vec<(String, Formula)> },
    /// Sends a messaging template to a recipient through a channel.
    Notify { name: String, channel: String, template: String, recipient: Formula, context: Formula },
    /// Publishes a platform event.
    Publish { event: String, fields: Vec<(String, Formula)> },
    /// Runs the steps of the first outcome whose condition holds, else the default ones.
    Decision { name: String, outcomes: Vec<Outcome>, default: Vec<Step> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub name: String,
    pub when: Formula,
    pub steps: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAutomation {
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    trigger: RawTrigger,
    #[serde(default)]
    formulas: Map<String, Json>,
    steps: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrigger {
    object: String,
    on: Vec<String>,
    #[serde(default)]
    condition: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawStep {
    Find(RawFind),
    Create(RawCreate),
    Update(RawUpdate),
    Notify(RawNotify),
    Publish(RawPublish),
    Decision(RawDecision),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFind {
    #[serde(rename = "as")]
    var: String,
    soql: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCreate {
    #[serde(rename = "as", default)]
    var: Option<String>,
    object: String,
    fields: Map<String, Json>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpdate {
    record: String,
    fields: Map<String, Json>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    #[serde(default)]
    name: Option<String>,
    channel: String,
    template: String,
    recipient: String,
    #[serde(default)]
    context: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublish {
    event: String,
    fields: Map<String, Json>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDecision {
    name: String,
    outcomes: Vec<RawOutcome>,
    #[serde(default)]
    default: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutcome {
    name: String,
    when: String,
    steps: Vec<RawStep>,
}

/// What names mean while checking: formulas and variables defined so far.
struct Checker {
    errors: Vec<DefinitionError>,
    formulas: Vec<String>,
    vars: BTreeSet<String>,
}

fn is_api_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 80
}

impl Checker {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(DefinitionError { path: path.to_string(), message: message.into() });
    }

    fn api_name(&mut self, path: &str, what: &str, s: &str) {
        if !is_api_name(s) {
            self.error(
                path,
                format!("`{s}` is not a valid {what} (letters, digits and _, starting with a letter)"),
            );
        }
    }

    /// Parses a formula and checks the names it reads.
    fn formula(&mut self, path: &str, text: &str) -> Option<Formula> {
        let f = match formula::parse(text) {
            Ok(f) => f,
            Err(e) => {
                self.error(path, format!("{e} in `{text}`"));
                return None;
            }
        };
        for name in f.names() {
            if let Some(why) = self.unknown(name) {
                self.error(path, why);
            }
        }
        Some(f)
    }

    /// Why a name cannot be read, if it cannot.
    fn unknown(&self, name: &[String]) -> Option<String> {
        let first = name.first()?;
        let full = name.join(".");
        if first.starts_with('$') {
            return match (first.as_str(), name.len()) {
                ("$Record", 2) => None,
                ("$Record", _) => Some(format!("`{full}`: write a field of the record as $Record.Field")),
                _ => Some(format!("`{full}`: the only global is $Record")),
            };
        }
        if name.len() == 1 {
            return None; // a formula, a variable (its Id) or a field of the record
        }
        if self.vars.contains(first) {
            return (name.len() > 2).then(|| format!("`{full}`: a variable has fields, not relationships"));
        }
        if self.formulas.contains(first) {
            return Some(format!("`{full}`: the formula `{first}` is a value and has no fields"));
        }
        Some(format!("`{full}`: `{first}` is not a variable defined by an earlier find or create"))
    }

    fn fields(&mut self, path: &str, fields: &Map<String, Json>) -> Vec<(String, Formula)> {
        let mut out = Vec::new();
        if fields.is_empty() {
            self.error(path, "no fields");
        }
        for (name, value) in fields {
            let p = format!("{path}.{name}");
            self.api_name(&p, "field name", name);
            let Some(text) = value.as_str() else {
                self.error(&p, format!("a field's value is a formula in a string, got {value}"));
                continue;
            };
            if let Some(f) = self.formula(&p, text) {
                out.push((name.clone(), f));
            }
        }
        out
    }

    fn define(&mut self, path: &str, var: &str) {
        self.api_name(path, "variable name", var);
        if self.formulas.iter().any(|f| f == var) {
            self.error(path, format!("`{var}` is already the name of a formula"));
        }
        self.vars.insert(var.to_string());
    }

    fn steps(&mut self, path: &str, raw: Vec<RawStep>) -> Vec<Step> {
        let mut out = Vec::new();
        for (i, step) in raw.into_iter().enumerate() {
            if let Some(s) = self.step(&format!("{path}[{i}]"), step) {
                out.push(s);
            }
        }
        out
    }

    fn step(&mut self, path: &str, raw: RawStep) -> Option<Step> {
        Some(match raw {
            RawStep::Find(f) => {
                let p = format!("{path}.find");
                self.soql(&format!("{p}.soql"), &f.soql);
                self.define(&format!("{p}.as"), &f.var);
                Step::Find { var: f.var, soql: f.soql }
            }
            RawStep::Create(c) => {
                let p = format!("{path}.create");
                self.api_name(&format!("{p}.object"), "object name", &c.object);
                let fields = self.fields(&format!("{p}.fields"), &c.fields);
                if let Some(v) = &c.var {
                    self.define(&format!("{p}.as"), v);
                }
                Step::Create { var: c.var, object: c.object, fields }
            }
            RawStep::Update(u) => {
                let p = format!("{path}.update");
                let record = self.formula(&format!("{p}.record"), &u.record);
                let fields = self.fields(&format!("{p}.fields"), &u.fields);
                Step::Update { record: record?, fields }
            }
            RawStep::Notify(n) => {
                let p = format!("{path}.notify");
                if n.channel.trim().is_empty() {
                    self.error(&format!("{p}.channel"), "names no messaging channel");
                }
                if n.template.trim().is_empty() {
                    self.error(&format!("{p}.template"), "names no messaging template");
                }
                let recipient = self.formula(&format!("{p}.recipient"), &n.recipient);
                let context =
                    self.formula(&format!("{p}.context"), n.context.as_deref().unwrap_or("$Record.Id"));
                Step::Notify {
                    name: n.name.unwrap_or_else(|| n.template.clone()),
                    channel: n.channel,
                    template: n.template,
                    recipient: recipient?,
                    context: context?,
                }
            }
            RawStep::Publish(e) => {
                let p = format!("{path}.publish");
                self.api_name(&format!("{p}.event"), "platform event name", &e.event);
                let fields = self.fields(&format!("{p}.fields"), &e.fields);
                Step::Publish { event: e.event, fields }
            }
            RawStep::Decision(d) => {
                let p = format!("{path}.decision");
                if d.name.trim().is_empty() {
                    self.error(&format!("{p}.name"), "a decision needs a name");
                }
                if d.outcomes.is_empty() {
                    self.error(&format!("{p}.outcomes"), "a decision needs at least one outcome");
                }
                let mut outcomes = Vec::new();
                for (i, o) in d.outcomes.into_iter().enumerate() {
                    let op = format!("{p}.outcomes[{i}]");
                    let when = self.formula(&format!("{op}.when"), &o.when);
                    // Variables an outcome defines stay visible after it, where they are null
                    // when another branch ran; that is what ISBLANK() is for.
                    let steps = self.steps(&format!("{op}.steps"), o.steps);
                    if let Some(when) = when {
                        outcomes.push(Outcome { name: o.name, when, steps });
                    }
                }
                let default = self.steps(&format!("{p}.default"), d.default);
                Step::Decision { name: d.name, outcomes, default }
            }
        })
    }

    /// Checks a find's SOQL: its `:name` binds read known names, and with them replaced
    /// it parses.
    fn soql(&mut self, path: &str, soql: &str) {
        let mut names = Vec::new();
        // A literal as long as the bind keeps the columns of errors where they are in the text.
        let probe = bind_soql(soql, &mut |name| {
            names.push(name.to_string());
            Some(format!("'{}'", "x".repeat(name.chars().count().saturating_sub(1))))
        });
        for n in names {
            let segments: Vec<String> = n.split('.').map(str::to_string).collect();
            if let Some(why) = self.unknown(&segments) {
                self.error(path, format!("bind :{n}: {why}"));
            }
        }
        if let Err(e) = voxbridge_soql::parse_query(&probe) {
            let at =
                e.position.map(|p| format!("line {}, column {}: ", p.line, p.column)).unwrap_or_default();
            self.error(path, format!("not a valid query: {at}{}", e.detail));
        }
    }
}

/// `soql` with every `:name` outside quotes replaced by `value(name)`; a name without a value
/// becomes `null`.
pub fn bind_soql(soql: &str, value: &mut dyn FnMut(&str) -> Option<String>) -> String {
    let chars: Vec<char> = soql.chars().collect();
    let mut out = String::with_capacity(soql.len());
    let mut quoted = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if quoted {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.get(i + 1) {
                    out.push(*n);
                    i += 1;
                }
            } else if c == '\'' {
                quoted = false;
            }
            i += 1;
            continue;
        }
        if c == '\'' {
            quoted = true;
        }
        let starts_name = chars.get(i + 1).is_some_and(|n| n.is_ascii_alphabetic() || *n == '_' || *n == '$');
        if c == ':' && starts_name {
            let mut j = i + 1;
            while j < chars.len() && (chars[j].is_ascii_alphanumeric() || matches!(chars[j], '_' | '.' | '$'))
            {
                j += 1;
            }
            let name: String = chars[i + 1..j].iter().collect();
            out.push_str(&value(&name).unwrap_or_else(|| "null".to_string()));
            i = j;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

fn json_error(e: serde_path_to_error::Error<serde_json::Error>) -> DefinitionError {
    let path = e.path().to_string();
    let message = e.inner().to_string();
    // serde_json appends ` at line L column C`, meaningless for a value already parsed.
    let message = match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message,
    };
    DefinitionError { path: if path == "." { String::new() } else { path }, message }
}

/// Checks the definition of automation `name`; every mistake found is returned.
pub fn parse(name: &str, definition: &Json) -> Result<Automation, Vec<DefinitionError>> {
    let raw: RawAutomation = serde_path_to_error::deserialize(definition).map_err(|e| vec![json_error(e)])?;
    let mut c = Checker { errors: Vec::new(), formulas: Vec::new(), vars: BTreeSet::new() };
    if !is_api_name(name) {
        c.error(
            "",
            format!(
                "`{name}` is not a valid automation name (letters, digits and _, starting with a letter)"
            ),
        );
    }
    c.api_name("trigger.object", "object name", &raw.trigger.object);
    let mut events = Vec::new();
    if raw.trigger.on.is_empty() {
        c.error("trigger.on", "lists no events; use create, update or publish");
    }
    for (i, e) in raw.trigger.on.iter().enumerate() {
        match TriggerEvent::parse(e) {
            Some(ev) if !events.contains(&ev) => events.push(ev),
            Some(_) => c.error(&format!("trigger.on[{i}]"), format!("`{e}` is listed twice")),
            None => c.error(
                &format!("trigger.on[{i}]"),
                format!("unknown event `{e}`; use create, update or publish"),
            ),
        }
    }
    if events.contains(&TriggerEvent::Publish) && events.len() > 1 {
        c.error("trigger.on", "publish is for platform events, which are never updated; list it alone");
    }
    // Formulas may use the ones before them only, so they never loop.
    let mut formulas = Vec::new();
    for (fname, value) in &raw.formulas {
        let p = format!("formulas.{fname}");
        c.api_name(&p, "formula name", fname);
        let Some(text) = value.as_str() else {
            c.error(&p, format!("a formula is a string, got {value}"));
            continue;
        };
        let later: Vec<&String> = raw.formulas.keys().skip_while(|k| *k != fname).collect();
        if let Ok(f) = formula::parse(text) {
            for n in f.names() {
                if n.len() == 1 && later.contains(&&n[0]) {
                    c.error(&p, format!("uses `{}`, which is defined after it (or is itself)", n[0]));
                }
            }
        }
        if let Some(f) = c.formula(&p, text) {
            formulas.push((fname.clone(), f));
        }
        c.formulas.push(fname.clone());
    }
    let condition = raw.trigger.condition.as_deref().and_then(|t| c.formula("trigger.condition", t));
    if raw.steps.is_empty() {
        c.error("steps", "an automation needs at least one step");
    }
    let steps = c.steps("steps", raw.steps);
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    Ok(Automation {
        name: name.to_string(),
        label: raw.label.unwrap_or_else(|| name.to_string()),
        object: raw.trigger.object,
        events,
        condition,
        formulas,
        steps,
    })
}
