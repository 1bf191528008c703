//! The CRM REST API in the OpenAPI document: OAuth login, versions and resources, sObject
//! describe and CRUD, SOQL and SOSL, platform events and the Connect conversation
//! resources.
//!
//! The handlers (`crm`, `connect`, `platform_events`) read raw bodies and answer with JSON
//! built on the spot, in the platform's shapes; this module describes those shapes and
//! carries one annotated stub per operation. The stubs are never called: they exist so the
//! descriptions live apart from handlers that change often, and are why dead code is
//! allowed here.
#![allow(dead_code)]

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, ToSchema};

/// The `session` scheme: the access token `/services/oauth2/token` hands out.
pub struct SessionScheme;

impl Modify for SessionScheme {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The access token of the OAuth 2.0 JWT bearer login (`/services/oauth2/token`)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The form of the OAuth 2.0 JWT bearer grant.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// `urn:ietf:params:oauth:grant-type:jwt-bearer`
    pub grant_type: String,
    /// An RS256 JWT: `iss` = the connected app's consumer key, `sub` = the username, `aud` =
    /// a configured login audience, `exp` at most 3 minutes ahead.
    pub assertion: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub scope: String,
    pub instance_url: String,
    /// The identity URL: `{instance_url}/id/{org id}/{user id}`.
    pub id: String,
    /// `Bearer`
    pub token_type: String,
    /// Epoch milliseconds, as a string.
    pub issued_at: String,
}

/// A failed login.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_grant`, `invalid_request`, `unsupported_grant_type`, …
    pub error: String,
    pub error_description: String,
}

/// One error of a CRM API answer; failures answer with an array of these.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CrmErrorItem {
    pub message: String,
    /// `INVALID_FIELD`, `MALFORMED_QUERY`, `NOT_FOUND`, `INVALID_SESSION_ID`, …
    #[serde(rename = "errorCode")]
    pub error_code: String,
    /// The fields the error is about, if any.
    pub fields: Vec<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ApiVersion {
    pub label: String,
    /// `/services/data/v62.0`
    pub url: String,
    /// `62.0`
    pub version: String,
}

/// The answer to a create.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct SaveResult {
    /// The new record's 18-character id.
    pub id: String,
    pub success: bool,
    pub errors: Vec<Value>,
}

/// A page of SOQL results: up to 2,000 records; `nextRecordsUrl` names the next page.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct QueryResponse {
    #[serde(rename = "totalSize")]
    pub total_size: u64,
    pub done: bool,
    #[serde(rename = "nextRecordsUrl", skip_serializing_if = "Option::is_none")]
    pub next_records_url: Option<String>,
    /// Records with `attributes` (`type`, `url`) first, then the selected fields; parent
    /// fields nest under the relationship name.
    pub records: Vec<Value>,
}

/// SOSL results.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct SearchResponse {
    #[serde(rename = "searchRecords")]
    pub search_records: Vec<Value>,
}

/// One conversation's upload outcome.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct UploadResult {
    #[serde(rename = "conversationIdentifier")]
    pub conversation_identifier: String,
    #[serde(rename = "errorDetail")]
    pub error_detail: Option<String>,
    /// `SUCCESS` or `FAILED`
    pub status: String,
    #[serde(rename = "uploadId")]
    pub upload_id: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct UploadResults {
    #[serde(rename = "conversationBulkUploadsResults")]
    pub results: Vec<UploadResult>,
}

/// The status of uploads when one of them did not fully succeed.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct UploadStatus {
    #[serde(rename = "conversationId")]
    pub conversation_id: String,
    #[serde(rename = "errorDetail")]
    pub error_detail: Option<String>,
    #[serde(rename = "failedEntryCount")]
    pub failed_entry_count: u64,
    #[serde(rename = "failedEntryIds")]
    pub failed_entry_ids: Vec<String>,
    #[serde(rename = "lastUpdatedTimestamp")]
    pub last_updated_timestamp: i64,
    pub status: String,
    #[serde(rename = "successEntryCount")]
    pub success_entry_count: u64,
    #[serde(rename = "uploadId")]
    pub upload_id: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct UploadStatuses {
    #[serde(rename = "conversationBulkUploadStatuses")]
    pub statuses: Vec<UploadStatus>,
}

