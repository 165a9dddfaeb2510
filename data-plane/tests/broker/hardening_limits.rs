//! Bounds on what clients can make the broker keep, per instance and per node, each refused clearly
//! and counted: retained messages, persistent sessions, offline bytes, share group names, filters per
//! packet, and the memory a subscriber that stops reading can cost.

use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode as C5, Packet as P5, PubAckReason};
use rumqttc::{ConnectReturnCode, QoS, SubscribeReasonCode};

use crate::support::raw::Raw;
use crate::support::wire::{self, Version};
use crate::support::*;
use crate::support::{v3, v5};

/// Retained messages of an instance are bounded by count and by bytes (MQTT 5: PUBACK 0x97; 3.1.1:
/// disconnected), and are deleted once older than the instance's offline retention.
#[tokio::test]
async fn retained_messages_are_bounded_per_instance_and_expire() {
    let mut snap = snapshot();
    let q = &mut snap.content.instances[0].quotas;
    q.max_retained_messages = 3;
    q.max_retained_bytes = 300;
    snap.content.instances[1].quotas.offline_retention_secs = 1;
    let b = BrokerProc::start_with_env(&Snapshot::new(1, snap.content), &[("BROKER_HOUSEKEEPING_SECS", "1")]);

    let cid = "GID_test@@@retainer";
    let (c, mut ev, _) = v5::connect(b.v5_opts(cid, &sig_user(INST), &sig_pass(cid))).await;
    for i in 0..3 {
        assert_eq!(
            v5::publish_acked(&c, &mut ev, &format!("T/r/{i}"), true, "x", Default::default()).await,
            PubAckReason::Success
        );
    }
    assert_eq!(
        v5::publish_acked(&c, &mut ev, "T/r/3", true, "x", Default::default()).await,
        PubAckReason::QuotaExceeded,
        "a fourth"
    );
    assert_eq!(
        v5::publish_acked(&c, &mut ev, "T/r/0", true, "replaced", Default::default()).await,
        PubAckReason::Success
    );
    let big = "b".repeat(290);
    assert_eq!(
        v5::publish_acked(&c, &mut ev, "T/r/1", true, &big, Default::default()).await,
        PubAckReason::QuotaExceeded,
        "over 300 bytes"
    );
    assert_eq!(
        v5::publish_acked(&c, &mut ev, "T/r/2", true, "", Default::default()).await,
        PubAckReason::Success,
        "cleared"
    );
    assert_eq!(
        v5::publish_acked(&c, &mut ev, "T/r/3", true, "x", Default::default()).await,
        PubAckReason::Success,
        "room again"
    );
    // Not retained: no limit.
    assert_eq!(
        v5::publish_acked(&c, &mut ev, "T/r/4", false, "x", Default::default()).await,
        PubAckReason::Success
    );
    // MQTT 3.1.1: refused by closing the connection.
    let (c3, mut ev3, _) = v3::connect(b.sig_opts("GID_test@@@retainer3")).await.unwrap();
    c3.publish("T/r/5", QoS::AtLeastOnce, true, "x").await.unwrap();
    v3::expect_closed(&mut ev3, 5).await;
    assert_eq!(
        b.counter("broker_refusals_total", &[("packet", "publish"), ("reason", "quota")]),
        3.0
    );
    // What is kept is what was acknowledged.
    let (s, mut sev, _) = v3::connect(b.sig_opts("GID_test@@@reader")).await.unwrap();
    s.subscribe("T/r/#", QoS::AtLeastOnce).await.unwrap();
    let mut kept: Vec<(String, String)> = v3::collect(&mut sev, 3, 5)
        .await
        .iter()
        .map(|p| (p.topic.clone(), String::from_utf8_lossy(&p.payload).to_string()))
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        [
            ("T/r/0".into(), "replaced".into()),
            ("T/r/1".into(), "x".into()),
            ("T/r/3".into(), "x".into())
        ]
    );

    // Another instance keeps offline messages for one second: its retained message goes with them.
    let o = "GID_test@@@short";
    let (p, mut pev, _) = v3::connect(b.v3_opts(o, &sig_user(OTHER), &sig_pass(o))).await.unwrap();
    p.subscribe("T/short", QoS::AtLeastOnce).await.unwrap();
    p.publish("T/short", QoS::AtLeastOnce, true, "soon gone").await.unwrap();
    assert_eq!(payloads(&v3::collect(&mut pev, 1, 5).await), ["soon gone"]);
    wait_until(10, "retained expiry", || {
        b.log().contains("expired retained messages removed")
    })
    .await;
    let (p2, mut pev2, _) = v3::connect(b.v3_opts("GID_test@@@late", &sig_user(OTHER), &sig_pass("GID_test@@@late")))
        .await
        .unwrap();
    p2.subscribe("T/short", QoS::AtLeastOnce).await.unwrap();
    v3::suback(&mut pev2).await;
    assert!(
        v3::drain(&mut pev2, 0.5).await.is_empty(),
        "an expired retained message was sent"
    );
}

