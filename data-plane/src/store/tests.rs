//! The embedded store on a real fjall database in a temporary directory.

use common::qos::QoS;
use ntex_bytes::Bytes;

use super::*;
use crate::core::offline::{OfflineLimits, PersistedSub};
use crate::core::subscriptions::SubOptions;

fn msg(n: u8) -> Message {
    Message::new("T/a", Bytes::from(vec![n]), QoS::AtLeastOnce, false)
}

fn entry(client: &str) -> QueueEntry {
    QueueEntry {
        client_id: client.into(),
        qos: QoS::AtLeastOnce,
        retain: false,
        sub_ids: Vec::new(),
    }
}

fn payloads(q: &[Queued]) -> Vec<u8> {
    q.iter().map(|m| m.out.msg.payload[0]).collect()
}

const FOREVER: u64 = u64::MAX >> 21;

fn cap(max_messages: u64) -> OfflineLimits {
    OfflineLimits {
        max_messages,
        max_bytes: u64::MAX,
        retention_secs: u64::MAX,
    }
}

#[tokio::test]
async fn queue_order_ack_cap_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id;
    {
        let s = FjallStore::open(dir.path()).unwrap();
        for n in 0..5 {
            s.enqueue("i", &msg(n), &[entry("c")], cap(4)).await.unwrap();
        }
        let got = s.fetch("i", "c", 0, 10, FOREVER).await.unwrap();
        assert_eq!(payloads(&got), vec![1, 2, 3, 4], "the cap of 4 dropped the oldest");
        id = got[1].out.msg.id;
        s.ack("i", "c", got[0].seq).await.unwrap();
        let record = PersistedSession {
            subs: vec![PersistedSub::new("T/#", &SubOptions::qos(QoS::AtLeastOnce))],
            expiry_secs: Some(60),
            gone_at_ms: Some(1),
        };
        SessionRecords::save(&s, "i", "c", &record).unwrap();
    }
    let s = FjallStore::open(dir.path()).unwrap();
    assert_eq!(s.counts().get("i"), Some(&3));
    assert_eq!(SessionRecords::load(&s).unwrap().len(), 1);
    let got = s.fetch("i", "c", 0, 10, FOREVER).await.unwrap();
    assert_eq!(payloads(&got), vec![2, 3, 4]);
    assert_eq!(got[0].out.msg.id, id, "message IDs survive a restart");
    s.purge("i", "c").await.unwrap();
    assert!(s.fetch("i", "c", 0, 10, FOREVER).await.unwrap().is_empty());
    assert_eq!(s.counts().get("i"), Some(&0));
}

#[test]
fn retained_messages_replace_remove_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let retained = |topic: &str, payload: &[u8]| {
        Message::new(
            topic.to_string(),
            Bytes::copy_from_slice(payload),
            QoS::AtMostOnce,
            true,
        )
    };
    {
        let s = FjallStore::open(dir.path()).unwrap();
        RetainedLog::save(&s, "i1", &retained("T/a", b"one")).unwrap();
        RetainedLog::save(&s, "i1", &retained("T/a", b"two")).unwrap();
        RetainedLog::save(&s, "i1", &retained("T/b", b"gone")).unwrap();
        RetainedLog::remove(&s, "i1", "T/b").unwrap();
        RetainedLog::save(&s, "i2", &retained("T/a", b"other")).unwrap();
    }
    let s = FjallStore::open(dir.path()).unwrap();
    let mut all: Vec<(String, String, Bytes)> = RetainedLog::load(&s)
        .unwrap()
        .into_iter()
        .map(|(i, m)| (i, m.topic.to_string(), m.payload))
        .collect();
    all.sort();
    assert_eq!(
        all,
        vec![
            ("i1".into(), "T/a".into(), Bytes::from_static(b"two")),
            ("i2".into(), "T/a".into(), Bytes::from_static(b"other"))
        ]
    );
}

#[tokio::test]
async fn the_byte_budget_drops_the_oldest_too() {
    let dir = tempfile::tempdir().unwrap();
    let s = FjallStore::open(dir.path()).unwrap();
    let one = codec::encode(
        &msg(0),
        &codec::Delivery {
            qos: QoS::AtLeastOnce,
            retain: false,
            sub_ids: vec![],
        },
    )
    .len() as u64;
    let limits = OfflineLimits {
        max_messages: 100,
        max_bytes: 3 * one,
        retention_secs: u64::MAX,
    };
    for n in 0..5 {
        s.enqueue("i", &msg(n), &[entry("c")], limits).await.unwrap();
    }
    assert_eq!(
        payloads(&s.fetch("i", "c", 0, 10, FOREVER).await.unwrap()),
        vec![2, 3, 4]
    );
    drop(s);
    let s = FjallStore::open(dir.path()).unwrap();
    assert_eq!(s.usage_of("i").bytes, 3 * one, "sizes survive a restart");
}

#[tokio::test]
async fn retention_expires_old_messages_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = FjallStore::open(dir.path()).unwrap();
    s.enqueue("i", &msg(1), &[entry("c")], cap(100)).await.unwrap();
    s.enqueue("j", &msg(2), &[entry("c")], cap(100)).await.unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    s.enqueue("i", &msg(3), &[entry("c")], cap(100)).await.unwrap();
    // Older than 10 ms: only the first message of instance i.
    assert_eq!(s.expire("i", 10).unwrap(), 1);
    assert_eq!(payloads(&s.fetch("i", "c", 0, 10, 60_000).await.unwrap()), vec![3]);
    assert_eq!(s.counts().get("j"), Some(&1));
    // fetch() skips and deletes what is past the retention too.
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(s.fetch("i", "c", 0, 10, 10).await.unwrap().is_empty());
    assert_eq!(s.counts().get("i"), Some(&0));
}

#[tokio::test]
async fn unreadable_records_are_skipped_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = FjallStore::open(dir.path()).unwrap();
        s.enqueue("i", &msg(1), &[entry("c")], cap(100)).await.unwrap();
        SessionRecords::save(&s, "i", "good", &PersistedSession::default()).unwrap();
        s.sessions.insert(instance_key("i", "bad"), b"{not json").unwrap();
        s.sessions.insert(b"no separator".to_vec(), b"{}").unwrap();
        s.retained.insert(instance_key("i", "T/x"), [0xA2, 7]).unwrap();
        s.queue.insert(queue_key("i", "c", u64::MAX - 1), [0xA2]).unwrap();
        s.age.insert(b"garbage".to_vec(), []).unwrap();
        s.persist().unwrap();
    }
    let s = FjallStore::open(dir.path()).unwrap();
    let sessions = SessionRecords::load(&s).unwrap();
    assert_eq!(
        sessions.iter().map(|(_, c, _)| c.as_str()).collect::<Vec<_>>(),
        ["good"]
    );
    assert!(RetainedLog::load(&s).unwrap().is_empty());
    assert_eq!(payloads(&s.fetch("i", "c", 0, 10, FOREVER).await.unwrap()), vec![1]);
}
