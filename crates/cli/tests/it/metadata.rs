//! `voxbridge metadata retrieve|deploy`: an org's call-center metadata backed up as files,
//! edited, and restored into another data dir's org (a refreshed sandbox), by key and with
//! references resolved there; a package.xml choosing what to retrieve, as in the guide's
//! sandbox refresh; and the telephony side working again against the refreshed org with
//! the keys it had.

use std::path::Path;

use serde_json::{json, Value};

use super::{fails, ok};
use crate::serving::Server;

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn write(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

/// The records of one type in a backup, by key.
fn records(dir: &Path, sobject: &str) -> serde_json::Map<String, Value> {
    let body = read(&dir.join(format!("{sobject}.json")));
    assert_eq!(body["sobject"], sobject);
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["key"].as_str().unwrap().to_string(), r["fields"].clone()))
        .collect()
}

#[test]
fn retrieve_then_deploy_into_a_refreshed_org() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["setup", "--data", "a"]);
    let out = ok(dir, &["metadata", "retrieve", "--out", "backup", "--data", "a"]);
    assert!(out.contains("Retrieved the metadata of org"), "{out}");
    let backup = dir.join("backup");
    let manifest = read(&backup.join("metadata.json"));
    assert_eq!(manifest["version"], 1);
    let setup_a = read(&dir.join("a/setup.json"));
    assert_eq!(manifest["org"]["id"], setup_a["org"]["id"]);

    // References are written by type and key, so they survive new ids.
    let channels = records(&backup, "ConversationChannelDefinition");
    let channel = &channels["+15550100100"];
    assert_eq!(channel["CallCenterId"], json!({"$ref": {"sobject": "CallCenter", "key": "DemoCallCenter"}}));
    assert_eq!(channel["FallbackQueueId"]["$ref"]["sobject"], "Group");
    let queues = records(&backup, "Group");
    assert!(queues.contains_key("Support") && queues.contains_key("Billing"), "{queues:?}");
    let call_centers = records(&backup, "CallCenter");
    let key_a = call_centers["DemoCallCenter"]["PublicKey"].as_str().unwrap().to_string();
    assert!(key_a.contains("PUBLIC KEY"));
    assert!(!records(&backup, "CustomField").is_empty());
    assert!(!records(&backup, "FlowDefinitionView").is_empty());
    let automation = &records(&backup, "Automation")["Voice_Actions"];
    assert_eq!(automation["Active"], true);
    assert_eq!(automation["Definition"]["trigger"]["object"], "VoiceCall");
    assert!(records(&backup, "MessagingTemplate").contains_key("IVRTransfer"));
    assert!(records(&backup, "CustomField").contains_key("VoiceCall.IVRType__c"));
    for (_, map) in records(&backup, "CallCenterRoutingMap") {
        assert!(map["ReferenceRecordId"].get("$ref").is_some(), "{map}");
    }

    // The admin adds a queue with its routing-map entry, relabels a routing definition, and
    // maps an agent the refreshed org does not have.
    let mut groups = read(&backup.join("Group.json"));
    groups["records"].as_array_mut().unwrap().push(json!({"key": "Escalations",
        "fields": {"Name": "Escalations", "DeveloperName": "Escalations", "Type": "Queue"}}));
    write(&backup.join("Group.json"), &groups);
    let mut maps = read(&backup.join("CallCenterRoutingMap.json"));
    let cc = json!({"$ref": {"sobject": "CallCenter", "key": "DemoCallCenter"}});
    maps["records"].as_array_mut().unwrap().extend([
        json!({"key": "arn:aws:connect:us-east-1:1:instance/i/queue/esc", "fields": {"CallCenterId": cc,
            "ReferenceRecordId": {"$ref": {"sobject": "Group", "key": "Escalations"}},
            "ExternalId": "arn:aws:connect:us-east-1:1:instance/i/queue/esc"}}),
        json!({"key": "arn:aws:connect:us-east-1:1:instance/i/agent/gone", "fields": {"CallCenterId": cc,
            "ReferenceRecordId": {"$ref": {"sobject": "User", "key": "gone@example.com"}},
            "ExternalId": "arn:aws:connect:us-east-1:1:instance/i/agent/gone"}}),
    ]);
    write(&backup.join("CallCenterRoutingMap.json"), &maps);
    let mut routing = read(&backup.join("FlowDefinitionView.json"));
    routing["records"][0]["fields"]["Label"] = json!("Relabelled");
    let relabelled = routing["records"][0]["key"].as_str().unwrap().to_string();
    write(&backup.join("FlowDefinitionView.json"), &routing);

    // The refreshed org: another data dir, other ids, its own keys.
    ok(dir, &["setup", "--data", "b"]);
    ok(dir, &["metadata", "retrieve", "--out", "before", "--data", "b"]);
    let key_b = records(&dir.join("before"), "CallCenter")["DemoCallCenter"]["PublicKey"].clone();
    assert_ne!(key_b, json!(key_a));

    let dry = ok(dir, &["metadata", "deploy", "backup", "--dry-run", "--data", "b"]);
    assert!(dry.contains("Would deploy"), "{dry}");
    ok(dir, &["metadata", "retrieve", "--out", "after-dry-run", "--data", "b"]);
    assert_eq!(records(&dir.join("after-dry-run"), "Group"), records(&dir.join("before"), "Group"));

    let out = ok(dir, &["metadata", "deploy", "backup", "--keep-keys", "--data", "b"]);
    assert!(out.contains("Deployed the metadata of backup"), "{out}");
    assert!(
        out.contains("skipped CallCenterRoutingMap arn:aws:connect:us-east-1:1:instance/i/agent/gone"),
        "{out}"
    );
    assert!(out.contains("Group                          1 created"), "{out}");

    // setup.json is refreshed: the new queue, under its routing-map id.
    let setup_b = read(&dir.join("b/setup.json"));
    let esc = setup_b["queues"].as_array().unwrap().iter().find(|q| q["developer_name"] == "Escalations");
    assert!(
        esc.is_some_and(|q| q["external_ids"] == json!(["arn:aws:connect:us-east-1:1:instance/i/queue/esc"])),
        "{setup_b}"
    );

    ok(dir, &["metadata", "retrieve", "--out", "after", "--data", "b"]);
    let after = dir.join("after");
    assert_eq!(records(&after, "Group"), records(&backup, "Group"));
    assert_eq!(records(&after, "CustomField"), records(&backup, "CustomField"));
    assert_eq!(records(&after, "FlowDefinitionView")[&relabelled]["Label"], "Relabelled");
    let channel = &records(&after, "ConversationChannelDefinition")["+15550100100"];
    assert_eq!(channel, &records(&backup, "ConversationChannelDefinition")["+15550100100"]);
    let maps = records(&after, "CallCenterRoutingMap");
    assert!(maps.contains_key("arn:aws:connect:us-east-1:1:instance/i/queue/esc"));
    assert!(!maps.contains_key("arn:aws:connect:us-east-1:1:instance/i/agent/gone"));
    // The call center keeps the key whose private half is in b's data dir.
    assert_eq!(records(&after, "CallCenter")["DemoCallCenter"]["PublicKey"], key_b);

    // Deploying again changes nothing.
    let again = ok(dir, &["metadata", "deploy", "backup", "--keep-keys", "--data", "b"]);
    assert!(again.contains("Group                          0 created, 0 updated, 3 unchanged"), "{again}");
}

