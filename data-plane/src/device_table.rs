//! Device credentials of one instance by client ID, in shards shared between directory versions:
//! a delta that changes one credential copies the one shard it falls in (at most `MAX_PER_SHARD`
//! entries), not the instance's million, while each entry costs what a plain hash map entry does.
//! (A persistent HAMT map, `imbl`, did the same copy-wise at 463 bytes kept per credential; this keeps
//! 149, measured by the memory test in `directory`.) The table also keeps its `config_digest` up to
//! date with every insert and removal.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use common::config_digest::{self, Digest};
use common::snapshot::DeviceCredentialEntry;

/// A shard grows to this many entries before the table doubles its shards.
const MAX_PER_SHARD: usize = 4096;

/// A device credential as the broker keeps it, under its client ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSecret {
    pub key_id: Box<str>,
    pub secret: Box<str>,
}

impl DeviceSecret {
    fn digest(&self, client_id: &str) -> Digest {
        config_digest::device(client_id, &self.key_id, &self.secret)
    }
}

type Shard = HashMap<Box<str>, DeviceSecret>;

#[derive(Clone)]
pub struct DeviceTable {
    /// A power of two of them; a client ID's shard is chosen by `hasher`.
    shards: Vec<Arc<Shard>>,
    hasher: RandomState,
    len: usize,
    /// XOR of `config_digest::device` of every entry.
    digest: Digest,
}

impl Default for DeviceTable {
    fn default() -> Self {
        Self::new()
    }
}

impl DeviceTable {
    pub fn new() -> Self {
        Self {
            shards: vec![Arc::default()],
            hasher: RandomState::new(),
            len: 0,
            digest: 0,
        }
    }

    /// The table of `entries` (a later entry of a client ID replaces an earlier one).
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = &'a DeviceCredentialEntry>) -> Self {
        let mut table = Self::new();
        for d in entries {
            table.upsert(d);
        }
        table
    }

    /// Adds or replaces the credential of `d.client_id`.
    pub fn upsert(&mut self, d: &DeviceCredentialEntry) {
        let secret = DeviceSecret {
            key_id: d.device_access_key_id.as_str().into(),
            secret: d.device_access_key_secret.as_str().into(),
        };
        self.insert(&d.client_id, secret);
    }

    /// XOR of `config_digest::device` of the credentials held.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    fn shard_of(&self, client_id: &str) -> usize {
        (self.hasher.hash_one(client_id) as usize) & (self.shards.len() - 1)
    }

    pub fn get(&self, client_id: &str) -> Option<&DeviceSecret> {
        self.shards[self.shard_of(client_id)].get(client_id)
    }

    /// Returns the entry it replaced.
    pub fn insert(&mut self, client_id: &str, secret: DeviceSecret) -> Option<DeviceSecret> {
        let i = self.shard_of(client_id);
        self.digest ^= secret.digest(client_id);
        // Copies the shard if an older directory still holds it.
        let replaced = Arc::make_mut(&mut self.shards[i]).insert(client_id.into(), secret);
        if let Some(old) = &replaced {
            self.digest ^= old.digest(client_id);
        } else {
            self.len += 1;
            if self.len > self.shards.len() * MAX_PER_SHARD {
                self.reshard(self.shards.len() * 2);
            }
        }
        replaced
    }

    pub fn remove(&mut self, client_id: &str) -> Option<DeviceSecret> {
        let i = self.shard_of(client_id);
        if !self.shards[i].contains_key(client_id) {
            return None;
        }
        let removed = Arc::make_mut(&mut self.shards[i]).remove(client_id);
        if let Some(old) = &removed {
            self.len -= 1;
            self.digest ^= old.digest(client_id);
        }
        removed
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &DeviceSecret)> {
        self.shards.iter().flat_map(|s| s.iter().map(|(k, v)| (&**k, v)))
    }

    /// Spreads the entries over `count` shards (amortized: the shards double).
    fn reshard(&mut self, count: usize) {
        let mut shards: Vec<Shard> = (0..count).map(|_| Shard::new()).collect();
        for shard in &self.shards {
            for (k, v) in shard.iter() {
                let i = (self.hasher.hash_one(&**k) as usize) & (count - 1);
                shards[i].insert(k.clone(), v.clone());
            }
        }
        self.shards = shards.into_iter().map(Arc::new).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(k: &str) -> DeviceSecret {
        DeviceSecret {
            key_id: k.into(),
            secret: "s".into(),
        }
    }

    #[test]
    fn a_copy_shares_what_it_does_not_change_and_grows_its_shards() {
        let mut table = DeviceTable::new();
        for i in 0..(3 * MAX_PER_SHARD) {
            assert!(table.insert(&format!("c{i}"), secret("k")).is_none());
        }
        assert_eq!((table.len(), table.shards.len()), (3 * MAX_PER_SHARD, 4));
        let before = table.clone();
        let mut after = table.clone();
        assert_eq!(after.insert("c1", secret("k2")), Some(secret("k")));
        assert_eq!(after.remove("c2"), Some(secret("k")));
        assert_eq!(after.remove("absent"), None);
        let shared = (0..4)
            .filter(|&i| Arc::ptr_eq(&before.shards[i], &after.shards[i]))
            .count();
        assert!(
            shared >= 2,
            "only the shards changed were copied ({shared} of 4 shared)"
        );
        assert_eq!(before.get("c1"), Some(&secret("k")));
        assert_eq!(after.get("c1"), Some(&secret("k2")));
        assert_eq!((before.get("c2").is_some(), after.get("c2").is_some()), (true, false));
        assert_eq!(after.len(), 3 * MAX_PER_SHARD - 1);
        assert_eq!(after.iter().count(), after.len());
        let recomputed = after.iter().fold(0, |all, (c, s)| all ^ s.digest(c));
        assert_eq!(
            after.digest(),
            recomputed,
            "the digest follows every insert and removal"
        );
    }
}
