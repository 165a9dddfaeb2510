//! One client connection (lives on its worker, `!Send`): authentication at CONNECT, authorization
//! and quota checks of PUBLISH / SUBSCRIBE, will message and status events when it ends. The v3
//! and v5 adapters (`mqtt.rs`) translate these outcomes into their wire reason codes.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use common::token::TokenError;
use common::topic;
use ntex_bytes::Bytes;
use tokio::sync::Notify;

use crate::auth::{self, Mode, Principal, Tokens};
use crate::broker::{Broker, ConnHandle, Msg, OpenError, Outbound, SubError};
use crate::deliver::{Delivery, count_message};
use crate::directory::Instance;
use crate::events::{ClientEvent, EventType, new_channel_id, now_ms};
use crate::mailbox::Mailbox;
use crate::sink::Sink;
use crate::sys;

/// A client's will message.
pub struct Will {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    /// MQTT 5 will delay interval: a reconnect within it cancels the will.
    pub delay_secs: u32,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectRefusal {
    NotAuthorized,
    IdentifierRejected,
    QuotaExceeded,
}

/// Why a PUBLISH or SUBSCRIBE was refused; adapters map it to the wire (SPEC 3.3, 3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown parent topic or not covered by the credentials: v3 disconnects.
    NotAuthorized,
    /// Malformed or over-long topic / filter.
    TopicInvalid,
    /// Message larger than the instance allows.
    TooLarge,
    /// A per-client or per-instance quota.
    Quota,
}

impl Refusal {
    fn count(self, what: &'static str) {
        let reason = match self {
            Self::NotAuthorized => "not_authorized",
            Self::TopicInvalid => "topic_invalid",
            Self::TooLarge => "too_large",
            Self::Quota => "quota",
        };
        metrics::counter!("broker_refusals_total", "packet" => what, "reason" => reason).increment(1);
    }
}

pub struct Conn {
    pub broker: Arc<Broker>,
    pub instance_id: String,
    pub client_id: String,
    pub access_key_id: String,
    pub mode: Mode,
    pub tokens: Rc<RefCell<Tokens>>,
    tokens_changed: Rc<Notify>,
    pub conn_id: u64,
    channel_id: String,
    peer: String,
    pub sink: Sink,
    mailbox: Arc<Mailbox>,
    /// Its delay already capped by the session's lifetime.
    will: RefCell<Option<Will>>,
    /// The client sent DISCONNECT (no will, `disconnect` event).
    pub clean_disconnect: Cell<bool>,
    notice_pending: Cell<bool>,
}

