//! Reading flow documents: console exports as they are, the `DescribeContactFlow` wrapper
//! (`{"ContactFlow":{"Content":"<json string>"}}`) and the bare `{"Content":"…"}` form.
//!
//! The parser only checks the shape it needs to build the model (objects where objects are
//! expected, identifiers that are strings, …); meaning is the validator's job, so a flow with a
//! dangling `NextAction` still parses and gets a precise diagnostic later.

use serde_json::{Map, Value};

use crate::model::{
    Action, ActionKind, Condition, ConditionBranch, ErrorBranch, Flow, Operator, Transitions, FLOW_VERSION,
};
use crate::params::Params;

/// Deep JSON is refused before it can exhaust the stack of anything that walks it.
const MAX_DEPTH: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error(
        "this is a legacy Amazon Connect flow in the `modules` format (before Version 2019-10-30); \
         open it in the Amazon Connect console and export it again in the 2019-10-30 flow language"
    )]
    LegacyModulesFormat,
    #[error("unsupported flow language Version {0:?}; only \"2019-10-30\" is supported")]
    UnsupportedVersion(String),
    #[error("{path}: {message}")]
    Shape { path: String, message: String },
}

fn shape(path: impl Into<String>, message: impl Into<String>) -> ParseError {
    ParseError::Shape { path: path.into(), message: message.into() }
}

/// Parses flow JSON text (an export, or a `ContactFlow.Content` wrapper).
pub fn parse_flow(text: &str) -> Result<Flow, ParseError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ParseError::Json(e.to_string()))?;
    parse_flow_value(&value)
}

/// Parses an already-decoded JSON document.
pub fn parse_flow_value(value: &Value) -> Result<Flow, ParseError> {
    if depth(value) > MAX_DEPTH {
        return Err(shape("$", format!("the document nests deeper than {MAX_DEPTH} levels")));
    }
    let obj = value.as_object().ok_or_else(|| shape("$", "a flow must be a JSON object"))?;
    // The wrappers carry the flow as a JSON *string* in `Content`.
    if let Some(wrapper) = obj.get("ContactFlow") {
        let content =
            wrapper.get("Content").ok_or_else(|| shape("ContactFlow", "the wrapper has no `Content`"))?;
        return parse_content(content, "ContactFlow.Content");
    }
    if !obj.contains_key("Actions") && obj.contains_key("Content") {
        return parse_content(&obj["Content"], "Content");
    }
    if obj.contains_key("modules") {
        return Err(ParseError::LegacyModulesFormat);
    }
    parse_document(obj)
}

fn parse_content(content: &Value, path: &str) -> Result<Flow, ParseError> {
    match content {
        Value::String(s) => {
            let inner: Value =
                serde_json::from_str(s).map_err(|e| ParseError::Json(format!("{path}: {e}")))?;
            match inner.as_object() {
                Some(o) if o.contains_key("modules") => Err(ParseError::LegacyModulesFormat),
                Some(o) if depth(&inner) <= MAX_DEPTH => parse_document(o),
                Some(_) => Err(shape(path, format!("the document nests deeper than {MAX_DEPTH} levels"))),
                None => Err(shape(path, "the content must be a JSON object")),
            }
        }
        Value::Object(o) => parse_document(o),
        _ => Err(shape(path, "expected the flow as a JSON string")),
    }
}

fn parse_document(obj: &Map<String, Value>) -> Result<Flow, ParseError> {
    let version = req_str(obj, "Version", "$")?;
    if version != FLOW_VERSION {
        return Err(ParseError::UnsupportedVersion(version));
    }
    let start_action = req_str(obj, "StartAction", "$")?;
    let metadata = obj.get("Metadata").cloned().unwrap_or(Value::Null);
    let list = obj
        .get("Actions")
        .ok_or_else(|| shape("$", "missing `Actions`"))?
        .as_array()
        .ok_or_else(|| shape("Actions", "expected an array"))?;
    let actions = list.iter().enumerate().map(|(i, a)| parse_action(a, i)).collect::<Result<Vec<_>, _>>()?;
    let extra = obj
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "Version" | "StartAction" | "Metadata" | "Actions"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // An absent `Metadata` is read as `null` and written back absent (see `Flow::to_json`).
    Ok(Flow::new(version, start_action, actions, metadata, extra))
}

