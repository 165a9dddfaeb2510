//! A rule's sender: drains its outbox into its target. It reads the oldest items in batches,
//! splits a batch into one lane per client (publisher, or the client whose status changed) and
//! runs up to `concurrency` lanes at once; a lane sends its items one after the other, each until
//! it is delivered, dead-lettered, or dropped from the outbox (overflow, age). So per rule, one
//! client's items reach the target in the order the broker accepted them, and an item is sent
//! only after the one before it of the same client is done. Retries wait with capped exponential
//! backoff; a batch ends when all its lanes are done. Each rule has its own task: a dead target
//! holds only its own rule's items.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::rules::DeadLetter;
use futures_util::StreamExt;

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
    /// Items read from an outbox at a time.
    pub batch: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            retry_min: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
            concurrency: 16,
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

impl Sender {
    pub async fn run(self) {
        let st = &self.state;
        // Seqs only grow, and every item before the first of the previous read is gone.
        let mut from = 0;
        loop {
            let head = match self.outbox.head(&st.rule_id, from, self.settings.batch.max(1)) {
                Ok(h) => h,
                Err(e) => {
                    crate::metrics::store_error("rule_outbox");
                    tracing::error!(rule = %st.rule_id, error = %e, "cannot read a rule outbox");
                    tokio::time::sleep(self.settings.retry_max).await;
                    continue;
                }
            };
            if let Some((seq, _)) = head.first() {
                from = *seq;
            }
            if head.is_empty() {
                st.drained();
                // A permit stored by an append made since the read wakes this at once.
                st.wake.notified().await;
                continue;
            }
            let mut lanes: Vec<Vec<(u64, Item)>> = Vec::new();
            let mut lane_of: HashMap<String, usize> = HashMap::new();
            for (seq, raw) in head {
                let Some(item) = Item::decode(&raw) else {
                    if self.outbox.remove(st, seq).unwrap_or(false) {
                        st.dropped("corrupt", 1);
                    }
                    continue;
                };
                let next = lanes.len();
                let i = *lane_of.entry(item.client_id().to_string()).or_insert(next);
                if i == next {
                    lanes.push(Vec::new());
                }
                lanes[i].push((seq, item));
            }
            futures_util::stream::iter(lanes)
                .for_each_concurrent(self.settings.concurrency.max(1), |lane| self.lane(lane))
                .await;
            // Removals of delivered items reach the OS once per batch: after kill -9 at most one
            // batch is sent again (at least once).
            if let Err(e) = self.outbox.persist() {
                tracing::error!(rule = %st.rule_id, error = %e, "cannot persist a rule outbox");
            }
        }
    }

    /// Sends one client's items in order. Targets that can pipeline (NATS) get up to `CHUNK`
    /// items at once and answer for each in order; the first one to retry stops the chunk, and
    /// it and everything after it are sent again after the backoff.
    async fn lane(&self, lane: Vec<(u64, Item)>) {
        let st = &self.state;
        let mut backoff = Backoff::new(self.settings.retry_min, self.settings.retry_max);
        let mut i = 0;
        while i < lane.len() {
            let mut chunk = Vec::new();
            for (seq, item) in &lane[i..lane.len().min(i + CHUNK)] {
                if self.expired(*seq) {
                    if chunk.is_empty() {
                        if self.outbox.remove(st, *seq).unwrap_or(false) {
                            st.dropped("age", 1);
                        }
                        i += 1;
                        continue;
                    }
                    break;
                }
                // Dropped by an overflow while it waited: nothing left to send.
                if !self.outbox.contains(&st.rule_id, *seq) {
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
            if chunk.is_empty() {
                continue;
            }
            let outcomes = self.target.send_all(chunk).await;
            let mut retry = None;
            for outcome in outcomes {
                let (seq, item) = &lane[i];
                match outcome {
                    Outcome::Delivered { .. } => {
                        let _ = self.outbox.remove(st, *seq);
                        st.delivered();
                    }
                    Outcome::Refused { status, error } => {
                        let _ = self.outbox.remove(st, *seq);
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
            match retry {
                Some(error) => {
                    st.failed(&error);
                    let delay = backoff.next_delay();
                    tracing::debug!(rule = %st.rule_id, error = %error, retry_in_ms = delay.as_millis() as u64, "rule delivery failed");
                    tokio::time::sleep(delay).await;
                }
                None => backoff.reset(),
            }
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
