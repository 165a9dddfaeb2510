//! The one way out to NATS for routed messages: a queue that the callers fill synchronously, in
//! the order they route, and one task that sends in that order on the routing connection. NATS
//! keeps order per connection and subject, so one client's publishes reach every broker and every
//! inbox in the order they were made, whatever runs concurrently on the workers. Stream publishes
//! are pipelined: the task does not wait for one acknowledgement before sending the next; their
//! acknowledgements are awaited in the order they were sent, by one task, which runs each one's
//! follow-up (telling the node that holds the session) in that order too: the notices of one
//! publisher's messages reach that node in stream order. Routed messages and node messages are
//! numbered here, in the order they go out (`wire::Origin`): a receiving broker uses the number to
//! keep that order across its NATS subscriptions. Items for one node (deliveries, inbox notices)
//! that are waiting together go out as one NATS message per node: under load, many per message,
//! which spares NATS and both brokers a message's fixed cost each; when the queue holds one, it
//! goes alone at once, so nothing waits to be batched.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_nats::HeaderMap;
use async_nats::jetstream::context::Publish;
use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};

use super::link::Link;
use super::wire;
use crate::metrics;

/// Publishes waiting for the task at most; beyond it, core publishes are dropped (counted) and
/// stream publishes refused (their publisher is not acknowledged).
const MAX_PENDING: usize = 100_000;
/// Jobs taken from the queue at a time.
const TAKE: usize = 256;
/// Bytes of items in one NATS message at most (nats-server's default limit is 1 MiB); an item
/// larger than this goes alone.
const BATCH_BYTES: usize = 64 << 10;

pub type StreamAck = oneshot::Receiver<Result<u64, String>>;

/// What to do once JetStream has stored a stream publish, with its sequence.
pub type AfterAck = Box<dyn FnOnce(u64) + Send>;

enum Job {
    /// A routed message for the brokers subscribed to its subject (`wire::encode_routed`).
    Routed { subject: String, routed: Vec<u8> },
    /// An item for a client of the node whose subject this is (`wire::encode_item`).
    Item { subject: String, item: Bytes },
    Stream {
        subject: String,
        publish: Publish,
        done: oneshot::Sender<Result<u64, String>>,
        then: Option<AfterAck>,
    },
}

/// A sent stream publish whose acknowledgement is awaited.
struct Pending {
    ack: async_nats::jetstream::context::PublishAckFuture,
    done: oneshot::Sender<Result<u64, String>>,
    then: Option<AfterAck>,
}

pub struct Funnel {
    tx: mpsc::UnboundedSender<Job>,
    pending: Arc<AtomicUsize>,
}

impl Funnel {
    /// Starts the sending task on the current runtime.
    pub fn start(link: Arc<Link>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run(link, rx, pending.clone()));
        Self { tx, pending }
    }

    fn admit(&self) -> bool {
        if self.pending.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// At most once: a lost connection or a full queue drops it (counted). Its origin is
    /// written in when it is sent.
    pub fn routed(&self, subject: String, routed: Vec<u8>) {
        if !self.admit() {
            metrics::cluster_error("funnel_full");
            return;
        }
        let _ = self.tx.send(Job::Routed { subject, routed });
    }

    /// At most once, like `routed`: an item for a node, sent with the others waiting for that node.
    pub fn item(&self, subject: String, item: Bytes) {
        if !self.admit() {
            metrics::cluster_error("funnel_full");
            return;
        }
        let _ = self.tx.send(Job::Item { subject, item });
    }

    /// Into a stream; the receiver resolves with the stream sequence once JetStream has it, after
    /// `then` ran with it.
    pub fn stream(&self, subject: String, publish: Publish, then: Option<AfterAck>) -> StreamAck {
        let (done, ack) = oneshot::channel();
        if !self.admit() {
            metrics::cluster_error("funnel_full");
            let _ = done.send(Err("too many publishes waiting for NATS".into()));
            return ack;
        }
        let _ = self.tx.send(Job::Stream {
            subject,
            publish,
            done,
            then,
        });
        ack
    }
}

async fn run(link: Arc<Link>, mut rx: mpsc::UnboundedReceiver<Job>, pending: Arc<AtomicUsize>) {
    let (acks, acks_rx) = mpsc::unbounded_channel();
    tokio::spawn(settle_in_order(acks_rx));
    let mut jobs = Vec::with_capacity(TAKE);
    let mut batches = Batches::default();
    // A new ID at every start: a receiver never mistakes a restarted broker's sequence for the
    // one before.
    let mut origin = wire::Origin {
        sender: rand::random(),
        seq: 0,
    };
    while rx.recv_many(&mut jobs, TAKE).await > 0 {
        pending.fetch_sub(jobs.len(), Ordering::Relaxed);
        for job in jobs.drain(..) {
            match job {
                Job::Item { subject, item } => {
                    let mut full = Vec::new();
                    batches.add(subject, &item, &mut full);
                    send(&link, full, &mut origin).await;
                }
                Job::Routed { subject, mut routed } => {
                    // Everything queued before goes first: the connection's order is the callers'.
                    batches.flush(&link, &mut origin).await;
                    origin.seq += 1;
                    wire::stamp_routed(&mut routed, origin);
                    publish(&link, subject, HeaderMap::new(), Bytes::from(routed), 1).await;
                }
                Job::Stream {
                    subject,
                    publish,
                    done,
                    then,
                } => {
                    batches.flush(&link, &mut origin).await;
                    match link.js.send_publish(subject, publish).await {
                        Ok(ack) => {
                            let _ = acks.send(Pending { ack, done, then });
                        }
                        Err(e) => {
                            metrics::cluster_error("jetstream");
                            let _ = done.send(Err(e.to_string()));
                        }
                    }
                }
            }
        }
        batches.flush(&link, &mut origin).await;
    }
}

