//! Dead letters: deliveries a target refused for good. They wait here (bounded) until the
//! control-plane link sends them in a batch (`DEAD_LETTERS_PATH`); the latest few are also kept
//! for the broker's own `/rules` view.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use common::rules::DeadLetter;

/// Letters waiting for the control plane; beyond this the oldest are dropped (and counted).
const MAX_PENDING: usize = 1_000;
const MAX_RECENT: usize = 100;

#[derive(Default)]
pub struct DeadLetters {
    /// Whether a control-plane link takes the letters (a broker without one only keeps `recent`).
    reporting: AtomicBool,
    pending: Mutex<VecDeque<DeadLetter>>,
    recent: Mutex<VecDeque<DeadLetter>>,
}

impl DeadLetters {
    /// From now on letters are kept for the control plane.
    pub fn report(&self) {
        self.reporting.store(true, Ordering::Relaxed);
    }

    pub fn push(&self, letter: DeadLetter) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == MAX_RECENT {
            recent.pop_front();
        }
        recent.push_back(letter.clone());
        drop(recent);
        if !self.reporting.load(Ordering::Relaxed) {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() == MAX_PENDING {
            pending.pop_front();
            crate::metrics::sync_events_dropped(1);
        }
        pending.push_back(letter);
    }

    /// Up to `max` letters to send.
    pub fn take(&self, max: usize) -> Vec<DeadLetter> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let n = pending.len().min(max);
        pending.drain(..n).collect()
    }

    /// Puts back letters the control plane did not take, ahead of newer ones.
    pub fn put_back(&self, letters: Vec<DeadLetter>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for l in letters.into_iter().rev() {
            if pending.len() < MAX_PENDING {
                pending.push_front(l);
            }
        }
    }

    pub fn recent(&self) -> Vec<DeadLetter> {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}