/// Persistent sessions of an instance are capped (a CONNECT that would create one more is refused:
/// 3.1.1 code 3, MQTT 5 0x97); resuming one, or a clean session, still works.
#[tokio::test]
async fn persistent_sessions_are_capped_per_instance() {
    let mut snap = snapshot();
    snap.content.instances[0].quotas.max_persistent_sessions = 2;
    let b = BrokerProc::start(&Snapshot::new(1, snap.content));
    let persistent = |id: &str| persistent(b.sig_opts(id));
    let (_a, a_ev, _) = v3::connect(persistent("GID_test@@@ps1")).await.unwrap();
    drop(a_ev); // gone, its session stays
    let (_b2, b_ev, _) = v3::connect(persistent("GID_test@@@ps2")).await.unwrap();
    let _d = v3::drive(b_ev);
    assert_eq!(
        v3::refusal(persistent("GID_test@@@ps3")).await,
        Some(ConnectReturnCode::ServiceUnavailable)
    );
    let mut o = v5::opts(&b, "GID_test@@@ps4", false, 3600);
    o.set_clean_start(false);
    assert_eq!(v5::refusal(o).await, Some(C5::QuotaExceeded));
    assert_eq!(
        v3::refusal(b.sig_opts("GID_test@@@clean")).await,
        None,
        "a clean session"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_a, a_ev, present) = v3::connect(persistent("GID_test@@@ps1")).await.unwrap();
    assert!(present, "resuming needs no new place");
    drop(a_ev);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A clean start of ps1 ends its session and frees its place.
    let (c, ev, _) = v3::connect(b.sig_opts("GID_test@@@ps1")).await.unwrap();
    c.disconnect().await.unwrap();
    let _ = v3::drain(&mut { ev }, 0.2).await;
    assert_eq!(v3::refusal(persistent("GID_test@@@ps3")).await, None);
    assert_eq!(
        b.counter(
            "broker_refusals_total",
            &[("packet", "connect"), ("reason", "persistent_sessions")]
        ),
        2.0
    );
}

/// An MQTT 3.1.1 persistent session has no expiry of its own: it ends, with its subscriptions and
/// messages, once it has been away for the instance's offline retention.
#[tokio::test]
async fn mqtt311_persistent_sessions_expire_after_the_offline_retention() {
    let mut snap = snapshot();
    snap.content.instances[0].quotas.offline_retention_secs = 1;
    let b = BrokerProc::start_with_env(&Snapshot::new(1, snap.content), &[("BROKER_HOUSEKEEPING_SECS", "1")]);
    let id = "GID_test@@@fading";
    away_subscribed(b.sig_opts(id), "T/fade").await;
    wait_until(10, "session expiry", || {
        b.counter("broker_sessions_expired_total", &[]) == 1.0
    })
    .await;
    let (c, mut ev, present) = v3::connect(persistent(b.sig_opts(id))).await.unwrap();
    assert!(!present, "the expired session was resumed");
    c.subscribe("T/marker", QoS::AtLeastOnce).await.unwrap();
    v3::suback(&mut ev).await;
    let (p, pev, _) = v3::connect(b.sig_opts("GID_test@@@p")).await.unwrap();
    let _d = v3::drive(pev);
    p.publish("T/fade", QoS::AtLeastOnce, false, "x").await.unwrap();
    p.publish("T/marker", QoS::AtLeastOnce, false, "marker").await.unwrap();
    // In order: a message through the old subscription would come first.
    assert_eq!(
        payloads(&v3::collect(&mut ev, 1, 5).await),
        ["marker"],
        "its subscription outlived it"
    );
}

