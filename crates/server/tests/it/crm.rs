//! The CRM REST API over real HTTP: JWT bearer login, sObject CRUD and describe, SOQL and
//! SOSL, and the platform's error bodies, on both backends.

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::harness::{main_key, now_secs, other_key, Backend, TestServer, API_USER, CONSUMER_KEY};

async fn login_with(s: &TestServer, assertion: &str, grant: &str) -> (u16, Value) {
    let resp = s
        .client
        .post(format!("{}/services/oauth2/token", s.base))
        .form(&[("grant_type", grant), ("assertion", assertion)])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// An HTTP/2 client sends the host as `:authority` and no `Host` header; the login's
/// instance URL is still the address it called, not a default. (The object store's S3
/// backend turns on reqwest's HTTP/2 for the whole workspace, so CRM clients negotiate it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_over_http2_answers_the_called_authority() {
    let s = TestServer::start(Backend::Sqlite).await;
    let client = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let resp = s.crm_login_with(&client).await;
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["instance_url"], s.base.trim_end_matches('/'), "{body}");
    assert!(body["id"].as_str().unwrap().starts_with(&format!("{}/id/", s.base)), "{body}");
}

both_backends!(jwt_bearer_login, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let claims = json!({"iss": CONSUMER_KEY, "sub": API_USER, "aud": "https://login.salesforce.com", "exp": now_secs() + 120});
    let grant = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    let (status, body) = login_with(&s, &s.sign(&main_key().private_pem, claims.clone()), grant).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["access_token"].as_str().unwrap().starts_with(s.demo.org_id.as_str()));
    assert!(body["instance_url"].as_str().unwrap().starts_with("http://127.0.0.1:"));
    assert!(body["id"].as_str().unwrap().contains(&s.demo.org_id.to_18()));

    let mut bad = Vec::new();
    let mut c = claims.clone();
    c["exp"] = json!(now_secs() + 3600);
    bad.push(("exp too far", s.sign(&main_key().private_pem, c), "invalid_grant"));
    let mut c = claims.clone();
    c["exp"] = json!(now_secs() - 5);
    bad.push(("expired", s.sign(&main_key().private_pem, c), "invalid_grant"));
    let mut c = claims.clone();
    c["aud"] = json!("https://evil.example");
    bad.push(("audience", s.sign(&main_key().private_pem, c), "invalid_grant"));
    let mut c = claims.clone();
    c["sub"] = json!("ada@demo.voxbridge.local");
    bad.push(("not pre-authorized", s.sign(&main_key().private_pem, c), "invalid_grant"));
    let mut c = claims.clone();
    c["iss"] = json!("nope");
    bad.push(("unknown app", s.sign(&main_key().private_pem, c), "invalid_client_id"));
    bad.push(("wrong key", s.sign(&other_key().private_pem, claims.clone()), "invalid_grant"));
    for (name, assertion, code) in bad {
        let (status, body) = login_with(&s, &assertion, grant).await;
        assert_eq!((status, body["error"].as_str()), (400, Some(code)), "{name}: {body}");
    }
    let (status, body) = login_with(&s, "x", "password").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unsupported_grant_type")));

    let (status, body) = s.crm("00Dnotatoken", Method::GET, "/sobjects", None).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID", "fields": []}])
    );
});

