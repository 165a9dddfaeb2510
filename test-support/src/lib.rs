//! Helpers for integration tests of every crate: real parts started on demand, never mocks.

pub mod pg;
