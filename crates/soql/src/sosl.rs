//! SOSL: `FIND {term} [IN … FIELDS] [RETURNING Object(fields [WHERE …] [ORDER BY …]
//! [LIMIT n] [OFFSET n]), …] [LIMIT n]`.
//!
//! The search term is words (`*` and `?` wildcards, backslash escapes), `"quoted phrases"`,
//! `AND`, `OR`, `AND NOT` and parentheses; adjacent words must all match. Text matches
//! whole words ignoring case. A term that looks like a phone number also matches phone
//! fields by digits, in any common format, with or without the `+1` country code.

use crate::ast::{FieldPath, SelectItem, Span};
use crate::bind::{bind, BoundQuery, FieldRef, Projection};
use crate::error::{QueryError, QueryErrorCode, Result};
use crate::eval::{matching, own_value, render_row, EvalContext};
use crate::lexer::{lex, Tok};
use crate::like::like_match;
use crate::parser::Parser;
use crate::schema::{FieldDef, FieldType, Schema};
use crate::source::RecordSource;
use serde_json::{json, Value};
use voxbridge_core::Record;

/// The platform's default and largest number of search results.
pub const MAX_SEARCH_RESULTS: u64 = 2000;

/// Which fields a search looks in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SearchScope {
    All,
    Name,
    Phone,
    Email,
}

/// A search term, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// A word or phrase: lower-cased tokens, each possibly with `*`/`?` wildcards, that must
    /// appear consecutively. `raw` is the text as written, for phone matching.
    Words {
        tokens: Vec<String>,
        raw: String,
    },
    And(Box<Term>, Box<Term>),
    Or(Box<Term>, Box<Term>),
    AndNot(Box<Term>, Box<Term>),
}

/// One `RETURNING` entry, checked against the schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Returning {
    pub query: BoundQuery,
    /// The object's text fields, which the term is matched against (narrowed by scope).
    pub text_fields: Vec<FieldDef>,
}

/// A parsed and checked SOSL search.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub term: Term,
    pub scope: SearchScope,
    pub returning: Vec<Returning>,
    pub limit: Option<u64>,
}

/// The REST answer: `{"searchRecords": […]}`.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    pub records: Vec<Value>,
}

impl SearchResult {
    pub fn to_json(&self) -> Value {
        json!({ "searchRecords": self.records })
    }
}

/// Parses `text` and checks its `RETURNING` objects and fields against `schema`. Without
/// `RETURNING`, every searchable object of the schema is searched, returning ids.
pub fn parse_search(text: &str, schema: &Schema) -> Result<Search> {
    let code = QueryErrorCode::MalformedSearch;
    let tokens = lex(text, code)?;
    let mut p = Parser { text, tokens, pos: 0, code };
    p.expect_kw("FIND")?;
    let term_tok = p.peek().clone();
    let Tok::SearchTerm(raw) = &term_tok.tok else {
        return Err(p.unexpected());
    };
    p.bump();
    let term = parse_term(raw, text, term_tok.start + 1)?;
    let mut scope = SearchScope::All;
    if p.eat_kw("IN") {
        scope = if p.eat_kw("ALL") {
            SearchScope::All
        } else if p.eat_kw("NAME") {
            SearchScope::Name
        } else if p.eat_kw("PHONE") {
            SearchScope::Phone
        } else if p.eat_kw("EMAIL") {
            SearchScope::Email
        } else {
            return Err(p.unexpected());
        };
        p.expect_kw("FIELDS")?;
    }
    let binder_schema = schema;
    let mut returning = Vec::new();
    if p.eat_kw("RETURNING") {
        loop {
            let (object, object_span) = p.ident()?;
            let mut select = Vec::new();
            let mut tail = Default::default();
            if p.eat(&Tok::LParen) {
                select = p.select_list()?;
                tail = p.tail(true)?;
                p.expect(&Tok::RParen)?;
            }
            returning.push(returning_entry(text, binder_schema, object, object_span, select, tail)?);
            if !p.eat(&Tok::Comma) {
                break;
            }
        }
    } else {
        for o in schema.objects().filter(|o| o.searchable) {
            let span = Span { start: 0, end: 0 };
            returning.push(returning_entry(
                text,
                schema,
                o.name.clone(),
                span,
                Vec::new(),
                Default::default(),
            )?);
        }
    }
    let limit = if p.eat_kw("LIMIT") {
        let t = p.peek().clone();
        match &t.tok {
            Tok::Number(s) if s.bytes().all(|b| b.is_ascii_digit()) => {
                p.bump();
                Some(s.parse::<u64>().unwrap_or(u64::MAX).min(MAX_SEARCH_RESULTS))
            }
            _ => return Err(p.unexpected()),
        }
    } else {
        None
    };
    p.expect_eof()?;
    Ok(Search { term, scope, returning, limit })
}

