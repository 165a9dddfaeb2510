//! MQTT 5 features with real clients (rumqttc v5, and a raw client where the wire itself is the
//! point): subscription options (no local, retain as published, retain handling), subscription
//! identifiers, topic aliases both ways, the client's maximum packet size, receive maximum both
//! ways, server keep alive, assigned client identifiers, and the reason codes of SUBACK, UNSUBACK,
//! PUBACK, PUBREC and DISCONNECT.

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    ConnectProperties, ConnectReturnCode, DisconnectReasonCode, Filter, Packet, PubAckReason, PubRecReason,
    PublishProperties, RetainForwardRule, SubscribeReasonCode, UnsubAckReason, Unsubscribe,
};

use crate::support::raw::{self, Next, Raw};
use crate::support::v5::{self, filter};
use crate::support::*;

fn none() -> PublishProperties {
    PublishProperties::default()
}

#[tokio::test]
async fn no_local_and_retain_as_published() {
    let b = BrokerProc::start(&snapshot());
    let (a, mut aev, _) = v5::connect(v5::opts(&b, "GID_test@@@nl-a", true, 0)).await;
    let mut own = filter("T/nl/#", QoS::AtLeastOnce);
    own.nolocal = true;
    v5::subscribe(&a, &mut aev, own, None).await;
    let (o, mut oev, _) = v5::connect(v5::opts(&b, "GID_test@@@nl-o", true, 0)).await;
    v5::subscribe(&o, &mut oev, filter("T/nl/#", QoS::AtLeastOnce), None).await;

    // No local: a's own message reaches the other subscriber, not a.
    v5::publish_acked(&a, &mut aev, "T/nl/x", false, "from a", none()).await;
    v5::next_is(&mut oev, "from a").await;
    v5::publish_acked(&o, &mut oev, "T/nl/x", false, "from o", none()).await;
    v5::next_is(&mut aev, "from o").await;

    // Retain as published: a retained message published to an existing subscription keeps RETAIN
    // only for the subscription that asked for it.
    let mut keep = filter("T/rap/#", QoS::AtLeastOnce);
    keep.preserve_retain = true;
    v5::subscribe(&a, &mut aev, keep, None).await;
    v5::subscribe(&o, &mut oev, filter("T/rap/#", QoS::AtLeastOnce), None).await;
    let (p, mut pev, _) = v5::connect(v5::opts(&b, "GID_test@@@nl-p", true, 0)).await;
    v5::publish_acked(&p, &mut pev, "T/rap/x", true, "r", none()).await;
    assert!(v5::next_is(&mut aev, "r").await.retain, "retain as published");
    assert!(!v5::next_is(&mut oev, "r").await.retain, "RETAIN cleared");
}

#[tokio::test]
async fn retain_handling_0_1_2() {
    let b = BrokerProc::start(&snapshot());
    let (p, mut pev, _) = v5::connect(v5::opts(&b, "GID_test@@@rh-p", true, 0)).await;
    v5::publish_acked(&p, &mut pev, "T/rh/x", true, "r", none()).await;
    let (s, mut sev, _) = v5::connect(v5::opts(&b, "GID_test@@@rh-s", true, 0)).await;
    let with = |path: &str, rule| Filter {
        retain_forward_rule: rule,
        ..filter(path, QoS::AtLeastOnce)
    };
    // 0: on every subscribe, also when it exists already.
    v5::subscribe(&s, &mut sev, with("T/rh/#", RetainForwardRule::OnEverySubscribe), None).await;
    assert!(v5::next_is(&mut sev, "r").await.retain);
    v5::subscribe(&s, &mut sev, with("T/rh/#", RetainForwardRule::OnEverySubscribe), None).await;
    assert!(v5::next_is(&mut sev, "r").await.retain);
    v5::marker(&p, &mut pev, &mut sev, "T/rh/m").await;
    // 1: only for a new subscription.
    v5::subscribe(&s, &mut sev, with("T/rh/+", RetainForwardRule::OnNewSubscribe), None).await;
    assert!(v5::next_is(&mut sev, "r").await.retain);
    v5::subscribe(&s, &mut sev, with("T/rh/+", RetainForwardRule::OnNewSubscribe), None).await;
    v5::marker(&p, &mut pev, &mut sev, "T/rh/m").await;
    // 2: never.
    v5::subscribe(&s, &mut sev, with("T/+/x", RetainForwardRule::Never), None).await;
    v5::marker(&p, &mut pev, &mut sev, "T/rh/m").await;
}

