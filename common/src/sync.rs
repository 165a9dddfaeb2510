//! The control plane <-> broker protocol (brokers start every exchange; docs/sync-protocol.md): snapshot
//! long-poll, status heartbeat, client events and broadcast commands. Paths and JSON bodies here are
//! the contract; docs/sync-protocol.md describes the exchanges.

use serde::{Deserialize, Serialize};

/// Base path of the broker-facing endpoints on the control plane.
pub const SYNC_BASE: &str = "/api/v1/broker-sync";
/// `GET  {SYNC_BASE}/snapshot?after=<version>&waitSecs=<n>`: 200 + `Snapshot` when the current version
/// differs from `after` (at once), else 204 after at most `waitSecs` (long-poll, max 60).
pub const SNAPSHOT_PATH: &str = "/api/v1/broker-sync/snapshot";
/// `POST {SYNC_BASE}/heartbeat` with `Heartbeat`: 204.
pub const HEARTBEAT_PATH: &str = "/api/v1/broker-sync/heartbeat";
/// `POST {SYNC_BASE}/events` with `EventBatch`: 204.
pub const EVENTS_PATH: &str = "/api/v1/broker-sync/events";
/// `GET  {SYNC_BASE}/commands?after=<seq>&waitSecs=<n>`: 200 + `CommandBatch` (long-poll; an empty
/// batch after `waitSecs`). `after` absent = start from now (only `latestSeq` is returned).
pub const COMMANDS_PATH: &str = "/api/v1/broker-sync/commands";

/// `POST {SYNC_BASE}/dead-letters` with `rules::DeadLetterBatch`: 204.
pub const DEAD_LETTERS_PATH: &str = "/api/v1/broker-sync/dead-letters";
/// `POST {SYNC_BASE}/command-results` with `rules::TestResult`: 204.
pub const COMMAND_RESULTS_PATH: &str = "/api/v1/broker-sync/command-results";
/// POST a broker's answer to a `TraceQuery` command (`TraceAnswer`).
pub const TRACE_ANSWERS_PATH: &str = "/api/v1/broker-sync/trace-answers";

/// Every sync request carries `Authorization: Node <nodeId>:<nodeSecret>` (per-node credential).
pub const NODE_AUTH_SCHEME: &str = "Node";

/// `Authorization` header value for a node.
pub fn node_authorization(node_id: &str, secret: &str) -> String {
    format!("{NODE_AUTH_SCHEME} {node_id}:{secret}")
}

/// Parses `Node <nodeId>:<secret>`.
pub fn parse_node_authorization(header: &str) -> Option<(&str, &str)> {
    let rest = header.strip_prefix(NODE_AUTH_SCHEME)?.strip_prefix(' ')?;
    let (id, secret) = rest.split_once(':')?;
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

/// What a broker reports every few seconds; the control plane shows nodes as in sync, lagging or silent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    /// Random per process start: when it changes, the node restarted and its client list starts empty.
    pub boot_id: String,
    pub software_version: String,
    pub applied_version: i64,
    pub applied_hash: String,
    /// `config_digest::of_instances` of what the broker serves at `applied_version` (hex), absent
    /// while it refuses some instance; the control plane compares it with its own and, on a
    /// mismatch, sends the full snapshot next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<String>,
    /// Why the last snapshot was refused or could not be fetched, if it was.
    pub last_error: Option<String>,
    pub connections: u64,
    pub subscriptions: u64,
    pub messages_in_per_sec: f64,
    pub messages_out_per_sec: f64,
    pub started_at_ms: i64,
    /// In a cluster: whether the broker's NATS link is up; absent for a broker that runs alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_link: Option<bool>,
    /// Per-instance figures of this broker (the control plane adds up the brokers').
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<InstanceUsage>,
    /// Per-rule figures of this broker since it started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<crate::rules::RuleStats>,
}

/// One instance's use of one broker, for its quotas and charts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceUsage {
    pub instance_id: String,
    /// Live connections on this broker.
    pub connections: u64,
    /// Subscriptions of sessions on this broker.
    pub subscriptions: u64,
    pub messages_in_per_sec: f64,
    pub messages_out_per_sec: f64,
    /// Offline messages stored for the instance. A broker alone reports its own store; brokers of a
    /// cluster report the cluster's shared inbox, so the control plane takes the largest report
    /// rather than the sum.
    pub offline_messages: u64,
}

