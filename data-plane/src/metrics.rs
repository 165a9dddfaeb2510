//! Every metric the broker exports, named once with its labels (Prometheus on `/metrics`; the
//! table in docs/broker.md describes them). Callers use these functions, never a name literal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::qos::QoS;

const CONNECTS: &str = "broker_connects_total";
const CONNECTIONS: &str = "broker_connections";
const SUBSCRIPTIONS: &str = "broker_subscriptions";
const OFFLINE_MESSAGES: &str = "broker_offline_messages";
const OFFLINE_DROPPED: &str = "broker_offline_dropped_total";
const MESSAGES_IN: &str = "broker_messages_in_total";
const MESSAGES_OUT: &str = "broker_messages_out_total";
const REFUSALS: &str = "broker_refusals_total";
const AUTH_FAILURES: &str = "broker_auth_failures_total";
const DROPPED: &str = "broker_dropped_total";
const THROTTLED: &str = "broker_throttled_total";
const SESSIONS_EXPIRED: &str = "broker_sessions_expired_total";
const KICKS: &str = "broker_kicks_total";
const BACKEND_MESSAGES: &str = "broker_backend_messages_total";
const CLIENT_EVENTS: &str = "broker_client_events_total";
const ONLINE_QUERIES: &str = "broker_online_queries_total";
const SNAPSHOT_VERSION: &str = "broker_snapshot_version";
const SNAPSHOT_REFUSED: &str = "broker_snapshot_refused_total";
const SNAPSHOT_INSTANCES_REFUSED: &str = "broker_snapshot_instances_refused_total";
const CONFIG_RECEIVED: &str = "broker_config_received_total";
const CONFIG_RECEIVED_BYTES: &str = "broker_config_received_bytes_total";
const DELTAS_REFUSED: &str = "broker_config_deltas_refused_total";
const SYNC_ERRORS: &str = "broker_sync_errors_total";
const SYNC_EVENTS_DROPPED: &str = "broker_sync_events_dropped_total";
const SYNC_EVENTS_REFUSED: &str = "broker_sync_events_refused_total";
const STORE_ERRORS: &str = "broker_store_errors_total";
const ACCEPT_ERRORS: &str = "broker_accept_errors_total";
const WILLS: &str = "broker_wills_total";
const CLUSTER_LINK: &str = "broker_cluster_link_up";
const CLUSTER_ERRORS: &str = "broker_cluster_errors_total";
const CLUSTER_MESSAGES: &str = "broker_cluster_messages_total";
const CLUSTER_SUBSCRIPTIONS: &str = "broker_cluster_subscriptions";
const CLUSTER_TAKEOVERS: &str = "broker_cluster_takeovers_total";
const CLUSTER_LOCAL_ONLY: &str = "broker_cluster_local_only_total";
const TRACE_RECORDS: &str = "broker_trace_records_total";
const TRACE_BYTES: &str = "broker_trace_bytes";
const RULE_MATCHED: &str = "broker_rule_matched_total";
const RULE_DELIVERED: &str = "broker_rule_delivered_total";
const RULE_FAILED: &str = "broker_rule_failed_total";
const RULE_DEAD_LETTERED: &str = "broker_rule_dead_lettered_total";
const RULE_DROPPED: &str = "broker_rule_dropped_total";
const RULE_QUEUED: &str = "broker_rule_queued";
const RULE_TARGET_REFUSED: &str = "broker_rule_target_refused_total";
const RULE_INFLOW: &str = "broker_rule_inflow_total";

/// What a refusal refused (the `packet` label of `broker_refusals_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet {
    Connect,
    Publish,
    Subscribe,
    Unsubscribe,
    /// A live session ended by the broker (credentials withdrawn, token expired).
    Session,
    Will,
    /// A message not delivered to a client (its credentials do not cover it).
    Deliver,
    /// A packet that breaks the protocol (malformed, oversize, unexpected): the connection ends.
    Frame,
}

impl Packet {
    fn label(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Publish => "publish",
            Self::Subscribe => "subscribe",
            Self::Unsubscribe => "unsubscribe",
            Self::Session => "session",
            Self::Will => "will",
            Self::Deliver => "deliver",
            Self::Frame => "frame",
        }
    }
}

/// `reason` label values of `broker_dropped_total`.
pub const DROP_QUEUE_FULL: &str = "queue_full";
/// `reason` label values of `broker_offline_dropped_total`.
pub const OFFLINE_EXPIRED: &str = "expired";
pub const OFFLINE_CAP: &str = "cap";
/// A stored message that cannot be read, or whose session record cannot be.
pub const OFFLINE_CORRUPT: &str = "corrupt";

/// Creates every series at zero, so dashboards and alerts see zeros rather than gaps.
pub fn register() {
    for name in [CONNECTS, THROTTLED] {
        metrics::counter!(name).increment(0);
    }
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        metrics::counter!(MESSAGES_IN, "qos" => qos.label()).increment(0);
        metrics::counter!(MESSAGES_OUT, "qos" => qos.label()).increment(0);
    }
    for name in [CONNECTIONS, SUBSCRIPTIONS, OFFLINE_MESSAGES] {
        metrics::gauge!(name).increment(0.0);
    }
}

