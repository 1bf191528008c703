//! Voxbridge's function runtime: what AWS Lambda is to Amazon Connect.
//!
//! A contact flow's `InvokeLambdaFunction` block names a function by ARN and hands it the
//! Lambda `ContactFlowEvent` (`{"Details":{"ContactData":{…},"Parameters":{…}},"Name":"ContactFlowEvent"}`).
//! Here that event goes to a [`Function`]: a built-in (such as
//! [`telephony::InvokeTelephonyIntegrationApi`], which calls the Telephony Integration API
//! over HTTP with a JWT exactly as a partner system would, and
//! [`salesforce::InvokeSalesforceRestApi`], which calls the CRM REST API through a
//! [`salesforce::CrmClient`] logged in with the OAuth JWT bearer flow) or an [`external::HttpFunction`]
//! (an HTTP endpoint that receives the same event as a POST body, so users can plug in their
//! own handlers).
//!
//! The [`Registry`] binds ARNs to functions (exact ARN, placeholder such as
//! `%%INVOKE_TELEPHONY_FUNCTION_ARN%%`, or any ARN whose function name ends with a built-in's
//! name), enforces the per-invocation timeout and each function's reserved concurrency
//! (throttling), and keeps Lambda-style metrics per function ([`FunctionMetrics`]).
//!
//! Invariant: a function never sees another contact's data, and every failure — an error the
//! handler reports, an HTTP error of the API it calls, a timeout, a throttle, an unknown
//! ARN — is a [`FunctionError`] the flow sees as its error branch; nothing panics.

pub mod contact_data_sync;
pub mod contact_events;
pub mod contact_lens;
pub mod ctr_sync;
pub mod external;
pub mod post_call;
pub mod registry;
pub mod salesforce;
pub mod telephony;

use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use serde_json::Value;

pub use registry::{FunctionMetrics, FunctionOptions, Registry};

/// A function a flow can invoke. `event` is the Lambda event (for flows, `ContactFlowEvent`);
/// the answer is the JSON the handler returns.
#[async_trait]
pub trait Function: Send + Sync {
    /// The function's name (`InvokeTelephonyIntegrationApiFunction`); ARNs whose function
    /// name ends with it bind to it.
    fn name(&self) -> &str;

    async fn invoke(&self, event: Value) -> Result<Value, FunctionError>;
}

/// Why an invocation did not produce a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FunctionError {
    /// The handler failed (Lambda's `errorType`/`errorMessage`), or the API it called answered
    /// with an error.
    #[error("{error_type}: {message}")]
    Failed { error_type: String, message: String },
    /// No answer within the invocation's time limit.
    #[error("the function did not answer within {0} ms")]
    Timeout(u64),
    /// The function's reserved concurrency was in use (Lambda's `TooManyRequestsException`).
    #[error("TooManyRequestsException: rate exceeded, the function {0} is at its reserved concurrency")]
    Throttled(String),
    /// No function is bound to the ARN (Lambda's `ResourceNotFoundException`).
    #[error("ResourceNotFoundException: no function is bound to {0}")]
    NotFound(String),
}

impl FunctionError {
    /// A handler error of type `Error` (what a Node.js `throw new Error(msg)` reports).
    pub fn failed(message: impl Into<String>) -> FunctionError {
        FunctionError::Failed { error_type: "Error".into(), message: message.into() }
    }
}

/// Where functions read the time (timestamps in request bodies such as `startTime`). Token
/// expiry always uses the system clock, since the server checks it against its own.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        system_now_ms()
    }
}

/// A clock that moves only when told to (tests, simulations).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now_ms: i64) -> ManualClock {
        ManualClock(AtomicI64::new(now_ms))
    }

    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub(crate) fn system_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Epoch milliseconds as ISO-8601 UTC with milliseconds (`2019-07-02T17:32:28.000Z`).
pub fn iso_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The function name inside a Lambda ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`),
/// or `None` when `arn` is not a Lambda function ARN.
pub fn function_name(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    let (Some("arn"), Some(_partition), Some("lambda"), Some(_region), Some(_account), Some("function")) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    parts.next().filter(|n| !n.is_empty())
}

/// Whether `event` is the scheduled EventBridge event that keeps functions warm.
pub fn is_warm_up(event: &Value) -> bool {
    event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
}
