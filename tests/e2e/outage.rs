//! The control plane going away: brokers keep serving from their last-known-good configuration, also
//! across a broker restart (the cached snapshot and the deltas logged after it), and what was revoked
//! or registered before the outage stays so.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use rumqttc::QoS;
use serde_json::json;
use test_support::mqtt;

use e2e::System;

#[tokio::test]
async fn clients_keep_publishing_while_the_control_plane_is_down() {
    let mut s = System::up(1).await;
    let port = s.broker().mqtt_port;
    let (sub, mut sub_ev, _) = mqtt::connect(s.fx.signature_opts(&s.fx.client_id("sub"), port))
        .await
        .unwrap();
    sub.subscribe("T/outage", QoS::AtLeastOnce).await.unwrap();
    mqtt::suback(&mut sub_ev).await;
    let (publisher, pub_ev, _) = mqtt::connect(s.fx.signature_opts(&s.fx.client_id("pub"), port))
        .await
        .unwrap();
    mqtt::drive(pub_ev);

    s.cp.kill();
    for i in 0..50u32 {
        publisher
            .publish("T/outage", QoS::AtLeastOnce, false, i.to_be_bytes().to_vec())
            .await
            .unwrap();
    }
    let got = mqtt::collect(&mut sub_ev, 50, 10).await;
    let seqs: Vec<u32> = got
        .iter()
        .map(|p| u32::from_be_bytes(p.payload[..4].try_into().unwrap()))
        .collect();
    assert_eq!(seqs, (0..50).collect::<Vec<_>>());
    // New clients still authenticate: the check is local to the broker.
    mqtt::connect(s.fx.signature_opts(&s.fx.client_id("late"), port))
        .await
        .expect("connect during the outage");

    // When the control plane returns, the broker catches up with changes made meanwhile.
    s.cp.restart().await;
    s.api
        .post(
            &format!("/instances/{}/groups", s.fx.instance),
            json!({"groupId": "GID_after"}),
        )
        .await;
    s.api.wait_in_sync(&["node-1"]).await;
    mqtt::connect(s.fx.signature_opts("GID_after@@@d", port))
        .await
        .expect("group created after the outage");
}

#[tokio::test]
async fn a_restarted_broker_serves_from_its_cache_and_keeps_revocations() {
    let mut s = System::up(1).await;
    let fx = &s.fx;
    let token = fx.token(&s.api, "T/#", "R,W").await;
    let kept = fx.token(&s.api, "T/#", "R,W").await;
    s.api
        .post(
            &format!("/instances/{}/tokens/revoke", fx.instance),
            json!({"token": token}),
        )
        .await;
    let device = fx.register_device(&s.api, "registered").await;
    s.api.wait_in_sync(&["node-1"]).await;

    let lkg = s.broker().last_known_good();
    assert!(
        lkg.with_file_name("last-known-good.json.deltas").exists(),
        "the revocation and the registration came as deltas, logged next to the snapshot"
    );
    let mode = std::fs::metadata(&lkg)
        .expect("last-known-good file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "last-known-good file mode");

    s.cp.kill();
    s.brokers[0].restart();
    let port = s.broker().mqtt_port;
    let user = format!("Token|{}|{}", fx.access_key, fx.instance);
    let sig = fx.signature_opts(&fx.client_id("cached"), port);
    let mut ok = None;
    for _ in 0..100 {
        if let Ok(c) = mqtt::connect(sig.clone()).await {
            ok = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok.is_some(), "the restarted broker did not serve its cached instances");

    let mut revoked = rumqttc::MqttOptions::new(fx.client_id("revoked"), "127.0.0.1", port);
    revoked.set_credentials(user.clone(), format!("RW|{token}"));
    assert!(
        mqtt::refusal(revoked).await.is_some(),
        "a revoked token connected after the restart"
    );
    let mut valid = rumqttc::MqttOptions::new(fx.client_id("valid"), "127.0.0.1", port);
    valid.set_credentials(user, format!("RW|{kept}"));
    assert!(
        mqtt::refusal(valid).await.is_none(),
        "a valid token was refused after the restart"
    );
    let device_cid = device["clientId"].as_str().unwrap();
    let mut registered = rumqttc::MqttOptions::new(device_cid, "127.0.0.1", port);
    registered.set_credentials(
        format!(
            "DeviceCredential|{}|{}",
            device["deviceAccessKeyId"].as_str().unwrap(),
            fx.instance
        ),
        common::signing::mqtt_password(device["deviceAccessKeySecret"].as_str().unwrap(), device_cid),
    );
    assert!(
        mqtt::refusal(registered).await.is_none(),
        "a credential registered before the restart was refused after it"
    );
}
