//! Offline queues of persistent sessions in a cluster: one JetStream stream per instance (replicated,
//! with the instance's offline limits: count, bytes, age, oldest dropped first), one subject per
//! client. A QoS 1/2 message for a persistent session is appended to its subject and acknowledged to
//! the publisher only once JetStream has it; the node that holds the session online is also sent
//! the message with its stream sequence, so delivery does not wait for a read. A session that opens
//! (or a node whose NATS connection came back) reads its subject from where it stands; what the
//! client acknowledges is purged from the subject, and the position is kept in the session's record.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_nats::jetstream::context::Publish;
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{self, DirectGetErrorKind};
use futures_util::future::join_all;

use super::funnel::{Funnel, StreamAck};
use super::link::{InboxLimits, Link};
use super::sessions::ClusterSessions;
use super::state::ClusterState;
use super::subject::key_token;
use super::wire::{self, Op};
use crate::core::mailbox::Outbound;
use crate::core::offline::{OfflineLimits, OfflineQueue, QueueEntry, Queued};
use crate::core::seam::{Seam, SeamError, SeamResult, done};
use crate::core::sessions::LocalSessions;
use crate::message::Message;
use crate::metrics;

/// Messages of one session kept in memory for delivery at most; beyond it they are read from the
/// stream when their turn comes.
const BUFFER: usize = 1_000;

/// How often acknowledged messages are purged from the stream and positions written back.
const PURGE_EVERY: Duration = Duration::from_millis(250);

/// One persistent session's delivery state on the node that holds it.
#[derive(Default)]
struct Session {
    /// Everything in the stream after the cursor is in `buffer` (nothing to read).
    primed: bool,
    buffer: BTreeMap<u64, Outbound>,
    /// Handed to the connection and not acknowledged yet.
    unacked: BTreeSet<u64>,
    /// Highest sequence handed out.
    handed: u64,
    /// Everything up to here is acknowledged (and may be purged).
    floor: u64,
    purged: u64,
}

impl Session {
    fn advance_floor(&mut self) {
        self.floor = match self.unacked.first() {
            Some(first) => first - 1,
            None => self.handed,
        }
        .max(self.floor);
    }
}

type Key = (String, String);

pub struct Inbox {
    me: std::sync::OnceLock<std::sync::Weak<Inbox>>,
    link: Arc<Link>,
    sessions_registry: Arc<ClusterSessions>,
    funnel: Arc<Funnel>,
    state: Arc<ClusterState>,
    local: Arc<LocalSessions>,
    streams: tokio::sync::Mutex<HashMap<String, (stream::Stream, InboxLimits)>>,
    /// Instances whose stream exists with these limits (read without waiting, on the hot path).
    ready: Mutex<HashMap<String, InboxLimits>>,
    sessions: Mutex<HashMap<Key, Session>>,
    counts: Mutex<HashMap<String, u64>>,
}

fn unavailable(e: impl std::fmt::Display) -> SeamError {
    metrics::cluster_error("jetstream");
    SeamError::Unavailable(e.to_string())
}

