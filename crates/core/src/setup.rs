//! The demo org a fresh Voxbridge installation starts with, as pure data.
//!
//! [`demo_setup`] returns the records of one complete, routable contact center: an org, a
//! call center with the given public key, a phone number wired to an Omni-Channel-style
//! routing definition, two queues and three agents mapped to Amazon-Connect-style external
//! ids, and the VoiceCall custom fields the guide's examples use. [`demo_integration`] adds
//! the CRM REST API's side: a connected app for the OAuth 2.0 JWT bearer login and the API
//! user it is pre-authorized for. The binary inserts the records and prints the
//! [`DemoSummary`]; nothing here does IO, and ids, ARNs and consumer keys come from the rng
//! passed in so tests are deterministic.

use rand::Rng;
use serde_json::{json, Value};

use crate::ids::{KeyPrefix, SfId};
use crate::record::{Fields, Record};

/// API name of the demo call center (the `sub` of its tokens).
pub const DEMO_CALL_CENTER: &str = "DemoCallCenter";
/// The demo phone channel's dialed number.
pub const DEMO_PHONE_NUMBER: &str = "+15550100100";
/// Routing definition of the demo phone channel; routes by the `Department` input.
pub const DEMO_ROUTING_DEFINITION: &str = "Route_VoiceCall";
/// Domain of the demo agents' usernames.
pub const DEMO_USER_DOMAIN: &str = "demo.voxbridge.local";

/// Name of the demo connected app (the CRM REST API's JWT bearer login).
pub const DEMO_CONNECTED_APP: &str = "Voxbridge Integration";
/// File stem of the demo connected app's key pair under `<data>/keys/`.
pub const DEMO_CONNECTED_APP_KEY_NAME: &str = "VoxbridgeIntegration";
/// Username of the demo API user the connected app logs in as.
pub const DEMO_API_USER: &str = "integration@demo.voxbridge.local";
/// Profile of the demo API user; the connected app pre-authorizes it.
pub const DEMO_API_PROFILE: &str = "System Administrator";

/// Developer name of the demo org's telephony vendor info (as in the guide's package.xml).
pub const DEMO_VENDOR_INFO: &str = "SERVICE_CLOUD_VOICE";
/// Developer name of the demo messaging channel the Voice Actions automation texts through.
pub const DEMO_SMS_CHANNEL: &str = "Text_US_15551234567";
/// Developer name of the demo "Voice Actions" automation.
pub const DEMO_VOICE_ACTIONS: &str = "Voice_Actions";

/// AWS account and region of the demo's Amazon-Connect-style ARNs.
const ARN_PREFIX: &str = "arn:aws:connect:us-east-1:123456789012:instance";

/// The key a call center's tokens are verified with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallCenterKey {
    /// A PEM `PUBLIC KEY` (SubjectPublicKeyInfo) or `RSA PUBLIC KEY`.
    PublicKey(String),
    /// A PEM X.509 certificate, as uploaded to a real CallCenter record.
    Certificate(String),
}

/// The records of the demo org and what a person needs to know about them.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoSetup {
    /// In insertion order: the Organization first, then records that refer to earlier ones.
    pub records: Vec<Record>,
    pub summary: DemoSummary,
}

