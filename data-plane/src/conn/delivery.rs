//! The per-connection delivery task (runs on the connection's worker): takes signals and messages
//! from the connection's mailbox and, for persistent sessions, from the offline store in order,
//! within an in-flight window (our own packet ids), deleting stored messages once acknowledged.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use ntex_bytes::Bytes;
use tokio::sync::Notify;

use crate::auth::{Mode, Tokens};
use crate::broker::{Broker, Ctl};
use crate::mailbox::{Mail, Mailbox};
use crate::sink::Sink;
use crate::sys;

/// Our packet ids in flight -> the stored sequence they carry (None for in-memory messages).
#[derive(Default)]
struct Window {
    inflight: BTreeMap<u16, Option<u64>>,
    last_id: u16,
    /// Stored messages the previous connection sent but never got acknowledged: their packet ids,
    /// reused (with DUP) when they are resent *(MQTT 4.4)*.
    resume: BTreeMap<u64, u16>,
}

impl Window {
    /// Next free id, skipping ids still in flight.
    fn allocate(&mut self) -> u16 {
        loop {
            self.last_id = self.last_id.wrapping_add(1).max(1);
            if !self.inflight.contains_key(&self.last_id) {
                return self.last_id;
            }
        }
    }
}

pub struct Delivery {
    pub broker: Arc<Broker>,
    pub instance_id: String,
    pub client_id: String,
    pub persistent: bool,
    pub sink: Sink,
    pub mailbox: Arc<Mailbox>,
    pub window_size: usize,
    pub tokens: Rc<RefCell<Tokens>>,
    pub tokens_changed: Rc<Notify>,
    pub access_key_id: String,
    pub mode: Mode,
    /// Credentials are re-checked when a new snapshot is applied (revocations, disabled keys).
    pub snapshot: tokio::sync::watch::Receiver<i64>,
}

enum Stop {
    Closed,
    TakenOver,
    TokenExpired,
    /// Revoked / no longer permitted credentials, or the instance is gone.
    Revoked,
    /// Closed by the control plane (CloseConnection).
    Kicked,
}

impl Delivery {
    pub async fn run(mut self) {
        // The sink's send window opens with the CONNACK: nothing may be written before it.
        if !self.sink.ready().await {
            return;
        }
        let window = Rc::new(RefCell::new(Window {
            resume: self.broker.take_inflight(&self.instance_id, &self.client_id),
            ..Window::default()
        }));
        let freed = Rc::new(Notify::new());
        {
            let (window, freed, broker) = (window.clone(), freed.clone(), self.broker.clone());
            let (inst, client) = (self.instance_id.clone(), self.client_id.clone());
            self.sink.on_ack(move |id, lost| {
                if lost {
                    freed.notify_one();
                    return; // stays stored; the next connection resends it
                }
                if let Some(Some(seq)) = window.borrow_mut().inflight.remove(&id) {
                    let res = broker
                        .store
                        .ack(&inst, &client, seq)
                        .and_then(|()| broker.store.flush());
                    if let Err(e) = res {
                        tracing::error!(error = %e, "cannot delete acknowledged message");
                    }
                }
                freed.notify_one();
            });
        }
        // A snapshot swapped in between the CONNECT's authentication and our watch subscription
        // would go unseen: check once against the current one.
        self.snapshot.mark_changed();
        let stop = self.run_loop(&window, &freed).await;
        if self.persistent {
            let unacked = window
                .borrow()
                .inflight
                .iter()
                .filter_map(|(id, seq)| seq.map(|s| (s, *id)))
                .collect();
            self.broker.park_inflight(&self.instance_id, &self.client_id, unacked);
        }
        match stop {
            Stop::TakenOver => {
                tracing::info!(client_id = %self.client_id, "clientId conflict: connection taken over");
                self.sink.close_taken_over();
            }
            Stop::TokenExpired => {
                // Closing right away can discard the just-queued notice; let it leave first.
                ntex::time::sleep(sys::NOTICE_FLUSH).await;
                self.sink
                    .close_with(ntex_mqtt::v5::codec::DisconnectReasonCode::NotAuthorized)
            }
            Stop::Revoked => {
                ntex::time::sleep(sys::NOTICE_FLUSH).await;
                self.sink
                    .close_with(ntex_mqtt::v5::codec::DisconnectReasonCode::AdministrativeAction)
            }
            Stop::Kicked => {
                tracing::info!(client_id = %self.client_id, "closed by the control plane");
                self.sink
                    .close_with(ntex_mqtt::v5::codec::DisconnectReasonCode::AdministrativeAction)
            }
            Stop::Closed => self.sink.close(),
        }
    }

