//! The status heartbeat every 2 s (and right after a swap): applied version and hash, last error,
//! load, and message rates derived from the broker's own Prometheus counters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::sync::Heartbeat;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::cluster::Cluster;
use crate::core::Broker;
use crate::sync::LinkState;
use crate::sync::client::Client;

pub const INTERVAL: Duration = Duration::from_secs(2);
/// Beats asked for right after a swap come at most this often: a burst of deltas (hundreds a second
/// while credentials are registered one by one) is reported once, not once each.
const MIN_GAP: Duration = Duration::from_millis(100);

pub async fn run(
    client: Arc<Client>,
    state: Arc<LinkState>,
    broker: Arc<Broker>,
    prometheus: PrometheusHandle,
    cluster: Option<Arc<Cluster>>,
) {
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rates = Rates::default();
    let mut instance_rates = InstanceRates::default();
    let mut last_beat: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = state.beat_now.notified() => {
                if let Some(gap) = last_beat.and_then(|t| MIN_GAP.checked_sub(t.elapsed())) {
                    tokio::time::sleep(gap).await;
                }
            }
        }
        last_beat = Some(Instant::now());
        crate::metrics::publish_message_counts();
        let (messages_in, messages_out) = rates.update(&prometheus.render());
        let dir = broker.dirs.load();
        let (connections, subscriptions) = broker.totals();
        let beat = Heartbeat {
            rules: broker.rules().map(|r| r.stats()).unwrap_or_default(),
            boot_id: state.boot_id.clone(),
            software_version: env!("CARGO_PKG_VERSION").to_string(),
            applied_version: dir.version,
            applied_hash: dir.hash.clone(),
            config_digest: dir.digest().map(common::config_digest::to_hex),
            last_error: state.last_error(),
            connections,
            subscriptions,
            messages_in_per_sec: messages_in,
            messages_out_per_sec: messages_out,
            started_at_ms: state.started_at_ms,
            cluster_link: cluster.as_ref().map(|c| c.is_ready()),
            instances: instance_rates.update(broker.instance_figures()),
        };
        if let Err(e) = client.heartbeat(&beat).await {
            crate::metrics::sync_error("heartbeat");
            tracing::debug!(error = %e, "heartbeat failed");
        }
    }
}

/// Messages in and out so far, per instance.
type Totals = std::collections::HashMap<String, (u64, u64)>;

/// Per-instance figures with message rates between two heartbeats.
#[derive(Default)]
struct InstanceRates {
    last: Option<(Instant, Totals)>,
}

impl InstanceRates {
    fn update(&mut self, figures: Vec<crate::core::InstanceFigures>) -> Vec<common::sync::InstanceUsage> {
        let now = Instant::now();
        let totals: Totals = figures
            .iter()
            .map(|f| (f.instance_id.clone(), (f.messages_in, f.messages_out)))
            .collect();
        let usage = figures
            .into_iter()
            .map(|f| {
                let (rate_in, rate_out) = match &self.last {
                    Some((at, last)) => {
                        let secs = now.duration_since(*at).as_secs_f64().max(0.001);
                        let (i0, o0) = last.get(&f.instance_id).copied().unwrap_or((0, 0));
                        (
                            f.messages_in.saturating_sub(i0) as f64 / secs,
                            f.messages_out.saturating_sub(o0) as f64 / secs,
                        )
                    }
                    None => (0.0, 0.0),
                };
                common::sync::InstanceUsage {
                    instance_id: f.instance_id,
                    connections: f.connections,
                    subscriptions: f.subscriptions,
                    messages_in_per_sec: rate_in,
                    messages_out_per_sec: rate_out,
                    offline_messages: f.offline_messages,
                }
            })
            .collect();
        self.last = Some((now, totals));
        usage
    }
}

/// Per-second rates between two readings of the message counters.
#[derive(Default)]
struct Rates {
    last: Option<(Instant, f64, f64)>,
}

impl Rates {
    fn update(&mut self, rendered: &str) -> (f64, f64) {
        let now = Instant::now();
        let (inn, out) = (
            counter_sum(rendered, "broker_messages_in_total"),
            counter_sum(rendered, "broker_messages_out_total"),
        );
        let rates = match self.last {
            Some((at, i0, o0)) => {
                let secs = now.duration_since(at).as_secs_f64().max(0.001);
                (((inn - i0) / secs).max(0.0), ((out - o0) / secs).max(0.0))
            }
            None => (0.0, 0.0),
        };
        self.last = Some((now, inn, out));
        rates
    }
}

/// Sum of every series of a counter in the Prometheus text format (all label sets).
fn counter_sum(rendered: &str, name: &str) -> f64 {
    rendered
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_label_set_of_one_counter() {
        let text = "# TYPE broker_messages_in_total counter\n\
            broker_messages_in_total{qos=\"0\"} 3\n\
            broker_messages_in_total{qos=\"1\"} 4\n\
            broker_messages_in_total_other 100\n\
            broker_messages_out_total{qos=\"1\"} 2\n";
        assert_eq!(counter_sum(text, "broker_messages_in_total"), 7.0);
        assert_eq!(counter_sum(text, "broker_messages_out_total"), 2.0);
        let mut r = Rates::default();
        assert_eq!(r.update(text), (0.0, 0.0));
    }
}
