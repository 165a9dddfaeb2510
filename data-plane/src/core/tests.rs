//! The broker core without sockets: sessions and takeover, expiry, fan-out into mailboxes and the
//! offline queue, shared-subscription round-robin, retained messages and deferred wills.

use std::collections::BTreeMap;
use std::sync::Arc;

use common::qos::QoS;
use common::snapshot::{AccessKeyGrant, InstanceConfig, Snapshot, SnapshotContent};
use ntex_bytes::Bytes;

use super::mailbox::{Ctl, Mail, Mailbox};
use super::sessions::ConnHandle;
use super::subscriptions::{RetainHandling, SubOptions};
use super::wills::DeferredWill;
use super::*;
use crate::auth::{Credential, Mode, Tokens};
use crate::directory::Directories;
use crate::message::Message;
use crate::store::FjallStore;

const INST: &str = "mqtt-coreunittest";

struct Fixture {
    broker: Arc<Broker>,
    _dir: tempfile::TempDir,
    next: u64,
}

fn instance(max_connections: u32) -> InstanceConfig {
    InstanceConfig {
        rules: Vec::new(),
        custom_auth: Default::default(),
        id: INST.into(),
        name: "core".into(),
        quotas: common::quotas::Quotas {
            max_connections,
            max_subscriptions_per_client: 3,
            max_wildcard_subscriptions_per_parent_topic: 2,
            ..Default::default()
        },
        reject_duplicate_client_id: false,
        parent_topics: vec!["T".into()],
        group_ids: vec!["GID_core".into()],
        access_keys: vec![AccessKeyGrant {
            access_key_id: "AK".into(),
            access_key_secret: "SK".into(),
            enabled: true,
        }],
        device_credentials: vec![],
        revoked_tokens: vec![],
    }
}

impl Fixture {
    fn new() -> Self {
        Self::with(instance(100))
    }

    fn with(inst: InstanceConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::open(dir, inst)
    }

    fn open(dir: tempfile::TempDir, inst: InstanceConfig) -> Self {
        let dirs = Directories::new(None);
        let content = SnapshotContent {
            rule_policy: Default::default(),
            token_keys: vec![],
            instances: vec![inst],
        };
        dirs.apply_snapshot(Snapshot::new(1, content)).unwrap();
        let (parts, _) = Parts::embedded(FjallStore::open_shared(dir.path()).unwrap()).unwrap();
        let limits = Limits {
            max_inflight: 16,
            max_queued: 100,
            max_queued_bytes: 1 << 20,
        };
        Self {
            broker: Arc::new(Broker::new(dirs, parts, limits)),
            _dir: dir,
            next: 0,
        }
    }

    fn inst(&self) -> Arc<crate::directory::Instance> {
        self.broker.dirs.load().instances.get(INST).unwrap().clone()
    }

    /// Opens a session for `client` and returns its mailbox, connection id and what it found.
    async fn connect(&mut self, client: &str, persistent: bool, clean: bool) -> (Arc<Mailbox>, u64, Session) {
        self.next += 1;
        let mailbox = Arc::new(Mailbox::new(100, 1 << 20));
        let req = SessionRequest {
            clean_start: clean,
            persistent,
            expiry_secs: None,
            handle: ConnHandle {
                conn_id: self.next,
                mailbox: mailbox.clone(),
            },
        };
        let session = self.broker.open_session(&self.inst(), client, req).await.unwrap();
        (mailbox, self.next, session)
    }

    async fn sub(&self, client: &str, filter: &str, qos: QoS) -> Result<Subscribed, SubscribeRefusal> {
        self.broker
            .subscribe(&self.inst(), client, filter, SubOptions::qos(qos))
            .await
    }

    async fn publish(&self, topic: &str, payload: &'static [u8], qos: QoS, retain: bool) -> router::Routed {
        let msg = Message::new(topic.to_string(), Bytes::from_static(payload), qos, retain);
        self.broker.publish(&self.inst(), msg).await.unwrap()
    }
}

fn messages(mailbox: &Mailbox) -> Vec<(String, QoS)> {
    let mut out = Vec::new();
    while let Some(mail) = mailbox.take() {
        if let Mail::Message(o) = mail {
            out.push((o.msg.topic.to_string(), o.qos));
        }
    }
    out
}

