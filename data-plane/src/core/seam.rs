//! What every seam of the broker core has in common: operations that a remote implementation (a
//! cluster store, a replicated index) can make slow or make fail are asynchronous and fallible.
//! Embedded implementations do their work when called and hand back a finished future, so the order
//! in which callers submit work is the order in which it happens.

use std::future::Future;
use std::pin::Pin;

/// A boxed future, `Send` so that remote implementations can drive it on any runtime.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A future that is already resolved (embedded implementations).
pub fn done<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

/// Why a seam could not do its work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeamError {
    /// The durable store refused a write or read (disk full, corrupt file).
    #[error("store: {0}")]
    Store(String),
    /// A remote part (another broker, the cluster's store) cannot be reached now.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

pub type SeamResult<T> = Result<T, SeamError>;
