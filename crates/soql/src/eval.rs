//! Running a bound query over records: filtering, ordering, paging and shaping rows as the
//! REST API returns them.
//!
//! Comparison follows the platform: text compares ignoring case, numbers numerically, dates
//! as dates, ids by their 15-character form; `!=` and `NOT IN` are true for null values;
//! relative date literals cover whole days in the caller's time zone.

use crate::ast::CmpOp;
use crate::bind::{BoundCond, BoundOrder, BoundQuery, FieldRef, Operand, ParentPath, Path, Projection};
use crate::like::like_match;
use crate::literal::day_start_ms;
use crate::schema::FieldType;
use crate::source::RecordSource;
use chrono::{FixedOffset, NaiveDate, Offset, TimeZone, Utc};
use serde_json::{json, Map, Value};
use std::cmp::Ordering;
use voxbridge_core::time::{format_ms, parse_iso_ms};
use voxbridge_core::{Record, SfId};

/// What evaluation depends on besides the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalContext {
    /// The current time, epoch milliseconds, for `TODAY` and friends.
    pub now_ms: i64,
    /// The caller's time zone offset; days start at midnight there. UTC by default.
    pub offset: FixedOffset,
    /// The API version in record URLs, e.g. `v62.0`.
    pub api_version: String,
}

impl EvalContext {
    pub fn new(now_ms: i64) -> EvalContext {
        EvalContext { now_ms, offset: Utc.fix(), api_version: "v62.0".into() }
    }

    pub fn with_offset(mut self, offset: FixedOffset) -> EvalContext {
        self.offset = offset;
        self
    }

    pub fn with_api_version(mut self, version: impl Into<String>) -> EvalContext {
        self.api_version = version.into();
        self
    }

    fn today(&self) -> NaiveDate {
        let now = Utc.timestamp_millis_opt(self.now_ms).single().unwrap_or_default();
        now.with_timezone(&self.offset).date_naive()
    }
}

/// The answer to a query: the REST API's `{totalSize, done, records}`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// Rows returned, or for `COUNT()` the count.
    pub total_size: usize,
    /// Rows in REST shape: `attributes` first, then the selected fields.
    pub records: Vec<Value>,
}

impl QueryResult {
    /// `{"totalSize": n, "done": true, "records": […]}`. Batching into pages of 2,000 with
    /// `nextRecordsUrl` is the HTTP layer's business.
    pub fn to_json(&self) -> Value {
        json!({ "totalSize": self.total_size, "done": true, "records": self.records })
    }
}

/// Runs `query` over the records of `source`.
pub fn evaluate(query: &BoundQuery, source: &dyn RecordSource, ctx: &EvalContext) -> QueryResult {
    let matched = matching(query, source, ctx, &|_| true);
    let skip = query.offset.map(|o| usize::try_from(o).unwrap_or(usize::MAX)).unwrap_or(0);
    let take = query.limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)).unwrap_or(usize::MAX);
    match &query.projection {
        Projection::Count => {
            QueryResult { total_size: matched.len().saturating_sub(skip).min(take), records: Vec::new() }
        }
        Projection::Aggregates(items) => {
            let mut row = Map::new();
            row.insert("attributes".into(), json!({ "type": "AggregateResult" }));
            for (alias, path) in items {
                let n = match path {
                    None => matched.len(),
                    Some(p) => matched.iter().filter(|r| !read(r, p, source).is_null()).count(),
                };
                row.insert(alias.clone(), n.into());
            }
            QueryResult { total_size: 1, records: vec![Value::Object(row)] }
        }
        Projection::Fields(paths) => {
            let records: Vec<Value> =
                matched.iter().skip(skip).take(take).map(|r| render_row(r, paths, source, ctx)).collect();
            QueryResult { total_size: records.len(), records }
        }
    }
}