pub fn connected() {
    metrics::counter!(CONNECTS).increment(1);
    metrics::gauge!(CONNECTIONS).increment(1.0);
}

pub fn disconnected() {
    metrics::gauge!(CONNECTIONS).decrement(1.0);
}

pub fn subscriptions(n: usize) {
    metrics::gauge!(SUBSCRIPTIONS).set(n as f64);
}

pub fn offline_messages(n: u64) {
    metrics::gauge!(OFFLINE_MESSAGES).set(n as f64);
}

pub fn offline_dropped(reason: &'static str, n: u64) {
    metrics::counter!(OFFLINE_DROPPED, "reason" => reason).increment(n);
}

/// Message counts by direction and QoS of one thread. Only that thread writes them, so a plain
/// load and store suffices; aligned to a cache line of its own. A shared counter's atomic adds
/// (two per message in the exporter's registry) bounced one cache line between the workers' cores:
/// 2.4 % of the broker's CPU in a fan-out profile.
#[repr(align(64))]
#[derive(Default)]
struct ThreadMessages([[AtomicU64; 3]; 2]);

/// Every thread's counts, for `publish_message_counts` (a thread that ends leaves its counts here).
static ALL_MESSAGES: Mutex<Vec<Arc<ThreadMessages>>> = Mutex::new(Vec::new());

thread_local! {
    static MESSAGES: Arc<ThreadMessages> = {
        let mine = Arc::new(ThreadMessages::default());
        ALL_MESSAGES.lock().unwrap_or_else(|e| e.into_inner()).push(mine.clone());
        mine
    };
}

/// One message received from (`out` false) or sent to (`out` true) a client.
pub fn message(out: bool, qos: QoS) {
    MESSAGES.with(|m| {
        let count = &m.0[usize::from(out)][usize::from(qos.level())];
        count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    });
}

/// Brings `broker_messages_in_total` / `broker_messages_out_total` up to the sum of every thread's
/// counts; called before each render of the metrics.
pub fn publish_message_counts() {
    let all = ALL_MESSAGES.lock().unwrap_or_else(|e| e.into_inner());
    for (dir, name) in [MESSAGES_IN, MESSAGES_OUT].into_iter().enumerate() {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let level = usize::from(qos.level());
            let total: u64 = all.iter().map(|m| m.0[dir][level].load(Ordering::Relaxed)).sum();
            metrics::counter!(name, "qos" => qos.label()).absolute(total);
        }
    }
}

pub fn refused(packet: Packet, reason: &'static str) {
    metrics::counter!(REFUSALS, "packet" => packet.label(), "reason" => reason).increment(1);
}

pub fn auth_failure(reason: &'static str) {
    metrics::counter!(AUTH_FAILURES, "reason" => reason).increment(1);
}

pub fn dropped(reason: &'static str) {
    metrics::counter!(DROPPED, "reason" => reason).increment(1);
}

pub fn throttled() {
    metrics::counter!(THROTTLED).increment(1);
}

pub fn sessions_expired(n: usize) {
    metrics::counter!(SESSIONS_EXPIRED).increment(n as u64);
}

pub fn kicks(n: usize) {
    metrics::counter!(KICKS).increment(n as u64);
}

pub fn backend_message() {
    metrics::counter!(BACKEND_MESSAGES).increment(1);
}

pub fn client_event(kind: &'static str) {
    metrics::counter!(CLIENT_EVENTS, "event" => kind).increment(1);
}

pub fn online_query(code: u8) {
    let code: &'static str = match code {
        0 => "0",
        1 => "1",
        2 => "2",
        3 => "3",
        4 => "4",
        _ => "other",
    };
    metrics::counter!(ONLINE_QUERIES, "code" => code).increment(1);
}

pub fn snapshot_version(version: i64) {
    metrics::gauge!(SNAPSHOT_VERSION).set(version as f64);
}

pub fn snapshot_refused() {
    metrics::counter!(SNAPSHOT_REFUSED).increment(1);
}

/// A configuration document received (`snapshot` or `delta`) and its size.
pub fn config_received(kind: &'static str, bytes: usize) {
    metrics::counter!(CONFIG_RECEIVED, "kind" => kind).increment(1);
    metrics::counter!(CONFIG_RECEIVED_BYTES, "kind" => kind).increment(bytes as u64);
}

/// A delta that did not fit what the broker held (the full snapshot follows).
pub fn delta_refused() {
    metrics::counter!(DELTAS_REFUSED).increment(1);
}

/// One instance of an applied snapshot refused (its previous configuration stays).
pub fn snapshot_instance_refused() {
    metrics::counter!(SNAPSHOT_INSTANCES_REFUSED).increment(1);
}

