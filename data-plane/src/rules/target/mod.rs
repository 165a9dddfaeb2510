//! Where a rule sends what it took, behind one small trait so a new kind (Kafka next) is one more
//! file: an HTTP(S) webhook (`webhook`), a NATS subject, core or JetStream (`nats`), or another
//! topic of the same instance (`republish`). A target answers each attempt with an `Outcome`;
//! the sender decides what follows (remove, retry with backoff, dead-letter).

pub mod http;
pub mod nats;
pub mod republish;
pub mod webhook;

use std::sync::{Arc, Weak};

use common::rules::{RuleConfig, TargetPolicy};

use super::record::Item;
use crate::core::Broker;
use crate::core::seam::BoxFuture;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered {
        status: Option<u16>,
    },
    /// Worth another attempt later (5xx, 408, 429, timeouts, an unreachable target).
    Retry {
        status: Option<u16>,
        error: String,
    },
    /// Refused for good (other 4xx, a refused address, an item it cannot take): dead-lettered.
    Refused {
        status: Option<u16>,
        error: String,
    },
}

/// Which delivery an attempt is for.
pub struct Attempt<'a> {
    pub rule_id: &'a str,
    pub instance_id: &'a str,
    pub item: &'a Item,
}

pub trait Target: Send + Sync {
    fn send<'a>(&'a self, attempt: Attempt<'a>) -> BoxFuture<'a, Outcome>;

    /// Sends several items of one client, in order; answers for each in order, and may stop after
    /// the first `Retry` (what follows it is not sent, and is sent again later). One at a time
    /// unless the target can pipeline.
    fn send_all<'a>(&'a self, attempts: Vec<Attempt<'a>>) -> BoxFuture<'a, Vec<Outcome>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(attempts.len());
            for a in attempts {
                let o = self.send(a).await;
                let stop = matches!(o, Outcome::Retry { .. });
                out.push(o);
                if stop {
                    break;
                }
            }
            out
        })
    }
}

/// The target a rule's configuration describes.
pub fn build(rule: &RuleConfig, policy: TargetPolicy, broker: Weak<Broker>) -> Arc<dyn Target> {
    use common::rules::RuleTarget;
    match &rule.target {
        RuleTarget::Webhook {
            url,
            format,
            secret,
            timeout_ms,
        } => Arc::new(webhook::Webhook::new(url, *format, secret.clone(), *timeout_ms, policy)),
        RuleTarget::Nats {
            nats,
            subject,
            jetstream,
        } => Arc::new(nats::NatsTarget::new(nats.clone(), subject.clone(), *jetstream)),
        RuleTarget::Republish { topic, qos, retain } => {
            Arc::new(republish::Republish::new(broker, topic.clone(), *qos, *retain))
        }
    }
}