async fn publish(link: &Link, subject: String, headers: HeaderMap, payload: Bytes, messages: u64) {
    if let Err(e) = link.client.publish_with_headers(subject, headers, payload).await {
        metrics::cluster_error("publish");
        tracing::debug!(error = %e, "cluster publish failed");
    } else {
        metrics::cluster_messages("out", messages);
    }
}

/// Items waiting to go, per node subject (a cluster has a handful of nodes: a list is enough).
#[derive(Default)]
struct Batches {
    open: Vec<Batch>,
}

/// One NATS message of items for one node, behind room for its origin (`wire::ITEMS_HEAD`).
struct Batch {
    subject: String,
    bytes: BytesMut,
    items: u64,
}

impl Batches {
    /// Adds an item; batches that are full are moved to `ready`.
    fn add(&mut self, subject: String, item: &[u8], ready: &mut Vec<Batch>) {
        let mut at = self.open.iter().position(|b| b.subject == subject);
        // A batch does not grow past the bound by a large item: what waits goes first, so a
        // message is never larger than the bound or its one item.
        if let Some(i) = at
            && self.open[i].bytes.len() - wire::ITEMS_HEAD + item.len() > BATCH_BYTES
        {
            ready.push(self.open.swap_remove(i));
            at = None;
        }
        let at = at.unwrap_or_else(|| {
            self.open.push(Batch {
                subject,
                bytes: BytesMut::from(&[0; wire::ITEMS_HEAD][..]),
                items: 0,
            });
            self.open.len() - 1
        });
        let batch = &mut self.open[at];
        batch.bytes.extend_from_slice(item);
        batch.items += 1;
        if batch.bytes.len() - wire::ITEMS_HEAD >= BATCH_BYTES {
            ready.push(self.open.swap_remove(at));
        }
    }

    /// Moves every batch to `ready`.
    fn close(&mut self, ready: &mut Vec<Batch>) {
        ready.append(&mut self.open);
    }

    async fn flush(&mut self, link: &Link, origin: &mut wire::Origin) {
        let mut ready = Vec::new();
        self.close(&mut ready);
        send(link, ready, origin).await;
    }
}

/// Sends batches, each numbered after what went before it.
async fn send(link: &Link, ready: Vec<Batch>, origin: &mut wire::Origin) {
    for mut b in ready {
        origin.seq += 1;
        wire::stamp_items(&mut b.bytes, *origin);
        publish(link, b.subject, wire::items_headers(), b.bytes.freeze(), b.items).await;
    }
}

/// Awaits acknowledgements in the order their publishes were sent (JetStream answers a connection's
/// publishes in that order, so nothing waits behind a slower one) and runs their follow-ups.
async fn settle_in_order(mut acks: mpsc::UnboundedReceiver<Pending>) {
    while let Some(Pending { ack, done, then }) = acks.recv().await {
        let res = ack.await.map(|a| a.sequence).map_err(|e| e.to_string());
        match (&res, then) {
            (Ok(seq), Some(then)) => then(*seq),
            (Err(_), _) => metrics::cluster_error("jetstream"),
            _ => {}
        }
        let _ = done.send(res);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Subject, bytes of items, items.
    fn contents(ready: &[Batch]) -> Vec<(&str, usize, u64)> {
        ready
            .iter()
            .map(|b| (b.subject.as_str(), b.bytes.len() - wire::ITEMS_HEAD, b.items))
            .collect()
    }

    #[test]
    fn items_wait_per_node_in_order_within_the_bound() {
        let mut batches = Batches::default();
        let mut ready = Vec::new();
        batches.add("n.a".into(), b"a1", &mut ready);
        batches.add("n.b".into(), b"b1", &mut ready);
        batches.add("n.a".into(), b"a2", &mut ready);
        assert!(ready.is_empty(), "nothing is full yet");
        batches.close(&mut ready);
        assert_eq!(contents(&ready), [("n.a", 4, 2), ("n.b", 2, 1)]);
        assert_eq!(&ready[0].bytes[wire::ITEMS_HEAD..], b"a1a2");

        // A large item does not join what waits: that goes first, then the item alone.
        let mut ready = Vec::new();
        let large = vec![7u8; BATCH_BYTES - 1];
        batches.add("n.a".into(), b"a3", &mut ready);
        batches.add("n.a".into(), &large, &mut ready);
        assert_eq!(contents(&ready), [("n.a", 2, 1)]);
        batches.add("n.a".into(), b"a4", &mut ready);
        assert_eq!(contents(&ready), [("n.a", 2, 1), ("n.a", BATCH_BYTES - 1, 1)]);
        batches.close(&mut ready);
        assert_eq!(contents(&ready)[2], ("n.a", 2, 1));

        // One larger than the bound goes alone at once.
        let mut ready = Vec::new();
        batches.add("n.b".into(), &vec![0u8; BATCH_BYTES + 10], &mut ready);
        assert_eq!(contents(&ready), [("n.b", BATCH_BYTES + 10, 1)]);
        batches.close(&mut ready);
        assert_eq!(ready.len(), 1);
    }
}