#[tokio::test]
async fn fan_out_reaches_each_matching_client_once_at_the_lower_qos() {
    let mut f = Fixture::new();
    let (a, _, _) = f.connect("GID_core@@@a", false, true).await;
    let (b, _, _) = f.connect("GID_core@@@b", false, true).await;
    f.sub("GID_core@@@a", "T/#", QoS::AtLeastOnce).await.unwrap();
    f.sub("GID_core@@@a", "T/+", QoS::AtMostOnce).await.unwrap();
    f.sub("GID_core@@@b", "T/x", QoS::ExactlyOnce).await.unwrap();
    let routed = f.publish("T/x", b"1", QoS::AtLeastOnce, false).await;
    assert_eq!(routed.live, 2);
    assert_eq!(
        messages(&a),
        [("T/x".to_string(), QoS::AtLeastOnce)],
        "one copy for overlapping filters"
    );
    assert_eq!(
        messages(&b),
        [("T/x".to_string(), QoS::AtLeastOnce)],
        "min(published, granted)"
    );
    f.publish("T/p2p/GID_core@@@b", b"2", QoS::AtLeastOnce, false).await;
    assert_eq!(messages(&a), []);
    assert_eq!(messages(&b).len(), 1, "P2P needs no subscription");
}

#[tokio::test]
async fn a_second_connection_takes_the_session_over() {
    let mut f = Fixture::new();
    let (old, old_id, _) = f.connect("GID_core@@@a", true, false).await;
    f.sub("GID_core@@@a", "T/#", QoS::AtLeastOnce).await.unwrap();
    let (_new, _, session) = f.connect("GID_core@@@a", true, false).await;
    assert!(session.present, "the persistent session is resumed");
    assert_eq!(
        session.resumed.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
        ["T/#"]
    );
    assert!(matches!(old.take(), Some(Mail::Signal(Ctl::TakenOver))));
    // The old connection's late close does not end the new one's session.
    f.broker
        .close_session(INST, "GID_core@@@a", old_id, BTreeMap::from([(5, 9)]))
        .await;
    assert_eq!(f.broker.live_connections(INST, "GID_core@@@a"), 1);
}

#[tokio::test]
async fn connection_quota_and_rejected_duplicates() {
    let mut inst = instance(1);
    inst.reject_duplicate_client_id = true;
    let mut f = Fixture::with(inst);
    f.connect("GID_core@@@a", false, true).await;
    let req = |id| SessionRequest {
        clean_start: true,
        persistent: false,
        expiry_secs: None,
        handle: ConnHandle {
            conn_id: id,
            mailbox: Arc::new(Mailbox::new(1, 1 << 20)),
        },
    };
    let dup = f.broker.open_session(&f.inst(), "GID_core@@@a", req(50)).await;
    assert_eq!(dup.err(), Some(OpenRefusal::Duplicate));
    let other = f.broker.open_session(&f.inst(), "GID_core@@@b", req(51)).await;
    assert_eq!(other.err(), Some(OpenRefusal::QuotaExceeded));
}

#[tokio::test]
async fn persistent_sessions_queue_offline_and_clean_ones_vanish() {
    let mut f = Fixture::new();
    let (_, id, _) = f.connect("GID_core@@@p", true, false).await;
    f.sub("GID_core@@@p", "T/#", QoS::AtLeastOnce).await.unwrap();
    f.broker.close_session(INST, "GID_core@@@p", id, BTreeMap::new()).await;
    let (_, cid, _) = f.connect("GID_core@@@c", false, true).await;
    f.sub("GID_core@@@c", "T/#", QoS::AtLeastOnce).await.unwrap();
    f.broker.close_session(INST, "GID_core@@@c", cid, BTreeMap::new()).await;
    let routed = f.publish("T/a", b"kept", QoS::AtLeastOnce, false).await;
    assert_eq!(
        (routed.live, routed.stored),
        (0, 1),
        "only the persistent session keeps it"
    );
    f.publish("T/a", b"qos0", QoS::AtMostOnce, false).await;
    let stored = f
        .broker
        .offline()
        .fetch(INST, "GID_core@@@p", 0, 10, u64::MAX >> 21)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "QoS 0 is not stored");
    // A clean start discards the session, its subscriptions and its queue.
    let (m, _, session) = f.connect("GID_core@@@p", false, true).await;
    assert!(!session.present);
    f.publish("T/a", b"after", QoS::AtLeastOnce, false).await;
    assert!(messages(&m).is_empty(), "no subscription survived the clean start");
    assert_eq!(f.broker.offline_message_count(), 0);
}

#[tokio::test]
async fn expired_sessions_are_removed_with_their_subscriptions() {
    let mut f = Fixture::new();
    let mailbox = Arc::new(Mailbox::new(10, 1 << 20));
    let req = SessionRequest {
        clean_start: false,
        persistent: true,
        expiry_secs: Some(0),
        handle: ConnHandle { conn_id: 99, mailbox },
    };
    f.broker.open_session(&f.inst(), "GID_core@@@e", req).await.unwrap();
    f.sub("GID_core@@@e", "T/e", QoS::AtLeastOnce).await.unwrap();
    assert_eq!(f.broker.totals().1, 1);
    f.broker.close_session(INST, "GID_core@@@e", 99, BTreeMap::new()).await;
    assert_eq!(f.broker.expire_sessions().await, 1);
    assert_eq!(f.broker.totals().1, 0, "its subscription left the index");
    let (_, _, session) = f.connect("GID_core@@@e", true, false).await;
    assert!(!session.present);
}

