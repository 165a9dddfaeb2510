//! The subscription index: which sessions receive a topic. A topic trie per instance (one node per
//! filter level, `+` and `#` as their own branches), so routing walks the topic's levels instead of
//! testing every filter; `$share` groups pick one member per message. Pure data: callers lock it.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::FastHash;
use common::qos::QoS;
use common::topic;

/// When a subscriber gets retained messages on SUBSCRIBE (MQTT 5 retain handling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetainHandling {
    /// Always (MQTT 3.1.1 behaviour).
    #[default]
    OnSubscribe,
    /// Only when the subscription did not exist yet.
    OnNewSubscribe,
    Never,
}

impl RetainHandling {
    pub fn from_level(level: u8) -> Self {
        match level {
            1 => Self::OnNewSubscribe,
            2 => Self::Never,
            _ => Self::OnSubscribe,
        }
    }

    pub fn level(self) -> u8 {
        match self {
            Self::OnSubscribe => 0,
            Self::OnNewSubscribe => 1,
            Self::Never => 2,
        }
    }
}

/// What a subscriber asked for with one filter (MQTT 5 subscription options; v3.1.1 uses the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubOptions {
    pub qos: QoS,
    /// Not sent its own messages.
    pub no_local: bool,
    /// Deliveries keep the RETAIN flag as published (otherwise it is cleared, MQTT 3.3.1.3).
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
    /// MQTT 5 subscription identifier, sent back with every message this subscription matches.
    pub id: Option<NonZeroU32>,
}

impl SubOptions {
    /// Plain options at `qos` (everything else off).
    pub fn qos(qos: QoS) -> Self {
        Self {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::OnSubscribe,
            id: None,
        }
    }
}

/// A delivery decided by the index: one per client (MQTT 3.3.4: one copy with the highest QoS of
/// its matching subscriptions, carrying all their identifiers) plus one per matching share group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub client_id: Arc<str>,
    pub qos: QoS,
    pub retain_as_published: bool,
    pub sub_ids: Vec<NonZeroU32>,
}

impl Target {
    fn of(client_id: &Arc<str>, opts: &SubOptions) -> Self {
        Self {
            client_id: client_id.clone(),
            qos: opts.qos,
            retain_as_published: opts.retain_as_published,
            sub_ids: opts.id.into_iter().collect(),
        }
    }

    fn merge(&mut self, opts: &SubOptions) {
        self.qos = self.qos.max(opts.qos);
        self.retain_as_published |= opts.retain_as_published;
        self.sub_ids.extend(opts.id);
    }
}

struct Member {
    client_id: Arc<str>,
    opts: SubOptions,
}

/// The members of one `$share/<group>/<filter>` and its round-robin cursor (atomic, so routing
/// needs only shared access to the index).
struct Group {
    name: Box<str>,
    members: Vec<Member>,
    cursor: AtomicUsize,
}

/// Subscribers of one exact filter.
#[derive(Default)]
struct Subscribers {
    direct: Vec<Member>,
    groups: Vec<Group>,
}

impl Subscribers {
    fn is_empty(&self) -> bool {
        self.direct.is_empty() && self.groups.is_empty()
    }

    /// Adds or replaces; true when it was new.
    fn insert(&mut self, group: Option<&str>, client_id: &str, opts: SubOptions) -> bool {
        let members = match group {
            None => &mut self.direct,
            Some(name) => {
                let at = match self.groups.iter().position(|g| &*g.name == name) {
                    Some(at) => at,
                    None => {
                        self.groups.push(Group {
                            name: name.into(),
                            members: Vec::new(),
                            cursor: AtomicUsize::new(0),
                        });
                        self.groups.len() - 1
                    }
                };
                &mut self.groups[at].members
            }
        };
        match members.iter_mut().find(|m| &*m.client_id == client_id) {
            Some(m) => {
                m.opts = opts;
                false
            }
            None => {
                // Most filters have one subscriber (a device's own topic): room for one, not the
                // four a first push makes; longer lists grow as usual.
                if members.is_empty() {
                    members.reserve_exact(1);
                }
                members.push(Member {
                    client_id: client_id.into(),
                    opts,
                });
                true
            }
        }
    }

