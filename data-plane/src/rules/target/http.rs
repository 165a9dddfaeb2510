//! Keep-alive HTTP/1.1 connections to one webhook URL, each driven by the task that sends on it:
//! a delivery is one write and one read on a connection the rule holds, with no connection task,
//! pool lock or channel between the sender and the socket. New connections go only to addresses
//! the target policy allows, checked on what the name resolves to at every connect (`guard`);
//! https verifies the receiver against the system's certificate authorities (`SSL_CERT_FILE` and
//! `SSL_CERT_DIR` override them, as for the control-plane link).
//!
//! Why not reqwest, which is in the build for the control-plane link: its pooled client runs each
//! connection as a task of its own and passes every request and response across channels; at one
//! request per message that was most of the rules' CPU (BENCHMARKS.md, "Rule lag"). hyper's
//! connection API is the same HTTP code without those layers.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::header::{HOST, HeaderMap, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::rules::guard::{self, Refused};

/// Idle connections kept per URL at most. A rule's sender uses at most its concurrency
/// (`--rules-concurrency`) at once, and keeps that many: this only bounds an extreme setting.
const MAX_IDLE: usize = 256;
/// An answer's body is read (and dropped) up to this size so the connection can carry the next
/// request; a larger one closes the connection.
const MAX_ANSWER_BODY: usize = 64 * 1024;
/// hyper's smallest read buffer: bounds the answer's status line and headers.
const MAX_ANSWER_HEAD: usize = 8 * 1024;

/// Why a request got no HTTP answer.
#[derive(Debug)]
pub enum Failure {
    /// The policy refuses every address of the target.
    Refused(Refused),
    /// The URL cannot be used (not http(s), no host, no trusted certificate authorities).
    Unusable(String),
    /// Connecting, TLS, writing or reading failed, or the timeout passed: worth another attempt.
    Transient(String),
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

type Io = TokioIo<Box<dyn Stream>>;

/// One HTTP/1.1 connection: the handle requests go in by and the state machine that does its
/// I/O, polled by whoever sends on it.
struct Conn {
    send: http1::SendRequest<Full<Bytes>>,
    io: ConnIo,
}

impl Conn {
    /// Waits until the connection can take a request, driving it meanwhile (this is also where
    /// a connection the receiver closed while it sat idle is found closed): false when closed.
    async fn ready(&mut self) -> bool {
        let mut closed = false;
        let ready = drive(&mut self.io, &mut closed, self.send.ready()).await;
        ready.is_ok() && !closed
    }
}

type ConnIo = Pin<Box<http1::Connection<Io, Full<Bytes>>>>;

/// Awaits `fut` (a request's answer, its body, readiness) while driving the connection it
/// depends on. When the connection ends first, `closed` is set and `fut` is awaited alone: with
/// the connection gone it resolves at once, with what it got or why there is nothing.
async fn drive<F: Future>(io: &mut ConnIo, closed: &mut bool, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    if !*closed {
        tokio::select! {
            biased;
            out = &mut fut => return out,
            _ = io.as_mut() => *closed = true,
        }
    }
    fut.await
}

/// Where a URL points, parsed once.
struct Target {
    https: bool,
    host: String,
    port: u16,
    /// The `Host` header.
    authority: HeaderValue,
    path: Uri,
}

fn parse(url: &str) -> Result<Target, String> {
    let uri: Uri = url.parse().map_err(|_| "webhook URL is not a valid URL".to_string())?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("webhook URL is not http(s)".into()),
    };
    let authority = uri.authority().ok_or("webhook URL has no host")?;
    if authority.as_str().contains('@') {
        return Err("webhook URL carries credentials".into());
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if host.is_empty() {
        return Err("webhook URL has no host".into());
    }
    let path = uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .map_err(|_| "webhook URL path")?;
    Ok(Target {
        https,
        port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
        authority: HeaderValue::from_str(authority.as_str()).map_err(|_| "webhook URL host")?,
        host,
        path,
    })
}

/// The HTTP client of one webhook target.
pub struct Client {
    target: Result<Target, String>,
    policy: common::rules::TargetPolicy,
    timeout: Duration,
    idle: Mutex<Vec<Conn>>,
}

impl Client {
    pub fn new(url: &str, policy: common::rules::TargetPolicy, timeout: Duration) -> Self {
        Self {
            target: parse(url),
            policy,
            timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// POSTs `body` with `headers` and answers the HTTP status. The whole exchange, connecting
    /// included, is bounded by the timeout.
    pub async fn post(&self, headers: HeaderMap, body: Vec<u8>) -> Result<u16, Failure> {
        let target = self.target.as_ref().map_err(|e| Failure::Unusable(e.clone()))?;
        let mut req = Request::new(Full::new(Bytes::from(body)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = target.path.clone();
        *req.headers_mut() = headers;
        req.headers_mut().insert(HOST, target.authority.clone());
        match tokio::time::timeout(self.timeout, self.exchange(target, req)).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Transient("timed out".into())),
        }
    }

    async fn exchange(&self, target: &Target, mut req: Request<Full<Bytes>>) -> Result<u16, Failure> {
        loop {
            let (mut conn, fresh) = match self.take_idle().await {
                Some(c) => (c, false),
                None => (self.connect(target).await?, true),
            };
            let mut closed = false;
            let answer = match drive(&mut conn.io, &mut closed, conn.send.try_send_request(req)).await {
                Ok(a) => a,
                Err(mut e) => match e.take_message() {
                    // Not written: a kept-alive connection the receiver had closed. Once more on
                    // a new one.
                    Some(r) if !fresh => {
                        req = r;
                        continue;
                    }
                    _ => return Err(Failure::Transient(error_chain(e.error()))),
                },
            };
            let status = answer.status().as_u16();
            let mut body = answer.into_body();
            let read_whole = drive(&mut conn.io, &mut closed, drain(&mut body)).await;
            if read_whole && !closed {
                self.put_idle(conn);
            }
            return Ok(status);
        }
    }

    /// An idle connection still open, if one is left.
    async fn take_idle(&self) -> Option<Conn> {
        loop {
            let conn = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let mut conn = conn?;
            if conn.ready().await {
                return Some(conn);
            }
        }
    }

    fn put_idle(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    async fn connect(&self, target: &Target) -> Result<Conn, Failure> {
        let addrs = allowed_addrs(&target.host, target.port, self.policy).await?;
        let mut last = String::from("no address");
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = format!("connecting: {e}"),
            }
        }
        let tcp = tcp.ok_or(Failure::Transient(last))?;
        // Requests are whole when written: no waiting for more to coalesce.
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Stream> = if target.https {
            let tls = tls_connector().map_err(Failure::Unusable)?;
            let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                .map_err(|_| Failure::Unusable("webhook host is not a valid TLS name".into()))?;
            Box::new(
                tls.connect(name, tcp)
                    .await
                    .map_err(|e| Failure::Transient(format!("TLS: {e}")))?,
            )
        } else {
            Box::new(tcp)
        };
        let (send, io) = http1::Builder::new()
            .max_buf_size(MAX_ANSWER_HEAD)
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| Failure::Transient(error_chain(&e)))?;
        let mut conn = Conn { send, io: Box::pin(io) };
        if !conn.ready().await {
            return Err(Failure::Transient("the connection closed at once".into()));
        }
        Ok(conn)
    }
}

/// The addresses `host` resolves to that the policy allows (an IP literal is itself); none
/// allowed is the policy's refusal, counted.
async fn allowed_addrs(host: &str, port: u16, policy: common::rules::TargetPolicy) -> Result<Vec<SocketAddr>, Failure> {
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Failure::Transient(format!("resolving the host: {e}")))?
        .collect();
    let mut refused = None;
    let allowed: Vec<SocketAddr> = found
        .into_iter()
        .filter(|a| match guard::check(a.ip(), policy) {
            Ok(()) => true,
            Err(r) => {
                refused.get_or_insert(r);
                false
            }
        })
        .collect();
    match (allowed.is_empty(), refused) {
        (true, Some(r)) => {
            crate::metrics::rule_target_refused(r.kind);
            Err(Failure::Refused(r))
        }
        (true, None) => Err(Failure::Transient("the host has no address".into())),
        _ => Ok(allowed),
    }
}

