//! The syntax tree of a parsed SOQL query, before it is checked against a schema.
//!
//! Every node keeps the byte span it came from so that schema errors found later (unknown
//! field, wrong literal type) can point into the original text as parse errors do.

use crate::literal::RelativeDate;
use chrono::{DateTime, FixedOffset, NaiveDate};

/// Byte offsets `[start, end)` into the query text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// A field as written: `Name`, or `Owner.Name` through a parent relationship.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPath {
    pub parts: Vec<String>,
    pub span: Span,
}

impl FieldPath {
    /// The path as written, dotted.
    pub fn dotted(&self) -> String {
        self.parts.join(".")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    Field(FieldPath),
    /// `COUNT()` (no field) or `COUNT(field) [alias]`.
    Count {
        field: Option<FieldPath>,
        alias: Option<String>,
        span: Span,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A literal on the right of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    /// The number and its text as written.
    Number(f64, String),
    /// The decoded string, with `\%`, `\_` and `\\` still escaped (see `like`).
    Str(String),
    Date(NaiveDate),
    DateTime(DateTime<FixedOffset>),
    Relative(RelativeDate),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub literal: Literal,
    pub span: Span,
}

/// A `WHERE` condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Compare { field: FieldPath, op: CmpOp, value: Value },
    In { field: FieldPath, negated: bool, values: Vec<Value> },
    Like { field: FieldPath, pattern: Value },
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    pub field: FieldPath,
    pub descending: bool,
    /// `None` when not written: nulls sort as the smallest value (first ascending, last
    /// descending).
    pub nulls_first: Option<bool>,
}

/// A parsed SOQL query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The text the query was parsed from; later errors point into it.
    pub text: String,
    pub select: Vec<SelectItem>,
    pub from: String,
    pub from_span: Span,
    pub filter: Option<Cond>,
    pub order_by: Vec<OrderItem>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub offset_span: Span,
}
