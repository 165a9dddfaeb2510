//! End-to-end tests across processes: PostgreSQL, the control plane and one or two brokers (a cluster
//! of three with NATS and HAProxy in `cluster_*`), driven through the REST API and real MQTT clients.

mod cluster_broker_kill;
mod cluster_control;
mod cluster_faults;
mod cluster_isolation;
mod cluster_lb;
mod cluster_nats_node;
mod cluster_order;
mod cluster_routing;
mod cluster_sessions;
mod cluster_state;
mod commands;
mod custom_auth;
mod deltas;
mod device_trace;
mod events;
mod message_trace;
mod online_status;
mod outage;
mod probe;
mod propagation;
mod rules;
mod snapshot_refusal;
mod tls_link;
