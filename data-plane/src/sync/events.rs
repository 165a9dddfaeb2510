//! Client events to the control plane: collected from the broker's event stream into a bounded
//! buffer and posted in batches (every 100 ms, or at once at 500 events). While the control plane
//! is away the buffer keeps the newest events and drops the oldest, counting them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::sync::{ClientEvent, EventBatch};
use tokio::sync::{Notify, broadcast};

use crate::sync::LinkState;
use crate::sync::backoff::Backoff;
use crate::sync::client::{Client, ClientError};

pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
pub const BATCH: usize = 500;
/// About 100k events (a few tens of MB) cover minutes of churn on a busy node.
pub const CAPACITY: usize = 100_000;

pub struct Buffer {
    queue: Mutex<VecDeque<ClientEvent>>,
    capacity: usize,
    full: Notify,
    pub dropped: AtomicU64,
}

impl Default for Buffer {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl Buffer {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            full: Notify::new(),
            dropped: AtomicU64::new(0),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<ClientEvent>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, event: ClientEvent) {
        let len = {
            let mut q = self.queue();
            q.push_back(event);
            self.trim(&mut q);
            q.len()
        };
        if len >= BATCH {
            self.full.notify_one();
        }
    }

    /// Takes up to `n` of the oldest events.
    pub fn take(&self, n: usize) -> Vec<ClientEvent> {
        let mut q = self.queue();
        let n = n.min(q.len());
        q.drain(..n).collect()
    }

    /// Puts a batch that could not be sent back in front, in order (then the cap applies again).
    pub fn requeue(&self, batch: Vec<ClientEvent>) {
        let mut q = self.queue();
        for e in batch.into_iter().rev() {
            q.push_front(e);
        }
        self.trim(&mut q);
    }

    fn trim(&self, q: &mut VecDeque<ClientEvent>) {
        let over = q.len().saturating_sub(self.capacity);
        if over > 0 {
            q.drain(..over);
            self.count_dropped(over as u64);
        }
    }

    fn count_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        crate::metrics::sync_events_dropped(n);
    }

    pub fn len(&self) -> usize {
        self.queue().len()
    }
}

/// Moves events from the broker's broadcast stream into the buffer (never blocks the stream).
pub async fn collect(mut rx: broadcast::Receiver<ClientEvent>, buffer: Arc<Buffer>) {
    loop {
        match rx.recv().await {
            Ok(event) => buffer.push(event),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(lost = n, "client events lost before reaching the control-plane link");
                buffer.count_dropped(n);
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Posts batches; a failed batch goes back to the front and is retried after a backoff.
pub async fn forward(client: Arc<Client>, state: Arc<LinkState>, buffer: Arc<Buffer>) {
    let mut ticks = tokio::time::interval(FLUSH_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = buffer.full.notified() => {}
        }
        loop {
            let events = buffer.take(BATCH);
            if events.is_empty() {
                break;
            }
            if let Err((e, unsent)) = post(&client, &state.boot_id, events).await {
                crate::metrics::sync_error("events");
                tracing::debug!(error = %e, pending = buffer.len() + unsent.len(), "event batch not delivered");
                buffer.requeue(unsent);
                tokio::time::sleep(backoff.next_delay()).await;
                break;
            }
            backoff.reset();
        }
    }
}

/// An answer that refuses what was sent, not the moment it was sent: sending it again would only be
/// refused again.
fn refuses_content(status: reqwest::StatusCode) -> bool {
    status.is_client_error() && !matches!(status.as_u16(), 401 | 408 | 429)
}

/// Posts `events` in order. A batch the control plane refuses for its content is split in halves
/// until each refused event is alone; those are dropped, logged and counted, so one bad event never
/// holds up a node's stream. On any other failure: the error and every event not yet delivered.
async fn post(client: &Client, boot_id: &str, events: Vec<ClientEvent>) -> Result<(), (ClientError, Vec<ClientEvent>)> {
    // Chunks still to send, the next one last.
    let mut pending = vec![events];
    while let Some(chunk) = pending.pop() {
        let batch = EventBatch {
            boot_id: boot_id.to_string(),
            events: chunk,
        };
        match client.events(&batch).await {
            Ok(()) => {}
            Err(ClientError::Status(status)) if refuses_content(status) => {
                let mut events = batch.events;
                if events.len() == 1 {
                    let e = &events[0];
                    tracing::warn!(%status, client_id = %e.client_id, instance = %e.instance_id, "client event refused by the control plane: dropped");
                    crate::metrics::sync_events_refused(1);
                } else {
                    let second = events.split_off(events.len() / 2);
                    pending.push(second);
                    pending.push(events);
                }
            }
            Err(e) => {
                let mut unsent = batch.events;
                unsent.extend(pending.into_iter().rev().flatten());
                return Err((e, unsent));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use common::sync::ClientEventType;

    use super::*;

    fn ev(n: usize) -> ClientEvent {
        ClientEvent {
            instance_id: "mqtt-abcdefabcdef".into(),
            client_id: format!("GID_a@@@{n}"),
            event_type: ClientEventType::Connect,
            time: n as i64,
            channel_id: "0".repeat(32),
            client_ip: "127.0.0.1:1".into(),
            topics: vec![],
            reason: None,
        }
    }

    #[test]
    fn keeps_order_across_requeue_and_drops_oldest_when_full() {
        let b = Buffer::with_capacity(3);
        for i in 0..3 {
            b.push(ev(i));
        }
        let batch = b.take(2);
        assert_eq!(batch.iter().map(|e| e.time).collect::<Vec<_>>(), vec![0, 1]);
        b.push(ev(3));
        b.requeue(batch);
        assert_eq!(b.len(), 3);
        assert_eq!(b.dropped.load(Ordering::Relaxed), 1);
        let all = b.take(10);
        assert_eq!(all.iter().map(|e| e.time).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(b.len(), 0);
    }
}
