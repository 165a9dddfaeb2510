//! The Ed25519 seed that signs client tokens: created once, stored encrypted, shared by all replicas.

use common::token::TokenSigner;
use sqlx::PgPool;

use crate::crypto::{Aad, SecretBox};
use crate::db::{self, ConfigTx};

/// Decrypts a stored seed (the snapshot needs every key's public half, token signing the newest).
pub fn open_seed(secrets: &SecretBox, kid: &str, enc: &[u8]) -> anyhow::Result<[u8; 32]> {
    secrets
        .decrypt(Aad::TokenKey(kid), enc)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("token signing seed {kid} has a wrong length"))
}

/// Loads the newest signing key, creating the first one under an advisory lock so that replicas
/// starting together agree on one key. Only a new key changes the configuration brokers receive.
pub async fn load_or_create(pool: &PgPool, secrets: &SecretBox) -> anyhow::Result<TokenSigner> {
    let mut tx = ConfigTx::begin(pool).await?;
    if let Some((kid, enc)) = db::signing_keys::lock_newest(&mut tx).await? {
        // Dropping the transaction rolls it back: nothing changed, no new version.
        let seed = open_seed(secrets, &kid, &enc)?;
        return Ok(TokenSigner::from_seed(kid, &seed));
    }
    let kid = format!("k{}", &crate::ids::token_id()[..8]);
    let seed = TokenSigner::generate_seed();
    db::signing_keys::insert(&mut tx, &kid, &secrets.encrypt(Aad::TokenKey(&kid), &seed)).await?;
    tx.commit().await?;
    Ok(TokenSigner::from_seed(kid, &seed))
}
