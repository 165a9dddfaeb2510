//! MQTT 5 helpers over rumqttc's v5 client: options with session settings, connect with
//! `session_present`, and waiting for messages.

use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnAck, ConnectReturnCode, LastWill, LastWillProperties, Packet};
pub use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};

use super::{BrokerProc, INST, sig_pass, sig_user};

pub fn opts(b: &BrokerProc, id: &str, clean_start: bool, expiry: u32) -> MqttOptions {
    let mut o = b.v5_opts(id, &sig_user(INST), &sig_pass(id));
    o.set_clean_start(clean_start);
    o.set_session_expiry_interval(Some(expiry));
    o
}

/// Connects; returns the client, its event loop and `session_present`.
pub async fn connect(o: MqttOptions) -> (AsyncClient, EventLoop, bool) {
    let (c, mut ev) = AsyncClient::new(o, 10);
    let ack: ConnAck = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Event::Incoming(Packet::ConnAck(a)) = ev.poll().await.unwrap() {
                return a;
            }
        }
    })
    .await
    .unwrap();
    (c, ev, ack.session_present)
}

/// Connects, subscribes to `T/exp/#` and disconnects; returns `session_present`.
pub async fn away_with_subscription(o: MqttOptions) -> bool {
    let (c, mut ev, present) = connect(o).await;
    c.subscribe("T/exp/#", QoS::AtLeastOnce).await.unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = ev.poll().await.unwrap() {
            break;
        }
    }
    c.disconnect().await.unwrap();
    let _ = tokio::time::timeout(Duration::from_millis(300), async { while ev.poll().await.is_ok() {} }).await;
    present
}

/// The next application message within `secs`, if any.
pub async fn next_message(ev: &mut EventLoop, secs: f64) -> Option<Vec<u8>> {
    tokio::time::timeout(Duration::from_secs_f64(secs), async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = ev.poll().await.unwrap() {
                return p.payload.to_vec();
            }
        }
    })
    .await
    .ok()
}

/// The CONNACK refusal, None when accepted.
pub async fn refusal(o: MqttOptions) -> Option<ConnectReturnCode> {
    let (_c, mut ev) = AsyncClient::new(o, 10);
    match ev.poll().await {
        Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => Some(code),
        Ok(_) => None,
        Err(e) => panic!("{e:?}"),
    }
}

/// A QoS 1 will on `topic` held back `delay` seconds.
pub fn will(topic: &str, payload: &str, delay: u32) -> LastWill {
    let props = LastWillProperties {
        delay_interval: Some(delay),
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        user_properties: Vec::new(),
    };
    LastWill::new(topic, payload.to_string(), QoS::AtLeastOnce, false, Some(props))
}
