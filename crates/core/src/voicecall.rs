//! The voice-call lifecycle rules of the Telephony Integration API: what creating and
//! updating a VoiceCall writes, how `callAttributes` are validated against the org's field
//! definitions, and when a conversation closes.
//!
//! The functions here compute field maps; the server gives them ids and stores them.

use serde_json::{Number, Value};

use crate::error::ApiError;
use crate::record::{Fields, Record};
use crate::time::format_ms;

/// `initiationMethod` of a create request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitiationMethod {
    Inbound,
    Transfer,
}

impl InitiationMethod {
    /// Parses case-insensitively; outbound calls are not created through this API.
    pub fn parse(s: &str) -> Result<InitiationMethod, ApiError> {
        match s.to_ascii_lowercase().as_str() {
            "inbound" => Ok(InitiationMethod::Inbound),
            "transfer" => Ok(InitiationMethod::Transfer),
            "outbound" => Err(ApiError::invalid(
                "initiationMethod",
                "Outbound is not supported: outbound voice calls are created by the rep's console",
            )),
            _ => {
                Err(ApiError::invalid("initiationMethod", format!("must be Inbound or Transfer, got `{s}`")))
            }
        }
    }

    pub fn call_type(self) -> &'static str {
        match self {
            InitiationMethod::Inbound => "Inbound",
            InitiationMethod::Transfer => "Transfer",
        }
    }
}

/// `callSubtype`: the network the call uses.
pub fn parse_call_subtype(s: Option<&str>) -> Result<&'static str, ApiError> {
    match s.map(|s| s.to_ascii_lowercase()) {
        None => Ok("PSTN"),
        Some(s) if s.is_empty() || s == "pstn" => Ok("PSTN"),
        Some(s) if s == "webrtc" => Ok("WebRTC"),
        Some(other) => {
            Err(ApiError::invalid("callSubtype", format!("must be PSTN or WebRTC, got `{other}`")))
        }
    }
}

/// `callOrigin`: Preview, Progressive or Voicemail.
pub fn parse_call_origin(s: &str) -> Result<&'static str, ApiError> {
    match s.to_ascii_lowercase().as_str() {
        "preview" => Ok("Preview"),
        "progressive" => Ok("Progressive"),
        "voicemail" => Ok("Voicemail"),
        _ => Err(ApiError::invalid(
            "callOrigin",
            format!("must be Preview, Progressive or Voicemail, got `{s}`"),
        )),
    }
}

/// Field types a custom field may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Number,
    Checkbox,
    Date,
    DateTime,
    Picklist(Vec<String>),
    Phone,
    Email,
}

/// A field that `callAttributes` may set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDef {
    pub name: String,
    pub kind: FieldKind,
    pub length: Option<usize>,
    pub required: bool,
}

impl FieldDef {
    /// Reads a `CustomField` record (see ARCHITECTURE.md); `None` if it is not well-formed.
    pub fn from_record(r: &Record) -> Option<FieldDef> {
        let name = r.str("Name")?.to_string();
        let kind = match r.str("Type")?.to_ascii_lowercase().as_str() {
            "text" | "textarea" | "string" => FieldKind::Text,
            "number" | "double" | "int" | "currency" | "percent" => FieldKind::Number,
            "checkbox" | "boolean" => FieldKind::Checkbox,
            "date" => FieldKind::Date,
            "datetime" => FieldKind::DateTime,
            "phone" => FieldKind::Phone,
            "email" => FieldKind::Email,
            "picklist" => FieldKind::Picklist(
                r.fields
                    .get("PicklistValues")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default(),
            ),
            _ => return None,
        };
        let length = r.i64("Length").and_then(|l| usize::try_from(l).ok());
        Some(FieldDef { name, kind, length, required: r.bool("Required").unwrap_or(false) })
    }
}

/// Standard VoiceCall fields that `callAttributes` may set, with their types.
pub fn standard_attribute_fields() -> Vec<FieldDef> {
    let text = |n: &str, len| FieldDef {
        name: n.to_string(),
        kind: FieldKind::Text,
        length: Some(len),
        required: false,
    };
    vec![
        FieldDef {
            name: "SourceType".into(),
            kind: FieldKind::Picklist(vec!["Sales".into(), "Service".into()]),
            length: None,
            required: false,
        },
        text("CallerContactInfo", 255),
        text("RecipientContactInfo", 255),
        text("Description", 32_000),
        FieldDef {
            name: "CallResolution".into(),
            kind: FieldKind::Picklist(vec!["Resolved".into(), "Unresolved".into()]),
            length: None,
            required: false,
        },
        text("RelatedRecordId", 18),
        text("RecordTypeId", 18),
    ]
}

