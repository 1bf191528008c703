//! Running an automation, sans IO: a [`Run`] walks the steps and hands each effect (a
//! query, a write, a message, an event) to the caller, who carries it out and feeds the
//! result back.

use std::fmt;

use serde_json::{Map, Value as Json};

use crate::definition::{Automation, Step, TriggerEvent};
use crate::formula::{self, EvalError, Formula, Value};

/// The most effects one run may ask for; definitions have no loops, so this only bounds
/// what a very long definition can do.
pub const MAX_EFFECTS: usize = 200;

/// What the caller is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Run the query; answer [`Feedback::Found`] with its first record.
    Find { soql: String },
    /// Create the record; answer [`Feedback::Created`] with its id.
    Create { object: String, fields: Map<String, Json> },
    /// Update the record with id `id`; answer [`Feedback::Done`].
    Update { id: String, fields: Map<String, Json> },
    /// Queue the messaging template for the recipient; answer [`Feedback::Done`].
    Notify { name: String, channel: String, template: String, recipient: String, context: String },
    /// Publish the platform event; answer [`Feedback::Done`].
    Publish { event: String, fields: Map<String, Json> },
}

/// The result of an effect.
#[derive(Debug, Clone, PartialEq)]
pub enum Feedback {
    Found(Option<Map<String, Json>>),
    Created { id: String },
    Done,
}

/// Why a run stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunError(pub String);

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Automation {
    /// Whether the automation listens to `event` on `object`.
    pub fn listens(&self, object: &str, event: TriggerEvent) -> bool {
        self.object.eq_ignore_ascii_case(object) && self.events.contains(&event)
    }

    /// Starts a run for the record (its fields, `Id` included) when the trigger's condition
    /// holds for it; `Ok(None)` when it does not.
    pub fn start(&self, record: Map<String, Json>) -> Result<Option<Run<'_>>, RunError> {
        let run = Run {
            automation: self,
            record,
            vars: Vec::new(),
            stack: vec![(&self.steps, 0)],
            awaiting: None,
            effects: 0,
            trace: Vec::new(),
        };
        if let Some(c) = &self.condition {
            let holds = run.eval(c).map_err(|e| RunError(format!("trigger.condition: {e}")))?;
            if !matches!(holds, Value::Bool(true)) {
                return Ok(None);
            }
        }
        Ok(Some(run))
    }
}

/// A run in progress.
pub struct Run<'a> {
    automation: &'a Automation,
    record: Map<String, Json>,
    /// Records found or created, by variable name (later ones shadow earlier ones).
    vars: Vec<(String, Map<String, Json>)>,
    stack: Vec<(&'a [Step], usize)>,
    /// The variable the pending effect's result goes to, and the fields it wrote.
    awaiting: Option<(Option<String>, Map<String, Json>)>,
    effects: usize,
    trace: Vec<String>,
}

fn field<'m>(map: &'m Map<String, Json>, name: &str) -> Option<&'m Json> {
    map.get(name).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

impl<'a> Run<'a> {
    /// The decisions taken so far, as `Decision → Outcome`.
    pub fn trace(&self) -> &[String] {
        &self.trace
    }

