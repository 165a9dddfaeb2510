//! A raw MQTT client over TCP: packets written and read exactly as they travel, for what a client
//! library hides or does by itself: a topic alias as sent, acknowledgements held back, a client that
//! stops talking or never reads, packets with more filters than a client would send. MQTT 5 packets
//! go through rumqttc's codec (none of its client state); either version can also be spoken in the
//! hand-written packets of `wire` and read back undecoded (`login`, `frame`, `ack_codes`).

use std::time::Duration;

use bytes::BytesMut;
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, Connect, ConnectProperties, Disconnect, LastWill, Login, Packet, PubAck, SubAck, Subscribe,
};
use rumqttc::v5::mqttbytes::{Error as CodecError, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

use super::wire::{self, Version};
use super::{BrokerProc, INST, sig_pass, sig_user};

pub struct Raw {
    stream: TcpStream,
    buf: BytesMut,
    next_id: u16,
    /// The protocol version spoken: MQTT 5 unless connected with `login`.
    version: Version,
}

/// What the broker did next.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one at a time, in tests
pub enum Next {
    Packet(Packet),
    /// It closed the connection.
    Closed,
    /// Nothing within the time given.
    Quiet,
}

/// A CONNECT with a clean start and the given keep-alive and properties.
pub fn connect_packet(client_id: &str, keep_alive: u16, props: ConnectProperties) -> Connect {
    Connect {
        keep_alive,
        client_id: client_id.into(),
        clean_start: true,
        properties: Some(props),
    }
}

impl Raw {
    pub async fn open(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buf: BytesMut::with_capacity(4096),
            next_id: 0,
            version: Version::V5,
        }
    }

    /// Connects in either version with a hand-written CONNECT (clean session, user name and
    /// password) and checks that the CONNACK accepts.
    pub async fn login(port: u16, v: Version, client_id: &str, user: &str, pass: &str) -> Self {
        let mut raw = Self::open(port).await;
        raw.version = v;
        raw.send_bytes(&wire::connect(v, client_id, user, pass)).await;
        let (kind, body) = raw.frame(10.0).await.expect("CONNACK");
        assert_eq!(kind >> 4, 2, "CONNACK expected");
        assert_eq!(body[1], 0, "connection refused: {body:?}");
        raw
    }

    /// Opens a connection and sends CONNECT; returns the CONNACK.
    pub async fn connect(port: u16, connect: Connect, will: Option<LastWill>, login: Option<Login>) -> (Self, ConnAck) {
        let mut raw = Self::open(port).await;
        raw.send(Packet::Connect(connect, will, login)).await;
        match raw.next(10.0).await {
            Next::Packet(Packet::ConnAck(ack)) => (raw, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Connects to the authenticated listener in Signature mode (default instance).
    pub async fn authenticated(b: &BrokerProc, client_id: &str, props: ConnectProperties) -> (Self, ConnAck) {
        let login = Login::new(sig_user(INST), sig_pass(client_id));
        Self::connect(b.port, connect_packet(client_id, 30, props), None, Some(login)).await
    }

    /// Reads exactly `n` bytes (for MQTT 3.1.1 answers, which the v5 codec does not read).
    pub async fn read_bytes(&mut self, n: usize, secs: f64) -> Vec<u8> {
        while self.buf.len() < n {
            match timeout(Duration::from_secs_f64(secs), self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(read)) if read > 0 => {}
                other => panic!("only {} of {n} bytes arrived: {other:?}", self.buf.len()),
            }
        }
        self.buf.split_to(n).to_vec()
    }

    /// Waits for bytes without decoding them: Closed when the broker closes without sending any.
    pub async fn next_raw(&mut self, secs: f64) -> Next {
        match timeout(Duration::from_secs_f64(secs), self.stream.read_buf(&mut self.buf)).await {
            Err(_) => Next::Quiet,
            Ok(Ok(0)) | Ok(Err(_)) => Next::Closed,
            Ok(Ok(_)) => panic!("unexpected bytes from the broker: {:?}", &self.buf[..]),
        }
    }

    pub async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        packet.write(&mut out, None).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// A fresh packet id (1, 2, ...).
    pub fn id(&mut self) -> u16 {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.next_id
    }

    /// The next packet, the close, or nothing within `secs`.
    pub async fn next(&mut self, secs: f64) -> Next {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        loop {
            match Packet::read(&mut self.buf, None) {
                Ok(p) => return Next::Packet(p),
                Err(CodecError::InsufficientBytes(_)) => {}
                Err(e) => panic!("undecodable packet from the broker: {e:?}"),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Next::Quiet,
                Ok(Ok(0)) | Ok(Err(_)) => return Next::Closed,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The next packet within `secs`; panics on a close or silence.
    pub async fn packet(&mut self, secs: f64) -> Packet {
        match self.next(secs).await {
            Next::Packet(p) => p,
            other => panic!("expected a packet, got {other:?}"),
        }
    }

    /// Subscribes (one filter per entry, with the options rumqttc's `Filter` carries) and returns the SUBACK.
    pub async fn subscribe(&mut self, subscribe: Subscribe) -> SubAck {
        let mut subscribe = subscribe;
        subscribe.pkid = self.id();
        self.send(Packet::Subscribe(subscribe)).await;
        loop {
            if let Packet::SubAck(ack) = self.packet(10.0).await {
                return ack;
            }
        }
    }

    /// Every PUBLISH that arrives within `secs` (other packets are skipped; stops at a close).
    pub async fn publishes_within(&mut self, secs: f64) -> Vec<rumqttc::v5::mqttbytes::v5::Publish> {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now()).as_secs_f64();
            match self.next(left).await {
                Next::Packet(Packet::Publish(p)) => got.push(p),
                Next::Packet(_) => {}
                Next::Closed | Next::Quiet => return got,
            }
        }
    }

    pub async fn puback(&mut self, pkid: u16) {
        self.send(Packet::PubAck(PubAck::new(pkid, None))).await;
    }

    /// The next packet undecoded (first byte, body), None when the broker closed the connection;
    /// panics after `secs` of silence.
    pub async fn frame(&mut self, secs: f64) -> Option<(u8, Vec<u8>)> {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        loop {
            if let Some(frame) = wire::split_frame(&mut self.buf) {
                return Some(frame);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => panic!("neither a packet nor a close within {secs} s"),
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The reason codes of the next SUBACK or UNSUBACK (`wire::SUBACK`, `wire::UNSUBACK`; an MQTT
    /// 3.1.1 UNSUBACK has none), skipping other packets.
    pub async fn ack_codes(&mut self, kind: u8) -> Vec<u8> {
        loop {
            let (first, body) = self.frame(10.0).await.expect("the broker closed the connection");
            if first >> 4 != kind {
                continue;
            }
            let mut at = 2;
            if self.version == Version::V5 {
                // The properties: their length (a variable byte integer), then themselves.
                let (len, used) = wire::read_len(&body[at..]).expect("a property length");
                at += used + len;
            }
            return body[at..].to_vec();
        }
    }

    /// Waits for the broker to close the connection; returns the DISCONNECT it sent first, if any.
    pub async fn closed(&mut self, secs: f64) -> Option<Disconnect> {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let mut disconnect = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now()).as_secs_f64();
            match self.next(left).await {
                Next::Packet(Packet::Disconnect(d)) => disconnect = Some(d),
                Next::Packet(_) => {}
                Next::Closed => return disconnect,
                Next::Quiet => panic!("the broker did not close the connection within {secs} s"),
            }
        }
    }
}

/// A QoS 1 or 2 PUBLISH with a packet id.
pub fn publish(topic: &str, qos: QoS, pkid: u16, payload: &'static [u8]) -> rumqttc::v5::mqttbytes::v5::Publish {
    let mut p = rumqttc::v5::mqttbytes::v5::Publish::new(topic, qos, payload, None);
    p.pkid = pkid;
    p
}
