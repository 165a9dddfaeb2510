//! Routing across a cluster of three brokers on a three-node NATS cluster, with real MQTT clients:
//! what a client of broker 1 publishes reaches the matching subscribers of brokers 2 and 3 at
//! min(publish, subscription) QoS and in publish order, MQTT 5 properties included; a `$share`
//! group with members on two brokers gets each message once; P2P messages reach their target on
//! another broker, and nobody else.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use rumqttc::{AsyncClient, Event, EventLoop, Packet, Publish, QoS};
use test_support::mqtt;
use test_support::nats::NatsCluster;
use tokio::time::timeout;

use e2e::{System, v5};

pub async fn cluster() -> (NatsCluster, System) {
    let nats = NatsCluster::start(3);
    let s = System::up_with(3, &["--cluster-nats-url", &nats.urls()]).await;
    s.wait_cluster_links_up().await;
    (nats, s)
}

/// A v3.1.1 client `name` on broker `at` (clean session unless `persistent`) with these
/// subscriptions.
pub async fn client(
    s: &System,
    name: &str,
    at: usize,
    persistent: bool,
    filters: &[(&str, QoS)],
) -> (AsyncClient, EventLoop) {
    let mut o = s.fx.signature_opts(&s.fx.client_id(name), s.brokers[at].mqtt_port);
    o.set_clean_session(!persistent);
    let (c, mut ev, _) = mqtt::connect(o).await.expect("connect");
    for (filter, qos) in filters {
        c.subscribe(*filter, *qos).await.unwrap();
        mqtt::suback(&mut ev).await;
    }
    (c, ev)
}

pub fn is_probe(p: &Publish) -> bool {
    p.payload.starts_with(b"probe")
}

/// Publishes probes on `topic` from each of `from` until every one of `to` has received one from
/// each (a subscription reaches the other brokers through NATS a moment after its SUBACK); then
/// empties them of late probes.
pub async fn until_all_hear(from: &[&AsyncClient], topic: &str, to: &mut [&mut EventLoop]) {
    for (i, ev) in to.iter_mut().enumerate() {
        for (j, p) in from.iter().enumerate() {
            let probe = format!("probe-{j}");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                p.publish(topic, QoS::AtMostOnce, false, probe.clone()).await.unwrap();
                if mqtt::drain(ev, 0.2).await.iter().any(|m| m.payload == probe.as_bytes()) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "subscriber {i} heard no probe of publisher {j} on {topic} within 10 s"
                );
            }
        }
    }
    for ev in to.iter_mut() {
        mqtt::drain(ev, 0.3).await;
    }
}

/// The next `n` publishes other than probes, each within 10 s.
pub async fn collect(ev: &mut EventLoop, n: usize, who: &str) -> Vec<Publish> {
    let mut got = Vec::new();
    while got.len() < n {
        match timeout(Duration::from_secs(10), ev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) if !is_probe(&p) => got.push(p),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("{who}: connection failed after {} messages: {e:?}", got.len()),
            Err(_) => panic!("{who}: only {} of {n} messages arrived: {:?}", got.len(), summary(&got)),
        }
    }
    got
}

/// What arrives (other than probes) within `secs`.
pub async fn extra(ev: &mut EventLoop, secs: f64) -> Vec<(String, String, u8)> {
    let late = mqtt::drain(ev, secs).await;
    summary(&late.into_iter().filter(|p| !is_probe(p)).collect::<Vec<_>>())
}

/// (topic, payload, QoS) of each publish.
pub fn summary(got: &[Publish]) -> Vec<(String, String, u8)> {
    got.iter()
        .map(|p| {
            (
                p.topic.clone(),
                String::from_utf8_lossy(&p.payload).into_owned(),
                p.qos as u8,
            )
        })
        .collect()
}

/// Subscriptions of one client: (filter, QoS).
type Filters = &'static [(&'static str, QoS)];

const QOS: [QoS; 3] = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];

/// Topics published in the routing check, and whether `T/+/x` matches them (`T/#` matches all).
const TOPICS: [(&str, bool); 4] = [("T/a/x", true), ("T/b/x", true), ("T/a/y", false), ("T/a/b/x", false)];

