//! Routing across brokers. A message is handed to this node's live subscribers at once, published
//! once on its topic's subject for the other brokers (NATS sends it only to brokers with a matching
//! subscription: each broker holds one NATS subscription per distinct local filter, all read by
//! `Arrivals`), and appended to the inbox of every persistent session that matches it, wherever
//! that session lives (found in the cluster-wide index of persistent subscriptions). `$share`
//! groups are NATS queue groups: each message goes to one broker with members, which picks one of
//! its members. P2P messages go to the node that holds their target.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use common::qos::QoS;
use common::topic;
use futures_util::StreamExt;
use futures_util::stream::{AbortHandle, Abortable};

use super::arrivals::Arrivals;
use super::funnel::Funnel;
use super::inbox::Inbox;
use super::link::Link;
use super::state::ClusterState;
use super::subject::key_token;
use super::wire::{self, ItemKind};
use crate::core::mailbox::Outbound;
use crate::core::offline::{OfflineLimits, OfflineQueue, QueueEntry};
use crate::core::router::{FanOut, LocalRouter, MessageRouter, Routed, Scope, TooManyWildcards};
use crate::core::seam::{Seam, SeamResult, done};
use crate::core::subscriptions::SubOptions;
use crate::message::Message;
use crate::metrics;

/// One NATS subscription shared by every local subscription that needs it.
struct Held {
    users: usize,
    /// Ends the subscription.
    stop: AbortHandle,
}

#[derive(Default)]
struct Interest {
    /// Subject (or queue key) -> its NATS subscription.
    subscriptions: HashMap<String, Held>,
    /// (instance, client, raw filter) that hold interest, so a replaced subscription is not
    /// counted twice.
    holders: HashSet<(String, String, String)>,
}

pub struct ClusterRouter {
    local: Arc<LocalRouter>,
    link: Arc<Link>,
    funnel: Arc<Funnel>,
    state: Arc<ClusterState>,
    inbox: Arc<Inbox>,
    interest: Mutex<Interest>,
    arrivals: Arc<Arrivals>,
    runtime: tokio::runtime::Handle,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a NATS subscription feeds.
enum Feed {
    /// Direct subscriptions of an instance.
    Direct { instance: String },
    /// One share group of one filter, through a NATS queue group.
    Group(Group),
}

/// A share group of one filter, whose NATS queue subscription a task reads.
struct Group {
    instance: String,
    group: String,
    filter: String,
    queue: String,
}

impl ClusterRouter {
    pub fn new(
        local: Arc<LocalRouter>,
        link: Arc<Link>,
        funnel: Arc<Funnel>,
        state: Arc<ClusterState>,
        inbox: Arc<Inbox>,
        arrivals: Arc<Arrivals>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            link,
            funnel,
            state,
            inbox,
            interest: Mutex::new(Interest::default()),
            arrivals,
            local,
            runtime,
        }
    }

    /// The NATS subscriptions (key, subject, what it feeds) a raw filter needs.
    fn needs(&self, instance: &str, raw: &str) -> Vec<(String, String, Feed)> {
        let Ok(parsed) = topic::parse_subscription(raw) else {
            return Vec::new();
        };
        let names = &self.link.names;
        let mut subjects = names
            .filter(instance, parsed.filter)
            .unwrap_or_else(|| vec![names.long_subject(instance)]);
        // Topics too long for a subject of their own reach every broker with interest here.
        subjects.push(names.long_subject(instance));
        match parsed.share_group {
            None => subjects
                .into_iter()
                .map(|s| {
                    let feed = Feed::Direct {
                        instance: instance.to_string(),
                    };
                    (s.clone(), s, feed)
                })
                .collect(),
            Some(group) => {
                let queue = key_token(&format!("{instance}/{group}/{}", parsed.filter));
                subjects
                    .into_iter()
                    .map(|s| {
                        let feed = Feed::Group(Group {
                            instance: instance.to_string(),
                            group: group.to_string(),
                            filter: parsed.filter.to_string(),
                            queue: queue.clone(),
                        });
                        (format!("{s} {queue}"), s, feed)
                    })
                    .collect()
            }
        }
    }

    fn acquire(&self, instance: &str, client: &str, raw: &str) {
        let mut interest = lock(&self.interest);
        if !interest
            .holders
            .insert((instance.to_string(), client.to_string(), raw.to_string()))
        {
            return;
        }
        for (key, subject, feed) in self.needs(instance, raw) {
            if let Some(held) = interest.subscriptions.get_mut(&key) {
                held.users += 1;
                continue;
            }
            let stop = match feed {
                Feed::Direct { instance } => self.arrivals.subscribe(self.link.client.clone(), subject, &instance),
                Feed::Group(group) => {
                    let (stop, registration) = AbortHandle::new_pair();
                    let reading = receive_group(
                        self.link.clone(),
                        self.local.clone(),
                        self.inbox.clone(),
                        subject,
                        group,
                    );
                    self.runtime.spawn(Abortable::new(reading, registration));
                    stop
                }
            };
            interest.subscriptions.insert(key, Held { users: 1, stop });
        }
        metrics::cluster_subscriptions(interest.subscriptions.len());
    }

    fn release(&self, instance: &str, client: &str, raw: &str) {
        let mut interest = lock(&self.interest);
        if !interest
            .holders
            .remove(&(instance.to_string(), client.to_string(), raw.to_string()))
        {
            return;
        }
        for (key, ..) in self.needs(instance, raw) {
            if let Some(held) = interest.subscriptions.get_mut(&key) {
                held.users -= 1;
                if held.users == 0 {
                    // Dropping the subscriber unsubscribes.
                    held.stop.abort();
                    interest.subscriptions.remove(&key);
                }
            }
        }
        metrics::cluster_subscriptions(interest.subscriptions.len());
    }

