//! The telephony half's contacts: the flow library (flows by name, id or ARN, parsed once;
//! phone numbers bound to flows; queues with hours of operation; agents; quick connects;
//! function bindings), and the contact runtime that runs a call through its flows with the
//! sans-IO interpreter of `voxbridge-flows` and the function runtime of `voxbridge-functions`:
//! queued contacts wait for agents, who connect, hold, transfer and hang up — scripted
//! ([`ContactCenter::simulate`]) or live ([`live`]), where the CRM half's Omni-Channel routing
//! may choose the agent ([`routing`]). Hook flows run at their moments (queue, whisper, hold).
//! Contact events and contact trace records go to a [`ContactSink`] as they happen.
//!
//! ```text
//! let library = Arc::new(FlowLibrary::load_dir(Path::new("flows"))?);
//! let center = ContactCenter::new(library, registry, Arc::new(SystemClock));
//! let result = center.simulate(InboundCall { to, from, input: CallerScript::parse("1,1234#")?, ..Default::default() }).await?;
//! // result.steps: the event log; result.ctr: the contact trace record; result.contact_events
//!
//! let center = Arc::new(center.with_sink(Arc::new(MySink)));
//! let view = center.start_live(InboundCall { to, from, ..Default::default() }).await?;
//! center.live().send(&view.contact_id, CallerInput::Agent(AgentAction::Connect { agent: None })).await?;
//! ```
//!
//! Invariant: the telephony half reaches the CRM half only through functions (for the
//! Telephony Integration API, the built-in InvokeTelephonyIntegrationApiFunction over HTTP);
//! nothing here reads the CRM store.

pub mod library;
pub mod live;
pub mod queue;
pub mod record;
pub mod routing;
pub mod runtime;
pub mod script;
pub mod sink;

use std::sync::Arc;

pub use library::{
    validate_flow, Agent, AgentConfig, FlowLibrary, FunctionBinding, Hours, HoursConfig, LibraryDefaults,
    LibraryError, LibraryFlow, QueueConfig, QuickConnect, QuickConnectType,
};
pub use live::{LiveContacts, LiveError, LiveView};
pub use routing::{AgentRouting, FollowedCall, Following, LiveSteps};
pub use runtime::{CallError, ContactCenter, ContactResult, InboundCall, LogStep, QueueRef, Step, Waiting};
pub use script::{AgentAction, CallerInput, CallerScript, TransferTarget};
pub use sink::{ContactSink, NoSink};

use voxbridge_functions::external::HttpFunction;
use voxbridge_functions::{function_name, FunctionOptions, Registry};

/// Registers the library's external functions (`[[functions]]` of `flows.toml`) in `registry`,
/// each bound to exactly its ARN (so it wins over a built-in whose name the ARN ends with).
pub fn register_external_functions(library: &FlowLibrary, registry: &Registry) {
    for f in &library.functions {
        let name = function_name(&f.arn).unwrap_or(&f.arn).to_string();
        registry.register(
            Arc::new(HttpFunction::new(name.clone(), f.url.clone())),
            FunctionOptions {
                timeout: f.timeout_seconds.map(std::time::Duration::from_secs),
                reserved_concurrency: f.reserved_concurrency,
            },
        );
        registry.bind(f.arn.clone(), &name);
    }
}
