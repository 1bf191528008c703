//! The event bus over HTTP, Kinesis-style: list streams, put a record (PutRecord), read
//! records from a position (GetRecords) under `/streams/v1`. Callers authenticate with the
//! same call-center JWTs as the admin endpoints.
//!
//! The bus is not part of [`crate::App`]: the binary attaches it as an `Extension<Streams>`
//! layer, so servers without a bus (tests, benchmarks) answer 404 with a hint. The bus crate
//! stays free of HTTP.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use voxbridge_bus::{Bus, BusError, BusRecord, SequenceNumber, StartingPosition};
use voxbridge_core::{ApiError, ErrorCode};

use crate::error::{Error, Result};
use crate::wire::ErrorBody;
use crate::App;

type AppState = State<Arc<App>>;

/// The largest record's data, as on Kinesis (1 MiB).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// The most records one read returns, and how many it returns by default.
pub const MAX_READ_LIMIT: usize = 1000;
const DEFAULT_READ_LIMIT: usize = 100;

/// The bus the `/streams/v1` routes serve, attached with `router.layer(Extension(streams))`.
#[derive(Clone)]
pub struct Streams {
    pub bus: Arc<dyn Bus>,
    /// When set, only tokens of this org may use the streams (the bus belongs to the
    /// deployment, whose contact center acts for one org).
    pub org_id: Option<String>,
}

/// One stream of `GET /streams/v1`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamSummary {
    name: String,
    record_count: u64,
    /// The oldest stored record's sequence number (20 digits), absent when empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    first_sequence_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_sequence_number: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StreamList {
    streams: Vec<StreamSummary>,
}

/// `POST /streams/v1/{stream}/records`: exactly one of `data` (base64, as Kinesis takes it)
/// and `json` (any JSON value, stored as its compact text).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PutRecordRequest {
    partition_key: String,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    json: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PutRecordResponse {
    sequence_number: String,
    /// Always `shardId-000000000000`: a stream has one shard.
    shard_id: String,
}

/// One record of a read.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamRecord {
    sequence_number: String,
    partition_key: String,
    /// When the bus accepted the record (epoch ms).
    approximate_arrival_timestamp: i64,
    /// The data, base64.
    data: String,
    /// The data parsed, when it is JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    json: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetRecordsResponse {
    records: Vec<StreamRecord>,
    /// Pass as `after` to read on: the last record's sequence number, else where this read
    /// stood (absent when the stream never had a record).
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReadQuery {
    from: Option<String>,
    timestamp: Option<String>,
    after: Option<String>,
    limit: Option<String>,
}

fn invalid(message: impl Into<String>) -> Error {
    ApiError::new(ErrorCode::InvalidFieldValue, message).into()
}

/// Bus failures as answers: an unknown stream is 404, a refused argument 400, the rest 503
/// (logged, not shown).
fn bus_error(stream: &str, e: BusError) -> Error {
    match e {
        BusError::StreamNotFound(_) => ApiError::new(
            ErrorCode::NotFound,
            format!("stream `{stream}` does not exist; GET /streams/v1 lists the streams"),
        )
        .into(),
        BusError::Invalid(m) => invalid(m),
        other => {
            tracing::error!(stream, error = %other, "bus failure");
            ApiError::new(ErrorCode::Unavailable, "the event bus could not complete the request; retry later")
                .into()
        }
    }
}

/// The bus for this caller (401 without a token, 404 when off, 403 for another org).
async fn streams(app: &App, ext: Option<Extension<Streams>>, headers: &HeaderMap) -> Result<Arc<dyn Bus>> {
    let caller = app.caller(headers).await?;
    let Some(Extension(streams)) = ext else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "the event bus is not served here; `voxbridge serve` serves it (see docs/pipelines.md)",
        )
        .into());
    };
    let same_org = |a: &str, b: &str| a.get(..15).unwrap_or(a) == b.get(..15).unwrap_or(b);
    if streams.org_id.as_deref().is_some_and(|org| !same_org(org, caller.org.as_str())) {
        return Err(ApiError::new(ErrorCode::Forbidden, "the event bus belongs to another org").into());
    }
    Ok(streams.bus)
}

/// `GET /streams/v1`: the streams with their record counts.
#[utoipa::path(get, path = "/streams/v1", tag = "Streams",
    responses((status = 200, body = StreamList), (status = "4XX", body = ErrorBody)),
    security(("jwt" = [])))]
