//! Rules as the control plane keeps them and brokers run them (docs/rules.md): what a rule takes
//! (its source: published messages, client status events, or a NATS subject feeding the instance)
//! and where it sends it (its target), the envelope and webhook signature receivers verify, and
//! the per-rule figures brokers report back. Target secrets are plain only inside the snapshot,
//! which travels over the authenticated sync link; the control plane stores them encrypted.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Rule ids: `rule-` and 16 lowercase hex characters.
pub const RULE_ID_PREFIX: &str = "rule-";

/// Webhook headers (lower case as HTTP/2 sends them; HTTP/1 receivers match them case-insensitively).
pub const HEADER_RULE: &str = "x-mq-rule-id";
pub const HEADER_INSTANCE: &str = "x-mq-instance-id";
/// Unix milliseconds when the request was signed.
pub const HEADER_TIMESTAMP: &str = "x-mq-timestamp";
/// `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub const HEADER_SIGNATURE: &str = "x-mq-signature";
/// Raw-format metadata (the body is the payload itself).
pub const HEADER_TOPIC: &str = "x-mq-topic";
pub const HEADER_CLIENT_ID: &str = "x-mq-client-id";
pub const HEADER_MSG_ID: &str = "x-mq-msg-id";
pub const HEADER_QOS: &str = "x-mq-qos";
pub const HEADER_RETAIN: &str = "x-mq-retain";
pub const HEADER_TIME: &str = "x-mq-time";
/// MQTT 5 user properties of a raw-format delivery, as a JSON array of `[name, value]` pairs.
pub const HEADER_USER_PROPERTIES: &str = "x-mq-user-properties";

/// One rule of an instance, as the snapshot carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleConfig {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub source: RuleSource,
    pub target: RuleTarget,
    #[serde(default)]
    pub outbox: OutboxLimits,
}

/// What a rule takes. `N` is how the NATS server of an inflow rule is given: `NatsEndpoint` here
/// and in the snapshot; the control plane's answers show it with its secrets hidden
/// (`map_endpoint`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum RuleSource<N = NatsEndpoint> {
    /// Data outflow: every PUBLISH (and SendMessage) on a topic matching one of the filters, from a
    /// client of one of `group_ids` (every client when empty). Filters lie inside the instance's
    /// parent topics; `+` and `#` as in MQTT.
    #[serde(rename_all = "camelCase")]
    Outflow {
        topic_filters: Vec<String>,
        #[serde(default)]
        group_ids: Vec<String>,
    },
    /// Client status notification: connect, disconnect and tcpclean events of clients of
    /// `group_ids` (every client when empty), in Alibaba's JSON form (`StatusEvent`).
    #[serde(rename_all = "camelCase")]
    Status {
        #[serde(default)]
        group_ids: Vec<String>,
    },
    /// Data inflow (`InflowSource`).
    Inflow(InflowSource<N>),
}

/// Data inflow: messages of a NATS subject (core, through a queue group) or of a JetStream stream
/// (through one durable consumer shared by every broker) published into the instance, once per
/// cluster, on `topic` (`{subject}` in it is replaced by the message's subject with `.` turned into
/// `/`), with the rule's QoS and retain flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InflowSource<N = NatsEndpoint> {
    pub nats: N,
    pub subject: String,
    /// When set, read through a durable consumer on this stream instead of core NATS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    pub topic: String,
    #[serde(default)]
    pub qos: u8,
    #[serde(default)]
    pub retain: bool,
}

impl<N> RuleSource<N> {
    pub fn kind(&self) -> RuleKind {
        match self {
            Self::Outflow { .. } => RuleKind::Outflow,
            Self::Status { .. } => RuleKind::Status,
            Self::Inflow(_) => RuleKind::Inflow,
        }
    }

