//! QueryMqttTraceDevice over the client event history (`api::trace`): a client's connects,
//! DISCONNECTs and connection ends with why they ended, refused CONNECTs included; and
//! QueryMqttTraceMessagePublish / Subscribe / OfClient over the brokers' message trace
//! (`api::message_trace`).

use chrono::{TimeZone, Utc};
use common::sync::{TraceAction, TraceKind};
use serde_json::{Value, json};

use super::{Call, Fields, fields};
use crate::alibaba::errors::RpcError;
use crate::alibaba::params::Params;
use crate::api::message_trace::{self, MessageTracePage, MessageTraceRecord, TraceRequest};
use crate::api::paging::Page;
use crate::api::trace::{self, ClientEventRecord};
use crate::error::ApiError;

/// `Reverse`: `true` newest first; anything else (or nothing) oldest first, as Alibaba's default.
fn reverse(p: &Params) -> Result<bool, RpcError> {
    match p.get("Reverse") {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(RpcError::invalid("Reverse", "Reverse must be true or false.")),
    }
}

/// One event as a `DeviceInfoList` item: `Action` connect / disconnect / close with its
/// `ActionCode` and `ActionInfo`, `ChannelId` and `Time` (`yyyy-MM-dd HH:mm:ss.SSS`, UTC).
fn device_info(e: ClientEventRecord) -> Value {
    let (action, info) = match e.event_type.as_str() {
        "connect" => ("connect", "accepted".to_string()),
        "disconnect" => ("disconnect", "disconnected by client".to_string()),
        // Brokers that did not say why: the connection went away.
        _ => ("close", e.reason.unwrap_or_else(|| "closed by client".into())),
    };
    json!({
        "Action": action,
        "ActionCode": format!("mqtt.trace.action.{action}"),
        "ActionInfo": info,
        "ChannelId": e.channel_id,
        "Time": trace_time(e.time),
    })
}