/// `exchange`: snapshot, heartbeat, events, commands.
pub fn sync_error(exchange: &'static str) {
    metrics::counter!(SYNC_ERRORS, "exchange" => exchange).increment(1);
}

/// Client events (and rules' dead letters) dropped while the control plane was away.
pub fn sync_events_dropped(n: u64) {
    metrics::counter!(SYNC_EVENTS_DROPPED).increment(n);
}

/// Client events the control plane refused for their content (dropped, the stream goes on).
pub fn sync_events_refused(n: u64) {
    metrics::counter!(SYNC_EVENTS_REFUSED).increment(n);
}

/// A durable-store operation failed (`op`: enqueue, ack, session, retained, ...).
pub fn store_error(op: &'static str) {
    metrics::counter!(STORE_ERRORS, "op" => op).increment(1);
}

/// An accept that failed for want of resources (descriptors, memory); the listener pauses.
pub fn accept_error() {
    metrics::counter!(ACCEPT_ERRORS).increment(1);
}

/// A will message: `outcome` is published, cancelled or refused.
pub fn will(outcome: &'static str) {
    metrics::counter!(WILLS, "outcome" => outcome).increment(1);
}

/// Whether the NATS link of a cluster member is up (1) or down (0).
pub fn cluster_link(up: bool) {
    metrics::gauge!(CLUSTER_LINK).set(if up { 1.0 } else { 0.0 });
}

/// A cluster operation failed (`kind`: publish, jetstream, subscribe, undecodable, funnel_full,
/// slow_consumer, order_overflow).
pub fn cluster_error(kind: &'static str) {
    metrics::counter!(CLUSTER_ERRORS, "kind" => kind).increment(1);
}

/// A message sent to (`out`) or received from (`in`) other brokers.
pub fn cluster_message(direction: &'static str) {
    cluster_messages(direction, 1);
}

/// `n` messages sent to or received from other brokers at once.
pub fn cluster_messages(direction: &'static str, n: u64) {
    metrics::counter!(CLUSTER_MESSAGES, "direction" => direction).increment(n);
}

/// NATS subscriptions this broker holds for its subscribers.
pub fn cluster_subscriptions(n: usize) {
    metrics::gauge!(CLUSTER_SUBSCRIPTIONS).set(n as f64);
}

/// A session operation done on this broker alone because NATS did not answer (recorded later).
pub fn cluster_local_only() {
    metrics::counter!(CLUSTER_LOCAL_ONLY).increment(1);
}

/// A takeover of a connection on another broker (`outcome`: acknowledged, unanswered).
pub fn cluster_takeover(outcome: &'static str) {
    metrics::counter!(CLUSTER_TAKEOVERS, "outcome" => outcome).increment(1);
}

/// One rule's counters, resolved once per rule (the publish path must not hash labels per message).
pub struct RuleCounters {
    pub matched: metrics::Counter,
    pub delivered: metrics::Counter,
    pub failed: metrics::Counter,
    pub dead_lettered: metrics::Counter,
}

pub fn rule_counters(rule: &str) -> RuleCounters {
    let c = |name: &'static str| metrics::counter!(name, "rule" => rule.to_string());
    RuleCounters {
        matched: c(RULE_MATCHED),
        delivered: c(RULE_DELIVERED),
        failed: c(RULE_FAILED),
        dead_lettered: c(RULE_DEAD_LETTERED),
    }
}

/// Deliveries a rule's outbox dropped (`reason`: overflow, age, qos0, corrupt).
pub fn rule_dropped(rule: &str, reason: &'static str, n: u64) {
    metrics::counter!(RULE_DROPPED, "rule" => rule.to_string(), "reason" => reason).increment(n);
}

/// Deliveries waiting in a rule's outbox.
pub fn rule_queued(rule: &str, n: u64) {
    metrics::gauge!(RULE_QUEUED, "rule" => rule.to_string()).set(n as f64);
}

/// A webhook connection refused by the target policy (`kind`: loopback, private, link_local,
/// metadata, unspecified).
pub fn rule_target_refused(kind: &'static str) {
    metrics::counter!(RULE_TARGET_REFUSED, "kind" => kind).increment(1);
}

/// Messages an inflow rule took from NATS (`outcome`: published, refused).
pub fn rule_inflow(rule: &str, outcome: &'static str) {
    metrics::counter!(RULE_INFLOW, "rule" => rule.to_string(), "outcome" => outcome).increment(1);
}

/// Message-trace records by outcome: `written`, `dropped` (the writer fell behind),
/// `write_failed`; and `hour_dropped` for each hour of records expired.
pub fn trace_record(outcome: &'static str) {
    trace_records(outcome, 1);
}

pub fn trace_records(outcome: &'static str, n: u64) {
    metrics::counter!(TRACE_RECORDS, "outcome" => outcome).increment(n);
}

/// Bytes the message-trace store takes on disk.
pub fn trace_bytes(bytes: u64) {
    metrics::gauge!(TRACE_BYTES).set(bytes as f64);
}
