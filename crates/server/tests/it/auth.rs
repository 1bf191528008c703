//! Token verification: every way a token can be wrong is refused with 401 and a message
//! that says what is wrong; tenants never see each other's calls.

use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::harness::{main_key, now_secs, other_key, Backend, TestServer};

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn claims(s: &TestServer) -> Value {
    json!({"iss": s.demo.org_id.as_str(), "sub": "DemoCallCenter", "aud": "https://scrt.salesforce.com", "exp": now_secs() + 300})
}

async fn status_with(s: &TestServer, token: &str) -> (u16, Value) {
    s.raw(Method::PATCH, "/telephony/v1/voiceCalls/nope/clearRouting", Some(token), None).await
}

both_backends!(bad_tokens_are_refused, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let good = s.sign(&main_key().private_pem, claims(&s));
    // A valid token reaches the handler (404: no such call).
    assert_eq!(status_with(&s, &good).await.0, 404);

    let mut cases: Vec<(&str, String, &str)> = Vec::new();
    let mut c = claims(&s);
    c["exp"] = json!(now_secs() - 10);
    cases.push(("expired", s.sign(&main_key().private_pem, c), "TOKEN_EXPIRED"));
    let mut c = claims(&s);
    c["exp"] = json!(now_secs() + 3600);
    cases.push(("too long", s.sign(&main_key().private_pem, c), "TOKEN_EXPIRED"));
    let mut c = claims(&s);
    c.as_object_mut().unwrap().remove("exp");
    cases.push(("missing exp", s.sign(&main_key().private_pem, c), "TOKEN_EXPIRED"));
    let mut c = claims(&s);
    c["iss"] = json!(s.other_org.as_str());
    cases.push(("wrong iss", s.sign(&main_key().private_pem, c), "INVALID_TOKEN"));
    let mut c = claims(&s);
    c["iss"] = json!("not-an-org");
    cases.push(("malformed iss", s.sign(&main_key().private_pem, c), "INVALID_TOKEN"));
    let mut c = claims(&s);
    c["sub"] = json!("NoSuchCallCenter");
    cases.push(("wrong sub", s.sign(&main_key().private_pem, c), "INVALID_TOKEN"));
    let mut c = claims(&s);
    c["aud"] = json!("https://evil.example");
    cases.push(("wrong aud", s.sign(&main_key().private_pem, c), "INVALID_TOKEN"));
    cases.push(("signed by another key", s.sign(&other_key().private_pem, claims(&s)), "INVALID_TOKEN"));
    // alg none: unsigned.
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims(&s)));
    cases.push(("alg none", none, "INVALID_TOKEN"));
    // HS256 signed with the public key as the HMAC secret (algorithm confusion).
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(&s),
        &jsonwebtoken::EncodingKey::from_secret(main_key().public_pem.as_bytes()),
    )
    .unwrap();
    cases.push(("HS256 with public key", hs, "INVALID_TOKEN"));
    // Tampered claims with the original signature.
    let parts: Vec<&str> = good.split('.').collect();
    let mut c = claims(&s);
    c["sub"] = json!("MyContactCenter");
    cases.push(("tampered", format!("{}.{}.{}", parts[0], b64(&c), parts[2]), "INVALID_TOKEN"));
    cases.push(("garbage", "abc.def".to_string(), "INVALID_TOKEN"));

    for (name, token, code) in cases {
        let (status, body) = status_with(&s, &token).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(body["errorCode"], code, "{name}: {body}");
        assert!(!body["message"].as_str().unwrap().is_empty(), "{name}");
    }
    let (status, body) = s.raw(Method::PATCH, "/telephony/v1/voiceCalls/x/clearRouting", None, None).await;
    assert_eq!((status, body["errorCode"].as_str()), (401, Some("INVALID_TOKEN")));
});

both_backends!(jti_replay_is_refused, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let mut c = claims(&s);
    c["jti"] = json!("once-only");
    let t = s.sign(&main_key().private_pem, c);
    assert_eq!(status_with(&s, &t).await.0, 404);
    let (status, body) = status_with(&s, &t).await;
    assert_eq!((status, body["errorCode"].as_str()), (401, Some("TOKEN_REPLAYED")));
    // Without jti a token may be reused until it expires.
    let t = s.sign(&main_key().private_pem, claims(&s));
    assert_eq!(status_with(&s, &t).await.0, 404);
    assert_eq!(status_with(&s, &t).await.0, 404);
});

both_backends!(strict_audience, |backend: Backend| async move {
    let settings = voxbridge_server::Settings { require_audience: true, ..Default::default() };
    let s = TestServer::start_with(backend, settings).await;
    let mut c = claims(&s);
    c.as_object_mut().unwrap().remove("aud");
    let (status, body) = status_with(&s, &s.sign(&main_key().private_pem, c)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(status_with(&s, &s.sign(&main_key().private_pem, claims(&s))).await.0, 404);
});

both_backends!(tenants_are_isolated, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let id = s.create_call("tenant-call-1", "2024-01-01T00:00:00Z").await;
    // Another call center of the same org: forbidden.
    let (status, body) =
        s.call_as("MyContactCenter", Method::GET, &format!("/admin/v1/voiceCalls/{id}"), None).await;
    assert_eq!((status, body["errorCode"].as_str()), (403, Some("FORBIDDEN")), "{body}");
    let (status, _) = s
        .call_as(
            "MyContactCenter",
            Method::PATCH,
            "/telephony/v1/voiceCalls/tenant-call-1",
            Some(json!({"isActiveCall": true})),
        )
        .await;
    // By vendorCallKey, the other call center sees a call of the first: forbidden, not overwritten.
    assert_eq!(status, 403);
    // Another org: its token cannot see the call at all.
    let other = s.sign(
        &other_key().private_pem,
        json!({"iss": s.other_org.as_str(), "sub": "OtherCallCenter", "exp": now_secs() + 60}),
    );
    let (status, _) = s.raw(Method::GET, &format!("/admin/v1/voiceCalls/{id}"), Some(&other), None).await;
    assert_eq!(status, 404);
    let (status, _) = s
        .raw(Method::POST, "/telephony/v1/voiceCalls/tenant-call-1/messages", Some(&other), Some(("application/json", json!({
            "participantId": "x", "messageId": "m1", "startTime": 1704067200000i64, "endTime": 1704067200001i64,
            "content": "hi", "senderType": "END_USER"}).to_string())))
        .await;
    assert_eq!(status, 404);
    // A body naming another call center than the token's.
    let (status, body) = s
        .call(
            Method::POST,
            "/telephony/v1/voiceCalls",
            Some(json!({
        "callCenterApiName": "MyContactCenter", "vendorCallKey": "k", "initiationMethod": "Inbound",
        "startTime": "2024-01-01T00:00:00Z", "participants": [{"participantKey": "p", "type": "END_USER"}]})),
        )
        .await;
    assert_eq!((status, body["errorCode"].as_str()), (403, Some("FORBIDDEN")));
    assert!(s.inspect(&id).await["transcript"].as_array().unwrap().is_empty());
});
