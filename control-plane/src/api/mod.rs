//! The REST API under `/api/v1`: one module per resource, and this thin router that wires them and
//! produces the OpenAPI document from the same route list.

pub(crate) mod access_keys;
pub(crate) mod brokers;
pub(crate) mod devices;
pub(crate) mod groups;
pub(crate) mod health;
pub(crate) mod instances;
pub(crate) mod login;
pub(crate) mod messages;
mod paging;
pub(crate) mod quotas;
pub(crate) mod sessions;
pub(crate) mod tokens;
pub(crate) mod topics;
pub(crate) mod trace;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "MQTT service control plane", description = "Instances, topics, groups, AccessKeys, tokens, device credentials, broker nodes, sessions, messages and client trace. The broker-sync endpoints (docs/sync-protocol.md) are not part of this document."),
    modifiers(&SecuritySchemes),
    components(schemas(crate::error::ErrorBody)),
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "acs3",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=...,Signature=... (see docs/control-plane.md)",
            ))),
        );
    }
}

/// Largest body of every API request but SendMessage. The largest of them is ApplyToken with as many
/// resources as fit in a token (a token must fit an MQTT password, 65,535 bytes, so its resources are
/// at most about 48 KB); measured in `limits::largest_requests_fit_their_body_limits`.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login::login))
}

fn protected_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(instances::create_instance, instances::list_instances))
        .routes(routes!(
            instances::get_instance,
            instances::update_instance,
            instances::delete_instance
        ))
        .routes(routes!(topics::create_topic, topics::list_topics))
        .routes(routes!(topics::get_topic, topics::delete_topic))
        .routes(routes!(groups::create_group_id, groups::list_group_id))
        .routes(routes!(groups::get_group_id, groups::delete_group_id))
        .routes(routes!(access_keys::create_access_key, access_keys::list_access_keys))
        .routes(routes!(
            access_keys::get_access_key,
            access_keys::update_access_key,
            access_keys::delete_access_key
        ))
        .routes(routes!(tokens::apply_token))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(tokens::query_token))
        .routes(routes!(
            devices::register_device_credential,
            devices::list_device_credential_client_id
        ))
        .routes(routes!(
            devices::get_device_credential,
            devices::unregister_device_credential
        ))
        .routes(routes!(devices::refresh_device_credential))
        .routes(routes!(brokers::create_broker_node, brokers::list_brokers))
        .routes(routes!(brokers::delete_broker_node))
        .routes(routes!(sessions::query_session_by_client_id))
        .routes(routes!(sessions::batch_query_session_by_client_ids))
        .routes(routes!(sessions::close_connection))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(messages::send_message))
                .layer(DefaultBodyLimit::max(messages::BODY_LIMIT)),
        )
        .routes(routes!(trace::list_client_events))
}

/// The OpenAPI document (what `control-plane openapi` prints and `openapi/openapi.json` holds).
pub fn openapi() -> utoipa::openapi::OpenApi {
    OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .merge(public_routes())
        .merge(protected_routes())
        .split_for_parts()
        .1
}

/// Every `/api/v1` route: operator/AccessKey authentication on all but login, and the broker-sync
/// routes with their own node authentication.
pub(crate) fn router(state: AppState) -> Router<AppState> {
    let protected = protected_routes().route_layer(middleware::from_fn_with_state(state, crate::auth::authenticate));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(public_routes())
        .merge(protected)
        .split_for_parts()
        .0
        .merge(crate::broker_link::router())
}
