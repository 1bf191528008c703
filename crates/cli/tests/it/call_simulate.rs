//! `serve --flows DIR` with the sample flows, `call simulate` against it (the VoiceCall is
//! created through the Telephony Integration API of the same server), agents on scripted
//! calls, live calls over HTTP and `call interactive` driven through standard input, and
//! `flows validate`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use crate::serving::Server;
use crate::{fails, ok, sample_flows};

#[test]
fn a_simulated_call_creates_the_voice_call_and_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let flows = sample_flows(dir.path());
    let flows = flows.to_str().unwrap();
    let mut server =
        Server::start(dir.path(), &["serve", "--data", "data", "--http", "127.0.0.1:0", "--flows", flows]);
    let addr = server.wait_for("listening on http://");
    let simulator = server.wait_for("  Call simulator: ");
    assert!(simulator.contains("+15550100100 -> Sample SCV Inbound Flow"), "{simulator}");
    let url = format!("http://{addr}");

    let args = [
        "call",
        "simulate",
        "--data",
        "data",
        "--url",
        &url,
        "--to",
        "+15550100100",
        "--from",
        "+14155550123",
    ];
    let text = ok(dir.path(), &args);
    assert!(text.contains("function   InvokeTelephonyIntegrationApiFunction createVoiceCall"), "{text}");
    assert!(text.contains("Result: QUEUED in Support; VoiceCall 0LQ"), "{text}");

    let mut json_args = args.to_vec();
    json_args.push("--json");
    let log: Value = serde_json::from_str(&ok(dir.path(), &json_args)).unwrap();
    assert_eq!(log["disposition"], "QUEUED");
    let contact = log["contactId"].as_str().unwrap();
    assert_eq!(log["ctr"]["ContactId"], contact);

    // The contact ended, so the telephony side ended its VoiceCall: the conversation closes
    // (shortly after: the hang-up is sent once the contact is over).
    let path = format!("/admin/v1/voiceCalls/{contact}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let view = loop {
        let (status, view) = request(dir.path(), &addr, "GET", &path, None);
        assert_eq!(status, 200, "{view}");
        if view["conversation"]["Status"] == "Closed" || std::time::Instant::now() > deadline {
            break view;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(view["conversation"]["Status"], "Closed", "{view}");
    assert_eq!(view["voiceCall"]["CallDisposition"], "completed", "{view}");
    assert!(!view["voiceCall"]["CallEndDateTime"].is_null(), "{view}");

    let err = fails(
        dir.path(),
        &["call", "simulate", "--data", "data", "--url", &url, "--to", "+15550109999"],
        &[],
    );
    assert!(err.contains("no flow is bound to the number +15550109999"), "{err}");
}

#[test]
fn flows_validate_prints_diagnostics_and_fails_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let flows = sample_flows(dir.path());
    let inbound = flows.join("Sample_SCV_Inbound_Flow.json");
    let out = ok(dir.path(), &["flows", "validate", inbound.to_str().unwrap()]);
    assert!(out.contains("Sample_SCV_Inbound_Flow.json: ok (13 actions)"), "{out}");

    let legacy = dir.path().join("legacy.json");
    std::fs::write(&legacy, r#"{"modules":[],"version":"1","start":"a"}"#).unwrap();
    let out = crate::run(dir.path(), &["flows", "validate", legacy.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("legacy"));
}

/// A bare HTTP/1.1 request with a fresh token of the demo call center; status and JSON body.
fn request(dir: &std::path::Path, addr: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let token = ok(dir, &["token", "--data", "data"]);
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        token.trim(),
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let (head, payload) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, serde_json::from_str(payload).unwrap_or(Value::String(payload.to_string())))
}

#[test]
fn agents_take_scripted_live_and_interactive_calls() {
    let dir = tempfile::tempdir().unwrap();
    let flows = sample_flows(dir.path());
    // A quick connect to the demo org's Billing queue through the sample queue transfer flow.
    let mut toml = std::fs::read_to_string(flows.join("flows.toml")).unwrap();
    toml.push_str(
        "\n[[quick_connects]]\nname = \"To billing\"\ntype = \"queue\"\ntarget = \"Billing\"\n\
         flow = \"Sample SCV Transfer Flow For Queue Transfers\"\n",
    );
    std::fs::write(flows.join("flows.toml"), toml).unwrap();
    let flows = flows.to_str().unwrap();
    let mut server =
        Server::start(dir.path(), &["serve", "--data", "data", "--http", "127.0.0.1:0", "--flows", flows]);
    let addr = server.wait_for("listening on http://");
    server.wait_for("  Call simulator: ");
    let url = format!("http://{addr}");
    let ada = "ada@demo.voxbridge.local";

    // A scripted call: the demo org's agents take contacts from its queues.
    let script = "agent:connect,w30,agent:hold,w10,agent:resume,w5,agent:disconnect";
    let text = ok(
        dir.path(),
        &["call", "simulate", "--data", "data", "--url", &url, "--to", "+15550100100", "--input", script],
    );
    assert!(text.contains(&format!("agent      {ada} connect")), "{text}");
    assert!(text.contains(&format!("agent      {ada} hold")), "{text}");
    assert!(text.contains("wait       10 s"), "{text}");
    assert!(
        text.contains(&format!("Result: QUEUED in Support; agent {ada}; VoiceCall 0LQ"))
            && text.trim_end().ends_with("disconnect reason AGENT_DISCONNECT"),
        "{text}"
    );

    // A transfer through the quick connect: a new contact runs the transfer flow, which creates
    // its VoiceCall and queues it in Billing, where the next free agent takes it.
    let script = "agent:connect,w10,agent:transfer:quick:To billing,agent:connect,w5,hangup";
    let args =
        ["call", "simulate", "--data", "data", "--url", &url, "--to", "+15550100100", "--input", script];
    let text = ok(dir.path(), &args);
    assert!(text.contains("flow       Sample SCV Transfer Flow For Queue Transfers"), "{text}");
    assert!(text.contains("queue      Billing: QUEUED"), "{text}");
    assert!(text.contains("contact    ") && text.contains("(TRANSFER from "), "{text}");
    let transfer =
        format!("agent      {ada} transfer to Billing through Sample SCV Transfer Flow For Queue Transfers");
    assert!(text.contains(&transfer), "{text}");
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let log: Value = serde_json::from_str(&ok(dir.path(), &json_args)).unwrap();
    let next = &log["transferredContacts"][0];
    assert_eq!(next["InitiationMethod"], "TRANSFER");
    assert_eq!(next["PreviousContactId"], log["contactId"]);
    assert_eq!(log["ctr"]["NextContactId"], next["ContactId"]);
    assert!(next["Attributes"]["voiceCallId"].as_str().is_some_and(|v| v.starts_with("0LQ")), "{next}");

    // A live call over HTTP.
    let (status, body) = request(
        dir.path(),
        &addr,
        "POST",
        "/simulator/v1/calls",
        Some(json!({"to": "+15550100100", "from": "+14155550123", "live": true})),
    );
    assert_eq!(status, 201, "{body}");
    let id = body["contactId"].as_str().unwrap().to_string();
    assert_eq!(body["state"], "waiting");
    assert_eq!(body["waiting"], json!({"for": "agent", "queue": "Support"}));
    assert!(body["steps"].as_array().unwrap().iter().any(|s| s["type"] == "function"), "{body}");
    let contact = format!("/simulator/v1/contacts/{id}");

    let refusals = [
        ("agent", json!({"action": "hold"}), 409, "INVALID_STATE", "not with an agent"),
        ("agent", json!({"action": "dance"}), 400, "INVALID_FIELD_VALUE", "use connect"),
        (
            "agent",
            json!({"action": "transfer", "queue": "Billing", "agent": ada}),
            400,
            "INVALID_FIELD_VALUE",
            "exactly one",
        ),
        ("agent", json!({"action": "connect", "agent": "nobody"}), 409, "INVALID_STATE", "no agent nobody"),
        ("input", json!({"digits": "1", "wait": 3}), 400, "INVALID_FIELD_VALUE", "exactly one"),
        ("input", json!({"digits": "12a"}), 400, "INVALID_FIELD_VALUE", "not a phone key"),
        ("input", json!({"shout": true}), 400, "MALFORMED_REQUEST", "unknown field"),
    ];
    for (path, body, code, error, message) in refusals {
        let (status, answer) =
            request(dir.path(), &addr, "POST", &format!("{contact}/{path}"), Some(body.clone()));
        assert_eq!(status, code, "{body}: {answer}");
        assert_eq!(answer["errorCode"], error, "{body}: {answer}");
        assert!(answer["message"].as_str().unwrap().contains(message), "{body}: {answer}");
    }
    let (status, view) =
        request(dir.path(), &addr, "POST", &format!("{contact}/input"), Some(json!({"wait": 15})));
    assert_eq!(status, 200, "{view}");
    let (status, view) = request(
        dir.path(),
        &addr,
        "POST",
        &format!("{contact}/agent"),
        Some(json!({"action": "connect", "agent": "grace@demo.voxbridge.local"})),
    );
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        view["waiting"],
        json!({"for": "talking", "agent": "grace@demo.voxbridge.local", "onHold": false})
    );
    let (status, view) = request(dir.path(), &addr, "GET", &contact, None);
    assert_eq!((status, view["state"].as_str()), (200, Some("waiting")));
    assert_eq!(view["contactEvents"].as_array().unwrap().len(), 4);
    let (_, view) = request(
        dir.path(),
        &addr,
        "POST",
        &format!("{contact}/agent"),
        Some(json!({"action": "disconnect"})),
    );
    assert_eq!(view["state"], "ended");
    assert_eq!(view["result"]["disconnectReason"], "AGENT_DISCONNECT");
    assert_eq!(view["result"]["ctr"]["Queue"]["Duration"], 15);
    assert_eq!(view["result"]["ctr"]["Agent"]["Username"], "grace@demo.voxbridge.local");
    let (status, answer) =
        request(dir.path(), &addr, "POST", &format!("{contact}/input"), Some(json!({"hangup": true})));
    assert_eq!(status, 409, "{answer}");
    let (status, _) = request(dir.path(), &addr, "GET", "/simulator/v1/contacts/nope", None);
    assert_eq!(status, 404);
    let (status, answer) = request(
        dir.path(),
        &addr,
        "POST",
        "/simulator/v1/calls",
        Some(json!({"to": "+15550100100", "from": "+14155550123", "live": true, "input": "1"})),
    );
    assert_eq!(status, 400, "{answer}");

    // `call interactive` driven through standard input.
    let help = ok(dir.path(), &["call", "interactive", "--help"]);
    assert!(help.contains("live simulated call") && help.contains("--to"), "{help}");
    let mut child = crate::voxbridge(
        dir.path(),
        &["call", "interactive", "--data", "data", "--url", &url, "--to", "+15550100100"],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let commands = "wait 20\nhold\nagent connect\ndance\nhold\nwait 5\nresume\ndisconnect\n";
    child.stdin.take().unwrap().write_all(commands.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("(live; type help for the commands)"), "{text}");
    assert!(text.contains("function   InvokeTelephonyIntegrationApiFunction createVoiceCall"), "{text}");
    assert!(text.contains("> in queue Support, waiting for an agent"), "{text}");
    assert!(text.contains("! agent hold: the contact is waiting in queue, not with an agent"), "{text}");
    assert!(text.contains("! \"dance\" is not a command"), "{text}");
    assert!(text.contains(&format!("agent      {ada} connect")), "{text}");
    assert!(text.contains(&format!("> on hold with {ada}")), "{text}");
    assert!(text.contains("wait       20 s"), "{text}");
    assert!(
        text.contains(&format!("Result: QUEUED in Support; agent {ada}; VoiceCall 0LQ"))
            && text.trim_end().ends_with("disconnect reason AGENT_DISCONNECT"),
        "{text}"
    );

    // The end of input hangs up.
    let child = crate::voxbridge(
        dir.path(),
        &["call", "interactive", "--data", "data", "--url", &url, "--to", "+15550100100"],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("hang up    the caller hangs up") && text.contains("CUSTOMER_DISCONNECT"),
        "{text}"
    );
}
