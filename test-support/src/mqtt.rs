//! rumqttc v3.1.1 helpers for tests: connect and learn the CONNACK, collect publishes, wait for a close.

use std::time::Duration;

use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, Publish};
use tokio::time::timeout;

/// Connects and returns the client and its event loop once CONNACK arrived.
pub async fn connect(opts: MqttOptions) -> Result<(AsyncClient, EventLoop, bool), ConnectionError> {
    let (client, mut ev) = AsyncClient::new(opts, 2000);
    loop {
        match timeout(Duration::from_secs(10), ev.poll())
            .await
            .expect("CONNACK in time")?
        {
            Event::Incoming(Packet::ConnAck(ack)) => return Ok((client, ev, ack.session_present)),
            _ => continue,
        }
    }
}

/// The CONNACK refusal code, or None when accepted.
pub async fn refusal(opts: MqttOptions) -> Option<ConnectReturnCode> {
    match connect(opts).await {
        Ok(_) => None,
        Err(ConnectionError::ConnectionRefused(code)) => Some(code),
        Err(e) => panic!("unexpected error: {e:?}"),
    }
}

/// Polls until `n` publishes arrived (or panics after `secs`).
pub async fn collect(ev: &mut EventLoop, n: usize, secs: u64) -> Vec<Publish> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while got.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match timeout(left, ev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => got.push(p),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("connection failed after {} messages: {e:?}", got.len()),
            Err(_) => panic!("only {} of {n} messages arrived", got.len()),
        }
    }
    got
}

/// Polls for `secs` and returns whatever publishes arrived (the connection may stay idle).
pub async fn drain(ev: &mut EventLoop, secs: f64) -> Vec<Publish> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
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

/// Polls until the SUBACK arrives and returns its return codes.
pub async fn suback(ev: &mut EventLoop) -> Vec<rumqttc::SubscribeReasonCode> {
    loop {
        match timeout(Duration::from_secs(10), ev.poll())
            .await
            .expect("SUBACK in time")
        {
            Ok(Event::Incoming(Packet::SubAck(a))) => return a.return_codes,
            Ok(_) => {}
            Err(e) => panic!("connection failed before SUBACK: {e:?}"),
        }
    }
}

/// Polls until the broker closes the connection; panics if it stays open for `secs`.
pub async fn expect_closed(ev: &mut EventLoop, secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match timeout(left, ev.poll()).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return,
            Err(_) => panic!("the broker did not close the connection"),
        }
    }
}

/// Keeps an event loop running in the background (for publishers).
pub fn drive(mut ev: EventLoop) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { while ev.poll().await.is_ok() {} })
}

/// Polls until the SUBACK (its codes) or the broker closing the connection (None).
pub async fn suback_or_close(ev: &mut EventLoop) -> Option<Vec<rumqttc::SubscribeReasonCode>> {
    loop {
        match ev.poll().await {
            Ok(Event::Incoming(Packet::SubAck(a))) => return Some(a.return_codes),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// Publishes one QoS 1 message on `topic` and polls `ev` until its PUBACK: true only when the broker
/// acknowledged it (within 10 s, on a connection that did not fail).
pub async fn publish_acked(client: &AsyncClient, ev: &mut EventLoop, topic: &str, payload: String) -> bool {
    if client
        .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
        .await
        .is_err()
    {
        return false;
    }
    let wait = async {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    };
    timeout(Duration::from_secs(10), wait).await.unwrap_or(false)
}
