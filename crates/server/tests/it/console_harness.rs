//! Helpers shared by the tests of Omni-Channel routing and the agent console API: servers
//! whose routing clock the test moves, requests to `/console/api/v1`, and the console's event
//! WebSocket read one JSON message at a time.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use voxbridge_server::{RoutingClock, RoutingSettings, Settings};
use voxbridge_store::Store;

use crate::harness::{Backend, TestServer};

pub const START: &str = "2024-01-01T00:00:00Z";
/// A safety net for awaited events; tests never wait for time to pass.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn settings(clock: &RoutingClock) -> Settings {
    Settings { routing: RoutingSettings { clock: clock.clone(), ..Default::default() }, ..Default::default() }
}

/// A server whose routing time moves only when the test advances the returned clock.
pub async fn start(backend: Backend) -> (TestServer, RoutingClock) {
    let clock = RoutingClock::default();
    (TestServer::start_with(backend, settings(&clock)).await, clock)
}

/// Another server process over the same store: what a restart looks like to routing.
pub async fn restart(store: Arc<dyn Store>, clock: &RoutingClock) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = voxbridge_server::router(store, settings(clock));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A console API request; the answer's status and JSON body (or text).
pub async fn console(
    base: &str,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req =
        reqwest::Client::new().request(method, format!("{base}/console/api/v1{path}")).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Executes the demo routing for a call, which then waits in the Support queue.
pub async fn route(s: &TestServer, call: &str) {
    let (status, body) = s
        .call(
            Method::PATCH,
            &format!("/telephony/v1/voiceCalls/{call}/omniFlow"),
            Some(json!({"dialedNumber": "+15550100100", "flowInputParameters": {"Department": "Support"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The console's event socket for a session, before any message is read.
pub async fn connect(base: &str, token: &str, query: &str) -> Socket {
    let url =
        format!("{}/console/api/v1/events?access_token={token}{query}", base.replace("http://", "ws://"));
    let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("websocket");
    ws
}

pub async fn next(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(PATIENCE, ws.next()).await.expect("an event").expect("open").unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// The next event of one type, skipping others (presence and queue updates).
pub async fn next_of(ws: &mut Socket, kind: &str) -> Value {
    loop {
        let ev = next(ws).await;
        if ev["type"] == kind {
            return ev;
        }
    }
}
