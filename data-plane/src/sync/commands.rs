//! Broadcast commands from the control plane: each broker acts on what it holds. CloseConnection
//! kicks the client's live connection here; SendMessage publishes into the local router as a
//! message from the backend (subscribers, P2P targets, offline queues of persistent sessions).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::sync::{Command, TraceAction, TraceAnswer, TraceQuery};
use common::topic;
use ntex_bytes::{ByteString, Bytes};
use thiserror::Error;

use crate::cluster::Cluster;
use crate::core::Broker;
use crate::message::{Message, MsgId, QoS};
use crate::sync::backoff::Backoff;
use crate::sync::client::{Client, WAIT_SECS};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CommandError {
    #[error("payload is not Base64")]
    Payload,
    #[error("topic {0:?} is not valid on this instance")]
    Topic(String),
    #[error("message not stored: {0}")]
    Store(String),
}

/// Polls and executes commands. In a cluster every broker polls, and a SendMessage is claimed so
/// that exactly one broker publishes it (the cluster routes it everywhere from there).
pub async fn run(client: Arc<Client>, broker: Arc<Broker>, cluster: Option<Arc<Cluster>>) {
    let mut after: Option<i64> = None;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        match client.commands(after, WAIT_SECS).await {
            Ok(batch) => {
                backoff.reset();
                for c in batch.commands {
                    if let Command::TestRule { .. } = &c.command {
                        test_rule(&client, &broker, c.command);
                        continue;
                    }
                    if let Command::TraceQuery { request_id, query } = c.command {
                        tokio::spawn(answer_trace(client.clone(), broker.clone(), request_id, query));
                        continue;
                    }
                    if let (Some(cluster), Command::SendMessage { .. }) = (&cluster, &c.command)
                        && !cluster.claim_command(c.seq).await
                    {
                        continue;
                    }
                    let (b, seq, rt) = (broker.clone(), c.seq, tokio::runtime::Handle::current());
                    // Publishing may flush the store to disk: off the runtime, one at a time (order).
                    match tokio::task::spawn_blocking(move || rt.block_on(execute(&b, c.command))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::warn!(seq, error = %e, "command refused"),
                        Err(e) => tracing::error!(seq, error = %e, "command failed"),
                    }
                }
                // Also right when the control plane's sequence went backwards (database reset).
                after = Some(batch.latest_seq);
            }
            Err(e) => {
                let delay = backoff.next_delay();
                crate::metrics::sync_error("commands");
                tracing::debug!(error = %e, retry_in_ms = delay.as_millis() as u64, "commands poll failed");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Sends a rule's sample from this broker when the command names it, on the rules runtime (where
/// deliveries run), once the configuration holds the rule as saved; answers the control plane.
fn test_rule(client: &Arc<Client>, broker: &Arc<Broker>, command: Command) {
    let Command::TestRule {
        instance_id,
        rule_id,
        request_id,
        node_id,
        min_version,
    } = command
    else {
        return;
    };
    let Some(rules) = broker.rules().cloned() else { return };
    if rules.node_id() != node_id {
        return;
    }
    let (client, broker) = (client.clone(), broker.clone());
    rules.clone().runtime().spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while broker.dirs.load().version < min_version && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let result = rules.test(&instance_id, &rule_id, &request_id).await;
        tracing::info!(rule = %rule_id, delivered = result.delivered, status = result.status, "rule target tested");
        if let Err(e) = client.command_result(&result).await {
            crate::metrics::sync_error("command_results");
            tracing::warn!(error = %e, "cannot report a rule test");
        }
    });
}

/// Answers a trace query with the records this broker holds (none when tracing is off), read off
/// the runtime; the control plane merges every broker's answer.
async fn answer_trace(client: Arc<Client>, broker: Arc<Broker>, request_id: String, query: TraceQuery) {
    let found = match broker.tracer().cloned() {
        None => Ok((Vec::new(), false)),
        Some(tracer) => tokio::task::spawn_blocking(move || tracer.query(&query))
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("trace query failed: {e}"))),
    };
    let (records, truncated) = found.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "trace query failed; answering with nothing");
        (Vec::new(), false)
    });
    let answer = TraceAnswer {
        request_id,
        node_id: client.node_id().to_string(),
        records,
        truncated,
    };
    if let Err(e) = client.trace_answer(&answer).await {
        crate::metrics::sync_error("trace_answers");
        tracing::warn!(error = %e, "cannot answer a trace query");
    }
}

