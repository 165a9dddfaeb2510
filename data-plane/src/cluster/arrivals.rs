//! The topic subscriptions of this broker's clients, read by one task that hands what arrives to
//! the local subscribers in the order each sending broker sent it, across subscriptions.
//!
//! Why one reader and a sequence: async-nats gives every subscription a channel of its own, so one
//! publisher's message on `T/a/y` (through `T/#`) and its next one on `T/a/x` (through `T/+/x`
//! too) could be handed over by two readers in either order. NATS delivers one connection's
//! messages in the order they were published on it, async-nats fills the channels in that order
//! from one task, and every routed message carries its sender's sequence (`wire::Origin`). The
//! reader takes everything the channels hold (a *sweep*) and then hands over each sender's
//! messages up to the highest sequence it held before that sweep began, in sequence order: every
//! message sent before that one was in its channel by then, so the sweep took it. A message alone
//! costs one more sweep that finds nothing, not a wait.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;

use futures_util::future::FutureExt;
use futures_util::stream::{AbortHandle, Abortable, SelectAll, Stream, StreamExt};
use tokio::sync::mpsc;

use super::wire;
use crate::core::router::{LocalRouter, Scope};
use crate::message::{Message, MsgId};
use crate::metrics;

/// Messages remembered to drop a copy that arrives twice (through two overlapping filters).
const RECENT: usize = 65_536;
/// Messages held for their turn at most; beyond it they are handed over as they are (counted),
/// so that a reader that cannot finish a sweep does not hold more and more.
const MAX_HELD: usize = 65_536;

/// A NATS message and the instance whose subscription it came through.
type Arrival = (Arc<str>, async_nats::Message);
type Feed = Abortable<Pin<Box<dyn Stream<Item = Arrival> + Send>>>;

pub struct Arrivals {
    added: mpsc::UnboundedSender<Feed>,
    runtime: tokio::runtime::Handle,
}

impl Arrivals {
    /// Starts the reader on `runtime`.
    pub fn start(local: Arc<LocalRouter>, runtime: tokio::runtime::Handle) -> Self {
        let (added, feeds) = mpsc::unbounded_channel();
        runtime.spawn(read(feeds, local));
        Self { added, runtime }
    }

    /// Subscribes `client` to `subject` for `instance`'s subscribers; aborting the handle
    /// unsubscribes.
    pub fn subscribe(&self, client: async_nats::Client, subject: String, instance: &str) -> AbortHandle {
        let (handle, registration) = AbortHandle::new_pair();
        let added = self.added.clone();
        let instance: Arc<str> = instance.into();
        self.runtime.spawn(async move {
            match client.subscribe(subject.clone()).await {
                Ok(sub) => {
                    let feed: Pin<Box<dyn Stream<Item = Arrival> + Send>> =
                        Box::pin(sub.map(move |m| (instance.clone(), m)));
                    let _ = added.send(Abortable::new(feed, registration));
                }
                Err(e) => {
                    metrics::cluster_error("subscribe");
                    tracing::error!(error = %e, subject, "cluster subscription failed");
                }
            }
        });
        handle
    }
}

async fn read(mut added: mpsc::UnboundedReceiver<Feed>, local: Arc<LocalRouter>) {
    let mut feeds: SelectAll<Feed> = SelectAll::new();
    let mut order = Order::default();
    let mut recent = Recent::default();
    loop {
        if order.is_empty() {
            tokio::select! {
                feed = added.recv() => match feed {
                    Some(feed) => feeds.push(feed),
                    None => return,
                },
                Some(arrival) = feeds.next(), if !feeds.is_empty() => order.take(arrival),
            }
        }
        while let Ok(feed) = added.try_recv() {
            feeds.push(feed);
        }
        let marks = order.marks();
        // Without the cooperative budget, a channel that holds a message always gives it: a sweep
        // ends only when every channel woken before it began is empty.
        tokio::task::unconstrained(async {
            while let Some(Some(arrival)) = feeds.next().now_or_never() {
                order.take(arrival);
            }
        })
        .await;
        for (instance, msg) in order.release(&marks) {
            // A message on topics that two filters here match arrives once per filter.
            if recent.first_time(msg.id) {
                let msg = Arc::new(msg);
                local.fan_out(
                    &instance,
                    &msg,
                    Scope {
                        stored: false,
                        groups: false,
                    },
                );
            }
        }
        tokio::task::consume_budget().await;
    }
}

