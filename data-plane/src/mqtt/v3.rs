//! MQTT 3.1.1 answers: CONNACK return codes, a refused PUBLISH or unauthorized SUBSCRIBE closes the
//! connection *(compat)*, a filter over a quota gets SUBACK 0x80.

use std::sync::Arc;

use ntex_bytes::Bytes;
use ntex_mqtt::{Control, v3};

use super::{HandlerError, MAX_FILTERS_PER_PACKET, St, peer};
use crate::conn::sink::{Sink, ntex_qos, qos_of};
use crate::conn::{self, ConnectInfo, ConnectRefusal, Inbound, Refusal, Will};
use crate::core::Broker;
use crate::core::subscriptions::SubOptions;
use crate::message::Message;
use crate::metrics::{self, Packet};

pub async fn connect(broker: &Arc<Broker>, dev: bool, msg: v3::Connect) -> Result<v3::ConnectAck<St>, HandlerError> {
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
            msg: Message::new(
                w.topic.to_string(),
                Bytes::copy_from_slice(&w.message),
                qos_of(w.qos),
                w.retain,
            ),
            delay_secs: 0,
            expiry_secs: None,
        }),
        peer: peer(msg.io()),
        receive_max: u16::MAX,
        max_packet_size: None,
        topic_alias_max: 0,
    };
    // MQTT 3.1.1 (3.1.3-8): an empty client ID needs a clean session.
    if info.client_id.is_empty() && !info.clean_start {
        return Ok(msg.identifier_rejected());
    }
    let keep_alive = pkt.keep_alive;
    match conn::connect(broker, dev, info, Sink::V3(msg.sink())).await {
        Ok(c) => Ok(msg
            .ack(c.conn, c.session_present)
            .idle_timeout(super::idle_timeout(keep_alive))),
        Err(ConnectRefusal::NotAuthorized) => Ok(msg.not_authorized()),
        Err(ConnectRefusal::IdentifierRejected) => Ok(msg.identifier_rejected()),
        Err(ConnectRefusal::QuotaExceeded | ConnectRefusal::Unavailable) => Ok(msg.service_unavailable()),
    }
}

pub async fn publish(ses: &v3::Session<St>, p: v3::Publish) -> Result<(), HandlerError> {
    let turn = ses.publish_turn();
    let payload: Bytes = p.read_all().await.map_err(|_| HandlerError::Payload)?;
    let inbound = Inbound {
        topic: p.packet().topic.clone(),
        payload,
        qos: qos_of(p.qos()),
        retain: p.retain(),
        props: None,
    };
    // v3 has no reason codes: a refused publish closes the connection *(compat)*.
    ses.on_publish(inbound, turn).await.map_err(HandlerError::Refused)
}

pub async fn protocol(
    ses: &v3::Session<St>,
    mut msg: v3::ProtocolMessage,
) -> Result<v3::ProtocolMessageAck, HandlerError> {
    let mut refuse = false;
    let open = ses.ctx.credential.borrow().mode == crate::auth::Mode::Open;
    match &mut msg {
        v3::ProtocolMessage::Subscribe(s) => {
            for (n, mut sub) in s.iter_mut().enumerate() {
                if n >= MAX_FILTERS_PER_PACKET {
                    metrics::refused(Packet::Subscribe, "too_many_filters");
                    sub.fail();
                    continue;
                }
                let opts = SubOptions::qos(qos_of(sub.qos()));
                match ses.on_subscribe(sub.topic(), opts).await {
                    Ok(q) => sub.confirm(ntex_qos(q)),
                    // Unknown parent topic / not covered: disconnect *(compat)*, except on the
                    // development listener (plain MQTT); quotas: SUBACK 0x80.
                    Err(Refusal::NotAuthorized) if !open => refuse = true,
                    Err(_) => sub.fail(),
                }
            }
        }
        v3::ProtocolMessage::Unsubscribe(u) => {
            for (n, filter) in u.iter().enumerate() {
                if n >= MAX_FILTERS_PER_PACKET {
                    metrics::refused(Packet::Unsubscribe, "too_many_filters");
                    break;
                }
                ses.on_unsubscribe(filter).await;
            }
        }
        v3::ProtocolMessage::Disconnect(_) => ses.on_disconnect_packet(false),
        _ => {}
    }
    if refuse {
        ses.ctx.note_close(crate::events::CloseReason::ResourceAuthFailed);
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

/// Write back-pressure reaches the connection; v3 has nothing to send on a stop (handling it keeps
/// ntex-mqtt from warning on every close).
pub async fn control(
    ses: &v3::Session<St>,
    ctl: Control<HandlerError>,
) -> Result<Option<v3::codec::Encoded>, HandlerError> {
    match ctl {
        Control::WrBackpressure(w) => ses.ctx.set_write_blocked(w.enabled()),
        Control::Stop(reason) => ses.ctx.note_close(super::stop_reason(&reason)),
    }
    Ok(None)
}
