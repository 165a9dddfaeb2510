//! `ConfigTx`: the only way to change what brokers receive. The resource functions that write broker
//! configuration take `&mut ConfigTx`, record the instances they change (`touch`), and `commit`
//! bumps `config_version`, writes one `config_changes` row per changed instance and notifies
//! `CONFIG_CHANNEL`, atomically with the change. Changes inside an instance start with
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
}

impl ConfigTx {
    pub async fn begin(pool: &PgPool) -> Result<Self, sqlx::Error> {
        Ok(Self {
            tx: pool.begin().await?,
            touched: BTreeSet::new(),
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
        sqlx::query("insert into config_changes (version, instance_id) select $1, unnest($2::text[])")
            .bind(version)
            .bind(&touched)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("select pg_notify($1, $2::text)")
            .bind(CONFIG_CHANNEL)
            .bind(version)
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        Ok(version)
    }
}

/// Deletes change records older than `max_age` (housekeeping decides how long). Incremental
/// configuration can serve only a broker whose version is still covered by the records; one further
/// behind needs the full snapshot.
pub async fn purge_changes_older_than(pool: &PgPool, max_age: std::time::Duration) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("delete from config_changes where changed_at < now() - make_interval(secs => $1)")
            .bind(max_age.as_secs_f64())
            .execute(pool)
            .await?
            .rows_affected(),
    )
}
