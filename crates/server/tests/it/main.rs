//! Integration tests of the Telephony Integration API over real HTTP, against the real
//! store backends: every test runs on SQLite and on PostgreSQL.

mod auth;
mod automations;
mod callbacks;
mod console_calls;
mod console_harness;
mod crm;
mod fuzz;
mod harness;
mod omni;
mod openapi;
mod routing;
mod seed_examples;
mod streams;
mod transcripts;