#[tokio::test]
async fn subscription_identifiers_one_copy_with_all_of_them() {
    let b = BrokerProc::start(&snapshot());
    let (s, mut sev, _) = v5::connect(v5::opts(&b, "GID_test@@@si-s", true, 0)).await;
    v5::subscribe(&s, &mut sev, filter("T/si/#", QoS::AtLeastOnce), Some(1)).await;
    v5::subscribe(&s, &mut sev, filter("T/si/+", QoS::AtMostOnce), Some(2)).await;
    v5::subscribe(&s, &mut sev, filter("T/si/a", QoS::AtLeastOnce), None).await;
    v5::subscribe(&s, &mut sev, filter("T/other", QoS::AtLeastOnce), Some(3)).await;
    let (p, mut pev, _) = v5::connect(v5::opts(&b, "GID_test@@@si-p", true, 0)).await;

    v5::publish_acked(&p, &mut pev, "T/si/a", false, "x", none()).await;
    v5::publish_acked(&p, &mut pev, "T/si/b", false, "marker", none()).await;
    let ids = |p: &rumqttc::v5::mqttbytes::v5::Publish| {
        let mut ids = p.properties.clone().unwrap_or_default().subscription_identifiers;
        ids.sort();
        ids
    };
    let x = v5::next_is(&mut sev, "x").await;
    assert_eq!(
        ids(&x),
        [1, 2],
        "one copy with the identifiers of every matching subscription"
    );
    assert_eq!(x.qos, QoS::AtLeastOnce, "the highest QoS of the matching subscriptions");
    assert_eq!(ids(&v5::next_is(&mut sev, "marker").await), [1, 2], "and only one copy");

    // Retained messages sent on SUBSCRIBE carry that subscription's identifier.
    v5::publish_acked(&p, &mut pev, "T/si2/r", true, "r", none()).await;
    v5::subscribe(&s, &mut sev, filter("T/si2/r", QoS::AtLeastOnce), Some(7)).await;
    assert_eq!(ids(&v5::next_is(&mut sev, "r").await), [7]);
}

#[tokio::test]
async fn topic_aliases_both_ways() {
    let b = BrokerProc::start(&snapshot());
    let mut o = v5::opts(&b, "GID_test@@@ta-s", true, 0);
    o.set_topic_alias_max(Some(2));
    let (s, mut sev, _) = v5::connect(o).await;
    v5::subscribe(&s, &mut sev, filter("T/ta/#", QoS::AtLeastOnce), None).await;
    let (plain, mut plev, _) = v5::connect(v5::opts(&b, "GID_test@@@ta-plain", true, 0)).await;
    v5::subscribe(&plain, &mut plev, filter("T/ta/#", QoS::AtLeastOnce), None).await;
    let (p, mut pev, ack) = v5::connect_ack(v5::opts(&b, "GID_test@@@ta-p", true, 0)).await;
    let inbound_max = ack.properties.unwrap().topic_alias_max.unwrap_or(0);
    assert!(inbound_max >= 1, "the broker accepts topic aliases");

    for t in ["a", "a", "b", "b", "c", "c"] {
        v5::publish_acked(&p, &mut pev, &format!("T/ta/{t}"), false, t, none()).await;
    }
    // On the wire (rumqttc reports packets before it resolves aliases): the broker gives the first
    // two topics an alias, leaves the topic out once the client knows it, and sends the third in full.
    let wire: Vec<(String, Option<u16>)> = v5::collect(&mut sev, 6)
        .await
        .iter()
        .map(|m| {
            let alias = m.properties.as_ref().and_then(|p| p.topic_alias);
            (String::from_utf8_lossy(&m.topic).into_owned(), alias)
        })
        .collect();
    let expect = [
        ("T/ta/a", Some(1)),
        ("", Some(1)),
        ("T/ta/b", Some(2)),
        ("", Some(2)),
        ("T/ta/c", None),
        ("T/ta/c", None),
    ];
    assert_eq!(wire, expect.map(|(t, a)| (t.to_string(), a)));
    // A client that accepts no aliases gets none.
    for m in v5::collect(&mut plev, 6).await {
        assert!(!m.topic.is_empty() && m.properties.and_then(|p| p.topic_alias).is_none());
    }

    // The client's aliases: the topic once, then only the alias.
    let aliased = |alias| PublishProperties {
        topic_alias: Some(alias),
        ..none()
    };
    assert_eq!(
        v5::publish_acked(&p, &mut pev, "T/ta/in", false, "in 1", aliased(inbound_max)).await,
        PubAckReason::Success
    );
    assert_eq!(
        v5::publish_acked(&p, &mut pev, "", false, "in 2", aliased(inbound_max)).await,
        PubAckReason::Success
    );
    for payload in ["in 1", "in 2"] {
        assert_eq!(&v5::next_is(&mut plev, payload).await.topic[..], b"T/ta/in");
    }
}

