//! Rules as brokers get them in the snapshot: `common::rules::RuleConfig` with the secrets opened
//! (the snapshot travels over the node-authenticated sync link; docs/sync-protocol.md).
//!
//! Read apart from the rest of the snapshot (not in its repeatable-read transaction): a rule changed
//! in between bumps the version again, so the next snapshot is built anew and brokers converge.

use common::rules::RuleConfig;
use sqlx::PgPool;

use super::{model, secrets};
use crate::crypto::SecretBox;
use crate::db;

/// (instance id, rule) of every rule, by instance and age.
pub async fn configs(pool: &PgPool, boxed: &SecretBox) -> anyhow::Result<Vec<(String, RuleConfig)>> {
    let mut out = Vec::new();
    for row in db::rules::sealed_all(pool).await? {
        let opened = secrets::open(boxed, &row.id, row.secrets_enc.as_deref())?;
        let mut source = row.source.0;
        let mut target = row.target.map(|t| t.0);
        secrets::restore(&mut source, target.as_mut(), &opened);
        let Some(target) = target.or_else(|| model::inflow_target(&source)) else {
            anyhow::bail!("rule {} has no target", row.id);
        };
        out.push((
            row.instance_id,
            RuleConfig {
                id: row.id,
                name: row.name,
                enabled: row.enabled,
                source,
                target,
                outbox: row.outbox.0,
            },
        ));
    }
    Ok(out)
}
