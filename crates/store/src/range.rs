//! Range lookups on indexed date-time fields.
//!
//! A small, declared set of date-time fields has an index per backend ([`RANGE_FIELDS`],
//! migration 2): an expression index on the field's value inside the `fields` JSON, partial
//! on the object type. The record timestamps `CreatedDate` and `LastModifiedDate` are the
//! `created_ms`/`modified_ms` columns and are indexed for every object.
//!
//! Why string comparison is exact: the writer stores every indexed date-time in the
//! canonical form `YYYY-MM-DDTHH:MM:SS.mmmZ` ([`canonical_fields`]), whatever form the
//! caller gave (another offset, no fraction, a bare date, epoch milliseconds), so byte
//! order is time order. The canonical form covers years 0000 to 9999; a value outside that
//! span (or not a date-time at all) is stored as given and no range lookup finds it.

use serde_json::Value;
use std::ops::Bound;
use voxbridge_core::time::{format_ms, parse_iso_ms};
use voxbridge_core::Fields;

/// `(object, field)` pairs with a range index on the field's JSON value. Adding one takes a
/// migration creating its index in both backends.
pub const RANGE_FIELDS: &[(&str, &str)] =
    &[("VoiceCall", "CallStartDateTime"), ("VoiceCall", "CallEndDateTime")];

/// Epoch milliseconds of `0000-01-01T00:00:00.000Z`, the earliest canonical instant.
const MIN_CANONICAL_MS: i64 = -62_167_219_200_000;
/// Epoch milliseconds of `9999-12-31T23:59:59.999Z`, the latest canonical instant.
const MAX_CANONICAL_MS: i64 = 253_402_300_799_999;

/// Where a range lookup reads the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Column {
    /// A date-time inside `fields`, compared as canonical text.
    Json(&'static str),
    /// `created_ms`.
    Created,
    /// `modified_ms`.
    Modified,
}

/// The indexed column for `field` of `sobject`, if the store has one.
pub(crate) fn column(sobject: &str, field: &str) -> Option<Column> {
    match field {
        "CreatedDate" => Some(Column::Created),
        "LastModifiedDate" | "SystemModstamp" => Some(Column::Modified),
        _ => RANGE_FIELDS.iter().find(|(o, f)| *o == sobject && *f == field).map(|(_, f)| Column::Json(f)),
    }
}

/// Whether [`crate::Store::find_range`] can serve `field` of `sobject` from an index.
pub fn has_range_index(sobject: &str, field: &str) -> bool {
    column(sobject, field).is_some()
}

/// A bound in the column's terms.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
}

/// How one backend reads an indexed date-time out of `fields`.
pub(crate) struct Dialect {
    /// The SQL text of the field's value. It must be exactly the indexed expression of
    /// migration 2, or the index is not used.
    pub expr: fn(&str) -> String,
    /// Whether that value is the JSON text of the string, quotes included.
    pub quoted: bool,
}

impl Dialect {
    fn text(&self, ms: i64) -> Param {
        let text = format_ms(ms);
        Param::Text(if self.quoted { format!("\"{text}\"") } else { text })
    }
}

/// The statement of a range lookup, selecting the record columns then `seq`, with its
/// parameters after `$1`, the org. `None` when no stored value can fall in the range.
pub(crate) fn range_select(
    sobject: &str,
    column: Column,
    lower: Bound<i64>,
    upper: Bound<i64>,
    limit: Option<u64>,
    dialect: &Dialect,
) -> Option<(String, Vec<Param>)> {
    let mut params = Vec::new();
    let (expr, object, lower, upper) = match column {
        Column::Created | Column::Modified => {
            params.push(Param::Text(sobject.to_string()));
            let expr = if column == Column::Created { "created_ms" } else { "modified_ms" };
            (expr.to_string(), "$2".to_string(), lower.map(Param::Int), upper.map(Param::Int))
        }
        Column::Json(field) => {
            // Bounds are clamped to the canonical span: past it they would compare wrongly
            // as text ("+10000-…" sorts before "2026-…"), and an unbounded side would let
            // in values that are not date-times at all.
            let lower = match lower {
                Bound::Included(ms) | Bound::Excluded(ms) if ms > MAX_CANONICAL_MS => return None,
                Bound::Included(ms) | Bound::Excluded(ms) if ms >= MIN_CANONICAL_MS => {
                    lower.map(|ms| dialect.text(ms))
                }
                _ => Bound::Included(dialect.text(MIN_CANONICAL_MS)),
            };
            let upper = match upper {
                Bound::Included(ms) | Bound::Excluded(ms) if ms < MIN_CANONICAL_MS => return None,
                Bound::Included(ms) | Bound::Excluded(ms) if ms <= MAX_CANONICAL_MS => {
                    upper.map(|ms| dialect.text(ms))
                }
                _ => Bound::Included(dialect.text(MAX_CANONICAL_MS)),
            };
            // The object is a literal: the indexes are partial on it, and a planner only
            // matches a partial index against literals. It comes from `RANGE_FIELDS`.
            let object = RANGE_FIELDS.iter().find(|(o, _)| *o == sobject).map(|(o, _)| *o)?;
            ((dialect.expr)(field), format!("'{object}'"), lower, upper)
        }
    };
    let mut sql = format!(
        "SELECT id, org, sobject, key, fields, created_ms, modified_ms, seq FROM records \
         WHERE org = $1 AND sobject = {object}"
    );
    for (bound, incl, excl) in [(lower, ">=", ">"), (upper, "<=", "<")] {
        let (op, p) = match bound {
            Bound::Included(p) => (incl, p),
            Bound::Excluded(p) => (excl, p),
            Bound::Unbounded => continue,
        };
        params.push(p);
        sql.push_str(&format!(" AND {expr} {op} ${}", params.len() + 1));
    }
    sql.push_str(&format!(" ORDER BY {expr}, created_ms, seq"));
    if let Some(n) = limit {
        sql.push_str(&format!(" LIMIT {n}"));
    }
    Some((sql, params))
}