impl Inbox {
    pub fn new(
        link: Arc<Link>,
        sessions_registry: Arc<ClusterSessions>,
        funnel: Arc<Funnel>,
        state: Arc<ClusterState>,
        local: Arc<LocalSessions>,
    ) -> Arc<Self> {
        let inbox = Arc::new(Self {
            me: std::sync::OnceLock::new(),
            link,
            sessions_registry,
            funnel,
            state,
            local,
            streams: tokio::sync::Mutex::new(HashMap::new()),
            ready: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            counts: Mutex::new(HashMap::new()),
        });
        let _ = inbox.me.set(Arc::downgrade(&inbox));
        inbox
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<Key, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The instance's stream: created (or updated to new limits) when `limits` are given;
    /// without them None when it does not exist (nothing was ever stored in the instance).
    async fn stream(&self, instance: &str, limits: Option<InboxLimits>) -> SeamResult<Option<stream::Stream>> {
        let mut streams = self.streams.lock().await;
        if let Some((s, have)) = streams.get(instance)
            && limits.is_none_or(|l| l == *have)
        {
            return Ok(Some(s.clone()));
        }
        let Some(limits) = limits else {
            return Ok(self.link.existing_inbox(instance).await);
        };
        let s = self.link.inbox(instance, limits).await.map_err(unavailable)?;
        streams.insert(instance.to_string(), (s.clone(), limits));
        self.ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(instance.to_string(), limits);
        Ok(Some(s))
    }

    /// A message for a session this node holds arrived (from this node or another one).
    pub fn deliver_here(&self, instance: &str, client: &str, seq: u64, out: Outbound) {
        {
            let mut sessions = self.sessions();
            let s = sessions.entry((instance.to_string(), client.to_string())).or_default();
            if seq > s.floor && !s.unacked.contains(&seq) {
                if s.buffer.len() < BUFFER {
                    s.buffer.insert(seq, out);
                } else {
                    // Too much waiting: read it from the stream when its turn comes.
                    s.primed = false;
                }
            }
        }
        if let Some(conn) = self.local.live(instance, client) {
            conn.mailbox.wake();
        }
    }

    /// Deliveries may have been lost (the NATS connection dropped): every session reads its
    /// subject again from where it stands.
    pub fn reread_all(&self) {
        let keys: Vec<Key> = {
            let mut sessions = self.sessions();
            for s in sessions.values_mut() {
                s.primed = false;
            }
            sessions.keys().cloned().collect()
        };
        for (instance, client) in keys {
            if let Some(conn) = self.local.live(&instance, &client) {
                conn.mailbox.wake();
            }
        }
    }

    /// Re-reads one session's subject later (a publisher may still have notified the node that
    /// held it before).
    pub fn reread_later(self: &Arc<Self>, instance: &str, client: &str, after: Duration) {
        let (me, key) = (self.clone(), (instance.to_string(), client.to_string()));
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            if let Some(s) = me.sessions().get_mut(&key) {
                s.primed = false;
            }
            if let Some(conn) = me.local.live(&key.0, &key.1) {
                conn.mailbox.wake();
            }
        });
    }

    async fn read_subject(
        &self,
        instance: &str,
        client: &str,
        from: u64,
        limit: usize,
    ) -> SeamResult<(Vec<(u64, Outbound)>, bool)> {
        let Some(stream) = self.stream(instance, None).await? else {
            return Ok((Vec::new(), true));
        };
        let subject = self.link.names.inbox_subject(instance, client);
        let mut out = Vec::new();
        let mut next = from;
        while out.len() < limit {
            match stream.direct_get_next_for_subject(&subject, Some(next)).await {
                Ok(m) => {
                    let m = StreamMessage::try_from(m.message).map_err(unavailable)?;
                    next = m.sequence + 1;
                    match wire::decode_delivery(&m.payload) {
                        Some(d) => out.push((m.sequence, d)),
                        None => metrics::cluster_error("undecodable"),
                    }
                }
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => return Ok((out, true)),
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok((out, false))
    }

    async fn fetch_clustered(
        &self,
        instance: String,
        client: String,
        after: u64,
        limit: usize,
    ) -> SeamResult<Vec<Queued>> {
        let key = (instance.clone(), client.clone());
        let (primed, from) = {
            let mut sessions = self.sessions();
            if !sessions.contains_key(&key)
                && let Some(me) = self.me.get().and_then(|w| w.upgrade())
            {
                // A publisher that has not seen this node claim the session yet may still tell its
                // previous holder: look again once that can no longer be.
                me.reread_later(&instance, &client, Duration::from_secs(1));
            }
            let s = sessions.entry(key.clone()).or_default();
            if s.floor == 0 {
                s.floor = self.state.owner(&instance, &client).map_or(0, |o| o.acked);
                s.purged = s.floor;
            }
            (s.primed, after.max(s.floor) + 1)
        };
        if !primed {
            let (read, complete) = self
                .read_subject(&instance, &client, from, limit.max(BUFFER / 4))
                .await?;
            let mut sessions = self.sessions();
            let s = sessions.entry(key.clone()).or_default();
            for (seq, out) in read {
                if seq > s.floor && !s.unacked.contains(&seq) {
                    s.buffer.entry(seq).or_insert(out);
                }
            }
            s.primed = complete;
        }
        let mut sessions = self.sessions();
        let s = sessions.entry(key).or_default();
        let floor = after.max(s.floor);
        let batch: Vec<Queued> = s
            .buffer
            .range(floor + 1..)
            .take(limit)
            .map(|(seq, out)| Queued {
                seq: *seq,
                out: Outbound {
                    msg: out.msg.clone(),
                    qos: out.qos,
                    retain: out.retain,
                    sub_ids: out.sub_ids.clone(),
                },
            })
            .collect();
        for q in &batch {
            s.buffer.remove(&q.seq);
            s.unacked.insert(q.seq);
            s.handed = s.handed.max(q.seq);
        }
        Ok(batch)
    }

    /// Purges what sessions acknowledged and writes their positions back, every `PURGE_EVERY`.
    pub async fn run_purges(self: Arc<Self>) {
        loop {
            tokio::time::sleep(PURGE_EVERY).await;
            let due: Vec<(Key, u64)> = {
                let mut sessions = self.sessions();
                sessions
                    .iter_mut()
                    .filter(|(_, s)| s.floor > s.purged)
                    .map(|(k, s)| {
                        s.purged = s.floor;
                        (k.clone(), s.floor)
                    })
                    .collect()
            };
            for ((instance, client), floor) in due {
                if let Err(e) = self.purge_up_to(&instance, &client, floor).await {
                    tracing::debug!(error = %e, "inbox purge failed; retried later");
                    if let Some(s) = self.sessions().get_mut(&(instance, client)) {
                        s.purged = s.purged.min(floor - 1);
                    }
                }
            }
        }
    }

    async fn purge_up_to(&self, instance: &str, client: &str, floor: u64) -> SeamResult<()> {
        let Some(stream) = self.stream(instance, None).await? else {
            return Ok(());
        };
        let subject = self.link.names.inbox_subject(instance, client);
        stream
            .purge()
            .filter(subject)
            .sequence(floor + 1)
            .await
            .map_err(unavailable)?;
        self.sessions_registry.record_acked(instance, client, floor).await
    }

    /// Forgets a session's delivery state here (it closed, or another node holds it now).
    pub fn forget(&self, instance: &str, client: &str) {
        self.sessions().remove(&(instance.to_string(), client.to_string()));
    }
}

impl OfflineQueue for Inbox {
    fn enqueue(
        &self,
        inst: &str,
        msg: &Message,
        entries: &[QueueEntry],
        limits: OfflineLimits,
    ) -> Seam<'_, SeamResult<usize>> {
        let limits = InboxLimits {
            max_messages: limits.max_messages,
            retention_secs: limits.retention_secs,
        };
        let ready = self.ready.lock().unwrap_or_else(|p| p.into_inner()).get(inst) == Some(&limits);
        let (instance, msg, entries) = (inst.to_string(), Arc::new(msg.clone()), entries.to_vec());
        if ready {
            // Submitted now, in routing order; resolved once JetStream has every copy.
            let acks = self.submit(&instance, &msg, &entries);
            return Seam::later(self.settle(instance, acks));
        }
        // The instance's first message (or new limits): the stream comes first.
        Seam::later(async move {
            self.stream(&instance, Some(limits)).await?;
            let acks = self.submit(&instance, &msg, &entries);
            self.settle(instance, acks).await
        })
    }

    fn fetch(
        &self,
        inst: &str,
        client: &str,
        after: u64,
        limit: usize,
        _max_age_ms: u64,
    ) -> Seam<'_, SeamResult<Vec<Queued>>> {
        Seam::later(self.fetch_clustered(inst.to_string(), client.to_string(), after, limit))
    }

    fn ack(&self, inst: &str, client: &str, seq: u64) -> Seam<'_, SeamResult<()>> {
        if let Some(s) = self.sessions().get_mut(&(inst.to_string(), client.to_string())) {
            s.unacked.remove(&seq);
            s.advance_floor();
        }
        done(Ok(()))
    }

    fn purge(&self, inst: &str, client: &str) -> Seam<'_, SeamResult<()>> {
        self.forget(inst, client);
        let (instance, client) = (inst.to_string(), client.to_string());
        Seam::later(async move {
            let Some(stream) = self.stream(&instance, None).await? else {
                return Ok(());
            };
            stream
                .purge()
                .filter(self.link.names.inbox_subject(&instance, &client))
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn expire(&self, _inst: &str, _max_age_ms: u64) -> SeamResult<u64> {
        // The stream's maximum age does it.
        Ok(0)
    }

    fn counts(&self) -> HashMap<String, u64> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn flush(&self) -> SeamResult<()> {
        Ok(())
    }
}

impl Inbox {
    /// Appends one copy per entry to the instance's stream, in order.
    fn submit(
        &self,
        instance: &str,
        msg: &Arc<Message>,
        entries: &[QueueEntry],
    ) -> Vec<(Arc<str>, Outbound, StreamAck)> {
        entries
            .iter()
            .map(|e| {
                let out = Outbound {
                    msg: msg.clone(),
                    qos: e.qos,
                    retain: e.retain,
                    sub_ids: e.sub_ids.clone(),
                };
                let publish = Publish::build()
                    .payload(wire::encode_delivery(&out))
                    .message_id(format!("{}-{}", msg.id, key_token(&e.client_id)));
                let ack = self
                    .funnel
                    .stream(self.link.names.inbox_subject(instance, &e.client_id), publish);
                (e.client_id.clone(), out, ack)
            })
            .collect()
    }

    /// Waits until JetStream has every copy, then tells the nodes that hold those sessions.
    async fn settle(&self, instance: String, acks: Vec<(Arc<str>, Outbound, StreamAck)>) -> SeamResult<usize> {
        let results = join_all(acks.into_iter().map(|(client, out, ack)| async move {
            let seq = ack.await.map_err(|_| "NATS link closed".to_string()).and_then(|r| r);
            (client, out, seq)
        }))
        .await;
        let mut stored = 0;
        for (client, out, seq) in results {
            let seq = seq.map_err(|e| {
                metrics::cluster_error("jetstream");
                SeamError::Unavailable(e)
            })?;
            stored += 1;
            match self.state.owner(&instance, &client) {
                Some(o) if o.online && o.node == self.link.node => self.deliver_here(&instance, &client, seq, out),
                Some(o) if o.online => {
                    let headers = wire::node_headers(Op::Inbox, &instance, &client, Some(seq));
                    self.funnel
                        .core(self.link.names.node(&o.node), headers, wire::encode_delivery(&out));
                }
                _ => {}
            }
        }
        Ok(stored)
    }

    /// Refreshes the per-instance message counts (for metrics and the heartbeat).
    pub async fn refresh_counts(&self) {
        let streams: Vec<(String, stream::Stream)> = {
            let streams = self.streams.lock().await;
            streams.iter().map(|(i, (s, _))| (i.clone(), s.clone())).collect()
        };
        for (instance, mut s) in streams {
            if let Ok(info) = s.info().await {
                let n = info.state.messages;
                self.counts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(instance, n);
            }
        }
    }
}
