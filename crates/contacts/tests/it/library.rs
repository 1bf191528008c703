//! The flow library: loading a directory, lookups, numbers, validation with the function
//! registry.

use std::sync::Arc;

use voxbridge_contacts::{validate_flow, FlowLibrary};
use voxbridge_flows::Severity;
use voxbridge_functions::external::HttpFunction;
use voxbridge_functions::{FunctionOptions, Registry};

use crate::harness::{fixture_dir, CALLBACK, OMNI_BASIC};

fn registry() -> Registry {
    let r = Registry::new();
    // Validation only needs the names; an external stand-in for each built-in will do.
    for name in ["InvokeTelephonyIntegrationApiFunction", "InvokeSalesforceRestApiFunction"] {
        r.register(Arc::new(HttpFunction::new(name, "http://127.0.0.1:9")), FunctionOptions::default());
    }
    r
}

#[test]
fn every_fixture_flow_loads_and_validates_with_the_built_in_functions() {
    let lib = FlowLibrary::load_dir(&fixture_dir()).unwrap();
    assert_eq!(lib.flows().count(), 23);
    let r = registry();
    for f in lib.flows() {
        let diagnostics = validate_flow(&f.flow, &r, None);
        let errors: Vec<_> = diagnostics.iter().filter(|d| d.severity == Severity::Error).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", f.name);
        for d in &diagnostics {
            let unknown = d.message.contains("not a known function");
            let kvs = d.message.contains("kvsConsumerTrigger");
            assert!(!unknown || kvs, "{}: {d}", f.name);
        }
    }
}

#[test]
fn flows_are_found_by_name_id_and_foreign_arn() {
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "Sample_SCV_Inbound_Flow.json",
        "Sample_SCV_Omni-Channel_Subflow_-_Basic_Routing_with_Case_Creation.json",
    ] {
        std::fs::copy(fixture_dir().join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(
        dir.path().join("flows.toml"),
        format!(
            "[[flows]]\nfile = \"Sample_SCV_Omni-Channel_Subflow_-_Basic_Routing_with_Case_Creation.json\"\nname = \"Omni\"\nid = \"{OMNI_BASIC}\"\n\
             [[numbers]]\nnumber = \"+1 (555) 010-0100\"\nflow = \"Sample SCV Inbound Flow\"\n"
        ),
    )
    .unwrap();
    let lib = FlowLibrary::load_dir(dir.path()).unwrap();
    assert_eq!(lib.get("Omni").unwrap().id, OMNI_BASIC);
    assert_eq!(lib.get(OMNI_BASIC).unwrap().name, "Omni");
    let foreign =
        format!("arn:aws:connect:us-west-2:668462763708:instance/76a9b70e/contact-flow/{OMNI_BASIC}");
    assert_eq!(lib.get(&foreign).unwrap().name, "Omni");
    assert!(lib.get(&format!("arn:aws:connect:us-west-2:1:instance/x/contact-flow/{CALLBACK}")).is_none());
    assert_eq!(lib.flow_for_number("+15550100100").unwrap().name, "Sample SCV Inbound Flow");
    assert_eq!(lib.numbers(), [("+15550100100".to_string(), "Sample SCV Inbound Flow".to_string())]);

    // The inbound flow's subflow is in the library; validation says so only for missing ones.
    let inbound = lib.get("Sample SCV Inbound Flow").unwrap();
    let d = validate_flow(&inbound.flow, &registry(), Some(&lib));
    assert!(d.iter().all(|d| !d.message.contains("not in the library")), "{d:?}");
    let omni = lib.get("Omni").unwrap();
    let d = validate_flow(&omni.flow, &registry(), Some(&lib));
    assert!(
        d.iter().any(|d| d.message.contains(CALLBACK) && d.message.contains("not in the library")),
        "{d:?}"
    );
}

#[test]
fn bad_configuration_is_reported_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flows.toml"), "[[numbers]]\nnumber = \"+1555\"\nflow = \"Nope\"\n")
        .unwrap();
    let e = FlowLibrary::load_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("flows.toml") && e.contains("Nope"), "{e}");

    std::fs::write(dir.path().join("flows.toml"), "[[flows]]\nfile = \"missing.json\"\n").unwrap();
    let e = FlowLibrary::load_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("missing.json"), "{e}");

    std::fs::write(dir.path().join("flows.toml"), "").unwrap();
    std::fs::write(
        dir.path().join("legacy.json"),
        r#"{"modules":[],"version":"1","type":"contactFlow","start":"x"}"#,
    )
    .unwrap();
    let e = FlowLibrary::load_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("legacy.json"), "{e}");
}
