//! System topics *(SPEC 3.7)*: `$SYS/uploadToken` and `$SYS/enableOrderMsg` from clients, and the
//! broker's `$SYS/tokenExpireNotice` (about 5 minutes ahead) and `$SYS/tokenInvalidNotice`.

use common::token::{TokenAction, TokenError};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{self, Tokens};
use crate::events::now_ms;
use crate::sink::Sink;

pub const UPLOAD_TOKEN: &str = "$SYS/uploadToken";
pub const ENABLE_ORDER: &str = "$SYS/enableOrderMsg";
pub const EXPIRE_NOTICE: &str = "$SYS/tokenExpireNotice";
pub const INVALID_NOTICE: &str = "$SYS/tokenInvalidNotice";
const NOTICE_AHEAD_MS: i64 = 5 * 60 * 1000;
/// Time a notice gets to reach the socket before the connection is closed behind it.
pub const NOTICE_FLUSH: ntex::time::Millis = ntex::time::Millis(100);

#[derive(Deserialize)]
struct Upload {
    token: String,
    #[serde(rename = "type")]
    kind: String,
}

pub fn invalid_notice(code: i32, kind: &str) -> String {
    json!({"code": code, "type": kind}).to_string()
}

/// Handles `$SYS/uploadToken`: verifies the token and replaces that type in the live session.
/// On failure returns the error (the caller sends the invalid notice and refuses).
pub fn upload_token(
    dir: &crate::directory::Directory,
    instance: &crate::directory::Instance,
    access_key_id: &str,
    tokens: &mut Tokens,
    payload: &[u8],
) -> Result<(), (TokenError, String)> {
    let upload: Upload = serde_json::from_slice(payload).map_err(|_| (TokenError::Malformed, "RW".to_string()))?;
    let kind = TokenAction::parse_type(&upload.kind).ok_or((TokenError::Malformed, upload.kind.clone()))?;
    let claims = auth::verify_token(dir, instance, access_key_id, kind, &upload.token, now_ms())
        .map_err(|e| (e, upload.kind.clone()))?;
    tokens.notified.remove(&claims.jti);
    tokens.by_type.insert(kind.as_str(), claims);
    Ok(())
}

/// When the delivery task must next look at the tokens (expiry notice or expiry).
pub fn next_token_deadline(tokens: &Tokens) -> Option<ntex::time::Millis> {
    let now = now_ms();
    tokens
        .by_type
        .values()
        .map(|c| {
            if tokens.notified.contains(&c.jti) {
                c.exp_ms
            } else {
                c.exp_ms - NOTICE_AHEAD_MS
            }
        })
        .min()
        .map(|at| ntex::time::Millis((at - now).clamp(0, i64::from(u32::MAX)) as u32))
}

/// Sends due notices. True when a token has expired and the connection must close.
pub fn token_timers(sink: &Sink, tokens: &mut Tokens) -> bool {
    let now = now_ms();
    for (kind, claims) in &tokens.by_type {
        if claims.exp_ms <= now {
            tracing::info!(jti = %claims.jti, "token expired");
            sink.send_qos0(
                INVALID_NOTICE,
                invalid_notice(TokenError::Expired.notice_code(), kind).into(),
                false,
            );
            metrics::counter!("broker_refusals_total", "reason" => "token_expired").increment(1);
            return true;
        }
    }
    let due: Vec<(&'static str, i64, String)> = tokens
        .by_type
        .iter()
        .filter(|(_, c)| c.exp_ms - NOTICE_AHEAD_MS <= now && !tokens.notified.contains(&c.jti))
        .map(|(k, c)| (*k, c.exp_ms, c.jti.clone()))
        .collect();
    for (kind, exp, jti) in due {
        let body = json!({"expireTime": exp, "type": kind}).to_string();
        let sent = sink.send_qos0(EXPIRE_NOTICE, body.into(), false);
        tracing::debug!(jti = %jti, sent, "token expire notice");
        tokens.notified.insert(jti);
    }
    false
}

/// After a snapshot change: the first token that is now revoked, or whose key or instance is gone.
/// The caller sends the invalid notice with this error and closes the connection.
pub fn recheck_tokens(
    dir: &crate::directory::Directory,
    instance_id: &str,
    access_key_id: &str,
    tokens: &Tokens,
) -> Option<(TokenError, &'static str)> {
    let Some(instance) = dir.instances.get(instance_id) else {
        return tokens
            .by_type
            .keys()
            .next()
            .map(|k| (TokenError::PermissionInvalid, *k));
    };
    let key_ok = instance.access_keys.get(access_key_id).is_some_and(|k| k.enabled);
    tokens.by_type.iter().find_map(|(kind, claims)| {
        if instance.revoked_jtis.contains(&claims.jti) {
            Some((TokenError::Revoked, *kind))
        } else if !key_ok {
            Some((TokenError::PermissionInvalid, *kind))
        } else {
            None
        }
    })
}
