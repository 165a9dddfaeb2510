//! A cluster behind Debian's HAProxy with the repository's docker/haproxy.cfg (the file compose and
//! `DEV_CLUSTER=1 scripts/dev` use): three nats-server processes, three brokers joined to them, and
//! HAProxy on a free port. Clients through HAProxy and clients connected straight to a broker exchange
//! messages both ways, HAProxy spreads clients over the brokers, and a broker that goes away is skipped.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use rumqttc::{AsyncClient, EventLoop, QoS};
use test_support::mqtt;
use test_support::nats::NatsCluster;

use e2e::{HaProxy, System};

/// The broker node a client is connected to, from the control plane's session view.
async fn node_of(s: &System, cid: &str) -> String {
    let path = format!("/instances/{}/sessions/{cid}", s.fx.instance);
    for _ in 0..100 {
        let v = s.api.ok(Method::GET, &path, None).await;
        if v["online"] == true {
            return v["channels"][0]["nodeId"].as_str().expect("nodeId").to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{cid} never showed online");
}

async fn subscribed(s: &System, cid: &str, port: u16, filter: &str) -> (AsyncClient, EventLoop) {
    let (client, mut ev, _) = mqtt::connect(s.fx.signature_opts(cid, port)).await.expect("connect");
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    mqtt::suback(&mut ev).await;
    (client, ev)
}

/// `from` publishes to `topic` (its event loop `from_ev` sends) until `to` receives one (subscriptions
/// reach the other brokers through NATS a moment after SUBACK), then `n` numbered messages that must
/// all arrive, in order.
async fn pass(from: &AsyncClient, from_ev: &mut EventLoop, topic: &str, to: &mut EventLoop, n: usize) {
    let mut seen = false;
    for _ in 0..40 {
        from.publish(topic, QoS::AtLeastOnce, false, "probe").await.unwrap();
        mqtt::drain(from_ev, 0.05).await;
        if !mqtt::drain(to, 0.2).await.is_empty() {
            seen = true;
            break;
        }
    }
    assert!(seen, "nothing published to {topic} arrived within 10 s");
    mqtt::drain(to, 0.3).await; // late probes
    for i in 0..n {
        from.publish(topic, QoS::AtLeastOnce, false, format!("m{i}"))
            .await
            .unwrap();
    }
    mqtt::drain(from_ev, 0.3).await;
    let got = mqtt::collect(to, n, 10).await;
    let payloads: Vec<String> = got
        .iter()
        .map(|p| String::from_utf8_lossy(&p.payload).into_owned())
        .collect();
    assert_eq!(payloads, (0..n).map(|i| format!("m{i}")).collect::<Vec<_>>(), "{topic}");
}

#[tokio::test]
async fn cluster_behind_haproxy_passes_messages_both_ways() {
    let nats = NatsCluster::start(3);
    let urls = nats.urls();
    let mut s = System::up_with(3, &["--cluster-nats-url", &urls]).await;
    s.wait_cluster_links_up().await;
    let ports: Vec<u16> = s.brokers.iter().map(|b| b.mqtt_port).collect();
    let lb = HaProxy::start(s.dir.path(), &ports);

    // One client through HAProxy, one straight to a broker other than the one HAProxy chose.
    let via_lb = s.fx.client_id("via-lb");
    let (lb_client, mut lb_ev) = subscribed(&s, &via_lb, lb.port, "T/to-lb").await;
    let lb_node = node_of(&s, &via_lb).await;
    let other = s.brokers.iter().position(|b| b.node_id != lb_node).unwrap();
    let direct = s.fx.client_id("direct");
    let (direct_client, mut direct_ev) = subscribed(&s, &direct, s.brokers[other].mqtt_port, "T/to-direct").await;
    assert_ne!(node_of(&s, &direct).await, lb_node);

    pass(&direct_client, &mut direct_ev, "T/to-lb", &mut lb_ev, 20).await;
    pass(&lb_client, &mut lb_ev, "T/to-direct", &mut direct_ev, 20).await;

    // leastconn: the next clients through HAProxy go to the brokers that have fewer.
    let mut nodes = BTreeSet::from([lb_node.clone()]);
    let mut keep = Vec::new();
    for i in 0..2 {
        let cid = s.fx.client_id(&format!("spread-{i}"));
        let (c, ev, _) = mqtt::connect(s.fx.signature_opts(&cid, lb.port))
            .await
            .expect("connect");
        keep.push((c, mqtt::drive(ev)));
        nodes.insert(node_of(&s, &cid).await);
    }
    assert!(nodes.len() >= 2, "HAProxy sent every client to {nodes:?}");

    // The broker of the first client goes away: a new connection through HAProxy is accepted at once
    // by another broker (redispatch), before the health checks have noticed.
    let gone = s.brokers.iter().position(|b| b.node_id == lb_node).unwrap();
    s.brokers[gone].kill();
    let cid = s.fx.client_id("after-kill");
    let (c, ev, _) = mqtt::connect(s.fx.signature_opts(&cid, lb.port))
        .await
        .expect("HAProxy sends the connection to a live broker");
    let _drive = mqtt::drive(ev);
    assert_ne!(node_of(&s, &cid).await, lb_node);
    let _ = c.disconnect().await;
    drop(nats);
}
