//! Omni-Channel routing in the server and the agent console API: offers over the WebSocket,
//! accept, decline and missed offers, clearRouting and hang-ups, lost hang-ups, restarts, and
//! org isolation. Routing time is moved with `RoutingClock::advance`, never slept through.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use voxbridge_core::{KeyPrefix, Record, SfId};

use crate::both_backends;
use crate::console_harness::{connect, console, next, next_of, restart, route, start, Socket, START};
use crate::harness::{Backend, TestServer};

/// A console session for a demo agent, opened by the test's administrator.
async fn login(s: &TestServer, username: &str) -> String {
    let admin = s.crm_login().await;
    let (status, body) =
        console(&s.base, &admin, Method::POST, "/sessions", Some(json!({"username": username}))).await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_string()
}

async fn presence(base: &str, token: &str, status: &str) {
    let (code, body) = console(base, token, Method::PUT, "/presence", Some(json!({"status": status}))).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], status);
}

/// The agent's event socket, after its first `state` message.
async fn socket(base: &str, token: &str) -> (Socket, Value) {
    socket_with(base, token, "").await
}

async fn socket_with(base: &str, token: &str, query: &str) -> (Socket, Value) {
    let mut ws = connect(base, token, query).await;
    let first = next(&mut ws).await;
    assert_eq!(first["type"], "state", "{first}");
    (ws, first["data"].clone())
}

async fn records(s: &TestServer, sobject: &str, call: &str) -> Vec<Record> {
    s.store.find_by_key(&s.demo.org_id, sobject, call).await.unwrap()
}

fn agent(s: &TestServer, local: &str) -> (String, String) {
    let a = s.demo.agents.iter().find(|a| a.username.starts_with(local)).unwrap();
    (a.username.clone(), a.id.to_string())
}

