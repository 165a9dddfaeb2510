//! Rules: CRUD, validation naming the field, the `maxRules` quota, secrets write-only and encrypted at
//! rest yet plain in the broker snapshot, status summed from heartbeats, dead letters and TestRule
//! answered through the broker-sync endpoints as a broker answers.

use std::time::Duration;

use common::rules::{NatsEndpoint, RuleSource, RuleTarget};
use common::sync::{COMMAND_RESULTS_PATH, COMMANDS_PATH, Command, CommandBatch, DEAD_LETTERS_PATH, HEARTBEAT_PATH};
use reqwest::Method;
use serde_json::{Value, json};

use crate::brokers::heartbeat;
use crate::server::TestServer;

const SECRET: &str = "whsec-0123456789";

async fn setup(s: &TestServer, name: &str) -> String {
    let id = s.create_instance(name).await;
    s.create_topic(&id, "T").await;
    s.create_topic(&id, "Out").await;
    s.create_group(&id, "GID_dev").await;
    id
}

fn webhook_rule() -> Value {
    json!({
        "name": "to backend",
        "source": {"kind": "outflow", "topicFilters": ["T/+/up", "T/#"], "groupIds": ["GID_dev"]},
        "target": {"type": "webhook", "url": "https://hooks.example.com/in", "secret": SECRET, "timeoutMs": 2000}
    })
}

async fn snapshot_rules(s: &TestServer, instance: &str) -> Vec<common::rules::RuleConfig> {
    let snap = control_plane::broker_link::snapshot::build(&s.state.db, &s.state.secrets)
        .await
        .unwrap();
    snap.validate().unwrap();
    snap.content
        .instances
        .into_iter()
        .find(|i| i.id == instance)
        .unwrap()
        .rules
}

fn webhook_secret(rule: &common::rules::RuleConfig) -> Option<String> {
    match &rule.target {
        RuleTarget::Webhook { secret, .. } => secret.clone(),
        other => panic!("not a webhook: {other:?}"),
    }
}

