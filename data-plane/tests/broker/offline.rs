//! Persistent sessions and offline messages (docs/spec.md 3.5): a cleanSession=false QoS 1 subscriber is
//! away while 1,000 messages are published, the broker is SIGKILLed and restarted, and the
//! subscriber receives all of them in order exactly once; another restart delivers nothing.
//! Retained messages survive a SIGKILL too.

use std::time::Duration;

use crate::support::*;
use crate::support::{v3, v5};
use rumqttc::QoS;

const N: usize = 1000;

fn persistent(b: &BrokerProc, id: &str) -> rumqttc::MqttOptions {
    let mut o = b.sig_opts(id);
    o.set_clean_session(false);
    o.set_inflight(100);
    o
}

#[tokio::test]
async fn offline_messages_survive_kill9_exactly_once() {
    let mut b = BrokerProc::start(&snapshot());
    let sub_id = "GID_test@@@offline";

    // Subscribe with a persistent session, then go away.
    {
        let (c, mut ev, present) = v3::connect(persistent(&b, sub_id)).await.unwrap();
        assert!(!present);
        c.subscribe("T/off/#", QoS::AtLeastOnce).await.unwrap();
        v3::suback(&mut ev).await;
        c.disconnect().await.unwrap();
        let _ = v3::drain(&mut ev, 0.3).await;
    }

    // 1,000 QoS 1 messages while it is away.
    {
        let (p, ev, _) = v3::connect(b.sig_opts("GID_test@@@producer")).await.unwrap();
        let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut ev = ev;
        let pump = tokio::spawn(async move {
            let mut acks = 0;
            while acks < N {
                match ev.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => acks += 1,
                    Ok(_) => {}
                    Err(e) => panic!("producer failed: {e:?}"),
                }
            }
            let _ = acked_tx.send(acks);
        });
        for i in 0..N {
            p.publish("T/off/m", QoS::AtLeastOnce, false, format!("{i}"))
                .await
                .unwrap();
        }
        tokio::time::timeout(Duration::from_secs(60), acked_rx.recv())
            .await
            .unwrap();
        pump.abort();
    }

    // SIGKILL and restart on the same data directory.
    b.kill9();
    b.spawn();

    // The subscriber returns: all 1,000, in order, exactly once.
    {
        let (_c, mut ev, present) = v3::connect(persistent(&b, sub_id)).await.unwrap();
        assert!(present, "the session survived the restart");
        let got = v3::collect(&mut ev, N, 60).await;
        let bodies: Vec<usize> = got
            .iter()
            .map(|p| String::from_utf8_lossy(&p.payload).parse().unwrap())
            .collect();
        assert_eq!(bodies, (0..N).collect::<Vec<_>>());
        // Nothing more (no duplicates), and every PUBACK processed before the next kill.
        assert!(v3::drain(&mut ev, 1.0).await.is_empty());
        b.wait_store_empty(20);
    }

    // Second kill + restart: everything was acknowledged, nothing comes again.
    b.kill9();
    b.spawn();
    {
        let (c, mut ev, present) = v3::connect(persistent(&b, sub_id)).await.unwrap();
        assert!(present);
        assert!(
            v3::drain(&mut ev, 1.5).await.is_empty(),
            "acknowledged messages were redelivered"
        );
        // The subscription itself survived: new messages still arrive.
        let (p, pev, _) = v3::connect(b.sig_opts("GID_test@@@producer")).await.unwrap();
        let _d = v3::drive(pev);
        p.publish("T/off/m", QoS::AtLeastOnce, false, "after").await.unwrap();
        assert_eq!(&v3::collect(&mut ev, 1, 10).await[0].payload[..], b"after");
        let _ = c;
    }
    let m = b.metrics();
    assert!(m.contains("broker_offline_messages"), "{m}");
}

