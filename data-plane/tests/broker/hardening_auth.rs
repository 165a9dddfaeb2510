//! Authorization beyond CONNECT (docs/spec.md 3.3), in every authentication mode: token subscriptions
//! must be subsets of a granted resource, a resumed session keeps only what the new credentials
//! cover, wills are checked when they fire, and a refreshed or removed secret ends the connections
//! made with the old one.

use std::time::{Duration, Instant};

use common::signing::mqtt_password;
use common::snapshot::{AccessKeyGrant, RevokedToken};
use common::token::TokenAction;
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::v5::mqttbytes::v5::{DisconnectReasonCode, Filter, SubscribeReasonCode as S5};
use rumqttc::{LastWill, QoS, SubscribeReasonCode};

use crate::support::*;
use crate::support::{v3, v5};

fn far() -> i64 {
    now_ms() + 3_600_000
}

fn tok_user() -> String {
    format!("Token|{AK}|{INST}")
}

fn dc_user() -> String {
    format!("DeviceCredential|{DC_ID}|{INST}")
}

const DC_CLIENT: &str = "GID_test@@@dev1";

/// Polls until the broker closes the connection; the publishes that came first.
async fn publishes_until_closed(ev: &mut rumqttc::EventLoop) -> Vec<rumqttc::Publish> {
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ev.poll())
            .await
            .expect("the broker closes the connection")
        {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => got.push(p),
            Ok(_) => {}
            Err(_) => return got,
        }
    }
}

#[tokio::test]
async fn a_token_subscription_must_be_a_subset_of_a_granted_resource() {
    let b = BrokerProc::start(&snapshot());
    let cid = "GID_test@@@subset";
    let pass = format!("R|{}", token(INST, TokenAction::R, &["T/+"], far(), "plus"));

    // Within `T/+`: a topic, the resource itself, and both shared.
    let (c, mut ev, _) = v3::connect(b.v3_opts(cid, &tok_user(), &pass)).await.unwrap();
    for f in ["T/a", "T/+", "$share/g/T/a", "$share/g/T/+"] {
        c.subscribe(f, QoS::AtLeastOnce).await.unwrap();
        assert_eq!(
            v3::suback(&mut ev).await,
            [SubscribeReasonCode::Success(QoS::AtLeastOnce)],
            "{f}"
        );
    }
    // Wider than `T/+`, plain or shared: MQTT 3.1.1 is told why (code 4) and disconnected.
    for f in ["T/#", "T/+/x", "T/a/b", "$share/g/T/#"] {
        let (c, mut ev, _) = v3::connect(b.v3_opts(cid, &tok_user(), &pass)).await.unwrap();
        c.subscribe(f, QoS::AtLeastOnce).await.unwrap();
        let got = publishes_until_closed(&mut ev).await;
        let notice: serde_json::Value = serde_json::from_slice(&got[0].payload).unwrap();
        assert_eq!(
            (got[0].topic.as_str(), notice["code"].as_i64()),
            ("$SYS/tokenInvalidNotice", Some(4)),
            "{f}"
        );
    }
    // MQTT 5: SUBACK 0x87 for each filter that is wider, the others granted, the connection stays.
    let cid5 = "GID_test@@@subset5";
    let o = b.v5_opts(cid5, &tok_user(), &pass);
    let (c, mut ev, _) = v5::connect(o).await;
    let filters = ["T/a", "T/#", "$share/g/T/#", "$share/g/T/b", "T/+/x"];
    c.subscribe_many(filters.iter().map(|f| Filter::new(*f, Q5::AtLeastOnce)))
        .await
        .unwrap();
    let codes = v5::suback(&mut ev).await;
    let ok = S5::Success(Q5::AtLeastOnce);
    assert_eq!(codes, [ok, S5::NotAuthorized, S5::NotAuthorized, ok, S5::NotAuthorized]);
    c.subscribe("T/c", Q5::AtLeastOnce).await.unwrap();
    assert_eq!(v5::suback(&mut ev).await, [ok], "still connected");

    // Signature and DeviceCredential clients hold the whole instance: any filter under its parents.
    let dc_pass = mqtt_password(DC_SECRET, DC_CLIENT);
    for opts in [
        b.sig_opts("GID_test@@@whole"),
        b.v3_opts(DC_CLIENT, &dc_user(), &dc_pass),
    ] {
        let (c, mut ev, _) = v3::connect(opts).await.unwrap();
        c.subscribe("$share/g/T/#", QoS::AtLeastOnce).await.unwrap();
        assert_eq!(
            v3::suback(&mut ev).await,
            [SubscribeReasonCode::Success(QoS::AtLeastOnce)]
        );
    }
}

