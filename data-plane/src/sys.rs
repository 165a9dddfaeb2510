//! System topics *(docs/spec.md 3.7)*: `$SYS/uploadToken` and `$SYS/enableOrderMsg` from clients, and the
//! payloads of the broker's `$SYS/tokenExpireNotice` (about 5 minutes ahead) and
//! `$SYS/tokenInvalidNotice`.

use serde_json::json;

pub const UPLOAD_TOKEN: &str = "$SYS/uploadToken";
pub const ENABLE_ORDER: &str = "$SYS/enableOrderMsg";
pub const EXPIRE_NOTICE: &str = "$SYS/tokenExpireNotice";
pub const INVALID_NOTICE: &str = "$SYS/tokenInvalidNotice";
/// Time a notice gets to reach the socket before the connection is closed behind it.
pub const NOTICE_FLUSH: ntex::time::Millis = ntex::time::Millis(100);

pub fn invalid_notice(code: i32, kind: &str) -> String {
    json!({"code": code, "type": kind}).to_string()
}

pub fn expire_notice(expire_time_ms: i64, kind: &str) -> String {
    json!({"expireTime": expire_time_ms, "type": kind}).to_string()
}
