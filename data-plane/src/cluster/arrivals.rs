//! What other brokers send this one, read by one task that hands it over in the order each sending
//! broker sent it: routed messages from the topic subscriptions of this broker's clients (to the
//! local subscribers), and the node subject's items (P2P deliveries and inbox notices, to their
//! clients). Takeover requests, which also come on the node subject, are passed on as they come.
//!
//! Why one reader and a sequence: async-nats gives every subscription a channel of its own, so one
//! publisher's message on `T/a/y` (through `T/#`) and its next one on `T/a/x` (through `T/+/x`
//! too), or a P2P message after them (through the node subject), could be handed over by two
//! readers in either order. NATS delivers one connection's messages in the order they were
//! published on it, async-nats fills the channels in that order from one task, and everything a
//! broker sends carries its sequence (`wire::Origin`). The reader takes everything the woken
//! channels hold (a sweep, `Feeds`) and then hands over each sender's messages up to the highest
//! sequence it held before that sweep began, in sequence order: every message sent before that one
//! was in its channel by then, so the sweep took it. A message alone costs one more sweep, which
//! finds nothing, not a wait.

use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use futures_util::stream::{AbortHandle, Abortable, Stream, StreamExt};
use tokio::sync::mpsc;

use super::feeds::Feeds;
use super::wire::{self, Op, Origin};
use crate::core::router::{LocalRouter, Scope};
use crate::message::{Message, MsgId};
use crate::metrics;

/// Messages remembered to drop a copy that arrives twice (through two overlapping filters).
const RECENT: usize = 65_536;
/// Messages held for their turn at most; beyond it they are handed over as they are (counted),
/// so that a reader that cannot finish a sweep does not hold more and more.
const MAX_HELD: usize = 65_536;

/// Which subscription a NATS message came through.
#[derive(Clone)]
enum Source {
    /// A topic subscription of this instance's subscribers.
    Topic(Arc<str>),
    /// This node's subject.
    Node,
}

type Arrival = (Source, async_nats::Message);
type Feed = Abortable<Pin<Box<dyn Stream<Item = Arrival> + Send + Sync>>>;

/// Hands the items of one node message (deliveries, inbox notices) to their clients.
pub type TakeItems = Box<dyn Fn(&[u8]) + Send>;

/// What this node does with the node subject's messages.
pub struct ToNode {
    pub items: TakeItems,
    /// Takeover requests, answered elsewhere (they wait for NATS themselves).
    pub takeovers: mpsc::UnboundedSender<async_nats::Message>,
}

pub struct Arrivals {
    added: mpsc::UnboundedSender<Feed>,
    runtime: tokio::runtime::Handle,
}

impl Arrivals {
    /// Starts the reader on `runtime`.
    pub fn start(local: Arc<LocalRouter>, node: ToNode, runtime: tokio::runtime::Handle) -> Self {
        let (added, feeds) = mpsc::unbounded_channel();
        runtime.spawn(read(feeds, local, node));
        Self { added, runtime }
    }

    /// Subscribes `client` to `subject` for `instance`'s subscribers; aborting the handle
    /// unsubscribes.
    pub fn subscribe(&self, client: async_nats::Client, subject: String, instance: &str) -> AbortHandle {
        let (handle, registration) = AbortHandle::new_pair();
        let added = self.added.clone();
        let source = Source::Topic(instance.into());
        self.runtime.spawn(async move {
            match client.subscribe(subject.clone()).await {
                Ok(sub) => {
                    let _ = added.send(feed(sub, source, registration));
                }
                Err(e) => {
                    metrics::cluster_error("subscribe");
                    tracing::error!(error = %e, subject, "cluster subscription failed");
                }
            }
        });
        handle
    }

    /// Reads this node's subject (for as long as the broker runs).
    pub fn read_node(&self, sub: async_nats::Subscriber) {
        let (_, registration) = AbortHandle::new_pair();
        let _ = self.added.send(feed(sub, Source::Node, registration));
    }
}

fn feed(sub: async_nats::Subscriber, source: Source, registration: futures_util::stream::AbortRegistration) -> Feed {
    let arrivals: Pin<Box<dyn Stream<Item = Arrival> + Send + Sync>> = Box::pin(sub.map(move |m| (source.clone(), m)));
    Abortable::new(arrivals, registration)
}