    fn var(&self, name: &str) -> Option<&Map<String, Json>> {
        self.vars.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, m)| m)
    }

    fn lookup(&self, name: &[String], depth: usize) -> Result<Value, EvalError> {
        let Some(first) = name.first() else { return Ok(Value::Null) };
        if first == "$Record" {
            return Ok(name
                .get(1)
                .and_then(|f| field(&self.record, f))
                .map(Value::from_json)
                .unwrap_or(Value::Null));
        }
        if name.len() == 1 {
            if let Some((_, f)) = self.automation.formulas.iter().find(|(n, _)| n.eq_ignore_ascii_case(first))
            {
                if depth > self.automation.formulas.len() {
                    return Err(EvalError(format!("the formula `{first}` uses itself")));
                }
                return formula::eval(&f.expr, &mut |n: &[String]| self.lookup(n, depth + 1));
            }
        }
        if let Some(var) = self.var(first) {
            let f = name.get(1).map(String::as_str).unwrap_or("Id");
            return Ok(field(var, f).map(Value::from_json).unwrap_or(Value::Null));
        }
        // A variable whose find or create did not run (another branch) is null.
        if name.len() > 1 {
            return Ok(Value::Null);
        }
        Ok(field(&self.record, first).map(Value::from_json).unwrap_or(Value::Null))
    }

    fn eval(&self, f: &Formula) -> Result<Value, EvalError> {
        formula::eval(&f.expr, &mut |n: &[String]| self.lookup(n, 0))
    }

    fn text(&self, f: &Formula, what: &str) -> Result<String, RunError> {
        self.eval(f).map(|v| v.to_text()).map_err(|e| RunError(format!("{what}: {e}")))
    }

    fn fields(&self, fields: &[(String, Formula)], what: &str) -> Result<Map<String, Json>, RunError> {
        let mut out = Map::new();
        for (name, f) in fields {
            let v = self.eval(f).map_err(|e| RunError(format!("{what}.{name}: {e}")))?;
            out.insert(name.clone(), v.to_json());
        }
        Ok(out)
    }

    /// A SOQL literal for a bound value.
    fn literal(v: &Value) -> String {
        match v {
            Value::Null => "null".to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Number(_) => v.to_text(),
            Value::Text(t) => format!("'{}'", t.replace('\\', "\\\\").replace('\'', "\\'")),
        }
    }

    /// Renders a messaging template's text: each `{!formula}` becomes its value; one that
    /// does not parse or evaluate is left as written.
    pub fn render(&self, template: &str) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("{!") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                return out;
            };
            let inner = &after[..end];
            match formula::parse(inner).ok().and_then(|f| self.eval(&f).ok()) {
                Some(v) => out.push_str(&v.to_text()),
                None => out.push_str(&rest[start..start + 2 + end + 1]),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Feeds the result of the last effect (`None` at the start) and returns the next
    /// effect, or `Ok(None)` when the run is over.
    pub fn next(&mut self, feedback: Option<Feedback>) -> Result<Option<Effect>, RunError> {
        if let Some((var, written)) = self.awaiting.take() {
            match (var, feedback) {
                (Some(var), Some(Feedback::Found(record))) => {
                    // Not found: the variable is there and every field of it is null.
                    self.vars.push((var, record.unwrap_or_default()));
                }
                (Some(var), Some(Feedback::Created { id })) => {
                    let mut record = written;
                    record.insert("Id".into(), Json::String(id));
                    self.vars.push((var, record));
                }
                (None, _) => {}
                (Some(var), other) => {
                    return Err(RunError(format!("`{var}` expected a record, got {other:?}")));
                }
            }
        }
        loop {
            let Some((steps, index)) = self.stack.last_mut() else { return Ok(None) };
            let steps: &'a [Step] = steps;
            let Some(step) = steps.get(*index) else {
                self.stack.pop();
                continue;
            };
            *index += 1;
            if let Some(effect) = self.step(step)? {
                self.effects += 1;
                if self.effects > MAX_EFFECTS {
                    return Err(RunError(format!("the run asked for more than {MAX_EFFECTS} effects")));
                }
                return Ok(Some(effect));
            }
        }
    }

    fn step(&mut self, step: &'a Step) -> Result<Option<Effect>, RunError> {
        Ok(Some(match step {
            Step::Find { var, soql } => {
                let mut failed = None;
                let bound = crate::definition::bind_soql(soql, &mut |name| {
                    let segments: Vec<String> = name.split('.').map(str::to_string).collect();
                    match self.lookup(&segments, 0) {
                        Ok(v) => Some(Self::literal(&v)),
                        Err(e) => {
                            failed = Some(format!("find {var}: :{name}: {e}"));
                            None
                        }
                    }
                });
                if let Some(why) = failed {
                    return Err(RunError(why));
                }
                self.awaiting = Some((Some(var.clone()), Map::new()));
                Effect::Find { soql: bound }
            }
            Step::Create { var, object, fields } => {
                let fields = self.fields(fields, &format!("create {object}"))?;
                self.awaiting = Some((var.clone(), fields.clone()));
                Effect::Create { object: object.clone(), fields }
            }
            Step::Update { record, fields } => {
                let id = self.text(record, "update.record")?;
                if id.is_empty() {
                    return Err(RunError(format!("update.record: `{}` is blank", record.text)));
                }
                Effect::Update { id, fields: self.fields(fields, "update")? }
            }
            Step::Notify { name, channel, template, recipient, context } => Effect::Notify {
                name: name.clone(),
                channel: channel.clone(),
                template: template.clone(),
                recipient: self.text(recipient, &format!("{name}.recipient"))?,
                context: self.text(context, &format!("{name}.context"))?,
            },
            Step::Publish { event, fields } => Effect::Publish {
                event: event.clone(),
                fields: self.fields(fields, &format!("publish {event}"))?,
            },
            Step::Decision { name, outcomes, default } => {
                let mut chosen: &'a [Step] = default;
                let mut label = "default";
                for o in outcomes {
                    let v = self.eval(&o.when).map_err(|e| RunError(format!("{name}.{}: {e}", o.name)))?;
                    if matches!(v, Value::Bool(true)) {
                        chosen = &o.steps;
                        label = &o.name;
                        break;
                    }
                }
                self.trace.push(format!("{name} → {label}"));
                self.stack.push((chosen, 0));
                return Ok(None);
            }
        }))
    }
}
