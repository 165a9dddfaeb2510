//! The store under stress and damage, on the real broker process: a write the disk refuses is not
//! acknowledged, a large clean start does not stall other clients, and a damaged record is skipped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::v5::mqttbytes::v5::{Packet as P5, PubAckReason, PubRecReason};
use rumqttc::{Event, Packet, QoS};

use crate::support::*;
use crate::support::{v3, v5};

/// When the store cannot write (here: the process may not grow any file), a QoS 1 or 2 publish
/// that needed it is not acknowledged: MQTT 5 gets a failure reason, MQTT 3.1.1 is disconnected,
/// and after a restart only what was acknowledged is there.
#[tokio::test]
async fn a_publish_the_store_cannot_write_is_not_acknowledged() {
    let mut b = BrokerProc::start(&snapshot());
    away_subscribed(b.sig_opts("GID_test@@@keeper"), "T/disk/#").await;
    v3::publish_acked(&b, &[("T/disk/1", b"before", false)]).await;

    // Restarted on the same store with every file frozen at its size (the journal cannot grow).
    b.kill9();
    b.file_size_limit = Some(1);
    b.spawn();
    let errors_before = b.counter("broker_store_errors_total", &[("op", "publish")]);
    let cid = "GID_test@@@writer5";
    let (c, mut ev, _) = v5::connect(b.v5_opts(cid, &sig_user(INST), &sig_pass(cid))).await;
    c.publish("T/disk/2", Q5::AtLeastOnce, false, "refused qos1")
        .await
        .unwrap();
    c.publish("T/disk/3", Q5::ExactlyOnce, false, "refused qos2")
        .await
        .unwrap();
    c.publish("T/disk/4", Q5::AtLeastOnce, true, "refused retained")
        .await
        .unwrap();
    let (mut pubacks, mut pubrecs) = (Vec::new(), Vec::new());
    while pubacks.len() < 2 || pubrecs.is_empty() {
        match tokio::time::timeout(Duration::from_secs(5), ev.poll())
            .await
            .expect("acknowledgements in time")
            .unwrap()
        {
            v5::Event::Incoming(P5::PubAck(a)) => pubacks.push(a.reason),
            v5::Event::Incoming(P5::PubRec(r)) => pubrecs.push(r.reason),
            _ => {}
        }
    }
    assert_eq!(
        pubacks,
        [PubAckReason::UnspecifiedError, PubAckReason::UnspecifiedError]
    );
    assert_eq!(pubrecs, [PubRecReason::UnspecifiedError]);
    let (c3, mut ev3, _) = v3::connect(b.sig_opts("GID_test@@@writer3")).await.unwrap();
    c3.publish("T/disk/5", QoS::AtLeastOnce, false, "refused v3")
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ev3.poll())
            .await
            .expect("the broker closes the connection")
        {
            Ok(Event::Incoming(Packet::PubAck(_))) => panic!("an unstored message was acknowledged"),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(b.counter("broker_store_errors_total", &[("op", "publish")]) >= errors_before + 3.0);
    assert!(b.counter("broker_store_errors_total", &[("op", "retained")]) >= 1.0);

    // Back without the limit: what was acknowledged is there, and nothing else.
    b.kill9();
    b.file_size_limit = None;
    b.spawn();
    // Markers published now come after anything older, stored or retained.
    v3::publish_acked(&b, &[("T/disk/9", b"marker", true)]).await;
    let (_c, mut ev, present) = v3::connect(persistent(b.sig_opts("GID_test@@@keeper"))).await.unwrap();
    assert!(present);
    assert_eq!(payloads(&v3::collect(&mut ev, 2, 5).await), ["before", "marker"]);
    let (s, mut sev, _) = v3::connect(b.sig_opts("GID_test@@@retained")).await.unwrap();
    s.subscribe("T/disk/#", QoS::AtLeastOnce).await.unwrap();
    // Retained messages go out in topic order: T/disk/4 would come before T/disk/9.
    assert_eq!(
        payloads(&v3::collect(&mut sev, 1, 5).await),
        ["marker"],
        "an unacknowledged retained message"
    );
}

