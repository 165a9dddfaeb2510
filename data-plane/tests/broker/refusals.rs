//! Authorization and quota refusals on the wire (docs/spec.md 3.3, 3.6): v3 disconnects a refused PUBLISH
//! and an unauthorized SUBSCRIBE, and answers SUBACK 0x80 for filters over a limit; v5 gets codes.

use std::time::Duration;

use crate::support::v3;
use crate::support::*;
use common::token::TokenAction;
use rumqttc::{QoS, SubscribeReasonCode};

/// Publishing `topic` (with `payload`) closes the v3 connection.
async fn publish_refused(b: &BrokerProc, opts: rumqttc::MqttOptions, topic: &str, payload: Vec<u8>) {
    let (c, mut ev, _) = v3::connect(opts).await.unwrap();
    c.publish(topic, QoS::AtLeastOnce, false, payload).await.unwrap();
    v3::expect_closed(&mut ev, 5).await;
    let _ = b;
}

/// Subscribing `filter` closes the v3 connection.
async fn subscribe_disconnects(opts: rumqttc::MqttOptions, filter: &str) {
    let (c, mut ev, _) = v3::connect(opts).await.unwrap();
    c.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    v3::expect_closed(&mut ev, 5).await;
}

#[tokio::test]
async fn v3_refusals() {
    let b = BrokerProc::start(&snapshot());
    let cid = "GID_test@@@r1";
    let far = now_ms() + 3_600_000;
    let tok_user = format!("Token|{AK}|{INST}");
    let r_tok = token(INST, TokenAction::R, &["T/#"], far, "r1");
    let w_tok = token(INST, TokenAction::W, &["T/#"], far, "w1");
    let narrow = token(INST, TokenAction::RW, &["T/only"], far, "n1");

    // Unknown parent topic, both ways.
    publish_refused(&b, b.sig_opts(cid), "Nope/a", b"x".to_vec()).await;
    subscribe_disconnects(b.sig_opts(cid), "Nope/#").await;
    // R token publishing, W token subscribing, resources not covered.
    publish_refused(
        &b,
        b.v3_opts(cid, &tok_user, &format!("R|{r_tok}")),
        "T/a",
        b"x".to_vec(),
    )
    .await;
    subscribe_disconnects(b.v3_opts(cid, &tok_user, &format!("W|{w_tok}")), "T/a").await;
    publish_refused(
        &b,
        b.v3_opts(cid, &tok_user, &format!("RW|{narrow}")),
        "T/other",
        b"x".to_vec(),
    )
    .await;
    subscribe_disconnects(b.v3_opts(cid, &tok_user, &format!("RW|{narrow}")), "T/#").await;
    // 65-char topic, oversize message (64 KiB + 1).
    let long = format!("T/{}", "a".repeat(63));
    assert_eq!(long.len(), 65);
    publish_refused(&b, b.sig_opts(cid), &long, b"x".to_vec()).await;
    publish_refused(&b, b.sig_opts(cid), "T/big", vec![0u8; 64 * 1024 + 1]).await;
    // $SYS topics are not for ordinary publishing or subscribing.
    publish_refused(&b, b.sig_opts(cid), "$SYS/other", b"x".to_vec()).await;

    // A 64-char topic and a 64 KiB message are fine.
    let (c, mut ev, _) = v3::connect(b.sig_opts(cid)).await.unwrap();
    let ok = format!("T/{}", "a".repeat(62));
    c.subscribe(&ok, QoS::AtLeastOnce).await.unwrap();
    v3::suback(&mut ev).await;
    c.publish(&ok, QoS::AtLeastOnce, false, vec![1u8; 64 * 1024])
        .await
        .unwrap();
    assert_eq!(v3::collect(&mut ev, 1, 10).await[0].payload.len(), 64 * 1024);

    // Over-long filter: SUBACK 0x80, connection stays.
    c.subscribe(&long, QoS::AtLeastOnce).await.unwrap();
    assert_eq!(v3::suback(&mut ev).await, vec![SubscribeReasonCode::Failure]);

    // 30 subscriptions per client: the 31st is refused (this client has 1 already).
    for i in 0..29 {
        c.subscribe(format!("T/s{i}"), QoS::AtMostOnce).await.unwrap();
        assert_eq!(
            v3::suback(&mut ev).await,
            vec![SubscribeReasonCode::Success(QoS::AtMostOnce)]
        );
    }
    c.subscribe("T/s-extra", QoS::AtMostOnce).await.unwrap();
    assert_eq!(v3::suback(&mut ev).await, vec![SubscribeReasonCode::Failure]);
    // Re-subscribing an existing filter is not a new subscription.
    c.subscribe("T/s0", QoS::AtLeastOnce).await.unwrap();
    assert_eq!(
        v3::suback(&mut ev).await,
        vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );

    let m = b.metrics();
    assert!(m.contains("broker_refusals_total"), "{m}");
}