both_backends!(offer_accept_transcript_wrap_up, |backend: Backend| async move {
    let (s, _clock) = start(backend).await;
    let (ada, ada_id) = agent(&s, "ada");
    let token = login(&s, &ada).await;
    let (mut ws, state) = socket(&s.base, &token).await;
    assert_eq!(state["presence"]["status"], "Offline");
    let (mut supervisor, _) = socket_with(&s.base, &token, "&supervisor=true").await;
    presence(&s.base, &token, "Available").await;

    let call = s.create_call("omni-1", START).await;
    route(&s, &call).await;
    // Supervisors see the queue's contact; agents' own sockets get no queue changes.
    let support = s.demo.queues.iter().find(|q| q.developer_name == "Support").unwrap().id.to_string();
    loop {
        let q = next_of(&mut supervisor, "queue").await;
        if q["data"]["id"] == support.as_str() && q["data"]["backlog"] == 1 {
            break;
        }
    }
    let available = next(&mut ws).await;
    assert_eq!(
        (available["type"].as_str(), available["data"]["status"].as_str()),
        (Some("presence"), Some("Available"))
    );
    let offer = next(&mut ws).await;
    assert_eq!(offer["type"], "offer", "the next event is the offer: {offer}");
    assert_eq!(offer["data"]["workId"], call.as_str());
    assert_eq!(offer["data"]["queueName"], "Support Queue");
    assert_eq!(offer["data"]["conversationKey"], "omni-1");
    assert!(offer["data"]["expiresAt"].is_string(), "{offer}");
    let (_, st) = console(&s.base, &token, Method::GET, "/state", None).await;
    assert_eq!(st["offers"][0]["workId"], call.as_str(), "{st}");

    let (status, body) =
        console(&s.base, &token, Method::POST, &format!("/offers/{call}/accept"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stage"], "Assigned");
    let work = records(&s, "AgentWork", &call).await;
    assert_eq!(work.len(), 1);
    assert_eq!((work[0].str("Status"), work[0].str("UserId")), (Some("Opened"), Some(ada_id.as_str())));
    assert_eq!(body["agentWorkId"], work[0].id.as_str());
    assert!(records(&s, "PendingServiceRouting", &call).await.is_empty(), "routing consumed");
    assert_eq!(next_of(&mut ws, "assigned").await["data"]["workId"], call.as_str());
    // Accepting twice is refused in the documented error format.
    let (status, body) =
        console(&s.base, &token, Method::POST, &format!("/offers/{call}/accept"), None).await;
    assert_eq!((status, body["errorCode"].as_str()), (404, Some("NOT_FOUND")), "{body}");

    // The call's transcript reaches the agent's socket.
    let (status, body) = s
        .call(
            Method::POST,
            "/telephony/v1/voiceCalls/omni-1/messages",
            Some(json!({"participantId": "x", "messageId": "m1", "startTime": 1704067201000i64,
                        "endTime": 1704067202000i64, "content": "hello", "senderType": "END_USER"})),
        )
        .await;
    assert_eq!((status, &body), (200, &json!({"result": "Accepted"})));
    // The accept's own routing event may come first, depending on when the socket subscribed.
    let mut ev = next_of(&mut ws, "conversation").await;
    while ev["event"] == "routing" {
        ev = next_of(&mut ws, "conversation").await;
    }
    assert_eq!(
        (ev["event"].as_str(), ev["workId"].as_str()),
        (Some("transcript"), Some(call.as_str())),
        "{ev}"
    );

    // Hang-up: after-call work, then the agent ends it.
    let (status, _) = s
        .call(
            Method::PATCH,
            &format!("/telephony/v1/voiceCalls/{call}"),
            Some(json!({"endTime": "2024-01-01T00:05:00Z"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(next_of(&mut ws, "wrapUp").await["data"]["workId"], call.as_str());
    let (status, body) = console(&s.base, &token, Method::POST, &format!("/work/{call}/wrapup"), None).await;
    assert_eq!(status, 200, "{body}");
    let ended = next_of(&mut ws, "ended").await;
    assert_eq!(ended["data"]["reason"], "Completed");
    let work = records(&s, "AgentWork", &call).await;
    assert_eq!(work[0].str("Status"), Some("Closed"));
    assert!(
        work[0].str("AfterConversationStartDateTime").is_some() && work[0].str("CloseDateTime").is_some()
    );
    let (_, st) = console(&s.base, &token, Method::GET, "/state", None).await;
    assert_eq!(
        (st["offers"].as_array().unwrap().len(), st["work"].as_array().unwrap().len()),
        (0, 0),
        "{st}"
    );
    ws.close(None).await.ok();
});

both_backends!(decline_and_missed_offers_go_to_the_next_agent, |backend: Backend| async move {
    let (s, clock) = start(backend).await;
    let (ada, _) = agent(&s, "ada");
    let (grace, _) = agent(&s, "grace");
    let (ta, tg) = (login(&s, &ada).await, login(&s, &grace).await);
    let (mut wa, _) = socket(&s.base, &ta).await;
    let (mut wg, _) = socket(&s.base, &tg).await;
    presence(&s.base, &ta, "Available").await;
    // Ada has been idle longer than Grace (routing time, not the wall clock, decides).
    clock.advance(Duration::from_millis(10));
    presence(&s.base, &tg, "Available").await;

    let call = s.create_call("omni-2", START).await;
    route(&s, &call).await;
    assert_eq!(next_of(&mut wa, "offer").await["data"]["workId"], call.as_str());
    let (status, body) = console(&s.base, &ta, Method::POST, &format!("/offers/{call}/decline"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(next_of(&mut wa, "offerEnded").await["data"]["reason"], "Declined");
    assert_eq!(next_of(&mut wg, "offer").await["data"]["workId"], call.as_str());
    // Grace lets it ring out.
    clock.advance(Duration::from_secs(21));
    assert_eq!(next_of(&mut wg, "offerEnded").await["data"]["reason"], "Missed");
    // Both are skipped for a while; then it comes back.
    clock.advance(Duration::from_secs(61));
    let again = tokio::select! {
        ev = next_of(&mut wa, "offer") => ("ada", ev),
        ev = next_of(&mut wg, "offer") => ("grace", ev),
    };
    assert_eq!(again.1["data"]["workId"], call.as_str());
    let statuses: Vec<String> = records(&s, "AgentWork", &call)
        .await
        .iter()
        .filter_map(|r| r.str("Status").map(str::to_string))
        .collect();
    assert!(statuses.contains(&"Declined".to_string()), "{statuses:?}");
    assert!(statuses.contains(&"DeclinedOnPushTimeout".to_string()), "{statuses:?}");
    assert_eq!(records(&s, "PendingServiceRouting", &call).await.len(), 1, "still waiting for an agent");
});

both_backends!(clear_routing_and_hang_up_end_the_work, |backend: Backend| async move {
    let (s, _clock) = start(backend).await;
    let (ada, _) = agent(&s, "ada");
    let token = login(&s, &ada).await;
    let (mut ws, _) = socket(&s.base, &token).await;
    presence(&s.base, &token, "Available").await;

    let first = s.create_call("omni-3a", START).await;
    route(&s, &first).await;
    assert_eq!(next_of(&mut ws, "offer").await["data"]["workId"], first.as_str());
    let (status, body) =
        s.call(Method::PATCH, &format!("/telephony/v1/voiceCalls/{first}/clearRouting"), None).await;
    assert_eq!((status, body), (200, json!({"status": "Success"})));
    assert_eq!(next_of(&mut ws, "offerEnded").await["data"]["reason"], "Cleared");
    assert!(records(&s, "PendingServiceRouting", &first).await.is_empty());

    // A caller hanging up while the agent's phone rings.
    let second = s.create_call("omni-3b", START).await;
    route(&s, &second).await;
    assert_eq!(next_of(&mut ws, "offer").await["data"]["workId"], second.as_str());
    let (status, _) = s
        .call(
            Method::PATCH,
            &format!("/telephony/v1/voiceCalls/{second}"),
            Some(json!({"endTime": "2024-01-01T00:01:00Z"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(next_of(&mut ws, "offerEnded").await["data"]["reason"], "CallerAbandoned");
    let (_, st) = console(&s.base, &token, Method::GET, "/state", None).await;
    assert!(st["offers"].as_array().unwrap().is_empty(), "{st}");
    assert_eq!(st["presence"]["load"], 0);
});

both_backends!(lost_hang_up_is_reconciled, |backend: Backend| async move {
    let (s, clock) = start(backend).await;
    let (ada, _) = agent(&s, "ada");
    let token = login(&s, &ada).await;
    let (mut ws, _) = socket(&s.base, &token).await;
    presence(&s.base, &token, "Available").await;
    let call = s.create_call("omni-4", START).await;
    route(&s, &call).await;
    next_of(&mut ws, "offer").await;
    let (status, _) = console(&s.base, &token, Method::POST, &format!("/offers/{call}/accept"), None).await;
    assert_eq!(status, 200);
    // The call ends without the router hearing of it (another process wrote the end).
    let id = SfId::parse(&call).unwrap();
    let mut hung_up = voxbridge_core::Fields::new();
    hung_up.insert("CallDisposition".into(), "completed".into());
    hung_up.insert("CallEndDateTime".into(), "2024-01-01T00:03:00.000Z".into());
    s.store.update(&s.demo.org_id, &id, hung_up.clone(), 0).await.unwrap();
    // After the longest a call may go without a hang-up, the router asks and closes it.
    clock.advance(Duration::from_secs(4 * 3600 + 1));
    let ended = next_of(&mut ws, "ended").await;
    assert_eq!(ended["data"]["reason"], "HangUpLost", "{ended}");
    assert_eq!(records(&s, "AgentWork", &call).await[0].str("Status"), Some("Closed"));
    let (_, st) = console(&s.base, &token, Method::GET, "/state", None).await;
    assert_eq!(st["presence"]["load"], 0, "{st}");

    // A call that ended while no router was running is closed when one starts.
    let second = s.create_call("omni-4b", START).await;
    route(&s, &second).await;
    assert_eq!(next_of(&mut ws, "offer").await["data"]["workId"], second.as_str());
    let (status, _) = console(&s.base, &token, Method::POST, &format!("/offers/{second}/accept"), None).await;
    assert_eq!(status, 200);
    s.store.update(&s.demo.org_id, &SfId::parse(&second).unwrap(), hung_up, 0).await.unwrap();
    let base2 = restart(s.store.clone(), &clock).await;
    let (_, st) = console(&base2, &token, Method::GET, "/state", None).await;
    assert!(st["work"].as_array().unwrap().is_empty(), "{st}");
    let work = records(&s, "AgentWork", &second).await;
    assert_eq!((work[0].str("Status"), work[0].str("CloseReason")), (Some("Closed"), Some("HangUpLost")));
});

both_backends!(reroute_closes_accepted_work_and_routes_again, |backend: Backend| async move {
    let (s, _clock) = start(backend).await;
    let (ada, _) = agent(&s, "ada");
    let (grace, _) = agent(&s, "grace");
    let (ta, tg) = (login(&s, &ada).await, login(&s, &grace).await);
    let (mut wa, _) = socket(&s.base, &ta).await;
    let (mut wg, _) = socket(&s.base, &tg).await;
    presence(&s.base, &ta, "Available").await;
    let call = s.create_call("omni-7", START).await;
    route(&s, &call).await;
    assert_eq!(next_of(&mut wa, "offer").await["data"]["workId"], call.as_str());
    let (status, _) = console(&s.base, &ta, Method::POST, &format!("/offers/{call}/accept"), None).await;
    assert_eq!(status, 200);
    presence(&s.base, &tg, "Available").await;
    presence(&s.base, &ta, "Busy").await;
    let (status, body) =
        s.call(Method::POST, &format!("/telephony/v1/voiceCalls/{call}/reroute"), None).await;
    assert_eq!((status, body), (200, json!({"status": "Success"})));
    assert_eq!(next_of(&mut wa, "ended").await["data"]["reason"], "Rerouted");
    assert_eq!(next_of(&mut wg, "offer").await["data"]["workId"], call.as_str());
    let work = records(&s, "AgentWork", &call).await;
    assert_eq!(work.len(), 1);
    assert_eq!(work[0].str("Status"), Some("Closed"));
    assert_eq!(records(&s, "PendingServiceRouting", &call).await.len(), 1);
});

both_backends!(restart_restores_backlog_and_work, |backend: Backend| async move {
    let (s, clock) = start(backend).await;
    let (ada, ada_id) = agent(&s, "ada");
    let token = login(&s, &ada).await;
    let first = s.create_call("omni-5a", START).await;
    let second = s.create_call("omni-5b", START).await;
    route(&s, &first).await;
    route(&s, &second).await;
    let (_, q) = console(&s.base, &token, Method::GET, "/queues", None).await;
    let support =
        q["queues"].as_array().unwrap().iter().find(|q| q["developerName"] == "Support").unwrap().clone();
    assert_eq!(support["backlog"], 2, "{q}");

    // A restarted server has the same backlog, in the same order.
    let base2 = restart(s.store.clone(), &clock).await;
    let (_, q) = console(&base2, &token, Method::GET, "/queues", None).await;
    let support =
        q["queues"].as_array().unwrap().iter().find(|q| q["developerName"] == "Support").unwrap().clone();
    assert_eq!((support["backlog"].as_u64(), support["agentsOnline"].as_u64()), (Some(2), Some(0)), "{q}");
    let (mut ws, _) = socket(&base2, &token).await;
    presence(&base2, &token, "Available").await;
    // Both calls may share a millisecond, so either can be the oldest.
    let offered = next_of(&mut ws, "offer").await["data"]["workId"].as_str().unwrap().to_string();
    assert!(offered == first || offered == second, "{offered}");
    let first = offered;
    let (status, _) = console(&base2, &token, Method::POST, &format!("/offers/{first}/accept"), None).await;
    assert_eq!(status, 200);

    // And the next one restores the accepted work and the agent's presence.
    let base3 = restart(s.store.clone(), &clock).await;
    let (_, st) = console(&base3, &token, Method::GET, "/state", None).await;
    assert_eq!(st["presence"]["status"], "Available", "{st}");
    assert_eq!(st["work"][0]["workId"], first.as_str(), "{st}");
    assert_eq!(st["work"][0]["stage"], "Assigned");
    let (_, q) = console(&base3, &token, Method::GET, "/queues", None).await;
    let support =
        q["queues"].as_array().unwrap().iter().find(|q| q["developerName"] == "Support").unwrap().clone();
    assert_eq!(support["backlog"], 1, "{q}");
    let work = records(&s, "AgentWork", &first).await;
    assert_eq!((work.len(), work[0].str("UserId")), (1, Some(ada_id.as_str())));
});

both_backends!(orgs_never_see_each_others_work, |backend: Backend| async move {
    let (s, _clock) = start(backend).await;
    // An agent of the other org, with a console session of its own.
    let other = s.other_org.clone();
    let cc = s.store.find_by_key(&other, "CallCenter", "OtherCallCenter").await.unwrap().remove(0);
    let mut rng = rand::thread_rng();
    let user_id = SfId::generate(KeyPrefix::User, &mut rng);
    let mut user = Record::new(user_id.clone(), other.clone(), "User", Some("eve@other.example".into()), 0);
    user.set("Username", "eve@other.example");
    user.set("IsActive", true);
    s.store.insert(user).await.unwrap();
    let mut map = Record::new(
        SfId::generate(KeyPrefix::CallCenterRoutingMap, &mut rng),
        other.clone(),
        "CallCenterRoutingMap",
        Some("eve-ext".into()),
        0,
    );
    map.set("CallCenterId", cc.id.to_string());
    map.set("ReferenceRecordId", user_id.to_string());
    map.set("ExternalId", "eve-ext");
    s.store.insert(map).await.unwrap();
    let eve = format!("{other}!eve-console-session");
    let hash: String = Sha256::digest(eve.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let mut session = Record::new(
        SfId::generate(KeyPrefix::AuthSession, &mut rng),
        other.clone(),
        "ConsoleSession",
        Some(hash),
        0,
    );
    session.set("UserId", user_id.to_string());
    session.set("ExpiresAt", i64::MAX);
    s.store.insert(session).await.unwrap();

    let (mut we, _) = socket(&s.base, &eve).await;
    presence(&s.base, &eve, "Available").await;
    let (ada, _) = agent(&s, "ada");
    let ta = login(&s, &ada).await;
    let (mut wa, _) = socket(&s.base, &ta).await;
    presence(&s.base, &ta, "Available").await;
    let call = s.create_call("omni-6", START).await;
    route(&s, &call).await;
    assert_eq!(next_of(&mut wa, "offer").await["data"]["workId"], call.as_str());
    // Eve cannot take it, see it, or see the demo org's queues.
    let (status, _) = console(&s.base, &eve, Method::POST, &format!("/offers/{call}/accept"), None).await;
    assert_eq!(status, 404);
    let (_, st) = console(&s.base, &eve, Method::GET, "/state", None).await;
    assert!(st["offers"].as_array().unwrap().is_empty() && st["work"].as_array().unwrap().is_empty(), "{st}");
    let (_, q) = console(&s.base, &eve, Method::GET, "/queues", None).await;
    assert!(q["queues"].as_array().unwrap().is_empty(), "{q}");
    // Her socket carries only her own org's events: her next one is her own presence change.
    presence(&s.base, &eve, "Busy").await;
    loop {
        let ev = next(&mut we).await;
        assert_ne!(ev["type"], "offer", "{ev}");
        if ev["type"] == "presence" && ev["data"]["status"] == "Busy" {
            break;
        }
    }
    // Without a session, nothing.
    let (status, body) = console(&s.base, "nope", Method::GET, "/state", None).await;
    assert_eq!((status, body["errorCode"].as_str()), (401, Some("INVALID_SESSION_ID")));
});
