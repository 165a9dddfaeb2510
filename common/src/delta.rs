//! A configuration delta: what changed between two snapshot versions, so that a broker at version
//! `from_version` reaches `version` without downloading every instance again (docs/sync-protocol.md,
//! "Deltas"). Instance settings travel whole per changed instance (they are small); device
//! credentials travel one by one, because an instance may hold a million of them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::rules::TargetPolicy;
use crate::snapshot::{DeviceCredentialEntry, InstanceConfig, SnapshotError};
use crate::token::TokenPublicKey;

/// `Config-Kind` answer header of the snapshot poll: which of the two documents the body is.
pub const CONFIG_KIND_HEADER: &str = "config-kind";
pub const KIND_SNAPSHOT: &str = "snapshot";
pub const KIND_DELTA: &str = "delta";

/// From `from_version` to `version`. `hash` is the SHA-256 (hex) of the canonical JSON of `content`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delta {
    pub from_version: i64,
    pub version: i64,
    pub hash: String,
    #[serde(flatten)]
    pub content: DeltaContent,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaContent {
    /// Always whole: they are few and small.
    #[serde(default)]
    pub token_keys: Vec<TokenPublicKey>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub rule_policy: TargetPolicy,
    /// Instances created or changed in their settings (names, quotas, AccessKeys, tokens, rules,
    /// custom authentication).
    #[serde(default)]
    pub instances: Vec<ChangedInstance>,
    /// Instances deleted.
    #[serde(default)]
    pub removed_instances: Vec<String>,
    /// Device credentials added, replaced or removed, per instance.
    #[serde(default)]
    pub devices: Vec<DeviceChanges>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// An instance's new settings. Its `device_credentials` are the whole list when `devices_included`
/// (a new instance); otherwise the list is empty and the broker keeps the credentials it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangedInstance {
    pub config: InstanceConfig,
    #[serde(default)]
    pub devices_included: bool,
}

/// One instance's device credentials that changed: the current entry of each added or replaced one,
/// the client ID of each removed one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceChanges {
    pub instance_id: String,
    #[serde(default)]
    pub upserts: Vec<DeviceCredentialEntry>,
    #[serde(default)]
    pub removed: Vec<String>,
}

impl DeltaContent {
    /// SHA-256 of the canonical JSON, as `SnapshotContent::hash`.
    pub fn hash(&self) -> String {
        let json = serde_json::to_vec(self).expect("delta content always serializes");
        hex::encode(Sha256::digest(json))
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty() && self.removed_instances.is_empty() && self.devices.is_empty()
    }
}

impl Delta {
    pub fn new(from_version: i64, version: i64, content: DeltaContent) -> Self {
        Self {
            from_version,
            version,
            hash: content.hash(),
            content,
        }
    }

    /// A mismatch means a damaged document: nothing in it can be trusted.
    pub fn check_hash(&self) -> Result<(), SnapshotError> {
        if self.content.hash() != self.hash {
            return Err(SnapshotError::HashMismatch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_roundtrip_and_tamper() {
        let delta = Delta::new(
            3,
            5,
            DeltaContent {
                removed_instances: vec!["mqtt-abcdefabcdef".into()],
                devices: vec![DeviceChanges {
                    instance_id: "mqtt-bbbbbbbbbbbb".into(),
                    upserts: vec![DeviceCredentialEntry {
                        client_id: "GID_a@@@1".into(),
                        device_access_key_id: "k".into(),
                        device_access_key_secret: "s".into(),
                    }],
                    removed: vec!["GID_a@@@2".into()],
                }],
                ..DeltaContent::default()
            },
        );
        let json = serde_json::to_string(&delta).unwrap();
        assert!(json.contains("\"fromVersion\":3"), "{json}");
        let back: Delta = serde_json::from_str(&json).unwrap();
        assert_eq!(back, delta);
        back.check_hash().unwrap();

        let mut tampered = back;
        tampered.content.devices[0].removed.clear();
        assert_eq!(tampered.check_hash(), Err(SnapshotError::HashMismatch));
    }
}
