//! The node-wide broker core (Send + Sync, shared by all workers): session registry with takeover,
//! the subscription index, retained messages, per-instance quotas, and fan-out of one publish to
//! in-memory connection queues or the offline store. Connections live on worker threads and only
//! hear from this through their mailboxes.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::topic;
use ntex_bytes::Bytes;

use crate::conn::ConnectInfo;
use crate::directory::{Directories, Instance};
use crate::events::Events;
use crate::mailbox::{Mailbox, Refused};
use crate::rate::RateLimiter;
use crate::router::{Sub, SubscriptionIndex, SubscriptionRouter, Target};
use crate::store::{PersistedSession, SessionStore, StoredMsg, now_ms};

/// An application message on its way to subscribers.
#[derive(Debug)]
pub struct Msg {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
}

/// In-memory delivery into a connection (QoS 0, and QoS 1/2 of clean sessions).
pub struct Outbound {
    pub msg: Arc<Msg>,
    pub qos: u8,
}

/// Out-of-band instructions to a connection.
#[derive(Debug)]
pub enum Ctl {
    /// Another connection took over the client ID *(compat: "clientId conflict")*.
    TakenOver,
    /// A broker-originated `$SYS/...` message (no subscription needed).
    Sys(Box<SysMsg>),
    /// Closed by the control plane (CloseConnection, "kick").
    Close,
}

#[derive(Debug)]
pub struct SysMsg {
    pub topic: String,
    pub payload: String,
}

/// How the broker reaches one live connection.
#[derive(Clone)]
pub struct ConnHandle {
    pub conn_id: u64,
    /// Messages and signals for the connection; waking it also says a persistent session's stored
    /// queue grew.
    pub mailbox: Arc<Mailbox>,
}

struct SessionEntry {
    persistent: bool,
    /// Raw filter (incl. `$share/...`) -> granted QoS.
    subs: BTreeMap<String, u8>,
    conn: Option<ConnHandle>,
    /// Seconds a persistent session outlives its connection (MQTT 5 session expiry interval);
    /// None: until a clean start (MQTT 3.1.1 cleanSession=false).
    expiry_secs: Option<u32>,
    /// When its last connection closed (unix ms).
    gone_at_ms: Option<u64>,
}

impl SessionEntry {
    fn expired(&self, now: u64) -> bool {
        match (self.conn.is_none(), self.expiry_secs, self.gone_at_ms) {
            (true, Some(secs), Some(at)) => at.saturating_add(u64::from(secs) * 1000) <= now,
            _ => false,
        }
    }
}

