//! The ntex-mqtt glue: one TCP service speaking v3.1.1 and v5, whose handlers delegate to `Conn`
//! and translate its outcomes into each version's wire answers (SPEC 3.2, 3.3, 3.6).

use std::rc::Rc;
use std::sync::Arc;

use ntex::io::types::PeerAddr;
use ntex_bytes::Bytes;
use ntex_mqtt::{Control, QoS, Reason, v3, v5};

use crate::broker::Broker;
use crate::conn::{self, Conn, ConnectInfo, ConnectRefusal, Refusal, Will};
use crate::sink::Sink;

/// Error of our handlers: makes ntex-mqtt close the connection (v3) or send DISCONNECT (v5).
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub enum HandlerError {
    #[error("refused: {0:?}")]
    Refused(Refusal),
    #[error("payload could not be read")]
    Payload,
}

impl From<()> for HandlerError {
    fn from(_: ()) -> Self {
        HandlerError::Payload
    }
}

impl TryFrom<HandlerError> for v5::PublishAck {
    type Error = HandlerError;
    fn try_from(err: HandlerError) -> Result<Self, Self::Error> {
        Err(err)
    }
}

type St = Rc<Conn>;

fn qos_u8(q: QoS) -> u8 {
    match q {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => 1,
        QoS::ExactlyOnce => 2,
    }
}

fn qos_of(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn peer(io: &ntex::io::IoBoxed) -> String {
    io.query::<PeerAddr>()
        .get()
        .map(|p| p.0.to_string())
        .unwrap_or_default()
}

/// The MQTT service of one listener (`dev` = authentication off). A macro because the
/// composed ntex service type cannot be named.
macro_rules! mqtt_service {
    ($broker:expr, $dev:expr) => {{
        let (b3, b5, dev): (
            std::sync::Arc<crate::broker::Broker>,
            std::sync::Arc<crate::broker::Broker>,
            bool,
        ) = ($broker.clone(), $broker.clone(), $dev);
        ntex_mqtt::MqttServer::new()
            .v3(ntex_mqtt::v3::MqttServer::new(crate::mqtt::publish_v3)
                .protocol(crate::mqtt::protocol_v3)
                .control(crate::mqtt::control_v3)
                .build(async move |msg: ntex_mqtt::v3::Connect| crate::mqtt::connect_v3(&b3, dev, msg)))
            .v5(ntex_mqtt::v5::MqttServer::new(crate::mqtt::publish_v5)
                .protocol(crate::mqtt::protocol_v5)
                .control(crate::mqtt::control_v5)
                .build(async move |msg: ntex_mqtt::v5::Connect| crate::mqtt::connect_v5(&b5, dev, msg)))
    }};
}
pub(crate) use mqtt_service;

pub fn connect_v3(broker: &Arc<Broker>, dev: bool, msg: v3::Connect) -> Result<v3::ConnectAck<St>, HandlerError> {
    let pkt = msg.packet();
    // Everything kept is copied: a slice of the packet would keep the whole read buffer alive.
    let info = ConnectInfo {
        client_id: pkt.client_id.to_string(),
        username: pkt.username.as_ref().map(|u| u.to_string()),
        password: pkt.password.as_ref().map(|p| p.to_vec()).unwrap_or_default(),
        clean_start: pkt.clean_session,
        persistent: !pkt.clean_session,
        session_expiry_secs: None,
        will: pkt.last_will.as_ref().map(|w| Will {
            topic: w.topic.to_string(),
            payload: Bytes::copy_from_slice(&w.message),
            qos: qos_u8(w.qos),
            retain: w.retain,
            delay_secs: 0,
        }),
        peer: peer(msg.io()),
        receive_max: u16::MAX,
    };
    match conn::connect(broker, dev, info, Sink::V3(msg.sink())) {
        Ok((conn, present)) => Ok(msg.ack(conn, present)),
        Err(ConnectRefusal::NotAuthorized) => Ok(msg.not_authorized()),
        Err(ConnectRefusal::IdentifierRejected) => Ok(msg.identifier_rejected()),
        Err(ConnectRefusal::QuotaExceeded) => Ok(msg.service_unavailable()),
    }
}

pub fn connect_v5(broker: &Arc<Broker>, dev: bool, msg: v5::Connect) -> Result<v5::ConnectAck<St>, HandlerError> {
    let pkt = msg.packet();
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
        will: pkt.last_will.as_ref().map(|w| Will {
            topic: w.topic.to_string(),
            payload: Bytes::copy_from_slice(&w.message),
            qos: qos_u8(w.qos),
            retain: w.retain,
            delay_secs: w.will_delay_interval_sec.unwrap_or(0),
        }),
        peer: peer(msg.io()),
        receive_max: pkt.receive_max.map_or(u16::MAX, |r| r.get()),
    };
    let code = match conn::connect(broker, dev, info, Sink::V5(msg.sink())) {
        Ok((conn, present)) => return Ok(msg.ack(conn).with(|a| a.session_present = present)),
        Err(ConnectRefusal::NotAuthorized) => v5::codec::ConnectAckReason::NotAuthorized,
        Err(ConnectRefusal::IdentifierRejected) => v5::codec::ConnectAckReason::ClientIdentifierNotValid,
        Err(ConnectRefusal::QuotaExceeded) => v5::codec::ConnectAckReason::QuotaExceeded,
    };
    Ok(msg.failed(code))
}