/// What the binary prints and saves about the demo org.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoSummary {
    pub org_id: SfId,
    pub org_name: String,
    pub call_center_id: SfId,
    pub call_center_api_name: String,
    pub call_center_name: String,
    pub phone_channel_id: SfId,
    pub phone_number: String,
    pub routing_definition: String,
    pub fallback_queue: String,
    pub queues: Vec<QueueSummary>,
    pub agents: Vec<AgentSummary>,
    pub routing_definitions: Vec<RoutingSummary>,
    /// `VoiceCall.<Name>` of each declared custom field.
    pub custom_fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueSummary {
    pub id: SfId,
    pub developer_name: String,
    pub name: String,
    /// The telephony system's id of the queue (CallCenterRoutingMap `ExternalId`).
    pub external_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentSummary {
    pub id: SfId,
    pub username: String,
    pub name: String,
    /// The telephony system's id of the agent (CallCenterRoutingMap `ExternalId`).
    pub external_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoutingSummary {
    pub developer_name: String,
    pub label: String,
    pub rule: Value,
}

/// The demo queues: developer name, label.
const QUEUES: [(&str, &str); 2] = [("Support", "Support Queue"), ("Billing", "Billing Queue")];

/// The demo agents: username local part, full name.
const AGENTS: [(&str, &str); 3] =
    [("ada", "Ada Lovelace"), ("grace", "Grace Hopper"), ("alan", "Alan Turing")];

/// Builds the demo org. `public_key_pem` becomes the call center's `PublicKey`.
pub fn demo_setup(rng: &mut impl Rng, now_ms: i64, public_key_pem: &str) -> DemoSetup {
    let org = SfId::generate(KeyPrefix::Organization, rng);
    let org_name = "Voxbridge Demo".to_string();
    let mut records = Vec::new();

    let mut org_record = Record::new(org.clone(), org.clone(), "Organization", None, now_ms);
    org_record.set("Name", org_name.as_str());
    records.push(org_record);

    let call_center_name = "Demo Call Center".to_string();
    let call_center = call_center_record(
        rng,
        &org,
        DEMO_CALL_CENTER,
        &call_center_name,
        &CallCenterKey::PublicKey(public_key_pem.to_string()),
        true,
        now_ms,
    );
    let call_center_id = call_center.id.clone();
    records.push(call_center);

    // One Amazon Connect instance holds every demo queue and agent, as in a real deployment.
    let instance = uuid_v4(rng);

    let mut queues = Vec::new();
    for (developer_name, name) in QUEUES {
        let id = SfId::generate(KeyPrefix::Group, rng);
        let mut queue =
            Record::new(id.clone(), org.clone(), "Group", Some(developer_name.to_string()), now_ms);
        queue.set("Name", name);
        queue.set("DeveloperName", developer_name);
        queue.set("Type", "Queue");
        records.push(queue);
        let external_id = format!("{ARN_PREFIX}/{instance}/queue/{}", uuid_v4(rng));
        records.push(routing_map(rng, &org, &call_center_id, &id, &external_id, now_ms));
        queues.push(QueueSummary {
            id,
            developer_name: developer_name.to_string(),
            name: name.to_string(),
            external_id,
        });
    }

    let mut agents = Vec::new();
    for (local, name) in AGENTS {
        let id = SfId::generate(KeyPrefix::User, rng);
        let username = format!("{local}@{DEMO_USER_DOMAIN}");
        let mut user = Record::new(id.clone(), org.clone(), "User", Some(username.clone()), now_ms);
        user.set("Username", username.as_str());
        user.set("Name", name);
        user.set("Email", username.as_str());
        user.set("IsActive", true);
        records.push(user);
        let external_id = format!("{ARN_PREFIX}/{instance}/agent/{}", uuid_v4(rng));
        records.push(routing_map(rng, &org, &call_center_id, &id, &external_id, now_ms));
        agents.push(AgentSummary { id, username, name: name.to_string(), external_id });
    }

    let first_agent = agents.first().map(|a| a.username.clone()).unwrap_or_default();
    let routing_definitions = vec![
        RoutingSummary {
            developer_name: DEMO_ROUTING_DEFINITION.to_string(),
            label: "Route Voice Call".to_string(),
            rule: json!({
                "type": "byInput",
                "parameter": "Department",
                "cases": { "Billing": { "type": "queue", "queue": "Billing" } },
                "default": { "type": "queue", "queue": "Support" },
            }),
        },
        RoutingSummary {
            developer_name: "Route_To_Support".to_string(),
            label: "Route to Support".to_string(),
            rule: json!({ "type": "queue", "queue": "Support" }),
        },
        RoutingSummary {
            developer_name: "Route_To_Billing".to_string(),
            label: "Route to Billing".to_string(),
            rule: json!({ "type": "queue", "queue": "Billing" }),
        },
        RoutingSummary {
            developer_name: "Route_To_Ada".to_string(),
            label: "Route to Ada".to_string(),
            rule: json!({ "type": "agent", "agent": first_agent }),
        },
    ];
    for def in &routing_definitions {
        let id = SfId::generate(KeyPrefix::RoutingDefinition, rng);
        let mut record =
            Record::new(id, org.clone(), "FlowDefinitionView", Some(def.developer_name.clone()), now_ms);
        record.set("DeveloperName", def.developer_name.as_str());
        record.set("Label", def.label.as_str());
        record.set("Rule", def.rule.clone());
        records.push(record);
    }

    let fallback = queues.first().map(|q| (q.id.clone(), q.developer_name.clone()));
    let phone_channel_id = SfId::generate(KeyPrefix::PhoneChannel, rng);
    let mut channel = Record::new(
        phone_channel_id.clone(),
        org.clone(),
        "ConversationChannelDefinition",
        Some(DEMO_PHONE_NUMBER.to_string()),
        now_ms,
    );
    channel.set("PhoneNumber", DEMO_PHONE_NUMBER);
    channel.set("CallCenterId", call_center_id.as_str());
    channel.set("RoutingDefinition", DEMO_ROUTING_DEFINITION);
    channel.set("FallbackQueueId", fallback.as_ref().map(|(id, _)| id.as_str()));
    records.push(channel);

    let mut custom_fields = Vec::new();
    for field in demo_custom_fields() {
        let id = custom_field_id(rng);
        let key = format!("{}.{}", field.object, field.name);
        let mut record = Record::new(id, org.clone(), "CustomField", Some(key.clone()), now_ms);
        record.fields = field.fields();
        records.push(record);
        custom_fields.push(key);
    }

    DemoSetup {
        records,
        summary: DemoSummary {
            org_id: org,
            org_name,
            call_center_id,
            call_center_api_name: DEMO_CALL_CENTER.to_string(),
            call_center_name,
            phone_channel_id,
            phone_number: DEMO_PHONE_NUMBER.to_string(),
            routing_definition: DEMO_ROUTING_DEFINITION.to_string(),
            fallback_queue: fallback.map(|(_, name)| name).unwrap_or_default(),
            queues,
            agents,
            routing_definitions,
            custom_fields,
        },
    }
}

/// The demo connected app and its API user.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoIntegration {
    /// The ConnectedApp, then the User.
    pub records: Vec<Record>,
    pub summary: IntegrationSummary,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationSummary {
    pub app_id: SfId,
    pub app_name: String,
    /// The `iss` of the app's login assertions; the ConnectedApp's key.
    pub consumer_key: String,
    pub user_id: SfId,
    /// The `sub` of the app's login assertions.
    pub username: String,
}

/// Builds the demo connected app for `org`, verified by `public_key_pem`, and the API user
/// it is pre-authorized for (through the user's profile, as an admin-approved app is on the
/// platform). Separate from [`demo_setup`] so an org made before the CRM API existed can be
/// given the same records.
pub fn demo_integration(
    rng: &mut impl Rng,
    org: &SfId,
    now_ms: i64,
    public_key_pem: &str,
) -> DemoIntegration {
    let consumer_key = consumer_key(rng);
    let app_id = SfId::generate(KeyPrefix::ConnectedApp, rng);
    let mut app =
        Record::new(app_id.clone(), org.clone(), "ConnectedApp", Some(consumer_key.clone()), now_ms);
    app.set("Name", DEMO_CONNECTED_APP);
    app.set("ConsumerKey", consumer_key.as_str());
    app.set("PublicKey", public_key_pem);
    app.set("PreAuthorizedUsers", json!([]));
    app.set("PreAuthorizedProfiles", json!([DEMO_API_PROFILE]));
    app.set("Scopes", json!(["api"]));

    let user_id = SfId::generate(KeyPrefix::User, rng);
    let mut user = Record::new(user_id.clone(), org.clone(), "User", Some(DEMO_API_USER.to_string()), now_ms);
    user.set("Username", DEMO_API_USER);
    user.set("FirstName", "Voxbridge");
    user.set("LastName", "Integration");
    user.set("Name", "Voxbridge Integration");
    user.set("Email", DEMO_API_USER);
    user.set("IsActive", true);
    user.set("ProfileName", DEMO_API_PROFILE);

    DemoIntegration {
        records: vec![app, user],
        summary: IntegrationSummary {
            app_id,
            app_name: DEMO_CONNECTED_APP.to_string(),
            consumer_key,
            user_id,
            username: DEMO_API_USER.to_string(),
        },
    }
}

/// A consumer key in the platform's shape: `3MVG9` and 80 more characters.
fn consumer_key(rng: &mut impl Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";
    let tail: String = (0..80).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    format!("3MVG9{tail}")
}

/// The telephony provider's vendor info (ConversationVendorInfo): which provider the call
/// centers use and the provider account it is reached through, the record a sandbox
/// refresh backs up first.
pub fn vendor_info_record(rng: &mut impl Rng, org: &SfId, now_ms: i64) -> Record {
    let id = SfId::generate(KeyPrefix::ConversationVendorInfo, rng);
    let mut r = Record::new(id, org.clone(), "ConversationVendorInfo", Some(DEMO_VENDOR_INFO.into()), now_ms);
    r.set("DeveloperName", DEMO_VENDOR_INFO);
    r.set("MasterLabel", "Service Cloud Voice");
    r.set("VendorName", "Amazon Connect");
    r.set("TelephonyModel", "AmazonConnect");
    r.set("AwsAccountId", "123456789012");
    r.set("Region", "us-east-1");
    r.set("IsActive", true);
    r
}

/// The guide's "Voice Actions" recipe as demo records: the VoiceCall custom fields
/// `IVRType__c` and `IVRInput__c`, the `IVRTransfer` messaging template, and the automation
/// that links an existing case (by its number, left-padded to 8 digits), creates and links
/// a new one, or texts the caller the template. Each record has a key, so an org that lacks
/// some of them can be given just those.
pub fn demo_voice_actions(rng: &mut impl Rng, org: &SfId, now_ms: i64) -> Vec<Record> {
    let mut records = Vec::new();
    for (name, label) in [("IVRType__c", "IVR Type"), ("IVRInput__c", "IVR Input")] {
        let spec = CustomFieldSpec {
            object: "VoiceCall",
            name,
            label,
            kind: "text",
            length: Some(255),
            picklist: &[],
        };
        let mut r = Record::new(
            custom_field_id(rng),
            org.clone(),
            "CustomField",
            Some(format!("VoiceCall.{name}")),
            now_ms,
        );
        r.fields = spec.fields();
        records.push(r);
    }
    let mut template = Record::new(
        SfId::generate(KeyPrefix::MessagingTemplate, rng),
        org.clone(),
        "MessagingTemplate",
        Some("IVRTransfer".into()),
        now_ms,
    );
    template.set("DeveloperName", "IVRTransfer");
    template.set("Name", "IVRTransfer");
    template.set(
        "Message",
        "Our messaging team is here to help you! Please respond to this message to connect with an agent.",
    );
    records.push(template);
    let mut automation = Record::new(
        SfId::generate(KeyPrefix::Automation, rng),
        org.clone(),
        "Automation",
        Some(DEMO_VOICE_ACTIONS.into()),
        now_ms,
    );
    automation.set("DeveloperName", DEMO_VOICE_ACTIONS);
    automation.set("Label", "Voice Actions");
    automation.set("Active", true);
    automation.set("Definition", voice_actions_definition());
    records.push(automation);
    records
}

/// The definition of the demo "Voice Actions" automation (docs/automations.md).
pub fn voice_actions_definition() -> Value {
    json!({
        "label": "Voice Actions",
        "description": "Links the case a caller chose in the IVR to the voice call, or texts the caller.",
        "trigger": {"object": "VoiceCall", "on": ["create"], "condition": "NOT(ISBLANK(IVRType__c))"},
        "formulas": {
            "Get8DigitCaseNumber": "LPAD(IVRInput__c, 8, \"0\")",
            "SMSPhone": "RIGHT(FromPhoneNumber, 10)"
        },
        "steps": [{"decision": {
            "name": "IVRSelection",
            "outcomes": [
                {"name": "ExistingCase", "when": "IVRType__c = \"ExistingCase\"", "steps": [
                    {"find": {"as": "existingCase",
                        "soql": "SELECT Id, CaseNumber FROM Case WHERE CaseNumber = :Get8DigitCaseNumber LIMIT 1"}},
                    {"decision": {"name": "CaseFound", "outcomes": [
                        {"name": "Found", "when": "NOT(ISBLANK(existingCase.Id))", "steps": [
                            {"update": {"record": "$Record.Id", "fields": {"RelatedRecordId": "existingCase.Id"}}}
                        ]}
                    ]}}
                ]},
                {"name": "IVRTransfer", "when": "IVRType__c = \"IVRTransfer\"", "steps": [
                    {"notify": {"name": "SendTransferSMS", "channel": DEMO_SMS_CHANNEL, "template": "IVRTransfer",
                        "recipient": "SMSPhone", "context": "$Record.Id"}}
                ]}
            ],
            "default": [
                {"create": {"as": "newCase", "object": "Case",
                    "fields": {"Subject": "IVRInput__c", "Origin": "\"Phone\""}}},
                {"update": {"record": "$Record.Id", "fields": {"RelatedRecordId": "newCase.Id"}}}
            ]
        }}]
    })
}

/// A CallCenter record. Used for the demo call center and for call centers an operator
/// brings in through the configuration.
pub fn call_center_record(
    rng: &mut impl Rng,
    org: &SfId,
    api_name: &str,
    name: &str,
    key: &CallCenterKey,
    unified_routing: bool,
    now_ms: i64,
) -> Record {
    let id = SfId::generate(KeyPrefix::CallCenter, rng);
    let mut record = Record::new(id, org.clone(), "CallCenter", Some(api_name.to_string()), now_ms);
    record.set("Name", name);
    record.set("InternalName", api_name);
    record.fields.extend(call_center_patch(key, unified_routing));
    record
}

/// The fields that change when an operator re-registers a call center's key: the key
/// itself, the other kind of key cleared (so a stale one cannot keep verifying tokens),
/// and the routing mode.
pub fn call_center_patch(key: &CallCenterKey, unified_routing: bool) -> Fields {
    let mut fields = Fields::new();
    let (public_key, certificate) = match key {
        CallCenterKey::PublicKey(pem) => (Value::from(pem.as_str()), Value::Null),
        CallCenterKey::Certificate(pem) => (Value::Null, Value::from(pem.as_str())),
    };
    fields.insert("PublicKey".to_string(), public_key);
    fields.insert("Certificate".to_string(), certificate);
    fields.insert("UnifiedRouting".to_string(), Value::Bool(unified_routing));
    fields
}

fn routing_map(
    rng: &mut impl Rng,
    org: &SfId,
    call_center: &SfId,
    reference: &SfId,
    external_id: &str,
    now_ms: i64,
) -> Record {
    let id = SfId::generate(KeyPrefix::CallCenterRoutingMap, rng);
    let mut record =
        Record::new(id, org.clone(), "CallCenterRoutingMap", Some(external_id.to_string()), now_ms);
    record.set("CallCenterId", call_center.as_str());
    record.set("ReferenceRecordId", reference.as_str());
    record.set("ExternalId", external_id);
    record
}

/// A custom field declaration on VoiceCall.
struct CustomFieldSpec {
    object: &'static str,
    name: &'static str,
    label: &'static str,
    kind: &'static str,
    length: Option<i64>,
    picklist: &'static [&'static str],
}

impl CustomFieldSpec {
    fn fields(&self) -> Fields {
        let mut f = Fields::new();
        f.insert("Object".into(), self.object.into());
        f.insert("Name".into(), self.name.into());
        f.insert("Label".into(), self.label.into());
        f.insert("Type".into(), self.kind.into());
        f.insert("Length".into(), self.length.into());
        f.insert("Required".into(), false.into());
        let picklist = if self.picklist.is_empty() {
            Value::Null
        } else {
            Value::Array(self.picklist.iter().map(|v| Value::from(*v)).collect())
        };
        f.insert("PicklistValues".into(), picklist);
        f
    }
}

/// The fields the guide's examples set through `callAttributes`, plus one of each
/// remaining type so every validation path has a field to exercise it.
fn demo_custom_fields() -> [CustomFieldSpec; 7] {
    let text = |name, label| CustomFieldSpec {
        object: "VoiceCall",
        name,
        label,
        kind: "text",
        length: Some(255),
        picklist: &[],
    };
    let plain = |name, label, kind| CustomFieldSpec {
        object: "VoiceCall",
        name,
        label,
        kind,
        length: None,
        picklist: &[],
    };
    [
        text("MyField__c", "My Field"),
        CustomFieldSpec {
            object: "VoiceCall",
            name: "Department__c",
            label: "Department",
            kind: "picklist",
            length: None,
            picklist: &["Support", "Sales", "Billing"],
        },
        text("sf_realtime_transcription_status__c", "Realtime Transcription Status"),
        plain("dateCustomField__c", "Date Custom Field", "datetime"),
        plain("checkbox__c", "Checkbox", "checkbox"),
        plain("Priority__c", "Priority", "number"),
        plain("FollowUpDate__c", "Follow-up Date", "date"),
    ]
}

/// A CustomField id, with the platform's `00N` prefix.
fn custom_field_id(rng: &mut impl Rng) -> SfId {
    SfId::generate(KeyPrefix::CustomField, rng)
}

/// A random version-4 UUID in its canonical text form (the shape of Amazon Connect ids).
fn uuid_v4(rng: &mut impl Rng) -> String {
    let mut b: [u8; 16] = rng.gen();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::collections::HashSet;

    const PEM: &str = "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n";

    fn setup() -> DemoSetup {
        demo_setup(&mut StdRng::seed_from_u64(7), 1_700_000_000_000, PEM)
    }

    fn find<'a>(s: &'a DemoSetup, sobject: &str, key: &str) -> &'a Record {
        s.records
            .iter()
            .find(|r| r.sobject == sobject && r.key.as_deref() == Some(key))
            .unwrap_or_else(|| panic!("no {sobject} {key}"))
    }

    #[test]
    fn every_record_belongs_to_the_org_and_has_a_matching_prefix() {
        let s = setup();
        let org = &s.summary.org_id;
        assert_eq!(org.prefix(), Some(KeyPrefix::Organization));
        let mut ids = HashSet::new();
        for r in &s.records {
            assert_eq!(&r.org, org);
            assert!(ids.insert(r.id.clone()), "duplicate id {}", r.id);
            assert_eq!(r.created_ms, 1_700_000_000_000);
            if r.sobject == "CustomField" {
                assert_eq!(r.id.prefix_str(), "00N");
            } else {
                assert_eq!(r.id.prefix().map(KeyPrefix::sobject), Some(r.sobject.as_str()), "{r:?}");
            }
        }
        assert_eq!(s.records[0].sobject, "Organization");
        assert_eq!(&s.records[0].id, org);
    }

    #[test]
    fn call_center_carries_the_key() {
        let s = setup();
        let cc = find(&s, "CallCenter", DEMO_CALL_CENTER);
        assert_eq!(cc.id, s.summary.call_center_id);
        assert_eq!(cc.str("PublicKey"), Some(PEM));
        assert_eq!(cc.str("InternalName"), Some(DEMO_CALL_CENTER));
        assert_eq!(cc.bool("UnifiedRouting"), Some(true));
        assert_eq!(cc.fields.get("Certificate"), Some(&Value::Null));
    }

    #[test]
    fn phone_channel_routes_through_existing_definitions_and_queues() {
        let s = setup();
        let ch = find(&s, "ConversationChannelDefinition", DEMO_PHONE_NUMBER);
        assert_eq!(ch.str("CallCenterId"), Some(s.summary.call_center_id.as_str()));
        let def = find(&s, "FlowDefinitionView", ch.str("RoutingDefinition").unwrap());
        assert_eq!(def.fields["Rule"]["type"], "byInput");
        assert_eq!(def.fields["Rule"]["parameter"], "Department");
        let fallback = ch.str("FallbackQueueId").unwrap();
        let queue = s.records.iter().find(|r| r.id.as_str() == fallback).unwrap();
        assert_eq!(queue.str("DeveloperName"), Some("Support"));

        // Every queue and agent a rule names exists.
        for def in &s.summary.routing_definitions {
            let rule = &def.rule;
            for q in [&rule["queue"], &rule["default"]["queue"], &rule["cases"]["Billing"]["queue"]] {
                if let Some(q) = q.as_str() {
                    find(&s, "Group", q);
                }
            }
            if let Some(a) = rule["agent"].as_str() {
                find(&s, "User", a);
            }
        }
    }

    #[test]
    fn queues_and_agents_are_mapped_to_external_ids() {
        let s = setup();
        assert_eq!(s.summary.queues.len(), 2);
        assert_eq!(s.summary.agents.len(), 3);
        for q in &s.summary.queues {
            let g = find(&s, "Group", &q.developer_name);
            assert_eq!(g.str("Type"), Some("Queue"));
            let map = find(&s, "CallCenterRoutingMap", &q.external_id);
            assert_eq!(map.str("ReferenceRecordId"), Some(q.id.as_str()));
            assert_eq!(map.str("CallCenterId"), Some(s.summary.call_center_id.as_str()));
            assert!(q.external_id.starts_with("arn:aws:connect:us-east-1:123456789012:instance/"));
            assert!(q.external_id.contains("/queue/"));
        }
        for a in &s.summary.agents {
            let u = find(&s, "User", &a.username);
            assert_eq!(u.bool("IsActive"), Some(true));
            let map = find(&s, "CallCenterRoutingMap", &a.external_id);
            assert_eq!(map.str("ReferenceRecordId"), Some(a.id.as_str()));
            assert!(a.external_id.contains("/agent/"));
        }
    }

    #[test]
    fn custom_fields_declared() {
        let s = setup();
        let f = find(&s, "CustomField", "VoiceCall.Department__c");
        assert_eq!(f.str("Type"), Some("picklist"));
        assert_eq!(f.fields["PicklistValues"], json!(["Support", "Sales", "Billing"]));
        let f = find(&s, "CustomField", "VoiceCall.MyField__c");
        assert_eq!((f.str("Type"), f.i64("Length")), (Some("text"), Some(255)));
        let f = find(&s, "CustomField", "VoiceCall.sf_realtime_transcription_status__c");
        assert_eq!(f.i64("Length"), Some(255));
        assert_eq!(find(&s, "CustomField", "VoiceCall.dateCustomField__c").str("Type"), Some("datetime"));
        assert_eq!(find(&s, "CustomField", "VoiceCall.checkbox__c").str("Type"), Some("checkbox"));
        assert_eq!(s.summary.custom_fields.len(), 7);
    }

    #[test]
    fn uuids_are_v4_shaped() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..50 {
            let u = uuid_v4(&mut rng);
            assert_eq!(u.len(), 36);
            assert_eq!(&u[14..15], "4");
            assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        assert_eq!(setup(), setup());
    }

    #[test]
    fn certificate_patch_clears_public_key() {
        let p = call_center_patch(&CallCenterKey::Certificate("CERT".into()), false);
        assert_eq!(p["PublicKey"], Value::Null);
        assert_eq!(p["Certificate"], "CERT");
        assert_eq!(p["UnifiedRouting"], false);
    }

    #[test]
    fn integration_app_pre_authorizes_its_api_user() {
        let s = setup();
        let i = demo_integration(&mut StdRng::seed_from_u64(8), &s.summary.org_id, 1_700_000_000_000, PEM);
        let [app, user] = &i.records[..] else { panic!("two records: {:?}", i.records) };
        assert_eq!((app.sobject.as_str(), user.sobject.as_str()), ("ConnectedApp", "User"));
        assert_eq!(app.id.prefix(), Some(KeyPrefix::ConnectedApp));
        assert_eq!(user.id.prefix(), Some(KeyPrefix::User));
        assert!(i.records.iter().all(|r| r.org == s.summary.org_id));
        let key = &i.summary.consumer_key;
        assert!(key.starts_with("3MVG9") && key.len() == 85, "{key}");
        assert_eq!(app.key.as_deref(), Some(key.as_str()));
        assert_eq!(app.str("ConsumerKey"), Some(key.as_str()));
        assert_eq!(app.str("PublicKey"), Some(PEM));
        assert_eq!(user.key.as_deref(), Some(DEMO_API_USER));
        assert_eq!(user.bool("IsActive"), Some(true));
        // The login checks the user's profile against the app's pre-authorized profiles.
        assert_eq!(app.fields["PreAuthorizedProfiles"], json!([user.str("ProfileName").unwrap()]));
        // No clash with the demo org's own users.
        assert!(!s.records.iter().any(|r| r.key.as_deref() == Some(DEMO_API_USER)));
        let other = demo_integration(&mut StdRng::seed_from_u64(9), &s.summary.org_id, 0, PEM);
        assert_ne!(other.summary.consumer_key, i.summary.consumer_key);
    }

    #[test]
    fn integration_snapshot() {
        let s = setup();
        let i = demo_integration(&mut StdRng::seed_from_u64(8), &s.summary.org_id, 1_700_000_000_000, PEM);
        let rows: Vec<Value> = i
            .records
            .iter()
            .map(|r| {
                // The consumer key is random; its shape is checked above.
                let mut fields = r.fields.clone();
                let mut key = r.key.as_deref();
                if r.sobject == "ConnectedApp" {
                    fields.insert("ConsumerKey".into(), "[consumer key]".into());
                    key = Some("[consumer key]");
                }
                json!({ "sobject": r.sobject, "prefix": r.id.prefix_str(), "key": key, "fields": fields })
            })
            .collect();
        insta::assert_json_snapshot!(rows);
    }

    #[test]
    fn snapshot() {
        // Ids and ARNs are random; the shape of the org is what the snapshot pins.
        let s = setup();
        let rows: Vec<Value> = s
            .records
            .iter()
            .map(|r| {
                let mut fields = r.fields.clone();
                for v in fields.values_mut() {
                    if let Some(s) = v.as_str() {
                        if SfId::parse(s).is_ok() {
                            *v = format!("[{} id]", &s[..3]).into();
                        } else if s.starts_with("arn:") {
                            *v = "[arn]".into();
                        }
                    }
                }
                let key = r.key.as_deref().map(|k| if k.starts_with("arn:") { "[arn]" } else { k });
                json!({ "sobject": r.sobject, "prefix": r.id.prefix_str(), "key": key, "fields": fields })
            })
            .collect();
        insta::assert_json_snapshot!(rows);
    }
}
