//! A server on `127.0.0.1:0` over a fresh store with the demo org, plus helpers to sign
//! tokens and send requests.

use std::sync::{Arc, OnceLock};

use rand::rngs::StdRng;
use rand::SeedableRng;
use reqwest::Method;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{json, Value};
use voxbridge_core::setup::{call_center_record, demo_setup, CallCenterKey, DemoSummary};
use voxbridge_core::{KeyPrefix, Record, SfId};
use voxbridge_server::Settings;
use voxbridge_store::Store;

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs an async test body once per backend. PostgreSQL is required unless
/// `VOXBRIDGE_SKIP_POSTGRES=1`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)($crate::harness::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if std::env::var("VOXBRIDGE_SKIP_POSTGRES").as_deref() == Ok("1") {
                    return;
                }
                ($body)($crate::harness::Backend::Postgres).await
            }
        }
    };
}

pub struct KeyPair {
    pub private_pem: String,
    pub public_pem: String,
}

fn keypair(seed: u64) -> KeyPair {
    let mut rng = StdRng::seed_from_u64(seed);
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("rsa key");
    KeyPair {
        private_pem: key.to_pkcs8_pem(LineEnding::LF).expect("pem").to_string(),
        public_pem: key.to_public_key().to_public_key_pem(LineEnding::LF).expect("pem"),
    }
}

/// The demo call center's key pair (generated once per test process).
pub fn main_key() -> &'static KeyPair {
    static K: OnceLock<KeyPair> = OnceLock::new();
    K.get_or_init(|| keypair(1))
}

/// A different key pair, for other tenants and forged tokens.
pub fn other_key() -> &'static KeyPair {
    static K: OnceLock<KeyPair> = OnceLock::new();
    K.get_or_init(|| keypair(2))
}

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    #[allow(dead_code)]
    pub store: Arc<dyn Store>,
    pub demo: DemoSummary,
    /// A second org with its own call center `OtherCallCenter`, signed by `other_key()`.
    pub other_org: SfId,
    _dir: tempfile::TempDir,
}

/// Consumer key of the test connected app and its pre-authorized API user.
pub const CONSUMER_KEY: &str = "3MVG9test.consumer.key";
pub const API_USER: &str = "api@test.voxbridge.local";

pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

