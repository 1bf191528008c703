//! Focused checks: operators, `$.` references, interpolation, phone numbers, hours, and the
//! interpreter's limits (step budget, attribute size, Lambda response validation).

use serde_json::json;
use voxbridge_flows::path::{interpolate, is_reference, resolve, value};
use voxbridge_flows::phone::normalize;
use voxbridge_flows::{
    parse_flow, Command, Ended, Environment, Event, Flow, FunctionResult, HoursOfOperation, Interpreter,
    OpenRange, Operator,
};

use crate::driver::{contact, environment};

#[test]
fn compare_operators() {
    use Operator::*;
    let cases: &[(Operator, &str, &str, bool)] = &[
        (Equals, "abc", "abc", true),
        (Equals, "abc", "ABC", false),
        (Equals, "1", "1.0", false),
        (TextStartsWith, "#123", "#", true),
        (TextStartsWith, "123#", "#", false),
        (TextEndsWith, "123#", "#", true),
        (TextContains, "12*34", "*", true),
        (TextContains, "1234", "*", false),
        (NumberGreaterThan, "300001", "300000", true),
        (NumberGreaterThan, "300000", "300000", false),
        (NumberGreaterOrEqualTo, "300000", "300000", true),
        (NumberLessThan, "-1.5", "0", true),
        (NumberLessOrEqualTo, "2", "2.0", true),
        (NumberGreaterThan, "abc", "0", false),
        (NumberLessThan, "abc", "0", false),
        (NumberGreaterThan, "NaN", "0", false),
        (NumberGreaterThan, "inf", "0", false),
        (NumberGreaterThan, "", "0", false),
        (Operator::parse("Bogus"), "a", "a", false),
    ];
    for (op, value, operand, want) in cases {
        assert_eq!(op.eval(value, operand), *want, "{value:?} {} {operand:?}", op.as_str());
    }
    for name in [
        "Equals",
        "TextStartsWith",
        "TextEndsWith",
        "TextContains",
        "NumberGreaterThan",
        "NumberGreaterOrEqualTo",
        "NumberLessThan",
        "NumberLessOrEqualTo",
    ] {
        assert_eq!(Operator::parse(name).as_str(), name);
        assert!(!matches!(Operator::parse(name), Operator::Unknown(_)));
    }
}

