//! Checking a parsed query against a schema: objects and fields must exist, literals must
//! fit the field they are compared with. The result, a [`BoundQuery`], carries everything
//! the evaluator needs, so evaluation itself cannot fail.

use crate::ast::{CmpOp, Cond, FieldPath, Literal, Query, SelectItem, Span, Value};
use crate::error::{QueryError, QueryErrorCode, Result};
use crate::like::plain;
use crate::literal::RelativeDate;
use crate::schema::{FieldDef, FieldType, ObjectDef, Schema};
use chrono::NaiveDate;
use voxbridge_core::SfId;

/// A field of one object, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRef {
    /// The canonical name results report it under.
    pub name: String,
    /// The field actually read (differs from `name` for aliases).
    pub read: String,
    pub ty: FieldType,
}

impl FieldRef {
    pub(crate) fn of(f: &FieldDef) -> FieldRef {
        FieldRef {
            name: f.name.clone(),
            read: f.alias_of.clone().unwrap_or_else(|| f.name.clone()),
            ty: f.ty,
        }
    }
}

/// A field path resolved against the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    /// A field of the queried record.
    Own(FieldRef),
    /// A field of the parent record a reference field points to.
    Parent(ParentPath),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentPath {
    /// The reference field on the queried record (`OwnerId`).
    pub via: String,
    /// The relationship name results nest the parent under (`Owner`).
    pub relationship: String,
    /// The object types the parent may have.
    pub targets: Vec<String>,
    /// The field's name as reported, and how to read it on each parent type that has it.
    pub name: String,
    pub per_target: Vec<(String, FieldRef)>,
}

impl Path {
    /// The field's type (for a polymorphic parent, the first target's).
    pub fn ty(&self) -> FieldType {
        match self {
            Path::Own(f) => f.ty,
            Path::Parent(p) => p.per_target.first().map(|(_, f)| f.ty).unwrap_or(FieldType::String),
        }
    }
}

/// A comparison operand, converted to the field's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Null,
    Bool(bool),
    Num(f64),
    /// Plain text (LIKE escapes removed).
    Str(String),
    /// An id in its 15-character form.
    Id(String),
    Date(NaiveDate),
    /// Epoch milliseconds.
    Instant(i64),
    /// A relative date literal; resolved against `now` at evaluation time.
    Relative(RelativeDate),
}

