//! The session registry: which client IDs have a session, which connection holds each (takeover:
//! a new connection replaces the old one), their subscriptions, and persistent sessions' expiry.
//! The seam is `SessionRegistry`; `LocalSessions` (`local`) is the embedded registry.

mod local;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use self::local::LocalSessions;
use super::mailbox::Mailbox;
use super::seam::{Seam, SeamResult};
use super::subscriptions::SubOptions;

/// How the broker reaches one live connection.
#[derive(Clone)]
pub struct ConnHandle {
    pub conn_id: u64,
    /// Messages and signals for the connection; waking it also says a persistent session's stored
    /// queue grew.
    pub mailbox: Arc<Mailbox>,
}

/// A connection asking for its client ID's session.
pub struct OpenRequest<'a> {
    pub instance_id: &'a str,
    pub client_id: &'a str,
    /// Discard any existing session (v3 cleanSession=1, v5 cleanStart=1).
    pub clean_start: bool,
    /// The session outlives the connection.
    pub persistent: bool,
    /// How long a persistent session outlives its connection (MQTT 5); None: until a clean start.
    pub expiry_secs: Option<u32>,
    /// Refuse instead of taking over a live connection.
    pub reject_duplicate: bool,
    /// Persistent sessions the instance may have at most.
    pub max_persistent: usize,
    pub handle: ConnHandle,
}

/// What opening a session found.
#[derive(Default)]
pub struct Opened {
    /// An unexpired persistent session was resumed (CONNACK session present).
    pub present: bool,
    /// The resumed session's subscriptions (they must be re-authorized for the new credentials).
    pub resumed: Vec<(String, SubOptions)>,
    /// Subscriptions of a session this open discarded (the caller removes them from the index).
    pub discarded: Vec<(String, SubOptions)>,
    /// A persistent session was discarded: its stored queue must go too.
    pub purge_queue: bool,
    /// Packet ids of stored messages the previous connection sent but never got acknowledged.
    pub parked: BTreeMap<u64, u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// The instance rejects a second connection with a live client ID.
    Duplicate,
    /// The instance has as many persistent sessions as its quota allows.
    TooManySessions,
}

/// What closing a connection's hold on its session left behind.
#[derive(Default)]
pub struct Closed {
    /// Subscriptions of a clean session that ended with its connection.
    pub discarded: Vec<(String, SubOptions)>,
    /// The connection still held the session (it was not taken over).
    pub held: bool,
    /// The session outlives the connection.
    pub persistent: bool,
}

/// A persistent session whose expiry passed: removed with its subscriptions.
pub struct Expired {
    pub instance_id: String,
    pub client_id: String,
    pub subs: Vec<(String, SubOptions)>,
}

/// Who gets a message routed to a client, as the fan-out needs it.
pub struct Recipient {
    pub persistent: bool,
    pub conn: Option<ConnHandle>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeError {
    TooManySubscriptions,
    /// The client has no session (its connection is gone).
    NoSession,
}

/// The session registry seam: ownership and takeover, subscriptions, expiry.
pub trait SessionRegistry: Send + Sync {
    /// Registers a connection for its client ID: resumes an unexpired persistent session unless the
    /// connection starts clean, and tells a live older connection it was taken over.
    fn open<'a>(&'a self, req: OpenRequest<'a>) -> Seam<'a, SeamResult<Result<Opened, OpenError>>>;
    /// The connection `conn_id` is gone; a clean session disappears with it. `unacked`: stored
    /// messages it was sent but did not acknowledge, and their packet ids.
    fn close(
        &self,
        instance_id: &str,
        client_id: &str,
        conn_id: u64,
        unacked: BTreeMap<u64, u16>,
    ) -> Seam<'_, SeamResult<Closed>>;
    /// Records a subscription (at most `max` per client); true when the filter is new to the client.
    fn subscribe(
        &self,
        instance_id: &str,
        client_id: &str,
        raw: &str,
        opts: SubOptions,
        max: usize,
    ) -> Seam<'_, SeamResult<Result<bool, SubscribeError>>>;
    /// Forgets a subscription; the options it had, if it had it.
    fn unsubscribe(&self, instance_id: &str, client_id: &str, raw: &str) -> Seam<'_, SeamResult<Option<SubOptions>>>;
    /// Removes persistent sessions whose expiry passed at `now_ms`.
    fn expire(&self, now_ms: u64) -> Vec<Expired>;
}
