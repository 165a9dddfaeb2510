//! Client status events *(SPEC 3.8)*: `connect`, `disconnect`, `tcpclean`, published into an
//! in-process broadcast stream that later features (rules, online status) subscribe to.

use serde::Serialize;
use tokio::sync::broadcast;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Connect,
    /// The client sent DISCONNECT.
    Disconnect,
    /// The TCP connection is gone (always emitted, after `disconnect` if any).
    Tcpclean,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientEvent {
    pub instance_id: String,
    pub client_id: String,
    pub time: i64,
    pub event_type: EventType,
    pub channel_id: String,
    pub client_ip: String,
}

pub struct Events {
    tx: broadcast::Sender<ClientEvent>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(4096).0,
        }
    }
}

impl Events {
    pub fn subscribe(&self) -> broadcast::Receiver<ClientEvent> {
        self.tx.subscribe()
    }

    pub fn emit(&self, event: ClientEvent) {
        let kind = match event.event_type {
            EventType::Connect => "connect",
            EventType::Disconnect => "disconnect",
            EventType::Tcpclean => "tcpclean",
        };
        metrics::counter!("broker_client_events_total", "event" => kind).increment(1);
        tracing::info!(target: "client_event", event = %serde_json::to_string(&event).unwrap_or_default());
        // No receiver is fine: nobody consumes events yet.
        let _ = self.tx.send(event);
    }
}

/// 32 lowercase hex chars, unique per TCP connection.
pub fn new_channel_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
