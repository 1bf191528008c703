//! Next Best Action filters, sans-IO: the small expression language of a recommendation
//! strategy's filter element, e.g. `$Request.key != '' && CONTAINS(Name, $Request.key)`.
//!
//! `$Request.<key>` reads the payload given to `updateNextBestActions`, `$Record.<Field>` the
//! record the recommendations are for, and a bare name a field of the recommendation being
//! filtered. Operators: `&&` `||` `!`, `=`/`==` `!=`/`<>` `<` `<=` `>` `>=`, parentheses;
//! functions `CONTAINS`, `BEGINS`, `ISBLANK`, `NOT`, `AND`, `OR`, `LOWER`, `UPPER`. As on the
//! CRM platform a missing value is blank and compares equal to `''`. Parsing is bounded
//! (length and nesting), so no input can exhaust the stack.

use serde_json::Value;

/// Longest filter accepted, in bytes.
const MAX_LEN: usize = 4_000;
/// Deepest nesting of parentheses, calls and unary operators.
const MAX_DEPTH: usize = 64;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    /// `$Request.key`
    Request(String),
    /// `$Record.Field`
    Record(String),
    /// A field of the recommendation.
    Field(String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(Op, Box<Expr>, Box<Expr>),
    Call(Func, Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Contains,
    Begins,
    IsBlank,
    Not,
    And,
    Or,
    Lower,
    Upper,
}

impl Func {
    fn named(name: &str) -> Option<Func> {
        Some(match name.to_ascii_uppercase().as_str() {
            "CONTAINS" => Func::Contains,
            "BEGINS" => Func::Begins,
            "ISBLANK" => Func::IsBlank,
            "NOT" => Func::Not,
            "AND" => Func::And,
            "OR" => Func::Or,
            "LOWER" => Func::Lower,
            "UPPER" => Func::Upper,
            _ => return None,
        })
    }

    /// (least, most) arguments.
    fn arity(self) -> (usize, usize) {
        match self {
            Func::Contains | Func::Begins => (2, 2),
            Func::IsBlank | Func::Not | Func::Lower | Func::Upper => (1, 1),
            Func::And | Func::Or => (1, 32),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Num(f64),
    Ident(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn lex(src: &str) -> Result<Vec<(usize, Tok)>, String> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'(' => {
                out.push((start, Tok::LParen));
                i += 1;
            }
            b')' => {
                out.push((start, Tok::RParen));
                i += 1;
            }
            b',' => {
                out.push((start, Tok::Comma));
                i += 1;
            }
            b'\'' | b'"' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                let mut closed = false;
                while i < b.len() {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        let ch = src[i + 1..].chars().next().unwrap_or('\u{fffd}');
                        s.push(ch);
                        i += 1 + ch.len_utf8();
                        continue;
                    }
                    if b[i] == quote {
                        closed = true;
                        i += 1;
                        break;
                    }
                    // Copy whole UTF-8 characters.
                    let ch = src[i..].chars().next().unwrap_or('\u{fffd}');
                    s.push(ch);
                    i += ch.len_utf8().max(1);
                }
                if !closed {
                    return Err(format!("unterminated string starting at {start}"));
                }
                out.push((start, Tok::Str(s)));
            }
            b'0'..=b'9' => {
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                    i += 1;
                }
                let n: f64 = src[start..i].parse().map_err(|_| format!("bad number at {start}"))?;
                out.push((start, Tok::Num(n)));
            }
            b'$' | b'_' | b'a'..=b'z' | b'A'..=b'Z' => {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                    i += 1;
                }
                out.push((start, Tok::Ident(src[start..i].to_string())));
            }
            _ => {
                let two = src.get(i..i + 2).unwrap_or("");
                let op: &'static str = match two {
                    "&&" => "&&",
                    "||" => "||",
                    "==" => "==",
                    "!=" => "!=",
                    "<>" => "!=",
                    "<=" => "<=",
                    ">=" => ">=",
                    _ => "",
                };
                if !op.is_empty() {
                    out.push((start, Tok::Op(op)));
                    i += 2;
                    continue;
                }
                let one: &'static str = match c {
                    b'=' => "==",
                    b'<' => "<",
                    b'>' => ">",
                    b'!' => "!",
                    _ => {
                        let ch = src[i..].chars().next().unwrap_or('?');
                        return Err(format!("unexpected `{ch}` at {start}"));
                    }
                };
                out.push((start, Tok::Op(one)));
                i += 1;
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    depth: usize,
    len: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.1)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map(|t| t.0).unwrap_or(self.len)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|t| t.1.clone());
        self.pos += 1;
        t
    }

    fn deeper(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("the filter nests deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::Op("||")) {
            self.pos += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Tok::Op("&&")) {
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek() == Some(&Tok::Op("!")) {
            self.pos += 1;
            self.deeper()?;
            let e = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(e)));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Expr, String> {
        let left = self.primary()?;
        let op = match self.peek() {
            Some(Tok::Op("==")) => Op::Eq,
            Some(Tok::Op("!=")) => Op::Ne,
            Some(Tok::Op("<")) => Op::Lt,
            Some(Tok::Op("<=")) => Op::Le,
            Some(Tok::Op(">")) => Op::Gt,
            Some(Tok::Op(">=")) => Op::Ge,
            _ => return Ok(left),
        };
        self.pos += 1;
        let right = self.primary()?;
        Ok(Expr::Cmp(op, Box::new(left), Box::new(right)))
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let at = self.at();
        match self.next() {
            Some(Tok::Str(s)) => Ok(Expr::Str(s)),
            Some(Tok::Num(n)) => Ok(Expr::Num(n)),
            Some(Tok::LParen) => {
                self.deeper()?;
                let e = self.or()?;
                self.depth -= 1;
                match self.next() {
                    Some(Tok::RParen) => Ok(e),
                    _ => Err(format!("expected `)` at {}", self.at())),
                }
            }
            Some(Tok::Ident(name)) => {
                if self.peek() == Some(&Tok::LParen) {
                    self.pos += 1;
                    let f = Func::named(&name).ok_or_else(|| format!("unknown function `{name}` at {at}"))?;
                    self.deeper()?;
                    let mut args = Vec::new();
                    if self.peek() != Some(&Tok::RParen) {
                        loop {
                            args.push(self.or()?);
                            match self.next() {
                                Some(Tok::Comma) => {}
                                Some(Tok::RParen) => break,
                                _ => return Err(format!("expected `,` or `)` at {}", self.at())),
                            }
                        }
                    } else {
                        self.pos += 1;
                    }
                    self.depth -= 1;
                    let (lo, hi) = f.arity();
                    if args.len() < lo || args.len() > hi {
                        return Err(format!(
                            "{} takes {lo} to {hi} arguments, got {}",
                            name.to_uppercase(),
                            args.len()
                        ));
                    }
                    return Ok(Expr::Call(f, args));
                }
                if let Some(k) = name.strip_prefix("$Request.") {
                    return if k.is_empty() {
                        Err(format!("`$Request.` needs a key at {at}"))
                    } else {
                        Ok(Expr::Request(k.into()))
                    };
                }
                if let Some(k) = name.strip_prefix("$Record.") {
                    return if k.is_empty() {
                        Err(format!("`$Record.` needs a field at {at}"))
                    } else {
                        Ok(Expr::Record(k.into()))
                    };
                }
                if name.starts_with('$') {
                    return Err(format!(
                        "unknown variable `{name}` at {at}; use $Request.key or $Record.Field"
                    ));
                }
                match name.to_ascii_lowercase().as_str() {
                    "true" => Ok(Expr::Bool(true)),
                    "false" => Ok(Expr::Bool(false)),
                    "null" => Ok(Expr::Null),
                    _ => Ok(Expr::Field(name)),
                }
            }
            Some(t) => Err(format!("unexpected {t:?} at {at}")),
            None => Err("the filter ends too early".into()),
        }
    }
}

