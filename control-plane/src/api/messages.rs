//! SendMessage *(compat)*: a backend publishes to a topic of the instance; every broker delivers it to
//! its subscribers and P2P targets, and one of them (`rulesNode`) runs the instance's outflow rules
//! for it. The answer's MsgId is 32 upper-case hex chars.

use axum::Json;
use axum::extract::{Path, State};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::sync::Command;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::db::{brokers, commands, instances, topics};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendMessageRequest {
    /// Full topic (`<parent>/...`, P2P `<parent>/p2p/<clientId>` too): no wildcards, at most
    /// `maxTopicLength` chars, under an existing parent topic.
    pub topic: String,
    /// The payload: UTF-8 text, or Base64 when `base64` is true. At most `maxMessageSize` bytes.
    pub payload: String,
    #[serde(default)]
    pub base64: bool,
    /// 0 or 1 [default 0].
    #[serde(default)]
    pub qos: u8,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendMessageResponse {
    /// 32 upper-case hex chars.
    pub msg_id: String,
    /// Sequence number of the broadcast command brokers act on.
    pub command_seq: i64,
}

/// Largest SendMessage body: the largest payload any instance may allow (`maxMessageSize` at most
/// 1 MiB) in Base64 (1,398,104 bytes), plus 8 KiB for the topic (at most 1024 characters, even fully
/// JSON-escaped) and the other fields. A text payload whose JSON escaping makes it larger must be sent
/// in Base64. Signed requests read at most this much after their signature was checked.
pub(crate) const BODY_LIMIT: usize = (crate::api::quotas::MAX_MESSAGE_SIZE as usize).div_ceil(3) * 4 + 8 * 1024;

/// A fresh message id: 128 random bits as 32 upper-case hex chars.
pub fn msg_id() -> String {
    uuid::Uuid::new_v4().simple().to_string().to_uppercase()
}

#[utoipa::path(post, path = "/api/v1/instances/{instanceId}/messages", operation_id = "SendMessage", tag = "messages",
    params(("instanceId" = String, Path)), request_body = SendMessageRequest, security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = SendMessageResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn send_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    ApiJson(req): ApiJson<SendMessageRequest>,
) -> ApiResult<Json<SendMessageResponse>> {
    caller.require_instance(&instance_id)?;
    let quotas = instances::quotas(&state.db, &instance_id).await?;
    if req.qos > 1 {
        return Err(ApiError::invalid("qos", "must be 0 or 1"));
    }
    common::topic::validate_topic_name(&req.topic, quotas.max_topic_length as usize)
        .map_err(|e| ApiError::invalid("topic", e))?;
    let parent = common::topic::parent_of(&req.topic);
    if !topics::exists(&state.db, &instance_id, parent).await? {
        return Err(ApiError::invalid(
            "topic",
            format!("parent topic {parent:?} does not exist in the instance"),
        ));
    }
    let payload = if req.base64 {
        STANDARD
            .decode(req.payload.as_bytes())
            .map_err(|e| ApiError::invalid("payload", format!("not valid Base64: {e}")))?
    } else {
        req.payload.into_bytes()
    };
    if payload.len() as u64 > u64::from(quotas.max_message_size) {
        return Err(ApiError::invalid(
            "payload",
            format!(
                "larger than the instance's maxMessageSize ({} bytes)",
                quotas.max_message_size
            ),
        ));
    }
    let msg_id = msg_id();
    // Every broker delivers to its own subscribers, but the instance's outflow rules must run once:
    // on one live broker (none live: no broker will see the command anyway).
    let silent_after = std::time::Duration::from_secs(state.config.broker_silent_secs);
    let rules_node = brokers::pick_live(&state.db, silent_after).await?;
    let command = Command::SendMessage {
        rules_node,
        instance_id,
        topic: req.topic,
        payload: STANDARD.encode(&payload),
        qos: req.qos,
        msg_id: msg_id.clone(),
    };
    let command_seq = commands::insert(&state.db, &command).await?;
    Ok(Json(SendMessageResponse { msg_id, command_seq }))
}