/// A conversation's transcript.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ConversationEntries {
    #[serde(rename = "conversationIdentifier")]
    pub conversation_identifier: String,
    /// `identifier`, `clientTimestamp`, `clientDuration`, `serverReceivedTimestamp`,
    /// `messageText`, `sender` (`appType`, `role`, `subject`), `relatedRecords`.
    #[serde(rename = "conversationEntries")]
    pub conversation_entries: Vec<Value>,
}

/// Corrections of entries' text.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct EntryEdits {
    /// `{"identifier": "…", "messageText": "…"}` each (`id` is accepted for `identifier`).
    #[serde(rename = "conversationEntries")]
    pub conversation_entries: Vec<Value>,
}

/// A `RealtimeAlertEvent`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct RealtimeAlertEvent {
    pub name: String,
    pub description: String,
    pub severity: String,
    pub source: String,
    /// ISO-8601 date-time.
    pub event_date_time: Option<String>,
    pub payload: Option<String>,
}

#[utoipa::path(post, path = "/services/oauth2/token", tag = "CRM login",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = TokenResponse), (status = "4XX", body = OAuthErrorBody)))]
fn token() {}

#[utoipa::path(get, path = "/services/data", tag = "CRM REST",
    responses((status = 200, body = [ApiVersion], description = "The API versions served")))]
fn versions() {}

#[utoipa::path(get, path = "/services/data/{version}", tag = "CRM REST",
    params(("version" = String, Path, description = "API version, e.g. `v62.0`")),
    responses((status = 200, body = Object, description = "URLs of the version's resources: `sobjects`, `query`, `search`"),
        (status = "4XX", body = [CrmErrorItem])))]
fn resources() {}

#[utoipa::path(get, path = "/services/data/{version}/sobjects", tag = "sObjects",
    params(("version" = String, Path, description = "API version, e.g. `v62.0`")),
    responses((status = 200, body = Object, description = "`{encoding, maxBatchSize, sobjects: [...]}`: every object of the org"),
        (status = "4XX", body = [CrmErrorItem])),
    security(("session" = [])))]
fn describe_global() {}

#[utoipa::path(get, path = "/services/data/{version}/sobjects/{sobject}", tag = "sObjects",
    params(("version" = String, Path, description = "API version, e.g. `v62.0`"), ("sobject" = String, Path, description = "Object name, e.g. `VoiceCall`")),
    responses((status = 200, body = Object, description = "`{objectDescribe, recentItems}`"), (status = "4XX", body = [CrmErrorItem])),
    security(("session" = [])))]
fn sobject_info() {}

#[utoipa::path(post, path = "/services/data/{version}/sobjects/{sobject}", tag = "sObjects",
    params(("version" = String, Path, description = "API version, e.g. `v62.0`"), ("sobject" = String, Path, description = "Object name, e.g. `Case`")),
    request_body(content = Object, description = "Field values by field name"),
    responses((status = 201, body = SaveResult), (status = "4XX", body = [CrmErrorItem])),
    security(("session" = [])))]
fn create_record() {}

#[utoipa::path(get, path = "/services/data/{version}/sobjects/{sobject}/describe", tag = "sObjects",
    params(("version" = String, Path, description = "API version, e.g. `v62.0`"), ("sobject" = String, Path, description = "Object name")),
    responses((status = 200, body = Object, description = "The object's describe: `name`, `label`, `keyPrefix`, `fields` with types, …"),
        (status = "4XX", body = [CrmErrorItem])),
    security(("session" = [])))]
fn describe() {}

