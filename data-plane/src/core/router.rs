//! Message routing: who gets a message, and handing each copy over: into a live connection's
//! mailbox, or into the offline queue of a persistent session (QoS 1/2). The seam is
//! `MessageRouter`; the embedded `LocalRouter` routes within this node.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use common::qos::QoS;
use common::topic;

use super::mailbox::{Outbound, Refused};
use super::offline::{OfflineLimits, OfflineQueue, QueueEntry};
use super::seam::{Seam, SeamResult};
use super::sessions::LocalSessions;
use super::subscriptions::{SubOptions, SubscriptionIndex, Target};
use crate::message::Message;
use crate::metrics;

/// How a routed message was handed over.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Routed {
    /// Copies put into live connections' queues.
    pub live: usize,
    /// Copies stored for persistent sessions.
    pub stored: usize,
}

impl Routed {
    pub fn total(&self) -> usize {
        self.live + self.stored
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyWildcards;

/// Which of this node's recipients a fan-out serves.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    /// Copies for persistent sessions (QoS 1/2) are decided and returned for storing; without
    /// it they are left out (a cluster stores them for every broker at once).
    pub stored: bool,
    /// `$share` groups pick a member here; without it they are left out (a cluster picks group
    /// members across brokers).
    pub groups: bool,
}

impl Scope {
    pub const ALL: Scope = Scope {
        stored: true,
        groups: true,
    };
}

/// What a fan-out did and left to do.
#[derive(Default)]
pub struct FanOut {
    /// Copies put into live connections' mailboxes.
    pub live: usize,
    /// Copies for persistent sessions, to be stored.
    pub stored: Vec<QueueEntry>,
    /// Mailboxes of online persistent sessions to wake once those are stored.
    pub wake: Vec<Arc<super::mailbox::Mailbox>>,
}

/// The message-routing seam: the subscriptions it routes by, and routing itself.
pub trait MessageRouter: Send + Sync {
    /// Adds (or replaces) a subscription; a new wildcard filter is refused beyond `max_wildcards`
    /// on its parent topic in the instance.
    fn subscribe(
        &self,
        instance_id: &str,
        client_id: &str,
        raw: &str,
        opts: SubOptions,
        max_wildcards: usize,
    ) -> Seam<'_, SeamResult<Result<(), TooManyWildcards>>>;
    fn unsubscribe(&self, instance_id: &str, client_id: &str, raw: &str) -> Seam<'_, SeamResult<()>>;
    /// Hands `msg` to every matching subscriber (or the P2P target). Resolves once every copy for a
    /// persistent session is durable; `limits` bound the instance's stored messages.
    fn route(&self, instance_id: &str, msg: Arc<Message>, limits: OfflineLimits) -> Seam<'_, SeamResult<Routed>>;
    /// Subscriptions on this node.
    fn subscription_count(&self) -> usize;
}

pub struct LocalRouter {
    index: RwLock<SubscriptionIndex>,
    sessions: Arc<LocalSessions>,
    offline: Arc<dyn OfflineQueue>,
}

impl LocalRouter {
    pub fn new(sessions: Arc<LocalSessions>, offline: Arc<dyn OfflineQueue>) -> Self {
        Self {
            index: RwLock::new(SubscriptionIndex::default()),
            sessions,
            offline,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, SubscriptionIndex> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, SubscriptionIndex> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts restored subscriptions of persistent sessions back into the index (at start-up).
    pub fn restore(&self, subs: &[(String, String, String, SubOptions)]) {
        let mut index = self.write();
        for (inst, client, raw, opts) in subs {
            if let Ok(parsed) = topic::parse_subscription(raw) {
                index.insert(inst, parsed.filter, parsed.share_group, client, *opts);
            }
        }
        metrics::subscriptions(index.len());
    }

    /// Hands `msg` to this node's recipients within `scope`: live copies go into mailboxes now;
    /// copies for persistent sessions (QoS 1/2) are returned for the caller to store, with the
    /// mailboxes to wake once they are.
    pub fn fan_out(&self, instance_id: &str, msg: &Arc<Message>, scope: Scope) -> FanOut {
        let targets = self.targets(instance_id, msg, scope.groups);
        self.deliver(instance_id, msg, targets, scope)
    }

    fn deliver(&self, instance_id: &str, msg: &Arc<Message>, targets: Vec<Target>, scope: Scope) -> FanOut {
        let mut fan = FanOut::default();
        for t in targets {
            let Some(recipient) = self.sessions.recipient(instance_id, &t.client_id) else {
                continue;
            };
            let qos = msg.qos.min(t.qos);
            // Established subscriptions get RETAIN 0 unless they asked for it as published (MQTT 3.3.1.3).
            let retain = msg.retain && t.retain_as_published;
            if recipient.persistent && qos > QoS::AtMostOnce {
                if scope.stored {
                    fan.wake.extend(recipient.conn.map(|c| c.mailbox));
                    fan.stored.push(QueueEntry {
                        client_id: t.client_id,
                        qos,
                        retain,
                        sub_ids: t.sub_ids,
                    });
                }
            } else if let Some(conn) = recipient.conn {
                let out = Outbound {
                    msg: msg.clone(),
                    qos,
                    retain,
                    sub_ids: t.sub_ids,
                };
                match conn.mailbox.push(out) {
                    Ok(()) => fan.live += 1,
                    Err(Refused::Full) => metrics::dropped(metrics::DROP_QUEUE_FULL),
                    // The connection is closing: not a drop of a live client's message.
                    Err(Refused::Closed) => {}
                }
            }
        }
        fan
    }

    /// Hands `msg` to the next member of one share group here (a cluster chose this node for it).
    pub fn fan_out_group(&self, instance_id: &str, msg: &Arc<Message>, filter: &str, group: &str) -> FanOut {
        let target = self
            .read()
            .pick_member(instance_id, filter, group, &|c| self.sessions.is_online(instance_id, c));
        self.deliver(instance_id, msg, target.into_iter().collect(), Scope::ALL)
    }

    fn targets(&self, instance_id: &str, msg: &Message, groups: bool) -> Vec<Target> {
        match topic::p2p_target(&msg.topic) {
            // P2P: that client only, no subscription needed, at the publisher's QoS.
            Some(client) => vec![Target {
                client_id: client.into(),
                qos: QoS::ExactlyOnce,
                retain_as_published: false,
                sub_ids: Vec::new(),
            }],
            None => self
                .read()
                .route(instance_id, &msg.topic, &msg.publisher, groups, &|c| {
                    self.sessions.is_online(instance_id, c)
                }),
        }
    }
}

impl MessageRouter for LocalRouter {
    fn subscribe(
        &self,
        instance_id: &str,
        client_id: &str,
        raw: &str,
        opts: SubOptions,
        max_wildcards: usize,
    ) -> Seam<'_, SeamResult<Result<(), TooManyWildcards>>> {
        let Ok(parsed) = topic::parse_subscription(raw) else {
            return super::seam::done(Ok(Ok(())));
        };
        let mut index = self.write();
        if topic::is_wildcard(parsed.filter)
            && index.wildcard_count(instance_id, topic::parent_of(parsed.filter)) >= max_wildcards
            && !index.contains(instance_id, parsed.filter, parsed.share_group, client_id)
        {
            return super::seam::done(Ok(Err(TooManyWildcards)));
        }
        index.insert(instance_id, parsed.filter, parsed.share_group, client_id, opts);
        metrics::subscriptions(index.len());
        super::seam::done(Ok(Ok(())))
    }

    fn unsubscribe(&self, instance_id: &str, client_id: &str, raw: &str) -> Seam<'_, SeamResult<()>> {
        if let Ok(parsed) = topic::parse_subscription(raw) {
            let mut index = self.write();
            index.remove(instance_id, parsed.filter, parsed.share_group, client_id);
            metrics::subscriptions(index.len());
        }
        super::seam::done(Ok(()))
    }

    fn route(&self, instance_id: &str, msg: Arc<Message>, limits: OfflineLimits) -> Seam<'_, SeamResult<Routed>> {
        let fan = self.fan_out(instance_id, &msg, Scope::ALL);
        let mut routed = Routed {
            live: fan.live,
            stored: 0,
        };
        if fan.stored.is_empty() {
            return super::seam::done(Ok(routed));
        }
        let stored = self.offline.enqueue(instance_id, &msg, &fan.stored, limits);
        Seam::later(async move {
            routed.stored = stored.await?;
            for mailbox in fan.wake {
                mailbox.wake();
            }
            Ok(routed)
        })
    }

    fn subscription_count(&self) -> usize {
        self.read().len()
    }
}
