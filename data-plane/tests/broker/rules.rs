//! Rules run by a real broker process against real receivers: an HTTP webhook receiver that
//! verifies signatures (`support::receiver`), `nats-server` with JetStream, and MQTT clients.
//! Retry backoff is set to tens of milliseconds so faults heal quickly.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine;
use common::rules::{OutboxLimits, RuleConfig, RuleSource, RuleTarget, WebhookFormat};
use rumqttc::v5::mqttbytes::v5::PublishProperties;

use crate::support::{BrokerProc, GROUP, INST, Snapshot, snapshot, v3, v5, wait_until};
use test_support::receiver::Receiver;
use test_support::tls_proxy::{TEST_CA, TlsProxy};

pub(crate) const SECRET: &str = "hook-secret";
const FAST_RETRIES: [(&str, &str); 2] = [
    ("BROKER_RULES_RETRY_MIN_MS", "20"),
    ("BROKER_RULES_RETRY_MAX_MS", "200"),
];

pub(crate) fn rule(n: u8, source: RuleSource, target: RuleTarget) -> RuleConfig {
    RuleConfig {
        id: format!("rule-{n:016x}"),
        name: format!("rule {n}"),
        enabled: true,
        source,
        target,
        outbox: OutboxLimits::default(),
    }
}

pub(crate) fn outflow(filters: &[&str]) -> RuleSource {
    RuleSource::Outflow {
        topic_filters: filters.iter().map(|f| f.to_string()).collect(),
        group_ids: vec![],
    }
}

pub(crate) fn webhook(url: &str, format: WebhookFormat) -> RuleTarget {
    RuleTarget::Webhook {
        url: url.into(),
        format,
        secret: Some(SECRET.into()),
        timeout_ms: 2_000,
    }
}

/// The standard fixture with `rules` on the default instance.
pub(crate) fn with_rules(rules: Vec<RuleConfig>, allow_loopback: bool) -> Snapshot {
    let mut content = snapshot().content;
    content.instances[0].rules = rules;
    content.rule_policy.allow_loopback = allow_loopback;
    Snapshot::new(1, content)
}

pub(crate) fn start(snap: &Snapshot) -> BrokerProc {
    BrokerProc::start_with_env(snap, &FAST_RETRIES)
}

/// The broker's `/rules` view: per-rule figures and latest dead letters.
pub(crate) fn rules_view(b: &BrokerProc) -> serde_json::Value {
    let mut s = TcpStream::connect(("127.0.0.1", b.http_port)).unwrap();
    write!(s, "GET /rules HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    serde_json::from_str(body).unwrap()
}

pub(crate) fn stat(b: &BrokerProc, rule: &RuleConfig, field: &str) -> serde_json::Value {
    rules_view(b)["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ruleId"] == rule.id.as_str())
        .map(|r| r[field].clone())
        .unwrap_or(serde_json::Value::Null)
}

pub(crate) fn stat_u64(b: &BrokerProc, rule: &RuleConfig, field: &str) -> u64 {
    stat(b, rule, field).as_u64().unwrap_or(0)
}

pub(crate) fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Publishes `n` QoS 1 messages `"<client>:<i>"` on `topic` from each of `clients` (interleaved),
/// each acknowledged.
pub(crate) async fn publish_from(b: &BrokerProc, clients: &[&str], topic: &str, n: usize) {
    let mut conns = Vec::new();
    for c in clients {
        let (cl, ev, _) = v3::connect(b.sig_opts(c)).await.unwrap();
        conns.push((c.to_string(), cl, ev));
    }
    for i in 0..n {
        for (id, cl, ev) in conns.iter_mut() {
            cl.publish(topic, rumqttc::QoS::AtLeastOnce, false, format!("{id}:{i}"))
                .await
                .unwrap();
            loop {
                if let rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)) = ev.poll().await.unwrap() {
                    break;
                }
            }
        }
    }
    for (_, cl, mut ev) in conns {
        cl.disconnect().await.unwrap();
        let _ = v3::drain(&mut ev, 0.1).await;
    }
}

