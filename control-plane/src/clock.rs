//! The wall clock as the control plane stores and signs times: epoch milliseconds (the same clock
//! the brokers use).

pub use common::time::now_ms;
