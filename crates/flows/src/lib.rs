//! The Amazon Connect flow language (`Version: "2019-10-30"`): parse console exports, validate
//! them, and run them with a sans-IO interpreter.
//!
//! * [`parse_flow`] reads an export as the console writes it (every scalar a string, absent or
//!   empty `Errors`/`Conditions`, friendly identifiers, `Metadata` kept verbatim) or wrapped in
//!   `{"ContactFlow":{"Content":"…"}}`; [`Flow::to_json`] writes the same JSON back.
//! * [`validate`] lists [`Diagnostic`]s naming the action concerned.
//! * [`Interpreter::step`] takes a [`ContactState`], the time and an [`Event`], and returns the
//!   [`Command`]s for the host (the contact runtime) to carry out.
//!
//! Invariant: this crate does no IO, reads no clock and never panics on any input; time,
//! randomness (a seed in the state) and the contact center's queues, agents, metrics and hours
//! ([`Environment`]) are passed in. Every event runs a bounded number of actions.

pub mod interp;
pub mod model;
pub mod params;
pub mod parse;
pub mod path;
pub mod phone;
pub mod state;
pub mod validate;

pub use interp::{
    contact_data, Callback, CollectDigits, Command, Event, FunctionResult, Interpreter, Invocation, Prompt,
    QueueOutcome,
};
pub use model::{Action, ActionKind, Condition, ConditionBranch, ErrorBranch, Flow, Operator, Transitions};
pub use parse::{parse_flow, parse_flow_value, ParseError};
pub use state::{
    AgentInfo, AudioStream, ContactState, Ended, Endpoint, Environment, HoursOfOperation, LogEntry, LogKind,
    OpenRange, QueueInfo, QueueMetrics, TargetQueue,
};
pub use validate::{has_errors, validate, Diagnostic, Severity};