/// MQTT 5 user properties: order and a repeated key must survive the trip.
const USER: [(&str, &str); 3] = [("k", "1"), ("a", "x"), ("k", "2")];

#[tokio::test]
async fn cluster_publish_reaches_other_brokers_by_filter_qos_share_group_and_p2p() {
    let started = Instant::now();
    let (_nats, s) = cluster().await;
    println!("cluster up in {:.1} s", started.elapsed().as_secs_f64());
    let (p, p_ev) = client(&s, "pub", 0, false, &[]).await;
    let _p_run = mqtt::drive(p_ev);

    // Filters and QoS, in publish order: broker 2 has `T/#` subscribers only, broker 3 `T/+/x` ones
    // only, so that each message reaches each of them through one NATS subscription.
    let plan: [(&str, usize, Filters); 4] = [
        ("b2-all-q2", 1, &[("T/#", QoS::ExactlyOnce)]),
        ("b2-all-q0", 1, &[("T/#", QoS::AtMostOnce)]),
        ("b3-x-q1", 2, &[("T/+/x", QoS::AtLeastOnce)]),
        ("b3-x-q2", 2, &[("T/+/x", QoS::ExactlyOnce)]),
    ];
    let mut subs = Vec::new();
    for (name, at, filters) in plan {
        subs.push((name, filters, client(&s, name, at, false, filters).await.1));
    }
    let n = 36;
    check_round(&p, &mut subs, 0, n, true).await;

    // Overlapping filters on one broker: a client of broker 3 with both `T/#` and `T/+/x` gets one
    // copy of each message, at the higher QoS of the filters that match. (The order of messages
    // that reach a broker through two overlapping NATS subscriptions is not kept: docs/cluster.md,
    // known gaps.)
    let both: Filters = &[("T/#", QoS::AtMostOnce), ("T/+/x", QoS::AtLeastOnce)];
    subs.push(("b3-both", both, client(&s, "b3-both", 2, false, both).await.1));
    check_round(&p, &mut subs, n, n, false).await;
    println!("filters and QoS checked at {:.1} s", started.elapsed().as_secs_f64());

    // MQTT 5 properties travel with the message, at every QoS. The subscriber takes `T/#` like the
    // other clients of broker 2, so that the messages reach broker 2 through one NATS subscription
    // and keep their order.
    let v5_sub = s.fx.client_id("v5-sub");
    let (vs, mut vs_ev) = v5::connect(v5::opts(&s.fx, &v5_sub, s.brokers[1].mqtt_port))
        .await
        .expect("connect");
    v5::subscribe(&vs, &mut vs_ev, "T/#", v5::QoS::ExactlyOnce).await;
    let (vp, vp_ev) = v5::connect(v5::opts(&s.fx, &s.fx.client_id("v5-pub"), s.brokers[0].mqtt_port))
        .await
        .expect("connect");
    let _vp_run = v5::drive(vp_ev);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        vp.publish("T/v5/probe", v5::QoS::AtMostOnce, false, "probe")
            .await
            .unwrap();
        if v5::drain(&mut vs_ev, 0.2).await.iter().any(|m| m.topic == "T/v5/probe") {
            break;
        }
        assert!(Instant::now() < deadline, "no MQTT 5 probe arrived within 10 s");
    }
    v5::drain(&mut vs_ev, 0.3).await;
    let props = || PublishProperties {
        user_properties: USER.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        content_type: Some("text/plain".into()),
        response_topic: Some("T/v5/reply".into()),
        correlation_data: Some(Bytes::from_static(b"\x00corr")),
        ..PublishProperties::default()
    };
    let v5_qos = [v5::QoS::AtMostOnce, v5::QoS::AtLeastOnce, v5::QoS::ExactlyOnce];
    for (i, q) in v5_qos.iter().enumerate() {
        vp.publish_with_properties("T/v5/props", *q, false, format!("v{i}"), props())
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 3 && Instant::now() < deadline {
        got.extend(
            v5::drain(&mut vs_ev, 0.2)
                .await
                .into_iter()
                .filter(|m| m.topic == "T/v5/props"),
        );
    }
    assert_eq!(
        got.iter()
            .map(|m| (String::from_utf8_lossy(&m.payload).into_owned(), m.qos))
            .collect::<Vec<_>>(),
        vec![
            ("v0".to_string(), v5::QoS::AtMostOnce),
            ("v1".to_string(), v5::QoS::AtLeastOnce),
            ("v2".to_string(), v5::QoS::ExactlyOnce)
        ],
        "MQTT 5 messages from broker 1"
    );
    for m in &got {
        let props = m.properties.as_ref().expect("properties delivered");
        let user: Vec<(&str, &str)> = props
            .user_properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(user, USER, "user properties in order, repeated key kept");
        assert_eq!(props.content_type.as_deref(), Some("text/plain"));
        assert_eq!(props.response_topic.as_deref(), Some("T/v5/reply"));
        assert_eq!(props.correlation_data.as_deref(), Some(&b"\x00corr"[..]));
    }
    println!("MQTT 5 properties checked at {:.1} s", started.elapsed().as_secs_f64());

    // A share group with a member on broker 2 and one on broker 3: each message once in all.
    let mut members = vec![
        client(&s, "member-b2", 1, false, &[("$share/g/T/s", QoS::AtLeastOnce)]).await,
        client(&s, "member-b3", 2, false, &[("$share/g/T/s", QoS::AtLeastOnce)]).await,
    ];
    // Probes go to one member each: wait until one arrived, and give the other's subscription the
    // same time to reach NATS.
    let deadline = Instant::now() + Duration::from_secs(10);
    'probe: loop {
        p.publish("T/s", QoS::AtMostOnce, false, "probe").await.unwrap();
        for (_, ev) in members.iter_mut() {
            if !mqtt::drain(ev, 0.1).await.is_empty() {
                break 'probe;
            }
        }
        assert!(Instant::now() < deadline, "no member of the share group heard a probe");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (_, ev) in members.iter_mut() {
        mqtt::drain(ev, 0.2).await;
    }
    let share_round = |tag: &'static str| {
        let p = p.clone();
        async move {
            for i in 0..60 {
                p.publish("T/s", QoS::AtLeastOnce, false, format!("{tag}{i:02}"))
                    .await
                    .unwrap();
            }
        }
    };
    share_round("s").await;
    let per_member = share_received(&mut members, 60).await;
    println!("share group split over brokers 2 and 3: {:?}", per_member);
    // The member that got the most leaves: the other one (on the other broker) gets every message.
    let busiest = if per_member[0] >= per_member[1] { 0 } else { 1 };
    let (leaving, leaving_ev) = members.remove(busiest);
    leaving.disconnect().await.unwrap();
    mqtt::drain(&mut { leaving_ev }, 0.5).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    share_round("t").await;
    let rest = share_received(&mut members, 60).await;
    assert_eq!(rest, vec![60], "the remaining member gets every message");

    // P2P: a clean session on broker 3 gets P2P messages from broker 1 at their QoS and in order; a
    // persistent session on broker 2 gets QoS 1 and 2 ones (through its inbox); nobody else does.
    let target = s.fx.client_id("p2p-clean");
    let (_t, mut t_ev) = client(&s, "p2p-clean", 2, false, &[]).await;
    let stored_target = s.fx.client_id("p2p-stored");
    let (_st, mut st_ev) = client(&s, "p2p-stored", 1, true, &[]).await;
    for (cid, ev) in [(&target, &mut t_ev), (&stored_target, &mut st_ev)] {
        // Broker 1 learns where the target is from the sessions bucket's watch.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            p.publish(format!("T/p2p/{cid}"), QoS::AtLeastOnce, false, "probe")
                .await
                .unwrap();
            if !mqtt::drain(ev, 0.2).await.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "no P2P probe reached {cid} within 10 s");
        }
        mqtt::drain(ev, 0.3).await;
    }
    for i in 0..12 {
        p.publish(format!("T/p2p/{target}"), QOS[i % 3], false, format!("p{i:02}"))
            .await
            .unwrap();
        p.publish(
            format!("T/p2p/{stored_target}"),
            QOS[1 + i % 2],
            false,
            format!("q{i:02}"),
        )
        .await
        .unwrap();
    }
    let got = collect(&mut t_ev, 12, "P2P clean target").await;
    let expected: Vec<_> = (0..12)
        .map(|i| (format!("T/p2p/{target}"), format!("p{i:02}"), QOS[i % 3] as u8))
        .collect();
    assert_eq!(summary(&got), expected, "P2P to a clean session on broker 3");
    let got = collect(&mut st_ev, 12, "P2P persistent target").await;
    let expected: Vec<_> = (0..12)
        .map(|i| {
            (
                format!("T/p2p/{stored_target}"),
                format!("q{i:02}"),
                QOS[1 + i % 2] as u8,
            )
        })
        .collect();
    assert_eq!(summary(&got), expected, "P2P to a persistent session on broker 2");
    assert!(extra(&mut t_ev, 0.5).await.is_empty(), "P2P copies twice");
    assert!(extra(&mut st_ev, 0.5).await.is_empty(), "P2P copies twice");
    // The `T/#` subscribers of the first checks got the MQTT 5 and share-group topics meanwhile, but
    // no P2P message.
    for (name, _, ev) in subs.iter_mut() {
        let seen: Vec<_> = extra(ev, 0.2)
            .await
            .into_iter()
            .filter(|(topic, ..)| topic.starts_with("T/p2p/"))
            .collect();
        assert!(seen.is_empty(), "{name} got P2P messages of others: {seen:?}");
    }
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
}

