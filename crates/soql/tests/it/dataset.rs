//! The seeded dataset every query test runs over: one org with users, queues, accounts,
//! contacts, cases, leads, voice calls (including the implementation guide's example ids),
//! a recording, conversations with participants and transcript entries, and a custom field.
//!
//! "Now" is Wednesday 2024-05-15 15:30 UTC, so relative date literals have fixed answers.

use serde_json::{json, Value};
use voxbridge_core::{Record, SfId, TranscriptEntry};
use voxbridge_soql::{transcript_record, EvalContext, MemorySource, Schema};

pub const NOW_MS: i64 = 1_715_787_000_000; // 2024-05-15T15:30:00Z

pub fn ctx() -> EvalContext {
    EvalContext::new(NOW_MS).with_api_version("v62.0")
}

pub fn id(s: &str) -> SfId {
    SfId::parse(s).unwrap_or_else(|e| panic!("bad test id {s}: {e}"))
}

/// `prefix` + `VX0` + n padded to nine digits.
pub fn nid(prefix: &str, n: u32) -> String {
    format!("{prefix}VX0{n:09}")
}

pub fn org() -> SfId {
    id("00DVX0000000001")
}

// The guide's example ids (chapter 5). The conversation id's checksum restores the case
// of its fifth-to-tenth characters: it is 0dwRMr000003M5p.
pub const DOC_VOICE_CALL: &str = "0LMRM000000HU8a4AG";
pub const DOC_CONVERSATION: &str = "0dwRMR000003M5pYAE";

struct Builder {
    records: Vec<Record>,
    clock: i64,
}

impl Builder {
    fn add(&mut self, sobject: &str, id_str: &str, key: Option<&str>, fields: Value) -> SfId {
        let rid = id(id_str);
        // Records are created two days apart from 2024-02-01, in the order written here.
        self.clock += 2 * 86_400_000;
        let mut r = Record::new(rid.clone(), org(), sobject, key.map(str::to_string), self.clock);
        r.modified_ms = self.clock + 3_600_000;
        if let Value::Object(m) = fields {
            for (k, v) in m {
                r.fields.insert(k, v);
            }
        }
        self.records.push(r);
        rid
    }
}

