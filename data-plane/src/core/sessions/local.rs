//! The embedded session registry: sessions in memory, sharded so that connections of different
//! clients do not queue behind one lock; persistent ones are written through `SessionRecords`
//! outside those locks.
//!
//! Why it is long (about 440 lines): registration, takeover and expiry share the shard locks and the
//! write-through to `SessionRecords`, and must be read together.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};

use ntex_bytes::ByteString;

use super::{Closed, ConnHandle, Expired, OpenError, OpenRequest, Opened, Recipient, SessionRegistry, SubscribeError};
use crate::FastHash;
use crate::core::mailbox::Ctl;
use crate::core::offline::{PersistedSession, PersistedSub, SessionRecords};
use crate::core::seam::{Seam, SeamResult, done};
use crate::core::subscriptions::SubOptions;

#[derive(Default)]
struct Session {
    persistent: bool,
    subs: Filters,
    conn: Option<ConnHandle>,
    expiry_secs: Option<u32>,
    /// When its last connection closed (unix ms).
    gone_at_ms: Option<u64>,
    /// Unacknowledged (stored sequence -> packet id) between connections.
    parked: BTreeMap<u64, u16>,
}

/// A session's subscriptions: raw filter (with any `$share/...` prefix) -> options, sorted by
/// filter. A sorted vector: a client holds a few (the quota is 30), and a `BTreeMap` allocates a
/// 368-byte node for the first of them (heaptrack, per idle subscribed connection).
#[derive(Default)]
struct Filters(Vec<(ByteString, SubOptions)>);

impl Filters {
    fn find(&self, raw: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(f, _)| f.as_str().cmp(raw))
    }

    fn contains_key(&self, raw: &str) -> bool {
        self.find(raw).is_ok()
    }

    fn insert(&mut self, raw: &str, opts: SubOptions) {
        match self.find(raw) {
            Ok(at) => self.0[at].1 = opts,
            Err(at) => {
                // Most sessions hold one filter: room for one, not the four a first push makes.
                if self.0.is_empty() {
                    self.0.reserve_exact(1);
                }
                self.0.insert(at, (ByteString::from(raw), opts))
            }
        }
    }

    fn remove(&mut self, raw: &str) -> Option<SubOptions> {
        let at = self.find(raw).ok()?;
        let (_, opts) = self.0.remove(at);
        if self.0.is_empty() {
            self.0 = Vec::new();
        }
        Some(opts)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &SubOptions)> {
        self.0.iter().map(|(f, o)| (f.as_str(), o))
    }

    fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(f, _)| f.as_str())
    }
}

impl FromIterator<(String, SubOptions)> for Filters {
    fn from_iter<I: IntoIterator<Item = (String, SubOptions)>>(iter: I) -> Self {
        let mut filters = Filters::default();
        for (raw, opts) in iter {
            filters.insert(&raw, opts);
        }
        filters
    }
}

impl Session {
    fn expired(&self, now: u64) -> bool {
        match (self.conn.is_none(), self.expiry_secs, self.gone_at_ms) {
            (true, Some(secs), Some(at)) => at.saturating_add(u64::from(secs) * 1000) <= now,
            _ => false,
        }
    }

    fn record(&self) -> PersistedSession {
        PersistedSession {
            subs: self.subs.iter().map(|(f, o)| PersistedSub::new(f, o)).collect(),
            expiry_secs: self.expiry_secs,
            gone_at_ms: self.gone_at_ms,
        }
    }

    fn sub_list(&self) -> Vec<(String, SubOptions)> {
        self.subs.iter().map(|(f, o)| (f.to_string(), *o)).collect()
    }
}

const SHARDS: usize = 16;
/// Persistence stripes: writers of one session are serialized, writers of others mostly are not.
const STRIPES: usize = 64;

type Shard = HashMap<String, HashMap<ByteString, Session, FastHash>, FastHash>;

