//! EventBridge event patterns: parse (with errors naming the path and the reason) and match.
//!
//! A pattern mirrors the event's structure and names only the fields it tests; several
//! fields are AND, the values of a field's array are OR, `"$or": [patterns…]` is OR of whole
//! sub-patterns. A leaf array holds exact values (strings, numbers, booleans, `null`) and
//! filter objects: `prefix`, `suffix` (each also `{"equals-ignore-case": s}`),
//! `equals-ignore-case`, `anything-but` (a value, a list, or `{prefix|suffix|
//! equals-ignore-case}`), `numeric` (`["=", n]` or bounds like `[">", 0, "<=", 5]`),
//! `exists` and `wildcard` (`*` matches any run of characters).
//!
//! Decisions where the documentation is loose:
//! * exact values compare as JSON values of the same type, so `300` matches `300` but not
//!   `300.0` or `"300"` (EventBridge compares numbers' text; use `numeric` for numbers);
//! * an event array matches when any of its elements matches; a nested pattern over an array
//!   of objects matches when one element matches the whole sub-pattern;
//! * every filter except `exists: false` needs the field present; `exists: true` is true for
//!   a present leaf (a scalar or an array), false for an object (intermediate node);
//! * `anything-but` is true when some present value differs from every listed one;
//!   its `prefix`/`suffix`/`equals-ignore-case` forms only ever match strings.

use serde_json::{Map, Value};
use std::fmt;

/// Deepest nesting a pattern may have (EventBridge patterns are shallow; the bound keeps
/// recursion safe on any input).
const MAX_DEPTH: usize = 64;

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    root: Object,
}

/// Why a pattern is invalid, and where: `path` is like `detail.object.key[0].prefix`
/// (empty for the pattern as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub path: String,
    pub reason: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "invalid event pattern: {}", self.reason)
        } else {
            write!(f, "invalid event pattern at {}: {}", self.path, self.reason)
        }
    }
}

impl std::error::Error for PatternError {}

#[derive(Debug, Clone, PartialEq)]
struct Object {
    fields: Vec<(String, Rule)>,
    /// Each `$or`: at least one of its alternatives must match.
    any_of: Vec<Vec<Object>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Rule {
    Nested(Object),
    Values(Vec<Matcher>),
}

#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    Exact(Value),
    Prefix { text: String, ignore_case: bool },
    Suffix { text: String, ignore_case: bool },
    EqualsIgnoreCase(String),
    AnythingBut(AnythingBut),
    Numeric(Vec<(Cmp, f64)>),
    Exists(bool),
    Wildcard(String),
}

#[derive(Debug, Clone, PartialEq)]
enum AnythingBut {
    Values(Vec<Value>),
    Prefix(String),
    Suffix(String),
    IgnoreCase(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Pattern {
    /// Parses pattern JSON text.
    pub fn parse(json: &str) -> Result<Pattern, PatternError> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| PatternError { path: String::new(), reason: format!("not valid JSON: {e}") })?;
        Pattern::from_value(&value)
    }

    /// Parses a pattern given as a JSON value.
    pub fn from_value(value: &Value) -> Result<Pattern, PatternError> {
        let Value::Object(map) = value else {
            return Err(err("", "a pattern must be a JSON object"));
        };
        Ok(Pattern { root: parse_object(map, "", 0)? })
    }

    /// Whether `event` matches.
    pub fn matches(&self, event: &Value) -> bool {
        self.root.matches(event)
    }
}

/// Whether `event` matches `pattern`.
pub fn matches(pattern: &Pattern, event: &Value) -> bool {
    pattern.matches(event)
}

