//! Will messages waiting for their MQTT 5 delay: at most one per client, kept with its payload and
//! the credentials of the connection that left it (checked again when it fires), dropped when the
//! client comes back within the delay. The seam is `WillScheduler`; `LocalWills` keeps them in memory.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use super::seam::{BoxFuture, Seam, SeamResult, done};
use crate::auth::Credential;
use crate::message::Message;

/// A will that fires at `due_at_ms` unless its client reconnects first.
#[derive(Debug, Clone)]
pub struct DeferredWill {
    pub instance_id: String,
    pub client_id: String,
    pub due_at_ms: i64,
    pub msg: Message,
    /// MQTT 5 message expiry interval of the will: it counts from when the will is published.
    pub expiry_secs: Option<u32>,
    pub credential: Credential,
}

/// The will-scheduling seam.
pub trait WillScheduler: Send + Sync {
    /// Keeps a will until it is due; it replaces an earlier will of the same client.
    fn schedule(&self, will: DeferredWill) -> Seam<'_, SeamResult<()>>;
    /// The client is back: its waiting will is dropped. True when there was one.
    fn cancel(&self, instance_id: &str, client_id: &str) -> Seam<'_, SeamResult<bool>>;
    /// Removes and returns the wills due at `now_ms`.
    fn take_due(&self, now_ms: i64) -> Vec<DeferredWill>;
    /// When the next will is due, if any.
    fn next_due_ms(&self) -> Option<i64>;
    /// Resolves when the schedule changed (a timer loop then looks again).
    fn changed(&self) -> BoxFuture<'_, ()>;
}

#[derive(Default)]
struct Schedule {
    wills: HashMap<(String, String), DeferredWill>,
    by_time: BTreeSet<(i64, String, String)>,
}

#[derive(Default)]
pub struct LocalWills {
    schedule: Mutex<Schedule>,
    changed: Notify,
}

impl LocalWills {
    fn lock(&self) -> MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Schedule {
    fn remove(&mut self, key: &(String, String)) -> Option<DeferredWill> {
        let will = self.wills.remove(key)?;
        self.by_time.remove(&(will.due_at_ms, key.0.clone(), key.1.clone()));
        Some(will)
    }
}

impl WillScheduler for LocalWills {
    fn schedule(&self, will: DeferredWill) -> Seam<'_, SeamResult<()>> {
        {
            let mut s = self.lock();
            let key = (will.instance_id.clone(), will.client_id.clone());
            s.remove(&key);
            s.by_time.insert((will.due_at_ms, key.0.clone(), key.1.clone()));
            s.wills.insert(key, will);
        }
        self.changed.notify_one();
        done(Ok(()))
    }

    fn cancel(&self, instance_id: &str, client_id: &str) -> Seam<'_, SeamResult<bool>> {
        let removed = self
            .lock()
            .remove(&(instance_id.to_string(), client_id.to_string()))
            .is_some();
        done(Ok(removed))
    }

    fn take_due(&self, now_ms: i64) -> Vec<DeferredWill> {
        let mut s = self.lock();
        let due: Vec<(String, String)> = s
            .by_time
            .iter()
            .take_while(|(at, _, _)| *at <= now_ms)
            .map(|(_, i, c)| (i.clone(), c.clone()))
            .collect();
        due.iter().filter_map(|key| s.remove(key)).collect()
    }

    fn next_due_ms(&self) -> Option<i64> {
        self.lock().by_time.first().map(|(at, _, _)| *at)
    }

    fn changed(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.changed.notified())
    }
}

#[cfg(test)]
mod tests {
    use ntex_bytes::Bytes;

    use super::*;
    use crate::message::QoS;

    fn will(client: &str, due: i64) -> DeferredWill {
        DeferredWill {
            instance_id: "i".into(),
            client_id: client.into(),
            due_at_ms: due,
            msg: Message::new("T/will", Bytes::from_static(b"bye"), QoS::AtLeastOnce, false),
            expiry_secs: None,
            credential: Credential::open(),
        }
    }

    #[tokio::test]
    async fn one_will_per_client_due_in_time_order_and_cancelled_by_a_return() {
        let w = LocalWills::default();
        w.schedule(will("a", 300)).await.unwrap();
        w.schedule(will("b", 100)).await.unwrap();
        w.schedule(will("a", 200)).await.unwrap();
        assert_eq!(w.next_due_ms(), Some(100));
        assert!(w.take_due(99).is_empty());
        assert_eq!(
            w.take_due(250).iter().map(|d| d.client_id.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert_eq!(w.next_due_ms(), None, "a's second will replaced its first");
        w.schedule(will("c", 100)).await.unwrap();
        assert!(w.cancel("i", "c").await.unwrap());
        assert!(!w.cancel("i", "c").await.unwrap());
        assert!(w.take_due(i64::MAX).is_empty());
    }
}
