//! rumqttc v3.1.1 helpers, shared with the end-to-end tests through the test-support crate.
#![allow(unused_imports)]

pub use test_support::mqtt::*;
