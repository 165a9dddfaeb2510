//! rumqttc v3.1.1 helpers, shared with the end-to-end tests through the test-support crate, and
//! the broker tests' own.
#![allow(unused_imports)]

pub use test_support::mqtt::*;

use super::BrokerProc;

/// A client connected with `o` and subscribed to `filter` (SUBACK read).
pub async fn subscribed(
    o: rumqttc::MqttOptions,
    filter: &str,
    qos: rumqttc::QoS,
) -> (rumqttc::AsyncClient, rumqttc::EventLoop) {
    let (c, mut ev, _) = connect(o).await.unwrap();
    c.subscribe(filter, qos).await.unwrap();
    suback(&mut ev).await;
    (c, ev)
}

/// Publishes QoS 1 messages (topic, payload, retain) from a clean MQTT 3.1.1 client of the default
/// instance and waits for every PUBACK.
pub async fn publish_acked(b: &BrokerProc, messages: &[(&str, &[u8], bool)]) {
    let (p, mut ev, _) = connect(b.sig_opts("GID_test@@@publisher")).await.unwrap();
    for (topic, payload, retain) in messages {
        p.publish(*topic, rumqttc::QoS::AtLeastOnce, *retain, payload.to_vec())
            .await
            .unwrap();
    }
    let mut acks = 0;
    while acks < messages.len() {
        if let rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)) = ev.poll().await.unwrap() {
            acks += 1;
        }
    }
    p.disconnect().await.unwrap();
    let _ = drain(&mut ev, 0.2).await;
}
