//! The on-disk form of a block of trace records: each record is its action (1 byte), time (8),
//! message ID (16), instance ID (1-byte length + bytes) and client ID (2-byte length + bytes).

use crate::message::MsgId;
use common::sync::{TraceAction, TraceQuery, TraceRecord};

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

/// A buffer of records being filled.
#[derive(Default)]
pub struct Builder {
    bytes: Vec<u8>,
    records: u64,
    first_time: i64,
}

/// What a buffer held, to be written as one block.
pub struct Block {
    pub first_time: i64,
    pub bytes: Vec<u8>,
    pub records: u64,
}

impl Builder {
    pub fn push(&mut self, time: i64, instance_id: &str, msg_id: MsgId, client_id: &str, action: TraceAction) {
        if self.records == 0 {
            self.first_time = time;
        }
        // Longer names than the format holds do not exist (instance IDs are short; client IDs are
        // at most 1,024 characters by the instance limits): cut rather than corrupt the block.
        let inst = &instance_id.as_bytes()[..instance_id.len().min(255)];
        let client = &client_id.as_bytes()[..client_id.len().min(u16::MAX as usize)];
        self.records += 1;
        self.bytes.push(action_byte(action));
        self.bytes.extend_from_slice(&time.to_le_bytes());
        self.bytes.extend_from_slice(&msg_id.to_bytes());
        self.bytes.push(inst.len() as u8);
        self.bytes.extend_from_slice(inst);
        self.bytes.extend_from_slice(&(client.len() as u16).to_le_bytes());
        self.bytes.extend_from_slice(client);
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// What it holds (none when empty); it starts over, keeping half its room for the next round.
    pub fn take(&mut self) -> Option<Block> {
        if self.records == 0 {
            return None;
        }
        let room = self.bytes.capacity() / 2;
        let block = Block {
            first_time: self.first_time,
            bytes: std::mem::replace(&mut self.bytes, Vec::with_capacity(room)),
            records: self.records,
        };
        self.records = 0;
        Some(block)
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
