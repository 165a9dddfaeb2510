//! A TLS-terminating proxy in front of a plain test server (the control plane, a webhook receiver),
//! as a production deployment puts one there, with the test-only certificate authority of
//! `data-plane/tests/fixtures`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// The test certificate authority that signed the proxy's certificate (for `localhost`, 127.0.0.1).
pub const TEST_CA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data-plane/tests/fixtures/ca.pem");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data-plane/tests/fixtures");

pub struct TlsProxy {
    pub port: u16,
    /// TLS connections that completed their handshake (what a client opened and trusted).
    handshakes: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TlsProxy {
    /// Listens on a free loopback port and forwards every TLS connection to `127.0.0.1:backend_port`.
    pub async fn start(backend_port: u16) -> Self {
        let certs = CertificateDer::pem_file_iter(format!("{FIXTURES}/server.pem"))
            .expect("test certificate")
            .collect::<Result<Vec<_>, _>>()
            .expect("test certificate");
        let key = PrivateKeyDer::from_pem_file(format!("{FIXTURES}/server.key")).expect("test key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("TLS server config");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let counted = handshakes.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let counted = counted.clone();
                tokio::spawn(async move {
                    // A client that does not trust us fails the handshake: nothing to forward.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    counted.fetch_add(1, Ordering::Relaxed);
                    let Ok(mut backend) = TcpStream::connect(("127.0.0.1", backend_port)).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut backend).await;
                });
            }
        });
        Self { port, handshakes, task }
    }

    /// How many TLS connections were opened through the proxy so far.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::Relaxed)
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
