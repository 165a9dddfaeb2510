//! What one receiver saw: a latency histogram and, per publisher, which sequence numbers arrived,
//! so that loss, duplicates and reordering are counted exactly.

use std::collections::HashMap;

use hdrhistogram::Histogram;

use crate::payload;

pub struct Tracker {
    pub latency_us: Histogram<u64>,
    seen: HashMap<u32, Seen>,
    pub received: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub foreign: u64,
}

#[derive(Default)]
struct Seen {
    bits: Vec<u64>,
    highest: Option<u32>,
}

impl Default for Tracker {
    fn default() -> Self {
        Self {
            // 1 us .. 100 s with 3 significant digits.
            latency_us: Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds"),
            seen: HashMap::new(),
            received: 0,
            duplicates: 0,
            out_of_order: 0,
            foreign: 0,
        }
    }
}

impl Tracker {
    pub fn record(&mut self, payload_bytes: &[u8]) {
        let Some((sent, publisher, seq)) = payload::decode(payload_bytes) else {
            self.foreign += 1;
            return;
        };
        self.received += 1;
        let latency = payload::now_ns().saturating_sub(sent) / 1000;
        self.latency_us.saturating_record(latency.max(1));
        let seen = self.seen.entry(publisher).or_default();
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if seen.bits.len() <= word {
            seen.bits.resize(word + 1, 0);
        }
        if seen.bits[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        seen.bits[word] |= 1 << bit;
        match seen.highest {
            Some(h) if seq < h => self.out_of_order += 1,
            _ => seen.highest = Some(seq),
        }
    }

    /// Distinct messages received (duplicates excluded).
    pub fn unique(&self) -> u64 {
        self.received - self.duplicates
    }

    pub fn merge(&mut self, other: Tracker) {
        self.latency_us.add(&other.latency_us).expect("same histogram bounds");
        self.received += other.received;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.foreign += other.foreign;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_duplicates_and_reordering() {
        let mut t = Tracker::default();
        let a = payload::encode(1, 0);
        let b = payload::encode(1, 1);
        t.record(&b);
        t.record(&a);
        t.record(&a);
        t.record(b"not ours");
        assert_eq!(
            (t.received, t.duplicates, t.out_of_order, t.foreign, t.unique()),
            (3, 1, 1, 1, 2)
        );
    }
}
