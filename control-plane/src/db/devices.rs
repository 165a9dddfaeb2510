//! Device credentials: one key pair per client ID, the secret encrypted (`crypto::Aad::Device`).

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};

use super::{ConfigTx, unique_violation};
use crate::error::ApiResult;

#[derive(FromRow)]
pub struct DeviceRow {
    pub client_id: String,
    pub device_access_key_id: String,
    pub secret_enc: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub struct NewDevice<'a> {
    pub instance_id: &'a str,
    pub client_id: &'a str,
    pub group_id: &'a str,
    pub device_id: &'a str,
    pub device_access_key_id: &'a str,
    pub secret_enc: &'a [u8],
}

/// A page of client IDs and how many the group has in all.
pub struct ClientIds {
    pub client_ids: Vec<String>,
    pub total: i64,
}

const COLUMNS: &str = "client_id, device_access_key_id, secret_enc, created_at, updated_at";

/// When the client ID has a credential already: 409, or with `replace` the new key pair takes its
/// place (a new credential: both times are reset).
pub async fn register(tx: &mut ConfigTx, new: &NewDevice<'_>, replace: bool) -> ApiResult<DeviceRow> {
    tx.touch_device(new.instance_id, new.client_id);
    let on_conflict = if replace {
        "on conflict (instance_id, client_id) do update set device_access_key_id = excluded.device_access_key_id,
         secret_enc = excluded.secret_enc, created_at = now(), updated_at = now()"
    } else {
        ""
    };
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "insert into device_credentials (instance_id, client_id, group_id, device_id, device_access_key_id, secret_enc)
         values ($1, $2, $3, $4, $5, $6) {on_conflict} returning {COLUMNS}"
    )))
    .bind(new.instance_id)
    .bind(new.client_id)
    .bind(new.group_id)
    .bind(new.device_id)
    .bind(new.device_access_key_id)
    .bind(new.secret_enc)
    .fetch_one(tx.conn())
    .await
    .map_err(|e| unique_violation(e, new.client_id))
}

/// Registers many credentials of one instance in one statement; a client ID that has one already
/// is left as it is and missing from the answer (the caller reports it).
pub async fn register_many(
    tx: &mut ConfigTx,
    instance_id: &str,
    new: &[NewDevice<'_>],
) -> Result<Vec<DeviceRow>, sqlx::Error> {
    for n in new {
        // Also the ones left as they were: a delta then carries them unchanged, which is harmless.
        tx.touch_device(instance_id, n.client_id);
    }
    let client_ids: Vec<&str> = new.iter().map(|n| n.client_id).collect();
    let group_ids: Vec<&str> = new.iter().map(|n| n.group_id).collect();
    let device_ids: Vec<&str> = new.iter().map(|n| n.device_id).collect();
    let key_ids: Vec<&str> = new.iter().map(|n| n.device_access_key_id).collect();
    let secrets: Vec<&[u8]> = new.iter().map(|n| n.secret_enc).collect();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "insert into device_credentials (instance_id, client_id, group_id, device_id, device_access_key_id, secret_enc)
         select $1, * from unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[])
         on conflict (instance_id, client_id) do nothing returning {COLUMNS}"
    )))
    .bind(instance_id)
    .bind(client_ids)
    .bind(group_ids)
    .bind(device_ids)
    .bind(key_ids)
    .bind(secrets)
    .fetch_all(tx.conn())
    .await
}

pub async fn get(pool: &PgPool, instance_id: &str, client_id: &str) -> Result<Option<DeviceRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from device_credentials where instance_id = $1 and client_id = $2"
    )))
    .bind(instance_id)
    .bind(client_id)
    .fetch_optional(pool)
    .await
}

/// The DeviceAccessKeyId of the client's credential (a new secret is encrypted under it).
pub async fn key_id(tx: &mut ConfigTx, instance_id: &str, client_id: &str) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("select device_access_key_id from device_credentials where instance_id = $1 and client_id = $2")
            .bind(instance_id)
            .bind(client_id)
            .fetch_optional(tx.conn())
            .await?;
    Ok(row.map(|(k,)| k))
}

/// Replaces the secret of an existing credential.
pub async fn set_secret(
    tx: &mut ConfigTx,
    instance_id: &str,
    client_id: &str,
    secret_enc: &[u8],
) -> Result<DeviceRow, sqlx::Error> {
    tx.touch_device(instance_id, client_id);
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "update device_credentials set secret_enc = $3, updated_at = now()
         where instance_id = $1 and client_id = $2 returning {COLUMNS}"
    )))
    .bind(instance_id)
    .bind(client_id)
    .bind(secret_enc)
    .fetch_one(tx.conn())
    .await
}

/// False when the client ID has no credential.
pub async fn delete(tx: &mut ConfigTx, instance_id: &str, client_id: &str) -> Result<bool, sqlx::Error> {
    tx.touch_device(instance_id, client_id);
    let deleted = sqlx::query("delete from device_credentials where instance_id = $1 and client_id = $2")
        .bind(instance_id)
        .bind(client_id)
        .execute(tx.conn())
        .await?
        .rows_affected();
    Ok(deleted > 0)
}

/// Client IDs of the group's credentials in order, `limit` from `offset`.
pub async fn client_ids(
    pool: &PgPool,
    instance_id: &str,
    group_id: &str,
    limit: i64,
    offset: i64,
) -> Result<ClientIds, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "select client_id, count(*) over () from device_credentials where instance_id = $1 and group_id = $2
         order by client_id limit $3 offset $4",
    )
    .bind(instance_id)
    .bind(group_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    // The window count comes with the rows; past the last page there are none to carry it.
    let total = match rows.first() {
        Some((_, total)) => *total,
        None => {
            let (total,): (i64,) =
                sqlx::query_as("select count(*) from device_credentials where instance_id = $1 and group_id = $2")
                    .bind(instance_id)
                    .bind(group_id)
                    .fetch_one(pool)
                    .await?;
            total
        }
    };
    Ok(ClientIds {
        client_ids: rows.into_iter().map(|(c, _)| c).collect(),
        total,
    })
}
