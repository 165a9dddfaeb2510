//! kill -9 of the broker that holds a persistent session while messages flow to it: the client comes
//! back through another broker, resumes its session there, and gets every QoS 1 message a publisher
//! had acknowledged, before and after the kill (duplicates allowed, as QoS 1 does).

use std::collections::HashSet;
use std::time::Duration;

use rumqttc::{Event, EventLoop, Packet, QoS};
use test_support::mqtt;
use test_support::nats::NatsCluster;
use tokio::time::{Instant, timeout};

use e2e::System;

const MESSAGES: usize = 300;
const KILL_AT: usize = 100;

/// Whatever publishes arrive for `secs`, until the connection fails.
async fn received(ev: &mut EventLoop, secs: f64, into: &mut HashSet<String>) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    while let Ok(Ok(event)) = timeout(deadline.saturating_duration_since(Instant::now()), ev.poll()).await {
        if let Event::Incoming(Packet::Publish(p)) = event {
            into.insert(String::from_utf8_lossy(&p.payload).into_owned());
        }
    }
}

#[tokio::test]
async fn cluster_broker_killed_persistent_client_resumes_elsewhere_with_every_acknowledged_message() {
    let nats = NatsCluster::start(3);
    let mut s = System::up_with(3, &["--cluster-nats-url", &nats.urls()]).await;
    s.wait_cluster_links_up().await;
    let cid = s.fx.client_id("survivor");
    let persistent_at = |s: &System, at: usize| {
        let mut o = s.fx.signature_opts(&cid, s.brokers[at].mqtt_port);
        o.set_clean_session(false);
        o
    };
    let (sub, mut sub_ev, _) = mqtt::connect(persistent_at(&s, 0)).await.expect("connect");
    sub.subscribe("T/#", QoS::AtLeastOnce).await.unwrap();
    mqtt::suback(&mut sub_ev).await;
    let (publisher, mut pub_ev, _) = mqtt::connect(s.fx.signature_opts(&s.fx.client_id("pub"), s.brokers[1].mqtt_port))
        .await
        .expect("connect");
    let mut got = HashSet::new();
    // The subscription reaches the publisher's broker.
    for _ in 0..50 {
        mqtt::publish_acked(&publisher, &mut pub_ev, "T/x", "probe".into()).await;
        received(&mut sub_ev, 0.2, &mut got).await;
        if got.contains("probe") {
            break;
        }
    }
    assert!(got.contains("probe"), "no probe arrived ({})", s.logs_hint());

    // The subscriber reads while messages flow; its broker dies in the middle.
    let reader = tokio::spawn(async move {
        let mut got = HashSet::new();
        received(&mut sub_ev, 60.0, &mut got).await;
        got
    });
    let mut acked = Vec::new();
    for i in 0..MESSAGES {
        if i == KILL_AT {
            s.brokers[0].kill();
        }
        let payload = format!("m{i}");
        assert!(
            mqtt::publish_acked(&publisher, &mut pub_ev, "T/x", payload.clone()).await,
            "{payload} was not acknowledged ({})",
            s.logs_hint()
        );
        acked.push(payload);
    }
    got.extend(reader.await.unwrap());

    // Back through another broker: the session is there, with what it had not received.
    let (_back, mut back_ev, present) = mqtt::connect(persistent_at(&s, 2)).await.expect("reconnect");
    assert!(present, "the persistent session is resumed on another broker");
    let deadline = Instant::now() + Duration::from_secs(30);
    let missing = loop {
        received(&mut back_ev, 0.5, &mut got).await;
        let missing: Vec<&String> = acked.iter().filter(|p| !got.contains(*p)).collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing.into_iter().cloned().collect::<Vec<_>>();
        }
    };
    assert!(
        missing.is_empty(),
        "{} acknowledged messages never reached the client, e.g. {:?} ({})",
        missing.len(),
        &missing[..missing.len().min(10)],
        s.logs_hint()
    );
    drop(sub);
}
