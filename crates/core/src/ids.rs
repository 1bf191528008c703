//! Salesforce-style record ids.
//!
//! An id is 15 case-sensitive characters: a 3-character key prefix naming the object type,
//! then 12 base-62 characters. The 18-character form appends a 3-character checksum that
//! encodes which of the first 15 characters are upper-case, so the id survives
//! case-insensitive systems. Both forms are accepted everywhere; [`SfId`] stores the
//! 15-character form and renders either.

use std::fmt;

/// Key prefixes of the objects Voxbridge stores. The prefix is the first three characters
/// of every id and tells the object type apart without a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyPrefix {
    Organization,
    User,
    Group,
    CallCenter,
    CallCenterRoutingMap,
    VoiceCall,
    VoiceCallRecording,
    Conversation,
    ConversationParticipant,
    ConversationEntry,
    PendingServiceRouting,
    AgentWork,
    ServiceChannel,
    PhoneChannel,
    RoutingDefinition,
    IntelligenceSignal,
    Case,
    Contact,
    Account,
    Lead,
    RecordType,
    CustomField,
    ConnectedApp,
    AuthSession,
    QueryLocator,
    CustomObject,
    PlatformEvent,
    ConversationUpload,
    ConversationVendorInfo,
    MessagingTemplate,
    Automation,
    MessagingOutbox,
    MessagingDeliveryAttempt,
    CallbackRequest,
}

impl KeyPrefix {
    pub const ALL: [KeyPrefix; 34] = [
        KeyPrefix::Organization,
        KeyPrefix::User,
        KeyPrefix::Group,
        KeyPrefix::CallCenter,
        KeyPrefix::CallCenterRoutingMap,
        KeyPrefix::VoiceCall,
        KeyPrefix::VoiceCallRecording,
        KeyPrefix::Conversation,
        KeyPrefix::ConversationParticipant,
        KeyPrefix::ConversationEntry,
        KeyPrefix::PendingServiceRouting,
        KeyPrefix::AgentWork,
        KeyPrefix::ServiceChannel,
        KeyPrefix::PhoneChannel,
        KeyPrefix::RoutingDefinition,
        KeyPrefix::IntelligenceSignal,
        KeyPrefix::Case,
        KeyPrefix::Contact,
        KeyPrefix::Account,
        KeyPrefix::Lead,
        KeyPrefix::RecordType,
        KeyPrefix::CustomField,
        KeyPrefix::ConnectedApp,
        KeyPrefix::AuthSession,
        KeyPrefix::QueryLocator,
        KeyPrefix::CustomObject,
        KeyPrefix::PlatformEvent,
        KeyPrefix::ConversationUpload,
        KeyPrefix::ConversationVendorInfo,
        KeyPrefix::MessagingTemplate,
        KeyPrefix::Automation,
        KeyPrefix::MessagingOutbox,
        KeyPrefix::MessagingDeliveryAttempt,
        KeyPrefix::CallbackRequest,
    ];

