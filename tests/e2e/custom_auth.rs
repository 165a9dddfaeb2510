//! Custom authentication with real MQTT clients: identities connect with their own username in both
//! sign modes (client IDs of any form), do only what their permissions grant (a DENY added later
//! holds on a live subscription), and blacklisted client IDs or deleted identities are disconnected
//! within a second (p99 printed and checked, as the other propagation figures).

use std::time::{Duration, Instant};

use reqwest::Method;
use rumqttc::{MqttOptions, QoS, SubscribeReasonCode};
use serde_json::{Value, json};
use test_support::mqtt;

use e2e::System;

use crate::probe::{report, until_accepted, until_closed};

fn opts(client_id: &str, port: u16, user: &str, pass: &str) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    o.set_credentials(user, pass);
    o.set_keep_alive(Duration::from_secs(30));
    o
}

fn identity(username: &str, secret: &str, client_id: Option<&str>, sign_mode: &str) -> Value {
    let mut body = json!({"username": username, "secret": secret, "signMode": sign_mode, "identityType": "USER"});
    if let Some(c) = client_id {
        body["identityType"] = "CLIENT".into();
        body["clientId"] = c.into();
    }
    body
}

fn permission(identity_type: &str, identity: &str, topic: &str, action: &str, effect: &str) -> Value {
    json!({"identityType": identity_type, "identity": identity, "topic": topic, "permitAction": action, "effect": effect})
}

