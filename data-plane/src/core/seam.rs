//! What every seam of the broker core has in common: operations that a remote implementation (a
//! cluster store, a replicated index) can make slow or make fail are asynchronous and fallible.
//! Embedded implementations do their work when called and hand back a finished `Seam`, so the
//! order in which callers submit work is the order in which it happens, and the hot path allocates
//! nothing for it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A boxed future, `Send` so that remote implementations can drive it on any runtime.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The answer of a seam: already there (embedded parts), or on its way (remote ones).
pub enum Seam<'a, T> {
    Ready(Option<T>),
    Pending(BoxFuture<'a, T>),
}

impl<'a, T> Seam<'a, T> {
    /// Work that finishes later.
    pub fn later(fut: impl Future<Output = T> + Send + 'a) -> Self {
        Self::Pending(Box::pin(fut))
    }
}

impl<T: Unpin> Future for Seam<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.get_mut() {
            Self::Ready(value) => Poll::Ready(value.take().expect("a seam answer is taken once")),
            Self::Pending(fut) => fut.as_mut().poll(cx),
        }
    }
}

/// An answer that is already there (embedded implementations).
pub fn done<'a, T>(value: T) -> Seam<'a, T> {
    Seam::Ready(Some(value))
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
