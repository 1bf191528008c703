//! Typed query errors with the CRM platform's error codes and message layout.
//!
//! A client that runs SOQL against the real platform parses `errorCode` and often shows
//! `message` verbatim, so both follow the platform: the message repeats the offending line,
//! points at the column with a caret and says `ERROR at Row:r:Column:c` before the detail
//! (`unexpected token: 'FROM'`, `No such column 'Foo' on entity 'VoiceCall'…`).

use std::fmt;

/// Error codes a query or search can fail with. All are answered with HTTP 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryErrorCode {
    /// SOQL that does not parse, or a construct outside the supported subset.
    MalformedQuery,
    /// SOSL that does not parse.
    MalformedSearch,
    /// A field that the object does not have, or a literal of the wrong type for a field.
    InvalidField,
    /// An object type the schema does not know.
    InvalidType,
    /// An operator or value a field does not accept (e.g. an id that is not an id).
    InvalidQueryFilterOperator,
    /// A number outside the range a clause accepts (e.g. `OFFSET` above 2000).
    NumberOutsideValidRange,
    /// A search term the search cannot run (too short, only wildcards).
    InvalidSearch,
}

impl QueryErrorCode {
    /// The code as clients see it in `errorCode`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryErrorCode::MalformedQuery => "MALFORMED_QUERY",
            QueryErrorCode::MalformedSearch => "MALFORMED_SEARCH",
            QueryErrorCode::InvalidField => "INVALID_FIELD",
            QueryErrorCode::InvalidType => "INVALID_TYPE",
            QueryErrorCode::InvalidQueryFilterOperator => "INVALID_QUERY_FILTER_OPERATOR",
            QueryErrorCode::NumberOutsideValidRange => "NUMBER_OUTSIDE_VALID_RANGE",
            QueryErrorCode::InvalidSearch => "INVALID_SEARCH",
        }
    }

    /// The HTTP status to answer with.
    pub fn status(self) -> u16 {
        400
    }
}

impl fmt::Display for QueryErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in the query text an error is. Rows and columns are 1-based and count characters
/// (not bytes), like the platform's `ERROR at Row:1:Column:30`; `offset` is the 0-based
/// character offset into the whole text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    pub offset: usize,
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The position of byte offset `byte` in `text`. Offsets past the end or inside a
    /// character clamp to the nearest character boundary at or before them.
    pub fn at(text: &str, byte: usize) -> Position {
        let mut byte = byte.min(text.len());
        while !text.is_char_boundary(byte) {
            byte -= 1;
        }
        let before = &text[..byte];
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        Position {
            offset: before.chars().count(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// A failed parse, validation or search.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {}", self.message())]
pub struct QueryError {
    pub code: QueryErrorCode,
    /// The bare explanation, e.g. `unexpected token: 'FROM'`.
    pub detail: String,
    /// Where the error is; `None` only for errors about the whole query (none today).
    pub position: Option<Position>,
    /// The line of the query the error is on, for the caret display.
    pub line_text: Option<String>,
}

impl QueryError {
    /// An error at byte offset `byte` of `text`.
    pub fn at(code: QueryErrorCode, text: &str, byte: usize, detail: impl Into<String>) -> QueryError {
        let position = Position::at(text, byte);
        let line_text = text.lines().nth(position.line - 1).unwrap_or("").to_string();
        QueryError { code, detail: detail.into(), position: Some(position), line_text: Some(line_text) }
    }

    /// The message in the platform's layout: the line, a caret under the column, the row and
    /// column, then the detail.
    pub fn message(&self) -> String {
        match (&self.position, &self.line_text) {
            (Some(p), Some(line)) => {
                // Long lines are cut to a window around the error so the caret stays readable.
                let chars: Vec<char> = line.chars().collect();
                let col = p.column.saturating_sub(1).min(chars.len());
                let start = col.saturating_sub(60);
                let end = (col + 60).min(chars.len());
                let shown: String = chars[start..end].iter().collect();
                let caret = " ".repeat(col - start);
                format!("\n{shown}\n{caret}^\nERROR at Row:{}:Column:{}\n{}", p.line, p.column, self.detail)
            }
            _ => self.detail.clone(),
        }
    }
}

pub type Result<T, E = QueryError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters() {
        let p = Position::at("SELECT é\nFROM x", 11);
        assert_eq!(p, Position { offset: 10, line: 2, column: 2 });
        // Inside a multi-byte character: clamps back.
        assert_eq!(Position::at("é", 1).offset, 0);
        assert_eq!(Position::at("ab", 99).column, 3);
    }

    #[test]
    fn message_layout() {
        let e =
            QueryError::at(QueryErrorCode::MalformedQuery, "SELECT Id FROM", 14, "unexpected token: '<EOF>'");
        assert_eq!(
            e.message(),
            "\nSELECT Id FROM\n              ^\nERROR at Row:1:Column:15\nunexpected token: '<EOF>'"
        );
    }
}
