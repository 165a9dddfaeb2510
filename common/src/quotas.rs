//! Per-instance limits of docs/spec.md section 2, with their defaults. Every one can be changed per instance.

use serde::{Deserialize, Serialize};

/// Token validity bounds (docs/spec.md 2): shorter is refused, longer is silently capped *(compat)*.
pub const TOKEN_MIN_VALIDITY_MS: i64 = 60_000;
pub const TOKEN_MAX_VALIDITY_MS: i64 = 30 * 24 * 3600 * 1000;

/// Limits enforced by the control plane (API) and the brokers (wire). Missing fields take the defaults,
/// so older snapshots and partial API updates stay valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Quotas {
    pub max_parent_topics: u32,
    pub max_rules: u32,
    pub max_topic_length: u32,
    pub max_client_id_length: u32,
    pub max_subscriptions_per_client: u32,
    pub max_wildcard_subscriptions_per_parent_topic: u32,
    pub max_message_size: u32,
    pub max_connections: u32,
    pub max_messages_per_second: u32,
    pub offline_retention_secs: u64,
    pub max_offline_messages: u64,
    /// Bytes of offline messages stored per instance (topic + payload + properties); the oldest are
    /// dropped beyond it, as beyond `max_offline_messages`.
    pub max_offline_bytes: u64,
    /// Persistent sessions (connected or not) per instance; a CONNECT that would create one more
    /// is refused.
    pub max_persistent_sessions: u32,
    /// Retained messages per instance, by count and by bytes; a retained PUBLISH beyond either
    /// is refused.
    pub max_retained_messages: u32,
    pub max_retained_bytes: u64,
    pub max_token_resources: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            max_parent_topics: 25,
            max_rules: 100,
            max_topic_length: 64,
            max_client_id_length: 64,
            max_subscriptions_per_client: 30,
            max_wildcard_subscriptions_per_parent_topic: 100,
            max_message_size: 64 * 1024,
            max_connections: 10_000,
            max_messages_per_second: 10_000,
            offline_retention_secs: 3 * 24 * 3600,
            max_offline_messages: 1_000_000,
            max_offline_bytes: 1 << 30,
            max_persistent_sessions: 100_000,
            max_retained_messages: 10_000,
            max_retained_bytes: 64 << 20,
            max_token_resources: 100,
        }
    }
}
