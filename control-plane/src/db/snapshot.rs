//! The reads behind the broker snapshot, in one repeatable-read transaction so that the version
//! always matches the content. Secrets come back encrypted; `broker_link::snapshot` opens them.

use common::quotas::Quotas;
use sqlx::{FromRow, PgPool};

/// Everything a snapshot holds, each list ordered by instance (and then by name or id).
pub struct SnapshotRows {
    pub version: i64,
    /// (kid, encrypted seed), oldest first.
    pub token_keys: Vec<(String, Vec<u8>)>,
    pub instances: InstancesRows,
}

#[derive(FromRow)]
pub struct InstanceRow {
    pub id: String,
    pub name: String,
    #[sqlx(json)]
    pub quotas: Quotas,
    pub reject_duplicate_client_id: bool,
}

/// An AccessKey bound to an instance.
#[derive(FromRow)]
pub struct GrantRow {
    pub instance_id: String,
    pub id: String,
    pub secret_enc: Vec<u8>,
    pub enabled: bool,
}

#[derive(FromRow)]
pub struct DeviceRow {
    pub instance_id: String,
    pub client_id: String,
    pub device_access_key_id: String,
    pub secret_enc: Vec<u8>,
}

#[derive(FromRow)]
pub struct RevokedRow {
    pub instance_id: String,
    pub jti: String,
    pub expires_at_ms: i64,
}

/// What a delta holds besides the settings of the instances it carries.
pub struct DeltaRows {
    pub version: i64,
    /// (kid, encrypted seed), oldest first.
    pub token_keys: Vec<(String, Vec<u8>)>,
    /// The instances that still exist among those changed, with their settings (and the device
    /// credentials of those created since).
    pub settings: InstancesRows,
    /// Those created since: carried with their device credentials.
    pub created: Vec<String>,
    /// Changed instances that no longer exist.
    pub removed_instances: Vec<String>,
    /// Device credentials changed in instances not carried whole: the current row, or `None` when
    /// it was removed.
    pub device_changes: Vec<DeviceChangeRow>,
}

/// Instances with what they hold, each list ordered by instance (and then by name or id).
pub struct InstancesRows {
    pub instances: Vec<InstanceRow>,
    /// (instance id, name).
    pub parent_topics: Vec<(String, String)>,
    /// (instance id, group id).
    pub group_ids: Vec<(String, String)>,
    pub access_keys: Vec<GrantRow>,
    pub devices: Vec<DeviceRow>,
    pub revoked_tokens: Vec<RevokedRow>,
}

#[derive(FromRow)]
pub struct DeviceChangeRow {
    pub instance_id: String,
    pub client_id: String,
    pub device_access_key_id: Option<String>,
    pub secret_enc: Option<Vec<u8>>,
}

type ReadTx = sqlx::Transaction<'static, sqlx::Postgres>;

async fn begin_read(pool: &PgPool) -> Result<ReadTx, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

async fn version_and_keys(tx: &mut ReadTx) -> Result<(i64, Vec<(String, Vec<u8>)>), sqlx::Error> {
    let (version,): (i64,) = sqlx::query_as("select version from config_version")
        .fetch_one(&mut **tx)
        .await?;
    let token_keys = sqlx::query_as("select kid, seed_enc from token_signing_keys order by created_at")
        .fetch_all(&mut **tx)
        .await?;
    Ok((version, token_keys))
}

/// Reads the current configuration; revoked tokens only while unexpired at `now_ms`.
pub async fn read(pool: &PgPool, now_ms: i64) -> Result<SnapshotRows, sqlx::Error> {
    let mut tx = begin_read(pool).await?;
    let (version, token_keys) = version_and_keys(&mut tx).await?;
    let instances = read_instances(&mut tx, now_ms, None, None).await?;
    tx.commit().await?;
    Ok(SnapshotRows {
        version,
        token_keys,
        instances,
    })
}

/// A delta with more device-credential changes than this is not made: the full snapshot (built once
/// and shared by every broker) is then as good and cheaper for the control plane.
pub const MAX_DELTA_DEVICE_CHANGES: i64 = 100_000;

