//! Call control of the agent console API: mute, hold (which gates transcripts like the admin
//! state endpoint), recording pause, digits, flags and notes with their Toolkit API payloads,
//! the VoiceCall record's allowed updates, an Omni-Channel transfer to a queue taken by a second
//! agent, consult calls, preview calls, Next Best Action and Voice Extension registrations.

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::console_harness::{connect, console, next, next_of, Socket, START};
use crate::harness::{Backend, TestServer};

async fn login(s: &TestServer, admin: &str, local: &str) -> String {
    let username = s.demo.agents.iter().find(|a| a.username.starts_with(local)).unwrap().username.clone();
    let (status, body) =
        console(&s.base, admin, Method::POST, "/sessions", Some(json!({"username": username}))).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_string();
    let (status, body) =
        console(&s.base, &token, Method::PUT, "/presence", Some(json!({"status": "Available"}))).await;
    assert_eq!(status, 200, "{body}");
    token
}

async fn socket(base: &str, token: &str) -> Socket {
    let mut ws = connect(base, token, "").await;
    assert_eq!(next(&mut ws).await["type"], "state");
    ws
}

/// The next conversation event, skipping presence updates and the conversation's own routing
/// events (an accept announces itself there too, racing the agent's subscription).
async fn conv_event(ws: &mut Socket) -> Value {
    loop {
        let ev = next_of(ws, "conversation").await;
        if ev["event"] != "routing" {
            return ev;
        }
    }
}

async fn act(s: &TestServer, token: &str, call: &str, action: &str, body: Value) -> (u16, Value) {
    console(&s.base, token, Method::POST, &format!("/calls/{call}/{action}"), Some(body)).await
}

async fn say(s: &TestServer, key: &str, id: &str, text: &str) -> u16 {
    let (status, _) = s
        .call(
            Method::POST,
            &format!("/telephony/v1/voiceCalls/{key}/messages"),
            Some(json!({"participantId": "caller", "messageId": id, "startTime": 1704067201000i64,
                        "endTime": 1704067202000i64, "content": text, "senderType": "END_USER"})),
        )
        .await;
    status
}