#[test]
fn deploy_refuses_what_is_not_a_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let err = fails(dir, &["metadata", "deploy", "nowhere", "--data", "a"], &[]);
    assert!(err.contains("nowhere/metadata.json") && err.contains("metadata backup"), "{err}");

    std::fs::create_dir(dir.join("bad")).unwrap();
    write(&dir.join("bad/metadata.json"), &json!({"version": 1}));
    write(&dir.join("bad/Group.json"), &json!({"sobject": "Group", "records": [{"fields": {}}]}));
    let err = fails(dir, &["metadata", "deploy", "bad", "--data", "a"], &[]);
    assert!(err.contains("needs a `key` and `fields`"), "{err}");

    write(&dir.join("bad/Group.json"), &json!({"sobject": "Group", "records": []}));
    write(
        &dir.join("bad/Automation.json"),
        &json!({"sobject": "Automation", "records": [{"key": "Broken",
        "fields": {"DeveloperName": "Broken", "Active": true,
            "Definition": {"trigger": {"object": "VoiceCall", "on": ["create"]}, "steps": [{"updat": {}}]}}}]}),
    );
    let err = fails(dir, &["metadata", "deploy", "bad", "--data", "a"], &[]);
    assert!(
        err.contains("automation Broken has 1 mistake(s):\n  steps[0]: unknown variant `updat`"),
        "{err}"
    );
    std::fs::remove_file(dir.join("bad/Automation.json")).unwrap();

    write(&dir.join("bad/metadata.json"), &json!({"version": 9}));
    let err = fails(dir, &["metadata", "deploy", "bad", "--data", "a"], &[]);
    assert!(err.contains("format version 9"), "{err}");

    // Retrieving needs a data dir with an org.
    let err = fails(dir, &["metadata", "retrieve", "--out", "x", "--data", "empty"], &[]);
    assert!(err.contains("setup.json"), "{err}");
}

/// The guide's three package.xml files in one.
const PACKAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- ConversationVendorInfo, CallCenter and ConnectedApp packages -->
<Package xmlns="http://soap.sforce.com/2006/04/metadata">
  <types>
    <members>SERVICE_CLOUD_VOICE</members>
    <name>ConversationVendorInfo</name>
  </types>
  <types>
    <members>DemoCallCenter</members>
    <name>CallCenter</name>
  </types>
  <types>
    <members>Voxbridge_Integration</members>
    <name>ConnectedApp</name>
  </types>
  <version>55.0</version>
</Package>
"#;