pub struct LocalSessions {
    /// Picks a client's shard and write stripe.
    hasher: FastHash,
    shards: [Mutex<Shard>; SHARDS],
    /// Persistent sessions per instance (their quota is checked on every new one).
    persistent: Mutex<HashMap<String, usize>>,
    write_order: [Mutex<()>; STRIPES],
    records: Arc<dyn SessionRecords>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the broker down with a poisoned lock.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LocalSessions {
    pub fn new(records: Arc<dyn SessionRecords>) -> Self {
        Self {
            hasher: FastHash::default(),
            shards: std::array::from_fn(|_| Mutex::new(HashMap::default())),
            persistent: Mutex::new(HashMap::new()),
            write_order: std::array::from_fn(|_| Mutex::new(())),
            records,
        }
    }

    fn slot(&self, instance_id: &str, client_id: &str, n: usize) -> usize {
        (self.hasher.hash_one((instance_id, client_id)) % n as u64) as usize
    }

    fn shard(&self, instance_id: &str, client_id: &str) -> MutexGuard<'_, Shard> {
        lock(&self.shards[self.slot(instance_id, client_id, SHARDS)])
    }

    /// Runs `f` on the session, if there is one.
    fn with<R>(&self, instance_id: &str, client_id: &str, f: impl FnOnce(&mut Session) -> R) -> Option<R> {
        self.shard(instance_id, client_id)
            .get_mut(instance_id)
            .and_then(|clients| clients.get_mut(client_id))
            .map(f)
    }

    /// Writes the session's current state (or its absence) to the records. Writers of one session
    /// go one at a time and each writes what is current when it runs, so the last write always
    /// reflects the last change, whatever order the callers' changes were made in.
    fn persist(&self, instance_id: &str, client_id: &str) -> SeamResult<()> {
        let _order = lock(&self.write_order[self.slot(instance_id, client_id, STRIPES)]);
        let current = self.with(instance_id, client_id, |s| s.persistent.then(|| s.record()));
        match current.flatten() {
            Some(record) => self.records.save(instance_id, client_id, &record),
            None => self.records.delete(instance_id, client_id),
        }
    }

    fn persist_if(&self, needed: bool, instance_id: &str, client_id: &str) -> SeamResult<()> {
        if needed {
            self.persist(instance_id, client_id)
        } else {
            Ok(())
        }
    }

    /// Persistent sessions of the instance, and `delta` applied to that count.
    fn count_persistent(&self, instance_id: &str, delta: isize) -> usize {
        let mut counts = lock(&self.persistent);
        let n = counts.entry(instance_id.to_string()).or_default();
        *n = n.saturating_add_signed(delta);
        let now = *n;
        if now == 0 {
            counts.remove(instance_id);
        }
        now
    }

    /// Makes sure the node holds the persistent session a client resumes here after it lived on
    /// another node of a cluster: offline, with the subscriptions the cluster recorded (a session
    /// already here keeps what it has, its subscriptions replaced by the recorded ones).
    pub fn seed(&self, instance_id: &str, client_id: &str, subs: Vec<(String, SubOptions)>, expiry_secs: Option<u32>) {
        let mut shard = self.shard(instance_id, client_id);
        let clients = shard.entry(instance_id.to_string()).or_default();
        let session = clients.entry(ByteString::from(client_id)).or_default();
        if !session.persistent {
            session.persistent = true;
            drop(shard);
            self.count_persistent(instance_id, 1);
            shard = self.shard(instance_id, client_id);
        }
        if let Some(session) = shard.get_mut(instance_id).and_then(|c| c.get_mut(client_id)) {
            session.subs = subs.into_iter().collect();
            session.expiry_secs = expiry_secs;
            if session.conn.is_none() {
                session.gone_at_ms.get_or_insert(common::time::now_ms() as u64);
            }
        }
    }

