//! A connection's delivery (runs on its worker: inside the connection's own task for MQTT 3.1.1,
//! in a task beside ntex-mqtt's for MQTT 5): takes signals and messages
//! from the mailbox and, for persistent sessions, from the offline queue in order, within an
//! in-flight window (our own packet ids), deleting stored messages once acknowledged. It also keeps
//! the connection's credentials honest: configuration changes and token expiry end it. When it ends
//! it closes the connection's hold on its session.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use common::qos::QoS;
use common::sync::TraceAction;
use common::token::TokenError;
use ntex_mqtt::v5::codec::DisconnectReasonCode;

use super::context::{ConnCtx, Ending};
use super::sink::{Receiver, Sent};
use super::window::Window;
use crate::auth::Withdrawn;
use crate::core::mailbox::{Ctl, Mail, Outbound};
use crate::core::offline::Queued;
use crate::metrics::{self, Packet};
use crate::sys;

/// Stored messages fetched per read of the offline queue at most.
const FETCH_BATCH: usize = 64;

pub struct Delivery {
    ctx: Rc<ConnCtx>,
    window_size: usize,
    window: Rc<RefCell<Window>>,
    /// Configuration changes of the client's instance: credentials are re-checked on each.
    config: tokio::sync::watch::Receiver<i64>,
    /// The last read of the offline queue failed (its store did not answer): read again after
    /// `FETCH_RETRY`, since nothing else may wake the connection while messages wait there.
    store_unread: bool,
}

/// How long after a failed read of the offline queue it is read again.
const FETCH_RETRY: ntex::time::Millis = ntex::time::Millis(500);

enum Stop {
    Closed,
    Signalled(Ending),
}

impl Delivery {
    pub fn new(ctx: Rc<ConnCtx>, window_size: usize, parked: BTreeMap<u64, u16>) -> Self {
        let config = ctx.broker.dirs.watch_instance(&ctx.instance_id);
        Self {
            ctx,
            window_size,
            window: Rc::new(RefCell::new(Window::resuming(parked))),
            config,
            store_unread: false,
        }
    }

    /// An `async move` block rather than an `async fn`: an `async fn` keeps `self` twice in its
    /// future (the argument and its binding), and this future lives as long as the connection.
    #[expect(clippy::manual_async_fn, reason = "an async fn would hold its arguments twice")]
    pub fn run(mut self) -> impl std::future::Future<Output = ()> {
        async move {
            let stop = self.deliver().await;
            let ctx = self.ctx.clone();
            if let Stop::Signalled(ending) = stop {
                ctx.ending.set(Some(ending));
                let reason = match ending {
                    Ending::TakenOver => {
                        tracing::info!(client_id = %ctx.client_id, "clientId conflict: connection taken over");
                        DisconnectReasonCode::SessionTakenOver
                    }
                    Ending::Kicked => {
                        tracing::info!(client_id = %ctx.client_id, "closed by the control plane");
                        DisconnectReasonCode::AdministrativeAction
                    }
                    // Closing right away can discard the just-queued notice; let it leave first.
                    Ending::Expired => {
                        ntex::time::sleep(sys::NOTICE_FLUSH).await;
                        DisconnectReasonCode::NotAuthorized
                    }
                    Ending::Withdrawn => {
                        ntex::time::sleep(sys::NOTICE_FLUSH).await;
                        DisconnectReasonCode::AdministrativeAction
                    }
                };
                ctx.sink.close_with(reason);
            } else {
                ctx.sink.close();
            }
            let unacked = self.window.borrow().unacked();
            ctx.broker
                .close_session(&ctx.instance_id, &ctx.client_id, ctx.conn_id, unacked)
                .await;
        }
    }

