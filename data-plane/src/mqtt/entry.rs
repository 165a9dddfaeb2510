//! Where an accepted connection goes (after any TLS or WebSocket layer): its CONNECT's protocol
//! level, read without consuming it, picks our MQTT 3.1.1 loop or ntex-mqtt's MQTT 5 server.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use ntex::codec::Decoder;
use ntex::io::IoBoxed;
use ntex::util::Either;
use ntex_bytes::BytesMut;

use super::{CONNECT_TIMEOUT, v3};
use crate::core::Broker;

/// Serves an MQTT 5 connection to its end.
pub type ServeV5 = Rc<dyn Fn(IoBoxed) -> Pin<Box<dyn Future<Output = ()>>>>;

/// One listener's way into the broker (cloned per connection: a few reference counts).
#[derive(Clone)]
pub struct Entry {
    broker: Arc<Broker>,
    dev: bool,
    limits: v3::Limits,
    v5: ServeV5,
}

impl Entry {
    pub fn new(broker: Arc<Broker>, dev: bool, limits: v3::Limits, v5: ServeV5) -> Self {
        Self {
            broker,
            dev,
            limits,
            v5,
        }
    }

    /// Serves a connection in a task of its own on the current worker (the one that accepted it,
    /// `listeners.rs`), so that the accept loop, or a TLS or WebSocket handshake's task, goes on.
    pub fn spawn(&self, io: IoBoxed) {
        ntex::rt::spawn(self.clone().serve(io));
    }

    /// An `async move` block rather than an `async fn`, which would keep `self` and `io` twice in
    /// the connection's future.
    #[expect(clippy::manual_async_fn, reason = "an async fn would hold its arguments twice")]
    fn serve(self, io: IoBoxed) -> impl std::future::Future<Output = ()> {
        async move {
            let accepted = std::time::Instant::now();
            match ntex::time::timeout_checked(CONNECT_TIMEOUT, io.recv(&ProtocolLevel)).await {
                Ok(Ok(Some(MQTT_3_1_1))) => {
                    // The rest of the CONNECT gets what is left of the same timeout.
                    let left = Duration::from(CONNECT_TIMEOUT).saturating_sub(accepted.elapsed());
                    v3::serve(self.broker.clone(), self.dev, self.limits, io, left).await
                }
                Ok(Ok(Some(_))) => (self.v5)(io).await,
                Ok(Err(Either::Left(NotMqtt(reason)))) => super::refuse_connection(&io, reason, "").await,
                // Silent past the connect timeout, or gone.
                Err(()) | Ok(Ok(None) | Err(Either::Right(_))) => {}
            }
        }
    }
}

const MQTT_3_1_1: u8 = 4;
const MQTT_5: u8 = 5;

/// Why the first bytes are not a CONNECT we serve (the `reason` label of the refusal counter).
#[derive(Debug)]
struct NotMqtt(&'static str);

/// Reads the protocol level of a CONNECT and leaves the bytes where they are, for the chosen
/// version's codec.
struct ProtocolLevel;

impl Decoder for ProtocolLevel {
    type Item = u8;
    type Error = NotMqtt;

    fn decode(&self, src: &mut BytesMut) -> Result<Option<u8>, NotMqtt> {
        let Some(&first) = src.first() else {
            return Ok(None);
        };
        if first != 0x10 {
            return Err(NotMqtt("first_packet_not_connect"));
        }
        // The remaining length: 1 to 4 bytes, 7 bits each, high bit = more follow.
        let mut at = 1;
        loop {
            match src.get(at) {
                None => return Ok(None),
                Some(b) if b & 0x80 == 0 => break,
                Some(_) if at == 4 => return Err(NotMqtt("malformed")),
                Some(_) => at += 1,
            }
        }
        // Protocol name (length 4, "MQTT"), then the level.
        let header = at + 1;
        let Some(name_and_level) = src.get(header..header + 7) else {
            return Ok(None);
        };
        if &name_and_level[..6] != b"\x00\x04MQTT" {
            return Err(NotMqtt("unsupported_protocol"));
        }
        match name_and_level[6] {
            level @ (MQTT_3_1_1 | MQTT_5) => Ok(Some(level)),
            _ => Err(NotMqtt("unsupported_protocol")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(bytes: &[u8]) -> Result<Option<u8>, &'static str> {
        let mut buf = BytesMut::from(bytes);
        let res = ProtocolLevel.decode(&mut buf).map_err(|e| e.0);
        assert_eq!(&buf[..], bytes, "nothing is consumed");
        res
    }

    #[test]
    fn reads_the_level_without_consuming() {
        assert_eq!(level(b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c"), Ok(Some(4)));
        assert_eq!(level(b"\x10\x10\x00\x04MQTT\x05\x02\x00\x3c"), Ok(Some(5)));
        // A long remaining length (two bytes).
        assert_eq!(level(b"\x10\x80\x01\x00\x04MQTT\x04"), Ok(Some(4)));
    }

    #[test]
    fn waits_for_more_and_refuses_the_rest() {
        assert_eq!(level(b""), Ok(None));
        assert_eq!(level(b"\x10"), Ok(None));
        assert_eq!(level(b"\x10\x80\x80"), Ok(None));
        assert_eq!(level(b"\x10\x10\x00\x04MQ"), Ok(None));
        assert_eq!(level(b"\x30\x10"), Err("first_packet_not_connect"));
        assert_eq!(level(b"\x10\xff\xff\xff\xff\x01"), Err("malformed"));
        // MQTT 3.1 ("MQIsdp", level 3) and unknown levels.
        assert_eq!(level(b"\x10\x10\x00\x06MQIsdp\x03"), Err("unsupported_protocol"));
        assert_eq!(level(b"\x10\x10\x00\x04MQTT\x06"), Err("unsupported_protocol"));
    }
}
