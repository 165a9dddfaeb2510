//! MQTT 3.1.1 connections on a connection loop of our own: one task per connection reads packets
//! with ntex-mqtt's v3 codec straight off ntex's `Io`, hands them to `conn`, and answers. No
//! ntex-mqtt server pipeline sits in between (its services, readiness futures and dispatcher held
//! about 7 KB per idle connection; see BENCHMARKS.md). Answers *(compat)*: CONNACK return codes, a
//! refused PUBLISH or unauthorized SUBSCRIBE closes the connection, a filter over a quota gets
//! SUBACK 0x80.

use std::collections::{BTreeSet, VecDeque};
use std::num::NonZeroU16;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use ntex::io::{IoBoxed, RecvError};
use ntex::util::Either;
use ntex_bytes::{ByteString, Bytes, BytesMut};
use ntex_mqtt::v3::codec::{
    Codec, ConnectAck, ConnectAckReason, Decoded, LastWill, Packet, Publish, SubscribeReturnCode,
};

use super::{MAX_FILTERS_PER_PACKET, peer};
use crate::conn::sink::{Sink, ntex_qos, qos_of};
use crate::conn::wire3::Wire3;
use crate::conn::{self, Conn, ConnectInfo, ConnectRefusal, Inbound, Refusal, Will};
use crate::core::Broker;
use crate::core::subscriptions::SubOptions;
use crate::events::CloseReason;
use crate::message::Message;
use crate::metrics::{self, Packet as Counted};

/// What every MQTT 3.1.1 connection of a listener may do.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest packet (remaining length) read or written; larger ones end the connection.
    pub max_frame: u32,
    /// PUBLISHes of one client being routed at once; the connection reads no further meanwhile.
    pub max_inflight: u16,
}

/// Serves one MQTT 3.1.1 connection from its CONNECT to its end.
/// `connect_within`: what is left of the connect timeout for the rest of the CONNECT.
pub async fn serve(broker: Arc<Broker>, dev: bool, limits: Limits, io: IoBoxed, connect_within: Duration) {
    let wire = {
        let codec = Codec::new();
        codec.set_max_size(limits.max_frame);
        Rc::new(Wire3::new(io.get_ref(), codec))
    };
    // In a scope of its own: what the read returned is not kept for the life of the connection.
    let connect = match ntex::time::timeout_checked(connect_within, io.recv(&wire.codec)).await {
        // Unboxed here: a box emptied by a move would be freed only when this function ends.
        Ok(Ok(Some(Decoded::Packet(Packet::Connect(connect), _)))) => *connect,
        // The entry saw a CONNECT's first bytes, so this cannot be another packet; the arm is
        // here for completeness.
        Ok(Ok(Some(_))) => return super::refuse_connection(&io, "first_packet_not_connect", "").await,
        Ok(Err(Either::Left(e))) => return super::refuse_connection(&io, "malformed", &e.to_string()).await,
        // Silent past the connect timeout, or gone.
        Err(()) | Ok(Ok(None) | Err(Either::Right(_))) => return,
    };
    // Boxed: authentication and session set-up are large futures, finished before the loop runs.
    let Some((conn, keep_alive, delivery)) = Box::pin(accept(&broker, dev, &io, &wire, connect)).await else {
        let _ = io.shutdown().await;
        return;
    };
    let session = Session {
        conn,
        io,
        wire,
        routing: Routing::default(),
        partial: None,
        awaiting_release: BTreeSet::new(),
        max_inflight: usize::from(limits.max_inflight.max(1)),
        keep_alive: super::idle_timeout(keep_alive),
    };
    // One task per connection: the loop and the delivery run side by side in it (a task of its
    // own for the delivery would cost about 200 bytes more, and a cross-task wake-up per ack).
    futures_util::future::join(session.run(), delivery.run()).await;
}

