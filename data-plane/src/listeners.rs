//! The MQTT listeners and the worker threads that serve them: every worker accepts on a socket of
//! its own for each listener (SO_REUSEPORT; the kernel spreads new connections over the sockets)
//! and serves what it accepts, so a connection is accepted, set up and served on one thread.
//!
//! Why not ntex-server, which did this before: its accept thread handed each connection to its
//! manager thread, which handed it to a worker, two thread hops and their wake-ups per connect
//! (BENCHMARKS.md, "Accepting on the workers"). What else it gave we did not use: MQTT connections
//! already ran in tasks of their own, and instances have connection quotas.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::Arc;

use ntex::SharedCfg;
use ntex::io::Io;
use ntex::rt::Arbiter;
use ntex::time::Millis;
use rustls::ServerConfig;
use socket2::{Domain, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::core::Broker;
use crate::mqtt::{mqtt_entry, v3};

/// Accept queue of every socket. std's `TcpListener::bind` asks for 128: a connection storm
/// overflows it, and every dropped SYN costs its client a one-second retransmit (the kernel caps
/// this at `net.core.somaxconn`).
const BACKLOG: i32 = 4096;

/// Connections a worker accepts in a row before it lets its other tasks run.
const ACCEPT_BATCH: usize = 64;

/// Pause after an accept that failed for want of resources (descriptors, memory): the connection
/// waits in the backlog instead of the worker spinning on the error.
const ACCEPT_PAUSE: Millis = Millis(100);

/// What a listener speaks above TCP.
#[derive(Clone)]
pub enum Transport {
    /// MQTT straight on TCP; `dev` is the development listener (any client into the dev instance).
    Mqtt { dev: bool },
    /// MQTT over WebSocket at `/mqtt`.
    WebSocket,
    /// MQTT over TLS.
    Tls(Arc<ServerConfig>),
    /// MQTT over WebSocket over TLS.
    SecureWebSocket(Arc<ServerConfig>),
}

/// One listener: one bound socket per worker, all on the same address.
pub struct Listener {
    transport: Transport,
    sockets: Vec<TcpListener>,
}

impl Listener {
    /// Binds `workers` sockets to `addr`. A port already in use is refused, as a plain bind would
    /// refuse it: SO_REUSEPORT alone would let a second broker of the same user share the port.
    pub fn bind(addr: SocketAddr, workers: usize, transport: Transport) -> io::Result<Self> {
        if addr.port() != 0 {
            refuse_if_taken(addr)?;
        }
        let first = reuse_port_socket(addr)?;
        // Port 0 became a real port: the other sockets join that one.
        let addr = first.local_addr()?;
        let mut sockets = vec![first];
        for _ in 1..workers {
            sockets.push(reuse_port_socket(addr)?);
        }
        Ok(Self { transport, sockets })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sockets[0].local_addr()
    }
}

fn refuse_if_taken(addr: SocketAddr) -> io::Result<()> {
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // A port whose last connections linger in TIME_WAIT is free to take again.
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into())
}

