//! Recursive-descent parser for the SOQL subset (and the pieces of SOSL's `RETURNING`
//! clause that are SOQL: field lists, `WHERE`, `ORDER BY`, `LIMIT`, `OFFSET`).
//!
//! Grammar (keywords case-insensitive):
//!
//! ```text
//! query    := SELECT item (',' item)* [','] FROM ident [WHERE cond]
//!             [ORDER BY order (',' order)*] [LIMIT int] [OFFSET int]
//! item     := path | COUNT '(' [path] ')' [alias]
//! path     := ident ('.' ident)*
//! cond     := unary (AND unary)* | unary (OR unary)*      -- mixing needs parentheses
//! unary    := NOT unary | '(' cond ')' | path op value | path [NOT] IN '(' value, … ')'
//!           | path LIKE value
//! value    := 'string' | number | true | false | null | 2024-01-31
//!           | 2024-01-31T10:00:00Z | TODAY | LAST_N_DAYS ':' int | …
//! order    := path [ASC | DESC] [NULLS (FIRST | LAST)]
//! ```
//!
//! The one leniency over the platform is the trailing comma before `FROM`: the
//! implementation guide's ConversationParticipant example has one, and people copy it.

use crate::ast::*;
use crate::error::{QueryError, QueryErrorCode, Result};
use crate::lexer::{lex, Tok, Token};
use crate::literal::{relative_kind, RelativeDate};

/// The platform's largest `OFFSET`.
pub const MAX_OFFSET: u64 = 2000;

/// Parses a SOQL query. Errors are MALFORMED_QUERY with the position of the offending token.
pub fn parse_query(text: &str) -> Result<Query> {
    let tokens = lex(text, QueryErrorCode::MalformedQuery)?;
    let mut p = Parser { text, tokens, pos: 0, code: QueryErrorCode::MalformedQuery };
    let q = p.query()?;
    p.expect_eof()?;
    Ok(q)
}

pub(crate) struct Parser<'a> {
    pub text: &'a str,
    pub tokens: Vec<Token>,
    pub pos: usize,
    pub code: QueryErrorCode,
}

/// The clauses that may follow a field list, shared by SOQL and SOSL's `RETURNING`.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Tail {
    pub filter: Option<Cond>,
    pub order_by: Vec<OrderItem>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub offset_span: Span,
}

impl<'a> Parser<'a> {
    pub fn peek(&self) -> &Token {
        // The token list always ends with Eof and `pos` never passes it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, n: usize) -> &Token {
        &self.tokens[(self.pos + n).min(self.tokens.len() - 1)]
    }

    pub fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    pub fn at_kw(&self, kw: &str) -> bool {
        self.peek().is_kw(kw)
    }