/// What was taken and waits for its turn, per sender in sequence order.
#[derive(Default)]
struct Order {
    senders: HashMap<u64, BTreeMap<u64, (Arc<str>, Message)>>,
    held: usize,
    /// From brokers of an earlier release (no origin): handed over as they come.
    unordered: Vec<(Arc<str>, Message)>,
}

impl Order {
    fn is_empty(&self) -> bool {
        self.held == 0 && self.unordered.is_empty()
    }

    fn take(&mut self, (instance, m): Arrival) {
        metrics::cluster_message("in");
        match wire::decode_routed(&m.payload) {
            None => metrics::cluster_error("undecodable"),
            Some((None, msg)) => self.unordered.push((instance, msg)),
            Some((Some(origin), msg)) => {
                // The same message through a second filter has the same place: kept once.
                let held = self.senders.entry(origin.sender).or_default();
                if held.insert(origin.seq, (instance, msg)).is_none() {
                    self.held += 1;
                }
            }
        }
    }

    /// The highest sequence held per sender.
    fn marks(&self) -> Vec<(u64, u64)> {
        self.senders
            .iter()
            .filter_map(|(sender, held)| held.last_key_value().map(|(seq, _)| (*sender, *seq)))
            .collect()
    }

    /// What may go now: each sender's messages up to its mark, and what has no origin. When too
    /// much is held, everything.
    fn release(&mut self, marks: &[(u64, u64)]) -> Vec<(Arc<str>, Message)> {
        let mut out = std::mem::take(&mut self.unordered);
        if self.held > MAX_HELD {
            metrics::cluster_error("order_overflow");
            for (_, held) in self.senders.drain() {
                out.extend(held.into_values());
            }
            self.held = 0;
            return out;
        }
        for &(sender, mark) in marks {
            let Some(held) = self.senders.get_mut(&sender) else {
                continue;
            };
            let later = held.split_off(&(mark + 1));
            let due = std::mem::replace(held, later);
            self.held -= due.len();
            out.extend(due.into_values());
            if held.is_empty() {
                self.senders.remove(&sender);
            }
        }
        out
    }
}

/// The last message IDs handed over, oldest dropped first.
#[derive(Default)]
struct Recent {
    order: VecDeque<MsgId>,
    seen: HashSet<MsgId>,
}

impl Recent {
    /// False when it was handed over already.
    fn first_time(&mut self, id: MsgId) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > RECENT
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use common::qos::QoS;

    use super::*;

    fn arrival(sender: u64, seq: u64, topic: &str) -> Arrival {
        let msg = Message::new(topic, ntex_bytes::Bytes::from_static(b"x"), QoS::AtMostOnce, false);
        let mut routed = wire::encode_routed(&msg);
        wire::stamp_routed(&mut routed, wire::Origin { sender, seq });
        let m = async_nats::Message {
            subject: "s".into(),
            reply: None,
            payload: routed.into(),
            headers: None,
            status: None,
            description: None,
            length: 0,
        };
        ("inst".into(), m)
    }

    /// One sender's topics in the order released.
    fn of(out: &[(Arc<str>, Message)], prefix: &str) -> Vec<String> {
        out.iter()
            .map(|(_, m)| m.topic.to_string())
            .filter(|t| t.starts_with(prefix))
            .collect()
    }

    #[test]
    fn a_senders_messages_go_in_sequence_up_to_the_mark() {
        let mut order = Order::default();
        // Taken through two subscriptions: 2 before 1.
        order.take(arrival(7, 2, "a/2"));
        order.take(arrival(7, 1, "a/1"));
        order.take(arrival(9, 5, "b/5"));
        let marks = order.marks();
        // Taken in the sweep after the marks: 3 waits for the next one, a copy of 2 is kept once.
        order.take(arrival(7, 3, "a/3"));
        order.take(arrival(7, 2, "a/2"));
        let out = order.release(&marks);
        assert_eq!(of(&out, "a/"), ["a/1", "a/2"]);
        assert_eq!(of(&out, "b/"), ["b/5"]);
        assert!(!order.is_empty());

        // A sweep that finds nothing lets the rest go.
        let marks = order.marks();
        assert_eq!(of(&order.release(&marks), "a/"), ["a/3"]);
        assert!(order.is_empty());
        assert!(order.senders.is_empty(), "nothing kept for a sender with nothing held");
    }

    #[test]
    fn too_much_held_goes_at_once() {
        let mut order = Order::default();
        for seq in (1..=MAX_HELD as u64 + 1).rev() {
            order.take(arrival(7, seq, "a"));
        }
        assert_eq!(order.release(&[]).len(), MAX_HELD + 1);
        assert!(order.is_empty());
    }
}
