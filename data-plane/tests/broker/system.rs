//! System topics (docs/spec.md 3.7), client status events (docs/spec.md 3.8), metrics and snapshot reload.

use std::time::Duration;

use crate::support::v3;
use crate::support::*;
use common::token::TokenAction;
use rumqttc::QoS;

fn tok_opts(b: &BrokerProc, cid: &str, pass: String) -> rumqttc::MqttOptions {
    b.v3_opts(cid, &format!("Token|{AK}|{INST}"), &pass)
}

#[tokio::test]
async fn token_notices_upload_and_expiry() {
    let b = BrokerProc::start(&snapshot());
    let cid = "GID_test@@@tok";

    // A token expiring in 3 s: the expire notice comes at once (less than 5 minutes left),
    // then the invalid notice with code 2 and the connection closes.
    let exp = now_ms() + 3000;
    let short = token(INST, TokenAction::RW, &["T/#"], exp, "short");
    let (_c, mut ev, _) = v3::connect(tok_opts(&b, cid, format!("RW|{short}"))).await.unwrap();
    let got = v3::collect(&mut ev, 2, 10).await;
    assert_eq!(got[0].topic, "$SYS/tokenExpireNotice");
    let notice: serde_json::Value = serde_json::from_slice(&got[0].payload).unwrap();
    assert_eq!(notice["expireTime"], exp);
    assert_eq!(notice["type"], "RW");
    assert_eq!(got[1].topic, "$SYS/tokenInvalidNotice");
    let invalid: serde_json::Value = serde_json::from_slice(&got[1].payload).unwrap();
    assert_eq!(invalid["code"], 2);
    v3::expect_closed(&mut ev, 5).await;

    // Upload a fresh token before expiry: the session lives on and keeps its rights.
    let short = token(INST, TokenAction::RW, &["T/#"], now_ms() + 2500, "short2");
    let (c, mut ev, _) = v3::connect(tok_opts(&b, cid, format!("RW|{short}"))).await.unwrap();
    let fresh = token(INST, TokenAction::RW, &["T/#"], now_ms() + 3_600_000, "fresh");
    let body = serde_json::json!({"token": fresh, "type": "RW"}).to_string();
    c.publish("$SYS/uploadToken", QoS::AtLeastOnce, false, body)
        .await
        .unwrap();
    c.publish("$SYS/enableOrderMsg", QoS::AtLeastOnce, false, r#"{"order":"true"}"#)
        .await
        .unwrap();
    c.subscribe("T/tok", QoS::AtLeastOnce).await.unwrap();
    // Past the first token's expiry (the event loop must run to send the requests above).
    let early = v3::drain(&mut ev, 3.5).await;
    assert!(early.iter().all(|p| p.topic == "$SYS/tokenExpireNotice"), "{early:?}");
    c.publish("T/tok", QoS::AtLeastOnce, false, "still here").await.unwrap();
    let got = v3::collect(&mut ev, 1, 10).await;
    assert_eq!(&got[0].payload[..], b"still here");

    // A forged upload: invalid notice (code 1) and disconnect.
    let body = serde_json::json!({"token": "forged.token.x", "type": "RW"}).to_string();
    c.publish("$SYS/uploadToken", QoS::AtLeastOnce, false, body)
        .await
        .unwrap();
    let got = v3::collect(&mut ev, 1, 10).await;
    assert_eq!(got[0].topic, "$SYS/tokenInvalidNotice");
    let invalid: serde_json::Value = serde_json::from_slice(&got[0].payload).unwrap();
    assert_eq!(invalid["code"], 1);
    v3::expect_closed(&mut ev, 5).await;

    // An R token publishing gets the action-mismatch notice (5) before the disconnect.
    let r = token(INST, TokenAction::R, &["T/#"], now_ms() + 3_600_000, "r");
    let (c, mut ev, _) = v3::connect(tok_opts(&b, cid, format!("R|{r}"))).await.unwrap();
    c.publish("T/x", QoS::AtLeastOnce, false, "no").await.unwrap();
    let got = v3::collect(&mut ev, 1, 10).await;
    let invalid: serde_json::Value = serde_json::from_slice(&got[0].payload).unwrap();
    assert_eq!(invalid["code"], 5);
    v3::expect_closed(&mut ev, 5).await;
}

#[tokio::test]
async fn status_events_metrics_and_reload() {
    let b = BrokerProc::start(&snapshot());
    let cid = "GID_test@@@ev";
    let (c, mut ev, _) = v3::connect(b.sig_opts(cid)).await.unwrap();
    c.disconnect().await.unwrap();
    let _ = v3::drain(&mut ev, 0.5).await;
    let (_c2, ev2, _) = v3::connect(b.sig_opts(cid)).await.unwrap();
    drop(ev2);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let log = b.log();
    let events: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| l.split_once("event=").map(|(_, e)| e))
        .filter_map(|e| serde_json::from_str(e).ok())
        .filter(|e: &serde_json::Value| e["clientId"] == cid)
        .collect();
    // Per channel, in order: the first sent DISCONNECT, the second just vanished.
    let kinds = |channel: &serde_json::Value| -> Vec<&str> {
        events
            .iter()
            .filter(|e| &e["channelId"] == channel)
            .map(|e| e["eventType"].as_str().unwrap())
            .collect()
    };
    assert_eq!(
        kinds(&events[0]["channelId"]),
        ["connect", "disconnect", "tcpclean"],
        "{log}"
    );
    let second = events.iter().rfind(|e| e["eventType"] == "connect").unwrap();
    assert_eq!(kinds(&second["channelId"]), ["connect", "tcpclean"], "{log}");
    assert_eq!(events.len(), 5);
    for e in &events {
        let channel = e["channelId"].as_str().unwrap();
        assert_eq!(channel.len(), 32);
        assert!(channel.bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(e["clientIp"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(e["time"].as_i64().unwrap() > 1_600_000_000_000);
    }
    assert_ne!(events[0]["channelId"], second["channelId"]);

    let m = b.metrics();
    for name in [
        "broker_connections",
        "broker_client_events_total",
        "broker_messages_in_total",
        "broker_subscriptions",
    ] {
        assert!(m.contains(name), "{name} missing:\n{m}");
    }

    // Reload: a new parent topic becomes usable after SIGHUP; a broken file is refused and kept out.
    let (c, mut ev, _) = v3::connect(b.sig_opts("GID_test@@@rl")).await.unwrap();
    let mut snap = snapshot();
    snap.content.instances[0].parent_topics.push("V".into());
    let snap = Snapshot::new(2, snap.content);
    std::fs::write(b.dir.join("snapshot.json"), serde_json::to_vec(&snap).unwrap()).unwrap();
    b.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.subscribe("V/#", QoS::AtLeastOnce).await.unwrap();
    v3::suback(&mut ev).await;
    c.publish("V/a", QoS::AtLeastOnce, false, "new parent").await.unwrap();
    assert_eq!(&v3::collect(&mut ev, 1, 10).await[0].payload[..], b"new parent");

    std::fs::write(b.dir.join("snapshot.json"), b"{not json").unwrap();
    b.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.publish("V/a", QoS::AtLeastOnce, false, "kept").await.unwrap();
    assert_eq!(&v3::collect(&mut ev, 1, 10).await[0].payload[..], b"kept");
    assert!(b.log().contains("snapshot reload refused"));
}

/// The message counters are kept per worker thread and summed when /metrics is read: every message
/// in and out is there, by QoS (out at the QoS it was delivered with).
#[tokio::test]
async fn message_counters_count_every_message_by_qos() {
    let b = BrokerProc::start(&snapshot());
    let (_sub, mut sev) = v3::subscribed(b.sig_opts("GID_test@@@count_sub"), "T/count", QoS::AtLeastOnce).await;
    let (publisher, mut pev, _) = v3::connect(b.sig_opts("GID_test@@@count_pub")).await.unwrap();
    let drive = tokio::spawn(async move { v3::drain(&mut pev, 5.0).await });
    for i in 0..3 {
        publisher
            .publish("T/count", QoS::AtLeastOnce, false, format!("one {i}"))
            .await
            .unwrap();
    }
    for i in 0..2 {
        publisher
            .publish("T/count", QoS::AtMostOnce, false, format!("zero {i}"))
            .await
            .unwrap();
    }
    assert_eq!(v3::collect(&mut sev, 5, 10).await.len(), 5);
    let count = |name: &str, qos: &str| b.counter(name, &[("qos", qos)]);
    assert_eq!(count("broker_messages_in_total", "1"), 3.0);
    assert_eq!(count("broker_messages_in_total", "0"), 2.0);
    assert_eq!(count("broker_messages_out_total", "1"), 3.0);
    assert_eq!(count("broker_messages_out_total", "0"), 2.0);
    assert_eq!(
        count("broker_messages_in_total", "2") + count("broker_messages_out_total", "2"),
        0.0
    );
    drive.abort();
}
