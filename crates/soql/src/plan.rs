//! Hints for fetching a query's records without scanning the whole object.
//!
//! The evaluator always filters, so these hints only need to be supersets: a store may use
//! [`BoundQuery::key_lookup`] to fetch candidates by id or by its indexed key,
//! [`BoundQuery::range_lookups`] to fetch them by a range of a date-time field, and
//! [`BoundQuery::parent_ids`] to prefetch the parents the query traverses.

use crate::ast::CmpOp;
use crate::bind::{BoundCond, BoundQuery, Operand, Path, Projection};
use crate::eval::{target, EvalContext, Target, Typed};
use crate::schema::FieldType;
use std::collections::BTreeSet;
use std::ops::Bound;
use voxbridge_core::{Record, SfId};

/// How candidates can be fetched by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookup {
    /// Only records with these ids can match (15-character form).
    Ids(Vec<SfId>),
    /// Only records whose indexed key (the object's key field, e.g. `VendorCallKey`) is one
    /// of `values` can match. SOQL `=` ignores case while the store's key index may not, so
    /// a store with a case-sensitive index can miss rows whose key differs only in case.
    Key { field: String, values: Vec<String> },
}

/// Only records whose date-time `field` lies within the bounds (epoch milliseconds) can
/// match; records without a value cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeLookup {
    /// The field as stored (an alias resolved to the field it reads).
    pub field: String,
    pub lower: Bound<i64>,
    pub upper: Bound<i64>,
}

impl BoundQuery {
    /// The ranges the `WHERE` clause implies on the queried object's own date-time fields:
    /// `<`, `<=`, `>`, `>=` and `=` against a date-time or a relative date literal
    /// (`TODAY`, `LAST_N_DAYS:7`, resolved against `ctx` as the evaluator does), and `IN`
    /// of those, at the top level or in a top-level `AND`. Bounds on the same field are
    /// intersected; one entry per field, in order of first appearance.
    pub fn range_lookups(&self, ctx: &EvalContext) -> Vec<RangeLookup> {
        let conjuncts: Vec<&BoundCond> = match &self.filter {
            Some(BoundCond::And(parts)) => parts.iter().collect(),
            Some(c) => vec![c],
            None => return Vec::new(),
        };
        let mut out: Vec<RangeLookup> = Vec::new();
        for c in conjuncts {
            let Some((field, lower, upper)) = range_of(c, ctx) else { continue };
            match out.iter_mut().find(|r| r.field == field) {
                Some(r) => {
                    r.lower = tighter(r.lower, lower, std::cmp::Ordering::Greater);
                    r.upper = tighter(r.upper, upper, std::cmp::Ordering::Less);
                }
                None => out.push(RangeLookup { field: field.to_string(), lower, upper }),
            }
        }
        out
    }

