//! Integration tests of voxbridge-routing: data-driven scenarios (scripts of timed inputs in
//! `scenarios/*.scn`, their output logs snapshotted with insta), unit checks of the query API,
//! and property tests (random input sequences never panic and the invariants hold after every
//! step).

mod fuzz;
mod scenarios;
mod script;
mod units;