#[utoipa::path(get, path = "/services/data/{version}/sobjects/{sobject}/{id}", tag = "sObjects",
    params(("version" = String, Path, description = "API version, e.g. `v62.0`"), ("sobject" = String, Path, description = "Object name"),
        ("id" = String, Path, description = "Record id, 15 or 18 characters"),
        ("fields" = Option<String>, Query, description = "Comma-separated fields to return; all by default")),
    responses((status = 200, body = Object, description = "The record: `attributes`, `Id`, then its fields"), (status = "4XX", body = [CrmErrorItem])),
    security(("session" = [])))]
fn get_record() {}

#[utoipa::path(patch, path = "/services/data/{version}/sobjects/{sobject}/{id}", tag = "sObjects",
    params(("version" = String, Path, description = "API version, e.g. `v62.0`"), ("sobject" = String, Path, description = "Object name"),
        ("id" = String, Path, description = "Record id, 15 or 18 characters")),
    request_body(content = Object, description = "Field values to change; `null` clears a field"),
    responses((status = 204, description = "Updated"), (status = "4XX", body = [CrmErrorItem])),
    security(("session" = [])))]
fn update_record() {}

#[utoipa::path(delete, path = "/services/data/{version}/sobjects/{sobject}/{id}", tag = "sObjects",
    params(("version" = String, Path, description = "API version, e.g. `v62.0`"), ("sobject" = String, Path, description = "Object name"),
        ("id" = String, Path, description = "Record id, 15 or 18 characters")),
    responses((status = 204, description = "Deleted"), (status = "4XX", body = [CrmErrorItem])),
    security(("session" = [])))]
fn delete_record() {}

/// The body of an sObject Collections request.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CollectionRequest {
    /// `true`: one invalid record writes none. Default `false`: each record on its own.
    #[serde(rename = "allOrNone")]
    pub all_or_none: Option<bool>,
    /// 1 to 200 sObjects, each with `attributes.type`; with `id` to update, without to create.
    pub records: Vec<Value>,
}

/// One record's result in an sObject Collections answer.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CollectionResult {
    /// The record's 18-character id (absent for a create that failed).
    pub id: Option<String>,
    pub success: bool,
    /// `{statusCode, message, fields}` per error; `ALL_OR_NONE_OPERATION_ROLLED_BACK` for a
    /// valid record of an all-or-none request that was not written.
    pub errors: Vec<Value>,
}

#[utoipa::path(post, path = "/services/data/{version}/composite/sobjects", tag = "sObjects",
    params(("version" = String, Path, description = "API version, e.g. `v62.0`")),
    request_body(content = CollectionRequest, description = "Records to create, of any types, without ids"),
    responses((status = 200, body = [CollectionResult], description = "One result per record, in request order; written in one transaction"),
        (status = "4XX", body = [CrmErrorItem])),
    security(("session" = [])))]
fn create_collection() {}

#[utoipa::path(patch, path = "/services/data/{version}/composite/sobjects", tag = "sObjects",
    params(("version" = String, Path, description = "API version, e.g. `v62.0`")),
    request_body(content = CollectionRequest, description = "Records to update, each with its `id` and the fields to change"),
    responses((status = 200, body = [CollectionResult], description = "One result per record, in request order; written in one transaction"),
        (status = "4XX", body = [CrmErrorItem])),
    security(("session" = [])))]
fn update_collection() {}

#[utoipa::path(post, path = "/services/data/{version}/sobjects/RealtimeAlertEvent", tag = "Platform events",
    params(("version" = String, Path, description = "API version, e.g. `v62.0`")),
    request_body(content = RealtimeAlertEvent),
    responses((status = 201, body = SaveResult, description = "Stored with the org's next replay id and sent to subscribers"),
        (status = "4XX", body = [CrmErrorItem])),
    security(("session" = [])))]
fn publish_event() {}

