//! `serve` over HTTP and HTTPS, and `calls` against a stand-in admin endpoint.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use crate::{ok, setup_and_info, voxbridge};

/// A running `voxbridge serve`; stopped with SIGTERM (or killed) on drop.
pub struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    pub fn start(dir: &Path, args: &[&str]) -> Server {
        let mut child = voxbridge(dir, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("voxbridge serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server { child, lines, seen: Vec::new() }
    }

    /// Waits for a line starting with `prefix` and returns the rest.
    pub fn wait_for(&mut self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_string();
                    }
                }
                Err(_) => panic!("no line starting with {prefix:?}; saw {:#?}", self.seen),
            }
        }
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("voxbridge serve did not stop within 20s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bare HTTP/1.1 GET; returns the status line.
fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.lines().next().unwrap_or_default().to_string()
}

#[test]
fn serve_http_prints_its_address_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["serve", "--http", "127.0.0.1:0", "--data", "data"]);
    let addr: SocketAddr = server.wait_for("listening on http://").parse().unwrap();
    assert_ne!(addr.port(), 0);
    let token_hint = server.wait_for("  Get a token:");
    assert!(token_hint.contains("voxbridge token --call-center DemoCallCenter --data data"), "{token_hint}");
    server.wait_for("Press Ctrl-C");

    let status = http_get(addr, "/openapi.json");
    assert!(status.starts_with("HTTP/1.1 "), "{status}");
    assert!(dir.path().join("data/setup.json").is_file());
    assert!(dir.path().join("data/keys/DemoCallCenter.private.pem").is_file());

    let exit = server.terminate();
    assert!(exit.success(), "{exit:?}");
    server.wait_for("stopped");

    // A second start reuses the org.
    let info: Value = serde_json::from_str(&ok(dir.path(), &["info", "--json", "--data", "data"])).unwrap();
    let mut server = Server::start(dir.path(), &["serve", "--http", "127.0.0.1:0", "--data", "data"]);
    let line = server.wait_for("Voxbridge ");
    assert!(line.contains(info["org"]["id"].as_str().unwrap()), "{line}");
    assert!(!server.seen.iter().any(|l| l.starts_with("Created the demo org")), "{:?}", server.seen);
}

#[test]
fn serve_https_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let mut server =
        Server::start(dir.path(), &["serve", "--http", "off", "--https", "127.0.0.1:0", "--data", "data"]);
    let addr: SocketAddr = server.wait_for("listening on https://").parse().unwrap();
    let cert_pem =
        std::fs::read(dir.path().join("data/tls/cert.pem")).expect("self-signed certificate written");
    assert!(dir.path().join("data/tls/key.pem").is_file());

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let status = rt.block_on(async {
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&cert_pem).unwrap())
            .build()
            .unwrap();
        let localhost = client.get(format!("https://localhost:{}/openapi.json", addr.port())).send().await;
        let ip = client.get(format!("https://{addr}/openapi.json")).send().await;
        (localhost.map(|r| r.status()), ip.map(|r| r.status()))
    });
    assert!(
        status.0.is_ok() && status.1.is_ok(),
        "TLS handshake with the self-signed certificate: {status:?}"
    );
    assert!(server.terminate().success());
}

#[test]
fn serve_https_with_a_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    std::fs::write(dir.path().join("certs/chain.pem"), generated.cert.pem()).unwrap();
    std::fs::write(dir.path().join("certs/key.pem"), generated.key_pair.serialize_pem()).unwrap();
    std::fs::write(
        dir.path().join("voxbridge.toml"),
        "version = 1\n[server]\nhttp = \"off\"\nhttps = \"127.0.0.1:0\"\n[tls]\ncert = \"certs/chain.pem\"\nkey = \"certs/key.pem\"\n",
    )
    .unwrap();
    let mut server = Server::start(dir.path(), &["serve", "--config", "voxbridge.toml", "--data", "data"]);
    let addr: SocketAddr = server.wait_for("listening on https://").parse().unwrap();
    let tls = server.wait_for("  TLS:");
    assert!(tls.contains("certs/chain.pem") && !tls.contains("self-signed"), "{tls}");
    assert!(!dir.path().join("data/tls").exists(), "no self-signed certificate when one is configured");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let status = rt.block_on(async {
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(generated.cert.pem().as_bytes()).unwrap())
            .build()
            .unwrap();
        client.get(format!("https://localhost:{}/healthz", addr.port())).send().await.map(|r| r.status())
    });
    assert!(status.is_ok(), "{status:?}");
    assert!(server.terminate().success());
}

#[derive(Clone)]
struct Seen(std::sync::Arc<std::sync::Mutex<Vec<(String, Value, Value)>>>, Vec<u8>);

async fn admin_state(
    State(seen): State<Seen>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let bearer =
        headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["https://scrt.salesforce.com"]);
    let claims = bearer.and_then(|t| {
        jsonwebtoken::decode::<Value>(t, &DecodingKey::from_rsa_pem(&seen.1).ok()?, &validation).ok()
    });
    let Some(claims) = claims else {
        return (StatusCode::UNAUTHORIZED, Json(json!({"code": "INVALID_TOKEN"})));
    };
    if id == "0LQVX0000000404" {
        return (StatusCode::NOT_FOUND, Json(json!({"code": "NOT_FOUND", "message": "no such call"})));
    }
    seen.0.lock().unwrap().push((id, body.clone(), claims.claims));
    (
        StatusCode::OK,
        Json(json!({
            "onHold": body.get("onHold").cloned().unwrap_or(json!(false)),
            "recordingPaused": body.get("recordingPaused").cloned().unwrap_or(json!(false)),
        })),
    )
}

#[test]
fn calls_commands_patch_the_admin_state_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let info = setup_and_info(dir.path());
    let public = std::fs::read(info["call_centers"][0]["public_key_file"].as_str().unwrap()).unwrap();
    let seen = Seen(Default::default(), public);

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/admin/v1/voiceCalls/{id}/state", axum::routing::patch(admin_state))
        .with_state(seen.clone());
    rt.spawn(async move { axum::serve(listener, app).await });

    let call = "0LQVX0000000abc";
    for (command, field, value) in [
        ("hold", "onHold", true),
        ("resume", "onHold", false),
        ("pause-recording", "recordingPaused", true),
        ("resume-recording", "recordingPaused", false),
    ] {
        let out = ok(dir.path(), &["calls", command, call, "--url", &base, "--data", "data"]);
        let answer: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{command}: {out}"));
        assert_eq!(answer[field], value, "{command}: {out}");
    }
    let requests = seen.0.lock().unwrap().clone();
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[0].0, call);
    assert_eq!(requests[0].1, json!({"onHold": true}));
    assert_eq!(requests[3].1, json!({"recordingPaused": false}));
    assert_eq!(requests[0].2["sub"], "DemoCallCenter");
    assert_eq!(requests[0].2["iss"], info["org"]["id"]);

    let err = crate::fails(
        dir.path(),
        &["calls", "hold", "0LQVX0000000404", "--url", &base, "--data", "data"],
        &[],
    );
    assert!(err.contains("404") && err.contains("no such call"), "{err}");
    let err = crate::fails(
        dir.path(),
        &["calls", "hold", call, "--url", "http://127.0.0.1:9", "--data", "data"],
        &[],
    );
    assert!(err.contains("cannot reach") && err.contains("--url"), "{err}");
}
