//! The committed OpenAPI document matches the code, and the server serves it.

use std::path::PathBuf;

use reqwest::Method;

use crate::harness::{Backend, TestServer};

#[test]
fn committed_document_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let current = voxbridge_server::openapi::document();
    if std::env::var("UPDATE_OPENAPI").as_deref() == Ok("1") {
        std::fs::write(&path, format!("{current}\n")).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed.trim_end() == current.trim_end(),
        "docs/openapi.json is out of date; regenerate it with `UPDATE_OPENAPI=1 cargo test -p voxbridge-server openapi`"
    );
}

#[tokio::test]
async fn served_document_lists_every_endpoint() {
    let s = TestServer::start(Backend::Sqlite).await;
    let (status, doc) = s.raw(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/telephony/v1/voiceCalls",
        "/telephony/v1/voiceCalls/{callId}",
        "/telephony/v1/voiceCalls/messages",
        "/telephony/v1/voiceCalls/{vendorCallKey}/messages",
        "/telephony/v1/voiceCalls/{callId}/omniFlow",
        "/telephony/v1/voiceCalls/{vendorCallKey}/realtimeConversationEvents",
        "/telephony/v1/voiceCalls/{vendorCallKey}/postConversationEvents",
        "/telephony/v1/voiceCalls/{callId}/reroute",
        "/telephony/v1/voiceCalls/{callId}/clearRouting",
        "/telephony/v1/voiceCalls/{vendorCallKey}/callback",
        "/services/oauth2/token",
        "/services/data",
        "/services/data/{version}",
        "/services/data/{version}/sobjects",
        "/services/data/{version}/sobjects/{sobject}",
        "/services/data/{version}/sobjects/{sobject}/describe",
        "/services/data/{version}/sobjects/{sobject}/{id}",
        "/services/data/{version}/sobjects/RealtimeAlertEvent",
        "/services/data/{version}/composite/sobjects",
        "/services/data/{version}/event/{event}",
        "/services/data/{version}/query",
        "/services/data/{version}/queryAll",
        "/services/data/{version}/query/{locator}",
        "/services/data/{version}/search",
        "/services/data/{version}/connect/conversations/upload",
        "/services/data/{version}/connect/conversation/{identifier}/entries",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    let methods = |p: &str| {
        let mut m: Vec<&str> = paths[p].as_object().unwrap().keys().map(String::as_str).collect();
        m.retain(|k| ["get", "post", "patch", "delete"].contains(k));
        m.sort_unstable();
        m
    };
    assert_eq!(methods("/services/data/{version}/sobjects/{sobject}/{id}"), ["delete", "get", "patch"]);
    assert_eq!(methods("/services/data/{version}/connect/conversations/upload"), ["get", "post"]);
    assert_eq!(
        methods("/services/data/{version}/connect/conversation/{identifier}/entries"),
        ["get", "patch"]
    );
    assert!(doc["components"]["securitySchemes"]["session"].is_object());
}
