//! Helpers for integration tests of every crate: real parts started on demand, never mocks.

pub mod mqtt;
pub mod nats;
pub mod net;
pub mod pg;
pub mod python;
pub mod receiver;
pub mod tls_proxy;
