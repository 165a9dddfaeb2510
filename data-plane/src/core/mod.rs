//! The broker core (Send + Sync, shared by every worker): a thin `Broker` facade over its parts,
//! each behind a seam trait with today's embedded implementation: the session registry
//! (`sessions`), message routing over the subscription index (`router`, `subscriptions`), retained
//! messages (`retained`), offline queues (`offline`), deferred wills (`wills`) and quota counters
//! (`quotas`). Connections live on worker threads and hear from the core only through their
//! mailboxes (`mailbox`). The parts never call each other except the router, which looks sessions
//! up to hand messages over; the facade orchestrates everything else.
//!
//! Why it is long (about 540 lines): the facade is the one place that orchestrates the parts for each
//! MQTT operation; each of its methods is short.

pub mod mailbox;
pub mod offline;
pub mod quotas;
mod rate;
pub mod retained;
pub mod router;
pub mod seam;
pub mod sessions;
pub mod subscriptions;
mod timers;
pub mod usage;
pub mod wills;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::topic;

use self::mailbox::{Ctl, Outbound};
use self::offline::OfflineLimits;
use self::offline::{OfflineQueue, SessionRecords};
use self::quotas::{LocalQuotas, QuotaCounters};
use self::retained::{LocalRetained, RetainedFull, RetainedLimits, RetainedLog, RetainedStore};
use self::router::{LocalRouter, MessageRouter, Routed, TooManyWildcards};
use futures_util::future::Either;

use self::seam::{Seam, SeamError, SeamResult};
use self::sessions::{ConnHandle, LocalSessions, OpenError, OpenRequest, SessionRegistry, SubscribeError};
use self::subscriptions::{RetainHandling, SubOptions};
use self::wills::{LocalWills, WillScheduler};
use crate::directory::{Directories, Instance};
use crate::events::Events;
use crate::message::Message;
use crate::metrics;

/// Retained messages sent for one new subscription at most (a bound on what one SUBSCRIBE costs).
pub const MAX_RETAINED_PER_SUBSCRIBE: usize = 10_000;

/// Per-connection limits that are the node's, not the instance's.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// QoS 1/2 messages in flight per client (also capped by the client's receive maximum).
    pub max_inflight: u16,
    /// Messages queued in memory per online client; beyond it they are dropped and counted.
    pub max_queued: usize,
    /// Bytes (topic + payload) queued in memory per online client, likewise.
    pub max_queued_bytes: usize,
}

/// The parts behind the seams.
pub struct Parts {
    pub sessions: Arc<dyn SessionRegistry>,
    /// Read-only lookups of this node's live connections (they are always local).
    pub live: Arc<LocalSessions>,
    pub router: Arc<dyn MessageRouter>,
    pub retained: Arc<dyn RetainedStore>,
    pub offline: Arc<dyn OfflineQueue>,
    pub wills: Arc<dyn WillScheduler>,
    pub quotas: Arc<dyn QuotaCounters>,
}

impl Parts {
    /// The single-node parts over one embedded store, with persistent sessions and retained
    /// messages restored from it. Returns the parts and the number of restored sessions.
    pub fn embedded<S>(store: Arc<S>) -> SeamResult<(Self, usize)>
    where
        S: SessionRecords + OfflineQueue + RetainedLog + 'static,
    {
        let live = Arc::new(LocalSessions::new(store.clone()));
        let records = SessionRecords::load(store.as_ref())?;
        let restored = records.len();
        let subs = live.restore(records, common::time::now_ms() as u64);
        let router = LocalRouter::new(live.clone(), store.clone());
        router.restore(&subs);
        let parts = Self {
            sessions: live.clone(),
            live,
            router: Arc::new(router),
            retained: Arc::new(LocalRetained::open(store.clone())?),
            offline: store,
            wills: Arc::new(LocalWills::default()),
            quotas: Arc::new(LocalQuotas::default()),
        };
        Ok((parts, restored))
    }
}

/// A connection asking for its session (from the CONNECT).
pub struct SessionRequest {
    pub clean_start: bool,
    pub persistent: bool,
    pub expiry_secs: Option<u32>,
    pub handle: ConnHandle,
}

