//! QueryMqttTraceDevice over the client event history (`api::trace`): a client's connects,
//! DISCONNECTs and connection ends with why they ended, refused CONNECTs included.

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use super::{Call, Fields, fields};
use crate::alibaba::errors::RpcError;
use crate::alibaba::params::Params;
use crate::api::paging::Page;
use crate::api::trace::{self, ClientEventRecord};
use crate::error::ApiError;

fn number<T: std::str::FromStr>(p: &Params, name: &str) -> Result<Option<T>, RpcError> {
    p.get(name)
        .map(|v| {
            v.parse()
                .map_err(|_| RpcError::invalid(name, format!("{name} must be a whole number.")))
        })
        .transpose()
}

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
    let time = Utc
        .timestamp_millis_opt(e.time)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_default();
    json!({
        "Action": action,
        "ActionCode": format!("mqtt.trace.action.{action}"),
        "ActionInfo": info,
        "ChannelId": e.channel_id,
        "Time": time,
    })
}

/// `InstanceId`, `ClientId`, `BeginTime`, `EndTime` (epoch ms, required), `CurrentPage`,
/// `PageSize` (1-100), `Reverse` -> `{CurrentPage, PageSize, Total, DeviceInfoList}`.
/// `MqttRegionId` is accepted and ignored (no regions here).
pub(super) async fn query_device(call: Call) -> Result<Fields, RpcError> {
    let p = &call.params;
    let instance_id = p.required("InstanceId")?.to_string();
    let client_id = p.required("ClientId")?.to_string();
    p.required("BeginTime")?;
    p.required("EndTime")?;
    let span = (number(p, "BeginTime")?, number(p, "EndTime")?);
    let page = Page::new(number(p, "CurrentPage")?, number(p, "PageSize")?, 20).map_err(|e| match e {
        ApiError::InvalidParameter { field, message } => {
            RpcError::invalid(if field == "pageNo" { "CurrentPage" } else { "PageSize" }, message)
        }
        e => RpcError::from_api(e, "CurrentPage"),
    })?;
    let oldest_first = !reverse(p)?;
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