    /// True when it was there. A group whose last member leaves is dropped with its cursor.
    fn remove(&mut self, group: Option<&str>, client_id: &str) -> bool {
        let members = match group {
            None => &mut self.direct,
            Some(name) => match self.groups.iter_mut().find(|g| &*g.name == name) {
                Some(g) => &mut g.members,
                None => return false,
            },
        };
        let before = members.len();
        members.retain(|m| &*m.client_id != client_id);
        let removed = members.len() != before;
        self.groups.retain(|g| !g.members.is_empty());
        removed
    }
}

/// One level of the trie.
#[derive(Default)]
struct Node {
    literal: HashMap<Box<str>, Node, FastHash>,
    plus: Option<Box<Node>>,
    /// Subscribers of `<path>/#` (which also matches `<path>` itself).
    hash: Subscribers,
    /// Subscribers of exactly `<path>`.
    exact: Subscribers,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.plus.is_none() && self.hash.is_empty() && self.exact.is_empty()
    }

    /// The subscribers of `levels` below this node, created on the way.
    fn subscribers_mut(&mut self, levels: &[&str]) -> &mut Subscribers {
        match levels {
            [] => &mut self.exact,
            ["#"] => &mut self.hash,
            ["+", rest @ ..] => self.plus.get_or_insert_with(Default::default).subscribers_mut(rest),
            [level, rest @ ..] => self.literal.entry((*level).into()).or_default().subscribers_mut(rest),
        }
    }

    /// The subscribers of exactly `levels`, if the node exists.
    fn find(&self, levels: &[&str]) -> Option<&Subscribers> {
        match levels {
            [] => Some(&self.exact),
            ["#"] => Some(&self.hash),
            ["+", rest @ ..] => self.plus.as_ref()?.find(rest),
            [level, rest @ ..] => self.literal.get(*level)?.find(rest),
        }
    }

    /// Removes a subscriber and prunes emptied nodes; true when it was there.
    fn remove(&mut self, levels: &[&str], group: Option<&str>, client_id: &str) -> bool {
        match levels {
            [] => self.exact.remove(group, client_id),
            ["#"] => self.hash.remove(group, client_id),
            ["+", rest @ ..] => {
                let Some(child) = self.plus.as_mut() else { return false };
                let removed = child.remove(rest, group, client_id);
                if child.is_empty() {
                    self.plus = None;
                }
                removed
            }
            [level, rest @ ..] => {
                let Some(child) = self.literal.get_mut(*level) else {
                    return false;
                };
                let removed = child.remove(rest, group, client_id);
                if child.is_empty() {
                    self.literal.remove(*level);
                }
                removed
            }
        }
    }

    /// Collects the subscribers of every filter matching `levels`.
    fn walk<'a>(&'a self, levels: &[&str], wildcards: bool, out: &mut Vec<&'a Subscribers>) {
        if wildcards && !self.hash.is_empty() {
            out.push(&self.hash);
        }
        let Some((level, rest)) = levels.split_first() else {
            if !self.exact.is_empty() {
                out.push(&self.exact);
            }
            return;
        };
        if let Some(child) = self.literal.get(*level) {
            child.walk(rest, true, out);
        }
        if wildcards && let Some(plus) = &self.plus {
            plus.walk(rest, true, out);
        }
    }
}

/// The subscriptions of one instance.
#[derive(Default)]
struct InstanceIndex {
    root: Node,
    /// Wildcard filters per parent topic (a per-instance quota counts them).
    wildcards: HashMap<Box<str>, usize, FastHash>,
}

#[derive(Default)]
pub struct SubscriptionIndex {
    instances: HashMap<Box<str>, InstanceIndex, FastHash>,
    len: usize,
}

impl SubscriptionIndex {
    /// Adds or replaces (same client, filter and group) a subscription. True when it was new.
    pub fn insert(
        &mut self,
        instance: &str,
        filter: &str,
        group: Option<&str>,
        client_id: &str,
        opts: SubOptions,
    ) -> bool {
        let index = self.instances.entry(instance.into()).or_default();
        let levels: Vec<&str> = filter.split('/').collect();
        let new = index.root.subscribers_mut(&levels).insert(group, client_id, opts);
        if new {
            self.len += 1;
            if topic::is_wildcard(filter) {
                *index.wildcards.entry(topic::parent_of(filter).into()).or_default() += 1;
            }
        }
        new
    }

