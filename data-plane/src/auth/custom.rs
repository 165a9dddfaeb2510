//! Custom authentication *(docs/custom-auth.md)*: an instance's identities, topic permissions and
//! connect blacklist, indexed for the CONNECT check and the per-packet decisions.

use std::collections::{HashMap, HashSet};

use common::custom_auth::{CustomAuth, CustomIdentity, Effect, IdentityType, PermitAction, SignMode};
use common::signing::{constant_time_eq, verify_mqtt_password};
use common::topic;

/// One permission, as checked.
struct Grant {
    filter: String,
    action: PermitAction,
    effect: Effect,
}

/// The compiled custom authentication of one instance.
#[derive(Default)]
pub struct CustomAuthTable {
    /// By username.
    identities: HashMap<String, CustomIdentity>,
    /// USER permissions by username, CLIENT permissions by client ID (two maps, so a lookup per
    /// delivered message borrows the names instead of building a key).
    by_user: HashMap<String, Vec<Grant>>,
    by_client: HashMap<String, Vec<Grant>>,
    blacklist: HashSet<String>,
}

/// What a client asks to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use<'a> {
    /// PUBLISH to this topic name.
    Publish(&'a str),
    /// SUBSCRIBE to this filter.
    Subscribe(&'a str),
    /// Receive a message on this topic name that no subscription of its own asked for (P2P).
    Receive(&'a str),
}

impl CustomAuthTable {
    pub fn compile(cfg: &CustomAuth) -> Self {
        let (mut by_user, mut by_client) = (HashMap::new(), HashMap::new());
        for p in &cfg.permissions {
            let map: &mut HashMap<String, Vec<Grant>> = match p.identity_type {
                IdentityType::User => &mut by_user,
                IdentityType::Client => &mut by_client,
            };
            map.entry(p.identity.clone()).or_default().push(Grant {
                filter: p.topic.clone(),
                action: p.permit_action,
                effect: p.effect,
            });
        }
        Self {
            identities: cfg.identities.iter().map(|i| (i.username.clone(), i.clone())).collect(),
            by_user,
            by_client,
            blacklist: cfg.connect_blacklist.iter().cloned().collect(),
        }
    }

    pub fn usernames(&self) -> impl Iterator<Item = &str> {
        self.identities.keys().map(String::as_str)
    }

    pub fn is_blacklisted(&self, client_id: &str) -> bool {
        self.blacklist.contains(client_id)
    }

    /// The identity `username` when `password` proves its secret for `client_id` (and a CLIENT
    /// identity belongs to that client ID). Compared in constant time.
    pub fn verify(&self, username: &str, client_id: &str, password: &[u8]) -> Option<&CustomIdentity> {
        let identity = self.identities.get(username)?;
        let bound = match (&identity.identity_type, &identity.client_id) {
            (IdentityType::Client, Some(bound)) => constant_time_eq(bound.as_bytes(), client_id.as_bytes()),
            (IdentityType::Client, None) => false,
            (IdentityType::User, _) => true,
        };
        let proven = match identity.sign_mode {
            SignMode::Origin => constant_time_eq(identity.secret.as_bytes(), password),
            SignMode::Signed => verify_mqtt_password(&identity.secret, client_id, password),
        };
        (bound & proven).then_some(identity)
    }

    /// The identity as it is now, to tell whether a live connection's still holds.
    pub fn identity(&self, username: &str) -> Option<&CustomIdentity> {
        self.identities.get(username)
    }

    /// Whether the client that connected as `username` with `client_id` may do this: the
    /// permissions of its username (USER) and of its client ID (CLIENT) together; a matching DENY
    /// wins over any ALLOW, and nothing matching means no. A subscription is allowed when an ALLOW
    /// covers its whole filter and no DENY overlaps it (it could deliver denied messages).
    pub fn allows(&self, username: &str, client_id: &str, what: Use<'_>) -> bool {
        let grants = (self.by_user.get(username).into_iter())
            .chain(self.by_client.get(client_id))
            .flatten();
        let mut allowed = false;
        for g in grants {
            let (applies, denied_by, allowed_by) = match what {
                Use::Publish(t) => (
                    g.action.allows_publish(),
                    topic::matches(&g.filter, t),
                    topic::matches(&g.filter, t),
                ),
                Use::Receive(t) => (
                    g.action.allows_subscribe(),
                    topic::matches(&g.filter, t),
                    topic::matches(&g.filter, t),
                ),
                Use::Subscribe(f) => (
                    g.action.allows_subscribe(),
                    topic::filters_overlap(&g.filter, f),
                    topic::filter_covers(&g.filter, f),
                ),
            };
            if !applies {
                continue;
            }
            match g.effect {
                Effect::Deny if denied_by => return false,
                Effect::Allow if allowed_by => allowed = true,
                _ => {}
            }
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use common::custom_auth::CustomPermission;
    use common::signing::mqtt_password;

    use super::*;

    fn permission(
        identity_type: IdentityType,
        identity: &str,
        topic: &str,
        action: PermitAction,
        effect: Effect,
    ) -> CustomPermission {
        CustomPermission {
            identity_type,
            identity: identity.into(),
            topic: topic.into(),
            permit_action: action,
            effect,
        }
    }

    fn table() -> CustomAuthTable {
        CustomAuthTable::compile(&CustomAuth {
            identities: vec![
                CustomIdentity {
                    username: "fleet".into(),
                    secret: "s3cret".into(),
                    identity_type: IdentityType::User,
                    client_id: None,
                    sign_mode: SignMode::Origin,
                },
                CustomIdentity {
                    username: "pump-7".into(),
                    secret: "k".into(),
                    identity_type: IdentityType::Client,
                    client_id: Some("pump7".into()),
                    sign_mode: SignMode::Signed,
                },
            ],
            permissions: vec![
                permission(IdentityType::User, "fleet", "T/#", PermitAction::PubSub, Effect::Allow),
                permission(
                    IdentityType::User,
                    "fleet",
                    "T/secret/#",
                    PermitAction::Sub,
                    Effect::Deny,
                ),
                permission(
                    IdentityType::Client,
                    "pump7",
                    "T/pump7/+",
                    PermitAction::Pub,
                    Effect::Allow,
                ),
                permission(
                    IdentityType::Client,
                    "pump7",
                    "T/pump7/cmd",
                    PermitAction::Pub,
                    Effect::Deny,
                ),
            ],
            connect_blacklist: vec!["stolen".into()],
        })
    }

    #[test]
    fn both_sign_modes_and_the_bound_client_id() {
        let t = table();
        assert!(t.verify("fleet", "any-client", b"s3cret").is_some());
        assert!(t.verify("fleet", "any-client", b"s3cre").is_none());
        assert!(t.verify("nobody", "any-client", b"s3cret").is_none());
        let signed = mqtt_password("k", "pump7");
        assert!(t.verify("pump-7", "pump7", signed.as_bytes()).is_some());
        assert!(
            t.verify("pump-7", "pump7", b"k").is_none(),
            "SIGNED does not take the secret itself"
        );
        let other = mqtt_password("k", "pump8");
        assert!(
            t.verify("pump-7", "pump8", other.as_bytes()).is_none(),
            "bound to pump7"
        );
        assert!(t.is_blacklisted("stolen") && !t.is_blacklisted("pump7"));
    }

    #[test]
    fn deny_wins_and_nothing_matching_is_no() {
        let t = table();
        assert!(t.allows("fleet", "c", Use::Publish("T/a/b")));
        assert!(
            t.allows("fleet", "c", Use::Publish("T/secret/x")),
            "the DENY is for SUB only"
        );
        assert!(t.allows("fleet", "c", Use::Subscribe("T/a/+")));
        assert!(!t.allows("fleet", "c", Use::Subscribe("T/secret/x")));
        assert!(
            !t.allows("fleet", "c", Use::Subscribe("T/#")),
            "overlaps the denied T/secret/#"
        );
        assert!(!t.allows("fleet", "c", Use::Receive("T/secret/x")));
        assert!(t.allows("pump-7", "pump7", Use::Publish("T/pump7/up")));
        assert!(!t.allows("pump-7", "pump7", Use::Publish("T/pump7/cmd")));
        assert!(!t.allows("pump-7", "pump7", Use::Subscribe("T/pump7/up")), "PUB only");
        assert!(!t.allows("pump-7", "pump7", Use::Publish("T/other")));
        // A USER identity's client also gets its client ID's grants.
        assert!(t.allows("fleet", "pump7", Use::Publish("T/x")));
        assert!(!t.allows("fleet", "pump7", Use::Publish("T/pump7/cmd")));
    }
}
