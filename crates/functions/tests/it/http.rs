//! The functions over real HTTP: InvokeTelephonyIntegrationApiFunction against a recording
//! server (JWT claims, headers, bodies, error statuses) and external HTTP functions.

use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use rand::SeedableRng;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{json, Value};
use voxbridge_functions::external::HttpFunction;
use voxbridge_functions::telephony::{InvokeTelephonyIntegrationApi, TelephonyApiConfig};
use voxbridge_functions::{Function, FunctionError, ManualClock};

struct Keys {
    private_pem: String,
    public_pem: String,
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        Keys {
            private_pem: key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
            public_pem: key.to_public_key().to_public_key_pem(LineEnding::LF).unwrap(),
        }
    })
}

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: HeaderMap,
    body: String,
}

#[derive(Clone)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    answer: Arc<Mutex<(u16, String)>>,
}

async fn record(
    State(r): State<Recorder>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    r.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: uri.path().to_string(),
        headers,
        body,
    });
    let (status, body) = r.answer.lock().unwrap().clone();
    (StatusCode::from_u16(status).unwrap(), [("content-type", "application/json")], body)
}

async fn recorder(status: u16, body: &str) -> (String, Recorder) {
    let r = Recorder { seen: Default::default(), answer: Arc::new(Mutex::new((status, body.to_string()))) };
    let app = axum::Router::new().fallback(record).with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), r)
}

fn function(base: &str) -> InvokeTelephonyIntegrationApi {
    InvokeTelephonyIntegrationApi::with_clock(
        TelephonyApiConfig {
            org_id: "00DVX0000000001AAA".into(),
            call_center_api_name: "DemoCallCenter".into(),
            audience: "https://scrt.salesforce.com".into(),
            base_url: format!("{base}/telephony/v1/"),
            private_key_pem: keys().private_pem.clone(),
            provider_name: "amazon-connect".into(),
        },
        Arc::new(ManualClock::new(1_736_960_400_000)),
    )
    .unwrap()
}

fn event(method: &str) -> Value {
    json!({"Details": {"ContactData": {
        "Attributes": {}, "ContactId": "contact-1",
        "CustomerEndpoint": {"Address": "+14155550123", "Type": "TELEPHONE_NUMBER"},
        "SystemEndpoint": {"Address": "+15550100100", "Type": "TELEPHONE_NUMBER"}},
        "Parameters": {"methodName": method}}, "Name": "ContactFlowEvent"})
}

