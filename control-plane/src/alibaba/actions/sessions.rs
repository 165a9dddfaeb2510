//! QuerySessionByClientId, BatchQuerySessionByClientIds, CloseConnection over the REST session
//! handlers (online means a live connection on some broker node).

use axum::Json;
use axum::extract::{Path, State};
use serde_json::json;

use super::{Call, Fields, fields};
use crate::alibaba::errors::RpcError;
use crate::api::sessions::{self as rest, BatchQuerySessionRequest};
use crate::extract::ApiJson;

fn client_path(call: &Call) -> Result<(String, String), RpcError> {
    Ok((
        call.params.required("InstanceId")?.to_string(),
        call.params.required("ClientId")?.to_string(),
    ))
}

/// `{OnlineStatus}`.
pub(super) async fn query(call: Call) -> Result<Fields, RpcError> {
    let path = client_path(&call)?;
    let Json(session) = rest::query_session_by_client_id(State(call.state), call.caller, Path(path))
        .await
        .map_err(|e| RpcError::from_api(e, "ClientId"))?;
    Ok(fields(json!({ "OnlineStatus": session.online })))
}

/// `ClientIdList.N` (1 to 10) -> `{OnlineStatusList: [{ClientId, OnlineStatus}]}` in request order.
pub(super) async fn batch_query(call: Call) -> Result<Fields, RpcError> {
    let instance_id = call.params.required("InstanceId")?.to_string();
    let client_ids: Vec<String> = call
        .params
        .list("ClientIdList")
        .into_iter()
        .map(str::to_string)
        .collect();
    let req = BatchQuerySessionRequest { client_ids };
    let Json(list) =
        rest::batch_query_session_by_client_ids(State(call.state), call.caller, Path(instance_id), ApiJson(req))
            .await
            .map_err(|e| RpcError::from_api(e, "ClientIdList"))?;
    let statuses: Vec<_> = list
        .sessions
        .into_iter()
        .map(|s| json!({ "ClientId": s.client_id, "OnlineStatus": s.online }))
        .collect();
    Ok(fields(json!({ "OnlineStatusList": statuses })))
}

/// `{Code: 200, Message, Success: true}` once every broker node has been told to close the client's
/// connections; a client that is not online is `InvalidParameter.ClientId` (as the REST API's 404).
pub(super) async fn close(call: Call) -> Result<Fields, RpcError> {
    let path = client_path(&call)?;
    let (_accepted, _command) = rest::close_connection(State(call.state), call.caller, Path(path))
        .await
        .map_err(|e| RpcError::from_api(e, "ClientId"))?;
    Ok(fields(
        json!({ "Code": 200, "Message": "operation success.", "Success": true }),
    ))
}
