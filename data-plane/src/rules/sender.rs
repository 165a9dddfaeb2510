//! A rule's sender: drains its outbox into its target. It reads the oldest items, queues them in
//! one lane per client (publisher, or the client whose status changed) and keeps up to
//! `concurrency` lanes sending at once; as soon as one lane's attempt ends, the next waiting lane
//! starts, and new items are read as the queue empties, so no item waits for a slow lane of
//! another client. A lane sends its client's items one after the other, each until it is
//! delivered, dead-lettered, or dropped from the outbox (overflow, age). So per rule, one client's
//! items reach the target in the order the broker accepted them, and an item is sent only after
//! the one before it of the same client is done. Retries wait with capped exponential backoff,
//! per lane. Each rule has its own task: a dead target holds only its own rule's items.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use common::rules::DeadLetter;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use super::dead::DeadLetters;
use super::outbox::{Outbox, appended_at_ms};
use super::record::Item;
use super::state::RuleState;
use super::target::{Attempt, Outcome, Target};
use crate::sync::backoff::Backoff;

/// Items of one client handed to a target at once (pipelining targets send them back to back).
const CHUNK: usize = 64;

/// How senders pace themselves (broker configuration).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Lanes (clients) of one rule sent at once.
    pub concurrency: usize,
    /// Items read from the outbox and waiting to be sent, at most.
    pub batch: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            retry_min: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
            // A webhook lane waits a round trip per item, so a rule's rate is at most
            // `concurrency` / round trip: 16 held 10,000 msg/s only while the receiver answered
            // within 1.6 ms, and any hiccup of it became seconds of lag (BENCHMARKS.md, "Rule lag").
            concurrency: 64,
            batch: 512,
        }
    }
}

pub struct Sender {
    pub outbox: Arc<Outbox>,
    pub state: Arc<RuleState>,
    pub target: Arc<dyn Target>,
    pub settings: Settings,
    pub dead: Arc<DeadLetters>,
}

/// An item read from the outbox.
struct Queued {
    seq: u64,
    /// Its size in the outbox.
    size: usize,
    item: Item,
}

/// One client's items read and not yet done, oldest first.
struct Lane {
    items: VecDeque<Queued>,
    backoff: Backoff,
    /// An attempt of this lane is under way (its items are out of `items` meanwhile).
    sending: bool,
}

/// A lane's first items, taken out of it for one attempt.
struct Turn {
    client: String,
    items: Vec<Queued>,
    backoff: Backoff,
}

/// What one attempt of a lane came to: the items still to send (the one to retry first), and how
/// many items it removed from the outbox.
struct Step {
    client: String,
    rest: Vec<Queued>,
    backoff: Backoff,
    removed: usize,
}

/// The items read and waiting, per client, and which clients may start an attempt, in the order
/// their oldest waiting item was read.
#[derive(Default)]
struct Lanes {
    by_client: HashMap<String, Lane>,
    ready: VecDeque<String>,
    /// Items in `by_client` not currently being sent.
    waiting: usize,
}

impl Lanes {
    fn push(&mut self, item: Queued, settings: &Settings) {
        let client = item.item.client_id();
        let lane = match self.by_client.get_mut(client) {
            Some(lane) => lane,
            None => self.by_client.entry(client.to_string()).or_insert_with(|| Lane {
                items: VecDeque::new(),
                backoff: Backoff::new(settings.retry_min, settings.retry_max),
                sending: false,
            }),
        };
        if lane.items.is_empty() && !lane.sending {
            self.ready.push_back(client.to_string());
        }
        lane.items.push_back(item);
        self.waiting += 1;
    }

    /// The next client's first items (up to `CHUNK`), its lane marked as sending.
    fn start(&mut self) -> Option<Turn> {
        let client = self.ready.pop_front()?;
        let lane = self.by_client.get_mut(&client)?;
        let n = lane.items.len().min(CHUNK);
        let items: Vec<_> = lane.items.drain(..n).collect();
        self.waiting -= n;
        lane.sending = true;
        let backoff = std::mem::replace(&mut lane.backoff, Backoff::new(Duration::ZERO, Duration::ZERO));
        Some(Turn { client, items, backoff })
    }

    /// An attempt ended: what it left goes back to the front of its lane, in order.
    fn finish(&mut self, step: Step) {
        let Some(lane) = self.by_client.get_mut(&step.client) else {
            return;
        };
        lane.sending = false;
        lane.backoff = step.backoff;
        self.waiting += step.rest.len();
        for item in step.rest.into_iter().rev() {
            lane.items.push_front(item);
        }
        if lane.items.is_empty() {
            self.by_client.remove(&step.client);
        } else {
            self.ready.push_back(step.client);
        }
    }
}

