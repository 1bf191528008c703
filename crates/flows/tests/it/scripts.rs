//! Scripted runs of the sample flows; each execution log is an insta snapshot.

use serde_json::json;
use voxbridge_flows::{Ended, FunctionResult, QueueInfo, QueueOutcome};

use crate::driver::{contact, environment, run, Script, BASIC_QUEUE_ID};
use crate::fixture;

const OMNI_BASIC: &str = "b1c37cdd-aa53-4dd1-899d-3021d7151b2b";
const CALLBACK: &str = "584a546b-db99-4665-8c58-5b3312fbae09";
const TRANSCRIPTION: &str = "de866a57-37e2-492f-bb49-70fe23f2bf7f";

/// The inbound chain the guide describes: inbound -> Omni-Channel subflow -> callback subflow ->
/// transcription subflow -> queue.
fn inbound_chain() -> Vec<(&'static str, voxbridge_flows::Flow)> {
    vec![
        (OMNI_BASIC, fixture("Sample_SCV_Omni-Channel_Subflow_-_Basic_Routing_with_Case_Creation.json")),
        (CALLBACK, fixture("Sample_SCV_Callback_Subflow.json")),
        (TRANSCRIPTION, fixture("Sample_SCV_Transcription_Subflow_with_Contact_Lens.json")),
    ]
}

#[test]
fn inbound_call_creates_voice_call_and_reaches_queue() {
    let env = environment();
    let mut state = contact();
    let script = Script {
        functions: [
            FunctionResult::Ok(json!({"voiceCallId": "0LQVX0000000001"})),
            FunctionResult::Ok(json!({"agent": "", "queue": "queue-omni"})),
        ]
        .into(),
        flows: inbound_chain(),
        ..Script::default()
    };
    let log = run(&fixture("Sample_SCV_Inbound_Flow.json"), &env, &mut state, script);
    assert_eq!(state.ended(), Some(&Ended::Queued));
    assert_eq!(state.attributes["voiceCallId"], "0LQVX0000000001");
    assert_eq!(state.queue.as_ref().unwrap().name, "OmniQueue");
    assert_eq!(state.recorded_participants, ["Agent", "Customer"]);
    insta::assert_snapshot!(log);
}

/// Voice resiliency (guide, chapter 7): when createVoiceCall fails, the sample retries once,
/// records the error and still routes the call instead of hanging up.
#[test]
fn inbound_call_survives_failing_functions() {
    let env = environment();
    let mut state = contact();
    let script = Script {
        functions: [
            FunctionResult::Error("Salesforce is unreachable".into()),
            FunctionResult::Timeout,
            FunctionResult::Timeout,
        ]
        .into(),
        flows: inbound_chain(),
        ..Script::default()
    };
    let log = run(&fixture("Sample_SCV_Inbound_Flow.json"), &env, &mut state, script);
    assert_eq!(state.ended(), Some(&Ended::Queued));
    assert_eq!(state.attributes["error"], "Omni routing failed.");
    assert!(!state.attributes.contains_key("voiceCallId"));
    assert_eq!(state.queue.as_ref().unwrap().id, BASIC_QUEUE_ID);
    insta::assert_snapshot!(log);
}

#[test]
fn omni_subflow_routes_to_the_agent_returned_by_the_function() {
    let env = environment();
    let mut state = contact();
    state.attributes.insert("voiceCallId".into(), "0LQVX0000000001".into());
    let script = Script {
        functions: [FunctionResult::Ok(json!({"agent": "agent-1", "queue": "queue-omni"}))].into(),
        ..Script::default()
    };
    let flow = fixture("Sample_SCV_Omni-Channel_Subflow_-_Basic_Routing_with_Case_Creation.json");
    let log = run(&flow, &env, &mut state, script);
    assert_eq!(state.queue.as_ref().unwrap().agent_id.as_deref(), Some("agent-1"));
    insta::assert_snapshot!(log);
}

/// The guide's callback recipe: a long wait offers a callback; the caller presses 2 and keys
/// a number (a bad one first).
#[test]
fn callback_subflow_stores_the_callback_number() {
    let mut env = environment();
    env.queues[0].metrics.oldest_contact_age_ms = 400_000;
    let mut state = contact();
    state.queue = Some(basic_queue(&env.queues[0]));
    let script = Script { digits: [Some("2"), Some("123"), Some("4155550199")].into(), ..Script::default() };
    let log = run(&fixture("Sample_SCV_Callback_Subflow.json"), &env, &mut state, script);
    assert_eq!(state.callback_number.as_deref(), Some("+14155550199"));
    assert_eq!(state.stored_customer_input.as_deref(), Some("+14155550199"));
    assert_eq!(state.ended(), Some(&Ended::Disconnected));
    insta::assert_snapshot!(log);
}

