//! The result of one scenario run, printed as one JSON line for bench/run to tabulate.

use serde::Serialize;

use crate::proc_stats;
use crate::sinks::SinkReport;
use crate::tracker::Tracker;

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub scenario: String,
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub elapsed_s: f64,
    pub msgs_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub broker_cpu_pct: Option<f64>,
    pub broker_peak_rss: Option<u64>,
    pub connects_per_s: Option<f64>,
    pub bytes_per_idle_conn: Option<f64>,
    /// The rule targets' receivers (the `rules` scenario): latency from publish to arrival there.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rule_targets: Vec<SinkReport>,
    pub errors: Vec<String>,
}

impl Report {
    pub fn from_tracker(scenario: &str, expected: u64, t: &Tracker, elapsed_s: f64) -> Self {
        let delivered = t.unique();
        Self {
            scenario: scenario.into(),
            expected,
            delivered,
            lost: expected.saturating_sub(delivered),
            duplicates: t.duplicates,
            out_of_order: t.out_of_order,
            elapsed_s,
            msgs_per_s: delivered as f64 / elapsed_s.max(1e-9),
            p50_us: t.latency_us.value_at_quantile(0.50),
            p99_us: t.latency_us.value_at_quantile(0.99),
            max_us: t.latency_us.max(),
            ..Default::default()
        }
    }
}

/// Broker CPU use over a measured phase (of several processes together for a cluster).
pub struct CpuWindow {
    pids: Vec<u32>,
    start: Option<f64>,
}

impl CpuWindow {
    pub fn start(pids: &[u32]) -> Self {
        Self {
            pids: pids.to_vec(),
            start: proc_stats::cpu_seconds(pids),
        }
    }

    /// Percent of one core used since `start` (200 = both cores of this machine).
    pub fn percent(&self, elapsed_s: f64) -> Option<f64> {
        let end = proc_stats::cpu_seconds(&self.pids)?;
        Some((end - self.start?) / elapsed_s.max(1e-9) * 100.0)
    }
}