#[tokio::test]
async fn identities_connect_act_within_their_permissions_and_are_withdrawn() {
    let s = System::up(1).await;
    let (fx, api, port) = (&s.fx, &s.api, s.broker().mqtt_port);
    let (inst, parent) = (&fx.instance, &fx.parent);
    let base = format!("/instances/{inst}/custom-auth");

    // Permissions first, so an identity can act as soon as it connects.
    for p in [
        permission("USER", "fleet", &format!("{parent}/fleet/#"), "PUB_SUB", "ALLOW"),
        permission("USER", "fleet", &format!("{parent}/pump/+"), "SUB", "ALLOW"),
        permission("CLIENT", "pump-1", &format!("{parent}/pump/+"), "PUB", "ALLOW"),
    ] {
        api.post(&format!("{base}/permissions"), p).await;
    }
    api.post(&format!("{base}/identities"), identity("fleet", "s1", None, "ORIGIN"))
        .await;
    let since = Instant::now();
    let fleet_opts = |cid: &str| opts(cid, port, "fleet", "s1");
    let took = until_accepted(since, || fleet_opts("sensor-a")).await;
    println!("custom identity usable after {took:?}");
    api.post(
        &format!("{base}/identities"),
        identity("pump", "k1", Some("pump-1"), "SIGNED"),
    )
    .await;
    let signed = common::signing::mqtt_password("k1", "pump-1");
    until_accepted(Instant::now(), || opts("pump-1", port, "pump", &signed)).await;

    // Refusals: wrong secret, ORIGIN password for a SIGNED identity, another client ID for a CLIENT
    // identity, an unknown username.
    for (cid, user, pass) in [
        ("sensor-a", "fleet", "wrong".to_string()),
        ("pump-1", "pump", "k1".to_string()),
        ("pump-2", "pump", common::signing::mqtt_password("k1", "pump-2")),
        ("sensor-a", "nobody", "s1".to_string()),
    ] {
        assert_eq!(
            mqtt::refusal(opts(cid, port, user, &pass)).await,
            Some(rumqttc::ConnectReturnCode::NotAuthorized),
            "{user} as {cid}"
        );
    }

    // The fleet subscriber may read the pump topics but not the whole parent topic.
    let (sub, mut sub_ev, _) = mqtt::connect(fleet_opts("sensor-a")).await.unwrap();
    sub.subscribe(format!("{parent}/pump/+"), QoS::AtLeastOnce)
        .await
        .unwrap();
    assert!(matches!(
        mqtt::suback(&mut sub_ev).await[..],
        [SubscribeReasonCode::Success(_)]
    ));
    let (probe, mut probe_ev, _) = mqtt::connect(fleet_opts("sensor-b")).await.unwrap();
    probe.subscribe(format!("{parent}/#"), QoS::AtLeastOnce).await.unwrap();
    assert_eq!(
        mqtt::suback_or_close(&mut probe_ev).await,
        None,
        "v3: a subscription outside the permissions closes the connection"
    );

    let (pump, mut pump_ev, _) = mqtt::connect(opts("pump-1", port, "pump", &signed)).await.unwrap();
    assert!(mqtt::publish_acked(&pump, &mut pump_ev, &format!("{parent}/pump/up"), "one".into()).await);
    let got = mqtt::collect(&mut sub_ev, 1, 10).await;
    assert_eq!(
        (got[0].topic.as_str(), &got[0].payload[..]),
        (&*format!("{parent}/pump/up"), &b"one"[..])
    );

    // A DENY added while subscribed holds at once for the live subscription.
    api.post(
        &format!("{base}/permissions"),
        permission("USER", "fleet", &format!("{parent}/pump/secret"), "SUB", "DENY"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(mqtt::publish_acked(&pump, &mut pump_ev, &format!("{parent}/pump/secret"), "no".into()).await);
    assert!(mqtt::publish_acked(&pump, &mut pump_ev, &format!("{parent}/pump/up"), "two".into()).await);
    let got = mqtt::collect(&mut sub_ev, 1, 10).await;
    assert_eq!(&got[0].payload[..], b"two", "the denied message was delivered");

    // Publishing outside its permissions closes the pump's connection (v3).
    assert!(!mqtt::publish_acked(&pump, &mut pump_ev, &format!("{parent}/fleet/x"), "x".into()).await);

    // Deleting the identity disconnects its live clients; the blacklist does so in every mode.
    let (_pump, mut pump_ev, _) = mqtt::connect(opts("pump-1", port, "pump", &signed)).await.unwrap();
    api.ok(Method::DELETE, &format!("{base}/identities/pump"), None).await;
    let (took, _) = until_closed(Instant::now(), &mut pump_ev).await;
    let mut samples = vec![took];
    let sig_cid = fx.client_id("listed");
    let (_signature, mut sig_ev, _) = mqtt::connect(fx.signature_opts(&sig_cid, port)).await.unwrap();
    for cid in ["sensor-a", sig_cid.as_str()] {
        api.post(&format!("{base}/connect-blacklist"), json!({"clientId": cid}))
            .await;
    }
    let since = Instant::now();
    samples.push(until_closed(since, &mut sub_ev).await.0);
    samples.push(until_closed(since, &mut sig_ev).await.0);
    report(
        "custom identity deleted / client ID blacklisted (live disconnect)",
        &samples,
    );
    assert_eq!(
        mqtt::refusal(fleet_opts("sensor-a")).await,
        Some(rumqttc::ConnectReturnCode::NotAuthorized)
    );
    assert!(mqtt::refusal(fx.signature_opts(&sig_cid, port)).await.is_some());

    // Off the blacklist, the client ID connects again.
    api.ok(Method::DELETE, &format!("{base}/connect-blacklist/sensor-a"), None)
        .await;
    until_accepted(Instant::now(), || fleet_opts("sensor-a")).await;
}

/// `tests/python/custom_auth`: a backend manages identities with Alibaba's official SDK (both
/// signatures) and devices connect with paho-mqtt in both sign modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_identities_and_paho_devices() {
    let s = System::up(1).await;
    let fx = &s.fx;
    let path = format!("{}/python/custom_auth", env!("CARGO_MANIFEST_DIR"));
    let out = test_support::python::run_pytest(
        path,
        vec![
            ("CP_URL", s.cp.url.clone()),
            ("CP_INSTANCE_ID", fx.instance.clone()),
            ("CP_ACCESS_KEY_ID", fx.access_key.clone()),
            ("CP_ACCESS_KEY_SECRET", fx.secret.clone()),
            ("MQTT_PORT", s.broker().mqtt_port.to_string()),
            ("PARENT_TOPIC", fx.parent.clone()),
        ],
    )
    .await;
    assert!(out.contains("2 passed"), "{out}");
}
