//! Client events on their way to the control plane: an event the control plane refuses for its
//! content is dropped alone and counted by the broker, and the rest of its batch arrives.

use std::time::Duration;

use reqwest::Method;
use test_support::mqtt;
use test_support::net::free_port;

use e2e::system::NODE_SECRET;
use e2e::{Api, Broker, ControlPlane, Fixture};

async fn online(api: &Api, fx: &Fixture, cid: &str) -> bool {
    let v = api
        .ok(Method::GET, &format!("/instances/{}/sessions/{cid}", fx.instance), None)
        .await;
    v["online"] == true
}

#[tokio::test]
async fn a_refused_event_is_dropped_and_the_rest_of_its_batch_arrives() {
    let dir = tempfile::Builder::new().prefix("e2e-events-").tempdir().unwrap();
    let mut cp = ControlPlane::start(dir.path(), &[("node-dev", NODE_SECRET)]).await;
    let api = Api::login(&cp).await;
    let fx = Fixture::create(&api).await;
    let dev_port = free_port();
    let broker = Broker::start_with(
        dir.path(),
        &cp.url,
        "node-dev",
        NODE_SECRET,
        &["--dev-listen", &format!("127.0.0.1:{dev_port}")],
    );
    api.wait_in_sync(&["node-dev"]).await;

    // While the control plane is away the broker buffers events; they go out as one batch after.
    cp.kill();
    let before = fx.client_id("before");
    let (_b, b_ev, _) = mqtt::connect(fx.signature_opts(&before, broker.mqtt_port))
        .await
        .unwrap();
    mqtt::drive(b_ev);
    // The development listener takes any client ID an MQTT string can hold; this one is longer
    // than the control plane keeps.
    let huge: String = (0..60_000)
        .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
        .collect();
    let mut o = rumqttc::MqttOptions::new(huge, "127.0.0.1", dev_port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (_h, h_ev, _) = mqtt::connect(o).await.unwrap();
    mqtt::drive(h_ev);
    let after = fx.client_id("after");
    let (_a, a_ev, _) = mqtt::connect(fx.signature_opts(&after, broker.mqtt_port))
        .await
        .unwrap();
    mqtt::drive(a_ev);

    cp.restart().await;
    for _ in 0..200 {
        if online(&api, &fx, &before).await && online(&api, &fx, &after).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        online(&api, &fx, &before).await,
        "the event before the refused one was lost"
    );
    assert!(
        online(&api, &fx, &after).await,
        "the event after the refused one was lost"
    );
    assert_eq!(broker.counter("broker_sync_events_refused_total").await, 1.0);
    // The trace has the good clients' connects.
    let trace = api
        .ok(
            Method::GET,
            &format!("/instances/{}/client-events?clientId={after}", fx.instance),
            None,
        )
        .await;
    assert!(trace.to_string().contains("connect"), "{trace}");
}
