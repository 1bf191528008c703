//! Property tests of the no-panic invariant: arbitrary JSON into the parser and validator,
//! mutated fixtures, and arbitrary event sequences into the interpreter on every fixture flow.

use std::collections::HashSet;

use proptest::prelude::*;
use serde_json::{json, Value};
use voxbridge_flows::{
    parse_flow, parse_flow_value, validate, AudioStream, ContactState, Event, FunctionResult, Interpreter,
    QueueOutcome,
};

use crate::driver::{contact, environment};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[ -~]{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "2019-10-30",
            "Version",
            "Actions",
            "StartAction",
            "Identifier",
            "Type",
            "Transitions",
            "NextAction",
            "Errors",
            "Conditions",
            "Loop",
            "Compare",
            "$.Attributes.x",
            "$.External.y",
            "True",
            "8",
        ])
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "Version",
                        "StartAction",
                        "Metadata",
                        "Actions",
                        "Identifier",
                        "Type",
                        "Parameters",
                        "Transitions",
                        "NextAction",
                        "Errors",
                        "Conditions",
                        "Condition",
                        "Operator",
                        "Operands",
                        "ErrorType",
                        "Content",
                        "ContactFlow",
                        "modules",
                        "x",
                    ]),
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

fn arb_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::Start),
        "[0-9*#]{0,25}".prop_map(Event::InputDigits),
        Just(Event::InputTimeout),
        arb_json().prop_map(|v| Event::FunctionResult(FunctionResult::Ok(v))),
        Just(Event::FunctionResult(FunctionResult::Ok(json!({
            "voiceCallId": "0LQ1", "agent": "agent-1", "queue": "queue-omni", "status": "TRANSFER_CALL",
            "engPhone": "+15550100002", "outboundPhoneNumber": "+15550100001"
        })))),
        Just(Event::FunctionResult(FunctionResult::Timeout)),
        Just(Event::FunctionResult(FunctionResult::Error("x".into()))),
        Just(Event::QueueResult(QueueOutcome::Queued)),
        Just(Event::QueueResult(QueueOutcome::AtCapacity)),
        Just(Event::QueueResult(QueueOutcome::Failed("x".into()))),
        Just(Event::TransferResult(Ok(()))),
        Just(Event::TransferResult(Err("x".into()))),
        Just(Event::MediaStreamStarted(Ok(AudioStream::default()))),
        Just(Event::MediaStreamStarted(Err("x".into()))),
        Just(Event::TimerFired),
        Just(Event::Disconnected),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn parser_and_validator_never_panic(v in arb_json()) {
        let _ = parse_flow(&v.to_string());
        let wrapped = json!({"ContactFlow": {"Content": v.to_string()}});
        if let Ok(flow) = parse_flow_value(&v).or_else(|_| parse_flow_value(&wrapped)) {
            let _ = validate(&flow, &HashSet::new());
            let _ = flow.to_json();
        }
    }

    /// Replacing one node of a real flow with arbitrary JSON: parse, validate and run all cope.
    #[test]
    fn mutated_fixtures_never_panic(file in 0usize..23, pick in any::<prop::sample::Index>(), junk in arb_json(),
                                   events in prop::collection::vec(arb_event(), 0..12)) {
        let (_, text) = &crate::fixtures()[file];
        let mut doc: Value = serde_json::from_str(text).unwrap();
        let mut nodes = Vec::new();
        collect_paths(&doc, String::new(), &mut nodes);
        let target = &nodes[pick.index(nodes.len())];
        if let Some(slot) = doc.pointer_mut(target) {
            *slot = junk;
        }
        if let Ok(flow) = parse_flow_value(&doc) {
            let _ = validate(&flow, &HashSet::new());
            run_events(&flow, &events);
        }
    }

    #[test]
    fn interpreter_never_panics_on_fixture_flows(file in 0usize..23,
                                                 events in prop::collection::vec(arb_event(), 0..40)) {
        let (_, text) = &crate::fixtures()[file];
        let flow = parse_flow(text).unwrap();
        run_events(&flow, &events);
    }
}

fn run_events(flow: &voxbridge_flows::Flow, events: &[Event]) -> ContactState {
    let env = environment();
    let mut state = contact();
    let interp = Interpreter::new(flow, &env);
    let mut now = 0i64;
    interp.step(&mut state, now, Event::Start);
    for e in events {
        now += 1_000;
        interp.step(&mut state, now, e.clone());
    }
    state
}

fn collect_paths(v: &Value, here: String, out: &mut Vec<String>) {
    out.push(here.clone());
    match v {
        Value::Array(a) => {
            a.iter().enumerate().for_each(|(i, x)| collect_paths(x, format!("{here}/{i}"), out))
        }
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            collect_paths(x, format!("{here}/{}", k.replace('~', "~0").replace('/', "~1")), out)
        }),
        _ => {}
    }
}
