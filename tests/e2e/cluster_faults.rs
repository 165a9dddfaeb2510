//! A cluster of three brokers whose whole NATS cluster goes away and comes back: each broker keeps
//! serving its own clients (new connections too), refuses what would need a stored copy for a
//! persistent session, says so in its heartbeat, and rejoins with the sessions it opened meanwhile.

use std::time::Duration;

use rumqttc::QoS;
use test_support::mqtt;
use test_support::nats::NatsCluster;

use e2e::System;

/// Waits until the control plane shows every broker's cluster link as `want` (from heartbeats).
async fn wait_links(s: &System, want: &str) {
    for _ in 0..300 {
        let list = s.api.brokers().await;
        let brokers = list["brokers"].as_array().cloned().unwrap_or_default();
        if brokers.len() == s.brokers.len() && brokers.iter().all(|b| b["clusterLink"] == want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "cluster links not all {want}: {} ({})",
        s.api.brokers().await,
        s.logs_hint()
    );
}

#[tokio::test]
async fn cluster_without_nats_brokers_serve_locally_refuse_what_needs_storing_and_rejoin() {
    let mut nats = NatsCluster::start(3);
    let s = System::up_with(3, &["--cluster-nats-url", &nats.urls()]).await;
    s.wait_cluster_links_up().await;

    // A persistent session on broker 0, offline: its subscription is known cluster-wide.
    let stored_for = s.fx.client_id("stored-for");
    let mut o = s.fx.signature_opts(&stored_for, s.brokers[0].mqtt_port);
    o.set_clean_session(false);
    let (c, mut ev, _) = mqtt::connect(o).await.expect("connect");
    c.subscribe("T/stored/#", QoS::AtLeastOnce).await.unwrap();
    mqtt::suback(&mut ev).await;
    c.disconnect().await.unwrap();
    mqtt::drain(&mut ev, 0.5).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    for i in 0..3 {
        nats.kill(i);
    }
    wait_links(&s, "down").await;

    // A new client on broker 1 connects, subscribes and gets what another client there publishes.
    let during = s.fx.client_id("during");
    let (sub, mut sub_ev, _) = tokio::time::timeout(
        Duration::from_secs(10),
        mqtt::connect(s.fx.signature_opts(&during, s.brokers[1].mqtt_port)),
    )
    .await
    .expect("a CONNECT is answered while NATS is away")
    .expect("and accepted");
    sub.subscribe("T/local", QoS::AtLeastOnce).await.unwrap();
    mqtt::suback(&mut sub_ev).await;
    let publisher = s.fx.client_id("local-pub");
    let (p, p_ev, _) = mqtt::connect(s.fx.signature_opts(&publisher, s.brokers[1].mqtt_port))
        .await
        .expect("connect");
    let _p_run = mqtt::drive(p_ev);
    p.publish("T/local", QoS::AtLeastOnce, false, "still here")
        .await
        .unwrap();
    let got = mqtt::collect(&mut sub_ev, 1, 10).await;
    assert_eq!(&got[0].payload[..], b"still here");

    // A QoS 1 PUBLISH that needs a stored copy for the persistent session is refused: an MQTT 3.1.1
    // publisher is disconnected instead of acknowledged.
    let refused = s.fx.client_id("refused-pub");
    let (r, mut r_ev, _) = mqtt::connect(s.fx.signature_opts(&refused, s.brokers[2].mqtt_port))
        .await
        .expect("connect");
    r.publish("T/stored/x", QoS::AtLeastOnce, false, "nowhere to keep it")
        .await
        .unwrap();
    let mut acked = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, r_ev.poll()).await {
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)))) => acked = true,
            Ok(Ok(_)) => {}
            Ok(Err(_)) => break,
            Err(_) => panic!("the publisher was neither acknowledged nor disconnected within 10 s"),
        }
    }
    assert!(!acked, "a publish that could not be stored was acknowledged");

    // NATS comes back: links up again, and the session opened meanwhile is now recorded, so a
    // connection with its client ID on another broker takes it over.
    for i in 0..3 {
        nats.restart(i);
    }
    nats.wait_for_leader(Duration::from_secs(30));
    wait_links(&s, "up").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_again, again_ev, _) = mqtt::connect(s.fx.signature_opts(&during, s.brokers[2].mqtt_port))
        .await
        .expect("connect");
    let _again_run = mqtt::drive(again_ev);
    mqtt::expect_closed(&mut sub_ev, 10).await;
}