/// Publishes QoS 1 messages (topic, payload) and waits for their PUBACKs.
async fn publish_all(b: &BrokerProc, messages: &[(&str, &str)]) {
    let messages: Vec<(&str, &[u8], bool)> = messages.iter().map(|(t, p)| (*t, p.as_bytes(), false)).collect();
    v3::publish_acked(b, &messages).await;
}

/// A Token client that connects with another client's ID resumes that session, but only with what
/// its own tokens cover: subscriptions, queued messages and P2P messages outside them are not its.
#[tokio::test]
async fn a_resumed_session_keeps_only_what_the_new_tokens_cover() {
    let b = BrokerProc::start(&snapshot());
    let victim = "GID_test@@@victim";
    let p2p = format!("T/p2p/{victim}");
    // The session's owner (Signature: the whole instance) subscribes widely and goes away.
    {
        let (c, mut ev, _) = v3::connect(persistent(b.sig_opts(victim))).await.unwrap();
        c.subscribe("T/#", QoS::AtLeastOnce).await.unwrap();
        v3::suback(&mut ev).await;
        c.subscribe("T/a/#", QoS::AtLeastOnce).await.unwrap();
        v3::suback(&mut ev).await;
        c.disconnect().await.unwrap();
        let _ = v3::drain(&mut ev, 0.2).await;
    }
    // Each batch ends with a message the new tokens cover: what they do not cover would come before it.
    publish_all(
        &b,
        &[("T/a/1", "a1"), ("T/b/1", "b1"), (&p2p, "p2p1"), ("T/a/end", "end1")],
    )
    .await;

    // Another client with the same ID and a read token for `T/a/#` only.
    let narrow = format!("R|{}", token(INST, TokenAction::R, &["T/a/#"], far(), "narrow"));
    let (_c, mut ev, present) = v3::connect(persistent(b.v3_opts(victim, &tok_user(), &narrow)))
        .await
        .unwrap();
    assert!(present, "the session is resumed");
    let got = v3::collect(&mut ev, 2, 5).await;
    assert_eq!(
        payloads(&got),
        ["a1", "end1"],
        "only the queued messages its token covers"
    );
    // Live: `T/#` did not survive the resume, `T/a/#` did; P2P needs an R token for the P2P topic.
    publish_all(
        &b,
        &[("T/b/2", "b2"), ("T/a/2", "a2"), (&p2p, "p2p2"), ("T/a/end", "end2")],
    )
    .await;
    assert_eq!(payloads(&v3::collect(&mut ev, 2, 5).await), ["a2", "end2"]);
    drop(ev);
    assert!(b.counter("broker_refusals_total", &[("reason", "not_authorized_on_resume")]) >= 1.0);
    assert!(b.counter("broker_refusals_total", &[("packet", "deliver")]) >= 3.0);
    // What it could not read was not kept for it either.
    b.wait_store_empty(10);

    // A read token for its own P2P topic lets P2P messages through, queued and live.
    publish_all(&b, &[(&p2p, "p2p3")]).await;
    let with_p2p = format!("R|{}", token(INST, TokenAction::R, &["T/a/#", &p2p], far(), "with-p2p"));
    let (_c, mut ev, _) = v3::connect(persistent(b.v3_opts(victim, &tok_user(), &with_p2p)))
        .await
        .unwrap();
    assert_eq!(payloads(&v3::collect(&mut ev, 1, 5).await), ["p2p3"]);
    publish_all(&b, &[(&p2p, "p2p4")]).await;
    assert_eq!(payloads(&v3::collect(&mut ev, 1, 5).await), ["p2p4"]);
}

