//! CONNECT authentication (docs/spec.md 3.2) with real v3.1.1 and v5 clients: every mode and every refusal.

use crate::support::v3;
use crate::support::*;
use common::signing::mqtt_password;
use common::token::TokenAction;
use rumqttc::ConnectReturnCode;

#[tokio::test]
async fn modes_and_refusals_v3() {
    let b = BrokerProc::start(&snapshot());
    let cid = "GID_test@@@d1";
    let far = now_ms() + 3_600_000;

    // Accepted: Signature, DeviceCredential, Token (RW and two pairs).
    assert_eq!(v3::refusal(b.sig_opts(cid)).await, None);
    let dc = format!("{GROUP}@@@dev1");
    let dc_opts = b.v3_opts(
        &dc,
        &format!("DeviceCredential|{DC_ID}|{INST}"),
        &mqtt_password(DC_SECRET, &dc),
    );
    assert_eq!(v3::refusal(dc_opts).await, None);
    let tok_user = format!("Token|{AK}|{INST}");
    let rw = token(INST, TokenAction::RW, &["T/#"], far, "t-rw");
    assert_eq!(v3::refusal(b.v3_opts(cid, &tok_user, &format!("RW|{rw}"))).await, None);
    let r = token(INST, TokenAction::R, &["T/#"], far, "t-r");
    let w = token(INST, TokenAction::W, &["T/#"], far, "t-w");
    assert_eq!(
        v3::refusal(b.v3_opts(cid, &tok_user, &format!("R|{r}|W|{w}"))).await,
        None
    );

    let na = Some(ConnectReturnCode::NotAuthorized);
    // Wrong signature, unknown instance, unknown group, malformed client id.
    assert_eq!(
        v3::refusal(b.v3_opts(cid, &sig_user(INST), &sig_pass("GID_test@@@other"))).await,
        na
    );
    assert_eq!(
        v3::refusal(b.v3_opts(cid, &sig_user("mqtt-nosuchinstanc"), &sig_pass(cid))).await,
        na
    );
    assert_eq!(v3::refusal(b.sig_opts("GID_nosuch@@@d1")).await, na);
    assert_eq!(v3::refusal(b.sig_opts("GID_test-d1")).await, na);
    assert_eq!(v3::refusal(b.sig_opts("nogroup@@@d1")).await, na);
    // Over-long client id: identifier rejected (docs/spec.md 2).
    let long = format!("GID_test@@@{}", "d".repeat(60));
    assert_eq!(
        v3::refusal(b.sig_opts(&long)).await,
        Some(ConnectReturnCode::BadClientId)
    );
    // Unknown key, garbage username, no credentials.
    assert_eq!(
        v3::refusal(b.v3_opts(cid, &format!("Signature|nokey|{INST}"), &sig_pass(cid))).await,
        na
    );
    assert_eq!(v3::refusal(b.v3_opts(cid, "garbage", "x")).await, na);
    // Device credential bound to another client id.
    let other = "GID_test@@@dev2";
    let dc_wrong = b.v3_opts(
        other,
        &format!("DeviceCredential|{DC_ID}|{INST}"),
        &mqtt_password(DC_SECRET, other),
    );
    assert_eq!(v3::refusal(dc_wrong).await, na);

    // Tokens: expired, revoked, foreign instance, forged, type not covered, one bad pair of two.
    let expired = token(INST, TokenAction::RW, &["T/#"], now_ms() - 1000, "t-old");
    assert_eq!(
        v3::refusal(b.v3_opts(cid, &tok_user, &format!("RW|{expired}"))).await,
        na
    );
    let revoked = token(INST, TokenAction::RW, &["T/#"], far, REVOKED_JTI);
    assert_eq!(
        v3::refusal(b.v3_opts(cid, &tok_user, &format!("RW|{revoked}"))).await,
        na
    );
    let foreign = token(OTHER, TokenAction::RW, &["T/#"], far, "t-foreign");
    assert_eq!(
        v3::refusal(b.v3_opts(cid, &tok_user, &format!("RW|{foreign}"))).await,
        na
    );
    assert_eq!(v3::refusal(b.v3_opts(cid, &tok_user, "RW|not.a.token")).await, na);
    assert_eq!(v3::refusal(b.v3_opts(cid, &tok_user, &format!("RW|{r}"))).await, na);
    assert_eq!(
        v3::refusal(b.v3_opts(cid, &tok_user, &format!("R|{r}|W|{expired}"))).await,
        na
    );
    // A Signature secret of one instance never opens another (isolation): key not bound there.
    let mut isolated = snapshot();
    isolated.content.instances[1].access_keys.clear();
    drop(b);
    let b = BrokerProc::start(&Snapshot::new(2, isolated.content));
    assert_eq!(v3::refusal(b.v3_opts(cid, &sig_user(OTHER), &sig_pass(cid))).await, na);
    assert_eq!(v3::refusal(b.sig_opts(cid)).await, None);

    let m = b.metrics();
    assert!(m.contains("broker_auth_failures_total"), "{m}");
}

#[tokio::test]
async fn connection_quota_v3_and_v5() {
    let b = BrokerProc::start(&snapshot());
    let opts = |c: &str| b.v3_opts(c, &sig_user(SMALL), &sig_pass(c));
    let (_c1, e1, _) = v3::connect(opts("GID_test@@@q1")).await.unwrap();
    let (_c2, e2, _) = v3::connect(opts("GID_test@@@q2")).await.unwrap();
    let _d = (v3::drive(e1), v3::drive(e2));
    assert_eq!(
        v3::refusal(opts("GID_test@@@q3")).await,
        Some(ConnectReturnCode::ServiceUnavailable)
    );

    let c = "GID_test@@@q4";
    let (_client, mut ev) = rumqttc::v5::AsyncClient::new(b.v5_opts(c, &sig_user(SMALL), &sig_pass(c)), 10);
    match ev.poll().await {
        Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, rumqttc::v5::mqttbytes::v5::ConnectReturnCode::QuotaExceeded)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn refusals_v5_not_authorized() {
    let b = BrokerProc::start(&snapshot());
    let c = "GID_test@@@v5";
    let (_client, mut ev) = rumqttc::v5::AsyncClient::new(b.v5_opts(c, &sig_user(INST), "wrong"), 10);
    match ev.poll().await {
        Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, rumqttc::v5::mqttbytes::v5::ConnectReturnCode::NotAuthorized)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let (_client, mut ev) = rumqttc::v5::AsyncClient::new(b.v5_opts(c, &sig_user(INST), &sig_pass(c)), 10);
    match ev.poll().await {
        Ok(rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::ConnAck(a))) => {
            assert_eq!(a.code, rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success)
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
}
