//! Voxbridge's HTTP adapters: the Telephony Integration REST API under `/telephony/v1`,
//! live conversation events over Server-Sent Events, admin endpoints for call state, and the
//! OpenAPI document.
//!
//! Invariant: this is the only crate that knows HTTP. Handlers parse wire types, call `core`
//! for the rules and the `Store` for persistence, and never answer 2xx before the store
//! has committed.

use std::sync::Arc;
use std::time::Duration;

use voxbridge_store::Store;

/// Per-org limits (seed chapter 9). Defaults are the real system's published figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_concurrent_calls: u64,
    pub calls_per_second: u64,
    pub utterances_per_second: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_concurrent_calls: 25_000, calls_per_second: 50, utterances_per_second: 5_000 }
    }
}

/// Everything the HTTP layer needs to know, passed in explicitly by the binary or a test.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Expected `aud` claim of telephony tokens.
    pub audience: String,
    /// When true a token without `aud` is refused; otherwise `aud` is checked only if present.
    pub require_audience: bool,
    /// Tokens whose `exp` is further ahead than this are refused.
    pub max_token_lifetime: Duration,
    pub limits: Limits,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            audience: "https://scrt.salesforce.com".to_string(),
            require_audience: false,
            max_token_lifetime: Duration::from_secs(15 * 60),
            limits: Limits::default(),
        }
    }
}

/// Builds the application router over a store.
pub fn router(store: Arc<dyn Store>, settings: Settings) -> axum::Router {
    let _ = (store, settings);
    axum::Router::new()
}