/// Authenticates and registers a connection, and starts its delivery task.
pub fn connect(
    broker: &Arc<Broker>,
    dev: bool,
    info: ConnectInfo,
    sink: Sink,
) -> Result<(Rc<Conn>, bool), ConnectRefusal> {
    let dir = broker.dirs.load();
    let (principal, client_id) = if dev {
        let dev_id = broker.dirs.dev_instance().unwrap_or_default();
        let Some(instance) = dir.instances.get(&dev_id).cloned() else {
            return Err(ConnectRefusal::NotAuthorized);
        };
        let client_id = if info.client_id.is_empty() {
            format!("dev-{}", new_channel_id())
        } else {
            info.client_id.clone()
        };
        let p = Principal {
            instance,
            access_key_id: String::new(),
            mode: Mode::Open,
            tokens: Tokens::default(),
        };
        (p, client_id)
    } else {
        let username = info.username.as_deref().unwrap_or("");
        match auth::authenticate(&dir, username, &info.password, &info.client_id, now_ms()) {
            Ok(p) => (p, info.client_id.clone()),
            Err(e) => {
                metrics::counter!("broker_auth_failures_total", "reason" => e.label()).increment(1);
                tracing::info!(client_id = %info.client_id, peer = %info.peer, reason = %e, "connect refused");
                // The client ID form is the one failure the protocol has its own code for (SPEC 2).
                if e == auth::AuthError::ClientIdTooLong {
                    return Err(ConnectRefusal::IdentifierRejected);
                }
                return Err(ConnectRefusal::NotAuthorized);
            }
        }
    };
    let mailbox = Arc::new(Mailbox::new(broker.max_queued));
    let conn_id = broker.next_conn_id();
    let handle = ConnHandle {
        conn_id,
        mailbox: mailbox.clone(),
    };
    let instance = principal.instance.clone();
    let present = broker.open_session(&instance, &client_id, &info, handle).map_err(|e| {
        let reason = match e {
            OpenError::QuotaExceeded => "connections",
            OpenError::Duplicate => "duplicate_client_id",
        };
        metrics::counter!("broker_refusals_total", "packet" => "connect", "reason" => reason).increment(1);
        tracing::info!(client_id = %client_id, reason, "connect refused");
        match e {
            OpenError::QuotaExceeded => ConnectRefusal::QuotaExceeded,
            OpenError::Duplicate => ConnectRefusal::IdentifierRejected,
        }
    })?;
    let tokens = Rc::new(RefCell::new(principal.tokens));
    let tokens_changed = Rc::new(Notify::new());
    let conn = Rc::new(Conn {
        broker: broker.clone(),
        instance_id: instance.id.clone(),
        client_id: client_id.clone(),
        access_key_id: principal.access_key_id,
        mode: principal.mode,
        tokens: tokens.clone(),
        tokens_changed: tokens_changed.clone(),
        conn_id,
        channel_id: new_channel_id(),
        peer: info.peer,
        sink: sink.clone(),
        mailbox: mailbox.clone(),
        will: RefCell::new(info.will.map(|will| {
            // MQTT 5: the will waits for its delay, but never beyond the session's end.
            let session_left = if info.persistent {
                info.session_expiry_secs.unwrap_or(u32::MAX)
            } else {
                0
            };
            Will {
                delay_secs: will.delay_secs.min(session_left),
                ..will
            }
        })),
        clean_disconnect: Cell::new(false),
        notice_pending: Cell::new(false),
    });
    let window = usize::from(broker.max_inflight.min(info.receive_max.max(1)));
    ntex::rt::spawn(
        Delivery {
            broker: broker.clone(),
            instance_id: instance.id.clone(),
            client_id,
            persistent: info.persistent,
            sink,
            mailbox,
            window_size: window,
            tokens,
            tokens_changed,
            access_key_id: conn.access_key_id.clone(),
            mode: conn.mode,
            snapshot: broker.dirs.watch(),
        }
        .run(),
    );
    metrics::counter!("broker_connects_total").increment(1);
    metrics::gauge!("broker_connections").increment(1.0);
    conn.event(EventType::Connect);
    Ok((conn, present))
}

impl Conn {
    fn event(&self, event_type: EventType) {
        self.event_with(event_type, Vec::new());
    }

    fn event_with(&self, event_type: EventType, topics: Vec<String>) {
        self.broker.events.emit(ClientEvent {
            instance_id: self.instance_id.clone(),
            client_id: self.client_id.clone(),
            time: now_ms(),
            event_type,
            channel_id: self.channel_id.clone(),
            client_ip: self.peer.clone(),
            topics,
        });
    }

    /// The instance as of the current snapshot (a reload may have changed or removed it).
    fn instance(&self) -> Option<Arc<Instance>> {
        self.broker.dirs.load().instances.get(&self.instance_id).cloned()
    }

    pub fn on_disconnect_packet(&self) {
        self.clean_disconnect.set(true);
        self.will.borrow_mut().take();
        self.event(EventType::Disconnect);
    }

    /// Sends `$SYS/tokenInvalidNotice` ahead of the refusal of a token client.
    fn token_refused(&self, err: TokenError, kind: &str) {
        self.sink.send_qos0(
            sys::INVALID_NOTICE,
            sys::invalid_notice(err.notice_code(), kind).into(),
            false,
        );
        self.notice_pending.set(true);
    }

