//! Subscription index: who receives a topic. Per instance and parent topic (wildcards never cross a
//! parent topic), with `$share` groups picking one member. Pure data structure; callers lock it.

use std::collections::HashMap;

use common::topic;

/// One subscription of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sub {
    pub client_id: String,
    pub filter: String,
    pub share_group: Option<String>,
    pub qos: u8,
    pub no_local: bool,
}

/// A delivery decided by the index: a client and the QoS granted by its best matching subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub client_id: String,
    pub qos: u8,
}

#[derive(Default)]
pub struct SubscriptionIndex {
    /// (instance, parent topic) -> subscriptions.
    subs: HashMap<(String, String), Vec<Sub>>,
    /// Round-robin cursor per share group.
    share_cursor: HashMap<(String, String, String), usize>,
}

/// What the broker needs from a subscription index (one lock-protected instance per node); a
/// distributed engine can implement it instead.
pub trait SubscriptionRouter: Send {
    /// Adds or replaces (same client + filter + group) a subscription. Returns true if it was new.
    fn insert(&mut self, instance: &str, sub: Sub) -> bool;
    fn remove(&mut self, instance: &str, client_id: &str, filter: &str, share_group: Option<&str>);
    /// Wildcard subscriptions on one parent topic, instance-wide (SPEC 2 quota).
    fn wildcard_count(&self, instance: &str, parent: &str) -> usize;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Clients that receive `topic` published by `publisher` (see `SubscriptionIndex`).
    fn route(&mut self, instance: &str, topic: &str, publisher: &str, online: &dyn Fn(&str) -> bool) -> Vec<Target>;
}

impl SubscriptionRouter for SubscriptionIndex {
    /// Adds or replaces (same client + raw filter) a subscription. Returns true if it was new.
    fn insert(&mut self, instance: &str, sub: Sub) -> bool {
        let list = self
            .subs
            .entry((instance.to_string(), topic::parent_of(&sub.filter).to_string()))
            .or_default();
        if let Some(existing) = list
            .iter_mut()
            .find(|s| s.client_id == sub.client_id && s.filter == sub.filter && s.share_group == sub.share_group)
        {
            *existing = sub;
            false
        } else {
            list.push(sub);
            true
        }
    }

    fn remove(&mut self, instance: &str, client_id: &str, filter: &str, share_group: Option<&str>) {
        let key = (instance.to_string(), topic::parent_of(filter).to_string());
        if let Some(list) = self.subs.get_mut(&key) {
            list.retain(|s| {
                !(s.client_id == client_id && s.filter == filter && s.share_group.as_deref() == share_group)
            });
            if list.is_empty() {
                self.subs.remove(&key);
            }
        }
    }

    /// Wildcard subscriptions on one parent topic, instance-wide (SPEC 2 quota).
    fn wildcard_count(&self, instance: &str, parent: &str) -> usize {
        self.subs
            .get(&(instance.to_string(), parent.to_string()))
            .map_or(0, |list| list.iter().filter(|s| topic::is_wildcard(&s.filter)).count())
    }

    fn len(&self) -> usize {
        self.subs.values().map(Vec::len).sum()
    }

    /// Clients that receive `topic` published by `publisher`: one delivery per client (highest
    /// QoS among its matching subscriptions) plus one member per matching share group.
    /// `online` tells the share-group pick which members are connected.
    fn route(
        &mut self,
        instance: &str,
        topic_name: &str,
        publisher: &str,
        online: &dyn Fn(&str) -> bool,
    ) -> Vec<Target> {
        let key = (instance.to_string(), topic::parent_of(topic_name).to_string());
        let Some(list) = self.subs.get(&key) else {
            return Vec::new();
        };
        let mut direct: HashMap<&str, u8> = HashMap::new();
        let mut groups: HashMap<(&str, &str), Vec<&Sub>> = HashMap::new();
        for s in list.iter().filter(|s| topic::matches(&s.filter, topic_name)) {
            match &s.share_group {
                None if s.no_local && s.client_id == publisher => {}
                None => {
                    let q = direct.entry(&s.client_id).or_default();
                    *q = (*q).max(s.qos);
                }
                Some(g) => groups.entry((g, &s.filter)).or_default().push(s),
            }
        }
        let mut out: Vec<Target> = direct
            .into_iter()
            .map(|(c, qos)| Target {
                client_id: c.to_string(),
                qos,
            })
            .collect();
        let mut picks = Vec::new();
        for ((group, filter), members) in groups {
            let live: Vec<&&Sub> = members.iter().filter(|s| online(&s.client_id)).collect();
            let pool: Vec<&Sub> = if live.is_empty() {
                members.clone()
            } else {
                live.into_iter().copied().collect()
            };
            let cursor_key = (instance.to_string(), group.to_string(), filter.to_string());
            picks.push((cursor_key, pool.len(), pool));
        }
        for (cursor_key, n, pool) in picks {
            let cursor = self.share_cursor.entry(cursor_key).or_default();
            let pick = pool[*cursor % n];
            *cursor = cursor.wrapping_add(1);
            out.push(Target {
                client_id: pick.client_id.clone(),
                qos: pick.qos,
            });
        }
        out
    }
}

impl SubscriptionIndex {
    pub fn remove_client(&mut self, instance: &str, client_id: &str) {
        self.subs.retain(|(inst, _), list| {
            if inst == instance {
                list.retain(|s| s.client_id != client_id);
            }
            !list.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(c: &str, f: &str, g: Option<&str>) -> Sub {
        Sub {
            client_id: c.into(),
            filter: f.into(),
            share_group: g.map(Into::into),
            qos: 1,
            no_local: false,
        }
    }

    #[test]
    fn routes_direct_and_shared() {
        let mut idx = SubscriptionIndex::default();
        idx.insert("i", sub("a", "T/#", None));
        idx.insert("i", sub("a", "T/x", None));
        idx.insert("i", sub("b", "T/+", Some("g")));
        idx.insert("i", sub("c", "T/+", Some("g")));
        idx.insert("j", sub("d", "T/#", None));
        let r = idx.route("i", "T/x", "z", &|_| true);
        assert_eq!(r.iter().filter(|t| t.client_id == "a").count(), 1);
        assert_eq!(r.len(), 2);
        let r2 = idx.route("i", "T/x", "z", &|_| true);
        assert_ne!(r.last(), r2.last(), "share group round-robins");
        assert_eq!(idx.wildcard_count("i", "T"), 3);
        idx.remove_client("i", "a");
        assert_eq!(idx.route("i", "T/x", "z", &|c| c == "b")[0].client_id, "b");
    }
}
