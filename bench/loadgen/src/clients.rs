//! The two client roles every message scenario is made of: a publisher with a bounded QoS 1 window
//! (or QoS 0 flood), and a subscriber that acknowledges and records what it receives.

use std::time::Duration;

use anyhow::{Result, bail};
use futures_util::{SinkExt, StreamExt};
use rumqttc::{Packet, PubAck, Publish, QoS};
use tokio::time::{Instant, timeout};

use crate::conn::Conn;
use crate::payload;
use crate::tracker::Tracker;

/// How a publisher paces itself.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    pub qos: QoS,
    /// QoS 1 messages sent but not yet acknowledged, at most.
    pub window: usize,
    /// Messages per second for this publisher; 0 = as fast as the window allows.
    pub rate: f64,
}

/// Publishes `count` messages to `topic` as publisher number `id`; returns when all are acknowledged
/// (QoS 1) or written (QoS 0).
pub async fn publish(conn: &mut Conn, id: u32, topic: &str, count: u32, pace: Pace, deadline: Instant) -> Result<()> {
    let mut interval = (pace.rate > 0.0).then(|| tokio::time::interval(Duration::from_secs_f64(1.0 / pace.rate)));
    let qos1 = pace.qos != QoS::AtMostOnce;
    let (mut sent, mut acked, mut in_flight) = (0u32, 0u32, 0usize);
    let mut pkid: u16 = 0;
    while acked < count {
        if Instant::now() > deadline {
            bail!("publisher {id}: deadline passed with {acked}/{count} acknowledged");
        }
        let can_send = sent < count && (!qos1 || in_flight < pace.window);
        let send_now = match interval.as_mut() {
            // Unpaced: fill the window, flushing every 64 messages and when it is full.
            None if can_send => true,
            None => false,
            Some(interval) => tokio::select! {
                _ = interval.tick(), if can_send => true,
                packet = conn.next(), if in_flight > 0 => {
                    on_packet(id, packet, &mut acked, &mut in_flight)?;
                    false
                }
            },
        };
        if send_now {
            let mut publish = Publish::new(topic, pace.qos, payload::encode(id, sent));
            if qos1 {
                pkid = if pkid == u16::MAX { 1 } else { pkid + 1 };
                publish.pkid = pkid;
                in_flight += 1;
            } else {
                acked += 1;
            }
            sent += 1;
            conn.feed(Packet::Publish(publish)).await?;
            let window_open = sent < count && (!qos1 || in_flight < pace.window);
            if interval.is_some() || !window_open || sent % 64 == 0 {
                conn.flush().await?;
            }
            continue;
        }
        if interval.is_none() {
            let packet = timeout(Duration::from_secs(30), conn.next())
                .await
                .map_err(|_| anyhow::anyhow!("publisher {id}: no PUBACK within 30 s"))?;
            on_packet(id, packet, &mut acked, &mut in_flight)?;
        }
    }
    conn.flush().await?;
    Ok(())
}

type Incoming = Option<Result<Packet, rumqttc::mqttbytes::Error>>;

fn on_packet(id: u32, packet: Incoming, acked: &mut u32, in_flight: &mut usize) -> Result<()> {
    match packet {
        Some(Ok(Packet::PubAck(_))) => {
            *acked += 1;
            *in_flight = in_flight.saturating_sub(1);
            Ok(())
        }
        Some(Ok(_)) => Ok(()),
        Some(Err(e)) => bail!("publisher {id}: {e}"),
        None => bail!("publisher {id}: connection closed after {acked} acknowledgements"),
    }
}

/// Receives until `expected` distinct messages arrived, `deadline` passes, or nothing arrives for
/// `idle` (QoS 0 runs end that way). Acknowledges QoS 1 deliveries in batches.
pub async fn receive(conn: &mut Conn, expected: u64, deadline: Instant, idle: Duration) -> Result<Tracker> {
    let mut tracker = Tracker::default();
    while tracker.unique() < expected {
        let wait = idle.min(deadline.saturating_duration_since(Instant::now()));
        if wait.is_zero() {
            break;
        }
        match timeout(wait, conn.next()).await {
            Ok(Some(Ok(Packet::Publish(p)))) => {
                tracker.record(&p.payload);
                if p.qos == QoS::AtLeastOnce {
                    conn.feed(Packet::PubAck(PubAck::new(p.pkid))).await?;
                }
                if conn.read_buffer().is_empty() {
                    conn.flush().await?;
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => bail!("subscriber: {e}"),
            Ok(None) => break,
            Err(_) => break,
        }
    }
    conn.flush().await?;
    Ok(tracker)
}