/// Publishes messages `from..from + n` from `p` on the `TOPICS` at QoS 0, 1, 2 in turn, and checks
/// what each subscriber (name, filters, event loop) gets: the messages its filters match, each once,
/// at min(publish QoS, the highest QoS of its matching filters), in publish order if `ordered`.
async fn check_round(p: &AsyncClient, subs: &mut [(&str, Filters, EventLoop)], from: usize, n: usize, ordered: bool) {
    {
        let mut evs: Vec<&mut EventLoop> = subs.iter_mut().map(|(.., ev)| ev).collect();
        until_all_hear(&[p], "T/a/x", &mut evs).await;
    }
    for i in from..from + n {
        p.publish(TOPICS[i % 4].0, QOS[i % 3], false, format!("m{i:02}"))
            .await
            .unwrap();
    }
    for (name, filters, ev) in subs.iter_mut() {
        let mut expected: Vec<(String, String, u8)> = (from..from + n)
            .filter_map(|i| {
                let (topic, x) = TOPICS[i % 4];
                let sub_qos = filters
                    .iter()
                    .filter(|(f, _)| *f == "T/#" || x)
                    .map(|(_, q)| *q as u8)
                    .max()?;
                Some((topic.to_string(), format!("m{i:02}"), (QOS[i % 3] as u8).min(sub_qos)))
            })
            .collect();
        let got = collect(ev, expected.len(), name).await;
        assert!(got.iter().all(|p| !p.retain), "{name}: RETAIN set on a live message");
        let mut got = summary(&got);
        if !ordered {
            got.sort();
            expected.sort();
        }
        assert_eq!(got, expected, "{name}: (topic, payload, QoS), ordered: {ordered}");
        let late = extra(ev, 0.5).await;
        assert!(late.is_empty(), "{name}: more copies than expected: {late:?}");
    }
}

/// Collects `n` share-group messages from the members; each arrives once in all. Returns how many
/// each member got.
async fn share_received(members: &mut [(AsyncClient, EventLoop)], n: usize) -> Vec<usize> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_member = vec![0; members.len()];
    let deadline = Instant::now() + Duration::from_secs(15);
    // Until all arrived, then one more second for duplicates.
    let mut quiet_until: Option<Instant> = None;
    while quiet_until.is_none_or(|q| Instant::now() < q) {
        assert!(
            Instant::now() < deadline,
            "share group: {} of {n} messages arrived",
            seen.len()
        );
        for (i, (_, ev)) in members.iter_mut().enumerate() {
            for m in mqtt::drain(ev, 0.05).await.iter().filter(|m| !is_probe(m)) {
                *seen
                    .entry(String::from_utf8_lossy(&m.payload).into_owned())
                    .or_default() += 1;
                per_member[i] += 1;
            }
        }
        if seen.len() == n && quiet_until.is_none() {
            quiet_until = Some(Instant::now() + Duration::from_secs(1));
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        twice.is_empty(),
        "share group messages delivered more than once: {twice:?}"
    );
    per_member
}
