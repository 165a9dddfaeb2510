//! The development listener as a plain standards broker, with real MQTT 3.1.1 and 5 clients: any
//! topic, first-level wildcards, an empty first level, `$` topics kept from first-level wildcards
//! (also for wills), retained messages for every matching filter, one copy for overlapping
//! subscriptions (MQTT 5: with every identifier), and the will of a client whose keep-alive runs out.

use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::v5::mqttbytes::v5::{ConnectProperties, LastWill};
use rumqttc::{QoS, SubscribeFilter};

use crate::support::raw::{self, Raw};
use crate::support::v5::{self, filter};
use crate::support::*;
use crate::support::{v3, v5::publish_acked};

fn dev3(b: &BrokerProc, id: &str) -> rumqttc::MqttOptions {
    let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", b.dev_port.unwrap());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

/// A v3.1.1 client of the development listener subscribed to `filters` at QoS 1.
async fn subscriber(b: &BrokerProc, id: &str, filters: &[&str]) -> (rumqttc::AsyncClient, rumqttc::EventLoop) {
    let (c, mut ev, _) = v3::connect(dev3(b, id)).await.unwrap();
    let filters = filters
        .iter()
        .map(|f| SubscribeFilter::new(f.to_string(), QoS::AtLeastOnce));
    c.subscribe_many(filters).await.unwrap();
    assert!(
        v3::suback(&mut ev)
            .await
            .iter()
            .all(|r| matches!(r, rumqttc::SubscribeReasonCode::Success(_)))
    );
    (c, ev)
}

/// The topics of the next `n` messages.
async fn topics(ev: &mut rumqttc::EventLoop, n: usize) -> Vec<String> {
    v3::collect(ev, n, 10).await.into_iter().map(|p| p.topic).collect()
}

#[tokio::test]
async fn any_topic_first_level_wildcards_and_dollar_topics_apart() {
    let b = BrokerProc::start_with_dev(&snapshot());
    let (_a, mut all) = subscriber(&b, "all", &["#"]).await;
    let (_p, mut plus) = subscriber(&b, "plus", &["+/+"]).await;
    let (_d, mut dollar) = subscriber(&b, "dollar", &["$x/#"]).await;
    let (publ, pev, _) = v3::connect(dev3(&b, "pub")).await.unwrap();
    let _drive = v3::drive(pev);
    // Every subscriber's last message is a marker: nothing it must not get came before it.
    for t in ["/a", "$x/y", "a/b", "a", "m/end", "$x/end"] {
        publ.publish(t, QoS::AtLeastOnce, false, "x").await.unwrap();
    }
    assert_eq!(topics(&mut all, 4).await, ["/a", "a/b", "a", "m/end"]);
    assert_eq!(topics(&mut plus, 3).await, ["/a", "a/b", "m/end"]);
    assert_eq!(topics(&mut dollar, 2).await, ["$x/y", "$x/end"]);

    // Wills on such topics.
    for (id, topic) in [("w1", "/will"), ("w2", "$x/will")] {
        let mut o = dev3(&b, id);
        o.set_last_will(rumqttc::LastWill::new(topic, "gone", QoS::AtLeastOnce, false));
        let (_w, wev, _) = v3::connect(o).await.unwrap();
        drop(wev);
    }
    assert_eq!(topics(&mut dollar, 1).await, ["$x/will"]);
    assert_eq!(topics(&mut plus, 1).await, ["/will"]);
    for t in ["m/end2", "$x/end2"] {
        publ.publish(t, QoS::AtLeastOnce, false, "x").await.unwrap();
    }
    assert_eq!(topics(&mut all, 2).await, ["/will", "m/end2"]);
    assert_eq!(topics(&mut plus, 1).await, ["m/end2"]);
    assert_eq!(topics(&mut dollar, 1).await, ["$x/end2"]);
}

#[tokio::test]
async fn retained_for_every_matching_filter_and_one_copy_for_overlaps() {
    let b = BrokerProc::start_with_dev(&snapshot());
    let (p, mut pev, _) = v5::connect(v5::dev_opts(&b, "pub5")).await;
    let none = rumqttc::v5::mqttbytes::v5::PublishProperties::default;
    for (t, body) in [("a/b", "ab"), ("/a", "slash"), ("$x/r", "dollar")] {
        publish_acked(&p, &mut pev, t, true, body, none()).await;
    }

    // MQTT 3.1.1: the retained messages of each filter of the SUBSCRIBE (none of a `$` topic for
    // the first-level wildcards); then one copy of a message all three filters match.
    let (_s, mut sev) = subscriber(&b, "sub3", &["#", "+/+", "a/+"]).await;
    let got = v3::collect(&mut sev, 5, 10).await;
    assert!(got.iter().all(|m| m.retain));
    let mut bodies: Vec<String> = got.iter().map(|m| String::from_utf8_lossy(&m.payload).into()).collect();
    bodies.sort();
    assert_eq!(bodies, ["ab", "ab", "ab", "slash", "slash"]);
    publish_acked(&p, &mut pev, "a/b", false, "live", none()).await;
    publish_acked(&p, &mut pev, "m/x", false, "marker", none()).await;
    let got = v3::collect(&mut sev, 2, 10).await;
    assert_eq!(
        got.iter().map(|m| &m.payload[..]).collect::<Vec<_>>(),
        [&b"live"[..], b"marker"],
        "one copy for overlapping subscriptions"
    );
    assert!(!got[0].retain);

    // MQTT 5: retained messages carry their subscription's identifier; a live message one copy
    // with all of them (two here: rumqttc 0.25 misreads a PUBLISH with three or more).
    let (s5, mut s5ev, _) = v5::connect(v5::dev_opts(&b, "sub5")).await;
    let ids =
        |m: &rumqttc::v5::mqttbytes::v5::Publish| m.properties.clone().unwrap_or_default().subscription_identifiers;
    for (id, f, n) in [(Some(1), "#", 2), (Some(2), "+/+", 2), (None, "a/+", 1)] {
        v5::subscribe(&s5, &mut s5ev, filter(f, Q5::AtLeastOnce), id).await;
        for m in v5::collect(&mut s5ev, n).await {
            assert!(m.retain && ids(&m) == Vec::from_iter(id), "{f}: {m:?}");
        }
    }
    publish_acked(&p, &mut pev, "a/b", false, "live", none()).await;
    let mut live = ids(&v5::next_is(&mut s5ev, "live").await);
    live.sort();
    assert_eq!(live, [1, 2]);
    v5::marker(&p, &mut pev, &mut s5ev, "m/x").await;
}

#[tokio::test]
async fn keep_alive_timeout_publishes_the_will() {
    let b = BrokerProc::start_with_dev(&snapshot());
    let (_s, mut sev) = subscriber(&b, "ka-sub", &["ka/#"]).await;
    // A CONNECT with keep alive 2 s, then nothing: no PINGREQ ever.
    let will = LastWill::new("ka/will", "gone", Q5::AtLeastOnce, false, None);
    let started = Instant::now();
    let (mut silent, _) = Raw::connect(
        b.dev_port.unwrap(),
        raw::connect_packet("silent", 2, ConnectProperties::new()),
        Some(will),
        None,
    )
    .await;
    let got = v3::collect(&mut sev, 1, 10).await;
    assert_eq!((&got[0].topic[..], &got[0].payload[..]), ("ka/will", &b"gone"[..]));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the will came before the keep-alive ran out"
    );
    silent.closed(5.0).await;
}
