//! Builds the broker snapshot (`common::snapshot::Snapshot`) of every instance from the database:
//! decrypted secrets, token public keys and the revoked, not yet expired token ids. Read in one
//! repeatable-read transaction, so the version always matches the content.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use common::quotas::Quotas;
use common::snapshot::{
    AccessKeyGrant, DeviceCredentialEntry, InstanceConfig, RevokedToken, Snapshot, SnapshotContent,
};
use common::token::TokenSigner;
use sqlx::PgPool;
use sqlx::types::Json;

use super::PollParams;
use super::feeds::Wake;
use crate::auth::node::Node;
use crate::auth::signing_key::open_seed;
use crate::crypto::{Aad, SecretBox};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub async fn build(db: &PgPool, secrets: &SecretBox) -> anyhow::Result<Snapshot> {
    let mut tx = db.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only")
        .execute(&mut *tx)
        .await?;
    let (version,): (i64,) = sqlx::query_as("select version from config_version")
        .fetch_one(&mut *tx)
        .await?;

    let keys: Vec<(String, Vec<u8>)> =
        sqlx::query_as("select kid, seed_enc from token_signing_keys order by created_at")
            .fetch_all(&mut *tx)
            .await?;
    let mut token_keys = Vec::new();
    for (kid, enc) in keys {
        let seed = open_seed(secrets, &kid, &enc)?;
        token_keys.push(TokenSigner::from_seed(kid, &seed).public_key().clone());
    }

    let rows: Vec<(String, String, Json<Quotas>, bool)> =
        sqlx::query_as("select id, name, quotas, reject_duplicate_client_id from instances order by id")
            .fetch_all(&mut *tx)
            .await?;
    let mut instances: BTreeMap<String, InstanceConfig> = rows
        .into_iter()
        .map(|(id, name, quotas, reject)| {
            let config = InstanceConfig {
                id: id.clone(),
                name,
                quotas: quotas.0,
                reject_duplicate_client_id: reject,
                parent_topics: vec![],
                group_ids: vec![],
                access_keys: vec![],
                device_credentials: vec![],
                revoked_tokens: vec![],
            };
            (id, config)
        })
        .collect();

    let names: Vec<(String, String)> =
        sqlx::query_as("select instance_id, name from parent_topics order by instance_id, name")
            .fetch_all(&mut *tx)
            .await?;
    for (iid, name) in names {
        instances.entry(iid).and_modify(|i| i.parent_topics.push(name));
    }
    let groups: Vec<(String, String)> =
        sqlx::query_as("select instance_id, group_id from group_ids order by instance_id, group_id")
            .fetch_all(&mut *tx)
            .await?;
    for (iid, gid) in groups {
        instances.entry(iid).and_modify(|i| i.group_ids.push(gid));
    }

    let aks: Vec<(String, String, Vec<u8>, bool)> = sqlx::query_as(
        "select b.instance_id, k.id, k.secret_enc, k.enabled from access_key_instances b
         join access_keys k on k.id = b.access_key_id order by b.instance_id, k.id",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (iid, id, enc, enabled) in aks {
        let secret = secrets.decrypt_string(Aad::AccessKey(&id), &enc)?;
        instances.entry(iid).and_modify(|i| {
            i.access_keys.push(AccessKeyGrant {
                access_key_id: id,
                access_key_secret: secret,
                enabled,
            })
        });
    }

    let devs: Vec<(String, String, String, Vec<u8>)> = sqlx::query_as(
        "select instance_id, client_id, device_access_key_id, secret_enc from device_credentials
         order by instance_id, client_id",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (iid, client_id, key_id, enc) in devs {
        let secret = secrets.decrypt_string(Aad::Device(&key_id), &enc)?;
        instances.entry(iid).and_modify(|i| {
            i.device_credentials.push(DeviceCredentialEntry {
                client_id,
                device_access_key_id: key_id,
                device_access_key_secret: secret,
            })
        });
    }

    let now_ms = crate::clock::now_ms();
    let revoked: Vec<(String, String, i64)> = sqlx::query_as(
        "select instance_id, jti, expires_at_ms from tokens
         where revoked_at is not null and expires_at_ms > $1 order by instance_id, jti",
    )
    .bind(now_ms)
    .fetch_all(&mut *tx)
    .await?;
    for (iid, jti, exp_ms) in revoked {
        instances
            .entry(iid)
            .and_modify(|i| i.revoked_tokens.push(RevokedToken { jti, exp_ms }));
    }
    tx.commit().await?;

    Ok(Snapshot::new(
        version,
        SnapshotContent {
            token_keys,
            instances: instances.into_values().collect(),
        },
    ))
}

/// The serialized snapshot of the latest version, shared by every broker that polls it: built once
/// per version (decrypting every secret is the expensive part), and all brokers get the same bytes.
#[derive(Default)]
pub struct SnapshotCache {
    last: tokio::sync::Mutex<Option<(i64, axum::body::Bytes)>>,
}

impl SnapshotCache {
    /// JSON of a snapshot at least as new as `current`.
    pub async fn get(&self, db: &PgPool, secrets: &SecretBox, current: i64) -> anyhow::Result<axum::body::Bytes> {
        // Held while building, so the polls one change wakes together build it once.
        let mut last = self.last.lock().await;
        if let Some((version, json)) = &*last
            && *version >= current
        {
            return Ok(json.clone());
        }
        let snapshot = build(db, secrets).await?;
        let json = axum::body::Bytes::from(serde_json::to_vec(&snapshot)?);
        *last = Some((snapshot.version, json.clone()));
        Ok(json)
    }
}

/// `GET snapshot?after=<version>&waitSecs=<n>`: the full configuration as soon as its version differs
/// from the broker's, else 204 when the wait ends.
pub async fn snapshot(
    State(state): State<AppState>,
    _node: Node,
    params: Result<Query<PollParams>, QueryRejection>,
) -> ApiResult<Response> {
    let params = PollParams::parse(params)?;
    let deadline = params.deadline();
    // Subscribe before reading: a change committed after the read still wakes us.
    let mut waiter = state.feeds.config();
    loop {
        let (current,): (i64,) = sqlx::query_as("select version from config_version")
            .fetch_one(&state.db)
            .await?;
        if params.after != Some(current) {
            let json = state
                .snapshots
                .get(&state.db, &state.secrets, current)
                .await
                .map_err(ApiError::Internal)?;
            return Ok(([(CONTENT_TYPE, "application/json")], json).into_response());
        }
        if waiter.wait_until(deadline).await != Wake::Changed {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    }
}
