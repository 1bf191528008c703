//! CTRDataSyncFunction as a pure core, without IO: which contact trace records (CTRs) are
//! synced to VoiceCall records ([`should_process`]), the CTR → VoiceCall field transform of
//! the Telephony Integration API ([`transform`], `transformCTR` of the reference Lambda,
//! field for field), and the VoiceCall sObject fields the CRM REST API writes from it
//! ([`voice_call_fields`]).
//!
//! The reference Lambda is JavaScript; where its behaviour depends on JavaScript truthiness
//! (`if (ctr.Agent)`, `vm_flag && Recordings`), [`truthy`] reproduces it: `null`, `false`,
//! `0`, `""` and absence are false, everything else (also `"0"`, `[]` and `{}`) is true.
//!
//! Custom fields are configured, not coded: a [`FieldMapping`] names CTR JSON paths
//! (`Attributes.ConnectionAttempts`, `DisconnectReason`) whose values go into the call
//! attributes under custom field names (`ConnectionAttempts__c`), as the "Customize Synced
//! CTR Fields" recipe does by editing `transformCTR`.
//!
//! Nothing here panics on any input.

use std::fmt;

use serde_json::{json, Map, Value};

/// The initiation methods the sync accepts (the newer Lambda adds `QUEUE_TRANSFER`).
pub const SUPPORTED_INITIATION_METHODS: [&str; 7] =
    ["INBOUND", "OUTBOUND", "TRANSFER", "CALLBACK", "API", "WEBRTC_API", "QUEUE_TRANSFER"];

/// Disconnect reasons reported as errors (`disconnectReason.isError`).
const ERROR_DISCONNECT_REASONS: [&str; 3] = ["TELECOM_PROBLEM", "CONTACT_FLOW_DISCONNECT", "OTHER"];

/// The contact attribute prefix that marks attributes for the VoiceCall (`sfdc-Name__c`).
const ATTRIBUTE_PREFIX: &str = "sfdc-";

/// Why a CTR is not synced. Skips are not failures: the record is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// `Attributes.NoSync` is the string `"true"` (the "Disable CTR Sync" recipe).
    NoSync,
    /// The initiation method is missing or not one of [`SUPPORTED_INITIATION_METHODS`].
    UnsupportedInitiationMethod(Option<String>),
    /// The CTR has no `ContactId`.
    MissingContactId,
    /// A voicemail with its recordings (`Attributes.vm_flag` and `Recordings` set): the
    /// voicemail pipeline updates that VoiceCall.
    Voicemail,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::NoSync => write!(f, "the contact attribute NoSync is true"),
            SkipReason::UnsupportedInitiationMethod(Some(m)) => {
                write!(f, "initiation method {m:?} is not synced")
            }
            SkipReason::UnsupportedInitiationMethod(None) => write!(f, "the CTR has no initiation method"),
            SkipReason::MissingContactId => write!(f, "the CTR has no ContactId"),
            SkipReason::Voicemail => {
                write!(f, "a voicemail with recordings is left to the voicemail pipeline")
            }
        }
    }
}

/// JavaScript truthiness of an optional JSON value.
pub fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(_) | Value::Object(_)) => true,
    }
}

/// Whether the CTR is synced, checked in the reference Lambda's order.
pub fn should_process(ctr: &Value) -> Result<(), SkipReason> {
    let attributes = ctr.get("Attributes");
    if attributes.and_then(|a| a.get("NoSync")).and_then(Value::as_str) == Some("true") {
        return Err(SkipReason::NoSync);
    }
    let method = ctr.get("InitiationMethod").and_then(Value::as_str);
    if !method.is_some_and(|m| SUPPORTED_INITIATION_METHODS.contains(&m)) {
        return Err(SkipReason::UnsupportedInitiationMethod(
            ctr.get("InitiationMethod").filter(|v| !v.is_null()).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        ));
    }
    if contact_id(ctr).is_none() {
        return Err(SkipReason::MissingContactId);
    }
    if truthy(attributes.and_then(|a| a.get("vm_flag"))) && truthy(ctr.get("Recordings")) {
        return Err(SkipReason::Voicemail);
    }
    Ok(())
}