/// A clean start that deletes a large stored backlog does its disk work outside every lock other
/// connections share: clients on other workers are not held up while it runs, and its own
/// worker's clients only for a bounded time.
#[tokio::test]
async fn a_clean_start_with_a_large_backlog_does_not_stall_other_clients() {
    const BACKLOG: usize = 20_000;
    let mut snap = snapshot();
    snap.content.instances[0].quotas.max_messages_per_second = 1_000_000;
    let b = BrokerProc::start(&Snapshot::new(1, snap.content));
    let hoarder = "GID_test@@@hoarder";
    away_subscribed(b.sig_opts(hoarder), "T/backlog").await;
    {
        let mut o = b.sig_opts("GID_test@@@filler");
        o.set_inflight(500);
        let (p, mut ev, _) = v3::connect(o).await.unwrap();
        let pump = tokio::spawn(async move {
            let mut acks = 0;
            while acks < BACKLOG {
                if let Event::Incoming(Packet::PubAck(_)) = ev.poll().await.unwrap() {
                    acks += 1;
                }
            }
        });
        for i in 0..BACKLOG {
            p.publish("T/backlog", QoS::AtLeastOnce, false, format!("{i}"))
                .await
                .unwrap();
        }
        tokio::time::timeout(Duration::from_secs(120), pump)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(b.metric("broker_offline_messages"), Some(BACKLOG as f64));

    // Two clients, one on each worker (connections are dealt out in turn), ping themselves through
    // the store: QoS 1 to their own persistent sessions.
    let stop = Arc::new(AtomicBool::new(false));
    let pings = Arc::new(AtomicUsize::new(0));
    let mut pingers = Vec::new();
    for i in 0..2 {
        let (c, mut ev, _) = v3::connect(persistent(b.sig_opts(&format!("GID_test@@@pinger{i}"))))
            .await
            .unwrap();
        let topic = format!("T/ping/{i}");
        c.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
        v3::suback(&mut ev).await;
        let (stop, pings) = (stop.clone(), pings.clone());
        pingers.push(tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                c.publish(&topic, QoS::AtLeastOnce, false, "ping").await.unwrap();
                loop {
                    match tokio::time::timeout(Duration::from_secs(10), ev.poll()).await {
                        Ok(Ok(Event::Incoming(Packet::Publish(_)))) => break,
                        Ok(Ok(_)) => {}
                        other => panic!("ping failed: {other:?}"),
                    }
                }
                worst = worst.max(sent.elapsed());
                pings.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            worst
        }));
    }
    wait_until(10, "pings", || pings.load(Ordering::Relaxed) >= 10).await;
    let started = Instant::now();
    let (_c, ev, present) = v3::connect(b.sig_opts(hoarder)).await.unwrap();
    let connected = started.elapsed();
    let _d = v3::drive(ev);
    assert!(!present);
    wait_until(30, "the purged backlog", || {
        b.metric("broker_offline_messages") == Some(0.0)
    })
    .await;
    let before = pings.load(Ordering::Relaxed);
    wait_until(10, "pings after the purge", || {
        pings.load(Ordering::Relaxed) >= before + 10
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut worst = Vec::new();
    for p in pingers {
        worst.push(p.await.unwrap());
    }
    worst.sort();
    println!("clean start took {connected:?}; worst ping round trips meanwhile {worst:?}");
    // Neither worker's clients wait for the purge beyond a generous bound (it is one write batch:
    // about 0.3 s for 20,000 messages on a debug build, where it took 1-3 s message by message).
    assert!(
        worst[1] < Duration::from_secs(3),
        "{worst:?} while the purge took {connected:?}"
    );
}

/// A record damaged on disk is skipped and counted; the broker starts and serves everything else.
#[tokio::test]
async fn a_damaged_record_is_skipped_and_the_rest_served() {
    let mut b = BrokerProc::start(&snapshot());
    v3::publish_acked(
        &b,
        &[("T/store/keep", b"kept", true), ("T/store/bad", b"garbled", true)],
    )
    .await;
    away_subscribed(b.sig_opts("GID_test@@@intact"), "T/store/#").await;
    away_subscribed(b.sig_opts("GID_test@@@damaged"), "T/store/#").await;
    v3::publish_acked(&b, &[("T/store/q", b"one", false), ("T/store/q", b"two", false)]).await;
    b.signal("TERM");
    let mut child = b.child.take().unwrap();
    child.wait().unwrap();

    // Garbage over one session record, one retained message and the intact client's first queued
    // message, written with the broker stopped.
    {
        use fjall::{Database, KeyspaceCreateOptions, PersistMode};
        let db = Database::builder(b.dir.join("data")).open().unwrap();
        let key = |name: &str| [INST.as_bytes(), b"\0", name.as_bytes()].concat();
        let sessions = db.keyspace("sessions", KeyspaceCreateOptions::default).unwrap();
        assert!(sessions.get(key("GID_test@@@damaged")).unwrap().is_some());
        sessions.insert(key("GID_test@@@damaged"), b"\xff{garbage").unwrap();
        let retained = db.keyspace("retained", KeyspaceCreateOptions::default).unwrap();
        assert!(retained.get(key("T/store/bad")).unwrap().is_some());
        retained.insert(key("T/store/bad"), [0xA2, 0x01]).unwrap();
        let queue = db.keyspace("queue", KeyspaceCreateOptions::default).unwrap();
        let prefix = [key("GID_test@@@intact"), b"\0".to_vec()].concat();
        let first = queue.prefix(&prefix).next().expect("a queued message").key().unwrap();
        queue.insert(first, [0xA2]).unwrap();
        db.persist(PersistMode::SyncAll).unwrap();
    }

    b.spawn();
    assert_eq!(b.counter("broker_store_errors_total", &[("op", "corrupt_record")]), 2.0);
    let (_c, mut ev, present) = v3::connect(persistent(b.sig_opts("GID_test@@@intact"))).await.unwrap();
    assert!(present);
    // In order: the unreadable first message would come before the second.
    assert_eq!(payloads(&v3::collect(&mut ev, 1, 5).await), ["two"]);
    // The unreadable message, and the two queued for the session whose record is unreadable.
    assert_eq!(b.counter("broker_offline_dropped_total", &[("reason", "corrupt")]), 3.0);
    let (s, mut sev, _) = v3::connect(b.sig_opts("GID_test@@@reader")).await.unwrap();
    s.subscribe("T/store/#", QoS::AtLeastOnce).await.unwrap();
    // In topic order: T/store/bad would come before T/store/keep.
    assert_eq!(payloads(&v3::collect(&mut sev, 1, 5).await), ["kept"]);
    let (_c, mut ev, present) = v3::connect(persistent(b.sig_opts("GID_test@@@damaged"))).await.unwrap();
    assert!(!present, "the damaged session starts afresh");
    v3::publish_acked(&b, &[("T/p2p/GID_test@@@damaged", b"new", false)]).await;
    // A P2P message for the new session: the old session's queue would come before it.
    assert_eq!(
        payloads(&v3::collect(&mut ev, 1, 5).await),
        ["new"],
        "a new session got an old session's messages"
    );
}