/// A Signature or DeviceCredential session resumed after a parent topic was removed does not keep
/// its subscriptions under that parent (they are gone even when the parent comes back).
#[tokio::test]
async fn a_resumed_session_loses_subscriptions_under_a_removed_parent_topic() {
    let b = BrokerProc::start(&snapshot());
    let dc_pass = mqtt_password(DC_SECRET, DC_CLIENT);
    let clients = [
        ("GID_test@@@sigresume", b.sig_opts("GID_test@@@sigresume")),
        (DC_CLIENT, b.v3_opts(DC_CLIENT, &dc_user(), &dc_pass)),
    ];
    for (_, opts) in &clients {
        let (c, mut ev, _) = v3::connect(persistent(opts.clone())).await.unwrap();
        for f in ["U/#", "T/#"] {
            c.subscribe(f, QoS::AtLeastOnce).await.unwrap();
            v3::suback(&mut ev).await;
        }
        c.disconnect().await.unwrap();
        let _ = v3::drain(&mut ev, 0.2).await;
    }
    let mut without_u = snapshot();
    without_u.content.instances[0].parent_topics.retain(|p| p != "U");
    b.reload(&Snapshot::new(2, without_u.content)).await;
    let mut resumed = Vec::new();
    for (cid, opts) in &clients {
        let (_c, ev, present) = v3::connect(persistent(opts.clone())).await.unwrap();
        assert!(present, "{cid}");
        resumed.push(ev);
    }
    b.reload(&Snapshot::new(3, snapshot().content)).await;
    publish_all(&b, &[("U/x", "u"), ("T/x", "t")]).await;
    for ev in &mut resumed {
        // In order: a message on `U/x` would come first.
        assert_eq!(payloads(&v3::collect(ev, 1, 5).await), ["t"]);
    }
}

/// `$SYS/uploadToken` with a token that covers less ends the subscriptions and P2P deliveries it
/// no longer covers.
#[tokio::test]
async fn an_uploaded_narrower_token_ends_what_it_does_not_cover() {
    let b = BrokerProc::start(&snapshot());
    let cid = "GID_test@@@uploader";
    let p2p = format!("T/p2p/{cid}");
    let wide = token(INST, TokenAction::R, &["T/#"], far(), "wide");
    let write = token(INST, TokenAction::W, &["T/#"], far(), "write");
    let (c, mut ev, _) = v3::connect(b.v3_opts(cid, &tok_user(), &format!("R|{wide}|W|{write}")))
        .await
        .unwrap();
    for f in ["T/#", "T/a/#"] {
        c.subscribe(f, QoS::AtLeastOnce).await.unwrap();
        v3::suback(&mut ev).await;
    }
    publish_all(&b, &[("T/b/1", "b1"), (&p2p, "p2p1")]).await;
    assert_eq!(v3::collect(&mut ev, 2, 5).await.len(), 2);

    let narrow = token(INST, TokenAction::R, &["T/a/#"], far(), "narrow-upload");
    let body = serde_json::json!({"token": narrow, "type": "R"}).to_string();
    c.publish("$SYS/uploadToken", QoS::AtLeastOnce, false, body)
        .await
        .unwrap();
    while !matches!(
        ev.poll().await.unwrap(),
        rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))
    ) {}
    // In order: what is still delivered of the first two would come before the third.
    publish_all(&b, &[("T/b/2", "b2"), (&p2p, "p2p2"), ("T/a/2", "a2")]).await;
    assert_eq!(payloads(&v3::collect(&mut ev, 1, 5).await), ["a2"]);
    assert!(b.counter("broker_refusals_total", &[("reason", "not_covered_after_upload")]) >= 1.0);
}

