//! Voxbridge's domain core: ids, the error-code table, CRM records and the rules of the
//! Telephony Integration API (voice-call lifecycle, transcript gates, privacy rewrites,
//! intelligence signals, routing definitions, per-org limits).
//!
//! Invariant: this crate does no IO and never panics on any input. Time and randomness are
//! passed in explicitly so every rule is deterministic under test.

pub mod error;
pub mod ids;
pub mod limits;
pub mod record;
pub mod routing;
pub mod setup;
pub mod signals;
pub mod time;
pub mod transcript;
pub mod voicecall;

pub use error::{ApiError, ErrorCode};
pub use ids::{IdError, KeyPrefix, SfId};
pub use record::{Fields, Record, TranscriptEntry};
