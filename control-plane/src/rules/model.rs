//! A rule as the API takes it and shows it. Requests may carry target secrets (write-only: on an
//! update an absent secret keeps the stored one, an empty one removes it); answers only say whether
//! one is set (`hasSecret`, `hasPassword`, ...). Both convert to and from the `common::rules` types
//! brokers run.
//!
//! Why it is long (about 430 lines): each of the four target kinds needs its request, answer and
//! conversion types, and keeping them together keeps the write-only secret rule in one place.

use chrono::{DateTime, Utc};
use common::rules::{InflowSource, NatsEndpoint, OutboxLimits, RuleKind, RuleSource, RuleTarget, WebhookFormat};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A NATS server of yours (it may be the cluster's own).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NatsEndpointInput {
    /// 1-10 URLs (`nats://`, `tls://`, `ws://` or `wss://`, host and port; no credentials in them).
    pub urls: Vec<String>,
    pub user: Option<String>,
    /// Write-only. On update: absent keeps the stored one, `""` removes it.
    pub password: Option<String>,
    /// Write-only, as `password`.
    pub token: Option<String>,
    /// Write-only, as `password`: the content of a NATS credentials file (JWT and NKey seed).
    pub creds: Option<String>,
}

/// A NATS server as answers show it: whether each secret is set, never its value.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NatsEndpointView {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub has_password: bool,
    pub has_token: bool,
    pub has_creds: bool,
}

/// What the rule takes; `kind` is the rule's kind.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum RuleSourceInput {
    /// Data outflow: every PUBLISH (and SendMessage) on a topic matching one of the filters.
    #[serde(rename_all = "camelCase")]
    Outflow {
        /// 1-16 MQTT topic filters, each under a parent topic of the instance (`+` and `#` allowed).
        topic_filters: Vec<String>,
        /// Only clients of these group IDs of the instance (every client when empty).
        #[serde(default)]
        group_ids: Vec<String>,
    },
    /// Client status notification: connect, disconnect and tcpclean events.
    #[serde(rename_all = "camelCase")]
    Status {
        /// Only clients of these group IDs of the instance (every client when empty).
        #[serde(default)]
        group_ids: Vec<String>,
    },
    /// Data inflow: messages of a NATS subject (or a JetStream stream) published into the instance.
    #[serde(rename_all = "camelCase")]
    Inflow {
        nats: NatsEndpointInput,
        /// NATS subject (`*` and `>` wildcards allowed).
        subject: String,
        /// Read through one durable consumer on this JetStream stream instead of core NATS.
        #[serde(default)]
        stream: Option<String>,
        /// MQTT topic under a parent topic of the instance; `{subject}` in it is replaced by the
        /// message's subject with `.` turned into `/`.
        topic: String,
        /// 0, 1 or 2 [default 0].
        #[serde(default)]
        qos: u8,
        #[serde(default)]
        retain: bool,
    },
}

