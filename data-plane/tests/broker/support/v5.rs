//! MQTT 5 helpers over rumqttc's v5 client: options with session settings, connect with the
//! CONNACK, subscribing and waiting for the SUBACK, and waiting for messages, acknowledgements and
//! the broker's DISCONNECT.

use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, ConnectReturnCode, DisconnectReasonCode, Filter, LastWill, LastWillProperties, Packet, Publish,
    SubscribeProperties,
};
pub use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, StateError};
use tokio::time::{Instant, timeout};

use super::{BrokerProc, INST, sig_pass, sig_user};

pub fn opts(b: &BrokerProc, id: &str, clean_start: bool, expiry: u32) -> MqttOptions {
    let mut o = b.v5_opts(id, &sig_user(INST), &sig_pass(id));
    o.set_clean_start(clean_start);
    o.set_session_expiry_interval(Some(expiry));
    o
}

/// Options for the development listener (no credentials), clean start.
pub fn dev_opts(b: &BrokerProc, id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(
        id,
        "127.0.0.1",
        b.dev_port.expect("broker started with the dev listener"),
    );
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(Some(1 << 20));
    o
}

/// Connects; returns the client, its event loop and the CONNACK.
pub async fn connect_ack(o: MqttOptions) -> (AsyncClient, EventLoop, ConnAck) {
    let (c, mut ev) = AsyncClient::new(o, 100);
    let ack: ConnAck = timeout(Duration::from_secs(10), async {
        loop {
            if let Event::Incoming(Packet::ConnAck(a)) = ev.poll().await.unwrap() {
                return a;
            }
        }
    })
    .await
    .expect("CONNACK in time");
    (c, ev, ack)
}

/// Connects; returns the client, its event loop and `session_present`.
pub async fn connect(o: MqttOptions) -> (AsyncClient, EventLoop, bool) {
    let (c, ev, ack) = connect_ack(o).await;
    (c, ev, ack.session_present)
}

/// Polls until the next SUBACK and returns its reason codes.
pub async fn suback(ev: &mut EventLoop) -> Vec<rumqttc::v5::mqttbytes::v5::SubscribeReasonCode> {
    timeout(Duration::from_secs(10), async {
        loop {
            if let Event::Incoming(Packet::SubAck(a)) = ev.poll().await.unwrap() {
                return a.return_codes;
            }
        }
    })
    .await
    .expect("SUBACK in time")
}

/// Subscribes one filter (with its options and an optional subscription identifier) and waits for
/// the SUBACK; returns its reason code.
pub async fn subscribe(
    c: &AsyncClient,
    ev: &mut EventLoop,
    filter: Filter,
    id: Option<usize>,
) -> rumqttc::v5::mqttbytes::v5::SubscribeReasonCode {
    subscribe_many(c, ev, vec![filter], id).await[0]
}

/// Subscribes filters with their options in one SUBSCRIBE and waits for the SUBACK.
pub async fn subscribe_many(
    c: &AsyncClient,
    ev: &mut EventLoop,
    filters: Vec<Filter>,
    id: Option<usize>,
) -> Vec<rumqttc::v5::mqttbytes::v5::SubscribeReasonCode> {
    let props = SubscribeProperties {
        id,
        user_properties: Vec::new(),
    };
    c.subscribe_many_with_properties(filters, props).await.unwrap();
    suback(ev).await
}

/// A filter with MQTT 5 options.
pub fn filter(path: &str, qos: QoS) -> Filter {
    Filter::new(path, qos)
}

