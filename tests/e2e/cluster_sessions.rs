//! Persistent sessions in a cluster of three brokers on a three-node NATS cluster: a persistent
//! subscriber gets every QoS 1 message published on the other brokers, in each publisher's order,
//! while it is online and after it comes back through another broker; and a client that comes back
//! while JetStream stalls is asked to retry rather than given an empty session; the instance's offline
//! cap counts what every broker stored, and a session back on the broker it left gets what was
//! stored meanwhile.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, EventLoop, Packet, QoS};
use serde_json::json;
use test_support::mqtt;
use test_support::nats::NatsCluster;
use tokio::time::{Instant, timeout};

use e2e::System;

async fn cluster() -> (NatsCluster, System) {
    let nats = NatsCluster::start(3);
    let s = System::up_with(3, &["--cluster-nats-url", &nats.urls()]).await;
    s.wait_cluster_links_up().await;
    (nats, s)
}

/// A persistent (clean session off) client on broker `at`, subscribed to `T/#` at QoS 1 when asked.
async fn persistent(s: &System, cid: &str, at: usize, subscribe: bool) -> (AsyncClient, EventLoop, bool) {
    let mut o = s.fx.signature_opts(cid, s.brokers[at].mqtt_port);
    o.set_clean_session(false);
    let (c, mut ev, present) = mqtt::connect(o).await.expect("connect");
    if subscribe {
        c.subscribe("T/#", QoS::AtLeastOnce).await.unwrap();
        mqtt::suback(&mut ev).await;
    }
    (c, ev, present)
}

async fn publisher(s: &System, name: &str, at: usize) -> (AsyncClient, tokio::task::JoinHandle<()>) {
    let cid = s.fx.client_id(name);
    let (c, ev, _) = mqtt::connect(s.fx.signature_opts(&cid, s.brokers[at].mqtt_port))
        .await
        .expect("connect");
    (c, mqtt::drive(ev))
}

/// Publishes `<name>0` .. `<name>{n-1}` on `T/x` at QoS 1, in order.
async fn send_numbered(c: &AsyncClient, name: &str, n: usize) {
    for i in 0..n {
        c.publish("T/x", QoS::AtLeastOnce, false, format!("{name}{i}"))
            .await
            .unwrap();
    }
}

/// Disconnects a client cleanly (its session stays when persistent).
async fn leave(c: &AsyncClient, ev: &mut EventLoop) {
    c.disconnect().await.unwrap();
    mqtt::drain(ev, 0.5).await;
}

/// Publishes probes from `from` until `to` receives one: the subscription has reached that broker.
async fn until_heard(from: &AsyncClient, to: &mut EventLoop) {
    for _ in 0..50 {
        from.publish("T/probe", QoS::AtLeastOnce, false, "probe").await.unwrap();
        if mqtt::drain(to, 0.2).await.iter().any(|p| &p.payload[..] == b"probe") {
            return;
        }
    }
    panic!("no probe arrived within 10 s");
}

/// Collects `n` non-probe payloads (publish acknowledgements are rumqttc's automatic ones).
async fn collect_payloads(ev: &mut EventLoop, n: usize, secs: u64) -> Vec<String> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, ev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) if &p.payload[..] != b"probe" => {
                got.push(String::from_utf8_lossy(&p.payload).into_owned());
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("connection failed after {} messages: {e:?}", got.len()),
            Err(_) => break,
        }
    }
    got
}

/// Every payload `<name><i>` of each publisher arrived once, in its order.
fn assert_each_in_order(got: &[String], publishers: &[&str], n: usize) {
    let mut by: HashMap<&str, Vec<usize>> = HashMap::new();
    for p in got {
        let name = &p[..1];
        let name = publishers.iter().find(|x| **x == name).expect("known publisher");
        by.entry(name).or_default().push(p[1..].parse().unwrap());
    }
    for name in publishers {
        let seq = by.remove(name).unwrap_or_default();
        assert_eq!(
            seq,
            (0..n).collect::<Vec<_>>(),
            "messages of {name}: {} of {n} arrived, in this order",
            seq.len()
        );
    }
}

#[tokio::test]
async fn cluster_online_persistent_subscriber_gets_every_message_from_other_brokers_in_order() {
    let (_nats, s) = cluster().await;
    let cid = s.fx.client_id("persistent");
    let (_sub, mut sub_ev, _) = persistent(&s, &cid, 0, true).await;
    let (a, _a_run) = publisher(&s, "pub-a", 1).await;
    let (b, _b_run) = publisher(&s, "pub-b", 2).await;
    until_heard(&a, &mut sub_ev).await;
    until_heard(&b, &mut sub_ev).await;
    mqtt::drain(&mut sub_ev, 0.5).await;

    // Both publish at once: their messages reach the inbox from two brokers, interleaved.
    let n = 200;
    let (_, _, got) = tokio::join!(
        send_numbered(&a, "a", n),
        send_numbered(&b, "b", n),
        collect_payloads(&mut sub_ev, 2 * n, 30)
    );
    assert_each_in_order(&got, &["a", "b"], n);
    // Nothing more comes: no duplicates after the fact either.
    let late = collect_payloads(&mut sub_ev, 1, 2).await;
    assert!(late.is_empty(), "late copies: {late:?}");
}