/// Parses a filter; errors name the byte offset.
pub fn parse(src: &str) -> Result<Expr, String> {
    if src.len() > MAX_LEN {
        return Err(format!("the filter is longer than {MAX_LEN} bytes"));
    }
    let toks = lex(src)?;
    if toks.is_empty() {
        return Err("the filter is empty".into());
    }
    let mut p = Parser { toks, pos: 0, depth: 0, len: src.len() };
    let e = p.or()?;
    if p.pos < p.toks.len() {
        return Err(format!("unexpected text at {}", p.at()));
    }
    Ok(e)
}

/// What a filter reads: the request payload, the record, the recommendation's fields.
pub struct Scope<'a> {
    pub request: &'a serde_json::Map<String, Value>,
    pub record: &'a serde_json::Map<String, Value>,
    pub candidate: &'a serde_json::Map<String, Value>,
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Null => false,
        Value::String(s) => !s.is_empty() && s != "false",
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        _ => true,
    }
}

fn blank(v: &Value) -> bool {
    matches!(v, Value::Null) || matches!(v, Value::String(s) if s.is_empty())
}

fn lookup(map: &serde_json::Map<String, Value>, key: &str) -> Value {
    map.get(key)
        .or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
        .cloned()
        .unwrap_or(Value::Null)
}

fn compare(op: Op, a: &Value, b: &Value) -> bool {
    use std::cmp::Ordering;
    let ord = match (a, b) {
        _ if blank(a) && blank(b) => Some(Ordering::Equal),
        (Value::Number(x), Value::Number(y)) => {
            x.as_f64().zip(y.as_f64()).and_then(|(x, y)| x.partial_cmp(&y))
        }
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => Some(text(a).cmp(&text(b))),
    };
    match (op, ord) {
        (Op::Eq, o) => o == Some(Ordering::Equal),
        (Op::Ne, o) => o != Some(Ordering::Equal),
        (_, None) => false,
        (Op::Lt, Some(o)) => o == Ordering::Less,
        (Op::Le, Some(o)) => o != Ordering::Greater,
        (Op::Gt, Some(o)) => o == Ordering::Greater,
        (Op::Ge, Some(o)) => o != Ordering::Less,
    }
}

