//! The HTTP/1.1 connection loop, with the per-connection limits `axum::serve` does not offer: a cap on
//! open connections, a header timeout and an idle timeout. (The request timeout is a middleware,
//! `request_timeout`, and body sizes are `DefaultBodyLimit`s on the routes.)
//!
//! Which library does what, and why this loop exists:
//! - `axum::serve` builds hyper connections without a timer and without a way to configure them, so a
//!   client that never finishes its headers holds a connection (and a task) forever.
//! - hyper 1's `http1::Builder::header_read_timeout` would cut that client off, but its timer starts
//!   whenever hyper waits for a request head, which on a kept-alive connection is right after the
//!   previous answer: it cannot tell "idle between requests" (60 s is fine) from "sending a head very
//!   slowly" (10 s is plenty). So hyper serves the connection (`http1::Builder::serve_connection`, with
//!   `hyper_util::rt::TokioIo`) without its timer, and a watchdog here applies both timeouts from what
//!   it sees: bytes read while no request is in progress start the header clock; a complete head
//!   (the router is called) stops it; an answer sent starts the idle clock.
//! - tower-http's `TimeoutLayer` answers a plain 408 with an empty body; the request timeout answers
//!   our JSON 503 instead, and gives broker long-polls their wait on top.
//! - The connection cap is a semaphore held by each connection task. Connections over the cap get a
//!   canned 503 `TooManyConnections` and are closed, rather than waiting unseen in the listen queue.
//!
//! HTTP/2 is not served (no client of the control plane needs it; prior-knowledge h2c would bypass the
//! header timeout).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::error::{ApiError, ErrorBody, REQUEST_ID};

/// The connection limits (from `Config`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Connections over the cap that may be answered at once; beyond that they are closed unanswered.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;
/// How long a refused connection gets to take its 503.
const REFUSAL_TIME: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `shutdown` resolves, then lets open requests finish (kept-alive
/// connections close after their current answer) and returns when every connection is closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max = limits.max_connections.max(1);
    let open = Arc::new(Semaphore::new(max));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        match open.clone().try_acquire_owned() {
            Ok(permit) => {
                let _ = stream.set_nodelay(true);
                let conn = connection(stream, peer, app.clone(), limits, stop_rx.clone());
                tokio::spawn(async move {
                    conn.await;
                    drop(permit);
                });
            }
            Err(_) => refuse(stream, &refusals),
        }
    }
    drop(listener);
    stop_tx.send_replace(true);
    // Every connection task holds a permit until it ends.
    let _all = open.acquire_many(max as u32).await;
    Ok(())
}

/// Answers a connection over the cap with 503 `TooManyConnections` and closes it.
fn refuse(mut stream: TcpStream, refusals: &Arc<Semaphore>) {
    crate::metrics::http_connection_refused();
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return; // dropped: closed without an answer
    };
    tokio::spawn(async move {
        let _permit = permit;
        let body = serde_json::to_string(&ErrorBody {
            code: "TooManyConnections",
            message: "the control plane has too many open connections; retry shortly".into(),
            request_id: uuid::Uuid::new_v4().to_string(),
            field: None,
        })
        .unwrap_or_default();
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
             connection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(REFUSAL_TIME, async {
            stream.write_all(answer.as_bytes()).await?;
            stream.shutdown().await?;
            // Read what the client sent, so closing does not reset the connection under the answer.
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await;
    });
}

/// Serves one connection until it ends, a timeout closes it, or shutdown lets its last request finish.
async fn connection(stream: TcpStream, peer: SocketAddr, app: Router, limits: Limits, mut stop: watch::Receiver<bool>) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            activity.request_started();
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            let answer = app.clone().oneshot(req);
            let activity = activity.clone();
            async move {
                let res = answer.await;
                activity.request_done();
                res
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    let mut conn = pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                return;
            }
            why = activity.expired(limits) => {
                // Dropping the connection closes it; no request is in progress.
                tracing::debug!(%peer, why, "closing connection");
                crate::metrics::http_connection_timed_out(why);
                return;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// What the watchdog knows about one connection. Times are milliseconds since it opened.
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// When bytes of a request head started to arrive (`NONE`: no head is being waited for).
    head_since: AtomicU64,
    /// Last time bytes moved or an answer was finished.
    last_activity: AtomicU64,
    changed: Notify,
}

const NONE: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            // A new connection owes its first head at once.
            head_since: AtomicU64::new(0),
            last_activity: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    fn read(&self) {
        let now = self.now();
        self.last_activity.store(now, Ordering::Relaxed);
        // Bytes while no request is in progress: the next head (or the rest of a body nobody reads).
        if self.in_flight.load(Ordering::Acquire) == 0
            && self
                .head_since
                .compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.changed.notify_one();
        }
    }

    fn wrote(&self) {
        self.last_activity.store(self.now(), Ordering::Relaxed);
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NONE, Ordering::Release);
        self.changed.notify_one();
    }

    fn request_done(&self) {
        self.last_activity.store(self.now(), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.changed.notify_one();
    }

    /// When the connection must be closed and why; `None` while a request is in progress (the request
    /// timeout applies then).
    fn deadline(&self, limits: Limits) -> Option<(u64, &'static str)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        match self.head_since.load(Ordering::Acquire) {
            NONE => Some((
                self.last_activity.load(Ordering::Relaxed) + limits.idle_timeout.as_millis() as u64,
                "idle",
            )),
            since => Some((since + limits.header_timeout.as_millis() as u64, "header_timeout")),
        }
    }

    /// Resolves when a deadline has passed.
    async fn expired(&self, limits: Limits) -> &'static str {
        loop {
            let notified = self.changed.notified();
            let mut notified = pin!(notified);
            notified.as_mut().enable();
            match self.deadline(limits) {
                None => notified.await,
                Some((at, why)) if at <= self.now() => return why,
                Some((at, _)) => {
                    let at = self.opened + Duration::from_millis(at);
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = notified => {}
                    }
                }
            }
        }
    }
}

/// The TCP stream, telling the watchdog when bytes move.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Request timeouts (from `Config`): every request must be answered within `request`, broker
/// long-polls (which wait up to `long_poll_extra` on purpose) within the sum.
#[derive(Debug, Clone, Copy)]
pub struct RequestTimeouts {
    pub request: Duration,
    pub long_poll_extra: Duration,
}

/// Middleware on the whole application: a request not answered in time answers 503 `RequestTimeout`
/// (its handler is dropped, which rolls back an open transaction). The body is read inside the
/// handler, so a client that sends its body too slowly is cut off too.
pub(crate) async fn request_timeout(
    axum::extract::State(timeouts): axum::extract::State<RequestTimeouts>,
    req: Request,
    next: Next,
) -> Response {
    let limit = if req.uri().path().starts_with(common::sync::SYNC_BASE) {
        timeouts.request + timeouts.long_poll_extra
    } else {
        timeouts.request
    };
    let id = crate::telemetry::request_id(req.headers());
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(limit_secs = limit.as_secs_f64(), "request timed out");
            REQUEST_ID
                .scope(id, async { ApiError::RequestTimeout.into_response() })
                .await
        }
    }
}