fn returning_entry(
    text: &str,
    schema: &Schema,
    object: String,
    object_span: Span,
    mut select: Vec<SelectItem>,
    tail: crate::parser::Tail,
) -> Result<Returning> {
    // Without a field list the platform returns the id only.
    if select.is_empty() {
        select.push(SelectItem::Field(FieldPath { parts: vec!["Id".into()], span: object_span }));
    }
    let q = crate::ast::Query {
        text: text.to_string(),
        select,
        from: object,
        from_span: object_span,
        filter: tail.filter,
        order_by: tail.order_by,
        limit: tail.limit,
        offset: tail.offset,
        offset_span: tail.offset_span,
    };
    let query = bind(&q, schema)?;
    if !matches!(query.projection, Projection::Fields(_)) {
        return Err(QueryError::at(
            QueryErrorCode::MalformedSearch,
            text,
            object_span.start,
            "aggregate functions are not allowed in RETURNING",
        ));
    }
    let text_fields = schema
        .object(&query.object)
        .map(|o| o.fields.iter().filter(|f| f.ty.is_text() && f.alias_of.is_none()).cloned().collect())
        .unwrap_or_default();
    Ok(Returning { query, text_fields })
}

/// Runs a search over `source`.
pub fn search(s: &Search, source: &dyn RecordSource, ctx: &EvalContext) -> SearchResult {
    let mut out = Vec::new();
    let total = usize::try_from(s.limit.unwrap_or(MAX_SEARCH_RESULTS)).unwrap_or(usize::MAX);
    for ret in &s.returning {
        let q = &ret.query;
        let Projection::Fields(paths) = &q.projection else { continue };
        let fields: Vec<(FieldType, FieldRef)> =
            scope_fields(&ret.text_fields, s.scope).map(|f| (f.ty, FieldRef::of(f))).collect();
        let hit = |r: &Record| {
            let values: Vec<(FieldType, String)> = fields
                .iter()
                .filter_map(|(ty, f)| match own_value(r, f) {
                    Value::String(v) => Some((*ty, v)),
                    _ => None,
                })
                .collect();
            term_matches(&s.term, &values)
        };
        let rows = matching(q, source, ctx, &hit);
        let skip = q.offset.map(|o| usize::try_from(o).unwrap_or(usize::MAX)).unwrap_or(0);
        let take = q.limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)).unwrap_or(usize::MAX);
        for r in rows.into_iter().skip(skip).take(take) {
            if out.len() >= total {
                return SearchResult { records: out };
            }
            out.push(render_row(r, paths, source, ctx));
        }
    }
    SearchResult { records: out }
}

/// The fields within `scope`.
fn scope_fields(fields: &[FieldDef], scope: SearchScope) -> impl Iterator<Item = &FieldDef> {
    fields.iter().filter(move |f| match scope {
        SearchScope::All => true,
        SearchScope::Name => f.name_field,
        SearchScope::Phone => f.ty == FieldType::Phone,
        SearchScope::Email => f.ty == FieldType::Email,
    })
}