fn err(path: &str, reason: impl Into<String>) -> PatternError {
    PatternError { path: path.to_string(), reason: reason.into() }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn parse_object(map: &Map<String, Value>, path: &str, depth: usize) -> Result<Object, PatternError> {
    if depth > MAX_DEPTH {
        return Err(err(path, format!("patterns may nest at most {MAX_DEPTH} levels")));
    }
    if map.is_empty() {
        return Err(err(path, "a pattern object needs at least one field"));
    }
    let mut object = Object { fields: Vec::new(), any_of: Vec::new() };
    for (key, value) in map {
        let here = join(path, key);
        if key == "$or" {
            let Value::Array(items) = value else {
                return Err(err(&here, "$or takes an array of patterns"));
            };
            if items.len() < 2 {
                return Err(err(&here, "$or needs at least two patterns"));
            }
            // Errors inside an alternative name it (`detail.$or[1].…`) so the user finds it.
            let mut alternatives = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let at = format!("{here}[{i}]");
                let Value::Object(m) = item else {
                    return Err(err(&at, "each $or alternative must be a pattern object"));
                };
                alternatives.push(parse_object(m, &at, depth + 1)?);
            }
            object.any_of.push(alternatives);
            continue;
        }
        let rule = match value {
            Value::Object(m) => Rule::Nested(parse_object(m, &here, depth + 1)?),
            Value::Array(items) => Rule::Values(parse_values(items, &here)?),
            _ => {
                return Err(err(
                    &here,
                    "a field must hold an array of values or filters, or a nested pattern object",
                ))
            }
        };
        object.fields.push((key.clone(), rule));
    }
    Ok(object)
}

fn parse_values(items: &[Value], path: &str) -> Result<Vec<Matcher>, PatternError> {
    if items.is_empty() {
        return Err(err(path, "an empty array matches nothing; list at least one value"));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        out.push(match item {
            Value::Object(m) => parse_filter(m, &at)?,
            Value::Array(_) => return Err(err(&at, "arrays cannot nest inside a value array")),
            scalar => Matcher::Exact(scalar.clone()),
        });
    }
    Ok(out)
}

fn one_key<'a>(m: &'a Map<String, Value>, path: &str) -> Result<(&'a String, &'a Value), PatternError> {
    let mut it = m.iter();
    match (it.next(), it.next()) {
        (Some(kv), None) => Ok(kv),
        (None, _) => Err(err(path, "an empty filter object; use one of prefix, suffix, anything-but, numeric, exists, equals-ignore-case, wildcard")),
        _ => Err(err(path, "a filter object has exactly one key")),
    }
}

fn string<'a>(value: &'a Value, path: &str, what: &str) -> Result<&'a str, PatternError> {
    value.as_str().ok_or_else(|| err(path, format!("{what} takes a string")))
}

fn parse_filter(m: &Map<String, Value>, path: &str) -> Result<Matcher, PatternError> {
    let (key, value) = one_key(m, path)?;
    let here = join(path, key);
    match key.as_str() {
        "prefix" | "suffix" => {
            let (text, ignore_case) = match value {
                Value::String(s) => (s.clone(), false),
                Value::Object(inner) => {
                    let (k, v) = one_key(inner, &here)?;
                    if k != "equals-ignore-case" {
                        return Err(err(&join(&here, k), format!("{key} takes a string or {{\"equals-ignore-case\": string}}")));
                    }
                    (string(v, &join(&here, k), "equals-ignore-case")?.to_string(), true)
                }
                _ => return Err(err(&here, format!("{key} takes a string or {{\"equals-ignore-case\": string}}"))),
            };
            Ok(if key == "prefix" { Matcher::Prefix { text, ignore_case } } else { Matcher::Suffix { text, ignore_case } })
        }
        "equals-ignore-case" => Ok(Matcher::EqualsIgnoreCase(string(value, &here, key)?.to_string())),
        "wildcard" => Ok(Matcher::Wildcard(string(value, &here, key)?.to_string())),
        "exists" => match value {
            Value::Bool(b) => Ok(Matcher::Exists(*b)),
            _ => Err(err(&here, "exists takes true or false")),
        },
        "numeric" => parse_numeric(value, &here),
        "anything-but" => parse_anything_but(value, &here),
        "cidr" => Err(err(&here, "the cidr filter is not supported")),
        other => Err(err(
            &here,
            format!("unknown filter {other:?}; use one of prefix, suffix, anything-but, numeric, exists, equals-ignore-case, wildcard"),
        )),
    }
}