/// A call routed to the Support queue and accepted by the agent behind `token`.
async fn accepted_call(s: &TestServer, token: &str, ws: &mut Socket, key: &str) -> String {
    let call = s.create_call(key, START).await;
    let (status, body) = s
        .call(
            Method::PATCH,
            &format!("/telephony/v1/voiceCalls/{call}/omniFlow"),
            Some(json!({"dialedNumber": "+15550100100", "flowInputParameters": {"Department": "Support"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(next_of(ws, "offer").await["data"]["workId"], call.as_str());
    let (status, body) = console(&s.base, token, Method::POST, &format!("/offers/{call}/accept"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(next_of(ws, "assigned").await["data"]["workId"], call.as_str());
    call
}

both_backends!(
    hold_gates_transcripts_then_a_queue_transfer_reaches_another_agent,
    |backend: Backend| async move {
        let s = TestServer::start(backend).await;
        let admin = s.crm_login().await;
        let ada = login(&s, &admin, "ada").await;
        let mut ws = socket(&s.base, &ada).await;
        let call = accepted_call(&s, &ada, &mut ws, "cc-1").await;

        let (status, body) = act(&s, &ada, &call, "mute", json!({})).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("Muted")), "{body}");
        let ev = conv_event(&mut ws).await;
        assert_eq!(
            (ev["event"].as_str(), ev["data"]["callId"].as_str()),
            (Some("mute"), Some("cc-1")),
            "{ev}"
        );

        assert_eq!(say(&s, "cc-1", "m1", "before hold").await, 200);
        let ev = conv_event(&mut ws).await;
        assert_eq!(
            (ev["event"].as_str(), ev["data"]["content"].as_str()),
            (Some("transcript"), Some("before hold"))
        );

        // Hold: the conversation's gate refuses utterances, and nothing reaches the console.
        let (status, body) = act(&s, &ada, &call, "hold", json!({"participantType": "Initial_Caller"})).await;
        assert_eq!(status, 200, "{body}");
        let ev = conv_event(&mut ws).await;
        assert_eq!(ev["event"], "hold", "{ev}");
        assert_eq!(ev["data"]["participantType"], "Initial_Caller");
        assert_ne!(say(&s, "cc-1", "m2", "during hold").await, 200);
        let (status, body) = act(&s, &ada, &call, "hold", json!({"participantType": "Everyone"})).await;
        assert_eq!((status, body["errorCode"].as_str()), (400, Some("INVALID_FIELD_VALUE")), "{body}");
        let (status, _) = act(&s, &ada, &call, "resume", json!({})).await;
        assert_eq!(status, 200);
        assert_eq!(conv_event(&mut ws).await["event"], "resume");
        assert_eq!(say(&s, "cc-1", "m3", "after hold").await, 200);
        let ev = conv_event(&mut ws).await;
        assert_eq!(ev["data"]["content"], "after hold", "the line said during hold never arrives: {ev}");

        for (action, event) in [("pauseRecording", "pauserecording"), ("resumeRecording", "resumerecording")]
        {
            let (status, _) = act(&s, &ada, &call, action, json!({})).await;
            assert_eq!(status, 200);
            assert_eq!(conv_event(&mut ws).await["event"], event);
        }
        let (status, body) = act(&s, &ada, &call, "sendDigits", json!({"digit": "12#x"})).await;
        assert_eq!((status, body["errorCode"].as_str()), (400, Some("INVALID_FIELD_VALUE")), "{body}");
        let (status, _) = act(&s, &ada, &call, "sendDigits", json!({"digit": "12#*"})).await;
        assert_eq!(status, 200);
        assert_eq!(conv_event(&mut ws).await["data"]["digits"], "12#*");
        let (status, body) = act(&s, &ada, &call, "teleport", json!({})).await;
        assert_eq!((status, body["errorCode"].as_str()), (404, Some("NOT_FOUND")), "{body}");

        // Flags and notes: stored, and published in the Toolkit API's detail shape.
        let (status, body) = act(
            &s,
            &ada,
            &call,
            "raiseFlag",
            json!({"text": "Customer wants a credit note", "clientSentTimestamp": 5}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let ev = conv_event(&mut ws).await;
        assert_eq!(ev["event"], "flagraise");
        let d = &ev["data"];
        assert_eq!(d["content"], json!({"formatType": "Text", "text": "Customer wants a credit note"}));
        assert_eq!((d["callId"].as_str(), d["clientSentTimestamp"].as_i64()), (Some("cc-1"), Some(5)));
        assert_eq!(d["sender"], json!({"role": "Agent", "displayName": "Ada Lovelace"}));
        assert!(d["id"].is_string() && d["serverReceivedTimestamp"].is_i64(), "{d}");
        let (status, _) = act(&s, &ada, &call, "raiseFlag", json!({"text": "again"})).await;
        assert_eq!(status, 409, "one flag at a time");
        let (_, flags) = console(&s.base, &ada, Method::GET, "/flags", None).await;
        assert_eq!(flags["flags"][0]["text"], "Customer wants a credit note", "{flags}");
        // A supervisor (another agent's session) lowers it.
        let grace = login(&s, &admin, "grace").await;
        let (status, body) = act(&s, &grace, &call, "lowerFlag", json!({})).await;
        assert_eq!(status, 201, "{body}");
        let ev = conv_event(&mut ws).await;
        assert_eq!(ev["event"], "flaglower");
        assert_eq!(ev["data"]["content"], json!({"formatType": null, "text": null}));
        assert_eq!(ev["data"]["sender"]["role"], "Supervisor");
        let (status, _) = act(&s, &grace, &call, "mute", json!({})).await;
        assert_eq!(status, 409, "only the agent on the call controls it");
        let (status, _) = act(&s, &ada, &call, "note", json!({"text": "Refund promised"})).await;
        assert_eq!(status, 201);
        assert_eq!(conv_event(&mut ws).await["data"]["content"]["text"], "Refund promised");

        // The record: read it; update only what the Lightning Data Service allows.
        let (status, rec) = console(&s.base, &ada, Method::GET, &format!("/calls/{call}"), None).await;
        assert_eq!(status, 200, "{rec}");
        assert_eq!(rec["voiceCall"]["Id"], call.as_str());
        assert_eq!((rec["stage"].as_str(), rec["state"]["muted"].as_bool()), (Some("Assigned"), Some(true)));
        assert_eq!(rec["notes"].as_array().unwrap().len(), 3, "{rec}");
        let texts: Vec<&str> =
            rec["transcript"].as_array().unwrap().iter().filter_map(|t| t["content"].as_str()).collect();
        assert_eq!(texts, ["before hold", "after hold"]);
        let (status, body) = console(
            &s.base,
            &ada,
            Method::PATCH,
            &format!("/calls/{call}"),
            Some(json!({"CallResolution": "resolved", "Description": "refund"})),
        )
        .await;
        assert_eq!((status, body["CallResolution"].as_str()), (200, Some("resolved")), "{body}");
        let (status, body) = console(
            &s.base,
            &ada,
            Method::PATCH,
            &format!("/calls/{call}"),
            Some(json!({"CallType": "Outbound", "Description": "x"})),
        )
        .await;
        assert_eq!(
            (status, body["errorCode"].as_str()),
            (400, Some("INVALID_FIELD_FOR_INSERT_UPDATE")),
            "{body}"
        );
        assert!(body["message"].as_str().unwrap().contains("`CallType`"), "{body}");
        let (status, body) =
            console(&s.base, &ada, Method::PATCH, &format!("/calls/{call}"), Some(json!({"Nope__c": 1})))
                .await;
        assert_eq!((status, body["errorCode"].as_str()), (400, Some("INVALID_FIELD_VALUE")), "{body}");

        // Blind transfer to the queue: Ada's work ends, Grace gets the offer and takes the call.
        let mut gws = socket(&s.base, &grace).await;
        let (status, body) = act(
            &s,
            &ada,
            &call,
            "addParticipant",
            json!({"contactType": "AgentOrQueueId", "contactValue": "Nowhere", "isBlindTransfer": true}),
        )
        .await;
        assert_eq!((status, body["errorCode"].as_str()), (400, Some("INVALID_FIELD_VALUE")), "{body}");
        let queue = s.demo.queues.iter().find(|q| q.developer_name == "Support").unwrap().id.to_string();
        let (status, body) = act(
            &s,
            &ada,
            &call,
            "addParticipant",
            json!({"contactType": "AgentOrQueueId", "contactValue": queue, "isBlindTransfer": true}),
        )
        .await;
        assert_eq!((status, body["status"].as_str()), (200, Some("Transferred")), "{body}");
        assert_eq!(next_of(&mut ws, "ended").await["data"]["reason"], "Rerouted");
        assert_eq!(next_of(&mut gws, "offer").await["data"]["workId"], call.as_str());
        let (status, body) =
            console(&s.base, &grace, Method::POST, &format!("/offers/{call}/accept"), None).await;
        assert_eq!(status, 200, "{body}");
        next_of(&mut gws, "assigned").await;
        assert_eq!(say(&s, "cc-1", "m4", "hello Grace").await, 200);
        assert_eq!(conv_event(&mut gws).await["data"]["content"], "hello Grace");

        // Grace ends the call: wrap-up, then done.
        let (status, body) = act(&s, &grace, &call, "endCall", json!({"participantType": "Agent"})).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("Ended")), "{body}");
        assert_eq!(next_of(&mut gws, "wrapUp").await["data"]["workId"], call.as_str());
        let (status, _) = act(&s, &grace, &call, "mute", json!({})).await;
        assert_eq!(status, 409, "no call control in wrap-up");
        let (status, _) = console(&s.base, &grace, Method::POST, &format!("/work/{call}/wrapup"), None).await;
        assert_eq!(status, 200);
        assert_eq!(next_of(&mut gws, "ended").await["data"]["reason"], "Completed");
        let (_, rec) = console(&s.base, &grace, Method::GET, &format!("/calls/{call}"), None).await;
        assert_eq!(rec["voiceCall"]["CallDisposition"], "completed", "{rec}");
        assert_eq!(rec["state"]["status"], "Closed");
    }
);

both_backends!(
    consult_merge_swap_preview_calls_recommendations_and_extensions,
    |backend: Backend| async move {
        let s = TestServer::start(backend).await;
        let admin = s.crm_login().await;
        let ada = login(&s, &admin, "ada").await;
        let mut ws = socket(&s.base, &ada).await;
        let call = accepted_call(&s, &ada, &mut ws, "cc-2").await;

        // A consult with an outside number: the caller waits on hold; merge, swap, drop.
        let (status, _) = act(&s, &ada, &call, "merge", json!({})).await;
        assert_eq!(status, 409, "merge needs a three-way call");
        let (status, body) = act(
            &s,
            &ada,
            &call,
            "addParticipant",
            json!({"contactType": "PhoneNumber", "contactValue": "555-0100", "isBlindTransfer": false}),
        )
        .await;
        assert_eq!((status, body["errorCode"].as_str()), (400, Some("INVALID_FIELD_VALUE")), "{body}");
        let (status, body) = act(
            &s,
            &ada,
            &call,
            "addParticipant",
            json!({"contactType": "PhoneNumber", "contactValue": "+14155550199", "isBlindTransfer": false}),
        )
        .await;
        assert_eq!((status, body["status"].as_str()), (200, Some("Consulting")), "{body}");
        let ev = conv_event(&mut ws).await;
        assert_eq!(
            (ev["event"].as_str(), ev["data"]["participant"].as_str()),
            (Some("participantadded"), Some("+14155550199"))
        );
        assert_eq!(conv_event(&mut ws).await["event"], "hold");
        assert_ne!(say(&s, "cc-2", "c1", "while consulting").await, 200, "the waiting caller is on hold");
        let (status, _) = act(&s, &ada, &call, "merge", json!({})).await;
        assert_eq!(status, 200);
        assert_eq!(conv_event(&mut ws).await["event"], "conference");
        let (status, body) = act(&s, &ada, &call, "swap", json!({})).await;
        assert_eq!((status, body["initialCallerOnHold"].as_bool()), (200, Some(true)), "{body}");
        assert_eq!(conv_event(&mut ws).await["event"], "swap");
        let (status, _) = act(&s, &ada, &call, "endCall", json!({"participantType": "Third_Party"})).await;
        assert_eq!(status, 200);
        assert_eq!(conv_event(&mut ws).await["event"], "participantremoved");
        assert_eq!(conv_event(&mut ws).await["event"], "resume");
        let (status, _) = act(&s, &ada, &call, "endCall", json!({})).await;
        assert_eq!(status, 200);
        next_of(&mut ws, "wrapUp").await;
        let (status, _) = console(&s.base, &ada, Method::POST, &format!("/work/{call}/wrapup"), None).await;
        assert_eq!(status, 200);
        next_of(&mut ws, "ended").await;

        // Preview call: E.164 only; held like any call.
        let (status, body) =
            console(&s.base, &ada, Method::POST, "/calls", Some(json!({"phoneNumber": "4155550100"}))).await;
        assert_eq!((status, body["errorCode"].as_str()), (400, Some("INVALID_FIELD_VALUE")), "{body}");
        let (status, body) =
            console(&s.base, &ada, Method::POST, "/calls", Some(json!({"phoneNumber": "+14155550100"})))
                .await;
        assert_eq!(status, 201, "{body}");
        let preview = body["voiceCallId"].as_str().unwrap().to_string();
        assert_eq!(body["work"]["stage"], "Assigned", "{body}");
        let (_, rec) = console(&s.base, &ada, Method::GET, &format!("/calls/{preview}"), None).await;
        assert_eq!(
            (rec["callType"].as_str(), rec["participant"].as_str()),
            (Some("outbound"), Some("+14155550100"))
        );
        let (status, _) = act(&s, &ada, &preview, "hold", json!({})).await;
        assert_eq!(status, 200);

        // Next Best Action: the guide's filter over the org's recommendations.
        let (status, body) = console(
        &s.base,
        &admin,
        Method::PUT,
        "/admin/nextBestActions",
        Some(json!({
            "recommendations": [{"Name": "Offer a refund", "Description": "Within 30 days"}, {"Name": "Upgrade plan"}],
            "strategies": [{"DeveloperName": "Keyword", "Filter": "$Request.key != '' && CONTAINS(Name, $Request.key)"}],
        })),
    )
    .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = console(
            &s.base,
            &admin,
            Method::PUT,
            "/admin/nextBestActions",
            Some(json!({"strategies": [{"DeveloperName": "Bad", "Filter": "CONTAINS(Name"}]})),
        )
        .await;
        assert_eq!((status, body["errorCode"].as_str()), (400, Some("INVALID_FIELD_VALUE")), "{body}");
        let (status, body) = console(
            &s.base,
            &ada,
            Method::POST,
            "/nextBestActions",
            Some(json!({"recordId": preview, "payload": {"key": "refund"}})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let names: Vec<&str> =
            body["recommendations"].as_array().unwrap().iter().filter_map(|r| r["name"].as_str()).collect();
        assert_eq!(names, ["Offer a refund"]);
        let (_, body) = console(
            &s.base,
            &ada,
            Method::POST,
            "/nextBestActions",
            Some(json!({"recordId": preview, "payload": {}})),
        )
        .await;
        assert_eq!(body["recommendations"], json!([]));

        // Voice Extensions: administrators register, every console reads.
        let (status, body) =
            console(&s.base, &ada, Method::POST, "/extensions", Some(json!({"url": "https://x.test/a.js"})))
                .await;
        assert_eq!(status, 401, "a console session is not an administrator's CRM token: {body}");
        let (status, body) = console(
            &s.base,
            &admin,
            Method::POST,
            "/extensions",
            Some(json!({"url": "javascript:alert(1)"})),
        )
        .await;
        assert_eq!((status, body["errorCode"].as_str()), (400, Some("INVALID_FIELD_VALUE")), "{body}");
        let (status, body) = console(
            &s.base,
            &admin,
            Method::POST,
            "/extensions",
            Some(json!({"url": "https://components.example.test/mute.js", "label": "Auto mute"})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let id = body["id"].as_str().unwrap().to_string();
        let (_, list) = console(&s.base, &ada, Method::GET, "/extensions", None).await;
        assert_eq!(list["extensions"][0]["label"], "Auto mute", "{list}");
        let (status, _) = console(&s.base, &admin, Method::DELETE, &format!("/extensions/{id}"), None).await;
        assert_eq!(status, 200);
        let (_, list) = console(&s.base, &ada, Method::GET, "/extensions", None).await;
        assert_eq!(list["extensions"], json!([]));

        // The console and its Toolkit API module are served from the binary.
        for (path, kind) in [
            ("/console", "text/html"),
            ("/console/toolkit.js", "text/javascript"),
            ("/console/extensions", "text/html"),
        ] {
            let resp = reqwest::get(format!("{}{path}", s.base)).await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
            assert!(ct.starts_with(kind), "{path}: {ct}");
        }
    }
);

both_backends!(leaving_a_consult_with_an_agent_completes_the_transfer, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let admin = s.crm_login().await;
    let ada = login(&s, &admin, "ada").await;
    let mut ws = socket(&s.base, &ada).await;
    let call = accepted_call(&s, &ada, &mut ws, "cc-3").await;
    let grace = login(&s, &admin, "grace").await;
    let mut gws = socket(&s.base, &grace).await;
    let grace_name = s.demo.agents.iter().find(|a| a.username.starts_with("grace")).unwrap().username.clone();
    let (status, body) = act(
        &s,
        &ada,
        &call,
        "addParticipant",
        json!({"contactType": "AgentOrQueueId", "contactValue": grace_name, "isBlindTransfer": false}),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("Consulting")), "{body}");
    let (_, rec) = console(&s.base, &ada, Method::GET, &format!("/calls/{call}"), None).await;
    assert_eq!(rec["state"]["thirdParty"]["contactType"], "AgentOrQueueId", "{rec}");
    assert_eq!(rec["state"]["onHold"], true);
    // Ada hangs up her leg: the call goes to Grace through the router, off hold.
    let (status, body) = act(&s, &ada, &call, "endCall", json!({"participantType": "Agent"})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("Transferred")), "{body}");
    assert_eq!(next_of(&mut ws, "ended").await["data"]["reason"], "Rerouted");
    assert_eq!(next_of(&mut gws, "offer").await["data"]["workId"], call.as_str());
    let (status, _) = console(&s.base, &grace, Method::POST, &format!("/offers/{call}/accept"), None).await;
    assert_eq!(status, 200);
    let (_, rec) = console(&s.base, &grace, Method::GET, &format!("/calls/{call}"), None).await;
    assert_eq!(
        (rec["role"].as_str(), rec["state"]["onHold"].as_bool()),
        (Some("Agent"), Some(false)),
        "{rec}"
    );
    assert_eq!(rec["voiceCall"]["CallDisposition"], "new", "the call goes on: {rec}");
});
