//! Shared contract between the control plane and the brokers: snapshot and status types, name rules,
//! topic matching, MQTT credential signing and token issuing/verification. Pure and I/O-free.

pub mod config_digest;
pub mod custom_auth;
pub mod delta;
pub mod names;
pub mod qos;
pub mod quotas;
pub mod rules;
pub mod signing;
pub mod snapshot;
pub mod sync;
pub mod time;
pub mod token;
pub mod topic;