#[tokio::test]
async fn wildcard_quota_per_parent_topic() {
    let b = BrokerProc::start(&snapshot());
    // 100 wildcard filters on parent U across 4 clients (25 each), then the 101st is refused.
    let mut clients = Vec::new();
    for n in 0..4 {
        let (c, mut ev, _) = v3::connect(b.sig_opts(&format!("GID_test@@@w{n}"))).await.unwrap();
        for i in 0..25 {
            c.subscribe(format!("U/{n}/{i}/#"), QoS::AtMostOnce).await.unwrap();
            assert_eq!(
                v3::suback(&mut ev).await,
                vec![SubscribeReasonCode::Success(QoS::AtMostOnce)]
            );
        }
        clients.push((c, ev));
    }
    let (c, ev) = &mut clients[0];
    c.subscribe("U/+/extra", QoS::AtMostOnce).await.unwrap();
    assert_eq!(v3::suback(ev).await, vec![SubscribeReasonCode::Failure]);
    // Non-wildcard filters and other parent topics are unaffected.
    c.subscribe("U/plain", QoS::AtMostOnce).await.unwrap();
    assert_eq!(
        v3::suback(ev).await,
        vec![SubscribeReasonCode::Success(QoS::AtMostOnce)]
    );
    c.subscribe("T/#", QoS::AtMostOnce).await.unwrap();
    assert_eq!(
        v3::suback(ev).await,
        vec![SubscribeReasonCode::Success(QoS::AtMostOnce)]
    );
    // Another instance has its own count.
    let o = "GID_test@@@o1";
    let (oc, mut oev, _) = v3::connect(b.v3_opts(o, &sig_user(OTHER), &sig_pass(o))).await.unwrap();
    oc.subscribe("U/+/x", QoS::AtMostOnce).await.unwrap();
    assert_eq!(
        v3::suback(&mut oev).await,
        vec![SubscribeReasonCode::Success(QoS::AtMostOnce)]
    );
}

#[tokio::test]
async fn v5_reason_codes() {
    use rumqttc::v5::mqttbytes::QoS as Q5;
    use rumqttc::v5::mqttbytes::v5::{DisconnectReasonCode, Packet as P5, PubAckReason, SubscribeReasonCode as S5};
    use rumqttc::v5::{AsyncClient, Event};
    let b = BrokerProc::start(&snapshot());
    let c = "GID_test@@@v5r";
    let (client, mut ev) = AsyncClient::new(b.v5_opts(c, &sig_user(INST), &sig_pass(c)), 10);
    let mut next = async || loop {
        match tokio::time::timeout(Duration::from_secs(5), ev.poll())
            .await
            .expect("packet in time")
        {
            Ok(Event::Incoming(P5::ConnAck(_))) | Ok(Event::Outgoing(_)) => {}
            Ok(Event::Incoming(p)) => return Ok(p),
            Err(e) => return Err(e),
        }
    };
    client.subscribe("Nope/#", Q5::AtLeastOnce).await.unwrap();
    match next().await.unwrap() {
        P5::SubAck(a) => assert_eq!(a.return_codes, vec![S5::NotAuthorized]),
        p => panic!("{p:?}"),
    }
    client
        .subscribe(format!("T/{}", "a".repeat(63)), Q5::AtLeastOnce)
        .await
        .unwrap();
    match next().await.unwrap() {
        P5::SubAck(a) => assert_eq!(a.return_codes, vec![S5::TopicFilterInvalid]),
        p => panic!("{p:?}"),
    }
    client.publish("Nope/a", Q5::AtLeastOnce, false, "x").await.unwrap();
    match next().await.unwrap() {
        P5::PubAck(a) => assert_eq!(a.reason, PubAckReason::NotAuthorized),
        p => panic!("{p:?}"),
    }
    client
        .publish(format!("T/{}", "a".repeat(63)), Q5::AtLeastOnce, false, "x")
        .await
        .unwrap();
    match next().await.unwrap() {
        P5::PubAck(a) => assert_eq!(a.reason, PubAckReason::TopicNameInvalid),
        p => panic!("{p:?}"),
    }
    // Oversize: DISCONNECT 0x95 packet too large.
    client
        .publish("T/big", Q5::AtLeastOnce, false, vec![0u8; 64 * 1024 + 1])
        .await
        .unwrap();
    match next().await {
        Ok(P5::Disconnect(d)) => assert_eq!(d.reason_code, DisconnectReasonCode::PacketTooLarge),
        Err(rumqttc::v5::ConnectionError::MqttState(rumqttc::v5::StateError::ServerDisconnect {
            reason_code, ..
        })) => {
            assert_eq!(reason_code, DisconnectReasonCode::PacketTooLarge)
        }
        other => panic!("expected DISCONNECT 0x95, got {other:?}"),
    }
}
