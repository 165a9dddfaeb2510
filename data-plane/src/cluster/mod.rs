//! Several brokers as one MQTT service per instance, through NATS with JetStream: routing across
//! brokers (`router`), one session per client ID cluster-wide with takeover (`sessions`, `state`),
//! persistent sessions' offline queues in replicated streams (`inbox`), retained messages in a
//! replicated bucket (`retained`), per-instance quotas summed across brokers (`usage`). Each is one
//! of the broker core's seams; without `--cluster-nats-url` none of this runs and the broker uses
//! its embedded parts. docs/cluster.md explains the design.

mod arrivals;
mod feeds;
mod funnel;
mod inbox;
pub mod link;
mod recent;
mod retained;
mod router;
mod sessions;
mod state;
mod subject;
mod usage;
mod wire;

use std::sync::{Arc, Weak};

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures_util::StreamExt;

use self::arrivals::{Arrivals, ToNode};
use self::funnel::Funnel;
use self::inbox::Inbox;
pub use self::link::ClusterConfig;
use self::link::Link;
use self::retained::ClusterRetained;
use self::router::ClusterRouter;
use self::sessions::ClusterSessions;
use self::state::{ClusterState, SessionRecord};
use self::subject::parse_key;
use self::usage::ClusterQuotas;
use self::wire::ItemKind;
use crate::core::Parts;
use crate::core::mailbox::Ctl;
use crate::core::offline::{PersistedSession, SessionRecords};
use crate::core::retained::{LocalRetained, NoLog};
use crate::core::router::{LocalRouter, MessageRouter};
use crate::core::seam::SeamResult;
use crate::core::sessions::LocalSessions;
use crate::core::wills::{LocalWills, WillScheduler};
use crate::metrics;

/// Session records of the embedded registry: none in a cluster (they live in NATS).
struct NoRecords;

impl SessionRecords for NoRecords {
    fn load(&self) -> SeamResult<Vec<(String, String, PersistedSession)>> {
        Ok(Vec::new())
    }
    fn save(&self, _: &str, _: &str, _: &PersistedSession) -> SeamResult<()> {
        Ok(())
    }
    fn delete(&self, _: &str, _: &str) -> SeamResult<()> {
        Ok(())
    }
}

/// A running cluster membership: what the broker's other parts may ask of it.
pub struct Cluster {
    link: Arc<Link>,
    state: Arc<ClusterState>,
}

impl Cluster {
    /// What the heartbeat reports as the cluster link: up once sessions can be recorded.
    pub fn is_ready(&self) -> bool {
        self.link.is_ready()
    }

    /// Whether the client is online on any broker of the cluster.
    pub fn online_anywhere(&self, instance: &str, client: &str) -> bool {
        self.state.online_anywhere(instance, client)
    }

    /// Claims a control-plane command so that one broker executes it; true for the one that may.
    pub async fn claim_command(&self, seq: i64) -> bool {
        let bucket = &self.link.buckets().await.claims;
        match bucket
            .create(format!("cmd{seq}"), Bytes::from(self.link.node.clone()))
            .await
        {
            Ok(_) => true,
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => false,
            Err(e) => {
                // Better twice than never: a command nobody could claim is executed here.
                metrics::cluster_error("jetstream");
                tracing::warn!(error = %e, seq, "command claim failed; executing it here");
                true
            }
        }
    }
}