fn reuse_port_socket(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Starts one worker thread per socket of a listener (every listener has one per worker), each
/// accepting on its own socket of every listener; the caller stops them (`Arbiter::stop`) when the
/// broker stops.
pub fn start(listeners: Vec<Listener>, broker: &Arc<Broker>, limits: v3::Limits, io_cfg: &SharedCfg) -> Vec<Arbiter> {
    let workers = listeners.first().map_or(0, |l| l.sockets.len());
    let mut per_worker: Vec<Vec<(Transport, TcpListener)>> = (0..workers).map(|_| Vec::new()).collect();
    for listener in listeners {
        for (worker, socket) in listener.sockets.into_iter().enumerate() {
            per_worker[worker].push((listener.transport.clone(), socket));
        }
    }
    per_worker
        .into_iter()
        .enumerate()
        .map(|(i, sockets)| {
            let arbiter = Arbiter::with_name(format!("broker:worker:{i}"));
            let (broker, io_cfg) = (broker.clone(), io_cfg.clone());
            arbiter.handle().spawn(async move {
                for (transport, socket) in sockets {
                    let serve = serve_fn(&broker, limits, transport);
                    ntex::rt::spawn(accept_loop(socket, serve, io_cfg.clone()));
                }
            });
            arbiter
        })
        .collect()
}

/// What a worker does with a connection it accepted, made once per worker and listener (the
/// services in it are `!Send`).
type ServeFn = Rc<dyn Fn(Io)>;

fn serve_fn(broker: &Arc<Broker>, limits: v3::Limits, transport: Transport) -> ServeFn {
    match transport {
        Transport::Mqtt { dev } => {
            let entry = mqtt_entry!(broker, dev, limits);
            Rc::new(move |io: Io| entry.spawn(io.boxed()))
        }
        Transport::WebSocket => {
            let http = Rc::new(ntex::Pipeline::new(
                (),
                crate::ws::http_service(mqtt_entry!(broker, false, limits)),
            ));
            Rc::new(move |io: Io| {
                let http = http.clone();
                ntex::rt::spawn(async move {
                    if let Err(e) = http.call(io).await {
                        tracing::debug!(error = ?e, "websocket connection ended with an error");
                    }
                });
            })
        }
        Transport::Tls(tls) => {
            let entry = mqtt_entry!(broker, false, limits);
            let acceptor = Rc::new(ntex::Pipeline::new((), ntex_tls::rustls::TlsAcceptor::new(tls)));
            Rc::new(move |io: Io| {
                let (acceptor, entry) = (acceptor.clone(), entry.clone());
                ntex::rt::spawn(async move {
                    match acceptor.call(io).await {
                        Ok(io) => entry.spawn(io.boxed()),
                        Err(e) => tracing::debug!(error = ?e, "tls handshake failed"),
                    }
                });
            })
        }
        Transport::SecureWebSocket(tls) => {
            let acceptor = Rc::new(ntex::Pipeline::new((), ntex_tls::rustls::TlsAcceptor::new(tls)));
            let http = Rc::new(ntex::Pipeline::new(
                (),
                crate::ws::http_service(mqtt_entry!(broker, false, limits)),
            ));
            Rc::new(move |io: Io| {
                let (acceptor, http) = (acceptor.clone(), http.clone());
                ntex::rt::spawn(async move {
                    let io = match acceptor.call(io).await {
                        Ok(io) => io,
                        Err(e) => return tracing::debug!(error = ?e, "tls handshake failed"),
                    };
                    if let Err(e) = http.call(io).await {
                        tracing::debug!(error = ?e, "secure websocket connection ended with an error");
                    }
                });
            })
        }
    }
}

/// Accepts connections on one socket for as long as the worker runs.
async fn accept_loop(socket: TcpListener, serve: ServeFn, io_cfg: SharedCfg) {
    let addr = socket.local_addr().ok();
    // SAFETY: the AsyncFd owns the listener, so its descriptor stays open and the same for the
    // AsyncFd's whole life.
    let socket = match unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) } {
        Ok(s) => s,
        Err(e) => return tracing::error!(error = %e, ?addr, "listener could not be registered"),
    };
    loop {
        let Ok(mut ready) = socket.readable().await else {
            return tracing::error!(?addr, "listener's readiness failed");
        };
        let mut batch_full = true;
        for _ in 0..ACCEPT_BATCH {
            match socket.get_ref().accept() {
                Ok((stream, _)) => match ntex::rt::from_tcp_stream(stream, io_cfg.clone()) {
                    Ok(io) => serve(io),
                    Err(e) => tracing::debug!(error = %e, "accepted connection could not be set up"),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready.clear_ready();
                    batch_full = false;
                    break;
                }
                // The client gave up before we took it: nothing to do.
                Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted) => {}
                Err(e) => {
                    tracing::warn!(error = %e, ?addr, "accept failed; pausing this listener for 100 ms");
                    crate::metrics::accept_error();
                    drop(ready);
                    ntex::time::sleep(ACCEPT_PAUSE).await;
                    batch_full = false;
                    break;
                }
            }
        }
        if batch_full {
            // More may wait (the socket stays marked ready): the worker's other tasks run first.
            tokio::task::yield_now().await;
        }
    }
}
