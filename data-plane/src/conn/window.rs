//! The in-flight window of one connection: our packet ids of QoS 1/2 deliveries not yet
//! acknowledged, and for stored messages the queue position they carry.

use std::collections::BTreeMap;

#[derive(Default)]
pub struct Window {
    /// Packet id -> the stored sequence it carries (None for in-memory messages).
    pub inflight: BTreeMap<u16, Option<u64>>,
    last_id: u16,
    /// Stored messages the previous connection sent but never got acknowledged: their packet ids,
    /// reused (with DUP) when they are resent *(MQTT 4.4)*.
    pub resume: BTreeMap<u64, u16>,
}

impl Window {
    pub fn resuming(resume: BTreeMap<u64, u16>) -> Self {
        Self {
            resume,
            ..Self::default()
        }
    }

    /// Next free id, skipping ids still in flight.
    pub fn allocate(&mut self) -> u16 {
        loop {
            self.last_id = self.last_id.wrapping_add(1).max(1);
            if !self.inflight.contains_key(&self.last_id) {
                return self.last_id;
            }
        }
    }

    /// The packet id for a delivery: the one a stored message had on the previous connection
    /// (then it is a resend, DUP set), or a fresh one.
    pub fn id_for(&mut self, seq: Option<u64>) -> (u16, bool) {
        match seq.and_then(|s| self.resume.remove(&s)) {
            Some(id) if !self.inflight.contains_key(&id) => (id, true),
            _ => (self.allocate(), false),
        }
    }

    /// Stored messages in flight and their packet ids, for the session to keep.
    pub fn unacked(&self) -> BTreeMap<u64, u16> {
        self.inflight
            .iter()
            .filter_map(|(id, seq)| seq.map(|s| (s, *id)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_skip_what_is_in_flight_and_resends_keep_theirs() {
        let mut w = Window::resuming(BTreeMap::from([(10, 2)]));
        w.inflight.insert(1, None);
        assert_eq!(w.id_for(None), (2, false));
        w.inflight.insert(2, Some(5));
        assert_eq!(w.id_for(Some(10)), (3, false), "id 2 is taken: a fresh one");
        assert_eq!(w.id_for(Some(10)), (4, false), "the resume entry was used up");
        assert_eq!(w.unacked(), BTreeMap::from([(5, 2)]));
    }
}
