//! Property tests: parsing and matching never panic on arbitrary patterns, events and
//! expressions, and a parsed schedule's next time is always later.

use proptest::prelude::*;
use serde_json::{json, Value};
use voxbridge_events::{Pattern, Schedule};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        "[a-z/.]{0,6}".prop_map(Value::String),
        prop_oneof![
            Just("prefix"),
            Just("suffix"),
            Just("anything-but"),
            Just("numeric"),
            Just("exists"),
            Just("equals-ignore-case"),
            Just("wildcard"),
            Just("$or"),
            Just(">"),
            Just("<="),
            Just("="),
            Just("*"),
            Just("")
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        let key = prop_oneof![
            "[a-z]{1,3}",
            prop_oneof![
                Just("prefix"),
                Just("suffix"),
                Just("anything-but"),
                Just("numeric"),
                Just("exists"),
                Just("equals-ignore-case"),
                Just("wildcard"),
                Just("$or")
            ]
            .prop_map(String::from),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..5).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn patterns_never_panic(pattern in json_value(), event in json_value()) {
        if let Ok(p) = Pattern::from_value(&pattern) {
            let _ = p.matches(&event);
            let _ = p.matches(&pattern);
        }
        let _ = Pattern::parse(&pattern.to_string());
    }

    #[test]
    fn schedules_never_panic(
        text in prop_oneof![
            "rate\\([0-9 ]{0,4} ?(minute|minutes|hour|hours|day|days|x)?\\)",
            "cron\\(([0-9*/,LW#?-]{1,4}|MON|JAN|SUN-SAT) ([0-9*/,-]{1,4}) ([0-9*/,LW?-]{1,3}) ([0-9*/,-]{1,3}|JAN-MAR) ([0-9*/,L#?-]{1,3}|MON-FRI) ([0-9*/,-]{1,9})\\)",
            ".{0,30}",
        ],
        after in -62_000_000_000_000i64..7_300_000_000_000i64,
        anchor in -62_000_000_000_000i64..7_300_000_000_000i64,
    ) {
        if let Ok(s) = Schedule::parse(&text) {
            if let Some(next) = s.next_after(after, anchor) {
                prop_assert!(next > after, "{text}: {next} after {after}");
            }
        }
    }
}

#[test]
fn extreme_times_do_not_panic() {
    for text in ["rate(1 minute)", "rate(100000 days)", "cron(* * * * ? *)", "cron(0 0 L * ? *)"] {
        let s = Schedule::parse(text).expect(text);
        for t in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
            let _ = s.next_after(t, t);
            let _ = s.next_after(t, 0);
            let _ = s.next_after(0, t);
        }
    }
    let deep = (0..200).fold(json!(["x"]), |acc, _| json!({ "a": acc }));
    assert!(Pattern::from_value(&deep).is_err(), "too deep is an error, not a stack overflow");
}
