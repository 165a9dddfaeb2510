//! The wall clock as the control plane stores and signs times: epoch milliseconds.

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
