//! Voxbridge's domain core: ids, the error-code table, CRM records and the rules of the
//! Telephony Integration API (voice-call lifecycle, transcript gates, privacy rewrites,
//! per-org limits).
//!
//! Invariant: this crate does no IO and never panics on any input. Time is passed in
//! explicitly so every rule is deterministic under test.

pub mod error;
pub mod ids;
pub mod record;
pub mod setup;

pub use error::{ApiError, ErrorCode};
pub use ids::{IdError, KeyPrefix, SfId};
pub use record::{Fields, Record, TranscriptEntry};