/// The CTR's `ContactId` when it is a non-empty string.
pub fn contact_id(ctr: &Value) -> Option<&str> {
    ctr.get("ContactId").and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// `LastUpdateTimestamp` in epoch milliseconds, when present and readable.
pub fn last_update_ms(ctr: &Value) -> Option<i64> {
    ctr.get("LastUpdateTimestamp").and_then(Value::as_str).and_then(parse_time_ms)
}

/// Whether a CTR updated at `incoming_ms` may be applied over one applied at `applied_ms`.
/// Delivery is at least once and unordered: the newest `LastUpdateTimestamp` wins, an equal
/// one is applied again (a redelivery after a failure), and a CTR without a readable
/// timestamp only when nothing was applied yet.
pub fn supersedes(incoming_ms: Option<i64>, applied_ms: Option<i64>) -> bool {
    match (incoming_ms, applied_ms) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(i), Some(a)) => i >= a,
    }
}

/// One configured custom field: the VoiceCall field and the CTR path its value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedField {
    pub field: String,
    pub path: Vec<String>,
}

/// Extra CTR values synced to custom VoiceCall fields (the "Customize Synced CTR Fields"
/// recipe as configuration). Empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldMapping {
    fields: Vec<MappedField>,
}

impl FieldMapping {
    /// Parses `(VoiceCall field, CTR path)` pairs. A path is dot-separated keys from the CTR
    /// root (`Attributes.ConnectionAttempts`, `Agent.RoutingProfile.Name`; an optional `$.`
    /// in front), where a numeric part indexes an array (`Recordings.0.Location`). Field
    /// names are letters, digits and `_`, starting with a letter.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<FieldMapping, String> {
        let mut fields = Vec::new();
        for (field, path) in pairs {
            let valid_name = field.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_name {
                return Err(format!(
                    "{field:?} is not a field name (letters, digits and _, starting with a letter)"
                ));
            }
            let trimmed = path.trim();
            let trimmed = trimmed.strip_prefix("$.").unwrap_or(trimmed);
            let parts: Vec<String> = trimmed.split('.').map(str::to_string).collect();
            if trimmed.is_empty() || parts.iter().any(String::is_empty) {
                return Err(format!("{path:?} (for {field}) is not a CTR path like Attributes.Name"));
            }
            fields.push(MappedField { field: field.to_string(), path: parts });
        }
        Ok(FieldMapping { fields })
    }

    pub fn fields(&self) -> &[MappedField] {
        &self.fields
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// The value at `path` inside `root`, if any.
fn at_path<'a>(root: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(root, |v, part| match v {
        Value::Object(m) => m.get(part),
        Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// What [`transform`] produces: the Telephony Integration API's `updateVoiceCall` input.
#[derive(Debug, Clone, PartialEq)]
pub struct Transformed {
    pub contact_id: Option<String>,
    pub fields: Map<String, Value>,
}

impl Transformed {
    /// `{contactId, fields}`, as the reference Lambda returns it.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        if let Some(id) = &self.contact_id {
            out.insert("contactId".into(), Value::String(id.clone()));
        }
        out.insert("fields".into(), Value::Object(self.fields.clone()));
        Value::Object(out)
    }

    /// The call attributes as an object (they travel as a JSON string).
    pub fn call_attributes(&self) -> Map<String, Value> {
        match self.fields.get("callAttributes").and_then(Value::as_str).map(serde_json::from_str::<Value>) {
            Some(Ok(Value::Object(m))) => m,
            _ => Map::new(),
        }
    }
}

/// The `sfdc-*` contact attributes with the prefix removed, plus
/// `sf_realtime_transcription_status` when it is set (`getCallAttributes`).
pub fn call_attributes(raw: &Map<String, Value>) -> Map<String, Value> {
    let status = raw.get("sf_realtime_transcription_status").filter(|v| truthy(Some(v)));
    let mut out = Map::new();
    // The reference sets the status inside its loop, so its position among the keys depends
    // on where the loop meets it first: after the first attribute, whatever that is.
    for (key, value) in raw {
        if let Some(name) = key.strip_prefix(ATTRIBUTE_PREFIX) {
            out.insert(name.to_string(), value.clone());
        }
        if let Some(s) = status {
            out.insert("sf_realtime_transcription_status".into(), s.clone());
        }
    }
    out
}

