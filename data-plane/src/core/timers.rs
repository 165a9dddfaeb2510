//! The broker's clocks: deferred wills fire when due (if the credentials that left them still
//! hold), persistent sessions expire, and offline messages past their retention are deleted.

use std::sync::Arc;
use std::time::Duration;

use super::Broker;
use super::wills::DeferredWill;
use crate::message::Properties;
use crate::metrics;

impl Broker {
    /// Keeps a will until its delay passes (or the client returns).
    pub async fn defer_will(&self, will: DeferredWill) {
        if let Err(e) = self.wills.schedule(will).await {
            tracing::error!(error = %e, "cannot keep a delayed will");
        }
    }

    /// Publishes a will if the credentials that left it still hold and still allow its topic.
    pub async fn fire_will(&self, mut will: DeferredWill) {
        let dir = self.dirs.load();
        let now = common::time::now_ms();
        if let Some(secs) = will.expiry_secs {
            will.msg.props.get_or_insert_default().expires_at_ms = Some(Properties::deadline(secs));
        }
        let allowed = will
            .credential
            .still_valid(&dir, &will.instance_id, &will.client_id, now)
            .map_err(|w| w.label())
            .and_then(|()| dir.instances.get(&will.instance_id).ok_or("instance_gone"))
            .and_then(|inst| {
                will.credential
                    .may_publish(inst, &will.client_id, &will.msg.topic)
                    .map(|()| inst.clone())
                    .map_err(|_| "not_authorized")
            })
            .and_then(|inst| {
                // The same size limit as any PUBLISH of the instance.
                (will.msg.payload.len() <= inst.quotas.max_message_size as usize)
                    .then_some(inst)
                    .ok_or("too_large")
            });
        match allowed {
            Ok(inst) => {
                // And the same rate: a storm of wills waits its turn like publishers do.
                let wait = self.throttle(&inst, 1);
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                match self.publish(&inst, will.msg).await {
                    Ok(routed) => {
                        metrics::will("published");
                        // Its deliveries count too (in + out), slowing what comes next.
                        if routed.total() > 0 {
                            self.throttle(&inst, routed.total() as u32);
                        }
                    }
                    Err(e) => tracing::error!(error = %e, client_id = %will.client_id, "will not stored"),
                }
            }
            Err(reason) => {
                metrics::will("refused");
                metrics::refused(metrics::Packet::Will, reason);
                tracing::info!(client_id = %will.client_id, reason, "will not published");
            }
        }
    }

    /// Fires deferred wills when they are due. Runs for the life of the process.
    pub async fn run_will_timer(self: Arc<Self>) {
        loop {
            let now = common::time::now_ms();
            for will in self.wills.take_due(now) {
                self.fire_will(will).await;
            }
            // Looks again at the next due time, a change of the schedule, or after a minute.
            let wait_ms = self
                .wills
                .next_due_ms()
                .map_or(60_000, |at| (at - now).clamp(1, 60_000));
            let changed = self.wills.changed();
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
            }
        }
    }

    /// Removes persistent sessions whose expiry passed, with their subscriptions and messages.
    pub async fn expire_sessions(&self) -> usize {
        let expired = self.sessions.expire(common::time::now_ms() as u64);
        for e in &expired {
            for (raw, _) in &e.subs {
                self.unindex(&e.instance_id, &e.client_id, raw).await;
            }
            if let Err(err) = self.offline.purge(&e.instance_id, &e.client_id).await {
                metrics::store_error("purge");
                tracing::error!(error = %err, "cannot delete an expired session's messages");
            }
        }
        if !expired.is_empty() {
            tracing::info!(sessions = expired.len(), "expired persistent sessions removed");
            metrics::sessions_expired(expired.len());
        }
        expired.len()
    }

    /// Deletes offline and retained messages past their instance's retention (blocking disk work: run it on a
    /// blocking thread) and updates the stored-messages gauge.
    pub fn expire_offline_messages(&self) {
        let dir = self.dirs.load();
        for inst in dir.instances.values() {
            let max_age = inst.quotas.offline_retention_secs.saturating_mul(1000);
            match self.retained.expire(&inst.id, max_age) {
                Ok(n) if n > 0 => {
                    tracing::info!(instance = %inst.id, retained = n, "expired retained messages removed")
                }
                Ok(_) => {}
                Err(e) => {
                    metrics::store_error("expire");
                    tracing::error!(error = %e, "retained message expiry failed");
                }
            }
            match self.offline.expire(&inst.id, max_age) {
                Ok(n) if n > 0 => metrics::offline_dropped(metrics::OFFLINE_EXPIRED, n),
                Ok(_) => {}
                Err(e) => {
                    metrics::store_error("expire");
                    tracing::error!(error = %e, "offline message expiry failed");
                }
            }
        }
        metrics::offline_messages(self.offline_message_count());
    }
}
