//! Routing (docs/spec.md 3.4) with real clients: wildcards, own messages, P2P, QoS 0/1/2, retained and will
//! messages, shared subscriptions, client-ID takeover, v5 round trip and the development listener.

use std::time::Duration;

use crate::support::*;
use crate::support::{v3, v5};
use rumqttc::{LastWill, QoS};

#[tokio::test]
async fn wildcards_own_messages_qos_and_p2p() {
    let b = BrokerProc::start(&snapshot());
    let (sub, mut sev, _) = v3::connect(b.sig_opts("GID_test@@@sub")).await.unwrap();
    sub.subscribe("T/+/x", QoS::AtLeastOnce).await.unwrap();
    assert_eq!(v3::suback(&mut sev).await.len(), 1);
    sub.subscribe("U/#", QoS::ExactlyOnce).await.unwrap();
    v3::suback(&mut sev).await;

    let (publ, pev, _) = v3::connect(b.sig_opts("GID_test@@@pub")).await.unwrap();
    let _d = v3::drive(pev);
    publ.publish("T/a/x", QoS::AtLeastOnce, false, "one").await.unwrap();
    publ.publish("T/a/y", QoS::AtLeastOnce, false, "not matched")
        .await
        .unwrap();
    publ.publish("U/deep/er", QoS::ExactlyOnce, false, "two").await.unwrap();
    publ.publish("U", QoS::AtMostOnce, false, "three").await.unwrap();
    // Own messages: the subscriber publishes to its own subscription.
    sub.publish("T/b/x", QoS::AtMostOnce, false, "own").await.unwrap();
    // P2P to the subscriber, without any subscription on its side.
    publ.publish("T/p2p/GID_test@@@sub", QoS::AtLeastOnce, false, "p2p")
        .await
        .unwrap();
    // P2P to someone else is not seen.
    publ.publish("T/p2p/GID_test@@@nobody", QoS::AtLeastOnce, false, "lost")
        .await
        .unwrap();

    let got = v3::collect(&mut sev, 5, 10).await;
    let mut bodies: Vec<String> = got
        .iter()
        .map(|p| String::from_utf8_lossy(&p.payload).to_string())
        .collect();
    bodies.sort();
    assert_eq!(bodies, ["one", "own", "p2p", "three", "two"]);
    let two = got.iter().find(|p| &p.payload[..] == b"two").unwrap();
    assert_eq!(two.qos, QoS::ExactlyOnce);
    let p2p = got.iter().find(|p| &p.payload[..] == b"p2p").unwrap();
    assert_eq!(p2p.topic, "T/p2p/GID_test@@@sub");
    assert!(v3::drain(&mut sev, 0.5).await.is_empty());
}

#[tokio::test]
async fn retained_will_shared_and_takeover() {
    let b = BrokerProc::start(&snapshot());
    let (publ, pev, _) = v3::connect(b.sig_opts("GID_test@@@pub")).await.unwrap();
    let _d = v3::drive(pev);
    publ.publish("T/state", QoS::AtLeastOnce, true, "on").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Retained: a later subscriber gets it with the retain flag.
    let (sub, mut sev, _) = v3::connect(b.sig_opts("GID_test@@@late")).await.unwrap();
    sub.subscribe("T/#", QoS::AtLeastOnce).await.unwrap();
    let got = v3::collect(&mut sev, 1, 10).await;
    assert!(got[0].retain && &got[0].payload[..] == b"on");
    // To an established subscription a retained publish arrives with RETAIN 0; an empty one clears it.
    publ.publish("T/state", QoS::AtLeastOnce, true, "off").await.unwrap();
    let got = v3::collect(&mut sev, 1, 10).await;
    assert!(!got[0].retain && &got[0].payload[..] == b"off");
    publ.publish("T/state", QoS::AtLeastOnce, true, "").await.unwrap();
    v3::collect(&mut sev, 1, 10).await;
    let (s2, mut e2, _) = v3::connect(b.sig_opts("GID_test@@@later")).await.unwrap();
    s2.subscribe("T/#", QoS::AtLeastOnce).await.unwrap();
    v3::suback(&mut e2).await;
    assert!(v3::drain(&mut e2, 0.5).await.is_empty(), "retained message was cleared");

    // Will: published when a client vanishes without DISCONNECT (dropping the event loop = TCP gone).
    let mut wopts = b.sig_opts("GID_test@@@willer");
    wopts.set_last_will(LastWill::new("T/will", "gone", QoS::AtLeastOnce, false));
    let (_wc, wev, _) = v3::connect(wopts).await.unwrap();
    drop(wev);
    let got = v3::collect(&mut sev, 1, 10).await;
    assert_eq!((&got[0].topic[..], &got[0].payload[..]), ("T/will", &b"gone"[..]));

    // Shared subscription: each message goes to exactly one member of the group.
    let (m1, mut e1, _) = v3::connect(b.sig_opts("GID_test@@@m1")).await.unwrap();
    let (m2, mut e2, _) = v3::connect(b.sig_opts("GID_test@@@m2")).await.unwrap();
    m1.subscribe("$share/g/T/jobs", QoS::AtLeastOnce).await.unwrap();
    v3::suback(&mut e1).await;
    m2.subscribe("$share/g/T/jobs", QoS::AtLeastOnce).await.unwrap();
    v3::suback(&mut e2).await;
    for i in 0..10 {
        publ.publish("T/jobs", QoS::AtLeastOnce, false, format!("{i}"))
            .await
            .unwrap();
    }
    let (a, bb) = tokio::join!(v3::drain(&mut e1, 1.5), v3::drain(&mut e2, 1.5));
    assert_eq!(a.len() + bb.len(), 10, "{} + {}", a.len(), bb.len());
    assert!(!a.is_empty() && !bb.is_empty());

    // Takeover: a second connection with the same client ID closes the first.
    let (_old, mut oev, _) = v3::connect(b.sig_opts("GID_test@@@dup")).await.unwrap();
    let (_new, nev, _) = v3::connect(b.sig_opts("GID_test@@@dup")).await.unwrap();
    let _n = v3::drive(nev);
    v3::expect_closed(&mut oev, 5).await;
    assert!(b.log().contains("clientId conflict"));
}