#[tokio::test]
async fn crud_with_a_write_only_secret() {
    let s = TestServer::start().await;
    let id = setup(&s, "rules-crud").await;
    let path = format!("/api/v1/instances/{id}/rules");
    let created = s.op(Method::POST, &path, Some(webhook_rule())).await.expect(201);
    let rule_id = created["ruleId"].as_str().unwrap().to_string();
    assert!(rule_id.starts_with("rule-") && rule_id.len() == 21, "{rule_id}");
    assert_eq!(created["kind"], "outflow");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["target"]["hasSecret"], true);
    assert_eq!(created["target"]["timeoutMs"], 2000);
    assert_eq!(created["outbox"]["maxBytes"], 64 << 20);
    assert_eq!(created["status"]["matched"], 0);
    assert!(!created.to_string().contains(SECRET), "secret in an answer: {created}");

    let got = s.op(Method::GET, &format!("{path}/{rule_id}"), None).await.expect(200);
    assert_eq!(got["source"]["topicFilters"], json!(["T/+/up", "T/#"]));
    assert!(!got.to_string().contains(SECRET));
    let list = s.op(Method::GET, &path, None).await.expect(200);
    assert_eq!(list["rules"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(SECRET));

    // Encrypted at rest: neither the ciphertext nor the readable columns hold it.
    let (enc, source, target): (Vec<u8>, String, String) =
        sqlx::query_as("select secrets_enc, source::text, target::text from rules where id = $1")
            .bind(&rule_id)
            .fetch_one(&s.state.db)
            .await
            .unwrap();
    assert!(!enc.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
    assert!(!source.contains(SECRET) && !target.contains(SECRET), "{target}");

    // Brokers get it plain in the snapshot.
    let rules = snapshot_rules(&s, &id).await;
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].id, rule_id);
    assert_eq!(webhook_secret(&rules[0]).as_deref(), Some(SECRET));
    assert_eq!(
        rules[0].source,
        RuleSource::Outflow {
            topic_filters: vec!["T/+/up".into(), "T/#".into()],
            group_ids: vec!["GID_dev".into()]
        }
    );

    // An update that names no secret keeps it, even with a new target; "" removes it.
    let v = control_plane::broker_link::snapshot::build(&s.state.db, &s.state.secrets)
        .await
        .unwrap()
        .version;
    let renamed = s
        .op(
            Method::PATCH,
            &format!("{path}/{rule_id}"),
            Some(json!({"name": "renamed"})),
        )
        .await
        .expect(200);
    assert_eq!(
        (renamed["name"].as_str(), renamed["target"]["hasSecret"].as_bool()),
        (Some("renamed"), Some(true))
    );
    let moved = s
        .op(
            Method::PATCH,
            &format!("{path}/{rule_id}"),
            Some(json!({"target": {"type": "webhook", "url": "https://other.example.com/x", "format": "raw"}})),
        )
        .await
        .expect(200);
    assert_eq!(moved["target"]["format"], "raw");
    assert_eq!(moved["target"]["hasSecret"], true);
    let rules = snapshot_rules(&s, &id).await;
    assert_eq!(webhook_secret(&rules[0]).as_deref(), Some(SECRET));
    assert_eq!(rules[0].name, "renamed");
    let cleared = s
        .op(
            Method::PATCH,
            &format!("{path}/{rule_id}"),
            Some(json!({"target": {"type": "webhook", "url": "https://other.example.com/x", "secret": ""}})),
        )
        .await
        .expect(200);
    assert_eq!(cleared["target"]["hasSecret"], false);
    let rules = snapshot_rules(&s, &id).await;
    assert_eq!(webhook_secret(&rules[0]), None);
    let (enc,): (Option<Vec<u8>>,) = sqlx::query_as("select secrets_enc from rules where id = $1")
        .bind(&rule_id)
        .fetch_one(&s.state.db)
        .await
        .unwrap();
    assert!(enc.is_none());

    // Disable and enable, each a new configuration version.
    let off = s
        .op(Method::POST, &format!("{path}/{rule_id}/disable"), None)
        .await
        .expect(200);
    assert_eq!(off["enabled"], false);
    let snap = control_plane::broker_link::snapshot::build(&s.state.db, &s.state.secrets)
        .await
        .unwrap();
    assert!(snap.version > v);
    assert!(!snap.content.instances[0].rules[0].enabled);
    s.op(Method::POST, &format!("{path}/{rule_id}/enable"), None)
        .await
        .expect(200);
    assert!(snapshot_rules(&s, &id).await[0].enabled);

    s.op(Method::DELETE, &format!("{path}/{rule_id}"), None)
        .await
        .expect(204);
    s.op(Method::GET, &format!("{path}/{rule_id}"), None)
        .await
        .expect_error(404, "NotFound");
    s.op(Method::DELETE, &format!("{path}/{rule_id}"), None)
        .await
        .expect_error(404, "NotFound");
    s.op(Method::POST, &format!("{path}/{rule_id}/enable"), None)
        .await
        .expect_error(404, "NotFound");
    assert!(snapshot_rules(&s, &id).await.is_empty());
    s.op(Method::GET, "/api/v1/instances/mqtt-nosuchinstance/rules", None)
        .await
        .expect_error(404, "NotFound");
}