fn term_matches(t: &Term, values: &[(FieldType, String)]) -> bool {
    match t {
        Term::And(a, b) => term_matches(a, values) && term_matches(b, values),
        Term::Or(a, b) => term_matches(a, values) || term_matches(b, values),
        Term::AndNot(a, b) => term_matches(a, values) && !term_matches(b, values),
        Term::Words { tokens, raw } => {
            let phone = phone_digits(raw);
            values.iter().any(|(ty, v)| {
                if *ty == FieldType::Phone {
                    if let (Some(want), Some(have)) = (&phone, phone_digits(v)) {
                        if *want == have {
                            return true;
                        }
                    }
                }
                let hay = tokenize(v, false);
                !tokens.is_empty()
                    && hay.windows(tokens.len()).any(|w| w.iter().zip(tokens).all(|(h, t)| like_match(t, h)))
            })
        }
    }
}

/// Digits of a phone number written in any common format (`+1 (415) 555-1234`,
/// `415.555.1234`, `14155551234`), without the North American `1` country code. `None`
/// if the text is not shaped like a phone number.
pub fn phone_digits(s: &str) -> Option<String> {
    let s = s.trim();
    if !s.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) {
        return None;
    }
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 7 || digits.len() > 15 {
        return None;
    }
    Some(match digits.strip_prefix('1') {
        Some(rest) if digits.len() == 11 => rest.to_string(),
        _ => digits,
    })
}

/// Lower-cased runs of letters and digits. With `wild`, `*` and `?` stay in the tokens as
/// LIKE's `%` and `_`.
fn tokenize(s: &str, wild: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        if c.is_alphanumeric() {
            cur.extend(c.to_lowercase());
        } else if wild && c == '*' {
            cur.push('%');
        } else if wild && c == '?' {
            cur.push('_');
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Parses the text between the braces. `base` is its byte offset in the whole search, for
/// error positions.
fn parse_term(raw: &str, text: &str, base: usize) -> Result<Term> {
    // A whole term shaped like a phone number is one number, even with parentheses that
    // would otherwise group: `{(415) 555-1234}`.
    if phone_digits(raw).is_some() {
        return Ok(Term::Words { tokens: tokenize(raw, true), raw: raw.trim().to_string() });
    }
    let words = split_term(raw);
    let err =
        |at: usize, detail: String| QueryError::at(QueryErrorCode::MalformedSearch, text, base + at, detail);
    let mut pos = 0;
    let term = term_or(&words, &mut pos, &err)?;
    if let Some(w) = words.get(pos) {
        return Err(err(w.at, format!("unexpected token: '{}'", w.text)));
    }
    // The platform refuses terms with fewer than two characters besides wildcards.
    let meaningful: usize = words
        .iter()
        .filter(|w| w.kind == WordKind::Word || w.kind == WordKind::Phrase)
        .map(|w| w.text.chars().filter(|c| c.is_alphanumeric()).count())
        .sum();
    if meaningful < 2 {
        return Err(QueryError::at(
            QueryErrorCode::InvalidSearch,
            text,
            base,
            "search term must be longer than one character",
        ));
    }
    Ok(term)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WordKind {
    Word,
    Phrase,
    And,
    Or,
    Not,
    Open,
    Close,
}

#[derive(Debug, Clone)]
struct Word {
    kind: WordKind,
    text: String,
    at: usize,
}

fn split_term(raw: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut chars = raw.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '(' || c == ')' {
            chars.next();
            let kind = if c == '(' { WordKind::Open } else { WordKind::Close };
            out.push(Word { kind, text: c.to_string(), at: i });
        } else if c == '"' {
            chars.next();
            let mut text = String::new();
            while let Some((_, c)) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => text.extend(chars.next().map(|(_, c)| c)),
                    c => text.push(c),
                }
            }
            out.push(Word { kind: WordKind::Phrase, text, at: i });
        } else {
            let mut text = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() || c == '(' || c == ')' || c == '"' {
                    break;
                }
                chars.next();
                if c == '\\' {
                    text.extend(chars.next().map(|(_, c)| c));
                } else {
                    text.push(c);
                }
            }
            let kind = match text.as_str() {
                "AND" | "and" => WordKind::And,
                "OR" | "or" => WordKind::Or,
                "NOT" | "not" => WordKind::Not,
                _ => WordKind::Word,
            };
            out.push(Word { kind, text, at: i });
        }
    }
    out
}

