//! Operators: argon2 password hashes, the first admin at start-up, and the bearer JWTs (HS256 under
//! a key derived from the master key, so every replica accepts every other replica's tokens).

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::crypto::SecretBox;
use crate::db;

#[derive(Debug, Serialize, Deserialize)]
pub struct OperatorClaims {
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
}

pub struct OperatorKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Key of the console sessions' CSRF tokens (HMAC of the session token).
    csrf: [u8; 32],
}

impl OperatorKeys {
    pub fn new(secrets: &SecretBox) -> Self {
        let key = secrets.derive("operator-jwt-v1");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
            validation,
            csrf: secrets.derive("console-csrf-v1"),
        }
    }

    /// The CSRF token that goes with a console session token: hex HMAC-SHA256 of it, so it needs no
    /// storage and is worthless without the session cookie.
    pub fn csrf_token(&self, session_token: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.csrf).expect("HMAC takes any key length");
        mac.update(session_token.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Returns the token and its expiry (epoch seconds).
    pub fn issue(&self, username: &str, ttl_secs: u64) -> (String, i64) {
        let now = chrono::Utc::now().timestamp();
        let exp = now + ttl_secs as i64;
        let claims = OperatorClaims {
            sub: username.to_string(),
            iat: now,
            exp,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail");
        (token, exp)
    }

    pub fn verify(&self, token: &str) -> Option<OperatorClaims> {
        jsonwebtoken::decode::<OperatorClaims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|d| d.claims)
    }
}

/// Argon2id hash of a random string, verified against for unknown usernames so that the answer time
/// does not tell which usernames exist.
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$K2Ud0HZ3f7mYkN0pLrJFqgbsxZcEm+2y6dQO5C7O8Hs";

/// Argon2id with the crate's default (OWASP) parameters; run on a blocking thread, it is slow on purpose.
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
    })
    .await?
}

/// Checks a password on a blocking thread; `hold` (a hash permit) is released when the hash is done,
/// even if the request that asked was cancelled meanwhile.
pub async fn verify_password(password: String, hash: String, hold: impl Send + 'static) -> bool {
    tokio::task::spawn_blocking(move || {
        let ok =
            PasswordHash::new(&hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok());
        drop(hold);
        ok
    })
    .await
    .unwrap_or(false)
}

/// Creates the first operator when there is none. Returns the generated password, if one was made,
/// so the caller can print it once.
pub async fn bootstrap_admin(pool: &PgPool, username: &str, password: Option<&str>) -> anyhow::Result<Option<String>> {
    if db::operators::any_exists(pool).await? {
        return Ok(None);
    }
    let generated = password.is_none().then(crate::ids::access_key_secret);
    let password = password
        .map(str::to_string)
        .or_else(|| generated.clone())
        .unwrap_or_default();
    let hash = hash_password(password).await?;
    let created = db::operators::create_if_absent(pool, username, &hash).await?;
    // Another replica may have won the race; then its password stands and ours was never used.
    Ok(generated.filter(|_| created))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_and_the_dummy_hash() {
        assert!(
            PasswordHash::new(DUMMY_HASH).is_ok(),
            "the dummy hash must parse, or unknown users answer faster"
        );
        let hash = hash_password("pw".into()).await.unwrap();
        assert!(verify_password("pw".into(), hash.clone(), ()).await);
        assert!(!verify_password("other".into(), hash, ()).await);
    }

    #[test]
    fn operator_tokens() {
        let keys = OperatorKeys::new(&SecretBox::new([1; 32]));
        let (token, _) = keys.issue("admin", 60);
        assert_eq!(keys.verify(&token).unwrap().sub, "admin");
        assert!(OperatorKeys::new(&SecretBox::new([2; 32])).verify(&token).is_none());
        assert!(keys.verify("x.y.z").is_none());
    }
}