struct State {
    index: Box<dyn SubscriptionRouter>,
    sessions: HashMap<(String, String), SessionEntry>,
    retained: HashMap<String, BTreeMap<String, Arc<Msg>>>,
    connections: HashMap<String, u32>,
    /// Unacknowledged (stored sequence -> packet id) of persistent sessions between connections.
    parked: HashMap<(String, String), BTreeMap<u64, u16>>,
    /// Will messages waiting for their delay, by client: the id of the connection that left it.
    deferred_wills: HashMap<(String, String), u64>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            index: Box::new(SubscriptionIndex::default()),
            sessions: HashMap::new(),
            retained: HashMap::new(),
            connections: HashMap::new(),
            parked: HashMap::new(),
            deferred_wills: HashMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Concurrent connection quota of the instance.
    QuotaExceeded,
    /// The instance rejects a second connection with a live client ID.
    Duplicate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubError {
    TooManySubscriptions,
    TooManyWildcards,
}

pub struct Broker {
    pub dirs: Directories,
    pub store: Arc<dyn SessionStore>,
    pub events: Events,
    pub max_inflight: u16,
    /// Capacity of an online client's in-memory queue (beyond it, messages are dropped and counted).
    pub max_queued: usize,
    state: Mutex<State>,
    next_conn_id: AtomicU64,
    rates: RateLimiter,
}

impl Broker {
    pub fn new(dirs: Directories, store: Arc<dyn SessionStore>, max_inflight: u16, max_queued: usize) -> Self {
        Self {
            dirs,
            store,
            events: Events::default(),
            max_inflight,
            max_queued: max_queued.max(1),
            state: Mutex::new(State::default()),
            next_conn_id: AtomicU64::new(1),
            rates: RateLimiter::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the broker down with a poisoned lock.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Re-creates persistent sessions (offline) with their subscriptions, and retained messages,
    /// from the store. Returns the number of sessions.
    pub fn restore(&self) -> anyhow::Result<usize> {
        let sessions = self.store.load_sessions()?;
        let retained = self.store.load_retained()?;
        let mut st = self.state();
        for (inst, kept) in retained {
            let msg = Msg {
                topic: kept.topic,
                payload: Bytes::from(kept.payload),
                retain: true,
            };
            st.retained
                .entry(inst)
                .or_default()
                .insert(msg.topic.clone(), Arc::new(msg));
        }
        let n = sessions.len();
        for (inst, client, persisted) in sessions {
            let mut entry = SessionEntry {
                persistent: true,
                subs: BTreeMap::new(),
                conn: None,
                expiry_secs: persisted.expiry_secs,
                // Connected when the broker stopped: its connection is gone as of now.
                gone_at_ms: persisted.gone_at_ms.or(Some(now_ms())),
            };
            for (raw, qos) in persisted.subs {
                if let Ok(parsed) = topic::parse_subscription(&raw) {
                    st.index
                        .insert(&inst, sub_of(&client, parsed.filter, parsed.share_group, qos, false));
                    entry.subs.insert(raw, qos);
                }
            }
            st.sessions.insert((inst, client), entry);
        }
        metrics::gauge!("broker_subscriptions").set(st.index.len() as f64);
        Ok(n)
    }

    /// Registers a connection for a client ID: resumes its unexpired persistent session unless the
    /// connection starts clean; a persistent session lasts `session_expiry_secs` after its connection
    /// closes (None: until a clean start). Returns `session_present`.
    pub fn open_session(
        &self,
        inst: &Instance,
        client_id: &str,
        connect: &ConnectInfo,
        handle: ConnHandle,
    ) -> Result<bool, OpenError> {
        let (clean_start, persistent) = (connect.clean_start, connect.persistent);
        let mut st = self.state();
        let key = (inst.id.clone(), client_id.to_string());
        let live_old = st.sessions.get(&key).and_then(|e| e.conn.clone());
        if live_old.is_some() && inst.reject_duplicate_client_id {
            return Err(OpenError::Duplicate);
        }
        let count = st.connections.get(&inst.id).copied().unwrap_or(0);
        let replacing = u32::from(live_old.is_some());
        if count.saturating_sub(replacing) >= inst.quotas.max_connections {
            return Err(OpenError::QuotaExceeded);
        }
        *st.connections.entry(inst.id.clone()).or_default() += 1;
        // A new connection within a will's delay cancels it (MQTT 5, 3.1.3.2.2).
        st.deferred_wills.remove(&key);
        if let Some(old) = live_old {
            old.mailbox.signal(Ctl::TakenOver);
        }
        let present = st
            .sessions
            .get(&key)
            .is_some_and(|e| e.persistent && !e.expired(now_ms()))
            && !clean_start;
        if !present {
            // A clean start discards whatever the previous session had.
            if let Some(old) = st.sessions.remove(&key) {
                unindex(st.index.as_mut(), &inst.id, client_id, &old.subs);
                if old.persistent
                    && let Err(e) = self.store.delete_session(&inst.id, client_id)
                {
                    tracing::error!(error = %e, "cannot delete old session");
                }
            }
            st.parked.remove(&key);
        }
        let entry = st.sessions.entry(key).or_insert_with(|| SessionEntry {
            persistent,
            subs: BTreeMap::new(),
            conn: None,
            expiry_secs: None,
            gone_at_ms: None,
        });
        entry.persistent = persistent;
        entry.conn = Some(handle);
        entry.expiry_secs = connect.session_expiry_secs;
        entry.gone_at_ms = None;
        if persistent && let Err(e) = self.persist_session(&inst.id, client_id, entry) {
            tracing::error!(error = %e, "cannot persist session");
        }
        metrics::gauge!("broker_subscriptions").set(st.index.len() as f64);
        Ok(present)
    }

    fn persist_session(&self, inst: &str, client_id: &str, entry: &SessionEntry) -> anyhow::Result<()> {
        let persisted = PersistedSession {
            subs: entry.subs.iter().map(|(f, q)| (f.clone(), *q)).collect(),
            expiry_secs: entry.expiry_secs,
            gone_at_ms: entry.gone_at_ms,
        };
        self.store.save_session(inst, client_id, &persisted)?;
        self.store.flush()?;
        Ok(())
    }

    /// The connection `conn_id` is gone; a clean session disappears with it.
    pub fn close_session(&self, inst_id: &str, client_id: &str, conn_id: u64) {
        let mut st = self.state();
        if let Some(c) = st.connections.get_mut(inst_id) {
            *c = c.saturating_sub(1);
        }
        let key = (inst_id.to_string(), client_id.to_string());
        let Some(entry) = st.sessions.get_mut(&key) else { return };
        if entry.conn.as_ref().is_none_or(|c| c.conn_id != conn_id) {
            return; // taken over: the session belongs to the newer connection now
        }
        entry.conn = None;
        if entry.persistent {
            // The expiry counts from now; a restart must still know when the connection went.
            entry.gone_at_ms = Some(now_ms());
            if entry.expiry_secs.is_some()
                && let Err(e) = self.persist_session(inst_id, client_id, entry)
            {
                tracing::error!(error = %e, "cannot persist session");
            }
        } else if let Some(old) = st.sessions.remove(&key) {
            unindex(st.index.as_mut(), inst_id, client_id, &old.subs);
        }
        metrics::gauge!("broker_subscriptions").set(st.index.len() as f64);
    }

    /// Registers the will of connection `conn_id`, which waits for its delay.
    pub fn defer_will(&self, inst_id: &str, client_id: &str, conn_id: u64) {
        self.state()
            .deferred_wills
            .insert((inst_id.to_string(), client_id.to_string()), conn_id);
    }

    /// True (once) when the will of connection `conn_id` is still due: no new connection came.
    pub fn take_deferred_will(&self, inst_id: &str, client_id: &str, conn_id: u64) -> bool {
        let mut st = self.state();
        let key = (inst_id.to_string(), client_id.to_string());
        if st.deferred_wills.get(&key) == Some(&conn_id) {
            st.deferred_wills.remove(&key);
            true
        } else {
            false
        }
    }

    /// Removes persistent sessions whose expiry interval has passed since their connection closed,
    /// with their subscriptions and stored messages. Returns how many.
    pub fn expire_sessions(&self) -> usize {
        let now = now_ms();
        let mut st = self.state();
        let expired: Vec<(String, String)> = st
            .sessions
            .iter()
            .filter(|(_, e)| e.persistent && e.expired(now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in &expired {
            if let Some(old) = st.sessions.remove(key) {
                unindex(st.index.as_mut(), &key.0, &key.1, &old.subs);
            }
            st.parked.remove(key);
            if let Err(e) = self.store.delete_session(&key.0, &key.1) {
                tracing::error!(error = %e, "cannot delete expired session");
            }
        }
        if !expired.is_empty() {
            tracing::info!(sessions = expired.len(), "expired persistent sessions removed");
            metrics::counter!("broker_sessions_expired_total").increment(expired.len() as u64);
            metrics::gauge!("broker_subscriptions").set(st.index.len() as f64);
        }
        expired.len()
    }

    pub fn connections(&self, inst_id: &str) -> u32 {
        self.state().connections.get(inst_id).copied().unwrap_or(0)
    }

    /// Live connections of one client on this node (0 or 1: a newer connection takes over).
    pub fn live_connections(&self, inst_id: &str, client_id: &str) -> usize {
        let key = (inst_id.to_string(), client_id.to_string());
        self.state()
            .sessions
            .get(&key)
            .map_or(0, |e| usize::from(e.conn.is_some()))
    }

    /// Asks the client's live connection to close (control-plane kick); returns how many were asked.
    pub fn close_client(&self, inst_id: &str, client_id: &str) -> usize {
        let key = (inst_id.to_string(), client_id.to_string());
        let st = self.state();
        let conn = st.sessions.get(&key).and_then(|e| e.conn.as_ref());
        conn.map_or(0, |c| usize::from(c.mailbox.signal(Ctl::Close)))
    }

    /// Node totals for the control-plane heartbeat: live connections and subscriptions.
    pub fn totals(&self) -> (u64, u64) {
        let st = self.state();
        let connections = st.connections.values().map(|&n| u64::from(n)).sum();
        (connections, st.index.len() as u64)
    }

    /// Keeps the packet ids of a closing persistent connection's unacknowledged stored messages.
    pub fn park_inflight(&self, inst_id: &str, client_id: &str, unacked: BTreeMap<u64, u16>) {
        let mut st = self.state();
        let key = (inst_id.to_string(), client_id.to_string());
        if st.sessions.get(&key).is_some_and(|e| e.persistent) {
            st.parked.entry(key).or_default().extend(unacked);
        }
    }

    pub fn take_inflight(&self, inst_id: &str, client_id: &str) -> BTreeMap<u64, u16> {
        let key = (inst_id.to_string(), client_id.to_string());
        self.state().parked.remove(&key).unwrap_or_default()
    }

    /// Adds a subscription after the quota checks; returns the retained messages it matches.
    pub fn subscribe(
        &self,
        inst: &Instance,
        client_id: &str,
        raw: &str,
        qos: u8,
        no_local: bool,
    ) -> Result<Vec<Arc<Msg>>, SubError> {
        let Ok(parsed) = topic::parse_subscription(raw) else {
            return Ok(Vec::new());
        };
        let mut st = self.state();
        let key = (inst.id.clone(), client_id.to_string());
        let (known, count) = st
            .sessions
            .get(&key)
            .map_or((false, 0), |e| (e.subs.contains_key(raw), e.subs.len()));
        if !known && count >= inst.quotas.max_subscriptions_per_client as usize {
            return Err(SubError::TooManySubscriptions);
        }
        let parent = topic::parent_of(parsed.filter);
        if !known
            && topic::is_wildcard(parsed.filter)
            && st.index.wildcard_count(&inst.id, parent)
                >= inst.quotas.max_wildcard_subscriptions_per_parent_topic as usize
        {
            return Err(SubError::TooManyWildcards);
        }
        st.index.insert(
            &inst.id,
            sub_of(client_id, parsed.filter, parsed.share_group, qos, no_local),
        );
        if let Some(entry) = st.sessions.get_mut(&key) {
            entry.subs.insert(raw.to_string(), qos);
            if entry.persistent
                && let Err(e) = self.persist_session(&inst.id, client_id, entry)
            {
                tracing::error!(error = %e, "cannot persist subscription");
            }
        }
        metrics::gauge!("broker_subscriptions").set(st.index.len() as f64);
        if parsed.share_group.is_some() {
            return Ok(Vec::new());
        }
        Ok(st
            .retained
            .get(&inst.id)
            .map(|r| {
                r.iter()
                    .filter(|(t, _)| topic::matches(parsed.filter, t))
                    .map(|(_, m)| m.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    pub fn unsubscribe(&self, inst_id: &str, client_id: &str, raw: &str) {
        let Ok(parsed) = topic::parse_subscription(raw) else {
            return;
        };
        let mut st = self.state();
        st.index.remove(inst_id, client_id, parsed.filter, parsed.share_group);
        let key = (inst_id.to_string(), client_id.to_string());
        if let Some(entry) = st.sessions.get_mut(&key)
            && entry.subs.remove(raw).is_some()
            && entry.persistent
            && let Err(e) = self.persist_session(inst_id, client_id, entry)
        {
            tracing::error!(error = %e, "cannot persist unsubscribe");
        }
        metrics::gauge!("broker_subscriptions").set(st.index.len() as f64);
    }

    /// Per-instance messages-per-second limit (in + out): how long the publisher must wait first.
    pub fn throttle(&self, inst: &Instance, messages: u32) -> Duration {
        self.rates
            .acquire(&inst.id, inst.quotas.max_messages_per_second, messages)
    }

    /// Routes one publish. Returns the number of deliveries (in-memory sends + stored).
    pub fn publish(&self, inst: &Instance, publisher: &str, msg: Msg, qos: u8) -> usize {
        // Established subscriptions get RETAIN 0; only deliveries on SUBSCRIBE carry it (MQTT 3.3.1.3).
        let retain = msg.retain;
        let msg = Arc::new(Msg { retain: false, ..msg });
        let mut memory: Vec<(ConnHandle, u8)> = Vec::new();
        let mut stored: Vec<(String, u8, Option<Arc<Mailbox>>)> = Vec::new();
        let mut persist = false;
        {
            let mut st = self.state();
            if retain {
                // Under the state lock, so that the store keeps the same last message as memory.
                // The payload is copied (once, for both): it may be a slice of a connection's read
                // buffer, which a long-lived retained message would otherwise keep alive whole.
                let record = StoredMsg {
                    topic: msg.topic.clone(),
                    payload: msg.payload.to_vec(),
                    qos,
                    retain: true,
                };
                match self.store.set_retained(&inst.id, &record) {
                    Ok(()) => persist = true,
                    Err(e) => tracing::error!(error = %e, "cannot store retained message"),
                }
                let retained = st.retained.entry(inst.id.clone()).or_default();
                if record.payload.is_empty() {
                    retained.remove(&record.topic);
                } else {
                    let kept = Msg {
                        topic: record.topic,
                        payload: Bytes::from(record.payload),
                        retain: true,
                    };
                    retained.insert(kept.topic.clone(), Arc::new(kept));
                }
            }
            let targets = match topic::p2p_target(&msg.topic) {
                Some(target) => vec![Target {
                    client_id: target.to_string(),
                    qos: 2,
                }],
                None => {
                    let State { index, sessions, .. } = &mut *st;
                    let online = |c: &str| {
                        sessions
                            .get(&(inst.id.clone(), c.to_string()))
                            .is_some_and(|e| e.conn.is_some())
                    };
                    index.route(&inst.id, &msg.topic, publisher, &online)
                }
            };
            for t in targets {
                let Some(entry) = st.sessions.get(&(inst.id.clone(), t.client_id.clone())) else {
                    continue;
                };
                let q = qos.min(t.qos);
                if entry.persistent && q > 0 {
                    stored.push((t.client_id, q, entry.conn.as_ref().map(|c| c.mailbox.clone())));
                } else if let Some(conn) = &entry.conn {
                    memory.push((conn.clone(), q));
                }
            }
        }
        let mut delivered = 0;
        for (conn, q) in memory {
            match conn.mailbox.push(Outbound {
                msg: msg.clone(),
                qos: q,
            }) {
                Ok(()) => delivered += 1,
                Err(Refused::Full) => metrics::counter!("broker_dropped_total", "reason" => "queue_full").increment(1),
                // The connection is closing: not a drop of a live client's message.
                Err(Refused::Closed) => {}
            }
        }
        if !stored.is_empty() {
            let record = StoredMsg {
                topic: msg.topic.clone(),
                payload: msg.payload.to_vec(),
                qos: 0,
                retain: false,
            };
            for (client, q, _) in &stored {
                let rec = StoredMsg {
                    qos: *q,
                    ..record.clone()
                };
                match self
                    .store
                    .enqueue(&inst.id, client, &rec, inst.quotas.max_offline_messages)
                {
                    Ok(_) => delivered += 1,
                    Err(e) => tracing::error!(error = %e, "cannot store message"),
                }
            }
            persist = true;
        }
        // Durable before the publisher's PUBACK (the caller acks after we return).
        if persist && let Err(e) = self.store.flush() {
            tracing::error!(error = %e, "cannot flush store");
        }
        for (_, _, mailbox) in stored {
            if let Some(m) = mailbox {
                m.wake();
            }
        }
        delivered
    }

    /// Sends a `$SYS` message to one live client, if connected.
    pub fn send_sys(&self, inst_id: &str, client_id: &str, topic: &str, payload: String) {
        let st = self.state();
        if let Some(conn) = st
            .sessions
            .get(&(inst_id.to_string(), client_id.to_string()))
            .and_then(|e| e.conn.as_ref())
        {
            conn.mailbox.signal(Ctl::Sys(Box::new(SysMsg {
                topic: topic.to_string(),
                payload,
            })));
        }
    }

    /// Periodic housekeeping: session expiry, retention of offline messages and the store-size gauge.
    pub fn sweep(&self) {
        self.expire_sessions();
        let dir = self.dirs.load();
        for inst in dir.instances.values() {
            let max_age = inst.quotas.offline_retention_secs.saturating_mul(1000);
            match self.store.expire(&inst.id, max_age) {
                Ok(n) if n > 0 => {
                    metrics::counter!("broker_offline_dropped_total", "reason" => "expired").increment(n);
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "offline message expiry failed"),
            }
        }
        let total: u64 = self.store.counts().values().sum();
        metrics::gauge!("broker_offline_messages").set(total as f64);
    }
}

/// Removes a session's subscriptions from the index (by its own list: no index-wide scan).
fn unindex(index: &mut dyn SubscriptionRouter, inst_id: &str, client_id: &str, subs: &BTreeMap<String, u8>) {
    for raw in subs.keys() {
        if let Ok(parsed) = topic::parse_subscription(raw) {
            index.remove(inst_id, client_id, parsed.filter, parsed.share_group);
        }
    }
}

fn sub_of(client_id: &str, filter: &str, share_group: Option<&str>, qos: u8, no_local: bool) -> Sub {
    Sub {
        client_id: client_id.to_string(),
        filter: filter.to_string(),
        share_group: share_group.map(str::to_string),
        qos,
        no_local,
    }
}
