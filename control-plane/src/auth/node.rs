//! Broker node credentials: `Authorization: Node <nodeId>:<nodeSecret>` on every broker-sync call.
//! Secrets are random (created here, or configured for unattended set-ups), so the database keeps
//! only their SHA-256 and the comparison runs in constant time.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::db;
use crate::error::ApiError;
use crate::state::AppState;

/// An authenticated broker node (extracting it is the authentication).
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub id: String,
}

impl Node {
    /// The answer to an unknown node and to a wrong secret alike (and to a node deleted while its
    /// request ran), so that it does not tell which node ids exist.
    pub fn unknown() -> ApiError {
        ApiError::Unauthenticated("unknown broker node or wrong secret")
    }
}

pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// 1-64 chars of `[A-Za-z0-9_.-]`: no `:` (it separates id and secret in the header).
pub(crate) fn valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl FromRequestParts<AppState> for Node {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthenticated("missing node credentials"))?;
        let (id, secret) = common::sync::parse_node_authorization(header).ok_or(ApiError::Unauthenticated(
            "expected `Authorization: Node <nodeId>:<nodeSecret>`",
        ))?;
        let stored = db::brokers::secret_sha256(&state.db, id).await?;
        // Compare even for an unknown node, so the answer time does not tell which ids exist.
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| vec![0; 32]);
        let matches = common::signing::constant_time_eq(&stored, &hash_secret(secret));
        if known && matches {
            Ok(Self { id: id.to_string() })
        } else {
            Err(Self::unknown())
        }
    }
}

/// Creates or updates (new secret) the nodes of `broker_nodes` / `CP_BROKER_NODES` (`id:secret`).
pub async fn bootstrap(pool: &PgPool, entries: &[String]) -> anyhow::Result<()> {
    for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let (id, secret) = entry
            .split_once(':')
            .filter(|(id, secret)| valid_node_id(id) && !secret.is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "broker_nodes: expected `<nodeId>:<secret>` with a node id of [A-Za-z0-9_.-], got {:?}",
                    entry.split(':').next().unwrap_or_default()
                )
            })?;
        db::brokers::configure(pool, id, &hash_secret(secret)).await?;
        tracing::info!(node = id, "broker node credential configured");
    }
    Ok(())
}