#[tokio::test]
async fn maximum_packet_size_of_the_client_is_respected() {
    let b = BrokerProc::start(&snapshot());
    let mut o = v5::opts(&b, "GID_test@@@mp-s", true, 0);
    o.set_max_packet_size(Some(300));
    let (s, mut sev, _) = v5::connect(o).await;
    v5::subscribe(&s, &mut sev, filter("T/mp/#", QoS::AtLeastOnce), None).await;
    let (p, mut pev, _) = v5::connect(v5::opts(&b, "GID_test@@@mp-p", true, 0)).await;
    let big = "x".repeat(1000);
    v5::publish_acked(&p, &mut pev, "T/mp/a", false, &big, none()).await;
    p.publish("T/mp/a", QoS::AtMostOnce, false, big.clone()).await.unwrap();
    v5::publish_acked(&p, &mut pev, "T/mp/a", false, "small", none()).await;
    // Not sent, and the connection stays (rumqttc would fail on a packet over its maximum).
    v5::next_is(&mut sev, "small").await;
    v5::publish_acked(&p, &mut pev, "T/mp/a", false, "still here", none()).await;
    v5::next_is(&mut sev, "still here").await;
    assert!(
        b.metrics()
            .contains("broker_dropped_total{reason=\"too_large_for_client\"} 2"),
        "both copies counted"
    );
}

#[tokio::test]
async fn receive_maximum_both_ways() {
    let b = BrokerProc::start(&snapshot());
    // The broker sends a client at most its receive maximum of unacknowledged messages.
    let props = ConnectProperties {
        receive_maximum: Some(2),
        ..ConnectProperties::new()
    };
    let (mut s, _) = Raw::authenticated(&b, "GID_test@@@rm-s", props).await;
    let ack = s
        .subscribe(rumqttc::v5::mqttbytes::v5::Subscribe::new(
            filter("T/rm", QoS::AtLeastOnce),
            None,
        ))
        .await;
    assert_eq!(ack.return_codes, [SubscribeReasonCode::Success(QoS::AtLeastOnce)]);
    let (p, mut pev, _) = v5::connect(v5::opts(&b, "GID_test@@@rm-p", true, 0)).await;
    for i in 0..5 {
        v5::publish_acked(&p, &mut pev, "T/rm", false, &i.to_string(), none()).await;
    }
    let first = s.publishes_within(0.5).await;
    assert_eq!(first.len(), 2, "two unacknowledged at most");
    s.puback(first[0].pkid).await;
    let next = s.publishes_within(0.5).await;
    assert_eq!(next.len(), 1, "one acknowledgement, one more");
    s.puback(first[1].pkid).await;
    s.puback(next[0].pkid).await;
    let rest = s.publishes_within(0.5).await;
    let all: Vec<Bytes> = first
        .iter()
        .chain(&next)
        .chain(&rest)
        .map(|m| m.payload.clone())
        .collect();
    assert_eq!(
        all,
        ["0", "1", "2", "3", "4"].map(|s| Bytes::from_static(s.as_bytes())),
        "all of them, in order"
    );

    // A client that has more QoS 2 messages unreleased than the broker's receive maximum is
    // disconnected with 0x93.
    let (mut c, ack) = Raw::authenticated(&b, "GID_test@@@rm-c", ConnectProperties::new()).await;
    let max = ack.properties.unwrap().receive_max.expect("receive maximum in CONNACK");
    for id in 1..=max + 1 {
        c.send(Packet::Publish(raw::publish("T/rm2", QoS::ExactlyOnce, id, b"q2")))
            .await;
    }
    let d = c.closed(10.0).await.expect("DISCONNECT before the close");
    assert_eq!(d.reason_code, DisconnectReasonCode::ReceiveMaximumExceeded);
}

