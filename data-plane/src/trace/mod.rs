//! Message trace *(docs/trace.md)*: each message this broker accepted (who published it) and each
//! push of one to a client (live, or from its offline messages), by message ID, kept on this
//! broker's disk for up to 3 days within a byte budget, and read back for the control plane's
//! queries. The control plane asks every broker, since a message's publication and its deliveries
//! may be on different brokers of a cluster.
//!
//! Recording costs the routing path one send on a bounded channel per record. A thread of its own
//! writes the records in blocks (at most 100 ms or 64 KiB each, one key per block) into one fjall
//! keyspace per hour, so expiry drops a whole keyspace. When the channel is full (the disk cannot
//! keep up), records are dropped and counted, never waited for.

mod block;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::sync::{TraceAction, TraceQuery, TraceRecord};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use ntex_bytes::ByteString;

use self::block::Entry;
use crate::message::MsgId;

/// How long records are kept at most *(compat: Alibaba keeps traces 3 days)*.
const RETENTION_HOURS: i64 = 72;
const HOUR_MS: i64 = 3_600_000;
/// Records waiting for the writer; beyond it they are dropped and counted.
const QUEUE: usize = 65_536;
const BLOCK_MS: u64 = 100;
const BLOCK_BYTES: usize = 64 * 1024;
/// A block is keyed by its first record's time; a query starts this much earlier to find blocks
/// that began before its range.
const BLOCK_SPAN_MS: i64 = 1_000;

/// The recorder the connections and commands call.
pub struct Tracer {
    tx: SyncSender<Entry>,
    store: Arc<TraceStore>,
}

impl Tracer {
    /// Opens (or creates) the trace store in `dir` and starts its writer thread.
    pub fn start(dir: &Path, max_bytes: u64) -> anyhow::Result<Arc<Self>> {
        let store = Arc::new(TraceStore::open(dir, max_bytes)?);
        let (tx, rx) = sync_channel(QUEUE);
        let writer = store.clone();
        std::thread::Builder::new()
            .name("trace-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok(Arc::new(Self { tx, store }))
    }

    /// Records one step of a message; never waits.
    pub fn record(&self, instance_id: &str, msg_id: MsgId, client_id: &ByteString, action: TraceAction) {
        let entry = Entry {
            time: common::time::now_ms(),
            instance_id: instance_id.to_string(),
            msg_id,
            client_id: client_id.clone(),
            action,
        };
        // Counted when written (per block), so the routing path pays for the send only.
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(entry) {
            crate::metrics::trace_record("dropped");
        }
    }

    /// The matching records this broker holds, oldest first, and whether there were more than
    /// `query.limit`. Reads the disk: call it off the async workers.
    pub fn query(&self, query: &TraceQuery) -> anyhow::Result<(Vec<TraceRecord>, bool)> {
        self.store.query(query)
    }
}

struct TraceStore {
    db: Database,
    /// The keyspace of each hour (epoch ms / 3,600,000) that has records.
    hours: Mutex<BTreeMap<i64, Keyspace>>,
    max_bytes: u64,
}

fn hour_name(hour: i64) -> String {
    format!("h{hour}")
}

impl TraceStore {
    fn open(dir: &Path, max_bytes: u64) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let db = Database::builder(dir).manual_journal_persist(true).open()?;
        let mut hours = BTreeMap::new();
        for name in db.list_keyspace_names() {
            if let Some(hour) = name.strip_prefix('h').and_then(|h| h.parse::<i64>().ok()) {
                hours.insert(hour, db.keyspace(&name, KeyspaceCreateOptions::default)?);
            }
        }
        Ok(Self {
            db,
            hours: Mutex::new(hours),
            max_bytes,
        })
    }

