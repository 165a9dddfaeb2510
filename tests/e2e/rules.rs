//! Rules across the whole system: a rule created through the REST API reaches the broker through
//! the control-plane link, the broker delivers what real MQTT clients publish to a real webhook
//! receiver (which checks the signature itself), and what the broker reports back (per-rule
//! figures in its heartbeat, dead letters, the answer to TestRule) shows in the API.

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::mqtt;
use test_support::receiver::{Received, Receiver};

use e2e::{Api, System};

const SECRET: &str = "e2e-hook-secret";

/// Creates an enabled outflow rule for `filters` to the webhook at `url`; returns its id.
async fn webhook_rule(api: &Api, instance: &str, filters: &[&str], url: &str) -> String {
    let (status, rule) = api
        .call(
            Method::POST,
            &format!("/instances/{instance}/rules"),
            Some(json!({
                "name": "to the receiver",
                "source": {"kind": "outflow", "topicFilters": filters},
                "target": {"type": "webhook", "url": url, "secret": SECRET, "timeoutMs": 2000},
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    rule["ruleId"].as_str().expect("ruleId").to_string()
}

/// The rule as the API shows it, polled until `done` holds; panics with the last answer after 20 s.
async fn rule_until(api: &Api, instance: &str, rule: &str, done: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/instances/{instance}/rules/{rule}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = api.ok(Method::GET, &path, None).await;
        if done(&r) {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rule status never got there: {r}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Publishes `(topic, payload)` pairs at QoS 1 from one Signature-mode client, each acknowledged.
async fn publish(sys: &System, client_id: &str, messages: &[(String, String)]) {
    let opts = sys.fx.signature_opts(client_id, sys.broker().mqtt_port);
    let (c, mut ev, _) = mqtt::connect(opts).await.expect("the publisher connects");
    for (topic, payload) in messages {
        c.publish(topic, rumqttc::QoS::AtLeastOnce, false, payload.as_bytes())
            .await
            .unwrap();
        loop {
            match ev.poll().await.expect("the publisher stays connected") {
                rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)) => break,
                _ => continue,
            }
        }
    }
    c.disconnect().await.unwrap();
    let _ = mqtt::drain(&mut ev, 0.2).await;
}

fn b64_decode(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).expect("Base64")
}

/// The JSON envelope's payload, as text.
fn payload(r: &Received) -> String {
    String::from_utf8(b64_decode(r.json()["payload"].as_str().expect("payload"))).unwrap()
}

#[tokio::test]
async fn an_outflow_rule_from_the_api_delivers_signed_messages_and_reports_its_figures() {
    let sys = System::up(1).await;
    let (api, fx) = (&sys.api, &sys.fx);
    let hook = Receiver::start(SECRET).await;
    let rule = webhook_rule(api, &fx.instance, &["T/rules/#"], &hook.url()).await;
    // The new configuration version with the rule is what the broker must run.
    api.wait_in_sync(&["node-1"]).await;

    let publisher = fx.client_id("pub");
    let mut messages: Vec<(String, String)> = (0..20)
        .map(|i| (format!("T/rules/{}", i % 3), format!("m{i}")))
        .collect();
    // Not matched by the rule's filter.
    messages.extend((0..3).map(|i| ("T/other".to_string(), format!("x{i}"))));
    publish(&sys, &publisher, &messages).await;

    hook.wait_for(20, 20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = hook.got();
    assert_eq!(got.len(), 20, "one request per matched message: {got:?}");
    assert!(got.iter().all(|r| r.signed), "every request carries a valid signature");
    assert!(got.iter().all(|r| r.header("x-mq-rule-id") == Some(rule.as_str())));
    let payloads: BTreeSet<String> = got.iter().map(payload).collect();
    assert_eq!(payloads, (0..20).map(|i| format!("m{i}")).collect::<BTreeSet<_>>());
    for r in &got {
        let e = r.json();
        assert_eq!(
            (e["clientId"].as_str(), e["instanceId"].as_str(), e["ruleId"].as_str()),
            (
                Some(publisher.as_str()),
                Some(fx.instance.as_str()),
                Some(rule.as_str())
            )
        );
        assert!(e["topic"].as_str().unwrap().starts_with("T/rules/"), "{e}");
    }

    // The broker's figures arrive with its heartbeats and add up in the rule's status.
    let r = rule_until(api, &fx.instance, &rule, |r| {
        r["status"]["matched"] == 20 && r["status"]["delivered"] == 20
    })
    .await;
    let s = &r["status"];
    assert_eq!(
        (&s["failed"], &s["deadLettered"], &s["dropped"], &s["reportingBrokers"]),
        (&json!(0), &json!(0), &json!(0), &json!(1)),
        "{r}"
    );

    // TestRule: the broker sends a sample through the target and the receiver's answer comes back.
    let test = format!("/instances/{}/rules/{rule}/test", fx.instance);
    hook.answer(202);
    let t = api.ok(Method::POST, &test, None).await;
    assert_eq!(
        (&t["delivered"], &t["status"], &t["nodeId"]),
        (&json!(true), &json!(202), &json!("node-1")),
        "{t}"
    );
    let sample = hook.wait_for(21, 10).await.pop().unwrap();
    assert!(sample.signed, "the sample is signed like every delivery");
    assert_eq!(sample.header("x-mq-rule-id"), Some(rule.as_str()));
    hook.answer(503);
    let t = api.ok(Method::POST, &test, None).await;
    assert_eq!((&t["delivered"], &t["status"]), (&json!(false), &json!(503)), "{t}");
    assert_eq!(hook.got().len(), 22, "one request per test");
}

#[tokio::test]
async fn a_message_refused_with_400_is_dead_lettered_and_shown_by_the_api() {
    let sys = System::up(1).await;
    let (api, fx) = (&sys.api, &sys.fx);
    let hook = Receiver::start(SECRET).await;
    hook.answer(400);
    let rule = webhook_rule(api, &fx.instance, &["T/dead/+"], &hook.url()).await;
    api.wait_in_sync(&["node-1"]).await;

    let publisher = fx.client_id("doomed");
    publish(&sys, &publisher, &[("T/dead/x".into(), "doomed".into())]).await;

    let got = hook.wait_for(1, 20).await;
    assert_eq!(payload(&got[0]), "doomed");
    assert!(got[0].signed);

    let path = format!("/instances/{}/rules/{rule}/dead-letters", fx.instance);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let letters = loop {
        let list = api.ok(Method::GET, &path, None).await;
        let letters = list["deadLetters"].as_array().cloned().unwrap_or_default();
        if !letters.is_empty() {
            break letters;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no dead letter in the API: {list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(letters.len(), 1, "{letters:?}");
    let d = &letters[0];
    assert_eq!(
        (&d["status"], &d["nodeId"], &d["topic"], &d["clientId"]),
        (&json!(400), &json!("node-1"), &json!("T/dead/x"), &json!(publisher)),
        "{d}"
    );
    let head: Value = serde_json::from_slice(&b64_decode(d["bodyHead"].as_str().expect("bodyHead"))).unwrap();
    assert_eq!(b64_decode(head["payload"].as_str().unwrap()), b"doomed");

    let r = rule_until(api, &fx.instance, &rule, |r| r["status"]["deadLettered"] == 1).await;
    assert_eq!(
        (&r["status"]["matched"], &r["status"]["delivered"]),
        (&json!(1), &json!(0)),
        "{r}"
    );
    // Refused for good: never tried again.
    assert_eq!(hook.got().len(), 1);
}