fn parse_anything_but(value: &Value, path: &str) -> Result<Matcher, PatternError> {
    let listed = |v: &Value, at: &str| match v {
        Value::String(_) | Value::Number(_) => Ok(v.clone()),
        _ => Err(err(at, "anything-but lists strings or numbers")),
    };
    let but = match value {
        Value::String(_) | Value::Number(_) => AnythingBut::Values(vec![value.clone()]),
        Value::Array(items) => {
            if items.is_empty() {
                return Err(err(path, "anything-but needs at least one value"));
            }
            let values: Result<Vec<Value>, PatternError> =
                items.iter().enumerate().map(|(i, v)| listed(v, &format!("{path}[{i}]"))).collect();
            AnythingBut::Values(values?)
        }
        Value::Object(m) => {
            let (k, v) = one_key(m, path)?;
            let here = join(path, k);
            match k.as_str() {
                "prefix" => AnythingBut::Prefix(string(v, &here, "prefix")?.to_string()),
                "suffix" => AnythingBut::Suffix(string(v, &here, "suffix")?.to_string()),
                "equals-ignore-case" => match v {
                    Value::String(s) => AnythingBut::IgnoreCase(vec![s.clone()]),
                    Value::Array(items) if !items.is_empty() => {
                        let mut out = Vec::with_capacity(items.len());
                        for (i, item) in items.iter().enumerate() {
                            out.push(
                                string(item, &format!("{here}[{i}]"), "equals-ignore-case")?.to_string(),
                            );
                        }
                        AnythingBut::IgnoreCase(out)
                    }
                    _ => {
                        return Err(err(
                            &here,
                            "equals-ignore-case takes a string or a non-empty array of strings",
                        ))
                    }
                },
                other => {
                    return Err(err(
                        &here,
                        format!("anything-but takes prefix, suffix or equals-ignore-case, not {other:?}"),
                    ))
                }
            }
        }
        _ => {
            return Err(err(
                path,
                "anything-but takes a string, a number, an array of them, or a filter object",
            ))
        }
    };
    Ok(Matcher::AnythingBut(but))
}

fn parse_numeric(value: &Value, path: &str) -> Result<Matcher, PatternError> {
    let Value::Array(items) = value else {
        return Err(err(path, "numeric takes an array like [\">\", 0, \"<=\", 5]"));
    };
    if items.is_empty() || items.len() % 2 != 0 || items.len() > 4 {
        return Err(err(path, "numeric takes one or two (operator, number) pairs"));
    }
    let mut conds = Vec::new();
    for (i, pair) in items.chunks(2).enumerate() {
        let op_at = format!("{path}[{}]", i * 2);
        let n_at = format!("{path}[{}]", i * 2 + 1);
        let cmp = match pair[0].as_str() {
            Some("=") => Cmp::Eq,
            Some("<") => Cmp::Lt,
            Some("<=") => Cmp::Le,
            Some(">") => Cmp::Gt,
            Some(">=") => Cmp::Ge,
            _ => return Err(err(&op_at, "the operator must be one of =, <, <=, >, >=")),
        };
        let n = pair[1]
            .as_f64()
            .filter(|n| n.is_finite())
            .ok_or_else(|| err(&n_at, "a numeric bound must be a number"))?;
        conds.push((cmp, n));
    }
    let lowers = conds.iter().filter(|(c, _)| matches!(c, Cmp::Gt | Cmp::Ge)).count();
    let uppers = conds.iter().filter(|(c, _)| matches!(c, Cmp::Lt | Cmp::Le)).count();
    let equals = conds.iter().filter(|(c, _)| *c == Cmp::Eq).count();
    if equals > 0 && conds.len() > 1 {
        return Err(err(path, "\"=\" cannot be combined with other bounds"));
    }
    if lowers > 1 || uppers > 1 {
        return Err(err(
            path,
            "numeric takes at most one lower bound (> or >=) and one upper bound (< or <=)",
        ));
    }
    let lower = conds.iter().find(|(c, _)| matches!(c, Cmp::Gt | Cmp::Ge)).map(|(_, n)| *n);
    let upper = conds.iter().find(|(c, _)| matches!(c, Cmp::Lt | Cmp::Le)).map(|(_, n)| *n);
    if let (Some(lo), Some(hi)) = (lower, upper) {
        if lo >= hi {
            return Err(err(path, "the lower bound must be below the upper bound"));
        }
    }
    Ok(Matcher::Numeric(conds))
}