async fn read(mut added: mpsc::UnboundedReceiver<Feed>, local: Arc<LocalRouter>, node: ToNode) {
    let mut feeds = Feeds::new();
    let mut order = Order::default();
    let mut recent = Recent::default();
    loop {
        if order.is_empty() {
            // Until a feed was woken or a new one comes.
            let new = std::future::poll_fn(|cx| match added.poll_recv(cx) {
                Poll::Ready(feed) => Poll::Ready(Some(feed)),
                Poll::Pending => feeds.poll_woken(cx).map(|()| None),
            })
            .await;
            match new {
                Some(Some(feed)) => feeds.push(feed),
                Some(None) => return,
                None => {}
            }
        }
        while let Ok(feed) = added.try_recv() {
            feeds.push(feed);
        }
        let marks = order.marks();
        // Without the cooperative budget, a channel that holds a message always gives it: the
        // sweep takes everything that was there when it began.
        tokio::task::unconstrained(async {
            feeds.sweep(|arrival| order.take(arrival, &node.takeovers));
        })
        .await;
        for entry in order.release(&marks) {
            match entry {
                // A message on topics that two filters here match arrives once per filter.
                Entry::Routed(instance, msg) => {
                    if recent.first_time(msg.id) {
                        let msg = Arc::new(msg);
                        let scope = Scope {
                            stored: false,
                            groups: false,
                        };
                        local.fan_out(&instance, &msg, scope);
                    }
                }
                Entry::Items(items) => (node.items)(&items),
            }
        }
        tokio::task::consume_budget().await;
    }
}

/// Something to hand over.
enum Entry {
    /// A routed message for an instance's subscribers here.
    Routed(Arc<str>, Message),
    /// The items of a node message.
    Items(Bytes),
}

/// One sender's entries waiting for their turn, with their sequences; usually taken in order,
/// sorted when they were not.
#[derive(Default)]
struct Waiting {
    entries: Vec<(u64, Entry)>,
    /// An entry was taken after a higher sequence: sort before releasing.
    unsorted: bool,
    highest: u64,
}

/// What was taken and waits for its turn, per sender.
#[derive(Default)]
struct Order {
    senders: HashMap<u64, Waiting>,
    held: usize,
    /// From brokers of an earlier release (no origin): handed over as they come.
    unordered: Vec<Entry>,
}

impl Order {
    fn is_empty(&self) -> bool {
        self.held == 0 && self.unordered.is_empty()
    }

    fn take(&mut self, (source, m): Arrival, takeovers: &mpsc::UnboundedSender<async_nats::Message>) {
        match source {
            Source::Topic(instance) => {
                metrics::cluster_message("in");
                match wire::decode_routed(&m.payload) {
                    None => metrics::cluster_error("undecodable"),
                    Some((None, msg)) => self.unordered.push(Entry::Routed(instance, msg)),
                    Some((Some(origin), msg)) => self.hold(origin, Entry::Routed(instance, msg)),
                }
            }
            Source::Node => match m.headers.as_ref().and_then(wire::parse_op) {
                Some(Op::SequencedItems) => match wire::items_origin(&m.payload) {
                    Some(origin) => self.hold(origin, Entry::Items(m.payload.slice(wire::ITEMS_HEAD..))),
                    None => metrics::cluster_error("undecodable"),
                },
                Some(Op::Items) => self.unordered.push(Entry::Items(m.payload)),
                Some(Op::TakeOver) => {
                    let _ = takeovers.send(m);
                }
                None => metrics::cluster_error("undecodable"),
            },
        }
    }

    fn hold(&mut self, origin: Origin, entry: Entry) {
        let waiting = self.senders.entry(origin.sender).or_default();
        if waiting.entries.last().is_some_and(|(last, _)| *last > origin.seq) {
            waiting.unsorted = true;
        }
        waiting.highest = waiting.highest.max(origin.seq);
        waiting.entries.push((origin.seq, entry));
        self.held += 1;
    }

    /// The highest sequence held per sender.
    fn marks(&self) -> Vec<(u64, u64)> {
        self.senders.iter().map(|(sender, w)| (*sender, w.highest)).collect()
    }