impl Sender {
    pub async fn run(self) {
        let st = &self.state;
        let settings = self.settings;
        let limit = settings.batch.max(1);
        let mut lanes = Lanes::default();
        let mut attempts = FuturesUnordered::new();
        // Seqs only grow and an append is visible with every one before it, so each read goes on
        // after the last item read: it never walks over the tombstones of removed items.
        let mut next_read = 0;
        // Items may wait past `next_read`: the last read filled all the room it had, or an append
        // woke the sender since. Otherwise a read would find nothing, so none is made.
        let mut unread = true;
        // Removals not yet handed to the OS.
        let mut unpersisted = 0;
        loop {
            let looked = unread && lanes.waiting < limit;
            if looked {
                let room = limit - lanes.waiting;
                match self.outbox.head(&st.rule_id, next_read, room) {
                    Ok(head) => {
                        unread = head.len() == room;
                        for (seq, raw) in head {
                            next_read = seq + 1;
                            let size = raw.len();
                            match Item::decode(&raw) {
                                Some(item) => lanes.push(Queued { seq, size, item }, &settings),
                                None => {
                                    if self.outbox.remove(st, seq, size).unwrap_or(false) {
                                        st.dropped("corrupt", 1);
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => {
                        crate::metrics::store_error("rule_outbox");
                        tracing::error!(rule = %st.rule_id, error = %e, "cannot read a rule outbox");
                        tokio::time::sleep(settings.retry_max).await;
                        continue;
                    }
                }
            }
            while attempts.len() < settings.concurrency.max(1)
                && let Some(turn) = lanes.start()
            {
                attempts.push(self.attempt(turn));
            }
            if attempts.is_empty() {
                if !looked {
                    // Before calling the outbox drained, a read makes sure.
                    unread = true;
                    continue;
                }
                // Nothing waiting either: every waiting lane would have started.
                self.persist(&mut unpersisted);
                st.drained();
                // A permit stored by an append made since the read wakes this at once.
                st.wake.notified().await;
                unread = true;
                continue;
            }
            tokio::select! {
                Some(step) = attempts.next() => {
                    unpersisted += step.removed;
                    lanes.finish(step);
                }
                _ = st.wake.notified(), if lanes.waiting < limit => unread = true,
            }
            // Removals reach the OS once per `batch` of them (and when the outbox empties): after
            // kill -9 at most that many are sent again (at least once).
            if unpersisted >= limit {
                self.persist(&mut unpersisted);
            }
        }
    }

    fn persist(&self, unpersisted: &mut usize) {
        if *unpersisted == 0 {
            return;
        }
        *unpersisted = 0;
        if let Err(e) = self.outbox.persist() {
            tracing::error!(rule = %self.state.rule_id, error = %e, "cannot persist a rule outbox");
        }
    }

    /// One attempt of one client's lane: its first items that are still due, sent in order.
    /// Targets that can pipeline (NATS) get them all at once and answer for each in order; the
    /// first one to retry stops the attempt, and it and everything after it come back (after the
    /// backoff) to be sent again.
    async fn attempt(&self, turn: Turn) -> Step {
        let Turn {
            client,
            items,
            mut backoff,
        } = turn;
        let st = &self.state;
        let mut removed = 0;
        let mut i = 0;
        let mut chunk = Vec::new();
        for Queued { seq, size, item } in &items {
            if self.expired(*seq) {
                if chunk.is_empty() {
                    if self.outbox.remove(st, *seq, *size).unwrap_or(false) {
                        st.dropped("age", 1);
                        removed += 1;
                    }
                    i += 1;
                    continue;
                }
                break;
            }
            // Dropped by an overflow while it waited: nothing left to send.
            if !self.outbox.contains(st, *seq) {
                if chunk.is_empty() {
                    i += 1;
                    continue;
                }
                break;
            }
            chunk.push(Attempt {
                rule_id: &st.rule_id,
                instance_id: &st.instance_id,
                item,
            });
        }
        let mut retry = None;
        if !chunk.is_empty() {
            let outcomes = self.target.send_all(chunk).await;
            for outcome in outcomes {
                let Queued { seq, size, item } = &items[i];
                match outcome {
                    Outcome::Delivered { .. } => {
                        removed += usize::from(self.outbox.remove(st, *seq, *size).unwrap_or(false));
                        st.delivered();
                    }
                    Outcome::Refused { status, error } => {
                        removed += usize::from(self.outbox.remove(st, *seq, *size).unwrap_or(false));
                        st.dead_lettered(&error);
                        tracing::warn!(rule = %st.rule_id, instance = %st.instance_id, status, error = %error, "rule delivery dead-lettered");
                        self.dead.push(dead_letter(st, item, status, error));
                    }
                    Outcome::Retry { error, .. } => {
                        retry = Some(error);
                        break;
                    }
                }
                i += 1;
            }
        }
        match retry {
            Some(error) => {
                st.failed(&error);
                let delay = backoff.next_delay();
                tracing::debug!(rule = %st.rule_id, error = %error, retry_in_ms = delay.as_millis() as u64, "rule delivery failed");
                tokio::time::sleep(delay).await;
            }
            None => backoff.reset(),
        }
        Step {
            client,
            rest: items.into_iter().skip(i).collect(),
            backoff,
            removed,
        }
    }

    fn expired(&self, seq: u64) -> bool {
        let max_age_ms = self.state.limits().max_age_secs.saturating_mul(1000);
        let now = common::time::now_ms().max(0) as u64;
        appended_at_ms(seq).saturating_add(max_age_ms) < now
    }
}

fn dead_letter(st: &RuleState, item: &Item, status: Option<u16>, error: String) -> DeadLetter {
    use base64::Engine;
    let body = item.json_body(&st.rule_id, &st.instance_id);
    DeadLetter {
        rule_id: st.rule_id.clone(),
        instance_id: st.instance_id.clone(),
        at_ms: common::time::now_ms(),
        status,
        error,
        topic: item.topic().map(str::to_string),
        client_id: Some(item.client_id().to_string()).filter(|c| !c.is_empty()),
        msg_id: item.msg_id(),
        body_head: Some(base64::engine::general_purpose::STANDARD.encode(&body[..body.len().min(4096)])),
    }
}
