//! The ntex-mqtt glue: one service per listener speaking v3.1.1 (`v3`) and v5 (`v5`), whose
//! handlers delegate to `conn` and translate its outcomes into each version's wire answers.

pub mod v3;
pub mod v5;

use std::rc::Rc;

use ntex::io::types::PeerAddr;

use crate::conn::{Conn, Refusal};
use crate::events::CloseReason;

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

/// Topic filters one SUBSCRIBE or UNSUBSCRIBE may carry: those beyond are refused (SUBACK failure,
/// UNSUBACK failure on MQTT 5, ignored on MQTT 3.1.1) and counted.
pub const MAX_FILTERS_PER_PACKET: usize = 100;

/// Idle time before a silent connection is closed, for a client keep-alive of `secs` (MQTT:
/// one and a half times it; 0 turns keep-alive off).
fn idle_timeout(secs: u16) -> ntex::time::Seconds {
    ntex::time::Seconds(secs.saturating_add(secs / 2))
}

/// The session state ntex-mqtt keeps per connection.
pub type St = Rc<Conn>;

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
            std::sync::Arc<crate::core::Broker>,
            std::sync::Arc<crate::core::Broker>,
            bool,
        ) = ($broker.clone(), $broker.clone(), $dev);
        ntex_mqtt::MqttServer::new()
            .v3(ntex_mqtt::v3::MqttServer::new(crate::mqtt::v3::publish)
                .protocol(crate::mqtt::v3::protocol)
                .control(crate::mqtt::v3::control)
                .build(async move |msg: ntex_mqtt::v3::Connect| crate::mqtt::v3::connect(&b3, dev, msg).await))
            .v5(ntex_mqtt::v5::MqttServer::new(crate::mqtt::v5::publish)
                .protocol(crate::mqtt::v5::protocol)
                .control(crate::mqtt::v5::control)
                .build(async move |msg: ntex_mqtt::v5::Connect| crate::mqtt::v5::connect(&b5, dev, msg).await))
    }};
}
pub(crate) use mqtt_service;

/// What ended the connection as the protocol side saw it, for the `tcpclean` event's reason.
fn stop_reason(reason: &ntex_mqtt::Reason<HandlerError>) -> CloseReason {
    use ntex_mqtt::Reason;
    use ntex_mqtt::error::MqttProtocolError as P;
    match reason {
        Reason::Error(e) => match e.get_ref() {
            HandlerError::Refused(Refusal::NotAuthorized) => CloseReason::ResourceAuthFailed,
            HandlerError::Refused(_) | HandlerError::Payload => CloseReason::InvalidParam,
        },
        Reason::Protocol(p) => match p.get_ref() {
            P::KeepAliveTimeout | P::ReadTimeout => CloseReason::NoHeart,
            _ => CloseReason::InvalidParam,
        },
        Reason::PeerGone(gone) if gone.err().is_some() => CloseReason::SocketIoException,
        Reason::PeerGone(_) => CloseReason::ClosedByClient,
    }
}
