//! Per-instance quota counters: concurrent connections and messages per second (in + out). The
//! seam is `QuotaCounters`; `LocalQuotas` counts this node's clients.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::rate::RateLimiter;
use super::seam::{Seam, SeamResult, done};

/// The quota-counting seam.
pub trait QuotaCounters: Send + Sync {
    /// Counts a new connection unless the instance already has `max` (a connection that takes
    /// over a live one of the same client does not need a free place). False: over the quota.
    fn connect(&self, instance_id: &str, max: u32, replacing: bool) -> Seam<'_, SeamResult<bool>>;
    fn disconnect(&self, instance_id: &str);
    /// Accounts `messages` against the instance's `per_second` and says how long the caller should
    /// wait (publishers are slowed down, never refused or dropped).
    fn throttle(&self, instance_id: &str, per_second: u32, messages: u32) -> Duration;
}

#[derive(Default)]
pub struct LocalQuotas {
    connections: Mutex<HashMap<String, u32>>,
    rates: RateLimiter,
}

impl LocalQuotas {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl QuotaCounters for LocalQuotas {
    fn connect(&self, instance_id: &str, max: u32, replacing: bool) -> Seam<'_, SeamResult<bool>> {
        let mut counts = self.lock();
        let count = counts.get(instance_id).copied().unwrap_or(0);
        if count.saturating_sub(u32::from(replacing)) >= max {
            return done(Ok(false));
        }
        *counts.entry(instance_id.to_string()).or_default() += 1;
        done(Ok(true))
    }

    fn disconnect(&self, instance_id: &str) {
        let mut counts = self.lock();
        if let Some(c) = counts.get_mut(instance_id) {
            *c = c.saturating_sub(1);
            if *c == 0 {
                counts.remove(instance_id);
            }
        }
    }

    fn throttle(&self, instance_id: &str, per_second: u32, messages: u32) -> Duration {
        self.rates.acquire(instance_id, per_second, messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_are_capped_and_a_takeover_needs_no_free_place() {
        let q = LocalQuotas::default();
        assert!(q.connect("i", 2, false).await.unwrap());
        assert!(q.connect("i", 2, false).await.unwrap());
        assert!(!q.connect("i", 2, false).await.unwrap());
        assert!(q.connect("i", 2, true).await.unwrap(), "takes over one of the two");
        q.disconnect("i");
        q.disconnect("i");
        assert!(q.connect("i", 2, false).await.unwrap(), "two of three left");
        assert!(!q.connect("i", 2, false).await.unwrap());
        assert!(q.connect("j", 2, false).await.unwrap(), "instances are separate");
    }
}