pub(crate) async fn list(
    State(app): AppState,
    ext: Option<Extension<Streams>>,
    headers: HeaderMap,
) -> Result<Response> {
    let bus = streams(&app, ext, &headers).await?;
    let names = bus.list_streams().await.map_err(|e| bus_error("", e))?;
    let mut streams = Vec::with_capacity(names.len());
    for name in names {
        match bus.describe_stream(&name).await {
            Ok(info) => streams.push(StreamSummary {
                name: info.name,
                record_count: info.record_count,
                first_sequence_number: info.first_sequence.map(|s| s.to_string()),
                last_sequence_number: info.last_sequence.map(|s| s.to_string()),
            }),
            // Deleted between the listing and now.
            Err(BusError::StreamNotFound(_)) => {}
            Err(e) => return Err(bus_error(&name, e)),
        }
    }
    Ok(Json(StreamList { streams }).into_response())
}

/// `POST /streams/v1/{stream}/records`: appends one record (Kinesis PutRecord).
#[utoipa::path(post, path = "/streams/v1/{stream}/records", tag = "Streams",
    params(("stream" = String, Path, description = "the stream's name")),
    request_body(content = PutRecordRequest, content_type = "application/json"),
    responses((status = 200, body = PutRecordResponse), (status = "4XX", body = ErrorBody)),
    security(("jwt" = [])))]
pub(crate) async fn put_record(
    State(app): AppState,
    ext: Option<Extension<Streams>>,
    Path(stream): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response> {
    let bus = streams(&app, ext, &headers).await?;
    let req: PutRecordRequest = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            ErrorCode::MalformedRequest,
            format!("the body must be {{\"partitionKey\": …, \"data\": base64}} or {{…, \"json\": …}}: {e}"),
        )
    })?;
    let data = match (req.data, req.json) {
        (Some(b64), None) => base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| invalid(format!("`data` is not base64: {e}")))?,
        (None, Some(v)) => {
            serde_json::to_vec(&v).map_err(|e| invalid(format!("`json` cannot be stored: {e}")))?
        }
        (Some(_), Some(_)) => return Err(invalid("send either `data` (base64) or `json`, not both")),
        (None, None) => {
            return Err(
                ApiError::new(ErrorCode::RequiredFieldMissing, "send `data` (base64) or `json`").into()
            )
        }
    };
    if data.len() > MAX_RECORD_BYTES {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the record's data is {} bytes; at most {MAX_RECORD_BYTES} (1 MiB) are accepted",
                data.len()
            ),
        )
        .into());
    }
    let seq = bus.put(&stream, &req.partition_key, data).await.map_err(|e| bus_error(&stream, e))?;
    Ok(Json(PutRecordResponse { sequence_number: seq.to_string(), shard_id: "shardId-000000000000".into() })
        .into_response())
}

/// `GET /streams/v1/{stream}/records`: up to `limit` records from a position (Kinesis
/// GetRecords; a one-shot read that never waits).
#[utoipa::path(get, path = "/streams/v1/{stream}/records", tag = "Streams",
    params(("stream" = String, Path, description = "the stream's name"),
        ("from" = Option<String>, Query, description = "TRIM_HORIZON (default), LATEST or AT_TIMESTAMP"),
        ("timestamp" = Option<String>, Query, description = "with AT_TIMESTAMP: ISO-8601 or epoch ms"),
        ("after" = Option<String>, Query, description = "a sequence number: the records after it (instead of `from`)"),
        ("limit" = Option<usize>, Query, description = "1 to 1000, default 100")),
    responses((status = 200, body = GetRecordsResponse), (status = "4XX", body = ErrorBody)),
    security(("jwt" = [])))]
pub(crate) async fn get_records(
    State(app): AppState,
    ext: Option<Extension<Streams>>,
    Path(stream): Path<String>,
    Query(q): Query<ReadQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let bus = streams(&app, ext, &headers).await?;
    let limit = match q.limit.as_deref() {
        None => DEFAULT_READ_LIMIT,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_READ_LIMIT).contains(&n) => n,
            _ => return Err(invalid(format!("`limit` must be 1 to {MAX_READ_LIMIT}, not {s:?}"))),
        },
    };
    let from = position(&q)?;
    // Described before the read: a record put in between is then read, never skipped.
    let info = bus.describe_stream(&stream).await.map_err(|e| bus_error(&stream, e))?;
    let records = bus.read(&stream, from, limit).await.map_err(|e| bus_error(&stream, e))?;
    let next_after = match (records.last(), from) {
        (Some(r), _) => Some(r.sequence_number),
        (None, StartingPosition::AfterSequence(s)) => Some(s),
        (None, _) => info.last_sequence,
    };
    Ok(Json(GetRecordsResponse {
        records: records.into_iter().map(record_json).collect(),
        next_after: next_after.map(|s| s.to_string()),
    })
    .into_response())
}