    fn keyspace(&self, hour: i64) -> anyhow::Result<Keyspace> {
        let mut hours = self.hours.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ks) = hours.get(&hour) {
            return Ok(ks.clone());
        }
        let ks = self.db.keyspace(&hour_name(hour), KeyspaceCreateOptions::default)?;
        hours.insert(hour, ks.clone());
        Ok(ks)
    }

    /// The writer: collects records into blocks and writes each; expires old hours every minute.
    fn run(&self, rx: Receiver<Entry>) {
        let mut block = block::Builder::default();
        let mut seq: u32 = 0;
        let mut last_expiry = Instant::now();
        loop {
            let wait = block.started().map_or(Duration::from_secs(1), |t| {
                Duration::from_millis(BLOCK_MS).saturating_sub(t.elapsed())
            });
            let closed = match rx.recv_timeout(wait) {
                Ok(entry) => {
                    block.push(&entry);
                    false
                }
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            let due = block
                .started()
                .is_some_and(|t| t.elapsed() >= Duration::from_millis(BLOCK_MS));
            if due || block.len() >= BLOCK_BYTES || (closed && !block.is_empty()) {
                seq = seq.wrapping_add(1);
                if let Err(e) = self.write(&mut block, seq) {
                    crate::metrics::trace_record("write_failed");
                    tracing::warn!(error = %e, "trace block not written");
                }
            }
            if last_expiry.elapsed() >= Duration::from_secs(60) {
                last_expiry = Instant::now();
                if let Err(e) = self.expire(common::time::now_ms()) {
                    tracing::warn!(error = %e, "trace expiry failed");
                }
            }
            if closed {
                return;
            }
        }
    }

    fn write(&self, block: &mut block::Builder, seq: u32) -> anyhow::Result<()> {
        let records = block.records();
        let (first, bytes) = block.take();
        let ks = self.keyspace(first.div_euclid(HOUR_MS))?;
        let mut key = first.to_be_bytes().to_vec();
        key.extend_from_slice(&seq.to_be_bytes());
        ks.insert(key, bytes)?;
        self.db.persist(PersistMode::Buffer)?;
        crate::metrics::trace_records("written", records);
        Ok(())
    }

    /// Drops the hours past the retention, then the oldest while the store is over its budget
    /// (never the current hour).
    fn expire(&self, now_ms: i64) -> anyhow::Result<()> {
        let current = now_ms.div_euclid(HOUR_MS);
        let mut hours = self.hours.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((&oldest, _)) = hours.iter().next() {
            let over_budget = self.db.disk_space()? > self.max_bytes;
            if oldest >= current || (oldest > current - RETENTION_HOURS && !over_budget) {
                break;
            }
            if let Some(ks) = hours.remove(&oldest) {
                self.db.delete_keyspace(ks)?;
                crate::metrics::trace_record("hour_dropped");
            }
        }
        crate::metrics::trace_bytes(self.db.disk_space()?);
        Ok(())
    }

    fn query(&self, q: &TraceQuery) -> anyhow::Result<(Vec<TraceRecord>, bool)> {
        let from = q.begin_ms.saturating_sub(BLOCK_SPAN_MS);
        let hours: Vec<Keyspace> = {
            let hours = self.hours.lock().unwrap_or_else(|e| e.into_inner());
            hours
                .range(from.div_euclid(HOUR_MS)..=q.end_ms.div_euclid(HOUR_MS))
                .map(|(_, ks)| ks.clone())
                .collect()
        };
        let limit = q.limit as usize;
        let mut out = Vec::new();
        let range = from.to_be_bytes()..q.end_ms.to_be_bytes();
        // Blocks come in time order (newest last): once past the limit, the blocks still to read
        // only hold records further from the start.
        let ordered: Box<dyn Iterator<Item = Keyspace>> = if q.newest_first {
            Box::new(hours.into_iter().rev())
        } else {
            Box::new(hours.into_iter())
        };
        'hours: for ks in ordered {
            let blocks: Box<dyn Iterator<Item = fjall::Guard>> = if q.newest_first {
                Box::new(ks.range(range.clone()).rev())
            } else {
                Box::new(ks.range(range.clone()))
            };
            for kv in blocks {
                if out.len() > limit {
                    break 'hours;
                }
                let (_, value) = kv.into_inner()?;
                let first = out.len();
                block::read(&value, |e| {
                    if e.matches(q) {
                        out.push(e.record());
                    }
                });
                if q.newest_first {
                    out[first..].reverse();
                }
            }
        }
        if q.newest_first {
            out.sort_by_key(|r| std::cmp::Reverse(r.time));
        } else {
            out.sort_by_key(|r| r.time);
        }
        let truncated = out.len() > limit;
        out.truncate(limit);
        Ok((out, truncated))
    }
}

#[cfg(test)]
mod tests;