both_backends!(sobject_crud_and_describe, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let t = s.crm_login().await;
    let (status, body) = s
        .crm(
            &t,
            Method::POST,
            "/sobjects/Contact",
            Some(json!({"FirstName": "Ada", "LastName": "Byron", "Phone": "(415) 555-1234"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let contact = body["id"].as_str().unwrap().to_string();
    assert_eq!(contact.len(), 18);
    assert_eq!(body["success"], true);
    let (status, body) = s
        .crm(
            &t,
            Method::POST,
            "/sobjects/Case",
            Some(json!({"Subject": "Billing question", "ContactId": contact, "Origin": "Phone"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let case = body["id"].as_str().unwrap().to_string();
    let (_, c) = s.crm(&t, Method::GET, &format!("/sobjects/Case/{case}"), None).await;
    assert_eq!(c["CaseNumber"].as_str().unwrap().len(), 8);
    assert_eq!(c["IsClosed"], false);
    assert_eq!(c["attributes"]["type"], "Case");
    let (status, c) =
        s.crm(&t, Method::GET, &format!("/sobjects/Case/{}?fields=Subject", &case[..15]), None).await;
    assert_eq!(status, 200);
    assert_eq!(c.as_object().unwrap().len(), 3, "{c}");
    let (status, _) =
        s.crm(&t, Method::PATCH, &format!("/sobjects/Case/{case}"), Some(json!({"Status": "Closed"}))).await;
    assert_eq!(status, 204);
    let (_, c) = s.crm(&t, Method::GET, &format!("/sobjects/Case/{case}"), None).await;
    assert_eq!(c["IsClosed"], true);

    // Errors in the platform's shape.
    let (status, body) =
        s.crm(&t, Method::POST, "/sobjects/Contact", Some(json!({"FirstName": "No last name"}))).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (400, Some("REQUIRED_FIELD_MISSING")), "{body}");
    assert_eq!(body[0]["fields"], json!(["LastName"]));
    let (status, body) =
        s.crm(&t, Method::POST, "/sobjects/Contact", Some(json!({"LastName": "X", "Nope__c": 1}))).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (400, Some("INVALID_FIELD")));
    let (status, body) =
        s.crm(&t, Method::POST, "/sobjects/Contact", Some(json!({"LastName": "x".repeat(300)}))).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (400, Some("STRING_TOO_LONG")));
    let (status, body) = s.crm(&t, Method::GET, "/sobjects/Case/notanid", None).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (400, Some("MALFORMED_ID")));
    let (status, body) = s.crm(&t, Method::GET, "/sobjects/Nope/describe", None).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (404, Some("NOT_FOUND")));
    let (status, body) =
        s.crm(&t, Method::POST, "/sobjects/Case", Some(json!({"Id": "500VX0000000001"}))).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (400, Some("INVALID_FIELD_FOR_INSERT_UPDATE")));

    let (status, d) = s.crm(&t, Method::GET, "/sobjects/VoiceCall/describe", None).await;
    assert_eq!(status, 200);
    assert_eq!(d["keyPrefix"], "0LQ");
    let names: Vec<&str> =
        d["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    for f in ["VendorCallKey", "CallDisposition", "CustomerHoldDuration", "MyField__c"] {
        assert!(names.contains(&f), "{f} missing from {names:?}");
    }
    let (_, g) = s.crm(&t, Method::GET, "/sobjects", None).await;
    assert!(g["sobjects"].as_array().unwrap().iter().any(|o| o["name"] == "Case"));

    let (status, _) = s.crm(&t, Method::DELETE, &format!("/sobjects/Case/{case}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = s.crm(&t, Method::DELETE, &format!("/sobjects/Case/{case}"), None).await;
    assert_eq!(status, 404);
});

both_backends!(sobject_collections_create_and_update_many_records, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let t = s.crm_login().await;
    let records = json!([
        {"attributes": {"type": "Contact"}, "LastName": "Lovelace"},
        {"attributes": {"type": "Case"}, "Subject": "Refund", "Origin": "Phone"},
        {"attributes": {"type": "Contact"}, "FirstName": "No last name"},
    ]);
    // Each record on its own: the valid ones are written, the invalid one says why.
    let (status, body) =
        s.crm(&t, Method::POST, "/composite/sobjects", Some(json!({"records": records}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["success"], true, "{body}");
    assert_eq!(body[1]["success"], true, "{body}");
    assert_eq!(body[2]["success"], false, "{body}");
    assert_eq!(body[2]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING", "{body}");
    assert_eq!(body[2]["errors"][0]["fields"], json!(["LastName"]));
    let contact = body[0]["id"].as_str().unwrap().to_string();
    let case = body[1]["id"].as_str().unwrap().to_string();
    let (_, c) = s.crm(&t, Method::GET, &format!("/sobjects/Case/{case}"), None).await;
    assert_eq!((c["Subject"].as_str(), c["Status"].as_str()), (Some("Refund"), Some("New")), "{c}");
    assert_eq!(c["CaseNumber"].as_str().unwrap().len(), 8);

    // All or none: one invalid record writes none of them.
    let (_, before) = s.crm(&t, Method::GET, "/query?q=SELECT+Id+FROM+Contact", None).await;
    let (status, body) = s
        .crm(&t, Method::POST, "/composite/sobjects", Some(json!({"allOrNone": true, "records": records})))
        .await;
    assert_eq!(status, 200, "{body}");
    let codes: Vec<&str> =
        body.as_array().unwrap().iter().map(|r| r["errors"][0]["statusCode"].as_str().unwrap()).collect();
    assert_eq!(
        codes,
        ["ALL_OR_NONE_OPERATION_ROLLED_BACK", "ALL_OR_NONE_OPERATION_ROLLED_BACK", "REQUIRED_FIELD_MISSING"]
    );
    let (_, after) = s.crm(&t, Method::GET, "/query?q=SELECT+Id+FROM+Contact", None).await;
    assert_eq!(before["totalSize"], after["totalSize"]);

    // Updates by id; an unknown id and a field the object lacks fail alone.
    let missing = format!("{}AAA", &contact[..12]);
    let updates = json!({"records": [
        {"attributes": {"type": "Case"}, "id": case, "Status": "Closed"},
        {"attributes": {"type": "Contact"}, "id": contact, "Nope__c": 1},
        {"attributes": {"type": "Contact"}, "id": missing, "LastName": "X"},
        {"attributes": {"type": "Contact"}, "id": contact, "FirstName": "Ada"},
    ]});
    let (status, body) = s.crm(&t, Method::PATCH, "/composite/sobjects", Some(updates)).await;
    assert_eq!(status, 200, "{body}");
    let outcome: Vec<(bool, Option<&str>)> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["success"].as_bool().unwrap(), r["errors"][0]["statusCode"].as_str()))
        .collect();
    assert_eq!(
        outcome,
        [(true, None), (false, Some("INVALID_FIELD")), (false, Some("NOT_FOUND")), (true, None)],
        "{body}"
    );
    assert_eq!(body[1]["id"], contact.as_str());
    let (_, c) = s.crm(&t, Method::GET, &format!("/sobjects/Case/{case}"), None).await;
    assert_eq!(c["IsClosed"], true);
    let (_, c) = s.crm(&t, Method::GET, &format!("/sobjects/Contact/{contact}"), None).await;
    assert_eq!((c["FirstName"].as_str(), c["LastName"].as_str()), (Some("Ada"), Some("Lovelace")));

    // Malformed requests are refused whole, in the platform's error shape.
    let too_many: Vec<Value> =
        (0..201).map(|_| json!({"attributes": {"type": "Contact"}, "LastName": "X"})).collect();
    for (method, body, code) in [
        (Method::POST, json!({"records": too_many}), "BATCH_TOO_LARGE"),
        (Method::POST, json!({"records": []}), "JSON_PARSER_ERROR"),
        (Method::POST, json!({"records": [{"LastName": "X"}]}), "JSON_PARSER_ERROR"),
        (
            Method::POST,
            json!({"records": [{"attributes": {"type": "Contact"}, "id": contact}]}),
            "JSON_PARSER_ERROR",
        ),
        (
            Method::PATCH,
            json!({"records": [{"attributes": {"type": "Contact"}, "LastName": "X"}]}),
            "JSON_PARSER_ERROR",
        ),
        (Method::PATCH, json!({"allOrNone": "yes", "records": []}), "JSON_PARSER_ERROR"),
        (Method::POST, json!({}), "REQUIRED_FIELD_MISSING"),
    ] {
        let (status, answer) = s.crm(&t, method, "/composite/sobjects", Some(body.clone())).await;
        assert_eq!((status, answer[0]["errorCode"].as_str()), (400, Some(code)), "{body} → {answer}");
    }
});

both_backends!(soql_and_sosl, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let t = s.crm_login().await;
    let id = s.create_call("crm-q-1", "2024-01-01T00:00:00Z").await;
    s.create_call("crm-q-2", "2024-01-02T00:00:00Z").await;
    // The retry job's query: calls whose CTR fields were never synced.
    let (status, body) = s
        .crm(
            &t,
            Method::GET,
            "/query?q=SELECT+Id,+VendorCallKey+FROM+VoiceCall+WHERE+CustomerHoldDuration+=+null",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalSize"], 2);
    assert_eq!(body["done"], true);
    let (_, body) = s
        .crm(
            &t,
            Method::GET,
            "/query?q=SELECT+Id,+CallType+FROM+VoiceCall+WHERE+VendorCallKey+=+'crm-q-1'",
            None,
        )
        .await;
    assert_eq!(body["totalSize"], 1, "{body}");
    assert_eq!(body["records"][0]["Id"].as_str().unwrap()[..15], id);
    let (_, body) = s.crm(&t, Method::GET, "/query?q=SELECT+COUNT()+FROM+VoiceCall", None).await;
    assert_eq!(body["totalSize"], 2);
    s.crm(
        &t,
        Method::POST,
        "/sobjects/Case",
        Some(json!({"Subject": "Dup", "ContactPhone": "+14155551234"})),
    )
    .await;
    let (status, body) = s
        .crm(
            &t,
            Method::GET,
            "/query?q=SELECT+Id+FROM+Case+WHERE+ContactPhone+=+'%2B14155551234'+AND+IsClosed+=+false",
            None,
        )
        .await;
    assert_eq!((status, body["totalSize"].as_u64()), (200, Some(1)), "{body}");
    let (status, body) = s.crm(&t, Method::GET, "/query?q=SELECT+Id+FROM+VoiceCall+WHERE", None).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (400, Some("MALFORMED_QUERY")), "{body}");
    let (status, body) = s.crm(&t, Method::GET, "/query?q=SELECT+Nope+FROM+VoiceCall", None).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (400, Some("INVALID_FIELD")), "{body}");

    s.crm(
        &t,
        Method::POST,
        "/sobjects/Contact",
        Some(json!({"LastName": "Hopper", "Phone": "(415) 555-0199"})),
    )
    .await;
    let (status, body) = s
        .crm(
            &t,
            Method::GET,
            "/search?q=FIND+%7B4155550199%7D+IN+PHONE+FIELDS+RETURNING+Contact(Id,+LastName)",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["searchRecords"][0]["LastName"], "Hopper", "{body}");
});

both_backends!(query_pages_of_2000, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let t = s.crm_login().await;
    let now = now_secs() * 1000;
    let mut rng = rand::thread_rng();
    let ops = (0..2_100)
        .map(|i| {
            let mut r = voxbridge_core::Record::new(
                voxbridge_core::SfId::generate(voxbridge_core::KeyPrefix::Lead, &mut rng),
                s.demo.org_id.clone(),
                "Lead",
                None,
                now + i,
            );
            r.set("LastName", format!("Lead {i}"));
            r.set("Company", "Acme");
            voxbridge_store::WriteOp::Insert(r)
        })
        .collect();
    s.store.apply(ops).await.unwrap();
    let (_, first) = s.crm(&t, Method::GET, "/query?q=SELECT+Id+FROM+Lead", None).await;
    assert_eq!(first["totalSize"], 2100);
    assert_eq!(first["done"], false);
    assert_eq!(first["records"].as_array().unwrap().len(), 2000);
    let next = first["nextRecordsUrl"].as_str().unwrap().to_string();
    assert!(next.ends_with("-2000"), "{next}");
    let resp = s.client.get(format!("{}{next}", s.base)).bearer_auth(&t).send().await.unwrap();
    let second: Value = resp.json().await.unwrap();
    assert_eq!(second["done"], true);
    assert_eq!(second["records"].as_array().unwrap().len(), 100);
});

