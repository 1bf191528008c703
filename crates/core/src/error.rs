//! The one table of error codes Voxbridge answers with.
//!
//! Every error a client can see has a stable code, an HTTP status and a message written for
//! the person reading it. Internal failures (database, IO) surface only as `INTERNAL_ERROR`
//! with a generic message; their details go to the log, never to the client.

use std::fmt;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident => ($code:literal, $status:literal), )*) => {
        /// Stable error codes with their HTTP status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as clients see it.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The HTTP status the code is answered with.
            pub fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }
        }
    };
}

error_codes! {
    /// The body is not well-formed JSON or XML, or has the wrong shape.
    MalformedRequest => ("MALFORMED_REQUEST", 400),
    /// A required field is absent or empty.
    RequiredFieldMissing => ("REQUIRED_FIELD_MISSING", 400),
    /// A field has a value outside what the API accepts.
    InvalidFieldValue => ("INVALID_FIELD_VALUE", 400),
    /// An id is not a valid 15/18-character id.
    MalformedId => ("MALFORMED_ID", 400),
    /// A request carries more items than one request may.
    BatchTooLarge => ("BATCH_TOO_LARGE", 400),
    /// No bearer token, or a token that cannot be verified.
    InvalidToken => ("INVALID_TOKEN", 401),
    /// The token's `exp` is past, missing or too far ahead.
    TokenExpired => ("TOKEN_EXPIRED", 401),
    /// The token's `jti` was used before.
    TokenReplayed => ("TOKEN_REPLAYED", 401),
    /// The caller is authenticated but the resource belongs to another call center or org.
    Forbidden => ("FORBIDDEN", 403),
    /// No such voice call (or other resource) for this call center.
    NotFound => ("NOT_FOUND", 404),
    /// The method is not allowed on this path.
    MethodNotAllowed => ("METHOD_NOT_ALLOWED", 405),
    /// The request conflicts with the resource's state (e.g. conversation still open).
    InvalidState => ("INVALID_STATE", 409),
    /// The body is larger than the server accepts.
    PayloadTooLarge => ("PAYLOAD_TOO_LARGE", 413),
    /// Content-Type is not JSON or XML.
    UnsupportedMediaType => ("UNSUPPORTED_MEDIA_TYPE", 415),
    /// A per-org limit (concurrent calls, calls per second, utterances per second) is hit.
    LimitExceeded => ("SCV_LIMITS_ERROR", 429),
    /// CRM REST API: no valid session (bearer access token).
    InvalidSessionId => ("INVALID_SESSION_ID", 401),
    /// CRM REST API: a SOQL query that does not parse.
    MalformedQuery => ("MALFORMED_QUERY", 400),
    /// CRM REST API: a SOSL search that does not parse.
    MalformedSearch => ("MALFORMED_SEARCH", 400),
    /// CRM REST API: a field that the object does not have.
    InvalidField => ("INVALID_FIELD", 400),
    /// CRM REST API: an object type that does not exist.
    InvalidType => ("INVALID_TYPE", 400),
    /// CRM REST API: an operator a field type does not allow.
    InvalidQueryFilterOperator => ("INVALID_QUERY_FILTER_OPERATOR", 400),
    /// CRM REST API: a number out of range in a query.
    NumberOutsideValidRange => ("NUMBER_OUTSIDE_VALID_RANGE", 400),
    /// CRM REST API: a search that cannot run.
    InvalidSearch => ("INVALID_SEARCH", 400),
    /// CRM REST API: a query locator that is unknown or expired.
    InvalidQueryLocator => ("INVALID_QUERY_LOCATOR", 400),
    /// CRM REST API: a text value longer than its field allows.
    StringTooLong => ("STRING_TOO_LONG", 400),
    /// CRM REST API: a value of the wrong JSON type for its field.
    JsonParserError => ("JSON_PARSER_ERROR", 400),
    /// CRM REST API: a field that cannot be set on insert or update (Id, system fields).
    InvalidFieldForInsertUpdate => ("INVALID_FIELD_FOR_INSERT_UPDATE", 400),
    /// CRM REST API: a valid record of an all-or-none collection not written because
    /// another record was invalid.
    AllOrNoneRolledBack => ("ALL_OR_NONE_OPERATION_ROLLED_BACK", 400),
    /// OAuth: the assertion, user or app is not acceptable.
    InvalidGrant => ("invalid_grant", 400),
    /// OAuth: a grant type other than the JWT bearer flow.
    UnsupportedGrantType => ("unsupported_grant_type", 400),
    /// OAuth: the request lacks a parameter.
    InvalidRequest => ("invalid_request", 400),
    /// OAuth: the consumer key names no connected app.
    InvalidClientId => ("invalid_client_id", 400),
    /// Something failed inside Voxbridge; the log has the details.
    Internal => ("INTERNAL_ERROR", 500),
    /// The store is unavailable right now; retrying later may succeed.
    Unavailable => ("SERVICE_UNAVAILABLE", 503),
}

/// An error to answer a client with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into() }
    }

    pub fn required(field: &str) -> ApiError {
        ApiError::new(ErrorCode::RequiredFieldMissing, format!("required field `{field}` is missing"))
    }

    pub fn invalid(field: &str, why: impl fmt::Display) -> ApiError {
        ApiError::new(ErrorCode::InvalidFieldValue, format!("`{field}` {why}"))
    }

    pub fn not_found(what: impl fmt::Display) -> ApiError {
        ApiError::new(ErrorCode::NotFound, what.to_string())
    }

    /// Limit errors start with `SCV_LIMITS_ERROR`, which clients search their logs for.
    pub fn limit(what: impl fmt::Display) -> ApiError {
        ApiError::new(ErrorCode::LimitExceeded, format!("SCV_LIMITS_ERROR: {what}"))
    }

    pub fn internal() -> ApiError {
        ApiError::new(ErrorCode::Internal, "internal error; the server log has the details")
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_statuses_sane() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate code {}", c.as_str());
            assert!((400..600).contains(&c.status()));
        }
    }

    #[test]
    fn limit_message_prefix() {
        assert!(ApiError::limit("too many").message.starts_with("SCV_LIMITS_ERROR"));
    }
}