    /// The indexed equality the `WHERE` clause implies, if any: `Id = '…'` or
    /// `Id IN (…)`, else equality on the object's key field, found at the top level or
    /// in a top-level `AND`. An id lookup wins over a key lookup.
    pub fn key_lookup(&self) -> Option<KeyLookup> {
        let conjuncts: Vec<&BoundCond> = match &self.filter {
            Some(BoundCond::And(parts)) => parts.iter().collect(),
            Some(c) => vec![c],
            None => return None,
        };
        let mut key = None;
        for c in &conjuncts {
            let Some((field, operands)) = equality(c) else { continue };
            if field == "Id" {
                let ids: Option<Vec<SfId>> = operands
                    .iter()
                    .map(|o| match o {
                        Operand::Id(s) => SfId::parse(s).ok(),
                        _ => None,
                    })
                    .collect();
                if let Some(ids) = ids {
                    return Some(KeyLookup::Ids(ids));
                }
            } else if key.is_none() && self.key_field.as_deref() == Some(field) {
                let values: Option<Vec<String>> = operands
                    .iter()
                    .map(|o| match o {
                        Operand::Str(s) => Some(s.clone()),
                        Operand::Id(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                if let Some(values) = values {
                    key = Some(KeyLookup::Key { field: field.to_string(), values });
                }
            }
        }
        key
    }

    /// The ids of the parent records the query reads through relationships, over
    /// `records`: prefetch these (with `records`) so the evaluator finds them.
    pub fn parent_ids<'r>(&self, records: impl IntoIterator<Item = &'r Record>) -> Vec<SfId> {
        let mut via = BTreeSet::new();
        let mut add = |p: &Path| {
            if let Path::Parent(pp) = p {
                via.insert(pp.via.clone());
            }
        };
        match &self.projection {
            Projection::Fields(paths) => paths.iter().for_each(&mut add),
            Projection::Aggregates(items) => items.iter().filter_map(|(_, p)| p.as_ref()).for_each(&mut add),
            Projection::Count => {}
        }
        if let Some(f) = &self.filter {
            walk_paths(f, &mut add);
        }
        self.order_by.iter().for_each(|o| add(&o.path));
        let mut ids = BTreeSet::new();
        for r in records {
            for field in &via {
                if let Some(id) = r.str(field).and_then(|s| SfId::parse(s).ok()) {
                    ids.insert(id);
                }
            }
        }
        ids.into_iter().collect()
    }
}

/// `field = v` or `field IN (v, …)` on an own field: the field's read name and the values.
fn equality(c: &BoundCond) -> Option<(&str, Vec<&Operand>)> {
    match c {
        BoundCond::Compare { path: Path::Own(f), op: CmpOp::Eq, operand } => Some((&f.read, vec![operand])),
        BoundCond::In { path: Path::Own(f), negated: false, operands } => {
            Some((&f.read, operands.iter().collect()))
        }
        _ => None,
    }
}

/// The instants an operand covers on a date-time field: `[from, to)`, or a single point
/// as `from == to` with `point` set.
fn instants(operand: &Operand, ctx: &EvalContext) -> Option<(i64, i64, bool)> {
    match target(operand, FieldType::DateTime, ctx) {
        Target::Point(Typed::Instant(ms)) => Some((ms, ms, true)),
        Target::Range(Typed::Instant(from), Typed::Instant(to)) => Some((from, to, false)),
        _ => None,
    }
}

/// The range one conjunct bounds a date-time field of the queried record to, mirroring how
/// the evaluator compares (see `eval::compare_op`).
fn range_of<'c>(c: &'c BoundCond, ctx: &EvalContext) -> Option<(&'c str, Bound<i64>, Bound<i64>)> {
    use Bound::{Excluded, Included, Unbounded};
    match c {
        BoundCond::Compare { path: Path::Own(f), op, operand } if f.ty == FieldType::DateTime => {
            let (from, to, point) = instants(operand, ctx)?;
            let (lower, upper) = match (op, point) {
                (CmpOp::Eq, true) => (Included(from), Included(from)),
                (CmpOp::Eq, false) => (Included(from), Excluded(to)),
                (CmpOp::Lt, _) => (Unbounded, Excluded(from)),
                (CmpOp::Le, true) => (Unbounded, Included(from)),
                (CmpOp::Le, false) => (Unbounded, Excluded(to)),
                (CmpOp::Gt, true) => (Excluded(from), Unbounded),
                (CmpOp::Gt, false) => (Included(to), Unbounded),
                (CmpOp::Ge, _) => (Included(from), Unbounded),
                _ => return None,
            };
            Some((&f.read, lower, upper))
        }
        BoundCond::In { path: Path::Own(f), negated: false, operands } if f.ty == FieldType::DateTime => {
            let mut covered: Option<(Bound<i64>, Bound<i64>)> = None;
            for o in operands {
                let (from, to, point) = instants(o, ctx)?;
                let upper = if point { Included(to) } else { Excluded(to) };
                covered = Some(match covered {
                    None => (Included(from), upper),
                    // The union of the operands' ranges is within the loosest bounds.
                    Some((lo, hi)) => (
                        looser(lo, Included(from), std::cmp::Ordering::Less),
                        looser(hi, upper, std::cmp::Ordering::Greater),
                    ),
                });
            }
            covered.map(|(lower, upper)| (f.read.as_str(), lower, upper))
        }
        _ => None,
    }
}

/// Of two lower (`toward` = Greater) or upper (`toward` = Less) bounds, the tighter one.
fn tighter(a: Bound<i64>, b: Bound<i64>, toward: std::cmp::Ordering) -> Bound<i64> {
    match (a, b) {
        (Bound::Unbounded, x) | (x, Bound::Unbounded) => x,
        (Bound::Included(x) | Bound::Excluded(x), Bound::Included(y) | Bound::Excluded(y)) if x != y => {
            if x.cmp(&y) == toward {
                a
            } else {
                b
            }
        }
        // Equal values: excluding is tighter.
        (Bound::Excluded(_), _) => a,
        _ => b,
    }
}

/// Of two lower (`toward` = Less) or upper (`toward` = Greater) bounds, the looser one.
fn looser(a: Bound<i64>, b: Bound<i64>, toward: std::cmp::Ordering) -> Bound<i64> {
    match (a, b) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => Bound::Unbounded,
        (Bound::Included(x) | Bound::Excluded(x), Bound::Included(y) | Bound::Excluded(y)) if x != y => {
            if x.cmp(&y) == toward {
                a
            } else {
                b
            }
        }
        // Equal values: including is looser.
        (Bound::Included(_), _) => a,
        _ => b,
    }
}

fn walk_paths(c: &BoundCond, f: &mut impl FnMut(&Path)) {
    match c {
        BoundCond::And(parts) | BoundCond::Or(parts) => parts.iter().for_each(|p| walk_paths(p, f)),
        BoundCond::Not(inner) => walk_paths(inner, f),
        BoundCond::Compare { path, .. } | BoundCond::In { path, .. } | BoundCond::Like { path, .. } => {
            f(path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{bind, parse_query, Schema};

    fn lookup(q: &str) -> Option<KeyLookup> {
        bind(&parse_query(q).unwrap(), &Schema::standard()).unwrap().key_lookup()
    }

    #[test]
    fn finds_indexed_equalities() {
        assert_eq!(
            lookup("SELECT Id FROM VoiceCall WHERE VendorCallKey = 'abc'"),
            Some(KeyLookup::Key { field: "VendorCallKey".into(), values: vec!["abc".into()] })
        );
        assert_eq!(
            lookup("SELECT Id FROM VoiceCall WHERE CallType = 'Inbound' AND Id = '0LMRM000000HU8a4AG'"),
            Some(KeyLookup::Ids(vec![SfId::parse("0LMRM000000HU8a").unwrap()]))
        );
        assert_eq!(lookup("SELECT Id FROM VoiceCall WHERE VendorCallKey = 'a' OR CallType = 'x'"), None);
        assert_eq!(lookup("SELECT Id FROM VoiceCall WHERE VendorCallKey != 'a'"), None);
        assert_eq!(lookup("SELECT Id FROM VoiceCall WHERE Id = null"), None);
        assert_eq!(lookup("SELECT Id FROM Case WHERE Subject = 'x'"), None);
        assert_eq!(
            lookup("SELECT Id FROM Group WHERE DeveloperName IN ('Support', 'Billing')"),
            Some(KeyLookup::Key {
                field: "DeveloperName".into(),
                values: vec!["Support".into(), "Billing".into()]
            })
        );
    }
}