type TermErr<'e> = dyn Fn(usize, String) -> QueryError + 'e;

fn term_or(w: &[Word], pos: &mut usize, err: &TermErr) -> Result<Term> {
    let mut left = term_and(w, pos, err)?;
    while w.get(*pos).is_some_and(|x| x.kind == WordKind::Or) {
        *pos += 1;
        let right = term_and(w, pos, err)?;
        left = Term::Or(Box::new(left), Box::new(right));
    }
    Ok(left)
}

fn term_and(w: &[Word], pos: &mut usize, err: &TermErr) -> Result<Term> {
    let mut left = term_atom(w, pos, err)?;
    loop {
        match w.get(*pos).map(|x| x.kind) {
            Some(WordKind::And) => {
                *pos += 1;
                if w.get(*pos).is_some_and(|x| x.kind == WordKind::Not) {
                    *pos += 1;
                    let right = term_atom(w, pos, err)?;
                    left = Term::AndNot(Box::new(left), Box::new(right));
                } else {
                    let right = term_atom(w, pos, err)?;
                    left = Term::And(Box::new(left), Box::new(right));
                }
            }
            Some(WordKind::Word | WordKind::Phrase | WordKind::Open) => {
                let right = term_atom(w, pos, err)?;
                left = Term::And(Box::new(left), Box::new(right));
            }
            _ => return Ok(left),
        }
    }
}

fn term_atom(w: &[Word], pos: &mut usize, err: &TermErr) -> Result<Term> {
    let Some(word) = w.get(*pos) else {
        let at = w.last().map(|x| x.at + x.text.len()).unwrap_or(0);
        return Err(err(at, "unexpected end of search term".to_string()));
    };
    *pos += 1;
    match word.kind {
        WordKind::Open => {
            let inner = term_or(w, pos, err)?;
            match w.get(*pos) {
                Some(x) if x.kind == WordKind::Close => {
                    *pos += 1;
                    Ok(inner)
                }
                Some(x) => Err(err(x.at, format!("unexpected token: '{}'", x.text))),
                None => Err(err(word.at, "unmatched '(' in search term".to_string())),
            }
        }
        WordKind::Word | WordKind::Phrase => {
            Ok(Term::Words { tokens: tokenize(&word.text, true), raw: word.text.clone() })
        }
        _ => Err(err(word.at, format!("unexpected token: '{}'", word.text))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_formats() {
        let want = Some("4155551234".to_string());
        for f in ["+14155551234", "(415) 555-1234", "415.555.1234", "1 415 555 1234", "4155551234"] {
            assert_eq!(phone_digits(f), want, "{f}");
        }
        assert_eq!(phone_digits("+44 20 7946 0958"), Some("442079460958".to_string()));
        assert_eq!(phone_digits("acme"), None);
        assert_eq!(phone_digits("12"), None);
    }

    #[test]
    fn term_grammar() {
        let s = Schema::standard();
        let t = |q: &str| parse_search(q, &s).map(|x| x.term);
        assert!(matches!(t("FIND {acme corp}").unwrap(), Term::And(..)));
        assert!(matches!(t("FIND {acme OR globex}").unwrap(), Term::Or(..)));
        assert!(matches!(t("FIND {acme AND NOT globex}").unwrap(), Term::AndNot(..)));
        assert!(
            matches!(t("FIND {\"acme corp\"}").unwrap(), Term::Words { tokens, .. } if tokens.len() == 2)
        );
        assert_eq!(t("FIND {a*}").unwrap_err().code, QueryErrorCode::InvalidSearch);
        let e = t("FIND {acme OR}").unwrap_err();
        assert_eq!(e.code, QueryErrorCode::MalformedSearch);
        assert!(t("FIND {(acme}").is_err());
        assert!(t("FIND {acme").is_err());
    }
}
