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
            verifier: TokenVerifier::default(),
            rule_policy: TargetPolicy::default(),
        }
    }

    fn compile(snapshot: &Snapshot, dev_instance: Option<&str>) -> Self {
        let mut instances: HashMap<String, Arc<Instance>> = snapshot
            .content
            .instances
            .iter()
            .map(|i| (i.id.clone(), Arc::new(Instance::compile(i))))
            .collect();
        if let Some(dev) = dev_instance {
            instances
                .entry(dev.to_string())
                .or_insert_with(|| Arc::new(Instance::open_dev(dev)));
        }
        Self {
            version: snapshot.version,
            hash: snapshot.hash.clone(),
            instances,
            verifier: TokenVerifier::new(&snapshot.content.token_keys),
            rule_policy: snapshot.content.rule_policy,
        }
    }
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

    /// Validates and swaps in a snapshot; an invalid one is refused and the old one kept.
    pub fn apply_snapshot(&self, snapshot: Snapshot) -> Result<(), SnapshotError> {
        snapshot.validate()?;
        let dir = Directory::compile(&snapshot, self.dev_instance.as_deref());
        tracing::info!(
            version = dir.version,
            instances = dir.instances.len(),
            "snapshot applied"
        );
        crate::metrics::snapshot_version(dir.version);
        let version = dir.version;
        self.current.store(Arc::new(dir));
        self.changed.send_replace(version);
        Ok(())
    }

    /// Reads, validates and applies a snapshot file.
    pub fn apply_file(&self, path: &Path) -> Result<(), LoadError> {
        let raw = std::fs::read(path).map_err(|e| LoadError::Read(path.display().to_string(), e))?;
        let snapshot: Snapshot = serde_json::from_slice(&raw)?;
        self.apply_snapshot(snapshot)?;
        Ok(())
    }
}
