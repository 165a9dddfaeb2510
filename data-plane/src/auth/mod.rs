//! One owner of "may this client do this?": authentication at CONNECT, and every later decision
//! (publish, subscribe, will, delivery of P2P and queued messages, and the re-check after a
//! configuration change) from the same rules, for every authentication mode.

mod connect;
mod custom;
mod tokens;

use common::token::{TokenAction, TokenError};
use common::topic;

pub use self::connect::{AuthError, authenticate, instance_named, open_principal};
pub use self::custom::CustomAuthTable;
use self::custom::Use;
pub use self::tokens::Tokens;
use crate::directory::{Directory, Instance};

/// How the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Signature,
    Token,
    DeviceCredential,
    /// A custom-auth identity of the instance (`key_id` is its username).
    Custom,
    /// Development listener: authentication off.
    Open,
}

/// What a connection authenticated with; decides everything it may do afterwards.
#[derive(Debug, Clone)]
pub struct Credential {
    pub mode: Mode,
    /// The AccessKeyId (Signature, Token), DeviceAccessKeyId (DeviceCredential) or username
    /// (Custom); empty when open.
    pub key_id: String,
    /// The live tokens of a Token client (replaced by `$SYS/uploadToken`).
    pub tokens: Tokens,
    /// A keyed hash of the secret the client proved it holds (Signature, DeviceCredential, Custom
    /// with its sign mode and bound client ID): a refreshed or re-registered secret withdraws
    /// connections made with the old one.
    pub secret_fingerprint: u64,
}

/// A keyed hash of a secret (the key is random per process, so the value means nothing outside it).
pub fn fingerprint(secret: &str) -> u64 {
    use std::hash::BuildHasher;
    static KEY: std::sync::OnceLock<std::collections::hash_map::RandomState> = std::sync::OnceLock::new();
    KEY.get_or_init(Default::default).hash_one(secret)
}

/// What a custom-auth connection proved: the identity's secret, sign mode and bound client ID, so
/// that changing any of them withdraws the connections made before.
pub fn custom_fingerprint(identity: &common::custom_auth::CustomIdentity) -> u64 {
    fingerprint(&format!(
        "{}\0{}\0{}\0{}",
        identity.identity_type,
        identity.sign_mode,
        identity.client_id.as_deref().unwrap_or(""),
        identity.secret
    ))
}

/// An authenticated client.
pub struct Principal {
    pub instance: std::sync::Arc<Instance>,
    pub client_id: String,
    pub credential: Credential,
}

/// Why an action is refused; the protocol adapters turn it into each version's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Malformed or over-long topic or filter.
    TopicInvalid,
    /// Unknown parent topic, a system topic, or not covered by the credentials.
    NotAuthorized,
    /// A token does not allow it: refused as not authorized, after a `$SYS/tokenInvalidNotice`
    /// for the token type it concerns.
    Token(TokenError, TokenAction),
}

/// Why a live connection's credentials no longer hold after a configuration change or with time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withdrawn {
    InstanceGone,
    /// AccessKey disabled or unbound, device credential unregistered or moved.
    Credential,
    /// The client's group was deleted.
    Group,
    /// The client ID was put on the instance's connect blacklist.
    Blacklisted,
    /// A token was revoked or expired (the notice code and type go to the client first).
    Token(TokenError, TokenAction),
}

impl Withdrawn {
    pub fn label(self) -> &'static str {
        match self {
            Self::InstanceGone => "instance_gone",
            Self::Credential => "credentials_withdrawn",
            Self::Group => "group_deleted",
            Self::Blacklisted => "blacklisted",
            Self::Token(TokenError::Expired, _) => "token_expired",
            Self::Token(..) => "token_revoked",
        }
    }
}

impl Credential {
    /// The credential of the development listener: everything allowed.
    pub fn open() -> Self {
        Self {
            mode: Mode::Open,
            key_id: String::new(),
            tokens: Tokens::default(),
            secret_fingerprint: 0,
        }
    }

    /// PUBLISH to `topic_name` (not a `$SYS` topic: those are the broker's own).
    pub fn may_publish(&self, inst: &Instance, client_id: &str, topic_name: &str) -> Result<(), Denied> {
        topic::check_name(topic_name, inst.quotas.max_topic_length as usize, rules(inst))
            .map_err(|_| Denied::TopicInvalid)?;
        // `$` topics are the broker's, except on the open development instance (plain MQTT), where
        // only `$SYS` is (system topics never get here).
        if (topic_name.starts_with('$') && !inst.open) || !inst.has_parent(topic::parent_of(topic_name)) {
            return Err(Denied::NotAuthorized);
        }
        if self.mode == Mode::Token && !self.tokens.may_publish(topic_name) {
            return Err(Denied::Token(self.tokens.write_refusal(), TokenAction::W));
        }
        self.custom_allows(inst, client_id, Use::Publish(topic_name))
    }