/// Validates `callAttributes` against the field definitions. Good values are returned as
/// fields to store; every problem becomes one message in the CRM platform's wording. Errors
/// never block the write: the API stores what it can and reports the rest.
pub fn validate_attributes(attrs: &Fields, defs: &[FieldDef]) -> (Fields, Vec<String>) {
    let mut out = Fields::new();
    let mut errors = Vec::new();
    for (name, value) in attrs {
        let Some(def) = defs.iter().find(|d| d.name.eq_ignore_ascii_case(name)) else {
            errors.push(format!("No such column '{name}' on entity 'VoiceCall'"));
            continue;
        };
        match coerce(def, value) {
            Ok(v) => {
                out.insert(def.name.clone(), v);
            }
            Err(e) => errors.push(e),
        }
    }
    let missing: Vec<&str> = defs
        .iter()
        .filter(|d| d.required && !out.get(&d.name).is_some_and(|v| !v.is_null() && v != ""))
        .map(|d| d.name.as_str())
        .collect();
    if !missing.is_empty() {
        errors.insert(0, format!("Required fields are missing: [{}]", missing.join(", ")));
    }
    (out, errors)
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn coerce(def: &FieldDef, value: &Value) -> Result<Value, String> {
    let name = &def.name;
    if value.is_null() {
        return Ok(Value::Null);
    }
    let bad_type = || format!("{name}: value not of required type: {}", shown(value));
    match &def.kind {
        FieldKind::Text | FieldKind::Phone | FieldKind::Email => {
            let s = match value {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => value.to_string(),
                _ => return Err(bad_type()),
            };
            if let Some(max) = def.length {
                if s.chars().count() > max {
                    return Err(format!("{name}: data value too large: {s}"));
                }
            }
            if def.kind == FieldKind::Email && !s.is_empty() && !s.contains('@') {
                return Err(format!("{name}: invalid email address: {s}"));
            }
            Ok(Value::String(s))
        }
        FieldKind::Number => match value {
            Value::Number(n) => Ok(Value::Number(n.clone())),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(|f| {
                    if f.fract() == 0.0 && f.abs() < 9e15 {
                        Some(Number::from(f as i64))
                    } else {
                        Number::from_f64(f)
                    }
                })
                .map(Value::Number)
                .ok_or_else(bad_type),
            _ => Err(bad_type()),
        },
        FieldKind::Checkbox => match value {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(bad_type()),
        },
        FieldKind::Date => match value
            .as_str()
            .and_then(|s| chrono::NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok())
        {
            Some(d) => Ok(Value::String(d.format("%Y-%m-%d").to_string())),
            None => Err(bad_type()),
        },
        FieldKind::DateTime => match value.as_str().and_then(crate::time::parse_iso_ms) {
            Some(ms) => Ok(Value::String(format_ms(ms))),
            None => Err(bad_type()),
        },
        FieldKind::Picklist(values) => {
            let s = shown(value);
            match values.iter().find(|v| v.eq_ignore_ascii_case(&s)) {
                Some(v) => Ok(Value::String(v.clone())),
                None if values.is_empty() => Ok(Value::String(s)),
                None => Err(format!("{name}: bad value for restricted picklist field: {s}")),
            }
        }
    }
}

/// The `errors` member of a create response: `[]` when clean, otherwise the text the CRM
/// platform uses.
pub fn errors_value(errors: &[String]) -> Value {
    if errors.is_empty() {
        Value::Array(vec![])
    } else {
        Value::String(format!(
            "We created your voice call but there were some errors : {}",
            errors.join(", ")
        ))
    }
}

/// A create request after parsing and resolving references.
#[derive(Debug, Clone)]
pub struct NewCall {
    pub call_center_id: String,
    pub vendor_call_key: String,
    pub to: String,
    pub from: String,
    pub initiation: InitiationMethod,
    pub start_ms: i64,
    pub call_subtype: &'static str,
    pub call_origin: Option<&'static str>,
    /// Resolved `queue` (transfers only): queue id and its name.
    pub queue: Option<(String, String)>,
    pub provider: Option<String>,
    pub attributes: Fields,
}

/// The fields of a new VoiceCall. Linking (conversation, previous call) is added by the
/// caller, which knows the ids.
pub fn new_call_fields(c: &NewCall, defs: &[FieldDef]) -> (Fields, Vec<String>) {
    let (attrs, errors) = validate_attributes(&c.attributes, defs);
    let mut f = Fields::new();
    f.insert("CallCenterId".into(), c.call_center_id.clone().into());
    f.insert("VendorCallKey".into(), c.vendor_call_key.clone().into());
    f.insert("VendorType".into(), "ContactCenter".into());
    f.insert("CallType".into(), c.initiation.call_type().into());
    f.insert("CallDisposition".into(), "new".into());
    f.insert("CallStartDateTime".into(), format_ms(c.start_ms).into());
    f.insert("FromPhoneNumber".into(), c.from.clone().into());
    f.insert("ToPhoneNumber".into(), c.to.clone().into());
    f.insert("CallSubType".into(), c.call_subtype.into());
    if let Some(o) = c.call_origin {
        f.insert("CallOrigin".into(), o.into());
    }
    if let Some((id, name)) = &c.queue {
        f.insert("OwnerId".into(), id.clone().into());
        f.insert("QueueName".into(), name.clone().into());
    }
    if let Some(p) = &c.provider {
        f.insert("TelephonyProviderName".into(), p.clone().into());
    }
    f.insert("CallResolution".into(), "Resolved".into());
    for (k, v) in attrs {
        f.insert(k, v);
    }
    (f, errors)
}

/// An update request after parsing; times in epoch milliseconds.
#[derive(Debug, Clone, Default)]
pub struct CallUpdate {
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub enqueue_ms: Option<i64>,
    pub accept_ms: Option<i64>,
    pub from_number: Option<String>,
    pub total_hold: Option<i64>,
    pub longest_hold: Option<i64>,
    pub number_of_holds: Option<i64>,
    pub queue_name: Option<String>,
    /// The rep's user id, resolved from `agent`.
    pub agent_user_id: Option<String>,
    pub agent_interaction: Option<i64>,
    pub call_origin: Option<&'static str>,
    pub recording_location: Option<String>,
    pub total_recording: Option<i64>,
    pub attributes: Fields,
    /// `isActiveCall`; absent means false, as documented.
    pub is_active: bool,
    pub disconnect: Option<(String, bool)>,
    pub provider: Option<String>,
}

/// What an update writes, in the order it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdatePlan {
    /// First write: a VoiceCallRecording with these fields, when `recordingLocation` is set.
    pub recording: Option<Fields>,
    /// Second write: the VoiceCall fields.
    pub call: Fields,
    /// Close the conversation (the call ended and was not transferred on).
    pub close_conversation: bool,
    /// Delete the call's PendingServiceRouting.
    pub clear_routing: bool,
    /// Field problems; the update is still applied.
    pub errors: Vec<String>,
}

