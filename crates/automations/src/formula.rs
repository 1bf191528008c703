//! The formula language of automations: a small subset of the platform's formulas.
//!
//! Literals (`"text"`, `'text'`, `42`, `1.5`, `TRUE`, `FALSE`, `NULL`), names (`IVRType__c`,
//! `$Record.FromPhoneNumber`, `existingCase.Id`, a formula's name), the merge syntax
//! `{!$Record.Id}` (read as parentheses), operators (`=` `==` `!=` `<>` `<` `>` `<=` `>=`
//! `&&` `||` `&` `+` `-` `*` `/`, unary `-` and `!`) and the functions in [`FUNCTIONS`].
//!
//! Parsing never panics and bounds nesting, so any text is safe to load; evaluation is
//! total over values too (type mismatches are [`EvalError`]s). Blank text and null are the
//! same value, as on the platform: `ISBLANK("")` is true and `"" = NULL` holds.

use std::fmt;

/// How deep parentheses and operators may nest.
const MAX_DEPTH: usize = 48;

/// A value formulas compute with.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Text(String),
    Number(f64),
    Bool(bool),
}

impl Value {
    /// The value of a record field: text, number or checkbox; anything else is its JSON.
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::String(s) => Value::Text(s.clone()),
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => n.as_f64().map(Value::Number).unwrap_or(Value::Null),
            other => Value::Text(other.to_string()),
        }
    }

    /// The field value to store: integral numbers as integers.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Text(s) if s.is_empty() => serde_json::Value::Null,
            Value::Text(s) => s.clone().into(),
            Value::Bool(b) => (*b).into(),
            Value::Number(n) if n.fract() == 0.0 && n.abs() < 9e15 => (*n as i64).into(),
            Value::Number(n) => serde_json::Number::from_f64(*n).map(Into::into).unwrap_or_default(),
        }
    }

    pub fn is_blank(&self) -> bool {
        match self {
            Value::Null => true,
            Value::Text(s) => s.trim().is_empty(),
            _ => false,
        }
    }

    /// The value as text (`TEXT()`): null is empty, integral numbers have no fraction.
    pub fn to_text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Text(s) => s.clone(),
            Value::Bool(b) => if *b { "true" } else { "false" }.to_string(),
            Value::Number(n) if n.fract() == 0.0 && n.abs() < 9e15 => format!("{}", *n as i64),
            Value::Number(n) => format!("{n}"),
        }
    }
}

/// A parse error at a 1-based character column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormulaError {
    pub column: usize,
    pub message: String,
}

impl fmt::Display for FormulaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

/// Why a formula could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError(pub String);

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    And,
    Or,
    Concat,
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Lit(Value),
    /// A name: dot-separated segments (`$Record.Id` is `["$Record", "Id"]`).
    Name(Vec<String>),
    Call(&'static str, Vec<Expr>),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
}

/// The functions formulas may call, with their least and greatest number of arguments.
pub const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("AND", 1, 64),
    ("OR", 1, 64),
    ("NOT", 1, 1),
    ("IF", 3, 3),
    ("ISBLANK", 1, 1),
    ("ISNULL", 1, 1),
    ("BLANKVALUE", 2, 2),
    ("ISPICKVAL", 2, 2),
    ("LEFT", 2, 2),
    ("RIGHT", 2, 2),
    ("MID", 3, 3),
    ("LEN", 1, 1),
    ("LPAD", 2, 3),
    ("RPAD", 2, 3),
    ("TRIM", 1, 1),
    ("UPPER", 1, 1),
    ("LOWER", 1, 1),
    ("TEXT", 1, 1),
    ("VALUE", 1, 1),
    ("CONTAINS", 2, 2),
    ("BEGINS", 2, 2),
    ("SUBSTITUTE", 3, 3),
];

/// A parsed formula and its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Formula {
    pub text: String,
    pub expr: Expr,
}

impl Formula {
    /// Every name the formula reads, in order of appearance.
    pub fn names(&self) -> Vec<&[String]> {
        let mut out = Vec::new();
        collect_names(&self.expr, &mut out);
        out
    }
}