/// Envelope payloads, decoded, first occurrence of each message only (at least once may repeat).
pub(crate) fn payloads_once(got: &[test_support::receiver::Received]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    got.iter()
        .map(|r| r.json())
        .filter(|e| seen.insert(e["msgId"].as_str().unwrap().to_string()))
        .map(|e| {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(e["payload"].as_str().unwrap())
                .unwrap();
            String::from_utf8(raw).unwrap()
        })
        .collect()
}

/// Every client's messages `0..n`, each once and in order.
pub(crate) fn assert_in_order_per_client(payloads: &[String], clients: &[&str], n: usize) {
    let mut per: HashMap<&str, Vec<usize>> = HashMap::new();
    for p in payloads {
        let (c, i) = p.rsplit_once(':').unwrap();
        let c = clients.iter().find(|x| **x == c).expect("a known client");
        per.entry(c).or_default().push(i.parse().unwrap());
    }
    for c in clients {
        assert_eq!(
            per.get(c).cloned().unwrap_or_default(),
            (0..n).collect::<Vec<_>>(),
            "{c}"
        );
    }
}

#[tokio::test]
async fn outflow_reaches_a_signed_webhook_as_json_and_raw_and_republishes() {
    let hook = Receiver::start(SECRET).await;
    let json_rule = rule(1, outflow(&["T/json/#"]), webhook(&hook.url(), WebhookFormat::Json));
    let raw_rule = rule(2, outflow(&["T/raw/+"]), webhook(&hook.url(), WebhookFormat::Raw));
    let copy_rule = rule(
        3,
        outflow(&["T/json/#"]),
        RuleTarget::Republish {
            topic: "U/copy".into(),
            qos: 1,
            retain: false,
        },
    );
    let b = start(&with_rules(vec![json_rule.clone(), raw_rule.clone(), copy_rule], true));

    let (sub, mut sev, _) = v3::connect(b.sig_opts(&format!("{GROUP}@@@sub"))).await.unwrap();
    sub.subscribe("U/copy", rumqttc::QoS::AtLeastOnce).await.unwrap();
    v3::suback(&mut sev).await;

    let publisher = format!("{GROUP}@@@pub");
    let (p, pev, _) = v5::connect(v5::opts(&b, &publisher, true, 0)).await;
    let _driver = v5::drive(pev);
    let props = PublishProperties {
        user_properties: vec![("k".into(), "v".into())],
        ..Default::default()
    };
    use rumqttc::v5::mqttbytes::QoS;
    for (qos, body) in [
        (QoS::AtMostOnce, "zero"),
        (QoS::AtLeastOnce, "one"),
        (QoS::ExactlyOnce, "two"),
    ] {
        p.publish_with_properties("T/json/a", qos, false, body, props.clone())
            .await
            .unwrap();
    }
    p.publish_with_properties("T/raw/b", QoS::AtLeastOnce, false, vec![0u8, 1, 2], props.clone())
        .await
        .unwrap();
    // Not matched by any rule.
    p.publish("T/other", QoS::AtLeastOnce, false, "no").await.unwrap();

    let got = hook.wait_for(4, 10).await;
    assert!(got.iter().all(|r| r.signed), "every request verifies with the secret");
    let json: Vec<_> = got
        .iter()
        .filter(|r| r.header("x-mq-rule-id") == Some(&json_rule.id))
        .collect();
    assert_eq!(json.len(), 3);
    let envs: Vec<serde_json::Value> = json.iter().map(|r| r.json()).collect();
    assert_eq!(
        envs.iter().map(|e| e["payload"].as_str().unwrap()).collect::<Vec<_>>(),
        vec![b64("zero"), b64("one"), b64("two")],
        "one publisher's messages in the order it sent them"
    );
    for (e, qos) in envs.iter().zip([0, 1, 2]) {
        assert_eq!(e["qos"], qos);
        assert_eq!(e["ruleId"], json_rule.id.as_str());
        assert_eq!(e["instanceId"], INST);
        assert_eq!(e["topic"], "T/json/a");
        assert_eq!(e["clientId"], publisher.as_str());
        assert_eq!(e["retain"], false);
        assert_eq!(e["msgId"].as_str().unwrap().len(), 32);
        assert!((e["time"].as_i64().unwrap() - common::time::now_ms()).abs() < 60_000);
        assert_eq!(e["userProperties"], serde_json::json!([["k", "v"]]));
    }
    let raw = got
        .iter()
        .find(|r| r.header("x-mq-rule-id") == Some(&raw_rule.id))
        .expect("the raw delivery");
    assert_eq!(raw.body, vec![0u8, 1, 2]);
    assert_eq!(raw.header("x-mq-topic"), Some("T/raw/b"));
    assert_eq!(raw.header("x-mq-client-id"), Some(publisher.as_str()));
    assert_eq!(raw.header("x-mq-qos"), Some("1"));
    assert_eq!(raw.header("x-mq-retain"), Some("false"));
    assert_eq!(raw.header("x-mq-user-properties"), Some(r#"[["k","v"]]"#));
    assert_eq!(raw.header("x-mq-instance-id"), Some(INST));

    let copies = v3::collect(&mut sev, 3, 10).await;
    assert_eq!(crate::support::payloads(&copies), vec!["zero", "one", "two"]);
    // Nothing more: no request for the unmatched topic, no loop through the republished copies.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.got().len(), 4);
    assert_eq!(stat_u64(&b, &json_rule, "delivered"), 3);
    assert_eq!(stat_u64(&b, &json_rule, "matched"), 3);
}

#[tokio::test]
async fn a_target_down_for_a_while_gets_everything_in_order_per_client() {
    let port = test_support::net::free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let r = rule(1, outflow(&["T/#"]), webhook(&url, WebhookFormat::Json));
    let b = start(&with_rules(vec![r.clone()], true));
    let clients = ["GID_test@@@a", "GID_test@@@b", "GID_other@@@c"];
    publish_from(&b, &clients, "T/seq", 15).await;
    wait_until(10, "failed attempts", || stat_u64(&b, &r, "failed") > 0).await;
    assert_eq!(stat_u64(&b, &r, "queued"), 45);
    assert_eq!(stat_u64(&b, &r, "delivered"), 0);
    assert!(stat(&b, &r, "lastError").as_str().is_some());

    let hook = Receiver::start_on(port, SECRET).await;
    let got = hook.wait_for(45, 15).await;
    assert_in_order_per_client(&payloads_once(&got), &clients, 15);
    wait_until(5, "an empty outbox", || stat_u64(&b, &r, "queued") == 0).await;
    assert_eq!(stat_u64(&b, &r, "delivered"), 45);
}

/// A client whose deliveries the target keeps refusing with 503 is retried on its own: the other
/// clients' later messages are sent meanwhile (a sender that waited for every client of what it
/// had read before reading on would hold them until the 503s stopped).
#[tokio::test]
async fn a_client_being_retried_does_not_hold_back_the_others() {
    let hook = Receiver::start(SECRET).await;
    let stuck = "GID_test@@@stuck";
    hook.answer_client(stuck, 503);
    let r = rule(1, outflow(&["T/#"]), webhook(&hook.url(), WebhookFormat::Json));
    let b = start(&with_rules(vec![r.clone()], true));
    publish_from(&b, &[stuck], "T/first", 1).await;
    wait_until(10, "the stuck client's retries", || stat_u64(&b, &r, "failed") >= 2).await;

    let others = ["GID_test@@@o1", "GID_test@@@o2"];
    publish_from(&b, &others, "T/later", 10).await;
    wait_until(10, "the other clients' messages", || {
        let got = hook.got();
        let delivered = got.iter().filter(|g| g.json()["clientId"] != stuck).count();
        delivered >= 20
    })
    .await;
    let later: Vec<String> = payloads_once(&hook.got())
        .into_iter()
        .filter(|p| !p.starts_with(stuck))
        .collect();
    assert_in_order_per_client(&later, &others, 10);
    assert_eq!(stat_u64(&b, &r, "queued"), 1, "the stuck client's message waits");

    hook.answer_client(stuck, 200);
    wait_until(10, "an empty outbox", || stat_u64(&b, &r, "queued") == 0).await;
    assert_eq!(stat_u64(&b, &r, "delivered"), 21);
}

#[tokio::test]
async fn an_outbox_survives_kill_9_of_its_broker() {
    let port = test_support::net::free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let r = rule(1, outflow(&["T/#"]), webhook(&url, WebhookFormat::Json));
    let mut b = start(&with_rules(vec![r.clone()], true));
    let clients = ["GID_test@@@k1", "GID_test@@@k2"];
    publish_from(&b, &clients, "T/k", 20).await;
    assert_eq!(
        stat_u64(&b, &r, "queued"),
        40,
        "every acknowledged message is in the outbox"
    );
    b.kill9();

    let hook = Receiver::start_on(port, SECRET).await;
    b.spawn();
    let got = hook.wait_for(40, 15).await;
    assert_in_order_per_client(&payloads_once(&got), &clients, 20);
    wait_until(5, "an empty outbox", || stat_u64(&b, &r, "queued") == 0).await;
}

#[tokio::test]
async fn a_target_answering_400_dead_letters_without_retrying() {
    let hook = Receiver::start(SECRET).await;
    hook.answer(400);
    let r = rule(1, outflow(&["T/#"]), webhook(&hook.url(), WebhookFormat::Json));
    let b = start(&with_rules(vec![r.clone()], true));
    publish_from(&b, &["GID_test@@@d"], "T/bad", 2).await;
    wait_until(10, "dead letters", || stat_u64(&b, &r, "deadLettered") == 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.got().len(), 2, "a 4xx is not retried");
    assert_eq!(stat_u64(&b, &r, "delivered"), 0);
    assert_eq!(stat_u64(&b, &r, "queued"), 0);
    let view = rules_view(&b);
    let letter = &view["deadLetters"][0];
    assert_eq!(letter["ruleId"], r.id.as_str());
    assert_eq!(letter["status"], 400);
    assert_eq!(letter["topic"], "T/bad");
    assert_eq!(letter["clientId"], "GID_test@@@d");
    assert_eq!(letter["error"], "HTTP 400");
    assert_eq!(b.counter("broker_rule_dead_lettered_total", &[("rule", &r.id)]), 2.0);
}

#[tokio::test]
async fn webhooks_to_loopback_are_refused_after_resolution_unless_allowed() {
    let hook = Receiver::start(SECRET).await;
    let literal = rule(1, outflow(&["T/#"]), webhook(&hook.url(), WebhookFormat::Json));
    let by_name = rule(
        2,
        outflow(&["T/#"]),
        webhook(&format!("http://localhost:{}/hook", hook.port), WebhookFormat::Json),
    );
    let b = start(&with_rules(vec![literal.clone(), by_name.clone()], false));
    publish_from(&b, &["GID_test@@@s"], "T/ssrf", 1).await;
    for r in [&literal, &by_name] {
        wait_until(10, "a refusal", || stat_u64(&b, r, "deadLettered") == 1).await;
        let err = stat(&b, r, "lastError");
        assert!(
            err.as_str().unwrap().starts_with("target address refused (loopback)"),
            "{err}"
        );
    }
    assert!(hook.got().is_empty(), "nothing reached the receiver");
    assert!(b.counter("broker_rule_target_refused_total", &[("kind", "loopback")]) >= 2.0);
}

/// An https receiver is verified against the certificate authorities the broker trusts (here
/// `SSL_CERT_FILE`, the test authority); a broker that does not trust it sends it nothing. A
/// rule keeps its connections open between deliveries.
#[tokio::test]
async fn an_https_webhook_is_verified_against_the_trusted_authorities() {
    let hook = Receiver::start(SECRET).await;
    let proxy = TlsProxy::start(hook.port).await;
    let url = format!("https://localhost:{}/hook", proxy.port);
    let r = rule(1, outflow(&["T/#"]), webhook(&url, WebhookFormat::Json));
    let snap = with_rules(vec![r.clone()], true);

    let untrusting = start(&snap);
    publish_from(&untrusting, &["GID_test@@@x"], "T/tls", 1).await;
    wait_until(10, "a failed attempt", || {
        stat(&untrusting, &r, "lastError").is_string()
    })
    .await;
    let err = stat(&untrusting, &r, "lastError");
    assert!(err.as_str().unwrap().contains("certificate"), "{err}");
    assert_eq!(stat_u64(&untrusting, &r, "delivered"), 0);
    drop(untrusting);
    assert!(hook.got().is_empty(), "nothing reached an untrusted receiver");
    assert_eq!(proxy.handshakes(), 0);

    let env = [FAST_RETRIES[0], FAST_RETRIES[1], ("SSL_CERT_FILE", TEST_CA)];
    let b = BrokerProc::start_with_env(&snap, &env);
    publish_from(&b, &["GID_test@@@t"], "T/tls", 5).await;
    let got = hook.wait_for(5, 10).await;
    assert!(got.iter().all(|g| g.signed));
    let expected: Vec<String> = (0..5).map(|i| format!("GID_test@@@t:{i}")).collect();
    assert_eq!(payloads_once(&got), expected, "in order, over TLS");
    // One client's deliveries go one after the other: one kept-alive connection carries them all.
    assert_eq!(proxy.handshakes(), 1, "connections opened for 5 deliveries");
}

#[tokio::test]
async fn a_full_outbox_drops_the_oldest_and_says_so() {
    let port = test_support::net::free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let mut r = rule(1, outflow(&["T/#"]), webhook(&url, WebhookFormat::Json));
    r.outbox.max_bytes = 3_000;
    let b = start(&with_rules(vec![r.clone()], true));
    publish_from(&b, &["GID_test@@@f"], "T/full", 60).await;
    assert!(stat_u64(&b, &r, "dropped") > 0);
    assert!(stat_u64(&b, &r, "queuedBytes") <= 3_000);
    assert_eq!(stat(&b, &r, "overflowing"), true);
    assert!(b.counter("broker_rule_dropped_total", &[("rule", &r.id), ("reason", "overflow")]) > 0.0);

    let queued = stat_u64(&b, &r, "queued") as usize;
    let hook = Receiver::start_on(port, SECRET).await;
    let got = hook.wait_for(queued, 15).await;
    let payloads = payloads_once(&got);
    let expected: Vec<String> = (60 - queued..60).map(|i| format!("GID_test@@@f:{i}")).collect();
    assert_eq!(payloads, expected, "the newest messages, in order");
    wait_until(5, "the overflow to clear", || stat(&b, &r, "overflowing") == false).await;
}

#[tokio::test]
async fn rules_follow_the_snapshot_disabled_keeps_the_outbox_deleted_removes_it() {
    let port = test_support::net::free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let mut r = rule(1, outflow(&["T/#"]), webhook(&url, WebhookFormat::Json));
    let mut b = start(&with_rules(vec![r.clone()], true));
    publish_from(&b, &["GID_test@@@r"], "T/keep", 5).await;
    assert_eq!(stat_u64(&b, &r, "queued"), 5);

    // Disabled: nothing is sent, nothing is lost.
    r.enabled = false;
    let mut snap = with_rules(vec![r.clone()], true);
    snap.version = 2;
    b.reload(&snap).await;
    let hook = Receiver::start_on(port, SECRET).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(hook.got().is_empty(), "a disabled rule sends nothing");
    publish_from(&b, &["GID_test@@@r"], "T/keep", 1).await;
    assert_eq!(stat_u64(&b, &r, "matched"), 5, "a disabled rule matches nothing");

    // Enabled again: what waited is sent.
    r.enabled = true;
    let mut snap = with_rules(vec![r.clone()], true);
    snap.version = 3;
    b.reload(&snap).await;
    let got = hook.wait_for(5, 10).await;
    assert_eq!(payloads_once(&got).len(), 5);

    // Deleted while the broker is down: its outbox goes when the broker starts without it.
    drop(hook);
    publish_from(&b, &["GID_test@@@r"], "T/gone", 3).await;
    wait_until(5, "queued deliveries", || stat_u64(&b, &r, "queued") == 3).await;
    b.kill9();
    let mut snap = with_rules(vec![], true);
    snap.version = 4;
    std::fs::write(b.dir.join("snapshot.json"), serde_json::to_vec(&snap).unwrap()).unwrap();
    b.spawn();
    wait_until(10, "the outbox removed", || {
        b.log().contains("outbox of a deleted rule removed")
    })
    .await;
    // The same rule id back: nothing of the old outbox is sent.
    let hook = Receiver::start_on(port, SECRET).await;
    let mut snap = with_rules(vec![r.clone()], true);
    snap.version = 5;
    b.reload(&snap).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(hook.got().is_empty(), "{:?}", hook.got());
    assert_eq!(stat_u64(&b, &r, "queued"), 0);
}
