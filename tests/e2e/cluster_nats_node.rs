//! One of three NATS nodes dies (kill -9) while messages flow between brokers: no QoS 1 message that
//! a publisher had acknowledged is lost for a persistent subscriber on another broker, the brokers
//! carry on, and the clean-session loss window (core NATS, at most once) is measured and printed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{Event, EventLoop, Packet, QoS};
use test_support::mqtt;
use test_support::nats::NatsCluster;
use tokio::time::Instant;

use e2e::System;

const MESSAGES: usize = 600;
const KILL_AT: usize = 150;

/// Polls `ev` for the whole test, reconnecting as rumqttc does, and records every payload.
fn record(mut ev: EventLoop) -> (Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let task = tokio::spawn(async move {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    sink.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&p.payload).into_owned());
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    (got, task)
}

/// The NATS node that holds `connection` (a client connection name), from each node's monitoring.
async fn node_holding(nats: &NatsCluster, connection: &str) -> usize {
    for _ in 0..50 {
        for (i, node) in nats.nodes.iter().enumerate() {
            let url = format!("http://127.0.0.1:{}/connz", node.monitor_port);
            if let Ok(r) = reqwest::get(&url).await
                && let Ok(body) = r.text().await
                && body.contains(&format!("\"{connection}\""))
            {
                return i;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no NATS node holds the connection {connection:?}");
}

#[tokio::test]
async fn cluster_nats_node_killed_under_load_loses_no_acknowledged_message() {
    let mut nats = NatsCluster::start(3);
    let s = System::up_with(3, &["--cluster-nats-url", &nats.urls()]).await;
    s.wait_cluster_links_up().await;
    let port = |i: usize| s.brokers[i].mqtt_port;

    // A persistent subscriber on broker 1, a clean-session one on broker 3, the publisher on broker 2.
    let mut o = s.fx.signature_opts(&s.fx.client_id("keeps"), port(0));
    o.set_clean_session(false);
    let (persistent, mut ev, _) = mqtt::connect(o).await.expect("connect");
    persistent.subscribe("T/#", QoS::AtLeastOnce).await.unwrap();
    mqtt::suback(&mut ev).await;
    let (kept, _kept_task) = record(ev);
    let (clean, mut ev, _) = mqtt::connect(s.fx.signature_opts(&s.fx.client_id("clean"), port(2)))
        .await
        .expect("connect");
    clean.subscribe("T/#", QoS::AtMostOnce).await.unwrap();
    mqtt::suback(&mut ev).await;
    let (seen, _seen_task) = record(ev);

    let publisher_opts = || s.fx.signature_opts(&s.fx.client_id("pub"), port(1));
    let (mut publisher, mut pub_ev, _) = mqtt::connect(publisher_opts()).await.expect("connect");
    // Both subscriptions have reached the publisher's broker once a probe arrives at both.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !["kept", "seen"].iter().all(|w| {
        let list = if *w == "kept" { &kept } else { &seen };
        list.lock().unwrap().iter().any(|p| p == "probe")
    }) {
        assert!(
            Instant::now() < deadline,
            "probes did not reach both subscribers: {}",
            s.logs_hint()
        );
        mqtt::publish_acked(&publisher, &mut pub_ev, "T/x", "probe".into()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Kill the node the publisher's broker routes through: its publishes and stores must move over.
    let victim = node_holding(&nats, &format!("broker {} routing", s.brokers[1].node_id)).await;

    let mut acked = Vec::new();
    let (mut refused, mut refused_first, mut refused_last) = (0, None, None);
    let mut killed_at = None;
    for i in 0..MESSAGES {
        if i == KILL_AT {
            nats.kill(victim);
            killed_at = Some(Instant::now());
        }
        let payload = format!("m{i}");
        let since = Instant::now();
        // A publish that is refused or cut off was not acknowledged: the publisher sends it again.
        while !mqtt::publish_acked(&publisher, &mut pub_ev, "T/x", payload.clone()).await {
            refused += 1;
            refused_first.get_or_insert_with(Instant::now);
            refused_last = Some(Instant::now());
            assert!(
                since.elapsed() < Duration::from_secs(30),
                "the brokers did not carry on after a NATS node died: {payload} refused for 30 s ({})",
                s.logs_hint()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Ok((c, e, _)) = mqtt::connect(publisher_opts()).await {
                (publisher, pub_ev) = (c, e);
            }
        }
        acked.push(payload);
    }
    let publishing = killed_at.unwrap().elapsed();
    let refused_window = refused_first.zip(refused_last).map(|(a, b)| b - a);

    // Every acknowledged message reaches the persistent subscriber (QoS 1: duplicates allowed).
    let deadline = Instant::now() + Duration::from_secs(30);
    let missing = loop {
        let got: HashSet<String> = kept.lock().unwrap().iter().cloned().collect();
        let missing: Vec<&String> = acked.iter().filter(|p| !got.contains(*p)).collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing.into_iter().cloned().collect::<Vec<_>>();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        missing.is_empty(),
        "{} acknowledged messages never reached the persistent subscriber, e.g. {:?} ({})",
        missing.len(),
        &missing[..missing.len().min(10)],
        s.logs_hint()
    );

    // The clean-session subscriber rides core NATS (at most once): what it missed is the loss window.
    let got: HashSet<String> = seen.lock().unwrap().iter().cloned().collect();
    let lost: Vec<usize> = acked
        .iter()
        .filter(|p| !got.contains(*p))
        .map(|p| p[1..].parse().unwrap())
        .collect();
    println!(
        "NATS node killed after message {KILL_AT}: {refused} publish attempts refused or cut off (over {:?}), \
         {} of {MESSAGES} lost for the clean-session subscriber (messages {:?}..{:?}), the rest took {:?} after the kill",
        refused_window,
        lost.len(),
        lost.first(),
        lost.last(),
        publishing
    );
    // And it hears new messages again: the cluster rejoined around the dead node.
    let last = acked.last().unwrap();
    assert!(
        got.contains(last),
        "the clean subscriber did not hear {last} after the kill"
    );
}
