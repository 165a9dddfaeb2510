//! What one connection is, shared by its protocol handlers (`Conn`) and its delivery task: identity,
//! credentials, the sink it writes to and the mailbox the core reaches it through.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use ntex_bytes::ByteString;

use super::sink::Sink;
use crate::auth::Credential;
use crate::core::Broker;
use crate::core::mailbox::Mailbox;
use crate::directory::Instance;
use crate::events::{ClientEvent, CloseReason, EventType};

/// Why a connection ended, as far as the broker decided it (a lost connection has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Another connection took over the client ID.
    TakenOver,
    /// Closed by the control plane (CloseConnection).
    Kicked,
    /// A token of the connection expired.
    Expired,
    /// The configuration withdrew the credentials (token revoked, key disabled, instance, group
    /// or device credential gone).
    Withdrawn,
}

pub struct ConnCtx {
    pub broker: Arc<Broker>,
    /// Instance ID, client ID and peer address up to 23 bytes are held inline (no allocation).
    pub instance_id: ByteString,
    pub client_id: ByteString,
    pub conn_id: u64,
    /// Unique per TCP connection; 32 hex chars in client status events (kept as bytes: a string
    /// would cost every connection another allocation).
    pub channel_id: [u8; 16],
    pub peer: ByteString,
    /// The session outlives the connection.
    pub persistent: bool,
    pub credential: RefCell<Credential>,
    pub sink: Sink,
    /// Also the delivery task's one wake-up: whatever it should look at again (a replaced token's
    /// timetable, an acknowledgement that freed window room, a drained socket) wakes it here.
    pub mailbox: Arc<Mailbox>,
    /// The client's maximum packet size (MQTT 5): larger messages are not sent to it.
    pub max_packet_size: Option<u32>,
    /// Topic aliases of messages sent to the client (MQTT 5).
    pub aliases: RefCell<OutboundAliases>,
    /// The socket's write buffer is over its high-water mark (the client does not read): nothing
    /// more is written until it drains.
    pub write_blocked: Cell<bool>,
    pub ending: Cell<Option<Ending>>,
    /// What the protocol side saw end the connection (keep-alive timeout, a malformed packet, a
    /// refused PUBLISH, the peer gone): the `tcpclean` event's reason when nothing above says more.
    pub close_reason: Cell<Option<CloseReason>>,
    /// The instance's message counters.
    pub counters: Arc<crate::core::usage::Counters>,
}

/// Topic aliases the broker assigns to the topics it sends, up to the client's topic alias
/// maximum: the first topics get one for the life of the connection; later ones are sent in full.
/// The map is made with the first alias: most connections never get one (MQTT 3.1.1, or no
/// maximum), and an empty map inline would cost each of them 40 bytes.
pub struct OutboundAliases {
    max: u16,
    #[expect(clippy::box_collection, reason = "8 bytes inline instead of an empty map's 48")]
    by_topic: Option<Box<HashMap<ByteString, u16>>>,
}

impl OutboundAliases {
    pub fn new(max: u16) -> Self {
        Self { max, by_topic: None }
    }

    fn assigned(&self) -> usize {
        self.by_topic.as_ref().map_or(0, |m| m.len())
    }

    /// The alias for `topic`, and whether the client knows it already (then the topic can be left
    /// out); a new one is only taken by `assign`, once the packet that introduces it is sent.
    pub fn peek(&self, topic: &ByteString) -> Option<(u16, bool)> {
        match self.by_topic.as_ref().and_then(|m| m.get(topic)) {
            Some(&alias) => Some((alias, true)),
            None if self.assigned() < usize::from(self.max) => Some((self.assigned() as u16 + 1, false)),
            None => None,
        }
    }

    pub fn assign(&mut self, topic: &ByteString) {
        let assigned = self.assigned();
        if assigned >= usize::from(self.max) {
            return;
        }
        let alias = assigned as u16 + 1;
        let by_topic = self.by_topic.get_or_insert_with(Box::default);
        if !by_topic.contains_key(topic) {
            by_topic.insert(topic.clone(), alias);
        }
    }
}

impl ConnCtx {
    /// ntex-mqtt reports write back-pressure on and off.
    pub fn set_write_blocked(&self, blocked: bool) {
        self.write_blocked.set(blocked);
        if !blocked {
            self.mailbox.wake();
        }
    }

    /// The instance as of the current configuration (a reload may have changed or removed it).
    pub fn instance(&self) -> Option<Arc<Instance>> {
        self.broker
            .dirs
            .load()
            .instances
            .get(self.instance_id.as_str())
            .cloned()
    }

    pub fn event(&self, event_type: EventType) {
        self.event_with(event_type, Vec::new());
    }

    pub fn event_with(&self, event_type: EventType, topics: Vec<String>) {
        self.emit(event_type, topics, None);
    }

    /// The `tcpclean` event, with why the connection ended.
    pub fn closed_event(&self, reason: CloseReason) {
        self.emit(EventType::Tcpclean, Vec::new(), Some(reason));
    }

    fn emit(&self, event_type: EventType, topics: Vec<String>, reason: Option<CloseReason>) {
        self.broker.events.emit(ClientEvent {
            instance_id: self.instance_id.to_string(),
            client_id: self.client_id.to_string(),
            time: common::time::now_ms(),
            event_type,
            channel_id: hex::encode(self.channel_id),
            client_ip: self.peer.to_string(),
            topics,
            reason,
        });
    }

    /// Records the first thing seen to end the connection (later ones are consequences).
    pub fn note_close(&self, reason: CloseReason) {
        if self.close_reason.get().is_none() {
            self.close_reason.set(Some(reason));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_stop_at_the_clients_maximum_even_the_largest() {
        let mut none = OutboundAliases::new(0);
        none.assign(&ByteString::from("t"));
        assert_eq!(none.peek(&ByteString::from("t")), None);

        let mut aliases = OutboundAliases::new(u16::MAX);
        for i in 0..=u32::from(u16::MAX) {
            aliases.assign(&ByteString::from(i.to_string()));
        }
        assert_eq!(aliases.peek(&ByteString::from("0")), Some((1, true)));
        assert_eq!(aliases.peek(&ByteString::from("65534")), Some((u16::MAX, true)));
        // One past the maximum: sent in full, never a wrapped alias.
        assert_eq!(aliases.peek(&ByteString::from("65535")), None);
    }
}