/// The next PUBLISH within `secs`, if any (None also when the connection ends).
pub async fn next_publish(ev: &mut EventLoop, secs: f64) -> Option<Publish> {
    timeout(Duration::from_secs_f64(secs), async {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => return Some(p),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// The next application message's payload within `secs`, if any.
pub async fn next_message(ev: &mut EventLoop, secs: f64) -> Option<Vec<u8>> {
    next_publish(ev, secs).await.map(|p| p.payload.to_vec())
}

/// Exactly `n` publishes, each within 10 s; panics otherwise.
pub async fn collect(ev: &mut EventLoop, n: usize) -> Vec<Publish> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        match next_publish(ev, 10.0).await {
            Some(p) => got.push(p),
            None => panic!("only {} of {n} messages arrived", got.len()),
        }
    }
    got
}

/// Every publish that arrives within `secs` (the connection may stay idle).
pub async fn drain(ev: &mut EventLoop, secs: f64) -> Vec<Publish> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now()).as_secs_f64();
        match next_publish(ev, left).await {
            Some(p) => got.push(p),
            None => return got,
        }
    }
}

/// Keeps an event loop running in the background (for publishers).
pub fn drive(mut ev: EventLoop) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { while ev.poll().await.is_ok() {} })
}

/// Publishes at QoS 1 and waits for the PUBACK; returns its reason code.
pub async fn publish_acked(
    c: &AsyncClient,
    ev: &mut EventLoop,
    topic: &str,
    retain: bool,
    payload: &str,
    props: rumqttc::v5::mqttbytes::v5::PublishProperties,
) -> rumqttc::v5::mqttbytes::v5::PubAckReason {
    c.publish_with_properties(topic, QoS::AtLeastOnce, retain, payload.to_string(), props)
        .await
        .unwrap();
    timeout(Duration::from_secs(10), async {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::PubAck(a))) => return a.reason,
                Ok(_) => {}
                Err(e) => panic!("connection failed before PUBACK: {e:?}"),
            }
        }
    })
    .await
    .expect("PUBACK in time")
}

/// Waits for the broker's DISCONNECT and returns its reason; panics if none arrives within `secs`.
pub async fn disconnected(ev: &mut EventLoop, secs: f64) -> DisconnectReasonCode {
    timeout(Duration::from_secs_f64(secs), async {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::Disconnect(d))) => return d.reason_code,
                Ok(_) => {}
                // rumqttc reports the broker's DISCONNECT as the error that ends the event loop.
                Err(ConnectionError::MqttState(StateError::ServerDisconnect { reason_code, .. })) => {
                    return reason_code;
                }
                Err(e) => panic!("connection ended without DISCONNECT: {e:?}"),
            }
        }
    })
    .await
    .expect("DISCONNECT in time")
}

/// Connects, subscribes to `T/exp/#` and disconnects; returns `session_present`.
pub async fn away_with_subscription(o: MqttOptions) -> bool {
    let (c, mut ev, present) = connect(o).await;
    c.subscribe("T/exp/#", QoS::AtLeastOnce).await.unwrap();
    suback(&mut ev).await;
    c.disconnect().await.unwrap();
    let _ = timeout(Duration::from_millis(300), async { while ev.poll().await.is_ok() {} }).await;
    present
}

/// The next publish, which must carry `payload` (a marker published after what must not arrive
/// proves it did not, without waiting for a silence).
pub async fn next_is(ev: &mut EventLoop, payload: &str) -> Publish {
    let p = next_publish(ev, 10.0).await.expect("a message in time");
    assert_eq!(
        String::from_utf8_lossy(&p.payload),
        payload,
        "unexpected message on {:?}",
        String::from_utf8_lossy(&p.topic)
    );
    p
}

/// Publishes a fresh marker on `topic` and expects it as the subscriber's next message: whatever
/// must not arrive did not come before it.
pub async fn marker(p: &AsyncClient, pev: &mut EventLoop, sev: &mut EventLoop, topic: &str) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let m = format!("marker {}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    publish_acked(p, pev, topic, false, &m, Default::default()).await;
    next_is(sev, &m).await;
}

/// The CONNACK refusal, None when accepted.
pub async fn refusal(o: MqttOptions) -> Option<ConnectReturnCode> {
    let (_c, mut ev) = AsyncClient::new(o, 10);
    match ev.poll().await {
        Err(ConnectionError::ConnectionRefused(code)) => Some(code),
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
