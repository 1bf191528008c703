//! Automations over real HTTP, on both backends: the guide's "Voice Actions" linking an
//! existing case or a new one to a VoiceCall created through the Telephony API, "Transfer
//! to SMS" delivered through the outbox to a real local webhook that fails twice first,
//! a message queued while no webhook was configured delivered by a restarted server, events
//! triggering automations, and invalid definitions refused with their mistakes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use reqwest::Method;
use serde_json::{json, Value};
use voxbridge_core::setup::{demo_voice_actions, DEMO_SMS_CHANNEL};
use voxbridge_server::{MessagingSettings, Settings};

use crate::both_backends;
use crate::harness::{now_secs, Backend, TestServer};

/// Requests a webhook received: (Idempotency-Key, body, the status it answered).
type Received = Arc<Mutex<Vec<(String, Value, u16)>>>;

/// A messaging webhook on `127.0.0.1:0` that answers 500 to its first `failures` requests.
async fn webhook(failures: usize) -> (String, Received) {
    let received: Received = Default::default();
    let app = axum::Router::new()
        .route(
            "/sms",
            axum::routing::post(
                |State((received, failures)): State<(Received, usize)>,
                 headers: HeaderMap,
                 Json(body): Json<Value>| async move {
                    let key = headers
                        .get("idempotency-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let mut all = received.lock().unwrap();
                    let status = if all.len() < failures { 500 } else { 200 };
                    all.push((key, body, status));
                    StatusCode::from_u16(status).unwrap()
                },
            ),
        )
        .with_state((received.clone(), failures));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/sms"), received)
}

/// Fast retries, so a test waits milliseconds rather than the default seconds.
fn settings(channel_url: Option<&str>) -> Settings {
    let mut channels = BTreeMap::new();
    if let Some(url) = channel_url {
        channels.insert(DEMO_SMS_CHANNEL.to_string(), url.to_string());
    }
    Settings {
        messaging: MessagingSettings {
            channels,
            retry_base: Duration::from_millis(20),
            retry_max: Duration::from_millis(100),
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn with_voice_actions(s: &TestServer) {
    let mut rng = rand::thread_rng();
    for r in demo_voice_actions(&mut rng, &s.demo.org_id, now_secs() * 1000) {
        s.store.insert(r).await.unwrap();
    }
}

async fn ivr_call(s: &TestServer, key: &str, attributes: Value) -> String {
    let (status, body) = s
        .call(
            Method::POST,
            "/telephony/v1/voiceCalls",
            Some(json!({
                "callCenterApiName": "DemoCallCenter", "vendorCallKey": key,
                "to": "+15550100100", "from": "+14155550123", "initiationMethod": "Inbound",
                "startTime": "2026-03-01T10:00:00.000Z", "callAttributes": attributes,
                "participants": [{"participantKey": "+14155550123", "type": "END_USER"}],
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errors"], json!([]), "{body}");
    body["voiceCallId"].as_str().unwrap().to_string()
}

async fn query(s: &TestServer, token: &str, soql: &str) -> Vec<Value> {
    let (status, body) = s.crm(token, Method::GET, &format!("/query?q={}", urlencode(soql)), None).await;
    assert_eq!(status, 200, "{soql}: {body}");
    body["records"].as_array().unwrap().clone()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The first 15 characters: ids compare in either form.
fn id15(v: &Value) -> String {
    v.as_str().unwrap_or_default().chars().take(15).collect()
}

/// Polls `check` every 20 ms for at most 20 s (the server works in the background).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1000 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

both_backends!(voice_actions_link_an_existing_or_a_new_case, |backend: Backend| async move {
    let s = TestServer::start_with(backend, settings(None)).await;
    with_voice_actions(&s).await;
    let token = s.crm_login().await;
    let (status, body) =
        s.crm(&token, Method::POST, "/sobjects/Case", Some(json!({"Subject": "Broken headset"}))).await;
    assert_eq!(status, 201, "{body}");
    let case_id = body["id"].clone();
    let case =
        &query(&s, &token, &format!("SELECT CaseNumber FROM Case WHERE Id = '{}'", id15(&case_id))).await[0];
    let number = case["CaseNumber"].as_str().unwrap();
    assert_eq!(number.len(), 8);
    // The caller keys in the number without its leading zeros.
    let typed = number.trim_start_matches('0');

    let existing =
        ivr_call(&s, "ivr-existing", json!({"IVRType__c": "ExistingCase", "IVRInput__c": typed})).await;
    let call = &query(
        &s,
        &token,
        &format!("SELECT RelatedRecordId, IVRType__c FROM VoiceCall WHERE Id = '{existing}'"),
    )
    .await[0];
    assert_eq!(id15(&call["RelatedRecordId"]), id15(&case_id), "{call}");

    let new =
        ivr_call(&s, "ivr-new", json!({"IVRType__c": "NewCase", "IVRInput__c": "New Voice Case"})).await;
    let call =
        &query(&s, &token, &format!("SELECT RelatedRecordId FROM VoiceCall WHERE Id = '{new}'")).await[0];
    let linked = id15(&call["RelatedRecordId"]);
    assert!(linked.starts_with("500") && linked != id15(&case_id), "{call}");
    let created =
        &query(&s, &token, &format!("SELECT Subject, Origin, Status FROM Case WHERE Id = '{linked}'")).await
            [0];
    assert_eq!(created["Subject"], "New Voice Case");
    assert_eq!(created["Origin"], "Phone");
    assert_eq!(created["Status"], "New");

    // No such case: the call is left unlinked; no IVR choice: nothing runs.
    let missing =
        ivr_call(&s, "ivr-missing", json!({"IVRType__c": "ExistingCase", "IVRInput__c": "9999999"})).await;
    let plain = s.create_call("no-ivr", "2026-03-01T10:00:00.000Z").await;
    for id in [missing, plain] {
        let call =
            &query(&s, &token, &format!("SELECT RelatedRecordId FROM VoiceCall WHERE Id = '{id}'")).await[0];
        assert!(call["RelatedRecordId"].is_null(), "{call}");
    }
    assert_eq!(query(&s, &token, "SELECT Id FROM Case").await.len(), 2, "one case made by the automation");
});

both_backends!(
    ivr_transfer_texts_the_caller_exactly_once_through_a_flaky_webhook,
    |backend: Backend| async move {
        let (url, received) = webhook(2).await;
        let s = TestServer::start_with(backend, settings(Some(&url))).await;
        with_voice_actions(&s).await;
        let token = s.crm_login().await;
        let call = ivr_call(&s, "ivr-sms", json!({"IVRType__c": "IVRTransfer"})).await;

        eventually("the outbox to deliver", || {
            let (s, token) = (&s, &token);
            async move {
                let rows = query(s, token, "SELECT Status FROM MessagingOutbox").await;
                rows.len() == 1 && rows[0]["Status"] == "Delivered"
            }
        })
        .await;
        let outbox = &query(&s, &token, "SELECT Id, Status, Attempts, Recipient, Channel, Template, ContextRecordId, LastError FROM MessagingOutbox").await[0];
        assert_eq!(outbox["Attempts"], 3, "{outbox}");
        assert_eq!(outbox["Recipient"], "4155550123", "RIGHT(FromPhoneNumber, 10)");
        assert_eq!(outbox["Channel"], DEMO_SMS_CHANNEL);
        assert_eq!(outbox["Template"], "IVRTransfer");
        assert_eq!(id15(&outbox["ContextRecordId"]), call);
        assert!(outbox["LastError"].is_null(), "{outbox}");

        let got = received.lock().unwrap().clone();
        let statuses: Vec<u16> = got.iter().map(|r| r.2).collect();
        assert_eq!(statuses, [500, 500, 200], "one accepted delivery");
        let key = &got[0].0;
        assert_eq!(id15(&json!(key)), id15(&outbox["Id"]));
        assert!(got.iter().all(|r| &r.0 == key), "the same idempotency key on every attempt");
        assert_eq!(got[2].1["recipient"], "4155550123");
        assert_eq!(
        got[2].1["message"],
        "Our messaging team is here to help you! Please respond to this message to connect with an agent."
    );
        assert_eq!(
            got.iter().map(|r| r.1["attempt"].clone()).collect::<Vec<_>>(),
            [json!(1), json!(2), json!(3)]
        );

        let attempts = query(
            &s,
            &token,
            "SELECT Attempt, Succeeded, StatusCode, Error FROM MessagingDeliveryAttempt ORDER BY Attempt",
        )
        .await;
        assert_eq!(attempts.len(), 3, "{attempts:?}");
        assert_eq!(attempts[0]["Succeeded"], false);
        assert_eq!(attempts[0]["Error"], "the webhook answered 500 Internal Server Error");
        assert_eq!(attempts[2]["Succeeded"], true);
        assert_eq!(attempts[2]["StatusCode"], 200);
    }
);

both_backends!(
    a_message_queued_without_a_webhook_is_delivered_after_a_restart,
    |backend: Backend| async move {
        // No channel configured and slow retries: the message waits in the outbox.
        let mut first = settings(None);
        first.messaging.retry_base = Duration::from_secs(3600);
        first.messaging.retry_max = Duration::from_secs(3600);
        let s = TestServer::start_with(backend, first).await;
        with_voice_actions(&s).await;
        let token = s.crm_login().await;
        ivr_call(&s, "ivr-later", json!({"IVRType__c": "IVRTransfer"})).await;
        eventually("the failed first attempt", || {
            let (s, token) = (&s, &token);
            async move { !query(s, token, "SELECT Id FROM MessagingDeliveryAttempt").await.is_empty() }
        })
        .await;
        let outbox = &query(&s, &token, "SELECT Status, LastError FROM MessagingOutbox").await[0];
        assert_eq!(outbox["Status"], "Pending");
        assert_eq!(outbox["LastError"], format!("no webhook is configured for channel `{DEMO_SMS_CHANNEL}`"));

        // The operator configures the channel and restarts: a new server on the same store.
        let (url, received) = webhook(0).await;
        let app = voxbridge_server::router(s.store.clone(), settings(Some(&url)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        eventually("the restarted server to deliver", || {
            let received = received.clone();
            async move { !received.lock().unwrap().is_empty() }
        })
        .await;
        eventually("the outbox record to be marked delivered", || {
        let (s, token) = (&s, &token);
        async move { query(s, token, "SELECT Status FROM MessagingOutbox").await[0]["Status"] == "Delivered" }
    })
    .await;
        assert_eq!(received.lock().unwrap().len(), 1);
    }
);

both_backends!(
    invalid_definitions_are_refused_and_events_trigger_automations,
    |backend: Backend| async move {
        let s = TestServer::start_with(backend, settings(None)).await;
        let token = s.crm_login().await;
        let bad = json!({"trigger": {"object": "RealtimeAlertEvent", "on": ["publish", "create"]},
        "steps": [{"create": {"as": "c", "object": "Case", "fields": {"Subject": "RIGHT(Name"}}}]});
        let (status, body) = s
        .crm(&token, Method::POST, "/sobjects/Automation", Some(json!({
            "DeveloperName": "Alert_Cases", "Label": "Alert cases", "Active": true, "Definition": bad.to_string()})))
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body[0]["errorCode"], "INVALID_FIELD_VALUE");
        assert_eq!(body[0]["fields"], json!(["Definition"]));
        assert_eq!(
        body[0]["message"],
        "Definition: 2 mistake(s): trigger.on: publish is for platform events, which are never updated; list it alone; \
         steps[0].create.fields.Subject: column 11: expected `,` or `)` in the arguments of RIGHT in `RIGHT(Name`"
    );
        let (status, body) = s
            .crm(
                &token,
                Method::POST,
                "/sobjects/Automation",
                Some(json!({"DeveloperName": "X", "Definition": "{"})),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(body[0]["message"].as_str().unwrap().starts_with("Definition: not JSON"), "{body}");

        // A valid one takes effect at once: critical alerts open cases.
        let good = json!({"trigger": {"object": "RealtimeAlertEvent", "on": ["publish"], "condition": "Severity = 'Critical'"},
        "steps": [{"create": {"object": "Case", "fields": {"Subject": "'Alert: ' & Name", "Priority": "'High'"}}}]});
        let (status, body) = s
        .crm(&token, Method::POST, "/sobjects/Automation", Some(json!({
            "DeveloperName": "Alert_Cases", "Label": "Alert cases", "Active": true, "Definition": good.to_string()})))
        .await;
        assert_eq!(status, 201, "{body}");
        for (name, severity) in [("Queue full", "Critical"), ("Disk warm", "Warning")] {
            let (status, body) = s
                .crm(
                    &token,
                    Method::POST,
                    "/sobjects/RealtimeAlertEvent",
                    Some(json!({
                "Name": name, "Description": "d", "Severity": severity, "Source": "AWS CloudWatch"})),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
        let cases = query(&s, &token, "SELECT Subject, Priority FROM Case").await;
        assert_eq!(cases.len(), 1, "{cases:?}");
        assert_eq!(cases[0]["Subject"], "Alert: Queue full");
        assert_eq!(cases[0]["Priority"], "High");
    }
);
