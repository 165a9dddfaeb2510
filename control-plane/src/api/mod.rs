//! The REST API under `/api/v1`: one module per resource, and this thin router that wires them and
//! produces the OpenAPI document from the same route list.

pub(crate) mod access_keys;
pub(crate) mod brokers;
pub(crate) mod bulk;
pub(crate) mod console_session;
pub(crate) mod custom_auth;
pub(crate) mod devices;
pub(crate) mod groups;
pub(crate) mod health;
pub(crate) mod instances;
pub(crate) mod login;
pub(crate) mod message_trace;
pub(crate) mod messages;
pub(crate) mod paging;
pub(crate) mod quotas;
pub(crate) mod rule_checks;
pub(crate) mod rules;
pub(crate) mod sessions;
pub(crate) mod tokens;
pub(crate) mod topics;
pub(crate) mod trace;
pub(crate) mod usage;

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
    info(title = "MQTT service control plane", description = "Instances, topics, groups, AccessKeys, tokens, device credentials, rules, broker nodes, sessions, messages, client trace and custom authentication. The broker-sync endpoints (docs/sync-protocol.md) are not part of this document."),
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
            "console",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                console_session::COOKIE,
                "the web console's session (CreateConsoleSession); requests other than GET also send X-CSRF-Token",
            ))),
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

/// The answers every operation can give besides its own, added to each operation in one place so the
/// document lists every status the API answers:
/// - 400: a NUL character in the path or query string, or a path that is not UTF-8 (`extract.rs`);
/// - 401 and 403, on operations that need credentials;
/// - 413, on operations with a body and on every signed operation (a signed request's body is read
///   whatever the operation);
/// - 503: the database is unavailable, or the request timed out (`Retry-After`).
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::Operation;
        use utoipa::openapi::{Content, Ref, ResponseBuilder};

        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                )
                .build()
        };
        let add = |op: &mut Operation, status: &str, description: &str| {
            op.responses
                .responses
                .entry(status.to_string())
                .or_insert_with(|| error(description).into());
        };
        for item in openapi.paths.paths.values_mut() {
            for op in operations_mut(item) {
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                add(op, "400", "invalid input (`InvalidParameter`, naming the field)");
                if secured {
                    add(op, "401", "missing or invalid credentials");
                    add(op, "403", "the caller may not do this");
                }
                if secured || op.request_body.is_some() {
                    add(op, "413", "the body is over its limit (`PayloadTooLarge`)");
                }
                add(
                    op,
                    "503",
                    "the database is unavailable (`ServiceUnavailable`) or the request timed out (`RequestTimeout`); retry after `Retry-After` seconds",
                );
            }
        }
    }
}

/// The operations of a path (the methods the API uses).
fn operations(item: &utoipa::openapi::PathItem) -> impl Iterator<Item = &utoipa::openapi::path::Operation> {
    [&item.get, &item.post, &item.put, &item.patch, &item.delete]
        .into_iter()
        .flatten()
}

/// `operations`, to change them.
fn operations_mut(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ]
    .into_iter()
    .flatten()
}

/// OpenAPI links from each operation that creates a resource to every operation whose path names it
/// (CreateInstance's `instanceId` feeds GetInstance, CreateTopic, ...; CreateTopic's `topic` feeds
/// GetTopic and DeleteTopic, with the instance of the request): clients and API fuzzers (the stateful
/// phase of `tests/fuzz/run`) can follow them.
struct ResourceLinks;

/// (creating operation, the path parameter it creates, where the answer holds it)
const CREATES: [(&str, &str, &str); 8] = [
    ("CreateInstance", "instanceId", "/instanceId"),
    ("CreateTopic", "topic", "/topic"),
    ("CreateGroupId", "groupId", "/groupId"),
    ("RegisterDeviceCredential", "clientId", "/clientId"),
    ("CreateAccessKey", "accessKeyId", "/accessKeyId"),
    ("CreateBrokerNode", "nodeId", "/nodeId"),
    ("CreateRule", "ruleId", "/ruleId"),
    ("AddCustomAuthIdentity", "username", "/username"),
];

impl Modify for ResourceLinks {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::link::LinkBuilder;

        let params = |path: &str| -> Vec<String> {
            path.split('/')
                .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .map(String::from)
                .collect()
        };
        // (operationId, path parameters) of every operation.
        let mut ops: Vec<(String, Vec<String>)> = Vec::new();
        for (path, item) in &openapi.paths.paths {
            for op in operations(item) {
                if let Some(id) = &op.operation_id {
                    ops.push((id.clone(), params(path)));
                }
            }
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            let known = params(path);
            for op in operations_mut(item) {
                let Some((_, created, pointer)) = CREATES
                    .iter()
                    .find(|(id, _, _)| op.operation_id.as_deref() == Some(*id))
                else {
                    continue;
                };
                let Some((_, RefOr::T(response))) = op
                    .responses
                    .responses
                    .iter_mut()
                    .find(|(status, _)| status.starts_with('2'))
                else {
                    continue;
                };
                for (target, needs) in &ops {
                    if !needs.iter().any(|p| p == created) || !needs.iter().all(|p| p == created || known.contains(p)) {
                        continue;
                    }
                    let mut link = LinkBuilder::new().operation_id(target.clone());
                    for p in needs {
                        let value = if p == created {
                            format!("$response.body#{pointer}")
                        } else {
                            format!("$request.path.{p}")
                        };
                        link = link.parameter(p.clone(), value);
                    }
                    response.links.insert(target.clone(), link.build().into());
                }
            }
        }
    }
}

fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login::login)).routes(routes!(
        console_session::create_console_session,
        console_session::get_console_session,
        console_session::delete_console_session
    ))
}

fn protected_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(instances::create_instance, instances::list_instances))
        .routes(routes!(
            instances::get_instance,
            instances::update_instance,
            instances::delete_instance
        ))
        .routes(routes!(usage::get_instance_usage_history))
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
        .merge(
            OpenApiRouter::new()
                .routes(routes!(bulk::batch_register_device_credential))
                .routes(routes!(bulk::batch_create_group_id))
                .layer(DefaultBodyLimit::max(bulk::BODY_LIMIT)),
        )
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
        .routes(routes!(message_trace::query_message_trace))
        .routes(routes!(
            custom_auth::add_custom_auth_identity,
            custom_auth::query_custom_auth_identity
        ))
        .routes(routes!(
            custom_auth::update_custom_auth_identity,
            custom_auth::delete_custom_auth_identity
        ))
        .routes(routes!(
            custom_auth::add_custom_auth_permission,
            custom_auth::update_custom_auth_permission,
            custom_auth::delete_custom_auth_permission,
            custom_auth::query_custom_auth_permission
        ))
        .routes(routes!(
            custom_auth::add_custom_auth_connect_black,
            custom_auth::query_custom_auth_connect_black
        ))
        .routes(routes!(custom_auth::delete_custom_auth_connect_black))
        .routes(routes!(rules::create_rule, rules::list_rules))
        .routes(routes!(rules::get_rule, rules::update_rule, rules::delete_rule))
        .routes(routes!(rules::enable_rule))
        .routes(routes!(rules::disable_rule))
        .routes(routes!(rule_checks::test_rule))
        .routes(routes!(rule_checks::list_rule_dead_letters))
}

/// The OpenAPI document (what `control-plane openapi` prints and `openapi/openapi.json` holds).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .merge(public_routes())
        .merge(protected_routes())
        .split_for_parts()
        .1;
    // After the merge: the modifiers of `ApiDoc` run before any route is in the document.
    CommonResponses.modify(&mut doc);
    ResourceLinks.modify(&mut doc);
    doc
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
