//! Every change reaches the broker within 1 s (p99, measured and printed): new
//! groups, parent topics, AccessKey bindings and device credentials become usable; revoked tokens,
//! disabled AccessKeys, deleted groups and unregistered device credentials are refused and their live
//! clients disconnected (token clients are told first, with code 3).

use std::time::{Duration, Instant};

use reqwest::Method;
use rumqttc::{MqttOptions, QoS};
use serde_json::json;
use test_support::mqtt;

use e2e::System;

use crate::probe::{report, until_accepted, until_closed};

const SAMPLES: usize = 10;

fn opts(client_id: &str, port: u16, user: &str, pass: &str) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    o.set_credentials(user, pass);
    o.set_keep_alive(Duration::from_secs(30));
    o
}

#[tokio::test]
async fn additions_become_usable_within_a_second() {
    let s = System::up(1).await;
    let (fx, api, port) = (&s.fx, &s.api, s.broker().mqtt_port);
    let inst = &fx.instance;

    let mut samples = Vec::new();
    for i in 0..SAMPLES {
        let group = format!("GID_new{i}");
        api.post(&format!("/instances/{inst}/groups"), json!({"groupId": group}))
            .await;
        let since = Instant::now();
        let cid = format!("{group}@@@d");
        samples.push(until_accepted(since, || fx.signature_opts(&cid, port)).await);
    }
    report("new group", &samples);

    let mut samples = Vec::new();
    for i in 0..SAMPLES {
        let topic = format!("P{i}");
        api.post(&format!("/instances/{inst}/topics"), json!({"topic": topic}))
            .await;
        let since = Instant::now();
        let cid = fx.client_id(&format!("pt{i}"));
        loop {
            let (client, mut ev, _) = mqtt::connect(fx.signature_opts(&cid, port)).await.expect("connect");
            client.subscribe(format!("{topic}/x"), QoS::AtLeastOnce).await.unwrap();
            // v3: an unknown parent topic closes the connection (compat); a known one gets its SUBACK.
            let granted = tokio::time::timeout(Duration::from_secs(5), mqtt::suback_or_close(&mut ev)).await;
            if let Ok(Some(codes)) = granted {
                assert!(
                    matches!(codes[0], rumqttc::SubscribeReasonCode::Success(_)),
                    "{codes:?}"
                );
                samples.push(since.elapsed());
                break;
            }
            assert!(
                since.elapsed() < Duration::from_secs(10),
                "parent topic {topic} never became usable"
            );
        }
    }
    report("new parent topic", &samples);

    let mut samples = Vec::new();
    for i in 0..SAMPLES {
        let ak = api.post("/access-keys", json!({"instanceIds": []})).await;
        let (id, secret) = (
            ak["accessKeyId"].as_str().unwrap(),
            ak["accessKeySecret"].as_str().unwrap(),
        );
        api.ok(
            Method::PATCH,
            &format!("/access-keys/{id}"),
            Some(json!({"instanceIds": [inst]})),
        )
        .await;
        let since = Instant::now();
        let cid = fx.client_id(&format!("ak{i}"));
        let user = format!("Signature|{id}|{inst}");
        let pass = common::signing::mqtt_password(secret, &cid);
        samples.push(until_accepted(since, || opts(&cid, port, &user, &pass)).await);
    }
    report("AccessKey binding", &samples);

    let mut samples = Vec::new();
    for i in 0..SAMPLES {
        let cid = fx.client_id(&format!("dc{i}"));
        let dc = api
            .post(
                &format!("/instances/{inst}/device-credentials"),
                json!({"clientId": cid}),
            )
            .await;
        let since = Instant::now();
        let user = format!("DeviceCredential|{}|{inst}", dc["deviceAccessKeyId"].as_str().unwrap());
        let pass = common::signing::mqtt_password(dc["deviceAccessKeySecret"].as_str().unwrap(), &cid);
        samples.push(until_accepted(since, || opts(&cid, port, &user, &pass)).await);
    }
    report("device credential", &samples);
}

