//! Operator accounts: usernames and Argon2id password hashes.

use sqlx::PgPool;

pub async fn password_hash(pool: &PgPool, username: &str) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as("select password_hash from operators where username = $1")
        .bind(username)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|(h,)| h))
}

pub async fn any_exists(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let (exists,): (bool,) = sqlx::query_as("select exists(select 1 from operators)")
        .fetch_one(pool)
        .await?;
    Ok(exists)
}

/// Creates the operator unless the username exists; true when this call created it.
pub async fn create_if_absent(pool: &PgPool, username: &str, password_hash: &str) -> Result<bool, sqlx::Error> {
    let inserted =
        sqlx::query("insert into operators (username, password_hash) values ($1, $2) on conflict do nothing")
            .bind(username)
            .bind(password_hash)
            .execute(pool)
            .await?
            .rows_affected();
    Ok(inserted == 1)
}