/// Client status event of docs/spec.md 3.8, plus the subscription changes the control plane needs to answer
/// session queries. `eventType` values: `connect`, `disconnect`, `tcpclean`, `subscribe`, `unsubscribe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientEvent {
    pub instance_id: String,
    pub client_id: String,
    pub event_type: ClientEventType,
    /// Epoch milliseconds.
    pub time: i64,
    /// 32 hex chars, unique per TCP connection.
    pub channel_id: String,
    /// `ip:port` of the client.
    pub client_ip: String,
    /// Topic filters for `subscribe` / `unsubscribe`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// Why the connection ended (`tcpclean` only; absent from brokers that predate it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<CloseReason>,
}

/// Why a connection ended or a CONNECT was refused, in the words of Alibaba's device trace
/// (`ActionInfo`) where it has one *(compat)*; the last three are ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CloseReason {
    /// A refused CONNECT, or credentials withdrawn since (revoked, disabled, deleted, blacklisted).
    #[serde(rename = "not authorized")]
    NotAuthorized,
    /// Another connection took over the client ID, or a second one was refused.
    #[serde(rename = "clientId conflict")]
    ClientIdConflict,
    /// A PUBLISH or SUBSCRIBE outside what the credentials allow (MQTT 3.1.1 closes).
    #[serde(rename = "resource auth failed")]
    ResourceAuthFailed,
    /// Nothing arrived within 1.5 keep-alive periods.
    #[serde(rename = "no heart")]
    NoHeart,
    /// The client closed the TCP connection without DISCONNECT.
    #[serde(rename = "closed by client")]
    ClosedByClient,
    /// The client sent DISCONNECT.
    #[serde(rename = "disconnected by client")]
    DisconnectedByClient,
    /// A malformed or oversized packet, or a refused client ID.
    #[serde(rename = "invalid param")]
    InvalidParam,
    /// The connection failed with an I/O error.
    #[serde(rename = "Socket IOException")]
    SocketIoException,
    /// CloseConnection, or the broker shutting down.
    #[serde(rename = "closed by server")]
    ClosedByServer,
    /// A CONNECT refused by the instance's connection or persistent-session quota.
    #[serde(rename = "quota exceeded")]
    QuotaExceeded,
    /// A CONNECT refused because the session could not be opened (cluster unreachable).
    #[serde(rename = "server unavailable")]
    ServerUnavailable,
    /// A reason this version does not know (from a newer broker).
    #[serde(other, rename = "other")]
    Other,
}