/// Authenticates the CONNECT and writes the CONNACK; the session's connection, keep-alive and
/// delivery when accepted.
async fn accept(
    broker: &Arc<Broker>,
    dev: bool,
    io: &IoBoxed,
    wire: &Rc<Wire3>,
    pkt: ntex_mqtt::v3::codec::Connect,
) -> Option<(Rc<Conn>, u16, conn::Delivery)> {
    // Everything kept is copied: a slice of the packet would keep the whole read buffer alive.
    let info = ConnectInfo {
        client_id: pkt.client_id.to_string(),
        username: pkt.username.as_ref().map(|u| u.to_string()),
        password: pkt.password.as_ref().map(|p| p.to_vec()).unwrap_or_default(),
        clean_start: pkt.clean_session,
        persistent: !pkt.clean_session,
        session_expiry_secs: None,
        will: pkt.last_will.as_ref().map(will),
        peer: peer(io),
        receive_max: u16::MAX,
        max_packet_size: None,
        topic_alias_max: 0,
    };
    let refuse = |code| {
        wire.write(Packet::ConnectAck(ConnectAck {
            session_present: false,
            return_code: code,
        }));
        None
    };
    // MQTT 3.1.1 (3.1.3-8): an empty client ID needs a clean session.
    if info.client_id.is_empty() && !info.clean_start {
        return refuse(ConnectAckReason::IdentifierRejected);
    }
    match conn::connect(broker, dev, info, Sink::V3(wire.clone())).await {
        Ok(c) => {
            wire.write(Packet::ConnectAck(ConnectAck {
                session_present: c.session_present,
                return_code: ConnectAckReason::ConnectionAccepted,
            }));
            wire.accepted();
            Some((c.conn, pkt.keep_alive, c.delivery))
        }
        Err(ConnectRefusal::NotAuthorized) => refuse(ConnectAckReason::NotAuthorized),
        Err(ConnectRefusal::IdentifierRejected) => refuse(ConnectAckReason::IdentifierRejected),
        Err(ConnectRefusal::QuotaExceeded | ConnectRefusal::Unavailable) => {
            refuse(ConnectAckReason::ServiceUnavailable)
        }
    }
}

fn will(w: &LastWill) -> Will {
    Will {
        msg: Message::copied(&w.topic, &w.message, qos_of(w.qos), w.retain),
        delay_secs: 0,
        expiry_secs: None,
    }
}

/// A PUBLISH routed (or refused), waiting for its turn to be acknowledged.
struct Routed {
    qos: ntex_mqtt::QoS,
    packet_id: Option<NonZeroU16>,
    result: Result<(), Refusal>,
}

/// PUBLISHes being routed, oldest first: MQTT wants their acknowledgements in this order. A
/// plain queue polled whole (it holds at most `max_inflight`, and a route usually finishes on its
/// first poll), which allocates nothing while empty, unlike `FuturesOrdered`.
#[derive(Default)]
struct Routing(VecDeque<Route>);

enum Route {
    Going(LocalBoxFuture<'static, Routed>),
    Done(Routed),
}

impl Routing {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn push(&mut self, route: LocalBoxFuture<'static, Routed>) {
        self.0.push_back(Route::Going(route));
    }

    /// The oldest route once it and every route before it finished.
    fn poll_next(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Routed> {
        for route in self.0.iter_mut() {
            if let Route::Going(f) = route
                && let Poll::Ready(r) = f.as_mut().poll(cx)
            {
                *route = Route::Done(r);
            }
        }
        match self.0.front() {
            Some(Route::Done(_)) => match self.0.pop_front() {
                Some(Route::Done(r)) => Poll::Ready(r),
                _ => unreachable!("the front was checked"),
            },
            _ => Poll::Pending,
        }
    }
}

/// The answer to a packet that had to wait for the broker (SUBSCRIBE, UNSUBSCRIBE).
type Later = LocalBoxFuture<'static, Result<Packet, CloseReason>>;

/// What the loop wakes up for.
enum Event {
    Packet(Decoded),
    Routed(Routed),
    End(CloseReason),
}

/// An accepted connection's loop state.
struct Session {
    conn: Rc<Conn>,
    io: IoBoxed,
    wire: Rc<Wire3>,
    routing: Routing,
    /// A PUBLISH whose payload is still arriving (at most the codec's frame limit; boxed, as rare).
    partial: Option<Box<(Publish, BytesMut)>>,
    /// QoS 2 packet ids routed and answered with PUBREC, until their PUBREL (bounded by the id space).
    awaiting_release: BTreeSet<u16>,
    max_inflight: usize,
    keep_alive: ntex::time::Seconds,
}

impl Session {
    /// An `async move` block rather than an `async fn`, which would keep `self` twice in the
    /// connection's future.
    #[expect(clippy::manual_async_fn, reason = "an async fn would hold its arguments twice")]
    fn run(mut self) -> impl std::future::Future<Output = ()> {
        async move {
            self.reset_keep_alive();
            let reason = loop {
                let step = match self.next_event().await {
                    Event::Packet(d) => {
                        self.reset_keep_alive();
                        match self.on_packet(d) {
                            Ok(Some(later)) => later.await.and_then(|answer| self.answer(answer)),
                            Ok(None) => Ok(()),
                            Err(reason) => Err(reason),
                        }
                    }
                    Event::Routed(r) => self.on_routed(r),
                    Event::End(reason) => Err(reason),
                };
                if let Err(reason) = step {
                    break reason;
                }
            };
            self.conn.ctx.note_close(reason);
            // Routes under way end with the connection, as they would with its handlers.
            drop(std::mem::take(&mut self.routing));
            let _ = self.io.shutdown().await;
            self.wire.wake();
        }
    }