/// Joins the cluster: connects to NATS and builds the core's parts on it. Runs on (and spawns its
/// tasks onto) the current tokio runtime, which must outlive the broker.
pub async fn join(cfg: ClusterConfig) -> anyhow::Result<(Parts, Arc<Cluster>)> {
    let link = Link::connect(&cfg).await?;
    let runtime = tokio::runtime::Handle::current();
    let state = ClusterState::new();
    let local = Arc::new(LocalSessions::new(Arc::new(NoRecords)));
    let funnel = Arc::new(Funnel::start(link.clone()));
    let sessions = Arc::new(ClusterSessions::new(link.clone(), local.clone(), state.clone()));
    let inbox = Inbox::new(
        link.clone(),
        sessions.clone(),
        funnel.clone(),
        state.clone(),
        local.clone(),
    );
    let local_router = Arc::new(LocalRouter::new(local.clone(), inbox.clone()));
    let (takeovers, takeover_requests) = tokio::sync::mpsc::unbounded_channel();
    let to_node = ToNode {
        items: Box::new({
            let (local, inbox) = (local.clone(), inbox.clone());
            move |items| take_items(items, &local, &inbox)
        }),
        takeovers,
    };
    let arrivals = Arc::new(Arrivals::start(local_router.clone(), to_node, runtime.clone()));
    let router = Arc::new(ClusterRouter::new(
        local_router.clone(),
        link.clone(),
        funnel,
        state.clone(),
        inbox.clone(),
        arrivals.clone(),
        runtime,
    ));
    let replica = Arc::new(LocalRetained::open(Arc::new(NoLog))?);
    let retained = Arc::new(ClusterRetained::new(link.clone(), replica.clone()));
    let quotas = ClusterQuotas::new(link.clone());
    let wills: Arc<dyn WillScheduler> = Arc::new(LocalWills::default());

    tokio::spawn(watch_sessions(link.clone(), state.clone(), local.clone()));
    tokio::spawn(sessions.clone().run_reconcile());
    tokio::spawn(ClusterRetained::run_watch(link.clone(), replica));
    tokio::spawn(quotas.clone().run());
    tokio::spawn(inbox.clone().run_purges());
    tokio::spawn(refresh_counts(inbox.clone()));
    tokio::spawn(reread_after_reconnect(link.clone(), Arc::downgrade(&inbox)));
    tokio::spawn(reread_after_others_reconnect(link.clone(), Arc::downgrade(&inbox)));
    tokio::spawn(serve_node(
        link.clone(),
        arrivals,
        takeover_requests,
        local.clone(),
        router.clone(),
        inbox.clone(),
        wills.clone(),
    ));
    tracing::info!(node = %link.node, urls = ?cfg.urls, "cluster member (NATS)");

    let parts = Parts {
        sessions,
        live: local,
        router,
        retained,
        offline: inbox,
        wills,
        quotas: quotas.clone(),
    };
    Ok((parts, Arc::new(Cluster { link, state })))
}

