//! Session state shared by a cluster of three brokers: one live connection per client ID (a
//! connection on another broker takes it over), retained messages set on one broker and found on
//! SUBSCRIBE on the others (and deleted everywhere by an empty one), and the will of a client whose
//! connection broke delivered once to subscribers on the other brokers.

use std::time::{Duration, Instant};

use reqwest::Method;
use rumqttc::{LastWill, QoS};
use test_support::mqtt;

use e2e::System;

use crate::cluster_routing::{client, cluster, collect, extra, summary, until_all_hear};

/// The nodes the control plane shows a client connected to (from every broker's reports).
async fn nodes_of(s: &System, cid: &str) -> Vec<String> {
    let v = s
        .api
        .ok(
            Method::GET,
            &format!("/instances/{}/sessions/{cid}", s.fx.instance),
            None,
        )
        .await;
    v["channels"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["nodeId"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A fresh clean-session client `name` on broker `at` subscribes to `filter` and returns what it gets
/// within `secs` (retained messages are sent on SUBSCRIBE).
async fn retained_on(s: &System, name: &str, at: usize, filter: &str, secs: f64) -> Vec<(String, String, bool)> {
    let (c, mut ev) = client(s, name, at, false, &[(filter, QoS::AtLeastOnce)]).await;
    let got = mqtt::drain(&mut ev, secs).await;
    let _ = c.disconnect().await;
    mqtt::drain(&mut ev, 0.2).await;
    got.iter()
        .map(|p| {
            (
                p.topic.clone(),
                String::from_utf8_lossy(&p.payload).into_owned(),
                p.retain,
            )
        })
        .collect()
}

#[tokio::test]
async fn cluster_takeover_retained_messages_and_wills_across_brokers() {
    let started = Instant::now();
    let (_nats, s) = cluster().await;

    // One live connection per client ID: the same ID on broker 2 closes the one on broker 1.
    let cid = s.fx.client_id("twice");
    let (_first, mut first_ev) = client(&s, "twice", 0, false, &[]).await;
    let since = Instant::now();
    let (second, mut second_ev) = client(&s, "twice", 1, false, &[("T/twice", QoS::AtLeastOnce)]).await;
    mqtt::expect_closed(&mut first_ev, 5).await;
    let took = since.elapsed();
    println!("takeover across brokers closed the first connection in {took:?}");
    drop(first_ev); // polling it again would reconnect
    // The control plane shows the client once, on broker 2.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let nodes = nodes_of(&s, &cid).await;
        if nodes == ["node-2"] {
            break;
        }
        assert!(Instant::now() < deadline, "the control plane shows {cid} on {nodes:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The new connection stays and gets what broker 3's clients publish.
    let (p3, p3_ev) = client(&s, "pub-b3", 2, false, &[]).await;
    let _p3_run = mqtt::drive(p3_ev);
    until_all_hear(&[&p3], "T/twice", &mut [&mut second_ev]).await;
    p3.publish("T/twice", QoS::AtLeastOnce, false, "still here")
        .await
        .unwrap();
    let got = collect(&mut second_ev, 1, "the connection that took over").await;
    assert_eq!(&got[0].payload[..], b"still here");
    drop(second);

    // Retained: set on broker 1, found on SUBSCRIBE on brokers 3 and 2 (each keeps a replica of the
    // bucket, current through its watch).
    let (p1, p1_ev) = client(&s, "pub-b1", 0, false, &[]).await;
    let _p1_run = mqtt::drive(p1_ev);
    p1.publish("T/ret/a", QoS::AtLeastOnce, true, "kept").await.unwrap();
    for (at, name) in [(2, "ret-b3"), (1, "ret-b2")] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = retained_on(&s, name, at, "T/ret/#", 0.5).await;
            if !got.is_empty() {
                assert_eq!(got, [("T/ret/a".to_string(), "kept".to_string(), true)], "{name}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the retained message set on broker 1 was not on broker {} within 10 s",
                at + 1
            );
        }
    }
    // An empty retained payload deletes it: a later subscriber on broker 2 gets nothing.
    p1.publish("T/ret/a", QoS::AtLeastOnce, true, "").await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (at, name) in [(1, "after-delete-b2"), (2, "after-delete-b3")] {
        let got = retained_on(&s, name, at, "T/ret/#", 1.5).await;
        assert!(got.is_empty(), "{name} got a deleted retained message: {got:?}");
    }

    // A will: the client on broker 1 vanishes without DISCONNECT, its will reaches the subscribers
    // on brokers 2 and 3 once each.
    let (_w2, mut w2_ev) = client(&s, "will-sub-b2", 1, false, &[("T/will/#", QoS::AtLeastOnce)]).await;
    let (_w3, mut w3_ev) = client(&s, "will-sub-b3", 2, false, &[("T/will/#", QoS::AtLeastOnce)]).await;
    until_all_hear(&[&p1], "T/will/probe", &mut [&mut w2_ev, &mut w3_ev]).await;
    let mut o =
        s.fx.signature_opts(&s.fx.client_id("testament"), s.brokers[0].mqtt_port);
    o.set_last_will(LastWill::new("T/will/gone", "gone", QoS::AtLeastOnce, false));
    let (w, w_ev, _) = mqtt::connect(o).await.expect("connect");
    let w_run = mqtt::drive(w_ev);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Dropping the event loop closes the socket; rumqttc sends no DISCONNECT.
    w_run.abort();
    let _ = w_run.await;
    drop(w);
    for (name, ev) in [("broker 2", &mut w2_ev), ("broker 3", &mut w3_ev)] {
        let got = collect(ev, 1, name).await;
        assert_eq!(
            summary(&got),
            [("T/will/gone".to_string(), "gone".to_string(), 1)],
            "the will on {name}"
        );
    }
    for (name, ev) in [("broker 2", &mut w2_ev), ("broker 3", &mut w3_ev)] {
        let late = extra(ev, 1.0).await;
        assert!(late.is_empty(), "the will reached {name} more than once: {late:?}");
    }
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
}
