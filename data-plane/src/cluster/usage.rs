//! Per-instance quotas across brokers. Each broker writes its own figures (connections and message
//! rate per instance) to the usage bucket every second and reads everybody's: a connection is
//! admitted while this broker's count plus the others' last reported counts stay under the quota.
//! The message rate is shared max-min fairly: a broker that was not slowed down in the last second
//! keeps what it used, and the rest of the quota is split equally between this broker and those
//! that were slowed down (they want more than they got). No static split: a broker with all of an
//! instance's clients can use the whole quota. The tolerance is one report interval: brokers
//! admitting at the same moment can exceed a quota by what each admits within a second.

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
    /// Whether the quota slowed this broker's publishers down in that interval: it would use more.
    #[serde(default)]
    pub slowed: bool,
}

/// The rate one broker may use of `quota`, given the other brokers' last figures: a broker that was
/// not slowed down keeps what it used, the rest is shared equally by this broker and the slowed
/// ones. Never less than a tenth of the quota, so a burst elsewhere does not stop a broker outright.
fn fair_share<'a>(quota: u32, others: impl Iterator<Item = &'a Figures>) -> u32 {
    let (mut kept, mut sharing) = (0.0, 1.0);
    for f in others {
        if f.slowed {
            sharing += 1.0;
        } else {
            kept += f.rate;
        }
    }
    let share = ((f64::from(quota) - kept).max(0.0) / sharing) as u32;
    share.max(quota / 10).max(1)
}

/// This broker's figures of one instance since the last report.
#[derive(Default)]
struct Mine {
    connections: u32,
    messages: u64,
    slowed: bool,
}

#[derive(Default)]
struct Counts {
    /// This broker's figures since the last report, per instance.
    mine: HashMap<String, Mine>,
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

    /// The other brokers' connections of the instance.
    fn others_connections(&self, instance: &str) -> u32 {
        let counts = self.lock();
        counts
            .others
            .values()
            .filter_map(|by_instance| by_instance.get(instance))
            .map(|f| f.connections)
            .sum()
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
                    .map(|(i, mine)| {
                        let f = Figures {
                            connections: mine.connections,
                            rate: mine.messages as f64 / secs,
                            slowed: mine.slowed,
                        };
                        (mine.messages, mine.slowed) = (0, false);
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
        let others = self.others_connections(instance_id);
        let allowed = max.saturating_sub(others);
        let admitted = match self.local.connect(instance_id, allowed, replacing) {
            Seam::Ready(Some(r)) => r,
            _ => unreachable!("local counters answer at once"),
        };
        if matches!(admitted, Ok(true)) {
            self.lock().mine.entry(instance_id.to_string()).or_default().connections += 1;
        }
        done(admitted)
    }

    fn disconnect(&self, instance_id: &str) {
        self.local.disconnect(instance_id);
        if let Some(c) = self.lock().mine.get_mut(instance_id) {
            c.connections = c.connections.saturating_sub(1);
        }
    }

    fn throttle(&self, instance_id: &str, per_second: u32, messages: u32) -> Duration {
        let mut counts = self.lock();
        let allowed = fair_share(
            per_second,
            counts
                .others
                .values()
                .filter_map(|by_instance| by_instance.get(instance_id)),
        );
        let wait = self.local.throttle(instance_id, allowed, messages);
        let mine = counts.mine.entry(instance_id.to_string()).or_default();
        mine.messages += u64::from(messages);
        mine.slowed |= !wait.is_zero();
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(rate: f64, slowed: bool) -> Figures {
        Figures {
            connections: 0,
            rate,
            slowed,
        }
    }

    #[test]
    fn the_rate_is_shared_max_min_fairly() {
        assert_eq!(fair_share(300, [].iter()), 300, "alone: the whole quota");
        let two_slowed = [f(100.0, true), f(100.0, true)];
        assert_eq!(
            fair_share(300, two_slowed.iter()),
            100,
            "three that want more: a third each"
        );
        let light = [f(20.0, false), f(10.0, false)];
        assert_eq!(
            fair_share(300, light.iter()),
            270,
            "the others keep what they use, no more"
        );
        let mixed = [f(20.0, false), f(200.0, true)];
        assert_eq!(
            fair_share(300, mixed.iter()),
            140,
            "the rest is split with the slowed one"
        );
        let busy = [f(300.0, false)];
        assert_eq!(fair_share(300, busy.iter()), 30, "never below a tenth");
    }
}