#[tokio::test]
async fn clean_session_and_qos0_are_not_stored() {
    let b = BrokerProc::start(&snapshot());
    let id = "GID_test@@@cleanone";
    {
        let mut o = b.sig_opts(id);
        o.set_clean_session(false);
        let (c, mut ev, _) = v3::connect(o).await.unwrap();
        c.subscribe("T/q0", QoS::AtMostOnce).await.unwrap();
        v3::suback(&mut ev).await;
        c.subscribe("T/q1", QoS::AtLeastOnce).await.unwrap();
        v3::suback(&mut ev).await;
        c.disconnect().await.unwrap();
        let _ = v3::drain(&mut ev, 0.3).await;
    }
    let (p, pev, _) = v3::connect(b.sig_opts("GID_test@@@p")).await.unwrap();
    let _d = v3::drive(pev);
    p.publish("T/q0", QoS::AtLeastOnce, false, "qos0 sub: not kept")
        .await
        .unwrap();
    p.publish("T/q1", QoS::AtMostOnce, false, "qos0 pub: not kept")
        .await
        .unwrap();
    p.publish("T/q1", QoS::AtLeastOnce, false, "kept").await.unwrap();
    // P2P follows the receiver's session type: kept for this persistent session.
    p.publish("T/p2p/GID_test@@@cleanone", QoS::AtLeastOnce, false, "p2p kept")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut o = b.sig_opts(id);
    o.set_clean_session(false);
    let (_c, mut ev, _) = v3::connect(o).await.unwrap();
    let got = v3::drain(&mut ev, 1.5).await;
    let bodies: Vec<_> = got
        .iter()
        .map(|p| String::from_utf8_lossy(&p.payload).to_string())
        .collect();
    assert_eq!(bodies, ["kept", "p2p kept"]);
    drop(ev);
    // A clean start discards the session and its queue.
    p.publish("T/q1", QoS::AtLeastOnce, false, "dropped with the session")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_c, mut ev, present) = v3::connect(b.sig_opts(id)).await.unwrap();
    assert!(!present);
    assert!(v3::drain(&mut ev, 1.0).await.is_empty());
}

#[tokio::test]
async fn unacknowledged_messages_resent_with_original_ids() {
    let b = BrokerProc::start(&snapshot());
    let id = "GID_test@@@noack";
    let opts = || {
        let mut o = b.sig_opts(id);
        o.set_clean_session(false);
        o.set_manual_acks(true);
        o
    };
    let first = {
        let (c, mut ev, _) = v3::connect(opts()).await.unwrap();
        c.subscribe("T/na", QoS::AtLeastOnce).await.unwrap();
        v3::suback(&mut ev).await;
        let (p, pev, _) = v3::connect(b.sig_opts("GID_test@@@nap")).await.unwrap();
        let _d = v3::drive(pev);
        for i in 0..5 {
            p.publish("T/na", QoS::AtLeastOnce, false, format!("{i}"))
                .await
                .unwrap();
        }
        // Received, never acknowledged; then the TCP connection just goes away.
        v3::collect(&mut ev, 5, 10).await
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (c, mut ev, present) = v3::connect(opts()).await.unwrap();
    assert!(present);
    let again = v3::collect(&mut ev, 5, 10).await;
    for (a, b) in first.iter().zip(&again) {
        assert_eq!(a.payload, b.payload);
        assert_eq!(a.pkid, b.pkid, "original packet id reused");
        assert!(b.dup, "resent with DUP");
    }
    for p in &again {
        c.ack(p).await.unwrap();
    }
    assert!(v3::drain(&mut ev, 0.5).await.is_empty());
}

#[tokio::test]
async fn retained_messages_survive_kill9() {
    let mut b = BrokerProc::start(&snapshot());
    {
        let (p, mut pev, _) = v3::connect(b.sig_opts("GID_test@@@retainer")).await.unwrap();
        p.publish("T/ret/kept", QoS::AtLeastOnce, true, "kept").await.unwrap();
        p.publish("T/ret/cleared", QoS::AtLeastOnce, true, "soon gone")
            .await
            .unwrap();
        p.publish("T/ret/cleared", QoS::AtLeastOnce, true, "").await.unwrap();
        // Every PUBACK in: the broker made the retained state durable before answering.
        let mut acks = 0;
        while acks < 3 {
            if let rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)) = pev.poll().await.unwrap() {
                acks += 1;
            }
        }
    }
    b.kill9();
    b.spawn();
    let (c, mut ev, _) = v3::connect(b.sig_opts("GID_test@@@late")).await.unwrap();
    c.subscribe("T/ret/#", QoS::AtLeastOnce).await.unwrap();
    let got = v3::drain(&mut ev, 1.5).await;
    let kept: Vec<_> = got
        .iter()
        .map(|p| {
            (
                p.topic.clone(),
                String::from_utf8_lossy(&p.payload).to_string(),
                p.retain,
            )
        })
        .collect();
    assert_eq!(kept, [("T/ret/kept".to_string(), "kept".to_string(), true)]);
}