/// The CTR → VoiceCall transform (`transformCTR`), plus the configured custom fields in
/// the call attributes. Keys whose value would be null are left out, except that
/// `disconnectReason` is always there.
pub fn transform(ctr: &Value, mapping: &FieldMapping) -> Transformed {
    let mut f = Map::new();
    let set = |f: &mut Map<String, Value>, key: &str, v: Option<&Value>| {
        if let Some(v) = v.filter(|v| !v.is_null()) {
            f.insert(key.to_string(), v.clone());
        }
    };
    set(&mut f, "startTime", ctr.get("InitiationTimestamp"));
    set(&mut f, "endTime", ctr.get("DisconnectTimestamp"));
    set(&mut f, "parentCallIdentifier", ctr.get("PreviousContactId"));

    if let Some(agent) = ctr.get("Agent").filter(|a| truthy(Some(a))) {
        set(&mut f, "acceptTime", agent.get("ConnectedToAgentTimestamp"));
        set(&mut f, "totalHoldDuration", agent.get("CustomerHoldDuration"));
        set(&mut f, "longestHoldDuration", agent.get("LongestHoldDuration"));
        set(&mut f, "agentInteractionDuration", agent.get("AgentInteractionDuration"));
        set(&mut f, "numberOfHolds", agent.get("NumberOfHolds"));
    }
    if let Some(queue) = ctr.get("Queue").filter(|q| truthy(Some(q))) {
        set(&mut f, "enqueueTime", queue.get("EnqueueTimestamp"));
        set(&mut f, "queue", queue.get("Name"));
    }

    let address = |key: &str| ctr.get(key).filter(|e| truthy(Some(e))).and_then(|e| e.get("Address"));
    if let Some(method) = ctr.get("InitiationMethod").filter(|m| truthy(Some(m))) {
        let shown = match method.as_str() {
            Some("API") => json!("INBOUND"),
            Some("QUEUE_TRANSFER") => json!("TRANSFER"),
            _ => method.clone(),
        };
        f.insert("initiationMethod".into(), shown);
        let attribute =
            |key: &str| ctr.get("Attributes").and_then(|a| a.get(key)).filter(|v| truthy(Some(v))).cloned();
        match method.as_str() {
            Some("OUTBOUND" | "CALLBACK") => {
                set(&mut f, "fromNumber", address("SystemEndpoint"));
                set(&mut f, "toNumber", address("CustomerEndpoint"));
            }
            Some("WEBRTC_API") => {
                let from = attribute("WebRTC_From")
                    .or_else(|| address("SystemEndpoint").filter(|v| truthy(Some(v))).cloned())
                    .unwrap_or_else(|| json!("WebRTC_Default"));
                f.insert("fromNumber".into(), from);
                let to = attribute("WebRTC_To").or_else(|| address("CustomerEndpoint").cloned());
                set(&mut f, "toNumber", to.as_ref());
            }
            _ => {
                set(&mut f, "toNumber", address("SystemEndpoint"));
                set(&mut f, "fromNumber", address("CustomerEndpoint"));
            }
        }
        let sub_type = if method.as_str() == Some("WEBRTC_API") { "WebRTC" } else { "PSTN" };
        f.insert("callSubType".into(), json!(sub_type));
    }

    if let Some(recording) = ctr.get("Recording").filter(|r| truthy(Some(r))) {
        set(&mut f, "recordingLocation", recording.get("Location"));
    }

    let raw_attributes = ctr.get("Attributes").filter(|a| truthy(Some(a)));
    let mut attributes = match raw_attributes {
        Some(Value::Object(m)) => Some(call_attributes(m)),
        Some(_) => Some(Map::new()),
        None => None,
    };
    for m in mapping.fields() {
        if let Some(v) = at_path(ctr, &m.path).filter(|v| truthy(Some(v))) {
            attributes.get_or_insert_with(Map::new).insert(m.field.clone(), v.clone());
        }
    }
    if let Some(attributes) = attributes {
        f.insert("callAttributes".into(), Value::String(js_stringify(&Value::Object(attributes))));
    }

    let mut reason = Map::new();
    if let Some(v) = ctr.get("DisconnectReason") {
        reason.insert("value".into(), v.clone());
    }
    let is_error = ctr
        .get("DisconnectReason")
        .and_then(Value::as_str)
        .is_some_and(|r| ERROR_DISCONNECT_REASONS.contains(&r));
    reason.insert("isError".into(), Value::Bool(is_error));
    f.insert("disconnectReason".into(), Value::Object(reason));

    Transformed { contact_id: contact_id(ctr).map(str::to_string), fields: f }
}

