//! A real Voxbridge server on `127.0.0.1:0` over SQLite with the demo setup, and a contact
//! center whose InvokeTelephonyIntegrationApiFunction calls it over HTTP with the demo call
//! center's key — the wire contract, as a partner telephony system would use it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rand::rngs::StdRng;
use rand::SeedableRng;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::Value;
use voxbridge_contacts::{register_external_functions, ContactCenter, FlowLibrary};
use voxbridge_core::setup::{demo_setup, DemoSummary};
use voxbridge_functions::telephony::{InvokeTelephonyIntegrationApi, TelephonyApiConfig};
use voxbridge_functions::{FunctionOptions, ManualClock, Registry};
use voxbridge_server::Settings;
use voxbridge_store::Store;

/// Wednesday 2025-01-15 17:00 UTC.
pub const NOW_MS: i64 = 1_736_960_400_000;
pub const OMNI_BASIC: &str = "b1c37cdd-aa53-4dd1-899d-3021d7151b2b";
pub const CALLBACK: &str = "584a546b-db99-4665-8c58-5b3312fbae09";
pub const TRANSCRIPTION: &str = "de866a57-37e2-492f-bb49-70fe23f2bf7f";
pub const BASIC_QUEUE_ID: &str = "d56943a9-7293-4220-a60d-99500d362f12";
pub const CONTACT_ID: &str = "c0ffee00-0000-4000-8000-000000000001";
pub const CALLER: &str = "+14155550123";

pub struct KeyPair {
    pub private_pem: String,
    pub public_pem: String,
}

pub fn key() -> &'static KeyPair {
    static K: OnceLock<KeyPair> = OnceLock::new();
    K.get_or_init(|| {
        let mut rng = StdRng::seed_from_u64(1);
        let key = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("rsa key");
        KeyPair {
            private_pem: key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
            public_pem: key.to_public_key().to_public_key_pem(LineEnding::LF).unwrap(),
        }
    })
}

/// The Salesforce sample flows (verbatim copies of the shared fixtures, kept in the repository
/// with their license note so the tests run on a fresh checkout).
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../flows/tests/data/flows"))
}

pub struct TestServer {
    pub base: String,
    #[allow(dead_code)]
    pub store: Arc<dyn Store>,
    pub demo: DemoSummary,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start(settings: Settings) -> TestServer {
        TestServer::start_with(settings, |_, router| router).await
    }

    /// Starts the server with `layer` applied to its router; the closure gets the demo
    /// summary and the server's base URL (known before it serves).
    pub async fn start_with(
        settings: Settings,
        layer: impl FnOnce(&TestServer, axum::Router) -> axum::Router,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let store = voxbridge_store::open(&format!("sqlite://{}/t.db", dir.path().display())).await.unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let setup = demo_setup(&mut rng, NOW_MS, &key().public_pem);
        for r in setup.records {
            store.insert(r).await.unwrap();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = TestServer {
            base: format!("http://{addr}"),
            store: store.clone(),
            demo: setup.summary,
            client: reqwest::Client::new(),
            _dir: dir,
        };
        let app = layer(&server, voxbridge_server::router(store, settings));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        server
    }

    /// A token for the demo call center, signed as the built-in function signs its own.
    pub fn token(&self) -> String {
        self.telephony_function(Arc::new(ManualClock::new(NOW_MS))).sign_token().unwrap()
    }

    /// `GET /admin/v1/voiceCalls/{id}`: status and body.
    pub async fn inspect(&self, call: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(format!("{}/admin/v1/voiceCalls/{call}", self.base))
            .bearer_auth(self.token())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The telephony API's built-in function, configured for the demo call center.
    pub fn telephony_function(&self, clock: Arc<ManualClock>) -> InvokeTelephonyIntegrationApi {
        InvokeTelephonyIntegrationApi::with_clock(
            TelephonyApiConfig {
                org_id: self.demo.org_id.to_string(),
                call_center_api_name: "DemoCallCenter".into(),
                audience: "https://scrt.salesforce.com".into(),
                base_url: format!("{}/telephony/v1", self.base),
                private_key_pem: key().private_pem.clone(),
                provider_name: "amazon-connect".into(),
            },
            clock,
        )
        .unwrap()
    }
}

/// A flows directory: the fixture flows, with `flows.toml` naming the subflows' ids, binding
/// the demo number to the inbound sample, and declaring the sample's basic queue and the demo
/// org's queues under their routing-map ARNs. `extra` is appended to flows.toml.
pub fn flows_dir(demo: &DemoSummary, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixture_dir()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    let mut toml = format!(
        r#"
[[flows]]
file = "Sample_SCV_Omni-Channel_Subflow_-_Basic_Routing_with_Case_Creation.json"
id = "{OMNI_BASIC}"

[[flows]]
file = "Sample_SCV_Callback_Subflow.json"
id = "{CALLBACK}"

[[flows]]
file = "Sample_SCV_Transcription_Subflow_with_Contact_Lens.json"
id = "{TRANSCRIPTION}"

[[numbers]]
number = "{}"
flow = "Sample SCV Inbound Flow"

[[queues]]
name = "BasicQueue"
id = "{BASIC_QUEUE_ID}"
"#,
        demo.phone_number
    );
    for q in &demo.queues {
        let id = q.external_id.rsplit('/').next().unwrap();
        toml.push_str(&format!(
            "\n[[queues]]\nname = \"{}\"\nid = \"{id}\"\narn = \"{}\"\n",
            q.developer_name, q.external_id
        ));
    }
    toml.push_str(extra);
    std::fs::write(dir.path().join("flows.toml"), toml).unwrap();
    dir
}

/// The contact center over `flows` with the built-in telephony function (and any external
/// functions flows.toml binds).
pub fn center(server: &TestServer, flows: &Path, clock: Arc<ManualClock>) -> ContactCenter {
    let library = Arc::new(FlowLibrary::load_dir(flows).unwrap());
    let registry = Arc::new(Registry::new());
    registry.register(Arc::new(server.telephony_function(clock.clone())), FunctionOptions::default());
    register_external_functions(&library, &registry);
    ContactCenter::new(library, registry, clock)
}

/// Generated ids (`<prefix>VX0<9 chars>`, optionally 18-char) and the given volatile fields
/// replaced, so snapshots are stable.
pub fn redact(v: &Value, volatile: &[&str]) -> Value {
    voxbridge_core::ids::redact_generated_json(v, volatile)
}
