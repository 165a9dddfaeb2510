//! The rules' durable outboxes, one keyspace of the broker's embedded store: `rule \0 seq` ->
//! item (`record`). `seq` is `(unix ms << 20) | counter`, increasing across restarts, so a rule's
//! items read back in the order they were appended and carry their age. An append is written to
//! the journal and (for QoS 1/2 and status events) handed to the OS before the PUBLISH is
//! acknowledged: it survives kill -9. Each rule's size is kept in memory (`RuleState::usage`) and
//! bounded by its `OutboxLimits`.

use std::collections::HashMap;

use fjall::{Database, Keyspace, PersistMode};

use super::state::{RuleState, Usage};
use crate::store::{FjallStore, Sequence, StoreError, StoreResult};

pub struct Outbox {
    db: Database,
    ks: Keyspace,
    last_seq: Sequence,
}

fn prefix(rule: &str) -> Vec<u8> {
    [rule.as_bytes(), b"\0"].concat()
}

fn key(rule: &str, seq: u64) -> Vec<u8> {
    [rule.as_bytes(), b"\0", &seq.to_be_bytes()].concat()
}

fn parse_key(key: &[u8]) -> Option<(&str, u64)> {
    let nul = key.iter().position(|b| *b == 0)?;
    let rule = std::str::from_utf8(&key[..nul]).ok()?;
    let seq = u64::from_be_bytes(key.get(nul + 1..)?.try_into().ok()?);
    Some((rule, seq))
}

/// When an item was appended (unix ms).
pub fn appended_at_ms(seq: u64) -> u64 {
    seq >> 20
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    Stored,
    /// A QoS 0 message that did not fit: dropped rather than pushing older items out.
    DroppedQos0,
}

impl Outbox {
    /// Opens the keyspace and measures what each rule left in it. Returns the outbox and the
    /// usage per rule.
    pub fn open(store: &FjallStore) -> StoreResult<(Self, HashMap<String, Usage>)> {
        let (db, ks) = store.keyspace("rule_outbox")?;
        let mut usage: HashMap<String, Usage> = HashMap::new();
        let mut last_seq = 0;
        for kv in ks.iter() {
            let (k, v) = kv.into_inner().map_err(StoreError::from)?;
            let Some((rule, seq)) = parse_key(&k) else { continue };
            let u = usage.entry(rule.to_string()).or_default();
            u.items += 1;
            u.bytes += v.len() as u64;
            last_seq = last_seq.max(seq);
        }
        let outbox = Self {
            db,
            ks,
            last_seq: Sequence::new(last_seq),
        };
        Ok((outbox, usage))
    }

    /// Appends one item to the rule's outbox; beyond its byte limit the oldest items go (counted,
    /// and the rule is marked overflowing). Not yet durable: see `persist`.
    pub fn append(&self, st: &RuleState, record: &[u8], qos0: bool) -> StoreResult<Appended> {
        let max_bytes = st.limits().max_bytes;
        let size = record.len() as u64;
        let mut usage = st.usage.lock().unwrap_or_else(|p| p.into_inner());
        if qos0 && usage.bytes + size > max_bytes {
            drop(usage);
            st.dropped("qos0", 1);
            return Ok(Appended::DroppedQos0);
        }
        // Taken under the lock: seqs of one rule are in the order of its appends.
        let seq = self.last_seq.next();
        self.ks.insert(key(&st.rule_id, seq), record)?;
        usage.items += 1;
        usage.bytes += size;
        let mut evicted = 0;
        if usage.bytes > max_bytes {
            for kv in self.ks.prefix(prefix(&st.rule_id)) {
                if usage.bytes <= max_bytes {
                    break;
                }
                let (k, v) = kv.into_inner()?;
                if let Some((_, seq)) = parse_key(&k) {
                    usage.evicted_through = seq;
                }
                self.ks.remove(k)?;
                usage.items = usage.items.saturating_sub(1);
                usage.bytes = usage.bytes.saturating_sub(v.len() as u64);
                evicted += 1;
            }
        }
        drop(usage);
        st.dropped("overflow", evicted);
        Ok(Appended::Stored)
    }

    /// Hands what was written to the OS (what survives kill -9), as the store does for offline
    /// messages.
    pub fn persist(&self) -> StoreResult<()> {
        self.db.persist(PersistMode::Buffer)?;
        Ok(())
    }

