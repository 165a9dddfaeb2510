//! Bad input at the TCP port (docs/spec.md 5): garbage bytes, truncated packets and a 10 MB frame are
//! refused without crashing, and other clients keep being served throughout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::v3;
use crate::support::wire::{self, put_len};
use crate::support::*;
use rumqttc::QoS;

/// Sends raw bytes and waits until the broker closes the socket (or `secs` pass).
fn send_raw(port: u16, bytes: &[u8], secs: u64) -> bool {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(secs))).unwrap();
    // The broker may close mid-write (that is the point); errors are fine.
    let _ = s.write_all(bytes);
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// A CONNECT (v3.1.1) for `client_id` with Signature credentials.
fn connect_packet(client_id: &str) -> Vec<u8> {
    wire::connect(wire::Version::V3, client_id, &sig_user(INST), &sig_pass(client_id))
}

#[tokio::test]
async fn garbage_truncated_and_huge_frames() {
    let b = BrokerProc::start(&snapshot());
    // A healthy subscriber that must keep working throughout.
    let (_sub, mut sev) = v3::subscribed(b.sig_opts("GID_test@@@healthy"), "T/ok", QoS::AtLeastOnce).await;
    let (publ, pev, _) = v3::connect(b.sig_opts("GID_test@@@healthypub")).await.unwrap();
    let _d = v3::drive(pev);

    let port = b.port;
    let attacks = tokio::task::spawn_blocking(move || {
        let mut closed = Vec::new();
        // Garbage that is not MQTT at all.
        closed.push(send_raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 15));
        closed.push(send_raw(port, &[0xff; 64], 15));
        // Truncated CONNECT: the broker must time out or refuse, not hang forever on it.
        let connect = connect_packet("GID_test@@@trunc");
        closed.push(send_raw(port, &connect[..connect.len() / 2], 15));
        // A valid connection, then a PUBLISH header announcing 10 MB followed by 10 MB of data.
        let mut huge = connect_packet("GID_test@@@huge");
        huge.push(0x30);
        put_len(&mut huge, 10 * 1024 * 1024);
        huge.extend(std::iter::repeat_n(0u8, 10 * 1024 * 1024));
        closed.push(send_raw(port, &huge, 15));
        // A malformed remaining length (5 continuation bytes).
        let mut bad_len = connect_packet("GID_test@@@badlen");
        bad_len.extend([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        closed.push(send_raw(port, &bad_len, 15));
        closed
    });
    // Meanwhile, ordinary traffic flows.
    for i in 0..20 {
        publ.publish("T/ok", QoS::AtLeastOnce, false, format!("{i}"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(v3::collect(&mut sev, 20, 10).await.len(), 20);
    let closed = attacks.await.unwrap();
    assert!(closed.iter().all(|c| *c), "every bad connection was closed: {closed:?}");
    // Each refusal is counted with its reason.
    let frame = |reason| b.counter("broker_refusals_total", &[("packet", "frame"), ("reason", reason)]);
    assert_eq!(
        frame("first_packet_not_connect"),
        2.0,
        "the HTTP request and the 0xff bytes"
    );
    assert_eq!(frame("malformed"), 2.0, "the 10 MB frame and the bad remaining length");

    // Still serving new clients afterwards, and the process is alive.
    let (c, mut ev, _) = v3::connect(b.sig_opts("GID_test@@@after")).await.unwrap();
    c.subscribe("T/after", QoS::AtLeastOnce).await.unwrap();
    v3::suback(&mut ev).await;
    c.publish("T/after", QoS::AtLeastOnce, false, "alive").await.unwrap();
    assert_eq!(&v3::collect(&mut ev, 1, 10).await[0].payload[..], b"alive");
    let mut b = b;
    assert!(
        b.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "broker still running"
    );
}

/// Reads frames until one of `kind` (upper nibble of the first byte) arrives; None when the broker
/// closes the connection or `secs` pass first.
fn read_until(s: &mut TcpStream, buf: &mut bytes::BytesMut, kind: u8, secs: u64) -> Option<Vec<u8>> {
    s.set_read_timeout(Some(Duration::from_secs(secs))).unwrap();
    loop {
        while let Some((first, body)) = wire::split_frame(buf) {
            if first >> 4 == kind {
                return Some(body);
            }
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A connected client that breaks the protocol (a second CONNECT, a packet only a server sends,
/// a PUBREC of nothing under way) is closed and counted; a resent QoS 2 PUBLISH is answered again but
/// routed once (MQTT 3.1.1, 4.3.3).
#[tokio::test]
async fn protocol_violations_close_and_qos2_resends_are_routed_once() {
    let b = BrokerProc::start(&snapshot());
    let port = b.port;
    let violations = tokio::task::spawn_blocking(move || {
        let mut closed = Vec::new();
        for (n, extra) in [
            connect_packet("GID_test@@@again"),
            vec![0x20, 0x02, 0x00, 0x00],
            vec![0x50, 0x02, 0x00, 0x09],
        ]
        .into_iter()
        .enumerate()
        {
            let mut bytes = connect_packet(&format!("GID_test@@@viol{n}"));
            bytes.extend(extra);
            closed.push(send_raw(port, &bytes, 15));
        }
        closed
    });
    assert_eq!(
        violations.await.unwrap(),
        vec![true; 3],
        "every violating connection was closed"
    );
    assert_eq!(
        b.counter(
            "broker_refusals_total",
            &[("packet", "frame"), ("reason", "unexpected_packet")]
        ),
        3.0
    );

    let (_sub, mut sev) = v3::subscribed(b.sig_opts("GID_test@@@q2sub"), "T/q2", QoS::ExactlyOnce).await;
    let exchange = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut buf = bytes::BytesMut::new();
        s.write_all(&connect_packet("GID_test@@@q2pub")).unwrap();
        assert!(read_until(&mut s, &mut buf, 2, 10).is_some(), "CONNACK");
        // PUBLISH QoS 2, packet id 7, sent twice (the second with DUP) before any PUBREL.
        let publish = |dup: u8| {
            let mut p = vec![0x34 | dup];
            let body = [&[0x00, 0x04][..], b"T/q2", &[0x00, 0x07], b"once"].concat();
            put_len(&mut p, body.len());
            p.extend(body);
            p
        };
        s.write_all(&publish(0)).unwrap();
        assert_eq!(read_until(&mut s, &mut buf, 5, 10), Some(vec![0x00, 0x07]), "PUBREC");
        s.write_all(&publish(0x08)).unwrap();
        assert_eq!(
            read_until(&mut s, &mut buf, 5, 10),
            Some(vec![0x00, 0x07]),
            "PUBREC again"
        );
        s.write_all(&[0x62, 0x02, 0x00, 0x07]).unwrap();
        assert_eq!(read_until(&mut s, &mut buf, 7, 10), Some(vec![0x00, 0x07]), "PUBCOMP");
        // A PUBREL of an id already released is answered too (the client may resend it).
        s.write_all(&[0x62, 0x02, 0x00, 0x07]).unwrap();
        assert_eq!(
            read_until(&mut s, &mut buf, 7, 10),
            Some(vec![0x00, 0x07]),
            "PUBCOMP again"
        );
    });
    exchange.await.unwrap();
    let got = v3::drain(&mut sev, 2.0).await;
    assert_eq!(got.len(), 1, "routed once: {got:?}");
    assert_eq!(&got[0].payload[..], b"once");
}

/// The connect timeout (10 s) counts from the connection, not from the CONNECT's first bytes: a
/// client that sends its protocol level after 6 s and nothing more is closed at 10 s, not at 16.
#[tokio::test]
async fn a_trickled_connect_gets_ten_seconds_in_all() {
    let b = BrokerProc::start(&snapshot());
    let port = b.port;
    let closed_after = tokio::task::spawn_blocking(move || {
        let connect = connect_packet("GID_test@@@trickle");
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let started = std::time::Instant::now();
        s.write_all(&connect[..1]).unwrap();
        std::thread::sleep(Duration::from_secs(6));
        // The rest of the fixed header, the protocol name and level: enough to tell the version.
        s.write_all(&connect[1..10]).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).unwrap_or(0);
        (n, started.elapsed())
    })
    .await
    .unwrap();
    assert_eq!(closed_after.0, 0, "closed without an answer");
    assert!(
        closed_after.1 < Duration::from_secs(13),
        "closed after {:?}",
        closed_after.1
    );
}
