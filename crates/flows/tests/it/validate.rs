//! Validation: the fixtures are clean, and each rule names the action it is about.

use std::collections::HashSet;

use serde_json::json;
use voxbridge_flows::{has_errors, parse_flow, validate, Severity};

use crate::fixtures;

#[test]
fn all_fixtures_validate_without_errors() {
    let known = HashSet::new();
    for (name, text) in fixtures() {
        let flow = parse_flow(&text).unwrap();
        let diags = validate(&flow, &known);
        let errors: Vec<String> =
            diags.iter().filter(|d| d.severity == Severity::Error).map(|d| d.to_string()).collect();
        assert!(errors.is_empty(), "{name}:\n{}", errors.join("\n"));
    }
}

#[test]
fn unknown_functions_are_warnings_and_known_ones_are_quiet() {
    let flow = crate::fixture("Sample_SCV_Inbound_Flow.json");
    let diags = validate(&flow, &HashSet::new());
    insta::assert_snapshot!(render(&diags), @r#"warning: action "2cab4f51-d8d3-4b77-98cc-917fffe29026": the Lambda function "arn:aws:lambda:us-west-2:668462763708:function:LocalContactCenter-InvokeTelephonyIntegrationApiFunction" is not a known function"#);
    let by_name: HashSet<String> =
        ["LocalContactCenter-InvokeTelephonyIntegrationApiFunction".to_string()].into();
    assert!(validate(&flow, &by_name).is_empty());
}

fn render(diags: &[voxbridge_flows::Diagnostic]) -> String {
    diags.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")
}

/// A small flow with one broken action of each kind of mistake.
#[test]
fn messages_name_the_action() {
    let flow = json!({
        "Version": "2019-10-30",
        "StartAction": "nowhere",
        "Metadata": {},
        "Actions": [
            {"Identifier": "start", "Type": "MessageParticipant", "Parameters": {},
             "Transitions": {"NextAction": "missing-target"}},
            {"Identifier": "bad:id", "Type": "FrobnicateContact", "Parameters": {}, "Transitions": {}},
            {"Identifier": "queue", "Type": "UpdateContactTargetQueue", "Parameters": {},
             "Transitions": {"NextAction": "start", "Conditions": [
                 {"NextAction": "start", "Condition": {"Operator": "Equals", "Operands": ["x"]}}]}},
            {"Identifier": "loop", "Type": "Loop", "Parameters": {"LoopCount": "500"},
             "Transitions": {"Conditions": [
                 {"NextAction": "start", "Condition": {"Operator": "Equals", "Operands": ["ContinueLooping"]}}]}},
            {"Identifier": "input", "Type": "GetParticipantInput",
             "Parameters": {"Text": "Hi", "StoreInput": "True", "InputTimeLimitSeconds": "0"},
             "Transitions": {"NextAction": "start", "Errors": [{"NextAction": "start", "ErrorType": "QueueAtCapacity"}],
                 "Conditions": [{"NextAction": "start", "Condition": {"Operator": "Equals", "Operands": ["1"]}}]}},
            {"Identifier": "lambda", "Type": "InvokeLambdaFunction",
             "Parameters": {"LambdaFunctionARN": "$.Attributes.fn", "InvocationTimeLimitSeconds": "30"},
             "Transitions": {"NextAction": "start"}},
            {"Identifier": "cmp", "Type": "Compare", "Parameters": {"ComparisonValue": "$.Attributes.x"},
             "Transitions": {"NextAction": "start", "Conditions": [
                 {"NextAction": "start", "Condition": {"Operator": "NumberGreaterThan", "Operands": ["ten"]}}]}},
            {"Identifier": "start", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}},
            {"Identifier": "attrs", "Type": "UpdateContactAttributes", "Parameters": {"Attributes": {"bad key": "v"}},
             "Transitions": {"NextAction": "start"}}
        ]
    });
    let flow = parse_flow(&flow.to_string()).unwrap();
    let diags = validate(&flow, &HashSet::new());
    assert!(has_errors(&diags));
    insta::assert_snapshot!(render(&diags));
}

#[test]
fn too_many_actions() {
    let actions: Vec<_> = (0..251)
        .map(|i| {
            let next = if i == 250 { json!({}) } else { json!({"NextAction": format!("a{}", i + 1)}) };
            let kind = if i == 250 { "DisconnectParticipant" } else { "UpdateFlowLoggingBehavior" };
            json!({"Identifier": format!("a{i}"), "Type": kind,
                   "Parameters": if i == 250 { json!({}) } else { json!({"FlowLoggingBehavior": "Enabled"}) },
                   "Transitions": next})
        })
        .collect();
    let flow = json!({"Version": "2019-10-30", "StartAction": "a0", "Metadata": {}, "Actions": actions});
    let diags = validate(&parse_flow(&flow.to_string()).unwrap(), &HashSet::new());
    insta::assert_snapshot!(render(&diags), @"error: the flow has 251 actions; at most 250 are allowed");
}