#[tokio::test]
async fn server_keep_alive_assigned_client_identifiers_and_no_enhanced_authentication() {
    let b = BrokerProc::start_with_dev(&snapshot());
    // Keep alive 0 is answered with the server's keep alive.
    let login = rumqttc::v5::mqttbytes::v5::Login::new(sig_user(INST), sig_pass("GID_test@@@ka0"));
    let connect = raw::connect_packet("GID_test@@@ka0", 0, ConnectProperties::new());
    let (_c, ack) = Raw::connect(b.port, connect, None, Some(login)).await;
    assert_eq!(ack.code, ConnectReturnCode::Success);
    assert!(ack.properties.unwrap().server_keep_alive.is_some_and(|k| k > 0));
    let (_c, _e, ack) = v5::connect_ack(v5::opts(&b, "GID_test@@@ka30", true, 0)).await;
    assert_eq!(
        ack.properties.and_then(|p| p.server_keep_alive),
        None,
        "a client's own keep alive stands"
    );

    // Enhanced authentication is not offered: a CONNECT that asks for a method is refused.
    let props = ConnectProperties {
        authentication_method: Some("SCRAM-SHA-1".into()),
        ..ConnectProperties::new()
    };
    let login = rumqttc::v5::mqttbytes::v5::Login::new(sig_user(INST), sig_pass("GID_test@@@scram"));
    let (mut c, ack) = Raw::connect(
        b.port,
        raw::connect_packet("GID_test@@@scram", 30, props),
        None,
        Some(login),
    )
    .await;
    assert_eq!(ack.code, ConnectReturnCode::BadAuthenticationMethod);
    c.closed(5.0).await;

    // Development listener: an empty client ID gets one assigned (v5 says which).
    let dev = b.dev_port.unwrap();
    let (mut c, ack) = Raw::connect(dev, raw::connect_packet("", 30, ConnectProperties::new()), None, None).await;
    assert_eq!(ack.code, ConnectReturnCode::Success);
    let assigned = ack
        .properties
        .unwrap()
        .assigned_client_identifier
        .expect("assigned client ID");
    assert!(!assigned.is_empty());
    c.send(Packet::PingReq(rumqttc::v5::mqttbytes::v5::PingReq)).await;
    assert!(matches!(c.packet(10.0).await, Packet::PingResp(_)));

    // MQTT 3.1.1: an empty client ID is accepted with a clean session, and refused without one
    // (ntex-mqtt's decoder closes the connection before the broker could answer CONNACK 0x02).
    let v3_empty_id = |flags: u8| [0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, flags, 0, 30, 0, 0];
    let mut c = Raw::open(dev).await;
    c.send_bytes(&v3_empty_id(0x02)).await;
    assert_eq!(c.read_bytes(4, 10.0).await, [0x20, 2, 0, 0], "clean session: accepted");
    let mut c = Raw::open(dev).await;
    c.send_bytes(&v3_empty_id(0x00)).await;
    assert!(
        matches!(c.next_raw(10.0).await, Next::Closed),
        "cleanSession=0: refused"
    );
}

