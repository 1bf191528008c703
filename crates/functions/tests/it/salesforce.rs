//! The CRM REST API client and InvokeSalesforceRestApiFunction against a real Voxbridge
//! server on `127.0.0.1:0` (SQLite, the demo org, its connected app and API user): login and
//! token caching, every method, placeholder substitution, flattening, errors.

use std::sync::{Arc, OnceLock};

use rand::rngs::StdRng;
use rand::SeedableRng;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{json, Value};
use voxbridge_core::setup::{demo_integration, demo_setup, DemoSummary, IntegrationSummary};
use voxbridge_core::{KeyPrefix, Record, SfId};
use voxbridge_functions::salesforce::{
    build_request, flatten, shape_answer, substitute, Body, CrmClient, CrmConfig, CrmResponse, HttpMethod,
    InvokeSalesforceRestApi,
};
use voxbridge_functions::{Function, FunctionError, FunctionOptions, ManualClock, Registry};
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

// ---------------------------------------------------------------------------------------
// The function: requests (sans-IO)
// ---------------------------------------------------------------------------------------

/// A test event of the reference Lambda, as published (tests/data/invokeSfRestApi).
fn fixture(method: &str) -> Value {
    let path = format!("{}/tests/data/invokeSfRestApi/{method}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn event(params: Value) -> Value {
    json!({"Name": "ContactFlowEvent", "Details": {"ContactData": {"ContactId": "c0ffee00-0000-4000-8000-000000000001",
        "Attributes": {}}, "Parameters": params}})
}

fn params(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn fixture_events_build_the_reference_requests() {
    let r = build_request(&fixture("createRecord")).unwrap();
    assert_eq!((r.http_method, r.path.as_str()), (HttpMethod::Post, "sobjects/Account"));
    assert_eq!(r.body, Body::Json(json!({"Name": "TestAccount"})));

    let r = build_request(&fixture("updateRecord")).unwrap();
    assert_eq!((r.http_method, r.path.as_str()), (HttpMethod::Patch, "sobjects/Account/001R0000005T6wDIAS"));
    assert_eq!(r.body, Body::Json(json!({"Name": "TestAccount1"})));

    let r = build_request(&fixture("queryRecord")).unwrap();
    assert_eq!(
        (r.http_method, r.path.as_str()),
        (HttpMethod::Get, "query?q=SELECT%20Id%2C%20Name%20FROM%20Account")
    );
    assert_eq!(r.body, Body::Empty);
}

#[test]
fn every_placeholder_is_substituted_once_and_escaped() {
    let p = params(json!({"methodName": "queryRecord", "phone": "+14155550123", "name": "O'Brien \\ Co",
        "n": 5, "loop": "{phone}"}));
    let soql = "SELECT Id FROM Case WHERE ContactPhone = '{phone}' OR SuppliedPhone = '{phone}' \
                OR SuppliedName = '{name}' OR Subject = '{loop}' OR Subject = '{unknown}' LIMIT {n}";
    assert_eq!(
        substitute(soql, &p),
        "SELECT Id FROM Case WHERE ContactPhone = '+14155550123' OR SuppliedPhone = '+14155550123' \
         OR SuppliedName = 'O\\'Brien \\\\ Co' OR Subject = '{phone}' OR Subject = '{unknown}' LIMIT 5"
    );
    // Unbalanced braces and `{soql}` itself are left alone.
    let p = params(json!({"soql": "x", "a": "1"}));
    assert_eq!(substitute("{soql} {a} {a", &p), "{soql} 1 {a");
    assert_eq!(substitute("}{", &p), "}{");

    let r = build_request(&event(
        json!({"methodName": "queryRecord", "soql": "SELECT Id FROM Contact WHERE Phone = '{phone}'",
        "phone": "+1 415"}),
    ))
    .unwrap();
    assert_eq!(r.path, "query?q=SELECT%20Id%20FROM%20Contact%20WHERE%20Phone%20%3D%20%27%2B1%20415%27");
}

#[test]
fn other_methods_build_their_requests() {
    let r = build_request(&event(
        json!({"methodName": "searchRecord", "sosl": "FIND {Acme} RETURNING Account(Id)"}),
    ))
    .unwrap();
    assert_eq!(r.path, "search?q=FIND%20%7BAcme%7D%20RETURNING%20Account%28Id%29");

    let r = build_request(&event(
        json!({"methodName": "realtimeAlertEvent", "Name": "Alarm", "Severity": "Critical",
        "secretName": "s"}),
    ))
    .unwrap();
    assert_eq!((r.http_method, r.path.as_str()), (HttpMethod::Post, "sobjects/RealtimeAlertEvent"));
    assert_eq!(r.body, Body::Json(json!({"Name": "Alarm", "Severity": "Critical"})));

    let map = json!([["c-1", "{\"type\":\"conversation\"}\n"], ["c-2", "x"], ["c-1", "later"]]).to_string();
    let r = build_request(&event(json!({"methodName": "uploadTranscript", "contactIdsPayloadMap": map})))
        .unwrap();
    assert_eq!(r.path, "connect/conversations/upload");
    let Body::Multipart(parts) = &r.body else { panic!("{:?}", r.body) };
    let names: Vec<(&str, &str)> = parts.iter().map(|p| (p.name.as_str(), p.data.as_str())).collect();
    assert_eq!(names, [("c-2", "x"), ("c-1", "later")]);
    assert!(parts.iter().all(|p| p.filename.as_deref() == Some("transcripts.txt")));
    let (content_type, bytes) = r.body.encode("B0UND").unwrap();
    assert_eq!(content_type, "multipart/form-data; boundary=B0UND");
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with(
        "--B0UND\r\nContent-Disposition: form-data; name=\"c-2\"; filename=\"transcripts.txt\"\r\n"
    ));
    assert!(text.ends_with("later\r\n--B0UND--\r\n"), "{text}");

    for ids in [json!(["u1", "u2"]), json!("u1, u2"), json!("[\"u1\",\"u2\"]")] {
        let r =
            build_request(&event(json!({"methodName": "fetchUploadIdsStatus", "uploadIds": ids}))).unwrap();
        assert_eq!(r.path, "connect/conversations/upload?uploadId=u1%2Cu2");
    }

    let r = build_request(&event(json!({"methodName": "retryCTRSync"}))).unwrap();
    assert_eq!(
        r.path,
        "query?q=SELECT%20Id%2C%20VendorCallKey%20FROM%20VoiceCall%20WHERE%20CustomerHoldDuration%20%3D%20null"
    );
}

#[test]
fn bad_events_are_errors_not_panics() {
    let cases = [
        (json!({}), "no Details.Parameters"),
        (json!({"Details": {"Parameters": "x"}}), "no Details.Parameters"),
        (event(json!({})), "Unsupported method"),
        (event(json!({"methodName": "fetchAgentPhoneNumber"})), "Unsupported method: fetchAgentPhoneNumber"),
        (event(json!({"methodName": "createRecord"})), "`objectApiName` is missing"),
        (event(json!({"methodName": "createRecord", "objectApiName": "../admin"})), "must be an API name"),
        (
            event(json!({"methodName": "updateRecord", "objectApiName": "Case", "recordId": "a/b"})),
            "must be an API name",
        ),
        (event(json!({"methodName": "updateRecord", "objectApiName": "Case"})), "`recordId` is missing"),
        (event(json!({"methodName": "queryRecord", "soql": " "})), "`soql` is missing"),
        (event(json!({"methodName": "searchRecord"})), "`sosl` is missing"),
        (
            event(json!({"methodName": "uploadTranscript", "contactIdsPayloadMap": "{"})),
            "must be a JSON list",
        ),
        (
            event(json!({"methodName": "uploadTranscript", "contactIdsPayloadMap": "[[1]]"})),
            "must be a JSON list",
        ),
        (event(json!({"methodName": "uploadTranscript", "contactIdsPayloadMap": "[]"})), "names no contact"),
        (event(json!({"methodName": "fetchUploadIdsStatus", "uploadIds": " , "})), "`uploadIds` is missing"),
        (event(json!({"methodName": "fetchUploadIdsStatus", "uploadIds": "[1"})), "not a JSON list"),
    ];
    for (e, want) in cases {
        let err = build_request(&e).unwrap_err();
        assert!(err.contains(want), "{e}: {err}");
    }
}

#[test]
fn answers_are_shaped_as_the_reference_and_flattened_for_flows() {
    let req = |m: &str| {
        build_request(&event(json!({"methodName": m, "objectApiName": "Case", "recordId": "500x",
        "soql": "SELECT Id FROM Case", "sosl": "FIND {x}"})))
        .unwrap()
    };
    let ok = |body: Value| CrmResponse { status: 200, body };
    let a = shape_answer(&req("createRecord"), &ok(json!({"id": "500A", "success": true, "errors": []})))
        .unwrap();
    assert_eq!(a, json!({"success": true, "recordId": "500A"}));
    let a = shape_answer(&req("updateRecord"), &CrmResponse { status: 204, body: Value::Null }).unwrap();
    assert_eq!(a, json!({"success": true}));
    let rows = json!({"totalSize": 1, "done": true, "records": [{"attributes": {"type": "Case"}, "Id": "500A",
        "Account": {"attributes": {"type": "Account"}, "Name": "Acme"}, "Contact": null}]});
    let a = shape_answer(&req("queryRecord"), &ok(rows)).unwrap();
    assert_eq!(a, json!({"Id": "500A", "Account": {"Name": "Acme"}, "Contact": null}));
    assert_eq!(flatten(&a), json!({"Id": "500A", "Account.Name": "Acme", "Contact": ""}));
    let a =
        shape_answer(&req("queryRecord"), &ok(json!({"totalSize": 0, "done": true, "records": []}))).unwrap();
    assert_eq!(a, json!({}));
    let a = shape_answer(&req("searchRecord"), &ok(json!({"searchRecords": []}))).unwrap();
    assert_eq!(a, json!({}));

    // Errors: the platform's array, OAuth's object, a 2xx success:false.
    let e = shape_answer(&req("createRecord"), &CrmResponse { status: 400,
        body: json!([{"message": "Required fields are missing: [Name]", "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["Name"]}]) })
        .unwrap_err();
    assert_eq!(
        e,
        "createRecord failed with HTTP 400: REQUIRED_FIELD_MISSING: Required fields are missing: [Name]"
    );
    let e = shape_answer(
        &req("queryRecord"),
        &CrmResponse { status: 401, body: json!({"error": "invalid_grant", "error_description": "expired"}) },
    )
    .unwrap_err();
    assert!(e.ends_with("invalid_grant: expired"), "{e}");
    let e =
        shape_answer(&req("createRecord"), &ok(json!({"success": false, "errors": [{"message": "dup"}]})))
            .unwrap_err();
    assert_eq!(e, "createRecord failed: dup");

    // Flattening: arrays by index, empty containers as JSON text, scalars kept.
    assert_eq!(
        flatten(&json!({"records": [{"Id": "a", "Tags": [], "N": 2, "B": true}], "m": {}, "x": null})),
        json!({"records.0.Id": "a", "records.0.Tags": "[]", "records.0.N": 2, "records.0.B": true, "m": "{}", "x": ""})
    );
    assert_eq!(flatten(&json!("text")), json!({"result": "text"}));
}

// ---------------------------------------------------------------------------------------
// The function against the server
// ---------------------------------------------------------------------------------------

impl Server {
    fn function(&self) -> (InvokeSalesforceRestApi, Arc<CrmClient>) {
        let (client, _) = self.client();
        (InvokeSalesforceRestApi::new(client.clone()), client)
    }

    async fn insert(&self, sobject: &str, prefix: KeyPrefix, key: Option<&str>, fields: Value) -> SfId {
        let id = SfId::generate(prefix, &mut rand::thread_rng());
        self.insert_with_id(sobject, id.clone(), key, fields).await;
        id
    }

    async fn insert_with_id(&self, sobject: &str, id: SfId, key: Option<&str>, fields: Value) {
        let mut r = Record::new(id, self.demo.org_id.clone(), sobject, key.map(str::to_string), NOW);
        for (k, v) in fields.as_object().unwrap() {
            r.set(k, v.clone());
        }
        self.store.insert(r).await.unwrap();
    }
}

async fn invoke(f: &InvokeSalesforceRestApi, params: Value) -> Result<Value, FunctionError> {
    f.invoke(event(params)).await
}

#[tokio::test]
async fn fixture_events_work_as_written() {
    let server = Server::start().await;
    let (f, _) = server.function();
    let created = f.invoke(fixture("createRecord")).await.unwrap();
    assert_eq!(created["success"], true);
    let id = created["recordId"].as_str().unwrap().to_string();
    assert!(id.starts_with("001"), "{created}");

    // The update event names an Account of the reference's org; give ours that id.
    let fixed = SfId::parse("001R0000005T6wDIAS").unwrap();
    server.insert_with_id("Account", fixed, None, json!({"Name": "Before"})).await;
    assert_eq!(f.invoke(fixture("updateRecord")).await.unwrap(), json!({"success": true}));

    let row = f.invoke(fixture("queryRecord")).await.unwrap();
    let names = [row["Name"].as_str().unwrap()];
    assert!(names == ["TestAccount"] || names == ["TestAccount1"], "{row}");
    assert!(row.get("attributes.type").is_none() && row.get("Id").is_some(), "{row}");
    let r = invoke(
        &f,
        json!({"methodName": "queryRecord", "soql": "SELECT Name FROM Account WHERE Id = '{id}'",
        "id": "001R0000005T6wDIAS"}),
    )
    .await
    .unwrap();
    assert_eq!(r, json!({"Name": "TestAccount1"}));
}

#[tokio::test]
async fn create_update_query_and_search_through_the_function() {
    let server = Server::start().await;
    let (f, _) = server.function();
    let account = invoke(
        &f,
        json!({"methodName": "createRecord", "objectApiName": "account", "Name": "Acme Rockets",
        "Phone": "+14155550123"}),
    )
    .await
    .unwrap();
    let account_id = account["recordId"].as_str().unwrap().to_string();
    let case = invoke(
        &f,
        json!({"methodName": "createRecord", "objectApiName": "Case", "Subject": "O'Brien's printer",
        "AccountId": account_id, "ContactPhone": "+14155550123"}),
    )
    .await
    .unwrap();
    let case_id = case["recordId"].as_str().unwrap().to_string();
    assert!(case_id.starts_with("500"));

    // Placeholders from the parameters, one of them with a quote; the related record flattened.
    let soql = "SELECT Id, Subject, Status, Account.Name, Account.Phone FROM Case \
                WHERE ContactPhone = '{phone}' AND Subject = '{subject}'";
    let r = invoke(
        &f,
        json!({"methodName": "queryRecord", "soql": soql, "phone": "+14155550123",
        "subject": "O'Brien's printer"}),
    )
    .await
    .unwrap();
    assert_eq!(
        r,
        json!({"Id": case_id, "Subject": "O'Brien's printer", "Status": "New", "Account.Name": "Acme Rockets",
            "Account.Phone": "+14155550123"})
    );
    // A quote in the input cannot widen the query.
    let r = invoke(
        &f,
        json!({"methodName": "queryRecord", "soql": soql, "phone": "x' OR Subject != '",
        "subject": "y"}),
    )
    .await
    .unwrap();
    assert_eq!(r, json!({}));

    let r = invoke(
        &f,
        json!({"methodName": "updateRecord", "objectApiName": "Case", "recordId": case_id,
        "Status": "Working"}),
    )
    .await
    .unwrap();
    assert_eq!(r, json!({"success": true}));
    let r = invoke(
        &f,
        json!({"methodName": "queryRecord", "soql": "SELECT Status FROM Case WHERE Id = '{recordId}'",
        "recordId": case_id}),
    )
    .await
    .unwrap();
    assert_eq!(r, json!({"Status": "Working"}));

    let r = invoke(
        &f,
        json!({"methodName": "searchRecord",
        "sosl": "FIND {Rockets} IN ALL FIELDS RETURNING Account(Id, Name)"}),
    )
    .await
    .unwrap();
    assert_eq!(r["Id"], json!(account_id));
    assert_eq!(r["Name"], "Acme Rockets");
    assert_eq!(r["attributes.type"], "Account");
    let r = invoke(&f, json!({"methodName": "searchRecord", "sosl": "FIND {Nothing} RETURNING Account(Id)"}))
        .await
        .unwrap();
    assert_eq!(r, json!({}));
}

#[tokio::test]
async fn realtime_alert_event_is_published() {
    let server = Server::start().await;
    let (f, _) = server.function();
    let r = invoke(
        &f,
        json!({"methodName": "realtimeAlertEvent", "Name": "SCV Lambda Errors",
        "Description": "Errors >= 3", "Severity": "Critical", "Source": "Cloudwatch Alarm from account 1",
        "EventDateTime": "2025-01-15T17:00:00.000Z", "Payload": "Threshold crossed"}),
    )
    .await
    .unwrap();
    assert_eq!(r["success"], true, "{r}");
    assert!(r.get("id").is_some(), "{r}");
    // Every member is a scalar (STRING_MAP).
    assert!(r.as_object().unwrap().values().all(|v| !v.is_array() && !v.is_object()), "{r}");
    let missing = invoke(&f, json!({"methodName": "realtimeAlertEvent", "Name": "x"})).await.unwrap_err();
    assert!(missing.to_string().contains("realtimeAlertEvent failed with HTTP 400"), "{missing}");
}

#[tokio::test]
async fn transcripts_are_uploaded_and_their_status_fetched() {
    let server = Server::start().await;
    let (f, _) = server.function();
    let contact = "8c6258f0-66fa-4137-a61f-68311bb6d300";
    server
        .insert(
            "Conversation",
            KeyPrefix::Conversation,
            Some(contact),
            json!({"ConversationIdentifier": contact, "Status": "Closed", "StartTime": "2025-01-15T17:00:00.000Z",
                "EndTime": "2025-01-15T17:10:00.000Z"}),
        )
        .await;
    let entry = |id: &str, at: i64, text: &str| {
        json!({"type": "conversationEntry", "payload": {"conversationId": contact, "id": id, "clientDuration": 1,
            "clientSentTimestamp": at, "messageText": text,
            "sender": {"appType": "TELEPHONY_INTEGRATION", "subject": format!("{contact}END_USER"), "role": "END_USER"}}})
        .to_string()
    };
    let ndjson = [
        json!({"type": "conversation", "payload": {"conversationId": contact}}).to_string(),
        entry("t1", NOW + 1_000, "Hello"),
        entry("t2", NOW + 2_000, "My printer is broken"),
    ]
    .join("\n");
    let map = json!([[contact, ndjson]]).to_string();
    let r = invoke(&f, json!({"methodName": "uploadTranscript", "contactIdsPayloadMap": map})).await.unwrap();
    assert_eq!(r["conversationBulkUploadsResults.0.status"], "SUCCESS", "{r}");
    assert_eq!(r["conversationBulkUploadsResults.0.conversationIdentifier"], contact);
    let upload_id = r["conversationBulkUploadsResults.0.uploadId"].as_str().unwrap().to_string();

    // In process, another function gets the answer unflattened.
    let raw = f
        .answer(&event(json!({"methodName": "fetchUploadIdsStatus", "uploadIds": [upload_id]})))
        .await
        .unwrap();
    assert_eq!(raw["conversationBulkUploadsResults"][0]["status"], "SUCCESS", "{raw}");

    // A conversation that does not exist: the upload is answered, its status says FAILED.
    let map = json!([["no-such-contact", ndjson]]).to_string();
    let r = invoke(&f, json!({"methodName": "uploadTranscript", "contactIdsPayloadMap": map})).await.unwrap();
    assert_eq!(r["conversationBulkUploadsResults.0.status"], "FAILED", "{r}");
    let failed = r["conversationBulkUploadsResults.0.uploadId"].as_str().unwrap().to_string();
    let r = invoke(
        &f,
        json!({"methodName": "fetchUploadIdsStatus", "uploadIds": format!("{upload_id},{failed}")}),
    )
    .await
    .unwrap();
    assert_eq!(r["conversationBulkUploadStatuses.1.status"], "FAILED", "{r}");
    assert_eq!(r["conversationBulkUploadStatuses.0.successEntryCount"], 2, "{r}");

    let e = invoke(&f, json!({"methodName": "fetchUploadIdsStatus", "uploadIds": "unknown-upload"}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("HTTP 404"), "{e}");
}

#[tokio::test]
async fn retry_ctr_sync_finds_the_calls_without_ctr_fields() {
    let server = Server::start().await;
    let (f, _) = server.function();
    let retry = json!({"methodName": "retryCTRSync",
        "soql": "SELECT Id, VendorCallKey FROM VoiceCall WHERE CustomerHoldDuration = null"});
    assert_eq!(invoke(&f, retry.clone()).await.unwrap(), json!({}));

    let synced = json!({"CallType": "Inbound", "CustomerHoldDuration": 12});
    server.insert("VoiceCall", KeyPrefix::VoiceCall, Some("contact-synced"), synced).await;
    let mut missing = Vec::new();
    for key in ["contact-a", "contact-b"] {
        let fields = json!({"CallType": "Inbound", "VendorCallKey": key});
        missing.push(server.insert("VoiceCall", KeyPrefix::VoiceCall, Some(key), fields).await.to_18());
    }
    let r = invoke(&f, retry).await.unwrap();
    assert_eq!(r["totalSize"], 2, "{r}");
    assert_eq!((&r["resynced"], &r["status"]), (&json!(0), &json!("PENDING_RESYNC")));
    let mut found = vec![
        r["records.0.Id"].as_str().unwrap().to_string(),
        r["records.1.Id"].as_str().unwrap().to_string(),
    ];
    found.sort();
    missing.sort();
    assert_eq!(found, missing);
    let keys =
        [r["records.0.VendorCallKey"].as_str().unwrap(), r["records.1.VendorCallKey"].as_str().unwrap()];
    assert!(keys.contains(&"contact-a") && keys.contains(&"contact-b"), "{r}");

    // Without a query: the guide's default.
    let r = invoke(&f, json!({"methodName": "retryCTRSync"})).await.unwrap();
    assert_eq!(r["totalSize"], 2);
}

#[tokio::test]
async fn the_function_logs_in_again_once_on_401() {
    let server = Server::start().await;
    let (f, client) = server.function();
    invoke(&f, json!({"methodName": "queryRecord", "soql": "SELECT Id FROM Account"})).await.unwrap();
    server.revoke_sessions().await;
    let r =
        invoke(&f, json!({"methodName": "createRecord", "objectApiName": "Account", "Name": "After"})).await;
    assert_eq!(r.unwrap()["success"], true);
    assert_eq!(client.logins(), 2);
}

#[tokio::test]
async fn crm_errors_fail_the_invocation_so_the_flow_takes_its_error_branch() {
    let server = Server::start().await;
    let (f, _) = server.function();
    let registry = Registry::new();
    registry.register(Arc::new(f), FunctionOptions::default());
    let arn = "arn:aws:lambda:us-west-2:123456789012:function:HelloContactCenter1-InvokeSalesforceRestApiFunction:active";
    let call = |params: Value| {
        let registry = &registry;
        async move { registry.invoke(arn, event(params), std::time::Duration::from_secs(8)).await }
    };
    let cases = [
        (
            json!({"methodName": "createRecord", "objectApiName": "Nope__c", "Name": "x"}),
            "HTTP 404: NOT_FOUND",
        ),
        (
            json!({"methodName": "createRecord", "objectApiName": "Case", "Bogus__c": "x"}),
            "HTTP 400: INVALID_FIELD",
        ),
        (json!({"methodName": "queryRecord", "soql": "SELECT Nope FROM Account"}), "HTTP 400: INVALID_FIELD"),
        (json!({"methodName": "queryRecord", "soql": "SELEC Id"}), "HTTP 400: MALFORMED_QUERY"),
        (
            json!({"methodName": "updateRecord", "objectApiName": "Account", "recordId": "001000000000000", "Name": "x"}),
            "HTTP 404",
        ),
        (json!({"methodName": "fetchOutboundPhoneNumber"}), "Unsupported method"),
    ];
    for (params, want) in cases {
        let invoked = call(params.clone()).await;
        assert_eq!(invoked.function.as_deref(), Some("InvokeSalesforceRestApiFunction"));
        match invoked.result {
            Err(FunctionError::Failed { error_type, message }) => {
                assert_eq!(error_type, "Error");
                assert!(message.contains(want), "{params}: {message}");
            }
            other => panic!("{params}: {other:?}"),
        }
    }
    assert_eq!(registry.metrics_of("InvokeSalesforceRestApiFunction").map(|m| m.errors), Some(6));

    // A login the server refuses fails the invocation too.
    let mut config = server.config();
    config.consumer_key = "3MVG9unknown".into();
    let f = InvokeSalesforceRestApi::new(Arc::new(CrmClient::new(config).unwrap()));
    let e =
        invoke(&f, json!({"methodName": "queryRecord", "soql": "SELECT Id FROM Account"})).await.unwrap_err();
    assert!(e.to_string().contains("invalid_client_id"), "{e}");

    // The warm-up event is answered without the API.
    let warm = f.invoke(json!({"detail-type": "Scheduled Event", "source": "aws.events"})).await.unwrap();
    assert_eq!(warm, json!({"statusCode": 200, "message": "Keep Lambda Warm"}));
}

#[test]
fn field_service_lookup_checks_the_caller_number() {
    use voxbridge_functions::salesforce::{sfs_caller_phone, sfs_technician_soql};
    let with = |address: Value| json!({"Details": {"ContactData": {"CustomerEndpoint": {"Address": address}}, "Parameters": {}}});
    assert_eq!(sfs_caller_phone(&with(json!("+14155550123"))).as_deref(), Some("+14155550123"));
    assert_eq!(sfs_caller_phone(&with(json!("14155550123"))).as_deref(), Some("14155550123"));
    for bad in
        [json!("anonymous"), json!("+1415"), json!("+1415555' OR '1"), json!("+"), json!(5), json!(null)]
    {
        assert_eq!(sfs_caller_phone(&with(bad.clone())), None, "{bad}");
    }
    assert_eq!(sfs_caller_phone(&json!({})), None);
    let soql = sfs_technician_soql("It's En Route", "+14155550123");
    assert!(soql.contains("ServiceAppointment.Status = 'It\\'s En Route'"), "{soql}");
    assert!(soql.contains("ServiceAppointment.Contact.Phone = '+14155550123'"), "{soql}");

    let r = build_request(&event(json!({"methodName": "SFSPhoneCallFlowQuery"}))).unwrap();
    assert_eq!(r.path, "query?q=SELECT%20ApptAssistantStatus%20FROM%20FieldServiceOrgSettings");
}

fn caller_event(address: Option<&str>) -> Value {
    let mut e = event(json!({"methodName": "SFSPhoneCallFlowQuery"}));
    if let Some(a) = address {
        e["Details"]["ContactData"]["CustomerEndpoint"] = json!({"Address": a, "Type": "TELEPHONE_NUMBER"});
    }
    e
}

#[tokio::test]
async fn field_service_lookup_without_field_service_objects_answers_phone_not_found() {
    let server = Server::start().await;
    let (f, _) = server.function();
    let r = f.invoke(caller_event(None)).await.unwrap();
    assert_eq!(r, json!({"success": true, "statusCode": 200, "status": "ANONYMOUS"}));
    let r = f.invoke(caller_event(Some("+14155550123"))).await.unwrap();
    assert_eq!(r["status"], "PHONE_NOT_FOUND", "{r}");
    // Unreachable: still an answer the flow can branch on.
    let mut config = server.config();
    config.base_url = "http://127.0.0.1:9".into();
    let f = InvokeSalesforceRestApi::new(Arc::new(CrmClient::new(config).unwrap()));
    let r = f.invoke(caller_event(Some("+14155550123"))).await.unwrap();
    assert_eq!(r["status"], "PHONE_NOT_FOUND", "{r}");
}

/// A CRM API with Field Service: the org's "on the way" status is `Dispatched`, and one
/// technician is en route to +14155550123's appointment in that status.
async fn field_service_crm() -> String {
    use axum::extract::Query;
    use axum::routing::{get, post};
    use std::collections::HashMap;
    async fn query(Query(q): Query<HashMap<String, String>>) -> axum::Json<Value> {
        let soql = q.get("q").cloned().unwrap_or_default();
        axum::Json(if soql.contains("FROM FieldServiceOrgSettings") {
            json!({"totalSize": 1, "done": true, "records": [{"ApptAssistantStatus": "Dispatched"}]})
        } else if soql.contains("Status = 'Dispatched'") && soql.contains("Phone = '+14155550123'") {
            json!({"totalSize": 1, "done": true, "records": [{"attributes": {"type": "AssignedResource"},
                "ServiceResource": {"RelatedRecord": {"Phone": "+15550009999"}}}]})
        } else {
            json!({"totalSize": 0, "done": true, "records": []})
        })
    }
    let app = axum::Router::new()
        .route("/services/oauth2/token", post(|| async { axum::Json(json!({"access_token": "00Dx!token"})) }))
        .route("/services/data/v62.0/query", get(query));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn field_service_lookup_finds_the_technician_on_the_way() {
    let base = field_service_crm().await;
    let config = CrmConfig::new(base, "3MVG9k", "api@example.com", AUDIENCE, &key().private_pem);
    let f = InvokeSalesforceRestApi::new(Arc::new(CrmClient::new(config).unwrap()));
    let r = f.invoke(caller_event(Some("+14155550123"))).await.unwrap();
    assert_eq!(
        r,
        json!({"success": true, "statusCode": 200, "status": "TRANSFER_CALL", "engPhone": "+15550009999"})
    );
    let r = f.invoke(caller_event(Some("+14155550100"))).await.unwrap();
    assert_eq!(r["status"], "PHONE_NOT_FOUND");
}