pub fn records() -> Vec<Record> {
    let mut b = Builder { records: Vec::new(), clock: 1_706_745_600_000 - 2 * 86_400_000 };
    let u1 = nid("005", 1);
    let u2 = nid("005", 2);
    let g1 = nid("00G", 1);
    let g2 = nid("00G", 2);
    let cc = nid("04v", 1);
    let rt = nid("012", 1);
    let a1 = nid("001", 1);
    let a2 = nid("001", 2);
    let c1 = nid("003", 1);
    let c2 = nid("003", 2);
    let case1 = nid("500", 1);
    let vc1 = id(DOC_VOICE_CALL).to_string();
    let vc2 = nid("0LQ", 2);
    let vc5 = nid("0LQ", 5);
    let vc6 = nid("0LQ", 6);
    let rec1 = nid("0Lr", 1);
    let conv1 = id(DOC_CONVERSATION).to_string();
    let conv2 = nid("0dw", 2);

    b.add(
        "User",
        &u1,
        Some("agent.ana@example.com"),
        json!({"Username": "agent.ana@example.com", "FirstName": "Ana", "LastName": "Alvarez", "Name": "Ana Alvarez",
               "Email": "ana@example.com", "IsActive": true, "Phone": "+1 (415) 555-0101", "CallCenterId": cc}),
    );
    b.add(
        "User",
        &u2,
        Some("bo@example.com"),
        json!({"Username": "bo@example.com", "FirstName": "Bo", "LastName": "Brown", "Email": "bo@example.com",
               "IsActive": false}),
    );
    b.add(
        "Group",
        &g1,
        Some("Support"),
        json!({"Name": "Support Queue", "DeveloperName": "Support", "Type": "Queue"}),
    );
    b.add(
        "Group",
        &g2,
        Some("Billing"),
        json!({"Name": "Billing Queue", "DeveloperName": "Billing", "Type": "Queue"}),
    );
    b.add(
        "CallCenter",
        &cc,
        Some("DemoCallCenter"),
        json!({"Name": "Demo Call Center", "InternalName": "DemoCallCenter"}),
    );
    b.add(
        "RecordType",
        &rt,
        None,
        json!({"Name": "Support Call", "DeveloperName": "Support_Call", "SobjectType": "VoiceCall", "IsActive": true}),
    );
    b.add(
        "Account",
        &a1,
        None,
        json!({"Name": "Acme Corp", "Phone": "(415) 555-1000", "Industry": "Technology", "NumberOfEmployees": 250,
               "AnnualRevenue": 1.5e7, "OwnerId": u1, "Website": "https://acme.example.com"}),
    );
    b.add(
        "Account",
        &a2,
        None,
        json!({"Name": "Globex Corporation", "Phone": "+1 212 555 0199", "Industry": "Manufacturing",
               "NumberOfEmployees": 1200, "OwnerId": u2}),
    );
    b.add("Account", &nid("001", 3), None, json!({"Name": "Acme Labs", "NumberOfEmployees": 12}));
    b.add(
        "Contact",
        &c1,
        None,
        json!({"FirstName": "Jane", "LastName": "Doe", "Phone": "+14155551234", "Email": "jane.doe@example.com",
               "AccountId": a1, "Birthdate": "1990-04-01", "OwnerId": u1, "Title": "CTO"}),
    );
    b.add(
        "Contact",
        &c2,
        None,
        json!({"FirstName": "John", "LastName": "Smith", "Phone": "(212) 555-0100", "MobilePhone": "415.555.1234",
               "Email": "john.smith@globex.example", "AccountId": a2, "Birthdate": "1975-12-24", "OwnerId": u2}),
    );
    b.add(
        "Contact",
        &nid("003", 3),
        None,
        json!({"FirstName": "María", "LastName": "O'Brien", "Email": "maria@example.org", "AccountId": a1,
               "Description": "Prefers email; 50% of calls are about billing"}),
    );
    b.add(
        "Contact",
        &nid("003", 4),
        None,
        json!({"LastName": "Smith", "Phone": "+44 20 7946 0958", "Phone2": "ignored"}),
    );
    b.add(
        "Case",
        &case1,
        None,
        json!({"CaseNumber": "00001001", "Subject": "Can't log in", "Status": "New", "IsClosed": false,
               "ContactPhone": "+14155551234", "ContactId": c1, "AccountId": a1, "Origin": "Phone",
               "Priority": "High", "OwnerId": g1}),
    );
    b.add(
        "Case",
        &nid("500", 2),
        None,
        json!({"CaseNumber": "00001002", "Subject": "Billing question: refund 100% of fee", "Status": "Closed",
               "IsClosed": true, "ClosedDate": "2024-05-10T16:00:00.000Z", "ContactPhone": "+14155551234",
               "ContactId": c1, "AccountId": a1, "Origin": "Email", "Priority": "Low", "OwnerId": u1}),
    );
    b.add(
        "Case",
        &nid("500", 3),
        None,
        json!({"CaseNumber": "00001003", "Subject": "Router keeps rebooting", "Status": "Working", "IsClosed": false,
               "ContactPhone": "(212) 555-0100", "ContactId": c2, "AccountId": a2, "Origin": "Phone",
               "Priority": "Medium", "OwnerId": u2}),
    );
    b.add(
        "Case",
        &nid("500", 4),
        None,
        json!({"CaseNumber": "00001004", "Subject": "Refund request", "Status": "New", "IsClosed": false,
               "ContactPhone": "415-555-1234", "ContactId": c1, "Origin": "Phone", "Priority": "Medium", "OwnerId": g2}),
    );
    b.add(
        "Case",
        &nid("500", 5),
        None,
        json!({"CaseNumber": "00001005", "Subject": "", "Status": "New", "IsClosed": false, "Origin": "Web"}),
    );
    b.add(
        "Lead",
        &nid("00Q", 1),
        None,
        json!({"FirstName": "Lee", "LastName": "Smith", "Company": "Initech", "Phone": "+1 512 555 0142",
               "Email": "lee@initech.example", "Status": "Open", "OwnerId": g1}),
    );
    b.add(
        "Lead",
        &nid("00Q", 2),
        None,
        json!({"LastName": "Park", "Company": "Acme Corp", "Status": "Qualified", "IsConverted": false}),
    );
    b.add(
        "VoiceCall",
        &vc1,
        Some("5ca32fbd-8f92-46af-92a5-6b0f970f0efe"),
        json!({"Name": "VC-00000001", "VendorCallKey": "5ca32fbd-8f92-46af-92a5-6b0f970f0efe", "CallType": "Inbound",
               "CallDisposition": "completed", "CallStartDateTime": "2024-05-15T14:00:00.000Z",
               "CallEndDateTime": "2024-05-15T14:05:00.000Z", "CallDurationInSeconds": 300,
               "FromPhoneNumber": "+14155551234", "ToPhoneNumber": "+18005550100", "QueueName": "Support Queue",
               "OwnerId": u1, "UserId": u1, "CallCenterId": cc, "ConversationId": conv1,
               "CustomerHoldDuration": 30, "NumberOfHolds": 1, "LongestHoldDuration": 30, "RelatedRecordId": case1,
               "CallResolution": "Resolved", "RecordTypeId": rt, "CallRecordingId": rec1, "Tier__c": "Gold",
               "VendorType": "ContactCenter"}),
    );
    b.add(
        "VoiceCall",
        &vc2,
        Some("8b0e4f8a-2222-4c1a-9d55-000000000002"),
        json!({"Name": "VC-00000002", "VendorCallKey": "8b0e4f8a-2222-4c1a-9d55-000000000002", "CallType": "Transfer",
               "CallDisposition": "completed", "CallStartDateTime": "2024-05-14T23:30:00.000Z",
               "CallEndDateTime": "2024-05-14T23:30:45.000Z", "CallDurationInSeconds": 45,
               "FromPhoneNumber": "+12125550100", "ToPhoneNumber": "+18005550100", "QueueName": "Billing Queue",
               "OwnerId": g2, "PreviousCallId": vc1, "RelatedRecordId": c2, "ConversationId": conv2,
               "CallCenterId": cc}),
    );
    b.add(
        "VoiceCall",
        &nid("0LQ", 3),
        Some("c3c3c3c3-3333-4c1a-9d55-000000000003"),
        json!({"Name": "VC-00000003", "VendorCallKey": "c3c3c3c3-3333-4c1a-9d55-000000000003", "CallType": "Outbound",
               "CallDisposition": "in-progress", "CallStartDateTime": "2024-05-10T09:00:00.000Z",
               "FromPhoneNumber": "+18005550100", "ToPhoneNumber": "+12125550199", "OwnerId": u2,
               "RelatedRecordId": a2, "CallCenterId": cc}),
    );
    b.add(
        "VoiceCall",
        &nid("0LQ", 4),
        Some("d4d4d4d4-4444-4c1a-9d55-000000000004"),
        json!({"Name": "VC-00000004", "VendorCallKey": "d4d4d4d4-4444-4c1a-9d55-000000000004", "CallType": "Inbound",
               "CallDisposition": "new", "CallStartDateTime": "2024-04-02T12:00:00.000Z",
               "CallDurationInSeconds": 61, "CustomerHoldDuration": 0, "NumberOfHolds": 0,
               "QueueName": "Support Queue", "FromPhoneNumber": "+15125550142",
               "Description": "Caller asked about a 50% discount", "DisconnectReason": "CUSTOMER_DISCONNECT",
               "Tier__c": "Silver", "CallCenterId": cc}),
    );
    b.add(
        "VoiceCall",
        &vc5,
        Some("UPPER-CASE-KEY-5"),
        json!({"Name": "VC-00000005", "VendorCallKey": "UPPER-CASE-KEY-5", "CallType": "Callback",
               "CallDisposition": "completed", "CallStartDateTime": "2023-12-31T23:59:59.999Z",
               "CallDurationInSeconds": 120, "CustomerHoldDuration": 15, "NumberOfHolds": 2,
               "LongestHoldDuration": 10, "NextCallId": vc6, "OwnerId": u1, "CallCenterId": cc}),
    );
    b.add(
        "VoiceCall",
        &vc6,
        Some("e6e6e6e6-6666-4c1a-9d55-000000000006"),
        json!({"Name": "VC-00000006", "VendorCallKey": "e6e6e6e6-6666-4c1a-9d55-000000000006", "CallType": "Consult",
               "CallDisposition": "in-progress", "CallStartDateTime": "2024-05-15T13:00:00.000Z",
               "PreviousCallId": vc5, "OwnerId": u1, "CallCenterId": cc}),
    );
    b.add(
        "VoiceCallRecording",
        &rec1,
        Some(&vc1),
        json!({"Name": "REC-1", "VoiceCallId": vc1, "MediaContentUrl": "https://recordings.example.com/vc1.wav",
               "DurationInSeconds": 290}),
    );
    b.add(
        "Conversation",
        &conv1,
        Some("5ca32fbd-8f92-46af-92a5-6b0f970f0efe"),
        json!({"Name": "00000001", "ConversationIdentifier": "ab123456-76d6-4d60-a53d-fb69d800b10c",
               "CallCenterId": cc, "Status": "Closed", "StartTime": "2024-05-15T14:00:00.000Z",
               "EndTime": "2024-05-15T14:05:00.000Z", "FirstVoiceCallId": vc1, "OnHold": false,
               "CreatedById": u1, "LastModifiedById": u1}),
    );
    b.add(
        "Conversation",
        &conv2,
        Some("8b0e4f8a-2222-4c1a-9d55-000000000002"),
        json!({"Name": "00000002", "ConversationIdentifier": "8b0e4f8a-2222-4c1a-9d55-000000000002",
               "CallCenterId": cc, "Status": "Open", "StartTime": "2024-05-14T23:30:00.000Z", "FirstVoiceCallId": vc2}),
    );
    b.add(
        "ConversationParticipant",
        &nid("0dv", 1),
        Some(&conv1),
        json!({"ConversationId": conv1, "ParticipantRole": "EndUser", "ParticipantKey": "+14155551234",
               "AppType": "telephony_integration"}),
    );
    b.add(
        "ConversationParticipant",
        &nid("0dv", 2),
        Some(&conv1),
        json!({"ConversationId": conv1, "ParticipantRole": "Agent", "ParticipantKey": id(&u1).to_18(),
               "AppType": "agent"}),
    );
    b.add(
        "ConversationParticipant",
        &nid("0dv", 3),
        Some(&conv2),
        json!({"ConversationId": conv2, "ParticipantRole": "EndUser", "ParticipantKey": "+12125550100",
               "AppType": "telephony_integration"}),
    );
    b.add(
        "CustomField",
        &nid("00N", 1),
        Some("VoiceCall.Tier__c"),
        json!({"Object": "VoiceCall", "Name": "Tier__c", "Label": "Tier", "Type": "Picklist",
               "PicklistValues": ["Gold", "Silver"]}),
    );

    let mut out = b.records;
    for (n, (sender, text, start)) in [
        ("Agent", "Hello, thanks for calling Acme.", 1_715_781_605_000_i64),
        ("EndUser", "Hi, I can't log in.", 1_715_781_610_000),
    ]
    .into_iter()
    .enumerate()
    {
        let n = u32::try_from(n).unwrap_or(0) + 1;
        out.push(transcript_record(&TranscriptEntry {
            id: id(&nid("0XM", n)),
            org: org(),
            conversation: id(&conv1),
            message_id: format!("msg-{n}"),
            vendor_call_key: "5ca32fbd-8f92-46af-92a5-6b0f970f0efe".into(),
            sender_type: sender.into(),
            participant_id: if sender == "Agent" { id(&u1).to_18() } else { "+14155551234".into() },
            content: text.into(),
            start_ms: start,
            end_ms: start + 4_000,
            created_ms: start,
        }));
    }
    out
}

pub fn source() -> MemorySource {
    MemorySource::new(records())
}

/// The standard schema plus the org's custom fields.
pub fn schema() -> Schema {
    let mut s = Schema::standard();
    let records = records();
    let skipped = s.add_custom_field_records(records.iter().filter(|r| r.sobject == "CustomField"));
    assert!(skipped.is_empty(), "{skipped:?}");
    s
}
