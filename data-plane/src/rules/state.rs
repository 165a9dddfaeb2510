//! One rule's live state on this broker: its counters (reported as `RuleStats` in the heartbeat
//! and as Prometheus metrics), the size of its outbox, and the signal that wakes its sender.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::rules::{OutboxLimits, RuleStats};
use tokio::sync::Notify;

use crate::metrics;

/// What an outbox holds now.
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    pub items: u64,
    pub bytes: u64,
    /// Overflows drop the oldest items, so every item at or below this seq is gone: a sender
    /// holding one knows it without a read.
    pub evicted_through: u64,
}

pub struct RuleState {
    pub rule_id: String,
    pub instance_id: String,
    /// Guards the outbox's size and its removals (an append's eviction and a sender's removal of
    /// the same item must count it once).
    pub usage: Mutex<Usage>,
    pub limits: Mutex<OutboxLimits>,
    pub wake: Notify,
    counters: metrics::RuleCounters,
    matched: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    dead_lettered: AtomicU64,
    overflowing: AtomicBool,
    last_error: Mutex<Option<(String, i64)>>,
}

impl RuleState {
    pub fn new(rule_id: &str, instance_id: &str, limits: OutboxLimits, usage: Usage) -> Self {
        Self {
            rule_id: rule_id.to_string(),
            instance_id: instance_id.to_string(),
            usage: Mutex::new(usage),
            limits: Mutex::new(limits),
            wake: Notify::new(),
            counters: metrics::rule_counters(rule_id),
            matched: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            overflowing: AtomicBool::new(false),
            last_error: Mutex::new(None),
        }
    }

    pub fn limits(&self) -> OutboxLimits {
        *self.limits.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn matched(&self) {
        self.matched.fetch_add(1, Ordering::Relaxed);
        self.counters.matched.increment(1);
    }

    pub fn delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.counters.delivered.increment(1);
    }

    pub fn failed(&self, error: &str) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.counters.failed.increment(1);
        self.set_error(error);
    }

    pub fn dead_lettered(&self, error: &str) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
        self.counters.dead_lettered.increment(1);
        self.set_error(error);
    }

    /// Dropped for `reason` (`overflow`, `age`, `qos0`, `corrupt`); an overflow or age drop means
    /// the outbox is at its limits.
    pub fn dropped(&self, reason: &'static str, n: u64) {
        if n == 0 {
            return;
        }
        self.dropped.fetch_add(n, Ordering::Relaxed);
        metrics::rule_dropped(&self.rule_id, reason, n);
        if reason != "corrupt" && !self.overflowing.swap(true, Ordering::Relaxed) {
            tracing::warn!(rule = %self.rule_id, instance = %self.instance_id, reason, "rule outbox overflowing: oldest deliveries dropped");
        }
    }

    /// The outbox emptied: no longer overflowing.
    pub fn drained(&self) {
        self.overflowing.store(false, Ordering::Relaxed);
    }

    fn set_error(&self, error: &str) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some((error.to_string(), common::time::now_ms()));
    }

    pub fn usage(&self) -> Usage {
        *self.usage.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stats(&self) -> RuleStats {
        let usage = self.usage();
        metrics::rule_queued(&self.rule_id, usage.items);
        let last = self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
        RuleStats {
            rule_id: self.rule_id.clone(),
            instance_id: self.instance_id.clone(),
            matched: self.matched.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            queued: usage.items,
            queued_bytes: usage.bytes,
            overflowing: self.overflowing.load(Ordering::Relaxed),
            last_error_at_ms: last.as_ref().map(|(_, at)| *at),
            last_error: last.map(|(e, _)| e),
        }
    }
}