#[derive(Debug, Clone, PartialEq)]
pub enum BoundCond {
    And(Vec<BoundCond>),
    Or(Vec<BoundCond>),
    Not(Box<BoundCond>),
    Compare {
        path: Path,
        op: CmpOp,
        operand: Operand,
    },
    In {
        path: Path,
        negated: bool,
        operands: Vec<Operand>,
    },
    /// The pattern in lexed form (wildcards and escapes, see `like`).
    Like {
        path: Path,
        pattern: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    /// Plain fields, in select order, duplicates removed.
    Fields(Vec<Path>),
    /// `COUNT()`: only the number of matching records.
    Count,
    /// `COUNT(field) [alias]`, …: one aggregate row.
    Aggregates(Vec<(String, Option<Path>)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct BoundOrder {
    pub path: Path,
    pub descending: bool,
    pub nulls_first: bool,
}

/// A query checked against a schema, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundQuery {
    /// The object's canonical name.
    pub object: String,
    /// The object's indexed key field (see [`ObjectDef::key_field`]).
    pub key_field: Option<String>,
    pub projection: Projection,
    pub filter: Option<BoundCond>,
    pub order_by: Vec<BoundOrder>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

/// Checks `query` against `schema`.
pub fn bind(query: &Query, schema: &Schema) -> Result<BoundQuery> {
    let b = Binder { text: &query.text, schema };
    let object = b.object(&query.from, query.from_span)?;
    let projection = b.projection(object, &query.select)?;
    let filter = query.filter.as_ref().map(|c| b.cond(object, c)).transpose()?;
    let order_by = query
        .order_by
        .iter()
        .map(|o| {
            Ok(BoundOrder {
                path: b.path(object, &o.field)?,
                descending: o.descending,
                nulls_first: o.nulls_first.unwrap_or(!o.descending),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(BoundQuery {
        object: object.name.clone(),
        key_field: object.key_field.clone(),
        projection,
        filter,
        order_by,
        limit: query.limit,
        offset: query.offset,
    })
}

pub(crate) struct Binder<'a> {
    pub text: &'a str,
    pub schema: &'a Schema,
}

impl<'a> Binder<'a> {
    fn err(&self, code: QueryErrorCode, span: Span, detail: impl Into<String>) -> QueryError {
        QueryError::at(code, self.text, span.start, detail)
    }

    pub fn object(&self, name: &str, span: Span) -> Result<&'a ObjectDef> {
        self.schema.object(name).ok_or_else(|| {
            self.err(
                QueryErrorCode::InvalidType,
                span,
                format!(
                    "sObject type '{name}' is not supported. If you are attempting to use a custom object, be \
                     sure to append the '__c' after the entity name. Please reference your WSDL or the describe \
                     call for the appropriate names."
                ),
            )
        })
    }

    fn no_such_column(&self, field: &str, entity: &str, span: Span) -> QueryError {
        self.err(
            QueryErrorCode::InvalidField,
            span,
            format!(
                "No such column '{field}' on entity '{entity}'. If you are attempting to use a custom field, be \
                 sure to append the '__c' after the custom field name. Please reference your WSDL or the \
                 describe call for the appropriate names."
            ),
        )
    }

    pub fn path(&self, object: &ObjectDef, path: &FieldPath) -> Result<Path> {
        match path.parts.as_slice() {
            [field] => {
                let f =
                    object.field(field).ok_or_else(|| self.no_such_column(field, &object.name, path.span))?;
                Ok(Path::Own(FieldRef::of(f)))
            }
            [rel, field] => {
                let via = object.relationship(rel).ok_or_else(|| {
                    self.err(
                        QueryErrorCode::InvalidField,
                        path.span,
                        format!(
                            "Didn't understand relationship '{rel}' in field path. If you are attempting to use a \
                             custom relationship, be sure to append the '__r' after the custom relationship name. \
                             Please reference your WSDL or the describe call for the appropriate names."
                        ),
                    )
                })?;
                let polymorphic = via.reference_to.len() > 1;
                let per_target: Vec<(String, FieldRef)> = via
                    .reference_to
                    .iter()
                    .filter_map(|t| self.schema.object(t))
                    .filter_map(|t| {
                        let f = match t.field(field) {
                            Some(f) => FieldRef::of(f),
                            // Through a polymorphic lookup, `Name` is each object's name
                            // field (a Case's CaseNumber), as on the platform.
                            None if polymorphic && field.eq_ignore_ascii_case("Name") => {
                                let n = t.fields.iter().find(|f| f.name_field)?;
                                FieldRef { name: "Name".into(), read: n.name.clone(), ty: n.ty }
                            }
                            None => return None,
                        };
                        Some((t.name.clone(), f))
                    })
                    .collect();
                let Some((_, first)) = per_target.first() else {
                    // A polymorphic lookup is described by the platform as the entity `Name`.
                    let entity = match via.reference_to.as_slice() {
                        [one] => one.clone(),
                        _ => "Name".to_string(),
                    };
                    return Err(self.no_such_column(field, &entity, path.span));
                };
                Ok(Path::Parent(ParentPath {
                    targets: via.reference_to.clone(),
                    via: via.name.clone(),
                    relationship: via.relationship_name.clone().unwrap_or_default(),
                    name: first.name.clone(),
                    per_target,
                }))
            }
            _ => Err(self.err(
                QueryErrorCode::InvalidField,
                path.span,
                format!("'{}': relationship paths deeper than one parent are not supported", path.dotted()),
            )),
        }
    }

    pub fn projection(&self, object: &ObjectDef, items: &[SelectItem]) -> Result<Projection> {
        let plain_count = items.iter().find_map(|i| match i {
            SelectItem::Count { field: None, span, .. } => Some(*span),
            _ => None,
        });
        if let Some(span) = plain_count {
            if items.len() > 1 {
                return Err(self.err(
                    QueryErrorCode::MalformedQuery,
                    span,
                    "COUNT() must be the only element in the SELECT list",
                ));
            }
            return Ok(Projection::Count);
        }
        let aggregates = items.iter().any(|i| matches!(i, SelectItem::Count { .. }));
        if aggregates {
            let mut out = Vec::new();
            for item in items {
                match item {
                    SelectItem::Count { field, alias, .. } => {
                        let path = field.as_ref().map(|f| self.path(object, f)).transpose()?;
                        let alias = alias.clone().unwrap_or_else(|| format!("expr{}", out.len()));
                        out.push((alias, path));
                    }
                    SelectItem::Field(f) => {
                        return Err(self.err(
                            QueryErrorCode::MalformedQuery,
                            f.span,
                            format!("Field must be grouped or aggregated: {}", f.dotted()),
                        ));
                    }
                }
            }
            return Ok(Projection::Aggregates(out));
        }
        let mut out: Vec<Path> = Vec::new();
        for item in items {
            if let SelectItem::Field(f) = item {
                let p = self.path(object, f)?;
                // The guide's Conversation example names a field twice; the platform would
                // refuse, Voxbridge reports it once.
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        Ok(Projection::Fields(out))
    }

    pub fn cond(&self, object: &ObjectDef, c: &Cond) -> Result<BoundCond> {
        Ok(match c {
            Cond::And(parts) => {
                BoundCond::And(parts.iter().map(|p| self.cond(object, p)).collect::<Result<_>>()?)
            }
            Cond::Or(parts) => {
                BoundCond::Or(parts.iter().map(|p| self.cond(object, p)).collect::<Result<_>>()?)
            }
            Cond::Not(inner) => BoundCond::Not(Box::new(self.cond(object, inner)?)),
            Cond::Compare { field, op, value } => {
                let path = self.path(object, field)?;
                let operand = self.operand(&path, field, value)?;
                let ty = path.ty();
                if ty == FieldType::Boolean && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                    return Err(self.err(
                        QueryErrorCode::InvalidQueryFilterOperator,
                        field.span,
                        format!("invalid operator on boolean field: {}", field.dotted()),
                    ));
                }
                BoundCond::Compare { path, op: *op, operand }
            }
            Cond::In { field, negated, values } => {
                let path = self.path(object, field)?;
                let operands = values.iter().map(|v| self.operand(&path, field, v)).collect::<Result<_>>()?;
                BoundCond::In { path, negated: *negated, operands }
            }
            Cond::Like { field, pattern } => {
                let path = self.path(object, field)?;
                if !path.ty().is_text() {
                    return Err(self.err(
                        QueryErrorCode::InvalidQueryFilterOperator,
                        field.span,
                        format!(
                            "invalid operator on field: LIKE is only valid on text fields, not '{}'",
                            field.dotted()
                        ),
                    ));
                }
                let Literal::Str(p) = &pattern.literal else {
                    return Err(self.type_error(&path, field, pattern));
                };
                BoundCond::Like { path, pattern: p.clone() }
            }
        })
    }

    /// `value of filter criterion for field 'X' must be of type T …`, in the platform's words.
    fn type_error(&self, path: &Path, field: &FieldPath, value: &Value) -> QueryError {
        let ty = path.ty();
        let quoting = if ty.is_text() || ty.is_id() {
            "should be enclosed in quotes"
        } else {
            "should not be enclosed in quotes"
        };
        self.err(
            QueryErrorCode::InvalidField,
            value.span,
            format!(
                "value of filter criterion for field '{}' must be of type {} and {quoting}",
                field.dotted(),
                ty.soap_name()
            ),
        )
    }

    fn operand(&self, path: &Path, field: &FieldPath, value: &Value) -> Result<Operand> {
        let ty = path.ty();
        let bad = || self.type_error(path, field, value);
        Ok(match (&value.literal, ty) {
            (Literal::Null, _) => Operand::Null,
            (Literal::Str(s), FieldType::Id | FieldType::Reference) => {
                let s = plain(s);
                if s.is_empty() {
                    Operand::Null
                } else {
                    let id = SfId::parse(&s).map_err(|_| {
                        self.err(
                            QueryErrorCode::InvalidQueryFilterOperator,
                            value.span,
                            format!("invalid ID field: {s}"),
                        )
                    })?;
                    Operand::Id(id.as_str().to_string())
                }
            }
            (Literal::Str(s), t) if t.is_text() => Operand::Str(plain(s)),
            (Literal::Bool(b), FieldType::Boolean) => Operand::Bool(*b),
            (Literal::Number(n, _), FieldType::Int | FieldType::Double) => Operand::Num(*n),
            (Literal::Date(d), FieldType::Date) => Operand::Date(*d),
            (Literal::DateTime(d), FieldType::DateTime) => Operand::Instant(d.timestamp_millis()),
            (Literal::Relative(r), FieldType::Date | FieldType::DateTime) => Operand::Relative(*r),
            _ => return Err(bad()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse_query;

    fn bind_str(s: &str) -> Result<BoundQuery> {
        bind(&parse_query(s)?, &Schema::standard())
    }

    #[test]
    fn resolves_case_insensitively_to_canonical_names() {
        let b = bind_str("select id, owner.name from voicecall").unwrap();
        assert_eq!(b.object, "VoiceCall");
        let Projection::Fields(f) = &b.projection else { panic!() };
        assert!(matches!(&f[0], Path::Own(r) if r.name == "Id"));
        assert!(matches!(&f[1], Path::Parent(p) if p.relationship == "Owner" && p.per_target.len() == 2));
    }

    #[test]
    fn type_errors() {
        let e = bind_str("SELECT Id FROM Case WHERE IsClosed = 'false'").unwrap_err();
        assert_eq!(e.code, QueryErrorCode::InvalidField);
        assert!(e.detail.contains("must be of type boolean"), "{}", e.detail);
        assert_eq!(e.position.unwrap().column, 38);
        let e = bind_str("SELECT Id FROM VoiceCall WHERE CallStartDateTime > 2024-01-01").unwrap_err();
        assert!(e.detail.contains("dateTime"));
        let e = bind_str("SELECT Id FROM VoiceCall WHERE Id = 'nope'").unwrap_err();
        assert_eq!(e.code, QueryErrorCode::InvalidQueryFilterOperator);
        let e = bind_str("SELECT Name, COUNT(Id) FROM Case").unwrap_err();
        assert!(e.detail.contains("grouped or aggregated"));
        let e = bind_str("SELECT Id FROM Case WHERE IsClosed LIKE 'x'").unwrap_err();
        assert_eq!(e.code, QueryErrorCode::InvalidQueryFilterOperator);
    }
}