fn collect_names<'e>(e: &'e Expr, out: &mut Vec<&'e [String]>) {
    match e {
        Expr::Lit(_) => {}
        Expr::Name(n) => out.push(n),
        Expr::Call(_, args) => args.iter().for_each(|a| collect_names(a, out)),
        Expr::Neg(a) | Expr::Not(a) => collect_names(a, out),
        Expr::Binary(_, a, b) => {
            collect_names(a, out);
            collect_names(b, out);
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Text(String),
    Num(f64),
    Open,
    Close,
    Comma,
    Op(&'static str),
}

fn lex(text: &str) -> Result<Vec<(usize, Tok)>, FormulaError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |i: usize, message: String| FormulaError { column: i + 1, message };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '{' && chars.get(i + 1) == Some(&'!') {
            out.push((start, Tok::Open));
            i += 2;
            continue;
        }
        let tok = match c {
            '(' => Tok::Open,
            ')' | '}' => Tok::Close,
            ',' => Tok::Comma,
            '"' | '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(start, "the text is not closed".into())),
                        Some(&q) if q == c => break,
                        Some('\\') => {
                            let esc = match chars.get(i + 1) {
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some(&x @ ('\\' | '"' | '\'')) => x,
                                _ => {
                                    return Err(err(
                                        i,
                                        "unknown escape; use \\\\, \\\", \\', \\n or \\t".into(),
                                    ))
                                }
                            };
                            s.push(esc);
                            i += 2;
                        }
                        Some(&x) => {
                            s.push(x);
                            i += 1;
                        }
                    }
                }
                i += 1;
                out.push((start, Tok::Text(s)));
                continue;
            }
            c if c.is_ascii_digit() => {
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                let n: f64 = s.parse().map_err(|_| err(start, format!("`{s}` is not a number")))?;
                out.push((start, Tok::Num(n)));
                continue;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == '$' => {
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | '.' | '$'))
                {
                    i += 1;
                }
                out.push((start, Tok::Name(chars[start..i].iter().collect())));
                continue;
            }
            _ => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = ["==", "!=", "<>", "<=", ">=", "&&", "||"].into_iter().find(|o| *o == two);
                if let Some(op) = op {
                    i += 2;
                    out.push((start, Tok::Op(op)));
                    continue;
                }
                match ["=", "<", ">", "&", "+", "-", "*", "/", "!"].into_iter().find(|o| o.starts_with(c)) {
                    Some(op) => Tok::Op(op),
                    None => return Err(err(start, format!("unexpected `{c}`"))),
                }
            }
        };
        i += 1;
        out.push((start, tok));
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    depth: usize,
    end: usize,
}

impl Parser {
    fn column(&self) -> usize {
        self.toks.get(self.pos).map(|t| t.0).unwrap_or(self.end) + 1
    }