#[tokio::test]
async fn withdrawals_disconnect_live_clients_within_a_second() {
    let s = System::up(1).await;
    let (fx, api, port) = (&s.fx, &s.api, s.broker().mqtt_port);
    let inst = &fx.instance;

    // Revoked token: notice code 3, then the close; a new connection with it is refused.
    let mut samples = Vec::new();
    for i in 0..SAMPLES {
        let token = fx.token(api, "T/#", "R,W").await;
        let cid = fx.client_id(&format!("tok{i}"));
        let user = format!("Token|{}|{inst}", fx.access_key);
        let pass = format!("RW|{token}");
        let (_client, mut ev, _) = mqtt::connect(opts(&cid, port, &user, &pass))
            .await
            .expect("token connect");
        api.post(&format!("/instances/{inst}/tokens/revoke"), json!({"token": token}))
            .await;
        let (took, notices) = until_closed(Instant::now(), &mut ev).await;
        let notice = notices
            .iter()
            .find(|p| p.topic == "$SYS/tokenInvalidNotice")
            .expect("tokenInvalidNotice");
        let body: serde_json::Value = serde_json::from_slice(&notice.payload).unwrap();
        assert_eq!(body["code"], 3, "{body}");
        assert!(
            mqtt::refusal(opts(&cid, port, &user, &pass)).await.is_some(),
            "revoked token still connects"
        );
        samples.push(took);
    }
    report("token revocation (live disconnect)", &samples);

    let mut samples = Vec::new();
    for i in 0..SAMPLES {
        let ak = api.post("/access-keys", json!({"instanceIds": [inst]})).await;
        let (id, secret) = (
            ak["accessKeyId"].as_str().unwrap(),
            ak["accessKeySecret"].as_str().unwrap(),
        );
        let cid = fx.client_id(&format!("akd{i}"));
        let user = format!("Signature|{id}|{inst}");
        let pass = common::signing::mqtt_password(secret, &cid);
        let since = Instant::now();
        let (_c, mut ev, _) = loop {
            // The new key itself needs to arrive first.
            if let Ok(c) = mqtt::connect(opts(&cid, port, &user, &pass)).await {
                break c;
            }
            assert!(since.elapsed() < Duration::from_secs(10));
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        api.ok(
            Method::PATCH,
            &format!("/access-keys/{id}"),
            Some(json!({"enabled": false})),
        )
        .await;
        let (took, _) = until_closed(Instant::now(), &mut ev).await;
        assert!(
            mqtt::refusal(opts(&cid, port, &user, &pass)).await.is_some(),
            "disabled key still connects"
        );
        samples.push(took);
    }
    report("AccessKey disabled (live disconnect)", &samples);

    let mut samples = Vec::new();
    for i in 0..SAMPLES {
        let group = format!("GID_gone{i}");
        api.post(&format!("/instances/{inst}/groups"), json!({"groupId": group}))
            .await;
        let cid = format!("{group}@@@d");
        until_accepted(Instant::now(), || fx.signature_opts(&cid, port)).await;
        let (_c, mut ev, _) = mqtt::connect(fx.signature_opts(&cid, port)).await.expect("connect");
        api.ok(Method::DELETE, &format!("/instances/{inst}/groups/{group}"), None)
            .await;
        let (took, _) = until_closed(Instant::now(), &mut ev).await;
        assert!(
            mqtt::refusal(fx.signature_opts(&cid, port)).await.is_some(),
            "deleted group still connects"
        );
        samples.push(took);
    }
    report("group deleted (live disconnect)", &samples);

    let mut samples = Vec::new();
    for i in 0..SAMPLES {
        let cid = fx.client_id(&format!("dcu{i}"));
        let dc = api
            .post(
                &format!("/instances/{inst}/device-credentials"),
                json!({"clientId": cid}),
            )
            .await;
        let user = format!("DeviceCredential|{}|{inst}", dc["deviceAccessKeyId"].as_str().unwrap());
        let pass = common::signing::mqtt_password(dc["deviceAccessKeySecret"].as_str().unwrap(), &cid);
        until_accepted(Instant::now(), || opts(&cid, port, &user, &pass)).await;
        let (_c, mut ev, _) = mqtt::connect(opts(&cid, port, &user, &pass)).await.expect("connect");
        api.ok(
            Method::DELETE,
            &format!("/instances/{inst}/device-credentials/{cid}"),
            None,
        )
        .await;
        let (took, _) = until_closed(Instant::now(), &mut ev).await;
        assert!(
            mqtt::refusal(opts(&cid, port, &user, &pass)).await.is_some(),
            "unregistered credential connects"
        );
        samples.push(took);
    }
    report("device credential unregistered (live disconnect)", &samples);
}
