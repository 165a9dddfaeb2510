//! The configuration snapshot the control plane serves to brokers (and that brokers keep on disk as
//! last-known-good): every instance a broker serves, with what it needs to authenticate offline.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::custom_auth::CustomAuth;
use crate::names;
use crate::quotas::Quotas;
use crate::rules::{RuleConfig, TargetPolicy};
use crate::token::TokenPublicKey;

/// A full, versioned configuration. `hash` is the SHA-256 (hex) of the canonical JSON of `content`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub version: i64,
    pub hash: String,
    #[serde(flatten)]
    pub content: SnapshotContent,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotContent {
    /// Public keys that verify tokens (several during a key rotation).
    #[serde(default)]
    pub token_keys: Vec<TokenPublicKey>,
    #[serde(default)]
    pub instances: Vec<InstanceConfig>,
    /// Which addresses rule targets may reach (the operator's choice).
    #[serde(default, skip_serializing_if = "is_default")]
    pub rule_policy: TargetPolicy,
}

/// For `skip_serializing_if`: a field at its default is left out (older readers default it again).
pub(crate) fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceConfig {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub quotas: Quotas,
    /// When true a second connection with a live client ID is refused instead of taking over.
    #[serde(default)]
    pub reject_duplicate_client_id: bool,
    #[serde(default)]
    pub parent_topics: Vec<String>,
    #[serde(default)]
    pub group_ids: Vec<String>,
    #[serde(default)]
    pub access_keys: Vec<AccessKeyGrant>,
    #[serde(default)]
    pub device_credentials: Vec<DeviceCredentialEntry>,
    #[serde(default)]
    pub revoked_tokens: Vec<RevokedToken>,
    /// Data outflow, status notification and data inflow rules (docs/rules.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleConfig>,
    /// Identities, permissions and connect blacklist (docs/custom-auth.md).
    #[serde(default, skip_serializing_if = "CustomAuth::is_empty")]
    pub custom_auth: CustomAuth,
}

/// An AccessKey usable on this instance. The secret is plain here: brokers verify HMACs with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeyGrant {
    pub access_key_id: String,
    pub access_key_secret: String,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceCredentialEntry {
    pub client_id: String,
    pub device_access_key_id: String,
    pub device_access_key_secret: String,
}

/// A revoked token id, kept until the token would have expired anyway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokedToken {
    pub jti: String,
    pub exp_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SnapshotError {
    #[error("content hash does not match")]
    HashMismatch,
    #[error("instance {instance}: {what}")]
    Invalid { instance: String, what: String },
}

impl SnapshotContent {
    /// SHA-256 of the canonical JSON (struct field order is fixed, so serialization is stable).
    pub fn hash(&self) -> String {
        let json = serde_json::to_vec(self).expect("snapshot content always serializes");
        hex::encode(Sha256::digest(json))
    }
}

impl Snapshot {
    pub fn new(version: i64, content: SnapshotContent) -> Self {
        Self {
            version,
            hash: content.hash(),
            content,
        }
    }

    /// Checks the hash and every instance: what a whole-document consumer (tests, the load generator)
    /// wants. A broker uses `check_hash` and `InstanceConfig::validate` so that one broken instance
    /// is refused alone.
    pub fn validate(&self) -> Result<(), SnapshotError> {
        self.check_hash()?;
        self.content.instances.iter().try_for_each(InstanceConfig::validate)
    }

    /// The content is what the control plane hashed: a mismatch means a damaged document, so
    /// nothing in it can be trusted.
    pub fn check_hash(&self) -> Result<(), SnapshotError> {
        if self.content.hash() != self.hash {
            return Err(SnapshotError::HashMismatch);
        }
        Ok(())
    }
}

impl InstanceConfig {
    /// Checks every name in the instance, so a broker never serves an instance it cannot enforce.
    pub fn validate(&self) -> Result<(), SnapshotError> {
        let invalid = |what: String| SnapshotError::Invalid {
            instance: self.id.clone(),
            what,
        };
        if !names::is_instance_id(&self.id) {
            return Err(invalid("bad instance id".into()));
        }
        for t in &self.parent_topics {
            names::validate_parent_topic(t).map_err(|e| invalid(format!("parent topic {t:?}: {e}")))?;
        }
        for g in &self.group_ids {
            names::validate_group_id(g).map_err(|e| invalid(format!("group id {g:?}: {e}")))?;
        }
        for d in &self.device_credentials {
            names::parse_client_id(&d.client_id, self.quotas.max_client_id_length as usize)
                .map_err(|e| invalid(format!("device credential client id {:?}: {e}", d.client_id)))?;
        }
        self.custom_auth
            .validate(
                self.quotas.max_client_id_length as usize,
                self.quotas.max_topic_length as usize,
            )
            .map_err(|e| invalid(format!("custom authentication: {e}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance() -> InstanceConfig {
        InstanceConfig {
            rules: Vec::new(),
            custom_auth: Default::default(),
            id: "mqtt-abcdefabcdef".into(),
            name: "demo".into(),
            quotas: Quotas::default(),
            reject_duplicate_client_id: false,
            parent_topics: vec!["T".into()],
            group_ids: vec!["GID_test".into()],
            access_keys: vec![],
            device_credentials: vec![],
            revoked_tokens: vec![],
        }
    }

    #[test]
    fn hash_roundtrip_and_validation() {
        let snap = Snapshot::new(
            7,
            SnapshotContent {
                rule_policy: Default::default(),
                token_keys: vec![],
                instances: vec![instance()],
            },
        );
        let json = serde_json::to_string(&snap).unwrap();
        let back: Snapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, snap);
        back.validate().unwrap();

        let mut tampered = back.clone();
        tampered.content.instances[0].group_ids.push("GID_other".into());
        assert_eq!(tampered.validate(), Err(SnapshotError::HashMismatch));

        let mut bad = instance();
        bad.group_ids = vec!["nope".into()];
        let snap = Snapshot::new(
            8,
            SnapshotContent {
                rule_policy: Default::default(),
                token_keys: vec![],
                instances: vec![bad],
            },
        );
        assert!(matches!(snap.validate(), Err(SnapshotError::Invalid { .. })));
    }
}
