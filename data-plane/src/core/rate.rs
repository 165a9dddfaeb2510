//! The per-instance messages-per-second quota (docs/spec.md 2: in + out). A GCRA limiter: publishers are
//! slowed down rather than refused, so nothing is ever dropped or counted as delivered unsent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
pub struct RateLimiter {
    /// Theoretical arrival time per instance, in ms of `clock::monotonic_ms`.
    tat: Mutex<HashMap<String, f64, crate::FastHash>>,
}

impl RateLimiter {
    /// Accounts `messages` against `per_second` and returns how long the caller should wait.
    pub fn acquire(&self, instance_id: &str, per_second: u32, messages: u32) -> Duration {
        let limit = f64::from(per_second.max(1));
        let now = crate::clock::monotonic_ms();
        let mut rates = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        // Two calls per publish: look up by &str, allocate the key only for a new instance.
        if !rates.contains_key(instance_id) {
            rates.insert(instance_id.to_string(), now);
        }
        let tat = rates.get_mut(instance_id).expect("inserted above");
        // One second's worth of messages may burst; beyond that publishers are slowed down.
        *tat = tat.max(now) + f64::from(messages) * 1000.0 / limit;
        let wait = *tat - now - 1000.0;
        if wait > 0.0 {
            Duration::from_micros((wait * 1000.0) as u64)
        } else {
            Duration::ZERO
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_throttle() {
        let r = RateLimiter::default();
        assert!(r.acquire("i", 100, 100).is_zero(), "one second of burst");
        let wait = r.acquire("i", 100, 50);
        assert!(
            wait >= Duration::from_millis(450) && wait <= Duration::from_millis(510),
            "{wait:?}"
        );
        assert!(r.acquire("j", 100, 1).is_zero(), "instances are independent");
    }
}