/// The records of the query's object that pass its filter and `extra`, ordered. Without
/// `ORDER BY` records come oldest first (then by id) so answers are stable across stores.
pub(crate) fn matching<'s>(
    query: &BoundQuery,
    source: &'s dyn RecordSource,
    ctx: &EvalContext,
    extra: &dyn Fn(&Record) -> bool,
) -> Vec<&'s Record> {
    let mut rows: Vec<&Record> = source
        .records(&query.object)
        .into_iter()
        .filter(|r| r.sobject.eq_ignore_ascii_case(&query.object))
        .filter(|r| query.filter.as_ref().is_none_or(|c| test(c, r, source, ctx)))
        .filter(|r| extra(r))
        .collect();
    rows.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then_with(|| a.id.cmp(&b.id)));
    if !query.order_by.is_empty() {
        let keyed: Vec<(Vec<Typed>, &Record)> = rows
            .into_iter()
            .map(|r| {
                (query.order_by.iter().map(|o| typed(&read(r, &o.path, source), o.path.ty())).collect(), r)
            })
            .collect();
        let mut keyed = keyed;
        keyed.sort_by(|(ka, _), (kb, _)| order_keys(ka, kb, &query.order_by));
        rows = keyed.into_iter().map(|(_, r)| r).collect();
    }
    rows
}