impl CloseReason {
    /// The wire word (`"no heart"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotAuthorized => "not authorized",
            Self::ClientIdConflict => "clientId conflict",
            Self::ResourceAuthFailed => "resource auth failed",
            Self::NoHeart => "no heart",
            Self::ClosedByClient => "closed by client",
            Self::DisconnectedByClient => "disconnected by client",
            Self::InvalidParam => "invalid param",
            Self::SocketIoException => "Socket IOException",
            Self::ClosedByServer => "closed by server",
            Self::QuotaExceeded => "quota exceeded",
            Self::ServerUnavailable => "server unavailable",
            Self::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientEventType {
    Connect,
    Disconnect,
    Tcpclean,
    Subscribe,
    Unsubscribe,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventBatch {
    pub boot_id: String,
    pub events: Vec<ClientEvent>,
}

/// Commands the control plane broadcasts to every broker; each broker acts on what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Command {
    /// Close every live connection of the client (kick).
    #[serde(rename_all = "camelCase")]
    CloseConnection { instance_id: String, client_id: String },
    /// Publish from the backend as if a client had (subscribers and P2P targets on this node).
    #[serde(rename_all = "camelCase")]
    SendMessage {
        instance_id: String,
        topic: String,
        /// Base64 payload.
        payload: String,
        qos: u8,
        /// 32 upper-case hex chars *(compat)*.
        msg_id: String,
        /// Brokers not joined in a cluster each publish to their own clients: only this node runs
        /// the instance's outflow rules for the message (in a cluster, the broker that claims the
        /// command publishes it once and runs them).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rules_node: Option<String>,
    },
    /// Send one sample through a rule's target and answer with a `rules::TestResult`. Only
    /// `node_id` acts, once its configuration is at `min_version` or later (the rule as saved).
    #[serde(rename_all = "camelCase")]
    TestRule {
        instance_id: String,
        rule_id: String,
        request_id: String,
        node_id: String,
        min_version: i64,
    },
    /// Every broker answers with the message-trace records it holds that match (`TraceAnswer`).
    #[serde(rename_all = "camelCase")]
    TraceQuery { request_id: String, query: TraceQuery },
    /// A command of a newer control plane: ignored, so that it cannot stop the commands after it.
    #[serde(other)]
    Unknown,
}

/// How long brokers keep message trace records *(compat: Alibaba keeps traces 3 days)*.
pub const TRACE_RETENTION_HOURS: i64 = 72;

/// Which message-trace records a broker returns: of one instance, in `[begin_ms, end_ms)`, of the
/// message `msg_id` and/or of the client `client_id`, the oldest (or newest) `limit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceQuery {
    pub instance_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Only publications (`pub_mqtt`, `pub_mq`) or only deliveries (`sub`, `push_offline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<TraceKind>,
    pub begin_ms: i64,
    pub end_ms: i64,
    pub limit: u32,
    /// The newest `limit` instead of the oldest.
    #[serde(default)]
    pub newest_first: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceKind {
    Publish,
    Delivery,
}

/// What happened to a message, in the words of Alibaba's message trace *(compat)*.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TraceAction {
    /// Published by an MQTT client.
    #[serde(rename = "pub_mqtt")]
    PubMqtt,
    /// Published by the backend (SendMessage, an inflow rule).
    #[serde(rename = "pub_mq")]
    PubBackend,
    /// Pushed to a connected subscriber.
    #[serde(rename = "sub")]
    Sub,
    /// Pushed to a client from its offline messages.
    #[serde(rename = "push_offline")]
    PushOffline,
}

impl TraceAction {
    pub fn kind(self) -> TraceKind {
        match self {
            Self::PubMqtt | Self::PubBackend => TraceKind::Publish,
            Self::Sub | Self::PushOffline => TraceKind::Delivery,
        }
    }
}

/// One traced step of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceRecord {
    /// Epoch ms.
    pub time: i64,
    /// 32 upper-case hex characters (the id SendMessage returns).
    pub msg_id: String,
    /// The publisher (empty for the backend) or the receiver.
    pub client_id: String,
    pub action: TraceAction,
}

/// A broker's answer to a `TraceQuery`: its matching records in the order asked; `truncated` when
/// it holds more than the query's limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceAnswer {
    pub request_id: String,
    pub node_id: String,
    pub records: Vec<TraceRecord>,
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SequencedCommand {
    pub seq: i64,
    pub command: Command,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandBatch {
    /// The highest sequence number issued so far; poll again with `after=latestSeq`.
    pub latest_seq: i64,
    pub commands: Vec<SequencedCommand>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_authorization_roundtrip() {
        let h = node_authorization("node-1", "s3cr:et");
        assert_eq!(parse_node_authorization(&h), Some(("node-1", "s3cr:et")));
        assert_eq!(parse_node_authorization("Bearer x"), None);
        assert_eq!(parse_node_authorization("Node :x"), None);
    }

    #[test]
    fn command_json_shape() {
        let c = Command::CloseConnection {
            instance_id: "mqtt-abcdefabcdef".into(),
            client_id: "GID_a@@@b".into(),
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"closeConnection","instanceId":"mqtt-abcdefabcdef","clientId":"GID_a@@@b"}"#
        );
        let e: ClientEventType = serde_json::from_str("\"tcpclean\"").unwrap();
        assert_eq!(e, ClientEventType::Tcpclean);
        let r: CloseReason = serde_json::from_str("\"no heart\"").unwrap();
        assert_eq!((r, r.as_str()), (CloseReason::NoHeart, "no heart"));
        assert_eq!(
            serde_json::to_string(&CloseReason::SocketIoException).unwrap(),
            "\"Socket IOException\""
        );
        let newer: CloseReason = serde_json::from_str("\"some new reason\"").unwrap();
        assert_eq!(newer, CloseReason::Other);
    }

    #[test]
    fn a_command_of_a_newer_control_plane_reads_as_unknown() {
        let c: Command = serde_json::from_str(r#"{"kind":"somethingNew","field":1}"#).unwrap();
        assert_eq!(c, Command::Unknown);
        let q: Command = serde_json::from_str(
            r#"{"kind":"traceQuery","requestId":"r","query":{"instanceId":"i","beginMs":0,"endMs":1,"limit":5}}"#,
        )
        .unwrap();
        assert!(matches!(q, Command::TraceQuery { query, .. } if !query.newest_first && query.limit == 5));
    }
}
