//! `ConfigTx`: the only way to change what brokers receive. The resource functions that write broker
//! configuration take `&mut ConfigTx`, record what they change (`touch` for an instance's settings,
//! `touch_created` for a new instance, `touch_device` for one device credential), and `commit` bumps
//! `config_version`, writes those records under it (`config_changes`, `config_device_changes`: what
//! configuration deltas are made of) and notifies `CONFIG_CHANNEL`, atomically with the change. Changes inside an instance start with
//! `ConfigTx::lock_instance` (in `instances`), which also records it. A change that concerns every
//! instance (a token signing key) is recorded under the instance id `ALL_INSTANCES` (`*`).

use std::collections::BTreeSet;

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::CONFIG_CHANNEL;

/// The `config_changes.instance_id` of a change to every instance; instance ids are
/// `mqtt-<alnum>`, so it cannot name a real one.
pub const ALL_INSTANCES: &str = "*";

/// An open transaction that changes broker configuration. Dropping it without `commit` rolls back
/// and leaves the version alone.
pub struct ConfigTx {
    tx: Transaction<'static, Postgres>,
    touched: BTreeSet<String>,
    /// Instances created here: a delta carries their device credentials with their settings.
    created: BTreeSet<String>,
    /// (instance id, client ID) of device credentials added, replaced or removed.
    devices: BTreeSet<(String, String)>,
}

impl ConfigTx {
    pub async fn begin(pool: &PgPool) -> Result<Self, sqlx::Error> {
        Ok(Self {
            tx: pool.begin().await?,
            touched: BTreeSet::new(),
            created: BTreeSet::new(),
            devices: BTreeSet::new(),
        })
    }

    /// The transaction's connection, for the statements of the resource modules only: handlers get
    /// at it through those functions, which record what they change.
    pub(super) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Records that the configuration of `instance_id` changes in this transaction.
    pub(super) fn touch(&mut self, instance_id: &str) {
        self.touched.insert(instance_id.to_string());
    }

    /// Records that `instance_id` is created in this transaction.
    pub(super) fn touch_created(&mut self, instance_id: &str) {
        self.touch(instance_id);
        self.created.insert(instance_id.to_string());
    }

    /// Records that the device credential of `client_id` changes (added, replaced, new secret or
    /// removed) without touching the rest of the instance.
    pub(super) fn touch_device(&mut self, instance_id: &str, client_id: &str) {
        self.devices.insert((instance_id.to_string(), client_id.to_string()));
    }

    /// Records a change that concerns every instance.
    pub(super) fn touch_all(&mut self) {
        self.touch(ALL_INSTANCES);
    }

    /// Bumps the version, records the changed instances under it and commits; NOTIFY is delivered on
    /// commit, so a woken broker always finds the change. Every commit bumps, even one that touched
    /// no instance (an AccessKey bound to none): such a version has no `config_changes` rows.
    /// Returns the new version.
    pub async fn commit(mut self) -> Result<i64, sqlx::Error> {
        let (version,): (i64,) = sqlx::query_as(
            "update config_version set version = version + 1, updated_at = now() where id returning version",
        )
        .fetch_one(&mut *self.tx)
        .await?;
        let touched: Vec<String> = std::mem::take(&mut self.touched).into_iter().collect();
        let created: Vec<bool> = touched.iter().map(|i| self.created.contains(i)).collect();
        sqlx::query(
            "insert into config_changes (version, instance_id, devices_included)
             select $1, * from unnest($2::text[], $3::bool[])",
        )
        .bind(version)
        .bind(&touched)
        .bind(&created)
        .execute(&mut *self.tx)
        .await?;
        if !self.devices.is_empty() {
            let (instances, clients): (Vec<String>, Vec<String>) =
                std::mem::take(&mut self.devices).into_iter().unzip();
            sqlx::query(
                "insert into config_device_changes (version, instance_id, client_id)
                 select $1, * from unnest($2::text[], $3::text[])",
            )
            .bind(version)
            .bind(&instances)
            .bind(&clients)
            .execute(&mut *self.tx)
            .await?;
        }
        sqlx::query("select pg_notify($1, $2::text)")
            .bind(CONFIG_CHANNEL)
            .bind(version)
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        Ok(version)
    }
}

/// Deletes change records older than `max_age` (housekeeping decides how long) and raises
/// `config_history.floor` to the newest version pruned. Deltas can serve only a broker whose version
/// is at or above the floor; one further behind needs the full snapshot. Both tables are pruned in one
/// statement, so a version's records go together.
pub async fn purge_changes_older_than(pool: &PgPool, max_age: std::time::Duration) -> Result<u64, sqlx::Error> {
    let (pruned,): (i64,) = sqlx::query_as(
        "with settings as (
             delete from config_changes where changed_at < now() - make_interval(secs => $1) returning version
         ), devices as (
             delete from config_device_changes where changed_at < now() - make_interval(secs => $1) returning version
         ), gone as (
             select version from settings union all select version from devices
         ), raised as (
             update config_history set floor = greatest(floor, (select max(version) from gone)), updated_at = now()
             where exists (select 1 from gone)
         )
         select count(*) from gone",
    )
    .bind(max_age.as_secs_f64())
    .fetch_one(pool)
    .await?;
    Ok(pruned as u64)
}