#[test]
fn callback_subflow_keeps_the_caller_waiting_on_timeout() {
    let mut env = environment();
    env.queues[0].metrics.oldest_contact_age_ms = 400_000;
    let mut state = contact();
    state.queue = Some(basic_queue(&env.queues[0]));
    let script = Script { digits: [None].into(), ..Script::default() };
    let log = run(&fixture("Sample_SCV_Callback_Subflow.json"), &env, &mut state, script);
    insta::assert_snapshot!(log);
}

#[test]
fn voicemail_subflow_records_a_message() {
    let env = voicemail_env();
    let mut state = contact();
    let script = Script { digits: [None].into(), ..Script::default() };
    let log = run(&fixture("Sample_SCV_Voicemail_Subflow.json"), &env, &mut state, script);
    assert_eq!(state.attributes["vm_flag"], "1");
    assert_eq!(state.attributes["vm_from"], "+14155550123");
    assert_eq!(state.attributes["vm_queue_name"], "Voicemail");
    assert!(state.customer_audio.as_ref().unwrap().stop_timestamp.is_some());
    insta::assert_snapshot!(log);
}

#[test]
fn voicemail_subflow_queues_the_caller_when_streaming_fails() {
    let env = voicemail_env();
    let mut state = contact();
    let script = Script {
        media: [Err("no media server")].into(),
        queue: [QueueOutcome::AtCapacity].into(),
        ..Script::default()
    };
    let log = run(&fixture("Sample_SCV_Voicemail_Subflow.json"), &env, &mut state, script);
    insta::assert_snapshot!(log);
}

/// A customer-queue flow: prompts loop until interrupted, the caller chooses voicemail
/// (pressing 1 instead ends this run of the queue flow, which the host starts again).
#[test]
fn omni_voicemail_subflow_interrupts_the_waiting_loop() {
    let env = environment();
    let mut state = contact();
    state.queue = Some(basic_queue(&env.queues[0]));
    state.attributes.insert("voiceCallId".into(), "0LQVX0000000001".into());
    let script = Script {
        timers: 1,
        digits: [Some("2")].into(),
        functions: [FunctionResult::Ok(json!({"status": "cancelled"}))].into(),
        ..Script::default()
    };
    let log = run(&fixture("Sample_SCV_Voicemail_Subflow_For_Omni_Routing.json"), &env, &mut state, script);
    assert_eq!(state.ended(), Some(&Ended::Disconnected));
    insta::assert_snapshot!(log);
}

#[test]
fn queue_transfer_flow_checks_hours_and_staffing() {
    let env = environment();
    let mut state = contact();
    state.initiation_method = "TRANSFER".into();
    state.queue = Some(basic_queue(&env.queues[0]));
    let script = Script {
        functions: [FunctionResult::Ok(json!({"voiceCallId": "0LQVX0000000002"}))].into(),
        flows: vec![(TRANSCRIPTION, fixture("Sample_SCV_Transcription_Subflow_with_Contact_Lens.json"))],
        ..Script::default()
    };
    let log = run(&fixture("Sample_SCV_Transfer_Flow_For_Queue_Transfers.json"), &env, &mut state, script);
    assert_eq!(state.ended(), Some(&Ended::Queued));
    insta::assert_snapshot!(log);
}

#[test]
fn queue_transfer_flow_outside_business_hours() {
    let mut env = environment();
    env.hours[0].override_open = Some(false);
    let mut state = contact();
    state.queue = Some(basic_queue(&env.queues[0]));
    let script = Script {
        functions: [FunctionResult::Ok(json!({"voiceCallId": "0LQVX0000000002"}))].into(),
        ..Script::default()
    };
    let log = run(&fixture("Sample_SCV_Transfer_Flow_For_Queue_Transfers.json"), &env, &mut state, script);
    assert_eq!(state.ended(), Some(&Ended::Disconnected));
    insta::assert_snapshot!(log);
}

#[test]
fn agent_transfer_flow() {
    let env = environment();
    let mut state = contact();
    let script = Script {
        functions: [FunctionResult::Ok(json!({"voiceCallId": "0LQVX0000000003"}))].into(),
        ..Script::default()
    };
    let log = run(&fixture("Sample_SCV_Transfer_Flow_For_Agent_Transfers.json"), &env, &mut state, script);
    assert_eq!(state.ended(), Some(&Ended::TransferredToAgent));
    insta::assert_snapshot!(log);
}

