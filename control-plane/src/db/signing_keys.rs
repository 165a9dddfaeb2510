//! Token signing keys (encrypted Ed25519 seeds). Brokers verify tokens with every key, so adding one
//! changes every instance's configuration.

use super::ConfigTx;

/// Serializes key creation among replicas starting together (held until the transaction ends), then
/// reads the newest key: (kid, encrypted seed).
pub async fn lock_newest(tx: &mut ConfigTx) -> Result<Option<(String, Vec<u8>)>, sqlx::Error> {
    sqlx::query("select pg_advisory_xact_lock(hashtext('token_signing_keys'))")
        .execute(tx.conn())
        .await?;
    sqlx::query_as("select kid, seed_enc from token_signing_keys order by created_at desc limit 1")
        .fetch_optional(tx.conn())
        .await
}

pub async fn insert(tx: &mut ConfigTx, kid: &str, seed_enc: &[u8]) -> Result<(), sqlx::Error> {
    tx.touch_all();
    sqlx::query("insert into token_signing_keys (kid, seed_enc) values ($1, $2)")
        .bind(kid)
        .bind(seed_enc)
        .execute(tx.conn())
        .await?;
    Ok(())
}