#[tokio::test]
async fn v5_round_trip_and_dev_listener() {
    use rumqttc::v5::mqttbytes::QoS as Q5;
    let b = BrokerProc::start_with_dev(&snapshot());
    let c = "GID_test@@@v5";
    let (client, mut ev) = v5::AsyncClient::new(b.v5_opts(c, &sig_user(INST), &sig_pass(c)), 10);
    client.subscribe("T/v5/#", Q5::AtLeastOnce).await.unwrap();
    client.publish("T/v5/a", Q5::AtLeastOnce, false, "hi").await.unwrap();
    assert_eq!(v5::next_message(&mut ev, 10.0).await.as_deref(), Some(&b"hi"[..]));

    // Development listener: no credentials, any topic, never the default.
    let mut o = rumqttc::MqttOptions::new("anything", "127.0.0.1", b.dev_port.unwrap());
    o.set_keep_alive(Duration::from_secs(30));
    let (dc, mut dev, _) = v3::connect(o).await.unwrap();
    dc.subscribe("any/topic", QoS::AtLeastOnce).await.unwrap();
    v3::suback(&mut dev).await;
    dc.publish("any/topic", QoS::AtLeastOnce, false, "dev").await.unwrap();
    assert_eq!(&v3::collect(&mut dev, 1, 10).await[0].payload[..], b"dev");
    // Its instance is unreachable from the authenticated listener.
    let opts = b.v3_opts("GID_test@@@z", "Signature|x|mqtt-dev000000000", "x");
    assert!(v3::refusal(opts).await.is_some());
}

/// A PUBLISH whose payload arrives in two reads keeps its place before the PUBLISH that follows it
/// (MQTT 4.6: a client's messages reach subscribers in the order it sent them), although the broker
/// gets the second one whole while still waiting for the first one's payload.
#[tokio::test]
async fn a_publish_whose_payload_arrives_in_pieces_keeps_its_place() {
    use crate::support::raw::Raw;
    use crate::support::wire::{self, Version};
    let b = BrokerProc::start(&snapshot());
    let (_sub, mut sev) = v3::subscribed(b.sig_opts("GID_test@@@ordered-sub"), "T/order", QoS::AtMostOnce).await;
    let cid = "GID_test@@@ordered-pub";
    let mut raw = Raw::login(b.port, Version::V3, cid, &sig_user(INST), &sig_pass(cid)).await;
    for round in 0..5 {
        let big = vec![b'a' + round; 4000];
        let first = wire::publish_qos0("T/order", &big);
        let second = wire::publish_qos0("T/order", format!("after {round}").as_bytes());
        let (head, tail) = first.split_at(first.len() - 2000);
        raw.send_bytes(head).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        raw.send_bytes(&[tail, &second].concat()).await;
        let got = v3::collect(&mut sev, 2, 10).await;
        assert_eq!(
            got[0].payload.len(),
            4000,
            "round {round}: the split message came second"
        );
        assert_eq!(String::from_utf8_lossy(&got[1].payload), format!("after {round}"));
    }
}
