//! The Ed25519 seed that signs client tokens: created once, stored encrypted, shared by all replicas.

use common::token::TokenSigner;
use sqlx::PgPool;

use crate::crypto::{Aad, SecretBox};

/// Decrypts a stored seed (the snapshot needs every key's public half, token signing the newest).
pub fn open_seed(secrets: &SecretBox, kid: &str, enc: &[u8]) -> anyhow::Result<[u8; 32]> {
    secrets
        .decrypt(Aad::TokenKey(kid), enc)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("token signing seed {kid} has a wrong length"))
}

/// Loads the newest signing key, creating the first one under an advisory lock so that replicas
/// starting together agree on one key.
pub async fn load_or_create(db: &PgPool, secrets: &SecretBox) -> anyhow::Result<TokenSigner> {
    let mut tx = db.begin().await?;
    sqlx::query("select pg_advisory_xact_lock(hashtext('token_signing_keys'))")
        .execute(&mut *tx)
        .await?;
    let row: Option<(String, Vec<u8>)> =
        sqlx::query_as("select kid, seed_enc from token_signing_keys order by created_at desc limit 1")
            .fetch_optional(&mut *tx)
            .await?;
    let (kid, seed) = match row {
        Some((kid, enc)) => {
            let seed = open_seed(secrets, &kid, &enc)?;
            (kid, seed)
        }
        None => {
            let kid = format!("k{}", &crate::ids::token_id()[..8]);
            let seed = TokenSigner::generate_seed();
            sqlx::query("insert into token_signing_keys (kid, seed_enc) values ($1, $2)")
                .bind(&kid)
                .bind(secrets.encrypt(Aad::TokenKey(&kid), &seed))
                .execute(&mut *tx)
                .await?;
            (kid, seed)
        }
    };
    tx.commit().await?;
    Ok(TokenSigner::from_seed(kid, &seed))
}
