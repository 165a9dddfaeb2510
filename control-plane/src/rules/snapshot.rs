//! Rules as brokers get them in the snapshot: `common::rules::RuleConfig` with the secrets opened
//! (the snapshot travels over the node-authenticated sync link; docs/sync-protocol.md).
//!
//! Read apart from the rest of the snapshot (not in its repeatable-read transaction): a rule changed
//! in between bumps the version again, so the next snapshot is built anew and brokers converge.

use std::collections::BTreeMap;

use common::rules::RuleConfig;
use common::snapshot::InstanceConfig;
use sqlx::PgPool;

use super::{model, secrets};
use crate::crypto::SecretBox;
use crate::db;

/// Fills in the rules of the instances in `instances` (the whole snapshot, or the instances a delta
/// carries), oldest first, replacing what they had.
pub async fn attach(
    pool: &PgPool,
    boxed: &SecretBox,
    instances: &mut BTreeMap<String, InstanceConfig>,
) -> anyhow::Result<()> {
    let ids: Vec<String> = instances.keys().cloned().collect();
    for instance in instances.values_mut() {
        instance.rules.clear();
    }
    for db::rules::SealedRule { rule: row, secrets_enc } in db::rules::sealed(pool, &ids).await? {
        let opened = secrets::open(boxed, &row.id, secrets_enc.as_deref())?;
        let mut source = row.source.0;
        let mut target = row.target.map(|t| t.0);
        secrets::restore(&mut source, target.as_mut(), &opened);
        let Some(target) = target.or_else(|| model::inflow_target(&source)) else {
            anyhow::bail!("rule {} has no target", row.id);
        };
        if let Some(instance) = instances.get_mut(&row.instance_id) {
            instance.rules.push(RuleConfig {
                id: row.id,
                name: row.name,
                enabled: row.enabled,
                source,
                target,
                outbox: row.outbox.0,
            });
        }
    }
    Ok(())
}
