//! Integration tests of the control plane: the real server on port 0, real PostgreSQL, real HTTP.

use test_support::pg;
mod server;

mod access_keys;
mod alibaba;
mod auth;
mod brokers;
mod bulk;
mod config_changes;
mod console;
mod custom_auth;
mod deltas;
mod devices;
mod groups;
mod housekeeping;
mod instances;
mod isolation;
mod limits;
mod login_limits;
mod message_trace;
mod openapi;
mod ops;
mod outage;
mod process;
mod python;
mod rules;
mod sessions;
mod snapshot;
mod sync;
mod tokens;
mod topics;
mod unstorable;
mod usage;
