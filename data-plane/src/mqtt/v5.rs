//! MQTT 5 answers: precise reason codes in CONNACK, PUBACK, SUBACK, UNSUBACK and DISCONNECT, and the
//! message properties carried into the broker's message.

use std::sync::Arc;

use ntex_bytes::Bytes;
use ntex_mqtt::{Control, Reason, v5};

use super::{HandlerError, MAX_FILTERS_PER_PACKET, St, peer};
use crate::conn::sink::{Sink, ntex_qos, qos_of};
use crate::conn::{self, ConnectInfo, ConnectRefusal, Inbound, Refusal, Will};
use crate::core::Broker;
use crate::core::subscriptions::{RetainHandling, SubOptions};
use crate::message::{Message, Properties};
use crate::metrics::{self, Packet};

/// The keep-alive told to MQTT 5 clients that ask for none (seconds).
const SERVER_KEEP_ALIVE: u16 = 600;

impl TryFrom<HandlerError> for v5::PublishAck {
    type Error = HandlerError;
    fn try_from(err: HandlerError) -> Result<Self, Self::Error> {
        Err(err)
    }
}

/// The properties of a received PUBLISH (or will) as the broker's message keeps them; the expiry
/// interval becomes an absolute deadline, counted from now.
fn properties(
    user: &v5::codec::UserProperties,
    utf8: bool,
    content_type: Option<&ntex_bytes::ByteString>,
    response_topic: Option<&ntex_bytes::ByteString>,
    correlation: Option<&Bytes>,
    expiry_secs: Option<u32>,
) -> Properties {
    // Copies: a slice would keep the connection's read buffer alive as long as the message lives.
    let own = |s: &ntex_bytes::ByteString| ntex_bytes::ByteString::from(s.as_str().to_owned());
    Properties {
        user: user.iter().map(|(k, v)| (own(k), own(v))).collect(),
        utf8_payload: utf8,
        content_type: content_type.map(own),
        response_topic: response_topic.map(own),
        correlation_data: correlation.map(|c| Bytes::copy_from_slice(c)),
        expires_at_ms: expiry_secs.map(Properties::deadline),
    }
}

pub async fn connect(broker: &Arc<Broker>, dev: bool, msg: v5::Connect) -> Result<v5::ConnectAck<St>, HandlerError> {
    let pkt = msg.packet();
    // Enhanced authentication (AUTH) is not offered: a client that asks for a method is refused
    // and the connection closed (MQTT 5, 4.12).
    if pkt.auth_method.is_some() {
        metrics::auth_failure("auth_method");
        tracing::info!(client_id = %pkt.client_id, "connect refused: enhanced authentication is not supported");
        return Ok(msg.failed(v5::codec::ConnectAckReason::BadAuthenticationMethod));
    }
    let will = pkt.last_will.as_ref().map(|w| {
        let props = properties(
            &w.user_properties,
            w.is_utf8_payload.unwrap_or(false),
            w.content_type.as_ref(),
            w.response_topic.as_ref(),
            w.correlation_data.as_ref(),
            None,
        );
        Will {
            msg: Message::copied(&w.topic, &w.message, qos_of(w.qos), w.retain).with_props(props),
            delay_secs: w.will_delay_interval_sec.unwrap_or(0),
            expiry_secs: w.message_expiry_interval.map(|e| e.get()),
        }
    });
    let info = ConnectInfo {
        client_id: pkt.client_id.to_string(),
        username: pkt.username.as_ref().map(|u| u.to_string()),
        password: pkt.password.as_ref().map(|p| p.to_vec()).unwrap_or_default(),
        clean_start: pkt.clean_start,
        // With an interval of 0 the session ends with the connection: kept as persistent with a zero
        // expiry, so that a resumed session still delivers its stored messages on this connection.
        persistent: !(pkt.clean_start && pkt.session_expiry_interval_secs == 0),
        // 0xFFFFFFFF means the session does not expire (MQTT 5, 3.1.2.11.2).
        session_expiry_secs: Some(pkt.session_expiry_interval_secs).filter(|s| *s != u32::MAX),
        will,
        peer: peer(msg.io()),
        receive_max: pkt.receive_max.map_or(u16::MAX, |r| r.get()),
        max_packet_size: pkt.max_packet_size.map(|m| m.get()),
        topic_alias_max: pkt.topic_alias_max,
    };
    let keep_alive = pkt.keep_alive;
    let code = match conn::connect(broker, dev, info, Sink::V5(msg.sink())).await {
        Ok(c) => {
            // ntex-mqtt owns this connection's task: the delivery runs in one of its own.
            ntex::rt::spawn(c.delivery.run());
            let assigned = c.assigned_client_id.map(ntex_bytes::ByteString::from);
            let ack = msg.ack(c.conn);
            // A client that turns keep-alive off is told the server's: silent connections do not
            // stay forever.
            let ack = if keep_alive == 0 {
                ack.keep_alive(super::idle_timeout(SERVER_KEEP_ALIVE).0)
            } else {
                ack
            };
            return Ok(ack.with(|a| {
                a.session_present = c.session_present;
                a.assigned_client_id = assigned;
                if keep_alive == 0 {
                    a.server_keepalive_sec = Some(SERVER_KEEP_ALIVE);
                }
            }));
        }
        Err(ConnectRefusal::NotAuthorized) => v5::codec::ConnectAckReason::NotAuthorized,
        Err(ConnectRefusal::IdentifierRejected) => v5::codec::ConnectAckReason::ClientIdentifierNotValid,
        Err(ConnectRefusal::QuotaExceeded) => v5::codec::ConnectAckReason::QuotaExceeded,
        Err(ConnectRefusal::Unavailable) => v5::codec::ConnectAckReason::ServerUnavailable,
    };
    Ok(msg.failed(code))
}

