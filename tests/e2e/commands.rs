//! Commands from the control plane: CloseConnection kicks a client wherever it is, SendMessage reaches
//! subscribers and P2P targets on every broker; session queries see clients on both brokers.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use rumqttc::QoS;
use serde_json::json;
use test_support::mqtt;

use e2e::System;

use crate::probe::until_closed;

/// Waits until the control plane reports the client online (events travel asynchronously).
async fn wait_online(s: &System, cid: &str, online: bool) -> serde_json::Value {
    let path = format!("/instances/{}/sessions/{cid}", s.fx.instance);
    for _ in 0..100 {
        let v = s.api.ok(Method::GET, &path, None).await;
        if v["online"] == online {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{cid} never became online={online}");
}

#[tokio::test]
async fn kick_closes_the_connection() {
    let s = System::up(1).await;
    let cid = s.fx.client_id("kicked");
    let (client, mut ev, _) = mqtt::connect(s.fx.signature_opts(&cid, s.broker().mqtt_port))
        .await
        .unwrap();
    client.subscribe("T/kick", QoS::AtLeastOnce).await.unwrap();
    mqtt::suback(&mut ev).await;
    let session = wait_online(&s, &cid, true).await;
    assert_eq!(session["connections"], 1);
    let channel = &session["channels"][0];
    assert_eq!(channel["nodeId"], "node-1");
    assert!(
        channel["clientIp"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{channel}"
    );
    assert_eq!(channel["subscriptions"], json!(["T/kick"]));

    let since = Instant::now();
    s.api
        .ok(
            Method::POST,
            &format!("/instances/{}/sessions/{cid}/close", s.fx.instance),
            None,
        )
        .await;
    let (took, _) = until_closed(since, &mut ev).await;
    println!("kick took {:.1} ms", took.as_secs_f64() * 1000.0);
    assert!(took < Duration::from_secs(1), "kick took {took:?}");
    wait_online(&s, &cid, false).await;
    let (status, body) = s
        .api
        .call(
            Method::POST,
            &format!("/instances/{}/sessions/{cid}/close", s.fx.instance),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn send_message_reaches_subscribers_on_every_broker() {
    let s = System::up(2).await;
    let fx = &s.fx;
    let mut receivers = Vec::new();
    for (i, b) in s.brokers.iter().enumerate() {
        let cid = fx.client_id(&format!("sub{i}"));
        let (client, mut ev, _) = mqtt::connect(fx.signature_opts(&cid, b.mqtt_port)).await.unwrap();
        client.subscribe("T/news/+", QoS::AtLeastOnce).await.unwrap();
        mqtt::suback(&mut ev).await;
        receivers.push((client, ev, cid));
    }
    // Both clients visible to the control plane, on their own node.
    let batch = s
        .api
        .post(
            &format!("/instances/{}/sessions/batch-query", fx.instance),
            json!({"clientIds": [receivers[0].2, receivers[1].2, fx.client_id("nobody")]}),
        )
        .await;
    let sessions = batch["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3, "{batch}");

    let sent = s
        .api
        .post(
            &format!("/instances/{}/messages", fx.instance),
            json!({"topic": "T/news/1", "payload": "hello", "qos": 1}),
        )
        .await;
    let msg_id = sent["msgId"].as_str().unwrap();
    assert!(msg_id.len() == 32 && msg_id.chars().all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)));
    for (_, ev, cid) in receivers.iter_mut() {
        let got = mqtt::collect(ev, 1, 5).await;
        assert_eq!(got[0].topic, "T/news/1", "{cid}");
        assert_eq!(&got[0].payload[..], b"hello");
    }

    // P2P through SendMessage: only the target (held by the second broker) receives it.
    let target = receivers[1].2.clone();
    s.api
        .post(
            &format!("/instances/{}/messages", fx.instance),
            json!({"topic": format!("T/p2p/{target}"), "payload": "just you", "qos": 1}),
        )
        .await;
    let got = mqtt::collect(&mut receivers[1].1, 1, 5).await;
    assert_eq!(&got[0].payload[..], b"just you");
    assert!(
        mqtt::drain(&mut receivers[0].1, 0.5).await.is_empty(),
        "P2P reached another client"
    );
}
