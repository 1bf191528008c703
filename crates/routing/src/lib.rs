//! Omni-Channel routing for Voxbridge: queues, agents with presence, capacity and skills, work
//! items (voice calls and callbacks), offers with timeouts, AgentWork, overflow and
//! reconciliation, as one authoritative sans-IO state machine.
//!
//! ```
//! use voxbridge_routing::{AgentSpec, Config, Input, Presence, QueueSpec, Router, Target, WorkSpec};
//!
//! let mut router = Router::new(Config::default());
//! router.handle(0, Input::DefineQueue(QueueSpec::new("support")));
//! let agent = AgentSpec { queues: vec!["support".into()], ..AgentSpec::new("ada") };
//! router.handle(0, Input::AgentLogin { agent, presence: Presence::Available });
//! let out = router.handle(1_000, Input::RouteWork(WorkSpec::new("call-1", Target::Queue("support".into()))));
//! assert!(out.iter().any(|o| o.to_string() == "offer ada call-1 expires=21000"));
//! ```
//!
//! Invariant: this crate does no IO, reads no clock, uses no randomness and never panics on any
//! input; the host passes the time with every input and carries out the outputs.
//! [`Router::check_invariants`] states what holds between calls.

mod check;
pub mod hours;
pub mod model;
pub mod router;

pub use hours::{Hours, OpenRange};
pub use model::{
    AgentId, AgentSpec, CallbackOutcome, CallbackResult, CallbackSpec, CloseReason, Config, ConnectFailure,
    EndReason, Input, Output, OverflowReason, Presence, PresenceReason, QueueId, QueueMetrics, QueueSpec,
    RescindReason, Skill, Target, WorkId, WorkSpec,
};
pub use router::{AgentState, Router, WorkState};
