//! "Test the target" (`Command::TestRule`): one sample sent from this broker, where deliveries
//! run, straight to the rule's target (not through the outbox), answered as a `TestResult`.

use std::time::Instant;

use common::rules::{RuleSource, StatusEvent, TestResult};
use ntex_bytes::Bytes;

use super::Rules;
use super::record::Item;
use super::target::{self, Attempt, Outcome};
use crate::message::{Message, QoS};

/// A topic name a filter matches (wildcard levels become `test`).
fn sample_topic(filter: &str) -> String {
    filter
        .split('/')
        .map(|l| if l == "+" || l == "#" { "test" } else { l })
        .collect::<Vec<_>>()
        .join("/")
}

impl Rules {
    pub async fn test(&self, instance_id: &str, rule_id: &str, request_id: &str) -> TestResult {
        let started = Instant::now();
        let (outcome, status) = self.test_outcome(instance_id, rule_id).await;
        let (delivered, error) = match outcome {
            Ok(()) => (true, None),
            Err(e) => (false, Some(e)),
        };
        TestResult {
            request_id: request_id.to_string(),
            node_id: self.node_id.clone(),
            delivered,
            status,
            latency_ms: started.elapsed().as_millis() as u64,
            error,
        }
    }

    async fn test_outcome(&self, instance_id: &str, rule_id: &str) -> (Result<(), String>, Option<u16>) {
        let Some(broker) = self.broker().upgrade() else {
            return (Err("broker stopping".into()), None);
        };
        let dir = broker.dirs.load();
        let Some(rule) = dir
            .instances
            .get(instance_id)
            .and_then(|i| i.rules.configs.iter().find(|r| r.id == rule_id))
            .cloned()
        else {
            return (Err("rule not in this broker's configuration".into()), None);
        };
        let item = match &rule.source {
            RuleSource::Outflow { topic_filters, .. } => {
                let topic = topic_filters.first().map(|f| sample_topic(f)).unwrap_or_default();
                let payload = Bytes::from_static(br#"{"test":true}"#);
                Item::Message(Message::new(topic, payload, QoS::AtLeastOnce, false))
            }
            RuleSource::Status { .. } => Item::Status(StatusEvent {
                client_id: "GID_test@@@test".into(),
                time: common::time::now_ms(),
                event_type: "connect".into(),
                channel_id: "0".repeat(32),
                client_ip: "192.0.2.1:1".into(),
            }),
            // An inflow rule's "target" is its source: reaching the NATS server is the test.
            RuleSource::Inflow { nats, .. } => {
                let res = target::nats::connect(nats, "mq-broker rule test").await.map(drop);
                return (res, None);
            }
        };
        let t = target::build(&rule, dir.rule_policy, self.broker());
        let attempt = Attempt {
            rule_id,
            instance_id,
            item: &item,
        };
        match t.send(attempt).await {
            Outcome::Delivered { status } => (Ok(()), status),
            Outcome::Retry { status, error } | Outcome::Refused { status, error } => (Err(error), status),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn samples_match_their_filter() {
        assert_eq!(super::sample_topic("T/+/up/#"), "T/test/up/test");
        assert_eq!(super::sample_topic("T/a"), "T/a");
    }
}
