//! Custom authentication: identities (the secret encrypted, `crypto::Aad::CustomIdentity`),
//! permissions and the connect blacklist of an instance. Lists are ordered and paged by offset.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};

use common::custom_auth::{Effect, IdentityType, PermitAction, SignMode};

use super::ConfigTx;
use crate::error::{ApiError, ApiResult};

#[derive(FromRow)]
pub struct IdentityRow {
    pub username: String,
    #[sqlx(try_from = "String")]
    pub identity_type: IdentityType,
    pub client_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub sign_mode: SignMode,
    pub secret_enc: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An identity row with its instance, for the snapshot.
#[derive(FromRow)]
pub struct InstanceIdentityRow {
    pub instance_id: String,
    #[sqlx(flatten)]
    pub identity: IdentityRow,
}

pub struct NewIdentity<'a> {
    pub username: &'a str,
    pub identity_type: IdentityType,
    pub client_id: Option<&'a str>,
    pub sign_mode: SignMode,
    pub secret_enc: &'a [u8],
}

#[derive(FromRow)]
pub struct PermissionRow {
    pub instance_id: String,
    #[sqlx(try_from = "String")]
    pub identity_type: IdentityType,
    pub identity: String,
    pub topic: String,
    #[sqlx(try_from = "String")]
    pub permit_action: PermitAction,
    #[sqlx(try_from = "String")]
    pub effect: Effect,
}

#[derive(FromRow)]
pub struct BlacklistRow {
    pub instance_id: String,
    pub client_id: String,
    pub created_at: DateTime<Utc>,
}

/// Optional filters of a query; `None` matches everything.
#[derive(Default)]
pub struct Filter<'a> {
    pub identity_type: Option<&'a str>,
    /// Username (identities) or identity (permissions).
    pub name: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub topic: Option<&'a str>,
}

const IDENTITY_COLUMNS: &str = "username, identity_type, client_id, sign_mode, secret_enc, created_at, updated_at";

fn identity_taken(username: &str) -> ApiError {
    ApiError::AlreadyExists(format!("a custom identity with username {username:?} already exists"))
}

/// How many identities and how many permissions plus blacklist entries the instance holds (its
/// connection quota bounds each).
pub async fn counts(tx: &mut ConfigTx, instance_id: &str) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "select (select count(*) from custom_auth_identities where instance_id = $1),
                (select count(*) from custom_auth_permissions where instance_id = $1)
                  + (select count(*) from custom_auth_connect_blacklist where instance_id = $1)",
    )
    .bind(instance_id)
    .fetch_one(tx.conn())
    .await
}

/// 409 when the username is taken, in this instance or any other.
pub async fn add_identity(tx: &mut ConfigTx, instance_id: &str, new: &NewIdentity<'_>) -> ApiResult<IdentityRow> {
    tx.touch(instance_id);
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "insert into custom_auth_identities (username, instance_id, identity_type, client_id, sign_mode, secret_enc)
         values ($1, $2, $3, $4, $5, $6) on conflict (username) do nothing returning {IDENTITY_COLUMNS}"
    )))
    .bind(new.username)
    .bind(instance_id)
    .bind(new.identity_type.as_str())
    .bind(new.client_id)
    .bind(new.sign_mode.as_str())
    .bind(new.secret_enc)
    .fetch_optional(tx.conn())
    .await?
    .ok_or_else(|| identity_taken(new.username))
}

/// Replaces everything but the username; `None` when the instance has no such identity.
pub async fn update_identity(
    tx: &mut ConfigTx,
    instance_id: &str,
    new: &NewIdentity<'_>,
) -> Result<Option<IdentityRow>, sqlx::Error> {
    tx.touch(instance_id);
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "update custom_auth_identities set identity_type = $3, client_id = $4, sign_mode = $5, secret_enc = $6,
            updated_at = now()
         where instance_id = $2 and username = $1 returning {IDENTITY_COLUMNS}"
    )))
    .bind(new.username)
    .bind(instance_id)
    .bind(new.identity_type.as_str())
    .bind(new.client_id)
    .bind(new.sign_mode.as_str())
    .bind(new.secret_enc)
    .fetch_optional(tx.conn())
    .await
}

/// Runs `statement` on one row named by `$1` (instance) and `$2` (name); false when it changed none.
async fn change_one(
    tx: &mut ConfigTx,
    statement: &'static str,
    instance_id: &str,
    name: &str,
) -> Result<bool, sqlx::Error> {
    tx.touch(instance_id);
    let changed = sqlx::query(statement)
        .bind(instance_id)
        .bind(name)
        .execute(tx.conn())
        .await?
        .rows_affected();
    Ok(changed > 0)
}

/// False when the instance has no such identity.
pub async fn delete_identity(tx: &mut ConfigTx, instance_id: &str, username: &str) -> Result<bool, sqlx::Error> {
    let statement = "delete from custom_auth_identities where instance_id = $1 and username = $2";
    change_one(tx, statement, instance_id, username).await
}

