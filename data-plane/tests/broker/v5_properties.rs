//! MQTT 5 message properties end to end with real clients: user properties (order and duplicates
//! kept), payload format indicator, content type, response topic, correlation data and the message
//! expiry interval, through live delivery, the offline store of a persistent session, retained
//! messages (also across a restart) and wills; expired messages are not delivered and subscribers
//! get what is left of the interval.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{LastWill, LastWillProperties, Publish, PublishProperties};

use crate::support::v5::{self, filter};
use crate::support::*;

const USER: [(&str, &str); 4] = [("k", "1"), ("a", "x"), ("k", "2"), ("a", "x")];

/// Every property a PUBLISH can carry, with a message expiry interval of `expiry` seconds.
fn all_props(expiry: Option<u32>) -> PublishProperties {
    PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: expiry,
        response_topic: Some("T/p/reply".into()),
        correlation_data: Some(Bytes::from_static(b"\x00corr\xff")),
        user_properties: USER.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        content_type: Some("text/plain; charset=utf-8".into()),
        ..PublishProperties::default()
    }
}

/// `p` carries every property of `all_props`, with an expiry interval within `expiry`.
fn assert_all_props(p: &Publish, expiry: std::ops::RangeInclusive<u32>) {
    let props = p.properties.as_ref().expect("properties delivered");
    let user: Vec<(&str, &str)> = props
        .user_properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(user, USER, "user properties in order, duplicates kept");
    assert_eq!(props.payload_format_indicator, Some(1));
    assert_eq!(props.content_type.as_deref(), Some("text/plain; charset=utf-8"));
    assert_eq!(props.response_topic.as_deref(), Some("T/p/reply"));
    assert_eq!(props.correlation_data.as_deref(), Some(&b"\x00corr\xff"[..]));
    let left = props.message_expiry_interval.expect("message expiry interval");
    assert!(expiry.contains(&left), "expiry interval {left} not in {expiry:?}");
}

#[tokio::test]
async fn properties_travel_live_and_through_the_offline_store() {
    let b = BrokerProc::start(&snapshot());
    let sub_id = "GID_test@@@props-sub";
    let (s, mut sev, _) = v5::connect(v5::opts(&b, sub_id, true, 300)).await;
    v5::subscribe(&s, &mut sev, filter("T/p/#", QoS::AtLeastOnce), None).await;
    let (p, mut pev, _) = v5::connect(v5::opts(&b, "GID_test@@@props-pub", true, 0)).await;

    // Live.
    v5::publish_acked(&p, &mut pev, "T/p/live", false, "live", all_props(Some(100))).await;
    let got = v5::collect(&mut sev, 1).await;
    assert_eq!(&got[0].payload[..], b"live");
    assert_all_props(&got[0], 99..=100);

    // Through the store: the subscriber is away, the message waits on disk.
    s.disconnect().await.unwrap();
    v5::drain(&mut sev, 0.3).await;
    v5::publish_acked(&p, &mut pev, "T/p/stored", false, "stored", all_props(Some(100))).await;
    // Time passes while it waits: the subscriber gets what is left of the interval, not all of it.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (_s, mut sev, present) = v5::connect(v5::opts(&b, sub_id, false, 300)).await;
    assert!(present);
    let got = v5::collect(&mut sev, 1).await;
    assert_eq!(&got[0].payload[..], b"stored");
    assert_all_props(&got[0], 90..=99);
}

