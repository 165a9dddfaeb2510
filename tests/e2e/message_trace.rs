//! Message trace across two brokers: who published a message and to whom it was pushed, live or
//! from offline messages, found by message ID and by client, whichever broker holds the records
//! (the control plane asks every live broker and merges). Then Alibaba's three message-trace
//! actions through the official SDK (`tests/python/message_trace`).

use std::time::{Duration, Instant};

use reqwest::Method;
use rumqttc::QoS;
use serde_json::{Value, json};
use test_support::mqtt;

use e2e::{Api, Fixture, System};

/// The trace's records (action, clientId) for `query`, once `want` of them are there.
async fn trace(api: &Api, fx: &Fixture, query: &str, want: usize) -> (Vec<(String, String)>, Value) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let page = api
            .ok(
                Method::GET,
                &format!("/instances/{}/message-trace?{query}&pageSize=100", fx.instance),
                None,
            )
            .await;
        let records: Vec<(String, String)> = page["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["action"].as_str().unwrap().to_string(),
                    r["clientId"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        if records.len() >= want {
            assert_eq!(
                (&page["missingNodes"], &page["brokersAsked"]),
                (&json!([]), &json!(2)),
                "{page}"
            );
            return (records, page);
        }
        assert!(Instant::now() < deadline, "{query}: only {records:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn rec(action: &str, client: &str) -> (String, String) {
    (action.to_string(), client.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_traced_from_its_publisher_to_every_receiver_on_every_broker() {
    let s = System::up(2).await;
    let (fx, api) = (&s.fx, &s.api);
    let (port1, port2) = (s.brokers[0].mqtt_port, s.brokers[1].mqtt_port);
    let topic = format!("{}/trace/x", fx.parent);

    // A persistent session that is away when the message comes, and a live subscriber.
    let away = fx.client_id("away");
    let mut o = fx.signature_opts(&away, port1);
    o.set_clean_session(false);
    let (c, mut ev, _) = mqtt::connect(o.clone()).await.unwrap();
    c.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    mqtt::suback(&mut ev).await;
    c.disconnect().await.unwrap();
    mqtt::expect_closed(&mut ev, 10).await;
    let live = fx.client_id("live");
    let (l, mut live_ev, _) = mqtt::connect(fx.signature_opts(&live, port1)).await.unwrap();
    l.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    mqtt::suback(&mut live_ev).await;

    let publisher = fx.client_id("publisher");
    let (p, mut p_ev, _) = mqtt::connect(fx.signature_opts(&publisher, port1)).await.unwrap();
    assert!(mqtt::publish_acked(&p, &mut p_ev, &topic, "m1".into()).await);
    mqtt::collect(&mut live_ev, 1, 10).await;
    // Back: the stored message is pushed from its offline messages.
    let (_c, mut ev, _) = mqtt::connect(o).await.unwrap();
    mqtt::collect(&mut ev, 1, 10).await;

    // By client: the publication, and its message ID.
    let (of_publisher, page) = trace(api, fx, &format!("clientId={publisher}"), 1).await;
    assert_eq!(of_publisher, [rec("pub_mqtt", &publisher)]);
    let msg_id = page["records"][0]["msgId"].as_str().unwrap().to_string();
    assert_eq!(msg_id.len(), 32);
    // By message ID: where it came from and everyone it reached.
    let (deliveries, _) = trace(api, fx, &format!("msgId={msg_id}&kind=delivery"), 2).await;
    let mut sorted = deliveries.clone();
    sorted.sort();
    assert_eq!(sorted, [rec("push_offline", &away), rec("sub", &live)]);
    let (all, _) = trace(api, fx, &format!("msgId={msg_id}"), 3).await;
    assert_eq!(all[0], rec("pub_mqtt", &publisher), "oldest first: {all:?}");
    let (newest, _) = trace(api, fx, &format!("msgId={msg_id}&reverse=true"), 3).await;
    assert_eq!(newest.last(), Some(&rec("pub_mqtt", &publisher)));

    // A message from the backend reaches subscribers on both brokers: the records of both appear.
    let other = fx.client_id("other-broker");
    let (b2, mut b2_ev, _) = mqtt::connect(fx.signature_opts(&other, port2)).await.unwrap();
    b2.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    mqtt::suback(&mut b2_ev).await;
    let sent = api
        .post(
            &format!("/instances/{}/messages", fx.instance),
            json!({"topic": topic, "payload": "from the backend"}),
        )
        .await;
    let sent_id = sent["msgId"].as_str().unwrap().to_string();
    mqtt::collect(&mut b2_ev, 1, 10).await;
    let (backend, _) = trace(api, fx, &format!("msgId={sent_id}"), 4).await;
    let mut sorted = backend.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            rec("pub_mq", ""),
            rec("sub", &away),
            rec("sub", &live),
            rec("sub", &other)
        ],
        "the publication once, and the pushes on each broker (`away` is connected again)"
    );

    // Alibaba's actions through the official SDK, on the same records.
    let out = test_support::python::run_pytest(
        format!("{}/python/message_trace", env!("CARGO_MANIFEST_DIR")),
        vec![
            ("CP_URL", s.cp.url.clone()),
            ("CP_INSTANCE_ID", fx.instance.clone()),
            ("CP_ACCESS_KEY_ID", fx.access_key.clone()),
            ("CP_ACCESS_KEY_SECRET", fx.secret.clone()),
            ("TRACE_MSG_ID", msg_id),
            ("TRACE_PUBLISHER", publisher),
            ("TRACE_LIVE", live),
            ("TRACE_AWAY", away),
        ],
    )
    .await;
    assert!(out.contains("passed"), "{out}");
}
