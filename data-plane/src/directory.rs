//! The instances this broker serves, compiled from a snapshot into lookup tables and swapped
//! atomically (`apply_snapshot`, `apply_delta`), so a reload never blocks or half-applies under live
//! traffic. Device credentials sit in shards shared between versions (`device_table`): a delta that
//! changes one of a million copies one shard, not the million.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use common::config_digest::{self, Digest};
use common::delta::{ChangedInstance, Delta, DeviceChanges};
use common::quotas::Quotas;
use common::rules::TargetPolicy;
use common::snapshot::{AccessKeyGrant, InstanceConfig, Snapshot, SnapshotError};
use common::token::TokenVerifier;
use thiserror::Error;

use crate::auth::CustomAuthTable;
pub use crate::device_table::DeviceTable;
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

/// Why a delta cannot be applied to the directory as it is; the broker then fetches the full
/// snapshot.
#[derive(Debug, Error, PartialEq)]
pub enum DeltaError {
    #[error(transparent)]
    Damaged(#[from] SnapshotError),
    #[error("delta from version {from} does not follow the applied version {applied}")]
    NotNext { from: i64, applied: i64 },
    #[error("delta changes instance {0}, which this broker does not hold")]
    UnknownInstance(String),
}

/// Instances by id: persistent too, so a delta's copy of the directory costs what it changes.
pub type InstanceTable =
    imbl::GenericHashMap<String, Arc<Instance>, crate::FastHash, imbl::shared_ptr::DefaultSharedPtr>;

/// One instance, indexed for the per-packet checks.
#[derive(Clone)]
pub struct Instance {
    pub id: String,
    pub quotas: Quotas,
    pub reject_duplicate_client_id: bool,
    pub parent_topics: HashSet<String, crate::FastHash>,
    pub group_ids: HashSet<String, crate::FastHash>,
    pub access_keys: HashMap<String, AccessKeyGrant>,
    pub device_credentials: DeviceTable,
    pub revoked_jtis: HashSet<String>,
    /// Development instance: any parent topic and client id, no credentials.
    pub open: bool,
    /// Outflow, status and inflow rules (empty lists for most instances).
    pub rules: Arc<InstanceRules>,
    /// Custom-auth identities, permissions and connect blacklist.
    pub custom: Arc<CustomAuthTable>,
    /// `config_digest::settings` of what it was compiled from.
    settings_digest: Digest,
}

impl Instance {
    fn compile(cfg: &InstanceConfig) -> Self {
        Self::compile_with(cfg, DeviceTable::from_entries(&cfg.device_credentials))
    }

    /// `config_digest::instance` of what the instance holds.
    fn digest(&self) -> Digest {
        config_digest::instance(&self.id, self.settings_digest, self.device_credentials.digest())
    }

