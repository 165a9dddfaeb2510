//! Rules with a real `nats-server` (JetStream on): outflow to a core subject and to a JetStream
//! subject (acknowledged by the stream), and inflow from a subject and from a stream published
//! into the instance once, whichever broker takes each message.

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream;
use common::rules::{InflowSource, NatsEndpoint, RuleSource, RuleTarget};
use futures_util::StreamExt;

use crate::rules::{b64, rule, start, with_rules};
use crate::support::{GROUP, v3};
use test_support::nats::NatsCluster;

fn endpoint(nats: &NatsCluster) -> NatsEndpoint {
    NatsEndpoint {
        urls: vec![nats.nodes[0].url()],
        ..Default::default()
    }
}

#[tokio::test]
async fn outflow_reaches_a_nats_subject_and_a_jetstream_stream() {
    let nats = NatsCluster::start(1);
    let client = async_nats::connect(nats.nodes[0].url()).await.unwrap();
    let js = jetstream::new(client.clone());
    let mut stream = js
        .create_stream(jetstream::stream::Config {
            name: "RULES".into(),
            subjects: vec!["rules.js.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut core_sub = client.subscribe("rules.core").await.unwrap();
    client.flush().await.unwrap();

    let core = rule(
        1,
        RuleSource::Outflow {
            topic_filters: vec!["T/n/#".into()],
            group_ids: vec![],
        },
        RuleTarget::Nats {
            nats: endpoint(&nats),
            subject: "rules.core".into(),
            jetstream: false,
        },
    );
    let durable = rule(
        2,
        RuleSource::Outflow {
            topic_filters: vec!["T/n/#".into()],
            group_ids: vec![GROUP.into()],
        },
        RuleTarget::Nats {
            nats: endpoint(&nats),
            subject: "rules.js.out".into(),
            jetstream: true,
        },
    );
    let b = start(&with_rules(vec![core.clone(), durable.clone()], true));
    let publisher = format!("{GROUP}@@@n");
    let (p, mut ev, _) = v3::connect(b.sig_opts(&publisher)).await.unwrap();
    for (qos, body) in [
        (rumqttc::QoS::AtMostOnce, "zero"),
        (rumqttc::QoS::AtLeastOnce, "one"),
        (rumqttc::QoS::ExactlyOnce, "two"),
    ] {
        p.publish("T/n/x", qos, false, body).await.unwrap();
    }
    let _ = v3::drain(&mut ev, 0.3).await;

    let mut got = Vec::new();
    for _ in 0..3 {
        let m = tokio::time::timeout(Duration::from_secs(10), core_sub.next())
            .await
            .expect("a core NATS message in time")
            .unwrap();
        assert_eq!(
            m.headers
                .as_ref()
                .and_then(|h| h.get("x-mq-rule-id"))
                .map(|v| v.as_str()),
            Some(core.id.as_str())
        );
        got.push(serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap());
    }
    assert_eq!(
        got.iter().map(|e| e["payload"].as_str().unwrap()).collect::<Vec<_>>(),
        vec![b64("zero"), b64("one"), b64("two")]
    );
    assert_eq!(got[2]["qos"], 2);
    assert_eq!(got[2]["clientId"], publisher.as_str());
    assert_eq!(got[2]["topic"], "T/n/x");

    // The stream holds each message once (its acknowledgement is what counts as delivered).
    crate::support::wait_until(10, "JetStream deliveries", || {
        crate::rules::stat_u64(&b, &durable, "delivered") == 3
    })
    .await;
    let (messages, first_seq) = {
        let info = stream.info().await.unwrap();
        (info.state.messages, info.state.first_sequence)
    };
    assert_eq!(messages, 3);
    let first = stream.get_raw_message(first_seq).await.unwrap();
    let env: serde_json::Value = serde_json::from_slice(&first.payload).unwrap();
    assert_eq!(env["payload"], b64("zero"));
    assert_eq!(env["ruleId"], durable.id.as_str());
}

#[tokio::test]
async fn inflow_publishes_each_nats_message_once_across_brokers() {
    let nats = NatsCluster::start(1);
    let client = async_nats::connect(nats.nodes[0].url()).await.unwrap();
    let js = jetstream::new(client.clone());
    js.create_stream(jetstream::stream::Config {
        name: "INFLOW".into(),
        subjects: vec!["jin.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let core = rule(
        1,
        RuleSource::Inflow(InflowSource {
            nats: endpoint(&nats),
            subject: "in.>".into(),
            stream: None,
            topic: "T/in/{subject}".into(),
            qos: 1,
            retain: false,
        }),
        RuleTarget::Republish {
            topic: "T/unused".into(),
            qos: 0,
            retain: false,
        },
    );
    let durable = rule(
        2,
        RuleSource::Inflow(InflowSource {
            nats: endpoint(&nats),
            subject: "jin.>".into(),
            stream: Some("INFLOW".into()),
            topic: "T/js".into(),
            qos: 1,
            retain: false,
        }),
        RuleTarget::Republish {
            topic: "T/unused".into(),
            qos: 0,
            retain: false,
        },
    );
    let snap = with_rules(vec![core.clone(), durable.clone()], true);
    // Two brokers serving the same instance with the same rules: each message must come out of
    // exactly one of them.
    let brokers = [start(&snap), start(&snap)];
    let mut subs = Vec::new();
    for (i, b) in brokers.iter().enumerate() {
        let (c, mut ev, _) = v3::connect(b.sig_opts(&format!("{GROUP}@@@sub{i}"))).await.unwrap();
        c.subscribe("T/#", rumqttc::QoS::AtLeastOnce).await.unwrap();
        v3::suback(&mut ev).await;
        subs.push((c, ev));
    }
    for b in &brokers {
        crate::support::wait_until(15, "inflow rules reading NATS", || {
            let log = b.log();
            log.contains("inflow rule reading a NATS subject") && log.contains("inflow rule reading a JetStream stream")
        })
        .await;
    }
    for i in 0..20 {
        client
            .publish(format!("in.dev{}.temp", i % 2), format!("c{i}").into())
            .await
            .unwrap();
        js.publish(format!("jin.x{i}"), format!("j{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    client.flush().await.unwrap();

    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while got.len() < 40 && tokio::time::Instant::now() < deadline {
        for (_, ev) in subs.iter_mut() {
            got.extend(v3::drain(ev, 0.2).await);
        }
    }
    // And nothing more arrives later.
    for (_, ev) in subs.iter_mut() {
        got.extend(v3::drain(ev, 0.5).await);
    }
    let payloads: Vec<String> = got
        .iter()
        .map(|p| String::from_utf8_lossy(&p.payload).to_string())
        .collect();
    assert_eq!(payloads.len(), 40, "each message once: {payloads:?}");
    let unique: HashSet<&String> = payloads.iter().collect();
    assert_eq!(unique.len(), 40);
    // Each broker reports what it took; together, every message once.
    let delivered: u64 = brokers
        .iter()
        .map(|b| crate::rules::stat_u64(b, &core, "delivered") + crate::rules::stat_u64(b, &durable, "delivered"))
        .sum();
    assert_eq!(delivered, 40);
    for p in &got {
        let body = String::from_utf8_lossy(&p.payload);
        let i: usize = body[1..].parse().unwrap();
        if body.starts_with('c') {
            assert_eq!(p.topic, format!("T/in/in/dev{}/temp", i % 2));
        } else {
            assert_eq!(p.topic, "T/js");
        }
        assert_eq!(p.qos, rumqttc::QoS::AtLeastOnce);
    }
}

#[tokio::test]
async fn a_jetstream_target_down_for_a_while_gets_everything_once_in_order_per_client() {
    let mut nats = NatsCluster::start(1);
    {
        let client = async_nats::connect(nats.nodes[0].url()).await.unwrap();
        jetstream::new(client)
            .create_stream(jetstream::stream::Config {
                name: "DOWN".into(),
                subjects: vec!["down.>".into()],
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let r = rule(
        1,
        RuleSource::Outflow {
            topic_filters: vec!["T/#".into()],
            group_ids: vec![],
        },
        RuleTarget::Nats {
            nats: endpoint(&nats),
            subject: "down.out".into(),
            jetstream: true,
        },
    );
    let b = start(&with_rules(vec![r.clone()], true));
    nats.kill(0);
    let clients = ["GID_test@@@j1", "GID_test@@@j2"];
    crate::rules::publish_from(&b, &clients, "T/down", 15).await;
    crate::support::wait_until(10, "failed attempts", || crate::rules::stat_u64(&b, &r, "failed") > 0).await;
    assert_eq!(crate::rules::stat_u64(&b, &r, "queued"), 30);

    nats.restart(0);
    nats.wait_for_leader(Duration::from_secs(30));
    crate::support::wait_until(30, "every delivery", || crate::rules::stat_u64(&b, &r, "queued") == 0).await;
    let client = async_nats::connect(nats.nodes[0].url()).await.unwrap();
    let mut stream = jetstream::new(client).get_stream("DOWN").await.unwrap();
    let (messages, first) = {
        let info = stream.info().await.unwrap();
        (info.state.messages, info.state.first_sequence)
    };
    assert_eq!(messages, 30, "each message once (retries de-duplicated by Nats-Msg-Id)");
    let mut payloads = Vec::new();
    for seq in first..first + messages {
        let m = stream.get_raw_message(seq).await.unwrap();
        let env: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        let raw = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            env["payload"].as_str().unwrap(),
        )
        .unwrap();
        payloads.push(String::from_utf8(raw).unwrap());
    }
    crate::rules::assert_in_order_per_client(&payloads, &clients, 15);
}