/// The instance's offline byte budget drops the oldest stored messages first.
#[tokio::test]
async fn the_offline_byte_budget_drops_the_oldest() {
    let mut snap = snapshot();
    // Three 1,000-byte messages with their record overhead (under 100 bytes each), not four.
    snap.content.instances[0].quotas.max_offline_bytes = 3300;
    let b = BrokerProc::start(&Snapshot::new(1, snap.content));
    let id = "GID_test@@@budget";
    away_subscribed(b.sig_opts(id), "T/budget").await;
    let (p, mut pev, _) = v3::connect(b.sig_opts("GID_test@@@p")).await.unwrap();
    for i in 0..10 {
        p.publish("T/budget", QoS::AtLeastOnce, false, format!("{i}{}", ".".repeat(999)))
            .await
            .unwrap();
    }
    let mut acks = 0;
    while acks < 10 {
        if let rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)) = pev.poll().await.unwrap() {
            acks += 1;
        }
    }
    let (_c, mut ev, _) = v3::connect(persistent(b.sig_opts(id))).await.unwrap();
    // Oldest first: a message that should have been dropped would come before these.
    let got: Vec<char> = v3::collect(&mut ev, 3, 5)
        .await
        .iter()
        .map(|p| p.payload[0] as char)
        .collect();
    assert_eq!(got, ['7', '8', '9']);
    assert_eq!(b.counter("broker_offline_dropped_total", &[("reason", "cap")]), 7.0);
}

/// `$share` group names are 1 to 64 characters without NUL or other control characters: others get
/// a SUBACK failure (MQTT 5: 0x8F). A group whose members all left works again for a new member.
#[tokio::test]
async fn share_group_names_are_checked_and_an_emptied_group_works_again() {
    let b = BrokerProc::start(&snapshot());
    let (c, mut ev, _) = v3::connect(b.sig_opts("GID_test@@@sharer")).await.unwrap();
    let long = format!("$share/{}/T/a", "g".repeat(65));
    let fits = format!("$share/{}/T/a", "g".repeat(64));
    let cases = [
        (long.as_str(), false),
        ("$share/g\0x/T/a", false),
        ("$share/g\u{7}/T/a", false),
        ("$share/g\u{1b}x/T/a", false),
        (fits.as_str(), true),
    ];
    for (filter, ok) in cases {
        c.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        let want = if ok {
            SubscribeReasonCode::Success(QoS::AtLeastOnce)
        } else {
            SubscribeReasonCode::Failure
        };
        assert_eq!(v3::suback(&mut ev).await, [want], "{filter:?}");
    }
    let (c5, mut ev5, _) =
        v5::connect(b.v5_opts("GID_test@@@sharer5", &sig_user(INST), &sig_pass("GID_test@@@sharer5"))).await;
    c5.subscribe(long.as_str(), Q5::AtLeastOnce).await.unwrap();
    let codes = loop {
        if let v5::Event::Incoming(P5::SubAck(a)) = ev5.poll().await.unwrap() {
            break a.return_codes;
        }
    };
    assert_eq!(
        codes,
        [rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::TopicFilterInvalid]
    );
    assert_eq!(
        b.counter(
            "broker_refusals_total",
            &[("packet", "subscribe"), ("reason", "topic_invalid")]
        ),
        5.0
    );

    // Two members, both leave; a third joins and gets every message.
    let mut members = Vec::new();
    for m in ["GID_test@@@m1", "GID_test@@@m2"] {
        let (mc, mut mev, _) = v3::connect(b.sig_opts(m)).await.unwrap();
        mc.subscribe("$share/jobs/T/jobs", QoS::AtLeastOnce).await.unwrap();
        v3::suback(&mut mev).await;
        members.push((mc, mev));
    }
    for (mc, mut mev) in members {
        mc.unsubscribe("$share/jobs/T/jobs").await.unwrap();
        let _ = v3::drain(&mut mev, 0.2).await;
    }
    // A message while the group has no member goes nowhere.
    let (p, mut pev, _) = v3::connect(b.sig_opts("GID_test@@@p")).await.unwrap();
    p.publish("T/jobs", QoS::AtLeastOnce, false, "nobody").await.unwrap();
    loop {
        if let rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)) = pev.poll().await.unwrap() {
            break;
        }
    }
    let _d = v3::drive(pev);
    let (m3, mut m3ev, _) = v3::connect(b.sig_opts("GID_test@@@m3")).await.unwrap();
    m3.subscribe("$share/jobs/T/jobs", QoS::AtLeastOnce).await.unwrap();
    v3::suback(&mut m3ev).await;
    for i in 0..5 {
        p.publish("T/jobs", QoS::AtLeastOnce, false, format!("{i}"))
            .await
            .unwrap();
    }
    assert_eq!(payloads(&v3::collect(&mut m3ev, 5, 5).await), ["0", "1", "2", "3", "4"]);
}

