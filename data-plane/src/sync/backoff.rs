//! Capped exponential backoff with jitter for calls to the control plane: a broker never gives up
//! (it keeps serving from what it has), but it must not hammer a control plane that is restarting.

use std::time::Duration;

pub struct Backoff {
    first: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(first: Duration, cap: Duration) -> Self {
        Self {
            first,
            cap,
            next: first,
        }
    }

    /// The delay before the next attempt; doubles up to the cap. Up to 25% jitter spreads the
    /// brokers out when a control plane comes back.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.cap);
        let jitter = base.mul_f64(rand::random::<f64>() * 0.25);
        base + jitter
    }

    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let d: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert!((100..=125).contains(&d[0]), "{d:?}");
        assert!((200..=250).contains(&d[1]), "{d:?}");
        assert!((400..=500).contains(&d[2]) && (400..=500).contains(&d[3]), "{d:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(125));
    }
}
