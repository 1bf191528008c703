//! The SOQL and SOSL subset of Voxbridge's CRM REST API, as a pure library: parse, check
//! against object schemas, evaluate over [`voxbridge_core::Record`]s. No IO; time and
//! records are passed in, and no input makes it panic.
//!
//! A query goes through three steps, each usable alone:
//!
//! 1. [`parse_query`] turns text into a [`Query`] or a `MALFORMED_QUERY` error with the
//!    position of the offending token;
//! 2. [`bind`] checks it against a [`Schema`] (`INVALID_TYPE`, `INVALID_FIELD`, literal
//!    types) into a [`BoundQuery`], which also tells a store how to fetch candidates
//!    ([`BoundQuery::key_lookup`], [`BoundQuery::parent_ids`]);
//! 3. [`evaluate`] runs it over a [`RecordSource`] into a [`QueryResult`] in REST shape.
//!
//! [`query`] does all three. SOSL is [`parse_search`] then [`search`].

pub mod ast;
pub mod bind;
pub mod error;
pub mod eval;
mod lexer;
pub mod like;
pub mod literal;
pub mod parser;
pub mod plan;
pub mod schema;
pub mod sosl;
pub mod source;
mod standard;

pub use ast::Query;
pub use bind::{bind, BoundQuery};
pub use error::{Position, QueryError, QueryErrorCode};
pub use eval::{evaluate, EvalContext, QueryResult};
pub use literal::RelativeDate;
pub use parser::parse_query;
pub use plan::{KeyLookup, RangeLookup};
pub use schema::{FieldDef, FieldType, ObjectDef, Schema, SchemaError};
pub use sosl::{parse_search, search, Search, SearchResult, SearchScope};
pub use source::{transcript_record, MemorySource, RecordSource};

/// Parses, checks and runs a SOQL query in one go.
pub fn query(
    text: &str,
    schema: &Schema,
    source: &dyn RecordSource,
    ctx: &EvalContext,
) -> Result<QueryResult, QueryError> {
    let bound = bind(&parse_query(text)?, schema)?;
    Ok(evaluate(&bound, source, ctx))
}
