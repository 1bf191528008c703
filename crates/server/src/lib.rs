//! Voxbridge's HTTP adapters: the Telephony Integration REST API under `/telephony/v1`,
//! live conversation events over Server-Sent Events, admin endpoints for call state, the
//! event bus's streams (when the binary attaches a bus), and the OpenAPI document.
//!
//! Invariant: this is the only crate that knows HTTP. Handlers parse wire types, call `core`
//! for the rules and the `Store` for persistence, and never answer 2xx before the store
//! has committed.

mod admin;
mod agent_api;
mod auth;
mod automations;
mod body;
mod cache;
mod callbacks;
mod collections;
mod connect;
mod console_calls;
mod crm;
mod error;
mod events;
mod nba;
pub mod omni;
pub mod openapi;
mod platform_events;
pub mod simulator;
pub mod streams;
mod telephony;
mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::Router;
use voxbridge_core::limits::RateWindow;
use voxbridge_core::{ApiError, ErrorCode, SfId};
use voxbridge_store::Store;

pub use automations::{backoff as messaging_backoff, MessagingSettings};
pub use events::Hub;
pub use omni::{RoutingClock, RoutingSettings};

/// Per-org limits (seed chapter 9). Defaults are the real system's published figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_concurrent_calls: u64,
    pub calls_per_second: u64,
    pub utterances_per_second: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_concurrent_calls: 25_000, calls_per_second: 50, utterances_per_second: 5_000 }
    }
}

/// Everything the HTTP layer needs to know, passed in explicitly by the binary or a test.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Expected `aud` claim of telephony tokens.
    pub audience: String,
    /// When true a token without `aud` is refused; otherwise `aud` is checked only if present.
    pub require_audience: bool,
    /// Tokens whose `exp` is further ahead than this are refused.
    pub max_token_lifetime: Duration,
    pub limits: Limits,
    /// The URL clients reach this server at (`instance_url` of CRM logins); when unset,
    /// the request's `Host` is used.
    pub public_url: Option<String>,
    /// Accepted `aud` values of OAuth JWT bearer assertions (the login URLs).
    pub login_audiences: Vec<String>,
    /// How long a CRM access token (and an agent console session) stays valid.
    pub session_lifetime: Duration,
    /// Omni-Channel routing: timeouts and the routers' clock.
    pub routing: RoutingSettings,
    /// Messaging channels of automations' notifications and the outbox's retries.
    pub messaging: MessagingSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            audience: "https://scrt.salesforce.com".to_string(),
            require_audience: false,
            max_token_lifetime: Duration::from_secs(15 * 60),
            limits: Limits::default(),
            public_url: None,
            login_audiences: vec![
                "https://login.salesforce.com".into(),
                "https://test.salesforce.com".into(),
            ],
            session_lifetime: Duration::from_secs(2 * 60 * 60),
            routing: RoutingSettings::default(),
            messaging: MessagingSettings::default(),
        }
    }
}

/// Per-org counters behind the limits.
struct OrgCounters {
    calls: RateWindow,
    utterances: RateWindow,
    /// Ids of calls not yet completed; `None` until loaded from the store.
    active: Option<HashSet<SfId>>,
}

/// Shared state of all handlers.
pub(crate) struct App {
    store: Arc<dyn Store>,
    settings: Settings,
    keys: auth::KeyCache,
    hub: Hub,
    counters: Mutex<HashMap<SfId, OrgCounters>>,
    /// The last Case number handed out per org (also serialises numbering).
    case_numbers: tokio::sync::Mutex<HashMap<SfId, u64>>,
    /// Conversations by (org, vendorCallKey of their first call), for the transcript path.
    conversations: cache::TtlCache<(SfId, String), Arc<voxbridge_core::Record>>,
    /// VoiceCall field definitions per org, for creates and updates.
    field_defs: cache::TtlCache<SfId, Arc<Vec<voxbridge_core::voicecall::FieldDef>>>,
    /// Serialises platform event replay ids.
    event_order: tokio::sync::Mutex<()>,
    /// Query result pages not yet fetched.
    cursors: Mutex<HashMap<String, crm::Cursor>>,
    /// The orgs' Omni-Channel routers.
    omni: omni::Omni,
    /// The orgs' automations and the messaging outbox's wake-up.
    automations: automations::Automations,
}