    fn fail<T>(&self, message: impl Into<String>) -> Result<T, FormulaError> {
        Err(FormulaError { column: self.column(), message: message.into() })
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.1)
    }

    fn eat_op(&mut self, ops: &[&str]) -> Option<&'static str> {
        match self.peek() {
            Some(Tok::Op(o)) if ops.contains(o) => {
                let o = *o;
                self.pos += 1;
                Some(o)
            }
            _ => None,
        }
    }

    fn enter(&mut self) -> Result<(), FormulaError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.fail(format!("the formula nests more than {MAX_DEPTH} levels deep"));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, FormulaError> {
        self.enter()?;
        let mut left = self.and()?;
        while self.eat_op(&["||"]).is_some() {
            left = Expr::Binary(BinOp::Or, Box::new(left), Box::new(self.and()?));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FormulaError> {
        let mut left = self.cmp()?;
        while self.eat_op(&["&&"]).is_some() {
            left = Expr::Binary(BinOp::And, Box::new(left), Box::new(self.cmp()?));
        }
        Ok(left)
    }

    fn cmp(&mut self) -> Result<Expr, FormulaError> {
        let left = self.add()?;
        let Some(op) = self.eat_op(&["=", "==", "!=", "<>", "<", ">", "<=", ">="]) else { return Ok(left) };
        let op = match op {
            "=" | "==" => BinOp::Eq,
            "!=" | "<>" => BinOp::Ne,
            "<" => BinOp::Lt,
            ">" => BinOp::Gt,
            "<=" => BinOp::Le,
            _ => BinOp::Ge,
        };
        let right = self.add()?;
        if matches!(self.peek(), Some(Tok::Op("=" | "==" | "!=" | "<>" | "<" | ">" | "<=" | ">="))) {
            return self.fail("comparisons do not chain; combine them with && or AND()");
        }
        Ok(Expr::Binary(op, Box::new(left), Box::new(right)))
    }

    fn add(&mut self) -> Result<Expr, FormulaError> {
        let mut left = self.mul()?;
        while let Some(op) = self.eat_op(&["+", "-", "&"]) {
            let op = match op {
                "+" => BinOp::Add,
                "-" => BinOp::Sub,
                _ => BinOp::Concat,
            };
            left = Expr::Binary(op, Box::new(left), Box::new(self.mul()?));
        }
        Ok(left)
    }

    fn mul(&mut self) -> Result<Expr, FormulaError> {
        let mut left = self.unary()?;
        while let Some(op) = self.eat_op(&["*", "/"]) {
            let op = if op == "*" { BinOp::Mul } else { BinOp::Div };
            left = Expr::Binary(op, Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, FormulaError> {
        if let Some(op) = self.eat_op(&["-", "!"]) {
            self.enter()?;
            let inner = Box::new(self.unary()?);
            self.depth -= 1;
            return Ok(if op == "-" { Expr::Neg(inner) } else { Expr::Not(inner) });
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, FormulaError> {
        let Some(tok) = self.peek().cloned() else {
            return self.fail("the formula ends where a value was expected");
        };
        let column = self.column();
        self.pos += 1;
        match tok {
            Tok::Text(s) => Ok(Expr::Lit(Value::Text(s))),
            Tok::Num(n) => Ok(Expr::Lit(Value::Number(n))),
            Tok::Open => {
                let e = self.or()?;
                if self.peek() != Some(&Tok::Close) {
                    return self.fail("expected `)`");
                }
                self.pos += 1;
                Ok(e)
            }
            Tok::Name(name) => {
                if self.peek() == Some(&Tok::Open) {
                    return self.call(&name, column);
                }
                match name.to_ascii_uppercase().as_str() {
                    "TRUE" => return Ok(Expr::Lit(Value::Bool(true))),
                    "FALSE" => return Ok(Expr::Lit(Value::Bool(false))),
                    "NULL" => return Ok(Expr::Lit(Value::Null)),
                    _ => {}
                }
                let segments: Vec<String> = name.split('.').map(str::to_string).collect();
                if segments.iter().any(String::is_empty) {
                    return Err(FormulaError { column, message: format!("`{name}` is not a name") });
                }
                if segments.iter().skip(1).any(|s| s.starts_with('$'))
                    || segments[0].chars().skip(1).any(|c| c == '$')
                {
                    return Err(FormulaError { column, message: format!("`{name}` is not a name") });
                }
                Ok(Expr::Name(segments))
            }
            Tok::Close | Tok::Comma | Tok::Op(_) => {
                Err(FormulaError { column, message: "expected a value, a name or a function".into() })
            }
        }
    }

    fn call(&mut self, name: &str, column: usize) -> Result<Expr, FormulaError> {
        let upper = name.to_ascii_uppercase();
        let Some(&(fname, min, max)) = FUNCTIONS.iter().find(|f| f.0 == upper) else {
            let known: Vec<&str> = FUNCTIONS.iter().map(|f| f.0).collect();
            return Err(FormulaError {
                column,
                message: format!("unknown function `{name}`; known: {}", known.join(", ")),
            });
        };
        self.pos += 1; // `(`
        self.enter()?;
        let mut args = Vec::new();
        if self.peek() == Some(&Tok::Close) {
            self.pos += 1;
        } else {
            loop {
                args.push(self.or()?);
                match self.peek() {
                    Some(Tok::Comma) => self.pos += 1,
                    Some(Tok::Close) => {
                        self.pos += 1;
                        break;
                    }
                    _ => return self.fail(format!("expected `,` or `)` in the arguments of {fname}")),
                }
            }
        }
        self.depth -= 1;
        if args.len() < min || args.len() > max {
            let wanted = if min == max { format!("{min}") } else { format!("{min} to {max}") };
            return Err(FormulaError {
                column,
                message: format!("{fname} takes {wanted} arguments, got {}", args.len()),
            });
        }
        Ok(Expr::Call(fname, args))
    }
}

/// Parses a formula.
pub fn parse(text: &str) -> Result<Formula, FormulaError> {
    let toks = lex(text)?;
    let end = text.chars().count();
    if toks.is_empty() {
        return Err(FormulaError { column: 1, message: "the formula is empty".into() });
    }
    let mut p = Parser { toks, pos: 0, depth: 0, end };
    let expr = p.or()?;
    if p.pos < p.toks.len() {
        return p.fail("unexpected text after the end of the formula");
    }
    Ok(Formula { text: text.to_string(), expr })
}

/// Evaluates `expr`, reading names through `lookup`.
pub fn eval(
    expr: &Expr,
    lookup: &mut dyn FnMut(&[String]) -> Result<Value, EvalError>,
) -> Result<Value, EvalError> {
    Ok(match expr {
        Expr::Lit(v) => v.clone(),
        Expr::Name(n) => lookup(n)?,
        Expr::Neg(a) => Value::Number(-number(&eval(a, lookup)?, "-")?),
        Expr::Not(a) => Value::Bool(!truth(&eval(a, lookup)?, "!")?),
        Expr::Binary(BinOp::And, a, b) => {
            Value::Bool(truth(&eval(a, lookup)?, "&&")? && truth(&eval(b, lookup)?, "&&")?)
        }
        Expr::Binary(BinOp::Or, a, b) => {
            Value::Bool(truth(&eval(a, lookup)?, "||")? || truth(&eval(b, lookup)?, "||")?)
        }
        Expr::Binary(op, a, b) => binary(*op, eval(a, lookup)?, eval(b, lookup)?)?,
        Expr::Call(f, args) => call(f, args, lookup)?,
    })
}

fn truth(v: &Value, what: &str) -> Result<bool, EvalError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Null => Ok(false),
        Value::Text(t) if t.eq_ignore_ascii_case("true") => Ok(true),
        Value::Text(t) if t.eq_ignore_ascii_case("false") || t.is_empty() => Ok(false),
        other => Err(EvalError(format!("{what} needs true or false, got {}", describe(other)))),
    }
}

fn number(v: &Value, what: &str) -> Result<f64, EvalError> {
    match v {
        Value::Number(n) => Ok(*n),
        Value::Text(t) => t
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| EvalError(format!("{what} needs a number, got {}", describe(v)))),
        Value::Null => Ok(0.0),
        Value::Bool(_) => Err(EvalError(format!("{what} needs a number, got {}", describe(v)))),
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Text(t) => format!("the text {t:?}"),
        Value::Number(n) => format!("the number {n}"),
        Value::Bool(b) => format!("{b}"),
    }
}

fn finite(n: f64, what: &str) -> Result<Value, EvalError> {
    if n.is_finite() {
        Ok(Value::Number(n))
    } else {
        Err(EvalError(format!("{what} overflows")))
    }
}

fn binary(op: BinOp, a: Value, b: Value) -> Result<Value, EvalError> {
    let both_numbers = matches!((&a, &b), (Value::Number(_), Value::Number(_)));
    Ok(match op {
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge => {
            let ord = if both_numbers {
                number(&a, "comparison")?.partial_cmp(&number(&b, "comparison")?)
            } else {
                Some(a.to_text().cmp(&b.to_text()))
            };
            let Some(ord) = ord else { return Ok(Value::Bool(op == BinOp::Ne)) };
            Value::Bool(match op {
                BinOp::Eq => ord.is_eq(),
                BinOp::Ne => !ord.is_eq(),
                BinOp::Lt => ord.is_lt(),
                BinOp::Gt => ord.is_gt(),
                BinOp::Le => ord.is_le(),
                _ => ord.is_ge(),
            })
        }
        BinOp::Concat => Value::Text(a.to_text() + &b.to_text()),
        BinOp::Add if !both_numbers => Value::Text(a.to_text() + &b.to_text()),
        BinOp::Add => finite(number(&a, "+")? + number(&b, "+")?, "+")?,
        BinOp::Sub => finite(number(&a, "-")? - number(&b, "-")?, "-")?,
        BinOp::Mul => finite(number(&a, "*")? * number(&b, "*")?, "*")?,
        BinOp::Div => {
            let d = number(&b, "/")?;
            if d == 0.0 {
                return Err(EvalError("division by zero".into()));
            }
            finite(number(&a, "/")? / d, "/")?
        }
        BinOp::And | BinOp::Or => Value::Bool(truth(&a, "&&")? && truth(&b, "&&")?),
    })
}

/// A count argument of a text function: whole, clamped to 0..=100 000.
fn count(v: &Value, f: &str) -> Result<usize, EvalError> {
    let n = number(v, f)?;
    Ok(n.clamp(0.0, 100_000.0) as usize)
}

fn pad(text: &str, len: usize, with: &str, left: bool) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() >= len {
        // The platform's LPAD/RPAD truncate to the length.
        return chars[..len].iter().collect();
    }
    let fill: Vec<char> = if with.is_empty() { vec![' '] } else { with.chars().collect() };
    let padding: String = fill.iter().cycle().take(len - chars.len()).collect();
    if left {
        padding + text
    } else {
        text.to_string() + &padding
    }
}

fn call(
    f: &str,
    args: &[Expr],
    lookup: &mut dyn FnMut(&[String]) -> Result<Value, EvalError>,
) -> Result<Value, EvalError> {
    let mut arg = |i: usize| -> Result<Value, EvalError> {
        match args.get(i) {
            Some(e) => eval(e, lookup),
            None => Ok(Value::Null),
        }
    };
    Ok(match f {
        "AND" | "OR" => {
            let want = f == "OR";
            for i in 0..args.len() {
                if truth(&arg(i)?, f)? == want {
                    return Ok(Value::Bool(want));
                }
            }
            Value::Bool(!want)
        }
        "NOT" => Value::Bool(!truth(&arg(0)?, f)?),
        "IF" => {
            if truth(&arg(0)?, f)? {
                arg(1)?
            } else {
                arg(2)?
            }
        }
        "ISBLANK" | "ISNULL" => Value::Bool(arg(0)?.is_blank()),
        "BLANKVALUE" => {
            let v = arg(0)?;
            if v.is_blank() {
                arg(1)?
            } else {
                v
            }
        }
        "ISPICKVAL" => Value::Bool(arg(0)?.to_text() == arg(1)?.to_text()),
        "LEFT" => {
            let t = arg(0)?.to_text();
            Value::Text(t.chars().take(count(&arg(1)?, f)?).collect())
        }
        "RIGHT" => {
            let t: Vec<char> = arg(0)?.to_text().chars().collect();
            let n = count(&arg(1)?, f)?.min(t.len());
            Value::Text(t[t.len() - n..].iter().collect())
        }
        "MID" => {
            let t = arg(0)?.to_text();
            let start = count(&arg(1)?, f)?.max(1) - 1;
            Value::Text(t.chars().skip(start).take(count(&arg(2)?, f)?).collect())
        }
        "LEN" => Value::Number(arg(0)?.to_text().chars().count() as f64),
        "LPAD" | "RPAD" => {
            let t = arg(0)?.to_text();
            let len = count(&arg(1)?, f)?;
            let with = if args.len() > 2 { arg(2)?.to_text() } else { " ".to_string() };
            Value::Text(pad(&t, len, &with, f == "LPAD"))
        }
        "TRIM" => Value::Text(arg(0)?.to_text().trim().to_string()),
        "UPPER" => Value::Text(arg(0)?.to_text().to_uppercase()),
        "LOWER" => Value::Text(arg(0)?.to_text().to_lowercase()),
        "TEXT" => Value::Text(arg(0)?.to_text()),
        "VALUE" => Value::Number(number(&Value::Text(arg(0)?.to_text()), f)?),
        "CONTAINS" => Value::Bool(arg(0)?.to_text().contains(&arg(1)?.to_text())),
        "BEGINS" => Value::Bool(arg(0)?.to_text().starts_with(&arg(1)?.to_text())),
        "SUBSTITUTE" => {
            let (t, old, new) = (arg(0)?.to_text(), arg(1)?.to_text(), arg(2)?.to_text());
            if old.is_empty() {
                Value::Text(t)
            } else {
                Value::Text(t.replace(&old, &new))
            }
        }
        other => return Err(EvalError(format!("unknown function {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, fields: &[(&str, Value)]) -> Result<Value, EvalError> {
        let f = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        eval(&f.expr, &mut |n: &[String]| {
            let name = n.last().map(String::as_str).unwrap_or("");
            Ok(fields.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()).unwrap_or(Value::Null))
        })
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn the_guides_formulas() {
        let phone = [("FromPhoneNumber", text("+15551234567"))];
        assert_eq!(run("RIGHT({!$Record.FromPhoneNumber}, 10)", &phone), Ok(text("5551234567")));
        assert_eq!(run("RIGHT(FromPhoneNumber, 10)", &phone), Ok(text("5551234567")));
        let input = [("IVRInput__c", text("1234"))];
        assert_eq!(run("LPAD(IVRInput__c, 8, \"0\")", &input), Ok(text("00001234")));
        assert_eq!(run("IVRInput__c = '1234' && NOT(ISBLANK(IVRInput__c))", &input), Ok(Value::Bool(true)));
    }

    #[test]
    fn values_and_operators() {
        assert_eq!(run("1 + 2 * 3", &[]), Ok(Value::Number(7.0)));
        assert_eq!(run("\"a\" & 1 & TRUE", &[]), Ok(text("a1true")));
        assert_eq!(run("IF(NULL = \"\", 'blank', 'not')", &[]), Ok(text("blank")));
        assert_eq!(run("10 / 0", &[]), Err(EvalError("division by zero".into())));
        assert_eq!(run("LEN('héllo') <> 5", &[]), Ok(Value::Bool(false)));
        assert_eq!(run("SUBSTITUTE('a-b-c', '-', '')", &[]), Ok(text("abc")));
        assert_eq!(run("MID('abcdef', 2, 3)", &[]), Ok(text("bcd")));
        assert_eq!(run("LPAD('123456789', 8, '0')", &[]), Ok(text("12345678")));
        assert!(run("-'x'", &[]).is_err());
    }

    #[test]
    fn errors_say_where() {
        let e = |t: &str| parse(t).unwrap_err().to_string();
        assert_eq!(e("RIGHT(a, 10"), "column 12: expected `,` or `)` in the arguments of RIGHT");
        assert_eq!(
            e("FOO(1)"),
            format!(
                "column 1: unknown function `FOO`; known: {}",
                FUNCTIONS.iter().map(|f| f.0).collect::<Vec<_>>().join(", ")
            )
        );
        assert_eq!(e("LEFT(a)"), "column 1: LEFT takes 2 arguments, got 1");
        assert_eq!(e("a = 'x"), "column 5: the text is not closed");
        assert_eq!(e("a = b = c"), "column 7: comparisons do not chain; combine them with && or AND()");
        assert_eq!(e(""), "column 1: the formula is empty");
        assert_eq!(e("a #"), "column 3: unexpected `#`");
        assert_eq!(
            e(&"(".repeat(100)),
            format!("column 49: the formula nests more than {MAX_DEPTH} levels deep")
        );
    }
}
