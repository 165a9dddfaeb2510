//! The Alibaba-compatible online-status query on the broker's HTTP listener *(docs/spec.md 4)*:
//! `GET /route/clientId/get?accessKey=&resource=<clientId>&timestamp=<ms>&instanceId=&signature=`,
//! signed with the AccessKey secret; answers how many live connections the client has here.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use common::signing::{constant_time_eq, hmac_sha1_base64, online_query_string_to_sign};
use serde::Serialize;

use crate::cluster::Cluster;
use crate::core::Broker;
use crate::directory::Directory;

pub const PATH: &str = "/route/clientId/get";
/// Accepted clock difference between the caller and the broker.
pub const WINDOW_MS: i64 = 5 * 60 * 1000;
const REQUIRED: [&str; 5] = ["accessKey", "resource", "timestamp", "instanceId", "signature"];

/// The JSON answer *(compat)*: `{code, success, online, message}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    pub code: u8,
    pub success: bool,
    /// Live connections of the client on this broker; absent (null) on refusals.
    pub online: Option<u64>,
    pub message: String,
}

impl Answer {
    fn refused(code: u8, message: &str) -> Self {
        Self {
            code,
            success: false,
            online: None,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self.code {
            0 => StatusCode::OK,
            1 => StatusCode::BAD_REQUEST,
            _ => StatusCode::FORBIDDEN,
        }
    }
}

/// The route; in a cluster it answers for every broker (from the cluster's session records).
pub fn router(broker: Arc<Broker>, cluster: Option<Arc<Cluster>>) -> Router {
    Router::new().route(PATH, get(handle)).with_state((broker, cluster))
}

async fn handle(
    State((broker, cluster)): State<(Arc<Broker>, Option<Arc<Cluster>>)>,
    Query(params): Query<Vec<(String, String)>>,
) -> (StatusCode, Json<Answer>) {
    let dir = broker.dirs.load();
    let answer = evaluate(&dir, &params, common::time::now_ms(), |inst, client| match &cluster {
        Some(c) => u64::from(c.online_anywhere(inst, client) || broker.live_connections(inst, client) > 0),
        None => broker.live_connections(inst, client) as u64,
    });
    crate::metrics::online_query(answer.code);
    (answer.status(), Json(answer))
}

/// The whole check, pure: parameters (1), instance and AccessKey (3), signature (2), timestamp (4).
/// The signature is checked before the timestamp so an unsigned caller learns nothing more.
pub fn evaluate(
    dir: &Directory,
    params: &[(String, String)],
    now_ms: i64,
    online: impl Fn(&str, &str) -> u64,
) -> Answer {
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    if let Some(missing) = REQUIRED.iter().find(|k| param(k).is_none()) {
        return Answer::refused(1, &format!("missing parameter {missing}"));
    }
    let (access_key, client_id, instance_id, signature) = (
        param("accessKey").unwrap_or_default(),
        param("resource").unwrap_or_default(),
        param("instanceId").unwrap_or_default(),
        param("signature").unwrap_or_default(),
    );
    let Ok(timestamp) = param("timestamp").unwrap_or_default().parse::<i64>() else {
        return Answer::refused(1, "timestamp is not a number of milliseconds");
    };
    let grant = dir
        .instances
        .get(instance_id)
        .filter(|i| !i.open)
        .and_then(|i| i.access_keys.get(access_key))
        .filter(|k| k.enabled);
    let Some(grant) = grant else {
        return Answer::refused(3, "no permission on this instance");
    };
    let to_sign = online_query_string_to_sign(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let expected = hmac_sha1_base64(grant.access_key_secret.as_bytes(), to_sign.as_bytes());
    if !constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
        return Answer::refused(2, "signature does not match");
    }
    if (now_ms - timestamp).abs() > WINDOW_MS {
        return Answer::refused(4, "timestamp out of the 5-minute window");
    }
    Answer {
        code: 0,
        success: true,
        online: Some(online(instance_id, client_id)),
        message: "ok".into(),
    }
}

#[cfg(test)]
mod tests {
    use common::snapshot::{AccessKeyGrant, InstanceConfig};

    use super::*;
    use crate::directory::Directories;
    use crate::directory::tests::{instance, snapshot};

    const INST: &str = "mqtt-abcdefabcdef";
    const NOW: i64 = 1_800_000_000_000;

    fn dir() -> Arc<Directory> {
        let key = |id: &str, enabled| AccessKeyGrant {
            access_key_id: id.into(),
            access_key_secret: format!("{id}-secret"),
            enabled,
        };
        let inst = InstanceConfig {
            access_keys: vec![key("AK", true), key("OFF", false)],
            ..instance(INST, &["GID_alpha"])
        };
        let dirs = Directories::new(None);
        dirs.apply_snapshot(snapshot(1, vec![inst])).unwrap();
        dirs.load()
    }

    fn signed(key: &str, secret: &str, ts: i64, instance: &str) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = [
            ("accessKey", key.to_string()),
            ("resource", "GID_alpha@@@d".to_string()),
            ("timestamp", ts.to_string()),
            ("instanceId", instance.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let to_sign = online_query_string_to_sign(p.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        p.push((
            "signature".into(),
            hmac_sha1_base64(secret.as_bytes(), to_sign.as_bytes()),
        ));
        p
    }

    fn code(params: &[(String, String)]) -> (u8, StatusCode, Option<u64>) {
        let a = evaluate(&dir(), params, NOW, |i, c| {
            u64::from(i == INST && c == "GID_alpha@@@d") * 2
        });
        (a.code, a.status(), a.online)
    }

    #[test]
    fn answers_the_live_connection_count() {
        assert_eq!(
            code(&signed("AK", "AK-secret", NOW, INST)),
            (0, StatusCode::OK, Some(2))
        );
        // Within the window on both sides.
        assert_eq!(code(&signed("AK", "AK-secret", NOW - WINDOW_MS, INST)).0, 0);
        assert_eq!(code(&signed("AK", "AK-secret", NOW + WINDOW_MS, INST)).0, 0);
    }

    #[test]
    fn refusals_have_their_codes() {
        let mut missing = signed("AK", "AK-secret", NOW, INST);
        missing.retain(|(k, _)| k != "resource");
        assert_eq!(code(&missing), (1, StatusCode::BAD_REQUEST, None));
        let mut bad_ts = signed("AK", "AK-secret", NOW, INST);
        bad_ts[2].1 = "yesterday".into();
        assert_eq!(code(&bad_ts).0, 1);
        assert_eq!(
            code(&signed("AK", "wrong", NOW, INST)),
            (2, StatusCode::FORBIDDEN, None)
        );
        assert_eq!(code(&signed("OFF", "OFF-secret", NOW, INST)).0, 3);
        assert_eq!(code(&signed("NOPE", "x", NOW, INST)).0, 3);
        assert_eq!(code(&signed("AK", "AK-secret", NOW, "mqtt-000000000000")).0, 3);
        assert_eq!(
            code(&signed("AK", "AK-secret", NOW - WINDOW_MS - 1, INST)),
            (4, StatusCode::FORBIDDEN, None)
        );
        assert_eq!(code(&signed("AK", "AK-secret", NOW + WINDOW_MS + 1, INST)).0, 4);
    }

    #[test]
    fn every_other_parameter_is_signed() {
        let mut p = signed("AK", "AK-secret", NOW, INST);
        p.insert(0, ("extra".into(), "1".into()));
        assert_eq!(code(&p).0, 2, "an unsigned extra parameter breaks the signature");
    }
}