    /// Checks and routes a PUBLISH (the caller acks only after this returns).
    pub async fn on_publish(&self, topic_name: &str, payload: Bytes, qos: u8, retain: bool) -> Result<(), Refusal> {
        count_message(false, qos);
        let res = self.check_and_route(topic_name, payload, qos, retain).await;
        if self.notice_pending.take() {
            // The refusal closes the connection; the notice must leave first.
            ntex::time::sleep(sys::NOTICE_FLUSH).await;
        }
        if let Err(r) = res {
            r.count("publish");
            tracing::info!(client_id = %self.client_id, topic = topic_name, refusal = ?r, "publish refused");
        }
        res
    }

    async fn check_and_route(&self, topic_name: &str, payload: Bytes, qos: u8, retain: bool) -> Result<(), Refusal> {
        let inst = self.instance().ok_or(Refusal::NotAuthorized)?;
        if topic_name.starts_with("$SYS/") {
            return self.on_sys(&inst, topic_name, &payload);
        }
        topic::validate_topic_name(topic_name, inst.quotas.max_topic_length as usize)
            .map_err(|_| Refusal::TopicInvalid)?;
        if payload.len() > inst.quotas.max_message_size as usize {
            return Err(Refusal::TooLarge);
        }
        if !inst.has_parent(topic::parent_of(topic_name)) {
            return Err(Refusal::NotAuthorized);
        }
        if self.mode == Mode::Token && !self.tokens.borrow().may_publish(topic_name) {
            let has_write = self.tokens.borrow().by_type.values().any(|c| c.act.allows_write());
            let err = if has_write {
                TokenError::ResourceMismatch
            } else {
                TokenError::ActionMismatch
            };
            self.token_refused(err, "W");
            return Err(Refusal::NotAuthorized);
        }
        let wait = self.broker.throttle(&inst, 1);
        if !wait.is_zero() {
            metrics::counter!("broker_throttled_total").increment(1);
            ntex::time::sleep(ntex::time::Millis(wait.as_millis().min(u128::from(u32::MAX)) as u32)).await;
        }
        let msg = Msg {
            topic: topic_name.to_string(),
            payload,
            retain,
        };
        let delivered = self.broker.publish(&inst, &self.client_id, msg, qos);
        // Deliveries count against the instance rate too (SPEC 2: in + out), slowing later publishers.
        if delivered > 0 {
            self.broker.throttle(&inst, delivered as u32);
        }
        Ok(())
    }

    fn on_sys(&self, inst: &Instance, topic_name: &str, payload: &[u8]) -> Result<(), Refusal> {
        match topic_name {
            sys::ENABLE_ORDER => Ok(()),
            sys::UPLOAD_TOKEN if self.mode == Mode::Token => {
                let dir = self.broker.dirs.load();
                let res = sys::upload_token(&dir, inst, &self.access_key_id, &mut self.tokens.borrow_mut(), payload);
                match res {
                    Ok(()) => {
                        self.tokens_changed.notify_one();
                        Ok(())
                    }
                    Err((err, kind)) => {
                        self.token_refused(err, &kind);
                        Err(Refusal::NotAuthorized)
                    }
                }
            }
            _ => Err(Refusal::NotAuthorized),
        }
    }

    /// Checks and records one SUBSCRIBE filter; returns the granted QoS.
    pub fn on_subscribe(&self, raw: &str, qos: u8, no_local: bool) -> Result<u8, Refusal> {
        let res = self.check_subscribe(raw, qos, no_local);
        if let Err(r) = res {
            r.count("subscribe");
            tracing::info!(client_id = %self.client_id, filter = raw, refusal = ?r, "subscribe refused");
        }
        res
    }

