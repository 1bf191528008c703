//! Arbitrary JSON and XML bodies, paths and headers against every endpoint: the answer is
//! never a 5xx, and the server keeps answering.

use proptest::prelude::*;
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{Backend, TestServer};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("END_USER"),
            Just("HUMAN_AGENT"),
            Just("Transfer"),
            Just("Inbound"),
            Just("2024-01-01T00:00:00Z"),
            Just("fz-1"),
            Just("DemoCallCenter"),
            Just("IntelligenceSignal__Sentiment")
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    let keys = prop_oneof![
        Just("callCenterApiName"),
        Just("vendorCallKey"),
        Just("initiationMethod"),
        Just("startTime"),
        Just("endTime"),
        Just("participants"),
        Just("callAttributes"),
        Just("parentVoiceCallId"),
        Just("messages"),
        Just("entries"),
        Just("messageId"),
        Just("senderType"),
        Just("participantId"),
        Just("content"),
        Just("events"),
        Just("type"),
        Just("value"),
        Just("service"),
        Just("dialedNumber"),
        Just("flowInputParameters"),
        Just("isActiveCall"),
        Just("disconnectReason"),
        Just("numberOfHolds"),
        Just("onHold"),
        Just("score"),
        Just("participant"),
    ];
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone().prop_map(str::to_string), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/telephony/v1/voiceCalls"),
    ("PATCH", "/telephony/v1/voiceCalls/fz-1"),
    ("POST", "/telephony/v1/voiceCalls/messages"),
    ("POST", "/telephony/v1/voiceCalls/fz-1/messages"),
    ("PATCH", "/telephony/v1/voiceCalls/fz-1/omniFlow"),
    ("POST", "/telephony/v1/voiceCalls/fz-1/realtimeConversationEvents"),
    ("POST", "/telephony/v1/voiceCalls/fz-1/postConversationEvents"),
    ("POST", "/telephony/v1/voiceCalls/fz-1/reroute"),
    ("PATCH", "/telephony/v1/voiceCalls/fz-1/clearRouting"),
    ("PATCH", "/admin/v1/voiceCalls/fz-1/state"),
];

fn to_xml(v: &Value, name: &str, out: &mut String) {
    match v {
        Value::Object(m) => {
            out.push_str(&format!("<{name}>"));
            for (k, x) in m {
                to_xml(x, k, out);
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::Array(a) => a.iter().for_each(|x| to_xml(x, name, out)),
        Value::String(s) => {
            out.push_str(&format!("<{name}>{}</{name}>", s.replace('&', "&amp;").replace('<', "&lt;")))
        }
        other => out.push_str(&format!("<{name}>{other}</{name}>")),
    }
}

#[test]
fn arbitrary_bodies_never_yield_5xx() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let server = rt.block_on(TestServer::start(Backend::Sqlite));
    rt.block_on(server.create_call("fz-1", "2024-01-01T00:00:00Z"));
    let token = rt.block_on(async { server.sign(&crate::harness::main_key().private_pem, json!({
        "iss": server.demo.org_id.as_str(), "sub": "DemoCallCenter", "exp": crate::harness::now_secs() + 900})) });
    let config = ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(body in arb_json(), raw in prop::collection::vec(any::<u8>(), 0..64), pick in 0usize..ENDPOINTS.len(), kind in 0u8..4)| {
        let (method, path) = ENDPOINTS[pick];
        let method: Method = method.parse().unwrap();
        let payload = match kind {
            0 => ("application/json", body.to_string()),
            1 => { let mut x = String::new(); to_xml(&body, "root", &mut x); ("application/xml", x) }
            2 => ("application/json", String::from_utf8_lossy(&raw).into_owned()),
            _ => ("text/plain", body.to_string()),
        };
        let (status, resp) = rt.block_on(server.raw(method, path, Some(&token), Some(payload)));
        prop_assert!(status < 500, "{path}: {status} {resp}");
    });
    let (status, _) = rt.block_on(server.raw(Method::GET, "/healthz", None, None));
    assert_eq!(status, 200);
}
