//! Secrets at rest: AES-256-GCM under the master key. Brokers need the plain AccessKey and device
//! secrets to check HMACs, so they are encrypted (not hashed); the row id is the associated data
//! (`Aad`), so a ciphertext copied onto another row does not decrypt.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::config::Config;

const NONCE_LEN: usize = 12;

/// What a ciphertext belongs to: the associated data every encryption and decryption names. The
/// labels are part of the stored data; changing one makes every secret stored under it unreadable.
#[derive(Debug, Clone, Copy)]
pub enum Aad<'a> {
    /// An AccessKey secret, by AccessKeyId.
    AccessKey(&'a str),
    /// A device credential secret, by DeviceAccessKeyId.
    Device(&'a str),
    /// A token signing seed, by key id.
    TokenKey(&'a str),
    /// A rule's target secrets, by rule id.
    Rule(&'a str),
    /// A custom-auth identity's secret, by username.
    CustomIdentity(&'a str),
}

impl Aad<'_> {
    fn label(self) -> String {
        match self {
            Self::AccessKey(id) => format!("access-key:{id}"),
            Self::Device(id) => format!("device:{id}"),
            Self::TokenKey(kid) => format!("token-key:{kid}"),
            Self::Rule(id) => format!("rule:{id}"),
            Self::CustomIdentity(username) => format!("custom-identity:{username}"),
        }
    }
}

/// The master key and the cipher built from it.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
    key: [u8; 32],
}

impl SecretBox {
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(&key.into()),
            key,
        }
    }

    /// Reads the key from `master_key` or `master_key_file`; refuses to start without one, since a
    /// generated key would make every stored secret unreadable after a restart.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let encoded = match (&config.master_key, &config.master_key_file) {
            (Some(k), _) => k.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read master key file {}: {e}", path.display()))?,
            (None, None) => anyhow::bail!(
                "no master key: set MASTER_KEY (base64 of 32 bytes, e.g. `openssl rand -base64 32`) or MASTER_KEY_FILE"
            ),
        };
        let raw = STANDARD
            .decode(encoded.trim())
            .map_err(|_| anyhow::anyhow!("master key is not valid base64"))?;
        let key: [u8; 32] = raw
            .try_into()
            .map_err(|_| anyhow::anyhow!("master key must be exactly 32 bytes"))?;
        Ok(Self::new(key))
    }

    pub fn encrypt(&self, aad: Aad<'_>, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.label().as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        out
    }

    pub fn decrypt(&self, aad: Aad<'_>, data: &[u8]) -> anyhow::Result<Vec<u8>> {
        anyhow::ensure!(data.len() > NONCE_LEN, "ciphertext too short");
        let (nonce, ct) = data.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at NONCE_LEN");
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: aad.label().as_bytes(),
                },
            )
            .map_err(|_| anyhow::anyhow!("secret does not decrypt under the master key"))
    }

    pub fn decrypt_string(&self, aad: Aad<'_>, data: &[u8]) -> anyhow::Result<String> {
        Ok(String::from_utf8(self.decrypt(aad, data)?)?)
    }

    /// A sub-key for one purpose (e.g. operator JWTs), so the master key itself never signs anything.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_binding() {
        let b = SecretBox::new([7; 32]);
        let ct = b.encrypt(Aad::AccessKey("1"), b"secret");
        assert_eq!(b.decrypt(Aad::AccessKey("1"), &ct).unwrap(), b"secret");
        assert!(b.decrypt(Aad::AccessKey("2"), &ct).is_err());
        assert!(b.decrypt(Aad::Device("1"), &ct).is_err());
        assert!(SecretBox::new([8; 32]).decrypt(Aad::AccessKey("1"), &ct).is_err());
    }

    /// Secrets already stored were encrypted under these exact strings.
    #[test]
    fn labels_are_stable() {
        assert_eq!(Aad::AccessKey("LTAIx").label(), "access-key:LTAIx");
        assert_eq!(Aad::Device("DC.x").label(), "device:DC.x");
        assert_eq!(Aad::TokenKey("k1").label(), "token-key:k1");
        assert_eq!(Aad::Rule("rule-1").label(), "rule:rule-1");
    }
}
