//! The data-plane broker as a library: the `broker` binary is a thin `main` over `server::run`,
//! and later features (control-plane link, rules) reuse the same modules.

pub mod auth;
pub mod broker;
pub mod config;
pub mod conn;
pub mod deliver;
pub mod directory;
pub mod events;
pub mod http;
pub mod mailbox;
pub mod mqtt;
pub mod online_status;
pub mod rate;
pub mod router;
pub mod server;
pub mod sink;
pub mod store;
pub mod sync;
pub mod sys;
pub mod tls;
pub mod ws;
