//! Simulated calls through the inbound sample against a real server: the VoiceCall is
//! created over the wire contract, the Omni-Channel subflow routes the call, and the contact
//! ends queued — also when the CRM half refuses (429) or the function fails (voice resiliency).

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{json, Value};
use voxbridge_contacts::{CallError, CallerScript, InboundCall};
use voxbridge_functions::ManualClock;
use voxbridge_server::{Limits, Settings};

use crate::harness::{center, flows_dir, redact, TestServer, BASIC_QUEUE_ID, CALLER, CONTACT_ID, NOW_MS};

fn call(to: &str) -> InboundCall {
    InboundCall {
        to: to.into(),
        from: CALLER.into(),
        input: CallerScript::default(),
        contact_id: Some(CONTACT_ID.into()),
    }
}

fn functions(result: &voxbridge_contacts::ContactResult) -> Vec<(String, Option<Value>, Option<String>)> {
    result
        .steps
        .iter()
        .filter_map(|s| match &s.step {
            voxbridge_contacts::Step::Function { event, response, error, .. } => Some((
                event["Details"]["Parameters"]["methodName"].as_str().unwrap_or("").to_string(),
                response.clone(),
                error.clone(),
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_sample_creates_the_voice_call_and_queues_the_contact() {
    let server = TestServer::start(Settings::default()).await;
    let flows = flows_dir(&server.demo, "");
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let center = center(&server, flows.path(), clock);
    let result = center.simulate(call(&server.demo.phone_number)).await.unwrap();

    assert_eq!(result.disposition, "QUEUED", "{:#?}", result.steps);
    let voice_call_id = result
        .voice_call_id
        .clone()
        .unwrap_or_else(|| panic!("{}", serde_json::to_string_pretty(&result.steps).unwrap()));
    assert!(voice_call_id.starts_with("0LQ"), "{voice_call_id}");
    let support = &server.demo.queues[0];
    assert_eq!(result.queue.as_ref().unwrap().arn, support.external_id);
    assert_eq!(result.attributes["queueArn"], support.external_id);
    assert_eq!(result.attributes["agentArn"], "");

    let calls = functions(&result);
    let methods: Vec<&str> = calls.iter().map(|(m, _, _)| m.as_str()).collect();
    assert_eq!(methods, ["createVoiceCall", "executeOmniFlow"]);
    assert!(calls.iter().all(|(_, _, e)| e.is_none()), "{calls:?}");

    // The CRM half has the call, keyed by the contact id, and its routing.
    let (status, view) = server.inspect(CONTACT_ID).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["voiceCall"]["Id"], json!(voice_call_id));
    assert_eq!(view["voiceCall"]["VendorCallKey"], CONTACT_ID);
    assert_eq!(view["voiceCall"]["FromPhoneNumber"], CALLER);
    assert_eq!(view["pendingServiceRouting"][0]["RoutingDefinition"], "Route_VoiceCall", "{view}");

    // Records: CTR and contact events.
    assert_eq!(result.ctr["ContactId"], CONTACT_ID);
    assert_eq!(result.ctr["InitiationMethod"], "INBOUND");
    assert_eq!(result.ctr["Agent"], Value::Null);
    assert_eq!(result.ctr["Queue"]["ARN"], json!(support.external_id));
    assert_eq!(result.ctr["Attributes"]["voiceCallId"], json!(voice_call_id));
    assert_eq!(result.ctr["DisconnectReason"], "CUSTOMER_DISCONNECT");
    let types: Vec<&str> =
        result.contact_events.iter().map(|e| e["detail"]["eventType"].as_str().unwrap()).collect();
    assert_eq!(types, ["INITIATED", "CONNECTED_TO_SYSTEM", "QUEUED", "DISCONNECTED"]);
    assert!(center.queues().is_empty(BASIC_QUEUE_ID), "the caller left the queue when they hung up");

    let m = center.functions().metrics_of("InvokeTelephonyIntegrationApiFunction").unwrap();
    assert_eq!((m.invocations, m.errors, m.throttles), (2, 0, 0));

    let redacted = redact(&serde_json::to_value(&result).unwrap(), &["durationMs", "id"]);
    insta::assert_json_snapshot!(redacted);
}

/// Voice resiliency: with the org's limit at 0 calls per second the API answers 429, the
/// function fails, the sample retries once, records the error and still queues the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_sample_reaches_the_queue_when_the_api_refuses_the_call() {
    let settings =
        Settings { limits: Limits { calls_per_second: 0, ..Limits::default() }, ..Settings::default() };
    let server = TestServer::start(settings).await;
    let flows = flows_dir(&server.demo, "");
    let center = center(&server, flows.path(), Arc::new(ManualClock::new(NOW_MS)));
    let result = center.simulate(call(&server.demo.phone_number)).await.unwrap();

    assert_eq!(result.disposition, "QUEUED", "{:#?}", result.steps);
    assert_eq!(result.voice_call_id, None);
    assert_eq!(result.queue.as_ref().unwrap().name, "BasicQueue");
    assert_eq!(result.attributes["error"], "Omni routing failed.");
    let calls = functions(&result);
    let methods: Vec<&str> = calls.iter().map(|(m, _, _)| m.as_str()).collect();
    assert_eq!(methods, ["createVoiceCall", "createVoiceCall", "executeOmniFlow"]);
    assert!(calls[0].2.as_deref().unwrap().contains("HTTP 429"), "{calls:?}");
    assert_eq!(server.inspect(CONTACT_ID).await.0, 404);
    let m = center.functions().metrics_of("InvokeTelephonyIntegrationApiFunction").unwrap();
    assert_eq!((m.invocations, m.errors), (3, 3));
}

/// The same when the flow's ARN is bound to an external function that answers 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_sample_reaches_the_queue_when_an_external_function_fails() {
    let failing = axum::Router::new()
        .fallback(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "{\"errorMessage\":\"boom\"}") });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, failing).await.unwrap() });

    let server = TestServer::start(Settings::default()).await;
    let arn = "arn:aws:lambda:us-west-2:668462763708:function:LocalContactCenter-InvokeTelephonyIntegrationApiFunction";
    let extra = format!("\n[[functions]]\narn = \"{arn}\"\nurl = \"http://{addr}/invoke\"\n");
    let flows = flows_dir(&server.demo, &extra);
    let center = center(&server, flows.path(), Arc::new(ManualClock::new(NOW_MS)));
    let result = center.simulate(call(&server.demo.phone_number)).await.unwrap();

    assert_eq!(result.disposition, "QUEUED", "{:#?}", result.steps);
    assert_eq!(result.queue.as_ref().unwrap().name, "BasicQueue");
    let calls = functions(&result);
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|(_, _, e)| e.as_deref() == Some("Error: boom")), "{calls:?}");
    let external =
        center.functions().metrics_of("LocalContactCenter-InvokeTelephonyIntegrationApiFunction").unwrap();
    assert_eq!((external.invocations, external.errors), (3, 3));
    assert_eq!(
        center.functions().metrics_of("InvokeTelephonyIntegrationApiFunction").unwrap().invocations,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_takes_the_capacity_branch_and_unknown_numbers_are_refused() {
    let server = TestServer::start(Settings::default()).await;
    let flows = flows_dir(&server.demo, "");
    let center = center(&server, flows.path(), Arc::new(ManualClock::new(NOW_MS)));

    let err = center.simulate(call("+15550109999")).await.unwrap_err();
    assert_eq!(err, CallError::NoFlowForNumber("+15550109999".into()));

    // Fill the Support queue; the transcription subflow's transfer fails with QueueAtCapacity.
    let support = server.demo.queues[0].external_id.rsplit('/').next().unwrap().to_string();
    center.queues().declare(&support, 1);
    center.queues().enqueue(&support, "someone-else", NOW_MS).unwrap();
    let result = center.simulate(call(&server.demo.phone_number)).await.unwrap();
    assert_ne!(result.disposition, "QUEUED", "{:#?}", result.steps);
    assert!(
        result.steps.iter().any(
            |s| matches!(&s.step, voxbridge_contacts::Step::Queue { result, .. } if result == "AT_CAPACITY")
        ),
        "{:#?}",
        result.steps
    );
    assert_eq!(center.queues().len(&support), 1);
}

/// `POST /simulator/v1/calls` on the server: the same simulation over HTTP, with a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_endpoint_runs_a_call() {
    let flows_holder = std::sync::Mutex::new(None);
    let server = TestServer::start_with(Settings::default(), |server, router| {
        let flows = flows_dir(&server.demo, "");
        let center = center(server, flows.path(), Arc::new(ManualClock::new(NOW_MS)));
        *flows_holder.lock().unwrap() = Some(flows);
        router.layer(axum::Extension(voxbridge_server::simulator::Simulator {
            center: Arc::new(center),
            org_id: Some(server.demo.org_id.to_string()),
        }))
    })
    .await;
    let url = format!("{}/simulator/v1/calls", server.base);
    let body = json!({"to": "+1 555 010 0100", "from": CALLER, "input": "1,1234#", "contactId": CONTACT_ID});

    let resp = server.client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401, "a token is required");

    let resp = server.client.post(&url).bearer_auth(server.token()).json(&body).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let log: Value = resp.json().await.unwrap();
    assert_eq!(log["disposition"], "QUEUED");
    assert_eq!(log["contactId"], CONTACT_ID);
    assert!(log["voiceCallId"].as_str().unwrap().starts_with("0LQ"));
    assert_eq!(log["ctr"]["ContactId"], CONTACT_ID);

    let bad = json!({"to": "+15550109999", "from": CALLER});
    let resp = server.client.post(&url).bearer_auth(server.token()).json(&bad).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let bad = json!({"to": "+15550100100", "from": CALLER, "input": "1x"});
    let resp = server.client.post(&url).bearer_auth(server.token()).json(&bad).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().await.unwrap().contains("not a phone key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_endpoint_is_off_without_flows() {
    let server = TestServer::start(Settings::default()).await;
    let resp = server
        .client
        .post(format!("{}/simulator/v1/calls", server.base))
        .bearer_auth(server.token())
        .json(&json!({"to": "+15550100100", "from": CALLER}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert!(resp.text().await.unwrap().contains("--flows"));
}
