//! Data inflow: messages of a NATS subject (core, through a queue group named after the rule) or
//! of a JetStream stream (through one durable pull consumer named after the rule, shared by every
//! broker) published into the instance on the rule's topic, with its QoS and retain flag. The
//! queue group or the shared consumer hands each message to one broker: once per cluster. A
//! JetStream message is acknowledged after it was published (redelivered otherwise).

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use common::rules::{InflowSource, RuleConfig, RuleSource};
use futures_util::StreamExt;
use ntex_bytes::Bytes;

use super::state::RuleState;
use super::target::Outcome;
use super::target::nats::connect;
use super::target::republish::publish_into;
use crate::core::Broker;
use crate::message::{Message, QoS};
use crate::metrics;
use crate::sync::backoff::Backoff;

/// The queue group and durable consumer name of a rule.
pub fn consumer_name(rule_id: &str) -> String {
    format!("mq-{rule_id}")
}

/// The topic for a message of `subject`: `{subject}` in the rule's topic is the subject with its
/// `.` turned into `/`.
pub fn topic_for(template: &str, subject: &str) -> String {
    template.replace("{subject}", &subject.replace('.', "/"))
}

struct Inflow {
    rule_id: String,
    instance_id: String,
    source: InflowSource,
    broker: Weak<Broker>,
    /// Taken (matched), published (delivered) and refused (failed) messages, for `RuleStats`.
    state: Arc<RuleState>,
}

/// Runs an inflow rule until aborted (reconnecting with backoff).
pub async fn run(rule: RuleConfig, instance_id: String, broker: Weak<Broker>, state: Arc<RuleState>) {
    let RuleSource::Inflow(source) = rule.source else {
        return;
    };
    let inflow = Inflow {
        rule_id: rule.id,
        instance_id,
        source,
        broker,
        state,
    };
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        let res = match &inflow.source.stream {
            None => inflow.core().await,
            Some(stream) => inflow.jetstream(stream).await,
        };
        let delay = backoff.next_delay();
        if let Err(e) = res {
            tracing::warn!(rule = %inflow.rule_id, error = %e, retry_in_ms = delay.as_millis() as u64, "inflow rule cannot read from NATS");
        }
        tokio::time::sleep(delay).await;
    }
}

impl Inflow {
    async fn publish(&self, subject: &str, payload: Bytes) -> Outcome {
        let Some(broker) = self.broker.upgrade() else {
            return Outcome::Retry {
                status: None,
                error: "broker stopping".into(),
            };
        };
        let topic = topic_for(&self.source.topic, subject);
        let msg = Message::new(topic, payload, QoS::capped(self.source.qos), self.source.retain);
        self.state.matched();
        let out = publish_into(&broker, &self.instance_id, msg).await;
        match &out {
            Outcome::Delivered { .. } => {
                self.state.delivered();
                metrics::rule_inflow(&self.rule_id, "published");
            }
            Outcome::Refused { error, .. } | Outcome::Retry { error, .. } => {
                self.state.failed(error);
                metrics::rule_inflow(&self.rule_id, "refused");
                tracing::warn!(rule = %self.rule_id, error = %error, "inflow message not published");
            }
        }
        out
    }

    async fn core(&self) -> Result<(), String> {
        let client = connect(&self.source.nats, "mq-broker inflow").await?;
        let mut sub = client
            .queue_subscribe(self.source.subject.clone(), consumer_name(&self.rule_id))
            .await
            .map_err(|e| format!("NATS subscribe: {e}"))?;
        tracing::info!(rule = %self.rule_id, subject = %self.source.subject, "inflow rule reading a NATS subject");
        while let Some(m) = sub.next().await {
            // Core NATS is at most once: a message that cannot be published is lost (counted).
            let _ = self
                .publish(m.subject.as_str(), Bytes::copy_from_slice(&m.payload))
                .await;
        }
        Err("NATS subscription ended".into())
    }

    async fn jetstream(&self, stream: &str) -> Result<(), String> {
        let client = connect(&self.source.nats, "mq-broker inflow").await?;
        let js = async_nats::jetstream::new(client);
        let stream = js
            .get_stream(stream)
            .await
            .map_err(|e| format!("JetStream stream {stream}: {e}"))?;
        let name = consumer_name(&self.rule_id);
        let consumer: async_nats::jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(
                &name,
                pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: self.source.subject.clone(),
                    ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(10),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("JetStream consumer {name}: {e}"))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| format!("JetStream consumer {name}: {e}"))?;
        tracing::info!(rule = %self.rule_id, consumer = %name, "inflow rule reading a JetStream stream");
        while let Some(m) = messages.next().await {
            let m = m.map_err(|e| format!("JetStream: {e}"))?;
            let out = self
                .publish(m.subject.as_str(), Bytes::copy_from_slice(&m.payload))
                .await;
            // A message the instance refuses for good is acknowledged too: redelivering it would
            // refuse it again forever.
            if !matches!(out, Outcome::Retry { .. })
                && let Err(e) = m.ack().await
            {
                tracing::debug!(rule = %self.rule_id, error = %e, "JetStream ack failed (redelivered)");
            }
        }
        Err("JetStream consumer ended".into())
    }
}

/// Keeps the rule's task handle type in one place.
pub type Task = tokio::task::JoinHandle<()>;

pub fn spawn(
    rt: &tokio::runtime::Handle,
    rule: RuleConfig,
    instance_id: String,
    broker: Weak<Broker>,
    state: Arc<RuleState>,
) -> Task {
    rt.spawn(run(rule, instance_id, broker, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_map_to_topics() {
        assert_eq!(topic_for("T/in/{subject}", "dev.a.temp"), "T/in/dev/a/temp");
        assert_eq!(topic_for("T/fixed", "x.y"), "T/fixed");
    }
}