/// Keeps `state` current from the sessions bucket; a record that now names another node while a
/// connection of that client is live here means a takeover this node did not hear of: it closes.
async fn watch_sessions(link: Arc<Link>, state: Arc<ClusterState>, local: Arc<LocalSessions>) {
    loop {
        let bucket = &link.buckets().await.sessions;
        match bucket.watch_with_history(">").await {
            Ok(mut watch) => {
                while let Some(Ok(entry)) = watch.next().await {
                    let Some((instance, client)) = parse_key(&entry.key) else {
                        continue;
                    };
                    let record: Option<SessionRecord> = match entry.operation {
                        kv::Operation::Put => serde_json::from_slice(&entry.value).ok(),
                        _ => None,
                    };
                    // Older than what this node applied (its own writes come first): stale news.
                    if !state.apply(instance, &client, record.as_ref(), entry.revision) {
                        continue;
                    }
                    if let Some(r) = &record
                        && r.node != link.node
                        && local.live(instance, &client).is_some()
                    {
                        local.signal(instance, &client, Ctl::TakenOver);
                    }
                }
            }
            Err(e) => {
                metrics::cluster_error("jetstream");
                tracing::warn!(error = %e, "sessions watch failed; starting over");
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// What other brokers address to this node: deliveries to its clients and inbox notices (handed
/// over by `arrivals` in their senders' order, with the topic messages), and takeovers (here).
async fn serve_node(
    link: Arc<Link>,
    arrivals: Arc<Arrivals>,
    mut takeovers: tokio::sync::mpsc::UnboundedReceiver<async_nats::Message>,
    local: Arc<LocalSessions>,
    router: Arc<ClusterRouter>,
    inbox: Arc<Inbox>,
    wills: Arc<dyn WillScheduler>,
) {
    arrivals.read_node(subscribe_until_done(&link, link.names.node(&link.node), "node").await);
    while let Some(m) = takeovers.recv().await {
        let Some((instance, client)) = m.headers.as_ref().and_then(wire::parse_takeover) else {
            metrics::cluster_error("undecodable");
            continue;
        };
        local.signal(&instance, &client, Ctl::TakenOver);
        if wills.cancel(&instance, &client).await.unwrap_or(false) {
            metrics::will("cancelled");
        }
        for (raw, _) in local.forget(&instance, &client) {
            let _ = router.unsubscribe(&instance, &client, &raw).await;
        }
        inbox.forget(&instance, &client);
        if let Some(reply) = m.reply {
            let _ = link.client.publish(reply, Bytes::new()).await;
        }
    }
}

/// Hands the deliveries and inbox notices of one node message to their clients, in order.
fn take_items(payload: &[u8], local: &LocalSessions, inbox: &Inbox) {
    let mut taken = 0;
    for item in wire::decode_items(payload) {
        let Ok(item) = item else {
            metrics::cluster_error("undecodable");
            break;
        };
        taken += 1;
        match item.kind {
            ItemKind::Deliver => {
                if let Some(conn) = local.live(item.instance, item.client)
                    && conn.mailbox.push(item.out).is_err()
                {
                    metrics::dropped(metrics::DROP_QUEUE_FULL);
                }
            }
            ItemKind::Inbox => inbox.deliver_here(item.instance, item.client, item.seq, item.out),
        }
    }
    metrics::cluster_messages("in", taken);
}

/// Subscribes to `subject`, retrying every second: these subscriptions last as long as the broker,
/// and the client re-establishes them itself after a reconnect once they exist.
async fn subscribe_until_done(link: &Link, subject: String, what: &str) -> async_nats::Subscriber {
    loop {
        match link.client.subscribe(subject.clone()).await {
            Ok(s) => return s,
            Err(e) => {
                metrics::cluster_error("subscribe");
                tracing::warn!(error = %e, subscription = what, "NATS subscription failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

async fn refresh_counts(inbox: Arc<Inbox>) {
    loop {
        inbox.refresh_counts().await;
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    }
}

/// After the NATS connection comes back, sessions read their inboxes again (a notice to them may
/// have been lost while it was down), the notices this broker sent lately go out again (one may
/// have been lost with the connection), and the other brokers are told to read their sessions'
/// inboxes again too.
async fn reread_after_reconnect(link: Arc<Link>, inbox: Weak<Inbox>) {
    loop {
        link.reconnected.notified().await;
        let Some(inbox) = inbox.upgrade() else {
            return;
        };
        inbox.reread_all();
        inbox.resend_recent_notices();
        let said = link
            .client
            .publish(link.names.reconnected(), Bytes::from(link.node.clone()))
            .await;
        if said.is_err() {
            metrics::cluster_error("publish");
        }
    }
}

/// Another broker's NATS connection came back: a notice it sent to this node may have been lost,
/// and its message, stored, must not be passed over. Sessions here read their inboxes again (and
/// are not purged until they have), which finds every stored message they did not hear of.
async fn reread_after_others_reconnect(link: Arc<Link>, inbox: Weak<Inbox>) {
    let mut sub = subscribe_until_done(&link, link.names.reconnected(), "reconnect").await;
    while let Some(m) = sub.next().await {
        if m.payload == link.node.as_bytes() {
            continue;
        }
        match inbox.upgrade() {
            Some(inbox) => inbox.reread_all(),
            None => return,
        }
    }
}
