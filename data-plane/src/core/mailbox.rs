//! A live connection's mailbox: messages routed to it from any worker (bounded), control signals,
//! and the wake-up of its delivery task, in one small allocation.
//!
//! It replaces a tokio channel pair plus a `Notify` per connection: each tokio channel allocates a
//! 32-slot block up front, ~2 KiB per idle connection together, while an empty `VecDeque` allocates
//! nothing. Producers lock a mutex that only the connection's own delivery task also takes, so it is
//! uncontended in practice.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};

use common::qos::QoS;
use tokio::sync::Notify;

use crate::message::Message;

/// One delivery of a message to this connection, as the routing decided it.
pub struct Outbound {
    pub msg: Arc<Message>,
    /// min(published QoS, the subscription's).
    pub qos: QoS,
    /// The RETAIN flag to send: set for retained messages sent on SUBSCRIBE, and for retain-as-published
    /// subscriptions.
    pub retain: bool,
    /// MQTT 5 subscription identifiers of the matching subscriptions.
    pub sub_ids: Vec<NonZeroU32>,
}

impl Outbound {
    /// What it costs a mailbox's byte budget.
    pub fn size(&self) -> usize {
        self.msg.topic.len() + self.msg.payload.len()
    }
}

/// Out-of-band instructions to a connection.
#[derive(Debug)]
pub enum Ctl {
    /// Another connection took over the client ID *(compat: "clientId conflict")*.
    TakenOver,
    /// Closed by the control plane (CloseConnection, "kick").
    Close,
}

/// A drained queue keeps at most this much capacity (a burst may have grown it a lot).
const KEEP_CAPACITY: usize = 64;

pub struct Mailbox {
    capacity: usize,
    /// Bytes (topic + payload) the queue may hold: a client that does not read costs at most this.
    max_bytes: usize,
    inner: Mutex<Inner>,
    notify: Notify,
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<Outbound>,
    bytes: usize,
    signals: Vec<Ctl>,
    /// The connection is gone: nothing more is accepted.
    closed: bool,
}

/// Why a message was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Full,
    Closed,
}

impl Mailbox {
    /// A mailbox holding at most `capacity` queued messages of at most `max_bytes` in all (one
    /// message is always accepted, whatever its size).
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            capacity,
            max_bytes,
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a message for the delivery task.
    pub fn push(&self, out: Outbound) -> Result<(), Refused> {
        {
            let mut inner = self.lock();
            if inner.closed {
                return Err(Refused::Closed);
            }
            let size = out.size();
            if inner.queue.len() >= self.capacity || (inner.bytes + size > self.max_bytes && !inner.queue.is_empty()) {
                return Err(Refused::Full);
            }
            inner.bytes += size;
            inner.queue.push_back(out);
        }
        self.notify.notify_one();
        Ok(())
    }

    /// Sends a control signal; false when the connection is already gone.
    pub fn signal(&self, ctl: Ctl) -> bool {
        {
            let mut inner = self.lock();
            if inner.closed {
                return false;
            }
            inner.signals.push(ctl);
        }
        self.notify.notify_one();
        true
    }

    /// Wakes the delivery task without a message: something else it watches changed (a persistent
    /// session's stored queue grew, an acknowledgement freed window room, ...).
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// The connection is gone: refuse everything from now on and let the delivery task end.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.queue = VecDeque::new();
        inner.bytes = 0;
        drop(inner);
        self.notify.notify_one();
    }

    /// What the delivery task should do next, without waiting: signals come before messages.
    pub fn take(&self) -> Option<Mail> {
        let mut inner = self.lock();
        if !inner.signals.is_empty() {
            return Some(Mail::Signal(inner.signals.remove(0)));
        }
        if let Some(out) = inner.queue.pop_front() {
            inner.bytes = inner.bytes.saturating_sub(out.size());
            if inner.queue.is_empty() && inner.queue.capacity() > KEEP_CAPACITY {
                inner.queue = VecDeque::new();
            }
            return Some(Mail::Message(out));
        }
        inner.closed.then_some(Mail::Closed)
    }

    /// Resolves once something may have arrived since the last `take` (spurious wake-ups happen;
    /// a notification sent while nobody waits is kept, so none is lost).
    pub async fn changed(&self) {
        self.notify.notified().await
    }
}

pub enum Mail {
    Signal(Ctl),
    Message(Outbound),
    Closed,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(topic: &str) -> Outbound {
        Outbound {
            msg: Arc::new(Message::new(
                topic.to_string(),
                Default::default(),
                QoS::AtMostOnce,
                false,
            )),
            qos: QoS::AtMostOnce,
            retain: false,
            sub_ids: Vec::new(),
        }
    }

    fn topic_of(mail: Option<Mail>) -> String {
        match mail {
            Some(Mail::Message(o)) => o.msg.topic.to_string(),
            _ => panic!("expected a message"),
        }
    }

    #[test]
    fn signals_first_then_messages_in_order_within_capacity() {
        let m = Mailbox::new(2, 1 << 20);
        m.push(out("a")).unwrap();
        m.push(out("b")).unwrap();
        assert_eq!(m.push(out("c")), Err(Refused::Full));
        assert!(m.signal(Ctl::Close));
        assert!(matches!(m.take(), Some(Mail::Signal(Ctl::Close))));
        assert_eq!(topic_of(m.take()), "a");
        assert_eq!(topic_of(m.take()), "b");
        assert!(m.take().is_none());
    }

    #[test]
    fn the_byte_budget_bounds_a_queue_but_never_refuses_a_first_message() {
        let m = Mailbox::new(100, 10);
        m.push(out("1234567890123")).unwrap();
        assert_eq!(m.push(out("a")), Err(Refused::Full), "over the budget");
        m.take();
        m.push(out("12345")).unwrap();
        m.push(out("12345")).unwrap();
        assert_eq!(m.push(out("1")), Err(Refused::Full));
    }

    #[test]
    fn closed_refuses_and_reports() {
        let m = Mailbox::new(10, 1 << 20);
        m.push(out("a")).unwrap();
        m.close();
        assert_eq!(m.push(out("b")), Err(Refused::Closed));
        assert!(!m.signal(Ctl::TakenOver));
        assert!(matches!(m.take(), Some(Mail::Closed)));
    }

    #[test]
    fn a_drained_burst_gives_its_memory_back() {
        let m = Mailbox::new(10_000, 1 << 20);
        for _ in 0..1_000 {
            m.push(out("t")).unwrap();
        }
        while m.take().is_some() {}
        assert_eq!(m.lock().queue.capacity(), 0);
    }

    #[tokio::test]
    async fn a_notification_before_waiting_is_not_lost() {
        let m = Mailbox::new(1, 1 << 20);
        m.push(out("a")).unwrap();
        // Resolves at once: the push stored a permit.
        tokio::time::timeout(std::time::Duration::from_secs(1), m.changed())
            .await
            .unwrap();
    }
}