    /// The instance's settings from `cfg`, with the device credentials given.
    fn compile_with(cfg: &InstanceConfig, device_credentials: DeviceTable) -> Self {
        Self {
            settings_digest: config_digest::settings(cfg),
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
            device_credentials,
            // An expired token is refused for its expiry anyway: its revocation need not be kept.
            revoked_jtis: {
                let now = common::time::now_ms();
                cfg.revoked_tokens
                    .iter()
                    .filter(|r| r.exp_ms > now)
                    .map(|r| r.jti.clone())
                    .collect()
            },
            open: false,
            rules: Arc::new(InstanceRules::compile(&cfg.rules)),
            custom: Arc::new(CustomAuthTable::compile(&cfg.custom_auth)),
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
            parent_topics: HashSet::default(),
            group_ids: HashSet::default(),
            access_keys: HashMap::new(),
            device_credentials: DeviceTable::new(),
            settings_digest: 0,
            revoked_jtis: HashSet::new(),
            open: true,
            rules: Arc::default(),
            custom: Arc::default(),
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
    pub instances: InstanceTable,
    /// Which instance a custom-auth username belongs to (usernames are unique across the deployment).
    pub custom_usernames: HashMap<String, String>,
    pub verifier: TokenVerifier,
    /// Which addresses webhook targets may reach.
    pub rule_policy: TargetPolicy,
    /// Instances whose latest configuration was refused (they serve an older one, or none), and why.
    pub refused: BTreeMap<String, String>,
    /// `config_digest::of_instances` of the instances served, kept up to date per changed instance.
    digest: Digest,
}

impl Directory {
    pub fn empty() -> Self {
        Self {
            version: 0,
            hash: String::new(),
            instances: InstanceTable::new(),
            custom_usernames: HashMap::new(),
            verifier: TokenVerifier::default(),
            rule_policy: TargetPolicy::default(),
            refused: BTreeMap::new(),
            digest: 0,
        }
    }

    /// `config_digest::of_instances` of what this directory serves, or `None` while some instance
    /// is refused (it then differs from the control plane's by design).
    pub fn digest(&self) -> Option<Digest> {
        self.refused.is_empty().then_some(self.digest)
    }

    /// Compiles every valid instance of `snapshot`. An instance that fails validation is refused
    /// alone: the one `previous` serves stays (or, new, it stays absent), so one tenant's bad
    /// configuration never stops the others' changes. Returns why each refused instance was refused.
    fn compile(snapshot: &Snapshot, previous: &Directory, dev_instance: Option<&str>) -> (Self, Vec<SnapshotError>) {
        let mut refused = Vec::new();
        let mut instances = InstanceTable::new();
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
            custom_usernames,
            verifier: TokenVerifier::new(&snapshot.content.token_keys),
            rule_policy: snapshot.content.rule_policy,
            refused: refusal_map(BTreeMap::new(), &refused),
            digest: instances_digest(&instances),
            instances,
        };
        (dir, refused)
    }
}

impl Directory {
    /// The directory `self` becomes with `delta`. As with a snapshot, an instance whose new settings
    /// or device credentials fail validation is refused alone and keeps what it had; anything that
    /// shows the delta does not fit what this directory holds is an error (the full snapshot mends it).
    fn with_delta(&self, delta: &Delta, dev_instance: Option<&str>) -> Result<(Self, Vec<SnapshotError>), DeltaError> {
        delta.check_hash()?;
        if delta.from_version != self.version {
            return Err(DeltaError::NotNext {
                from: delta.from_version,
                applied: self.version,
            });
        }
        let mut refused = Vec::new();
        let mut instances = self.instances.clone();
        let mut still_refused = self.refused.clone();
        let mut digest = self.digest;
        for id in &delta.content.removed_instances {
            if Some(id.as_str()) != dev_instance {
                if let Some(gone) = instances.remove(id) {
                    digest ^= gone.digest();
                }
                still_refused.remove(id);
            }
        }
        for changed in &delta.content.instances {
            match self.changed_instance(changed)? {
                Ok(instance) => {
                    still_refused.remove(&instance.id);
                    digest ^= swap_instance(&mut instances, instance);
                }
                Err(e) => refused.push(e),
            }
        }
        for changes in &delta.content.devices {
            let Some(current) = instances.get(&changes.instance_id).filter(|i| !i.open) else {
                return Err(DeltaError::UnknownInstance(changes.instance_id.clone()));
            };
            match with_device_changes(current, changes) {
                Ok(instance) => digest ^= swap_instance(&mut instances, instance),
                Err(e) => refused.push(e),
            }
        }
        let custom_usernames = if delta.content.instances.is_empty() && delta.content.removed_instances.is_empty() {
            self.custom_usernames.clone()
        } else {
            custom_usernames(&instances)
        };
        let dir = Self {
            version: delta.version,
            hash: delta.hash.clone(),
            instances,
            custom_usernames,
            verifier: TokenVerifier::new(&delta.content.token_keys),
            rule_policy: delta.content.rule_policy,
            refused: refusal_map(still_refused, &refused),
            digest,
        };
        Ok((dir, refused))
    }