/// MQTT 5 session expiry: a persistent session outlives its connection by the interval it asked for,
/// and then goes with its subscriptions and stored messages, across a restart too.
#[tokio::test]
async fn v5_sessions_expire_after_their_interval() {
    let mut b = BrokerProc::start(&snapshot());
    let short = "GID_test@@@shortlived";
    let long = "GID_test@@@longlived";
    v5::away_with_subscription(v5::opts(&b, short, false, 1)).await;
    v5::away_with_subscription(v5::opts(&b, long, false, 3600)).await;

    // Stored for both while they are away; the broker restarts in between.
    let (p, pev, _) = v3::connect(b.sig_opts("GID_test@@@producer")).await.unwrap();
    let _d = v3::drive(pev);
    p.publish("T/exp/m", QoS::AtLeastOnce, false, "queued").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.kill9();
    b.spawn();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Past its one second: a new, empty session. Within its hour: the session and its message.
    let (_c, mut ev, present) = v5::connect(v5::opts(&b, short, false, 1)).await;
    assert!(!present, "the expired session must not be resumed");
    assert_eq!(
        v5::next_message(&mut ev, 0.8).await,
        None,
        "an expired session's message was delivered"
    );
    let (_c2, mut ev2, present) = v5::connect(v5::opts(&b, long, false, 3600)).await;
    assert!(present, "the unexpired session survives");
    assert_eq!(v5::next_message(&mut ev2, 10.0).await.as_deref(), Some(&b"queued"[..]));
}

/// MQTT 5 separates starting clean from lasting: cleanStart=1 with an interval still leaves a session
/// behind, and cleanStart=0 with an interval of 0 ends the session with the connection.
#[tokio::test]
async fn v5_clean_start_and_expiry_are_independent() {
    let b = BrokerProc::start(&snapshot());
    let lasting = "GID_test@@@cleanbutlasting";
    let fleeting = "GID_test@@@dirtybutfleeting";
    assert!(!v5::away_with_subscription(v5::opts(&b, lasting, true, 3600)).await);
    assert!(!v5::away_with_subscription(v5::opts(&b, fleeting, false, 0)).await);
    let (p, pev, _) = v3::connect(b.sig_opts("GID_test@@@producer")).await.unwrap();
    let _d = v3::drive(pev);
    p.publish("T/exp/n", QoS::AtLeastOnce, false, "kept").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (_c, mut ev, present) = v5::connect(v5::opts(&b, lasting, false, 3600)).await;
    assert!(present, "cleanStart=1 with an expiry interval leaves a session");
    assert_eq!(v5::next_message(&mut ev, 10.0).await.as_deref(), Some(&b"kept"[..]));
    let (_c2, mut ev2, present) = v5::connect(v5::opts(&b, fleeting, false, 0)).await;
    assert!(!present, "an expiry interval of 0 ends the session with its connection");
    assert_eq!(v5::next_message(&mut ev2, 0.8).await, None);
}

/// MQTT 5 will delay: the will of a dropped connection waits for its delay, and a reconnect within
/// the delay cancels it.
#[tokio::test]
async fn v5_will_waits_for_its_delay_and_a_reconnect_cancels_it() {
    let b = BrokerProc::start(&snapshot());
    let (_sub, mut sev) = v3::subscribed(b.sig_opts("GID_test@@@watcher"), "T/will/#", QoS::AtLeastOnce).await;
    let with_will = |id: &str, delay: u32| {
        let mut o = v5::opts(&b, id, false, 60);
        o.set_last_will(v5::will(&format!("T/will/{id}"), "gone", delay));
        o
    };

    // Dropped without DISCONNECT: nothing for the first second, then the will.
    let (c, ev, _) = v5::connect(with_will("GID_test@@@late", 2)).await;
    drop((c, ev));
    assert!(
        v3::drain(&mut sev, 1.0).await.is_empty(),
        "the will came before its delay"
    );
    let got = v3::collect(&mut sev, 1, 5).await;
    assert_eq!(got[0].topic, "T/will/GID_test@@@late");

    // Back within the delay: no will at all.
    let (c, ev, _) = v5::connect(with_will("GID_test@@@back", 2)).await;
    drop((c, ev));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_c, _ev, present) = v5::connect(with_will("GID_test@@@back", 2)).await;
    assert!(present);
    assert!(
        v3::drain(&mut sev, 3.0).await.is_empty(),
        "a reconnect must cancel the will"
    );
}