/// The whisper flow starts streaming and hands the stream to kvsConsumerTrigger; the Lambda
/// event has the ContactFlowEvent shape.
#[test]
fn whisper_flow_passes_the_media_stream_to_the_function() {
    let env = environment();
    let mut state = contact();
    state.queue = Some(basic_queue(&env.queues[0]));
    let flow = fixture("Sample_SCV_Agent_Whisper_Flow_for_Amazon_Transcribe.json");
    let interp = voxbridge_flows::Interpreter::new(&flow, &env);
    let t = crate::driver::OPEN_TIME_MS;
    interp.step(&mut state, t, voxbridge_flows::Event::Start);
    let commands = interp.step(
        &mut state,
        t + 100,
        voxbridge_flows::Event::MediaStreamStarted(Ok(voxbridge_flows::AudioStream {
            stream_arn: "arn:aws:kinesisvideo:us-west-2:000000000000:stream/contact-1".into(),
            start_fragment_number: Some("913438".into()),
            ..Default::default()
        })),
    );
    let invocation = commands.iter().find_map(|c| match c {
        voxbridge_flows::Command::InvokeFunction(inv) => Some(inv),
        _ => None,
    });
    let Some(inv) = invocation else { panic!("expected an invocation, got {commands:?}") };
    assert_eq!(inv.timeout_seconds, 3);
    insta::assert_json_snapshot!(inv.event);
    let mut state = contact();
    state.queue = Some(basic_queue(&env.queues[0]));
    let script = Script { functions: [FunctionResult::Ok(json!({}))].into(), ..Script::default() };
    let log = run(&flow, &env, &mut state, script);
    insta::assert_snapshot!(log);
}

#[test]
fn outbound_flow_with_caller_id_override() {
    let env = environment();
    let mut state = contact();
    state.initiation_method = "OUTBOUND".into();
    state.agent = Some(env.agents[0].clone());
    let script = Script {
        functions: [FunctionResult::Ok(json!({"outboundPhoneNumber": "+15550100001"}))].into(),
        ..Script::default()
    };
    let log = run(
        &fixture("Sample_SCV_Outbound_Flow_From_Rep_With_Caller_ID_Override.json"),
        &env,
        &mut state,
        script,
    );
    assert_eq!(state.ended(), Some(&Ended::FlowEnded));
    insta::assert_snapshot!(log);
}

#[test]
fn field_service_flow_transfers_to_a_third_party() {
    let env = environment();
    let mut state = contact();
    let script = Script {
        functions: [FunctionResult::Ok(json!({
            "status": "TRANSFER_CALL", "engPhone": "+15550100002", "engFirstName": "Eve",
            "cusSalutation": "Ms.", "cusFirstName": "Ada", "cusLastName": "Lovelace"
        }))]
        .into(),
        ..Script::default()
    };
    let log = run(&fixture("Sample_SCV_Field_Service_Phone_Call_Subflow.json"), &env, &mut state, script);
    assert_eq!(state.ended(), Some(&Ended::TransferredToThirdParty));
    insta::assert_snapshot!(log);
}

#[test]
fn voice_id_flow_takes_error_branches_and_still_routes() {
    let env = voice_id_env();
    let mut state = contact();
    let script = Script {
        functions: [FunctionResult::Ok(json!({"voiceCallId": "0LQVX0000000004"}))].into(),
        ..Script::default()
    };
    let log = run(&fixture("Sample_SCV_Inbound_Flow_with_Voice_ID.json"), &env, &mut state, script);
    assert_eq!(state.ended(), Some(&Ended::Queued));
    insta::assert_snapshot!(log);
}

fn basic_queue(q: &QueueInfo) -> voxbridge_flows::TargetQueue {
    voxbridge_flows::TargetQueue {
        id: q.id.clone(),
        arn: q.arn.clone(),
        name: q.name.clone(),
        outbound_caller_id: q.outbound_caller_id.clone(),
        hours_of_operation_id: q.hours_of_operation_id.clone(),
        agent_id: None,
    }
}

/// The voicemail sample sets its queue id to a literal; give it a queue of that id.
fn voicemail_env() -> voxbridge_flows::Environment {
    let mut env = environment();
    env.queues.push(QueueInfo {
        id: "8b4dd2a1-2181-441c-971a-40ea1adf0d5".into(),
        arn: format!("{}/queue/8b4dd2a1-2181-441c-971a-40ea1adf0d5", env.instance_arn),
        name: "Voicemail".into(),
        ..QueueInfo::default()
    });
    env
}

/// The Voice ID sample routes to a queue by full ARN.
fn voice_id_env() -> voxbridge_flows::Environment {
    let mut env = environment();
    env.queues.push(QueueInfo {
        id: "70d2b942-48f8-432e-82de-4050bf0f1348".into(),
        arn: "arn:aws:connect:us-west-2:575188527017:instance/f610bcfb-c094-47c9-b3e8-4cff3bbc6b1c/queue/70d2b942-48f8-432e-82de-4050bf0f1348".into(),
        name: "VoiceIdQueue".into(),
        ..QueueInfo::default()
    });
    env
}