    /// An instance with new settings, or why it is refused. Its device credentials come with it when
    /// it is new; otherwise they are the ones held.
    fn changed_instance(&self, changed: &ChangedInstance) -> Result<Result<Instance, SnapshotError>, DeltaError> {
        let cfg = &changed.config;
        if let Err(e) = cfg.validate() {
            return Ok(Err(e));
        }
        let devices = if changed.devices_included {
            DeviceTable::from_entries(&cfg.device_credentials)
        } else {
            match self.instances.get(&cfg.id).filter(|i| !i.open) {
                Some(held) => {
                    // The held credentials must still fit a lowered client ID length limit (looked at
                    // only then: it means reading every credential).
                    let max = cfg.quotas.max_client_id_length as usize;
                    let lowered = cfg.quotas.max_client_id_length < held.quotas.max_client_id_length;
                    if let Some((client_id, _)) = held
                        .device_credentials
                        .iter()
                        .filter(|_| lowered)
                        .find(|(c, _)| common::names::parse_client_id(c, max).is_err())
                    {
                        return Ok(Err(SnapshotError::Invalid {
                            instance: cfg.id.clone(),
                            what: format!("device credential client id {client_id:?} is over the new limit"),
                        }));
                    }
                    held.device_credentials.clone()
                }
                None => return Err(DeltaError::UnknownInstance(cfg.id.clone())),
            }
        };
        Ok(Ok(Instance::compile_with(cfg, devices)))
    }
}

/// Puts `instance` in place of the one with its id; returns what that does to the directory's digest.
fn swap_instance(instances: &mut InstanceTable, instance: Instance) -> Digest {
    let added = instance.digest();
    match instances.insert(instance.id.clone(), Arc::new(instance)) {
        Some(old) if !old.open => added ^ old.digest(),
        _ => added,
    }
}

/// The digest of the (not open) instances.
fn instances_digest(instances: &InstanceTable) -> Digest {
    instances
        .values()
        .filter(|i| !i.open)
        .fold(0, |all, i| all ^ i.digest())
}

/// `instance` with its device credentials changed, or why the change is refused (then none of it
/// applies).
fn with_device_changes(instance: &Instance, changes: &DeviceChanges) -> Result<Instance, SnapshotError> {
    let max = instance.quotas.max_client_id_length as usize;
    for d in &changes.upserts {
        common::names::parse_client_id(&d.client_id, max).map_err(|e| SnapshotError::Invalid {
            instance: instance.id.clone(),
            what: format!("device credential client id {:?}: {e}", d.client_id),
        })?;
    }
    let mut devices = instance.device_credentials.clone();
    for client_id in &changes.removed {
        devices.remove(client_id);
    }
    for d in &changes.upserts {
        devices.upsert(d);
    }
    Ok(Instance {
        device_credentials: devices,
        ..instance.clone()
    })
}

/// `held` with the instances of `refused` added (the error names them).
fn refusal_map(mut held: BTreeMap<String, String>, refused: &[SnapshotError]) -> BTreeMap<String, String> {
    for e in refused {
        let instance = match e {
            SnapshotError::Invalid { instance, .. } => instance.clone(),
            SnapshotError::HashMismatch => String::new(),
        };
        held.insert(instance, e.to_string());
    }
    held
}

/// Username -> instance of every custom-auth identity. The control plane keeps usernames unique
/// across instances; should two instances still claim one (a hand-edited snapshot), neither gets it.
fn custom_usernames(instances: &InstanceTable) -> HashMap<String, String> {
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
    /// Bumped on every applied snapshot or delta (rules, cluster usage follow it).
    changed: tokio::sync::watch::Sender<i64>,
    /// Per instance, bumped when a snapshot or a delta changes it: live connections re-check their
    /// credentials on it, so a delta wakes the connections of the instances it touched, not all.
    instance_changed: std::sync::Mutex<HashMap<String, tokio::sync::watch::Sender<i64>>>,
}

/// Which instances a swap changed.
enum Touched<'a> {
    All,
    Some(Vec<&'a str>),
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
            instance_changed: Default::default(),
        }
    }