/// Evaluates to a JSON value (parsing bounded the depth, so recursion is bounded too).
pub fn eval(e: &Expr, s: &Scope) -> Value {
    match e {
        Expr::Str(v) => Value::String(v.clone()),
        Expr::Num(n) => serde_json::Number::from_f64(*n).map(Value::Number).unwrap_or(Value::Null),
        Expr::Bool(b) => Value::Bool(*b),
        Expr::Null => Value::Null,
        Expr::Request(k) => lookup(s.request, k),
        Expr::Record(k) => lookup(s.record, k),
        Expr::Field(k) => lookup(s.candidate, k),
        Expr::Not(x) => Value::Bool(!truthy(&eval(x, s))),
        Expr::And(a, b) => Value::Bool(truthy(&eval(a, s)) && truthy(&eval(b, s))),
        Expr::Or(a, b) => Value::Bool(truthy(&eval(a, s)) || truthy(&eval(b, s))),
        Expr::Cmp(op, a, b) => Value::Bool(compare(*op, &eval(a, s), &eval(b, s))),
        Expr::Call(f, args) => {
            let arg = |i: usize| args.get(i).map(|a| eval(a, s)).unwrap_or(Value::Null);
            match f {
                Func::Contains => Value::Bool(text(&arg(0)).contains(&text(&arg(1)))),
                Func::Begins => Value::Bool(text(&arg(0)).starts_with(&text(&arg(1)))),
                Func::IsBlank => Value::Bool(blank(&arg(0))),
                Func::Not => Value::Bool(!truthy(&arg(0))),
                Func::And => Value::Bool(args.iter().all(|a| truthy(&eval(a, s)))),
                Func::Or => Value::Bool(args.iter().any(|a| truthy(&eval(a, s)))),
                Func::Lower => Value::String(text(&arg(0)).to_lowercase()),
                Func::Upper => Value::String(text(&arg(0)).to_uppercase()),
            }
        }
    }
}

/// Whether a candidate passes the filter.
pub fn matches(e: &Expr, s: &Scope) -> bool {
    truthy(&eval(e, s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn check(filter: &str, request: Value, candidate: Value) -> bool {
        let e = parse(filter).unwrap_or_else(|err| panic!("{filter}: {err}"));
        let (r, rec, c) = (obj(request), obj(json!({"Subject": "Billing"})), obj(candidate));
        matches(&e, &Scope { request: &r, record: &rec, candidate: &c })
    }

    #[test]
    fn the_guides_filter() {
        let f = "$Request.key != '' && CONTAINS (Name, $Request.key)";
        assert!(check(f, json!({"key": "refund"}), json!({"Name": "Offer a refund"})));
        assert!(!check(f, json!({"key": "refund"}), json!({"Name": "Upgrade plan"})));
        assert!(!check(f, json!({"key": ""}), json!({"Name": "Offer a refund"})));
        assert!(!check(f, json!({}), json!({"Name": "Offer a refund"})), "a missing key is blank");
    }

    #[test]
    fn operators_functions_and_scopes() {
        assert!(check(
            "$Request.intent = 'refund' || $Request.intent == 'credit'",
            json!({"intent": "credit"}),
            json!({})
        ));
        assert!(check(
            "NOT(ISBLANK(Description)) && BEGINS(LOWER(Name), 'offer')",
            json!({}),
            json!({"Name": "OFFER x", "Description": "d"})
        ));
        assert!(check("$Record.Subject <> 'Sales' && !(Score < 3)", json!({}), json!({"Score": 5})));
        assert!(check("AND(true, OR(false, $Request.n >= 2))", json!({"n": 2}), json!({})));
        assert!(check("UPPER(\"a\\\"b\") = 'A\"B'", json!({}), json!({})));
        assert!(!check("Missing > 1", json!({}), json!({})));
    }

    #[test]
    fn bad_filters_are_errors_not_panics() {
        for f in [
            "",
            "(",
            "CONTAINS(Name)",
            "'open",
            "Name ==",
            "FOO(1)",
            "$Other.x",
            "a b",
            "1 @ 2",
            "$Request.",
            "é",
        ] {
            assert!(parse(f).is_err(), "{f}");
        }
        let deep = format!("{}1{}", "(".repeat(500), ")".repeat(500));
        assert!(parse(&deep).unwrap_err().contains("nests deeper"));
        let bangs = format!("{}true", "!".repeat(500));
        assert!(parse(&bangs).is_err());
        assert!(parse(&"x".repeat(5000)).is_err());
    }
}