/// The canonical stored form of a date-time value, if it is one and differs from `v`.
/// Reads values as the SOQL evaluator does: ISO-8601 with or without offset, a bare date
/// (midnight UTC), or epoch milliseconds.
fn canonical(v: &Value) -> Option<String> {
    let ms = match v {
        Value::String(s) => parse_iso_ms(s).or_else(|| {
            let day = s.trim();
            (day.len() == 10).then(|| parse_iso_ms(&format!("{day}T00:00:00Z"))).flatten()
        })?,
        Value::Number(n) => n.as_i64()?,
        _ => return None,
    };
    if !(MIN_CANONICAL_MS..=MAX_CANONICAL_MS).contains(&ms) {
        return None;
    }
    let text = format_ms(ms);
    (v.as_str() != Some(text.as_str())).then_some(text)
}

/// Rewrites the indexed date-time fields of a `sobject` record into canonical form;
/// `None` when nothing changes (the common case: the API already stores that form).
pub(crate) fn canonical_fields(sobject: &str, fields: &Fields) -> Option<Fields> {
    let mut out: Option<Fields> = None;
    for (o, f) in RANGE_FIELDS {
        if *o != sobject {
            continue;
        }
        if let Some(text) = fields.get(*f).and_then(canonical) {
            out.get_or_insert_with(|| fields.clone()).insert((*f).to_string(), Value::String(text));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_forms() {
        assert_eq!(canonical(&json!("2026-01-01T00:00:00.000Z")), None);
        assert_eq!(
            canonical(&json!("2026-01-01T02:00:00+02:00")).as_deref(),
            Some("2026-01-01T00:00:00.000Z")
        );
        assert_eq!(canonical(&json!("2026-01-01T00:00:00Z")).as_deref(), Some("2026-01-01T00:00:00.000Z"));
        assert_eq!(canonical(&json!("2026-01-01")).as_deref(), Some("2026-01-01T00:00:00.000Z"));
        assert_eq!(canonical(&json!(1_767_225_600_000_i64)).as_deref(), Some("2026-01-01T00:00:00.000Z"));
        assert_eq!(canonical(&json!("soon")), None);
        assert_eq!(canonical(&json!(i64::MAX)), None);
        assert_eq!(canonical(&json!(true)), None);
    }

    #[test]
    fn bounds_past_the_canonical_span() {
        let dialect = Dialect { expr: |f| format!("x('{f}')"), quoted: false };
        let c = Column::Json("CallStartDateTime");
        let select = |lo, hi| range_select("VoiceCall", c, lo, hi, None, &dialect);
        assert!(select(Bound::Included(i64::MAX), Bound::Unbounded).is_none());
        assert!(select(Bound::Unbounded, Bound::Excluded(i64::MIN)).is_none());
        let text = |s: &str| Param::Text(s.to_string());
        assert_eq!(
            select(Bound::Excluded(i64::MIN), Bound::Included(i64::MAX)).map(|(_, p)| p),
            Some(vec![text("0000-01-01T00:00:00.000Z"), text("9999-12-31T23:59:59.999Z")])
        );
        let (sql, params) = select(Bound::Included(0), Bound::Excluded(1)).unwrap();
        assert!(sql.ends_with(
            "sobject = 'VoiceCall' AND x('CallStartDateTime') >= $2 \
             AND x('CallStartDateTime') < $3 ORDER BY x('CallStartDateTime'), created_ms, seq"
        ));
        assert_eq!(params, [text("1970-01-01T00:00:00.000Z"), text("1970-01-01T00:00:00.001Z")]);
        assert!(range_select("Case", c, Bound::Unbounded, Bound::Unbounded, None, &dialect).is_none());
        let quoted = Dialect { quoted: true, ..dialect };
        assert_eq!(quoted.text(0), text("\"1970-01-01T00:00:00.000Z\""));
    }
}
