//! ListInstances over the REST handler: the instances the AccessKey is bound to.

use axum::Json;
use axum::extract::State;
use serde_json::json;

use super::{Call, Fields, epoch_ms, fields, tag_filter};
use crate::alibaba::errors::RpcError;
use crate::api::instances as rest;

/// `InstanceStatus` of a serving instance (the value of Alibaba's example answer): every instance
/// here is serving.
const SERVING: u8 = 5;

/// `{Code: "200", Success: "true", Message, Instances: [{InstanceId, InstanceName, InstanceStatus,
/// CreateTime, MqttTags}]}` (strings where Alibaba has strings). Fields about billing, editions,
/// regions and kernel versions have no meaning here and are left out.
pub(super) async fn list(call: Call) -> Result<Fields, RpcError> {
    let tagged_only = tag_filter(&call.params)?;
    let Json(list) = rest::list_instances(State(call.state), call.caller)
        .await
        .map_err(|e| RpcError::from_api(e, "InstanceId"))?;
    let instances: Vec<_> = list
        .instances
        .into_iter()
        .filter(|_| !tagged_only)
        .map(|i| {
            json!({
                "InstanceId": i.instance_id,
                "InstanceName": i.name,
                "InstanceStatus": SERVING,
                "CreateTime": epoch_ms(i.created_at),
                "MqttTags": [],
            })
        })
        .collect();
    Ok(fields(json!({
        "Code": "200",
        "Success": "true",
        "Message": "operation success.",
        "Instances": instances,
    })))
}