    /// The same source with the NATS server of an inflow rule given as `f` makes it.
    pub fn map_endpoint<M>(self, f: impl FnOnce(N) -> M) -> RuleSource<M> {
        match self {
            Self::Outflow {
                topic_filters,
                group_ids,
            } => RuleSource::Outflow {
                topic_filters,
                group_ids,
            },
            Self::Status { group_ids } => RuleSource::Status { group_ids },
            Self::Inflow(i) => RuleSource::Inflow(InflowSource {
                nats: f(i.nats),
                subject: i.subject,
                stream: i.stream,
                topic: i.topic,
                qos: i.qos,
                retain: i.retain,
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RuleKind {
    Outflow,
    Status,
    Inflow,
}

/// Where a rule sends what it takes (an inflow rule's target is always its instance: `Republish`
/// is not used for it; its target is ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum RuleTarget {
    /// HTTP(S) POST. 2xx = delivered; 5xx, 408, 429 and timeouts are retried; any other answer
    /// dead-letters the delivery.
    #[serde(rename_all = "camelCase")]
    Webhook {
        url: String,
        #[serde(default)]
        format: WebhookFormat,
        /// Signs every request (`HEADER_SIGNATURE`); plain only in the snapshot.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
        #[serde(default = "default_timeout_ms")]
        timeout_ms: u64,
    },
    /// A NATS subject; with `jetstream` the publish must be acknowledged by a stream.
    #[serde(rename_all = "camelCase")]
    Nats {
        nats: NatsEndpoint,
        subject: String,
        #[serde(default)]
        jetstream: bool,
    },
    /// Another topic of the same instance.
    #[serde(rename_all = "camelCase")]
    Republish {
        topic: String,
        #[serde(default)]
        qos: u8,
        #[serde(default)]
        retain: bool,
    },
}

fn default_timeout_ms() -> u64 {
    5_000
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WebhookFormat {
    /// The body is an `Envelope` (outflow) or a `StatusEvent` (status), as JSON.
    #[default]
    Json,
    /// The body is the message payload; its metadata is in `x-mq-*` headers (outflow only).
    Raw,
}

/// A NATS server of the user's (it may be the cluster's own). Secrets are plain only in the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NatsEndpoint {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Content of a NATS credentials file (JWT + NKey seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creds: Option<String>,
}

/// Bounds of a rule's outbox on each broker: beyond either the oldest deliveries are dropped
/// (counted) and the rule is reported overflowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OutboxLimits {
    pub max_bytes: u64,
    pub max_age_secs: u64,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            max_age_secs: 3 * 24 * 3600,
        }
    }
}

/// Whether webhook targets may reach loopback and private addresses (operator's choice, made in
/// the control plane's configuration and carried to brokers in the snapshot). Link-local and
/// cloud metadata addresses are always refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TargetPolicy {
    pub allow_loopback: bool,
    pub allow_private: bool,
}

/// What an outflow rule sends (JSON webhook body, NATS message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub rule_id: String,
    pub instance_id: String,
    pub topic: String,
    /// Base64 (standard alphabet, padded).
    pub payload: String,
    pub qos: u8,
    pub retain: bool,
    pub client_id: String,
    /// 32 upper-case hex characters, as MQTT message ids elsewhere.
    pub msg_id: String,
    /// When the broker accepted the message, unix milliseconds.
    pub time: i64,
    /// MQTT 5 user properties, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_properties: Vec<(String, String)>,
}

/// What a status rule sends: Alibaba's client status message *(compat)*.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusEvent {
    pub client_id: String,
    pub time: i64,
    /// `connect`, `disconnect` or `tcpclean`.
    pub event_type: String,
    pub channel_id: String,
    pub client_ip: String,
}

