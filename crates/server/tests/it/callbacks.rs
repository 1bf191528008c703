//! Queued callbacks end to end: the Telephony API's callback request, its initial delay, the
//! offer in the console, the outbound call on accept, outcomes (no answer retries until the
//! attempts run out, voicemail completes), the caller's place in line, and restarts. Routing
//! time is moved with `RoutingClock::advance`, never slept through.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use voxbridge_core::{Record, SfId};

use crate::both_backends;
use crate::console_harness::{connect, console, next_of, restart, route, start, Socket, START};
use crate::harness::{Backend, TestServer};

async fn login_at(s: &TestServer, base: &str, username: &str) -> String {
    let admin = s.crm_login().await;
    let (status, body) =
        console(base, &admin, Method::POST, "/sessions", Some(json!({"username": username}))).await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_string()
}

async fn presence(base: &str, token: &str, status: &str) {
    let (code, body) = console(base, token, Method::PUT, "/presence", Some(json!({"status": status}))).await;
    assert_eq!(code, 200, "{body}");
}

/// The agent's state; being answered by the router, it also means every change told to the
/// router before is carried out.
async fn state(base: &str, token: &str) -> Value {
    let (code, body) = console(base, token, Method::GET, "/state", None).await;
    assert_eq!(code, 200, "{body}");
    body
}

async fn socket(base: &str, token: &str) -> Socket {
    connect(base, token, "").await
}

async fn request(s: &TestServer, key: &str, body: Value) -> (u16, Value) {
    s.call(Method::POST, &format!("/telephony/v1/voiceCalls/{key}/callback"), Some(body)).await
}

async fn record(s: &TestServer, id: &str) -> Record {
    s.store.get(&s.demo.org_id, &SfId::parse(id).unwrap()).await.unwrap().expect("record")
}

fn agent(s: &TestServer, local: &str) -> String {
    s.demo.agents.iter().find(|a| a.username.starts_with(local)).unwrap().username.clone()
}

both_backends!(request_is_validated, |backend: Backend| async move {
    let (s, _clock) = start(backend).await;
    let call = s.create_call("cb-v", START).await;
    for (body, field) in [
        (json!({"queue": "Support"}), "callbackNumber"),
        (json!({"callbackNumber": "5550100", "queue": "Support"}), "callbackNumber"),
        (json!({"callbackNumber": "+15550100200", "queue": "Support", "maxAttempts": 0}), "maxAttempts"),
        (
            json!({"callbackNumber": "+15550100200", "queue": "Support", "initialDelaySeconds": -1}),
            "initialDelaySeconds",
        ),
        (json!({"callbackNumber": "+15550100200", "queue": "Nowhere"}), "queue"),
        // A call that waits in no queue needs one named.
        (json!({"callbackNumber": "+15550100200"}), "queue"),
    ] {
        let (status, err) = request(&s, "cb-v", body.clone()).await;
        assert_eq!(status, 400, "{body} → {err}");
        assert!(err.to_string().contains(field), "{body} → {err}");
    }
    let (status, _) =
        request(&s, "no-such-call", json!({"callbackNumber": "+15550100200", "queue": "Support"})).await;
    assert_eq!(status, 404);
    let (status, body) =
        request(&s, &call, json!({"callbackNumber": "+15550100200", "queue": "Support"})).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["id"].as_str().unwrap().starts_with("0Cq"), "{body}");
});