    /// The three-character prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyPrefix::Organization => "00D",
            KeyPrefix::User => "005",
            KeyPrefix::Group => "00G",
            KeyPrefix::CallCenter => "04v",
            KeyPrefix::CallCenterRoutingMap => "0hM",
            KeyPrefix::VoiceCall => "0LQ",
            KeyPrefix::VoiceCallRecording => "0Lr",
            KeyPrefix::Conversation => "0dw",
            KeyPrefix::ConversationParticipant => "0dv",
            KeyPrefix::ConversationEntry => "0XM",
            KeyPrefix::PendingServiceRouting => "0JR",
            KeyPrefix::AgentWork => "0Bz",
            KeyPrefix::ServiceChannel => "0N9",
            KeyPrefix::PhoneChannel => "0qP",
            KeyPrefix::RoutingDefinition => "300",
            KeyPrefix::IntelligenceSignal => "1iS",
            KeyPrefix::Case => "500",
            KeyPrefix::Contact => "003",
            KeyPrefix::Account => "001",
            KeyPrefix::Lead => "00Q",
            KeyPrefix::RecordType => "012",
            KeyPrefix::CustomField => "00N",
            KeyPrefix::ConnectedApp => "0H4",
            KeyPrefix::AuthSession => "0Ak",
            KeyPrefix::QueryLocator => "01g",
            KeyPrefix::CustomObject => "a00",
            KeyPrefix::PlatformEvent => "e00",
            KeyPrefix::ConversationUpload => "0cU",
            KeyPrefix::ConversationVendorInfo => "0vI",
            KeyPrefix::MessagingTemplate => "0Jt",
            KeyPrefix::Automation => "301",
            KeyPrefix::MessagingOutbox => "0Mb",
            KeyPrefix::MessagingDeliveryAttempt => "0Md",
            KeyPrefix::CallbackRequest => "0Cq",
        }
    }

    /// The sObject type name records with this prefix have.
    pub fn sobject(self) -> &'static str {
        match self {
            KeyPrefix::Organization => "Organization",
            KeyPrefix::User => "User",
            KeyPrefix::Group => "Group",
            KeyPrefix::CallCenter => "CallCenter",
            KeyPrefix::CallCenterRoutingMap => "CallCenterRoutingMap",
            KeyPrefix::VoiceCall => "VoiceCall",
            KeyPrefix::VoiceCallRecording => "VoiceCallRecording",
            KeyPrefix::Conversation => "Conversation",
            KeyPrefix::ConversationParticipant => "ConversationParticipant",
            KeyPrefix::ConversationEntry => "ConversationEntry",
            KeyPrefix::PendingServiceRouting => "PendingServiceRouting",
            KeyPrefix::AgentWork => "AgentWork",
            KeyPrefix::ServiceChannel => "ServiceChannel",
            KeyPrefix::PhoneChannel => "ConversationChannelDefinition",
            KeyPrefix::RoutingDefinition => "FlowDefinitionView",
            KeyPrefix::IntelligenceSignal => "ConversationIntelligenceSignal",
            KeyPrefix::Case => "Case",
            KeyPrefix::Contact => "Contact",
            KeyPrefix::Account => "Account",
            KeyPrefix::Lead => "Lead",
            KeyPrefix::RecordType => "RecordType",
            KeyPrefix::CustomField => "CustomField",
            KeyPrefix::ConnectedApp => "ConnectedApp",
            KeyPrefix::AuthSession => "AuthSession",
            KeyPrefix::QueryLocator => "QueryLocator",
            // Custom objects share one prefix; their type name is the record's sobject.
            KeyPrefix::CustomObject => "CustomObject__c",
            KeyPrefix::PlatformEvent => "PlatformEvent",
            KeyPrefix::ConversationUpload => "ConversationUpload",
            KeyPrefix::ConversationVendorInfo => "ConversationVendorInfo",
            KeyPrefix::MessagingTemplate => "MessagingTemplate",
            KeyPrefix::Automation => "Automation",
            KeyPrefix::MessagingOutbox => "MessagingOutbox",
            KeyPrefix::MessagingDeliveryAttempt => "MessagingDeliveryAttempt",
            KeyPrefix::CallbackRequest => "CallbackRequest",
        }
    }

    pub fn from_prefix(s: &str) -> Option<KeyPrefix> {
        KeyPrefix::ALL.into_iter().find(|p| p.as_str() == s)
    }

    pub fn from_sobject(s: &str) -> Option<KeyPrefix> {
        KeyPrefix::ALL.into_iter().find(|p| p.sobject().eq_ignore_ascii_case(s))
    }
}

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("an id has 15 or 18 characters, this one has {0}")]
    Length(usize),
    #[error("an id contains only letters and digits")]
    Charset,
    #[error("the last three characters of an 18-character id are a checksum that does not match")]
    Checksum,
    #[error("expected an id starting with {expected}, got one starting with {found}")]
    WrongPrefix { expected: &'static str, found: String },
}

/// A Salesforce-style id, stored in its 15-character case-sensitive form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SfId(String);

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const CHECKSUM_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

impl SfId {
    /// Parses a 15- or 18-character id. The checksum of an 18-character id is verified
    /// case-insensitively (that is its purpose), and the case of the first 15 characters is
    /// restored from it so `001abc...` typed in lower case still resolves.
    pub fn parse(s: &str) -> Result<SfId, IdError> {
        let len = s.chars().count();
        if len != 15 && len != 18 {
            return Err(IdError::Length(len));
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(IdError::Charset);
        }
        let (body, sum) = s.split_at(15);
        if sum.is_empty() {
            return Ok(SfId(body.to_string()));
        }
        let sum = sum.to_ascii_uppercase();
        if checksum(body) == sum {
            return Ok(SfId(body.to_string()));
        }
        // The case of the body may have been lost on the way: rebuild it from the checksum.
        match restore_case(body, &sum) {
            Some(restored) if checksum(&restored) == sum => Ok(SfId(restored)),
            _ => Err(IdError::Checksum),
        }
    }

    /// Parses and checks the key prefix.
    pub fn parse_with(s: &str, prefix: KeyPrefix) -> Result<SfId, IdError> {
        let id = SfId::parse(s)?;
        if id.prefix_str() != prefix.as_str() {
            return Err(IdError::WrongPrefix {
                expected: prefix.as_str(),
                found: id.prefix_str().to_string(),
            });
        }
        Ok(id)
    }

    /// A fresh random id with the given prefix. The two characters after the prefix mark
    /// the instance in real orgs; Voxbridge uses `VX`.
    pub fn generate(prefix: KeyPrefix, rng: &mut impl rand::Rng) -> SfId {
        let mut s = String::with_capacity(15);
        s.push_str(prefix.as_str());
        s.push_str("VX");
        s.push('0');
        for _ in 0..9 {
            s.push(BASE62[rng.gen_range(0..62)] as char);
        }
        SfId(s)
    }