/// At most 100 filters of one SUBSCRIBE or UNSUBSCRIBE are acted on: the rest are refused (SUBACK
/// failure; MQTT 5 UNSUBACK 0x80, MQTT 3.1.1 has no codes) and stay as they were. Unsubscribing a
/// filter the client does not hold changes nothing and emits no `unsubscribe` event.
#[tokio::test]
async fn filters_per_packet_are_capped_at_100() {
    let mut snap = snapshot();
    snap.content.instances[0].quotas.max_subscriptions_per_client = 500;
    let b = BrokerProc::start(&Snapshot::new(1, snap.content));
    let filters: Vec<String> = (0..101).map(|i| format!("T/f/{i}")).collect();
    for (v, cid) in [(Version::V3, "GID_test@@@many3"), (Version::V5, "GID_test@@@many5")] {
        let mut raw = Raw::login(b.port, v, cid, &sig_user(INST), &sig_pass(cid)).await;
        // 101 filters in one SUBSCRIBE: the last is refused.
        raw.send_bytes(&wire::subscribe(v, 1, &filters, 0)).await;
        let codes = raw.ack_codes(wire::SUBACK).await;
        let refused = if v == Version::V3 { 0x80 } else { 0x97 };
        assert_eq!(codes.len(), 101);
        assert!(codes[..100].iter().all(|c| *c == 0), "{v:?}: {codes:?}");
        assert_eq!(codes[100], refused, "{v:?}");
        // Subscribed in a packet of its own, then 101 filters in one UNSUBSCRIBE: the last stays.
        raw.send_bytes(&wire::subscribe(v, 2, &filters[100..], 0)).await;
        assert_eq!(raw.ack_codes(wire::SUBACK).await, [0]);
        raw.send_bytes(&wire::unsubscribe(v, 3, &filters)).await;
        let codes = raw.ack_codes(wire::UNSUBACK).await;
        if v == Version::V5 {
            assert!(codes[..100].iter().all(|c| *c == 0), "{codes:?}");
            assert_eq!(codes[100], 0x80);
        }
        let (p, pev, _) = v3::connect(b.sig_opts("GID_test@@@p")).await.unwrap();
        let _d = v3::drive(pev);
        p.publish("T/f/99", QoS::AtMostOnce, false, "gone").await.unwrap();
        p.publish("T/f/100", QoS::AtMostOnce, false, "kept").await.unwrap();
        let (first, body) = raw.frame(10.0).await.expect("a PUBLISH");
        assert_eq!(first >> 4, 3);
        assert!(body.ends_with(b"kept"), "{v:?}: {body:?}");
    }
    assert_eq!(
        b.counter("broker_refusals_total", &[("reason", "too_many_filters")]),
        4.0
    );

    // Unsubscribing what is not held: no event (MQTT 5: 0x11 no subscription existed).
    let unsubscribes = || b.counter("broker_client_events_total", &[("event", "unsubscribe")]);
    let before = unsubscribes();
    let cid = "GID_test@@@stranger";
    let mut raw = Raw::login(b.port, Version::V5, cid, &sig_user(INST), &sig_pass(cid)).await;
    raw.send_bytes(&wire::unsubscribe(Version::V5, 1, &["T/never".to_string()]))
        .await;
    assert_eq!(raw.ack_codes(wire::UNSUBACK).await, [0x11]);
    raw.send_bytes(&wire::subscribe(Version::V5, 2, &["T/held".to_string()], 0))
        .await;
    raw.ack_codes(wire::SUBACK).await;
    raw.send_bytes(&wire::unsubscribe(Version::V5, 3, &["T/held".to_string()]))
        .await;
    assert_eq!(raw.ack_codes(wire::UNSUBACK).await, [0]);
    assert_eq!(unsubscribes(), before + 1.0);
}

