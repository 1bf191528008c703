//! Event patterns: one table row per behaviour (pattern, event, expected), the guide's rules
//! against the fixture events, and invalid patterns with their error paths.

use serde_json::{json, Value};
use voxbridge_events::{matches, Pattern};

fn check(pattern: Value, event: Value, expected: bool) {
    let parsed = Pattern::from_value(&pattern).unwrap_or_else(|e| panic!("{pattern} should parse: {e}"));
    assert_eq!(matches(&parsed, &event), expected, "pattern {pattern} on event {event}");
}

#[test]
fn operators() {
    let cases: Vec<(Value, Value, bool)> = vec![
        // Exact values; arrays are OR, fields are AND.
        (json!({"source": ["aws.s3"]}), json!({"source": "aws.s3"}), true),
        (json!({"source": ["aws.s3"]}), json!({"source": "aws.S3"}), false),
        (json!({"source": ["aws.s3", "aws.connect"]}), json!({"source": "aws.connect"}), true),
        (
            json!({"source": ["aws.s3"], "detail-type": ["Object Created"]}),
            json!({"source": "aws.s3"}),
            false,
        ),
        (json!({"source": ["aws.s3"]}), json!({"other": "aws.s3"}), false),
        (json!({"n": [300]}), json!({"n": 300}), true),
        (json!({"n": [300]}), json!({"n": 300.0}), false),
        (json!({"n": [300]}), json!({"n": "300"}), false),
        (json!({"b": [true]}), json!({"b": true}), true),
        (json!({"b": [true]}), json!({"b": "true"}), false),
        // Event arrays match when they intersect the pattern's values.
        (json!({"resources": ["arn:b"]}), json!({"resources": ["arn:a", "arn:b"]}), true),
        (json!({"resources": ["arn:c"]}), json!({"resources": ["arn:a", "arn:b"]}), false),
        // Nested objects.
        (
            json!({"detail": {"bucket": {"name": ["b1"]}}}),
            json!({"detail": {"bucket": {"name": "b1"}}}),
            true,
        ),
        (json!({"detail": {"bucket": {"name": ["b1"]}}}), json!({"detail": {"bucket": "b1"}}), false),
        (json!({"detail": {"bucket": {"name": ["b1"]}}}), json!({"detail": {}}), false),
        (json!({"detail": {"x": ["1"]}}), json!({"detail": [{"x": "0"}, {"x": "1"}]}), true),
        // Null and the empty string.
        (json!({"k": [null]}), json!({"k": null}), true),
        (json!({"k": [null]}), json!({}), false),
        (json!({"k": [null]}), json!({"k": ""}), false),
        (json!({"k": [""]}), json!({"k": ""}), true),
        (json!({"k": [""]}), json!({"k": null}), false),
        // prefix and suffix.
        (
            json!({"key": [{"prefix": "voicemail_recordings/"}]}),
            json!({"key": "voicemail_recordings/a.wav"}),
            true,
        ),
        (
            json!({"key": [{"prefix": "voicemail_recordings/"}]}),
            json!({"key": "voicemail_transcripts/a"}),
            false,
        ),
        (json!({"key": [{"prefix": "x"}]}), json!({"key": 12}), false),
        (
            json!({"key": [{"prefix": {"equals-ignore-case": "ANALYSIS/"}}]}),
            json!({"key": "Analysis/Voice"}),
            true,
        ),
        (json!({"key": [{"suffix": ".json"}]}), json!({"key": "a/b.json"}), true),
        (json!({"key": [{"suffix": ".json"}]}), json!({"key": "a/b.JSON"}), false),
        (json!({"key": [{"suffix": {"equals-ignore-case": ".JSON"}}]}), json!({"key": "a/b.json"}), true),
        // equals-ignore-case.
        (json!({"c": [{"equals-ignore-case": "voice"}]}), json!({"c": "VOICE"}), true),
        (json!({"c": [{"equals-ignore-case": "voice"}]}), json!({"c": "CHAT"}), false),
        // anything-but: a value, a list, a prefix, a suffix, ignoring case.
        (json!({"s": [{"anything-but": "DELETED"}]}), json!({"s": "AVAILABLE"}), true),
        (json!({"s": [{"anything-but": "DELETED"}]}), json!({"s": "DELETED"}), false),
        (json!({"s": [{"anything-but": "DELETED"}]}), json!({}), false),
        (json!({"s": [{"anything-but": ["A", "B"]}]}), json!({"s": "C"}), true),
        (json!({"s": [{"anything-but": ["A", "B"]}]}), json!({"s": "B"}), false),
        (json!({"n": [{"anything-but": 0}]}), json!({"n": 1}), true),
        (json!({"n": [{"anything-but": 0}]}), json!({"n": 0}), false),
        (
            json!({"k": [{"anything-but": {"prefix": "Analysis/Voice/Redacted/"}}]}),
            json!({"k": "Analysis/Voice/2022/x"}),
            true,
        ),
        (
            json!({"k": [{"anything-but": {"prefix": "Analysis/Voice/Redacted/"}}]}),
            json!({"k": "Analysis/Voice/Redacted/x"}),
            false,
        ),
        (json!({"k": [{"anything-but": {"suffix": ".tmp"}}]}), json!({"k": "a.tmp"}), false),
        (
            json!({"k": [{"anything-but": {"equals-ignore-case": ["chat", "task"]}}]}),
            json!({"k": "CHAT"}),
            false,
        ),
        (
            json!({"k": [{"anything-but": {"equals-ignore-case": ["chat", "task"]}}]}),
            json!({"k": "VOICE"}),
            true,
        ),
        // numeric.
        (json!({"n": [{"numeric": [">", 10, "<=", 20]}]}), json!({"n": 20}), true),
        (json!({"n": [{"numeric": [">", 10, "<=", 20]}]}), json!({"n": 10}), false),
        (json!({"n": [{"numeric": [">", 10, "<=", 20]}]}), json!({"n": 15.5}), true),
        (json!({"n": [{"numeric": [">", 10, "<=", 20]}]}), json!({"n": 21}), false),
        (json!({"n": [{"numeric": ["=", 300]}]}), json!({"n": 300.0}), true),
        (json!({"n": [{"numeric": [">=", 0]}]}), json!({"n": "5"}), false),
        (json!({"n": [{"numeric": ["<", 0]}]}), json!({"n": [-1, 5]}), true),
        // exists, on leaves only.
        (json!({"detail": {"agentInfo": [{"exists": false}]}}), json!({"detail": {}}), true),
        (
            json!({"detail": {"agentInfo": [{"exists": false}]}}),
            json!({"detail": {"agentInfo": {"a": 1}}}),
            false,
        ),
        (json!({"detail": {"queue": [{"exists": true}]}}), json!({"detail": {"queue": "q"}}), true),
        (json!({"detail": {"queue": [{"exists": true}]}}), json!({"detail": {"queue": null}}), true),
        (json!({"detail": {"queue": [{"exists": true}]}}), json!({"detail": {}}), false),
        (json!({"detail": {"queue": [{"exists": true}]}}), json!({"detail": {"queue": {"arn": "x"}}}), false),
        // wildcard.
        (
            json!({"k": [{"wildcard": "Analysis/*/2022/*.json"}]}),
            json!({"k": "Analysis/Voice/2022/a.json"}),
            true,
        ),
        (
            json!({"k": [{"wildcard": "Analysis/*/2022/*.json"}]}),
            json!({"k": "Analysis/Voice/2023/a.json"}),
            false,
        ),
        // Mixed values and filters in one array are OR.
        (json!({"k": ["exact", {"prefix": "pre"}]}), json!({"k": "prefix"}), true),
        // $or at the top and nested, combined with plain fields (AND).
        (
            json!({"source": ["aws.connect"], "$or": [{"detail": {"eventType": ["DISCONNECTED"]}}, {"detail": {"eventType": ["CONTACT_DATA_UPDATED"]}}]}),
            json!({"source": "aws.connect", "detail": {"eventType": "CONTACT_DATA_UPDATED"}}),
            true,
        ),
        (
            json!({"source": ["aws.connect"], "$or": [{"detail": {"eventType": ["DISCONNECTED"]}}, {"detail": {"eventType": ["QUEUED"]}}]}),
            json!({"source": "aws.connect", "detail": {"eventType": "CONNECTED_TO_AGENT"}}),
            false,
        ),
        (
            json!({"detail": {"$or": [{"n": [{"numeric": [">", 5]}]}, {"s": ["x"]}]}}),
            json!({"detail": {"n": 1, "s": "x"}}),
            true,
        ),
    ];
    for (pattern, event, expected) in cases {
        check(pattern, event, expected);
    }
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"))
}

