//! Order across brokers when the receiving broker's clients hold overlapping filters: each filter is a
//! NATS subscription of its own, and a message on `T/a/x` arrives on both `T/#` and `T/+/x`, one on
//! `T/a/y` only on `T/#`, and a P2P message on the broker's node subject. Every subscriber there
//! still gets one copy of each message, in the order they were published, across the topics and
//! the P2P messages too.

use std::time::Duration;

use rumqttc::QoS;
use test_support::mqtt;
use test_support::nats::NatsCluster;

use e2e::System;

const MESSAGES: usize = 2000;

#[tokio::test]
async fn cluster_overlapping_filters_keep_publish_order_across_topics() {
    let nats = NatsCluster::start(3);
    let s = System::up_with(3, &["--cluster-nats-url", &nats.urls()]).await;
    s.wait_cluster_links_up().await;

    let mut subscribers = Vec::new();
    for (name, filter) in [("all", "T/#"), ("some", "T/+/x")] {
        let cid = s.fx.client_id(name);
        let (c, mut ev, _) = mqtt::connect(s.fx.signature_opts(&cid, s.brokers[1].mqtt_port))
            .await
            .expect("connect");
        c.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        mqtt::suback(&mut ev).await;
        subscribers.push((name, c, ev));
    }
    let (publisher, mut pub_ev, _) = mqtt::connect(s.fx.signature_opts(&s.fx.client_id("pub"), s.brokers[0].mqtt_port))
        .await
        .expect("connect");
    let p2p = format!("T/p2p/{}", s.fx.client_id("all"));
    // Both subscriptions reach the publisher's broker, and it knows where `all` is: probes until
    // each subscriber has one (a P2P one for `all`).
    for (name, _, ev) in subscribers.iter_mut() {
        let probe = if *name == "all" { p2p.as_str() } else { "T/a/x" };
        let mut heard = false;
        for _ in 0..50 {
            publisher.publish(probe, QoS::AtMostOnce, false, "probe").await.unwrap();
            mqtt::drain(&mut pub_ev, 0.05).await;
            if mqtt::drain(ev, 0.2).await.iter().any(|p| &p.payload[..] == b"probe") {
                heard = true;
                break;
            }
        }
        assert!(heard, "no probe arrived within 12 s ({})", s.logs_hint());
    }
    for (_, _, ev) in subscribers.iter_mut() {
        mqtt::drain(ev, 0.5).await;
    }

    let publishing = tokio::spawn(async move {
        // In turn on `T/a/x` (both filters), `T/a/y` (`T/#` only) and P2P to `all`.
        for i in 0..MESSAGES {
            let topic = match i % 3 {
                0 => "T/a/x",
                1 => "T/a/y",
                _ => p2p.as_str(),
            };
            publisher
                .publish(topic, QoS::AtMostOnce, false, format!("{i}"))
                .await
                .unwrap();
        }
        publisher
    });
    let driving = tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                if pub_ev.poll().await.is_err() {
                    return;
                }
            }
        })
        .await;
    });
    for (name, _, ev) in subscribers.iter_mut() {
        let expected: Vec<usize> = match *name {
            "all" => (0..MESSAGES).collect(),
            _ => (0..MESSAGES).step_by(3).collect(),
        };
        let got: Vec<usize> = mqtt::collect(ev, expected.len(), 60)
            .await
            .iter()
            .map(|p| String::from_utf8_lossy(&p.payload).parse().unwrap())
            .collect();
        let out_of_order = got.windows(2).filter(|w| w[1] <= w[0]).count();
        let first = got.iter().zip(&expected).position(|(g, e)| g != e);
        assert!(
            got == expected,
            "{name}: {} of {} arrived, {out_of_order} out of order or repeated; first difference at {first:?}: {:?}",
            got.len(),
            expected.len(),
            first.map(|i| &got[i..got.len().min(i + 8)]),
        );
    }
    let _publisher = publishing.await.unwrap();
    driving.abort();
}