async fn open_store(backend: Backend, dir: &std::path::Path) -> Arc<dyn Store> {
    match backend {
        Backend::Sqlite => {
            voxbridge_store::open(&format!("sqlite://{}/t.db", dir.display())).await.expect("sqlite")
        }
        Backend::Postgres => {
            let base = std::env::var("VOXBRIDGE_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let schema = format!("vb_srv_{}", uuid::Uuid::new_v4().simple());
            let sep = if base.contains('?') { '&' } else { '?' };
            voxbridge_store::open(&format!("{base}{sep}schema={schema}")).await.unwrap_or_else(|e| {
                panic!("PostgreSQL is required for these tests ({e}); set VOXBRIDGE_SKIP_POSTGRES=1 to skip")
            })
        }
    }
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        TestServer::start_with(backend, Settings::default()).await
    }

    pub async fn start_with(backend: Backend, settings: Settings) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(backend, dir.path()).await;
        let mut rng = StdRng::seed_from_u64(7);
        let now = now_secs() * 1000;
        let setup = demo_setup(&mut rng, now, &main_key().public_pem);
        let org = setup.summary.org_id.clone();
        let mut records = setup.records;
        // The guide's examples name the call center `MyContactCenter`.
        records.push(call_center_record(
            &mut rng,
            &org,
            "MyContactCenter",
            "My Contact Center",
            &CallCenterKey::PublicKey(main_key().public_pem.clone()),
            true,
            now,
        ));
        // A call center without Unified Routing, in the same org.
        records.push(call_center_record(
            &mut rng,
            &org,
            "LegacyCallCenter",
            "Legacy",
            &CallCenterKey::PublicKey(main_key().public_pem.clone()),
            false,
            now,
        ));
        // A connected app for the CRM API's JWT bearer login, and its API user.
        let mut connected = Record::new(
            SfId::generate(KeyPrefix::ConnectedApp, &mut rng),
            org.clone(),
            "ConnectedApp",
            Some(CONSUMER_KEY.into()),
            now,
        );
        connected.set("Name", "Test Integration");
        connected.set("PublicKey", main_key().public_pem.clone());
        connected.set("PreAuthorizedProfiles", json!(["System Administrator"]));
        records.push(connected);
        let mut api_user = Record::new(
            SfId::generate(KeyPrefix::User, &mut rng),
            org.clone(),
            "User",
            Some(API_USER.into()),
            now,
        );
        api_user.set("Username", API_USER);
        api_user.set("LastName", "Integration");
        api_user.set("Name", "API Integration");
        api_user.set("IsActive", true);
        api_user.set("ProfileName", "System Administrator");
        records.push(api_user);
        // Another tenant.
        let other_org = SfId::generate(KeyPrefix::Organization, &mut rng);
        let mut o = Record::new(other_org.clone(), other_org.clone(), "Organization", None, now);
        o.set("Name", "Other Org");
        records.push(o);
        records.push(call_center_record(
            &mut rng,
            &other_org,
            "OtherCallCenter",
            "Other",
            &CallCenterKey::PublicKey(other_key().public_pem.clone()),
            true,
            now,
        ));
        for r in records {
            store.insert(r).await.unwrap();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = voxbridge_server::router(store.clone(), settings);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TestServer {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            store,
            demo: setup.summary,
            other_org,
            _dir: dir,
        }
    }

    /// A valid token for a call center of the demo org.
    pub fn token(&self, call_center: &str) -> String {
        self.sign(
            &main_key().private_pem,
            json!({
                "iss": self.demo.org_id.as_str(), "sub": call_center, "aud": "https://scrt.salesforce.com",
                "exp": now_secs() + 300, "iat": now_secs(), "jti": uuid::Uuid::new_v4().to_string(),
            }),
        )
    }

    pub fn sign(&self, private_pem: &str, claims: Value) -> String {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key)
            .unwrap()
    }

    /// Sends a request as `DemoCallCenter` with a JSON body (or none).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as("DemoCallCenter", method, path, body).await
    }

    pub async fn call_as(
        &self,
        call_center: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let token = self.token(call_center);
        self.raw(method, path, Some(&token), body.map(|b| ("application/json", b.to_string()))).await
    }

    /// Sends anything: token, content type and body as given.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, String)>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("Telephony-Provider-Name", "Voxbridge Tests");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some((ct, b)) = body {
            req = req.header("Content-Type", ct).body(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// Creates an inbound call and returns its voiceCallId.
    pub async fn create_call(&self, vendor_call_key: &str, start_time: &str) -> String {
        let (status, body) = self
            .call(Method::POST, "/telephony/v1/voiceCalls", Some(json!({
                "callCenterApiName": "DemoCallCenter", "vendorCallKey": vendor_call_key,
                "to": "+15550100100", "from": "+14155550123", "initiationMethod": "Inbound",
                "startTime": start_time, "participants": [{"participantKey": "+14155550123", "type": "END_USER"}],
            })))
            .await;
        assert_eq!(status, 200, "{body}");
        body["voiceCallId"].as_str().unwrap().to_string()
    }

    /// Logs in to the CRM API with the JWT bearer flow and returns the access token.
    pub async fn crm_login(&self) -> String {
        let resp = self.crm_login_with(&self.client).await;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// The API user's JWT bearer login, sent with `client`: the token endpoint's response.
    pub async fn crm_login_with(&self, client: &reqwest::Client) -> reqwest::Response {
        let assertion = self.sign(&main_key().private_pem, json!({
            "iss": CONSUMER_KEY, "sub": API_USER, "aud": "https://login.salesforce.com", "exp": now_secs() + 120}));
        client
            .post(format!("{}/services/oauth2/token", self.base))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .unwrap()
    }

    /// A CRM API request with a bearer access token.
    pub async fn crm(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}/services/data/v62.0{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The admin view of a call: voiceCall, conversation, transcript, ...
    pub async fn inspect(&self, call_id: &str) -> Value {
        let (status, body) = self.call(Method::GET, &format!("/admin/v1/voiceCalls/{call_id}"), None).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// Replaces generated ids (`<prefix>VX0<9 chars>`, optionally 18-char) and the given
/// volatile fields so snapshots are stable across runs and backends.
pub fn redact(v: &Value, volatile: &[&str]) -> Value {
    voxbridge_core::ids::redact_generated_json(v, volatile)
}
