//! Omni-Channel routing drives the telephony side's agents, end to end over real HTTP: a live
//! simulated call to the demo number is routed by the CRM half, an agent accepts the offer in
//! the console, the live contact connects to that agent (CONNECTED_TO_AGENT),
//! and the agent ending the call from the console ends the contact — over HTTP, and in
//! `call interactive`, which shows it as it happens.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::ok;
use crate::serving::Server;

/// A bare HTTP/1.1 request with `token`; status and JSON body.
fn request(addr: &str, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let (head, payload) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, serde_json::from_str(payload).unwrap_or(Value::String(payload.to_string())))
}

/// Asks `probe` every 100 ms until it answers `Ok`, for at most 30 s; the last `Err` says
/// what was seen instead.
fn poll<T>(what: &str, mut probe: impl FnMut() -> Result<T, Value>) -> T {
    let mut seen = Value::Null;
    for _ in 0..300 {
        match probe() {
            Ok(v) => return v,
            Err(v) => seen = v,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("gave up waiting for {what}; saw {seen}");
}

#[test]
fn the_agent_who_accepts_in_the_console_takes_the_live_call() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["serve", "--data", "data", "--http", "127.0.0.1:0"]);
    let addr = server.wait_for("listening on http://");
    server.wait_for("  Call simulator: ");
    let base = format!("http://{addr}");
    // Telephony tokens are single-use (`jti`): a fresh one per request.
    let telephony = || ok(dir.path(), &["token", "--data", "data"]).trim().to_string();
    let crm = ok(dir.path(), &["token", "--crm", "--url", &base, "--data", "data"]).trim().to_string();
    let ada = "ada@demo.voxbridge.local";

    // A live call: the sample inbound flow creates the VoiceCall and Omni-Channel routes it.
    let (status, view) = request(
        &addr,
        &telephony(),
        "POST",
        "/simulator/v1/calls",
        Some(json!({"to": "+15550100100", "from": "+14155550123", "live": true})),
    );
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["waiting"], json!({"for": "agent", "queue": "Support"}), "{view}");
    let id = view["contactId"].as_str().unwrap().to_string();
    let steps = view["steps"].as_array().unwrap();
    let following = format!("the agent comes from Omni-Channel routing of conversation {id}");
    assert!(steps.iter().any(|s| s["message"] == following.as_str()), "{view}");
    let call_id = steps
        .iter()
        .find_map(|s| s["set"]["voiceCallId"].as_str())
        .expect("the flow stored the VoiceCall id")
        .to_string();
    let soql = format!("SELECT+Id,QueueId+FROM+PendingServiceRouting+WHERE+WorkItemId='{call_id}'");
    let (status, routed) = request(&addr, &crm, "GET", &format!("/services/data/v62.0/query?q={soql}"), None);
    assert_eq!((status, routed["totalSize"].as_u64()), (200, Some(1)), "{routed}");

    // Ada opens a console session, becomes available and accepts the offer.
    let (status, session) =
        request(&addr, &crm, "POST", "/console/api/v1/sessions", Some(json!({"username": ada})));
    assert_eq!(status, 200, "{session}");
    let console = session["token"].as_str().unwrap().to_string();
    let (status, presence) =
        request(&addr, &console, "PUT", "/console/api/v1/presence", Some(json!({"status": "Available"})));
    assert_eq!(status, 200, "{presence}");
    let offer = poll("the offer", || {
        let (_, state) = request(&addr, &console, "GET", "/console/api/v1/state", None);
        let offer = state["offers"].as_array().and_then(|o| o.first()).and_then(|o| o["workId"].as_str());
        offer.map(str::to_string).ok_or(state)
    });
    assert_eq!(offer, call_id);
    let (status, work) =
        request(&addr, &console, "POST", &format!("/console/api/v1/offers/{offer}/accept"), None);
    assert_eq!((status, work["stage"].as_str()), (200, Some("Assigned")), "{work}");

    // The live contact connects to Ada's telephony agent.
    let contact = format!("/simulator/v1/contacts/{id}");
    let view = poll("the agent on the contact", || {
        let (_, view) = request(&addr, &telephony(), "GET", &contact, None);
        if view["waiting"]["for"] == "talking" {
            Ok(view)
        } else {
            Err(view)
        }
    });
    assert_eq!(view["waiting"], json!({"for": "talking", "agent": ada, "onHold": false}), "{view}");
    let steps = view["steps"].as_array().unwrap();
    assert!(
        steps.iter().any(|s| s["type"] == "agent" && s["action"] == "connect" && s["agent"] == ada),
        "{view}"
    );
    let events: Vec<&str> = view["contactEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["detail"]["eventType"].as_str())
        .collect();
    assert_eq!(events, ["INITIATED", "CONNECTED_TO_SYSTEM", "QUEUED", "CONNECTED_TO_AGENT"]);

    // Ada holds the caller from the console, and resumes: so does the contact.
    for (action, on_hold) in [("hold", true), ("resume", false)] {
        let (status, answer) = request(
            &addr,
            &console,
            "POST",
            &format!("/console/api/v1/calls/{call_id}/{action}"),
            Some(json!({"participantType": "Initial_Caller"})),
        );
        assert_eq!(status, 200, "{answer}");
        poll(action, || {
            let (_, view) = request(&addr, &telephony(), "GET", &contact, None);
            if view["waiting"]["onHold"] == on_hold {
                Ok(())
            } else {
                Err(view)
            }
        });
    }

    // Ada ends the call from the console: the contact ends.
    let (status, ended) = request(
        &addr,
        &console,
        "POST",
        &format!("/console/api/v1/calls/{call_id}/endCall"),
        Some(json!({"participantType": "Agent"})),
    );
    assert_eq!(status, 200, "{ended}");
    let view = poll("the end of the contact", || {
        let (_, view) = request(&addr, &telephony(), "GET", &contact, None);
        if view["state"] == "ended" {
            Ok(view)
        } else {
            Err(view)
        }
    });
    let result = &view["result"];
    assert_eq!(result["disconnectReason"], "AGENT_DISCONNECT", "{view}");
    assert_eq!(result["agent"], ada);
    assert_eq!(result["ctr"]["Agent"]["Username"], ada);
    assert_eq!(result["ctr"]["Agent"]["NumberOfHolds"], 1);
    assert_eq!(
        result["contactEvents"].as_array().unwrap().last().unwrap()["detail"]["eventType"],
        "DISCONNECTED"
    );

    // After-call work is done: Ada is routable again.
    let (status, closed) =
        request(&addr, &console, "POST", &format!("/console/api/v1/work/{call_id}/wrapup"), None);
    assert_eq!(status, 200, "{closed}");

    // `call interactive` waits for a line while the console connects and ends the call.
    let mut child = crate::voxbridge(
        dir.path(),
        &["call", "interactive", "--data", "data", "--url", &base, "--to", "+15550100100"],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let stdin = child.stdin.take().unwrap();
    let (tx, output) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_line = |prefix: &str| loop {
        match output.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                seen.push(line.clone());
                if line.starts_with(prefix) {
                    return line;
                }
            }
            Err(_) => panic!("no line starting with {prefix:?}; saw {seen:#?}"),
        }
    };
    wait_line("> in queue Support, waiting for an agent");
    let offer = poll("the second offer", || {
        let (_, state) = request(&addr, &console, "GET", "/console/api/v1/state", None);
        let offer = state["offers"].as_array().and_then(|o| o.first()).and_then(|o| o["workId"].as_str());
        offer.map(str::to_string).ok_or(state)
    });
    let (status, work) =
        request(&addr, &console, "POST", &format!("/console/api/v1/offers/{offer}/accept"), None);
    assert_eq!(status, 200, "{work}");
    wait_line(&format!("> talking to {ada}"));
    let (status, ended) = request(
        &addr,
        &console,
        "POST",
        &format!("/console/api/v1/calls/{offer}/endCall"),
        Some(json!({"participantType": "Agent"})),
    );
    assert_eq!(status, 200, "{ended}");
    let result = wait_line("Result: ");
    assert!(result.contains(&format!("agent {ada}")) && result.ends_with("AGENT_DISCONNECT"), "{result}");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}
