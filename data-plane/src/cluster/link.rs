//! The broker's connections to NATS: one for routing (published messages never come back to it),
//! one for `$share` groups (its queue subscriptions must see this broker's own messages too), the
//! JetStream context, and the buckets and streams the cluster keeps, created once and reused.
//! The link keeps its state (up or down) for metrics, the heartbeat and the routing decisions.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::{self, ErrorCode, kv, stream};
use tokio::sync::{Notify, OnceCell};

use super::subject::Names;
use crate::metrics;

/// How to reach the NATS cluster (`--cluster-*` options).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Seed URLs (`nats://host:4222`, `tls://...`).
    pub urls: Vec<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// A NATS credentials file (JWT + NKey).
    pub creds: Option<PathBuf>,
    /// PEM file of certificate authorities for `tls://` URLs, besides the system's.
    pub tls_ca: Option<PathBuf>,
    /// Names every subject, stream and bucket of this cluster (several clusters may share NATS).
    pub prefix: String,
    /// This broker's node ID (unique in the cluster).
    pub node: String,
    /// Replicas of streams and buckets (3 on a 3-node NATS cluster; 1 on a single server).
    pub replicas: usize,
}

/// The buckets the cluster keeps.
pub struct Buckets {
    /// Persistent and live sessions: owner node, subscriptions of persistent ones, inbox position.
    pub sessions: kv::Store,
    /// Retained messages by instance and topic.
    pub retained: kv::Store,
    /// Per-node usage figures (connections, rates) that cluster-wide quotas sum up.
    pub usage: kv::Store,
    /// Claims on control-plane commands, so that one broker executes each.
    pub claims: kv::Store,
}

pub struct Link {
    pub names: Names,
    pub node: String,
    pub replicas: usize,
    /// Routing: publishes, topic subscriptions, the node subject, JetStream (no echo).
    pub client: async_nats::Client,
    /// `$share` queue subscriptions (with echo).
    pub groups_client: async_nats::Client,
    pub js: jetstream::Context,
    buckets: OnceCell<Buckets>,
    up: AtomicBool,
    /// Fires when the routing connection comes back after a loss: deliveries that may have been
    /// lost meanwhile are looked for again.
    pub reconnected: Notify,
}

fn options(cfg: &ClusterConfig, name: &str) -> anyhow::Result<async_nats::ConnectOptions> {
    let mut o = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        // A node whose host vanishes (no socket closed) is given up after three unanswered pings,
        // about 15 s: within the window of inbox notices sent again after a reconnect.
        .ping_interval(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(5)))
        // Senders never wait on a slow NATS: a full buffer is an error the caller handles.
        .client_capacity(65_536)
        .subscription_capacity(65_536);
    if let (Some(user), Some(password)) = (&cfg.user, &cfg.password) {
        o = o.user_and_password(user.clone(), password.clone());
    }
    if let Some(ca) = &cfg.tls_ca {
        o = o.add_root_certificates(ca.clone());
    }
    Ok(o)
}

impl Link {
    /// Connects (in the background when NATS is not reachable yet: the broker serves its own
    /// clients meanwhile) and starts creating the buckets.
    pub async fn connect(cfg: &ClusterConfig) -> anyhow::Result<Arc<Self>> {
        let mut routing = options(cfg, &format!("broker {} routing", cfg.node))?.no_echo();
        let mut groups = options(cfg, &format!("broker {} groups", cfg.node))?;
        if let Some(creds) = &cfg.creds {
            routing = routing.credentials_file(creds).await?;
            groups = groups.credentials_file(creds).await?;
        }
        let link_slot: Arc<OnceCell<std::sync::Weak<Link>>> = Arc::new(OnceCell::new());
        let slot = link_slot.clone();
        let routing = routing.event_callback(move |event| {
            let slot = slot.clone();
            async move {
                if let Some(link) = slot.get().and_then(|w| w.upgrade()) {
                    link.on_event(event);
                }
            }
        });
        let client = routing.connect(cfg.urls.clone()).await?;
        let groups_client = groups.connect(cfg.urls.clone()).await?;
        let js = jetstream::new(client.clone());
        let link = Arc::new(Self {
            names: Names::new(&cfg.prefix),
            node: cfg.node.clone(),
            replicas: cfg.replicas.max(1),
            up: AtomicBool::new(client.connection_state() == async_nats::connection::State::Connected),
            client,
            groups_client,
            js,
            buckets: OnceCell::new(),
            reconnected: Notify::new(),
        });
        let _ = link_slot.set(Arc::downgrade(&link));
        metrics::cluster_link(link.is_up());
        Ok(link)
    }