pub async fn publish(ses: &v5::Session<St>, p: v5::Publish) -> Result<v5::PublishAck, HandlerError> {
    let turn = ses.publish_turn();
    let payload: Bytes = p.read_all().await.map_err(|_| HandlerError::Payload)?;
    let pkt = p.packet();
    let pp = &pkt.properties;
    let inbound = Inbound {
        topic: pkt.topic.clone(),
        payload,
        qos: qos_of(p.qos()),
        retain: p.retain(),
        props: Some(properties(
            &pp.user_properties,
            pp.is_utf8_payload,
            pp.content_type.as_ref(),
            pp.response_topic.as_ref(),
            pp.correlation_data.as_ref(),
            pp.message_expiry_interval.map(|e| e.get()),
        ))
        .filter(|p| !p.is_empty())
        .map(Box::new),
    };
    use v5::codec::PublishAckReason as R;
    match ses.on_publish(inbound, turn).await {
        Ok(()) => Ok(p.ack()),
        Err(Refusal::TooLarge) => Err(HandlerError::Refused(Refusal::TooLarge)),
        Err(Refusal::NotAuthorized) => Ok(p.ack().reason_code(R::NotAuthorized)),
        Err(Refusal::TopicInvalid) => Ok(p.ack().reason_code(R::TopicNameInvalid)),
        Err(Refusal::Quota) => Ok(p.ack().reason_code(R::QuotaExceeded)),
        Err(Refusal::Unavailable) => Ok(p.ack().reason_code(R::UnspecifiedError)),
    }
}

pub async fn protocol(ses: &v5::Session<St>, msg: v5::ProtocolMessage) -> Result<v5::ProtocolMessageAck, HandlerError> {
    use v5::codec::SubscribeAckReason as R;
    Ok(match msg {
        v5::ProtocolMessage::Subscribe(mut s) => {
            let id = s.packet().id;
            for (n, mut sub) in s.iter_mut().enumerate() {
                if n >= MAX_FILTERS_PER_PACKET {
                    metrics::refused(Packet::Subscribe, "too_many_filters");
                    sub.fail(R::QuotaExceeded);
                    continue;
                }
                let o = *sub.options();
                let opts = SubOptions {
                    qos: qos_of(o.qos),
                    no_local: o.no_local,
                    retain_as_published: o.retain_as_published,
                    retain_handling: RetainHandling::from_level(o.retain_handling as u8),
                    id,
                };
                match ses.on_subscribe(sub.topic(), opts).await {
                    Ok(q) => sub.confirm(ntex_qos(q)),
                    Err(Refusal::NotAuthorized) => sub.fail(R::NotAuthorized),
                    Err(Refusal::Quota) => sub.fail(R::QuotaExceeded),
                    Err(Refusal::Unavailable) => sub.fail(R::UnspecifiedError),
                    Err(_) => sub.fail(R::TopicFilterInvalid),
                }
            }
            s.ack()
        }
        v5::ProtocolMessage::Unsubscribe(mut u) => {
            for (n, mut item) in u.iter_mut().enumerate() {
                if n >= MAX_FILTERS_PER_PACKET {
                    metrics::refused(Packet::Unsubscribe, "too_many_filters");
                    item.fail(v5::codec::UnsubscribeAckReason::UnspecifiedError);
                } else if ses.on_unsubscribe(item.topic()).await {
                    item.success();
                } else {
                    item.fail(v5::codec::UnsubscribeAckReason::NoSubscriptionExisted);
                }
            }
            u.ack()
        }
        v5::ProtocolMessage::Disconnect(d) => {
            // Reason 0x04 asks for the will message to be sent anyway.
            let with_will = d.packet().reason_code == v5::codec::DisconnectReasonCode::DisconnectWithWillMessage;
            ses.on_disconnect_packet(with_will);
            d.ack()
        }
        other => other.ack(),
    })
}

pub async fn control(
    ses: &v5::Session<St>,
    ctl: Control<HandlerError>,
) -> Result<Option<v5::codec::Encoded>, HandlerError> {
    use v5::codec::DisconnectReasonCode as D;
    if let Control::Stop(reason) = &ctl {
        ses.ctx.note_close(super::stop_reason(reason));
    }
    let reason = match ctl {
        Control::WrBackpressure(w) => {
            ses.ctx.set_write_blocked(w.enabled());
            return Ok(None);
        }
        Control::Stop(Reason::Error(e)) => match e.get_ref() {
            HandlerError::Refused(Refusal::TooLarge) => D::PacketTooLarge,
            HandlerError::Refused(_) => D::NotAuthorized,
            HandlerError::Payload => D::UnspecifiedError,
        },
        _ => return Ok(None),
    };
    Ok(Some(
        v5::codec::Packet::from(v5::codec::Disconnect {
            reason_code: reason,
            ..Default::default()
        })
        .into(),
    ))
}
