//! Random identifiers and secrets: instance ids, AccessKey pairs, device credentials, token ids.

use rand::Rng;
use rand::distributions::Alphanumeric;

fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// `mqtt-<12 lowercase alnum>` (docs/spec.md 1).
pub fn instance_id() -> String {
    format!("mqtt-{}", random_string(12, LOWER_ALNUM))
}

fn alnum(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// AccessKeyId in Alibaba's shape (`LTAI` + 20 alnum).
pub fn access_key_id() -> String {
    format!("LTAI{}", alnum(20))
}

pub fn access_key_secret() -> String {
    alnum(30)
}

/// Device credential pair; both start with `DC.` *(compat)*.
pub fn device_key_id() -> String {
    format!("DC.{}", alnum(22))
}

pub fn device_secret() -> String {
    format!("DC.{}", alnum(30))
}

/// Token id (jti): 128 random bits in hex.
pub fn token_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Broker node secret: 40 alnum chars (about 238 bits), stored as SHA-256.
pub fn node_secret() -> String {
    alnum(40)
}