/// Connects an MQTT 5 client with a will delayed by `delay` s and a one-minute session, then drops
/// the TCP connection without DISCONNECT.
async fn leave_with_will(mut o: v5::MqttOptions, delay: u32) {
    let id = o.client_id();
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(60));
    o.set_last_will(v5::will(&format!("T/will/{id}"), &id, delay));
    let (c, ev, _) = v5::connect(o).await;
    drop((c, ev));
}

/// A watcher of `T/will/#` (Signature, key AK).
async fn will_watcher(b: &BrokerProc) -> rumqttc::EventLoop {
    let (c, mut ev, _) = v3::connect(b.sig_opts("GID_test@@@watcher")).await.unwrap();
    c.subscribe("T/will/#", QoS::AtLeastOnce).await.unwrap();
    v3::suback(&mut ev).await;
    ev
}

fn with_second_key(mut snap: Snapshot, enabled: bool) -> Snapshot {
    snap.content.instances[0].access_keys.push(AccessKeyGrant {
        access_key_id: "AK2".into(),
        access_key_secret: "secret2".into(),
        enabled,
    });
    snap
}

/// A will is published only if the credentials that left it still hold when it fires: a disabled
/// AccessKey, a revoked or expired token and an unregistered device credential all stop it, for a
/// delayed will and for one that fires as the broker ends the connection.
#[tokio::test]
async fn wills_need_credentials_that_still_hold_when_they_fire() {
    let b = BrokerProc::start(&Snapshot::new(1, with_second_key(snapshot(), true).content));
    let mut watcher = will_watcher(&b).await;
    let ak2 = |cid: &str| b.v5_opts(cid, &format!("Signature|AK2|{INST}"), &mqtt_password("secret2", cid));
    let tok = |cid: &str, jti: &str, exp: i64| {
        let t = token(INST, TokenAction::RW, &["T/#"], exp, jti);
        b.v5_opts(cid, &tok_user(), &format!("RW|{t}"))
    };
    leave_with_will(ak2("GID_test@@@key-disabled"), 2).await;
    leave_with_will(tok("GID_test@@@tok-revoked", "will-revoked", far()), 2).await;
    leave_with_will(tok("GID_test@@@tok-expired", "will-expired", now_ms() + 1500), 2).await;
    leave_with_will(
        b.v5_opts(DC_CLIENT, &dc_user(), &mqtt_password(DC_SECRET, DC_CLIENT)),
        2,
    )
    .await;
    // An MQTT 3.1.1 will fires at once when the broker ends the connection of a disabled key.
    let live = "GID_test@@@v3-live";
    let mut o = b.v3_opts(live, &format!("Signature|AK2|{INST}"), &mqtt_password("secret2", live));
    o.set_last_will(LastWill::new(format!("T/will/{live}"), live, QoS::AtLeastOnce, false));
    let (_c, mut live_ev, _) = v3::connect(o).await.unwrap();
    // The control: a will whose credentials hold is published after its delay.
    leave_with_will(
        b.v5_opts("GID_test@@@kept", &sig_user(INST), &sig_pass("GID_test@@@kept")),
        2,
    )
    .await;

    let mut changed = with_second_key(snapshot(), false);
    let inst = &mut changed.content.instances[0];
    inst.device_credentials.clear();
    inst.revoked_tokens.push(RevokedToken {
        jti: "will-revoked".into(),
        exp_ms: far(),
    });
    b.reload(&Snapshot::new(2, changed.content)).await;
    v3::expect_closed(&mut live_ev, 5).await;

    // The control's will is due last: a refused one published by mistake would come before it.
    let got = v3::collect(&mut watcher, 1, 10).await;
    assert_eq!(payloads(&got), ["GID_test@@@kept"]);
    assert_eq!(b.counter("broker_wills_total", &[("outcome", "refused")]), 5.0);
    for reason in ["credentials_withdrawn", "token_revoked", "token_expired"] {
        assert!(
            b.counter("broker_refusals_total", &[("packet", "will"), ("reason", reason)]) >= 1.0,
            "{reason}\n{}",
            b.metrics()
        );
    }
}