    /// The inbox entries a message makes: every persistent session it matches (QoS 1/2 only).
    fn persistent_entries(&self, instance: &str, msg: &Message) -> Vec<QueueEntry> {
        if msg.qos == QoS::AtMostOnce {
            return Vec::new();
        }
        if let Some(target) = topic::p2p_target(&msg.topic) {
            return match self.state.owner(instance, target) {
                Some(o) if o.persistent => vec![QueueEntry {
                    client_id: target.into(),
                    qos: msg.qos,
                    retain: false,
                    sub_ids: Vec::new(),
                }],
                _ => Vec::new(),
            };
        }
        self.state
            .persistent_targets(instance, msg)
            .into_iter()
            .filter_map(|t| {
                let qos = msg.qos.min(t.qos);
                (qos > QoS::AtMostOnce).then_some(QueueEntry {
                    client_id: t.client_id,
                    qos,
                    retain: msg.retain && t.retain_as_published,
                    sub_ids: t.sub_ids,
                })
            })
            .collect()
    }

    /// Live copies for other brokers: the topic's subject, or the node that holds a P2P target.
    fn forward(&self, instance: &str, msg: &Arc<Message>) {
        let names = &self.link.names;
        match topic::p2p_target(&msg.topic) {
            Some(target) => {
                if let Some(o) = self.state.owner(instance, target)
                    && o.online
                    && o.node != self.link.node
                    && !(o.persistent && msg.qos > QoS::AtMostOnce)
                {
                    let out = Outbound {
                        msg: msg.clone(),
                        qos: msg.qos,
                        retain: false,
                        sub_ids: Vec::new(),
                    };
                    let item = wire::encode_item(ItemKind::Deliver, instance, target, 0, &out);
                    self.funnel.item(names.node(&o.node), item);
                }
            }
            None => {
                let subject = names
                    .topic(instance, &msg.topic)
                    .unwrap_or_else(|| names.long_subject(instance));
                self.funnel.routed(subject, wire::encode_routed(msg));
            }
        }
    }
}

/// Reads a share group's queue subscription: each message goes to one member here.
async fn receive_group(link: Arc<Link>, local: Arc<LocalRouter>, inbox: Arc<Inbox>, subject: String, group: Group) {
    let mut sub = match link
        .groups_client
        .queue_subscribe(subject.clone(), group.queue.clone())
        .await
    {
        Ok(s) => s,
        Err(e) => {
            metrics::cluster_error("subscribe");
            return tracing::error!(error = %e, subject, "cluster subscription failed");
        }
    };
    while let Some(m) = sub.next().await {
        metrics::cluster_message("in");
        let Some((_, msg)) = wire::decode_routed(&m.payload) else {
            metrics::cluster_error("undecodable");
            continue;
        };
        let msg = Arc::new(msg);
        let fan = local.fan_out_group(&group.instance, &msg, &group.filter, &group.group);
        store_group_pick(&inbox, &group.instance, &msg, fan).await;
    }
}

/// A share group's member picked here may be a persistent session: its copy goes to its inbox.
async fn store_group_pick(inbox: &Inbox, instance: &str, msg: &Arc<Message>, fan: FanOut) {
    if fan.stored.is_empty() {
        return;
    }
    let limits = OfflineLimits {
        max_messages: u64::MAX,
        max_bytes: u64::MAX,
        retention_secs: 3 * 24 * 3600,
    };
    if let Err(e) = inbox.enqueue(instance, msg, &fan.stored, limits).await {
        tracing::warn!(error = %e, "share group copy for a persistent session not stored");
    }
}

impl MessageRouter for ClusterRouter {
    fn subscribe(
        &self,
        instance_id: &str,
        client_id: &str,
        raw: &str,
        opts: SubOptions,
        max_wildcards: usize,
    ) -> Seam<'_, SeamResult<Result<(), TooManyWildcards>>> {
        let res = match self.local.subscribe(instance_id, client_id, raw, opts, max_wildcards) {
            Seam::Ready(Some(r)) => r,
            _ => unreachable!("the local index answers at once"),
        };
        if matches!(res, Ok(Ok(()))) {
            self.acquire(instance_id, client_id, raw);
        }
        done(res)
    }

    fn unsubscribe(&self, instance_id: &str, client_id: &str, raw: &str) -> Seam<'_, SeamResult<()>> {
        self.release(instance_id, client_id, raw);
        self.local.unsubscribe(instance_id, client_id, raw)
    }

    fn route(&self, instance_id: &str, msg: Arc<Message>, limits: OfflineLimits) -> Seam<'_, SeamResult<Routed>> {
        let live = self
            .local
            .fan_out(
                instance_id,
                &msg,
                Scope {
                    stored: false,
                    groups: false,
                },
            )
            .live;
        self.forward(instance_id, &msg);
        let entries = self.persistent_entries(instance_id, &msg);
        if entries.is_empty() {
            return done(Ok(Routed { live, stored: 0 }));
        }
        let stored = self.inbox.enqueue(instance_id, &msg, &entries, limits);
        Seam::later(async move {
            Ok(Routed {
                live,
                stored: stored.await?,
            })
        })
    }

    fn subscription_count(&self) -> usize {
        self.local.subscription_count()
    }
}