    /// Drops the client's session from this node without touching any record (another node of
    /// the cluster owns it now); returns its subscriptions for the index.
    pub fn forget(&self, instance_id: &str, client_id: &str) -> Vec<(String, SubOptions)> {
        let mut shard = self.shard(instance_id, client_id);
        let Some(clients) = shard.get_mut(instance_id) else {
            return Vec::new();
        };
        let Some(old) = clients.remove(client_id) else {
            return Vec::new();
        };
        if clients.is_empty() {
            shard.remove(instance_id);
        }
        drop(shard);
        if old.persistent {
            self.count_persistent(instance_id, -1);
        }
        old.sub_list()
    }

    pub fn is_persistent(&self, instance_id: &str, client_id: &str) -> bool {
        self.with(instance_id, client_id, |s| s.persistent).unwrap_or(false)
    }

    /// The client's session as it stands here (persistent, online, its record), if this node has it.
    pub fn snapshot(&self, instance_id: &str, client_id: &str) -> Option<(bool, bool, PersistedSession)> {
        self.with(instance_id, client_id, |s| (s.persistent, s.conn.is_some(), s.record()))
    }

    /// The raw filters the client's session holds.
    pub fn subscriptions(&self, instance_id: &str, client_id: &str) -> Vec<String> {
        self.with(instance_id, client_id, |s| s.subs.keys().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Re-creates persistent sessions (offline) from their records; returns their subscriptions
    /// for the index.
    pub fn restore(
        &self,
        records: Vec<(String, String, PersistedSession)>,
        now_ms: u64,
    ) -> Vec<(String, String, String, SubOptions)> {
        let mut subs = Vec::new();
        for (inst, client, record) in records {
            let mut session = Session {
                persistent: true,
                expiry_secs: record.expiry_secs,
                // Connected when the broker stopped: its connection is gone as of now.
                gone_at_ms: record.gone_at_ms.or(Some(now_ms)),
                ..Session::default()
            };
            for sub in record.subs {
                let (raw, opts) = sub.into_parts();
                session.subs.insert(&raw, opts);
                subs.push((inst.clone(), client.clone(), raw, opts));
            }
            self.count_persistent(&inst, 1);
            self.shard(&inst, &client)
                .entry(inst.clone())
                .or_default()
                .insert(ByteString::from(client.as_str()), session);
        }
        subs
    }

    /// The live connection of a client, if any.
    pub fn live(&self, instance_id: &str, client_id: &str) -> Option<ConnHandle> {
        self.with(instance_id, client_id, |s| s.conn.clone()).flatten()
    }

    pub fn is_online(&self, instance_id: &str, client_id: &str) -> bool {
        self.with(instance_id, client_id, |s| s.conn.is_some()).unwrap_or(false)
    }

    /// How a message for the client is to be delivered, if it has a session.
    pub fn recipient(&self, instance_id: &str, client_id: &str) -> Option<Recipient> {
        self.with(instance_id, client_id, |s| Recipient {
            persistent: s.persistent,
            conn: s.conn.clone(),
        })
    }

    /// Sends a control signal to the client's live connection; true when there was one.
    pub fn signal(&self, instance_id: &str, client_id: &str, ctl: Ctl) -> bool {
        self.live(instance_id, client_id).is_some_and(|c| c.mailbox.signal(ctl))
    }

    /// Node totals: live connections and sessions.
    pub fn counts(&self) -> (u64, u64) {
        let (mut live, mut sessions) = (0, 0);
        for shard in &self.shards {
            for clients in lock(shard).values() {
                sessions += clients.len() as u64;
                live += clients.values().filter(|s| s.conn.is_some()).count() as u64;
            }
        }
        (live, sessions)
    }

    /// Live connections per instance.
    pub fn connections_by_instance(&self) -> Vec<(String, u64)> {
        self.per_instance(|s| u64::from(s.conn.is_some()))
    }

    /// Subscriptions per instance (of every session here, connected or not).
    pub fn subscriptions_by_instance(&self) -> Vec<(String, u64)> {
        self.per_instance(|s| s.subs.len() as u64)
    }

    fn per_instance(&self, count: impl Fn(&Session) -> u64) -> Vec<(String, u64)> {
        let mut totals: HashMap<String, u64> = HashMap::new();
        for shard in &self.shards {
            for (inst, clients) in lock(shard).iter() {
                *totals.entry(inst.clone()).or_default() += clients.values().map(&count).sum::<u64>();
            }
        }
        totals.into_iter().collect()
    }

    fn open_now(&self, req: OpenRequest<'_>, now_ms: u64) -> Result<Opened, OpenError> {
        let mut opened = Opened::default();
        {
            let mut shard = self.shard(req.instance_id, req.client_id);
            let clients = shard.entry(req.instance_id.to_string()).or_default();
            let existing = clients.get_mut(req.client_id);
            let live_old = existing.as_ref().and_then(|s| s.conn.clone());
            if live_old.is_some() && req.reject_duplicate {
                return Err(OpenError::Duplicate);
            }
            let old_persistent = existing.as_ref().is_some_and(|s| s.persistent);
            let resumable = existing.is_some_and(|s| s.persistent && !s.expired(now_ms)) && !req.clean_start;
            // A new persistent session must fit the instance's quota (one it replaces frees its place).
            let delta = isize::from(req.persistent) - isize::from(old_persistent);
            if !resumable && delta > 0 && self.count_persistent(req.instance_id, 0) >= req.max_persistent {
                return Err(OpenError::TooManySessions);
            }
            if !resumable {
                self.count_persistent(req.instance_id, delta);
            }
            if let Some(old) = live_old {
                old.mailbox.signal(Ctl::TakenOver);
            }
            if resumable {
                let s = clients.get_mut(req.client_id).expect("checked above");
                opened.present = true;
                opened.resumed = s.sub_list();
                opened.parked = std::mem::take(&mut s.parked);
            } else if let Some(old) = clients.remove(req.client_id) {
                // A clean start discards whatever the previous session had.
                opened.discarded = old.sub_list();
                opened.purge_queue = old.persistent;
            }
            let session = clients.entry(ByteString::from(req.client_id)).or_default();
            session.persistent = req.persistent;
            session.conn = Some(req.handle);
            session.expiry_secs = req.expiry_secs;
            session.gone_at_ms = None;
        }
        Ok(opened)
    }

    fn close_now(
        &self,
        instance_id: &str,
        client_id: &str,
        conn_id: u64,
        unacked: BTreeMap<u64, u16>,
    ) -> (Closed, bool) {
        let mut shard = self.shard(instance_id, client_id);
        let Some(clients) = shard.get_mut(instance_id) else {
            return (Closed::default(), false);
        };
        let Some(session) = clients.get_mut(client_id) else {
            return (Closed::default(), false);
        };
        if session.persistent {
            session.parked.extend(unacked);
        }
        if session.conn.as_ref().is_none_or(|c| c.conn_id != conn_id) {
            // Taken over: the session belongs to the newer connection now.
            return (Closed::default(), false);
        }
        session.conn = None;
        let mut closed = Closed {
            held: true,
            persistent: session.persistent,
            ..Closed::default()
        };
        if session.persistent {
            // The expiry counts from now; a restart must still know when the connection went.
            session.gone_at_ms = Some(common::time::now_ms() as u64);
            let write = session.expiry_secs.is_some();
            (closed, write)
        } else {
            if let Some(old) = clients.remove(client_id) {
                closed.discarded = old.sub_list();
            }
            if clients.is_empty() {
                shard.remove(instance_id);
            }
            (closed, false)
        }
    }
}

impl SessionRegistry for LocalSessions {
    fn open<'a>(&'a self, req: OpenRequest<'a>) -> Seam<'a, SeamResult<Result<Opened, OpenError>>> {
        let (inst, client, persistent) = (req.instance_id.to_string(), req.client_id.to_string(), req.persistent);
        let opened = match self.open_now(req, common::time::now_ms() as u64) {
            Ok(o) => o,
            Err(e) => return done(Ok(Err(e))),
        };
        let res = self.persist_if(persistent || opened.purge_queue, &inst, &client);
        done(res.map(|()| Ok(opened)))
    }

    fn close(
        &self,
        instance_id: &str,
        client_id: &str,
        conn_id: u64,
        unacked: BTreeMap<u64, u16>,
    ) -> Seam<'_, SeamResult<Closed>> {
        let (closed, write) = self.close_now(instance_id, client_id, conn_id, unacked);
        let res = self.persist_if(write, instance_id, client_id);
        done(res.map(|()| closed))
    }

    fn subscribe(
        &self,
        instance_id: &str,
        client_id: &str,
        raw: &str,
        opts: SubOptions,
        max: usize,
    ) -> Seam<'_, SeamResult<Result<bool, SubscribeError>>> {
        let outcome = self.with(instance_id, client_id, |s| {
            let new = !s.subs.contains_key(raw);
            if new && s.subs.len() >= max {
                return Err(SubscribeError::TooManySubscriptions);
            }
            s.subs.insert(raw, opts);
            Ok((new, s.persistent))
        });
        let (new, persistent) = match outcome {
            None => return done(Ok(Err(SubscribeError::NoSession))),
            Some(Err(e)) => return done(Ok(Err(e))),
            Some(Ok(v)) => v,
        };
        let res = self.persist_if(persistent, instance_id, client_id);
        done(res.map(|()| Ok(new)))
    }