/// What a connection gets when its session opens.
pub struct Session {
    pub present: bool,
    /// The resumed session's subscriptions, to be re-authorized for the new credentials.
    pub resumed: Vec<(String, SubOptions)>,
    pub parked: BTreeMap<u64, u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenRefusal {
    /// The instance's concurrent-connection quota.
    QuotaExceeded,
    /// The instance rejects a second connection of a live client ID.
    Duplicate,
    /// The instance's persistent-session quota.
    TooManySessions,
    /// A part of the core could not do its work.
    Unavailable(SeamError),
}

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishRefusal {
    #[error("a retained message beyond the instance's retained-message limits")]
    RetainedQuota,
    /// It could not be stored.
    #[error("{0}")]
    Unavailable(SeamError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeRefusal {
    TooManySubscriptions,
    TooManyWildcards,
    Unavailable(SeamError),
}

/// One instance's figures on this broker (counters are totals since start).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceFigures {
    pub instance_id: String,
    pub connections: u64,
    pub subscriptions: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub offline_messages: u64,
}

/// A subscription the core recorded.
pub struct Subscribed {
    /// Retained messages to send, with the QoS and RETAIN flag they go out with.
    pub retained: Vec<Outbound>,
}

pub struct Broker {
    pub dirs: Directories,
    pub events: Events,
    pub usage: usage::Usage,
    pub limits: Limits,
    sessions: Arc<dyn SessionRegistry>,
    live: Arc<LocalSessions>,
    router: Arc<dyn MessageRouter>,
    retained: Arc<dyn RetainedStore>,
    offline: Arc<dyn OfflineQueue>,
    wills: Arc<dyn WillScheduler>,
    quotas: Arc<dyn QuotaCounters>,
    next_conn_id: AtomicU64,
    /// Outflow rules, set once at start (none in unit tests of the core).
    rules: OnceLock<Arc<crate::rules::Rules>>,
    /// Message trace, set once at start (none when turned off, and in unit tests of the core).
    tracer: OnceLock<Arc<crate::trace::Tracer>>,
}

impl Broker {
    pub fn new(dirs: Directories, parts: Parts, limits: Limits) -> Self {
        Self {
            dirs,
            events: Events::default(),
            usage: usage::Usage::default(),
            limits: Limits {
                max_queued: limits.max_queued.max(1),
                ..limits
            },
            sessions: parts.sessions,
            live: parts.live,
            router: parts.router,
            retained: parts.retained,
            offline: parts.offline,
            wills: parts.wills,
            quotas: parts.quotas,
            next_conn_id: AtomicU64::new(1),
            rules: OnceLock::new(),
            tracer: OnceLock::new(),
        }
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn set_rules(&self, rules: Arc<crate::rules::Rules>) {
        let _ = self.rules.set(rules);
    }

    pub fn rules(&self) -> Option<&Arc<crate::rules::Rules>> {
        self.rules.get()
    }

    pub fn set_tracer(&self, tracer: Arc<crate::trace::Tracer>) {
        let _ = self.tracer.set(tracer);
    }

    pub fn tracer(&self) -> Option<&Arc<crate::trace::Tracer>> {
        self.tracer.get()
    }

    pub fn offline(&self) -> &dyn OfflineQueue {
        self.offline.as_ref()
    }

    /// Registers a connection for a client ID (taking over a live one unless the instance rejects
    /// duplicates), within the instance's connection quota; a waiting will of the client is dropped.
    pub async fn open_session(
        &self,
        inst: &Instance,
        client_id: &str,
        req: SessionRequest,
    ) -> Result<Session, OpenRefusal> {
        let replacing = self.live.is_online(&inst.id, client_id);
        if replacing && inst.reject_duplicate_client_id {
            return Err(OpenRefusal::Duplicate);
        }
        let counted = self.quotas.connect(&inst.id, inst.quotas.max_connections, replacing);
        if !counted.await.map_err(OpenRefusal::Unavailable)? {
            return Err(OpenRefusal::QuotaExceeded);
        }
        // A persistent session lasts at most as long as its offline messages are kept (MQTT 3.1.1
        // sessions have no expiry of their own; an MQTT 5 "never" is capped the same way).
        let retention = u32::try_from(inst.quotas.offline_retention_secs).unwrap_or(u32::MAX);
        let open = self.sessions.open(OpenRequest {
            instance_id: &inst.id,
            client_id,
            clean_start: req.clean_start,
            persistent: req.persistent,
            expiry_secs: Some(req.expiry_secs.map_or(retention, |s| s.min(retention))),
            reject_duplicate: inst.reject_duplicate_client_id,
            max_persistent: inst.quotas.max_persistent_sessions as usize,
            handle: req.handle,
        });
        let opened = match open.await {
            Ok(Ok(opened)) => opened,
            Ok(Err(e)) => {
                self.quotas.disconnect(&inst.id);
                return Err(match e {
                    OpenError::Duplicate => OpenRefusal::Duplicate,
                    OpenError::TooManySessions => OpenRefusal::TooManySessions,
                });
            }
            Err(e) => {
                self.quotas.disconnect(&inst.id);
                return Err(OpenRefusal::Unavailable(e));
            }
        };
        // A session resumed from another broker of a cluster brings subscriptions this node's index
        // does not hold yet (for one resumed here, this puts back what is there).
        for (raw, opts) in &opened.resumed {
            if let Err(e) = self.router.subscribe(&inst.id, client_id, raw, *opts, usize::MAX).await {
                tracing::error!(error = %e, "cannot index a resumed subscription");
            }
        }
        // A new connection within a will's delay cancels it (MQTT 5, 3.1.3.2.2).
        if self.wills.cancel(&inst.id, client_id).await.unwrap_or(false) {
            metrics::will("cancelled");
        }
        for (raw, _) in &opened.discarded {
            self.unindex(&inst.id, client_id, raw).await;
        }
        if opened.purge_queue
            && let Err(e) = self.offline.purge(&inst.id, client_id).await
        {
            metrics::store_error("purge");
            tracing::error!(error = %e, "cannot delete a discarded session's messages");
        }
        Ok(Session {
            present: opened.present,
            resumed: opened.resumed,
            parked: opened.parked,
        })
    }

    async fn unindex(&self, instance_id: &str, client_id: &str, raw: &str) {
        if let Err(e) = self.router.unsubscribe(instance_id, client_id, raw).await {
            tracing::error!(error = %e, "cannot remove a subscription from the index");
        }
    }

    /// The connection `conn_id` is gone; a clean session ends with it. `unacked`: stored messages
    /// it was sent but did not acknowledge (resent, with these packet ids, to the next connection).
    pub async fn close_session(&self, instance_id: &str, client_id: &str, conn_id: u64, unacked: BTreeMap<u64, u16>) {
        self.quotas.disconnect(instance_id);
        match self.sessions.close(instance_id, client_id, conn_id, unacked).await {
            Ok(closed) => {
                for (raw, _) in &closed.discarded {
                    self.unindex(instance_id, client_id, raw).await;
                }
            }
            Err(e) => {
                metrics::store_error("session");
                tracing::error!(error = %e, "cannot record the end of a session");
            }
        }
    }

    /// Records a subscription within the client's and the instance's quotas; returns the retained
    /// messages it is to receive.
    pub async fn subscribe(
        &self,
        inst: &Instance,
        client_id: &str,
        raw: &str,
        opts: SubOptions,
    ) -> Result<Subscribed, SubscribeRefusal> {
        let max_wildcards = inst.quotas.max_wildcard_subscriptions_per_parent_topic as usize;
        match self
            .router
            .subscribe(&inst.id, client_id, raw, opts, max_wildcards)
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(TooManyWildcards)) => return Err(SubscribeRefusal::TooManyWildcards),
            Err(e) => return Err(SubscribeRefusal::Unavailable(e)),
        }
        let max = inst.quotas.max_subscriptions_per_client as usize;
        let new = match self.sessions.subscribe(&inst.id, client_id, raw, opts, max).await {
            Ok(Ok(new)) => new,
            refused => {
                // A refused filter is always new to the client, so it was new to the index too.
                self.unindex(&inst.id, client_id, raw).await;
                return Err(match refused {
                    Err(e) => SubscribeRefusal::Unavailable(e),
                    Ok(Err(SubscribeError::TooManySubscriptions)) => SubscribeRefusal::TooManySubscriptions,
                    Ok(_) => SubscribeRefusal::Unavailable(SeamError::Unavailable("session closed".into())),
                });
            }
        };
        let Ok(parsed) = topic::parse_subscription(raw) else {
            return Ok(Subscribed { retained: Vec::new() });
        };
        let wants_retained = match opts.retain_handling {
            RetainHandling::OnSubscribe => true,
            RetainHandling::OnNewSubscribe => new,
            RetainHandling::Never => false,
        };
        // Shared subscriptions get no retained messages (MQTT 5, 4.8.2).
        if parsed.share_group.is_some() || !wants_retained {
            return Ok(Subscribed { retained: Vec::new() });
        }
        let found = match self
            .retained
            .matching(&inst.id, parsed.filter, MAX_RETAINED_PER_SUBSCRIBE)
            .await
        {
            Ok(found) => found,
            Err(e) => {
                metrics::store_error("retained");
                tracing::error!(error = %e, "cannot read retained messages");
                Vec::new()
            }
        };
        let retained = found
            .into_iter()
            .map(|msg| Outbound {
                qos: msg.qos.min(opts.qos),
                retain: true,
                sub_ids: opts.id.into_iter().collect(),
                msg,
            })
            .collect();
        Ok(Subscribed { retained })
    }

    /// Removes a subscription; true when the client had it.
    pub async fn unsubscribe(&self, instance_id: &str, client_id: &str, raw: &str) -> bool {
        let had = match self.sessions.unsubscribe(instance_id, client_id, raw).await {
            Ok(had) => had.is_some(),
            Err(e) => {
                metrics::store_error("session");
                tracing::error!(error = %e, "cannot record an unsubscribe");
                true
            }
        };
        if had {
            self.unindex(instance_id, client_id, raw).await;
        }
        had
    }

    /// Routes one message (a client's PUBLISH, a will, a backend message): stores it as retained
    /// if flagged (within the instance's retained limits, or not at all), and hands a copy to every
    /// recipient. The routing starts when this is called, so messages are routed in the order of
    /// the calls; the future resolves when every copy for a persistent session and the retained
    /// copy are durable; an error means it must not be acknowledged. A retained store that answers
    /// at once (embedded) refuses a message over its limits before it is routed; one that answers
    /// later (a cluster) is waited for after routing, and its refusal then means the message went
    /// to live subscribers but is not acknowledged (the publisher sends it again: at least once).
    ///
    /// The instance's matching outflow rules get the message too: appended to their outboxes
    /// (durably for QoS 1/2) before it is routed, so an append that fails refuses the message.
    pub fn publish<'a>(
        &'a self,
        inst: &Instance,
        msg: Message,
    ) -> impl Future<Output = Result<Routed, PublishRefusal>> + use<'a> {
        self.publish_with(inst, msg, true)
    }

    /// `publish` without outflow rules: messages rules themselves publish (republish, inflow), and
    /// a SendMessage whose rules another broker runs.
    pub fn publish_unruled<'a>(
        &'a self,
        inst: &Instance,
        msg: Message,
    ) -> impl Future<Output = Result<Routed, PublishRefusal>> + use<'a> {
        self.publish_with(inst, msg, false)
    }

    fn publish_with<'a>(
        &'a self,
        inst: &Instance,
        msg: Message,
        run_rules: bool,
    ) -> impl Future<Output = Result<Routed, PublishRefusal>> + use<'a> {
        let msg = Arc::new(msg);
        let mut retained = None;
        if msg.retain {
            let limits = RetainedLimits {
                max_messages: inst.quotas.max_retained_messages as usize,
                max_bytes: inst.quotas.max_retained_bytes,
            };
            match self.retained.set(&inst.id, &msg, limits) {
                Seam::Ready(Some(answer)) => {
                    if let Err(refusal) = retained_outcome(answer) {
                        return Either::Left(std::future::ready(Err(refusal)));
                    }
                }
                pending => retained = Some(pending),
            }
        }
        // The only cost for an instance without outflow rules is this length check.
        if run_rules
            && !inst.rules.outflow.is_empty()
            && let Some(rules) = self.rules.get()
            && let Err(e) = rules.on_publish(inst, &msg)
        {
            return Either::Left(std::future::ready(Err(PublishRefusal::Unavailable(e))));
        }
        let limits = OfflineLimits {
            max_messages: inst.quotas.max_offline_messages,
            max_bytes: inst.quotas.max_offline_bytes,
            retention_secs: inst.quotas.offline_retention_secs,
        };
        let routed = self.router.route(&inst.id, msg, limits);
        Either::Right(async move {
            if let Some(retained) = retained {
                retained_outcome(retained.await)?;
            }
            routed.await.map_err(|e| {
                metrics::store_error("publish");
                PublishRefusal::Unavailable(e)
            })
        })
    }

    /// Accounts `messages` against the instance's rate quota; how long the caller should wait.
    pub fn throttle(&self, inst: &Instance, messages: u32) -> Duration {
        let wait = self
            .quotas
            .throttle(&inst.id, inst.quotas.max_messages_per_second, messages);
        if !wait.is_zero() {
            metrics::throttled();
        }
        wait
    }

    /// Asks the client's live connection to close (control-plane kick); how many were asked.
    pub fn close_client(&self, instance_id: &str, client_id: &str) -> usize {
        usize::from(self.live.signal(instance_id, client_id, Ctl::Close))
    }

    /// The raw filters a client's session holds.
    pub fn subscriptions_of(&self, instance_id: &str, client_id: &str) -> Vec<String> {
        self.live.subscriptions(instance_id, client_id)
    }

    /// Live connections of one client on this node (0 or 1: a newer connection takes over).
    pub fn live_connections(&self, instance_id: &str, client_id: &str) -> usize {
        usize::from(self.live.is_online(instance_id, client_id))
    }

    /// Per instance: live connections and subscriptions here, messages in and out so far, and the
    /// offline messages stored (what the offline queue knows).
    pub fn instance_figures(&self) -> Vec<InstanceFigures> {
        let connections = self.live.connections_by_instance();
        let subscriptions = self.live.subscriptions_by_instance();
        let offline = self.offline.counts();
        let mut all: std::collections::BTreeMap<String, InstanceFigures> = Default::default();
        for (i, n) in connections {
            all.entry(i).or_default().connections = n;
        }
        for (i, n) in subscriptions {
            all.entry(i).or_default().subscriptions = n;
        }
        for (i, n) in offline {
            all.entry(i).or_default().offline_messages = n;
        }
        for (i, m_in, m_out) in self.usage.totals() {
            let f = all.entry(i).or_default();
            f.messages_in = m_in;
            f.messages_out = m_out;
        }
        all.into_iter()
            .map(|(i, f)| InstanceFigures { instance_id: i, ..f })
            .collect()
    }

    /// Node totals for the control-plane heartbeat: live connections and subscriptions.
    pub fn totals(&self) -> (u64, u64) {
        (self.live.counts().0, self.router.subscription_count() as u64)
    }

    pub fn offline_message_count(&self) -> u64 {
        self.offline.counts().values().sum()
    }
}

#[cfg(test)]
mod tests;

/// What a retained store's answer means for the PUBLISH.
fn retained_outcome(answer: SeamResult<Result<(), RetainedFull>>) -> Result<(), PublishRefusal> {
    match answer {
        Ok(Ok(())) => Ok(()),
        Ok(Err(RetainedFull)) => Err(PublishRefusal::RetainedQuota),
        Err(e) => {
            metrics::store_error("retained");
            Err(PublishRefusal::Unavailable(e))
        }
    }
}