/// Reads an answer's body to its end, dropping it; false when it was cut or too large (the
/// connection is not used again then).
async fn drain(body: &mut Incoming) -> bool {
    let mut read = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                read += f.data_ref().map_or(0, Bytes::len);
                if read > MAX_ANSWER_BODY {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// The TLS client setup of every https webhook, made once: the system's certificate authorities
/// (reading them takes a while) and ring, as the listeners use.
fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err("no trusted certificate authorities found for https".into());
        }
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    });
    config.clone().map(tokio_rustls::TlsConnector::from)
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_once_into_what_a_connection_needs() {
        let t = parse("https://hooks.example.com/a/b?c=d").unwrap();
        assert!(t.https);
        assert_eq!((t.host.as_str(), t.port), ("hooks.example.com", 443));
        assert_eq!(t.authority, "hooks.example.com");
        assert_eq!(t.path, "/a/b?c=d");
        let t = parse("http://[::1]:8080").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.to_string().as_str()),
            ("::1", 8080, "/")
        );
        assert_eq!(t.authority, "[::1]:8080");
        for bad in ["ftp://x/", "https://u:p@x/", "not a url", "/relative"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn names_are_checked_after_resolution() {
        let strict = common::rules::TargetPolicy::default();
        match allowed_addrs("localhost", 80, strict).await {
            Err(Failure::Refused(r)) => assert_eq!(r.kind, "loopback"),
            other => panic!("refused, got {other:?}"),
        }
        match allowed_addrs("127.0.0.1", 80, strict).await {
            Err(Failure::Refused(r)) => assert_eq!(r.kind, "loopback"),
            other => panic!("an IP literal is checked too, got {other:?}"),
        }
        let open = common::rules::TargetPolicy {
            allow_loopback: true,
            allow_private: false,
        };
        assert!(allowed_addrs("localhost", 80, open).await.is_ok());
    }
}