fn order_keys(a: &[Typed], b: &[Typed], order: &[BoundOrder]) -> Ordering {
    for ((x, y), o) in a.iter().zip(b).zip(order) {
        let ord = match (x, y) {
            (Typed::Null, Typed::Null) => Ordering::Equal,
            (Typed::Null, _) => {
                if o.nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (_, Typed::Null) => {
                if o.nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            _ => {
                let c = compare(x, y).unwrap_or(Ordering::Equal);
                if o.descending {
                    c.reverse()
                } else {
                    c
                }
            }
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

/// One record in REST shape with the selected fields; parent fields nest under the
/// relationship name (`"Owner": {"attributes": …, "Name": …}`, or `null` without parent).
pub(crate) fn render_row(r: &Record, paths: &[Path], source: &dyn RecordSource, ctx: &EvalContext) -> Value {
    let mut row = Map::new();
    row.insert("attributes".into(), attributes(r, ctx));
    for p in paths {
        match p {
            Path::Own(f) => {
                row.insert(f.name.clone(), own_value(r, f));
            }
            Path::Parent(pp) => {
                let slot =
                    row.entry(pp.relationship.clone()).or_insert_with(|| match parent(r, pp, source) {
                        Some(parent) => {
                            let mut m = Map::new();
                            m.insert("attributes".into(), attributes(parent, ctx));
                            Value::Object(m)
                        }
                        None => Value::Null,
                    });
                if let Value::Object(m) = slot {
                    let v = parent(r, pp, source).map(|par| parent_value(par, pp)).unwrap_or(Value::Null);
                    m.insert(pp.name.clone(), v);
                }
            }
        }
    }
    Value::Object(row)
}

fn attributes(r: &Record, ctx: &EvalContext) -> Value {
    let id = r.id.to_18();
    json!({
        "type": r.sobject,
        "url": format!("/services/data/{}/sobjects/{}/{}", ctx.api_version, r.sobject, id),
    })
}

/// The parent record `pp.via` points to, if it exists and is one of the allowed types.
fn parent<'s>(r: &Record, pp: &ParentPath, source: &'s dyn RecordSource) -> Option<&'s Record> {
    let id = SfId::parse(r.fields.get(&pp.via)?.as_str()?).ok()?;
    let p = source.record(&id)?;
    (p.org == r.org && pp.targets.iter().any(|t| t.eq_ignore_ascii_case(&p.sobject))).then_some(p)
}

fn parent_value(p: &Record, pp: &ParentPath) -> Value {
    pp.per_target
        .iter()
        .find(|(t, _)| t.eq_ignore_ascii_case(&p.sobject))
        .map(|(_, f)| own_value(p, f))
        .unwrap_or(Value::Null)
}

/// The value of a path on a record, as results show it.
pub(crate) fn read(r: &Record, path: &Path, source: &dyn RecordSource) -> Value {
    match path {
        Path::Own(f) => own_value(r, f),
        Path::Parent(pp) => parent(r, pp, source).map(|p| parent_value(p, pp)).unwrap_or(Value::Null),
    }
}

/// A field of a record as results show it: ids in 18-character form, empty text as null,
/// the audit fields from the record's timestamps, `Name` of people from their names.
pub(crate) fn own_value(r: &Record, f: &FieldRef) -> Value {
    let stored = r.fields.get(&f.read).or_else(|| {
        // Records normally use canonical names; tolerate other spellings.
        r.fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(&f.read)).map(|(_, v)| v)
    });
    let v = match (f.read.as_str(), stored) {
        ("Id", _) => return Value::String(r.id.to_18()),
        (_, Some(v)) if !v.is_null() => v.clone(),
        ("CreatedDate", _) => Value::String(format_ms(r.created_ms)),
        ("LastModifiedDate" | "SystemModstamp", _) => Value::String(format_ms(r.modified_ms)),
        ("IsDeleted", _) => Value::Bool(false),
        ("Name", _) => person_name(r),
        _ => Value::Null,
    };
    match (f.ty, v) {
        (FieldType::Reference | FieldType::Id, Value::String(s)) => match SfId::parse(&s) {
            Ok(id) => Value::String(id.to_18()),
            Err(_) if s.is_empty() => Value::Null,
            Err(_) => Value::String(s),
        },
        (t, Value::String(s)) if t.is_text() && s.is_empty() => Value::Null,
        (_, v) => v,
    }
}

/// `FirstName LastName` for objects that store the parts but no `Name`.
fn person_name(r: &Record) -> Value {
    let parts: Vec<&str> =
        [r.str("FirstName"), r.str("LastName")].into_iter().flatten().filter(|s| !s.is_empty()).collect();
    if parts.is_empty() {
        Value::Null
    } else {
        Value::String(parts.join(" "))
    }
}

/// A value converted for comparison.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Typed {
    Null,
    Bool(bool),
    Num(f64),
    /// Lower-cased text.
    Text(String),
    /// An id, 15-character form (or the raw text if it is not an id).
    Id(String),
    Date(NaiveDate),
    Instant(i64),
}

pub(crate) fn typed(v: &Value, ty: FieldType) -> Typed {
    match (ty, v) {
        (_, Value::Null) => Typed::Null,
        (FieldType::Id | FieldType::Reference, Value::String(s)) => {
            Typed::Id(SfId::parse(s).map(|id| id.as_str().to_string()).unwrap_or_else(|_| s.clone()))
        }
        (FieldType::Boolean, Value::Bool(b)) => Typed::Bool(*b),
        (FieldType::Boolean, Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" => Typed::Bool(true),
            "false" => Typed::Bool(false),
            _ => Typed::Null,
        },
        (FieldType::Int | FieldType::Double, Value::Number(n)) => {
            n.as_f64().map(Typed::Num).unwrap_or(Typed::Null)
        }
        (FieldType::Int | FieldType::Double, Value::String(s)) => {
            s.trim().parse::<f64>().ok().filter(|n| n.is_finite()).map(Typed::Num).unwrap_or(Typed::Null)
        }
        (FieldType::Date, Value::String(s)) => s
            .get(..10)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .map(Typed::Date)
            .unwrap_or(Typed::Null),
        (FieldType::DateTime, Value::String(s)) => parse_iso_ms(s)
            .or_else(|| {
                NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|d| d.and_utc().timestamp_millis())
            })
            .map(Typed::Instant)
            .unwrap_or(Typed::Null),
        (FieldType::DateTime, Value::Number(n)) => n.as_i64().map(Typed::Instant).unwrap_or(Typed::Null),
        (_, Value::String(s)) => Typed::Text(s.to_lowercase()),
        (_, Value::Number(n)) => Typed::Text(n.to_string()),
        (_, Value::Bool(b)) => Typed::Text(b.to_string()),
        // Structured JSON never equals a literal.
        _ => Typed::Null,
    }
}