/// `JSON.stringify` of a value: object keys that are array indices come first in numeric
/// order (JavaScript's property order) and whole floats print without a fraction.
pub fn js_stringify(v: &Value) -> String {
    fn normalize(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let index = |k: &str| k.parse::<u32>().ok().filter(|n| *n != u32::MAX && n.to_string() == k);
                let mut numeric: Vec<(u32, &String)> =
                    m.keys().filter_map(|k| index(k).map(|n| (n, k))).collect();
                numeric.sort_unstable();
                let mut out = Map::new();
                for (_, k) in numeric {
                    out.insert(k.clone(), normalize(&m[k]));
                }
                for (k, val) in m.iter().filter(|(k, _)| index(k).is_none()) {
                    out.insert(k.clone(), normalize(val));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
            Value::Number(n) if n.is_f64() => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => json!(f as i64),
                _ => v.clone(),
            },
            other => other.clone(),
        }
    }
    normalize(v).to_string()
}

/// Epoch milliseconds of an ISO-8601 time (`2020-08-07T06:09:34Z`, with or without
/// fraction or offset).
pub fn parse_time_ms(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s.trim()) {
        return Some(t.timestamp_millis());
    }
    chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

/// `2020-08-07T06:09:34.000Z`, the CRM's date-time form.
fn crm_time(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// `CallType` of a VoiceCall created from a CTR.
fn call_type(initiation_method: &str) -> &'static str {
    match initiation_method {
        "OUTBOUND" => "Outbound",
        "TRANSFER" => "Transfer",
        "CALLBACK" => "Callback",
        _ => "Inbound",
    }
}

/// A custom VoiceCall field the call attributes may set, as the org describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomField {
    /// The field's name as the org spells it (attribute names match it case-insensitively).
    pub name: String,
    /// A text field (text, text area, phone, email, URL, picklist): numbers, booleans and
    /// JSON values are written as their text.
    pub text: bool,
}

/// Dispositions that mean the VoiceCall has not been finished by anyone yet, so the CTR's
/// `completed` may replace them.
const OPEN_DISPOSITIONS: [&str; 2] = ["new", "in-progress"];