    async fn run_loop(&mut self, window: &Rc<RefCell<Window>>, freed: &Rc<Notify>) -> Stop {
        // The store cursor: highest stored sequence sent on this connection.
        let mut cursor = 0u64;
        loop {
            if self.persistent && !self.pump_store(window, freed, &mut cursor).await {
                return Stop::Closed;
            }
            // Due notices first: a zero-length timer may only fire on the next timer tick.
            if sys::token_timers(&self.sink, &mut self.tokens.borrow_mut()) {
                return Stop::TokenExpired;
            }
            // A new snapshot may withdraw this client's rights: checked on every turn, so that a
            // busy mailbox cannot put it off.
            if self.snapshot_revoked() {
                return Stop::Revoked;
            }
            match self.mailbox.take() {
                Some(Mail::Signal(Ctl::TakenOver)) => return Stop::TakenOver,
                Some(Mail::Signal(Ctl::Close)) => return Stop::Kicked,
                Some(Mail::Signal(Ctl::Sys(sys))) => {
                    self.sink.send_qos0(&sys.topic, Bytes::from(sys.payload), false);
                    continue;
                }
                Some(Mail::Message(out)) => {
                    if !self
                        .send(
                            window,
                            freed,
                            &out.msg.topic,
                            out.msg.payload.clone(),
                            out.qos,
                            out.msg.retain,
                            None,
                        )
                        .await
                    {
                        return Stop::Closed;
                    }
                    continue;
                }
                Some(Mail::Closed) => return Stop::Closed,
                None => {}
            }
            let deadline = sys::next_token_deadline(&self.tokens.borrow());
            let sleep = async {
                match deadline {
                    Some(at) => ntex::time::sleep(at).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = self.mailbox.changed() => {}
                _ = freed.notified() => {}
                _ = self.tokens_changed.notified() => {}
                changed = self.snapshot.changed() => {
                    if changed.is_err() || self.credentials_revoked() {
                        return Stop::Revoked;
                    }
                }
                _ = sleep => {}
            }
        }
    }

    /// True (after sending the invalid notice) when a snapshot applied since the last look withdrew
    /// this client's rights.
    fn snapshot_revoked(&mut self) -> bool {
        match self.snapshot.has_changed() {
            Ok(false) => false,
            Ok(true) => {
                self.snapshot.mark_unchanged();
                self.credentials_revoked()
            }
            Err(_) => true,
        }
    }

    /// True (after sending the invalid notice) when the new snapshot withdrew this client's rights.
    fn credentials_revoked(&self) -> bool {
        let dir = self.broker.dirs.load();
        let Some(inst) = dir.instances.get(&self.instance_id) else {
            tracing::info!(client_id = %self.client_id, "instance removed: closing");
            return true;
        };
        let key = self.access_key_id.as_str();
        let still_allowed = match self.mode {
            Mode::Signature => inst.access_keys.get(key).is_some_and(|k| k.enabled),
            Mode::DeviceCredential => inst
                .device_credentials
                .get(key)
                .is_some_and(|d| d.client_id == self.client_id),
            Mode::Token | Mode::Open => true,
        };
        // A deleted group withdraws every client of it, whatever the credential (SPEC 3.2).
        let group_ok = self.mode == Mode::Open
            || common::names::parse_client_id(&self.client_id, usize::MAX)
                .is_ok_and(|c| inst.group_ids.contains(c.group_id));
        let still_allowed = still_allowed && group_ok;
        if !still_allowed {
            tracing::info!(client_id = %self.client_id, "credentials withdrawn: closing");
            metrics::counter!("broker_refusals_total", "packet" => "session", "reason" => "credentials_withdrawn")
                .increment(1);
            return true;
        }
        let tokens = self.tokens.borrow();
        match sys::recheck_tokens(&dir, &self.instance_id, &self.access_key_id, &tokens) {
            Some((err, kind)) => {
                tracing::info!(client_id = %self.client_id, reason = %err, "token no longer valid: closing");
                metrics::counter!("broker_refusals_total", "packet" => "session", "reason" => "token_revoked")
                    .increment(1);
                self.sink.send_qos0(
                    sys::INVALID_NOTICE,
                    sys::invalid_notice(err.notice_code(), kind).into(),
                    false,
                );
                true
            }
            None => false,
        }
    }

    /// Sends stored messages after `cursor` while the window has room. False when the connection is gone.
    async fn pump_store(&mut self, window: &Rc<RefCell<Window>>, freed: &Rc<Notify>, cursor: &mut u64) -> bool {
        loop {
            let room = self.window_size.saturating_sub(window.borrow().inflight.len());
            if room == 0 {
                return true;
            }
            let inst = self.broker.dirs.load().instances.get(&self.instance_id).cloned();
            let max_age = inst.map_or(u64::MAX >> 21, |i| i.quotas.offline_retention_secs.saturating_mul(1000));
            let batch = match self
                .broker
                .store
                .fetch(&self.instance_id, &self.client_id, *cursor, room, max_age)
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read offline messages");
                    return true;
                }
            };
            if batch.is_empty() {
                return true;
            }
            for (seq, msg) in batch {
                *cursor = seq;
                if !self
                    .send(
                        window,
                        freed,
                        &msg.topic,
                        Bytes::from(msg.payload),
                        msg.qos,
                        msg.retain,
                        Some(seq),
                    )
                    .await
                {
                    return false;
                }
            }
        }
    }

    /// Sends one message at `qos`, waiting for window room and write capacity.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        window: &Rc<RefCell<Window>>,
        freed: &Rc<Notify>,
        topic: &str,
        payload: Bytes,
        qos: u8,
        retain: bool,
        seq: Option<u64>,
    ) -> bool {
        count_message(true, qos);
        if qos == 0 {
            return self.sink.send_qos0(topic, payload, retain);
        }
        // QoS 2 runs alone so that ntex-mqtt's in-order ack check never sees it interleaved.
        let limit = if qos == 2 { 1 } else { self.window_size };
        while window.borrow().inflight.len() >= limit {
            if !self.sink.is_open() {
                return false;
            }
            freed.notified().await;
        }
        if !self.sink.ready().await {
            return false;
        }
        let (id, dup) = {
            let mut w = window.borrow_mut();
            match seq.and_then(|s| w.resume.remove(&s)) {
                Some(id) if !w.inflight.contains_key(&id) => (id, true),
                _ => (w.allocate(), false),
            }
        };
        if qos == 1 {
            window.borrow_mut().inflight.insert(id, seq);
            return self.sink.send_qos1(id, dup, topic, payload, retain);
        }
        window.borrow_mut().inflight.insert(id, None);
        // Boxed: the four-packet exchange is the largest state of this task, and an idle
        // connection's task would otherwise reserve room for it (QoS 2 is rare; one allocation).
        let ok = Box::pin(self.sink.send_qos2(id, topic, payload, retain)).await;
        window.borrow_mut().inflight.remove(&id);
        if ok && let Some(seq) = seq {
            let res = self
                .broker
                .store
                .ack(&self.instance_id, &self.client_id, seq)
                .and_then(|()| self.broker.store.flush());
            if let Err(e) = res {
                tracing::error!(error = %e, "cannot delete acknowledged message");
            }
        }
        ok
    }
}

thread_local! {
    /// `broker_messages_{in,out}_total` by QoS, resolved once per worker thread: the `counter!`
    /// macro hashes its name and labels into the registry on every call, which showed up in QoS 0
    /// profiles. Workers start after the recorder is installed, so these are never no-op handles.
    static MESSAGES: [[metrics::Counter; 3]; 2] = [
        ["0", "1", "2"].map(|q| metrics::counter!("broker_messages_in_total", "qos" => q)),
        ["0", "1", "2"].map(|q| metrics::counter!("broker_messages_out_total", "qos" => q)),
    ];
}

/// Counts one message received from (`out` false) or sent to (`out` true) a client.
pub fn count_message(out: bool, qos: u8) {
    MESSAGES.with(|m| m[usize::from(out)][usize::from(qos.min(2))].increment(1));
}