fn parse_action(v: &Value, i: usize) -> Result<Action, ParseError> {
    let path = format!("Actions[{i}]");
    let obj = v.as_object().ok_or_else(|| shape(&path, "an action must be a JSON object"))?;
    let identifier = req_str(obj, "Identifier", &path)?;
    let kind = ActionKind::parse(&req_str(obj, "Type", &path)?);
    let parameters = obj.get("Parameters").cloned();
    if let Some(p) = &parameters {
        if !p.is_object() {
            return Err(shape(format!("{path}.Parameters"), "expected an object"));
        }
    }
    let transitions = match obj.get("Transitions") {
        Some(t) => parse_transitions(t, &format!("{path}.Transitions"))?,
        None => return Err(shape(&path, "missing `Transitions`")),
    };
    let extra = obj
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "Identifier" | "Type" | "Parameters" | "Transitions"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let params = Params::from_raw(&kind, parameters.as_ref());
    Ok(Action { identifier, kind, parameters, params, transitions, extra })
}

fn parse_transitions(v: &Value, path: &str) -> Result<Transitions, ParseError> {
    let obj = v.as_object().ok_or_else(|| shape(path, "expected an object"))?;
    let next_action = opt_str(obj, "NextAction", path)?;
    let errors = match obj.get("Errors") {
        None => None,
        Some(Value::Array(list)) => Some(
            list.iter()
                .enumerate()
                .map(|(i, e)| {
                    let p = format!("{path}.Errors[{i}]");
                    let o = e.as_object().ok_or_else(|| shape(&p, "expected an object"))?;
                    Ok(ErrorBranch {
                        next_action: req_str(o, "NextAction", &p)?,
                        error_type: req_str(o, "ErrorType", &p)?,
                    })
                })
                .collect::<Result<Vec<_>, ParseError>>()?,
        ),
        Some(_) => return Err(shape(format!("{path}.Errors"), "expected an array")),
    };
    let conditions = match obj.get("Conditions") {
        None => None,
        Some(Value::Array(list)) => Some(
            list.iter()
                .enumerate()
                .map(|(i, c)| {
                    let p = format!("{path}.Conditions[{i}]");
                    let o = c.as_object().ok_or_else(|| shape(&p, "expected an object"))?;
                    let next_action = req_str(o, "NextAction", &p)?;
                    let cp = format!("{p}.Condition");
                    let cond = o
                        .get("Condition")
                        .and_then(Value::as_object)
                        .ok_or_else(|| shape(&cp, "expected an object"))?;
                    let operator = Operator::parse(&req_str(cond, "Operator", &cp)?);
                    let operands = match cond.get("Operands") {
                        Some(Value::Array(ops)) => ops
                            .iter()
                            .map(|o| {
                                crate::params::scalar(Some(o)).ok_or_else(|| {
                                    shape(format!("{cp}.Operands"), "operands must be strings")
                                })
                            })
                            .collect::<Result<Vec<_>, _>>()?,
                        _ => return Err(shape(format!("{cp}.Operands"), "expected an array")),
                    };
                    Ok(ConditionBranch { next_action, condition: Condition { operator, operands } })
                })
                .collect::<Result<Vec<_>, ParseError>>()?,
        ),
        Some(_) => return Err(shape(format!("{path}.Conditions"), "expected an array")),
    };
    let extra = obj
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "NextAction" | "Errors" | "Conditions"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Transitions { next_action, errors, conditions, extra })
}

fn req_str(obj: &Map<String, Value>, key: &str, path: &str) -> Result<String, ParseError> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(shape(format!("{path}.{key}"), "expected a string")),
        None => Err(shape(path, format!("missing `{key}`"))),
    }
}

fn opt_str(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, ParseError> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(shape(format!("{path}.{key}"), "expected a string")),
        None => Ok(None),
    }
}

/// Nesting depth, computed with an explicit stack so hostile input cannot overflow ours.
fn depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        if d > MAX_DEPTH {
            return d;
        }
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
            Value::Object(o) => stack.extend(o.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    max
}
