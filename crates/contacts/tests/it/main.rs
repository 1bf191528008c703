//! Integration tests of voxbridge-contacts: the sample flows run as simulated contacts against
//! a real Voxbridge server (the CRM half) over HTTP, flow library loading and validation, the
//! caller script, queues and records, hours of operation, agents and live calls, event hooks,
//! asynchronous and throttled invocations, and agents chosen by routing.

mod agents;
mod harness;
mod hooks;
mod hours;
mod library;
mod live;
mod samples;
mod simulate;
mod units;