#[test]
fn a_refreshed_org_restored_from_a_retrieve_works_for_the_telephony_side() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["setup", "--data", "a"]);
    std::fs::write(dir.join("package.xml"), PACKAGE).unwrap();
    let out =
        ok(dir, &["metadata", "retrieve", "--package", "package.xml", "--out", "backup", "--data", "a"]);
    assert!(out.contains("Retrieved the metadata of org"), "{out}");
    let backup = dir.join("backup");
    let mut written: Vec<String> =
        std::fs::read_dir(&backup).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    written.sort();
    assert_eq!(
        written,
        ["CallCenter.json", "ConnectedApp.json", "ConversationVendorInfo.json", "metadata.json"]
    );
    let vendor = &records(&backup, "ConversationVendorInfo")["SERVICE_CLOUD_VOICE"];
    assert_eq!(vendor["VendorName"], "Amazon Connect");
    let setup_a = read(&dir.join("a/setup.json"));
    let consumer_key = setup_a["connected_apps"][0]["consumer_key"].as_str().unwrap().to_string();
    let app = &records(&backup, "ConnectedApp")[&consumer_key];
    assert_eq!(app["PreAuthorizedProfiles"], json!(["System Administrator"]));
    assert!(app["PublicKey"].as_str().unwrap().contains("PUBLIC KEY"));
    assert!(records(&backup, "CallCenter")["DemoCallCenter"]["PublicKey"].is_string());

    // The refreshed org: other ids, other keys, its own connected app.
    ok(dir, &["setup", "--data", "b"]);
    let setup_b = read(&dir.join("b/setup.json"));
    assert_ne!(setup_b["connected_apps"][0]["consumer_key"], consumer_key.as_str());
    let out = ok(dir, &["metadata", "deploy", "backup", "--data", "b"]);
    assert!(out.contains("CallCenter                     0 created, 1 updated"), "{out}");
    assert!(out.contains("ConnectedApp                   0 created, 1 updated"), "{out}");
    assert!(out.contains("note: CallCenter DemoCallCenter: its key now is the backup's"), "{out}");
    assert!(out.contains("DemoCallCenter.private.pem no longer matches"), "{out}");
    let setup_b = read(&dir.join("b/setup.json"));
    assert_eq!(setup_b["connected_apps"].as_array().unwrap().len(), 1, "no twin: {setup_b}");
    assert_eq!(setup_b["connected_apps"][0]["consumer_key"], consumer_key.as_str());

    // The telephony side keeps its private keys and learns the new org id.
    let mut server = Server::start(dir, &["serve", "--http", "127.0.0.1:0", "--data", "b"]);
    let base = format!("http://{}", server.wait_for("listening on http://"));
    let token = ok(dir, &["token", "--data", "b", "--key", "a/keys/DemoCallCenter.private.pem"]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (status, body) = rt.block_on(async {
        let resp = reqwest::Client::new()
            .post(format!("{base}/telephony/v1/voiceCalls"))
            .bearer_auth(token.trim())
            .json(&json!({"callCenterApiName": "DemoCallCenter", "vendorCallKey": "refresh-1",
                "to": "+15550100100", "from": "+15551234567", "initiationMethod": "Inbound",
                "startTime": "2026-01-01T00:00:00.000Z",
                "participants": [{"participantKey": "+15551234567", "type": "END_USER"}]}))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    });
    assert_eq!(status, 200, "{body}");
    assert!(body["voiceCallId"].as_str().is_some_and(|id| id.starts_with("0LQ")), "{body}");

    let access = ok(
        dir,
        &[
            "token",
            "--crm",
            "--url",
            &base,
            "--data",
            "b",
            "--consumer-key",
            &consumer_key,
            "--key",
            "a/keys/VoxbridgeIntegration.private.pem",
        ],
    );
    assert!(access.trim().starts_with(setup_b["org"]["id"].as_str().unwrap()), "{access}");
    // b's own key no longer logs in: the app verifies with the key it had.
    let err =
        fails(dir, &["token", "--crm", "--url", &base, "--data", "b", "--consumer-key", &consumer_key], &[]);
    assert!(err.contains("signature"), "{err}");
}

#[test]
fn package_xml_mistakes_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["setup", "--data", "a"]);
    let cases = [
        (
            "<Package><types><members>*</members><name>ApexClass</name></types></Package>",
            "`ApexClass`, which is not a metadata type",
        ),
        (
            "<Package><types><members>Nope</members><name>CallCenter</name></types></Package>",
            "CallCenter `Nope`, which the org does not have (it has: DemoCallCenter)",
        ),
        ("<Package><types><name>CallCenter</name></types></Package>", "has no <members>"),
        ("<Package></Package>", "names no <types>"),
        ("<types/>", "no <Package> element"),
    ];
    for (xml, needle) in cases {
        std::fs::write(dir.join("package.xml"), xml).unwrap();
        let err = fails(
            dir,
            &["metadata", "retrieve", "--package", "package.xml", "--out", "x", "--data", "a"],
            &[],
        );
        assert!(err.contains(needle), "{xml}: {err}");
    }
}
