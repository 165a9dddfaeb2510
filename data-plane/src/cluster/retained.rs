//! Retained messages in a cluster: kept in a replicated bucket (one key per instance and topic),
//! and every broker holds a replica in memory, kept current by watching the bucket, so that a
//! SUBSCRIBE on any broker finds them without a round trip. An empty payload deletes the key
//! everywhere.

use std::sync::Arc;

use async_nats::jetstream::kv;
use futures_util::StreamExt;

use super::link::Link;
use super::subject::parse_key;
use super::wire;
use crate::core::retained::{LocalRetained, RetainedFull, RetainedLimits, RetainedStore};
use crate::core::seam::{Seam, SeamError, SeamResult, done};
use crate::message::Message;
use crate::metrics;

pub struct ClusterRetained {
    link: Arc<Link>,
    replica: Arc<LocalRetained>,
}

fn unavailable(e: impl std::fmt::Display) -> SeamError {
    metrics::cluster_error("jetstream");
    SeamError::Unavailable(e.to_string())
}

impl ClusterRetained {
    pub fn new(link: Arc<Link>, replica: Arc<LocalRetained>) -> Self {
        Self { link, replica }
    }

    /// Keeps the replica current, for the life of the process (the watch starts over after errors).
    pub async fn run_watch(link: Arc<Link>, replica: Arc<LocalRetained>) {
        loop {
            let bucket = &link.buckets().await.retained;
            match bucket.watch_with_history(">").await {
                Ok(mut watch) => {
                    while let Some(entry) = watch.next().await {
                        let Ok(entry) = entry else { break };
                        let Some((instance, topic)) = parse_key(&entry.key) else {
                            continue;
                        };
                        match entry.operation {
                            kv::Operation::Put => match wire::decode_message(&entry.value) {
                                Some(msg) => replica.apply(instance, &msg),
                                None => metrics::cluster_error("undecodable"),
                            },
                            kv::Operation::Delete | kv::Operation::Purge => {
                                let tombstone = Message::new(topic, Default::default(), msg_qos(), true);
                                replica.apply(instance, &tombstone);
                            }
                        }
                    }
                }
                Err(e) => {
                    metrics::cluster_error("jetstream");
                    tracing::warn!(error = %e, "retained watch failed; starting over");
                }
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    async fn write(&self, instance: &str, msg: &Message) -> SeamResult<()> {
        let bucket = &self.link.buckets().await.retained;
        let key = self.link.names.key(instance, &msg.topic);
        if msg.payload.is_empty() {
            bucket.delete(key).await.map_err(unavailable)?;
        } else {
            bucket
                .put(key, wire::encode_message(&msg.detached()))
                .await
                .map_err(unavailable)?;
        }
        // This broker sees it at once; the others through their watch.
        self.replica.apply(instance, msg);
        Ok(())
    }
}

fn msg_qos() -> common::qos::QoS {
    common::qos::QoS::AtMostOnce
}

impl RetainedStore for ClusterRetained {
    fn set(
        &self,
        instance_id: &str,
        msg: &Message,
        limits: RetainedLimits,
    ) -> Seam<'_, SeamResult<Result<(), RetainedFull>>> {
        // The limits are checked against this broker's replica: a few messages set on other
        // brokers in the same instant may pass together.
        if !msg.payload.is_empty() && !self.replica.fits(instance_id, msg, limits) {
            return done(Ok(Err(RetainedFull)));
        }
        let (instance, msg) = (instance_id.to_string(), msg.clone());
        Seam::later(async move { self.write(&instance, &msg).await.map(Ok) })
    }

    fn matching(&self, instance_id: &str, filter: &str, limit: usize) -> Seam<'_, SeamResult<Vec<Arc<Message>>>> {
        done(Ok(self.replica.find(instance_id, filter, limit)))
    }

    fn expire(&self, instance_id: &str, max_age_ms: u64) -> SeamResult<usize> {
        let old = self.replica.expired_topics(instance_id, max_age_ms);
        for topic in &old {
            // Any broker may delete an expired key: deleting twice is harmless.
            let tombstone = Message::new(topic.clone(), Default::default(), msg_qos(), true);
            let (link, replica, instance) = (self.link.clone(), self.replica.clone(), instance_id.to_string());
            tokio::spawn(async move {
                let me = ClusterRetained { link, replica };
                if let Err(e) = me.write(&instance, &tombstone).await {
                    tracing::debug!(error = %e, "retained expiry not written");
                }
            });
        }
        Ok(old.len())
    }
}
