//! Crash safety: every write the server acknowledged with a 2xx survives a SIGKILL of the
//! server while other requests are in flight, on SQLite and on PostgreSQL.
//!
//! Eight clients fire creates, single transcripts, bulk transcripts and PATCH updates at a
//! real `voxbridge serve`; the client whose acknowledgement is number `KILL_AT` kills the
//! server on the spot (no timers involved), the others are cut off mid-request. The server is
//! restarted on the same data directory and store, and every acknowledged write is looked up
//! through `GET /admin/v1/voiceCalls/{key}`.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::Connection;

use crate::voxbridge;

/// Clients sending at once.
const CLIENTS: usize = 8;
/// Calls every client sends transcripts to.
const BASE_CALLS: usize = 10;
/// The acknowledgement after which the server is killed (one cycle of four requests
/// acknowledges 12 writes, so about 300 requests come first).
const KILL_AT: usize = 900;
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A running `voxbridge serve`, killed (SIGKILL) on drop.
struct Server {
    child: Arc<Mutex<Child>>,
    base: String,
}

impl Server {
    fn start(dir: &Path, database_url: Option<&str>) -> Server {
        let mut args = vec!["serve", "--http", "127.0.0.1:0", "--data", "data"];
        if let Some(url) = database_url {
            args.extend(["--database-url", url]);
        }
        let mut child = voxbridge(dir, &args)
            // The default 50 calls/s would answer 429 to this burst; limits are not under test.
            .env("VOXBRIDGE_LIMITS_CALLS_PER_SECOND", "1000000")
            .env("VOXBRIDGE_LIMITS_UTTERANCES_PER_SECOND", "1000000")
            .env("VOXBRIDGE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("voxbridge serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        let base = loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => match line.strip_prefix("listening on http://") {
                    Some(addr) => break format!("http://{addr}"),
                    None => seen.push(line),
                },
                Err(_) => panic!("the server printed no listening line; saw {seen:#?}"),
            }
        };
        Server { child: Arc::new(Mutex::new(child)), base }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A token of the demo call center without `jti`, so every request may reuse it.
fn token(data: &Path) -> String {
    let setup: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("setup.json")).unwrap()).unwrap();
    let cc = setup["call_centers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["api_name"] == "DemoCallCenter")
        .expect("the demo call center");
    let pem = std::fs::read(data.join(cc["private_key_file"].as_str().unwrap())).unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": setup["org"]["id"], "sub": "DemoCallCenter", "aud": "https://scrt.salesforce.com",
        "iat": now, "exp": now + 600,
    });
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key).unwrap()
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn new(base: &str, token: String) -> Client {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Client { http, base: base.to_string(), token }
    }

    /// Sends a request; `Err` when no answer came (the server died).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    /// Polls /healthz a bounded number of times.
    async fn wait_healthy(&self) {
        for _ in 0..100 {
            if let Ok((200, _)) = self.send(reqwest::Method::GET, "/healthz", None).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{} never answered /healthz", self.base);
    }
}

fn create_body(key: &str, start: &str) -> Value {
    json!({
        "callCenterApiName": "DemoCallCenter", "vendorCallKey": key, "to": "+15550100100",
        "from": "+14155550123", "initiationMethod": "Inbound", "startTime": start,
        "participants": [{"participantKey": "+14155550123", "type": "END_USER"}],
    })
}

fn message(id: &str) -> Value {
    let now = chrono::Utc::now().timestamp_millis();
    json!({"participantId": "caller", "messageId": id, "startTime": now, "endTime": now + 1000,
        "content": format!("utterance {id}"), "senderType": "END_USER"})
}

/// What the server acknowledged.
#[derive(Default)]
struct Acks {
    creates: Vec<String>,
    /// (conversation key, messageId)
    messages: Vec<(String, String)>,
    /// (vendorCallKey, fromNumber, numberOfHolds)
    updates: Vec<(String, String, i64)>,
}

/// Shared by the clients: the acknowledgements, and the server to kill.
struct Run {
    acks: Mutex<Acks>,
    count: AtomicUsize,
    killed: AtomicBool,
    /// Clients whose last request got no answer because of the kill.
    cut_off: AtomicUsize,
    /// Answers that are neither 2xx nor explained by the kill: a bug in the test or server.
    unexpected: Mutex<Vec<String>>,
    server: Arc<Mutex<Child>>,
}