both_backends!(transcripts_are_queryable, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let t = s.crm_login().await;
    s.create_call("crm-t-1", "2024-01-01T00:00:00Z").await;
    let (status, _) = s
        .call(Method::POST, "/telephony/v1/voiceCalls/crm-t-1/messages", Some(json!({
            "participantId": "x", "messageId": "e1", "startTime": 1704067201000i64, "endTime": 1704067202000i64,
            "content": "my order is late", "senderType": "END_USER"})))
        .await;
    assert_eq!(status, 200);
    let (status, body) = s
        .crm(
            &t,
            Method::GET,
            "/query?q=SELECT+Message,+ActorType+FROM+ConversationEntry+ORDER+BY+EntryTime",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["records"][0]["Message"], "my order is late");
    assert_eq!(body["records"][0]["ActorType"], "END_USER");
});

// What simple-salesforce sends: `exp` as a string, and `query/`, `search/` and
// `sobjects/{Type}/` with a trailing slash.
both_backends!(client_library_conventions, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let exp = (now_secs() + 180).to_string();
    let claims =
        json!({"iss": CONSUMER_KEY, "sub": API_USER, "aud": "https://login.salesforce.com", "exp": exp});
    let grant = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    let (status, body) = login_with(&s, &s.sign(&main_key().private_pem, claims), grant).await;
    assert_eq!(status, 200, "{body}");
    let t = body["access_token"].as_str().unwrap().to_string();
    let claims =
        json!({"iss": CONSUMER_KEY, "sub": API_USER, "aud": "https://login.salesforce.com", "exp": "soon"});
    let (status, body) = login_with(&s, &s.sign(&main_key().private_pem, claims), grant).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");

    let (status, body) =
        s.crm(&t, Method::POST, "/sobjects/Contact/", Some(json!({"LastName": "Slash"}))).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = s.crm(&t, Method::GET, "/query/?q=SELECT+Id+FROM+Contact", None).await;
    assert_eq!((status, body["totalSize"].as_u64()), (200, Some(1)), "{body}");
    let url = body["records"][0]["attributes"]["url"].as_str().unwrap();
    assert!(url.starts_with("/services/data/v62.0/sobjects/Contact/"), "{url}");
    let (status, _) = s.crm(&t, Method::GET, "/queryAll/?q=SELECT+Id+FROM+Contact", None).await;
    assert_eq!(status, 200);
    let (status, body) =
        s.crm(&t, Method::GET, "/search/?q=FIND+%7BSlash%7D+RETURNING+Contact(Id)", None).await;
    assert_eq!((status, body["searchRecords"].as_array().map(Vec::len)), (200, Some(1)), "{body}");
    let (status, body) = s.crm(&t, Method::GET, "/sobjects/Contact/", None).await;
    assert_eq!((status, body["objectDescribe"]["name"].as_str()), (200, Some("Contact")), "{body}");
    let (status, _) = s.crm(&t, Method::GET, "/sobjects/", None).await;
    assert_eq!(status, 200);
    let (status, body) = s.crm(&t, Method::GET, "/", None).await;
    assert_eq!((status, body["query"].as_str()), (200, Some("/services/data/v62.0/query")), "{body}");

    // Unknown resources and methods answer in the platform's error shape, which clients index.
    let (status, body) = s.crm(&t, Method::GET, "/limits/", None).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (404, Some("NOT_FOUND")), "{body}");
    let (status, body) = s.crm(&t, Method::PUT, "/sobjects/Contact/", None).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (405, Some("METHOD_NOT_ALLOWED")), "{body}");
});

