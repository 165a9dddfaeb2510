//! Offline queues of persistent sessions in a cluster: one JetStream stream per instance (replicated,
//! with the instance's offline limits: count, bytes, age, oldest dropped first), one subject per
//! client. A QoS 1/2 message for a persistent session is appended to its subject and acknowledged to
//! the publisher only once JetStream has it; the node that holds the session online is also sent
//! the message with its stream sequence, so delivery does not wait for a read. A session that opens
//! (or a node whose NATS connection came back) reads its subject from where it stands; what the
//! client acknowledges is purged from the subject, and the position is kept in the session's record.
//!
//! Notices from one broker arrive in stream order, but those of two brokers may cross: a message
//! with a lower sequence can arrive after a higher one was delivered and acknowledged. So a notice
//! is never refused for arriving late, and acknowledged messages are purged only once they are
//! `SETTLE_LAG` old, by when every notice for a lower sequence has arrived.
//!
//! Why it is long (about 530 lines before its tests): the per-session delivery state (primed,
//! buffered, unacknowledged, settling) and the stream operations that change it must be read together
//! to see why nothing is lost or delivered twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_nats::jetstream::context::Publish;
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{self, DirectGetErrorKind, RawMessageErrorKind};
use futures_util::future::join_all;

use super::funnel::{Funnel, StreamAck};
use super::link::{InboxLimits, Link};
use super::recent::{Notice, RecentNotices};
use super::sessions::ClusterSessions;
use super::state::ClusterState;
use super::subject::key_token;
use super::wire::{self, ItemKind};
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

/// How long an acknowledged message stays in the stream (and in memory, to recognise a late copy):
/// longer than a notice from another broker can take to arrive.
const SETTLE_LAG: Duration = Duration::from_secs(2);

/// One persistent session's delivery state on the node that holds it.
#[derive(Default)]
struct Session {
    /// Everything in its subject after `purged` is in `buffer`, `unacked` or `acked` (no read needed).
    primed: bool,
    /// Arrived, not handed to the connection yet.
    buffer: BTreeMap<u64, Outbound>,
    /// Handed to the connection and not acknowledged yet.
    unacked: BTreeSet<u64>,
    /// Acknowledged (when), not purged yet.
    acked: BTreeMap<u64, Instant>,
    /// Everything up to here is purged from the stream (and recorded).
    purged: u64,
    /// The connection messages were last handed to.
    conn: Option<u64>,
}

impl Session {
    /// Whether `seq` is news: not purged, handed or waiting already.
    fn is_new(&self, seq: u64) -> bool {
        seq > self.purged
            && !self.unacked.contains(&seq)
            && !self.acked.contains_key(&seq)
            && !self.buffer.contains_key(&seq)
    }

