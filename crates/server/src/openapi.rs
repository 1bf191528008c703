//! The OpenAPI 3.1 document, generated from the handlers' annotations and the wire types:
//! the Telephony Integration API, and the CRM REST API as `openapi_crm` describes it.
//! `docs/openapi.json` holds a copy; a test fails when it is out of date (regenerate with
//! `UPDATE_OPENAPI=1 cargo test -p voxbridge-server openapi`).

use axum::response::IntoResponse;
use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::wire::*;
use crate::{admin, callbacks, streams, telephony};

#[path = "openapi_crm.rs"]
mod crm;
use crm::SessionScheme;

struct JwtScheme;

impl Modify for JwtScheme {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "jwt",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("RS256 JWT: iss = org id, sub = call center API name, aud = configured audience, exp required, jti optional (refused if reused)"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Voxbridge Telephony Integration and CRM REST API", description = "The Telephony Integration REST API and the CRM REST API of Voxbridge, a self-hostable contact-center voice platform."),
    paths(
        telephony::create_voice_call,
        telephony::update_voice_call,
        telephony::create_message,
        telephony::create_messages_bulk,
        telephony::omni_flow,
        telephony::realtime_events,
        telephony::post_call_events,
        telephony::reroute,
        telephony::clear_routing,
        callbacks::request_callback,
        admin::get_voice_call,
        admin::set_call_state,
        admin::subscribe,
        admin::echo,
        streams::list,
        streams::put_record,
        streams::get_records,
        crm::token,
        crm::versions,
        crm::resources,
        crm::describe_global,
        crm::sobject_info,
        crm::create_record,
        crm::describe,
        crm::get_record,
        crm::update_record,
        crm::delete_record,
        crm::create_collection,
        crm::update_collection,
        crm::publish_event,
        crm::subscribe_events,
        crm::query,
        crm::query_all,
        crm::query_more,
        crm::search,
        crm::upload,
        crm::upload_status,
        crm::entries,
        crm::update_entries,
    ),
    components(schemas(ErrorBody, crm::UploadStatuses)),
    modifiers(&JwtScheme, &SessionScheme),
)]
pub struct ApiDoc;

/// The document as pretty JSON.
pub fn document() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".to_string())
}

pub async fn serve() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}
