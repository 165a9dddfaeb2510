//! Control plane library: the REST API (`api`), its PostgreSQL store (`db`), the broker link
//! (`broker_link`) and Alibaba's own API dialect over the REST handlers (`alibaba`). The binary in
//! `main.rs` only parses the command line; tests start the same server in-process, so what they use
//! stays `pub` and the rest is `pub(crate)`.

pub(crate) mod alibaba;
pub mod api;
pub mod auth;
pub mod broker_link;
pub(crate) mod clock;
pub mod config;
pub(crate) mod console;
pub mod crypto;
pub(crate) mod db;
pub(crate) mod error;
pub(crate) mod extract;
pub mod housekeeping;
pub mod http;
pub(crate) mod ids;
pub(crate) mod metrics;
pub mod rules;
pub mod server;
pub mod state;
pub mod telemetry;
