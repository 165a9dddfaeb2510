//! Republish target: the message again on another topic of the same instance, with the rule's
//! QoS and retain flag, the publisher's client ID and MQTT 5 properties kept. Messages a rule
//! publishes do not run outflow rules again (no loops between rules).

use std::sync::Weak;

use super::{Attempt, Outcome, Target};
use crate::core::Broker;
use crate::core::seam::BoxFuture;
use crate::message::{Message, MsgId, QoS};
use crate::rules::record::Item;

pub struct Republish {
    broker: Weak<Broker>,
    topic: String,
    qos: u8,
    retain: bool,
}

impl Republish {
    pub fn new(broker: Weak<Broker>, topic: String, qos: u8, retain: bool) -> Self {
        Self {
            broker,
            topic,
            qos,
            retain,
        }
    }

    async fn publish(&self, a: Attempt<'_>) -> Outcome {
        let Some(broker) = self.broker.upgrade() else {
            return Outcome::Retry {
                status: None,
                error: "broker stopping".into(),
            };
        };
        let msg = match a.item {
            Item::Message(m) => Message {
                id: MsgId::new(),
                topic: self.topic.as_str().into(),
                qos: QoS::capped(self.qos),
                retain: self.retain,
                ..m.clone()
            },
            Item::Status(_) => {
                let body = a.item.json_body(a.rule_id, a.instance_id);
                Message::new(self.topic.as_str(), body.into(), QoS::capped(self.qos), self.retain)
            }
        };
        publish_into(&broker, a.instance_id, msg).await
    }
}

/// Publishes a message of a rule into an instance (republish, inflow), without running outflow
/// rules for it. Off the async runtime: the store may flush to disk.
pub async fn publish_into(broker: &std::sync::Arc<Broker>, instance_id: &str, msg: Message) -> Outcome {
    let Some(inst) = broker.dirs.load().instances.get(instance_id).cloned() else {
        return Outcome::Refused {
            status: None,
            error: "instance not served here".into(),
        };
    };
    if common::topic::validate_topic_name(&msg.topic, inst.quotas.max_topic_length as usize).is_err()
        || msg.topic.starts_with('$')
        || !inst.has_parent(common::topic::parent_of(&msg.topic))
    {
        return Outcome::Refused {
            status: None,
            error: format!("topic {:?} is not valid on the instance", msg.topic.as_str()),
        };
    }
    let (b, rt) = (broker.clone(), tokio::runtime::Handle::current());
    let done = tokio::task::spawn_blocking(move || rt.block_on(b.publish_unruled(&inst, msg))).await;
    match done {
        Ok(Ok(_)) => Outcome::Delivered { status: None },
        Ok(Err(e)) => Outcome::Retry {
            status: None,
            error: e.to_string(),
        },
        Err(e) => Outcome::Retry {
            status: None,
            error: e.to_string(),
        },
    }
}

impl Target for Republish {
    fn send<'a>(&'a self, attempt: Attempt<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(self.publish(attempt))
    }
}