/// A will is a PUBLISH like any other: over the instance's message size it is dropped, and a storm
/// of wills is held to the instance's messages per second (in and out together).
#[tokio::test]
async fn wills_obey_the_message_size_limit_and_the_rate() {
    let mut snap = snapshot();
    snap.content.instances[0].quotas.max_messages_per_second = 10;
    // A will's payload is an MQTT binary (at most 65,535 bytes): a smaller limit to exceed.
    snap.content.instances[0].quotas.max_message_size = 1000;
    let b = BrokerProc::start(&Snapshot::new(1, snap.content));
    let mut watcher = will_watcher(&b).await;

    let big = "GID_test@@@bigwill";
    let mut o = b.sig_opts(big);
    o.set_last_will(LastWill::new("T/will/big", vec![0u8; 1001], QoS::AtLeastOnce, false));
    let (_c, ev, _) = v3::connect(o).await.unwrap();
    drop(ev);
    wait_until(5, "the refused will", || {
        b.counter("broker_refusals_total", &[("packet", "will"), ("reason", "too_large")]) == 1.0
    })
    .await;

    // 20 wills at once, each delivered to the watcher: 40 messages at 10 per second.
    let mut clients = Vec::new();
    for i in 0..20 {
        let cid = format!("GID_test@@@storm{i}");
        let mut o = b.sig_opts(&cid);
        o.set_last_will(LastWill::new(format!("T/will/{i}"), "gone", QoS::AtLeastOnce, false));
        clients.push(v3::connect(o).await.unwrap());
    }
    let (p, pev, _) = v3::connect(b.sig_opts("GID_test@@@after")).await.unwrap();
    let _d = v3::drive(pev);
    let started = Instant::now();
    drop(clients);
    let got = v3::collect(&mut watcher, 20, 30).await;
    let storm = started.elapsed();
    assert!(got.iter().all(|p| p.topic != "T/will/big"));
    // Ten fit the one-second burst; the others wait their turn.
    assert!(storm >= Duration::from_millis(900), "wills not throttled: {storm:?}");
    // Their deliveries count too: the next message waits for them (41 in and out, 10 of them burst).
    p.publish("T/will/after", QoS::AtLeastOnce, false, "after")
        .await
        .unwrap();
    assert_eq!(payloads(&v3::collect(&mut watcher, 1, 30).await), ["after"]);
    let all = started.elapsed();
    assert!(
        all >= Duration::from_millis(2900),
        "will deliveries not counted: {storm:?} then {all:?}"
    );
    assert!(b.counter("broker_throttled_total", &[]) > 0.0);
}