both_backends!(delay_decline_no_answer_retry_and_exhaustion, |backend: Backend| async move {
    let (s, clock) = start(backend).await;
    let (ta, tg) =
        (login_at(&s, &s.base, &agent(&s, "ada")).await, login_at(&s, &s.base, &agent(&s, "grace")).await);
    let (mut wa, mut wg) = (socket(&s.base, &ta).await, socket(&s.base, &tg).await);
    let call = s.create_call("cb-1", START).await;
    route(&s, &call).await;
    // The call waits in the Support queue; the caller asks to be called back.
    let (status, body) = request(
        &s,
        "cb-1",
        json!({"callbackNumber": "+15550100200", "initialDelaySeconds": 60, "maxAttempts": 2,
               "retryDelaySeconds": 120}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    presence(&s.base, &ta, "Available").await;
    clock.advance(Duration::from_millis(10));
    presence(&s.base, &tg, "Available").await;
    // The initial delay is respected: nothing rings, the waiting call became the callback.
    clock.advance(Duration::from_secs(59));
    let st = state(&s.base, &ta).await;
    assert!(st["offers"].as_array().unwrap().is_empty(), "{st}");
    let r = record(&s, &id).await;
    assert_eq!((r.str("Status"), r.i64("Attempt")), (Some("Scheduled"), Some(1)));
    assert!(s.store.find_by_key(&s.demo.org_id, "PendingServiceRouting", &call).await.unwrap().is_empty());

    // Due: Ada (idle longest) is offered the callback and declines it; Grace gets it.
    clock.advance(Duration::from_secs(2));
    let offer = next_of(&mut wa, "offer").await["data"].clone();
    assert_eq!(
        (
            offer["kind"].as_str(),
            offer["callbackNumber"].as_str(),
            offer["attempt"].as_i64(),
            offer["maxAttempts"].as_i64()
        ),
        (Some("callback"), Some("+15550100200"), Some(1), Some(2)),
        "{offer}"
    );
    assert_eq!(offer["workId"], id.as_str());
    let (status, _) = console(&s.base, &ta, Method::POST, &format!("/offers/{id}/decline"), None).await;
    assert_eq!(status, 200);
    assert_eq!(next_of(&mut wg, "offer").await["data"]["callbackId"], id.as_str());
    let (status, work) = console(&s.base, &tg, Method::POST, &format!("/offers/{id}/accept"), None).await;
    assert_eq!(status, 200, "{work}");
    // Accepting dials the customer: an outbound call owned by the agent.
    let dialed = work["voiceCallId"].as_str().expect("outbound call").to_string();
    let out = record(&s, &dialed).await;
    let grace_id = s.demo.agents.iter().find(|a| a.username.starts_with("grace")).unwrap().id.to_string();
    assert_eq!(
        (out.str("CallType"), out.str("CallOrigin"), out.str("ToPhoneNumber"), out.str("OwnerId")),
        (Some("Outbound"), Some("Callback"), Some("+15550100200"), Some(grace_id.as_str()))
    );
    assert_eq!(record(&s, &id).await.str("Status"), Some("Dialing"));

    // No answer: the next attempt after the retry delay.
    let (status, body) = console(
        &s.base,
        &tg,
        Method::POST,
        &format!("/callbacks/{id}/outcome"),
        Some(json!({"outcome": "NoAnswer"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["nextAttemptAt"].is_string()),
        (Some("Scheduled"), true),
        "{body}"
    );
    assert_eq!(record(&s, &dialed).await.str("CallDisposition"), Some("completed"));
    let r = record(&s, &id).await;
    assert_eq!((r.str("Status"), r.i64("Attempt")), (Some("Scheduled"), Some(2)));
    clock.advance(Duration::from_secs(121));
    let again = tokio::select! {
        ev = next_of(&mut wa, "offer") => ("ada", ev),
        ev = next_of(&mut wg, "offer") => ("grace", ev),
    };
    assert_eq!(
        (again.1["data"]["callbackId"].as_str(), again.1["data"]["attempt"].as_i64()),
        (Some(id.as_str()), Some(2))
    );
    let token = if again.0 == "ada" { &ta } else { &tg };
    let (status, _) = console(&s.base, token, Method::POST, &format!("/offers/{id}/accept"), None).await;
    assert_eq!(status, 200);
    // A busy line is no answer too; the last attempt ends the callback.
    let (status, body) = console(
        &s.base,
        token,
        Method::POST,
        &format!("/callbacks/{id}/outcome"),
        Some(json!({"outcome": "Busy"})),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("Exhausted")), "{body}");
    let r = record(&s, &id).await;
    assert_eq!((r.str("Status"), r.str("LastOutcome")), (Some("Exhausted"), Some("Busy")));
    // Outcomes for a callback that is over are refused in the documented format.
    let (status, body) = console(
        &s.base,
        token,
        Method::POST,
        &format!("/callbacks/{id}/outcome"),
        Some(json!({"outcome": "Answered"})),
    )
    .await;
    assert_eq!((status, body["errorCode"].as_str()), (404, Some("NOT_FOUND")), "{body}");
    let (status, body) = console(
        &s.base,
        token,
        Method::POST,
        &format!("/callbacks/{id}/outcome"),
        Some(json!({"outcome": "Maybe"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
});

both_backends!(voicemail_completes_and_the_call_ends_to_wrap_up, |backend: Backend| async move {
    let (s, _clock) = start(backend).await;
    let ta = login_at(&s, &s.base, &agent(&s, "ada")).await;
    let mut wa = socket(&s.base, &ta).await;
    let call = s.create_call("cb-2", START).await;
    let (status, body) =
        request(&s, &call, json!({"callbackNumber": "+15550100300", "queue": "Support", "maxAttempts": 3}))
            .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    state(&s.base, &ta).await;
    presence(&s.base, &ta, "Available").await;
    assert_eq!(next_of(&mut wa, "offer").await["data"]["attempt"], 1);
    let (status, work) = console(&s.base, &ta, Method::POST, &format!("/offers/{id}/accept"), None).await;
    assert_eq!(status, 200, "{work}");
    let dialed = work["voiceCallId"].as_str().unwrap().to_string();
    let (status, body) = console(
        &s.base,
        &ta,
        Method::POST,
        &format!("/callbacks/{id}/outcome"),
        Some(json!({"outcome": "Voicemail"})),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("Completed")), "{body}");
    let r = record(&s, &id).await;
    assert_eq!((r.str("Status"), r.str("Result")), (Some("Completed"), Some("Voicemail")));
    let (status, body) = console(
        &s.base,
        &ta,
        Method::POST,
        &format!("/callbacks/{id}/outcome"),
        Some(json!({"outcome": "Answered"})),
    )
    .await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (409, Some("INVALID_STATE")),
        "the outcome is recorded: {body}"
    );
    // The console reads the callback's call by the work id too.
    let (status, held) = console(&s.base, &ta, Method::GET, &format!("/calls/{id}"), None).await;
    assert_eq!((status, held["voiceCall"]["Id"].as_str()), (200, Some(dialed.as_str())), "{held}");
    assert_eq!(held["callType"], "outbound");
    // The agent leaves a message and hangs up: after-call work for the callback.
    let (status, body) = console(
        &s.base,
        &ta,
        Method::POST,
        &format!("/calls/{dialed}/endCall"),
        Some(json!({"participantType": "Agent"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(next_of(&mut wa, "wrapUp").await["data"]["workId"], id.as_str());
    let (status, _) = console(&s.base, &ta, Method::POST, &format!("/work/{id}/wrapup"), None).await;
    assert_eq!(status, 200);
    assert_eq!(record(&s, &id).await.str("Status"), Some("Completed"));
});

both_backends!(callback_keeps_the_callers_place_in_line, |backend: Backend| async move {
    let (s, clock) = start(backend).await;
    let ta = login_at(&s, &s.base, &agent(&s, "ada")).await;
    let mut wa = socket(&s.base, &ta).await;
    let first = s.create_call("cb-3a", START).await;
    route(&s, &first).await;
    let (status, body) =
        request(&s, "cb-3a", json!({"callbackNumber": "+15550100400", "initialDelaySeconds": 30})).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    state(&s.base, &ta).await;
    // A later caller joins the line before the callback is due.
    clock.advance(Duration::from_secs(10));
    let second = s.create_call("cb-3b", START).await;
    route(&s, &second).await;
    state(&s.base, &ta).await;
    clock.advance(Duration::from_secs(21));
    state(&s.base, &ta).await;
    presence(&s.base, &ta, "Available").await;
    assert_eq!(next_of(&mut wa, "offer").await["data"]["workId"], id.as_str(), "the callback goes first");
});

both_backends!(restart_restores_a_scheduled_callback, |backend: Backend| async move {
    let (s, clock) = start(backend).await;
    let call = s.create_call("cb-4", START).await;
    let (status, body) = request(
        &s,
        "cb-4",
        json!({"callbackNumber": "+15550100500", "queue": "Support", "initialDelaySeconds": 60, "maxAttempts": 2}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let ta = login_at(&s, &s.base, &agent(&s, "ada")).await;
    state(&s.base, &ta).await;
    assert_eq!(record(&s, &id).await.str("Status"), Some("Scheduled"));
    let _ = call;
    let base2 = restart(s.store.clone(), &clock).await;
    let t2 = login_at(&s, &base2, &agent(&s, "ada")).await;
    let mut w2 = socket(&base2, &t2).await;
    presence(&base2, &t2, "Available").await;
    let st = state(&base2, &t2).await;
    assert!(st["offers"].as_array().unwrap().is_empty(), "still in its initial delay: {st}");
    clock.advance(Duration::from_secs(61));
    let offer = next_of(&mut w2, "offer").await["data"].clone();
    assert_eq!(
        (offer["callbackId"].as_str(), offer["attempt"].as_i64(), offer["maxAttempts"].as_i64()),
        (Some(id.as_str()), Some(1), Some(2)),
        "{offer}"
    );
});

both_backends!(restart_while_dialing_makes_the_attempt_again, |backend: Backend| async move {
    let (s, clock) = start(backend).await;
    let ta = login_at(&s, &s.base, &agent(&s, "ada")).await;
    let mut wa = socket(&s.base, &ta).await;
    let call = s.create_call("cb-5", START).await;
    let (status, body) =
        request(&s, &call, json!({"callbackNumber": "+15550100600", "queue": "Support", "maxAttempts": 2}))
            .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    state(&s.base, &ta).await;
    presence(&s.base, &ta, "Available").await;
    next_of(&mut wa, "offer").await;
    let (status, work) = console(&s.base, &ta, Method::POST, &format!("/offers/{id}/accept"), None).await;
    assert_eq!(status, 200, "{work}");
    let dialed = work["voiceCallId"].as_str().unwrap().to_string();
    // Ada logs out on the old server, which is left to the new one.
    presence(&s.base, &ta, "Offline").await;

    let base2 = restart(s.store.clone(), &clock).await;
    let t2 = login_at(&s, &base2, &agent(&s, "grace")).await;
    let mut w2 = socket(&base2, &t2).await;
    presence(&base2, &t2, "Available").await;
    let offer = next_of(&mut w2, "offer").await["data"].clone();
    assert_eq!(
        (offer["callbackId"].as_str(), offer["attempt"].as_i64()),
        (Some(id.as_str()), Some(1)),
        "{offer}"
    );
    assert_eq!(
        record(&s, &dialed).await.str("CallDisposition"),
        Some("completed"),
        "the interrupted call ended"
    );
    let work = s.store.find_by_key(&s.demo.org_id, "AgentWork", &id).await.unwrap();
    assert!(work.iter().all(|w| w.str("Status") == Some("Closed")), "{work:?}");
});
