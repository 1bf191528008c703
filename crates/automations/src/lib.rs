//! Voxbridge's automations: record-triggered flows without code, as the guide builds in
//! Flow Builder ("Voice Actions", "Transfer to SMS"), sans IO.
//!
//! An automation is JSON (`docs/automations.md`): a trigger (an object, the events it
//! fires on, a condition), named formulas, and steps (find a record by SOQL, create one,
//! update fields, send a messaging notification, publish a platform event, decide between
//! outcomes). [`parse`] checks a definition and reports every mistake at its JSON path;
//! [`Automation::start`] evaluates the trigger's condition for a record and returns a
//! [`Run`], which hands out one [`Effect`] at a time for the caller to carry out and takes
//! its [`Feedback`]. Nothing here does IO or panics on any input.

mod definition;
pub mod formula;
mod run;

pub use definition::{bind_soql, parse, Automation, DefinitionError, Outcome, Step, TriggerEvent};
pub use run::{Effect, Feedback, Run, RunError, MAX_EFFECTS};