/// Identities by username, `limit` from `offset`.
pub async fn identities(
    pool: &PgPool,
    instance_id: &str,
    filter: &Filter<'_>,
    limit: i64,
    offset: i64,
) -> Result<Vec<IdentityRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {IDENTITY_COLUMNS} from custom_auth_identities
         where instance_id = $1 and ($2::text is null or identity_type = $2) and ($3::text is null or username = $3)
           and ($4::text is null or client_id = $4)
         order by username limit $5 offset $6"
    )))
    .bind(instance_id)
    .bind(filter.identity_type)
    .bind(filter.name)
    .bind(filter.client_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
}

/// Adds a permission, or with `replace` changes the action and effect of an existing one. Returns
/// false when adding finds one already (or replacing finds none).
pub async fn put_permission(tx: &mut ConfigTx, p: &PermissionRow, replace: bool) -> Result<bool, sqlx::Error> {
    tx.touch(&p.instance_id);
    let statement = if replace {
        "update custom_auth_permissions set permit_action = $5, effect = $6, updated_at = now()
         where instance_id = $1 and identity_type = $2 and identity = $3 and topic = $4"
    } else {
        "insert into custom_auth_permissions (instance_id, identity_type, identity, topic, permit_action, effect)
         values ($1, $2, $3, $4, $5, $6) on conflict do nothing"
    };
    let changed = sqlx::query(statement)
        .bind(&p.instance_id)
        .bind(p.identity_type.as_str())
        .bind(&p.identity)
        .bind(&p.topic)
        .bind(p.permit_action.as_str())
        .bind(p.effect.as_str())
        .execute(tx.conn())
        .await?
        .rows_affected();
    Ok(changed > 0)
}

/// False when there is no such permission.
pub async fn delete_permission(
    tx: &mut ConfigTx,
    instance_id: &str,
    identity_type: &str,
    identity: &str,
    topic: &str,
) -> Result<bool, sqlx::Error> {
    tx.touch(instance_id);
    let deleted = sqlx::query(
        "delete from custom_auth_permissions where instance_id = $1 and identity_type = $2 and identity = $3 and topic = $4",
    )
    .bind(instance_id)
    .bind(identity_type)
    .bind(identity)
    .bind(topic)
    .execute(tx.conn())
    .await?
    .rows_affected();
    Ok(deleted > 0)
}

/// Permissions by identity and topic, `limit` from `offset`.
pub async fn permissions(
    pool: &PgPool,
    instance_id: &str,
    filter: &Filter<'_>,
    limit: i64,
    offset: i64,
) -> Result<Vec<PermissionRow>, sqlx::Error> {
    sqlx::query_as(
        "select instance_id, identity_type, identity, topic, permit_action, effect from custom_auth_permissions
         where instance_id = $1 and ($2::text is null or identity_type = $2) and ($3::text is null or identity = $3)
           and ($4::text is null or topic = $4)
         order by identity_type, identity, topic limit $5 offset $6",
    )
    .bind(instance_id)
    .bind(filter.identity_type)
    .bind(filter.name)
    .bind(filter.topic)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
}

/// False when the client ID is listed already.
pub async fn add_blacklisted(tx: &mut ConfigTx, instance_id: &str, client_id: &str) -> Result<bool, sqlx::Error> {
    let statement =
        "insert into custom_auth_connect_blacklist (instance_id, client_id) values ($1, $2) on conflict do nothing";
    change_one(tx, statement, instance_id, client_id).await
}

/// False when the client ID is not listed.
pub async fn delete_blacklisted(tx: &mut ConfigTx, instance_id: &str, client_id: &str) -> Result<bool, sqlx::Error> {
    let statement = "delete from custom_auth_connect_blacklist where instance_id = $1 and client_id = $2";
    change_one(tx, statement, instance_id, client_id).await
}

pub async fn blacklist(
    pool: &PgPool,
    instance_id: &str,
    client_id: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<BlacklistRow>, sqlx::Error> {
    sqlx::query_as(
        "select instance_id, client_id, created_at from custom_auth_connect_blacklist
         where instance_id = $1 and ($2::text is null or client_id = $2) order by client_id limit $3 offset $4",
    )
    .bind(instance_id)
    .bind(client_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
}

/// Everything of the given instances, for the snapshot (ordered by instance, then name).
pub struct SnapshotRows {
    pub identities: Vec<InstanceIdentityRow>,
    pub permissions: Vec<PermissionRow>,
    pub blacklist: Vec<BlacklistRow>,
}

pub async fn for_snapshot(pool: &PgPool, instance_ids: &[String]) -> Result<SnapshotRows, sqlx::Error> {
    let identities = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select instance_id, {IDENTITY_COLUMNS} from custom_auth_identities where instance_id = any($1)
         order by instance_id, username"
    )))
    .bind(instance_ids)
    .fetch_all(pool)
    .await?;
    let permissions = sqlx::query_as(
        "select instance_id, identity_type, identity, topic, permit_action, effect from custom_auth_permissions
         where instance_id = any($1) order by instance_id, identity_type, identity, topic",
    )
    .bind(instance_ids)
    .fetch_all(pool)
    .await?;
    let blacklist = sqlx::query_as(
        "select instance_id, client_id, created_at from custom_auth_connect_blacklist where instance_id = any($1)
         order by instance_id, client_id",
    )
    .bind(instance_ids)
    .fetch_all(pool)
    .await?;
    Ok(SnapshotRows {
        identities,
        permissions,
        blacklist,
    })
}