fn record_json(r: BusRecord) -> StreamRecord {
    StreamRecord {
        sequence_number: r.sequence_number.to_string(),
        approximate_arrival_timestamp: r.approximate_arrival_timestamp_ms,
        json: serde_json::from_slice(&r.data).ok(),
        data: base64::engine::general_purpose::STANDARD.encode(&r.data),
        partition_key: r.partition_key,
    }
}

/// The read's starting position from `from`, `timestamp` and `after`.
fn position(q: &ReadQuery) -> Result<StartingPosition> {
    if let Some(after) = &q.after {
        if q.from.is_some() || q.timestamp.is_some() {
            return Err(invalid("`after` replaces `from` and `timestamp`; send one or the other"));
        }
        let seq = SequenceNumber::parse(after).map_err(|_| {
            invalid(format!("`after` must be a sequence number (up to 20 digits), not {after:?}"))
        })?;
        return Ok(StartingPosition::AfterSequence(seq));
    }
    let from = q.from.as_deref().unwrap_or("TRIM_HORIZON");
    match (from.to_ascii_uppercase().as_str(), q.timestamp.as_deref()) {
        ("TRIM_HORIZON", None) => Ok(StartingPosition::TrimHorizon),
        ("LATEST", None) => Ok(StartingPosition::Latest),
        ("AT_TIMESTAMP", Some(t)) => Ok(StartingPosition::AtTimestamp(parse_time(t)?)),
        ("AT_TIMESTAMP", None) => Err(ApiError::new(
            ErrorCode::RequiredFieldMissing,
            "`from=AT_TIMESTAMP` needs `timestamp` (ISO-8601 or epoch ms)",
        )
        .into()),
        ("TRIM_HORIZON" | "LATEST", Some(_)) => {
            Err(invalid("`timestamp` goes with `from=AT_TIMESTAMP` only"))
        }
        _ => Err(invalid(format!("`from` must be TRIM_HORIZON, LATEST or AT_TIMESTAMP, not {from:?}"))),
    }
}

/// ISO-8601 (RFC 3339) or epoch milliseconds.
fn parse_time(t: &str) -> Result<i64> {
    if let Ok(ms) = t.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(t).map(|d| d.timestamp_millis()).map_err(|_| {
        invalid(format!("`timestamp` must be ISO-8601 (2026-01-31T10:00:00Z) or epoch ms, not {t:?}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(from: Option<&str>, timestamp: Option<&str>, after: Option<&str>) -> ReadQuery {
        ReadQuery {
            from: from.map(Into::into),
            timestamp: timestamp.map(Into::into),
            after: after.map(Into::into),
            limit: None,
        }
    }

    #[test]
    fn positions() {
        assert_eq!(position(&q(None, None, None)).ok(), Some(StartingPosition::TrimHorizon));
        assert_eq!(position(&q(Some("latest"), None, None)).ok(), Some(StartingPosition::Latest));
        assert_eq!(
            position(&q(Some("AT_TIMESTAMP"), Some("1970-01-01T00:00:01Z"), None)).ok(),
            Some(StartingPosition::AtTimestamp(1000))
        );
        assert_eq!(
            position(&q(Some("AT_TIMESTAMP"), Some("1234"), None)).ok(),
            Some(StartingPosition::AtTimestamp(1234))
        );
        assert_eq!(
            position(&q(None, None, Some("00000000000000000007"))).ok(),
            Some(StartingPosition::AfterSequence(SequenceNumber::new(7)))
        );
        for bad in [
            q(Some("AT_TIMESTAMP"), None, None),
            q(Some("AT_TIMESTAMP"), Some("yesterday"), None),
            q(Some("LATEST"), Some("1"), None),
            q(Some("OLDEST"), None, None),
            q(None, None, Some("x")),
            q(Some("LATEST"), None, Some("1")),
        ] {
            assert!(position(&bad).is_err());
        }
    }
}
