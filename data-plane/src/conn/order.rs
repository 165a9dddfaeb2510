//! The order of one connection's PUBLISHes. ntex-mqtt hands a connection's packets to their
//! handlers in the order they arrived, but runs the handlers concurrently: a PUBLISH whose payload
//! is still arriving (it spans several reads), one that waits out the rate limit, or a retained one
//! that waits for its store, would let the next PUBLISH of the same client be routed first. MQTT
//! requires a client's messages to reach subscribers in the order it sent them (4.6), so each
//! handler takes a turn when it starts and routes only once every earlier turn has routed or given
//! up.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;

use tokio::sync::Notify;

/// The turns of one connection.
#[derive(Default)]
pub struct PublishOrder {
    issued: Cell<u64>,
    /// Every turn below this one is done.
    done_below: Cell<u64>,
    /// Turns done ahead of their place (a refusal does not wait for its turn).
    done_ahead: RefCell<BTreeSet<u64>>,
    changed: Notify,
}

/// One PUBLISH's place; done when dropped, if not before.
pub struct Turn {
    order: Rc<PublishOrder>,
    number: u64,
    done: bool,
}

impl PublishOrder {
    /// A turn after every turn taken so far (call it before the handler's first await).
    pub fn take(self: &Rc<Self>) -> Turn {
        let number = self.issued.get();
        self.issued.set(number + 1);
        Turn {
            order: self.clone(),
            number,
            done: false,
        }
    }

    fn finish(&self, number: u64) {
        if number != self.done_below.get() {
            self.done_ahead.borrow_mut().insert(number);
            return;
        }
        let mut next = number + 1;
        let mut ahead = self.done_ahead.borrow_mut();
        while ahead.remove(&next) {
            next += 1;
        }
        self.done_below.set(next);
        self.changed.notify_waiters();
    }
}

impl Turn {
    /// Resolves once every earlier turn is done.
    pub async fn ready(&self) {
        loop {
            // Created before the check: `notify_waiters` reaches it even before it is polled.
            let changed = self.order.changed.notified();
            if self.order.done_below.get() == self.number {
                return;
            }
            changed.await;
        }
    }

    /// This PUBLISH has been routed (or refused): later ones may go.
    pub fn finish(mut self) {
        self.done = true;
        self.order.finish(self.number);
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if !self.done {
            self.order.finish(self.number);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_go_in_order_and_a_dropped_one_lets_the_rest_pass() {
        let order = Rc::new(PublishOrder::default());
        let (a, b, c) = (order.take(), order.take(), order.take());
        assert_eq!(order.done_below.get(), 0);
        drop(b); // refused early: done ahead of its place
        assert_eq!(order.done_below.get(), 0, "b cannot pass a");
        c.finish();
        a.finish();
        assert_eq!(order.done_below.get(), 3, "a's finish carries b and c along");
        let d = order.take();
        assert_eq!(d.number, 3);
    }
}
