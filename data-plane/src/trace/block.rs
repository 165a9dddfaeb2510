//! The on-disk form of a block of trace records: each record is its action (1 byte), time (8),
//! message ID (16), instance ID (1-byte length + bytes) and client ID (2-byte length + bytes).

use std::time::Instant;

use common::sync::{TraceAction, TraceQuery, TraceRecord};
use ntex_bytes::ByteString;

use crate::message::MsgId;

/// One record, as the routing path hands it over.
pub struct Entry {
    pub time: i64,
    pub instance_id: String,
    pub msg_id: MsgId,
    pub client_id: ByteString,
    pub action: TraceAction,
}

/// One record read back (borrowing the block).
pub struct Read<'a> {
    time: i64,
    instance_id: &'a str,
    msg_id: MsgId,
    client_id: &'a str,
    action: TraceAction,
}

impl Read<'_> {
    pub fn matches(&self, q: &TraceQuery) -> bool {
        self.time >= q.begin_ms
            && self.time < q.end_ms
            && self.instance_id == q.instance_id
            && q.msg_id.as_deref().is_none_or(|m| MsgId::parse(m) == Some(self.msg_id))
            && q.client_id.as_deref().is_none_or(|c| c == self.client_id)
            && q.kind.is_none_or(|k| k == self.action.kind())
    }

    pub fn record(&self) -> TraceRecord {
        TraceRecord {
            time: self.time,
            msg_id: self.msg_id.to_string(),
            client_id: self.client_id.to_string(),
            action: self.action,
        }
    }
}

fn action_byte(a: TraceAction) -> u8 {
    match a {
        TraceAction::PubMqtt => 0,
        TraceAction::PubBackend => 1,
        TraceAction::Sub => 2,
        TraceAction::PushOffline => 3,
    }
}

fn action_of(b: u8) -> Option<TraceAction> {
    Some(match b {
        0 => TraceAction::PubMqtt,
        1 => TraceAction::PubBackend,
        2 => TraceAction::Sub,
        3 => TraceAction::PushOffline,
        _ => return None,
    })
}

/// A block being filled.
#[derive(Default)]
pub struct Builder {
    bytes: Vec<u8>,
    records: u64,
    first_time: i64,
    started: Option<Instant>,
}

impl Builder {
    pub fn push(&mut self, e: &Entry) {
        if self.started.is_none() {
            self.started = Some(Instant::now());
            self.first_time = e.time;
        }
        // Longer names than the formats hold do not exist (instance IDs are short; client IDs are
        // at most 1,024 characters by the instance limits): cut rather than corrupt the block.
        let inst = &e.instance_id.as_bytes()[..e.instance_id.len().min(255)];
        let client = &e.client_id.as_bytes()[..e.client_id.len().min(u16::MAX as usize)];
        self.records += 1;
        self.bytes.push(action_byte(e.action));
        self.bytes.extend_from_slice(&e.time.to_le_bytes());
        self.bytes.extend_from_slice(&e.msg_id.to_bytes());
        self.bytes.push(inst.len() as u8);
        self.bytes.extend_from_slice(inst);
        self.bytes.extend_from_slice(&(client.len() as u16).to_le_bytes());
        self.bytes.extend_from_slice(client);
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn started(&self) -> Option<Instant> {
        self.started
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The first record's time and the bytes; the builder starts over.
    pub fn take(&mut self) -> (i64, Vec<u8>) {
        self.started = None;
        self.records = 0;
        (self.first_time, std::mem::take(&mut self.bytes))
    }
}

/// Calls `each` for every record of a block; stops at the first that cannot be read (a damaged
/// block loses its tail, nothing else).
pub fn read(mut bytes: &[u8], mut each: impl FnMut(&Read<'_>)) {
    while let Some(r) = next(&mut bytes) {
        each(&r);
    }
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, tail) = bytes.split_at_checked(n)?;
    *bytes = tail;
    Some(head)
}

fn next<'a>(bytes: &mut &'a [u8]) -> Option<Read<'a>> {
    let action = action_of(take(bytes, 1)?[0])?;
    let time = i64::from_le_bytes(take(bytes, 8)?.try_into().ok()?);
    let msg_id = MsgId::from_bytes(take(bytes, 16)?.try_into().ok()?);
    let inst_len = take(bytes, 1)?[0] as usize;
    let instance_id = std::str::from_utf8(take(bytes, inst_len)?).ok()?;
    let client_len = u16::from_le_bytes(take(bytes, 2)?.try_into().ok()?) as usize;
    let client_id = std::str::from_utf8(take(bytes, client_len)?).ok()?;
    Some(Read {
        time,
        instance_id,
        msg_id,
        client_id,
        action,
    })
}