    /// Fires after each applied snapshot or delta.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<i64> {
        self.changed.subscribe()
    }

    /// Fires after each applied snapshot, and each delta that changes `instance_id`.
    pub fn watch_instance(&self, instance_id: &str) -> tokio::sync::watch::Receiver<i64> {
        let mut senders = self.instance_changed.lock().unwrap_or_else(|p| p.into_inner());
        senders
            .entry(instance_id.to_string())
            .or_insert_with(|| tokio::sync::watch::channel(0).0)
            .subscribe()
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
        tracing::info!(
            version = dir.version,
            instances = dir.instances.len(),
            refused = refused.len(),
            "snapshot applied"
        );
        self.swap_in(dir, &refused, Touched::All);
        Ok(refused)
    }

    /// Validates and applies a delta on top of the current directory (see `Directory::with_delta`).
    /// Returns why each refused instance was refused; an error leaves the directory as it was.
    pub fn apply_delta(&self, delta: &Delta) -> Result<Vec<SnapshotError>, DeltaError> {
        let (dir, refused) = self.load().with_delta(delta, self.dev_instance.as_deref())?;
        tracing::debug!(
            from = delta.from_version,
            version = dir.version,
            changed = delta.content.instances.len(),
            devices = delta.content.devices.len(),
            refused = refused.len(),
            "delta applied"
        );
        let content = &delta.content;
        let touched = content.removed_instances.iter().map(String::as_str);
        let touched = touched
            .chain(content.instances.iter().map(|i| i.config.id.as_str()))
            .chain(content.devices.iter().map(|d| d.instance_id.as_str()));
        self.swap_in(dir, &refused, Touched::Some(touched.collect()));
        Ok(refused)
    }

    /// Makes `dir` the live directory and tells live connections of the touched instances to re-check
    /// their credentials.
    fn swap_in(&self, dir: Directory, refused: &[SnapshotError], touched: Touched<'_>) {
        for e in refused {
            crate::metrics::snapshot_instance_refused();
            tracing::error!(version = dir.version, error = %e, "instance configuration refused; serving its previous one");
        }
        crate::metrics::snapshot_version(dir.version);
        let version = dir.version;
        self.current.store(Arc::new(dir));
        self.changed.send_replace(version);
        let mut senders = self.instance_changed.lock().unwrap_or_else(|p| p.into_inner());
        match touched {
            Touched::All => {
                // Instances nobody listens to any more are forgotten here.
                senders.retain(|_, tx| tx.receiver_count() > 0);
                for tx in senders.values() {
                    tx.send_replace(version);
                }
            }
            Touched::Some(ids) => {
                for id in ids {
                    if let Some(tx) = senders.get(id) {
                        tx.send_replace(version);
                        if tx.receiver_count() == 0 {
                            senders.remove(id);
                        }
                    }
                }
            }
        }
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
    use common::snapshot::{DeviceCredentialEntry, SnapshotContent};

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

    fn device(client_id: &str, key: &str) -> DeviceCredentialEntry {
        DeviceCredentialEntry {
            client_id: client_id.into(),
            device_access_key_id: key.into(),
            device_access_key_secret: format!("secret-of-{key}"),
        }
    }

    fn devices(dirs: &Directories, id: &str) -> Vec<(String, String)> {
        let mut d: Vec<(String, String)> = dirs.load().instances[id]
            .device_credentials
            .iter()
            .map(|(c, s)| (c.to_string(), s.key_id.to_string()))
            .collect();
        d.sort();
        d
    }

    fn delta(from: i64, to: i64, content: common::delta::DeltaContent) -> Delta {
        Delta::new(from, to, content)
    }

    #[test]
    fn a_delta_changes_devices_one_by_one_and_instances_whole() {
        let dirs = Directories::new(None);
        let mut a = instance(A, &["GID_alpha"]);
        a.device_credentials = vec![device("GID_alpha@@@1", "k1"), device("GID_alpha@@@2", "k2")];
        dirs.apply_snapshot(snapshot(4, vec![a, instance(B, &["GID_bravo"])]))
            .unwrap();

        let refused = dirs
            .apply_delta(&delta(
                4,
                6,
                common::delta::DeltaContent {
                    instances: vec![
                        ChangedInstance {
                            config: instance(B, &["GID_bravo", "GID_bravo2"]),
                            devices_included: false,
                        },
                        ChangedInstance {
                            config: InstanceConfig {
                                device_credentials: vec![device("GID_charlie@@@1", "kc")],
                                ..instance(C, &["GID_charlie"])
                            },
                            devices_included: true,
                        },
                    ],
                    devices: vec![DeviceChanges {
                        instance_id: A.into(),
                        upserts: vec![device("GID_alpha@@@2", "k2new"), device("GID_alpha@@@3", "k3")],
                        removed: vec!["GID_alpha@@@1".into()],
                    }],
                    ..Default::default()
                },
            ))
            .unwrap();
        assert!(refused.is_empty(), "{refused:?}");
        let dir = dirs.load();
        assert_eq!(dir.version, 6);
        assert_eq!(
            devices(&dirs, A),
            [
                ("GID_alpha@@@2".into(), "k2new".into()),
                ("GID_alpha@@@3".into(), "k3".into())
            ]
        );
        assert_eq!(
            groups(&dirs, A).unwrap(),
            ["GID_alpha"],
            "A's settings were not part of it"
        );
        assert_eq!(groups(&dirs, B).unwrap(), ["GID_bravo", "GID_bravo2"]);
        assert_eq!(devices(&dirs, C), [("GID_charlie@@@1".into(), "kc".into())]);

        dirs.apply_delta(&delta(
            6,
            7,
            common::delta::DeltaContent {
                removed_instances: vec![B.into()],
                ..Default::default()
            },
        ))
        .unwrap();
        assert!(!dirs.load().instances.contains_key(B));

        // What it holds now digests as the same configuration sent whole would.
        let mut a = instance(A, &["GID_alpha"]);
        a.device_credentials = vec![device("GID_alpha@@@3", "k3"), device("GID_alpha@@@2", "k2new")];
        let mut c = instance(C, &["GID_charlie"]);
        c.device_credentials = vec![device("GID_charlie@@@1", "kc")];
        assert_eq!(dirs.load().digest(), Some(config_digest::of_instances([&a, &c])));
        let whole = Directories::new(None);
        whole.apply_snapshot(snapshot(7, vec![c, a])).unwrap();
        assert_eq!(whole.load().digest(), dirs.load().digest());
    }

    #[test]
    fn a_delta_that_does_not_fit_is_an_error_and_changes_nothing() {
        let dirs = Directories::new(None);
        dirs.apply_snapshot(snapshot(4, vec![instance(A, &["GID_alpha"])]))
            .unwrap();
        let add = |instance_id: &str| common::delta::DeltaContent {
            devices: vec![DeviceChanges {
                instance_id: instance_id.into(),
                upserts: vec![device("GID_alpha@@@1", "k1")],
                removed: vec![],
            }],
            ..Default::default()
        };
        assert_eq!(
            dirs.apply_delta(&delta(3, 5, add(A))),
            Err(DeltaError::NotNext { from: 3, applied: 4 })
        );
        assert_eq!(
            dirs.apply_delta(&delta(4, 5, add(B))),
            Err(DeltaError::UnknownInstance(B.into()))
        );
        let settings_of_unknown = common::delta::DeltaContent {
            instances: vec![ChangedInstance {
                config: instance(B, &["GID_bravo"]),
                devices_included: false,
            }],
            ..Default::default()
        };
        assert_eq!(
            dirs.apply_delta(&delta(4, 5, settings_of_unknown)),
            Err(DeltaError::UnknownInstance(B.into()))
        );
        let mut damaged = delta(4, 5, add(A));
        damaged.content.devices[0].removed.push("GID_alpha@@@9".into());
        assert_eq!(
            dirs.apply_delta(&damaged),
            Err(DeltaError::Damaged(SnapshotError::HashMismatch))
        );
        assert_eq!(dirs.load().version, 4);
        assert!(devices(&dirs, A).is_empty());
    }

    #[test]
    fn an_invalid_change_in_a_delta_is_refused_for_its_instance_alone() {
        let dirs = Directories::new(None);
        dirs.apply_snapshot(snapshot(
            1,
            vec![instance(A, &["GID_alpha"]), instance(B, &["GID_bravo"])],
        ))
        .unwrap();
        let refused = dirs
            .apply_delta(&delta(
                1,
                2,
                common::delta::DeltaContent {
                    instances: vec![ChangedInstance {
                        config: instance(B, &["GID_bravo", "nope"]),
                        devices_included: false,
                    }],
                    devices: vec![
                        DeviceChanges {
                            instance_id: A.into(),
                            upserts: vec![device("GID_alpha@@@1", "k1"), device("no-group-separator", "k2")],
                            removed: vec![],
                        },
                        DeviceChanges {
                            instance_id: B.into(),
                            upserts: vec![device("GID_bravo@@@1", "kb")],
                            removed: vec![],
                        },
                    ],
                    ..Default::default()
                },
            ))
            .unwrap();
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(
            refused
                .iter()
                .any(|e| matches!(e, SnapshotError::Invalid { instance, .. } if instance == A))
        );
        assert!(
            refused
                .iter()
                .any(|e| matches!(e, SnapshotError::Invalid { instance, .. } if instance == B))
        );
        assert_eq!(dirs.load().version, 2);
        assert!(devices(&dirs, A).is_empty(), "none of A's refused change applies");
        assert_eq!(groups(&dirs, B).unwrap(), ["GID_bravo"], "B keeps its settings");
        assert_eq!(
            devices(&dirs, B),
            [("GID_bravo@@@1".into(), "kb".into())],
            "B's valid devices apply"
        );
    }

    #[test]
    fn a_delta_signals_the_instances_it_touches_and_a_snapshot_all() {
        let dirs = Directories::new(None);
        dirs.apply_snapshot(snapshot(
            1,
            vec![instance(A, &["GID_alpha"]), instance(B, &["GID_bravo"])],
        ))
        .unwrap();
        let (mut a, b) = (dirs.watch_instance(A), dirs.watch_instance(B));
        let devices_of_a = common::delta::DeltaContent {
            devices: vec![DeviceChanges {
                instance_id: A.into(),
                upserts: vec![device("GID_alpha@@@1", "k1")],
                removed: vec![],
            }],
            ..Default::default()
        };
        dirs.apply_delta(&delta(1, 2, devices_of_a)).unwrap();
        assert!(a.has_changed().unwrap());
        assert!(!b.has_changed().unwrap(), "B's connections are left alone");
        a.mark_unchanged();
        dirs.apply_snapshot(snapshot(
            3,
            vec![instance(A, &["GID_alpha"]), instance(B, &["GID_bravo"])],
        ))
        .unwrap();
        assert!(a.has_changed().unwrap() && b.has_changed().unwrap());
    }

    /// What the compiled configuration keeps per device credential and per revoked token, counted by
    /// the test allocator (identifiers as the control plane makes them: `DC.` + 22 characters, a 33
    /// character secret, 32 hexadecimal digits per token id).
    #[test]
    fn memory_per_device_credential_and_per_revoked_token() {
        const N: usize = 100_000;
        let base = instance(A, &["GID_alpha"]);
        let mut devices = base.clone();
        devices.device_credentials = (0..N)
            .map(|i| DeviceCredentialEntry {
                client_id: format!("GID_alpha@@@device-{i:08}"),
                device_access_key_id: format!("DC.{i:022}"),
                device_access_key_secret: format!("DC.{i:030}"),
            })
            .collect();
        let mut revoked = base.clone();
        revoked.revoked_tokens = (0..N)
            .map(|i| common::snapshot::RevokedToken {
                jti: format!("{i:032x}"),
                exp_ms: i64::MAX,
            })
            .collect();
        let kept = |cfg: &InstanceConfig| {
            let before = crate::test_alloc::live_bytes();
            let compiled = Instance::compile(cfg);
            let bytes = crate::test_alloc::live_bytes() - before;
            drop(compiled);
            bytes
        };
        let empty = kept(&base);
        let per_device = (kept(&devices) - empty) / N;
        let per_revoked = (kept(&revoked) - empty) / N;
        println!("kept per device credential: {per_device} B, per revoked token: {per_revoked} B");
        // Measured 149 and 64 (463 per credential in a persistent HAMT map before).
        assert!(per_device <= 200, "{per_device} B per device credential");
        assert!(per_revoked <= 100, "{per_revoked} B per revoked token");
    }
}