pub async fn publish_v3(ses: &v3::Session<St>, p: v3::Publish) -> Result<(), HandlerError> {
    let payload: Bytes = p.read_all().await.map_err(|_| HandlerError::Payload)?;
    let retain = p.retain();
    ses.on_publish(p.publish_topic(), payload, qos_u8(p.qos()), retain)
        .await
        // v3 has no reason codes: a refused publish closes the connection *(compat)*.
        .map_err(HandlerError::Refused)
}

pub async fn publish_v5(ses: &v5::Session<St>, p: v5::Publish) -> Result<v5::PublishAck, HandlerError> {
    let payload: Bytes = p.read_all().await.map_err(|_| HandlerError::Payload)?;
    let retain = p.retain();
    let topic = p.publish_topic().to_string();
    use v5::codec::PublishAckReason as R;
    match ses.on_publish(&topic, payload, qos_u8(p.qos()), retain).await {
        Ok(()) => Ok(p.ack()),
        Err(Refusal::TooLarge) => Err(HandlerError::Refused(Refusal::TooLarge)),
        Err(Refusal::NotAuthorized) => Ok(p.ack().reason_code(R::NotAuthorized)),
        Err(Refusal::TopicInvalid) => Ok(p.ack().reason_code(R::TopicNameInvalid)),
        Err(Refusal::Quota) => Ok(p.ack().reason_code(R::QuotaExceeded)),
    }
}

pub async fn protocol_v3(
    ses: &v3::Session<St>,
    mut msg: v3::ProtocolMessage,
) -> Result<v3::ProtocolMessageAck, HandlerError> {
    let mut refuse = false;
    match &mut msg {
        v3::ProtocolMessage::Subscribe(s) => {
            for mut sub in s.iter_mut() {
                match ses.on_subscribe(sub.topic(), qos_u8(sub.qos()), false) {
                    Ok(q) => sub.confirm(qos_of(q)),
                    // Unknown parent topic / not covered: disconnect *(compat)*; quotas: SUBACK 0x80.
                    Err(Refusal::NotAuthorized) => refuse = true,
                    Err(_) => sub.fail(),
                }
            }
        }
        v3::ProtocolMessage::Unsubscribe(u) => u.iter().for_each(|f| ses.on_unsubscribe(f)),
        v3::ProtocolMessage::Disconnect(_) => ses.on_disconnect_packet(),
        _ => {}
    }
    if refuse {
        // A token client may have a `$SYS/tokenInvalidNotice` queued; let it leave first.
        ntex::time::sleep(crate::sys::NOTICE_FLUSH).await;
        return Ok(msg.disconnect());
    }
    Ok(match msg {
        v3::ProtocolMessage::Subscribe(s) => s.ack(),
        v3::ProtocolMessage::Unsubscribe(u) => u.ack(),
        other => other.ack(),
    })
}

pub async fn protocol_v5(
    ses: &v5::Session<St>,
    msg: v5::ProtocolMessage,
) -> Result<v5::ProtocolMessageAck, HandlerError> {
    use v5::codec::SubscribeAckReason as R;
    Ok(match msg {
        v5::ProtocolMessage::Subscribe(mut s) => {
            for mut sub in s.iter_mut() {
                let opts = *sub.options();
                match ses.on_subscribe(sub.topic(), qos_u8(opts.qos), opts.no_local) {
                    Ok(q) => sub.confirm(qos_of(q)),
                    Err(Refusal::NotAuthorized) => sub.fail(R::NotAuthorized),
                    Err(Refusal::Quota) => sub.fail(R::QuotaExceeded),
                    Err(_) => sub.fail(R::TopicFilterInvalid),
                }
            }
            s.ack()
        }
        v5::ProtocolMessage::Unsubscribe(mut u) => {
            for mut item in u.iter_mut() {
                ses.on_unsubscribe(item.topic());
                item.success();
            }
            u.ack()
        }
        v5::ProtocolMessage::Disconnect(d) => {
            // Reason 0x04 asks for the will message to be sent anyway.
            if d.packet().reason_code != v5::codec::DisconnectReasonCode::DisconnectWithWillMessage {
                ses.on_disconnect_packet();
            }
            d.ack()
        }
        other => other.ack(),
    })
}

/// v3 has nothing to send on a stop; handling it keeps ntex-mqtt from warning on every close.
pub async fn control_v3(
    _ses: &v3::Session<St>,
    _ctl: Control<HandlerError>,
) -> Result<Option<v3::codec::Encoded>, HandlerError> {
    Ok(None)
}

pub async fn control_v5(
    _ses: &v5::Session<St>,
    ctl: Control<HandlerError>,
) -> Result<Option<v5::codec::Encoded>, HandlerError> {
    use v5::codec::DisconnectReasonCode as D;
    let reason = match ctl {
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
