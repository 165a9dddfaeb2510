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
            RuleSource::Inflow(i) => {
                let res = target::nats::connect(&i.nats, "mq-broker rule test").await.map(drop);
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
    use std::sync::Arc;

    use common::rules::{OutboxLimits, RuleConfig, RuleSource, RuleTarget, TargetPolicy, WebhookFormat};
    use common::snapshot::{InstanceConfig, Snapshot, SnapshotContent};

    use crate::core::{Broker, Limits, Parts};
    use crate::directory::Directories;
    use crate::rules::Rules;
    use crate::store::FjallStore;

    const INST: &str = "mqtt-abcdefabcdef";

    #[test]
    fn samples_match_their_filter() {
        assert_eq!(super::sample_topic("T/+/up/#"), "T/test/up/test");
        assert_eq!(super::sample_topic("T/a"), "T/a");
    }

    fn hook_rule(id: &str, url: String) -> RuleConfig {
        RuleConfig {
            id: id.into(),
            name: id.into(),
            enabled: false,
            source: RuleSource::Outflow {
                topic_filters: vec!["T/+/up".into()],
                group_ids: vec![],
            },
            target: RuleTarget::Webhook {
                url,
                format: WebhookFormat::Json,
                secret: None,
                timeout_ms: 2_000,
            },
            outbox: OutboxLimits::default(),
        }
    }

    /// A test sends one sample to the target from the broker and reports its answer; disabled
    /// rules can be tested too, and the broker's address policy applies.
    #[tokio::test]
    async fn a_test_sends_one_sample_and_reports_the_answer() {
        let got = Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
        let seen = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::Json<serde_json::Value>| async move {
                seen.lock().unwrap().push(body.0);
                axum::http::StatusCode::ACCEPTED
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let dirs = Directories::new(None);
        let inst = InstanceConfig {
            rules: vec![
                hook_rule("rule-000000000000000a", format!("http://127.0.0.1:{port}/hook")),
                hook_rule("rule-000000000000000b", "http://169.254.169.254/latest".into()),
            ],
            id: INST.into(),
            name: "t".into(),
            quotas: Default::default(),
            reject_duplicate_client_id: false,
            parent_topics: vec!["T".into()],
            group_ids: vec![],
            access_keys: vec![],
            device_credentials: vec![],
            revoked_tokens: vec![],
            custom_auth: Default::default(),
        };
        let content = SnapshotContent {
            rule_policy: TargetPolicy {
                allow_loopback: true,
                allow_private: false,
            },
            token_keys: vec![],
            instances: vec![inst],
        };
        dirs.apply_snapshot(Snapshot::new(1, content)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = FjallStore::open_shared(dir.path()).unwrap();
        let (parts, _) = Parts::embedded(store.clone()).unwrap();
        let limits = Limits {
            max_inflight: 8,
            max_queued: 8,
            max_queued_bytes: 1 << 20,
        };
        let broker = Arc::new(Broker::new(dirs, parts, limits));
        let rules = Rules::start(&store, "node-a", Default::default()).unwrap();
        rules.attach(&broker);

        let ok = rules.test(INST, "rule-000000000000000a", "req-1").await;
        assert!(ok.delivered, "{ok:?}");
        assert_eq!(
            (ok.status, ok.node_id.as_str(), ok.request_id.as_str()),
            (Some(202), "node-a", "req-1")
        );
        let sample = got.lock().unwrap()[0].clone();
        assert_eq!(sample["topic"], "T/test/up");
        assert_eq!(sample["ruleId"], "rule-000000000000000a");

        let refused = rules.test(INST, "rule-000000000000000b", "req-2").await;
        assert!(!refused.delivered);
        assert!(
            refused
                .error
                .unwrap()
                .starts_with("target address refused (link_local)")
        );
        let missing = rules.test(INST, "rule-0000000000000fff", "req-3").await;
        assert_eq!(
            missing.error.as_deref(),
            Some("rule not in this broker's configuration")
        );
        assert_eq!(got.lock().unwrap().len(), 1);
    }
}