/// The S3 fixture spells `detailType` as the test it comes from does; EventBridge sends
/// `detail-type`, which is what the guide's rules name.
fn as_eventbridge_sends_it(mut event: Value) -> Value {
    if let Some(map) = event.as_object_mut() {
        if let Some(v) = map.remove("detailType") {
            map.insert("detail-type".into(), v);
        }
    }
    event
}

#[test]
fn guide_rules_on_fixture_events() {
    // The guide's voicemail rules (chapter 2), as JSON without its inline comment.
    let recordings = Pattern::parse(
        r#"{"detail-type": ["Object Created"], "source": ["aws.s3"],
            "detail": {"bucket": {"name": ["tansings-694266641768"]},
                       "object": {"key": [{"prefix": "voicemail_recordings/"}]}}}"#,
    )
    .expect("the voicemail recordings rule");
    let transcripts = Pattern::parse(
        r#"{"detail-type": ["Object Created"], "source": ["aws.s3"],
            "detail": {"bucket": {"name": ["tansings-694266641768"]},
                       "object": {"key": [{"prefix": "voicemail_transcripts/"}]}}}"#,
    )
    .expect("the voicemail transcripts rule");
    // PostCallAnalysisTrigger's rule: analysis files, not the redacted copies.
    let analysis = Pattern::parse(
        r#"{"detail-type": ["Object Created"], "source": ["aws.s3"],
            "detail": {"object": {"key": [{"prefix": "Analysis/Voice/"}],
                                  "$or": [{"key": [{"anything-but": {"prefix": "Analysis/Voice/Redacted/"}}]},
                                          {"key": [{"suffix": "_analysis.json"}]}]}}}"#,
    )
    .expect("the analysis rule");
    // HandleContactEvents' rule.
    let contact_events = Pattern::parse(
        r#"{"detail-type": ["Amazon Connect Contact Event"],
            "detail": {"eventType": ["DISCONNECTED", "CONTACT_DATA_UPDATED"]}}"#,
    )
    .expect("the contact events rule");
    let abandoned = Pattern::parse(
        r#"{"detail": {"eventType": ["DISCONNECTED"], "initiationMethod": ["INBOUND", "TRANSFER"],
                       "agentInfo": [{"exists": false}]}}"#,
    )
    .expect("the abandoned-call rule");

    let s3 = as_eventbridge_sends_it(fixture("scv_eventbridge_s3_object_created_postcall.json"));
    assert!(analysis.matches(&s3));
    assert!(!recordings.matches(&s3));
    assert!(!transcripts.matches(&s3));
    assert!(!contact_events.matches(&s3));
    // The same event as a voicemail recording matches the recordings rule only.
    let mut voicemail = s3.clone();
    voicemail["detail"]["object"]["key"] = json!("voicemail_recordings/c1.wav");
    assert!(recordings.matches(&voicemail));
    assert!(!transcripts.matches(&voicemail));
    assert!(!analysis.matches(&voicemail));
    let mut redacted = s3.clone();
    redacted["detail"]["object"]["key"] =
        json!("Analysis/Voice/Redacted/2022/03/30/x_analysis_redacted.json");
    assert!(!analysis.matches(&redacted));
    // As the test file spells it (`detailType`), a rule on detail-type does not match.
    assert!(!analysis.matches(&fixture("scv_eventbridge_s3_object_created_postcall.json")));

    let disconnected = fixture("scv_eventbridge_contact_event_disconnected_min.json");
    let expired = fixture("scv_eventbridge_contact_event_routing_expired_min.json");
    assert!(contact_events.matches(&disconnected));
    assert!(contact_events.matches(&expired));
    assert!(abandoned.matches(&disconnected));
    assert!(!abandoned.matches(&expired));
    let mut answered = disconnected.clone();
    answered["detail"]["agentInfo"] = json!({"agentArn": "arn:aws:connect:::agent/a"});
    assert!(!abandoned.matches(&answered), "agentInfo is an object: exists false fails on it");
    let reroute = Pattern::parse(
        r#"{"detail": {"eventType": ["CONTACT_DATA_UPDATED"],
            "routingCriteria": {"steps": {"status": ["EXPIRED"],
              "expression": {"attributeCondition": {"matchCriteria": {"agentsCriteria": {"agentIds": [{"exists": true}]}}}}}}}}"#,
    )
    .expect("the reroute rule");
    assert!(reroute.matches(&expired));
    assert!(!reroute.matches(&disconnected));
}