both_backends!(platform_events_replay_and_live, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let t = s.crm_login().await;
    let alert = |name: &str| {
        json!({"Name": name, "Description": "Calls are failing", "Severity": "critical", "Source": "AWS CloudWatch",
            "EventDateTime": "2024-05-01T10:00:00Z", "Payload": "{\"AlarmName\":\"x\"}"})
    };
    let (status, body) = s.crm(&t, Method::POST, "/sobjects/RealtimeAlertEvent", Some(alert("first"))).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["id"].as_str().unwrap().starts_with("e00"));
    let (status, body) = s
        .crm(&t, Method::POST, "/sobjects/RealtimeAlertEvent", Some(json!({"Name": "x", "Severity": "Loud"})))
        .await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (400, Some("INVALID_FIELD_VALUE")), "{body}");
    let (status, body) =
        s.crm(&t, Method::POST, "/sobjects/RealtimeAlertEvent", Some(json!({"Name": "x"}))).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (400, Some("REQUIRED_FIELD_MISSING")), "{body}");

    // A subscriber resuming from the start gets the stored event, then live ones.
    let mut resp = s
        .client
        .get(format!("{}/services/data/v62.0/event/RealtimeAlertEvent?replayId=-2", s.base))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut seen = String::new();
    while !seen.contains("\"first\"") {
        seen.push_str(&String::from_utf8_lossy(&resp.chunk().await.unwrap().unwrap()));
    }
    assert!(seen.contains("\"replayId\":1"), "{seen}");
    assert!(seen.contains("\"Severity\":\"Critical\""), "{seen}");
    let (status, _) = s.crm(&t, Method::POST, "/sobjects/RealtimeAlertEvent", Some(alert("second"))).await;
    assert_eq!(status, 201);
    while !seen.contains("\"second\"") {
        seen.push_str(&String::from_utf8_lossy(&resp.chunk().await.unwrap().unwrap()));
    }
    assert!(seen.contains("\"replayId\":2"), "{seen}");
    // Resuming after replay id 1 skips the first.
    let mut resp = s
        .client
        .get(format!("{}/services/data/v62.0/event/RealtimeAlertEvent?replayId=1", s.base))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let mut again = String::new();
    while !again.contains("\"second\"") {
        again.push_str(&String::from_utf8_lossy(&resp.chunk().await.unwrap().unwrap()));
    }
    assert!(!again.contains("\"first\""), "{again}");
});

