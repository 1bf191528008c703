//! Turning errors into HTTP answers: the status and code come from `core`'s error table,
//! the body is `{"errorCode": …, "message": …}`. Store failures are logged here and reach
//! the client only as a generic internal error.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use voxbridge_core::{ApiError, ErrorCode};
use voxbridge_store::StoreError;

use crate::wire::ErrorBody;

/// An error answer.
#[derive(Debug)]
pub struct Error(pub ApiError);

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error(e)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        Error(ApiError::new(ErrorCode::Unavailable, "the store could not complete the request; retry later"))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(code = self.0.code.as_str(), message = %self.0.message, "server error answered");
        }
        let body = ErrorBody { error_code: self.0.code.as_str().to_string(), message: self.0.message };
        (status, Json(body)).into_response()
    }
}