    async fn deliver(&mut self) -> Stop {
        // The sink's send window opens with the CONNACK: nothing may be written before it.
        if !self.ctx.sink.ready().await {
            return Stop::Closed;
        }
        self.watch_acks();
        // A configuration swapped in between the CONNECT's authentication and our watch
        // subscription would go unseen: check once against the current one.
        self.config.mark_changed();
        // The offline-queue cursor: highest stored sequence sent on this connection.
        let mut cursor = 0u64;
        loop {
            // Stored messages after `cursor`, while the window has room. The sends are awaited
            // here rather than in a helper's future: that future (about 400 bytes) would be part
            // of every connection's for as long as it lives, and boxing it costs an allocation a
            // turn (measured: offline drain about a tenth slower).
            // (`let ... else` rather than `while let` and `for`: their temporaries would be kept
            // across the send too.)
            while self.ctx.persistent {
                let Some(batch) = self.fetch_stored(cursor).await else {
                    break;
                };
                let mut batch = batch.into_iter();
                loop {
                    let Some(queued) = batch.next() else {
                        break;
                    };
                    cursor = queued.seq;
                    if !self.send(queued.out, Some(queued.seq)).await {
                        return Stop::Closed;
                    }
                }
            }
            // Checked on every turn, so that a busy mailbox cannot put it off.
            if self.token_timetable() {
                return Stop::Signalled(Ending::Expired);
            }
            if self.config_withdrew() {
                return Stop::Signalled(Ending::Withdrawn);
            }
            match self.ctx.mailbox.take() {
                Some(Mail::Signal(Ctl::TakenOver)) => return Stop::Signalled(Ending::TakenOver),
                Some(Mail::Signal(Ctl::Close)) => return Stop::Signalled(Ending::Kicked),
                Some(Mail::Message(out)) => {
                    if !self.send(out, None).await {
                        return Stop::Closed;
                    }
                    continue;
                }
                Some(Mail::Closed) => return Stop::Closed,
                None => {}
            }
            let deadline = self.ctx.credential.borrow().tokens.next_deadline_ms();
            let sleep = async {
                match deadline {
                    Some(at) => {
                        let ms = (at - crate::clock::now_ms()).clamp(0, i64::from(u32::MAX));
                        ntex::time::sleep(ntex::time::Millis(ms as u32)).await
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let store_retry = async {
                match self.store_unread {
                    true => ntex::time::sleep(FETCH_RETRY).await,
                    false => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = store_retry => {}
                // Messages, signals, acknowledgements, a replaced token, a drained socket.
                _ = self.ctx.mailbox.changed() => {}
                // Seen here, so marked again for the check at the top of the loop.
                changed = self.config.changed() => if changed.is_ok() { self.config.mark_changed() },
                _ = sleep => {}
            }
        }
    }

    /// Acknowledged stored messages leave the offline queue; every acknowledgement frees window room.
    fn watch_acks(&self) {
        let (window, ctx) = (self.window.clone(), self.ctx.clone());
        self.ctx.sink.on_ack(move |id, lost| {
            if !lost && let Some(Some(seq)) = window.borrow_mut().inflight.remove(&id) {
                ack_stored(&ctx, seq);
            }
            // Lost: the message stays stored; the next connection resends it.
            ctx.mailbox.wake();
        });
    }

    /// Sends due token notices; true when a token has expired and the connection must end.
    fn token_timetable(&self) -> bool {
        let due = self.ctx.credential.borrow_mut().tokens.take_due(crate::clock::now_ms());
        for (kind, exp) in due.notices {
            self.ctx
                .sink
                .send_notice(sys::EXPIRE_NOTICE, sys::expire_notice(exp, kind.as_str()).into());
        }
        match due.expired {
            Some(kind) => {
                self.withdrawn(Withdrawn::Token(TokenError::Expired, kind));
                true
            }
            None => false,
        }
    }

    /// True when a configuration applied since the last look withdrew this client's rights.
    fn config_withdrew(&mut self) -> bool {
        match self.config.has_changed() {
            Ok(false) => return false,
            Ok(true) => self.config.mark_unchanged(),
            Err(_) => return true,
        }
        let dir = self.ctx.broker.dirs.load();
        let verdict = self.ctx.credential.borrow().still_valid(
            &dir,
            &self.ctx.instance_id,
            &self.ctx.client_id,
            common::time::now_ms(),
        );
        match verdict {
            Ok(()) => false,
            Err(w) => {
                self.withdrawn(w);
                true
            }
        }
    }

    /// Logs and counts a withdrawal; a token client hears why first.
    fn withdrawn(&self, w: Withdrawn) {
        tracing::info!(client_id = %self.ctx.client_id, reason = w.label(), "credentials no longer valid: closing");
        metrics::refused(Packet::Session, w.label());
        if let Withdrawn::Token(err, kind) = w {
            self.ctx.sink.send_notice(
                sys::INVALID_NOTICE,
                sys::invalid_notice(err.notice_code(), kind.as_str()).into(),
            );
        }
    }

    /// The next stored messages after `cursor` that the window has room for; None when it has
    /// none, nothing more is stored, or the store cannot be read (then it is read again shortly).
    async fn fetch_stored(&mut self, cursor: u64) -> Option<Vec<Queued>> {
        let room = self.window_size.saturating_sub(self.window.borrow().inflight.len());
        if room == 0 {
            return None;
        }
        let max_age = self
            .ctx
            .instance()
            .map_or(u64::MAX >> 21, |i| i.quotas.offline_retention_secs.saturating_mul(1000));
        let ctx = &self.ctx;
        let fetched = ctx
            .broker
            .offline()
            .fetch(&ctx.instance_id, &ctx.client_id, cursor, room.min(FETCH_BATCH), max_age)
            .await;
        self.store_unread = fetched.is_err();
        match fetched {
            Ok(batch) if !batch.is_empty() => Some(batch),
            Ok(_) => None,
            Err(e) => {
                metrics::store_error("fetch");
                tracing::error!(error = %e, "cannot read offline messages; reading again shortly");
                None
            }
        }
    }

    /// Sends one delivery, waiting for window room and write capacity. False when the connection is gone.
    async fn send(&self, out: Outbound, seq: Option<u64>) -> bool {
        let ctx = &self.ctx;
        if out.qos == QoS::AtMostOnce {
            // A client that does not read gets nothing more written: what arrives meanwhile waits
            // in the mailbox, whose byte budget drops (and counts) the rest.
            while ctx.write_blocked.get() {
                if !ctx.sink.is_open() {
                    return false;
                }
                // Any wake-up is a reason to look again (see ConnCtx::mailbox).
                ctx.mailbox.changed().await;
            }
        } else {
            // QoS 2 runs alone so that ntex-mqtt's in-order ack check never sees it interleaved.
            let limit = if out.qos == QoS::ExactlyOnce {
                1
            } else {
                self.window_size
            };
            while self.window.borrow().inflight.len() >= limit {
                if !ctx.sink.is_open() {
                    return false;
                }
                ctx.mailbox.changed().await;
            }
            // QoS 1 is written right after this, without an await in between.
            if !ctx.sink.ready().await {
                return false;
            }
        }
        // Checked after the waits: a message can expire while it waits for window room.
        let now = crate::clock::now_ms();
        if out.msg.expired(now) {
            // Past its message expiry interval: not delivered (MQTT 5, 3.3.2.3.3).
            metrics::dropped("expired");
            if let Some(seq) = seq {
                ack_stored(ctx, seq);
            }
            return true;
        }
        // Not asked for by a subscription of this connection: a P2P message, or one queued for the
        // session (perhaps under other credentials): the credentials must allow reading it. A
        // custom-auth client's every message is checked, so a DENY added since it subscribed
        // holds at once.
        let unsolicited = seq.is_some() || common::topic::p2p_target(&out.msg.topic).is_some();
        let check = unsolicited || ctx.credential.borrow().mode == crate::auth::Mode::Custom;
        if check && !may_receive(ctx, &out.msg.topic) {
            metrics::refused(Packet::Deliver, "not_authorized");
            tracing::info!(client_id = %ctx.client_id, topic = %out.msg.topic, "message not delivered: not covered by the credentials");
            if let Some(seq) = seq {
                ack_stored(ctx, seq);
            }
            return true;
        }
        let to = Receiver {
            max_packet_size: ctx.max_packet_size,
            aliases: &ctx.aliases,
        };
        metrics::message(true, out.qos);
        ctx.counters.sent();
        if out.qos == QoS::AtMostOnce {
            return match ctx.sink.send(&out, 0, false, &to, now) {
                Sent::Closed => false,
                Sent::TooLarge => {
                    metrics::dropped("too_large_for_client");
                    true
                }
                Sent::Written => {
                    trace_push(ctx, &out, seq);
                    true
                }
            };
        }
        let (id, dup) = self.window.borrow_mut().id_for(seq);
        let sent = if out.qos == QoS::AtLeastOnce {
            self.window.borrow_mut().inflight.insert(id, seq);
            let sent = ctx.sink.send(&out, id, dup, &to, now);
            if sent != Sent::Written {
                self.window.borrow_mut().inflight.remove(&id);
            }
            sent
        } else {
            self.window.borrow_mut().inflight.insert(id, None);
            // Boxed: the four-packet exchange is the largest state of this task, and an idle
            // connection's task would otherwise reserve room for it (QoS 2 is rare; one allocation).
            let sent = Box::pin(ctx.sink.send_exactly_once(&out, id, &to, now)).await;
            self.window.borrow_mut().inflight.remove(&id);
            if sent == Sent::Written
                && let Some(seq) = seq
            {
                ack_stored(ctx, seq);
            }
            sent
        };
        match sent {
            Sent::Written => {
                trace_push(ctx, &out, seq);
                true
            }
            Sent::TooLarge => {
                metrics::dropped("too_large_for_client");
                if let Some(seq) = seq {
                    ack_stored(ctx, seq);
                }
                true
            }
            Sent::Closed => false,
        }
    }
}

/// Deletes an acknowledged (or undeliverable) stored message.
fn ack_stored(ctx: &Rc<ConnCtx>, seq: u64) {
    let ctx = ctx.clone();
    super::drive(async move {
        let acked = ctx.broker.offline().ack(&ctx.instance_id, &ctx.client_id, seq).await;
        if let Err(e) = acked {
            metrics::store_error("ack");
            tracing::error!(error = %e, "cannot delete an acknowledged message");
        }
    });
}

/// Whether the connection's credentials let it read a message on `topic` (the instance gone: no).
fn may_receive(ctx: &ConnCtx, topic: &str) -> bool {
    ctx.instance()
        .is_some_and(|inst| ctx.credential.borrow().may_receive(&inst, &ctx.client_id, topic))
}

/// A message written to the client, for the trace: from its offline messages when it came from the
/// store, else live.
fn trace_push(ctx: &ConnCtx, out: &Outbound, seq: Option<u64>) {
    if let Some(tracer) = ctx.broker.tracer() {
        let action = if seq.is_some() {
            TraceAction::PushOffline
        } else {
            TraceAction::Sub
        };
        tracer.record(&ctx.instance_id, out.msg.id, &ctx.client_id, action);
    }
}
