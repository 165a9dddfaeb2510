//! MQTT 5 clients (rumqttc's v5 client) for the end-to-end tests: Signature-mode options of the
//! fixture, connect with the CONNACK (or its refusal), wait for the SUBACK, collect publishes.

use std::time::Duration;

pub use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet, Publish};
pub use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions};
use tokio::time::{Instant, timeout};

use crate::Fixture;

/// Clean-start options for a Signature-mode client of the fixture's instance on `port`.
pub fn opts(fx: &Fixture, client_id: &str, port: u16) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    o.set_credentials(fx.signature_username(), fx.signature_password(client_id));
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(Some(1 << 20));
    o
}

/// Connects; the client and its event loop once the CONNACK accepted, or the error (a refusal is
/// `ConnectionError::ConnectionRefused` with its reason code).
pub async fn connect(o: MqttOptions) -> Result<(AsyncClient, EventLoop), ConnectionError> {
    let (c, mut ev) = AsyncClient::new(o, 1000);
    loop {
        match timeout(Duration::from_secs(10), ev.poll())
            .await
            .expect("CONNACK in time")?
        {
            Event::Incoming(Packet::ConnAck(_)) => return Ok((c, ev)),
            _ => continue,
        }
    }
}

/// The CONNACK reason code of a refused connection, or None when it is accepted (the connection is
/// then dropped).
pub async fn refusal(o: MqttOptions) -> Option<ConnectReturnCode> {
    match connect(o).await {
        Ok(_) => None,
        Err(ConnectionError::ConnectionRefused(code)) => Some(code),
        Err(e) => panic!("neither accepted nor refused: {e:?}"),
    }
}

/// Subscribes one filter and waits for the SUBACK.
pub async fn subscribe(c: &AsyncClient, ev: &mut EventLoop, filter: &str, qos: QoS) {
    c.subscribe(filter, qos).await.expect("subscribe queued");
    timeout(Duration::from_secs(10), async {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => return,
                Ok(_) => {}
                Err(e) => panic!("connection failed before SUBACK: {e:?}"),
            }
        }
    })
    .await
    .expect("SUBACK in time")
}

/// Every publish that arrives within `secs` (the connection may stay idle).
pub async fn drain(ev: &mut EventLoop, secs: f64) -> Vec<Publish> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return got;
        }
        match timeout(left, ev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => got.push(p),
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return got,
        }
    }
}

/// Keeps an event loop running in the background (for publishers).
pub fn drive(mut ev: EventLoop) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { while ev.poll().await.is_ok() {} })
}