    /// Anything the client sends keeps the connection alive for another 1.5 keep-alives.
    fn reset_keep_alive(&self) {
        if !self.keep_alive.is_zero() {
            self.io.start_timer(self.keep_alive);
        }
    }

    /// The next packet, finished route or end of the connection. Reading pauses while
    /// `max_inflight` PUBLISHes are being routed, and while the client does not read what was
    /// written to it (write back-pressure, which deliveries see too).
    async fn next_event(&mut self) -> Event {
        std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = self.routing.poll_next(cx) {
                return Poll::Ready(Event::Routed(r));
            }
            if self.routing.len() >= self.max_inflight {
                return Poll::Pending;
            }
            loop {
                return match self.io.poll_recv(&self.wire.codec, cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Ok(d)) => Poll::Ready(Event::Packet(d)),
                    Poll::Ready(Err(RecvError::WriteBackpressure)) => {
                        self.conn.ctx.set_write_blocked(true);
                        match self.io.poll_flush(cx, false) {
                            Poll::Pending => Poll::Pending,
                            Poll::Ready(Ok(())) => {
                                self.conn.ctx.set_write_blocked(false);
                                self.wire.wake();
                                continue;
                            }
                            Poll::Ready(Err(_)) => Poll::Ready(Event::End(CloseReason::SocketIoException)),
                        }
                    }
                    Poll::Ready(Err(RecvError::KeepAlive)) => Poll::Ready(Event::End(CloseReason::NoHeart)),
                    Poll::Ready(Err(RecvError::Decoder(e))) => {
                        metrics::refused(Counted::Frame, "malformed");
                        tracing::info!(client_id = %self.conn.ctx.client_id, error = %e, "malformed packet: connection closed");
                        Poll::Ready(Event::End(CloseReason::InvalidParam))
                    }
                    Poll::Ready(Err(RecvError::PeerGone(Some(_)))) => {
                        Poll::Ready(Event::End(CloseReason::SocketIoException))
                    }
                    Poll::Ready(Err(RecvError::PeerGone(None))) => Poll::Ready(Event::End(CloseReason::ClosedByClient)),
                };
            }
        })
        .await
    }

    /// Handles a packet; what needs to wait (SUBSCRIBE, UNSUBSCRIBE) comes back as a boxed future
    /// of its answer, so that the loop's own state stays small.
    fn on_packet(&mut self, decoded: Decoded) -> Result<Option<Later>, CloseReason> {
        match decoded {
            Decoded::Publish(p, payload, _) if payload.len() < p.payload_size as usize => {
                self.partial = Some(Box::new((p, BytesMut::from(payload))));
                Ok(None)
            }
            Decoded::Publish(p, payload, _) => self.publish(p, payload).map(|()| None),
            Decoded::PayloadChunk(chunk, eof) => {
                let Some(partial) = self.partial.as_mut() else {
                    return self.violation("unexpected_payload").map(|()| None);
                };
                partial.1.extend_from_slice(&chunk);
                match eof {
                    true => {
                        let (p, buf) = *self.partial.take().expect("checked above");
                        self.publish(p, buf.freeze()).map(|()| None)
                    }
                    false => Ok(None),
                }
            }
            Decoded::Packet(packet, _) => self.on_control(packet),
        }
    }

    fn on_control(&mut self, packet: Packet) -> Result<Option<Later>, CloseReason> {
        let answer = match packet {
            Packet::PublishAck { packet_id } => {
                self.wire.puback(packet_id.get());
                return Ok(None);
            }
            Packet::PublishReceived { packet_id } if self.wire.qos2_step(packet_id.get(), false) => return Ok(None),
            Packet::PublishComplete { packet_id } if self.wire.qos2_step(packet_id.get(), true) => return Ok(None),
            // Answered whether or not the id was awaited (MQTT 3.1.1, 4.3.3: PUBREL may be resent).
            Packet::PublishRelease { packet_id } => {
                self.awaiting_release.remove(&packet_id.get());
                Packet::PublishComplete { packet_id }
            }
            Packet::Subscribe {
                packet_id,
                topic_filters,
            } => {
                let conn = self.conn.clone();
                return Ok(Some(Box::pin(async move {
                    match subscribe(&conn, topic_filters).await {
                        Some(status) => Ok(Packet::SubscribeAck { packet_id, status }),
                        None => Err(CloseReason::ResourceAuthFailed),
                    }
                })));
            }
            Packet::Unsubscribe {
                packet_id,
                topic_filters,
            } => {
                let conn = self.conn.clone();
                return Ok(Some(Box::pin(async move {
                    unsubscribe(&conn, topic_filters).await;
                    Ok(Packet::UnsubscribeAck { packet_id })
                })));
            }
            Packet::PingRequest => Packet::PingResponse,
            Packet::Disconnect => {
                self.conn.on_disconnect_packet(false);
                return Err(CloseReason::DisconnectedByClient);
            }
            // A second CONNECT, a packet only a server sends, an ack of nothing under way.
            _ => return self.violation("unexpected_packet").map(|()| None),
        };
        self.answer(answer).map(|()| None)
    }

    fn answer(&self, packet: Packet) -> Result<(), CloseReason> {
        match self.wire.write(packet) {
            true => Ok(()),
            false => Err(CloseReason::SocketIoException),
        }
    }

    fn violation(&self, reason: &'static str) -> Result<(), CloseReason> {
        metrics::refused(Counted::Frame, reason);
        tracing::info!(client_id = %self.conn.ctx.client_id, reason, "protocol violation: connection closed");
        Err(CloseReason::InvalidParam)
    }

    /// Starts routing a PUBLISH; its turn among the client's PUBLISHes is taken now.
    fn publish(&mut self, p: Publish, payload: Bytes) -> Result<(), CloseReason> {
        if let Some(id) = p.packet_id
            && p.qos == ntex_mqtt::QoS::ExactlyOnce
            && self.awaiting_release.contains(&id.get())
        {
            // A resent QoS 2 PUBLISH already routed: answered again, not routed twice.
            return self.answer(Packet::PublishReceived { packet_id: id });
        }
        let turn = self.conn.publish_turn();
        let conn = self.conn.clone();
        let (qos, packet_id) = (p.qos, p.packet_id);
        let inbound = Inbound {
            topic: p.topic,
            payload,
            qos: qos_of(qos),
            retain: p.retain,
            props: None,
        };
        self.routing.push(Box::pin(async move {
            Routed {
                qos,
                packet_id,
                result: conn.on_publish(inbound, turn).await,
            }
        }));
        Ok(())
    }

    /// Acknowledges a routed PUBLISH; a refused one closes the connection *(compat)*: v3 has no
    /// reason codes.
    fn on_routed(&mut self, r: Routed) -> Result<(), CloseReason> {
        if let Err(refusal) = r.result {
            return Err(match refusal {
                Refusal::NotAuthorized => CloseReason::ResourceAuthFailed,
                _ => CloseReason::InvalidParam,
            });
        }
        let answer = match (r.qos, r.packet_id) {
            (ntex_mqtt::QoS::AtLeastOnce, Some(packet_id)) => Packet::PublishAck { packet_id },
            (ntex_mqtt::QoS::ExactlyOnce, Some(packet_id)) => {
                self.awaiting_release.insert(packet_id.get());
                Packet::PublishReceived { packet_id }
            }
            _ => return Ok(()),
        };
        self.answer(answer)
    }
}

