//! Integration tests of voxbridge-contacts: the sample flows run as simulated contacts against
//! a real Voxbridge server (the CRM half) over HTTP, flow library loading and validation, the
//! caller script, queues and records.

mod harness;
mod library;
mod simulate;
mod units;
