//! Shared application state handed to every handler.

use std::sync::Arc;

use common::token::TokenSigner;
use sqlx::PgPool;

use crate::auth::login_limit::LoginGuard;
use crate::auth::operator::OperatorKeys;
use crate::broker_link::feeds::Feeds;
use crate::broker_link::snapshot::SnapshotCache;
use crate::config::Config;
use crate::crypto::SecretBox;

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub secrets: SecretBox,
    pub(crate) operator_keys: Arc<OperatorKeys>,
    pub token_signer: Arc<TokenSigner>,
    /// Wakes snapshot and command long-polls (fed by `Feeds::run`, started in `server::serve`).
    pub(crate) feeds: Feeds,
    pub(crate) snapshots: Arc<SnapshotCache>,
    /// Login rate limits and the cap on concurrent password hashes.
    pub(crate) logins: Arc<LoginGuard>,
}
