//! The cluster's session registry: every session has a record in the sessions bucket naming the
//! node that holds it; a CONNECT on any broker claims the record with a compare-and-swap, and the
//! node that held it live is told to close its connection (a takeover). Persistent sessions keep
//! their subscriptions in the record, so that they follow the client to whichever broker it
//! reaches next. The node's own sessions (live connections, local subscriptions) stay in
//! `LocalSessions`, which this wraps.
//!
//! Without NATS (the link is down, or JetStream does not answer within `NATS_WAIT`) a broker keeps
//! serving: connections open, subscribe and close here alone, the sessions concerned are noted as
//! unrecorded, and once NATS answers again `run_reconcile` writes their records as they stand here.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use bytes::Bytes;

use super::link::Link;
use super::state::{ClusterState, SessionRecord};
use super::wire;
use crate::core::offline::PersistedSub;
use crate::core::seam::{Seam, SeamError, SeamResult};
use crate::core::sessions::{
    Closed, Expired, LocalSessions, OpenError, OpenRequest, Opened, SessionRegistry, SubscribeError,
};
use crate::core::subscriptions::SubOptions;
use crate::metrics;

/// The header JetStream's key-value layer marks a deletion or purge with (its value is `DEL` or `PURGE`).
const KV_OPERATION: &str = "KV-Operation";

/// How long a takeover waits for the node that held the connection (it may be gone).
const TAKEOVER_WAIT: Duration = Duration::from_secs(1);

/// How long a session operation waits for the sessions bucket before it is done here alone.
const NATS_WAIT: Duration = Duration::from_secs(2);

/// How long a CONNECT that may resume a session waits for its record while NATS is up, before it
/// is refused as unavailable: below rumqttc's default connect timeout (5 s, the shortest among
/// the clients we test with), so that the client hears the refusal and retries.
const RESUME_WAIT: Duration = Duration::from_secs(3);

/// How often sessions changed without NATS are written to the bucket, once it answers.
const RECONCILE_EVERY: Duration = Duration::from_secs(1);

pub struct ClusterSessions {
    link: Arc<Link>,
    local: Arc<LocalSessions>,
    state: Arc<ClusterState>,
    /// Sessions changed here while NATS did not answer: their records are written later.
    unrecorded: Mutex<HashSet<(String, String)>>,
}

fn unavailable(e: impl std::fmt::Display) -> SeamError {
    metrics::cluster_error("jetstream");
    SeamError::Unavailable(e.to_string())
}

/// A record and the revision to compare against when writing it back (0: none yet).
type Read = (Option<SessionRecord>, u64);

/// What a claim replaced (with whether that session is resumed) and the record written.
type Claimed = (Option<(SessionRecord, bool)>, SessionRecord);

impl ClusterSessions {
    pub fn new(link: Arc<Link>, local: Arc<LocalSessions>, state: Arc<ClusterState>) -> Self {
        Self {
            link,
            local,
            state,
            unrecorded: Default::default(),
        }
    }

    /// Runs a sessions-bucket operation if NATS answers in time; None when it does not (the link
    /// is down, or JetStream failed or timed out), and the session is noted for `run_reconcile`.
    async fn with_nats<T>(&self, instance: &str, client: &str, op: impl Future<Output = SeamResult<T>>) -> Option<T> {
        if !self.is_unrecorded(instance, client) && self.link.is_up() {
            match tokio::time::timeout(NATS_WAIT, op).await {
                Ok(Ok(v)) => return Some(v),
                Ok(Err(e)) => tracing::warn!(error = %e, "session record not written: serving locally"),
                Err(_) => {
                    metrics::cluster_error("jetstream");
                    tracing::warn!("sessions bucket did not answer: serving locally");
                }
            }
        }
        metrics::cluster_local_only();
        self.unrecorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((instance.to_string(), client.to_string()));
        None
    }