impl Run {
    /// Records `n` acknowledgements; the one that crosses `KILL_AT` kills the server.
    fn acked(&self, n: usize, record: impl FnOnce(&mut Acks)) {
        record(&mut self.acks.lock().unwrap());
        let before = self.count.fetch_add(n, Ordering::SeqCst);
        if before < KILL_AT && before + n >= KILL_AT {
            // Flag first: any failure seen from now on is explained by the kill.
            self.killed.store(true, Ordering::SeqCst);
            self.server.lock().unwrap().kill().expect("SIGKILL the server");
        }
    }

    /// Classifies a failed request; `true` means stop this client.
    fn failed(&self, what: &str, outcome: Result<(u16, Value), String>) -> bool {
        match outcome {
            Err(_) if self.killed.load(Ordering::SeqCst) => {
                self.cut_off.fetch_add(1, Ordering::SeqCst);
                true
            }
            Err(e) => {
                self.unexpected.lock().unwrap().push(format!("{what}: no answer before the kill: {e}"));
                true
            }
            Ok((status, body)) => {
                self.unexpected.lock().unwrap().push(format!("{what}: HTTP {status} {body}"));
                true
            }
        }
    }
}

/// One client: a fixed cycle of create, single transcript, bulk transcript, update.
async fn client(id: usize, c: Arc<Client>, run: Arc<Run>, base_keys: Arc<Vec<String>>, start: Arc<String>) {
    use reqwest::Method;
    let mut created: std::collections::VecDeque<String> = Default::default();
    let mut i = 0usize;
    // Every client keeps sending until the kill cuts it off, so each one ends on a request
    // the server never answered, however quickly the others were served.
    loop {
        i += 1;
        match i % 4 {
            1 => {
                let key = format!("w{id}-call-{i}");
                let out =
                    c.send(Method::POST, "/telephony/v1/voiceCalls", Some(create_body(&key, &start))).await;
                match out {
                    Ok((200, _)) => {
                        created.push_back(key.clone());
                        run.acked(1, |a| a.creates.push(key));
                    }
                    other => {
                        if run.failed("create", other) {
                            return;
                        }
                    }
                }
            }
            2 => {
                let conv = &base_keys[(id + i) % base_keys.len()];
                let mid = format!("w{id}-single-{i}");
                let path = format!("/telephony/v1/voiceCalls/{conv}/messages");
                match c.send(Method::POST, &path, Some(message(&mid))).await {
                    Ok((200, _)) => run.acked(1, |a| a.messages.push((conv.clone(), mid))),
                    other => {
                        if run.failed("single transcript", other) {
                            return;
                        }
                    }
                }
            }
            3 => {
                let mut sent = Vec::new();
                let entries: Vec<Value> = (0..3)
                    .map(|e| {
                        let conv = base_keys[(id + i + e) % base_keys.len()].clone();
                        let messages: Vec<Value> = (0..3)
                            .map(|m| {
                                let mid = format!("w{id}-bulk-{i}-{e}-{m}");
                                sent.push((conv.clone(), mid.clone()));
                                message(&mid)
                            })
                            .collect();
                        json!({"vendorCallKey": conv, "messages": messages})
                    })
                    .collect();
                let out = c
                    .send(
                        Method::POST,
                        "/telephony/v1/voiceCalls/messages",
                        Some(json!({"entries": entries})),
                    )
                    .await;
                match out {
                    // 200 means every message was accepted; a 207 would be a partial failure.
                    Ok((200, _)) => run.acked(sent.len(), |a| a.messages.extend(sent)),
                    other => {
                        if run.failed("bulk transcript", other) {
                            return;
                        }
                    }
                }
            }
            _ => {
                // Each call is updated once, so its stored fields are exactly this update's.
                let Some(key) = created.pop_front() else { continue };
                let from = format!("+1555{id:02}{i:05}");
                let holds = i as i64;
                let body = json!({"isActiveCall": true, "fromNumber": from, "numberOfHolds": holds});
                match c.send(Method::PATCH, &format!("/telephony/v1/voiceCalls/{key}"), Some(body)).await {
                    Ok((200, _)) => run.acked(1, |a| a.updates.push((key, from, holds))),
                    other => {
                        if run.failed("update", other) {
                            return;
                        }
                    }
                }
            }
        }
    }
}

