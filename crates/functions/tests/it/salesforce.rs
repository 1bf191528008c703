//! The CRM REST API client and InvokeSalesforceRestApiFunction against a real Voxbridge
//! server on `127.0.0.1:0` (SQLite, the demo org, its connected app and API user): login and
//! token caching, every method, placeholder substitution, flattening, errors.

use std::sync::{Arc, OnceLock};

use rand::rngs::StdRng;
use rand::SeedableRng;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{json, Value};
use voxbridge_core::setup::{demo_integration, demo_setup, DemoSummary, IntegrationSummary};
use voxbridge_functions::salesforce::{CrmClient, CrmConfig};
use voxbridge_functions::ManualClock;
use voxbridge_server::Settings;
use voxbridge_store::Store;

/// 2025-01-15T17:00:00.000Z
const NOW: i64 = 1_736_960_400_000;
const AUDIENCE: &str = "https://login.salesforce.com";

struct KeyPair {
    private_pem: String,
    public_pem: String,
}

fn key() -> &'static KeyPair {
    static K: OnceLock<KeyPair> = OnceLock::new();
    K.get_or_init(|| {
        let mut rng = StdRng::seed_from_u64(11);
        let key = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("rsa key");
        KeyPair {
            private_pem: key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
            public_pem: key.to_public_key().to_public_key_pem(LineEnding::LF).unwrap(),
        }
    })
}

struct Server {
    base: String,
    store: Arc<dyn Store>,
    demo: DemoSummary,
    app: IntegrationSummary,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = voxbridge_store::open(&format!("sqlite://{}/t.db", dir.path().display())).await.unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let setup = demo_setup(&mut rng, now, &key().public_pem);
        let integration = demo_integration(&mut rng, &setup.summary.org_id, now, &key().public_pem);
        for r in setup.records.into_iter().chain(integration.records) {
            store.insert(r).await.unwrap();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = voxbridge_server::router(store.clone(), Settings::default());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server {
            base: format!("http://{addr}"),
            store,
            demo: setup.summary,
            app: integration.summary,
            _dir: dir,
        }
    }

    fn config(&self) -> CrmConfig {
        CrmConfig::new(&self.base, &self.app.consumer_key, &self.app.username, AUDIENCE, &key().private_pem)
    }

    fn client(&self) -> (Arc<CrmClient>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(NOW));
        (Arc::new(CrmClient::with_clock(self.config(), clock.clone()).unwrap()), clock)
    }

    /// Ends every CRM session, as an admin revoking them would.
    async fn revoke_sessions(&self) {
        let org = &self.demo.org_id;
        let ops: Vec<_> = self
            .store
            .list(org, "AuthSession")
            .await
            .unwrap()
            .into_iter()
            .map(|r| voxbridge_store::WriteOp::Delete { org: org.clone(), id: r.id })
            .collect();
        self.store.apply(ops).await.unwrap();
    }
}

#[tokio::test]
async fn client_logs_in_once_and_caches_the_token_until_shortly_before_expiry() {
    let server = Server::start().await;
    let (client, clock) = server.client();
    let r = client.query("SELECT Id, Name FROM Group").await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body["totalSize"].as_u64().unwrap() > 0);
    client.get("sobjects").await.unwrap();
    assert_eq!(client.logins(), 1);

    // Two hours assumed (the login answer gives no expiry); five minutes before, a new login.
    clock.advance(2 * 60 * 60 * 1000 - 5 * 60 * 1000 - 1);
    client.get("sobjects").await.unwrap();
    assert_eq!(client.logins(), 1);
    clock.advance(1);
    client.get("sobjects").await.unwrap();
    assert_eq!(client.logins(), 2);
}

#[tokio::test]
async fn client_logs_in_again_once_on_401() {
    let server = Server::start().await;
    let (client, _) = server.client();
    assert_eq!(client.get("sobjects/Case").await.unwrap().status, 200);
    server.revoke_sessions().await;
    let r = client.post("sobjects/Case", &json!({"Subject": "after revoke"})).await.unwrap();
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(client.logins(), 2);
}

#[tokio::test]
async fn client_login_errors_say_why() {
    let server = Server::start().await;
    let mut config = server.config();
    config.username = "nobody@example.com".into();
    let client = CrmClient::new(config).unwrap();
    let e = client.get("sobjects").await.unwrap_err().to_string();
    assert!(e.contains("the CRM login failed") && e.contains("invalid_grant"), "{e}");

    assert!(CrmClient::new(CrmConfig::new(&server.base, "k", "u", AUDIENCE, "not a key")).is_err());

    let mut config = server.config();
    config.base_url = "http://127.0.0.1:9".into();
    let e = CrmClient::new(config).unwrap().get("sobjects").await.unwrap_err().to_string();
    assert!(e.starts_with("cannot reach http://127.0.0.1:9/services/oauth2/token"), "{e}");
}

#[tokio::test]
async fn client_answers_api_errors_with_status_and_body() {
    let server = Server::start().await;
    let (client, _) = server.client();
    let r = client.query("SELECT Nope FROM Case").await.unwrap();
    assert_eq!(r.status, 400);
    assert!(r.error_message().starts_with("INVALID_FIELD"), "{}", r.error_message());
    let r = client.get("/services/data/v62.0/sobjects/Case/500000000000000").await.unwrap();
    assert_eq!(r.status, 404);
    let _: Value = r.body;
}
