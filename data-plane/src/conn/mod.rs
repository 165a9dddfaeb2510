//! One client connection (lives on its worker, `!Send`): authentication and session at CONNECT
//! (here), the packets it sends (`inbound`), what the broker sends it (`delivery`), and its end
//! (`disconnect`). The v3 and v5 adapters (`mqtt`) translate outcomes into wire reason codes.

mod context;
mod delivery;
mod disconnect;
mod inbound;
mod order;
pub mod sink;
mod window;
pub mod wire3;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use ntex_bytes::ByteString;

pub use self::context::ConnCtx;
use self::context::OutboundAliases;
pub use self::delivery::Delivery;
pub use self::inbound::{Inbound, Refusal};
use self::sink::Sink;
use crate::auth;
use crate::core::mailbox::Mailbox;
use crate::core::sessions::ConnHandle;
use crate::core::{Broker, OpenRefusal, SessionRequest};
use crate::events::{ClientEvent, CloseReason, EventType, new_channel_id};
use crate::message::Message;
use crate::metrics::{self, Packet};

/// A client's will message.
pub struct Will {
    pub msg: Message,
    /// MQTT 5 will delay interval: a reconnect within it cancels the will.
    pub delay_secs: u32,
    /// MQTT 5 message expiry interval, counted from when the will is published.
    pub expiry_secs: Option<u32>,
}

/// What the CONNECT carried, independent of the protocol version.
pub struct ConnectInfo {
    pub client_id: String,
    pub username: Option<String>,
    pub password: Vec<u8>,
    /// Discard any existing session (v3 cleanSession=1, v5 cleanStart=1).
    pub clean_start: bool,
    /// The session outlives the connection (v3 cleanSession=0; v5 unless cleanStart=1 with a session
    /// expiry interval of 0).
    pub persistent: bool,
    /// How long a persistent session outlives the connection (MQTT 5); None: until a clean start.
    pub session_expiry_secs: Option<u32>,
    pub will: Option<Will>,
    pub peer: String,
    pub receive_max: u16,
    pub max_packet_size: Option<u32>,
    /// Topic aliases the client accepts from the broker (MQTT 5).
    pub topic_alias_max: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectRefusal {
    NotAuthorized,
    IdentifierRejected,
    QuotaExceeded,
    /// The broker cannot serve the session now (its store failed).
    Unavailable,
}

/// An accepted connection.
pub struct Connected {
    pub conn: Rc<Conn>,
    pub session_present: bool,
    /// The client ID the broker chose for an empty one (development listener).
    pub assigned_client_id: Option<String>,
    /// What the broker sends the client: the caller runs it (`Delivery::run`) for as long as the
    /// connection lives, in the connection's own task or spawned beside it.
    pub delivery: Delivery,
}

/// The protocol side of a connection: the ntex-mqtt session state.
pub struct Conn {
    pub ctx: Rc<ConnCtx>,
    /// Its delay already capped by the session's lifetime (boxed: most clients have none, and
    /// inline it would make every connection 136 bytes larger).
    will: RefCell<Option<Box<Will>>>,
    /// The client sent DISCONNECT.
    clean_disconnect: Cell<bool>,
    /// A `$SYS/tokenInvalidNotice` was queued: a refusal that closes the connection waits for it.
    notice_pending: Cell<bool>,
    /// The client's PUBLISHes are routed in the order they arrived.
    publish_order: Rc<order::PublishOrder>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        disconnect::finish(self);
    }
}

/// Drives a core future: an embedded part has finished already and the work is done now, in
/// order; a remote one finishes in the background on this worker.
fn drive(fut: impl Future<Output = ()> + 'static) {
    let mut fut = Box::pin(fut);
    let waker = std::task::Waker::noop();
    if fut
        .as_mut()
        .poll(&mut std::task::Context::from_waker(waker))
        .is_pending()
    {
        ntex::rt::spawn(fut);
    }
}

/// A refused CONNECT in the instance's trace: a `tcpclean` with the reason, on a channel of its own.
fn record_refusal(broker: &Broker, instance_id: &str, info: &ConnectInfo, reason: CloseReason) {
    broker.events.emit_refusal(ClientEvent {
        instance_id: instance_id.to_string(),
        client_id: info.client_id.clone(),
        event_type: EventType::Tcpclean,
        time: common::time::now_ms(),
        channel_id: new_channel_id(),
        client_ip: info.peer.clone(),
        topics: Vec::new(),
        reason: Some(reason),
    });
}

