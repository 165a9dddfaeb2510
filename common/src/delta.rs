//! A configuration delta: what changed between two snapshot versions, so that a broker at version
//! `from_version` reaches `version` without downloading every instance again (docs/sync-protocol.md,
//! "Deltas"). Instance settings travel whole per changed instance (they are small); device
//! credentials travel one by one, because an instance may hold a million of them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use std::collections::BTreeMap;

use crate::rules::TargetPolicy;
use crate::snapshot::{DeviceCredentialEntry, InstanceConfig, Snapshot, SnapshotContent, SnapshotError, is_default};
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

/// The snapshot that `snapshot` followed by `deltas` amounts to: each delta that starts where the
/// previous one ended is folded in, one that ends at or before it is skipped, and the first that
/// leaves a gap ends the fold. Pure bookkeeping, no validation (a broker validates what it serves).
/// Used to compact a broker's cache, and as the reference of what applying deltas means.
pub fn fold(snapshot: Snapshot, deltas: impl IntoIterator<Item = Delta>) -> Snapshot {
    let mut version = snapshot.version;
    let SnapshotContent {
        token_keys,
        instances,
        rule_policy,
    } = snapshot.content;
    let (mut token_keys, mut rule_policy) = (token_keys, rule_policy);
    // Device credentials by client ID while folding: a delta changes a few of many.
    let mut held: BTreeMap<String, (InstanceConfig, BTreeMap<String, DeviceCredentialEntry>)> = instances
        .into_iter()
        .map(|mut i| {
            let devices = std::mem::take(&mut i.device_credentials)
                .into_iter()
                .map(|d| (d.client_id.clone(), d))
                .collect();
            (i.id.clone(), (i, devices))
        })
        .collect();
    for delta in deltas {
        if delta.version <= version {
            continue;
        }
        if delta.from_version != version {
            break;
        }
        let content = delta.content;
        for id in &content.removed_instances {
            held.remove(id);
        }
        for changed in content.instances {
            let mut config = changed.config;
            let devices = if changed.devices_included {
                std::mem::take(&mut config.device_credentials)
                    .into_iter()
                    .map(|d| (d.client_id.clone(), d))
                    .collect()
            } else {
                held.remove(&config.id).map(|(_, d)| d).unwrap_or_default()
            };
            held.insert(config.id.clone(), (config, devices));
        }
        for changes in content.devices {
            if let Some((_, devices)) = held.get_mut(&changes.instance_id) {
                for client_id in &changes.removed {
                    devices.remove(client_id);
                }
                devices.extend(changes.upserts.into_iter().map(|d| (d.client_id.clone(), d)));
            }
        }
        token_keys = content.token_keys;
        rule_policy = content.rule_policy;
        version = delta.version;
    }
    let instances = held
        .into_values()
        .map(|(mut config, devices)| {
            config.device_credentials = devices.into_values().collect();
            config
        })
        .collect();
    Snapshot::new(
        version,
        SnapshotContent {
            token_keys,
            instances,
            rule_policy,
        },
    )
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
