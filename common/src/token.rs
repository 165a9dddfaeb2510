//! Tokens *(docs/spec.md 3.2, 3.7)*: Ed25519-signed JWTs issued by the control plane and verified offline by
//! brokers. Only the control plane holds the private key; brokers receive the public keys in the snapshot.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::topic;

/// What a token allows: `R` = subscribe, `W` = publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TokenAction {
    R,
    W,
    RW,
}

impl TokenAction {
    /// Parses the API form (`R`, `W`, `R,W`; `W,R` and `RW` accepted too).
    pub fn parse_api(s: &str) -> Option<Self> {
        match s.trim() {
            "R" => Some(Self::R),
            "W" => Some(Self::W),
            "R,W" | "W,R" | "RW" => Some(Self::RW),
            _ => None,
        }
    }

    /// Parses the TYPE of a `<TYPE>|<token>` password pair *(compat)*.
    pub fn parse_type(s: &str) -> Option<Self> {
        match s {
            "R" => Some(Self::R),
            "W" => Some(Self::W),
            "RW" => Some(Self::RW),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::R => "R",
            Self::W => "W",
            Self::RW => "RW",
        }
    }

    pub fn allows_read(self) -> bool {
        matches!(self, Self::R | Self::RW)
    }

    pub fn allows_write(self) -> bool {
        matches!(self, Self::W | Self::RW)
    }

    /// True when every right of `self` is also granted by `granted`.
    pub fn covered_by(self, granted: Self) -> bool {
        (!self.allows_read() || granted.allows_read()) && (!self.allows_write() || granted.allows_write())
    }
}

/// The signed content of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Unique token id; revocations name it.
    pub jti: String,
    /// Instance the token is valid on.
    pub iid: String,
    /// AccessKeyId that applied for it.
    pub ak: String,
    /// Topics or filters (may contain `+` and `#`).
    pub res: Vec<String>,
    pub act: TokenAction,
    /// Issued-at and expiry in epoch milliseconds (the API's unit *(compat)*).
    pub iat_ms: i64,
    pub exp_ms: i64,
}

impl TokenClaims {
    /// True when the topic name (of a PUBLISH or a delivery) is inside one of the token's resources.
    pub fn covers_topic(&self, topic_name: &str) -> bool {
        self.res.iter().any(|r| topic::matches(r, topic_name))
    }

    /// True when every topic the SUBSCRIBE filter can match is inside one resource (the filter is a
    /// subset of it, level by level).
    pub fn covers_filter(&self, filter: &str) -> bool {
        self.res.iter().any(|r| topic::filter_covers(r, filter))
    }
}

/// Why a token was refused; `notice_code` is the `$SYS/tokenInvalidNotice` code *(compat)*.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token has expired")]
    Expired,
    #[error("token was revoked")]
    Revoked,
    #[error("token does not cover the resource")]
    ResourceMismatch,
    #[error("token does not allow the action")]
    ActionMismatch,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token belongs to another instance or AccessKey")]
    PermissionInvalid,
}

impl TokenError {
    pub fn notice_code(self) -> i32 {
        match self {
            Self::Malformed => 1,
            Self::Expired => 2,
            Self::Revoked => 3,
            Self::ResourceMismatch => 4,
            Self::ActionMismatch => 5,
            Self::BadSignature => 8,
            Self::PermissionInvalid => -1,
        }
    }
}

/// A public verification key as carried in the snapshot: key id + raw 32-byte Ed25519 key in Base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenPublicKey {
    pub kid: String,
    pub public_key: String,
}

/// The control plane's signing key. Create it from a 32-byte seed kept encrypted at rest.
pub struct TokenSigner {
    kid: String,
    encoding: EncodingKey,
    public: TokenPublicKey,
}

impl TokenSigner {
    pub fn from_seed(kid: impl Into<String>, seed: &[u8; 32]) -> Self {
        let kid = kid.into();
        let signing = SigningKey::from_bytes(seed);
        let der = signing.to_pkcs8_der().expect("an Ed25519 key always encodes as PKCS#8");
        let public = TokenPublicKey {
            kid: kid.clone(),
            public_key: STANDARD.encode(signing.verifying_key().to_bytes()),
        };
        Self {
            kid,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            public,
        }
    }

    /// A fresh random 32-byte seed.
    pub fn generate_seed() -> [u8; 32] {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        seed
    }

    pub fn public_key(&self) -> &TokenPublicKey {
        &self.public
    }

    pub fn sign(&self, claims: &TokenClaims) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing with a valid Ed25519 key cannot fail")
    }
}

/// Offline verification against the public keys of a snapshot.
#[derive(Default, Clone)]
pub struct TokenVerifier {
    keys: HashMap<String, DecodingKey>,
}

impl TokenVerifier {
    /// Keys that do not decode are skipped (a snapshot validator reports them separately).
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a TokenPublicKey>) -> Self {
        let keys = keys
            .into_iter()
            .filter_map(|k| {
                let raw = STANDARD.decode(&k.public_key).ok().filter(|raw| raw.len() == 32)?;
                Some((k.kid.clone(), DecodingKey::from_ed_der(&raw)))
            })
            .collect();
        Self { keys }
    }

    /// Checks form, signature and expiry. Instance, resource, action and revocation checks are the
    /// caller's, since they depend on the request.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<TokenClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Malformed);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or(TokenError::BadSignature)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        // Expiry is in milliseconds and checked below, so that "expired" and "forged" stay distinct.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<TokenClaims>(token, key, &validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
            _ => TokenError::Malformed,
        })?;
        if data.claims.exp_ms <= now_ms {
            return Err(TokenError::Expired);
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp_ms: i64) -> TokenClaims {
        TokenClaims {
            jti: "t1".into(),
            iid: "mqtt-abcdefabcdef".into(),
            ak: "AK1".into(),
            res: vec!["T/a/+".into(), "T/b".into()],
            act: TokenAction::RW,
            iat_ms: 0,
            exp_ms,
        }
    }

    #[test]
    fn sign_and_verify() {
        let signer = TokenSigner::from_seed("k1", &TokenSigner::generate_seed());
        let verifier = TokenVerifier::new([signer.public_key()]);
        let token = signer.sign(&claims(10_000));
        let c = verifier.verify(&token, 5_000).unwrap();
        assert!(c.covers_topic("T/a/x") && c.covers_topic("T/b") && !c.covers_topic("T/c"));
        assert_eq!(verifier.verify(&token, 10_000), Err(TokenError::Expired));
        assert_eq!(verifier.verify("garbage", 0), Err(TokenError::Malformed));

        let other = TokenSigner::from_seed("k1", &TokenSigner::generate_seed());
        assert_eq!(
            verifier.verify(&other.sign(&claims(10_000)), 0),
            Err(TokenError::BadSignature)
        );
        let mut tampered = token.clone();
        tampered.insert(token.rfind('.').unwrap() - 2, 'x');
        assert!(verifier.verify(&tampered, 0).is_err());
    }

    #[test]
    fn actions() {
        assert_eq!(TokenAction::parse_api("R,W"), Some(TokenAction::RW));
        assert_eq!(TokenAction::parse_api("X"), None);
        assert!(TokenAction::R.covered_by(TokenAction::RW));
        assert!(!TokenAction::RW.covered_by(TokenAction::W));
    }
}
