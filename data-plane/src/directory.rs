//! The instances this broker serves, compiled from a snapshot into lookup tables and swapped
//! atomically (`apply_snapshot`), so a reload never blocks or half-applies under live traffic.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use common::quotas::Quotas;
use common::rules::TargetPolicy;
use common::snapshot::{AccessKeyGrant, DeviceCredentialEntry, InstanceConfig, Snapshot, SnapshotError};
use common::token::TokenVerifier;
use thiserror::Error;

use crate::auth::CustomAuthTable;
use crate::rules::compiled::InstanceRules;

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("cannot read snapshot file {0}")]
    Read(String, #[source] std::io::Error),
    #[error("snapshot file is not valid JSON")]
    Json(#[from] serde_json::Error),
    #[error("snapshot refused")]
    Invalid(#[from] SnapshotError),
}

/// One instance, indexed for the per-packet checks.
pub struct Instance {
    pub id: String,
    pub quotas: Quotas,
    pub reject_duplicate_client_id: bool,
    pub parent_topics: HashSet<String>,
    pub group_ids: HashSet<String>,
    pub access_keys: HashMap<String, AccessKeyGrant>,
    pub device_credentials: HashMap<String, DeviceCredentialEntry>,
    pub revoked_jtis: HashSet<String>,
    /// Development instance: any parent topic and client id, no credentials.
    pub open: bool,
    /// Outflow, status and inflow rules (empty lists for most instances).
    pub rules: InstanceRules,
    /// Custom-auth identities, permissions and connect blacklist.
    pub custom: CustomAuthTable,
}

impl Instance {
    fn compile(cfg: &InstanceConfig) -> Self {
        Self {
            id: cfg.id.clone(),
            quotas: cfg.quotas.clone(),
            reject_duplicate_client_id: cfg.reject_duplicate_client_id,
            parent_topics: cfg.parent_topics.iter().cloned().collect(),
            group_ids: cfg.group_ids.iter().cloned().collect(),
            access_keys: cfg
                .access_keys
                .iter()
                .map(|k| (k.access_key_id.clone(), k.clone()))
                .collect(),
            device_credentials: cfg
                .device_credentials
                .iter()
                .map(|d| (d.device_access_key_id.clone(), d.clone()))
                .collect(),
            revoked_jtis: cfg.revoked_tokens.iter().map(|r| r.jti.clone()).collect(),
            open: false,
            rules: InstanceRules::compile(&cfg.rules),
            custom: CustomAuthTable::compile(&cfg.custom_auth),
        }
    }

    /// The development instance used by the unauthenticated listener: plain MQTT, so its name
    /// limits are MQTT's own (65,535 bytes) and its subscription limits generous.
    pub fn open_dev(id: &str) -> Self {
        Self {
            id: id.to_string(),
            quotas: Quotas {
                max_topic_length: u32::from(u16::MAX),
                max_client_id_length: u32::from(u16::MAX),
                max_subscriptions_per_client: 10_000,
                max_wildcard_subscriptions_per_parent_topic: 1_000_000,
                ..Quotas::default()
            },
            reject_duplicate_client_id: false,
            parent_topics: HashSet::new(),
            group_ids: HashSet::new(),
            access_keys: HashMap::new(),
            device_credentials: HashMap::new(),
            revoked_jtis: HashSet::new(),
            open: true,
            rules: InstanceRules::default(),
            custom: CustomAuthTable::default(),
        }
    }

    /// Parent topic exists (or the instance is the open development one).
    pub fn has_parent(&self, parent: &str) -> bool {
        self.open || self.parent_topics.contains(parent)
    }
}

/// Everything compiled from one snapshot.
pub struct Directory {
    pub version: i64,
    pub hash: String,
    pub instances: HashMap<String, Arc<Instance>>,
    /// Which instance a custom-auth username belongs to (usernames are unique across the deployment).
    pub custom_usernames: HashMap<String, String>,
    pub verifier: TokenVerifier,
    /// Which addresses webhook targets may reach.
    pub rule_policy: TargetPolicy,
}

impl Directory {
    pub fn empty() -> Self {
        Self {
            version: 0,
            hash: String::new(),
            instances: HashMap::new(),
            custom_usernames: HashMap::new(),
            verifier: TokenVerifier::default(),
            rule_policy: TargetPolicy::default(),
        }
    }

    /// Compiles every valid instance of `snapshot`. An instance that fails validation is refused
    /// alone: the one `previous` serves stays (or, new, it stays absent), so one tenant's bad
    /// configuration never stops the others' changes. Returns why each refused instance was refused.
    fn compile(snapshot: &Snapshot, previous: &Directory, dev_instance: Option<&str>) -> (Self, Vec<SnapshotError>) {
        let mut refused = Vec::new();
        let mut instances: HashMap<String, Arc<Instance>> = HashMap::with_capacity(snapshot.content.instances.len());
        for cfg in &snapshot.content.instances {
            match cfg.validate() {
                Ok(()) => {
                    instances.insert(cfg.id.clone(), Arc::new(Instance::compile(cfg)));
                }
                Err(e) => {
                    if let Some(kept) = previous.instances.get(&cfg.id).filter(|i| !i.open) {
                        instances.insert(cfg.id.clone(), kept.clone());
                    }
                    refused.push(e);
                }
            }
        }
        if let Some(dev) = dev_instance {
            instances
                .entry(dev.to_string())
                .or_insert_with(|| Arc::new(Instance::open_dev(dev)));
        }
        let custom_usernames = custom_usernames(&instances);
        let dir = Self {
            version: snapshot.version,
            hash: snapshot.hash.clone(),
            instances,
            custom_usernames,
            verifier: TokenVerifier::new(&snapshot.content.token_keys),
            rule_policy: snapshot.content.rule_policy,
        };
        (dir, refused)
    }
}

/// Username -> instance of every custom-auth identity. The control plane keeps usernames unique
/// across instances; should two instances still claim one (a hand-edited snapshot), neither gets it.
fn custom_usernames(instances: &HashMap<String, Arc<Instance>>) -> HashMap<String, String> {
    let mut owners: HashMap<String, String> = HashMap::new();
    let mut contested = HashSet::new();
    for inst in instances.values() {
        for username in inst.custom.usernames() {
            if let Some(other) = owners.insert(username.to_string(), inst.id.clone())
                && other != inst.id
            {
                contested.insert(username.to_string());
            }
        }
    }
    for username in contested {
        tracing::error!(username = %username, "custom-auth username claimed by two instances: refused for both");
        owners.remove(&username);
    }
    owners
}

/// The live directory. Readers take a cheap `load()`; `apply_snapshot` swaps in a new one.
pub struct Directories {
    current: ArcSwap<Directory>,
    dev_instance: Option<String>,
    /// Bumped on every applied snapshot, so live connections re-check their credentials.
    changed: tokio::sync::watch::Sender<i64>,
}

impl Directories {
    pub fn new(dev_instance: Option<String>) -> Self {
        let mut empty = Directory::empty();
        if let Some(dev) = &dev_instance {
            empty.instances.insert(dev.clone(), Arc::new(Instance::open_dev(dev)));
        }
        Self {
            current: ArcSwap::from_pointee(empty),
            dev_instance,
            changed: tokio::sync::watch::channel(0).0,
        }
    }

    /// Fires after each applied snapshot.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<i64> {
        self.changed.subscribe()
    }

    pub fn dev_instance(&self) -> Option<String> {
        self.dev_instance.clone()
    }

    pub fn load(&self) -> Arc<Directory> {
        self.current.load_full()
    }

    /// Validates and swaps in a snapshot. A damaged document (hash mismatch) is refused whole and the
    /// old one kept; an invalid instance is refused alone (see `Directory::compile`). Returns why
    /// each refused instance was refused.
    pub fn apply_snapshot(&self, snapshot: Snapshot) -> Result<Vec<SnapshotError>, SnapshotError> {
        snapshot.check_hash()?;
        let (dir, refused) = Directory::compile(&snapshot, &self.load(), self.dev_instance.as_deref());
        for e in &refused {
            crate::metrics::snapshot_instance_refused();
            tracing::error!(version = dir.version, error = %e, "instance configuration refused; serving its previous one");
        }
        tracing::info!(
            version = dir.version,
            instances = dir.instances.len(),
            refused = refused.len(),
            "snapshot applied"
        );
        crate::metrics::snapshot_version(dir.version);
        let version = dir.version;
        self.current.store(Arc::new(dir));
        self.changed.send_replace(version);
        Ok(refused)
    }

    /// Reads, validates and applies a snapshot file.
    pub fn apply_file(&self, path: &Path) -> Result<(), LoadError> {
        let raw = std::fs::read(path).map_err(|e| LoadError::Read(path.display().to_string(), e))?;
        let snapshot: Snapshot = serde_json::from_slice(&raw)?;
        self.apply_snapshot(snapshot)?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use common::snapshot::SnapshotContent;

    use super::*;

    /// An instance with parent topic `T` and the given group IDs (valid or not).
    pub(crate) fn instance(id: &str, groups: &[&str]) -> InstanceConfig {
        InstanceConfig {
            rules: Vec::new(),
            custom_auth: Default::default(),
            id: id.into(),
            name: id.into(),
            quotas: Quotas::default(),
            reject_duplicate_client_id: false,
            parent_topics: vec!["T".into()],
            group_ids: groups.iter().map(|g| g.to_string()).collect(),
            access_keys: vec![],
            device_credentials: vec![],
            revoked_tokens: vec![],
        }
    }

    /// Snapshot `version` of these instances, with the default rule policy and no token keys.
    pub(crate) fn snapshot(version: i64, instances: Vec<InstanceConfig>) -> Snapshot {
        Snapshot::new(
            version,
            SnapshotContent {
                rule_policy: Default::default(),
                token_keys: vec![],
                instances,
            },
        )
    }

    fn groups(dirs: &Directories, id: &str) -> Option<Vec<String>> {
        let mut g: Vec<String> = dirs.load().instances.get(id)?.group_ids.iter().cloned().collect();
        g.sort();
        Some(g)
    }

    const A: &str = "mqtt-aaaaaaaaaaaa";
    const B: &str = "mqtt-bbbbbbbbbbbb";
    const C: &str = "mqtt-cccccccccccc";

    #[test]
    fn a_broken_instance_is_refused_alone_and_keeps_its_previous_configuration() {
        let dirs = Directories::new(None);
        let refused = dirs
            .apply_snapshot(snapshot(
                1,
                vec![instance(A, &["GID_alpha"]), instance(B, &["GID_beta"])],
            ))
            .unwrap();
        assert!(refused.is_empty());

        // B breaks while A changes: A's change is served, B keeps what it had.
        let refused = dirs
            .apply_snapshot(snapshot(
                2,
                vec![
                    instance(A, &["GID_alpha", "GID_alpha2"]),
                    instance(B, &["GID_beta", "nope"]),
                ],
            ))
            .unwrap();
        assert_eq!(refused.len(), 1);
        assert!(matches!(&refused[0], SnapshotError::Invalid { instance, .. } if instance == B));
        assert_eq!(dirs.load().version, 2);
        assert_eq!(groups(&dirs, A).unwrap(), ["GID_alpha", "GID_alpha2"]);
        assert_eq!(groups(&dirs, B).unwrap(), ["GID_beta"]);

        // A new instance that is broken from the start is not served at all; B, fixed, is again.
        let refused = dirs
            .apply_snapshot(snapshot(
                3,
                vec![
                    instance(A, &["GID_alpha"]),
                    instance(B, &["GID_beta3"]),
                    instance(C, &["bad"]),
                ],
            ))
            .unwrap();
        assert!(matches!(&refused[..], [SnapshotError::Invalid { instance, .. }] if instance == C));
        assert_eq!(groups(&dirs, B).unwrap(), ["GID_beta3"]);
        assert_eq!(groups(&dirs, C), None);
    }

    #[test]
    fn a_damaged_document_is_refused_whole() {
        let dirs = Directories::new(None);
        dirs.apply_snapshot(snapshot(1, vec![instance(A, &["GID_alpha"])]))
            .unwrap();
        let mut damaged = snapshot(2, vec![instance(A, &["GID_alpha", "GID_xray"])]);
        damaged.content.instances[0].group_ids.push("GID_yank".into());
        assert_eq!(dirs.apply_snapshot(damaged), Err(SnapshotError::HashMismatch));
        assert_eq!(
            (dirs.load().version, groups(&dirs, A).unwrap()),
            (1, vec!["GID_alpha".to_string()])
        );
    }
}