#[tokio::test]
async fn properties_travel_with_retained_messages_across_a_restart_and_with_wills() {
    let mut b = BrokerProc::start(&snapshot());
    {
        let (p, mut pev, _) = v5::connect(v5::opts(&b, "GID_test@@@ret-pub", true, 0)).await;
        v5::publish_acked(&p, &mut pev, "T/p/kept", true, "kept", all_props(Some(600))).await;
    }
    let (s, mut sev, _) = v5::connect(v5::opts(&b, "GID_test@@@ret-sub", true, 0)).await;
    v5::subscribe(&s, &mut sev, filter("T/p/#", QoS::AtLeastOnce), None).await;
    let got = v5::collect(&mut sev, 1).await;
    assert!(got[0].retain);
    assert_all_props(&got[0], 590..=600);
    drop((s, sev));

    // The retained copy on disk keeps them too.
    b.kill9();
    b.spawn();
    let (s, mut sev, _) = v5::connect(v5::opts(&b, "GID_test@@@ret-sub2", true, 0)).await;
    v5::subscribe(&s, &mut sev, filter("T/p/#", QoS::AtLeastOnce), None).await;
    let got = v5::collect(&mut sev, 1).await;
    assert_eq!((&got[0].payload[..], got[0].retain), (&b"kept"[..], true));
    assert_all_props(&got[0], 580..=600);

    // A will carries the properties its CONNECT gave it; its expiry counts from when it is published.
    let props = all_props(None);
    let will_props = LastWillProperties {
        delay_interval: None,
        payload_format_indicator: props.payload_format_indicator,
        message_expiry_interval: Some(100),
        content_type: props.content_type,
        response_topic: props.response_topic,
        correlation_data: props.correlation_data,
        user_properties: props.user_properties,
    };
    let mut o = v5::opts(&b, "GID_test@@@willer5", true, 0);
    o.set_last_will(LastWill::new(
        "T/p/will",
        "gone",
        QoS::AtLeastOnce,
        false,
        Some(will_props),
    ));
    let (_w, wev, _) = v5::connect(o).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    drop(wev);
    let got = v5::collect(&mut sev, 1).await;
    assert_eq!(
        (&got[0].topic[..], &got[0].payload[..]),
        (&b"T/p/will"[..], &b"gone"[..])
    );
    assert_all_props(&got[0], 100..=100);
}

#[tokio::test]
async fn expired_messages_are_not_delivered_live_queued_stored_or_retained() {
    let b = BrokerProc::start(&snapshot());
    let (p, mut pev, _) = v5::connect(v5::opts(&b, "GID_test@@@exp-pub", true, 0)).await;
    let expiring = |secs| PublishProperties {
        message_expiry_interval: Some(secs),
        ..PublishProperties::default()
    };

    // Live-queued: a subscriber that accepts one unacknowledged message at a time holds the first;
    // the next two wait in its queue while one of them expires.
    let mut o = v5::opts(&b, "GID_test@@@exp-live", true, 0);
    o.set_receive_maximum(Some(1));
    o.set_manual_acks(true);
    let (live, mut lev, _) = v5::connect(o).await;
    v5::subscribe(&live, &mut lev, filter("T/e/live", QoS::AtLeastOnce), None).await;
    v5::publish_acked(&p, &mut pev, "T/e/live", false, "first", PublishProperties::default()).await;
    let first = v5::collect(&mut lev, 1).await.remove(0);
    v5::publish_acked(&p, &mut pev, "T/e/live", false, "short", expiring(1)).await;
    v5::publish_acked(&p, &mut pev, "T/e/live", false, "long", expiring(100)).await;

    // Stored: a persistent session away while one expires.
    assert!(!v5::away_with_subscription(v5::opts(&b, "GID_test@@@exp-off", true, 300)).await);
    v5::publish_acked(&p, &mut pev, "T/exp/a", false, "short", expiring(1)).await;
    v5::publish_acked(&p, &mut pev, "T/exp/a", false, "long", expiring(100)).await;

    // Retained: an expired retained message is not sent to a new subscription.
    v5::publish_acked(&p, &mut pev, "T/e/ret", true, "short", expiring(1)).await;

    tokio::time::sleep(Duration::from_millis(2100)).await;

    live.ack(&first).await.unwrap();
    let got = v5::collect(&mut lev, 1).await;
    assert_eq!(&got[0].payload[..], b"long", "the expired message was skipped");
    let left = got[0].properties.as_ref().unwrap().message_expiry_interval.unwrap();
    assert!((95..=98).contains(&left), "remaining expiry {left}");

    let (_o, mut oev, present) = v5::connect(v5::opts(&b, "GID_test@@@exp-off", false, 300)).await;
    assert!(present);
    let got = v5::collect(&mut oev, 1).await;
    assert_eq!(&got[0].payload[..], b"long", "the expired stored message was skipped");
    let left = got[0].properties.as_ref().unwrap().message_expiry_interval.unwrap();
    assert!((95..=98).contains(&left), "remaining expiry {left}");
    b.wait_store_empty(10);

    let (r, mut rev, _) = v5::connect(v5::opts(&b, "GID_test@@@exp-ret", true, 0)).await;
    v5::subscribe(&r, &mut rev, filter("T/e/#", QoS::AtLeastOnce), None).await;
    v5::publish_acked(
        &p,
        &mut pev,
        "T/e/marker",
        false,
        "marker",
        PublishProperties::default(),
    )
    .await;
    let got = v5::collect(&mut rev, 1).await;
    assert_eq!(&got[0].payload[..], b"marker", "no expired retained message before it");
}
