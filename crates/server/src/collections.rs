//! sObject Collections: `POST` and `PATCH /services/data/vNN.N/composite/sobjects` create or
//! update up to 200 records of any types in one request, each checked exactly as the
//! single-record endpoints check it.
//!
//! The answer is `200` with one SaveResult per record, in request order: `{id, success,
//! errors}`, an error being `{statusCode, message, fields}`. With `allOrNone: false` (the
//! default) the valid records are written and the others report their errors; with
//! `allOrNone: true` one invalid record writes none, and the valid ones report
//! `ALL_OR_NONE_OPERATION_ROLLED_BACK`. What is written goes to the store in one transaction,
//! which is what makes a collection much cheaper than as many single requests (the CTR sync
//! writes its VoiceCalls this way).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use voxbridge_core::{ErrorCode, Record};
use voxbridge_store::WriteOp;

use crate::crm::{self, CrmError, PreparedUpdate, Session};
use crate::App;

/// Records one request may carry.
pub const MAX_RECORDS: usize = 200;

/// `POST /services/data/vNN.N/composite/sobjects` → 200 `[SaveResult]`
pub async fn create(
    State(app): State<Arc<App>>,
    Path(v): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, CrmError> {
    let Request { s, all_or_none, records, schema, custom } =
        request(&app, &v, &headers, &bytes, false).await?;
    let mut prepared: Vec<Result<Record, CrmError>> = Vec::with_capacity(records.len());
    for (ty, _, body) in records {
        let record = match crm::object(&schema, &ty) {
            Ok(o) => crm::prepare_create(&app, &s, o, &custom, body).await,
            Err(e) => Err(e),
        };
        prepared.push(record);
    }
    if all_or_none && prepared.iter().any(Result::is_err) {
        let errors: Vec<Option<&CrmError>> = prepared.iter().map(|p| p.as_ref().err()).collect();
        return Ok(rolled_back(&errors, &vec![None; errors.len()]));
    }
    let ops = prepared.iter().flatten().map(|r| WriteOp::Insert(r.clone())).collect();
    app.store.apply(ops).await?;
    let mut results = Vec::with_capacity(prepared.len());
    for p in &prepared {
        results.push(match p {
            Ok(r) => {
                crate::automations::created(&app, &s.org, &r.sobject, &r.id).await;
                json!({"id": r.id.to_18(), "success": true, "errors": []})
            }
            Err(e) => failure(None, e),
        });
    }
    Ok(Json(Value::Array(results)).into_response())
}

/// `PATCH /services/data/vNN.N/composite/sobjects` → 200 `[SaveResult]`
pub async fn update(
    State(app): State<Arc<App>>,
    Path(v): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, CrmError> {
    let Request { s, all_or_none, records, schema, custom } =
        request(&app, &v, &headers, &bytes, true).await?;
    let mut prepared: Vec<Prepared> = Vec::with_capacity(records.len());
    for (ty, id, body) in records {
        let update = async {
            let o = crm::object(&schema, &ty)?;
            let parsed = crm::parse_id(id.as_deref().unwrap_or_default(), o)?;
            Ok((o.name.clone(), prepare_update_once(&app, &s, o, &custom, parsed, body, &prepared).await?))
        }
        .await;
        prepared.push((id, update));
    }
    if all_or_none && prepared.iter().any(|(_, p)| p.is_err()) {
        let errors: Vec<Option<&CrmError>> = prepared.iter().map(|(_, p)| p.as_ref().err()).collect();
        let ids: Vec<Option<String>> = prepared.iter().map(|(id, _)| id.clone()).collect();
        return Ok(rolled_back(&errors, &ids));
    }
    let ops = prepared.iter().filter_map(|(_, p)| p.as_ref().ok()).flat_map(|(_, u)| u.ops.clone()).collect();
    app.store.apply(ops).await?;
    let mut results = Vec::with_capacity(prepared.len());
    for (id, p) in &prepared {
        results.push(match p {
            Ok((sobject, u)) => {
                u.written(&app, &s.org, sobject).await;
                json!({"id": u.id.to_18(), "success": true, "errors": []})
            }
            Err(e) => failure(id.clone(), e),
        });
    }
    Ok(Json(Value::Array(results)).into_response())
}

/// An update of a collection: the id as given, and the object name with what to write or
/// why not.
type Prepared = (Option<String>, Result<(String, PreparedUpdate), CrmError>);

/// [`crm::prepare_update`], refusing a record the same request already updates (the
/// second change would be checked against the record before the first).
async fn prepare_update_once(
    app: &App,
    s: &Session,
    o: &voxbridge_soql::ObjectDef,
    custom: &[Record],
    id: voxbridge_core::SfId,
    body: Map<String, Value>,
    earlier: &[Prepared],
) -> Result<PreparedUpdate, CrmError> {
    if earlier.iter().any(|(_, p)| p.as_ref().is_ok_and(|(_, u)| u.id == id)) {
        return Err(CrmError::on(
            ErrorCode::InvalidFieldValue,
            format!("Duplicate id in the request: {}; update a record once per request", id.to_18()),
            "Id",
        ));
    }
    crm::prepare_update(app, s, o, custom, id, body).await
}

/// A collection request, checked: who sends it, its records, and the org's schema and
/// custom fields they are checked against.
struct Request {
    s: Session,
    all_or_none: bool,
    records: Vec<Item>,
    schema: voxbridge_soql::Schema,
    custom: Vec<Record>,
}

async fn request(
    app: &App,
    v: &str,
    headers: &HeaderMap,
    bytes: &[u8],
    with_id: bool,
) -> Result<Request, CrmError> {
    crm::check_version(v)?;
    let s = crm::session(app, headers).await?;
    let (all_or_none, records) = parse_body(crm::json_body(headers, bytes)?, with_id)?;
    let (schema, custom) = crm::schema_with_fields(app, &s.org).await?;
    Ok(Request { s, all_or_none, records, schema, custom })
}

/// One record of a collection: its type, its id (updates) and its fields.
type Item = (String, Option<String>, Map<String, Value>);

/// The body `{allOrNone?, records: [{attributes: {type}, id?, …fields}]}`; `with_id` says
/// whether each record must carry its `id` (updates) or must not (creates).
fn parse_body(mut body: Map<String, Value>, with_id: bool) -> Result<(bool, Vec<Item>), CrmError> {
    let all_or_none = match body.remove("allOrNone") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(malformed("allOrNone must be true or false")),
    };
    let records = match body.remove("records") {
        Some(Value::Array(r)) => r,
        Some(_) => return Err(malformed("records must be an array of sObjects")),
        None => return Err(CrmError::on(ErrorCode::RequiredFieldMissing, "records is required", "records")),
    };
    if let Some(other) = body.keys().next() {
        return Err(malformed(&format!("unexpected property `{other}`; the body has allOrNone and records")));
    }
    if records.is_empty() {
        return Err(malformed("records is empty; send 1 to 200 sObjects"));
    }
    if records.len() > MAX_RECORDS {
        return Err(CrmError::new(
            ErrorCode::BatchTooLarge,
            format!("{} records in one request; the limit is {MAX_RECORDS}", records.len()),
        ));
    }
    records
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let Value::Object(mut fields) = r else {
                return Err(malformed(&format!("records[{i}] is not an sObject (a JSON object)")));
            };
            let ty = fields
                .get("attributes")
                .and_then(|a| a.get("type"))
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .ok_or_else(|| malformed(&format!("records[{i}] has no attributes.type")))?;
            fields.remove("attributes");
            let id = match fields.remove("id").or_else(|| fields.remove("Id")) {
                Some(Value::String(id)) if with_id => Some(id),
                None if !with_id => None,
                None => {
                    return Err(malformed(&format!(
                        "records[{i}] has no id; each record to update needs one"
                    )))
                }
                Some(_) if with_id => return Err(malformed(&format!("records[{i}]: id must be a string"))),
                Some(_) => {
                    return Err(malformed(&format!("records[{i}] has an id; records to create must not")))
                }
            };
            Ok((ty, id, fields))
        })
        .collect::<Result<Vec<Item>, CrmError>>()
        .map(|items| (all_or_none, items))
}

fn malformed(message: &str) -> CrmError {
    CrmError::new(ErrorCode::JsonParserError, message)
}

/// A failed SaveResult.
fn failure(id: Option<String>, e: &CrmError) -> Value {
    let mut out = json!({
        "success": false,
        "errors": [{"statusCode": e.error.code.as_str(), "message": e.error.message, "fields": e.fields}],
    });
    if let Some(id) = id {
        out["id"] = id.into();
    }
    out
}

/// The answer of an all-or-none request with an invalid record: nothing was written; each
/// record reports its own error or the rollback.
fn rolled_back(errors: &[Option<&CrmError>], ids: &[Option<String>]) -> Response {
    let rolled = CrmError::new(
        ErrorCode::AllOrNoneRolledBack,
        "Record rolled back because not all records were valid and the request was using AllOrNone header",
    );
    let results: Vec<Value> =
        errors.iter().zip(ids).map(|(e, id)| failure(id.clone(), e.unwrap_or(&rolled))).collect();
    Json(Value::Array(results)).into_response()
}