    /// True when the subscription was there.
    pub fn remove(&mut self, instance: &str, filter: &str, group: Option<&str>, client_id: &str) -> bool {
        let Some(index) = self.instances.get_mut(instance) else {
            return false;
        };
        let levels: Vec<&str> = filter.split('/').collect();
        let removed = index.root.remove(&levels, group, client_id);
        if removed {
            self.len -= 1;
            if topic::is_wildcard(filter) {
                let parent = topic::parent_of(filter);
                if let Some(n) = index.wildcards.get_mut(parent) {
                    *n -= 1;
                    if *n == 0 {
                        index.wildcards.remove(parent);
                    }
                }
            }
            if index.root.is_empty() {
                self.instances.remove(instance);
            }
        }
        removed
    }

    /// The next member of one share group of one filter (see `route`), if the group has any here.
    pub fn pick_member(
        &self,
        instance: &str,
        filter: &str,
        group: &str,
        online: &dyn Fn(&str) -> bool,
    ) -> Option<Target> {
        let index = self.instances.get(instance)?;
        let levels: Vec<&str> = filter.split('/').collect();
        let subs = index.root.find(&levels)?;
        let group = subs.groups.iter().find(|g| &*g.name == group)?;
        Some(pick(group, online))
    }

    /// Whether the client holds this subscription already.
    pub fn contains(&self, instance: &str, filter: &str, group: Option<&str>, client_id: &str) -> bool {
        let Some(index) = self.instances.get(instance) else {
            return false;
        };
        let levels: Vec<&str> = filter.split('/').collect();
        index.root.find(&levels).is_some_and(|subs| {
            let members = match group {
                None => Some(&subs.direct),
                Some(name) => subs.groups.iter().find(|g| &*g.name == name).map(|g| &g.members),
            };
            members.is_some_and(|m| m.iter().any(|m| &*m.client_id == client_id))
        })
    }

    /// Wildcard subscriptions on one parent topic, instance-wide.
    pub fn wildcard_count(&self, instance: &str, parent: &str) -> usize {
        self.instances
            .get(instance)
            .and_then(|i| i.wildcards.get(parent))
            .copied()
            .unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Who receives `topic` published by `publisher`: one target per client with a direct
    /// subscription (no-local ones skip the publisher) and, with `groups`, one member per matching
    /// share group, preferring members `online` says are connected. Wildcards at the first level
    /// never match a `$` topic (MQTT 4.7.2).
    pub fn route(
        &self,
        instance: &str,
        topic_name: &str,
        publisher: &str,
        groups: bool,
        online: &dyn Fn(&str) -> bool,
    ) -> Vec<Target> {
        let Some(index) = self.instances.get(instance) else {
            return Vec::new();
        };
        let levels: Vec<&str> = topic_name.split('/').collect();
        let mut matched = Vec::new();
        index.root.walk(&levels, !topic_name.starts_with('$'), &mut matched);
        let mut out: Vec<Target> = Vec::new();
        // A client has at most one subscription per filter: copies are only possible across filters.
        let overlaps = matched.iter().filter(|s| !s.direct.is_empty()).count() > 1;
        let mut position: HashMap<&str, usize> = HashMap::new();
        for subs in &matched {
            for m in &subs.direct {
                if m.opts.no_local && &*m.client_id == publisher {
                    continue;
                }
                if overlaps {
                    match position.get(&*m.client_id) {
                        Some(&at) => out[at].merge(&m.opts),
                        None => {
                            position.insert(&m.client_id, out.len());
                            out.push(Target::of(&m.client_id, &m.opts));
                        }
                    }
                } else {
                    out.push(Target::of(&m.client_id, &m.opts));
                }
            }
        }
        if groups {
            for subs in &matched {
                for group in &subs.groups {
                    out.push(pick(group, online));
                }
            }
        }
        out
    }
}

/// The next member of a share group by round-robin, among the connected ones if any is.
fn pick(group: &Group, online: &dyn Fn(&str) -> bool) -> Target {
    let n = group.members.len();
    let start = group.cursor.fetch_add(1, Ordering::Relaxed);
    let chosen = (0..n)
        .map(|i| &group.members[(start + i) % n])
        .find(|m| online(&m.client_id))
        .unwrap_or(&group.members[start % n]);
    Target::of(&chosen.client_id, &chosen.opts)
}

#[cfg(test)]
mod tests;
