//! The data-plane broker as a library: the `broker` binary is a thin `main` over `server::run`.
//! Layers, each using only those below it: `mqtt` (protocol adapters) -> `conn` (one connection)
//! -> `core` (the node-wide broker) -> `auth`, `store`, `directory`, `message`. `rules` hangs off the
//! core's publish path and client events (its own thread drains the outboxes); `trace` records what
//! `conn` and the commands accepted and pushed (its own thread writes them).

mod auth;
mod clock;
mod cluster;
pub mod config;
mod conn;
mod core;
mod device_table;
mod directory;
mod events;
mod http;
mod listeners;
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

/// The hasher of the maps every message looks into (sessions, subscriptions, parent topics, the
/// rate limiter): foldhash, the hasher hashbrown itself defaults to, instead of the standard
/// SipHash (3.7 % of the broker's CPU at QoS 0 saturation, measured with perf).
/// Keys there are client-chosen (client IDs, topic levels): its per-process random seed keeps
/// colliding keys from being precomputed, which is the flooding the standard hasher guards against.
pub(crate) type FastHash = foldhash::fast::RandomState;
