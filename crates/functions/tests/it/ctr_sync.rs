//! CTRDataSyncFunction's golden cases (copied from the reference Lambda's tests into
//! `tests/data/`): which CTRs are synced, and the CTR → VoiceCall transform, every case as
//! written.

use serde_json::Value;
use voxbridge_functions::ctr_sync::{call_attributes, should_process, transform, FieldMapping};

fn cases(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let file: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"));
    file["cases"].as_array().cloned().unwrap_or_else(|| panic!("{path} has no cases"))
}

#[test]
fn should_process_golden_cases() {
    let cases = cases("scv_ctrDataSync_shouldProcessCtr_cases.json");
    assert_eq!(cases.len(), 12);
    for case in cases {
        let name = case["name"].as_str().unwrap_or_default();
        let expected = case["shouldProcess"].as_bool().unwrap();
        let got = should_process(&case["ctr"]);
        assert_eq!(got.is_ok(), expected, "{name}: {got:?}");
    }
}

#[test]
fn transform_golden_cases() {
    let cases = cases("scv_ctrDataSync_transformCTR_cases.json");
    assert_eq!(cases.len(), 4);
    for case in cases {
        let name = case["name"].as_str().unwrap_or_default();
        let got = if name.starts_with("getCallAttributes") {
            Value::Object(call_attributes(case["input"].as_object().unwrap()))
        } else {
            transform(&case["input"], &FieldMapping::default()).to_json()
        };
        assert_eq!(got, case["expected"], "{name}");
        // The call attributes travel as a string: compare it byte for byte.
        let (got_attrs, want_attrs) =
            (&got["fields"]["callAttributes"], &case["expected"]["fields"]["callAttributes"]);
        assert_eq!(got_attrs.as_str(), want_attrs.as_str(), "{name}");
    }
}

#[test]
fn skip_reasons_name_the_rule() {
    let skip = |ctr: Value| should_process(&ctr).err().map(|r| r.to_string()).unwrap_or_default();
    let ctr = serde_json::json!({"InitiationMethod": "INBOUND", "ContactId": "c", "Attributes": {"NoSync": "true"}});
    assert!(skip(ctr).contains("NoSync"));
    assert!(skip(serde_json::json!({"InitiationMethod": "MONITOR", "ContactId": "c"})).contains("MONITOR"));
    assert!(skip(serde_json::json!({"InitiationMethod": "INBOUND"})).contains("ContactId"));
    assert!(
        should_process(&serde_json::json!({"InitiationMethod": "QUEUE_TRANSFER", "ContactId": "c"})).is_ok()
    );
}
