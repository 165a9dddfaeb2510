//! A digest of the configuration a broker serves, which the control plane can compute from its own
//! and compare (docs/sync-protocol.md, "Proving the broker holds it"). Per instance: a hash of its
//! settings and an XOR of one hash per device credential, so a broker updates it per credential in
//! a delta instead of hashing a million again. Revoked tokens are left out: they leave the
//! configuration as they expire, at moments the two sides do not share.

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::custom_auth::CustomAuth;
use crate::quotas::Quotas;
use crate::rules::RuleConfig;
use crate::snapshot::{AccessKeyGrant, InstanceConfig};

/// 128 bits of SHA-256: XOR-combined, so order does not matter and a removal undoes an addition.
pub type Digest = u128;

fn truncated(bytes: &[u8]) -> Digest {
    let sum = Sha256::digest(bytes);
    Digest::from_be_bytes(sum[..16].try_into().expect("SHA-256 has 32 bytes"))
}

/// The settings as hashed: everything of the instance but its device credentials and revoked tokens.
#[derive(Serialize)]
struct Settings<'a> {
    id: &'a str,
    name: &'a str,
    quotas: &'a Quotas,
    reject_duplicate_client_id: bool,
    parent_topics: &'a [String],
    group_ids: &'a [String],
    access_keys: &'a [AccessKeyGrant],
    rules: &'a [RuleConfig],
    custom_auth: &'a CustomAuth,
}

/// The digest of an instance's settings.
pub fn settings(cfg: &InstanceConfig) -> Digest {
    let view = Settings {
        id: &cfg.id,
        name: &cfg.name,
        quotas: &cfg.quotas,
        reject_duplicate_client_id: cfg.reject_duplicate_client_id,
        parent_topics: &cfg.parent_topics,
        group_ids: &cfg.group_ids,
        access_keys: &cfg.access_keys,
        rules: &cfg.rules,
        custom_auth: &cfg.custom_auth,
    };
    truncated(&serde_json::to_vec(&view).expect("settings always serialize"))
}

/// The digest of one device credential; an instance's is the XOR of its credentials'.
pub fn device(client_id: &str, key_id: &str, secret: &str) -> Digest {
    truncated(format!("{client_id}\n{key_id}\n{secret}").as_bytes())
}

/// The digest of an instance from its parts.
pub fn instance(id: &str, settings: Digest, devices: Digest) -> Digest {
    truncated(format!("{id}\n{settings:032x}\n{devices:032x}").as_bytes())
}

/// The digest of whole instances, as a broker holding exactly these reports it.
pub fn of_instances<'a>(instances: impl IntoIterator<Item = &'a InstanceConfig>) -> Digest {
    instances.into_iter().fold(0, |all, cfg| {
        let devices = cfg.device_credentials.iter().fold(0, |d, c| {
            d ^ device(&c.client_id, &c.device_access_key_id, &c.device_access_key_secret)
        });
        all ^ instance(&cfg.id, settings(cfg), devices)
    })
}

/// As reported in the heartbeat.
pub fn to_hex(digest: Digest) -> String {
    format!("{digest:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::DeviceCredentialEntry;

    fn cfg(devices: &[(&str, &str)]) -> InstanceConfig {
        InstanceConfig {
            id: "mqtt-abcdefabcdef".into(),
            name: "n".into(),
            quotas: Quotas::default(),
            reject_duplicate_client_id: false,
            parent_topics: vec!["T".into()],
            group_ids: vec![],
            access_keys: vec![],
            device_credentials: devices
                .iter()
                .map(|(c, k)| DeviceCredentialEntry {
                    client_id: c.to_string(),
                    device_access_key_id: k.to_string(),
                    device_access_key_secret: "s".into(),
                })
                .collect(),
            revoked_tokens: vec![],
            rules: vec![],
            custom_auth: Default::default(),
        }
    }

    #[test]
    fn order_free_and_sensitive_to_every_credential_and_setting() {
        let one = of_instances([&cfg(&[("a", "1"), ("b", "2")])]);
        assert_eq!(one, of_instances([&cfg(&[("b", "2"), ("a", "1")])]));
        assert_ne!(one, of_instances([&cfg(&[("a", "1"), ("b", "3")])]));
        assert_ne!(one, of_instances([&cfg(&[("a", "1")])]));
        let mut renamed = cfg(&[("a", "1"), ("b", "2")]);
        renamed.name = "m".into();
        assert_ne!(one, of_instances([&renamed]));
        let mut revoked = cfg(&[("a", "1"), ("b", "2")]);
        revoked.revoked_tokens.push(crate::snapshot::RevokedToken {
            jti: "j".into(),
            exp_ms: 1,
        });
        assert_eq!(one, of_instances([&revoked]), "revoked tokens are not part of it");
        assert_eq!(to_hex(one).len(), 32);
    }
}
