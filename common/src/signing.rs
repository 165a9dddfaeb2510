//! MQTT passwords *(compat)*: Base64(HMAC-SHA1(secret, clientId)) for Signature and DeviceCredential
//! modes, and the online-status query signature. Verification compares in constant time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<Sha1>;

/// Base64(HMAC-SHA1(key, data)), standard alphabet with padding.
pub fn hmac_sha1_base64(key: &[u8], data: &[u8]) -> String {
    let mut mac = HmacSha1::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The MQTT password of a Signature or DeviceCredential client.
pub fn mqtt_password(secret: &str, client_id: &str) -> String {
    hmac_sha1_base64(secret.as_bytes(), client_id.as_bytes())
}

/// Constant-time check of a Signature or DeviceCredential password.
pub fn verify_mqtt_password(secret: &str, client_id: &str, password: &[u8]) -> bool {
    constant_time_eq(mqtt_password(secret, client_id).as_bytes(), password)
}

/// Constant-time equality (length differences are not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The string signed by the online-status query *(compat)*: every parameter but `signature` as
/// `key=value`, sorted by key, joined with `&`, unencoded.
pub fn online_query_string_to_sign<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = params.into_iter().filter(|(k, _)| *k != "signature").collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_28_chars_of_padded_base64() {
        let p = mqtt_password("secret", "GID_test@@@dev1");
        assert_eq!(p.len(), 28);
        assert!(p.ends_with('='));
        assert!(verify_mqtt_password("secret", "GID_test@@@dev1", p.as_bytes()));
        assert!(!verify_mqtt_password("secret2", "GID_test@@@dev1", p.as_bytes()));
    }

    #[test]
    fn known_vector() {
        // RFC 2202 test case 2 for HMAC-SHA1, base64-encoded.
        assert_eq!(
            hmac_sha1_base64(b"Jefe", b"what do ya want for nothing?"),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
    }

    #[test]
    fn online_query_sorting() {
        let s = online_query_string_to_sign([
            ("timestamp", "1"),
            ("accessKey", "ak"),
            ("signature", "x"),
            ("resource", "c"),
        ]);
        assert_eq!(s, "accessKey=ak&resource=c&timestamp=1");
    }
}