/// `v1=<hex HMAC-SHA256(secret, "<timestamp_ms>.<body>")>`, the value of `HEADER_SIGNATURE`.
pub fn webhook_signature(secret: &[u8], timestamp_ms: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp_ms.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a received signature in constant time.
pub fn verify_webhook_signature(secret: &[u8], timestamp_ms: i64, body: &[u8], header: &str) -> bool {
    crate::signing::constant_time_eq(
        webhook_signature(secret, timestamp_ms, body).as_bytes(),
        header.as_bytes(),
    )
}

/// One rule's figures on one broker since it started (the control plane adds up the brokers').
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleStats {
    pub rule_id: String,
    pub instance_id: String,
    /// Messages or events the source matched.
    pub matched: u64,
    pub delivered: u64,
    /// Failed attempts (each retry counts).
    pub failed: u64,
    /// Dropped: outbox over its limits, or QoS 0 messages under pressure.
    pub dropped: u64,
    pub dead_lettered: u64,
    /// Waiting in the outbox now.
    pub queued: u64,
    pub queued_bytes: u64,
    /// The outbox is at its limits and drops the oldest.
    pub overflowing: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at_ms: Option<i64>,
}

/// A delivery the target refused for good (or that could not be built), reported to the control
/// plane, which keeps the latest per rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub rule_id: String,
    pub instance_id: String,
    pub at_ms: i64,
    /// The target's HTTP status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    /// The first 4 KiB of the body that was refused, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_head: Option<String>,
}

/// `POST {SYNC_BASE}/dead-letters` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterBatch {
    pub boot_id: String,
    pub letters: Vec<DeadLetter>,
}

/// The answer of a broker to a `TestRule` command: `POST {SYNC_BASE}/command-results`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    pub request_id: String,
    pub node_id: String,
    pub delivered: bool,
    /// The target's HTTP status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub latency_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_with_its_secret_timestamp_and_body() {
        let sig = webhook_signature(b"s3cret", 1_700_000_000_000, b"{\"a\":1}");
        assert!(sig.starts_with("v1=") && sig.len() == 3 + 64);
        assert!(verify_webhook_signature(
            b"s3cret",
            1_700_000_000_000,
            b"{\"a\":1}",
            &sig
        ));
        assert!(!verify_webhook_signature(
            b"other",
            1_700_000_000_000,
            b"{\"a\":1}",
            &sig
        ));
        assert!(!verify_webhook_signature(
            b"s3cret",
            1_700_000_000_001,
            b"{\"a\":1}",
            &sig
        ));
        assert!(!verify_webhook_signature(
            b"s3cret",
            1_700_000_000_000,
            b"{\"a\":2}",
            &sig
        ));
    }

    #[test]
    fn rules_read_back_as_written() {
        let rule = RuleConfig {
            id: "rule-0123456789abcdef".into(),
            name: "to backend".into(),
            enabled: true,
            source: RuleSource::Outflow {
                topic_filters: vec!["T/+/up".into()],
                group_ids: vec![],
            },
            target: RuleTarget::Webhook {
                url: "https://example.com/hook".into(),
                format: WebhookFormat::Json,
                secret: Some("k".into()),
                timeout_ms: 5_000,
            },
            outbox: OutboxLimits::default(),
        };
        let json = serde_json::to_value(&rule).unwrap();
        assert_eq!(json["source"]["kind"], "outflow");
        assert_eq!(json["target"]["type"], "webhook");
        let back: RuleConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, rule);
    }

    #[test]
    fn an_inflow_source_is_one_flat_object_tagged_with_its_kind() {
        let json = serde_json::json!({
            "kind": "inflow",
            "nats": {"urls": ["nats://127.0.0.1:4222"], "token": "t"},
            "subject": "in.>",
            "topic": "T/{subject}",
            "qos": 1,
            "retain": false
        });
        let source: RuleSource = serde_json::from_value(json.clone()).unwrap();
        let RuleSource::Inflow(inflow) = &source else {
            panic!("{source:?}")
        };
        assert_eq!(
            (
                inflow.subject.as_str(),
                inflow.stream.as_deref(),
                inflow.nats.token.as_deref()
            ),
            ("in.>", None, Some("t"))
        );
        assert_eq!(serde_json::to_value(&source).unwrap(), json);
        let shown = source.map_endpoint(|n| n.urls.len());
        assert_eq!(shown.kind(), RuleKind::Inflow);
        assert_eq!(serde_json::to_value(&shown).unwrap()["nats"], serde_json::json!(1));
    }
}
