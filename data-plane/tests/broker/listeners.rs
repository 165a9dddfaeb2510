//! The MQTT listeners (docs/broker.md, "Configuration"): every worker thread accepts on its own socket of
//! each listener's address (SO_REUSEPORT), and a port that something else listens on is refused at
//! start as a plain bind would refuse it.

use crate::support::v3;
use crate::support::*;

/// SO_REUSEPORT lets the broker's workers share a port; it must not let a second broker, or any
/// other program, share it too.
#[tokio::test]
async fn a_port_in_use_is_refused_at_start() {
    let first = BrokerProc::start(&snapshot());
    let taken = format!("127.0.0.1:{}", first.port);
    let (second, status) = BrokerProc::start_to_exit(&snapshot(), &[("BROKER_LISTEN", &taken)], 20);
    assert!(!status.success(), "{status}");
    assert!(second.log().contains(&format!("binding {taken}")), "{}", second.log());

    // A port another program holds without SO_REUSEPORT.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held = other.local_addr().unwrap().to_string();
    let (third, status) = BrokerProc::start_to_exit(&snapshot(), &[("BROKER_LISTEN", &held)], 20);
    assert!(!status.success(), "{status}");
    assert!(third.log().contains(&format!("binding {held}")), "{}", third.log());

    // The first broker got every connection meant for it, none went to the refused ones.
    for i in 0..20 {
        v3::connect(first.sig_opts(&format!("GID_test@@@still{i}")))
            .await
            .unwrap();
    }
}

/// With four workers the kernel spreads connections over four sockets per listener: a worker that
/// did not accept would leave about a quarter of them unanswered.
#[tokio::test]
async fn every_worker_accepts_on_every_listener() {
    let b = BrokerProc::start_with_env(&snapshot(), &[("BROKER_WORKERS", "4")]);
    let mut clients = Vec::new();
    for i in 0..40 {
        clients.push(v3::connect(b.sig_opts(&format!("GID_test@@@w{i}"))).await.unwrap());
    }
    for _ in 0..16 {
        let answer = crate::websocket::handshake(b.ws_port, "/mqtt");
        assert!(answer.starts_with("http/1.1 101"), "{answer}");
    }
}
