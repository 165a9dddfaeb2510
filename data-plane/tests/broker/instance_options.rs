//! Live snapshot changes and per-instance options: a token revoked by a reloaded snapshot closes
//! its session with notice code 3, `rejectDuplicateClientId`, and the messages-per-second quota.

use std::time::{Duration, Instant};

use crate::support::v3;
use crate::support::*;
use common::token::TokenAction;
use rumqttc::QoS;

#[tokio::test]
async fn revocation_by_reload_closes_live_session() {
    let b = BrokerProc::start(&snapshot());
    let cid = "GID_test@@@rev";
    let t = token(INST, TokenAction::RW, &["T/#"], now_ms() + 3_600_000, "to-revoke");
    let (_c, mut ev, _) = v3::connect(b.v3_opts(cid, &format!("Token|{AK}|{INST}"), &format!("RW|{t}")))
        .await
        .unwrap();
    let mut snap = snapshot();
    snap.content.instances[0]
        .revoked_tokens
        .push(common::snapshot::RevokedToken {
            jti: "to-revoke".into(),
            exp_ms: now_ms() + 3_600_000,
        });
    let snap = Snapshot::new(2, snap.content);
    std::fs::write(b.dir.join("snapshot.json"), serde_json::to_vec(&snap).unwrap()).unwrap();
    let started = Instant::now();
    b.signal("HUP");
    let got = v3::collect(&mut ev, 1, 5).await;
    assert_eq!(got[0].topic, "$SYS/tokenInvalidNotice");
    let notice: serde_json::Value = serde_json::from_slice(&got[0].payload).unwrap();
    assert_eq!(notice["code"], 3);
    v3::expect_closed(&mut ev, 5).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "revocation took {:?}",
        started.elapsed()
    );
    // And it cannot come back.
    let opts = b.v3_opts(cid, &format!("Token|{AK}|{INST}"), &format!("RW|{t}"));
    assert_eq!(v3::refusal(opts).await, Some(rumqttc::ConnectReturnCode::NotAuthorized));
}

#[tokio::test]
async fn disabled_access_key_closes_signature_sessions_and_sigterm_stops() {
    let mut b = BrokerProc::start(&snapshot());
    let (_c, mut ev, _) = v3::connect(b.sig_opts("GID_test@@@sig")).await.unwrap();
    let mut snap = snapshot();
    snap.content.instances[0].access_keys[0].enabled = false;
    b.reload(&Snapshot::new(2, snap.content)).await;
    v3::expect_closed(&mut ev, 5).await;
    assert_eq!(
        v3::refusal(b.sig_opts("GID_test@@@sig")).await,
        Some(rumqttc::ConnectReturnCode::NotAuthorized)
    );

    // SIGTERM: graceful stop with exit status 0.
    b.signal("TERM");
    let mut child = b.child.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "broker did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}\n{}", b.log());
    assert!(b.log().contains("mqtt server stopped"));
}

#[tokio::test]
async fn reject_duplicate_client_id_option() {
    let mut snap = snapshot();
    snap.content.instances[0].reject_duplicate_client_id = true;
    let b = BrokerProc::start(&Snapshot::new(1, snap.content));
    let cid = "GID_test@@@once";
    let (_c, ev, _) = v3::connect(b.sig_opts(cid)).await.unwrap();
    let _d = v3::drive(ev);
    assert_eq!(
        v3::refusal(b.sig_opts(cid)).await,
        Some(rumqttc::ConnectReturnCode::BadClientId)
    );
}

#[tokio::test]
async fn messages_per_second_quota_throttles_without_loss() {
    let mut snap = snapshot();
    snap.content.instances[0].quotas.max_messages_per_second = 100;
    let b = BrokerProc::start(&Snapshot::new(1, snap.content));
    let (sub, mut sev, _) = v3::connect(b.sig_opts("GID_test@@@slow")).await.unwrap();
    sub.subscribe("T/rate", QoS::AtLeastOnce).await.unwrap();
    v3::suback(&mut sev).await;
    let (p, pev, _) = v3::connect(b.sig_opts("GID_test@@@fast")).await.unwrap();
    let _d = v3::drive(pev);
    let started = Instant::now();
    // 200 in + 200 out = 400 messages at 100/s with a one-second burst: about 3 s.
    for i in 0..200 {
        p.publish("T/rate", QoS::AtLeastOnce, false, format!("{i}"))
            .await
            .unwrap();
    }
    let got = v3::collect(&mut sev, 200, 30).await;
    let elapsed = started.elapsed();
    assert_eq!(got.len(), 200);
    assert!(elapsed >= Duration::from_millis(2000), "not throttled: {elapsed:?}");
    assert!(
        b.metrics()
            .lines()
            .any(|l| l.starts_with("broker_throttled_total") && !l.ends_with(" 0"))
    );
}
