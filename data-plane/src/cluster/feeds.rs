//! A set of streams read in sweeps: each stream has a waker of its own that queues it as ready, and
//! a sweep drains exactly the streams queued when it began, each until it has nothing more. So a
//! sweep takes every item that was in a stream before it began (a stream that received one was
//! woken, hence queued) and touches only streams that were woken, however many there are.
//!
//! Why not `futures_util::stream::SelectAll`: it hands out one item per poll and allocates its
//! task anew for every item (a routed message each, at hundreds of thousands a second), and its
//! sweeps may stop early to yield.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::Stream;
use futures_util::task::AtomicWaker;

/// Indices of the streams woken since the last sweep, and the reader's waker.
#[derive(Default)]
struct Ready {
    queue: Mutex<Vec<usize>>,
    reader: AtomicWaker,
}

/// The waker one stream is polled with.
struct Flag {
    index: usize,
    queued: AtomicBool,
    ready: Arc<Ready>,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.ready
                .queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(self.index);
            self.ready.reader.wake();
        }
    }
}

struct Slot<S> {
    stream: S,
    flag: Arc<Flag>,
    waker: Waker,
}

pub struct Feeds<S> {
    slots: Vec<Option<Slot<S>>>,
    free: Vec<usize>,
    ready: Arc<Ready>,
}

impl<S: Stream + Unpin> Feeds<S> {
    pub fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            ready: Arc::default(),
        }
    }

    /// Adds a stream; it is read in the next sweep (it has not been polled, so it may hold items
    /// without having woken anybody).
    pub fn push(&mut self, stream: S) {
        let index = self.free.pop().unwrap_or(self.slots.len());
        let flag = Arc::new(Flag {
            index,
            queued: AtomicBool::new(false),
            ready: self.ready.clone(),
        });
        let waker = Waker::from(flag.clone());
        waker.wake_by_ref();
        let slot = Some(Slot { stream, flag, waker });
        if index == self.slots.len() {
            self.slots.push(slot);
        } else {
            self.slots[index] = slot;
        }
    }

    /// Resolves once a stream was woken (to be swept).
    pub fn poll_woken(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.ready.reader.register(cx.waker());
        match self.ready.queue.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
            true => Poll::Pending,
            false => Poll::Ready(()),
        }
    }

    /// Drains the streams woken before this call, each until it is empty, into `take`; a stream
    /// that ended is dropped. Returns how many items were taken.
    pub fn sweep(&mut self, mut take: impl FnMut(S::Item)) -> usize {
        let woken = std::mem::take(&mut *self.ready.queue.lock().unwrap_or_else(|p| p.into_inner()));
        let mut taken = 0;
        for index in woken {
            let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
                continue;
            };
            // Cleared before polling: an item that arrives after the poll below found the stream
            // empty queues it again.
            slot.flag.queued.store(false, Ordering::Release);
            let mut cx = Context::from_waker(&slot.waker);
            loop {
                match Pin::new(&mut slot.stream).poll_next(&mut cx) {
                    Poll::Ready(Some(item)) => {
                        taken += 1;
                        take(item);
                    }
                    Poll::Ready(None) => {
                        self.slots[index] = None;
                        self.free.push(index);
                        break;
                    }
                    Poll::Pending => break,
                }
            }
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;

    fn feed() -> (mpsc::UnboundedSender<u32>, impl Stream<Item = u32> + Unpin) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        (tx, futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }

    #[tokio::test]
    async fn a_sweep_takes_what_every_woken_stream_holds_and_drops_ended_ones() {
        let mut feeds = Feeds::new();
        let (a, ra) = feed();
        let (b, rb) = feed();
        a.send(1).unwrap();
        feeds.push(ra);
        feeds.push(rb);
        let mut got = Vec::new();
        // New streams are read without having woken anybody.
        assert_eq!(feeds.sweep(|i| got.push(i)), 1);
        assert_eq!(feeds.sweep(|i| got.push(i)), 0, "nothing was woken since");

        b.send(2).unwrap();
        a.send(3).unwrap();
        a.send(4).unwrap();
        std::future::poll_fn(|cx| feeds.poll_woken(cx)).await;
        feeds.sweep(|i| got.push(i));
        got[1..].sort();
        assert_eq!(got, [1, 2, 3, 4]);

        drop(a);
        feeds.sweep(|_| unreachable!());
        assert_eq!(feeds.slots.iter().flatten().count(), 1, "the ended stream is gone");
        b.send(5).unwrap();
        let mut more = Vec::new();
        feeds.sweep(|i| more.push(i));
        assert_eq!(more, [5]);
    }
}
