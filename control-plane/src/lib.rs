//! Control plane library: the REST API, its PostgreSQL store and the broker snapshot builder. The
//! binary in `main.rs` only parses the command line; tests start the same server in-process.

pub mod api;
pub mod auth;
pub mod broker_link;
pub mod clock;
pub mod config;
pub mod console;
pub mod crypto;
pub mod db;
pub mod error;
pub mod extract;
pub mod housekeeping;
pub mod ids;
pub mod metrics;
pub mod server;
pub mod state;
pub mod telemetry;
