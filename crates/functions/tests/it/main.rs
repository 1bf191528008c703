//! Integration tests of voxbridge-functions: ARN binding, throttling, timeouts and metrics of
//! the registry; the request bodies of InvokeTelephonyIntegrationApiFunction (sans-IO) and the
//! function over real HTTP against a recording server; external HTTP functions.
//! CTRDataSyncFunction's skip rules and transform against the golden cases; the pipeline
//! functions (contact events, post-call analysis, Contact Lens, ContactDataSync) against theirs.

mod ctr_sync;
mod http;
mod pipeline_functions;
mod registry;
mod salesforce;
mod telephony;