    /// Writes the records of sessions changed while NATS did not answer, for the life of the
    /// process: each as it stands here now (online, offline with its subscriptions, or gone).
    pub async fn run_reconcile(self: Arc<Self>) {
        loop {
            tokio::time::sleep(RECONCILE_EVERY).await;
            if !self.link.is_up() {
                continue;
            }
            let due: Vec<(String, String)> = self
                .unrecorded
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect();
            for (instance, client) in due {
                match tokio::time::timeout(NATS_WAIT, self.record_as_here(&instance, &client)).await {
                    Ok(Ok(())) => {
                        self.unrecorded
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&(instance, client));
                    }
                    _ => break, // NATS is not back yet: the next round tries again
                }
            }
        }
    }

    /// Writes a client's record as this node has the session; a live connection here takes the
    /// client ID over from another node that claimed it meanwhile.
    async fn record_as_here(&self, instance: &str, client: &str) -> SeamResult<()> {
        let Some((persistent, online, here)) = self.local.snapshot(instance, client) else {
            return self.delete_if_held(instance, client).await;
        };
        if !online && !persistent {
            return self.delete_if_held(instance, client).await;
        }
        loop {
            let (previous, revision) = self.read(instance, client).await?;
            if !online && previous.as_ref().is_some_and(|p| p.node != self.link.node) {
                return Ok(()); // the client went on elsewhere: that node's record stands
            }
            let record = SessionRecord {
                node: self.link.node.clone(),
                online,
                persistent,
                expiry_secs: here.expiry_secs,
                gone_at_ms: here.gone_at_ms,
                subs: if persistent { here.subs.clone() } else { Vec::new() },
                acked: previous.as_ref().map_or(0, |p| p.acked),
            };
            if self.write(instance, client, &record, revision).await? {
                if let Some(p) = previous
                    && p.online
                    && p.node != self.link.node
                {
                    self.take_over_from(&p.node, instance, client).await;
                }
                return Ok(());
            }
        }
    }

    async fn bucket(&self) -> &kv::Store {
        &self.link.buckets().await.sessions
    }

    /// The stored record and its revision, read from the bucket's stream leader. `Store::entry`
    /// would use a direct get, which any replica answers, and a follower may not yet hold the
    /// last write: a subscribe that read "no record" there returned without recording its filter,
    /// and the session's messages were never stored (found by the cross-broker offline bench).
    async fn read(&self, instance: &str, client: &str) -> SeamResult<Read> {
        let bucket = self.bucket().await;
        let subject = format!("{}{}", bucket.prefix, self.link.names.key(instance, client));
        match bucket.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => {
                let deleted = m.headers.get(KV_OPERATION).is_some_and(|op| op.as_str() != "PUT");
                let record = if deleted {
                    None
                } else {
                    serde_json::from_slice(&m.payload).ok()
                };
                Ok((record, m.sequence))
            }
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok((None, 0)),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Writes `record` if the stored one is still at `revision`; false on a conflict.
    async fn write(&self, instance: &str, client: &str, record: &SessionRecord, revision: u64) -> SeamResult<bool> {
        let key = self.link.names.key(instance, client);
        let value = Bytes::from(serde_json::to_vec(record).map_err(unavailable)?);
        match self.bucket().await.update(key, value, revision).await {
            Ok(revision) => {
                self.state.apply(instance, client, Some(record), revision);
                Ok(true)
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Changes this node's record of a client with `change` (which says whether to write); a
    /// record held by another node is left alone.
    async fn modify(
        &self,
        instance: &str,
        client: &str,
        change: impl Fn(&mut SessionRecord) -> bool,
    ) -> SeamResult<()> {
        loop {
            let (record, revision) = self.read(instance, client).await?;
            let Some(mut record) = record.filter(|r| r.node == self.link.node) else {
                return Ok(());
            };
            if !change(&mut record) || self.write(instance, client, &record, revision).await? {
                return Ok(());
            }
        }
    }

    /// Records how far a session's inbox is acknowledged (the next holder starts after it).
    pub async fn record_acked(&self, instance: &str, client: &str, floor: u64) -> SeamResult<()> {
        self.modify(instance, client, |r| {
            let moved = r.acked < floor;
            r.acked = r.acked.max(floor);
            moved
        })
        .await
    }

    /// Deletes this node's record of a client (a record another node holds stays).
    async fn delete_if_held(&self, instance: &str, client: &str) -> SeamResult<()> {
        let (record, revision) = self.read(instance, client).await?;
        if record.is_some_and(|r| r.node == self.link.node) {
            let key = self.link.names.key(instance, client);
            match self.bucket().await.delete_expect_revision(key, Some(revision)).await {
                // The deletion's own revision is not returned; any later one of this key is
                // above `revision + 1`, and no write of it lies between the two.
                Ok(()) => {
                    self.state.apply(instance, client, None, revision + 1);
                }
                Err(e) => tracing::debug!(error = %e, "session record changed meanwhile; left as it is"),
            }
        }
        Ok(())
    }

    /// Tells the node that held a client's connection that another one took it over.
    async fn take_over_from(&self, node: &str, instance: &str, client: &str) {
        let headers = wire::takeover_headers(instance, client);
        let request = self
            .link
            .client
            .request_with_headers(self.link.names.node(node), headers, Bytes::new());
        match tokio::time::timeout(TAKEOVER_WAIT, request).await {
            Ok(Ok(_)) => metrics::cluster_takeover("acknowledged"),
            // The node may be gone; the claim in the bucket is what counts.
            _ => metrics::cluster_takeover("unanswered"),
        }
    }

    /// Claims the client's record for this node: the record it replaced (and whether that session
    /// is resumed), and the new record.
    async fn claim(&self, req: &OpenRequest<'_>) -> SeamResult<Result<Claimed, OpenError>> {
        let (instance, client) = (req.instance_id, req.client_id);
        let now = common::time::now_ms() as u64;
        loop {
            let (previous, revision) = self.read(instance, client).await?;
            if let Some(p) = &previous
                && p.online
                && p.node != self.link.node
                && req.reject_duplicate
            {
                return Ok(Err(OpenError::Duplicate));
            }
            let present = previous.as_ref().is_some_and(|p| p.persistent && !p.expired(now)) && !req.clean_start;
            let record = SessionRecord {
                node: self.link.node.clone(),
                online: true,
                persistent: req.persistent,
                expiry_secs: req.expiry_secs,
                gone_at_ms: None,
                subs: if present {
                    previous.as_ref().map(|p| p.subs.clone()).unwrap_or_default()
                } else {
                    Vec::new()
                },
                acked: if present {
                    previous.as_ref().map_or(0, |p| p.acked)
                } else {
                    0
                },
            };
            if self.write(instance, client, &record, revision).await? {
                return Ok(Ok((previous.map(|p| (p, present)), record)));
            }
        }
    }

    /// Claims the record of a client that may resume a session while NATS is up. Opening it empty
    /// after a timeout would lose the session: its record (subscriptions, inbox position) would be
    /// overwritten by the empty one once NATS answers. So a slow or failing JetStream refuses the
    /// CONNECT as unavailable, and the client retries.
    async fn claim_to_resume(&self, req: &OpenRequest<'_>) -> SeamResult<Result<Claimed, OpenError>> {
        match tokio::time::timeout(RESUME_WAIT, self.claim(req)).await {
            Ok(claimed) => claimed,
            Err(_) => Err(unavailable("the sessions bucket did not answer in time")),
        }
    }

    fn is_unrecorded(&self, instance: &str, client: &str) -> bool {
        self.unrecorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(instance.to_string(), client.to_string()))
    }

    async fn open_clustered(&self, req: OpenRequest<'_>) -> SeamResult<Result<Opened, OpenError>> {
        let (instance, client) = (req.instance_id, req.client_id);
        // Without NATS (or for a session this node changed without it) the session opens here as
        // this node knows it: the documented way of serving while NATS is unreachable.
        let may_resume = !req.clean_start && self.link.is_up() && !self.is_unrecorded(instance, client);
        let claimed = if may_resume {
            Some(self.claim_to_resume(&req).await?)
        } else {
            self.with_nats(instance, client, self.claim(&req)).await
        };
        let (previous, record) = match claimed {
            Some(Ok(c)) => c,
            Some(Err(e)) => return Ok(Err(e)),
            // NATS does not answer: the session opens here alone, as this node knows it.
            None => return self.local.open(req).await,
        };
        let present = previous.as_ref().is_some_and(|(_, present)| *present);
        if let Some((p, _)) = &previous
            && p.online
            && p.node != self.link.node
        {
            self.take_over_from(&p.node, instance, client).await;
        }
        if present {
            // The session may have lived on another broker: this node takes it as recorded.
            self.local.seed(instance, client, record.sub_list(), record.expiry_secs);
        }
        let mut opened = match self.local.open(req).await? {
            Ok(o) => o,
            Err(e) => return Ok(Err(e)),
        };
        opened.present = present;
        if present {
            opened.resumed = record.sub_list();
        }
        // A discarded persistent session's inbox goes too, wherever it lived.
        opened.purge_queue |= !present && previous.as_ref().is_some_and(|(p, _)| p.persistent);
        Ok(Ok(opened))
    }
}

impl SessionRegistry for ClusterSessions {
    fn open<'a>(&'a self, req: OpenRequest<'a>) -> Seam<'a, SeamResult<Result<Opened, OpenError>>> {
        Seam::later(self.open_clustered(req))
    }

    fn close(
        &self,
        instance_id: &str,
        client_id: &str,
        conn_id: u64,
        unacked: BTreeMap<u64, u16>,
    ) -> Seam<'_, SeamResult<Closed>> {
        let (instance, client) = (instance_id.to_string(), client_id.to_string());
        Seam::later(async move {
            let closed = self.local.close(&instance, &client, conn_id, unacked).await?;
            if closed.held {
                if closed.persistent {
                    let now = common::time::now_ms() as u64;
                    let offline = self.modify(&instance, &client, |r| {
                        r.online = false;
                        r.gone_at_ms = Some(now);
                        true
                    });
                    self.with_nats(&instance, &client, offline).await;
                } else {
                    self.with_nats(&instance, &client, self.delete_if_held(&instance, &client))
                        .await;
                }
            }
            Ok(closed)
        })
    }

    fn subscribe(
        &self,
        instance_id: &str,
        client_id: &str,
        raw: &str,
        opts: SubOptions,
        max: usize,
    ) -> Seam<'_, SeamResult<Result<bool, SubscribeError>>> {
        let (instance, client, raw) = (instance_id.to_string(), client_id.to_string(), raw.to_string());
        Seam::later(async move {
            let outcome = self.local.subscribe(&instance, &client, &raw, opts, max).await?;
            if outcome.is_ok() && self.local.is_persistent(&instance, &client) {
                let sub = PersistedSub::new(&raw, &opts);
                let add = self.modify(&instance, &client, |r| {
                    r.subs.retain(|s| s.clone().into_parts().0 != raw);
                    r.subs.push(sub.clone());
                    true
                });
                self.with_nats(&instance, &client, add).await;
            }
            Ok(outcome)
        })
    }

    fn unsubscribe(&self, instance_id: &str, client_id: &str, raw: &str) -> Seam<'_, SeamResult<Option<SubOptions>>> {
        let (instance, client, raw) = (instance_id.to_string(), client_id.to_string(), raw.to_string());
        Seam::later(async move {
            let had = self.local.unsubscribe(&instance, &client, &raw).await?;
            if had.is_some() && self.local.is_persistent(&instance, &client) {
                let remove = self.modify(&instance, &client, |r| {
                    let before = r.subs.len();
                    r.subs.retain(|s| s.clone().into_parts().0 != raw);
                    r.subs.len() != before
                });
                self.with_nats(&instance, &client, remove).await;
            }
            Ok(had)
        })
    }

    fn expire(&self, now_ms: u64) -> Vec<Expired> {
        // The node that last held an expired session removes its record (in the background: the
        // caller's own clean-up does not wait for NATS).
        let expired = self.local.expire(now_ms);
        for e in &expired {
            let (link, local, state) = (self.link.clone(), self.local.clone(), self.state.clone());
            let (instance, client) = (e.instance_id.clone(), e.client_id.clone());
            tokio::spawn(async move {
                let me = ClusterSessions::new(link, local, state);
                if let Err(err) = me.delete_if_held(&instance, &client).await {
                    tracing::warn!(error = %err, "cannot delete an expired session's record");
                }
            });
        }
        expired
    }
}
