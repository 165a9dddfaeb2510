//! The durable side of persistent sessions: their records (subscriptions and expiry) and their
//! offline message queues. The traits are the seam; the embedded implementation is `store::FjallStore`,
//! a clustered one keeps the same contract on replicated storage.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use common::qos::QoS;
use serde::{Deserialize, Serialize};

use super::mailbox::Outbound;
use super::seam::{Seam, SeamResult};
use super::subscriptions::{RetainHandling, SubOptions};
use crate::message::Message;

/// A persistent session as kept on disk: its subscriptions and how long it outlives its connection.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PersistedSession {
    pub subs: Vec<PersistedSub>,
    /// MQTT 5 session expiry interval in seconds; absent: until a clean start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_secs: Option<u32>,
    /// When its last connection closed (unix ms); absent while connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone_at_ms: Option<u64>,
}

/// One subscription of a persisted session: `[filter, qos]` (the first format, still read) or the
/// filter with its MQTT 5 options.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum PersistedSub {
    Options {
        filter: String,
        qos: QoS,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        no_local: bool,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        retain_as_published: bool,
        #[serde(default, skip_serializing_if = "is_zero")]
        retain_handling: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<NonZeroU32>,
    },
    QosOnly(String, QoS),
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

impl PersistedSub {
    pub fn new(filter: &str, opts: &SubOptions) -> Self {
        Self::Options {
            filter: filter.to_string(),
            qos: opts.qos,
            no_local: opts.no_local,
            retain_as_published: opts.retain_as_published,
            retain_handling: opts.retain_handling.level(),
            id: opts.id,
        }
    }

    pub fn into_parts(self) -> (String, SubOptions) {
        match self {
            Self::QosOnly(filter, qos) => (filter, SubOptions::qos(qos)),
            Self::Options {
                filter,
                qos,
                no_local,
                retain_as_published,
                retain_handling,
                id,
            } => (
                filter,
                SubOptions {
                    qos,
                    no_local,
                    retain_as_published,
                    retain_handling: RetainHandling::from_level(retain_handling),
                    id,
                },
            ),
        }
    }
}

/// Where the embedded session registry keeps persistent-session records on this node's disk
/// (synchronous: it is the local store, not a seam; a cluster replicates above it).
pub trait SessionRecords: Send + Sync {
    /// Every record, at start-up. A record that cannot be read is skipped and reported by the store.
    fn load(&self) -> SeamResult<Vec<(String, String, PersistedSession)>>;
    /// Writes a record; durable (survives kill -9) when it returns.
    fn save(&self, inst: &str, client: &str, session: &PersistedSession) -> SeamResult<()>;
    fn delete(&self, inst: &str, client: &str) -> SeamResult<()>;
}

/// One client's copy of a message to queue: how it is to be delivered.
#[derive(Clone)]
pub struct QueueEntry {
    pub client_id: Arc<str>,
    pub qos: QoS,
    pub retain: bool,
    pub sub_ids: Vec<NonZeroU32>,
}

/// How many offline messages, and how many bytes of them, an instance may keep; beyond either the
/// oldest are dropped.
#[derive(Debug, Clone, Copy)]
pub struct OfflineLimits {
    pub max_messages: u64,
    pub max_bytes: u64,
    /// How long messages are kept (the embedded store expires them in housekeeping).
    pub retention_secs: u64,
}

/// A queued delivery and its position in the client's queue.
pub struct Queued {
    pub seq: u64,
    pub out: Outbound,
}

/// Offline messages of persistent sessions (QoS 1/2), kept until acknowledged or expired.
pub trait OfflineQueue: Send + Sync {
    /// Appends `msg` for every entry; beyond the instance's `limits` the oldest are dropped.
    /// Durable once the future resolves. Returns how many were queued.
    fn enqueue(
        &self,
        inst: &str,
        msg: &Message,
        entries: &[QueueEntry],
        limits: OfflineLimits,
    ) -> Seam<'_, SeamResult<usize>>;
    /// Up to `limit` messages after `after`, oldest first, skipping (and deleting) those older than
    /// `max_age_ms` or past their message expiry.
    fn fetch(
        &self,
        inst: &str,
        client: &str,
        after: u64,
        limit: usize,
        max_age_ms: u64,
    ) -> Seam<'_, SeamResult<Vec<Queued>>>;
    /// Deletes an acknowledged message; durable once resolved.
    fn ack(&self, inst: &str, client: &str, seq: u64) -> Seam<'_, SeamResult<()>>;
    /// Deletes a client's whole queue up to what was queued when called (a clean start).
    fn purge(&self, inst: &str, client: &str) -> Seam<'_, SeamResult<()>>;
    /// Deletes an instance's messages older than `max_age_ms`; returns how many (housekeeping).
    fn expire(&self, inst: &str, max_age_ms: u64) -> SeamResult<u64>;
    /// Queued messages per instance.
    fn counts(&self) -> HashMap<String, u64>;
    /// Makes everything written so far durable (at shutdown).
    fn flush(&self) -> SeamResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_record_format_is_still_read() {
        let old: PersistedSession = serde_json::from_str(r#"{"subs":[["T/#",1]],"expiry_secs":60}"#).unwrap();
        let (filter, opts) = old.subs[0].clone().into_parts();
        assert_eq!((filter.as_str(), opts), ("T/#", SubOptions::qos(QoS::AtLeastOnce)));
        let opts = SubOptions {
            no_local: true,
            id: NonZeroU32::new(7),
            ..SubOptions::qos(QoS::ExactlyOnce)
        };
        let new = PersistedSession {
            subs: vec![PersistedSub::new("T/+", &opts)],
            ..Default::default()
        };
        let back: PersistedSession = serde_json::from_str(&serde_json::to_string(&new).unwrap()).unwrap();
        assert_eq!(back.subs[0].clone().into_parts(), ("T/+".to_string(), opts));
    }
}