#[tokio::test]
async fn cluster_offline_messages_follow_the_client_to_another_broker() {
    let (_nats, s) = cluster().await;
    let cid = s.fx.client_id("roams");
    let (sub, mut sub_ev, _) = persistent(&s, &cid, 0, true).await;
    let (a, _a_run) = publisher(&s, "pub-a", 1).await;
    until_heard(&a, &mut sub_ev).await;
    mqtt::drain(&mut sub_ev, 0.5).await;
    leave(&sub, &mut sub_ev).await;

    let n = 100;
    send_numbered(&a, "a", n).await;
    // Give the publishes time to be acknowledged (stored) before the client comes back elsewhere.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (back, mut back_ev, present) = persistent(&s, &cid, 2, false).await;
    assert!(present, "the session is resumed on another broker");
    let got = collect_payloads(&mut back_ev, n, 20).await;
    assert_each_in_order(&got, &["a"], n);
    mqtt::drain(&mut back_ev, 3.0).await; // acknowledgements settle and are purged
    leave(&back, &mut back_ev).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // And back to the first broker, which still knows the session from before it moved: only what
    // was stored since, once each.
    let m = 50;
    send_numbered(&a, "c", m).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_home, mut home_ev, present) = persistent(&s, &cid, 0, false).await;
    assert!(present, "the session is resumed on the broker it first lived on");
    let got = collect_payloads(&mut home_ev, m + 1, 8).await;
    assert_each_in_order(&got, &["c"], m);
}

#[tokio::test]
async fn cluster_offline_cap_holds_for_the_instance_across_brokers() {
    let (_nats, s) = cluster().await;
    let cap = 20;
    s.api
        .ok(
            Method::PATCH,
            &format!("/instances/{}", s.fx.instance),
            Some(json!({"quotas": {"maxOfflineMessages": cap}})),
        )
        .await;
    s.api.wait_in_sync(&["node-1", "node-2", "node-3"]).await;
    let cid = s.fx.client_id("capped");
    let (sub, mut sub_ev, _) = persistent(&s, &cid, 0, true).await;
    let (a, _a_run) = publisher(&s, "pub-a", 1).await;
    let (b, _b_run) = publisher(&s, "pub-b", 2).await;
    until_heard(&a, &mut sub_ev).await;
    until_heard(&b, &mut sub_ev).await;
    mqtt::drain(&mut sub_ev, 0.5).await;
    leave(&sub, &mut sub_ev).await;

    // 15 from broker 2, then 15 from broker 3: 30 queued against a cap of 20 for the whole
    // instance, so the 10 oldest go, whichever broker stored them.
    for (c, name) in [(&a, "a"), (&b, "b")] {
        send_numbered(c, name, 15).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Back on the broker it left, which still has the session's delivery state: it must read what
    // was stored meanwhile rather than trust that state.
    let (_back, mut back_ev, present) = persistent(&s, &cid, 0, false).await;
    assert!(present, "the session is resumed");
    let got = collect_payloads(&mut back_ev, 30, 8).await;
    let newest: Vec<String> = (10..15)
        .map(|i| format!("a{i}"))
        .chain((0..15).map(|i| format!("b{i}")))
        .collect();
    assert_eq!(got, newest, "the newest {cap} of 30, in order");
}

#[tokio::test]
async fn cluster_resume_while_jetstream_stalls_is_refused_not_emptied() {
    let (nats, s) = cluster().await;
    let cid = s.fx.client_id("stalled");
    let (sub, mut sub_ev, _) = persistent(&s, &cid, 0, true).await;
    let (a, _a_run) = publisher(&s, "pub-a", 0).await;
    until_heard(&a, &mut sub_ev).await;
    leave(&sub, &mut sub_ev).await;
    a.publish("T/x", QoS::AtLeastOnce, false, "kept").await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Every NATS node freezes: sockets stay open, so the brokers' links look up (their pings would
    // notice after about 15 s), but the session record cannot be read. A client resuming now must
    // not get a fresh, empty session: its record (subscriptions, inbox position) would be
    // overwritten by the empty one once NATS answers, and its queued message never delivered.
    for i in 0..3 {
        nats.pause(i);
    }
    let mut o = s.fx.signature_opts(&cid, s.brokers[1].mqtt_port);
    o.set_clean_session(false);
    let refused = mqtt::refusal(o).await;
    for i in 0..3 {
        nats.resume(i);
    }
    assert_eq!(
        refused,
        Some(ConnectReturnCode::ServiceUnavailable),
        "a resume while JetStream stalls is refused for a retry"
    );

    // The client retries (as clients do) and gets its session and the message.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (_back, mut back_ev) = loop {
        let mut o = s.fx.signature_opts(&cid, s.brokers[1].mqtt_port);
        o.set_clean_session(false);
        match mqtt::connect(o).await {
            Ok((c, ev, present)) => {
                assert!(present, "the session is resumed after the stall");
                break (c, ev);
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "not resumed within 30 s of the stall: {e:?}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    assert_eq!(collect_payloads(&mut back_ev, 1, 10).await, ["kept"]);
}