/// Authenticates and registers a connection, and prepares its delivery.
pub async fn connect(
    broker: &Arc<Broker>,
    dev: bool,
    info: ConnectInfo,
    sink: Sink,
) -> Result<Connected, ConnectRefusal> {
    let dir = broker.dirs.load();
    let mut assigned_client_id = None;
    let authenticated = if dev {
        let client_id = if info.client_id.is_empty() {
            let id = format!("dev-{}", new_channel_id());
            assigned_client_id = Some(id.clone());
            id
        } else {
            info.client_id.clone()
        };
        auth::open_principal(&dir, &broker.dirs.dev_instance().unwrap_or_default(), &client_id)
    } else {
        let username = info.username.as_deref().unwrap_or("");
        auth::authenticate(&dir, username, &info.password, &info.client_id, common::time::now_ms())
    };
    let principal = authenticated.map_err(|e| {
        metrics::auth_failure(e.label());
        tracing::info!(client_id = %info.client_id, peer = %info.peer, reason = %e, "connect refused");
        // The client ID form is the one failure the protocol has its own code for.
        let (refusal, reason) = if e == auth::AuthError::ClientIdTooLong {
            (ConnectRefusal::IdentifierRejected, CloseReason::InvalidParam)
        } else {
            (ConnectRefusal::NotAuthorized, CloseReason::NotAuthorized)
        };
        let username = info.username.as_deref().unwrap_or("");
        if let Some(instance_id) = auth::instance_named(&dir, username) {
            record_refusal(broker, instance_id, &info, reason);
        }
        refusal
    })?;
    let inst = principal.instance.clone();
    let client_id = principal.client_id.clone();
    let mailbox = Arc::new(Mailbox::new(broker.limits.max_queued, broker.limits.max_queued_bytes));
    let conn_id = broker.next_conn_id();
    let request = SessionRequest {
        clean_start: info.clean_start,
        persistent: info.persistent,
        expiry_secs: info.session_expiry_secs,
        handle: ConnHandle {
            conn_id,
            mailbox: mailbox.clone(),
        },
    };
    let session = broker.open_session(&inst, &client_id, request).await.map_err(|e| {
        let (reason, refusal, traced) = match e {
            OpenRefusal::QuotaExceeded => ("connections", ConnectRefusal::QuotaExceeded, CloseReason::QuotaExceeded),
            OpenRefusal::Duplicate => (
                "duplicate_client_id",
                ConnectRefusal::IdentifierRejected,
                CloseReason::ClientIdConflict,
            ),
            OpenRefusal::TooManySessions => (
                "persistent_sessions",
                ConnectRefusal::QuotaExceeded,
                CloseReason::QuotaExceeded,
            ),
            OpenRefusal::Unavailable(_) => (
                "unavailable",
                ConnectRefusal::Unavailable,
                CloseReason::ServerUnavailable,
            ),
        };
        metrics::refused(Packet::Connect, reason);
        tracing::info!(client_id = %client_id, reason, "connect refused");
        record_refusal(broker, &inst.id, &info, traced);
        refusal
    })?;
    let credential = principal.credential;
    // A resumed session keeps only what the new connection's credentials allow.
    for (raw, _) in &session.resumed {
        if credential.may_subscribe(&inst, &client_id, raw).is_err() {
            broker.unsubscribe(&inst.id, &client_id, raw).await;
            metrics::refused(Packet::Subscribe, "not_authorized_on_resume");
            tracing::info!(client_id = %client_id, filter = %raw, "resumed subscription dropped: not covered by the new credentials");
        }
    }
    let ctx = Rc::new(ConnCtx {
        broker: broker.clone(),
        instance_id: ByteString::from(inst.id.as_str()),
        client_id: ByteString::from(client_id),
        conn_id,
        channel_id: rand::random(),
        peer: ByteString::from(info.peer.as_str()),
        persistent: info.persistent,
        credential: RefCell::new(credential),
        sink,
        mailbox,
        max_packet_size: info.max_packet_size,
        aliases: RefCell::new(OutboundAliases::new(info.topic_alias_max)),
        write_blocked: Cell::new(false),
        counters: broker.usage.counters(&inst.id),
        ending: Cell::new(None),
        close_reason: Cell::new(None),
    });
    // MQTT 5: the will waits for its delay, but never beyond the session's end nor beyond what the
    // instance keeps offline messages for.
    let retention = u32::try_from(inst.quotas.offline_retention_secs).unwrap_or(u32::MAX);
    let session_left = if info.persistent {
        info.session_expiry_secs.unwrap_or(u32::MAX).min(retention)
    } else {
        0
    };
    let will = info.will.map(|w| {
        Box::new(Will {
            delay_secs: w.delay_secs.min(session_left),
            msg: w.msg.published_by(ctx.client_id.clone()),
            expiry_secs: w.expiry_secs,
        })
    });
    let window = usize::from(broker.limits.max_inflight.min(info.receive_max.max(1)));
    let delivery = Delivery::new(ctx.clone(), window, session.parked);
    metrics::connected();
    ctx.event(EventType::Connect);
    let conn = Rc::new(Conn {
        ctx,
        will: RefCell::new(will),
        clean_disconnect: Cell::new(false),
        notice_pending: Cell::new(false),
        publish_order: Rc::default(),
    });
    Ok(Connected {
        conn,
        session_present: session.present,
        assigned_client_id,
        delivery,
    })
}