    fn unsubscribe(&self, instance_id: &str, client_id: &str, raw: &str) -> Seam<'_, SeamResult<Option<SubOptions>>> {
        let outcome = self.with(instance_id, client_id, |s| (s.subs.remove(raw), s.persistent));
        let Some((Some(opts), persistent)) = outcome else {
            return done(Ok(None));
        };
        let res = self.persist_if(persistent, instance_id, client_id);
        done(res.map(|()| Some(opts)))
    }

    fn expire(&self, now_ms: u64) -> Vec<Expired> {
        let mut expired = Vec::new();
        for shard in &self.shards {
            let mut shard = lock(shard);
            for (inst, clients) in shard.iter_mut() {
                let gone: Vec<ByteString> = clients
                    .iter()
                    .filter(|(_, s)| s.persistent && s.expired(now_ms))
                    .map(|(c, _)| c.clone())
                    .collect();
                for client in gone {
                    if let Some(s) = clients.remove(&client) {
                        self.count_persistent(inst, -1);
                        expired.push(Expired {
                            instance_id: inst.clone(),
                            client_id: client.to_string(),
                            subs: s.sub_list(),
                        });
                    }
                }
            }
            shard.retain(|_, clients| !clients.is_empty());
        }
        for e in &expired {
            if let Err(err) = self.persist(&e.instance_id, &e.client_id) {
                tracing::error!(error = %err, "cannot delete an expired session's record");
            }
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use common::qos::QoS;

    use super::*;

    #[test]
    fn filters_stay_sorted_replace_in_place_and_free_their_storage_when_emptied() {
        let mut f = Filters::default();
        for raw in ["b/#", "a/+", "c"] {
            f.insert(raw, SubOptions::qos(QoS::AtMostOnce));
        }
        f.insert("a/+", SubOptions::qos(QoS::ExactlyOnce));
        assert_eq!(f.keys().collect::<Vec<_>>(), ["a/+", "b/#", "c"]);
        assert_eq!(f.len(), 3);
        assert_eq!(f.remove("a/+").map(|o| o.qos), Some(QoS::ExactlyOnce));
        assert_eq!(f.remove("a/+"), None);
        assert!(f.contains_key("c") && !f.contains_key("a/+"));
        f.remove("b/#");
        f.remove("c");
        assert_eq!(f.0.capacity(), 0);
    }
}
