//! EventBridge's rule languages, sans-IO: event patterns ([`Pattern`], [`matches`]) decide
//! which events a rule takes; schedule expressions ([`Schedule`]) say when a scheduled rule
//! fires. The rule engine that routes events to functions builds on these.
//!
//! Invariant: no IO, no clock (times are passed in), no panics on any input.

mod pattern;
mod schedule;

pub use pattern::{matches, Pattern, PatternError};
pub use schedule::{Cron, Schedule, ScheduleError};