    /// SUBSCRIBE to `raw` (with any `$share/<group>/` prefix).
    pub fn may_subscribe(&self, inst: &Instance, client_id: &str, raw: &str) -> Result<(), Denied> {
        if raw.starts_with("$SYS") {
            return Err(Denied::NotAuthorized);
        }
        let parsed = topic::parse_subscription(raw).map_err(|_| Denied::TopicInvalid)?;
        topic::check_filter(parsed.filter, inst.quotas.max_topic_length as usize, rules(inst))
            .map_err(|_| Denied::TopicInvalid)?;
        if !inst.has_parent(topic::parent_of(parsed.filter)) {
            return Err(Denied::NotAuthorized);
        }
        if self.mode == Mode::Token && !self.tokens.may_subscribe(parsed.filter) {
            return Err(Denied::Token(self.tokens.read_refusal(), TokenAction::R));
        }
        self.custom_allows(inst, client_id, Use::Subscribe(parsed.filter))
    }

    /// A custom-auth client may do only what its permissions grant; other modes are not concerned.
    fn custom_allows(&self, inst: &Instance, client_id: &str, what: Use<'_>) -> Result<(), Denied> {
        if self.mode == Mode::Custom && !inst.custom.allows(&self.key_id, client_id, what) {
            return Err(Denied::NotAuthorized);
        }
        Ok(())
    }

    /// Receiving a message on `topic_name` without asking for it by this subscription (a P2P
    /// message, or one queued for a resumed session): a Token client's read tokens must cover the
    /// topic, as they must cover every filter it subscribes to, and a custom-auth client's SUB
    /// permissions. Other modes may read the whole instance.
    pub fn may_receive(&self, inst: &Instance, client_id: &str, topic_name: &str) -> bool {
        match self.mode {
            Mode::Token => self.tokens.may_read(topic_name),
            Mode::Custom => inst.custom.allows(&self.key_id, client_id, Use::Receive(topic_name)),
            _ => true,
        }
    }

    /// Whether the credentials still hold: after a configuration change (a disabled key, a revoked
    /// token, a deleted group or instance) and when a deferred will is due.
    pub fn still_valid(
        &self,
        dir: &Directory,
        instance_id: &str,
        client_id: &str,
        now_ms: i64,
    ) -> Result<(), Withdrawn> {
        let Some(inst) = dir.instances.get(instance_id) else {
            return Err(Withdrawn::InstanceGone);
        };
        let key = self.key_id.as_str();
        let credential_ok = match self.mode {
            Mode::Signature => inst
                .access_keys
                .get(key)
                .is_some_and(|k| k.enabled && fingerprint(&k.access_key_secret) == self.secret_fingerprint),
            Mode::Token => inst.access_keys.get(key).is_some_and(|k| k.enabled),
            Mode::DeviceCredential => inst
                .device_credentials
                .get(client_id)
                .is_some_and(|d| &*d.key_id == key && fingerprint(&d.secret) == self.secret_fingerprint),
            Mode::Custom => inst
                .custom
                .identity(key)
                .is_some_and(|i| custom_fingerprint(i) == self.secret_fingerprint),
            Mode::Open => true,
        };
        if !credential_ok {
            // A token client's key is part of its tokens' validity: it hears about it as a token problem.
            if let Some(kind) = self.tokens.first_kind() {
                return Err(Withdrawn::Token(TokenError::PermissionInvalid, kind));
            }
            return Err(Withdrawn::Credential);
        }
        if inst.custom.is_blacklisted(client_id) {
            return Err(Withdrawn::Blacklisted);
        }
        // A deleted group withdraws every client of it, whatever the credential (custom-auth
        // client IDs have no group).
        let group_ok = matches!(self.mode, Mode::Open | Mode::Custom)
            || common::names::parse_client_id(client_id, usize::MAX).is_ok_and(|c| inst.group_ids.contains(c.group_id));
        if !group_ok {
            return Err(Withdrawn::Group);
        }
        match self.tokens.revoked_or_expired(inst, now_ms) {
            Some((err, kind)) => Err(Withdrawn::Token(err, kind)),
            None => Ok(()),
        }
    }
}

fn rules(inst: &Instance) -> topic::Rules {
    if inst.open {
        topic::Rules::Plain
    } else {
        topic::Rules::Parented
    }
}

#[cfg(test)]
mod tests;
