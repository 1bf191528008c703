//! Wire types of the Telephony Integration API: request bodies as the guide names them, and
//! the response bodies it documents. Requests are lenient about representation (numbers as
//! strings, single items for arrays) because XML bodies carry only text; unknown members
//! are ignored so clients that send extra fields (such as CTR sync) keep working.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use voxbridge_core::Fields;

use crate::body;

/// One participant of a new call. Only the first is used: it is the end user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    #[serde(default, deserialize_with = "body::opt_string")]
    pub participant_key: Option<String>,
    #[serde(default, rename = "type", deserialize_with = "body::opt_string")]
    pub kind: Option<String>,
}

/// `POST /voiceCalls`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateVoiceCallRequest {
    /// API name of the call center; must be the token's subject.
    #[serde(default, deserialize_with = "body::opt_string")]
    pub call_center_api_name: Option<String>,
    /// For transfers: the parent's voiceCallId or vendorCallKey.
    #[serde(default, deserialize_with = "body::opt_string")]
    pub parent_voice_call_id: Option<String>,
    #[serde(default, deserialize_with = "body::opt_string")]
    pub vendor_call_key: Option<String>,
    /// Defaults to `WEBRTC_DEFAULT`.
    #[serde(default, deserialize_with = "body::opt_string")]
    pub to: Option<String>,
    /// Defaults to `WEBRTC_DEFAULT`.
    #[serde(default, deserialize_with = "body::opt_string")]
    pub from: Option<String>,
    /// Preview, Progressive or Voicemail.
    #[serde(default, deserialize_with = "body::opt_string")]
    pub call_origin: Option<String>,
    /// Inbound or Transfer.
    #[serde(default, deserialize_with = "body::opt_string")]
    pub initiation_method: Option<String>,
    /// For transfers: queue id or the telephony system's queue id (routing map).
    #[serde(default, deserialize_with = "body::opt_string")]
    pub queue: Option<String>,
    /// ISO-8601 date-time (UTC when no offset is given).
    #[serde(default, deserialize_with = "body::opt_string")]
    pub start_time: Option<String>,
    /// PSTN (default) or WebRTC.
    #[serde(default, alias = "callSubType", deserialize_with = "body::opt_string")]
    pub call_subtype: Option<String>,
    #[serde(default, deserialize_with = "body::list")]
    pub participants: Vec<Participant>,
    /// A JSON string (or object) of standard and custom VoiceCall fields.
    #[serde(default, deserialize_with = "body::opt_fields")]
    #[schema(value_type = Option<String>)]
    pub call_attributes: Option<Fields>,
}

/// Response of `POST /voiceCalls`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateVoiceCallResponse {
    pub voice_call_id: String,
    /// `[]` when clean, otherwise a text listing the field errors (the call is created anyway).
    #[schema(value_type = Object)]
    pub errors: Value,
}

/// `disconnectReason` of an update.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisconnectReason {
    #[serde(default, deserialize_with = "body::opt_string")]
    pub value: Option<String>,
    #[serde(default, deserialize_with = "body::opt_bool")]
    pub is_error: Option<bool>,
}

/// `PATCH /voiceCalls/{CALL ID}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateVoiceCallRequest {
    #[serde(default, deserialize_with = "body::opt_string")]
    pub start_time: Option<String>,
    #[serde(default, deserialize_with = "body::opt_string")]
    pub end_time: Option<String>,
    #[serde(default, deserialize_with = "body::opt_string")]
    pub enqueue_time: Option<String>,
    #[serde(default, deserialize_with = "body::opt_string")]
    pub accept_time: Option<String>,
    #[serde(default, deserialize_with = "body::opt_string")]
    pub from_number: Option<String>,
    #[serde(default, deserialize_with = "body::opt_i64")]
    pub total_hold_duration: Option<i64>,
    #[serde(default, deserialize_with = "body::opt_i64")]
    pub longest_hold_duration: Option<i64>,
    #[serde(default, deserialize_with = "body::opt_i64")]
    pub number_of_holds: Option<i64>,
    /// Name of the queue of the rep who served the call.
    #[serde(default, deserialize_with = "body::opt_string")]
    pub queue: Option<String>,
    /// The rep's username.
    #[serde(default, deserialize_with = "body::opt_string")]
    pub agent: Option<String>,
    #[serde(default, deserialize_with = "body::opt_i64")]
    pub agent_interaction_duration: Option<i64>,
    #[serde(default, deserialize_with = "body::opt_string")]
    pub call_origin: Option<String>,
    #[serde(default, deserialize_with = "body::opt_string")]
    pub recording_location: Option<String>,
    #[serde(default, deserialize_with = "body::opt_i64")]
    pub total_recording_duration: Option<i64>,
    #[serde(default, deserialize_with = "body::opt_fields")]
    #[schema(value_type = Option<String>)]
    pub call_attributes: Option<Fields>,
    #[serde(default, deserialize_with = "body::opt_bool")]
    pub is_active_call: Option<bool>,
    #[serde(default)]
    pub disconnect_reason: Option<DisconnectReason>,
    /// Used only when the update creates a missing call: Inbound (default) or Transfer.
    #[serde(default, deserialize_with = "body::opt_string")]
    pub initiation_method: Option<String>,
    /// Used only when the update creates a missing transferred call.
    #[serde(default, deserialize_with = "body::opt_string")]
    pub parent_call_identifier: Option<String>,
    #[serde(default, alias = "callSubType", deserialize_with = "body::opt_string")]
    pub call_subtype: Option<String>,
}