#[tokio::test]
async fn reason_codes_of_acknowledgements() {
    let mut snap = snapshot();
    snap.content.instances[0].quotas.max_retained_messages = 1;
    let b = BrokerProc::start(&Snapshot::new(1, snap.content));
    let (mut c, _) = Raw::authenticated(&b, "GID_test@@@codes", ConnectProperties::new()).await;
    let long = format!("T/{}", "a".repeat(70));

    // SUBACK: granted QoS, 0x87 not authorized, 0x8F invalid filter, 0x97 quota (the 31st).
    let filters = vec![
        filter("T/c/0", QoS::AtMostOnce),
        filter("T/c/1", QoS::AtLeastOnce),
        filter("T/c/2", QoS::ExactlyOnce),
        filter("Nope/x", QoS::AtLeastOnce),
        filter(&long, QoS::AtLeastOnce),
    ];
    let ack = c
        .subscribe(rumqttc::v5::mqttbytes::v5::Subscribe::new_many(filters, None))
        .await;
    use SubscribeReasonCode as S;
    assert_eq!(
        ack.return_codes,
        [
            S::Success(QoS::AtMostOnce),
            S::Success(QoS::AtLeastOnce),
            S::Success(QoS::ExactlyOnce),
            S::NotAuthorized,
            S::TopicFilterInvalid
        ]
    );
    let more: Vec<Filter> = (0..28).map(|i| filter(&format!("T/q/{i}"), QoS::AtMostOnce)).collect();
    let ack = c
        .subscribe(rumqttc::v5::mqttbytes::v5::Subscribe::new_many(more, None))
        .await;
    assert!(ack.return_codes[..27].iter().all(|r| matches!(r, S::Success(_))));
    assert_eq!(ack.return_codes[27], S::QuotaExceeded, "the 31st subscription");

    // UNSUBACK: 0x00, and 0x11 for a filter the client did not hold.
    let id = c.id();
    let mut unsub = Unsubscribe::new("T/c/0", None);
    unsub.filters.push("T/never".into());
    unsub.pkid = id;
    c.send(Packet::Unsubscribe(unsub)).await;
    match c.packet(10.0).await {
        Packet::UnsubAck(a) => assert_eq!(
            a.reasons,
            [UnsubAckReason::Success, UnsubAckReason::NoSubscriptionExisted]
        ),
        other => panic!("expected UNSUBACK, got {other:?}"),
    }

    // PUBACK: 0x00, 0x87 unknown parent topic, 0x90 topic too long, 0x97 retained-message quota.
    let mut puback = async |topic: &str, retain: bool| {
        let id = c.id();
        let mut p = raw::publish(topic, QoS::AtLeastOnce, id, b"x");
        p.retain = retain;
        c.send(Packet::Publish(p)).await;
        loop {
            if let Packet::PubAck(a) = c.packet(10.0).await {
                assert_eq!(a.pkid, id);
                return a.reason;
            }
        }
    };
    assert_eq!(puback("T/p", false).await, PubAckReason::Success);
    assert_eq!(puback("Nope/p", false).await, PubAckReason::NotAuthorized);
    assert_eq!(puback(&long, false).await, PubAckReason::TopicNameInvalid);
    assert_eq!(puback("T/r1", true).await, PubAckReason::Success);
    assert_eq!(puback("T/r2", true).await, PubAckReason::QuotaExceeded);

    // PUBREC: the same codes for QoS 2.
    let mut pubrec = async |topic: &str| {
        let id = c.id();
        c.send(Packet::Publish(raw::publish(topic, QoS::ExactlyOnce, id, b"x")))
            .await;
        loop {
            if let Packet::PubRec(a) = c.packet(10.0).await {
                c.send(Packet::PubRel(rumqttc::v5::mqttbytes::v5::PubRel::new(id, None)))
                    .await;
                return a.reason;
            }
        }
    };
    assert_eq!(pubrec("T/p").await, PubRecReason::Success);
    assert_eq!(pubrec("Nope/p").await, PubRecReason::NotAuthorized);
    assert_eq!(pubrec(&long).await, PubRecReason::TopicNameInvalid);
}

#[tokio::test]
async fn disconnect_reason_codes() {
    let b = BrokerProc::start(&snapshot());
    // 0x8E: another connection took the client ID over.
    let (_old, mut oev, _) = v5::connect(v5::opts(&b, "GID_test@@@dup5", true, 0)).await;
    let (_new, nev, _) = v5::connect(v5::opts(&b, "GID_test@@@dup5", true, 0)).await;
    let _n = v5::drive(nev);
    assert_eq!(
        v5::disconnected(&mut oev, 10.0).await,
        DisconnectReasonCode::SessionTakenOver
    );

    // 0x95: a message larger than the instance allows.
    let (mut c, _) = Raw::authenticated(&b, "GID_test@@@big5", ConnectProperties::new()).await;
    let big: &'static [u8] = Box::leak(vec![b'x'; 64 * 1024 + 1].into_boxed_slice());
    c.send(Packet::Publish(raw::publish("T/big", QoS::AtLeastOnce, 1, big)))
        .await;
    let d = c.closed(10.0).await.expect("DISCONNECT before the close");
    assert_eq!(d.reason_code, DisconnectReasonCode::PacketTooLarge);

    // 0x98: the configuration withdrew the client's rights (its AccessKey was disabled).
    let (_k, mut kev, _) = v5::connect(v5::opts(&b, "GID_test@@@admin5", true, 0)).await;
    let mut snap = snapshot();
    snap.content.instances[0].access_keys[0].enabled = false;
    b.reload(&Snapshot::new(2, snap.content)).await;
    assert_eq!(
        v5::disconnected(&mut kev, 10.0).await,
        DisconnectReasonCode::AdministrativeAction
    );
}