#[tokio::test]
async fn nats_secrets_and_inflow_rules() {
    let s = TestServer::start().await;
    let id = setup(&s, "rules-nats").await;
    let path = format!("/api/v1/instances/{id}/rules");
    let nats = s
        .op(
            Method::POST,
            &path,
            Some(json!({
                "name": "status to nats",
                "source": {"kind": "status"},
                "target": {"type": "nats", "subject": "mqtt.status", "jetstream": true,
                    "nats": {"urls": ["nats://127.0.0.1:4222"], "token": "nats-token-1"}}
            })),
        )
        .await
        .expect(201);
    assert_eq!(nats["kind"], "status");
    let view = &nats["target"]["nats"];
    assert_eq!(
        (&view["hasToken"], &view["hasPassword"], &view["hasCreds"]),
        (&json!(true), &json!(false), &json!(false))
    );
    let inflow = s
        .op(
            Method::POST,
            &path,
            Some(json!({
                "name": "from bus",
                "source": {"kind": "inflow", "subject": "bus.>", "stream": "BUS", "topic": "T/in/{subject}", "qos": 1,
                    "nats": {"urls": ["nats://127.0.0.1:4222", "tls://n2.example.com:4222"], "user": "u", "password": "nats-pass-1"}}
            })),
        )
        .await
        .expect(201);
    assert_eq!(inflow["kind"], "inflow");
    assert!(inflow.get("target").is_none(), "{inflow}");
    assert_eq!(inflow["source"]["nats"]["hasPassword"], true);
    assert_eq!(inflow["source"]["nats"]["user"], "u");
    let both = format!("{nats}{inflow}");
    assert!(!both.contains("nats-token-1") && !both.contains("nats-pass-1"));

    let rules = snapshot_rules(&s, &id).await;
    assert_eq!(rules.len(), 2);
    assert_eq!(
        rules[0].target,
        RuleTarget::Nats {
            nats: NatsEndpoint {
                urls: vec!["nats://127.0.0.1:4222".into()],
                token: Some("nats-token-1".into()),
                ..Default::default()
            },
            subject: "mqtt.status".into(),
            jetstream: true,
        }
    );
    match &rules[1].source {
        RuleSource::Inflow(i) => {
            assert_eq!(i.nats.password.as_deref(), Some("nats-pass-1"));
            assert_eq!(
                (i.subject.as_str(), i.stream.as_deref(), i.topic.as_str(), i.qos),
                ("bus.>", Some("BUS"), "T/in/{subject}", 1)
            );
        }
        other => panic!("{other:?}"),
    }
    // An inflow rule's target is its own instance.
    assert!(matches!(&rules[1].target, RuleTarget::Republish { topic, .. } if topic == "T/in/{subject}"));

    // Turning the status rule into an outflow rule keeps its target and its token.
    let turned = s
        .op(
            Method::PATCH,
            &format!("{path}/{}", nats["ruleId"].as_str().unwrap()),
            Some(json!({"source": {"kind": "outflow", "topicFilters": ["T/#"]}})),
        )
        .await
        .expect(200);
    assert_eq!(
        (turned["kind"].as_str(), turned["target"]["nats"]["hasToken"].as_bool()),
        (Some("outflow"), Some(true))
    );
}