    /// What may go now: each sender's entries up to its mark in sequence order (a message that came
    /// through two filters twice in a row: the reader keeps one), and what has no origin. When too
    /// much is held, everything.
    fn release(&mut self, marks: &[(u64, u64)]) -> Vec<Entry> {
        let mut out = std::mem::take(&mut self.unordered);
        if self.held > MAX_HELD {
            metrics::cluster_error("order_overflow");
            for (_, w) in self.senders.drain() {
                out.extend(w.entries.into_iter().map(|(_, e)| e));
            }
            self.held = 0;
            return out;
        }
        for &(sender, mark) in marks {
            let Some(w) = self.senders.get_mut(&sender) else {
                continue;
            };
            if w.unsorted {
                // Stable: two copies of one message stay together, the first first.
                w.entries.sort_by_key(|(seq, _)| *seq);
                w.unsorted = false;
            }
            let due = w.entries.partition_point(|(seq, _)| *seq <= mark);
            self.held -= due;
            out.extend(w.entries.drain(..due).map(|(_, e)| e));
            if w.entries.is_empty() {
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
    use async_nats::HeaderMap;
    use common::qos::QoS;

    use super::*;

    fn nats(payload: Vec<u8>, headers: Option<HeaderMap>) -> async_nats::Message {
        async_nats::Message {
            subject: "s".into(),
            reply: None,
            payload: payload.into(),
            headers,
            status: None,
            description: None,
            length: 0,
        }
    }

    fn routed(sender: u64, seq: u64, topic: &str) -> Arrival {
        let msg = Message::new(topic, ntex_bytes::Bytes::from_static(b"x"), QoS::AtMostOnce, false);
        let mut routed = wire::encode_routed(&msg);
        wire::stamp_routed(&mut routed, Origin { sender, seq });
        (Source::Topic("inst".into()), nats(routed, None))
    }

    /// A node message whose items are `name` (not real items: the reader does not look into them).
    fn items(sender: u64, seq: u64, name: &str) -> Arrival {
        let mut batch = vec![0; wire::ITEMS_HEAD];
        batch.extend_from_slice(name.as_bytes());
        wire::stamp_items(&mut batch, Origin { sender, seq });
        (Source::Node, nats(batch, Some(wire::items_headers())))
    }

    /// What was released, by topic or items, of those starting with `prefix`.
    fn of(out: &[Entry], prefix: &str) -> Vec<String> {
        out.iter()
            .map(|e| match e {
                Entry::Routed(_, m) => m.topic.to_string(),
                Entry::Items(b) => String::from_utf8_lossy(b).into_owned(),
            })
            .filter(|t| t.starts_with(prefix))
            .collect()
    }

    fn take(order: &mut Order, arrival: Arrival) {
        let (takeovers, _) = mpsc::unbounded_channel();
        order.take(arrival, &takeovers);
    }

    #[test]
    fn a_senders_messages_go_in_sequence_up_to_the_mark() {
        let mut order = Order::default();
        // Taken through three subscriptions: 3 (node subject) and 2 before 1.
        take(&mut order, items(7, 3, "a/3 p2p"));
        take(&mut order, routed(7, 2, "a/2"));
        take(&mut order, routed(7, 1, "a/1"));
        take(&mut order, routed(9, 5, "b/5"));
        let marks = order.marks();
        // Taken in the sweep after the marks: 4 waits for the next one; the copy of 2 that came
        // through a second filter goes right after the first (the reader drops it by its ID).
        take(&mut order, routed(7, 4, "a/4"));
        take(&mut order, routed(7, 2, "a/2"));
        let out = order.release(&marks);
        assert_eq!(of(&out, "a/"), ["a/1", "a/2", "a/2", "a/3 p2p"]);
        assert_eq!(of(&out, "b/"), ["b/5"]);
        assert!(!order.is_empty());

        // A sweep that finds nothing lets the rest go.
        let marks = order.marks();
        assert_eq!(of(&order.release(&marks), "a/"), ["a/4"]);
        assert!(order.is_empty());
        assert!(order.senders.is_empty(), "nothing kept for a sender with nothing held");
    }

    #[test]
    fn takeovers_pass_at_once_and_old_messages_go_unordered() {
        let mut order = Order::default();
        let (takeovers, mut passed) = mpsc::unbounded_channel();
        let request = nats(Vec::new(), Some(wire::takeover_headers("inst", "c1")));
        order.take((Source::Node, request), &takeovers);
        assert!(passed.try_recv().is_ok());
        assert!(order.is_empty());

        let msg = Message::new("old/1", ntex_bytes::Bytes::from_static(b"x"), QoS::AtMostOnce, false);
        let old = nats(wire::encode_message(&msg).to_vec(), None);
        order.take((Source::Topic("inst".into()), old), &takeovers);
        assert_eq!(of(&order.release(&[]), "old/"), ["old/1"]);
        assert!(order.is_empty());
    }

    #[test]
    fn too_much_held_goes_at_once() {
        let mut order = Order::default();
        for seq in (1..=MAX_HELD as u64 + 1).rev() {
            take(&mut order, routed(7, seq, "a"));
        }
        assert_eq!(order.release(&[]).len(), MAX_HELD + 1);
        assert!(order.is_empty());
    }
}