    /// The 15-character form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 18-character form.
    pub fn to_18(&self) -> String {
        let mut s = self.0.clone();
        s.push_str(&checksum(&self.0));
        s
    }

    pub fn prefix_str(&self) -> &str {
        &self.0[..3]
    }

    pub fn prefix(&self) -> Option<KeyPrefix> {
        KeyPrefix::from_prefix(self.prefix_str())
    }

    /// True when `s` is this id in either form.
    pub fn matches(&self, s: &str) -> bool {
        SfId::parse(s).map(|o| o == *self).unwrap_or(false)
    }
}

fn checksum(body: &str) -> String {
    let bytes = body.as_bytes();
    let mut out = String::with_capacity(3);
    for chunk in 0..3 {
        let mut bits = 0usize;
        for i in 0..5 {
            if bytes[chunk * 5 + i].is_ascii_uppercase() {
                bits |= 1 << i;
            }
        }
        out.push(CHECKSUM_ALPHABET[bits] as char);
    }
    out
}

fn restore_case(body: &str, sum: &str) -> Option<String> {
    let sum = sum.as_bytes();
    let mut out = String::with_capacity(15);
    for (chunk, c) in sum.iter().enumerate() {
        let bits = CHECKSUM_ALPHABET.iter().position(|a| a == c)?;
        for i in 0..5 {
            let ch = body.as_bytes()[chunk * 5 + i] as char;
            if bits & (1 << i) != 0 {
                out.push(ch.to_ascii_uppercase());
            } else {
                out.push(ch.to_ascii_lowercase());
            }
        }
    }
    Some(out)
}

/// Replaces every id Voxbridge generated (`<prefix>VX0<9 characters>`, in its 15- or
/// 18-character form) inside `text` with `[<prefix> id]`, so output that carries fresh ids
/// (test snapshots, examples in docs) stays the same from run to run.
pub fn redact_generated(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if i + 15 <= b.len()
            && &b[i + 3..i + 6] == b"VX0"
            && b[i..i + 15].iter().all(u8::is_ascii_alphanumeric)
        {
            let mut end = i + 15;
            if end + 3 <= b.len() && b[end..end + 3].iter().all(u8::is_ascii_alphanumeric) {
                end += 3;
            }
            out.push('[');
            out.push_str(&text[i..i + 3]);
            out.push_str(" id]");
            i = end;
        } else {
            let c = text[i..].chars().next().unwrap_or('?');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// [`redact_generated`] over every string of a JSON value; the values of `volatile` keys
/// (times taken from the clock, durations) become `"[volatile]"` when not null.
pub fn redact_generated_json(v: &serde_json::Value, volatile: &[&str]) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(redact_generated(s)),
        Value::Array(a) => Value::Array(a.iter().map(|x| redact_generated_json(x, volatile)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    if volatile.contains(&k.as_str()) && !x.is_null() {
                        (k.clone(), Value::String("[volatile]".into()))
                    } else {
                        (k.clone(), redact_generated_json(x, volatile))
                    }
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

impl fmt::Display for SfId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SfId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SfId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_checksums() {
        // Pairs from real orgs' 15/18 forms.
        let id = SfId::parse("0LQRM0000006CSz").unwrap();
        assert_eq!(id.to_18(), "0LQRM0000006CSz4AM");
        let id = SfId::parse("00DRM000000GuTE").unwrap();
        assert_eq!(id.to_18().len(), 18);
        assert_eq!(SfId::parse(&id.to_18()).unwrap(), id);
        let acct = SfId::parse("001D000000IqhSL").unwrap();
        assert_eq!(acct.to_18(), "001D000000IqhSLIAZ");
    }

    #[test]
    fn eighteen_restores_case() {
        let id = SfId::parse("001D000000IqhSLIAZ").unwrap();
        assert_eq!(id.as_str(), "001D000000IqhSL");
        let lower = SfId::parse("001d000000iqhsliaz").unwrap();
        assert_eq!(lower, id);
    }

    #[test]
    fn rejects_bad() {
        assert_eq!(SfId::parse("abc"), Err(IdError::Length(3)));
        assert_eq!(SfId::parse("0LQRM0000006CS-"), Err(IdError::Charset));
        assert!(SfId::parse_with("0LQRM0000006CSz", KeyPrefix::User).is_err());
    }

    #[test]
    fn generated_ids_round_trip() {
        let mut rng = rand::thread_rng();
        for p in KeyPrefix::ALL {
            let id = SfId::generate(p, &mut rng);
            assert_eq!(id.prefix(), Some(p));
            assert_eq!(SfId::parse(&id.to_18()).unwrap(), id);
        }
    }

    #[test]
    fn redaction_of_generated_ids() {
        assert_eq!(redact_generated("call 0LQVX0abcdefghi ok"), "call [0LQ id] ok");
        assert_eq!(redact_generated("0LQVX0abcdefghiAAA é"), "[0LQ id] é");
        assert_eq!(redact_generated("0LQRM0000006CSz"), "0LQRM0000006CSz");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = SfId::parse(&s);
        }
    }
}
