//! Fuzzing: no input makes the parser, binder, evaluator or search panic, and every error
//! carries a position inside the input.

use crate::dataset;
use proptest::prelude::*;
use std::sync::OnceLock;
use voxbridge_soql::{bind, evaluate, parse_query, parse_search, search, MemorySource, QueryError, Schema};

fn fixtures() -> &'static (Schema, MemorySource) {
    static F: OnceLock<(Schema, MemorySource)> = OnceLock::new();
    F.get_or_init(|| (dataset::schema(), dataset::source()))
}

fn check_error(text: &str, e: &QueryError) {
    let p = e.position.unwrap_or_else(|| panic!("error without position for {text:?}: {e}"));
    let chars = text.chars().count();
    assert!(p.offset <= chars, "offset {} past {chars} in {text:?}", p.offset);
    assert!(p.line >= 1 && p.line <= text.matches('\n').count() + 1, "{p:?} in {text:?}");
    assert!(p.column >= 1, "{p:?} in {text:?}");
    let message = e.message();
    assert!(message.contains(&format!("ERROR at Row:{}:Column:{}", p.line, p.column)), "{message}");
}

/// Runs the text as SOQL and as SOSL all the way through.
fn run(text: &str) {
    let (schema, source) = fixtures();
    let ctx = dataset::ctx();
    match parse_query(text).and_then(|q| bind(&q, schema)) {
        Ok(b) => {
            let _ = evaluate(&b, source, &ctx).to_json();
            let _ = b.key_lookup();
            let _ = b.parent_ids(source_records());
        }
        Err(e) => check_error(text, &e),
    }
    match parse_search(text, schema) {
        Ok(s) => {
            let _ = search(&s, source, &ctx).to_json();
        }
        Err(e) => check_error(text, &e),
    }
}

fn source_records() -> &'static [voxbridge_core::Record] {
    static R: OnceLock<Vec<voxbridge_core::Record>> = OnceLock::new();
    R.get_or_init(dataset::records)
}

const SEEDS: &[&str] = &[
    "SELECT Id, VendorCallKey FROM VoiceCall WHERE CustomerHoldDuration = null",
    "SELECT Id FROM Case WHERE ContactPhone = '+14155551234' AND IsClosed = false",
    "SELECT Name, Owner.Name FROM VoiceCall WHERE CallStartDateTime = LAST_N_DAYS:7 ORDER BY Name DESC NULLS LAST LIMIT 3 OFFSET 1",
    "SELECT COUNT(Id) c FROM VoiceCall WHERE Id IN ('0LMRM000000HU8a4AG') AND NOT (QueueName LIKE 'Sup%')",
    "SELECT Name FROM Contact WHERE Birthdate < 1980-01-01 OR CreatedDate >= 2024-01-01T00:00:00.5+02:00",
    "FIND {+14155551234} IN PHONE FIELDS RETURNING Contact(Id, Name WHERE Phone != null LIMIT 2), Case(CaseNumber)",
    "FIND {\"Acme Corp\" OR glob* AND NOT labs} RETURNING Account(Name ORDER BY Name) LIMIT 5",
];

const VOCAB: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "ORDER",
    "BY",
    "ASC",
    "DESC",
    "NULLS",
    "FIRST",
    "LAST",
    "LIMIT",
    "OFFSET",
    "COUNT",
    "FIND",
    "RETURNING",
    "ALL",
    "NAME",
    "PHONE",
    "FIELDS",
    "null",
    "true",
    "false",
    "TODAY",
    "LAST_N_DAYS",
    "NEXT_N_DAYS",
    "LAST_WEEK",
    "THIS_MONTH",
    "N_DAYS_AGO",
    "Id",
    "Name",
    "VoiceCall",
    "Case",
    "Contact",
    "Account",
    "Owner",
    "Owner.Name",
    "Contact.Phone",
    "CallStartDateTime",
    "Birthdate",
    "IsClosed",
    "CallDurationInSeconds",
    "VendorCallKey",
    "RelatedRecord.Name",
    "Foo",
    "Foo__c",
    "(",
    ")",
    ",",
    ".",
    ":",
    "=",
    "!=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "'x'",
    "'+14155551234'",
    "'a%'",
    "'\\''",
    "'\\u00e9'",
    "'",
    "\"",
    "{acme}",
    "{+1 415 555 1234}",
    "{a}",
    "{",
    "}",
    "0",
    "7",
    "-1",
    "1.5",
    "2001",
    "99999999999999999999999",
    "4294967296",
    "2024-01-31",
    "2024-01-31T10:00:00Z",
    "2024-01-31T10:00:00.123+02:00",
    "2024-02-30",
    "\n",
    "é",
    "*",
    "?",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(VOCAB), prop::bool::ANY), 0..24).prop_map(|toks| {
        let mut s = String::new();
        for (t, space) in toks {
            s.push_str(t);
            if space {
                s.push(' ');
            }
        }
        s
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,120}") {
        run(&s);
    }

    #[test]
    fn arbitrary_bytes_as_text_never_panic(s in any::<String>()) {
        run(&s);
    }

    #[test]
    fn token_soups_never_panic(s in soup()) {
        run(&s);
    }

    #[test]
    fn select_prefixed_soups_never_panic(s in soup()) {
        run(&format!("SELECT Id FROM VoiceCall WHERE {s}"));
        run(&format!("SELECT {s}"));
        run(&format!("FIND {{acme}} RETURNING {s}"));
    }

    #[test]
    fn mutated_seeds_never_panic(
        seed in prop::sample::select(SEEDS),
        at in any::<prop::sample::Index>(),
        insert in prop::sample::select(VOCAB),
        delete in 0usize..6,
    ) {
        let chars: Vec<char> = seed.chars().collect();
        let i = at.index(chars.len() + 1);
        let mut s: String = chars[..i].iter().collect();
        s.push_str(insert);
        s.extend(chars[i..].iter().skip(delete));
        run(&s);
        let truncated: String = chars[..i].iter().collect();
        run(&truncated);
    }
}

#[test]
fn seeds_are_valid() {
    let (schema, _) = fixtures();
    for s in SEEDS {
        if s.starts_with("FIND") {
            parse_search(s, schema).unwrap_or_else(|e| panic!("{s}: {e}"));
        } else {
            bind(&parse_query(s).unwrap_or_else(|e| panic!("{s}: {e}")), schema)
                .unwrap_or_else(|e| panic!("{s}: {e}"));
        }
    }
}
