//! Every action of Alibaba's OnsMqtt 2020-04-20 API (the list of the official SDK's client) and what
//! this service does with it: the supported ones call the REST handlers with the same caller, so
//! validation, authorization and effects are the REST API's; the others answer `ApiNotSupport`
//! saying why. docs/alibaba-compat.md describes each.

mod custom_auth;
mod devices;
mod groups;
mod instances;
mod messages;
mod sessions;
mod tokens;
mod trace;

use std::future::Future;
use std::pin::Pin;

use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::errors::RpcError;
use super::params::Params;
use crate::auth::Caller;
use crate::state::AppState;

/// What an action handler gets.
pub(crate) struct Call {
    pub state: AppState,
    pub caller: Caller,
    pub params: Params,
}

/// The answer's fields (without `RequestId`).
pub(crate) type Fields = Map<String, Value>;
pub(crate) type Answer = Pin<Box<dyn Future<Output = Result<Fields, RpcError>> + Send>>;
pub(crate) type Handler = fn(Call) -> Answer;

pub(crate) enum Availability {
    Supported(Handler),
    /// Not offered; the text says why.
    NotSupported(&'static str),
}

use Availability::{NotSupported, Supported};

const CERTIFICATES: &str = "X.509 device certificate authentication is not offered";
const DISASTER_RECOVERY: &str = "there is no cross-region disaster recovery here";
const TAGS: &str = "resources have no tags here";

pub(crate) const ACTIONS: &[(&str, Availability)] = &[
    ("ActiveCaCertificate", NotSupported(CERTIFICATES)),
    ("ActiveDeviceCertificate", NotSupported(CERTIFICATES)),
    (
        "AddCustomAuthConnectBlack",
        Supported(|call| Box::pin(custom_auth::add_connect_black(call))),
    ),
    (
        "AddCustomAuthIdentity",
        Supported(|call| Box::pin(custom_auth::add_identity(call))),
    ),
    (
        "AddCustomAuthPermission",
        Supported(|call| Box::pin(custom_auth::add_permission(call))),
    ),
    ("ApplyToken", Supported(|call| Box::pin(tokens::apply(call)))),
    (
        "BatchQuerySessionByClientIds",
        Supported(|call| Box::pin(sessions::batch_query(call))),
    ),
    ("CloseConnection", Supported(|call| Box::pin(sessions::close(call)))),
    ("CreateGroupId", Supported(|call| Box::pin(groups::create(call)))),
    ("DeleteCaCertificate", NotSupported(CERTIFICATES)),
    (
        "DeleteCustomAuthConnectBlack",
        Supported(|call| Box::pin(custom_auth::delete_connect_black(call))),
    ),
    (
        "DeleteCustomAuthIdentity",
        Supported(|call| Box::pin(custom_auth::delete_identity(call))),
    ),
    (
        "DeleteCustomAuthPermission",
        Supported(|call| Box::pin(custom_auth::delete_permission(call))),
    ),
    ("DeleteDeviceCertificate", NotSupported(CERTIFICATES)),
    ("DeleteGroupId", Supported(|call| Box::pin(groups::delete(call)))),
    ("DisasterDowngrade", NotSupported(DISASTER_RECOVERY)),
    ("DisasterRecovery", NotSupported(DISASTER_RECOVERY)),
    ("GetCaCertificate", NotSupported(CERTIFICATES)),
    ("GetDeviceCertificate", NotSupported(CERTIFICATES)),
    ("GetDeviceCredential", Supported(|call| Box::pin(devices::get(call)))),
    ("GetRegisterCode", NotSupported(CERTIFICATES)),
    ("InactivateCaCertificate", NotSupported(CERTIFICATES)),
    ("InactivateDeviceCertificate", NotSupported(CERTIFICATES)),
    ("ListCaCertificate", NotSupported(CERTIFICATES)),
    ("ListDeviceCertificate", NotSupported(CERTIFICATES)),
    ("ListDeviceCertificateByCaSn", NotSupported(CERTIFICATES)),
    (
        "ListDeviceCredentialClientId",
        Supported(|call| Box::pin(devices::list_client_ids(call))),
    ),
    ("ListGroupId", Supported(|call| Box::pin(groups::list(call)))),
    ("ListInstances", Supported(|call| Box::pin(instances::list(call)))),
    ("ListTagResources", NotSupported(TAGS)),
    (
        "QueryCustomAuthConnectBlack",
        Supported(|call| Box::pin(custom_auth::query_connect_black(call))),
    ),
    (
        "QueryCustomAuthIdentity",
        Supported(|call| Box::pin(custom_auth::query_identity(call))),
    ),
    (
        "QueryCustomAuthPermission",
        Supported(|call| Box::pin(custom_auth::query_permission(call))),
    ),
    (
        "QueryMqttTraceDevice",
        Supported(|call| Box::pin(trace::query_device(call))),
    ),
    (
        "QueryMqttTraceMessageOfClient",
        Supported(|call| Box::pin(trace::query_message_of_client(call))),
    ),
    (
        "QueryMqttTraceMessagePublish",
        Supported(|call| Box::pin(trace::query_message_publish(call))),
    ),
    (
        "QueryMqttTraceMessageSubscribe",
        Supported(|call| Box::pin(trace::query_message_subscribe(call))),
    ),
    (
        "QuerySessionByClientId",
        Supported(|call| Box::pin(sessions::query(call))),
    ),
    ("QueryToken", Supported(|call| Box::pin(tokens::query(call)))),
    (
        "RefreshDeviceCredential",
        Supported(|call| Box::pin(devices::refresh(call))),
    ),
    ("RegisterCaCertificate", NotSupported(CERTIFICATES)),
    (
        "RegisterDeviceCredential",
        Supported(|call| Box::pin(devices::register(call))),
    ),
    ("RevokeToken", Supported(|call| Box::pin(tokens::revoke(call)))),
    ("SendMessage", Supported(|call| Box::pin(messages::send(call)))),
    (
        "SetSniConfig",
        NotSupported(
            "per-domain certificates and instance selection by TLS SNI are not offered: TLS listeners have one certificate, and custom-auth usernames select their instance",
        ),
    ),
    ("TagResources", NotSupported(TAGS)),
    (
        "UnRegisterDeviceCredential",
        Supported(|call| Box::pin(devices::unregister(call))),
    ),
    ("UntagResources", NotSupported(TAGS)),
    (
        "UpdateCustomAuthIdentity",
        Supported(|call| Box::pin(custom_auth::update_identity(call))),
    ),
    (
        "UpdateCustomAuthPermission",
        Supported(|call| Box::pin(custom_auth::update_permission(call))),
    ),
];

/// The action's name as listed (a `&'static str` for metric labels) and its handler.
pub(crate) fn find(name: &str) -> Result<(&'static str, Handler), RpcError> {
    let Some((listed, availability)) = ACTIONS.iter().find(|(n, _)| *n == name) else {
        return Err(RpcError::new(
            StatusCode::NOT_FOUND,
            "InvalidAction.NotFound",
            format!("Specified api {name:?} is not found in version 2020-04-20, please check your url and method."),
        ));
    };
    match availability {
        Supported(handler) => Ok((listed, *handler)),
        NotSupported(why) => Err(RpcError::new(
            StatusCode::NOT_FOUND,
            "ApiNotSupport",
            format!("The specified API is not supported: {why}."),
        )),
    }
}

/// Milliseconds since the epoch, as Alibaba's answers give times.
fn epoch_ms(t: chrono::DateTime<chrono::Utc>) -> Value {
    t.timestamp_millis().into()
}

/// Whether the optional `Tags` parameter (a JSON list of `{key, value}`) asks for tagged resources.
/// Nothing has tags here, so such a filter matches nothing.
fn tag_filter(params: &Params) -> Result<bool, RpcError> {
    let Some(raw) = params.get("Tags") else {
        return Ok(false);
    };
    let tags: Vec<Value> = serde_json::from_str(raw).map_err(|_| {
        RpcError::invalid(
            "Tags",
            "Tags must be a JSON list such as [{\"key\":\"k\",\"value\":\"v\"}].",
        )
    })?;
    Ok(!tags.is_empty())
}

/// The fields of a `serde_json::json!({...})` object.
fn fields(value: Value) -> Fields {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_is_sorted_and_without_duplicates() {
        let names: Vec<&str> = ACTIONS.iter().map(|(n, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
        assert_eq!(names.len(), 50, "the 2020-04-20 SDK client has 50 actions");
        let supported = ACTIONS.iter().filter(|(_, a)| matches!(a, Supported(_))).count();
        assert_eq!(supported, 31);
    }

    #[test]
    fn unknown_and_unsupported_actions() {
        assert_eq!(find("Nope").unwrap_err().code, "InvalidAction.NotFound");
        let e = find("SetSniConfig").unwrap_err();
        assert_eq!((e.status, e.code.as_ref()), (StatusCode::NOT_FOUND, "ApiNotSupport"));
        assert!(e.message.contains("SNI are not offered"), "{}", e.message);
        assert_eq!(find("ApplyToken").unwrap().0, "ApplyToken");
    }
}
