//! The automation engine from the outside: the demo "Voice Actions" definition run for each
//! IVR choice with the effects it asks for, definitions with mistakes reported at their
//! paths, and property tests that no formula text or definition makes it panic.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use voxbridge_automations::{formula, parse, Effect, Feedback, TriggerEvent};

fn record(fields: Value) -> Map<String, Value> {
    fields.as_object().cloned().unwrap_or_default()
}

/// Runs `definition` for `fields`, answering finds with `found` and creates with `500NEW`.
fn effects(definition: &Value, fields: Value, found: Option<Value>) -> (Vec<Effect>, Vec<String>) {
    let automation = parse("Voice_Actions", definition).expect("valid");
    let Some(mut run) = automation.start(record(fields)).expect("condition evaluates") else {
        return (Vec::new(), Vec::new());
    };
    let mut out = Vec::new();
    let mut feedback = None;
    while let Some(effect) = run.next(feedback.take()).expect("runs") {
        feedback = Some(match &effect {
            Effect::Find { .. } => Feedback::Found(found.clone().and_then(|f| f.as_object().cloned())),
            Effect::Create { .. } => Feedback::Created { id: "500NEW".into() },
            _ => Feedback::Done,
        });
        out.push(effect);
    }
    (out, run.trace().to_vec())
}