/// The VoiceCall sObject fields (CRM REST API names) to write for a transformed CTR.
///
/// * `existing` is the VoiceCall's current fields, `None` when it must be created (a missed
///   or abandoned call): then `VendorCallKey`, `CallType`, the phone numbers and
///   `CallSubType` are set too.
/// * `CallDisposition` becomes `completed` unless the VoiceCall already has a final one.
/// * `CustomerHoldDuration` and `NumberOfHolds` are 0 for a contact no agent took, so that
///   "`CustomerHoldDuration = null`" means "not synced yet", as the retry recipe assumes.
/// * Call attributes go to the custom VoiceCall fields `custom_field` finds for their names;
///   the others stay out.
pub fn voice_call_fields(
    t: &Transformed,
    existing: Option<&Map<String, Value>>,
    custom_field: &dyn Fn(&str) -> Option<CustomField>,
) -> Map<String, Value> {
    let f = &t.fields;
    let time = |key: &str| f.get(key).and_then(Value::as_str).and_then(parse_time_ms);
    let mut out = Map::new();
    let put_time = |out: &mut Map<String, Value>, field: &str, key: &str| {
        if let Some(s) = time(key).and_then(crm_time) {
            out.insert(field.into(), Value::String(s));
        }
    };
    put_time(&mut out, "CallStartDateTime", "startTime");
    put_time(&mut out, "CallEndDateTime", "endTime");
    put_time(&mut out, "CallAcceptDateTime", "acceptTime");
    put_time(&mut out, "CallQueuedDateTime", "enqueueTime");
    if let (Some(start), Some(end)) = (time("startTime"), time("endTime")) {
        out.insert("CallDurationInSeconds".into(), json!(((end - start) / 1000).max(0)));
    }
    let number = |key: &str| f.get(key).filter(|v| v.is_number()).cloned();
    out.insert("CustomerHoldDuration".into(), number("totalHoldDuration").unwrap_or(json!(0)));
    out.insert("NumberOfHolds".into(), number("numberOfHolds").unwrap_or(json!(0)));
    for (field, key) in [
        ("LongestHoldDuration", "longestHoldDuration"),
        ("AgentInteractionDuration", "agentInteractionDuration"),
    ] {
        if let Some(v) = number(key) {
            out.insert(field.into(), v);
        }
    }
    if let Some(q) = f.get("queue").and_then(Value::as_str) {
        out.insert("QueueName".into(), json!(q));
    }
    if let Some(reason) = f.get("disconnectReason") {
        if let Some(v) = reason.get("value").and_then(Value::as_str) {
            out.insert("DisconnectReason".into(), json!(v));
        }
        if let Some(e) = reason.get("isError").and_then(Value::as_bool) {
            out.insert("IsDisconnectError".into(), json!(e));
        }
    }
    let disposition_final = existing
        .and_then(|e| e.get("CallDisposition"))
        .and_then(Value::as_str)
        .is_some_and(|d| !d.is_empty() && !OPEN_DISPOSITIONS.iter().any(|o| d.eq_ignore_ascii_case(o)));
    if !disposition_final {
        out.insert("CallDisposition".into(), json!("completed"));
    }
    if existing.is_none() {
        if let Some(id) = &t.contact_id {
            out.insert("VendorCallKey".into(), json!(id));
        }
        let method = f.get("initiationMethod").and_then(Value::as_str).unwrap_or("INBOUND");
        out.insert("CallType".into(), json!(call_type(method)));
        for (field, key) in
            [("FromPhoneNumber", "fromNumber"), ("ToPhoneNumber", "toNumber"), ("CallSubType", "callSubType")]
        {
            if let Some(v) = f.get(key).and_then(Value::as_str) {
                out.insert(field.into(), json!(v));
            }
        }
    }
    for (name, value) in t.call_attributes() {
        let Some(field) = custom_field(&name) else { continue };
        if out.contains_key(&field.name) {
            continue;
        }
        let value = match value {
            Value::String(_) | Value::Null => value,
            other if field.text => Value::String(js_stringify(&other)),
            other => other,
        };
        out.insert(field.name, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truthiness_follows_javascript() {
        for v in [json!(null), json!(false), json!(0), json!(0.0), json!("")] {
            assert!(!truthy(Some(&v)), "{v}");
        }
        for v in [json!("0"), json!([]), json!({}), json!(1), json!("false")] {
            assert!(truthy(Some(&v)), "{v}");
        }
        assert!(!truthy(None));
    }

    #[test]
    fn mapped_paths_reach_into_objects_and_arrays() {
        let mapping = FieldMapping::parse([
            ("ConnectionAttempts__c", "Attributes.ConnectionAttempts"),
            ("DisconnectReason__c", "$.DisconnectReason"),
            ("FirstRecording__c", "Recordings.0.Location"),
            ("Missing__c", "Agent.Username"),
        ])
        .unwrap();
        let ctr = json!({
            "ContactId": "c1",
            "DisconnectReason": "CUSTOMER_DISCONNECT",
            "Recordings": [{"Location": "s3://b/k"}],
            "Attributes": {"ConnectionAttempts": "2", "sfdc-Topic__c": "billing"},
        });
        let t = transform(&ctr, &mapping);
        assert_eq!(
            t.fields["callAttributes"],
            r#"{"Topic__c":"billing","ConnectionAttempts__c":"2","DisconnectReason__c":"CUSTOMER_DISCONNECT","FirstRecording__c":"s3://b/k"}"#
        );
        assert!(FieldMapping::parse([("x y", "A")]).is_err());
        assert!(FieldMapping::parse([("X__c", "A..B")]).is_err());
        assert!(FieldMapping::parse([("X__c", "")]).is_err());
    }

    #[test]
    fn javascript_property_order_and_numbers() {
        let v: Value = serde_json::from_str(r#"{"b":1.0,"10":2,"a":[3.5],"2":true}"#).unwrap();
        assert_eq!(js_stringify(&v), r#"{"2":true,"10":2,"b":1,"a":[3.5]}"#);
    }

    #[test]
    fn voice_call_fields_for_update_and_create() {
        let ctr = json!({
            "ContactId": "c1",
            "InitiationMethod": "INBOUND",
            "InitiationTimestamp": "2020-08-07T06:09:34Z",
            "DisconnectTimestamp": "2020-08-07T06:09:41Z",
            "DisconnectReason": "CUSTOMER_DISCONNECT",
            "CustomerEndpoint": {"Address": "+14155550123"},
            "SystemEndpoint": {"Address": "+15550100100"},
            "Queue": {"Name": "Support", "EnqueueTimestamp": "2020-08-07T06:09:36Z"},
            "Attributes": {"sfdc-Topic__c": "billing", "sfdc-Unknown__c": "x"},
        });
        let t = transform(&ctr, &FieldMapping::default());
        let known = |n: &str| (n == "Topic__c").then(|| CustomField { name: n.to_string(), text: true });
        let existing: Map<String, Value> = serde_json::from_value(json!({"CallDisposition": "new"})).unwrap();
        let update = voice_call_fields(&t, Some(&existing), &known);
        assert_eq!(update["CallStartDateTime"], "2020-08-07T06:09:34.000Z");
        assert_eq!(update["CallDurationInSeconds"], 7);
        assert_eq!(update["CustomerHoldDuration"], 0);
        assert_eq!(update["QueueName"], "Support");
        assert_eq!(update["CallDisposition"], "completed");
        assert_eq!(update["IsDisconnectError"], false);
        assert_eq!(update["Topic__c"], "billing");
        assert!(!update.contains_key("Unknown__c"));
        assert!(!update.contains_key("VendorCallKey"));

        let done: Map<String, Value> =
            serde_json::from_value(json!({"CallDisposition": "transferred"})).unwrap();
        assert!(!voice_call_fields(&t, Some(&done), &known).contains_key("CallDisposition"));

        let created = voice_call_fields(&t, None, &known);
        assert_eq!(created["VendorCallKey"], "c1");
        assert_eq!(created["CallType"], "Inbound");
        assert_eq!(created["FromPhoneNumber"], "+14155550123");
        assert_eq!(created["ToPhoneNumber"], "+15550100100");
    }

    #[test]
    fn custom_fields_take_the_org_spelling_and_text_values() {
        let mapping =
            FieldMapping::parse([("Holds__c", "Agent.NumberOfHolds"), ("Count__c", "Agent.NumberOfHolds")])
                .unwrap();
        let ctr = json!({"ContactId": "c1", "Agent": {"NumberOfHolds": 2}});
        let t = transform(&ctr, &mapping);
        let fields = |n: &str| match n {
            "Holds__c" => Some(CustomField { name: "HOLDS__C".into(), text: true }),
            "Count__c" => Some(CustomField { name: "Count__c".into(), text: false }),
            _ => None,
        };
        let out = voice_call_fields(&t, None, &fields);
        assert_eq!(out["HOLDS__C"], "2");
        assert_eq!(out["Count__c"], 2);
    }

    #[test]
    fn newest_last_update_wins() {
        assert!(supersedes(Some(2), None));
        assert!(supersedes(None, None));
        assert!(supersedes(Some(2), Some(2)));
        assert!(!supersedes(Some(1), Some(2)));
        assert!(!supersedes(None, Some(2)));
        let ctr = json!({"LastUpdateTimestamp": "2020-08-07T06:09:41Z"});
        assert_eq!(last_update_ms(&ctr), Some(1_596_780_581_000));
    }

    #[test]
    fn odd_input_does_not_panic() {
        for ctr in [json!(null), json!([]), json!("x"), json!({"Agent": "x", "Queue": 3, "Attributes": [1]})]
        {
            let _ = should_process(&ctr);
            let t = transform(&ctr, &FieldMapping::default());
            let _ = voice_call_fields(&t, None, &|n| Some(CustomField { name: n.into(), text: true }));
        }
    }
}