    /// The rule's oldest items from `from` on (a seq no item below is left at; 0: all), at most
    /// `limit`. Removed items stay in the LSM tree as tombstones until compaction, and a read walks
    /// over every one in its range: the sender passes the first seq of its previous read, so a
    /// read never walks over more than one batch of them (from the start of the rule's keys, the
    /// walk grew with every delivered item).
    pub fn head(&self, rule: &str, from: u64, limit: usize) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        let end = [rule.as_bytes(), b"\x01"].concat();
        for kv in self.ks.range(key(rule, from)..end).take(limit) {
            let (k, v) = kv.into_inner()?;
            if let Some((_, seq)) = parse_key(&k) {
                out.push((seq, v.to_vec()));
            }
        }
        Ok(out)
    }

    /// Whether an item read from the outbox is still there: an overflow may have dropped it while
    /// it waited. Overflows drop the oldest items first, so this needs no read of the store.
    pub fn contains(&self, st: &RuleState, seq: u64) -> bool {
        seq > st.usage.lock().unwrap_or_else(|p| p.into_inner()).evicted_through
    }

    /// Removes a delivered (or given up) item of `size` bytes, read from the outbox and removed
    /// only once by its sender; false when an overflow dropped it already.
    pub fn remove(&self, st: &RuleState, seq: u64, size: usize) -> StoreResult<bool> {
        let mut usage = st.usage.lock().unwrap_or_else(|p| p.into_inner());
        if seq <= usage.evicted_through {
            return Ok(false);
        }
        self.ks.remove(key(&st.rule_id, seq))?;
        usage.items = usage.items.saturating_sub(1);
        usage.bytes = usage.bytes.saturating_sub(size as u64);
        Ok(true)
    }

    /// Deletes a removed rule's outbox.
    pub fn purge(&self, st: &RuleState) -> StoreResult<u64> {
        let mut usage = st.usage.lock().unwrap_or_else(|p| p.into_inner());
        let mut n = 0;
        let mut last = usage.evicted_through;
        for kv in self.ks.prefix(prefix(&st.rule_id)) {
            let k = kv.key()?;
            if let Some((_, seq)) = parse_key(&k) {
                last = last.max(seq);
            }
            self.ks.remove(k)?;
            n += 1;
        }
        *usage = Usage {
            evicted_through: last,
            ..Usage::default()
        };
        drop(usage);
        self.persist()?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use common::rules::OutboxLimits;

    use super::*;

    #[test]
    fn appends_read_back_in_order_survive_reopening_and_stay_within_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let limits = OutboxLimits {
            max_bytes: 30,
            max_age_secs: 60,
        };
        {
            let store = FjallStore::open(dir.path()).unwrap();
            let (outbox, usage) = Outbox::open(&store).unwrap();
            assert!(usage.is_empty());
            let st = RuleState::new("rule-a", "mqtt-x", limits, Usage::default());
            for i in 0..5u8 {
                assert_eq!(outbox.append(&st, &[i; 10], false).unwrap(), Appended::Stored);
            }
            // 50 bytes appended, 30 allowed: the two oldest went.
            let head = outbox.head("rule-a", 0, 10).unwrap();
            assert_eq!(head.iter().map(|(_, v)| v[0]).collect::<Vec<_>>(), vec![2, 3, 4]);
            assert_eq!(st.stats().dropped, 2);
            assert!(st.stats().overflowing);
            assert_eq!(outbox.append(&st, &[9; 10], true).unwrap(), Appended::DroppedQos0);
            // The evicted ones are known gone without a read; a removal does not count them again.
            let evicted = st.usage().evicted_through;
            assert!(!outbox.contains(&st, evicted));
            assert!(outbox.contains(&st, head[0].0));
            assert!(!outbox.remove(&st, evicted, 10).unwrap(), "gone already");
            assert!(outbox.remove(&st, head[0].0, 10).unwrap());
            assert_eq!((st.usage().items, st.usage().bytes), (2, 20));
            outbox.persist().unwrap();
        }
        let store = FjallStore::open(dir.path()).unwrap();
        let (outbox, usage) = Outbox::open(&store).unwrap();
        assert_eq!((usage["rule-a"].items, usage["rule-a"].bytes), (2, 20));
        let head = outbox.head("rule-a", 0, 10).unwrap();
        assert_eq!(head.iter().map(|(_, v)| v[0]).collect::<Vec<_>>(), vec![3, 4]);
        let st = RuleState::new("rule-a", "mqtt-x", limits, usage["rule-a"]);
        outbox.append(&st, &[7; 5], false).unwrap();
        let seqs: Vec<u64> = outbox.head("rule-a", 0, 10).unwrap().iter().map(|(s, _)| *s).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "later appends sort after restored ones"
        );
        // A read from a seq on starts there, and sees no other rule's items.
        let other = RuleState::new("rule-ab", "mqtt-x", limits, Usage::default());
        outbox.append(&other, &[8; 5], false).unwrap();
        let from: Vec<u64> = outbox
            .head("rule-a", seqs[1], 10)
            .unwrap()
            .iter()
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(from, seqs[1..]);
    }
}
