//! The writing half of an MQTT 3.1.1 connection served by our own connection loop
//! (`mqtt::v3`): packets encoded straight onto the connection's `Io` with ntex-mqtt's codec, and
//! the PUBACK / PUBREC / PUBCOMP the loop reads handed over to the connection's delivery task,
//! the one task that ever waits here.

use std::cell::{Cell, RefCell};
use std::num::NonZeroU16;
use std::task::Poll;

use ntex::io::IoRef;
use ntex::task::LocalWaker;
use ntex_bytes::{ByteString, Bytes};
use ntex_mqtt::v3::codec::{Codec, Encoded, Packet, Publish};

/// Where the one outbound QoS 2 exchange stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// PUBLISH written, PUBREC awaited.
    Received(u16),
    /// PUBREL written, PUBCOMP awaited.
    Completed(u16),
    /// The step awaited arrived.
    Done,
}

/// Told of each PUBACK: (packet id, connection lost).
type AckCallback = Box<dyn Fn(u16, bool)>;

pub struct Wire3 {
    io: IoRef,
    /// The connection's codec: the loop decodes with it, deliveries encode with it.
    pub codec: Codec,
    /// CONNACK is written: deliveries may follow.
    accepted: Cell<bool>,
    on_ack: RefCell<Option<AckCallback>>,
    qos2: Cell<Option<Step>>,
    /// The delivery task, waiting for the CONNACK, write room or a QoS 2 step.
    waiter: LocalWaker,
}

impl Wire3 {
    pub fn new(io: IoRef, codec: Codec) -> Self {
        Self {
            io,
            codec,
            accepted: Cell::new(false),
            on_ack: RefCell::new(None),
            qos2: Cell::new(None),
            waiter: LocalWaker::new(),
        }
    }

    // ---- the loop's side

    /// Writes a packet of the loop's own (acks, CONNACK, PINGRESP); false when the connection is gone.
    pub fn write(&self, packet: Packet) -> bool {
        self.io.encode(Encoded::Packet(packet), &self.codec).is_ok() && !self.io.is_closed()
    }

    /// The CONNACK of an accepted connection is written: deliveries may start.
    pub fn accepted(&self) {
        self.accepted.set(true);
        self.waiter.wake();
    }

    /// Something the delivery task may wait for changed (write room, the connection's end).
    pub fn wake(&self) {
        self.waiter.wake();
    }

    /// PUBACK for a QoS 1 delivery.
    pub fn puback(&self, id: u16) {
        if let Some(f) = self.on_ack.borrow().as_ref() {
            f(id, false);
        }
    }

    /// PUBREC (`completed` false) or PUBCOMP (true) of the QoS 2 delivery under way; false when
    /// none was awaited with this packet id (a protocol error of the client).
    pub fn qos2_step(&self, id: u16, completed: bool) -> bool {
        let expected = match self.qos2.get() {
            Some(Step::Received(i)) => i == id && !completed,
            Some(Step::Completed(i)) => i == id && completed,
            _ => false,
        };
        if expected {
            self.qos2.set(Some(Step::Done));
            self.waiter.wake();
        }
        expected
    }

    // ---- the delivery task's side (through `Sink`)

    pub fn is_open(&self) -> bool {
        !self.io.is_closed()
    }

    /// Waits for the CONNACK and for write room; false when the connection is gone.
    pub async fn ready(&self) -> bool {
        std::future::poll_fn(|cx| {
            if self.io.is_closed() {
                return Poll::Ready(false);
            }
            if self.accepted.get() && !self.io.is_wr_backpressure() {
                return Poll::Ready(true);
            }
            self.waiter.register(cx.waker());
            Poll::Pending
        })
        .await
    }

    pub fn on_ack(&self, f: impl Fn(u16, bool) + 'static) {
        *self.on_ack.borrow_mut() = Some(Box::new(f));
    }

    /// Writes a PUBLISH (`id` 0 for QoS 0); false when the connection is gone or the packet is
    /// larger than the codec allows.
    pub fn publish(
        &self,
        topic: ByteString,
        payload: Bytes,
        qos: ntex_mqtt::QoS,
        retain: bool,
        id: u16,
        dup: bool,
    ) -> bool {
        let publish = Publish {
            dup,
            retain,
            qos,
            topic,
            packet_id: NonZeroU16::new(id),
            payload_size: payload.len() as u32,
        };
        self.io
            .encode(Encoded::Publish(publish, Some(payload)), &self.codec)
            .is_ok()
            && !self.io.is_closed()
    }

    /// Runs a whole QoS 2 exchange (PUBLISH, PUBREC, PUBREL, PUBCOMP) for packet `id`; false when
    /// the connection went away on the way.
    pub async fn exactly_once(&self, topic: ByteString, payload: Bytes, retain: bool, id: u16) -> bool {
        self.qos2.set(Some(Step::Received(id)));
        let done = self.publish(topic, payload, ntex_mqtt::QoS::ExactlyOnce, retain, id, false)
            && self.step_done().await
            && {
                self.qos2.set(Some(Step::Completed(id)));
                self.write(Packet::PublishRelease {
                    packet_id: NonZeroU16::new(id).expect("packet ids are not 0"),
                })
            }
            && self.step_done().await;
        self.qos2.set(None);
        done
    }

    async fn step_done(&self) -> bool {
        std::future::poll_fn(|cx| {
            if self.qos2.get() == Some(Step::Done) {
                return Poll::Ready(true);
            }
            if self.io.is_closed() {
                return Poll::Ready(false);
            }
            self.waiter.register(cx.waker());
            Poll::Pending
        })
        .await
    }

    pub fn close(&self) {
        self.io.close();
        self.waiter.wake();
    }
}
