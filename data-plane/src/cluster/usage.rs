//! Per-instance quotas across brokers. Each broker writes its own figures (connections and message
//! rate per instance) to the usage bucket every second and reads everybody's: a connection is
//! admitted while this broker's count plus the others' last reported counts stay under the quota,
//! and the message rate a broker allows itself is the quota minus what the others used in the last
//! second. No static split: a broker with all of an instance's clients can use the whole quota.
//! The tolerance is one report interval: brokers admitting at the same moment can exceed a quota by
//! what each admits within a second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::link::Link;
use crate::core::quotas::{LocalQuotas, QuotaCounters};
use crate::core::seam::{Seam, SeamResult, done};
use crate::metrics;

/// How often a broker reports its figures.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);

/// One instance's figures on one broker.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Figures {
    pub connections: u32,
    /// Messages (in + out) per second over the last report interval.
    pub rate: f64,
}

#[derive(Default)]
struct Counts {
    /// This broker's connections and messages since the last report, per instance.
    mine: HashMap<String, (u32, u64)>,
    /// The other brokers' last figures: node -> instance -> figures.
    others: HashMap<String, HashMap<String, Figures>>,
}

pub struct ClusterQuotas {
    link: Arc<Link>,
    local: LocalQuotas,
    counts: Mutex<Counts>,
}

impl ClusterQuotas {
    pub fn new(link: Arc<Link>) -> Arc<Self> {
        Arc::new(Self {
            link,
            local: LocalQuotas::default(),
            counts: Mutex::new(Counts::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn others(&self, instance: &str) -> Figures {
        let counts = self.lock();
        counts
            .others
            .values()
            .filter_map(|by_instance| by_instance.get(instance))
            .fold(Figures::default(), |a, f| Figures {
                connections: a.connections + f.connections,
                rate: a.rate + f.rate,
            })
    }

    /// Reports this broker's figures and reads the others', for the life of the process.
    pub async fn run(self: Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move { me.watch().await });
        loop {
            tokio::time::sleep(REPORT_EVERY).await;
            let figures: HashMap<String, Figures> = {
                let mut counts = self.lock();
                let secs = REPORT_EVERY.as_secs_f64();
                counts
                    .mine
                    .iter_mut()
                    .map(|(i, (conns, msgs))| {
                        let f = Figures {
                            connections: *conns,
                            rate: *msgs as f64 / secs,
                        };
                        *msgs = 0;
                        (i.clone(), f)
                    })
                    .collect()
            };
            let bucket = &self.link.buckets().await.usage;
            let value = Bytes::from(serde_json::to_vec(&figures).unwrap_or_default());
            if let Err(e) = bucket.put(super::subject::key_token(&self.link.node), value).await {
                metrics::cluster_error("jetstream");
                tracing::debug!(error = %e, "usage report not written");
            }
        }
    }

    async fn watch(&self) {
        loop {
            let bucket = &self.link.buckets().await.usage;
            if let Ok(mut watch) = bucket.watch_with_history(">").await {
                while let Some(Ok(entry)) = watch.next().await {
                    let Some(node) = super::subject::from_key_token(&entry.key) else {
                        continue;
                    };
                    if node == self.link.node {
                        continue;
                    }
                    let figures: HashMap<String, Figures> = serde_json::from_slice(&entry.value).unwrap_or_default();
                    let mut counts = self.lock();
                    if figures.is_empty() {
                        counts.others.remove(&node);
                    } else {
                        counts.others.insert(node, figures);
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

impl QuotaCounters for ClusterQuotas {
    fn connect(&self, instance_id: &str, max: u32, replacing: bool) -> Seam<'_, SeamResult<bool>> {
        let others = self.others(instance_id).connections;
        let allowed = max.saturating_sub(others);
        let admitted = match self.local.connect(instance_id, allowed, replacing) {
            Seam::Ready(Some(r)) => r,
            _ => unreachable!("local counters answer at once"),
        };
        if matches!(admitted, Ok(true)) {
            self.lock().mine.entry(instance_id.to_string()).or_default().0 += 1;
        }
        done(admitted)
    }

    fn disconnect(&self, instance_id: &str) {
        self.local.disconnect(instance_id);
        if let Some(c) = self.lock().mine.get_mut(instance_id) {
            c.0 = c.0.saturating_sub(1);
        }
    }

    fn throttle(&self, instance_id: &str, per_second: u32, messages: u32) -> Duration {
        self.lock().mine.entry(instance_id.to_string()).or_default().1 += u64::from(messages);
        let others = self.others(instance_id).rate as u32;
        // Never below a tenth of the quota: a burst elsewhere does not stop this broker outright.
        let allowed = per_second.saturating_sub(others).max(per_second / 10).max(1);
        self.local.throttle(instance_id, allowed, messages)
    }
}