#[utoipa::path(get, path = "/services/data/{version}/event/{event}", tag = "Platform events",
    params(("version" = String, Path, description = "API version, e.g. `v62.0`"), ("event" = String, Path, description = "`RealtimeAlertEvent`"),
        ("replayId" = Option<i64>, Query, description = "Replay stored events after this id; -1 (default) none, -2 all")),
    responses((status = 200, content_type = "text/event-stream", description = "Server-sent events: `ready`, then `event` per stored and live event"),
        (status = "4XX", body = [CrmErrorItem])),
    security(("session" = [])))]
fn subscribe_events() {}

#[utoipa::path(get, path = "/services/data/{version}/query", tag = "Query",
    params(("version" = String, Path, description = "API version, e.g. `v62.0`"), ("q" = String, Query, description = "A SOQL query")),
    responses((status = 200, body = QueryResponse), (status = "4XX", body = [CrmErrorItem])),
    security(("session" = [])))]
fn query() {}

#[utoipa::path(get, path = "/services/data/{version}/queryAll", tag = "Query",
    params(("version" = String, Path, description = "API version, e.g. `v62.0`"), ("q" = String, Query, description = "A SOQL query")),
    responses((status = 200, body = QueryResponse), (status = "4XX", body = [CrmErrorItem])),
    security(("session" = [])))]
fn query_all() {}

#[utoipa::path(get, path = "/services/data/{version}/query/{locator}", tag = "Query",
    params(("version" = String, Path, description = "API version, e.g. `v62.0`"), ("locator" = String, Path, description = "From `nextRecordsUrl`")),
    responses((status = 200, body = QueryResponse), (status = "4XX", body = [CrmErrorItem])),
    security(("session" = [])))]
fn query_more() {}

#[utoipa::path(get, path = "/services/data/{version}/search", tag = "Query",
    params(("version" = String, Path, description = "API version, e.g. `v62.0`"), ("q" = String, Query, description = "A SOSL search")),
    responses((status = 200, body = SearchResponse), (status = "4XX", body = [CrmErrorItem])),
    security(("session" = [])))]
fn search() {}

#[utoipa::path(post, path = "/services/data/{version}/connect/conversations/upload", tag = "Conversations",
    params(("version" = String, Path, description = "API version, e.g. `v62.0`")),
    request_body(content = String, content_type = "multipart/form-data",
        description = "One part per closed conversation, named by its identifier, holding JSON objects one after another: a `conversation`, then `conversationEntry` objects"),
    responses((status = 201, body = UploadResults, description = "Processed before the answer: the status is final"),
        (status = "4XX", body = [CrmErrorItem])),
    security(("session" = [])))]
fn upload() {}

#[utoipa::path(get, path = "/services/data/{version}/connect/conversations/upload", tag = "Conversations",
    params(("version" = String, Path, description = "API version, e.g. `v62.0`"), ("uploadId" = String, Query, description = "Comma-separated upload ids")),
    responses((status = 200, body = UploadResults, description = "All succeeded; otherwise `UploadStatuses`"),
        (status = "4XX", body = [CrmErrorItem])),
    security(("session" = [])))]
fn upload_status() {}

#[utoipa::path(get, path = "/services/data/{version}/connect/conversation/{identifier}/entries", tag = "Conversations",
    params(("version" = String, Path, description = "API version, e.g. `v62.0`"), ("identifier" = String, Path, description = "The conversation identifier")),
    responses((status = 200, body = ConversationEntries), (status = "4XX", body = [CrmErrorItem])),
    security(("session" = [])))]
fn entries() {}

#[utoipa::path(patch, path = "/services/data/{version}/connect/conversation/{identifier}/entries", tag = "Conversations",
    params(("version" = String, Path, description = "API version, e.g. `v62.0`"), ("identifier" = String, Path, description = "The conversation identifier")),
    request_body(content = EntryEdits),
    responses((status = 200, body = Object, description = "Per entry, `identifier` and whether it was found and changed (`success`)"),
        (status = "4XX", body = [CrmErrorItem])),
    security(("session" = [])))]
fn update_entries() {}