/// A subscriber that stops reading while a publisher floods QoS 0 costs the broker a bounded amount
/// of memory: its queue drops (and counts) what does not fit, and other subscribers keep receiving.
#[tokio::test]
async fn a_subscriber_that_stops_reading_costs_bounded_memory() {
    let mut snap = snapshot();
    snap.content.instances[0].quotas.max_messages_per_second = 1_000_000;
    let b = BrokerProc::start(&Snapshot::new(1, snap.content));
    let stalled = "GID_test@@@stalled";
    let mut raw = Raw::login(b.port, Version::V3, stalled, &sig_user(INST), &sig_pass(stalled)).await;
    raw.send_bytes(&wire::subscribe(Version::V3, 1, &["T/flood".to_string()], 0))
        .await;
    raw.ack_codes(wire::SUBACK).await;
    // From here on the stalled subscriber reads nothing.
    let (reader, mut rev, _) = v3::connect(b.sig_opts("GID_test@@@reader")).await.unwrap();
    reader.subscribe("T/flood", QoS::AtMostOnce).await.unwrap();
    v3::suback(&mut rev).await;
    let received = tokio::spawn(async move {
        let mut n = 0usize;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), rev.poll()).await {
                Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)))) => {
                    n += 1;
                    if &p.payload[..] == b"last" {
                        return n;
                    }
                }
                Ok(Ok(_)) => {}
                other => panic!("the reading subscriber stopped receiving after {n}: {other:?}"),
            }
        }
    });

    let before = b.rss_bytes();
    // 12,000 messages of 16 KiB: 190 MiB, more than 10,000 queued messages would hold, to a
    // subscriber whose queue holds 16 MiB.
    let cid = "GID_test@@@flooder";
    let mut publisher = Raw::login(b.port, Version::V3, cid, &sig_user(INST), &sig_pass(cid)).await;
    let one = wire::publish_qos0("T/flood", &[7u8; 16 * 1024]);
    let mut peak = before;
    for i in 0..12_000 {
        publisher.send_bytes(&one).await;
        if i % 1000 == 0 {
            peak = peak.max(b.rss_bytes());
        }
    }
    // The reading subscriber's own queue may be full at a moment: repeat the marker until it is in.
    while !received.is_finished() {
        publisher.send_bytes(&wire::publish_qos0("T/flood", b"last")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let n = received.await.unwrap();
    peak = peak.max(b.rss_bytes());
    let grew = peak.saturating_sub(before);
    println!(
        "received {n}; broker RSS {} MiB before, +{} MiB at most",
        before >> 20,
        grew >> 20
    );
    assert!(grew < 96 << 20, "RSS grew by {} MiB", grew >> 20);
    assert!(n > 1000, "the reading subscriber got only {n}");
    assert!(b.counter("broker_dropped_total", &[("reason", "queue_full")]) > 0.0);
    drop(raw);
}

/// Messages above 4 KiB to short topics, where the packet header is only a few bytes, arrive
/// intact in both protocol versions at every QoS (the socket writer once sent such a header from
/// where it no longer was, and the subscriber saw garbage).
#[tokio::test]
async fn large_messages_to_short_topics_arrive_intact() {
    let b = BrokerProc::start(&snapshot());
    let (_s3, mut ev3) = v3::subscribed(b.sig_opts("GID_test@@@big3"), "T/b", QoS::ExactlyOnce).await;
    let (s5, mut ev5, _) =
        v5::connect(b.v5_opts("GID_test@@@big5", &sig_user(INST), &sig_pass("GID_test@@@big5"))).await;
    s5.subscribe("T/b", Q5::ExactlyOnce).await.unwrap();
    while !matches!(ev5.poll().await.unwrap(), v5::Event::Incoming(P5::SubAck(_))) {}
    let (p, pev, _) = v3::connect(b.sig_opts("GID_test@@@bigpub")).await.unwrap();
    let _d = v3::drive(pev);
    let sizes = [4097, 8000, 20_000, 64 * 1024];
    let mut sent = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let payload = vec![i as u8 + 1; *size];
            p.publish("T/b", qos, false, payload.clone()).await.unwrap();
            sent.push(payload);
        }
    }
    let got3: Vec<Vec<u8>> = v3::collect(&mut ev3, sent.len(), 20)
        .await
        .iter()
        .map(|p| p.payload.to_vec())
        .collect();
    assert!(got3 == sent, "MQTT 3.1.1 subscriber got other bytes");
    let mut got5 = Vec::new();
    while got5.len() < sent.len() {
        match tokio::time::timeout(Duration::from_secs(20), ev5.poll())
            .await
            .expect("in time")
        {
            Ok(v5::Event::Incoming(P5::Publish(p))) => got5.push(p.payload.to_vec()),
            Ok(_) => {}
            Err(e) => panic!("MQTT 5 subscriber failed after {} messages: {e:?}", got5.len()),
        }
    }
    assert!(got5 == sent, "MQTT 5 subscriber got other bytes");
}

