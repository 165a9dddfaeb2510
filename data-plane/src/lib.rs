//! The data-plane broker as a library: the `broker` binary is a thin `main` over `server::run`.
//! Layers, each using only those below it: `mqtt` (protocol adapters) -> `conn` (one connection)
//! -> `core` (the node-wide broker) -> `auth`, `store`, `directory`, `message`. `rules` hangs off the
//! core's publish path and client events (its own thread drains the outboxes); `trace` records what
//! `conn` and the commands accepted and pushed (its own thread writes them).

mod auth;
mod cluster;
pub mod config;
mod conn;
mod core;
mod device_table;
mod directory;
mod events;
mod http;
mod message;
mod metrics;
mod mqtt;
mod online_status;
mod rules;
pub mod server;
mod store;
mod sync;
mod sys;
#[cfg(test)]
mod test_alloc;
mod tls;
mod trace;
mod ws;