/// `yyyy-MM-dd HH:mm:ss.SSS` in UTC, as trace answers give times.
fn trace_time(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

/// One message-trace record: `Action`, `ActionCode`, `ActionInfo` in Alibaba's words, `ClientId`,
/// `MsgId`, `Time`.
fn message_info(r: MessageTraceRecord) -> Value {
    let (code, info) = match r.action {
        TraceAction::PubMqtt => ("msg.pub.mqtt", "Pub From Mqtt Client"),
        TraceAction::PubBackend => ("msg.pub.mq", "Pub From MQ"),
        TraceAction::Sub => ("msg.sub", "Push To Mqtt Client"),
        TraceAction::PushOffline => ("msg.push.offline", "Push Offline Msg To Mqtt Client"),
    };
    json!({
        "Action": r.action,
        "ActionCode": format!("mqtt.trace.action.{code}"),
        "ActionInfo": info,
        "ClientId": r.client_id,
        "MsgId": r.msg_id,
        "Time": trace_time(r.time),
    })
}

/// The paging and order parameters of the paged trace actions.
fn paging(p: &Params) -> Result<(Page, bool), RpcError> {
    let page = Page::new(p.number("CurrentPage")?, p.number("PageSize")?, 20).map_err(|e| match e {
        ApiError::InvalidParameter { field, message } => {
            RpcError::invalid(if field == "pageNo" { "CurrentPage" } else { "PageSize" }, message)
        }
        e => RpcError::from_api(e, "CurrentPage"),
    })?;
    Ok((page, reverse(p)?))
}

/// `BeginTime` and `EndTime` (epoch ms), required.
fn span(p: &Params) -> Result<(Option<i64>, Option<i64>), RpcError> {
    p.required("BeginTime")?;
    p.required("EndTime")?;
    Ok((p.number("BeginTime")?, p.number("EndTime")?))
}

async fn message_trace(call: &Call, req: TraceRequest, subject: &str) -> Result<MessageTracePage, RpcError> {
    let instance_id = call.params.required("InstanceId")?;
    message_trace::trace(&call.state, &call.caller, instance_id, req)
        .await
        .map_err(|e| match e {
            ApiError::InvalidParameter { field, message } if field == "msgId" => RpcError::invalid("MsgId", message),
            e => RpcError::from_api(e, subject),
        })
}

/// `InstanceId`, `MsgId`, `BeginTime`, `EndTime` -> `{MessageTraceLists}`: who published it.
pub(super) async fn query_message_publish(call: Call) -> Result<Fields, RpcError> {
    let p = &call.params;
    let (begin_ms, end_ms) = span(p)?;
    let req = TraceRequest {
        msg_id: Some(p.required("MsgId")?.to_string()),
        client_id: None,
        kind: Some(TraceKind::Publish),
        begin_ms,
        end_ms,
        page: Page::new(None, Some(100), 100).map_err(|e| RpcError::from_api(e, "MsgId"))?,
        newest_first: false,
    };
    let found = message_trace(&call, req, "MsgId").await?;
    let list: Vec<Value> = found.records.into_iter().map(message_info).collect();
    Ok(fields(json!({ "MessageTraceLists": list })))
}

/// `InstanceId`, `MsgId`, `ClientId` (optional), `BeginTime`, `EndTime`, `CurrentPage`, `PageSize`,
/// `Reverse` -> `{CurrentPage, PageSize, Total, MessageTraceLists}`: to whom it was pushed.
pub(super) async fn query_message_subscribe(call: Call) -> Result<Fields, RpcError> {
    let p = &call.params;
    let (begin_ms, end_ms) = span(p)?;
    let (page, newest_first) = paging(p)?;
    let req = TraceRequest {
        msg_id: Some(p.required("MsgId")?.to_string()),
        client_id: p.get("ClientId").map(String::from),
        kind: Some(TraceKind::Delivery),
        begin_ms,
        end_ms,
        page,
        newest_first,
    };
    let found = message_trace(&call, req, "MsgId").await?;
    Ok(fields(json!({
        "CurrentPage": found.page_no,
        "PageSize": found.page_size,
        "Total": found.total,
        "MessageTraceLists": found.records.into_iter().map(message_info).collect::<Vec<_>>(),
    })))
}

/// `InstanceId`, `ClientId`, `BeginTime`, `EndTime`, `CurrentPage`, `PageSize`, `Reverse` ->
/// `{CurrentPage, PageSize, Total, MessageOfClientList}`: what the client published and received.
pub(super) async fn query_message_of_client(call: Call) -> Result<Fields, RpcError> {
    let p = &call.params;
    let (begin_ms, end_ms) = span(p)?;
    let (page, newest_first) = paging(p)?;
    let req = TraceRequest {
        msg_id: None,
        client_id: Some(p.required("ClientId")?.to_string()),
        kind: None,
        begin_ms,
        end_ms,
        page,
        newest_first,
    };
    let found = message_trace(&call, req, "ClientId").await?;
    Ok(fields(json!({
        "CurrentPage": found.page_no,
        "PageSize": found.page_size,
        "Total": found.total,
        "MessageOfClientList": found.records.into_iter().map(message_info).collect::<Vec<_>>(),
    })))
}

/// `InstanceId`, `ClientId`, `BeginTime`, `EndTime` (epoch ms, required), `CurrentPage`,
/// `PageSize` (1-100), `Reverse` -> `{CurrentPage, PageSize, Total, DeviceInfoList}`.
/// `MqttRegionId` is accepted and ignored (no regions here).
pub(super) async fn query_device(call: Call) -> Result<Fields, RpcError> {
    let p = &call.params;
    let instance_id = p.required("InstanceId")?.to_string();
    let client_id = p.required("ClientId")?.to_string();
    let span = span(p)?;
    let (page, newest_first) = paging(p)?;
    let oldest_first = !newest_first;
    let found = trace::client_events(
        &call.state,
        &call.caller,
        &instance_id,
        &client_id,
        span,
        page,
        oldest_first,
    )
    .await
    .map_err(|e| RpcError::from_api(e, "ClientId"))?;
    Ok(fields(json!({
        "CurrentPage": found.page_no,
        "PageSize": found.page_size,
        "Total": found.total,
        "DeviceInfoList": found.events.into_iter().map(device_info).collect::<Vec<_>>(),
    })))
}