// The schema of a source in answers, which carry a `RuleSource<NatsEndpointView>` (`source_view`):
// never built, it only describes that value's JSON (a plain comment: doc comments go into the
// OpenAPI document).
#[allow(dead_code)]
#[derive(ToSchema)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum RuleSourceView {
    #[serde(rename_all = "camelCase")]
    Outflow {
        topic_filters: Vec<String>,
        group_ids: Vec<String>,
    },
    #[serde(rename_all = "camelCase")]
    Status { group_ids: Vec<String> },
    #[serde(rename_all = "camelCase")]
    Inflow {
        nats: NatsEndpointView,
        subject: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        stream: Option<String>,
        topic: String,
        qos: u8,
        retain: bool,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum WebhookBodyFormat {
    /// The JSON envelope (outflow) or status event (status).
    #[default]
    Json,
    /// The payload itself, its metadata in `x-mq-*` headers (outflow rules only).
    Raw,
}

/// Where the rule sends what it takes (not given for inflow rules: their target is the instance).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum RuleTargetInput {
    /// HTTP(S) POST; 2xx = delivered, 5xx/408/429/timeouts are retried, other answers dead-letter.
    #[serde(rename_all = "camelCase")]
    Webhook {
        /// `http://` or `https://` URL, at most 2048 characters, no credentials in it.
        url: String,
        #[serde(default)]
        format: WebhookBodyFormat,
        /// Write-only, 8-1024 characters: signs every request (`x-mq-signature`). On update:
        /// absent keeps the stored one, `""` removes it.
        secret: Option<String>,
        /// 100-60000 [default 5000].
        timeout_ms: Option<u64>,
    },
    /// A NATS subject; with `jetstream` the publish must be acknowledged by a stream.
    #[serde(rename_all = "camelCase")]
    Nats {
        nats: NatsEndpointInput,
        /// Subject without wildcards.
        subject: String,
        #[serde(default)]
        jetstream: bool,
    },
    /// Another topic of the same instance (not one the rule's own filters match).
    #[serde(rename_all = "camelCase")]
    Republish {
        topic: String,
        /// 0, 1 or 2 [default 0].
        #[serde(default)]
        qos: u8,
        #[serde(default)]
        retain: bool,
    },
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum RuleTargetView {
    #[serde(rename_all = "camelCase")]
    Webhook {
        url: String,
        format: WebhookBodyFormat,
        has_secret: bool,
        timeout_ms: u64,
    },
    #[serde(rename_all = "camelCase")]
    Nats {
        nats: NatsEndpointView,
        subject: String,
        jetstream: bool,
    },
    #[serde(rename_all = "camelCase")]
    Republish { topic: String, qos: u8, retain: bool },
}

/// Bounds of the rule's outbox on each broker: beyond either, the oldest deliveries are dropped.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboxInput {
    /// 1 MiB to 1 GiB [default 64 MiB].
    pub max_bytes: Option<u64>,
    /// 60 s to 7 days [default 3 days].
    pub max_age_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxView {
    pub max_bytes: u64,
    pub max_age_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum RuleKindView {
    Outflow,
    Status,
    Inflow,
}

/// The rule's figures, summed over the brokers that reported it (counters since each broker
/// started; docs/rules.md).
// `db::rule_reports::stats` reads it from the sums.
#[derive(Debug, Clone, Default, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct RuleStatus {
    /// Messages or events the source matched.
    pub matched: i64,
    pub delivered: i64,
    /// Failed delivery attempts (each retry counts).
    pub failed: i64,
    /// Dropped: the outbox over its limits, or QoS 0 messages under pressure.
    pub dropped: i64,
    pub dead_lettered: i64,
    /// Waiting in the outboxes now.
    pub queued: i64,
    pub queued_bytes: i64,
    /// Some broker's outbox is at its limits and drops the oldest.
    pub overflowing: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<DateTime<Utc>>,
    /// Brokers whose figures are in these sums.
    pub reporting_brokers: i64,
}

impl From<&NatsEndpointInput> for NatsEndpoint {
    fn from(n: &NatsEndpointInput) -> Self {
        Self {
            urls: n.urls.clone(),
            user: n.user.clone(),
            password: n.password.clone(),
            token: n.token.clone(),
            creds: n.creds.clone(),
        }
    }
}

impl From<&NatsEndpoint> for NatsEndpointView {
    fn from(n: &NatsEndpoint) -> Self {
        Self {
            urls: n.urls.clone(),
            user: n.user.clone(),
            has_password: n.password.is_some(),
            has_token: n.token.is_some(),
            has_creds: n.creds.is_some(),
        }
    }
}

impl From<&RuleSourceInput> for RuleSource {
    fn from(s: &RuleSourceInput) -> Self {
        match s {
            RuleSourceInput::Outflow {
                topic_filters,
                group_ids,
            } => Self::Outflow {
                topic_filters: topic_filters.clone(),
                group_ids: group_ids.clone(),
            },
            RuleSourceInput::Status { group_ids } => Self::Status {
                group_ids: group_ids.clone(),
            },
            RuleSourceInput::Inflow {
                nats,
                subject,
                stream,
                topic,
                qos,
                retain,
            } => Self::Inflow(InflowSource {
                nats: nats.into(),
                subject: subject.clone(),
                stream: stream.clone(),
                topic: topic.clone(),
                qos: *qos,
                retain: *retain,
            }),
        }
    }
}

/// A source as answers show it (schema `RuleSourceView`). Secrets must already be resolved
/// (`secrets::resolve`): only their presence shows.
pub fn source_view(s: &RuleSource) -> RuleSource<NatsEndpointView> {
    s.clone().map_endpoint(|n| NatsEndpointView::from(&n))
}

/// The default webhook timeout (`common::rules` has the same when the field is missing).
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;

impl From<&RuleTargetInput> for RuleTarget {
    fn from(t: &RuleTargetInput) -> Self {
        match t {
            RuleTargetInput::Webhook {
                url,
                format,
                secret,
                timeout_ms,
            } => Self::Webhook {
                url: url.clone(),
                format: match format {
                    WebhookBodyFormat::Json => WebhookFormat::Json,
                    WebhookBodyFormat::Raw => WebhookFormat::Raw,
                },
                secret: secret.clone(),
                timeout_ms: timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
            },
            RuleTargetInput::Nats {
                nats,
                subject,
                jetstream,
            } => Self::Nats {
                nats: nats.into(),
                subject: subject.clone(),
                jetstream: *jetstream,
            },
            RuleTargetInput::Republish { topic, qos, retain } => Self::Republish {
                topic: topic.clone(),
                qos: *qos,
                retain: *retain,
            },
        }
    }
}

impl From<&RuleTarget> for RuleTargetView {
    fn from(t: &RuleTarget) -> Self {
        match t {
            RuleTarget::Webhook {
                url,
                format,
                secret,
                timeout_ms,
            } => Self::Webhook {
                url: url.clone(),
                format: match format {
                    WebhookFormat::Json => WebhookBodyFormat::Json,
                    WebhookFormat::Raw => WebhookBodyFormat::Raw,
                },
                has_secret: secret.is_some(),
                timeout_ms: *timeout_ms,
            },
            RuleTarget::Nats {
                nats,
                subject,
                jetstream,
            } => Self::Nats {
                nats: nats.into(),
                subject: subject.clone(),
                jetstream: *jetstream,
            },
            RuleTarget::Republish { topic, qos, retain } => Self::Republish {
                topic: topic.clone(),
                qos: *qos,
                retain: *retain,
            },
        }
    }
}

impl OutboxInput {
    pub fn apply(&self, mut limits: OutboxLimits) -> OutboxLimits {
        if let Some(b) = self.max_bytes {
            limits.max_bytes = b;
        }
        if let Some(a) = self.max_age_secs {
            limits.max_age_secs = a;
        }
        limits
    }
}

impl From<OutboxLimits> for OutboxView {
    fn from(o: OutboxLimits) -> Self {
        Self {
            max_bytes: o.max_bytes,
            max_age_secs: o.max_age_secs,
        }
    }
}

impl From<RuleKind> for RuleKindView {
    fn from(k: RuleKind) -> Self {
        match k {
            RuleKind::Outflow => Self::Outflow,
            RuleKind::Status => Self::Status,
            RuleKind::Inflow => Self::Inflow,
        }
    }
}

/// The `rules.kind` column.
pub fn kind_name(kind: RuleKind) -> &'static str {
    match kind {
        RuleKind::Outflow => "outflow",
        RuleKind::Status => "status",
        RuleKind::Inflow => "inflow",
    }
}

/// An inflow rule's target as brokers get it: its own instance, on the source's topic (brokers
/// ignore it; `RuleConfig` needs one).
pub fn inflow_target(source: &RuleSource) -> Option<RuleTarget> {
    match source {
        RuleSource::Inflow(i) => Some(RuleTarget::Republish {
            topic: i.topic.clone(),
            qos: i.qos,
            retain: i.retain,
        }),
        _ => None,
    }
}
