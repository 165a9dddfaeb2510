//! The device trace records why each connection ended, as the broker saw it, and refused CONNECTs:
//! a clean DISCONNECT, a takeover, a wrong password, a PUBLISH outside the credentials, a client that
//! stopped sending (keep-alive), one that closed its socket. Read back through ListClientEvents, the
//! source of Alibaba's QueryMqttTraceDevice.

use std::time::{Duration, Instant};

use reqwest::Method;
use rumqttc::QoS;
use serde_json::Value;
use test_support::mqtt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use e2e::{Api, Fixture, System};

/// An MQTT 3.1.1 CONNECT (clean session, username and password) with `keep_alive` seconds.
fn connect_packet(client_id: &str, username: &str, password: &str, keep_alive: u16) -> Vec<u8> {
    let field = |s: &str| {
        let mut v = (s.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    };
    let mut body = field("MQTT");
    body.extend_from_slice(&[4, 0xC2]);
    body.extend_from_slice(&keep_alive.to_be_bytes());
    for s in [client_id, username, password] {
        body.extend(field(s));
    }
    let mut packet = vec![0x10];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if len == 0 {
            break;
        }
    }
    packet.extend(body);
    packet
}

/// A raw TCP connection that got its CONNACK (accepted).
async fn raw_connect(fx: &Fixture, port: u16, client_id: &str, keep_alive: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let packet = connect_packet(
        client_id,
        &fx.signature_username(),
        &fx.signature_password(client_id),
        keep_alive,
    );
    s.write_all(&packet).await.unwrap();
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0], "accepted");
    s
}

/// (eventType, reason) of the client's events, oldest first, once `want` of them arrived.
async fn history(api: &Api, fx: &Fixture, client_id: &str, want: usize) -> Vec<(String, Option<String>)> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let page = api
            .ok(
                Method::GET,
                &format!(
                    "/instances/{}/client-events?clientId={client_id}&pageSize=100",
                    fx.instance
                ),
                None,
            )
            .await;
        let mut events: Vec<(String, Option<String>)> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["eventType"].as_str().unwrap().to_string(),
                    e["reason"].as_str().map(String::from),
                )
            })
            .collect();
        if events.len() >= want {
            events.reverse();
            return events;
        }
        assert!(Instant::now() < deadline, "{client_id}: only {events:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ev(kind: &str, reason: Option<&str>) -> (String, Option<String>) {
    (kind.to_string(), reason.map(String::from))
}

#[tokio::test]
async fn why_each_connection_ended_is_in_the_trace() {
    let s = System::up(1).await;
    let (fx, api, port) = (&s.fx, &s.api, s.broker().mqtt_port);

    let clean = fx.client_id("clean");
    let (c, mut ev_loop, _) = mqtt::connect(fx.signature_opts(&clean, port)).await.unwrap();
    c.disconnect().await.unwrap();
    mqtt::expect_closed(&mut ev_loop, 10).await;

    let taken = fx.client_id("taken");
    let (_first, mut first_ev, _) = mqtt::connect(fx.signature_opts(&taken, port)).await.unwrap();
    let (_second, second_ev, _) = mqtt::connect(fx.signature_opts(&taken, port)).await.unwrap();
    mqtt::expect_closed(&mut first_ev, 10).await;
    mqtt::drive(second_ev);

    let refused = fx.client_id("refused");
    let mut wrong = fx.signature_opts(&refused, port);
    wrong.set_credentials(fx.signature_username(), "forged");
    assert!(mqtt::refusal(wrong).await.is_some());

    let outside = fx.client_id("outside");
    let (p, mut p_ev, _) = mqtt::connect(fx.signature_opts(&outside, port)).await.unwrap();
    p.publish("Nope/x", QoS::AtLeastOnce, false, "x").await.unwrap();
    mqtt::expect_closed(&mut p_ev, 10).await;

    // Keep-alive 1 s and then silence: the broker gives up after 1.5 s.
    let silent = fx.client_id("silent");
    let mut socket = raw_connect(fx, port, &silent, 1).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the broker kept a silent connection open");

    let gone = fx.client_id("gone");
    drop(raw_connect(fx, port, &gone, 30).await);

    assert_eq!(
        history(api, fx, &clean, 3).await,
        [
            ev("connect", None),
            ev("disconnect", None),
            ev("tcpclean", Some("disconnected by client"))
        ]
    );
    // The second connect and the first connection's end race each other: compare as a set.
    let mut t = history(api, fx, &taken, 3).await;
    t.sort();
    assert_eq!(
        t,
        [
            ev("connect", None),
            ev("connect", None),
            ev("tcpclean", Some("clientId conflict"))
        ]
    );
    assert_eq!(
        history(api, fx, &refused, 1).await,
        [ev("tcpclean", Some("not authorized"))]
    );
    assert_eq!(
        history(api, fx, &outside, 2).await,
        [ev("connect", None), ev("tcpclean", Some("resource auth failed"))]
    );
    assert_eq!(
        history(api, fx, &silent, 2).await,
        [ev("connect", None), ev("tcpclean", Some("no heart"))]
    );
    assert_eq!(
        history(api, fx, &gone, 2).await,
        [ev("connect", None), ev("tcpclean", Some("closed by client"))]
    );

    // A refused CONNECT is not a status event: the client was never online.
    let session: Value = api
        .ok(
            Method::GET,
            &format!("/instances/{}/sessions/{refused}", fx.instance),
            None,
        )
        .await;
    assert_eq!(session["online"], false);
}