/// A multipart/form-data body with one part per (name, content).
fn multipart(parts: &[(&str, String)]) -> (String, String) {
    let boundary = "vbBoundary7MA4YWxkTrZu0gW";
    let mut body = String::new();
    for (name, content) in parts {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.json\"\r\nContent-Type: application/octet-stream\r\n\r\n{content}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

both_backends!(conversation_upload_status_and_entries, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let t = s.crm_login().await;
    s.create_call("up-1", "2024-01-01T00:00:00Z").await;
    s.create_call("up-open", "2024-01-01T00:00:00Z").await;
    let (status, _) = s
        .call(
            Method::PATCH,
            "/telephony/v1/voiceCalls/up-1",
            Some(json!({"endTime": "2024-01-01T00:10:00Z"})),
        )
        .await;
    assert_eq!(status, 200);
    let entry = |id: &str, at: i64, role: &str, subject: &str, text: &str| {
        json!({"type": "conversationEntry", "payload": {"conversationId": "up-1", "id": id, "clientSentTimestamp": at,
            "clientDuration": 1500, "messageText": text, "sender": {"appType": "TELEPHONY_INTEGRATION", "subject": subject, "role": role}}})
        .to_string()
    };
    // Pretty-printed objects one after another, as in the guide.
    let good = format!(
        "{}\n{}\n{}",
        serde_json::to_string_pretty(&json!({"type": "conversation", "payload": {"conversationId": "up-1"}}))
            .unwrap(),
        entry("1", 1704067260000, "AGENT", "005VX0000000001", "Hello, how can I help you?"),
        entry("2", 1704067270000, "END_USER", "+14155550100", "I want to return this merchandise.")
    );
    let upload = |parts: Vec<(&'static str, String)>| {
        let (ct, body) = multipart(&parts);
        let (client, base, t) = (s.client.clone(), s.base.clone(), t.clone());
        async move {
            let resp = client
                .post(format!("{base}/services/data/v62.0/connect/conversations/upload"))
                .bearer_auth(&t)
                .header("Content-Type", ct)
                .body(body)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = upload(vec![("up-1", good)]).await;
    assert_eq!(status, 201, "{body}");
    let r = &body["conversationBulkUploadsResults"][0];
    assert_eq!((r["status"].as_str(), r["conversationIdentifier"].as_str()), (Some("SUCCESS"), Some("up-1")));
    let ok_id = r["uploadId"].as_str().unwrap().to_string();

    // Out-of-range timestamps fail; an open conversation refuses uploads.
    let bad = entry("3", 1893456000000, "AGENT", "005VX0000000001", "from the future");
    let (_, body) =
        upload(vec![("up-1", bad), ("up-open", entry("9", 1704067260000, "AGENT", "005VX0000000001", "x"))])
            .await;
    let results = body["conversationBulkUploadsResults"].as_array().unwrap();
    assert_eq!(results[0]["status"], "FAILED");
    assert_eq!(results[1]["errorDetail"], "only closed conversations accept uploads");
    let failed_id = results[0]["uploadId"].as_str().unwrap().to_string();

    let (status, body) =
        s.crm(&t, Method::GET, &format!("/connect/conversations/upload?uploadId={ok_id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["conversationBulkUploadsResults"][0]["status"], "SUCCESS", "{body}");
    let (_, body) = s
        .crm(&t, Method::GET, &format!("/connect/conversations/upload?uploadId={ok_id},{failed_id}"), None)
        .await;
    let st = &body["conversationBulkUploadStatuses"];
    assert_eq!(st[1]["status"], "FAILED", "{body}");
    assert_eq!(st[1]["failedEntryIds"], json!(["3"]));
    assert_eq!(st[1]["errorDetail"], "Failed to process any conversation entries.");
    assert_eq!(st[0]["successEntryCount"], 2);

    let (status, body) = s.crm(&t, Method::GET, "/connect/conversation/up-1/entries", None).await;
    assert_eq!(status, 200, "{body}");
    let e = body["conversationEntries"].as_array().unwrap();
    assert_eq!(e.len(), 2);
    assert_eq!(e[1]["sender"]["subject"], "up-1END_USER", "the end user's number is not stored");
    assert_eq!(e[0]["sender"]["role"], "Agent");
});

both_backends!(conversation_entries_can_be_redacted, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let t = s.crm_login().await;
    s.create_call("red-1", "2024-01-01T00:00:00Z").await;
    let (status, _) = s
        .call(Method::POST, "/telephony/v1/voiceCalls/red-1/messages", Some(json!({
            "participantId": "x", "messageId": "m1", "startTime": 1704067201000i64, "endTime": 1704067202000i64,
            "content": "my card is 4111 1111 1111 1111", "senderType": "END_USER"})))
        .await;
    assert_eq!(status, 200);
    let (status, body) = s
        .crm(&t, Method::PATCH, "/connect/conversation/red-1/entries", Some(json!({"conversationEntries": [
            {"identifier": "m1", "messageText": "my card is [redacted]"}, {"identifier": "nope", "messageText": "x"}]})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["conversationEntries"],
        json!([{"identifier": "m1", "success": true}, {"identifier": "nope", "success": false}])
    );
    let (_, body) = s.crm(&t, Method::GET, "/connect/conversation/red-1/entries", None).await;
    assert_eq!(body["conversationEntries"][0]["messageText"], "my card is [redacted]");
    let (status, body) = s
        .crm(
            &t,
            Method::PATCH,
            "/connect/conversation/red-1/entries",
            Some(json!({"conversationEntries": []})),
        )
        .await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (400, Some("REQUIRED_FIELD_MISSING")));
});

both_backends!(case_numbers_count_up, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let t = s.crm_login().await;
    let mut numbers = Vec::new();
    for i in 0..3 {
        let (_, body) =
            s.crm(&t, Method::POST, "/sobjects/Case", Some(json!({"Subject": format!("case {i}")}))).await;
        let (_, case) =
            s.crm(&t, Method::GET, &format!("/sobjects/Case/{}", body["id"].as_str().unwrap()), None).await;
        numbers.push(case["CaseNumber"].as_str().unwrap().parse::<u64>().unwrap());
    }
    assert_eq!(numbers[1], numbers[0] + 1);
    assert_eq!(numbers[2], numbers[1] + 1);
});