    /// How far the subject may be purged: the acknowledged messages, lowest first, that are older
    /// than `SETTLE_LAG`, up to the first message not acknowledged.
    fn purgeable(&self, now: Instant) -> Option<u64> {
        let bound = [self.unacked.first(), self.buffer.keys().next()]
            .into_iter()
            .flatten()
            .min()
            .copied()
            .unwrap_or(u64::MAX);
        self.acked
            .iter()
            .take_while(|(seq, at)| **seq < bound && now.duration_since(**at) >= SETTLE_LAG)
            .last()
            .map(|(seq, _)| *seq)
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
    /// Notices sent to other brokers lately, sent again after a reconnect.
    recent: Mutex<RecentNotices>,
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
            recent: Mutex::new(RecentNotices::default()),
        });
        let _ = inbox.me.set(Arc::downgrade(&inbox));
        inbox
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<Key, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A session's state here, new ones starting after what the cluster records as acknowledged.
    fn session<'s>(&self, sessions: &'s mut HashMap<Key, Session>, instance: &str, client: &str) -> &'s mut Session {
        sessions
            .entry((instance.to_string(), client.to_string()))
            .or_insert_with(|| Session {
                purged: self.state.owner(instance, client).map_or(0, |o| o.acked),
                ..Session::default()
            })
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
            let found = self.link.existing_inbox(instance).await.map_err(unavailable)?;
            // Kept with the limits it has, so that sessions of the instance opening together do
            // not each ask JetStream for it (a reconnect storm would flood its API).
            if let Some(s) = &found {
                let config = &s.cached_info().config;
                let have = InboxLimits {
                    max_messages: u64::try_from(config.max_messages).unwrap_or(u64::MAX),
                    retention_secs: config.max_age.as_secs(),
                };
                streams.insert(instance.to_string(), (s.clone(), have));
            }
            return Ok(found);
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
            let s = self.session(&mut sessions, instance, client);
            if s.is_new(seq) {
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

    /// Sends the notices of the last seconds again (after the NATS connection came back): one that
    /// was still in the lost connection's buffer would otherwise leave a stored message unannounced
    /// to an online session until it reconnects. Holders drop sequences they have delivered.
    pub fn resend_recent_notices(&self) {
        let notices = self
            .recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .recent(Instant::now());
        if !notices.is_empty() {
            tracing::info!(
                notices = notices.len(),
                "inbox notices sent again after the NATS connection came back"
            );
        }
        for n in notices {
            self.funnel.item(n.subject, n.item);
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

    /// Up to `limit` messages of a client's subject from `from` on, leaving out those `known`.
    async fn read_subject(
        &self,
        instance: &str,
        client: &str,
        from: u64,
        limit: usize,
        known: &BTreeSet<u64>,
    ) -> SeamResult<(Vec<(u64, Outbound)>, bool)> {
        let Some(stream) = self.stream(instance, None).await? else {
            return Ok((Vec::new(), true));
        };
        let subject = self.link.names.inbox_subject(instance, client);
        let mut out = Vec::new();
        let mut next = from;
        while out.len() < limit {
            match self.next_message(&stream, &subject, next).await? {
                Some(m) => {
                    next = m.sequence + 1;
                    if known.contains(&m.sequence) {
                        continue;
                    }
                    match wire::decode_delivery(&m.payload) {
                        Some(d) => out.push((m.sequence, d)),
                        None => metrics::cluster_error("undecodable"),
                    }
                }
                None => return Ok((out, true)),
            }
        }
        Ok((out, false))
    }

    /// The first message of `subject` at or after `from`. Read with a direct get, which any replica
    /// answers (cheap, spread over the nodes); "none" is confirmed by the stream leader, because a
    /// replica that has not yet applied the newest messages also answers "none", and a session
    /// that took that for the end would purge past the messages it never read.
    async fn next_message(
        &self,
        stream: &stream::Stream,
        subject: &str,
        from: u64,
    ) -> SeamResult<Option<StreamMessage>> {
        match stream.direct_get_next_for_subject(subject, Some(from)).await {
            Ok(m) => return StreamMessage::try_from(m.message).map(Some).map_err(unavailable),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => {}
            Err(e) => return Err(unavailable(e)),
        }
        match stream.get_first_raw_message_by_subject(subject, from).await {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Hands out what arrived for the session, lowest sequence first, reading its subject first when
    /// notices may have been missed. The connection's cursor is not used: a late notice may bring a
    /// lower sequence than one handed out before, and each message is handed out once per
    /// connection.
    async fn fetch_clustered(&self, instance: String, client: String, limit: usize) -> SeamResult<Vec<Queued>> {
        let key = (instance.clone(), client.clone());
        let conn = self.local.live(&instance, &client).map(|c| c.conn_id);
        let read = {
            let mut sessions = self.sessions();
            if !sessions.contains_key(&key)
                && let Some(me) = self.me.get().and_then(|w| w.upgrade())
            {
                // A publisher that has not seen this node claim the session yet may still tell its
                // previous holder: look again once that can no longer be.
                me.reread_later(&instance, &client, Duration::from_secs(1));
            }
            let s = self.session(&mut sessions, &instance, &client);
            if conn.is_some() && s.conn != conn {
                // A new connection: the stream is read again and is the truth. What the last one
                // left unacknowledged is still there and is handed out again; while no connection
                // was here, publishers told nobody of what they stored; and what was kept in memory
                // meanwhile may have been dropped from the stream by the limits, or delivered and
                // purged while the session lived on another broker.
                s.conn = conn;
                s.unacked.clear();
                s.buffer.clear();
                s.primed = false;
                if let Some(o) = self.state.owner(&instance, &client)
                    && o.acked > s.purged
                {
                    s.purged = o.acked;
                    s.acked = s.acked.split_off(&(o.acked + 1));
                }
            }
            (!s.primed).then(|| {
                let known: BTreeSet<u64> = s
                    .unacked
                    .iter()
                    .chain(s.acked.keys())
                    .chain(s.buffer.keys())
                    .copied()
                    .collect();
                (s.purged + 1, known)
            })
        };
        if let Some((from, known)) = read {
            let (read, complete) = self
                .read_subject(&instance, &client, from, limit.max(BUFFER / 4), &known)
                .await?;
            let mut sessions = self.sessions();
            let s = sessions.entry(key.clone()).or_default();
            for (seq, out) in read {
                if s.is_new(seq) {
                    s.buffer.insert(seq, out);
                }
            }
            s.primed = complete;
        }
        let mut sessions = self.sessions();
        let s = sessions.entry(key).or_default();
        let seqs: Vec<u64> = s.buffer.keys().take(limit).copied().collect();
        let mut batch = Vec::with_capacity(seqs.len());
        for seq in seqs {
            if let Some(out) = s.buffer.remove(&seq) {
                s.unacked.insert(seq);
                batch.push(Queued { seq, out });
            }
        }
        Ok(batch)
    }

    /// Purges what sessions acknowledged and writes their positions back, every `PURGE_EVERY`. A
    /// session that is reading its subject again (it may have missed notices) waits until it has.
    pub async fn run_purges(self: Arc<Self>) {
        loop {
            tokio::time::sleep(PURGE_EVERY).await;
            let now = Instant::now();
            let due: Vec<(Key, u64, u64)> = {
                let mut sessions = self.sessions();
                sessions
                    .iter_mut()
                    .filter(|(_, s)| s.primed)
                    .filter_map(|(k, s)| {
                        let floor = s.purgeable(now)?;
                        let before = s.purged;
                        s.purged = floor;
                        s.acked = s.acked.split_off(&(floor + 1));
                        Some((k.clone(), before, floor))
                    })
                    .collect()
            };
            for ((instance, client), before, floor) in due {
                if let Err(e) = self.purge_up_to(&instance, &client, floor).await {
                    tracing::debug!(error = %e, "inbox purge failed; read again and retried later");
                    // What was acknowledged is read again and recognised as such: the client may
                    // get those messages once more, which QoS 1 allows.
                    if let Some(s) = self.sessions().get_mut(&(instance, client)) {
                        s.purged = before;
                        s.primed = false;
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
        if !self.link.is_up() {
            // Refused at once: the publisher is not acknowledged, and does not wait for a timeout.
            return done(Err(unavailable(
                "NATS unreachable: cannot store for persistent sessions",
            )));
        }
        let limits = InboxLimits {
            max_messages: limits.max_messages,
            retention_secs: limits.retention_secs,
        };
        let ready = self.ready.lock().unwrap_or_else(|p| p.into_inner()).get(inst) == Some(&limits);
        let (instance, msg, entries) = (inst.to_string(), Arc::new(msg.clone()), entries.to_vec());
        if ready {
            // Submitted now, in routing order; resolved once JetStream has every copy.
            let acks = self.submit(&instance, &msg, &entries);
            return Seam::later(self.settle(acks));
        }
        // The instance's first message (or new limits): the stream comes first.
        Seam::later(async move {
            self.stream(&instance, Some(limits)).await?;
            let acks = self.submit(&instance, &msg, &entries);
            self.settle(acks).await
        })
    }

    fn fetch(
        &self,
        inst: &str,
        client: &str,
        _after: u64,
        limit: usize,
        _max_age_ms: u64,
    ) -> Seam<'_, SeamResult<Vec<Queued>>> {
        Seam::later(self.fetch_clustered(inst.to_string(), client.to_string(), limit))
    }

    fn ack(&self, inst: &str, client: &str, seq: u64) -> Seam<'_, SeamResult<()>> {
        if let Some(s) = self.sessions().get_mut(&(inst.to_string(), client.to_string()))
            && s.unacked.remove(&seq)
        {
            s.acked.insert(seq, Instant::now());
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
    /// Appends one copy per entry to the instance's stream, in order; once JetStream has a copy,
    /// the node that holds that session online is told (in stream order, by the funnel).
    fn submit(&self, instance: &str, msg: &Arc<Message>, entries: &[QueueEntry]) -> Vec<StreamAck> {
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
                let me = self.me.get().cloned().unwrap_or_default();
                let (inst, client) = (instance.to_string(), e.client_id.clone());
                let tell = move |seq: u64| {
                    if let Some(me) = me.upgrade() {
                        me.tell_holder(&inst, &client, seq, out);
                    }
                };
                self.funnel.stream(
                    self.link.names.inbox_subject(instance, &e.client_id),
                    publish,
                    Some(Box::new(tell)),
                )
            })
            .collect()
    }

    /// A copy for a session is stored: the node that holds it online gets it with its sequence.
    fn tell_holder(&self, instance: &str, client: &str, seq: u64, out: Outbound) {
        match self.state.owner(instance, client) {
            Some(o) if o.online && o.node == self.link.node => self.deliver_here(instance, client, seq, out),
            Some(o) if o.online => {
                let notice = Notice {
                    subject: self.link.names.node(&o.node),
                    item: wire::encode_item(ItemKind::Inbox, instance, client, seq, &out),
                };
                self.funnel.item(notice.subject.clone(), notice.item.clone());
                self.recent
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .record(Instant::now(), notice);
            }
            _ => {}
        }
    }

    /// Waits until JetStream has every copy: how many it stored, or the first failure.
    async fn settle(&self, acks: Vec<StreamAck>) -> SeamResult<usize> {
        let results = join_all(acks).await;
        let mut stored = 0;
        for res in results {
            res.map_err(|_| "NATS link closed".to_string())
                .and_then(|r| r)
                .map_err(SeamError::Unavailable)?;
            stored += 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_lower_sequence_is_news_and_holds_the_purge_back() {
        let mut s = Session {
            purged: 10,
            ..Session::default()
        };
        let long_ago = Instant::now() - SETTLE_LAG * 2;
        // 12 arrived first (another broker's notice was faster), was handed out and acknowledged.
        s.acked.insert(12, long_ago);
        assert!(s.is_new(11), "11 arriving after 12 is still delivered");
        assert!(!s.is_new(12) && !s.is_new(10) && !s.is_new(3));
        assert_eq!(s.purgeable(Instant::now()), Some(12));
        // While 11 waits (or is in flight), nothing at or above it is purged.
        s.buffer.insert(11, dummy());
        assert_eq!(s.purgeable(Instant::now()), None);
        s.buffer.clear();
        s.unacked.insert(11);
        assert_eq!(s.purgeable(Instant::now()), None);
        s.unacked.clear();
        // A fresh acknowledgement waits for SETTLE_LAG; older ones below it may go.
        s.acked.insert(11, long_ago);
        s.acked.insert(13, Instant::now());
        assert_eq!(s.purgeable(Instant::now()), Some(12));
    }

    fn dummy() -> Outbound {
        Outbound {
            msg: Arc::new(Message::new(
                "T/x",
                Default::default(),
                common::qos::QoS::AtLeastOnce,
                false,
            )),
            qos: common::qos::QoS::AtLeastOnce,
            retain: false,
            sub_ids: Vec::new(),
        }
    }
}
