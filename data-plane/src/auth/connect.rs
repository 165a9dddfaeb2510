//! Authentication at CONNECT *(docs/spec.md 3.2)*: Signature, Token, DeviceCredential and custom
//! identities, all offline against the configuration. Every failure maps to the same "not authorized" on the wire;
//! the reason only reaches the logs and metrics.

use std::sync::Arc;

use common::names;
use common::signing::{constant_time_eq, verify_mqtt_password};
use common::token::TokenError;

use super::{Credential, Mode, Principal, Tokens};
use crate::directory::{Directory, Instance};

/// Why authentication failed (logged and counted, never sent to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("malformed username")]
    Username,
    #[error("unknown instance")]
    UnknownInstance,
    #[error("malformed client id")]
    ClientId,
    #[error("client id too long")]
    ClientIdTooLong,
    #[error("unknown group id")]
    UnknownGroup,
    #[error("unknown or disabled access key")]
    AccessKey,
    #[error("wrong signature")]
    Signature,
    #[error("unknown device credential or wrong client id")]
    DeviceCredential,
    #[error("token refused: {0}")]
    Token(TokenError),
    #[error("client id is on the instance's connect blacklist")]
    Blacklisted,
    #[error("unknown custom identity, wrong password or client id")]
    CustomIdentity,
}

impl AuthError {
    pub fn label(self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::UnknownInstance => "unknown_instance",
            Self::ClientId => "client_id",
            Self::ClientIdTooLong => "client_id_too_long",
            Self::UnknownGroup => "unknown_group",
            Self::AccessKey => "access_key",
            Self::Signature => "signature",
            Self::DeviceCredential => "device_credential",
            Self::Token(_) => "token",
            Self::Blacklisted => "blacklisted",
            Self::CustomIdentity => "custom_identity",
        }
    }
}

/// Authenticates a CONNECT against the current directory.
pub fn authenticate(
    dir: &Directory,
    username: &str,
    password: &[u8],
    client_id: &str,
    now_ms: i64,
) -> Result<Principal, AuthError> {
    // Product modes are `<Mode>|<key>|<instance>`; a username without `|` is a custom identity.
    if !username.contains('|') {
        return authenticate_custom(dir, username, password, client_id);
    }
    let mut parts = username.splitn(3, '|');
    let (mode, key_id, instance_id) = match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(k), Some(i)) => (m, k, i),
        _ => return Err(AuthError::Username),
    };
    let instance = served_instance(dir, instance_id, client_id)?;
    let max_len = instance.quotas.max_client_id_length as usize;
    let parsed = names::parse_client_id(client_id, max_len).map_err(|_| AuthError::ClientId)?;
    if !instance.group_ids.contains(parsed.group_id) {
        return Err(AuthError::UnknownGroup);
    }
    let principal = |mode, tokens, secret: &str| Principal {
        instance: instance.clone(),
        client_id: client_id.to_string(),
        credential: Credential {
            mode,
            key_id: key_id.to_string(),
            tokens,
            secret_fingerprint: super::fingerprint(secret),
        },
    };
    match mode {
        "Signature" => {
            let grant = enabled_key(instance, key_id)?;
            if !verify_mqtt_password(&grant.access_key_secret, client_id, password) {
                return Err(AuthError::Signature);
            }
            Ok(principal(Mode::Signature, Tokens::default(), &grant.access_key_secret))
        }
        "DeviceCredential" => {
            let cred = instance
                .device_credentials
                .get(client_id)
                .ok_or(AuthError::DeviceCredential)?;
            // Compare the key id in constant time too: it is part of the credential.
            let bound = constant_time_eq(cred.key_id.as_bytes(), key_id.as_bytes());
            let signed = verify_mqtt_password(&cred.secret, client_id, password);
            if !(bound & signed) {
                return Err(AuthError::DeviceCredential);
            }
            Ok(principal(Mode::DeviceCredential, Tokens::default(), &cred.secret))
        }
        "Token" => {
            enabled_key(instance, key_id)?;
            let password = std::str::from_utf8(password).map_err(|_| AuthError::Token(TokenError::Malformed))?;
            let tokens = Tokens::from_password(dir, instance, key_id, password, now_ms).map_err(AuthError::Token)?;
            Ok(principal(Mode::Token, tokens, ""))
        }
        _ => Err(AuthError::Username),
    }
}

/// The instance a CONNECT's username names, when this broker serves it (for the trace of a refused
/// CONNECT; nothing is recorded for a username that names no instance).
pub fn instance_named<'a>(dir: &'a Directory, username: &str) -> Option<&'a str> {
    let instance_id = match username.splitn(3, '|').nth(2) {
        Some(id) => id,
        None => dir.custom_usernames.get(username)?,
    };
    dir.instances
        .get_key_value(instance_id)
        .filter(|(_, inst)| !inst.open)
        .map(|(id, _)| id.as_str())
}

/// The instance a client connects to, when it may: not the development instance (only reachable
/// through the development listener), a client ID within its limit and not blacklisted.
fn served_instance<'a>(dir: &'a Directory, instance_id: &str, client_id: &str) -> Result<&'a Arc<Instance>, AuthError> {
    let instance = dir.instances.get(instance_id).ok_or(AuthError::UnknownInstance)?;
    if instance.open {
        return Err(AuthError::UnknownInstance);
    }
    if client_id.chars().count() > instance.quotas.max_client_id_length as usize {
        return Err(AuthError::ClientIdTooLong);
    }
    if instance.custom.is_blacklisted(client_id) {
        return Err(AuthError::Blacklisted);
    }
    Ok(instance)
}

/// A custom identity: its username names the instance (unique across the deployment) and the
/// identity; any well-formed client ID (a CLIENT identity's own only).
fn authenticate_custom(
    dir: &Directory,
    username: &str,
    password: &[u8],
    client_id: &str,
) -> Result<Principal, AuthError> {
    let instance_id = dir.custom_usernames.get(username).ok_or(AuthError::CustomIdentity)?;
    let instance = served_instance(dir, instance_id, client_id)?;
    common::custom_auth::validate_client_id(client_id, usize::MAX).map_err(|_| AuthError::ClientId)?;
    let identity = instance
        .custom
        .verify(username, client_id, password)
        .ok_or(AuthError::CustomIdentity)?;
    Ok(Principal {
        instance: instance.clone(),
        client_id: client_id.to_string(),
        credential: Credential {
            mode: Mode::Custom,
            key_id: username.to_string(),
            tokens: Tokens::default(),
            secret_fingerprint: super::custom_fingerprint(identity),
        },
    })
}

fn enabled_key<'a>(instance: &'a Instance, key_id: &str) -> Result<&'a common::snapshot::AccessKeyGrant, AuthError> {
    instance
        .access_keys
        .get(key_id)
        .filter(|k| k.enabled)
        .ok_or(AuthError::AccessKey)
}

/// The development listener: no credentials, every client in the development instance.
pub fn open_principal(dir: &Directory, dev_instance: &str, client_id: &str) -> Result<Principal, AuthError> {
    let instance = dir.instances.get(dev_instance).ok_or(AuthError::UnknownInstance)?;
    Ok(Principal {
        instance: instance.clone(),
        client_id: client_id.to_string(),
        credential: Credential::open(),
    })
}
