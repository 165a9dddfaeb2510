//! SendMessage over the REST handler.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::json;

use super::{Call, Fields, fields};
use crate::alibaba::errors::RpcError;
use crate::api::messages::{self as rest, SendMessageRequest};
use crate::extract::ApiJson;

/// QoS of a message sent with SendMessage: Alibaba does not say; 1 lets a persistent session that is
/// offline receive it when it returns (the REST operation lets the caller choose).
const QOS: u8 = 1;

/// `MqttTopic`, `Payload` (the payload as given, UTF-8 text; Alibaba recommends Base64 text for
/// binary data, which subscribers receive as that text) -> `{MsgId}`.
pub(super) async fn send(call: Call) -> Result<Fields, RpcError> {
    let p = &call.params;
    let instance_id = p.required("InstanceId")?.to_string();
    let req = SendMessageRequest {
        topic: p.required("MqttTopic")?.to_string(),
        payload: p.required("Payload")?.to_string(),
        base64: false,
        qos: QOS,
    };
    let Json(sent) = rest::send_message(State(call.state), call.caller, Path(instance_id), ApiJson(req))
        .await
        .map_err(|e| RpcError::from_api(e, "MqttTopic"))?;
    Ok(fields(json!({ "MsgId": sent.msg_id })))
}