#[test]
fn references_resolve_against_the_contact() {
    let env = environment();
    let mut s = contact();
    s.attributes.insert("sfdc-RTT_flag__c".into(), "true".into());
    s.external = json!({"voiceCallId": "0LQ1", "n": 3, "nested": {"a": ["x", "y"]}, "nil": null});
    s.stored_customer_input = Some("+14155550199".into());
    s.queue = Some(voxbridge_flows::TargetQueue {
        id: "q".into(),
        arn: "arn:q".into(),
        name: "Support".into(),
        outbound_caller_id: None,
        hours_of_operation_id: None,
        agent_id: None,
    });
    let r = |p: &str| resolve(&s, &env, p).map(|c| c.into_owned());
    assert_eq!(r("$.Attributes.sfdc-RTT_flag__c").as_deref(), Some("true"));
    assert_eq!(r("$.Attributes.missing"), None);
    assert_eq!(r("$.External.voiceCallId").as_deref(), Some("0LQ1"));
    assert_eq!(r("$.External.n").as_deref(), Some("3"));
    assert_eq!(r("$.External.nested.a.1").as_deref(), Some("y"));
    assert_eq!(r("$.External.nested").as_deref(), Some(r#"{"a":["x","y"]}"#));
    assert_eq!(r("$.External.nil"), None);
    assert_eq!(r("$.StoredCustomerInput").as_deref(), Some("+14155550199"));
    assert_eq!(r("$.CustomerEndpoint.Address").as_deref(), Some("+14155550123"));
    assert_eq!(r("$.SystemEndpoint.Type").as_deref(), Some("TELEPHONE_NUMBER"));
    assert_eq!(r("$.ContactId").as_deref(), Some("c0ffee00-0000-4000-8000-000000000001"));
    assert_eq!(r("$.InitiationMethod").as_deref(), Some("INBOUND"));
    assert_eq!(r("$.Queue.Name").as_deref(), Some("Support"));
    assert_eq!(r("$.Queue.ARN").as_deref(), Some("arn:q"));
    assert_eq!(r("$.Agent.ARN"), None, "no agent yet");
    assert_eq!(r("$.MediaStreams.Customer.Audio.StreamARN"), None);
    assert_eq!(r("$.Lex.IntentName"), None);
    assert_eq!(r("Attributes.x"), None);
}

#[test]
fn queue_metrics_references() {
    let env = environment();
    let mut s = contact();
    assert_eq!(resolve(&s, &env, "$.Metrics.Agents.Online.Count"), None);
    let q = &env.queues[0];
    s.queue = Some(voxbridge_flows::TargetQueue {
        id: q.id.clone(),
        arn: q.arn.clone(),
        name: q.name.clone(),
        outbound_caller_id: None,
        hours_of_operation_id: None,
        agent_id: None,
    });
    assert_eq!(resolve(&s, &env, "$.Metrics.Agents.Online.Count").as_deref(), Some("2"));
    assert_eq!(resolve(&s, &env, "$.Metrics.Queue.Size").as_deref(), Some("0"));
}

#[test]
fn interpolation_in_text_and_ssml() {
    let env = environment();
    let mut s = contact();
    s.external = json!({"CaseNumber": "00001026"});
    s.attributes.insert("VoiceIdOne".into(), "12".into());
    s.attributes.insert("VoiceIdTwo".into(), "34".into());
    s.customer_id = Some("1234".into());
    let i = |t: &str| interpolate(&s, &env, t).into_owned();
    assert_eq!(i("Your case is $.External.CaseNumber."), "Your case is 00001026.");
    assert_eq!(i("$.Attributes.VoiceIdOne$.Attributes.VoiceIdTwo"), "1234");
    assert_eq!(
        i(r#"<speak>Your code is <say-as interpret-as="digits">$.CustomerId</say-as></speak>"#),
        r#"<speak>Your code is <say-as interpret-as="digits">1234</say-as></speak>"#
    );
    assert_eq!(i("Missing: [$.Attributes.nope]"), "Missing: []");
    assert_eq!(i("Costs $5 or $. or $.."), "Costs $5 or $. or $..");
    assert!(matches!(interpolate(&s, &env, "static"), std::borrow::Cow::Borrowed(_)));
    assert!(is_reference("$.Attributes.x"));
    assert!(!is_reference("$.Attributes.x and more"));
    assert_eq!(value(&s, &env, "$.Attributes.nope"), None, "a lone reference may be missing");
    assert_eq!(value(&s, &env, "id-$.Attributes.nope").as_deref(), Some("id-"));
}

#[test]
fn phone_numbers_from_the_keypad() {
    assert_eq!(normalize("4155550199", "Local", "US").as_deref(), Some("+14155550199"));
    assert_eq!(normalize("14155550199", "Local", "US").as_deref(), Some("+14155550199"));
    assert_eq!(normalize("123", "Local", "US"), None);
    assert_eq!(normalize("0155550199", "Local", "US"), None, "area codes never start with 0");
    assert_eq!(normalize("02079460000", "Local", "GB").as_deref(), Some("+442079460000"));
    assert_eq!(normalize("442079460000", "E164", "US").as_deref(), Some("+442079460000"));
    assert_eq!(normalize("12#34", "Local", "US"), None);
    assert_eq!(normalize("4155550199", "Local", "ZZ"), None);
}

#[test]
fn hours_of_operation_in_local_time() {
    let hours = HoursOfOperation {
        utc_offset_minutes: -7 * 60,
        open: (1..=5).map(|day| OpenRange { day, start_minute: 480, end_minute: 1080 }).collect(),
        ..HoursOfOperation::default()
    };
    let wed_10_local = crate::driver::OPEN_TIME_MS; // 17:00 UTC
    assert!(hours.is_open(wed_10_local));
    assert!(!hours.is_open(wed_10_local + 9 * 3_600_000), "19:00 local is closed");
    assert!(!hours.is_open(wed_10_local + 3 * 86_400_000), "Saturday is closed");
    // Extremes of the clock do not overflow.
    let _ = (hours.is_open(i64::MIN), hours.is_open(i64::MAX));
}

fn flow(actions: serde_json::Value) -> Flow {
    parse_flow(
        &json!({"Version": "2019-10-30", "StartAction": "a", "Metadata": {}, "Actions": actions}).to_string(),
    )
    .unwrap()
}

#[test]
fn step_budget_stops_a_tight_loop() {
    let f = flow(json!([
        {"Identifier": "a", "Type": "UpdateFlowLoggingBehavior", "Parameters": {"FlowLoggingBehavior": "Disabled"},
         "Transitions": {"NextAction": "b"}},
        {"Identifier": "b", "Type": "Compare", "Parameters": {"ComparisonValue": "$.ContactId"},
         "Transitions": {"NextAction": "a", "Errors": [{"NextAction": "a", "ErrorType": "NoMatchingCondition"}],
             "Conditions": [{"NextAction": "a", "Condition": {"Operator": "Equals", "Operands": ["never"]}}]}}
    ]));
    let env = Environment { step_budget: 50, ..environment() };
    let mut s = contact();
    let commands = Interpreter::new(&f, &env).step(&mut s, 0, Event::Start);
    assert_eq!(commands.last(), Some(&Command::Disconnect));
    assert_eq!(s.ended(), Some(&Ended::Error));
    let last = s.log().last().unwrap();
    assert!(last.message.contains("stopped after 50 actions"), "{last:?}");
}

#[test]
fn attributes_over_32_kb_take_the_error_branch_and_change_nothing() {
    let big = "x".repeat(20_000);
    let f = flow(json!([
        {"Identifier": "a", "Type": "UpdateContactAttributes", "Parameters": {"Attributes": {"one": big}},
         "Transitions": {"NextAction": "b", "Errors": [{"NextAction": "end", "ErrorType": "NoMatchingError"}]}},
        {"Identifier": "b", "Type": "UpdateContactAttributes", "Parameters": {"Attributes": {"two": big, "three": "3"}},
         "Transitions": {"NextAction": "end", "Errors": [{"NextAction": "end", "ErrorType": "NoMatchingError"}]}},
        {"Identifier": "end", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}
    ]));
    let env = environment();
    let mut s = contact();
    Interpreter::new(&f, &env).step(&mut s, 0, Event::Start);
    assert!(s.attributes.contains_key("one"));
    assert!(!s.attributes.contains_key("two") && !s.attributes.contains_key("three"));
}

fn lambda_flow(response_type: Option<&str>, invocation_type: Option<&str>) -> Flow {
    let mut params = json!({"LambdaFunctionARN": "arn:aws:lambda:us-west-2:1:function:f", "InvocationTimeLimitSeconds": "8",
                            "LambdaInvocationAttributes": {"who": "$.CustomerEndpoint.Address", "static": "s"}});
    if let Some(rt) = response_type {
        params["ResponseValidation"] = json!({"ResponseType": rt});
    }
    if let Some(it) = invocation_type {
        params["InvocationType"] = json!(it);
    }
    flow(json!([
        {"Identifier": "a", "Type": "InvokeLambdaFunction", "Parameters": params,
         "Transitions": {"NextAction": "ok", "Errors": [{"NextAction": "err", "ErrorType": "NoMatchingError"}]}},
        {"Identifier": "ok", "Type": "EndFlowExecution", "Parameters": {}, "Transitions": {}},
        {"Identifier": "err", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}
    ]))
}

#[test]
fn lambda_responses_are_validated_by_response_type() {
    let env = environment();
    let nested = json!({"a": {"b": 1}});
    let cases = [
        (None, nested.clone(), Ended::Disconnected),
        (Some("STRING_MAP"), nested.clone(), Ended::Disconnected),
        (Some("JSON"), nested.clone(), Ended::FlowEnded),
        (Some("STRING_MAP"), json!({"n": 1, "b": true}), Ended::FlowEnded),
        (Some("JSON"), json!(["not", "an", "object"]), Ended::Disconnected),
        (Some("JSON"), json!({"big": "x".repeat(40_000)}), Ended::Disconnected),
    ];
    for (rt, response, want) in cases {
        let f = lambda_flow(rt, None);
        let mut s = contact();
        let i = Interpreter::new(&f, &env);
        let commands = i.step(&mut s, 0, Event::Start);
        let Some(Command::InvokeFunction(inv)) = commands.first() else { panic!("{commands:?}") };
        assert_eq!(inv.event["Details"]["Parameters"], json!({"who": "+14155550123", "static": "s"}));
        assert_eq!(inv.event["Name"], "ContactFlowEvent");
        i.step(&mut s, 1, Event::FunctionResult(FunctionResult::Ok(response.clone())));
        assert_eq!(s.ended(), Some(&want), "{rt:?} {response}");
    }
    // STRING_MAP values are stored as text.
    let f = lambda_flow(Some("STRING_MAP"), None);
    let mut s = contact();
    let i = Interpreter::new(&f, &env);
    i.step(&mut s, 0, Event::Start);
    i.step(&mut s, 1, Event::FunctionResult(FunctionResult::Ok(json!({"n": 1}))));
    assert_eq!(s.external, json!({"n": "1"}));
}

#[test]
fn asynchronous_lambda_does_not_wait() {
    let env = environment();
    let f = lambda_flow(None, Some("ASYNCHRONOUS"));
    let mut s = contact();
    let commands = Interpreter::new(&f, &env).step(&mut s, 0, Event::Start);
    let Some(Command::InvokeFunction(inv)) = commands.first() else { panic!("{commands:?}") };
    assert!(inv.asynchronous);
    assert_eq!(s.ended(), Some(&Ended::FlowEnded));
    assert_eq!(
        resolve(&s, &env, "$.LambdaInvocation.InvocationId").as_deref(),
        Some(inv.invocation_id.as_str())
    );
}

#[test]
fn unexpected_events_are_ignored_and_logged() {
    let env = environment();
    let f = lambda_flow(None, None);
    let mut s = contact();
    let i = Interpreter::new(&f, &env);
    assert!(i.step(&mut s, 0, Event::InputTimeout).is_empty(), "not started");
    i.step(&mut s, 0, Event::Start);
    assert!(i.step(&mut s, 1, Event::TimerFired).is_empty());
    assert!(s.is_waiting());
    assert!(s.log().last().unwrap().message.contains("ignored timer fired"));
    i.step(&mut s, 2, Event::Disconnected);
    assert_eq!(s.ended(), Some(&Ended::CustomerHungUp));
}

#[test]
fn distribute_by_percentage_is_deterministic_per_seed() {
    let f = flow(json!([
        {"Identifier": "a", "Type": "DistributeByPercentage", "Parameters": {},
         "Transitions": {"Errors": [{"NextAction": "c", "ErrorType": "NoMatchingCondition"}],
             "Conditions": [{"NextAction": "b", "Condition": {"Operator": "NumberLessThan", "Operands": ["31"]}}]}},
        {"Identifier": "b", "Type": "EndFlowExecution", "Parameters": {}, "Transitions": {}},
        {"Identifier": "c", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}
    ]));
    let env = environment();
    let mut first = 0;
    for seed in 0..1000u64 {
        let mut s = contact();
        s.rng = seed;
        Interpreter::new(&f, &env).step(&mut s, 0, Event::Start);
        let mut again = contact();
        again.rng = seed;
        Interpreter::new(&f, &env).step(&mut again, 0, Event::Start);
        assert_eq!(s.ended(), again.ended());
        first += usize::from(s.ended() == Some(&Ended::FlowEnded));
    }
    assert!((230..370).contains(&first), "about 30% should take the first branch, got {first}/1000");
}

#[test]
fn loop_counts_reset_after_done() {
    let f = flow(json!([
        {"Identifier": "a", "Type": "Loop", "Parameters": {"LoopCount": "$.Attributes.n"},
         "Transitions": {"NextAction": "done", "Conditions": [
             {"NextAction": "body", "Condition": {"Operator": "Equals", "Operands": ["ContinueLooping"]}},
             {"NextAction": "done", "Condition": {"Operator": "Equals", "Operands": ["DoneLooping"]}}]}},
        {"Identifier": "body", "Type": "MessageParticipant", "Parameters": {"Text": "again"},
         "Transitions": {"NextAction": "a"}},
        {"Identifier": "done", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}
    ]));
    let env = environment();
    let mut s = contact();
    s.attributes.insert("n".into(), "3".into());
    let commands = Interpreter::new(&f, &env).step(&mut s, 0, Event::Start);
    let plays = commands.iter().filter(|c| matches!(c, Command::PlayPrompt(_))).count();
    assert_eq!(plays, 3);
}

#[test]
fn store_input_strips_the_termination_key_and_times_out_to_timeout() {
    let f = flow(json!([
        {"Identifier": "a", "Type": "GetParticipantInput",
         "Parameters": {"Text": "Code?", "StoreInput": "True", "InputTimeLimitSeconds": "10",
             "DTMFConfiguration": {"DisableCancelKey": "False", "InputTerminationSequence": "#"},
             "InputValidation": {"CustomValidation": {"MaximumLength": "4"}}},
         "Transitions": {"NextAction": "b", "Errors": [{"NextAction": "b", "ErrorType": "NoMatchingError"}]}},
        {"Identifier": "b", "Type": "EndFlowExecution", "Parameters": {}, "Transitions": {}}
    ]));
    let env = environment();
    let i = Interpreter::new(&f, &env);
    let mut s = contact();
    let commands = i.step(&mut s, 0, Event::Start);
    assert!(commands.contains(&Command::CollectDigits(voxbridge_flows::CollectDigits {
        max_digits: Some(4),
        first_digit_timeout_seconds: 10,
        inter_digit_timeout_seconds: 5,
        termination_sequence: Some("#".into()),
        cancel_key: true,
    })));
    i.step(&mut s, 1, Event::InputDigits("123456#".into()));
    assert_eq!(s.stored_customer_input.as_deref(), Some("1234"));
    let mut s = contact();
    i.step(&mut s, 0, Event::Start);
    i.step(&mut s, 1, Event::InputTimeout);
    assert_eq!(s.stored_customer_input.as_deref(), Some("Timeout"));
}