impl App {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    fn with_counters<T>(&self, org: &SfId, f: impl FnOnce(&mut OrgCounters) -> T) -> T {
        let mut all = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let c = all.entry(org.clone()).or_insert_with(|| OrgCounters {
            calls: RateWindow::new(self.settings.limits.calls_per_second),
            utterances: RateWindow::new(self.settings.limits.utterances_per_second),
            active: None,
        });
        f(c)
    }
}

/// How long another process's change to a conversation or the field definitions may take
/// to be seen here; this process sees its own changes at once.
const CACHE_TTL_MS: i64 = 2_000;

/// Builds the application router over a store.
pub fn router(store: Arc<dyn Store>, settings: Settings) -> Router {
    let omni = omni::Omni::new(store.clone(), settings.routing.clone());
    let app = Arc::new(App {
        store,
        settings,
        keys: Default::default(),
        hub: omni.hub(),
        counters: Default::default(),
        case_numbers: Default::default(),
        conversations: cache::TtlCache::new(CACHE_TTL_MS, 200_000),
        field_defs: cache::TtlCache::new(CACHE_TTL_MS, 10_000),
        cursors: Default::default(),
        event_order: Default::default(),
        omni,
        automations: automations::Automations::new(),
    });
    automations::start(&app);
    // Routers restore and reconcile their orgs' routing at start, not at first use.
    if tokio::runtime::Handle::try_current().is_ok() {
        let app = app.clone();
        tokio::spawn(async move {
            if let Err(e) = app.omni.start_all().await {
                tracing::error!(error = %e, "cannot start the orgs' routers");
            }
        });
    }
    let t = "/telephony/v1/voiceCalls";
    let d = "/services/data/{v}";
    Router::new()
        .route(t, post(telephony::create_voice_call))
        .route(&format!("{t}/messages"), post(telephony::create_messages_bulk))
        .route(&format!("{t}/{{call_id}}"), patch(telephony::update_voice_call))
        .route(&format!("{t}/{{call_id}}/messages"), post(telephony::create_message))
        .route(&format!("{t}/{{call_id}}/messages/"), post(telephony::create_message))
        .route(&format!("{t}/{{call_id}}/omniFlow"), patch(telephony::omni_flow))
        .route(&format!("{t}/{{call_id}}/realtimeConversationEvents"), post(telephony::realtime_events))
        .route(&format!("{t}/{{call_id}}/postConversationEvents"), post(telephony::post_call_events))
        .route(&format!("{t}/{{call_id}}/reroute"), post(telephony::reroute).patch(telephony::reroute))
        .route(&format!("{t}/{{call_id}}/callback"), post(callbacks::request_callback))
        .route(
            &format!("{t}/{{call_id}}/clearRouting"),
            patch(telephony::clear_routing).post(telephony::clear_routing),
        )
        .route("/admin/v1/voiceCalls/{call_id}", get(admin::get_voice_call))
        .route("/admin/v1/voiceCalls/{call_id}/state", patch(admin::set_call_state))
        .route("/admin/v1/echo", post(admin::echo))
        .route("/streams/v1", get(streams::list))
        .route(
            "/streams/v1/{stream}/records",
            // Room for a 1 MiB record in base64 and the JSON around it.
            get(streams::get_records)
                .post(streams::put_record)
                .layer(axum::extract::DefaultBodyLimit::max(2 * streams::MAX_RECORD_BYTES)),
        )
        .route("/simulator/v1/calls", post(simulator::simulate_call))
        .route("/simulator/v1/contacts/{id}", get(simulator::get_contact))
        .route("/simulator/v1/contacts/{id}/input", post(simulator::contact_input))
        .route("/simulator/v1/contacts/{id}/agent", post(simulator::contact_agent))
        .route("/live/v1/conversations/{vendor_call_key}", get(admin::subscribe))
        .route("/services/oauth2/token", post(crm::token))
        .route("/services/data", get(crm::versions))
        .route("/services/data/", get(crm::versions))
        .route(d, get(crm::resources))
        .route(&format!("{d}/"), get(crm::resources))
        .route(&format!("{d}/sobjects"), get(crm::describe_global))
        .route(&format!("{d}/sobjects/{{ty}}"), get(crm::sobject_info).post(crm::create_record))
        .route(&format!("{d}/sobjects/{{ty}}/describe"), get(crm::describe))
        .route(
            &format!("{d}/sobjects/{{ty}}/{{id}}"),
            get(crm::get_record).patch(crm::update_record).delete(crm::delete_record),
        )
        .route(&format!("{d}/composite/sobjects"), post(collections::create).patch(collections::update))
        .route(&format!("{d}/query"), get(crm::query))
        .route(&format!("{d}/queryAll"), get(crm::query))
        .route(&format!("{d}/query/{{locator}}"), get(crm::query_more))
        .route(&format!("{d}/search"), get(crm::search))
        .route(&format!("{d}/event/{{name}}"), get(platform_events::subscribe))
        .route(
            &format!("{d}/connect/conversations/upload"),
            post(connect::upload).get(connect::upload_status),
        )
        .route(
            &format!("{d}/connect/conversation/{{identifier}}/entries"),
            get(connect::entries).patch(connect::update_entries),
        )
        // The platform also answers with a trailing slash, and clients use it:
        // simple-salesforce calls `query/`, `search/` and `sobjects/{Type}/`.
        .route(&format!("{d}/sobjects/"), get(crm::describe_global))
        .route(&format!("{d}/sobjects/{{ty}}/"), get(crm::sobject_info).post(crm::create_record))
        .route(&format!("{d}/query/"), get(crm::query))
        .route(&format!("{d}/queryAll/"), get(crm::query))
        .route(&format!("{d}/search/"), get(crm::search))
        .route("/console/api/v1/sessions", post(agent_api::login))
        .route("/console/api/v1/sessions/current", delete(agent_api::logout))
        .route("/console/api/v1/presence", get(agent_api::get_presence).put(agent_api::put_presence))
        .route("/console/api/v1/offers/{id}/accept", post(agent_api::accept))
        .route("/console/api/v1/offers/{id}/decline", post(agent_api::decline))
        .route("/console/api/v1/work/{id}/wrapup", post(agent_api::wrap_up))
        .route("/console/api/v1/callbacks/{id}/outcome", post(callbacks::outcome))
        .route("/console/api/v1/state", get(agent_api::state))
        .route("/console/api/v1/queues", get(agent_api::queues))
        .route("/console/api/v1/events", get(agent_api::events))
        .route(
            "/console/api/v1/calls",
            get(console_calls::active_calls).post(console_calls::start_preview_call),
        )
        .route("/console/api/v1/calls/{id}", get(console_calls::get_call).patch(console_calls::update_call))
        .route("/console/api/v1/calls/{id}/{action}", post(console_calls::action))
        .route("/console/api/v1/flags", get(console_calls::raised_flags))
        .route("/console/api/v1/nextBestActions", post(console_calls::next_best_actions))
        .route("/console/api/v1/admin/nextBestActions", put(console_calls::put_next_best_actions))
        .route(
            "/console/api/v1/extensions",
            get(console_calls::list_extensions).post(console_calls::add_extension),
        )
        .route("/console/api/v1/extensions/{id}", delete(console_calls::delete_extension))
        .route("/console", get(console_calls::console_page))
        .route("/console/", get(console_calls::console_page))
        .route("/console/console.js", get(console_calls::console_js))
        .route("/console/console.css", get(console_calls::console_css))
        .route("/console/toolkit.js", get(console_calls::toolkit_js))
        .route("/console/extensions", get(console_calls::extensions_page))
        .route("/console/extensions.js", get(console_calls::extensions_js))
        .route("/openapi.json", get(openapi::serve))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/services/") {
        return crm::unknown_resource(uri.path());
    }
    error::Error(ApiError::new(
        ErrorCode::NotFound,
        format!("no endpoint at {}; see /openapi.json", uri.path()),
    ))
    .into_response()
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    if uri.path().starts_with("/services/") {
        return crm::method_not_allowed(method.as_str(), uri.path());
    }
    let e = error::Error(ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {}; see /openapi.json", uri.path()),
    ));
    let mut resp = e.into_response();
    *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    resp
}
