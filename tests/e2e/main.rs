//! End-to-end tests across processes: PostgreSQL, the control plane and one or two brokers, driven
//! through the REST API and real MQTT clients.

mod commands;
mod events;
mod online_status;
mod outage;
mod probe;
mod propagation;
mod tls_link;
