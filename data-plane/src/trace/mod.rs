//! Message trace *(docs/trace.md)*: each message this broker accepted (who published it) and each
//! push of one to a client (live, or from its offline messages), by message ID, kept on this
//! broker's disk for up to 3 days within a byte budget, and read back for the control plane's
//! queries. The control plane asks every broker, since a message's publication and its deliveries
//! may be on different brokers of a cluster.
//!
//! Recording costs the routing path a lock of an uncontended mutex (one buffer per worker thread)
//! and a few dozen bytes appended to that buffer: no allocation, no channel, no wake-up. A thread
//! of its own takes the buffers every 100 ms and writes each as one block (LZ4-compressed, one key)
//! into one fjall keyspace per hour, so expiry drops a whole keyspace. A buffer that grows past
//! 4 MiB before the writer comes (the disk cannot keep up) drops further records, counted.

mod block;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::sync::{TraceAction, TraceQuery, TraceRecord};
use fjall::{Database, Keyspace, PersistMode};
use ntex_bytes::ByteString;

use crate::message::MsgId;

/// How long records are kept at most.
const RETENTION_HOURS: i64 = common::sync::TRACE_RETENTION_HOURS;
const HOUR_MS: i64 = 3_600_000;
/// How often the writer takes the buffers.
const WRITE_EVERY: Duration = Duration::from_millis(100);
/// Buffers: more than worker threads, so that each thread mostly has its own.
const SHARDS: usize = 16;
/// A buffer's most bytes between two writes; records beyond are dropped and counted.
const SHARD_BYTES: usize = 4 << 20;
/// A block is keyed by its first record's time; a query starts this much earlier to find blocks
/// that began before its range.
const BLOCK_SPAN_MS: i64 = 1_000;

/// The recorder the connections and commands call.
pub struct Tracer {
    shared: Arc<Shared>,
}

struct Shared {
    shards: Vec<Mutex<block::Builder>>,
    store: TraceStore,
    closed: AtomicBool,
}

/// This thread's buffer.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

impl Tracer {
    /// Opens (or creates) the trace store in `dir` and starts its writer thread.
    pub fn start(dir: &Path, max_bytes: u64) -> anyhow::Result<Arc<Self>> {
        let shared = Arc::new(Shared {
            shards: (0..SHARDS).map(|_| Mutex::new(block::Builder::default())).collect(),
            store: TraceStore::open(dir, max_bytes)?,
            closed: AtomicBool::new(false),
        });
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("trace-writer".into())
            .spawn(move || writer.run())?;
        Ok(Arc::new(Self { shared }))
    }

    /// Records one step of a message; never waits for the disk. A client's publication is dated
    /// when this broker accepted it (the ID it assigned holds that time), so it never comes after
    /// a push of it that another thread made while this one was still routing. (SendMessage's IDs
    /// come from the control plane, in another form: those are dated now.)
    pub fn record(&self, instance_id: &str, msg_id: MsgId, client_id: &ByteString, action: TraceAction) {
        let time = match action {
            TraceAction::PubMqtt => msg_id.time_ms(),
            _ => crate::clock::now_ms(),
        };
        let mut buf = self.shared.shards[shard()].lock().unwrap_or_else(|e| e.into_inner());
        if buf.len() >= SHARD_BYTES {
            drop(buf);
            crate::metrics::trace_record("dropped");
            return;
        }
        buf.push(time, instance_id, msg_id, client_id, action);
    }

    /// The matching records this broker holds, oldest (or newest) first, and whether there were
    /// more than `query.limit`. Reads the disk: call it off the async workers.
    pub fn query(&self, query: &TraceQuery) -> anyhow::Result<(Vec<TraceRecord>, bool)> {
        self.shared.store.query(query)
    }
}

impl Drop for Tracer {
    /// The writer writes what is buffered and ends.
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
    }
}

impl Shared {
    /// The writer: every 100 ms a block per non-empty buffer; every minute, expiry.
    fn run(&self) {
        let mut seq: u32 = 0;
        let mut last_expiry = Instant::now();
        loop {
            let closed = self.closed.load(Ordering::Acquire);
            if !closed {
                std::thread::sleep(WRITE_EVERY);
            }
            for shard in &self.shards {
                let taken = shard.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(block) = taken {
                    seq = seq.wrapping_add(1);
                    if let Err(e) = self.store.write(block, seq) {
                        crate::metrics::trace_record("write_failed");
                        tracing::warn!(error = %e, "trace block not written");
                    }
                }
            }
            if last_expiry.elapsed() >= Duration::from_secs(60) {
                last_expiry = Instant::now();
                if let Err(e) = self.store.expire(common::time::now_ms()) {
                    tracing::warn!(error = %e, "trace expiry failed");
                }
            }
            if closed {
                return;
            }
        }
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
        let db = crate::store::open_database(dir)?;
        let mut hours = BTreeMap::new();
        for name in db.list_keyspace_names() {
            if let Some(hour) = name.strip_prefix('h').and_then(|h| h.parse::<i64>().ok()) {
                hours.insert(hour, db.keyspace(&name, crate::store::keyspace_options)?);
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
        let ks = self.db.keyspace(&hour_name(hour), crate::store::keyspace_options)?;
        hours.insert(hour, ks.clone());
        Ok(ks)
    }

    fn write(&self, block: block::Block, seq: u32) -> anyhow::Result<()> {
        let ks = self.keyspace(block.first_time.div_euclid(HOUR_MS))?;
        let mut key = block.first_time.to_be_bytes().to_vec();
        key.extend_from_slice(&seq.to_be_bytes());
        ks.insert(key, lz4_flex::compress_prepend_size(&block.bytes))?;
        self.db.persist(PersistMode::Buffer)?;
        crate::metrics::trace_records("written", block.records);
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
                let Ok(bytes) = lz4_flex::decompress_size_prepended(&value) else {
                    crate::metrics::trace_record("unreadable_block");
                    continue;
                };
                let first = out.len();
                block::read(&bytes, |e| {
                    if e.matches(q) {
                        out.push(e.record());
                    }
                });
                // Records of one block are in the order they were made: newest first for ties
                // within a millisecond, which the stable sort below keeps.
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
