//! Tokens of SOQL and SOSL, with byte spans for error positions.
//!
//! Literals are decoded here (string escapes, dates, date-times) so the parser only deals
//! in shapes, and a malformed literal is reported at the literal itself.

use crate::error::{QueryError, QueryErrorCode, Result};
use crate::literal::{parse_date_time, unescape_string};
use chrono::{DateTime, FixedOffset, NaiveDate};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Str(String),
    /// The literal as written; the parser decides whether it must be an integer.
    Number(String),
    Date(NaiveDate),
    DateTime(DateTime<FixedOffset>),
    /// The raw text between `{` and `}` in SOSL, escapes kept.
    SearchTerm(String),
    Comma,
    LParen,
    RParen,
    Dot,
    Colon,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Byte offsets into the query text.
    pub start: usize,
    pub end: usize,
}

impl Token {
    /// True when the token is the keyword `kw` (compared case-insensitively).
    pub fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.tok, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }
}

/// Splits `text` into tokens ending with `Eof`. `code` is the error code for lexical errors
/// (MALFORMED_QUERY or MALFORMED_SEARCH).
pub(crate) fn lex(text: &str, code: QueryErrorCode) -> Result<Vec<Token>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |at: usize, detail: String| QueryError::at(code, text, at, detail);
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let simple = |tok: Tok, len: usize| Token { tok, start, end: start + len };
        let token = match c {
            b',' => simple(Tok::Comma, 1),
            b'(' => simple(Tok::LParen, 1),
            b')' => simple(Tok::RParen, 1),
            b'.' => simple(Tok::Dot, 1),
            b':' => simple(Tok::Colon, 1),
            b'=' => simple(Tok::Eq, 1),
            b'!' if bytes.get(i + 1) == Some(&b'=') => simple(Tok::Ne, 2),
            b'<' if bytes.get(i + 1) == Some(&b'>') => simple(Tok::Ne, 2),
            b'<' if bytes.get(i + 1) == Some(&b'=') => simple(Tok::Le, 2),
            b'<' => simple(Tok::Lt, 1),
            b'>' if bytes.get(i + 1) == Some(&b'=') => simple(Tok::Ge, 2),
            b'>' => simple(Tok::Gt, 1),
            b'\'' => {
                let (value, end) = lex_string(text, i).map_err(|(at, d)| err(at, d))?;
                Token { tok: Tok::Str(value), start, end }
            }
            b'{' => {
                let end = search_term_end(bytes, i + 1)
                    .ok_or_else(|| err(i, "unmatched '{' in search term".to_string()))?;
                Token { tok: Tok::SearchTerm(text[i + 1..end].to_string()), start, end: end + 1 }
            }
            b'0'..=b'9' if looks_like_date(bytes, i) => {
                let end = date_end(bytes, i);
                let raw = &text[i..end];
                let tok = parse_date_time(raw)
                    .ok_or_else(|| err(i, format!("invalid date or date-time literal: '{raw}'")))?;
                Token { tok, start, end }
            }
            b'0'..=b'9' | b'-' | b'+' => {
                let mut j = i + 1;
                if (c == b'-' || c == b'+') && !bytes.get(j).is_some_and(u8::is_ascii_digit) {
                    return Err(err(i, unexpected_char(text, i)));
                }
                while j < bytes.len() && bytes[j].is_ascii_digit() {
                    j += 1;
                }
                if bytes.get(j) == Some(&b'.') && bytes.get(j + 1).is_some_and(u8::is_ascii_digit) {
                    j += 1;
                    while j < bytes.len() && bytes[j].is_ascii_digit() {
                        j += 1;
                    }
                }
                if bytes.get(j).is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_') {
                    return Err(err(j, unexpected_char(text, j)));
                }
                Token { tok: Tok::Number(text[i..j].to_string()), start, end: j }
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let mut j = i + 1;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                    j += 1;
                }
                Token { tok: Tok::Ident(text[i..j].to_string()), start, end: j }
            }
            _ => return Err(err(i, unexpected_char(text, i))),
        };
        i = token.end;
        out.push(token);
    }
    out.push(Token { tok: Tok::Eof, start: text.len(), end: text.len() });
    Ok(out)
}

fn unexpected_char(text: &str, at: usize) -> String {
    let ch = text.get(at..).and_then(|s| s.chars().next()).unwrap_or(' ');
    format!("unexpected token: '{ch}'")
}

/// Reads a single-quoted string starting at `start`; returns the decoded value and the
/// byte after the closing quote, or the offset and text of the problem.
fn lex_string(text: &str, start: usize) -> Result<(String, usize), (usize, String)> {
    let bytes = text.as_bytes();
    let mut j = start + 1;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' => j += 2,
            b'\'' => {
                let raw = &text[start + 1..j];
                let value = unescape_string(raw).map_err(|(off, d)| (start + 1 + off, d))?;
                return Ok((value, j + 1));
            }
            _ => j += 1,
        }
    }
    Err((start, "unterminated string literal".to_string()))
}

/// The index of the `}` that closes a SOSL term whose text starts at `from`; a backslash
/// escapes the next character.
fn search_term_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut j = from;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' => j += 2,
            b'}' => return Some(j),
            _ => j += 1,
        }
    }
    None
}

/// `dddd-dd-dd` starts a date literal.
fn looks_like_date(bytes: &[u8], i: usize) -> bool {
    let shape = b"0000-00-00";
    bytes.len() >= i + shape.len()
        && shape.iter().zip(&bytes[i..]).all(|(s, b)| if *s == b'0' { b.is_ascii_digit() } else { b == s })
}

/// The end of a date or date-time literal: the date, then optionally `T` and everything a
/// time with fraction and offset may contain.
fn date_end(bytes: &[u8], i: usize) -> usize {
    let mut j = i + 10;
    if bytes.get(j) == Some(&b'T') {
        j += 1;
        while j < bytes.len()
            && (bytes[j].is_ascii_digit() || matches!(bytes[j], b':' | b'.' | b'+' | b'-' | b'Z'))
        {
            j += 1;
        }
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s, QueryErrorCode::MalformedQuery).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn operators_and_literals() {
        assert_eq!(
            toks("a<>b != <= >= < > = -1.5 'x\\'y' 2024-01-31"),
            vec![
                Tok::Ident("a".into()),
                Tok::Ne,
                Tok::Ident("b".into()),
                Tok::Ne,
                Tok::Le,
                Tok::Ge,
                Tok::Lt,
                Tok::Gt,
                Tok::Eq,
                Tok::Number("-1.5".into()),
                Tok::Str("x'y".into()),
                Tok::Date(NaiveDate::from_ymd_opt(2024, 1, 31).unwrap()),
                Tok::Eof,
            ]
        );
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = lex("SELECT Id FROM X WHERE Name = 'abc", QueryErrorCode::MalformedQuery).unwrap_err();
        assert_eq!(e.position.unwrap().column, 31);
        let e = lex("a = 'x\\qy'", QueryErrorCode::MalformedQuery).unwrap_err();
        assert_eq!(e.position.unwrap().column, 7);
        let e = lex("a = 2024-02-30", QueryErrorCode::MalformedQuery).unwrap_err();
        assert_eq!(e.position.unwrap().column, 5);
        assert!(lex("a # b", QueryErrorCode::MalformedQuery).unwrap_err().detail.contains("'#'"));
    }
}
