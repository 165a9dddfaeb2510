//! The broker snapshot (`common::snapshot::Snapshot`): built from the database with decrypted
//! secrets, token public keys and the revoked, not yet expired token ids; cached as JSON once per
//! version; served by the `GET snapshot` long-poll.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use common::config_digest::{self, Digest};
use common::custom_auth::{CustomIdentity, CustomPermission};
use common::delta::{CONFIG_KIND_HEADER, KIND_DELTA, KIND_SNAPSHOT};
use common::rules::TargetPolicy;
use common::snapshot::{
    AccessKeyGrant, DeviceCredentialEntry, InstanceConfig, RevokedToken, Snapshot, SnapshotContent,
};
use common::token::TokenSigner;
use sqlx::PgPool;

use super::PollParams;
use super::feeds::Wake;
use crate::auth::node::Node;
use crate::auth::signing_key::open_seed;
use crate::crypto::{Aad, SecretBox};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub async fn build(pool: &PgPool, secrets: &SecretBox) -> anyhow::Result<Snapshot> {
    build_with(pool, secrets, TargetPolicy::default()).await
}

/// The snapshot with the operator's rule target policy.
pub async fn build_with(pool: &PgPool, secrets: &SecretBox, rule_policy: TargetPolicy) -> anyhow::Result<Snapshot> {
    let rows = db::snapshot::read(pool, crate::clock::now_ms()).await?;
    let token_keys = open_token_keys(secrets, rows.token_keys)?;
    let instances = instance_configs(pool, secrets, rows.instances).await?;
    Ok(Snapshot::new(
        rows.version,
        SnapshotContent {
            rule_policy,
            token_keys,
            instances: instances.into_values().collect(),
        },
    ))
}

/// The public keys of the token signing keys.
pub(super) fn open_token_keys(
    secrets: &SecretBox,
    sealed: Vec<(String, Vec<u8>)>,
) -> anyhow::Result<Vec<common::token::TokenPublicKey>> {
    let mut token_keys = Vec::new();
    for (kid, enc) in sealed {
        let seed = open_seed(secrets, &kid, &enc)?;
        token_keys.push(TokenSigner::from_seed(kid, &seed).public_key().clone());
    }
    Ok(token_keys)
}

/// The configurations of the instances in `rows`, secrets opened, with their rules and custom
/// authentication.
pub(super) async fn instance_configs(
    pool: &PgPool,
    secrets: &SecretBox,
    rows: db::snapshot::InstancesRows,
) -> anyhow::Result<BTreeMap<String, InstanceConfig>> {
    let mut instances: BTreeMap<String, InstanceConfig> = rows
        .instances
        .into_iter()
        .map(|i| {
            let config = InstanceConfig {
                rules: Vec::new(),
                custom_auth: Default::default(),
                id: i.id.clone(),
                name: i.name,
                quotas: i.quotas,
                reject_duplicate_client_id: i.reject_duplicate_client_id,
                parent_topics: vec![],
                group_ids: vec![],
                access_keys: vec![],
                device_credentials: vec![],
                revoked_tokens: vec![],
            };
            (i.id, config)
        })
        .collect();

    for (iid, name) in rows.parent_topics {
        instances.entry(iid).and_modify(|i| i.parent_topics.push(name));
    }
    for (iid, gid) in rows.group_ids {
        instances.entry(iid).and_modify(|i| i.group_ids.push(gid));
    }
    for key in rows.access_keys {
        let secret = secrets.decrypt_string(Aad::AccessKey(&key.id), &key.secret_enc)?;
        instances.entry(key.instance_id).and_modify(|i| {
            i.access_keys.push(AccessKeyGrant {
                access_key_id: key.id,
                access_key_secret: secret,
                enabled: key.enabled,
            })
        });
    }
    for dev in rows.devices {
        let entry = open_device(secrets, dev.client_id, dev.device_access_key_id, &dev.secret_enc)?;
        instances
            .entry(dev.instance_id)
            .and_modify(|i| i.device_credentials.push(entry));
    }
    crate::rules::snapshot::attach(pool, secrets, &mut instances).await?;
    attach_custom_auth(pool, secrets, &mut instances).await?;
    for t in rows.revoked_tokens {
        instances.entry(t.instance_id).and_modify(|i| {
            i.revoked_tokens.push(RevokedToken {
                jti: t.jti,
                exp_ms: t.expires_at_ms,
            })
        });
    }
    Ok(instances)
}

/// A device credential with its secret opened.
pub(super) fn open_device(
    secrets: &SecretBox,
    client_id: String,
    key_id: String,
    secret_enc: &[u8],
) -> anyhow::Result<DeviceCredentialEntry> {
    let secret = secrets.decrypt_string(Aad::Device(&key_id), secret_enc)?;
    Ok(DeviceCredentialEntry {
        client_id,
        device_access_key_id: key_id,
        device_access_key_secret: secret,
    })
}

