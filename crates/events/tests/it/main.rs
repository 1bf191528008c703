//! Integration tests of event patterns and schedule expressions: data-driven tables, the
//! guide's rules against the fixture events, and property tests that nothing panics.

mod patterns;
mod props;
mod schedules;