fn fields(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[test]
fn voice_actions_link_an_existing_case_by_its_padded_number() {
    let def = voxbridge_core::setup::voice_actions_definition();
    let call = json!({"Id": "0LQVX0000000001", "IVRType__c": "ExistingCase", "IVRInput__c": "1042",
        "FromPhoneNumber": "+15551234567"});
    let (effects, trace) =
        effects(&def, call, Some(json!({"Id": "500VX0000000042", "CaseNumber": "00001042"})));
    assert_eq!(trace, ["IVRSelection → ExistingCase", "CaseFound → Found"]);
    assert_eq!(
        effects,
        [
            Effect::Find {
                soql: "SELECT Id, CaseNumber FROM Case WHERE CaseNumber = '00001042' LIMIT 1".into()
            },
            Effect::Update {
                id: "0LQVX0000000001".into(),
                fields: fields(json!({"RelatedRecordId": "500VX0000000042"}))
            },
        ]
    );
}

#[test]
fn voice_actions_leave_the_call_alone_when_the_case_does_not_exist() {
    let def = voxbridge_core::setup::voice_actions_definition();
    let call = json!({"Id": "0LQVX0000000001", "IVRType__c": "ExistingCase", "IVRInput__c": "9"});
    let (effects, trace) = effects(&def, call, None);
    assert_eq!(trace, ["IVRSelection → ExistingCase", "CaseFound → default"]);
    assert_eq!(effects.len(), 1, "{effects:?}");
}

#[test]
fn voice_actions_create_and_link_a_new_case_for_any_other_choice() {
    let def = voxbridge_core::setup::voice_actions_definition();
    let call = json!({"Id": "0LQVX0000000001", "IVRType__c": "NewCase", "IVRInput__c": "New Voice Case"});
    let (effects, trace) = effects(&def, call, None);
    assert_eq!(trace, ["IVRSelection → default"]);
    assert_eq!(
        effects,
        [
            Effect::Create {
                object: "Case".into(),
                fields: fields(json!({"Subject": "New Voice Case", "Origin": "Phone"}))
            },
            Effect::Update {
                id: "0LQVX0000000001".into(),
                fields: fields(json!({"RelatedRecordId": "500NEW"}))
            },
        ]
    );
}

#[test]
fn voice_actions_text_the_caller_on_ivr_transfer() {
    let def = voxbridge_core::setup::voice_actions_definition();
    let call =
        json!({"Id": "0LQVX0000000001", "IVRType__c": "IVRTransfer", "FromPhoneNumber": "+15551234567"});
    let (effects, _) = effects(&def, call, None);
    assert_eq!(
        effects,
        [Effect::Notify {
            name: "SendTransferSMS".into(),
            channel: voxbridge_core::setup::DEMO_SMS_CHANNEL.into(),
            template: "IVRTransfer".into(),
            recipient: "5551234567".into(),
            context: "0LQVX0000000001".into(),
        }]
    );
}

#[test]
fn calls_without_an_ivr_choice_do_not_run() {
    let def = voxbridge_core::setup::voice_actions_definition();
    let (effects, trace) = effects(&def, json!({"Id": "0LQVX0000000001"}), None);
    assert!(effects.is_empty() && trace.is_empty());
    let automation = parse("Voice_Actions", &def).unwrap();
    assert!(automation.listens("voicecall", TriggerEvent::Create));
    assert!(!automation.listens("VoiceCall", TriggerEvent::Update));
}

#[test]
fn binds_are_quoted_so_input_cannot_change_the_query() {
    let def = json!({"trigger": {"object": "VoiceCall", "on": ["create"]},
        "steps": [{"find": {"as": "c", "soql": "SELECT Id FROM Case WHERE Subject = :IVRInput__c AND Status != ':x'"}}]});
    let (effects, _) = effects(&def, json!({"IVRInput__c": "x' OR Subject != '"}), None);
    assert_eq!(
        effects,
        [Effect::Find {
            soql: r"SELECT Id FROM Case WHERE Subject = 'x\' OR Subject != \'' AND Status != ':x'".into()
        }]
    );
}

#[test]
fn events_and_templates() {
    let def = json!({"trigger": {"object": "RealtimeAlertEvent", "on": ["publish"], "condition": "Severity = 'Critical'"},
        "steps": [{"publish": {"event": "RealtimeAlertEvent", "fields": {"Name": "'Escalated: ' & Name"}}}]});
    let (effects, _) = effects(&def, json!({"Name": "Queue full", "Severity": "Critical"}), None);
    assert_eq!(
        effects,
        [Effect::Publish {
            event: "RealtimeAlertEvent".into(),
            fields: fields(json!({"Name": "Escalated: Queue full"}))
        }]
    );
    let automation = parse("A", &def).unwrap();
    let run =
        automation.start(record(json!({"Name": "Queue full", "Severity": "Critical"}))).unwrap().unwrap();
    assert_eq!(
        run.render("Alert {!Name} ({!LOWER(Severity)}) {!nope(} {!"),
        "Alert Queue full (critical) {!nope(} {!"
    );
}

/// Every message of a definition's errors, as `path: message`.
fn errors(def: Value) -> Vec<String> {
    parse("Broken", &def).expect_err("invalid").iter().map(ToString::to_string).collect()
}

#[test]
fn mistakes_are_reported_at_their_paths() {
    assert_eq!(
        errors(json!({"trigger": {"object": "VoiceCall", "on": ["create"]}, "steps": [{"updat": {}}]})),
        ["steps[0]: unknown variant `updat`, expected one of `find`, `create`, `update`, `notify`, `publish`, `decision`"]
    );
    assert_eq!(
        errors(json!({"trigger": {"object": "VoiceCall", "on": ["create"], "when": "x"}, "steps": []})),
        ["trigger.when: unknown field `when`, expected one of `object`, `on`, `condition`"]
    );
    assert_eq!(
        errors(json!({"trigger": {"object": "VoiceCall"}, "steps": []})),
        ["trigger: missing field `on`"]
    );
    assert_eq!(
        errors(json!({
            "trigger": {"object": "Voice Call", "on": ["insert", "create", "create"], "condition": "RIGHT(x"},
            "formulas": {"A": "B & 'x'", "B": "LEFT(Subject, 3)", "C": 3},
            "steps": [
                {"find": {"as": "c", "soql": "SELECT Id FROM Case WHERE Id = :nope.Id"}},
                {"find": {"as": "d", "soql": "SELEC Id FROM Case"}},
                {"decision": {"name": "D", "outcomes": [
                    {"name": "o", "when": "c.Id = $Recrd.Id", "steps": [
                        {"update": {"record": "c.Account.Id", "fields": {"Bad Field": "1", "Status": 2}}}
                    ]}
                ]}},
                {"notify": {"channel": "", "template": "T", "recipient": "FOO(1)"}},
                {"create": {"as": "A", "object": "Case", "fields": {}}}
            ]
        })),
        [
            "trigger.object: `Voice Call` is not a valid object name (letters, digits and _, starting with a letter)",
            "trigger.on[0]: unknown event `insert`; use create, update or publish",
            "trigger.on[2]: `create` is listed twice",
            "formulas.A: uses `B`, which is defined after it (or is itself)",
            "formulas.C: a formula is a string, got 3",
            "trigger.condition: column 8: expected `,` or `)` in the arguments of RIGHT in `RIGHT(x`",
            "steps[0].find.soql: bind :nope.Id: `nope.Id`: `nope` is not a variable defined by an earlier find or create",
            "steps[1].find.soql: not a valid query: line 1, column 1: unexpected token: 'SELEC'",
            "steps[2].decision.outcomes[0].when: `$Recrd.Id`: the only global is $Record",
            "steps[2].decision.outcomes[0].steps[0].update.record: `c.Account.Id`: a variable has fields, not relationships",
            "steps[2].decision.outcomes[0].steps[0].update.fields.Bad Field: `Bad Field` is not a valid field name (letters, digits and _, starting with a letter)",
            "steps[2].decision.outcomes[0].steps[0].update.fields.Status: a field's value is a formula in a string, got 2",
            "steps[3].notify.channel: names no messaging channel",
            &format!(
                "steps[3].notify.recipient: column 1: unknown function `FOO`; known: {} in `FOO(1)`",
                formula::FUNCTIONS.iter().map(|f| f.0).collect::<Vec<_>>().join(", ")
            ),
            "steps[4].create.fields: no fields",
            "steps[4].create.as: `A` is already the name of a formula",
        ]
    );
}

#[test]
fn evaluation_errors_stop_the_run_with_a_reason() {
    let def = json!({"trigger": {"object": "Case", "on": ["update"]},
        "steps": [{"update": {"record": "Id", "fields": {"Priority": "VALUE(Subject) / 0"}}}]});
    let automation = parse("A", &def).unwrap();
    let mut run = automation.start(record(json!({"Id": "500X", "Subject": "7"}))).unwrap().unwrap();
    assert_eq!(run.next(None).unwrap_err().to_string(), "update.Priority: division by zero");
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[ -~]{0,24}".prop_map(Value::String),
        prop::sample::select(vec![
            "find",
            "create",
            "update",
            "notify",
            "publish",
            "decision",
            "trigger",
            "steps",
            "object",
            "on",
            "create",
            "fields",
            "as",
            "soql",
            "when",
            "outcomes",
            "name",
            "RIGHT(x, 2)",
            "SELECT Id FROM Case",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "trigger",
                        "steps",
                        "object",
                        "on",
                        "condition",
                        "find",
                        "create",
                        "update",
                        "decision",
                        "as",
                        "soql",
                        "fields",
                        "record",
                        "when",
                        "outcomes",
                        "name",
                        "default",
                        "formulas",
                    ]),
                    inner
                ),
                0..4
            )
            .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_formula_text_parses_or_errs_and_evaluates_without_panicking(text in "\\PC{0,64}") {
        if let Ok(f) = formula::parse(&text) {
            let _ = formula::eval(&f.expr, &mut |_| Ok(formula::Value::Text("12".into())));
            let _ = formula::eval(&f.expr, &mut |_| Ok(formula::Value::Number(f64::MAX)));
        }
    }

    #[test]
    fn formula_like_text_never_panics(text in "[A-Za-z0-9_$.(){}!,'\" =<>&|+*/-]{0,80}") {
        if let Ok(f) = formula::parse(&text) {
            let _ = formula::eval(&f.expr, &mut |_| Ok(formula::Value::Null));
        }
    }

    #[test]
    fn any_definition_is_checked_without_panicking(def in arbitrary_json()) {
        if let Ok(a) = parse("A", &def) {
            if let Ok(Some(mut run)) = a.start(Map::new()) {
                let mut feedback = None;
                while let Ok(Some(e)) = run.next(feedback.take()) {
                    feedback = Some(match e {
                        Effect::Find { .. } => Feedback::Found(None),
                        Effect::Create { .. } => Feedback::Created { id: "x".into() },
                        _ => Feedback::Done,
                    });
                }
            }
        }
    }
}
