//! Isolation between instances across a cluster of three brokers: whatever a topic holds (NATS's
//! special characters `.`, `*`, `>`, spaces, empty levels, `$`, the escape character, another
//! instance's subject spelled out, a topic too long for a subject of its own), a message published
//! in one instance reaches that instance's subscribers on other brokers with its topic unchanged,
//! and never a subscriber of another instance.

use reqwest::Method;
use rumqttc::{AsyncClient, EventLoop, QoS};
use serde_json::json;
use test_support::mqtt;

use e2e::{Fixture, System};

use crate::cluster_routing::{cluster, collect, extra, summary, until_all_hear};

/// Topics that would cross into another subject if levels were not escaped, for an instance whose
/// neighbour is `other`.
fn hostile_topics(other: &str) -> Vec<String> {
    vec![
        "T/a.b".into(),
        "T/*".into(),
        "T/>".into(),
        "T/a b".into(),
        "T//x".into(),
        "T/x/".into(),
        "T/$x".into(),
        "T/~2E".into(),
        "T/\u{65e5}\u{672c}".into(),
        // Another instance's topic subject spelled inside one level.
        format!("T/x.mq.t.{other}.T"),
        format!("T/mq/t/{other}/T"),
        // Escaped, this is longer than a NATS subject may be: it travels on the instance's
        // subject for long topics.
        format!("T/{}", ".".repeat(1000)),
    ]
}

async fn connect(fx: &Fixture, s: &System, name: &str, at: usize) -> (AsyncClient, EventLoop) {
    let (c, ev, _) = mqtt::connect(fx.signature_opts(&fx.client_id(name), s.brokers[at].mqtt_port))
        .await
        .expect("connect");
    (c, ev)
}

#[tokio::test]
async fn cluster_instances_stay_apart_whatever_their_topics_hold() {
    let (_nats, s) = cluster().await;
    let a = &s.fx;
    let b = Fixture::create(&s.api).await;
    for instance in [&a.instance, &b.instance] {
        s.api
            .ok(
                Method::PATCH,
                &format!("/instances/{instance}"),
                Some(json!({"quotas": {"maxTopicLength": 1024}})),
            )
            .await;
    }
    s.api.wait_in_sync(&["node-1", "node-2", "node-3"]).await;

    // Both instances have a parent topic `T`: A's subscriber on broker 2, B's on broker 3, both
    // publishers on broker 1.
    let (a_sub, mut a_ev) = connect(a, &s, "sub", 1).await;
    let (b_sub, mut b_ev) = connect(&b, &s, "sub", 2).await;
    for (c, ev) in [(&a_sub, &mut a_ev), (&b_sub, &mut b_ev)] {
        c.subscribe("T/#", QoS::AtLeastOnce).await.unwrap();
        mqtt::suback(ev).await;
    }
    let (a_pub, a_pub_ev) = connect(a, &s, "pub", 0).await;
    let (b_pub, b_pub_ev) = connect(&b, &s, "pub", 0).await;
    let _runs = (mqtt::drive(a_pub_ev), mqtt::drive(b_pub_ev));
    until_all_hear(&[&a_pub], "T/probe", &mut [&mut a_ev]).await;
    until_all_hear(&[&b_pub], "T/probe", &mut [&mut b_ev]).await;

    passes_only_within("A", &a_pub, &mut a_ev, &mut b_ev, hostile_topics(&b.instance)).await;
    passes_only_within("B", &b_pub, &mut b_ev, &mut a_ev, hostile_topics(&a.instance)).await;
}

/// Publishes every topic from `publisher`: `own` (its instance's subscriber) gets each unchanged
/// and once, `other` (the other instance's) nothing.
async fn passes_only_within(
    name: &str,
    publisher: &AsyncClient,
    own: &mut EventLoop,
    other: &mut EventLoop,
    topics: Vec<String>,
) {
    for t in &topics {
        publisher
            .publish(t.as_str(), QoS::AtLeastOnce, false, format!("{name}:{}", t.len()))
            .await
            .unwrap();
    }
    let got = collect(own, topics.len(), &format!("instance {name}'s subscriber")).await;
    // Sorted: the long topic travels on a subject of its own, and the order between two NATS
    // subscriptions is not kept (docs/cluster.md, known gaps); each topic's own order is.
    let mut got_topics: Vec<&str> = got.iter().map(|p| p.topic.as_str()).collect();
    let mut sent: Vec<&str> = topics.iter().map(String::as_str).collect();
    got_topics.sort_unstable();
    sent.sort_unstable();
    assert_eq!(
        got_topics,
        sent,
        "instance {name}'s subscriber gets every topic unchanged, once: {:?}",
        summary(&got)
    );
    let leaked = extra(other, 1.0).await;
    assert!(
        leaked.is_empty(),
        "the other instance got messages of instance {name}: {leaked:?}"
    );
}