#[test]
fn invalid_patterns_name_path_and_reason() {
    let cases: Vec<(&str, &str, &str)> = vec![
        ("[1]", "", "must be a JSON object"),
        ("{}", "", "at least one field"),
        ("{\"source\": \"aws.s3\"}", "source", "array of values"),
        ("{\"source\": []}", "source", "empty array"),
        ("{\"a\": [[1]]}", "a[0]", "cannot nest"),
        ("{\"d\": {\"k\": [{\"prefix\": 1}]}}", "d.k[0].prefix", "takes a string"),
        ("{\"k\": [{\"prefix\": \"a\", \"suffix\": \"b\"}]}", "k[0]", "exactly one key"),
        ("{\"k\": [{}]}", "k[0]", "empty filter"),
        ("{\"k\": [{\"bogus\": 1}]}", "k[0].bogus", "unknown filter"),
        ("{\"k\": [{\"cidr\": \"10.0.0.0/24\"}]}", "k[0].cidr", "not supported"),
        ("{\"k\": [{\"exists\": \"yes\"}]}", "k[0].exists", "true or false"),
        ("{\"k\": [{\"numeric\": [\">\"]}]}", "k[0].numeric", "pairs"),
        ("{\"k\": [{\"numeric\": [\"~\", 1]}]}", "k[0].numeric[0]", "operator"),
        ("{\"k\": [{\"numeric\": [\">\", \"1\"]}]}", "k[0].numeric[1]", "number"),
        ("{\"k\": [{\"numeric\": [\">\", 5, \"<\", 1]}]}", "k[0].numeric", "below the upper"),
        ("{\"k\": [{\"numeric\": [\">\", 5, \">\", 1]}]}", "k[0].numeric", "at most one lower"),
        ("{\"k\": [{\"numeric\": [\"=\", 5, \"<\", 9]}]}", "k[0].numeric", "cannot be combined"),
        ("{\"k\": [{\"anything-but\": true}]}", "k[0].anything-but", "anything-but takes"),
        ("{\"k\": [{\"anything-but\": []}]}", "k[0].anything-but", "at least one"),
        ("{\"k\": [{\"anything-but\": [null]}]}", "k[0].anything-but[0]", "strings or numbers"),
        (
            "{\"k\": [{\"anything-but\": {\"wildcard\": \"a\"}}]}",
            "k[0].anything-but.wildcard",
            "prefix, suffix",
        ),
        ("{\"k\": [{\"prefix\": {\"suffix\": \"a\"}}]}", "k[0].prefix.suffix", "equals-ignore-case"),
        ("{\"$or\": {\"a\": [1]}}", "$or", "array of patterns"),
        ("{\"$or\": [{\"a\": [1]}]}", "$or", "at least two"),
        ("{\"$or\": [{\"a\": [1]}, {\"b\": 2}]}", "$or[1].b", "array of values"),
        ("{\"a\": ", "", "not valid JSON"),
    ];
    for (pattern, path, reason) in cases {
        let e = Pattern::parse(pattern).expect_err(pattern);
        assert_eq!(e.path, path, "{pattern}: {e}");
        assert!(e.reason.contains(reason), "{pattern}: {e} should say {reason:?}");
        assert!(e.to_string().contains(path));
    }
}
