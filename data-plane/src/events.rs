//! Client status events *(docs/spec.md 3.8)*: `connect`, `disconnect`, `tcpclean` (plus `subscribe` /
//! `unsubscribe` for session queries), published into an in-process broadcast stream that the
//! control-plane link subscribes to, after the status rules' hook took them (synchronously: a
//! bounded broadcast may drop events, an at-least-once rule must not).

use tokio::sync::broadcast;

/// The event type of the control-plane contract (`common::sync`), so events travel unchanged.
pub use common::sync::{ClientEvent, ClientEventType as EventType, CloseReason};

/// Runs on every event before it is broadcast (the status rules' outbox append).
pub type Hook = Box<dyn Fn(&ClientEvent) + Send + Sync>;

/// Refused CONNECTs recorded per second at most, so that a flood of bad logins cannot flood the
/// control plane's trace with it (the rest are counted and logged only).
const REFUSALS_PER_SEC: u32 = 100;

pub struct Events {
    tx: broadcast::Sender<ClientEvent>,
    hook: std::sync::OnceLock<Hook>,
    /// (second, refusals recorded in it).
    refusals: std::sync::Mutex<(i64, u32)>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(4096).0,
            hook: std::sync::OnceLock::new(),
            refusals: std::sync::Mutex::new((0, 0)),
        }
    }
}

impl Events {
    pub fn set_hook(&self, hook: Hook) {
        let _ = self.hook.set(hook);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ClientEvent> {
        self.tx.subscribe()
    }

    /// A refused CONNECT for the trace (a `tcpclean` with the reason, on a channel that never
    /// connected): to the control plane only, not to status rules (the client was never online),
    /// and at most `REFUSALS_PER_SEC` per second.
    pub fn emit_refusal(&self, event: ClientEvent) {
        {
            let mut window = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
            let second = event.time.div_euclid(1000);
            if window.0 != second {
                *window = (second, 0);
            }
            if window.1 >= REFUSALS_PER_SEC {
                crate::metrics::client_event("refused_not_recorded");
                return;
            }
            window.1 += 1;
        }
        crate::metrics::client_event("refused");
        let _ = self.tx.send(event);
    }

    pub fn emit(&self, event: ClientEvent) {
        let kind = match event.event_type {
            EventType::Connect => "connect",
            EventType::Disconnect => "disconnect",
            EventType::Tcpclean => "tcpclean",
            EventType::Subscribe => "subscribe",
            EventType::Unsubscribe => "unsubscribe",
        };
        crate::metrics::client_event(kind);
        // Serializing is a visible part of a connect's cost: build the JSON only when the line is logged.
        match event.event_type {
            // Subscription changes are frequent and only feed session queries.
            EventType::Subscribe | EventType::Unsubscribe => {
                if tracing::enabled!(target: "client_event", tracing::Level::DEBUG) {
                    let json = serde_json::to_string(&event).unwrap_or_default();
                    tracing::debug!(target: "client_event", event = %json);
                }
            }
            _ => {
                if tracing::enabled!(target: "client_event", tracing::Level::INFO) {
                    let json = serde_json::to_string(&event).unwrap_or_default();
                    tracing::info!(target: "client_event", event = %json);
                }
            }
        }
        if let Some(hook) = self.hook.get() {
            hook(&event);
        }
        // No receiver is fine: a broker without a control plane has nobody to tell.
        let _ = self.tx.send(event);
    }
}

/// 32 lowercase hex chars, unique per TCP connection.
pub fn new_channel_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}