/// `{"status": "pending"}` and similar one-word answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusResponse {
    pub status: String,
}

/// One utterance.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    #[serde(default, deserialize_with = "body::opt_string")]
    pub participant_id: Option<String>,
    #[serde(default, deserialize_with = "body::opt_string")]
    pub message_id: Option<String>,
    /// Epoch milliseconds.
    #[serde(default, deserialize_with = "body::opt_i64")]
    pub start_time: Option<i64>,
    /// Epoch milliseconds.
    #[serde(default, deserialize_with = "body::opt_i64")]
    pub end_time: Option<i64>,
    #[serde(default, deserialize_with = "body::opt_string")]
    pub content: Option<String>,
    /// END_USER, EXTERNAL_USER, HUMAN_AGENT, SUPERVISOR or VIRTUAL_AGENT.
    #[serde(default, deserialize_with = "body::opt_string")]
    pub sender_type: Option<String>,
}

/// `{"result": "Accepted"}`, or the multi-status body of the bulk endpoint.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResultResponse {
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_response: Option<BulkErrorResponse>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkErrorResponse {
    pub error_response_entries: Vec<BulkEntryStatus>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkEntryStatus {
    pub vendor_call_key: String,
    pub status: u16,
    pub message: String,
}

/// One voice call's messages in a bulk request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkEntry {
    #[serde(default, deserialize_with = "body::opt_string")]
    pub vendor_call_key: Option<String>,
    #[serde(default, deserialize_with = "body::list")]
    pub messages: Vec<Message>,
}

/// `POST /voiceCalls/messages`: at most 5 voice calls with at most 5 messages each.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkMessagesRequest {
    #[serde(default, deserialize_with = "body::list")]
    pub entries: Vec<BulkEntry>,
}

/// `PATCH /voiceCalls/{CALL_ID}/omniFlow`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OmniFlowRequest {
    #[serde(default, deserialize_with = "body::opt_string")]
    pub dialed_number: Option<String>,
    #[serde(default, deserialize_with = "body::opt_string")]
    pub flow_dev_name: Option<String>,
    /// Queue developer name or id.
    #[serde(default, deserialize_with = "body::opt_string")]
    pub fallback_queue: Option<String>,
    /// An object (or a JSON string of one) of flow inputs.
    #[serde(default, deserialize_with = "body::opt_fields")]
    #[schema(value_type = Option<Object>)]
    pub flow_input_parameters: Option<Fields>,
}

/// Routing instructions: the routing map's external ids of the chosen agent or queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct OmniFlowResponse {
    pub agent: Option<String>,
    pub queue: Option<String>,
}

/// `{"errors": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorsResponse {
    pub errors: Vec<String>,
}

/// One intelligence signal.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationEvent {
    /// IntelligenceSignal__Category or IntelligenceSignal__Sentiment.
    #[serde(default, rename = "type", deserialize_with = "body::opt_string")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "body::opt_string")]
    pub value: Option<String>,
    #[serde(default, deserialize_with = "body::opt_i64")]
    pub start_time: Option<i64>,
    #[serde(default, deserialize_with = "body::opt_i64")]
    pub end_time: Option<i64>,
    #[serde(default, deserialize_with = "body::opt_string")]
    pub score: Option<String>,
    /// AGENT or CUSTOMER.
    #[serde(default, deserialize_with = "body::opt_string")]
    pub participant: Option<String>,
}

/// `POST /voiceCalls/{vendorCallKey}/realtimeConversationEvents` and `postConversationEvents`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationEventsRequest {
    #[serde(default, deserialize_with = "body::opt_string")]
    pub service: Option<String>,
    /// Real-time only: `false` sends the signals to subscribers without storing them.
    #[serde(default, deserialize_with = "body::opt_bool")]
    pub persist: Option<bool>,
    #[serde(default, deserialize_with = "body::list")]
    pub events: Vec<ConversationEvent>,
}

/// `PATCH /admin/v1/voiceCalls/{CALL_ID}/state`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallStateRequest {
    #[serde(default, deserialize_with = "body::opt_bool")]
    pub on_hold: Option<bool>,
    #[serde(default, deserialize_with = "body::opt_bool")]
    pub recording_paused: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallStateResponse {
    pub on_hold: bool,
    pub recording_paused: bool,
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// A stable code from the error table.
    pub error_code: String,
    pub message: String,
}
