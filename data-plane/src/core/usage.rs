//! Per-instance message counters: every connection holds its instance's counters and bumps them
//! (one relaxed atomic add per message), the heartbeat turns them into rates.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Messages in and out of one instance since the broker started.
#[derive(Default)]
pub struct Counters {
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
}

impl Counters {
    pub fn received(&self) {
        self.messages_in.fetch_add(1, Ordering::Relaxed);
    }

    pub fn sent(&self) {
        self.messages_out.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub struct Usage {
    by_instance: Mutex<HashMap<String, Arc<Counters>>>,
}

impl Usage {
    /// The counters of an instance (created on first use; kept for the life of the broker).
    pub fn counters(&self, instance_id: &str) -> Arc<Counters> {
        let mut map = self.by_instance.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(instance_id.to_string()).or_default().clone()
    }

    /// (instance, messages in, messages out) so far.
    pub fn totals(&self) -> Vec<(String, u64, u64)> {
        let map = self.by_instance.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .map(|(i, c)| {
                (
                    i.clone(),
                    c.messages_in.load(Ordering::Relaxed),
                    c.messages_out.load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}