/// Fills in the custom authentication of `instances`, secrets opened. Read apart from the rest, as
/// rules are: a change in between bumps the version again, so brokers converge on the next build.
async fn attach_custom_auth(
    pool: &PgPool,
    secrets: &SecretBox,
    instances: &mut BTreeMap<String, InstanceConfig>,
) -> anyhow::Result<()> {
    let ids: Vec<String> = instances.keys().cloned().collect();
    let rows = db::custom_auth::for_snapshot(pool, &ids).await?;
    for row in rows.identities {
        let i = row.identity;
        let secret = secrets.decrypt_string(Aad::CustomIdentity(&i.username), &i.secret_enc)?;
        let identity = CustomIdentity {
            identity_type: i.identity_type,
            sign_mode: i.sign_mode,
            username: i.username,
            secret,
            client_id: i.client_id,
        };
        if let Some(inst) = instances.get_mut(&row.instance_id) {
            inst.custom_auth.identities.push(identity);
        }
    }
    for p in rows.permissions {
        let permission = CustomPermission {
            identity_type: p.identity_type,
            permit_action: p.permit_action,
            effect: p.effect,
            identity: p.identity,
            topic: p.topic,
        };
        if let Some(inst) = instances.get_mut(&p.instance_id) {
            inst.custom_auth.permissions.push(permission);
        }
    }
    for b in rows.blacklist {
        if let Some(inst) = instances.get_mut(&b.instance_id) {
            inst.custom_auth.connect_blacklist.push(b.client_id);
        }
    }
    Ok(())
}

/// The serialized snapshot of the latest version, shared by every broker that polls it: built once
/// per version (decrypting every secret is the expensive part), and all brokers get the same bytes.
/// The latest delta likewise: brokers at the same version that one change wakes get it built once.
#[derive(Default)]
pub(crate) struct SnapshotCache {
    last: tokio::sync::Mutex<Option<(i64, Bytes)>>,
    last_delta: tokio::sync::Mutex<Option<(i64, i64, Bytes)>>,
    /// Version and `config_digest` of the last full build: what brokers' digests are checked
    /// against. Apart from `last`, so heartbeats never wait for a build.
    digest: std::sync::Mutex<Option<(i64, Digest)>>,
}

impl SnapshotCache {
    /// JSON of a snapshot at least as new as `current`.
    pub async fn get(
        &self,
        pool: &PgPool,
        secrets: &SecretBox,
        rule_policy: TargetPolicy,
        current: i64,
    ) -> anyhow::Result<Bytes> {
        // Held while building, so the polls one change wakes together build it once.
        let mut last = self.last.lock().await;
        if let Some((version, json)) = &*last
            && *version >= current
        {
            return Ok(json.clone());
        }
        let snapshot = build_with(pool, secrets, rule_policy).await?;
        let json = Bytes::from(serde_json::to_vec(&snapshot)?);
        let digest = config_digest::of_instances(&snapshot.content.instances);
        *self.digest.lock().expect("digest lock") = Some((snapshot.version, digest));
        *last = Some((snapshot.version, json.clone()));
        Ok(json)
    }

    /// The version of the last full build and the digest of its instances.
    pub fn built_digest(&self) -> Option<(i64, Digest)> {
        *self.digest.lock().expect("digest lock")
    }

    /// JSON of a delta from `after` to a version at least as new as `current`, or `None` when only
    /// the full snapshot will do.
    pub async fn delta(
        &self,
        pool: &PgPool,
        secrets: &SecretBox,
        rule_policy: TargetPolicy,
        after: i64,
        current: i64,
    ) -> anyhow::Result<Option<Bytes>> {
        let mut last = self.last_delta.lock().await;
        if let Some((from, version, json)) = &*last
            && *from == after
            && *version >= current
        {
            return Ok(Some(json.clone()));
        }
        let Some(delta) = super::delta::build(pool, secrets, rule_policy, after).await? else {
            return Ok(None);
        };
        let json = Bytes::from(serde_json::to_vec(&delta)?);
        *last = Some((after, delta.version, json.clone()));
        Ok(Some(json))
    }
}

/// `GET snapshot?after=<version>&waitSecs=<n>[&deltas=true]`: as soon as the current version differs
/// from the broker's, the full configuration, or with `deltas` what changed since `after` when the
/// change records reach back that far (`Config-Kind` says which); else 204 when the wait ends.
pub(crate) async fn snapshot(
    State(state): State<AppState>,
    node: Node,
    params: Result<Query<PollParams>, QueryRejection>,
) -> ApiResult<Response> {
    let params = PollParams::parse(params)?;
    let deadline = params.deadline();
    // Subscribe before reading: a change committed after the read still wakes us.
    let mut waiter = state.feeds.config();
    loop {
        // A broker whose digest differed gets the full snapshot at once, whatever it asks for.
        let (current, due) = db::brokers::poll_state(&state.db, &node.id).await?;
        let full_due = params.deltas && due;
        if params.after != Some(current) || full_due {
            let policy = state.config.rule_policy();
            if let Some(after) = params.after.filter(|_| params.deltas && !full_due) {
                let delta = state
                    .snapshots
                    .delta(&state.db, &state.secrets, policy, after, current)
                    .await
                    .map_err(ApiError::from)?;
                if let Some(json) = delta {
                    crate::metrics::config_sent(KIND_DELTA, json.len());
                    return Ok(answer(KIND_DELTA, json));
                }
            }
            let json = state
                .snapshots
                .get(&state.db, &state.secrets, policy, current)
                .await
                .map_err(ApiError::from)?;
            crate::metrics::config_sent(KIND_SNAPSHOT, json.len());
            if full_due {
                db::brokers::set_full_snapshot_due(&state.db, &node.id, false).await?;
            }
            return Ok(answer(KIND_SNAPSHOT, json));
        }
        if waiter.wait_until(deadline).await != Wake::Changed {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    }
}

fn answer(kind: &'static str, json: Bytes) -> Response {
    let kind_header = axum::http::HeaderName::from_static(CONFIG_KIND_HEADER);
    ([(CONTENT_TYPE, "application/json"), (kind_header, kind)], json).into_response()
}