    fn on_event(&self, event: async_nats::Event) {
        match event {
            async_nats::Event::Connected => {
                self.up.store(true, Ordering::Relaxed);
                metrics::cluster_link(true);
                tracing::info!("cluster link up");
                self.reconnected.notify_waiters();
            }
            async_nats::Event::Disconnected => {
                self.up.store(false, Ordering::Relaxed);
                metrics::cluster_link(false);
                tracing::warn!("cluster link down: serving this broker's clients locally");
            }
            async_nats::Event::SlowConsumer(sid) => {
                metrics::cluster_error("slow_consumer");
                tracing::warn!(sid, "cluster subscription too slow: messages dropped");
            }
            other => tracing::info!(event = %other, "cluster link"),
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Connected, and the buckets answered once: the cluster can hold sessions. Right after a
    /// start the connection is up seconds before JetStream has a leader for the buckets, and a
    /// client resuming a session meanwhile is refused (it may exist in a bucket not readable yet).
    pub fn is_ready(&self) -> bool {
        self.is_up() && self.buckets.initialized()
    }

    /// The buckets, created (or opened) on first use; retried until NATS answers.
    pub async fn buckets(&self) -> &Buckets {
        self.buckets
            .get_or_init(|| async {
                let mut delay = Duration::from_millis(200);
                loop {
                    match self.create_buckets().await {
                        Ok(b) => return b,
                        Err(e) => {
                            metrics::cluster_error("jetstream");
                            tracing::warn!(error = %e, "cluster buckets not ready; retrying");
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(Duration::from_secs(5));
                        }
                    }
                }
            })
            .await
    }

    async fn bucket(&self, what: &str, max_age: Duration) -> anyhow::Result<kv::Store> {
        let config = kv::Config {
            bucket: self.names.bucket(what),
            history: 1,
            max_age,
            num_replicas: self.replicas,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        };
        match self.js.get_key_value(config.bucket.clone()).await {
            Ok(store) => Ok(store),
            Err(_) => Ok(self.js.create_key_value(config).await?),
        }
    }

    async fn create_buckets(&self) -> anyhow::Result<Buckets> {
        Ok(Buckets {
            sessions: self.bucket("sessions", Duration::ZERO).await?,
            retained: self.bucket("retained", Duration::ZERO).await?,
            // A node that stops reporting drops out of the sums within a minute.
            usage: self.bucket("usage", Duration::from_secs(60)).await?,
            claims: self.bucket("claims", Duration::from_secs(600)).await?,
        })
    }

    /// The inbox stream of an instance, if it exists; an error when JetStream did not say.
    pub async fn existing_inbox(&self, instance: &str) -> anyhow::Result<Option<stream::Stream>> {
        match self.js.get_stream(self.names.inbox_stream(instance)).await {
            Ok(s) => Ok(Some(s)),
            Err(e) if is_not_found(&e.kind()) => Ok(None),
            // Anything else (a timeout under load, no quorum) says nothing about the stream: a
            // session that took it for "nothing stored" would never read its queued messages.
            Err(e) => Err(e.into()),
        }
    }

    /// The inbox stream of an instance, created with the instance's limits on first use (the
    /// limits are updated when the instance's quotas change). No byte limit: JetStream reserves a
    /// stream's byte limit on every replica up front, which would cap the number of instances by
    /// disk size; the count limit, the largest message and the age bound it instead.
    pub async fn inbox(&self, instance: &str, limits: InboxLimits) -> anyhow::Result<stream::Stream> {
        let config = stream::Config {
            name: self.names.inbox_stream(instance),
            subjects: vec![self.names.inbox_subjects(instance)],
            max_messages: i64::try_from(limits.max_messages).unwrap_or(-1),
            max_bytes: -1,
            max_age: Duration::from_secs(limits.retention_secs.max(1)),
            discard: stream::DiscardPolicy::Old,
            num_replicas: self.replicas,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            allow_direct: true,
            ..Default::default()
        };
        let mut s = self.js.get_or_create_stream(config.clone()).await?;
        let info = s.info().await?;
        let c = &info.config;
        if c.max_messages != config.max_messages || c.max_age != config.max_age {
            self.js.update_stream(config).await?;
        }
        Ok(s)
    }
}

/// What an instance's inbox stream keeps at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxLimits {
    pub max_messages: u64,
    pub retention_secs: u64,
}

fn is_not_found(kind: &GetStreamErrorKind) -> bool {
    matches!(kind, GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND)
}
