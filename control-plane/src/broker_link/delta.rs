//! Configuration deltas (`common::delta::Delta`): what changed after a broker's version, built from
//! the change records `ConfigTx` writes, so their cost follows the change and not the size of the
//! configuration. `None` when the records cannot tell (pruned, or a reset database): the broker then
//! gets the full snapshot.

use std::collections::{BTreeMap, BTreeSet};

use common::delta::{ChangedInstance, Delta, DeltaContent, DeviceChanges};
use common::rules::TargetPolicy;
use sqlx::PgPool;

use super::snapshot::{instance_configs, open_device, open_token_keys};
use crate::crypto::SecretBox;
use crate::db;

pub async fn build(
    pool: &PgPool,
    secrets: &SecretBox,
    rule_policy: TargetPolicy,
    after: i64,
) -> anyhow::Result<Option<Delta>> {
    let Some(rows) = db::snapshot::read_delta(pool, crate::clock::now_ms(), after).await? else {
        return Ok(None);
    };
    let created: BTreeSet<String> = rows.created.into_iter().collect();
    let instances = instance_configs(pool, secrets, rows.settings)
        .await?
        .into_values()
        .map(|config| ChangedInstance {
            devices_included: created.contains(&config.id),
            config,
        })
        .collect();
    let mut devices: BTreeMap<String, DeviceChanges> = BTreeMap::new();
    for row in rows.device_changes {
        let changes = devices.entry(row.instance_id.clone()).or_insert_with(|| DeviceChanges {
            instance_id: row.instance_id,
            ..DeviceChanges::default()
        });
        match (row.device_access_key_id, row.secret_enc) {
            (Some(key_id), Some(secret_enc)) => {
                changes
                    .upserts
                    .push(open_device(secrets, row.client_id, key_id, &secret_enc)?)
            }
            _ => changes.removed.push(row.client_id),
        }
    }
    Ok(Some(Delta::new(
        after,
        rows.version,
        DeltaContent {
            token_keys: open_token_keys(secrets, rows.token_keys)?,
            rule_policy,
            instances,
            removed_instances: rows.removed_instances,
            devices: devices.into_values().collect(),
        },
    )))
}