impl Object {
    fn matches(&self, event: &Value) -> bool {
        match event {
            Value::Object(map) => {
                self.fields.iter().all(|(key, rule)| rule.matches(map.get(key)))
                    && self.any_of.iter().all(|alts| alts.iter().any(|alt| alt.matches(event)))
            }
            // An array of objects: one element must match the whole sub-pattern.
            Value::Array(items) => items.iter().any(|item| item.is_object() && self.matches(item)),
            _ => false,
        }
    }
}

impl Rule {
    fn matches(&self, value: Option<&Value>) -> bool {
        match self {
            Rule::Nested(object) => value.is_some_and(|v| object.matches(v)),
            Rule::Values(matchers) => matchers.iter().any(|m| m.matches(value)),
        }
    }
}

/// The leaf values of a field: the value itself, or an array's scalar elements.
fn leaves(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().filter(|v| !v.is_array() && !v.is_object()).collect(),
        Value::Object(_) => Vec::new(),
        scalar => vec![scalar],
    }
}

impl Matcher {
    fn matches(&self, value: Option<&Value>) -> bool {
        if let Matcher::Exists(expected) = self {
            let present = value.is_some_and(|v| !v.is_object());
            return match expected {
                true => present,
                false => value.is_none(),
            };
        }
        let Some(value) = value else { return false };
        leaves(value).into_iter().any(|leaf| self.matches_leaf(leaf))
    }

    fn matches_leaf(&self, leaf: &Value) -> bool {
        match self {
            Matcher::Exact(expected) => leaf == expected,
            Matcher::Prefix { text, ignore_case } => leaf.as_str().is_some_and(|s| {
                if *ignore_case {
                    s.to_lowercase().starts_with(&text.to_lowercase())
                } else {
                    s.starts_with(text.as_str())
                }
            }),
            Matcher::Suffix { text, ignore_case } => leaf.as_str().is_some_and(|s| {
                if *ignore_case {
                    s.to_lowercase().ends_with(&text.to_lowercase())
                } else {
                    s.ends_with(text.as_str())
                }
            }),
            Matcher::EqualsIgnoreCase(text) => {
                leaf.as_str().is_some_and(|s| s.to_lowercase() == text.to_lowercase())
            }
            Matcher::Wildcard(glob) => leaf.as_str().is_some_and(|s| wildcard(glob, s)),
            Matcher::Numeric(conds) => leaf.as_f64().is_some_and(|n| {
                conds.iter().all(|(cmp, bound)| match cmp {
                    Cmp::Eq => n == *bound,
                    Cmp::Lt => n < *bound,
                    Cmp::Le => n <= *bound,
                    Cmp::Gt => n > *bound,
                    Cmp::Ge => n >= *bound,
                })
            }),
            Matcher::AnythingBut(but) => match but {
                AnythingBut::Values(values) => !values.iter().any(|v| v == leaf),
                AnythingBut::Prefix(p) => leaf.as_str().is_some_and(|s| !s.starts_with(p.as_str())),
                AnythingBut::Suffix(p) => leaf.as_str().is_some_and(|s| !s.ends_with(p.as_str())),
                AnythingBut::IgnoreCase(values) => leaf
                    .as_str()
                    .is_some_and(|s| !values.iter().any(|v| v.to_lowercase() == s.to_lowercase())),
            },
            Matcher::Exists(_) => false,
        }
    }
}

/// `*` matches any run of characters (including none); everything else matches itself.
/// Greedy with backtracking to the last star: linear in practice, never exponential.
fn wildcard(glob: &str, text: &str) -> bool {
    let g: Vec<char> = glob.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut gi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if gi < g.len() && g[gi] == '*' {
            star = Some((gi, ti));
            gi += 1;
        } else if gi < g.len() && g[gi] == t[ti] {
            gi += 1;
            ti += 1;
        } else if let Some((sg, st)) = star {
            gi = sg + 1;
            ti = st + 1;
            star = Some((sg, st + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|c| *c == '*')
}