/// Computes an update of `current` (a VoiceCall).
pub fn plan_update(current: &Record, u: &CallUpdate, defs: &[FieldDef], now_ms: i64) -> UpdatePlan {
    let (attrs, mut errors) = validate_attributes(&u.attributes, defs);
    let mut f = Fields::new();
    let put_time = |f: &mut Fields, name: &str, v: Option<i64>| {
        if let Some(ms) = v {
            f.insert(name.to_string(), format_ms(ms).into());
        }
    };
    put_time(&mut f, "CallStartDateTime", u.start_ms);
    put_time(&mut f, "CallEndDateTime", u.end_ms);
    put_time(&mut f, "CallQueuedDateTime", u.enqueue_ms);
    put_time(&mut f, "CallAcceptDateTime", u.accept_ms);
    // Duration only when this request carries both ends, as documented.
    if let (Some(s), Some(e)) = (u.start_ms, u.end_ms) {
        if e >= s {
            f.insert("CallDurationInSeconds".into(), ((e - s) / 1000).into());
        } else {
            errors.push("CallDurationInSeconds: endTime is before startTime, duration not set".to_string());
        }
    }
    if let Some(n) = &u.from_number {
        f.insert("FromPhoneNumber".into(), n.clone().into());
    }
    if let Some(q) = &u.queue_name {
        f.insert("QueueName".into(), q.clone().into());
    }
    if let Some(a) = &u.agent_user_id {
        f.insert("OwnerId".into(), a.clone().into());
        f.insert("UserId".into(), a.clone().into());
    }
    if let Some(o) = u.call_origin {
        f.insert("CallOrigin".into(), o.into());
    }
    if let Some(p) = &u.provider {
        f.insert("TelephonyProviderName".into(), p.clone().into());
    }
    if let Some((value, is_error)) = &u.disconnect {
        f.insert("DisconnectReason".into(), value.clone().into());
        f.insert("IsDisconnectError".into(), (*is_error).into());
    }
    if let Some(l) = u.longest_hold {
        f.insert("LongestHoldDuration".into(), l.into());
    }
    // Hold metrics and interaction time are overwritten on every update and read as zero
    // when not passed.
    f.insert("CustomerHoldDuration".into(), u.total_hold.unwrap_or(0).into());
    f.insert("NumberOfHolds".into(), u.number_of_holds.unwrap_or(0).into());
    f.insert("AgentInteractionDuration".into(), u.agent_interaction.unwrap_or(0).into());

    let recording = u.recording_location.as_ref().map(|loc| {
        let duration =
            u.total_recording.unwrap_or_else(|| u.agent_interaction.unwrap_or(0) + u.total_hold.unwrap_or(0));
        let mut r = Fields::new();
        r.insert("VoiceCallId".into(), current.id.as_str().into());
        r.insert("MediaContentUrl".into(), loc.clone().into());
        r.insert("DurationInSeconds".into(), duration.into());
        r
    });
    if u.recording_location.is_none() && u.total_recording.is_some() {
        errors.push("totalRecordingDuration: recordingLocation is required to store a recording".to_string());
    }

    let transferred_on = current.str("NextCallId").is_some_and(|s| !s.is_empty());
    let close_conversation;
    let clear_routing;
    if u.is_active {
        f.insert("CallDisposition".into(), "in-progress".into());
        close_conversation = false;
        clear_routing = false;
    } else {
        f.insert("CallDisposition".into(), "completed".into());
        if current.str("CallEndDateTime").is_none() && u.end_ms.is_none() {
            f.insert("CallEndDateTime".into(), format_ms(now_ms).into());
        }
        close_conversation = !transferred_on;
        clear_routing = true;
    }
    for (k, v) in attrs {
        f.insert(k, v);
    }
    UpdatePlan { recording, call: f, close_conversation, clear_routing, errors }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{KeyPrefix, SfId};

    fn defs() -> Vec<FieldDef> {
        let mut d = standard_attribute_fields();
        d.push(FieldDef { name: "Text__c".into(), kind: FieldKind::Text, length: Some(10), required: false });
        d.push(FieldDef {
            name: "Picklist__c".into(),
            kind: FieldKind::Picklist(vec!["A".into()]),
            length: None,
            required: true,
        });
        d.push(FieldDef { name: "n__c".into(), kind: FieldKind::Number, length: None, required: false });
        d
    }

    #[test]
    fn attribute_errors_use_platform_wording() {
        let attrs: Fields = serde_json::from_str(
            r#"{"Text__c":"sample123456890","Nope__c":1,"n__c":"12","SourceType":"Sales"}"#,
        )
        .unwrap();
        let (ok, errors) = validate_attributes(&attrs, &defs());
        assert_eq!(ok.get("n__c"), Some(&Value::from(12)));
        assert_eq!(ok.get("SourceType"), Some(&Value::from("Sales")));
        assert_eq!(
            errors,
            vec![
                "Required fields are missing: [Picklist__c]".to_string(),
                "Text__c: data value too large: sample123456890".to_string(),
                "No such column 'Nope__c' on entity 'VoiceCall'".to_string(),
            ]
        );
        assert!(errors_value(&errors).as_str().unwrap().starts_with("We created your voice call but"));
        assert_eq!(errors_value(&[]), Value::Array(vec![]));
    }

    #[test]
    fn update_closes_unless_active() {
        let mut rng = rand::thread_rng();
        let call = Record::new(
            SfId::generate(KeyPrefix::VoiceCall, &mut rng),
            SfId::generate(KeyPrefix::Organization, &mut rng),
            "VoiceCall",
            None,
            0,
        );
        let u = CallUpdate {
            start_ms: Some(1000),
            end_ms: Some(21_000),
            total_hold: Some(5),
            ..Default::default()
        };
        let plan = plan_update(&call, &u, &[], 50_000);
        assert!(plan.close_conversation && plan.clear_routing);
        assert_eq!(plan.call["CallDisposition"], "completed");
        assert_eq!(plan.call["CallDurationInSeconds"], 20);
        assert_eq!(plan.call["NumberOfHolds"], 0);
        let active = CallUpdate {
            is_active: true,
            recording_location: Some("s3://r".into()),
            total_hold: Some(3),
            agent_interaction: Some(7),
            ..Default::default()
        };
        let plan = plan_update(&call, &active, &[], 50_000);
        assert!(!plan.close_conversation && !plan.clear_routing);
        assert_eq!(plan.call["CallDisposition"], "in-progress");
        assert_eq!(plan.recording.unwrap()["DurationInSeconds"], 10);
    }
}