    pub fn eat_kw(&mut self, kw: &str) -> bool {
        if self.at_kw(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub fn eat(&mut self, tok: &Tok) -> bool {
        if &self.peek().tok == tok {
            self.bump();
            true
        } else {
            false
        }
    }

    /// `unexpected token: 'X'` at the current token.
    pub fn unexpected(&self) -> QueryError {
        self.unexpected_token(self.peek())
    }

    pub fn unexpected_token(&self, t: &Token) -> QueryError {
        let shown = if t.tok == Tok::Eof { "<EOF>" } else { self.text.get(t.start..t.end).unwrap_or("") };
        self.error_at(t.start, format!("unexpected token: '{shown}'"))
    }

    pub fn error_at(&self, at: usize, detail: impl Into<String>) -> QueryError {
        QueryError::at(self.code, self.text, at, detail)
    }

    pub fn expect_kw(&mut self, kw: &str) -> Result<Token> {
        if self.at_kw(kw) {
            Ok(self.bump())
        } else {
            Err(self.unexpected())
        }
    }

    pub fn expect(&mut self, tok: &Tok) -> Result<Token> {
        if &self.peek().tok == tok {
            Ok(self.bump())
        } else {
            Err(self.unexpected())
        }
    }

    pub fn expect_eof(&mut self) -> Result<()> {
        self.expect(&Tok::Eof).map(|_| ())
    }

    pub fn ident(&mut self) -> Result<(String, Span)> {
        match &self.peek().tok {
            Tok::Ident(s) => {
                let s = s.clone();
                let t = self.bump();
                Ok((s, Span { start: t.start, end: t.end }))
            }
            _ => Err(self.unexpected()),
        }
    }

    fn query(&mut self) -> Result<Query> {
        self.expect_kw("SELECT")?;
        let select = self.select_list()?;
        self.expect_kw("FROM")?;
        let (from, from_span) = self.ident()?;
        let tail = self.tail(true)?;
        Ok(Query {
            text: self.text.to_string(),
            select,
            from,
            from_span,
            filter: tail.filter,
            order_by: tail.order_by,
            limit: tail.limit,
            offset: tail.offset,
            offset_span: tail.offset_span,
        })
    }

    /// Select items up to (not including) `FROM` or `)`.
    pub fn select_list(&mut self) -> Result<Vec<SelectItem>> {
        let mut items = vec![self.select_item()?];
        while self.eat(&Tok::Comma) {
            if self.at_kw("FROM") {
                break;
            }
            items.push(self.select_item()?);
        }
        Ok(items)
    }

    fn select_item(&mut self) -> Result<SelectItem> {
        if self.at_kw("COUNT") && self.peek_at(1).tok == Tok::LParen {
            let start = self.bump().start;
            self.bump();
            let field = if self.peek().tok == Tok::RParen { None } else { Some(self.path()?) };
            let end = self.expect(&Tok::RParen)?.end;
            let alias = match &self.peek().tok {
                Tok::Ident(s) if !s.eq_ignore_ascii_case("FROM") => {
                    let s = s.clone();
                    self.bump();
                    Some(s)
                }
                _ => None,
            };
            return Ok(SelectItem::Count { field, alias, span: Span { start, end } });
        }
        Ok(SelectItem::Field(self.path()?))
    }

    pub fn path(&mut self) -> Result<FieldPath> {
        let (first, span) = self.ident()?;
        let mut parts = vec![first];
        let mut end = span.end;
        while self.peek().tok == Tok::Dot {
            self.bump();
            let (next, s) = self.ident()?;
            parts.push(next);
            end = s.end;
        }
        Ok(FieldPath { parts, span: Span { start: span.start, end } })
    }

    /// `[WHERE …] [ORDER BY …] [LIMIT n] [OFFSET n]`.
    pub fn tail(&mut self, allow_offset: bool) -> Result<Tail> {
        let mut tail = Tail::default();
        if self.eat_kw("WHERE") {
            tail.filter = Some(self.cond()?);
        }
        if self.at_kw("ORDER") {
            self.bump();
            self.expect_kw("BY")?;
            loop {
                tail.order_by.push(self.order_item()?);
                if !self.eat(&Tok::Comma) {
                    break;
                }
            }
        }
        if self.eat_kw("LIMIT") {
            tail.limit = Some(self.integer()?.0);
        }
        if allow_offset && self.at_kw("OFFSET") {
            self.bump();
            let (n, span) = self.integer()?;
            if n > MAX_OFFSET {
                return Err(QueryError::at(
                    QueryErrorCode::NumberOutsideValidRange,
                    self.text,
                    span.start,
                    format!("Maximum SOQL offset allowed is {MAX_OFFSET}"),
                ));
            }
            tail.offset = Some(n);
            tail.offset_span = span;
        }
        Ok(tail)
    }

    fn order_item(&mut self) -> Result<OrderItem> {
        let field = self.path()?;
        let descending = if self.eat_kw("DESC") {
            true
        } else {
            self.eat_kw("ASC");
            false
        };
        let nulls_first = if self.eat_kw("NULLS") {
            if self.eat_kw("FIRST") {
                Some(true)
            } else {
                self.expect_kw("LAST")?;
                Some(false)
            }
        } else {
            None
        };
        Ok(OrderItem { field, descending, nulls_first })
    }

    /// A non-negative integer that fits in `u64`.
    fn integer(&mut self) -> Result<(u64, Span)> {
        let t = self.peek().clone();
        match &t.tok {
            Tok::Number(s) if s.bytes().all(|b| b.is_ascii_digit()) => {
                let n = s.parse::<u64>().map_err(|_| {
                    QueryError::at(
                        QueryErrorCode::NumberOutsideValidRange,
                        self.text,
                        t.start,
                        format!("number too large: {s}"),
                    )
                })?;
                self.bump();
                Ok((n, Span { start: t.start, end: t.end }))
            }
            _ => Err(self.unexpected()),
        }
    }

    pub fn cond(&mut self) -> Result<Cond> {
        let first = self.unary()?;
        let joiner = if self.at_kw("AND") {
            "AND"
        } else if self.at_kw("OR") {
            "OR"
        } else {
            return Ok(first);
        };
        let other = if joiner == "AND" { "OR" } else { "AND" };
        let mut parts = vec![first];
        while self.eat_kw(joiner) {
            parts.push(self.unary()?);
        }
        // The platform refuses `a AND b OR c`: the grouping must be written out.
        if self.at_kw(other) {
            return Err(self.unexpected());
        }
        Ok(if joiner == "AND" { Cond::And(parts) } else { Cond::Or(parts) })
    }

    fn unary(&mut self) -> Result<Cond> {
        if self.eat_kw("NOT") {
            return Ok(Cond::Not(Box::new(self.unary()?)));
        }
        if self.eat(&Tok::LParen) {
            let inner = self.cond()?;
            self.expect(&Tok::RParen)?;
            return Ok(inner);
        }
        let field = self.path()?;
        let op = match self.peek().tok {
            Tok::Eq => Some(CmpOp::Eq),
            Tok::Ne => Some(CmpOp::Ne),
            Tok::Lt => Some(CmpOp::Lt),
            Tok::Le => Some(CmpOp::Le),
            Tok::Gt => Some(CmpOp::Gt),
            Tok::Ge => Some(CmpOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.bump();
            let value = self.value()?;
            return Ok(Cond::Compare { field, op, value });
        }
        if self.eat_kw("LIKE") {
            let pattern = self.value()?;
            return Ok(Cond::Like { field, pattern });
        }
        let negated = self.at_kw("NOT") && self.peek_at(1).is_kw("IN");
        if negated {
            self.bump();
        }
        if self.eat_kw("IN") {
            self.expect(&Tok::LParen)?;
            if self.at_kw("SELECT") {
                return Err(self.error_at(self.peek().start, "semi-join subqueries are not supported"));
            }
            let mut values = vec![self.value()?];
            while self.eat(&Tok::Comma) {
                values.push(self.value()?);
            }
            self.expect(&Tok::RParen)?;
            return Ok(Cond::In { field, negated, values });
        }
        Err(self.unexpected())
    }

    fn value(&mut self) -> Result<Value> {
        let t = self.peek().clone();
        let mut span = Span { start: t.start, end: t.end };
        let literal = match &t.tok {
            Tok::Str(s) => Literal::Str(s.clone()),
            Tok::Number(s) => match s.parse::<f64>() {
                Ok(n) if n.is_finite() => Literal::Number(n, s.clone()),
                _ => return Err(self.error_at(t.start, format!("invalid number: {s}"))),
            },
            Tok::Date(d) => Literal::Date(*d),
            Tok::DateTime(d) => Literal::DateTime(*d),
            Tok::Ident(s) if s.eq_ignore_ascii_case("null") => Literal::Null,
            Tok::Ident(s) if s.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Tok::Ident(s) if s.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Tok::Ident(s) => match relative_kind(s) {
                Some(false) => {
                    Literal::Relative(RelativeDate::from_parts(s, None).ok_or_else(|| self.unexpected())?)
                }
                Some(true) => {
                    let name = s.clone();
                    self.bump();
                    self.expect(&Tok::Colon)?;
                    let nt = self.peek().clone();
                    let n = match &nt.tok {
                        Tok::Number(n) if n.bytes().all(|b| b.is_ascii_digit()) => n.parse::<u32>().ok(),
                        _ => return Err(self.unexpected()),
                    };
                    let n = n.ok_or_else(|| {
                        QueryError::at(
                            QueryErrorCode::NumberOutsideValidRange,
                            self.text,
                            nt.start,
                            format!("{name} takes a number up to {}", u32::MAX),
                        )
                    })?;
                    span.end = nt.end;
                    let lit = RelativeDate::from_parts(&name, Some(n)).ok_or_else(|| self.unexpected())?;
                    self.bump();
                    return Ok(Value { literal: Literal::Relative(lit), span });
                }
                None => return Err(self.unexpected()),
            },
            _ => return Err(self.unexpected()),
        };
        self.bump();
        Ok(Value { literal, span })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shapes() {
        let q = parse_query(
            "select Id, Owner.Name from VoiceCall where (CallType = 'Inbound' or CallType = 'Transfer') \
             and not CallDurationInSeconds < 10 and QueueName not in ('a', 'b') \
             and CallStartDateTime = LAST_N_DAYS:7 order by CallStartDateTime desc nulls last, Id limit 5 offset 2",
        )
        .unwrap();
        assert_eq!(q.select.len(), 2);
        assert_eq!(q.from, "VoiceCall");
        assert_eq!(q.limit, Some(5));
        assert_eq!(q.offset, Some(2));
        assert_eq!(q.order_by[0].nulls_first, Some(false));
        let Some(Cond::And(parts)) = &q.filter else { panic!("{:?}", q.filter) };
        assert_eq!(parts.len(), 4);
        assert!(matches!(
            &parts[3],
            Cond::Compare { value: Value { literal: Literal::Relative(RelativeDate::LastNDays(7)), .. }, .. }
        ));
    }

    #[test]
    fn mixing_and_or_needs_parentheses() {
        let e = parse_query("SELECT Id FROM Case WHERE A = 1 AND B = 2 OR C = 3").unwrap_err();
        assert_eq!(e.detail, "unexpected token: 'OR'");
        assert_eq!(e.position.unwrap().column, 43);
    }

    #[test]
    fn errors_carry_positions() {
        let e = parse_query("SELECT Id FROM").unwrap_err();
        assert_eq!(e.detail, "unexpected token: '<EOF>'");
        assert_eq!(e.position.unwrap().column, 15);
        let e = parse_query("SELECT Id FROM Case LIMIT 3 OFFSET 2001").unwrap_err();
        assert_eq!(e.code, QueryErrorCode::NumberOutsideValidRange);
        let e = parse_query("SELECT Id FROM Case WHERE Id IN (SELECT Id FROM Case)").unwrap_err();
        assert!(e.detail.contains("semi-join"));
    }

    #[test]
    fn trailing_comma_before_from() {
        let q = parse_query("SELECT AppType, ParticipantKey,\n FROM ConversationParticipant").unwrap();
        assert_eq!(q.select.len(), 2);
    }
}