async fn crash_and_verify(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(dir.path(), database_url.as_deref());
    let c = Arc::new(Client::new(&server.base, token(&data)));
    c.wait_healthy().await;

    // Calls the transcripts go to, all acknowledged before the storm.
    let start = Arc::new(
        (chrono::Utc::now() - chrono::Duration::minutes(10)).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    );
    let base_keys: Arc<Vec<String>> = Arc::new((0..BASE_CALLS).map(|i| format!("base-{i}")).collect());
    for key in base_keys.iter() {
        let (status, body) = c
            .send(reqwest::Method::POST, "/telephony/v1/voiceCalls", Some(create_body(key, &start)))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }

    let run = Arc::new(Run {
        acks: Default::default(),
        count: AtomicUsize::new(0),
        killed: AtomicBool::new(false),
        cut_off: AtomicUsize::new(0),
        unexpected: Default::default(),
        server: server.child.clone(),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(client(id, c.clone(), run.clone(), base_keys.clone(), start.clone())))
        .collect();
    for task in clients {
        task.await.unwrap();
    }
    assert!(run.killed.load(Ordering::SeqCst), "the server was never killed");
    run.server.lock().unwrap().wait().unwrap();
    let unexpected = std::mem::take(&mut *run.unexpected.lock().unwrap());
    assert!(unexpected.is_empty(), "answers not explained by the kill: {unexpected:#?}");
    // Every client was cut off by the kill rather than stopping on its own.
    assert_eq!(run.cut_off.load(Ordering::SeqCst), CLIENTS, "every client ends on an unanswered request");
    drop(server);

    // Same data dir, same store.
    let server = Server::start(dir.path(), database_url.as_deref());
    let c = Client::new(&server.base, token(&data));
    c.wait_healthy().await;
    let acks = std::mem::take(&mut *run.acks.lock().unwrap());
    eprintln!(
        "acknowledged before the kill: {} creates, {} messages, {} updates; {} requests cut off",
        acks.creates.len(),
        acks.messages.len(),
        acks.updates.len(),
        run.cut_off.load(Ordering::SeqCst)
    );
    assert!(acks.creates.len() > 10 && acks.messages.len() > 50 && !acks.updates.is_empty());

    let mut views: HashMap<String, Value> = HashMap::new();
    let keys: HashSet<&String> = acks
        .creates
        .iter()
        .chain(acks.messages.iter().map(|(k, _)| k))
        .chain(acks.updates.iter().map(|(k, _, _)| k))
        .collect();
    for key in keys {
        let (status, body) =
            c.send(reqwest::Method::GET, &format!("/admin/v1/voiceCalls/{key}"), None).await.unwrap();
        assert_eq!(status, 200, "acknowledged call {key} is gone after the crash: {body}");
        assert_eq!(body["voiceCall"]["attributes"]["type"], "VoiceCall");
        assert_eq!(body["conversation"]["Status"], "Open", "{key}: {body}");
        views.insert(key.clone(), body);
    }
    for (key, mid) in &acks.messages {
        let transcript = views[key]["transcript"].as_array().unwrap();
        assert!(
            transcript.iter().any(|e| e["messageId"] == mid.as_str()),
            "acknowledged message {mid} of {key} is missing after the crash"
        );
    }
    for (key, from, holds) in &acks.updates {
        let call = &views[key]["voiceCall"];
        assert_eq!(call["FromPhoneNumber"], from.as_str(), "acknowledged update of {key} lost: {call}");
        assert_eq!(call["NumberOfHolds"], *holds, "{key}: {call}");
        assert_eq!(call["CallDisposition"], "in-progress", "{key}: {call}");
    }
}

fn block_on(f: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(f)
}

#[test]
fn acknowledged_writes_survive_sigkill_on_sqlite() {
    block_on(crash_and_verify(None));
}

/// Drops the test's schema when the test ends, passed or not.
struct Schema {
    url: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async move {
            if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                let _ = sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            }
        });
    }
}

#[test]
fn acknowledged_writes_survive_sigkill_on_postgres() {
    if std::env::var("VOXBRIDGE_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
        eprintln!("VOXBRIDGE_SKIP_POSTGRES=1: skipping a PostgreSQL test");
        return;
    }
    let url =
        std::env::var("VOXBRIDGE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
    let schema = Schema { url: url.clone(), name: format!("vb_crash_{}", uuid::Uuid::new_v4().simple()) };
    let sep = if url.contains('?') { '&' } else { '?' };
    block_on(crash_and_verify(Some(format!("{url}{sep}schema={}", schema.name))));
}