fn compare(a: &Typed, b: &Typed) -> Option<Ordering> {
    match (a, b) {
        (Typed::Bool(x), Typed::Bool(y)) => Some(x.cmp(y)),
        (Typed::Num(x), Typed::Num(y)) => x.partial_cmp(y),
        (Typed::Text(x), Typed::Text(y)) => Some(x.cmp(y)),
        (Typed::Id(x), Typed::Id(y)) => Some(x.cmp(y)),
        (Typed::Date(x), Typed::Date(y)) => Some(x.cmp(y)),
        (Typed::Instant(x), Typed::Instant(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// An operand as a point or a half-open range in the field's terms.
pub(crate) enum Target {
    Null,
    Point(Typed),
    Range(Typed, Typed),
}

pub(crate) fn target(op: &Operand, ty: FieldType, ctx: &EvalContext) -> Target {
    match op {
        Operand::Null => Target::Null,
        Operand::Bool(b) => Target::Point(Typed::Bool(*b)),
        Operand::Num(n) => Target::Point(Typed::Num(*n)),
        Operand::Str(s) => Target::Point(Typed::Text(s.to_lowercase())),
        Operand::Id(s) => Target::Point(Typed::Id(s.clone())),
        Operand::Date(d) => Target::Point(Typed::Date(*d)),
        Operand::Instant(ms) => Target::Point(Typed::Instant(*ms)),
        Operand::Relative(rel) => {
            let (start, end) = rel.days(ctx.today());
            if ty == FieldType::Date {
                Target::Range(Typed::Date(start), Typed::Date(end))
            } else {
                Target::Range(
                    Typed::Instant(day_start_ms(start, ctx.offset)),
                    Typed::Instant(day_start_ms(end, ctx.offset)),
                )
            }
        }
    }
}

fn compare_op(v: &Typed, op: CmpOp, t: &Target) -> bool {
    let is_eq = |v: &Typed| match t {
        Target::Null => *v == Typed::Null,
        Target::Point(p) => compare(v, p) == Some(Ordering::Equal),
        Target::Range(lo, hi) => {
            compare(v, lo).is_some_and(Ordering::is_ge) && compare(v, hi).is_some_and(Ordering::is_lt)
        }
    };
    match op {
        CmpOp::Eq => is_eq(v),
        CmpOp::Ne => !is_eq(v),
        _ => {
            let (lo, hi) = match t {
                Target::Null => return false,
                Target::Point(p) => (p, None),
                Target::Range(lo, hi) => (lo, Some(hi)),
            };
            let below_lo = compare(v, lo);
            match (op, hi) {
                (CmpOp::Lt, _) => below_lo == Some(Ordering::Less),
                (CmpOp::Ge, _) => below_lo.is_some_and(Ordering::is_ge),
                (CmpOp::Le, None) => below_lo.is_some_and(Ordering::is_le),
                (CmpOp::Le, Some(hi)) => compare(v, hi) == Some(Ordering::Less),
                (CmpOp::Gt, None) => below_lo == Some(Ordering::Greater),
                (CmpOp::Gt, Some(hi)) => compare(v, hi).is_some_and(Ordering::is_ge),
                _ => false,
            }
        }
    }
}

fn test(c: &BoundCond, r: &Record, source: &dyn RecordSource, ctx: &EvalContext) -> bool {
    match c {
        BoundCond::And(parts) => parts.iter().all(|p| test(p, r, source, ctx)),
        BoundCond::Or(parts) => parts.iter().any(|p| test(p, r, source, ctx)),
        BoundCond::Not(inner) => !test(inner, r, source, ctx),
        BoundCond::Compare { path, op, operand } => {
            let ty = path.ty();
            compare_op(&typed(&read(r, path, source), ty), *op, &target(operand, ty, ctx))
        }
        BoundCond::In { path, negated, operands } => {
            let ty = path.ty();
            let v = typed(&read(r, path, source), ty);
            let found = operands.iter().any(|o| compare_op(&v, CmpOp::Eq, &target(o, ty, ctx)));
            found != *negated
        }
        BoundCond::Like { path, pattern } => match read(r, path, source) {
            Value::String(s) => like_match(pattern, &s),
            _ => false,
        },
    }
}