/// Acts on one command. Instances and clients this node does not hold are not an error: commands
/// are broadcast to every broker.
pub async fn execute(broker: &Broker, command: Command) -> Result<(), CommandError> {
    match command {
        // Answered by `test_rule` and `answer_trace`, which need the link to the control plane.
        Command::TestRule { .. } | Command::TraceQuery { .. } => Ok(()),
        Command::Unknown => {
            tracing::warn!("a command of a newer control plane ignored");
            Ok(())
        }
        Command::CloseConnection { instance_id, client_id } => {
            let closed = broker.close_client(&instance_id, &client_id);
            if closed > 0 {
                tracing::info!(instance = %instance_id, client_id = %client_id, "connection closed by the control plane");
                crate::metrics::kicks(closed);
            }
            Ok(())
        }
        Command::SendMessage {
            instance_id,
            topic: topic_name,
            payload,
            qos,
            msg_id,
            rules_node,
        } => {
            let Some(inst) = broker.dirs.load().instances.get(&instance_id).cloned() else {
                return Ok(());
            };
            let payload = base64::engine::general_purpose::STANDARD
                .decode(payload.as_bytes())
                .map_err(|_| CommandError::Payload)?;
            if topic::validate_topic_name(&topic_name, inst.quotas.max_topic_length as usize).is_err()
                || topic_name.starts_with('$')
                || !inst.has_parent(topic::parent_of(&topic_name))
            {
                return Err(CommandError::Topic(topic_name));
            }
            let mut msg = Message::new(topic_name, Bytes::from(payload), QoS::capped(qos), false);
            // The ID the control plane answered SendMessage with, so traces of it line up.
            if let Some(id) = MsgId::parse(&msg_id) {
                msg.id = id;
            }
            let id = msg.id;
            // Brokers that each publish the message to their own clients must not each run the
            // instance's outflow rules: only the one named does.
            let ours = rules_node
                .as_deref()
                .is_none_or(|node| broker.rules().is_none_or(|r| r.node_id() == node));
            let routed = if ours {
                broker.publish(&inst, msg).await
            } else {
                broker.publish_unruled(&inst, msg).await
            };
            let routed = routed.map_err(|e| CommandError::Store(e.to_string()))?;
            // Published once for the trace: by the broker that also runs the rules.
            if ours && let Some(tracer) = broker.tracer() {
                tracer.record(&instance_id, id, &ByteString::new(), TraceAction::PubBackend);
            }
            crate::metrics::backend_message();
            tracing::debug!(msg_id = %msg_id, delivered = routed.total(), "backend message routed");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use common::snapshot::InstanceConfig;

    use super::*;
    use crate::core::{Limits, Parts};
    use crate::directory::Directories;
    use crate::directory::tests::{instance, snapshot};
    use crate::store::FjallStore;

    const INST: &str = "mqtt-abcdefabcdef";

    fn broker(dir: &std::path::Path) -> Broker {
        broker_with_rules(dir, Vec::new())
    }

    fn broker_with_rules(dir: &std::path::Path, rules: Vec<common::rules::RuleConfig>) -> Broker {
        let dirs = Directories::new(None);
        let inst = InstanceConfig {
            rules,
            ..instance(INST, &["GID_alpha"])
        };
        dirs.apply_snapshot(snapshot(1, vec![inst])).unwrap();
        let (parts, _) = Parts::embedded(FjallStore::open_shared(dir).unwrap()).unwrap();
        Broker::new(
            dirs,
            parts,
            Limits {
                max_inflight: 8,
                max_queued: 8,
                max_queued_bytes: 1 << 20,
            },
        )
    }

    fn send(instance: &str, topic: &str, payload: &str) -> Command {
        Command::SendMessage {
            rules_node: None,
            instance_id: instance.into(),
            topic: topic.into(),
            payload: payload.into(),
            qos: 1,
            msg_id: "0".repeat(32),
        }
    }

    /// Brokers that each publish a SendMessage to their own clients: only the named one runs the
    /// instance's outflow rules for it.
    #[tokio::test]
    async fn only_the_named_node_runs_outflow_rules_for_a_backend_message() {
        use common::rules::{OutboxLimits, RuleConfig, RuleSource, RuleTarget, WebhookFormat};
        let dir = tempfile::tempdir().unwrap();
        let rule = RuleConfig {
            id: "rule-00000000000000aa".into(),
            name: "r".into(),
            enabled: true,
            source: RuleSource::Outflow {
                topic_filters: vec!["T/#".into()],
                group_ids: vec![],
            },
            // Nobody listens there: the delivery stays queued, which is all this test looks at.
            target: RuleTarget::Webhook {
                url: "http://192.0.2.1:9/hook".into(),
                format: WebhookFormat::Json,
                secret: None,
                timeout_ms: 100,
            },
            outbox: OutboxLimits::default(),
        };
        let b = Arc::new(broker_with_rules(dir.path(), vec![rule]));
        let rules_dir = tempfile::tempdir().unwrap();
        let store = FjallStore::open(rules_dir.path()).unwrap();
        let rules = crate::rules::Rules::start(&store, "node-a", Default::default()).unwrap();
        rules.attach(&b);
        let mut cmd = send(INST, "T/x", "aGk=");
        let matched = || rules.stats().first().map_or(0, |s| s.matched);
        for (node, expected) in [(Some("node-b"), 0), (Some("node-a"), 1), (None, 2)] {
            if let Command::SendMessage { rules_node, .. } = &mut cmd {
                *rules_node = node.map(str::to_string);
            }
            assert_eq!(execute(&b, cmd.clone()).await, Ok(()));
            assert_eq!(matched(), expected, "rules_node {node:?}");
        }
    }

    #[tokio::test]
    async fn commands_for_what_others_hold_are_ignored_and_bad_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        let kick = Command::CloseConnection {
            instance_id: INST.into(),
            client_id: "GID_alpha@@@nobody".into(),
        };
        assert_eq!(execute(&b, kick).await, Ok(()));
        assert_eq!(execute(&b, send("mqtt-000000000000", "T/x", "aGk=")).await, Ok(()));
        assert_eq!(execute(&b, send(INST, "T/x", "aGk=")).await, Ok(()));
        assert_eq!(
            execute(&b, send(INST, "T/x", "not base64!")).await,
            Err(CommandError::Payload)
        );
        assert_eq!(
            execute(&b, send(INST, "Nope/x", "aGk=")).await,
            Err(CommandError::Topic("Nope/x".into()))
        );
        assert!(matches!(
            execute(&b, send(INST, "$SYS/x", "aGk=")).await,
            Err(CommandError::Topic(_))
        ));
    }
}
