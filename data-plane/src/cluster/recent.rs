//! The inbox notices this broker sent to other brokers in the last seconds, so that it can send them
//! again when its NATS connection comes back: a notice still in the connection's buffer when the
//! NATS node died is lost (core NATS), while the message it announces was stored and acknowledged to
//! its publisher. The holder drops a notice for a sequence it has already delivered.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// How far back notices are sent again: more than a dead connection takes to be noticed, at once
/// when its node's process dies (the socket closes), after about 15 s of unanswered pings when its
/// host vanishes (`link.rs` pings every 5 s).
pub const WINDOW: Duration = Duration::from_secs(20);
/// Payload bytes kept at most; the oldest notices go first beyond it.
pub const MAX_BYTES: usize = 16 << 20;

pub struct Notice {
    pub subject: String,
    /// The notice as `wire::encode_item` made it.
    pub item: Bytes,
}

#[derive(Default)]
pub struct RecentNotices {
    kept: VecDeque<(Instant, Notice)>,
    bytes: usize,
}

impl RecentNotices {
    pub fn record(&mut self, now: Instant, notice: Notice) {
        self.bytes += notice.item.len();
        self.kept.push_back((now, notice));
        self.trim(now);
    }

    /// The notices of the last `WINDOW`, oldest first, to be sent again.
    pub fn recent(&mut self, now: Instant) -> Vec<Notice> {
        self.trim(now);
        self.kept
            .iter()
            .map(|(_, n)| Notice {
                subject: n.subject.clone(),
                item: n.item.clone(),
            })
            .collect()
    }

    fn trim(&mut self, now: Instant) {
        while let Some((at, n)) = self.kept.front() {
            if now.duration_since(*at) <= WINDOW && self.bytes <= MAX_BYTES {
                break;
            }
            self.bytes -= n.item.len();
            self.kept.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(subject: &str, len: usize) -> Notice {
        Notice {
            subject: subject.into(),
            item: Bytes::from(vec![0u8; len]),
        }
    }

    #[test]
    fn keeps_the_last_window_within_its_byte_bound() {
        let mut r = RecentNotices::default();
        let t0 = Instant::now();
        r.record(t0, notice("a", 10));
        r.record(t0 + Duration::from_secs(5), notice("b", 10));
        let subjects = |v: Vec<Notice>| v.into_iter().map(|n| n.subject).collect::<Vec<_>>();
        assert_eq!(subjects(r.recent(t0 + Duration::from_secs(19))), ["a", "b"]);
        assert_eq!(subjects(r.recent(t0 + Duration::from_secs(22))), ["b"]);
        r.record(t0 + Duration::from_secs(22), notice("big", MAX_BYTES));
        assert_eq!(subjects(r.recent(t0 + Duration::from_secs(22))), ["big"]);
    }
}
