//! CRM records: every stored object (VoiceCall, Conversation, User, Group, ...) is a record
//! with an id, an sObject type, an owning org and a map of field values, as on the CRM
//! platform itself. Typed helpers in other modules read and write well-known fields.

use crate::ids::SfId;
use serde_json::{Map, Value};

/// Field name → value. Values are mostly JSON scalars (strings, numbers, booleans, null);
/// dates and datetimes are ISO-8601 strings. A few metadata fields hold structured JSON
/// (a routing definition's `Rule`, a custom field's `PicklistValues`).
pub type Fields = Map<String, Value>;

/// One stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: SfId,
    pub org: SfId,
    /// The sObject type, e.g. `VoiceCall`.
    pub sobject: String,
    /// An indexed lookup key whose meaning depends on the type: `VendorCallKey` for a
    /// VoiceCall, `DeveloperName` for a queue, the API name of a call center. Several
    /// records may share one key.
    pub key: Option<String>,
    pub fields: Fields,
    /// Milliseconds since the Unix epoch.
    pub created_ms: i64,
    pub modified_ms: i64,
}

impl Record {
    pub fn new(id: SfId, org: SfId, sobject: impl Into<String>, key: Option<String>, now_ms: i64) -> Record {
        Record {
            id,
            org,
            sobject: sobject.into(),
            key,
            fields: Fields::new(),
            created_ms: now_ms,
            modified_ms: now_ms,
        }
    }

    /// A string field, if present and a string.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }

    pub fn i64(&self, name: &str) -> Option<i64> {
        self.fields.get(name).and_then(Value::as_i64)
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.fields.get(name).and_then(Value::as_bool)
    }

    pub fn set(&mut self, name: &str, value: impl Into<Value>) {
        self.fields.insert(name.to_string(), value.into());
    }
}

/// One transcript utterance of a conversation (a ConversationEntry). Stored apart from
/// other records because it is the highest-volume write and is deduplicated by
/// `(conversation, message_id)`.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptEntry {
    pub id: SfId,
    pub org: SfId,
    pub conversation: SfId,
    /// The client's message id; unique within a conversation.
    pub message_id: String,
    /// The vendorCallKey the message was posted under.
    pub vendor_call_key: String,
    pub sender_type: String,
    /// Participant id after the privacy rewrites.
    pub participant_id: String,
    pub content: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub created_ms: i64,
}