#[tokio::test]
async fn shared_subscriptions_take_turns_among_connected_members() {
    let mut f = Fixture::new();
    let (a, _, _) = f.connect("GID_core@@@a", false, true).await;
    let (b, _, _) = f.connect("GID_core@@@b", false, true).await;
    for c in ["GID_core@@@a", "GID_core@@@b"] {
        let s = f.sub(c, "$share/g/T/s", QoS::AtLeastOnce).await.unwrap();
        assert!(s.retained.is_empty());
    }
    for _ in 0..4 {
        f.publish("T/s", b"x", QoS::AtLeastOnce, false).await;
    }
    assert_eq!((messages(&a).len(), messages(&b).len()), (2, 2));
}

#[tokio::test]
async fn quotas_on_subscriptions_per_client_and_wildcards_per_parent() {
    let mut f = Fixture::new();
    f.connect("GID_core@@@a", false, true).await;
    f.connect("GID_core@@@b", false, true).await;
    for filter in ["T/1", "T/2", "T/3"] {
        f.sub("GID_core@@@a", filter, QoS::AtMostOnce).await.unwrap();
    }
    assert_eq!(
        f.sub("GID_core@@@a", "T/4", QoS::AtMostOnce).await.err(),
        Some(SubscribeRefusal::TooManySubscriptions)
    );
    assert!(
        f.sub("GID_core@@@a", "T/3", QoS::AtLeastOnce).await.is_ok(),
        "a held filter is replaced"
    );
    f.sub("GID_core@@@b", "T/+", QoS::AtMostOnce).await.unwrap();
    f.sub("GID_core@@@b", "T/#", QoS::AtMostOnce).await.unwrap();
    assert_eq!(
        f.sub("GID_core@@@b", "T/+/x", QoS::AtMostOnce).await.err(),
        Some(SubscribeRefusal::TooManyWildcards)
    );
    assert_eq!(f.broker.totals().1, 5, "refused filters left nothing in the index");
}

#[tokio::test]
async fn retained_messages_go_to_new_subscriptions_by_retain_handling() {
    let mut f = Fixture::new();
    f.publish("T/r", b"kept", QoS::AtLeastOnce, true).await;
    f.publish("T/gone", b"x", QoS::AtMostOnce, true).await;
    f.publish("T/gone", b"", QoS::AtMostOnce, true).await;
    f.connect("GID_core@@@a", false, true).await;
    let got = f.sub("GID_core@@@a", "T/#", QoS::ExactlyOnce).await.unwrap();
    let got: Vec<(String, QoS, bool)> = got
        .retained
        .iter()
        .map(|o| (o.msg.topic.to_string(), o.qos, o.retain))
        .collect();
    assert_eq!(
        got,
        [("T/r".to_string(), QoS::AtLeastOnce, true)],
        "at min(published, granted), RETAIN set"
    );
    for (filter, handling) in [("T/#", RetainHandling::OnNewSubscribe), ("T/+", RetainHandling::Never)] {
        let opts = SubOptions {
            retain_handling: handling,
            ..SubOptions::qos(QoS::AtLeastOnce)
        };
        let got = f
            .broker
            .subscribe(&f.inst(), "GID_core@@@a", filter, opts)
            .await
            .unwrap();
        assert!(got.retained.is_empty(), "{handling:?} on {filter}");
    }
}

#[tokio::test]
async fn a_deferred_will_fires_only_while_its_credentials_hold() {
    let mut f = Fixture::new();
    let (m, _, _) = f.connect("GID_core@@@w", false, true).await;
    f.sub("GID_core@@@w", "T/will", QoS::AtLeastOnce).await.unwrap();
    let will = |key: &str| DeferredWill {
        instance_id: INST.into(),
        client_id: "GID_core@@@gone".into(),
        due_at_ms: 0,
        msg: Message::new("T/will", Bytes::from_static(b"bye"), QoS::AtLeastOnce, false),
        expiry_secs: None,
        credential: Credential {
            mode: Mode::Signature,
            key_id: key.into(),
            tokens: Tokens::default(),
            secret_fingerprint: crate::auth::fingerprint("SK"),
        },
    };
    f.broker.fire_will(will("AK")).await;
    assert_eq!(messages(&m).len(), 1);
    f.broker.fire_will(will("AK-unknown")).await;
    assert!(messages(&m).is_empty(), "a key that no longer holds sends no will");
}