/// What changed after version `after`, or `None` when the change records cannot tell: `after` is
/// below `config_history.floor` (pruned) or above the current version (the database was reset); also
/// `None` when more than `MAX_DELTA_DEVICE_CHANGES` device credentials changed since.
pub async fn read_delta(pool: &PgPool, now_ms: i64, after: i64) -> Result<Option<DeltaRows>, sqlx::Error> {
    let mut tx = begin_read(pool).await?;
    // Planned for the versions asked each time: a cached generic plan cannot know that the range
    // is a handful of records out of millions, and may scan them all (seen: ~100 ms per delta at a
    // million recorded device changes).
    sqlx::query("set local plan_cache_mode = force_custom_plan")
        .execute(&mut *tx)
        .await?;
    let (version, token_keys) = version_and_keys(&mut tx).await?;
    let (floor,): (i64,) = sqlx::query_as("select floor from config_history")
        .fetch_one(&mut *tx)
        .await?;
    if after < floor || after > version {
        return Ok(None);
    }
    let changed: Vec<(String, bool, bool)> = sqlx::query_as(
        "select c.instance_id, bool_or(c.devices_included), bool_or(i.id is not null)
         from config_changes c left join instances i on i.id = c.instance_id
         where c.version > $1 and c.version <= $2 and c.instance_id <> '*'
         group by c.instance_id order by c.instance_id",
    )
    .bind(after)
    .bind(version)
    .fetch_all(&mut *tx)
    .await?;
    let existing: Vec<String> = changed.iter().filter(|c| c.2).map(|c| c.0.clone()).collect();
    let whole: Vec<String> = changed.iter().filter(|c| c.1 && c.2).map(|c| c.0.clone()).collect();
    let removed_instances = changed.iter().filter(|c| !c.2).map(|c| c.0.clone()).collect();
    let settings = read_instances(&mut tx, now_ms, Some(&existing), Some(&whole)).await?;
    // Instances carried whole or removed need no item changes.
    let skip: Vec<String> = changed.into_iter().filter(|c| c.1 || !c.2).map(|c| c.0).collect();
    let device_changes: Vec<DeviceChangeRow> = sqlx::query_as(
        "select c.instance_id, c.client_id, d.device_access_key_id, d.secret_enc
         from (select distinct instance_id, client_id from config_device_changes
               where version > $1 and version <= $2 and not (instance_id = any($3))) c
         left join device_credentials d on d.instance_id = c.instance_id and d.client_id = c.client_id
         order by c.instance_id, c.client_id limit $4",
    )
    .bind(after)
    .bind(version)
    .bind(&skip)
    .bind(MAX_DELTA_DEVICE_CHANGES + 1)
    .fetch_all(&mut *tx)
    .await?;
    if device_changes.len() as i64 > MAX_DELTA_DEVICE_CHANGES {
        return Ok(None);
    }
    tx.commit().await?;
    Ok(Some(DeltaRows {
        version,
        token_keys,
        settings,
        created: whole,
        removed_instances,
        device_changes,
    }))
}

/// Instance settings of `ids` (all when `None`) and the device credentials of `with_devices` (all
/// when `None`).
async fn read_instances(
    tx: &mut ReadTx,
    now_ms: i64,
    ids: Option<&[String]>,
    with_devices: Option<&[String]>,
) -> Result<InstancesRows, sqlx::Error> {
    // A filter only when there is one: "= any($1)" on every row would defeat the full read's plan.
    let only = |column: &str, ids: Option<&[String]>| match ids {
        Some(_) => format!("{column} = any($1)"),
        None => "$1::text[] is null".to_string(),
    };
    let instances = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select id, name, quotas, reject_duplicate_client_id from instances where {} order by id",
        only("id", ids)
    )))
    .bind(ids)
    .fetch_all(&mut **tx)
    .await?;
    let parent_topics = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select instance_id, name from parent_topics where {} order by instance_id, name",
        only("instance_id", ids)
    )))
    .bind(ids)
    .fetch_all(&mut **tx)
    .await?;
    let group_ids = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select instance_id, group_id from group_ids where {} order by instance_id, group_id",
        only("instance_id", ids)
    )))
    .bind(ids)
    .fetch_all(&mut **tx)
    .await?;
    let access_keys = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select b.instance_id, k.id, k.secret_enc, k.enabled from access_key_instances b
         join access_keys k on k.id = b.access_key_id where {} order by b.instance_id, k.id",
        only("b.instance_id", ids)
    )))
    .bind(ids)
    .fetch_all(&mut **tx)
    .await?;
    let devices = match with_devices {
        Some([]) => Vec::new(),
        _ => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "select instance_id, client_id, device_access_key_id, secret_enc from device_credentials
                 where {} order by instance_id, client_id",
                only("instance_id", with_devices)
            )))
            .bind(with_devices)
            .fetch_all(&mut **tx)
            .await?
        }
    };
    let revoked_tokens = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select instance_id, jti, expires_at_ms from tokens
         where revoked_at is not null and expires_at_ms > $2 and {} order by instance_id, jti",
        only("instance_id", ids)
    )))
    .bind(ids)
    .bind(now_ms)
    .fetch_all(&mut **tx)
    .await?;
    Ok(InstancesRows {
        instances,
        parent_topics,
        group_ids,
        access_keys,
        devices,
        revoked_tokens,
    })
}
