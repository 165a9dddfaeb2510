//! An instance's rules compiled from the snapshot for the hot path: which enabled outflow rules a
//! topic and publisher match, and which status rules a client's events go to. An instance without
//! rules holds empty lists, so the publish path pays one length check.

use std::sync::Arc;

use common::rules::{OutboxLimits, RuleConfig, RuleSource};
use common::topic;

/// One instance's rules.
#[derive(Debug, Default)]
pub struct InstanceRules {
    /// Every rule of the instance as the snapshot has it (enabled or not), for the engine.
    pub configs: Vec<RuleConfig>,
    pub outflow: Vec<OutflowMatch>,
    pub status: Vec<GroupMatch>,
}

impl InstanceRules {
    pub fn compile(rules: &[RuleConfig]) -> Self {
        let mut out = Self {
            configs: rules.to_vec(),
            ..Self::default()
        };
        for rule in rules.iter().filter(|r| r.enabled) {
            let id: Arc<str> = Arc::from(rule.id.as_str());
            match &rule.source {
                RuleSource::Outflow {
                    topic_filters,
                    group_ids,
                } => out.outflow.push(OutflowMatch {
                    filters: topic_filters.clone(),
                    groups: GroupMatch {
                        rule_id: id,
                        groups: group_ids.clone(),
                        limits: rule.outbox,
                    },
                }),
                RuleSource::Status { group_ids } => out.status.push(GroupMatch {
                    rule_id: id,
                    groups: group_ids.clone(),
                    limits: rule.outbox,
                }),
                RuleSource::Inflow(_) => {}
            }
        }
        out
    }
}

/// A rule limited to some group IDs (none: every client).
#[derive(Debug)]
pub struct GroupMatch {
    pub rule_id: Arc<str>,
    groups: Vec<String>,
    pub limits: OutboxLimits,
}

impl GroupMatch {
    /// A client ID is `<group>@@@<device>`; a backend message (no client) matches only a rule
    /// without group IDs.
    pub fn covers(&self, client_id: &str) -> bool {
        self.groups.is_empty()
            || client_id
                .split_once("@@@")
                .is_some_and(|(g, _)| self.groups.iter().any(|x| x == g))
    }
}

#[derive(Debug)]
pub struct OutflowMatch {
    filters: Vec<String>,
    pub groups: GroupMatch,
}

impl OutflowMatch {
    pub fn matches(&self, topic_name: &str, publisher: &str) -> bool {
        self.groups.covers(publisher) && self.filters.iter().any(|f| topic::matches(f, topic_name))
    }
}

#[cfg(test)]
mod tests {
    use common::rules::{OutboxLimits, RuleTarget};

    use super::*;

    fn rule(id: &str, enabled: bool, source: RuleSource) -> RuleConfig {
        RuleConfig {
            id: id.into(),
            name: id.into(),
            enabled,
            source,
            target: RuleTarget::Republish {
                topic: "T/copy".into(),
                qos: 0,
                retain: false,
            },
            outbox: OutboxLimits::default(),
        }
    }

    #[test]
    fn only_enabled_rules_match_their_filters_and_groups() {
        let rules = InstanceRules::compile(&[
            rule(
                "a",
                true,
                RuleSource::Outflow {
                    topic_filters: vec!["T/+/up".into()],
                    group_ids: vec!["GID_a".into()],
                },
            ),
            rule(
                "b",
                false,
                RuleSource::Outflow {
                    topic_filters: vec!["#".into()],
                    group_ids: vec![],
                },
            ),
            rule("c", true, RuleSource::Status { group_ids: vec![] }),
        ]);
        assert_eq!(rules.configs.len(), 3);
        assert_eq!(rules.outflow.len(), 1);
        let a = &rules.outflow[0];
        assert!(a.matches("T/x/up", "GID_a@@@d1"));
        assert!(!a.matches("T/x/down", "GID_a@@@d1"));
        assert!(!a.matches("T/x/up", "GID_b@@@d1"));
        assert!(!a.matches("T/x/up", ""), "backend messages have no group");
        assert!(rules.status[0].covers("GID_z@@@q"));
    }
}
