//! The protocol side of every listener: an accepted connection's CONNECT says its version;
//! MQTT 3.1.1 runs on our own connection loop (`v3`), MQTT 5 on ntex-mqtt's v5 server (`v5`).
//! Both delegate to `conn` and translate its outcomes into each version's wire answers.

mod entry;
pub mod v3;
pub mod v5;

use std::rc::Rc;

use ntex::io::types::PeerAddr;

pub use self::entry::Entry;

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

/// How long a new connection may take to send its CONNECT.
const CONNECT_TIMEOUT: ntex::time::Seconds = ntex::time::Seconds(10);

/// Idle time before a silent connection is closed, for a client keep-alive of `secs` (MQTT:
/// one and a half times it; 0 turns keep-alive off).
fn idle_timeout(secs: u16) -> ntex::time::Seconds {
    ntex::time::Seconds(secs.saturating_add(secs / 2))
}

/// Ends a connection that broke the protocol before it had a session: counted, logged once (with
/// `detail`, when there is one), closed.
async fn refuse_connection(io: &ntex::io::IoBoxed, reason: &'static str, detail: &str) {
    crate::metrics::refused(crate::metrics::Packet::Frame, reason);
    tracing::info!(peer = %peer(io), reason, detail, "connection refused: protocol error");
    let _ = io.shutdown().await;
}

/// The session state ntex-mqtt keeps per MQTT 5 connection.
pub type St = Rc<Conn>;

fn peer(io: &ntex::io::IoBoxed) -> String {
    io.query::<PeerAddr>()
        .get()
        .map(|p| p.0.to_string())
        .unwrap_or_default()
}

/// The entry of one listener (`dev` = authentication off). A macro because the composed ntex
/// service type of the MQTT 5 side cannot be named.
macro_rules! mqtt_entry {
    ($broker:expr, $dev:expr, $limits:expr) => {{
        let (broker, dev): (std::sync::Arc<crate::core::Broker>, bool) = ($broker.clone(), $dev);
        let b5 = broker.clone();
        let v5 = std::rc::Rc::new(ntex::Pipeline::new(
            (),
            ntex_mqtt::MqttServer::new().v5(
                ntex_mqtt::v5::MqttServer::new(crate::mqtt::v5::publish)
                    .protocol(crate::mqtt::v5::protocol)
                    .control(crate::mqtt::v5::control)
                    .build(async move |msg: ntex_mqtt::v5::Connect| crate::mqtt::v5::connect(&b5, dev, msg).await),
            ),
        ));
        crate::mqtt::Entry::new(
            broker,
            dev,
            $limits,
            std::rc::Rc::new(move |io: ntex::io::IoBoxed| {
                let v5 = v5.clone();
                Box::pin(async move {
                    if let Err(e) = v5.call(io).await {
                        tracing::debug!(error = ?e, "mqtt 5 connection ended with an error");
                    }
                }) as std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>
            }),
        )
    }};
}
pub(crate) use mqtt_entry;

/// What ended an MQTT 5 connection as ntex-mqtt saw it, for the `tcpclean` event's reason.
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
