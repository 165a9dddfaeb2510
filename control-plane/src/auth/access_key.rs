//! Verification of ACS3-HMAC-SHA256 signed requests from their headers: time window, signature, then
//! the nonce (recorded in PostgreSQL so a replay is caught by any replica). The body is covered by the
//! signed `x-acs-content-sha256` header; the caller reads the body afterwards and compares its hash.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::http::request::Parts;
use chrono::{NaiveDateTime, Utc};

use super::{Caller, acs3};
use crate::crypto::Aad;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

fn header<'a>(parts: &'a Parts, name: &str) -> ApiResult<&'a str> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Unauthenticated("a required x-acs-* header is missing"))
}

/// A request whose headers carry a valid signature: the caller, and the body hash it signed.
pub struct Signed {
    pub caller: Caller,
    pub content_sha256: String,
}

pub async fn verify(state: &AppState, parts: &Parts, authorization: &str) -> ApiResult<Signed> {
    let auth = acs3::parse_authorization(authorization).ok_or(ApiError::Unauthenticated(
        "malformed ACS3-HMAC-SHA256 Authorization header",
    ))?;
    if !acs3::REQUIRED_SIGNED_HEADERS
        .iter()
        .all(|h| auth.signed_headers.iter().any(|s| s == h))
    {
        return Err(ApiError::Unauthenticated(
            "SignedHeaders must include host, x-acs-content-sha256, x-acs-date and x-acs-signature-nonce",
        ));
    }
    let date = NaiveDateTime::parse_from_str(header(parts, "x-acs-date")?, "%Y-%m-%dT%H:%M:%SZ")
        .map_err(|_| ApiError::Unauthenticated("x-acs-date must look like 2026-01-31T12:00:00Z"))?
        .and_utc();
    let window = state.config.signature_window_secs;
    if (Utc::now() - date).num_seconds().abs() > window {
        return Err(ApiError::RequestExpired);
    }
    let nonce = header(parts, "x-acs-signature-nonce")?;
    if nonce.is_empty() || nonce.len() > 128 {
        return Err(ApiError::Unauthenticated(
            "x-acs-signature-nonce must be 1 to 128 characters",
        ));
    }
    let body_hash = header(parts, "x-acs-content-sha256")?.to_ascii_lowercase();

    let secret = signing_secret(state, &auth.access_key_id).await?;

    let canonical = acs3::canonical_request(
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query(),
        &auth.signed_headers,
        |name| {
            parts
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_string))
                .collect()
        },
        &body_hash,
    );
    let expected = acs3::signature(&secret, &acs3::string_to_sign(&canonical));
    if !common::signing::constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        return Err(ApiError::SignatureMismatch);
    }

    // Recorded only after the signature holds, so unsigned traffic cannot fill the table.
    record_nonce(state, &auth.access_key_id, nonce, window).await?;
    Ok(Signed {
        caller: caller(state, auth.access_key_id).await?,
        content_sha256: body_hash,
    })
}

/// What an unknown or disabled AccessKey is told (the same for both).
pub(crate) const UNKNOWN_KEY: &str = "invalid AccessKey";

/// The secret of an enabled AccessKey, to check a signature made with it. The other request
/// signatures (Alibaba's RPC dialect) use this too.
pub(crate) async fn signing_secret(state: &AppState, access_key_id: &str) -> ApiResult<String> {
    // Unknown and disabled keys get the same answer.
    let secret_enc = match db::access_keys::secret(&state.db, access_key_id).await? {
        Some(key) if key.enabled => key.secret_enc,
        _ => return Err(ApiError::Unauthenticated(UNKNOWN_KEY)),
    };
    state
        .secrets
        .decrypt_string(Aad::AccessKey(access_key_id), &secret_enc)
        .map_err(ApiError::Internal)
}

/// Accepts `nonce` once per key. It is kept a little longer than `window_secs` either side of now
/// (the accepted clock skew of the signature), so a replay is always caught.
pub(crate) async fn record_nonce(
    state: &AppState,
    access_key_id: &str,
    nonce: &str,
    window_secs: i64,
) -> ApiResult<()> {
    let nonce_ttl = Duration::from_secs(u64::try_from(2 * window_secs + 60).unwrap_or(0));
    if !db::nonces::record(&state.db, access_key_id, nonce, nonce_ttl).await? {
        return Err(ApiError::NonceReplayed);
    }
    Ok(())
}

/// The caller a verified request of this key is: it may touch the instances the key is bound to.
pub(crate) async fn caller(state: &AppState, access_key_id: String) -> ApiResult<Caller> {
    let instances = db::access_keys::bound_instances(&state.db, &access_key_id).await?;
    Ok(Caller::AccessKey {
        id: access_key_id,
        instances: Arc::new(instances.into_iter().collect::<HashSet<_>>()),
    })
}
