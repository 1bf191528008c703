//! Parsing real exports, the wrapper forms, the legacy format, and round-tripping.

use serde_json::{json, Value};
use voxbridge_flows::{parse_flow, parse_flow_value, ActionKind, ParseError};

use crate::fixtures;

#[test]
fn all_fixtures_parse_and_round_trip() {
    let all = fixtures();
    assert_eq!(all.len(), 23);
    for (name, text) in all {
        let flow = parse_flow(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let original: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(flow.to_json(), original, "{name} does not round-trip");
        // And the written text parses to the same model.
        assert_eq!(parse_flow(&flow.to_json_string()).unwrap(), flow, "{name}");
        assert!(flow.actions.iter().all(|a| !matches!(a.kind, ActionKind::Unknown(_))), "{name}");
    }
}

#[test]
fn absent_and_empty_branch_lists_are_kept_apart() {
    let flow = crate::fixture("Sample_SCV_Voicemail_Subflow.json");
    let transfer = flow.action("e82c5fb7-65ca-4012-b949-a2d7d46c6773").unwrap();
    assert_eq!(transfer.kind, ActionKind::TransferContactToQueue);
    assert!(transfer.parameters.is_none(), "this export has no Parameters key at all");
    assert_eq!(transfer.transitions.conditions, Some(vec![]));
    let inbound = crate::fixture("Sample_SCV_Inbound_Flow.json");
    let logging = inbound.action("f096d844-7043-459c-b533-c4aa102f35e6").unwrap();
    assert_eq!(logging.transitions.errors, None);
    assert_eq!(logging.transitions.conditions, None);
}

#[test]
fn friendly_identifiers_and_start_action() {
    let flow = crate::fixture("Sample_SCV_Voicemail_Subflow_For_Omni_Routing.json");
    assert_eq!(flow.start_action, "Waiting loop");
    assert_eq!(flow.action("Waiting loop").unwrap().kind, ActionKind::MessageParticipantIteratively);
    assert!(flow.action("Resume the waiting loop").is_some());
}

#[test]
fn wrapped_content_parses() {
    let (_, text) = fixtures().into_iter().next().unwrap();
    let direct = parse_flow(&text).unwrap();
    let wrapped = json!({ "ContactFlow": { "Name": "x", "Content": text } });
    assert_eq!(parse_flow_value(&wrapped).unwrap(), direct);
    let bare = json!({ "Content": text, "Name": "x" });
    assert_eq!(parse_flow_value(&bare).unwrap(), direct);
}

#[test]
fn legacy_modules_format_is_named() {
    let legacy = json!({"modules": [], "version": "1", "type": "contactFlow", "start": "x", "metadata": {}});
    let err = parse_flow(&legacy.to_string()).unwrap_err();
    assert_eq!(err, ParseError::LegacyModulesFormat);
    assert!(err.to_string().contains("`modules` format"), "{err}");
    let wrapped = json!({"ContactFlow": {"Content": legacy.to_string()}});
    assert_eq!(parse_flow_value(&wrapped).unwrap_err(), ParseError::LegacyModulesFormat);
}

#[test]
fn shape_errors_name_the_place() {
    let cases = [
        ("[]", "$: a flow must be a JSON object"),
        (r#"{"Version":"2019-10-30","StartAction":"a","Actions":{}}"#, "Actions: expected an array"),
        (
            r#"{"Version":"2019-10-30","StartAction":"a","Actions":[{"Type":"Loop","Transitions":{}}]}"#,
            "Actions[0]: missing `Identifier`",
        ),
        (
            r#"{"Version":"2019-10-30","StartAction":"a","Actions":[{"Identifier":"a","Type":"Loop","Transitions":{"Errors":{}}}]}"#,
            "Actions[0].Transitions.Errors: expected an array",
        ),
        (
            r#"{"Version":"2020-01-01","StartAction":"a","Actions":[]}"#,
            "unsupported flow language Version \"2020-01-01\"; only \"2019-10-30\" is supported",
        ),
        ("{", "not valid JSON: EOF while parsing an object at line 1 column 1"),
    ];
    for (text, want) in cases {
        assert_eq!(parse_flow(text).unwrap_err().to_string(), want, "{text}");
    }
}

#[test]
fn numbers_in_parameters_survive() {
    let flow = crate::fixture("Sample_SCV_Transfer_Flow_For_Omni_Routing_Transfers.json");
    let routing = flow.actions.iter().find(|a| a.kind == ActionKind::UpdateContactRoutingCriteria).unwrap();
    let level = &routing.parameters.as_ref().unwrap()["RoutingCriteria"]["Steps"][0]["Expression"]
        ["AttributeCondition"]["ProficiencyLevel"];
    assert_eq!(level, &json!(1));
}
