//! The live tokens of a Token-mode connection *(compat: spec 3.2, 3.7)*: the password's
//! `<TYPE>|<token>` pairs, `$SYS/uploadToken` replacements, and the expiry notice timetable.

use std::collections::BTreeMap;

use common::token::{TokenAction, TokenClaims, TokenError};
use serde::Deserialize;

use crate::directory::{Directory, Instance};

/// How long before a token's expiry the client is sent `$SYS/tokenExpireNotice`.
pub const NOTICE_AHEAD_MS: i64 = 5 * 60 * 1000;

/// The tokens of one connection, by the TYPE they were presented as.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_type: BTreeMap<TokenAction, TokenClaims>,
    /// Token ids whose expiry notice was sent (a few: one token per type; a vector is 24 bytes
    /// smaller than a set in every connection).
    notified: Vec<String>,
}

/// The payload of `$SYS/uploadToken`.
#[derive(Deserialize)]
struct TokenUpload {
    token: String,
    #[serde(rename = "type")]
    kind: String,
}

/// What the token timetable asks for now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Due {
    /// Expiry notices to send: (type, expiry ms).
    pub notices: Vec<(TokenAction, i64)>,
    /// A token has expired: the connection must end.
    pub expired: Option<TokenAction>,
}

impl Tokens {
    /// Parses and verifies a Token-mode password, `R|t1|W|t2` or `RW|t`: every pair must hold a
    /// valid token *(compat)*.
    pub fn from_password(
        dir: &Directory,
        instance: &Instance,
        key_id: &str,
        password: &str,
        now_ms: i64,
    ) -> Result<Self, TokenError> {
        let parts: Vec<&str> = password.split('|').collect();
        if parts.is_empty() || !parts.len().is_multiple_of(2) {
            return Err(TokenError::Malformed);
        }
        let mut tokens = Self::default();
        for pair in parts.chunks(2) {
            let kind = TokenAction::parse_type(pair[0]).ok_or(TokenError::Malformed)?;
            let claims = verify(dir, instance, key_id, kind, pair[1], now_ms)?;
            tokens.by_type.insert(kind, claims);
        }
        Ok(tokens)
    }

    /// Replaces the token of one type from a `$SYS/uploadToken` payload. On failure: the error and
    /// the type the notice is about.
    pub fn upload(
        &mut self,
        dir: &Directory,
        instance: &Instance,
        key_id: &str,
        payload: &[u8],
        now_ms: i64,
    ) -> Result<(), (TokenError, String)> {
        let upload: TokenUpload =
            serde_json::from_slice(payload).map_err(|_| (TokenError::Malformed, "RW".to_string()))?;
        let kind = TokenAction::parse_type(&upload.kind).ok_or((TokenError::Malformed, upload.kind.clone()))?;
        let claims =
            verify(dir, instance, key_id, kind, &upload.token, now_ms).map_err(|e| (e, upload.kind.clone()))?;
        self.notified.retain(|jti| *jti != claims.jti);
        self.by_type.insert(kind, claims);
        Ok(())
    }

    pub fn may_publish(&self, topic_name: &str) -> bool {
        self.by_type
            .values()
            .any(|c| c.act.allows_write() && c.covers_topic(topic_name))
    }

    /// A read token covers the topic of a message delivered without a subscription of its own.
    pub fn may_read(&self, topic_name: &str) -> bool {
        self.by_type
            .values()
            .any(|c| c.act.allows_read() && c.covers_topic(topic_name))
    }

    /// `filter` must be a subset of a granted resource, level by level.
    pub fn may_subscribe(&self, filter: &str) -> bool {
        self.by_type
            .values()
            .any(|c| c.act.allows_read() && c.covers_filter(filter))
    }

    /// The notice for a refused publish: the resource is wrong if some token may write at all.
    pub fn write_refusal(&self) -> TokenError {
        if self.by_type.values().any(|c| c.act.allows_write()) {
            TokenError::ResourceMismatch
        } else {
            TokenError::ActionMismatch
        }
    }

    pub fn read_refusal(&self) -> TokenError {
        if self.by_type.values().any(|c| c.act.allows_read()) {
            TokenError::ResourceMismatch
        } else {
            TokenError::ActionMismatch
        }
    }

    pub fn first_kind(&self) -> Option<TokenAction> {
        self.by_type.keys().next().copied()
    }

    /// The first token that is revoked in `inst` or expired at `now_ms`.
    pub fn revoked_or_expired(&self, inst: &Instance, now_ms: i64) -> Option<(TokenError, TokenAction)> {
        self.by_type.iter().find_map(|(kind, claims)| {
            if inst.revoked_jtis.contains(&claims.jti) {
                Some((TokenError::Revoked, *kind))
            } else if claims.exp_ms <= now_ms {
                Some((TokenError::Expired, *kind))
            } else {
                None
            }
        })
    }

    /// When the timetable next needs a look (an expiry notice or an expiry), in ms since the epoch.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.by_type
            .values()
            .map(|c| {
                if self.notified.contains(&c.jti) {
                    c.exp_ms
                } else {
                    c.exp_ms - NOTICE_AHEAD_MS
                }
            })
            .min()
    }

    /// What is due at `now_ms`; notices returned here count as sent.
    pub fn take_due(&mut self, now_ms: i64) -> Due {
        let mut due = Due::default();
        for (kind, claims) in &self.by_type {
            if claims.exp_ms <= now_ms {
                due.expired = Some(*kind);
                return due;
            }
            if claims.exp_ms - NOTICE_AHEAD_MS <= now_ms && !self.notified.contains(&claims.jti) {
                self.notified.push(claims.jti.clone());
                due.notices.push((*kind, claims.exp_ms));
            }
        }
        due
    }
}

/// Full offline check of one token presented as `kind`: signature, expiry, instance, key, revocation.
fn verify(
    dir: &Directory,
    instance: &Instance,
    key_id: &str,
    kind: TokenAction,
    token: &str,
    now_ms: i64,
) -> Result<TokenClaims, TokenError> {
    let claims = dir.verifier.verify(token, now_ms)?;
    if claims.iid != instance.id || claims.ak != key_id {
        return Err(TokenError::PermissionInvalid);
    }
    if instance.revoked_jtis.contains(&claims.jti) {
        return Err(TokenError::Revoked);
    }
    if !kind.covered_by(claims.act) {
        return Err(TokenError::ActionMismatch);
    }
    Ok(claims)
}