#[tokio::test]
async fn create_voice_call_signs_a_fresh_token_and_returns_the_body() {
    let (base, rec) = recorder(200, r#"{"voiceCallId":"0LQVX0000000001","errors":[]}"#).await;
    let f = function(&base);
    assert_eq!(f.name(), "InvokeTelephonyIntegrationApiFunction");
    let out = f.invoke(event("createVoiceCall")).await.unwrap();
    assert_eq!(out, json!({"voiceCallId": "0LQVX0000000001", "errors": "[]"}));
    f.invoke(event("createVoiceCall")).await.unwrap();

    let seen = rec.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let s = &seen[0];
    assert_eq!((s.method.as_str(), s.path.as_str()), ("POST", "/telephony/v1/voiceCalls"));
    assert_eq!(s.headers["content-type"], "application/json");
    assert_eq!(s.headers["telephony-provider-name"], "amazon-connect");
    let body: Value = serde_json::from_str(&s.body).unwrap();
    assert_eq!(body["vendorCallKey"], "contact-1");
    assert_eq!(body["startTime"], "2025-01-15T17:00:00.000Z");

    let mut jtis = Vec::new();
    for s in &seen {
        let token = s.headers["authorization"].to_str().unwrap().strip_prefix("Bearer ").unwrap();
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(keys().public_pem.as_bytes()).unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.set_audience(&["https://scrt.salesforce.com"]);
        v.set_issuer(&["00DVX0000000001AAA"]);
        let claims = jsonwebtoken::decode::<Value>(token, &key, &v).unwrap().claims;
        assert_eq!(claims["sub"], "DemoCallCenter");
        let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
        assert_eq!(lifetime, 300);
        jtis.push(claims["jti"].as_str().unwrap().to_string());
    }
    assert_ne!(jtis[0], jtis[1], "every call signs a fresh token");
}

#[tokio::test]
async fn api_errors_fail_the_invocation() {
    for status in [429, 400, 500, 401] {
        let (base, _rec) =
            recorder(status, r#"{"errorCode":"SCV_LIMITS_ERROR","message":"SCV_LIMITS_ERROR: calls"}"#).await;
        let err = function(&base).invoke(event("createVoiceCall")).await.unwrap_err();
        let FunctionError::Failed { message, .. } = &err else { panic!("{err:?}") };
        assert!(message.contains(&format!("HTTP {status}")), "{message}");
    }
    // Unreachable: an error too.
    let err = function("http://127.0.0.1:9").invoke(event("createVoiceCall")).await.unwrap_err();
    assert!(err.to_string().contains("cannot reach"), "{err}");
}

#[tokio::test]
async fn omni_flow_nulls_become_empty_strings_and_routing_bodies_are_null() {
    let (base, rec) =
        recorder(200, r#"{"agent":null,"queue":"arn:aws:connect:x:1:instance/i/queue/q"}"#).await;
    let f = function(&base);
    let out = f.invoke(event("executeOmniFlow")).await.unwrap();
    assert_eq!(out, json!({"agent": "", "queue": "arn:aws:connect:x:1:instance/i/queue/q"}));
    f.invoke(event("cancelOmniFlowExecution")).await.unwrap();
    let seen = rec.seen.lock().unwrap().clone();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("PATCH", "/telephony/v1/voiceCalls/contact-1/omniFlow")
    );
    assert_eq!(
        (seen[1].method.as_str(), seen[1].path.as_str()),
        ("PATCH", "/telephony/v1/voiceCalls/contact-1/clearRouting")
    );
    assert_eq!(seen[1].body, "null");
    assert!(!seen[1].headers.contains_key("telephony-provider-name"));
}

#[tokio::test]
async fn send_message_reports_errors_in_its_answer() {
    let (base, _rec) = recorder(409, r#"{"errorCode":"INVALID_STATE","message":"on hold"}"#).await;
    let out = function(&base).invoke(event("sendMessage")).await.unwrap();
    assert_eq!(out, json!({"result": "Error"}));
}

#[tokio::test]
async fn warm_up_answers_without_calling_the_api() {
    let (base, rec) = recorder(500, "{}").await;
    let out = function(&base)
        .invoke(json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}))
        .await
        .unwrap();
    assert_eq!(out, json!({"statusCode": 200, "message": "Keep Lambda Warm"}));
    assert!(rec.seen.lock().unwrap().is_empty());
}

#[test]
fn a_bad_private_key_is_refused_and_never_printed() {
    let config = TelephonyApiConfig {
        org_id: "00D".into(),
        call_center_api_name: "CC".into(),
        audience: "a".into(),
        base_url: "http://x".into(),
        private_key_pem: "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n".into(),
        provider_name: "p".into(),
    };
    assert!(!format!("{config:?}").contains("not a key"));
    assert!(InvokeTelephonyIntegrationApi::new(config).is_err());
}

#[tokio::test]
async fn external_functions_receive_the_event_and_answer_json() {
    let (base, rec) = recorder(200, r#"{"customerName":"Ada"}"#).await;
    let f = HttpFunction::new("Lookup", format!("{base}/lookup"));
    let e = event("anything");
    assert_eq!(f.invoke(e.clone()).await.unwrap(), json!({"customerName": "Ada"}));
    let seen = rec.seen.lock().unwrap().clone();
    assert_eq!((seen[0].method.as_str(), seen[0].path.as_str()), ("POST", "/lookup"));
    assert_eq!(serde_json::from_str::<Value>(&seen[0].body).unwrap(), e);

    let (base, _) = recorder(500, r#"{"errorType":"LookupError","errorMessage":"no such customer"}"#).await;
    let err = HttpFunction::new("Lookup", base).invoke(event("x")).await.unwrap_err();
    assert_eq!(
        err,
        FunctionError::Failed { error_type: "LookupError".into(), message: "no such customer".into() }
    );

    let (base, _) = recorder(502, "bad gateway").await;
    let err = HttpFunction::new("Lookup", base).invoke(event("x")).await.unwrap_err();
    assert!(err.to_string().contains("HTTP 502"), "{err}");

    let (base, _) = recorder(200, "not json").await;
    let err = HttpFunction::new("Lookup", base).invoke(event("x")).await.unwrap_err();
    assert!(err.to_string().contains("not JSON"), "{err}");
}
