//! The data-driven cases in `cases/*.txt`: each query's answer (rows or error) is one
//! insta snapshot, so a change in behaviour shows up as a reviewable diff.

use crate::dataset;
use serde_json::{json, Value};
use voxbridge_soql::{parse_search, query, search, QueryError};

/// `(name, query)` pairs from a cases file: a case starts at `# name` and runs to the next
/// one; blank lines at its end are dropped, everything else is kept as written.
fn load(file: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, Vec<&str>)> = Vec::new();
    for line in file.lines() {
        if let Some(name) = line.strip_prefix("# ") {
            out.push((name.trim().to_string(), Vec::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push(line);
        }
    }
    out.into_iter()
        .map(|(name, mut body)| {
            while body.last().is_some_and(|l| l.is_empty()) {
                body.pop();
            }
            (name, body.join("\n"))
        })
        .collect()
}

fn error_json(e: &QueryError) -> Value {
    let p = e.position.expect("every error has a position");
    json!({
        "errorCode": e.code.as_str(),
        "message": e.message(),
        "row": p.line,
        "column": p.column,
        "offset": p.offset,
    })
}

fn check_names(cases: &[(String, String)]) {
    let mut seen = std::collections::HashSet::new();
    for (name, _) in cases {
        assert!(seen.insert(name.clone()), "duplicate case name {name}");
    }
}

#[test]
fn soql_cases() {
    let cases = load(include_str!("cases/soql.txt"));
    check_names(&cases);
    assert!(cases.len() > 90, "{} cases", cases.len());
    let (schema, source, ctx) = (dataset::schema(), dataset::source(), dataset::ctx());
    for (name, q) in &cases {
        let answer = match query(q, &schema, &source, &ctx) {
            Ok(r) => json!({ "query": q, "result": r.to_json() }),
            Err(e) => json!({ "query": q, "error": error_json(&e) }),
        };
        // Case names say which outcome is intended; catch a case flipping silently.
        assert_eq!(name.starts_with("error_"), answer.get("error").is_some(), "{name}: {answer:#}");
        insta::assert_json_snapshot!(format!("soql__{name}"), answer);
    }
}

#[test]
fn sosl_cases() {
    let cases = load(include_str!("cases/sosl.txt"));
    check_names(&cases);
    let (schema, source, ctx) = (dataset::schema(), dataset::source(), dataset::ctx());
    for (name, q) in &cases {
        let answer = match parse_search(q, &schema) {
            Ok(s) => json!({ "query": q, "result": search(&s, &source, &ctx).to_json() }),
            Err(e) => json!({ "query": q, "error": error_json(&e) }),
        };
        assert_eq!(name.starts_with("error_"), answer.get("error").is_some(), "{name}: {answer:#}");
        insta::assert_json_snapshot!(format!("sosl__{name}"), answer);
    }
}
