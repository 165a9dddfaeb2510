//! The broker's integration tests, one binary (each test binary links the whole broker and its
//! dependencies; one instead of nine keeps build time and disk use down). Every test starts the real
//! `broker` executable and talks to it with real MQTT clients.

mod support;

mod auth;
mod bad_input;
mod hardening_auth;
mod hardening_limits;
mod hardening_store;
mod instance_options;
mod listeners;
mod offline;
mod python_alibaba;
mod python_interop;
mod refusals;
mod routing;
mod rules;
mod rules_nats;
mod rules_status;
mod standards;
mod system;
mod v5_features;
mod v5_properties;
mod websocket;