    fn check_subscribe(&self, raw: &str, qos: u8, no_local: bool) -> Result<u8, Refusal> {
        let inst = self.instance().ok_or(Refusal::NotAuthorized)?;
        if raw.starts_with("$SYS") {
            return Err(Refusal::NotAuthorized);
        }
        let parsed = topic::parse_subscription(raw).map_err(|_| Refusal::TopicInvalid)?;
        topic::validate_topic_filter(parsed.filter, inst.quotas.max_topic_length as usize)
            .map_err(|_| Refusal::TopicInvalid)?;
        if !inst.has_parent(topic::parent_of(parsed.filter)) {
            return Err(Refusal::NotAuthorized);
        }
        if self.mode == Mode::Token && !self.tokens.borrow().may_subscribe(parsed.filter) {
            let has_read = self.tokens.borrow().by_type.values().any(|c| c.act.allows_read());
            let err = if has_read {
                TokenError::ResourceMismatch
            } else {
                TokenError::ActionMismatch
            };
            self.token_refused(err, "R");
            return Err(Refusal::NotAuthorized);
        }
        let granted = qos.min(2);
        let retained = self
            .broker
            .subscribe(&inst, &self.client_id, raw, granted, no_local)
            .map_err(|e| match e {
                SubError::TooManySubscriptions | SubError::TooManyWildcards => Refusal::Quota,
            })?;
        for msg in retained {
            let q = granted;
            let _ = self.mailbox.push(Outbound { msg, qos: q });
        }
        self.event_with(EventType::Subscribe, vec![raw.to_string()]);
        Ok(granted)
    }

    pub fn on_unsubscribe(&self, raw: &str) {
        self.broker.unsubscribe(&self.instance_id, &self.client_id, raw);
        self.event_with(EventType::Unsubscribe, vec![raw.to_string()]);
    }
}

/// Publishes a will message if the client may still publish to its topic.
fn publish_will(broker: &Broker, instance_id: &str, client_id: &str, may_publish: impl Fn(&str) -> bool, will: Will) {
    let Some(inst) = broker.dirs.load().instances.get(instance_id).cloned() else {
        return;
    };
    if topic::validate_topic_name(&will.topic, inst.quotas.max_topic_length as usize).is_ok()
        && inst.has_parent(topic::parent_of(&will.topic))
        && may_publish(&will.topic)
    {
        let msg = Msg {
            topic: will.topic,
            payload: will.payload,
            retain: will.retain,
        };
        broker.publish(&inst, client_id, msg, will.qos);
    }
}

impl Drop for Conn {
    /// The connection is gone: will message, `tcpclean`, and the session registry.
    fn drop(&mut self) {
        if let Some(will) = self.will.borrow_mut().take() {
            let tokens = self.tokens.clone();
            let token_mode = self.mode == Mode::Token;
            let may_publish = move |t: &str| !token_mode || tokens.borrow().may_publish(t);
            if will.delay_secs == 0 {
                publish_will(&self.broker, &self.instance_id, &self.client_id, may_publish, will);
            } else {
                let conn_id = self.conn_id;
                self.broker.defer_will(&self.instance_id, &self.client_id, conn_id);
                let (broker, inst, client) = (self.broker.clone(), self.instance_id.clone(), self.client_id.clone());
                ntex::rt::spawn(async move {
                    ntex::time::sleep(std::time::Duration::from_secs(u64::from(will.delay_secs))).await;
                    // A new connection of the client within the delay cancels the will.
                    if broker.take_deferred_will(&inst, &client, conn_id) {
                        publish_will(&broker, &inst, &client, may_publish, will);
                    }
                });
            }
        }
        self.event(EventType::Tcpclean);
        metrics::gauge!("broker_connections").decrement(1.0);
        self.broker
            .close_session(&self.instance_id, &self.client_id, self.conn_id);
        // Ends the delivery task.
        self.mailbox.close();
    }
}