#[tokio::test]
async fn validation_names_the_field() {
    let s = TestServer::start().await;
    let id = setup(&s, "rules-invalid").await;
    let path = format!("/api/v1/instances/{id}/rules");
    let hook = |url: &str| json!({"type": "webhook", "url": url});
    let outflow = |filters: Value| json!({"kind": "outflow", "topicFilters": filters});
    let nats_ep = |url: &str| json!({"urls": [url]});
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"name": "", "source": outflow(json!(["T/#"])), "target": hook("https://h.example.com")}),
            "name",
        ),
        (
            json!({"name": "x", "source": outflow(json!([])), "target": hook("https://h.example.com")}),
            "source.topicFilters",
        ),
        (
            json!({"name": "x", "source": outflow(json!(["T/#", "Nope/#"])), "target": hook("https://h.example.com")}),
            "source.topicFilters[1]",
        ),
        (
            json!({"name": "x", "source": outflow(json!(["#"])), "target": hook("https://h.example.com")}),
            "source.topicFilters[0]",
        ),
        (
            json!({"name": "x", "source": {"kind": "status", "groupIds": ["GID_nope"]}, "target": hook("https://h.example.com")}),
            "source.groupIds[0]",
        ),
        (json!({"name": "x", "source": outflow(json!(["T/#"]))}), "target"),
        (
            json!({"name": "x", "source": outflow(json!(["T/#"])), "target": hook("ftp://h.example.com")}),
            "target.url",
        ),
        (
            json!({"name": "x", "source": outflow(json!(["T/#"])), "target": hook("http://127.0.0.1:9/")}),
            "target.url",
        ),
        (
            json!({"name": "x", "source": outflow(json!(["T/#"])), "target": hook("http://169.254.169.254/")}),
            "target.url",
        ),
        (
            json!({"name": "x", "source": outflow(json!(["T/#"])), "target": hook("https://u:p@h.example.com/")}),
            "target.url",
        ),
        (
            json!({"name": "x", "source": outflow(json!(["T/#"])),
            "target": {"type": "webhook", "url": "https://h.example.com", "secret": "short"}}),
            "target.secret",
        ),
        (
            json!({"name": "x", "source": outflow(json!(["T/#"])),
            "target": {"type": "webhook", "url": "https://h.example.com", "timeoutMs": 10}}),
            "target.timeoutMs",
        ),
        (
            json!({"name": "x", "source": {"kind": "status"},
            "target": {"type": "webhook", "url": "https://h.example.com", "format": "raw"}}),
            "target.format",
        ),
        (
            json!({"name": "x", "source": outflow(json!(["T/#"])),
            "target": {"type": "nats", "subject": "a.*", "nats": nats_ep("nats://n:4222")}}),
            "target.subject",
        ),
        (
            json!({"name": "x", "source": outflow(json!(["T/#"])),
            "target": {"type": "nats", "subject": "a.b", "nats": nats_ep("http://n:4222")}}),
            "target.nats.urls[0]",
        ),
        (
            json!({"name": "x", "source": outflow(json!(["T/#"])),
            "target": {"type": "nats", "subject": "a.b", "nats": {"urls": []}}}),
            "target.nats.urls",
        ),
        (
            json!({"name": "x", "source": outflow(json!(["T/#"])),
            "target": {"type": "republish", "topic": "T/loop"}}),
            "target.topic",
        ),
        (
            json!({"name": "x", "source": outflow(json!(["T/#"])),
            "target": {"type": "republish", "topic": "Out/x", "qos": 3}}),
            "target.qos",
        ),
        (
            json!({"name": "x", "source": {"kind": "inflow", "subject": "a b", "topic": "T/x", "nats": nats_ep("nats://n:4222")}}),
            "source.subject",
        ),
        (
            json!({"name": "x", "source": {"kind": "inflow", "subject": "a", "topic": "{subject}/x", "nats": nats_ep("nats://n:4222")}}),
            "source.topic",
        ),
        (
            json!({"name": "x", "source": {"kind": "inflow", "subject": "a", "topic": "T/x", "stream": "a.b", "nats": nats_ep("nats://n:4222")}}),
            "source.stream",
        ),
        (
            json!({"name": "x", "source": {"kind": "inflow", "subject": "a", "topic": "T/x", "nats": nats_ep("nats://n:4222")},
            "target": hook("https://h.example.com")}),
            "target",
        ),
        (
            json!({"name": "x", "source": outflow(json!(["T/#"])), "target": hook("https://h.example.com"),
            "outbox": {"maxBytes": 10}}),
            "outbox.maxBytes",
        ),
        (
            json!({"name": "x", "source": outflow(json!(["T/#"])), "target": hook("https://h.example.com"),
            "outbox": {"maxAgeSecs": 1}}),
            "outbox.maxAgeSecs",
        ),
    ];
    for (body, field) in cases {
        let reply = s.op(Method::POST, &path, Some(body.clone())).await;
        assert_eq!(reply.body["field"], field, "{body}: {:?}", reply.body);
        reply.expect_invalid(field);
    }
    // Unknown fields and kinds are refused by the JSON reader.
    let reply = s
        .op(
            Method::POST,
            &path,
            Some(json!({"name": "x", "source": {"kind": "sideways"}})),
        )
        .await;
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    assert!(
        s.op(Method::GET, &path, None).await.expect(200)["rules"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_rule_outlives_its_parent_topic_and_is_checked_again_on_update() {
    let s = TestServer::start().await;
    let id = setup(&s, "rules-orphan").await;
    let path = format!("/api/v1/instances/{id}/rules");
    let body = json!({"name": "out", "source": {"kind": "outflow", "topicFilters": ["Out/#"]},
        "target": {"type": "republish", "topic": "T/copy"}});
    let rule = s.op(Method::POST, &path, Some(body)).await.expect(201)["ruleId"]
        .as_str()
        .unwrap()
        .to_string();
    s.op(Method::DELETE, &format!("/api/v1/instances/{id}/topics/Out"), None)
        .await
        .expect(204);
    s.op(Method::GET, &format!("{path}/{rule}"), None).await.expect(200);
    s.op(
        Method::PATCH,
        &format!("{path}/{rule}"),
        Some(json!({"name": "renamed"})),
    )
    .await
    .expect_invalid("source.topicFilters[0]");
    s.op(Method::POST, &format!("{path}/{rule}/disable"), None)
        .await
        .expect(200);
    let fixed = s
        .op(
            Method::PATCH,
            &format!("{path}/{rule}"),
            Some(json!({"name": "renamed", "source": {"kind": "outflow", "topicFilters": ["T/in/#"]}})),
        )
        .await
        .expect(200);
    assert_eq!(
        (fixed["name"].as_str(), fixed["enabled"].as_bool()),
        (Some("renamed"), Some(false))
    );
}

#[tokio::test]
async fn loopback_targets_when_the_operator_allows_them() {
    let s = TestServer::start_with(|c| c.rule_targets_allow_loopback = true).await;
    let id = setup(&s, "rules-loopback").await;
    let body = json!({"name": "local", "source": {"kind": "status"},
        "target": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}});
    s.op(Method::POST, &format!("/api/v1/instances/{id}/rules"), Some(body))
        .await
        .expect(201);
    let body = json!({"name": "private", "source": {"kind": "status"},
        "target": {"type": "webhook", "url": "http://10.0.0.1/hook"}});
    s.op(Method::POST, &format!("/api/v1/instances/{id}/rules"), Some(body))
        .await
        .expect_invalid("target.url");
    let snap =
        control_plane::broker_link::snapshot::build_with(&s.state.db, &s.state.secrets, s.state.config.rule_policy())
            .await
            .unwrap();
    assert!(snap.content.rule_policy.allow_loopback && !snap.content.rule_policy.allow_private);
}

#[tokio::test]
async fn max_rules_quota() {
    let s = TestServer::start().await;
    let id = setup(&s, "rules-quota").await;
    let other = s.create_instance("rules-quota-other").await;
    s.op(
        Method::PATCH,
        &format!("/api/v1/instances/{id}"),
        Some(json!({"quotas": {"maxRules": 2}})),
    )
    .await
    .expect(200);
    let path = format!("/api/v1/instances/{id}/rules");
    // An AccessKey bound to the instance manages its rules, and only its.
    let key = s.create_access_key(&[&id]).await;
    for _ in 0..2 {
        s.ak(&key, Method::POST, &path, Some(webhook_rule())).await.expect(201);
    }
    let refused = s
        .ak(&key, Method::POST, &path, Some(webhook_rule()))
        .await
        .expect_error(409, "QuotaExceeded");
    assert_eq!(refused["message"], "the instance already has the maximum of 2 rules");
    s.ak(&key, Method::GET, &format!("/api/v1/instances/{other}/rules"), None)
        .await
        .expect_error(403, "Forbidden");
    let got = s
        .op(Method::GET, &format!("/api/v1/instances/{id}"), None)
        .await
        .expect(200);
    assert_eq!(got["usage"]["rules"], 2);
    let below = s
        .op(
            Method::PATCH,
            &format!("/api/v1/instances/{id}"),
            Some(json!({"quotas": {"maxRules": 1}})),
        )
        .await
        .expect_error(409, "QuotaBelowUsage");
    assert_eq!(below["field"], "quotas.maxRules");
}

fn stats(
    rule: &str,
    instance: &str,
    matched: u64,
    queued: u64,
    overflowing: bool,
    error: Option<(&str, i64)>,
) -> Value {
    let mut v = json!({
        "ruleId": rule, "instanceId": instance, "matched": matched, "delivered": matched - queued,
        "failed": 2, "dropped": 1, "deadLettered": 1, "queued": queued, "queuedBytes": queued * 100,
        "overflowing": overflowing
    });
    if let Some((e, at)) = error {
        v["lastError"] = json!(e);
        v["lastErrorAtMs"] = json!(at);
    }
    v
}

async fn beat(s: &TestServer, node: &(String, String), boot: &str, rules: Vec<Value>) {
    let mut hb = heartbeat(boot, 1);
    hb["rules"] = json!(rules);
    s.node(node, Method::POST, HEARTBEAT_PATH, Some(hb)).await.expect(204);
}

#[tokio::test]
async fn status_adds_up_the_brokers_heartbeats() {
    let s = TestServer::start().await;
    let id = setup(&s, "rules-status").await;
    let path = format!("/api/v1/instances/{id}/rules");
    let rule = s.op(Method::POST, &path, Some(webhook_rule())).await.expect(201)["ruleId"]
        .as_str()
        .unwrap()
        .to_string();
    let n1 = s.create_node("n1").await;
    let n2 = s.create_node("n2").await;
    beat(
        &s,
        &n1,
        "b1",
        vec![
            stats(&rule, &id, 10, 2, false, Some(("HTTP 503", 1_700_000_000_000))),
            // A rule the control plane does not have (deleted meanwhile) is skipped without failing
            // the heartbeat.
            stats("rule-00000000deadbeef", &id, 5, 0, false, None),
        ],
    )
    .await;
    beat(
        &s,
        &n2,
        "b2",
        vec![stats(&rule, &id, 7, 3, true, Some(("timeout", 1_700_000_001_000)))],
    )
    .await;
    let got = s.op(Method::GET, &format!("{path}/{rule}"), None).await.expect(200);
    let st = &got["status"];
    assert_eq!(
        (
            &st["matched"],
            &st["delivered"],
            &st["failed"],
            &st["dropped"],
            &st["deadLettered"]
        ),
        (&json!(17), &json!(12), &json!(4), &json!(2), &json!(2)),
        "{st}"
    );
    assert_eq!((&st["queued"], &st["queuedBytes"]), (&json!(5), &json!(500)));
    assert_eq!(st["overflowing"], true);
    assert_eq!(st["lastError"], "timeout");
    assert_eq!(st["lastErrorAt"], "2023-11-14T22:13:21Z");
    assert_eq!(st["reportingBrokers"], 2);
    let listed = s.op(Method::GET, &path, None).await.expect(200);
    assert_eq!(listed["rules"][0]["status"]["matched"], 17);

    // n2 no longer reports the rule (restarted; what it names under another instance's id is not
    // this rule): only n1's figures count.
    beat(
        &s,
        &n2,
        "b2-again",
        vec![stats(&rule, "mqtt-otherinstance", 50, 0, true, None)],
    )
    .await;
    let st = s.op(Method::GET, &format!("{path}/{rule}"), None).await.expect(200)["status"].clone();
    assert_eq!(
        (&st["matched"], &st["overflowing"], &st["reportingBrokers"]),
        (&json!(10), &json!(false), &json!(1))
    );
    assert_eq!(st["lastError"], "HTTP 503");
}

fn letter(rule: &str, instance: &str, n: i64) -> Value {
    json!({"ruleId": rule, "instanceId": instance, "atMs": 1_700_000_000_000_i64 + n, "status": 400,
        "error": format!("HTTP 400 #{n}"), "topic": "T/a/up", "clientId": "GID_dev@@@d1",
        "msgId": "0123456789ABCDEF0123456789ABCDEF", "bodyHead": "e30="})
}

#[tokio::test]
async fn dead_letters_are_kept_per_rule() {
    let s = TestServer::start().await;
    let id = setup(&s, "rules-dead").await;
    let path = format!("/api/v1/instances/{id}/rules");
    let rule = s.op(Method::POST, &path, Some(webhook_rule())).await.expect(201)["ruleId"]
        .as_str()
        .unwrap()
        .to_string();
    let node = s.create_node("dl-node").await;
    let batch = |letters: Vec<Value>| json!({"bootId": "b", "letters": letters});

    // Node credentials only.
    s.raw(Method::POST, DEAD_LETTERS_PATH, None, Some(batch(vec![])))
        .await
        .expect_error(401, "Unauthenticated");
    let mut letters: Vec<Value> = (0..105).map(|n| letter(&rule, &id, n)).collect();
    letters.push(letter("rule-00000000deadbeef", &id, 0));
    let mut long = letter(&rule, &id, 105);
    long["error"] = json!("x".repeat(5000));
    letters.push(long);
    s.node(&node, Method::POST, DEAD_LETTERS_PATH, Some(batch(letters)))
        .await
        .expect(204);
    let list = s
        .op(Method::GET, &format!("{path}/{rule}/dead-letters"), None)
        .await
        .expect(200);
    let dead = list["deadLetters"].as_array().unwrap();
    assert_eq!(dead.len(), 100, "the latest 100 are kept");
    assert_eq!(dead[0]["error"].as_str().unwrap().len(), 1024, "long texts are cut");
    assert_eq!(dead[1]["error"], "HTTP 400 #104");
    assert_eq!(dead[99]["error"], "HTTP 400 #6");
    assert_eq!(
        (
            &dead[1]["status"],
            &dead[1]["nodeId"],
            &dead[1]["clientId"],
            &dead[1]["bodyHead"]
        ),
        (&json!(400), &json!("dl-node"), &json!("GID_dev@@@d1"), &json!("e30="))
    );
    assert_eq!(dead[1]["at"], "2023-11-14T22:13:20.104Z");

    let too_many: Vec<Value> = (0..1001).map(|n| letter(&rule, &id, n)).collect();
    s.node(&node, Method::POST, DEAD_LETTERS_PATH, Some(batch(too_many)))
        .await
        .expect_invalid("letters");
    s.op(Method::GET, &format!("{path}/rule-00000000deadbeef/dead-letters"), None)
        .await
        .expect_error(404, "NotFound");
    // Deleting the rule deletes its letters.
    s.op(Method::DELETE, &format!("{path}/{rule}"), None).await.expect(204);
    let (left,): (i64,) = sqlx::query_as("select count(*) from rule_dead_letters")
        .fetch_one(&s.state.db)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

/// The commands after `after`, waiting up to 10 s for at least one.
async fn next_commands(s: &TestServer, node: &(String, String), after: i64) -> CommandBatch {
    serde_json::from_value(
        s.node(
            node,
            Method::GET,
            &format!("{COMMANDS_PATH}?after={after}&waitSecs=10"),
            None,
        )
        .await
        .expect(200),
    )
    .unwrap()
}

async fn latest_seq(s: &TestServer, node: &(String, String)) -> i64 {
    serde_json::from_value::<CommandBatch>(s.node(node, Method::GET, COMMANDS_PATH, None).await.expect(200))
        .unwrap()
        .latest_seq
}

#[tokio::test]
async fn test_rule_asks_one_live_broker_and_returns_its_answer() {
    let s = TestServer::start().await;
    let id = setup(&s, "rules-test").await;
    let path = format!("/api/v1/instances/{id}/rules");
    let rule = s.op(Method::POST, &path, Some(webhook_rule())).await.expect(201)["ruleId"]
        .as_str()
        .unwrap()
        .to_string();
    let test_path = format!("{path}/{rule}/test");
    let node = s.create_node("tester").await;
    // No broker has sent a heartbeat: nobody can run the test.
    s.op(Method::POST, &test_path, None)
        .await
        .expect_error(503, "NoBrokerAvailable");
    s.op(Method::POST, &format!("{path}/rule-00000000deadbeef/test"), None)
        .await
        .expect_error(404, "NotFound");

    let version = control_plane::broker_link::snapshot::build(&s.state.db, &s.state.secrets)
        .await
        .unwrap()
        .version;
    s.node(&node, Method::POST, HEARTBEAT_PATH, Some(heartbeat("boot", version)))
        .await
        .expect(204);
    // A live broker behind on configuration is not asked: the test must see the rule as saved.
    let other = s.create_node("other").await;
    s.node(
        &other,
        Method::POST,
        HEARTBEAT_PATH,
        Some(heartbeat("boot-o", version - 1)),
    )
    .await
    .expect(204);
    let after = latest_seq(&s, &node).await;

    // The broker: reads the command, answers through the real endpoint.
    let broker = async {
        let batch = next_commands(&s, &node, after).await;
        assert_eq!(batch.commands.len(), 1, "{batch:?}");
        let Command::TestRule {
            instance_id,
            rule_id,
            request_id,
            node_id,
            min_version,
        } = batch.commands[0].command.clone()
        else {
            panic!("{batch:?}")
        };
        assert_eq!(
            (instance_id.as_str(), rule_id.as_str(), node_id.as_str()),
            (id.as_str(), rule.as_str(), "tester")
        );
        assert!(min_version >= version);
        // Another node cannot answer for it, nor answer in its name.
        let forged = json!({"requestId": request_id, "nodeId": "tester", "delivered": true, "latencyMs": 1});
        s.node(&other, Method::POST, COMMAND_RESULTS_PATH, Some(forged))
            .await
            .expect_invalid("nodeId");
        let stray = json!({"requestId": request_id, "nodeId": "other", "delivered": true, "latencyMs": 1});
        s.node(&other, Method::POST, COMMAND_RESULTS_PATH, Some(stray))
            .await
            .expect(204);
        let answer = json!({"requestId": request_id, "nodeId": "tester", "delivered": false, "status": 401,
            "latencyMs": 42, "error": "HTTP 401 from https://hooks.example.com/in"});
        s.node(&node, Method::POST, COMMAND_RESULTS_PATH, Some(answer))
            .await
            .expect(204);
    };
    let (reply, ()) = tokio::join!(s.op(Method::POST, &test_path, None), broker);
    let result = reply.expect(200);
    assert_eq!(
        result,
        json!({"nodeId": "tester", "delivered": false, "status": 401, "latencyMs": 42,
            "error": "HTTP 401 from https://hooks.example.com/in"})
    );
}

#[tokio::test]
async fn test_rule_times_out_when_the_broker_does_not_answer() {
    let s = TestServer::start_with(|c| c.rule_test_timeout_secs = 1).await;
    let id = setup(&s, "rules-test-timeout").await;
    let path = format!("/api/v1/instances/{id}/rules");
    let rule = s.op(Method::POST, &path, Some(webhook_rule())).await.expect(201)["ruleId"]
        .as_str()
        .unwrap()
        .to_string();
    let node = s.create_node("mute").await;
    s.node(&node, Method::POST, HEARTBEAT_PATH, Some(heartbeat("boot", 1)))
        .await
        .expect(204);
    let started = std::time::Instant::now();
    let err = s
        .op(Method::POST, &format!("{path}/{rule}/test"), None)
        .await
        .expect_error(504, "RuleTestTimeout");
    assert!(started.elapsed() >= Duration::from_millis(950));
    assert!(err["message"].as_str().unwrap().contains("mute"), "{err}");
}

#[tokio::test]
async fn send_message_names_one_live_broker_for_the_rules() {
    let s = TestServer::start().await;
    let id = setup(&s, "rules-send").await;
    let node = s.create_node("live").await;
    let _silent = s.create_node("never-heard").await;
    let send = || async {
        s.op(
            Method::POST,
            &format!("/api/v1/instances/{id}/messages"),
            Some(json!({"topic": "T/a", "payload": "x"})),
        )
        .await
        .expect(200)
    };
    let after = latest_seq(&s, &node).await;
    send().await;
    let batch = next_commands(&s, &node, after).await;
    assert!(
        matches!(
            &batch.commands[0].command,
            Command::SendMessage { rules_node: None, .. }
        ),
        "no live broker yet: {batch:?}"
    );
    s.node(&node, Method::POST, HEARTBEAT_PATH, Some(heartbeat("boot", 1)))
        .await
        .expect(204);
    send().await;
    let batch = next_commands(&s, &node, batch.latest_seq).await;
    assert!(
        matches!(&batch.commands[0].command, Command::SendMessage { rules_node: Some(n), .. } if n == "live"),
        "{batch:?}"
    );
}