/// The broker opts out of transparent huge pages (main.rs says why): with them every first touch of
/// mimalloc's arenas zeroed 2 MiB and each idle connection held about a sixth more memory.
#[tokio::test]
async fn the_broker_runs_without_transparent_huge_pages() {
    let b = BrokerProc::start(&snapshot());
    assert_eq!(b.proc_status("THP_enabled"), "0");
}

/// The embedded store's flush and compaction threads run at nice 10, below the MQTT workers (a
/// 64 MiB memtable flush took ~300 ms of a core from them at once), and a thread of its own starts
/// the journal's write-back (so the store's sync under its journal lock finds little to write):
/// see `store/background.rs` and `store/journal_sync.rs`.
#[tokio::test]
async fn the_store_works_in_the_background_below_the_mqtt_workers() {
    let b = BrokerProc::start(&snapshot());
    let threads = b.threads();
    let store: Vec<i64> = threads
        .iter()
        .filter(|(n, _)| n == "fjall:worker")
        .map(|(_, nice)| *nice)
        .collect();
    assert!(!store.is_empty(), "store threads in {threads:?}");
    assert!(store.iter().all(|n| *n == 10), "store threads at nice 10: {threads:?}");
    let workers: Vec<i64> = threads
        .iter()
        .filter(|(n, _)| n.starts_with("broker:worker"))
        .map(|(_, nice)| *nice)
        .collect();
    assert!(!workers.is_empty() && workers.iter().all(|n| *n == 0), "{threads:?}");
    assert!(threads.iter().any(|(n, _)| n == "store-sync"), "{threads:?}");
}