/// A delayed will is cancelled, and never published later, when the client's session is resumed
/// within the delay: by a new connection after the old one dropped, or by one that takes over the
/// live connection.
#[tokio::test]
async fn a_resumed_session_cancels_the_delayed_will() {
    let b = BrokerProc::start(&snapshot());
    let mut watcher = will_watcher(&b).await;
    let opts = |cid: &str| {
        let mut o = b.v5_opts(cid, &sig_user(INST), &sig_pass(cid));
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(60));
        o
    };
    // Each new connection below has no will of its own and stays connected.
    let mut back_again = Vec::new();
    let mut stay = |c: v5::AsyncClient, mut ev: v5::EventLoop| {
        back_again.push((c, tokio::spawn(async move { while ev.poll().await.is_ok() {} })));
    };
    // Dropped, then back within the delay.
    let back = "GID_test@@@back";
    leave_with_will(opts(back), 2).await;
    let (c, ev, present) = v5::connect(opts(back)).await;
    assert!(present);
    stay(c, ev);
    // Taken over while connected: the old connection's delayed will goes with it.
    let taken = "GID_test@@@taken";
    let mut o = opts(taken);
    o.set_last_will(v5::will(&format!("T/will/{taken}"), taken, 2));
    let (_old, mut old_ev, _) = v5::connect(o).await;
    let (c, ev, present) = v5::connect(opts(taken)).await;
    assert!(present);
    stay(c, ev);
    assert_eq!(
        v5::disconnected(&mut old_ev, 5.0).await,
        DisconnectReasonCode::SessionTakenOver
    );
    // Dropped and back at once, many times (the old connection may not be gone yet).
    let racer = "GID_test@@@racer";
    for _ in 0..10 {
        let mut o = opts(racer);
        o.set_last_will(v5::will(&format!("T/will/{racer}"), racer, 2));
        let (c, ev, _) = v5::connect(o).await;
        drop((c, ev));
    }
    let (c, ev, _) = v5::connect(opts(racer)).await;
    stay(c, ev);

    // A control that does not come back: its will is due after all the others.
    let control = "GID_test@@@control";
    leave_with_will(opts(control), 2).await;
    assert_eq!(payloads(&v3::collect(&mut watcher, 1, 10).await), [control]);
    assert!(v3::drain(&mut watcher, 0.3).await.is_empty());
    assert!(b.counter("broker_wills_total", &[("outcome", "cancelled")]) >= 2.0);
    for (_, task) in back_again {
        assert!(!task.is_finished(), "a connection that came back was closed");
    }
}

/// A device credential refreshed with a new secret, or unregistered, ends the connections made with
/// the old secret (MQTT 5: DISCONNECT 0x98); so does a changed AccessKey secret. The new secret works.
#[tokio::test]
async fn a_refreshed_or_removed_secret_ends_connections_made_with_the_old_one() {
    let b = BrokerProc::start(&snapshot());
    let dc = |secret: &str| b.v5_opts(DC_CLIENT, &dc_user(), &mqtt_password(secret, DC_CLIENT));
    let (_c, mut dc_ev, _) = v5::connect(dc(DC_SECRET)).await;
    let sig = "GID_test@@@rotated";
    let (_s, mut sig_ev, _) = v3::connect(b.sig_opts(sig)).await.unwrap();

    let mut refreshed = snapshot();
    refreshed.content.instances[0].device_credentials[0].device_access_key_secret = "dcsecret-new".into();
    refreshed.content.instances[0].access_keys[0].access_key_secret = "secret-new".into();
    b.reload(&Snapshot::new(2, refreshed.content.clone())).await;
    assert_eq!(
        v5::disconnected(&mut dc_ev, 5.0).await,
        DisconnectReasonCode::AdministrativeAction
    );
    v3::expect_closed(&mut sig_ev, 5).await;
    assert!(v5::refusal(dc(DC_SECRET)).await.is_some(), "the old secret is refused");
    let new_sig = b.v3_opts(sig, &sig_user(INST), &mqtt_password("secret-new", sig));
    let (_s, sig_ev, _) = v3::connect(new_sig).await.unwrap();
    let _d = v3::drive(sig_ev);

    // Unregistered: the connection made with the new secret ends too.
    let (_c, mut dc_ev, _) = v5::connect(dc("dcsecret-new")).await;
    refreshed.content.instances[0].device_credentials.clear();
    b.reload(&Snapshot::new(3, refreshed.content)).await;
    assert_eq!(
        v5::disconnected(&mut dc_ev, 5.0).await,
        DisconnectReasonCode::AdministrativeAction
    );
    assert!(v5::refusal(dc("dcsecret-new")).await.is_some());
    assert!(
        b.counter(
            "broker_refusals_total",
            &[("packet", "session"), ("reason", "credentials_withdrawn")]
        ) >= 3.0
    );
}