/// Checks and records a SUBSCRIBE's filters: their SUBACK codes, or None when one is not covered
/// by the client's credentials (the connection closes without a SUBACK *(compat)*, except on the
/// development listener).
async fn subscribe(conn: &Conn, filters: Vec<(ByteString, ntex_mqtt::QoS)>) -> Option<Vec<SubscribeReturnCode>> {
    let open = conn.ctx.credential.borrow().mode == crate::auth::Mode::Open;
    let mut status = Vec::with_capacity(filters.len().min(MAX_FILTERS_PER_PACKET + 1));
    for (n, (filter, qos)) in filters.iter().enumerate() {
        if n >= MAX_FILTERS_PER_PACKET {
            metrics::refused(Counted::Subscribe, "too_many_filters");
            status.push(SubscribeReturnCode::Failure);
            continue;
        }
        let code = match conn.on_subscribe(filter, SubOptions::qos(qos_of(*qos))).await {
            Ok(q) => SubscribeReturnCode::Success(ntex_qos(q)),
            Err(Refusal::NotAuthorized) if !open => {
                conn.ctx.note_close(CloseReason::ResourceAuthFailed);
                // A token client may have a `$SYS/tokenInvalidNotice` queued; let it leave first.
                ntex::time::sleep(crate::sys::NOTICE_FLUSH).await;
                return None;
            }
            // Quotas, invalid filters: SUBACK 0x80.
            Err(_) => SubscribeReturnCode::Failure,
        };
        status.push(code);
    }
    Some(status)
}

async fn unsubscribe(conn: &Conn, filters: Vec<ByteString>) {
    for (n, filter) in filters.iter().enumerate() {
        if n >= MAX_FILTERS_PER_PACKET {
            metrics::refused(Counted::Unsubscribe, "too_many_filters");
            break;
        }
        conn.on_unsubscribe(filter).await;
    }
}
