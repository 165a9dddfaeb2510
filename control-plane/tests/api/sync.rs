//! The broker long-polls: snapshot (at once when behind, woken by a change through LISTEN/NOTIFY, 204
//! after waitSecs) and commands (kick and SendMessage in sequence order).

use std::time::{Duration, Instant};

use common::snapshot::Snapshot;
use common::sync::{COMMANDS_PATH, Command, CommandBatch, SNAPSHOT_PATH};
use reqwest::Method;
use serde_json::json;

use crate::server::TestServer;

#[tokio::test]
async fn snapshot_long_poll() {
    let s = TestServer::start().await;
    let node = s.create_node("node-a").await;
    let inst = s.create_instance("poll").await;

    // No `after`, or an old one: the snapshot at once.
    let snap: Snapshot = serde_json::from_value(
        s.node(&node, Method::GET, &format!("{SNAPSHOT_PATH}?waitSecs=30"), None)
            .await
            .expect(200),
    )
    .unwrap();
    snap.validate().unwrap();
    assert_eq!(snap.content.instances[0].id, inst);
    let v = snap.version;
    let started = Instant::now();
    let behind = s
        .node(
            &node,
            Method::GET,
            &format!("{SNAPSHOT_PATH}?after={}&waitSecs=30", v - 1),
            None,
        )
        .await
        .expect(200);
    assert_eq!(behind["version"], v);
    assert!(started.elapsed() < Duration::from_secs(2));

    // Up to date: 204 after waitSecs.
    let started = Instant::now();
    let r = s
        .node(
            &node,
            Method::GET,
            &format!("{SNAPSHOT_PATH}?after={v}&waitSecs=1"),
            None,
        )
        .await;
    let waited = started.elapsed();
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(3),
        "waited {waited:?}"
    );

    // A change while a poll waits wakes it promptly (LISTEN/NOTIFY through the shared listener).
    // Several rounds; the worst one must stay well under a second.
    let mut worst = Duration::ZERO;
    let mut version = v;
    for round in 0..5 {
        let path = format!("{SNAPSHOT_PATH}?after={version}&waitSecs=30");
        let poll = async {
            let reply = s.node(&node, Method::GET, &path, None).await;
            (reply, Instant::now())
        };
        let mutate = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let started = Instant::now();
            s.create_topic(&inst, &format!("T{round}")).await;
            started
        };
        let ((reply, answered_at), mutation_started) = tokio::join!(poll, mutate);
        // From sending the mutation (so including its own round trip) to the poll's answer.
        let latency = answered_at - mutation_started;
        let body = reply.expect(200);
        let snap: Snapshot = serde_json::from_value(body).unwrap();
        assert!(snap.version > version);
        assert!(snap.content.instances[0].parent_topics.contains(&format!("T{round}")));
        version = snap.version;
        worst = worst.max(latency);
    }
    println!("snapshot long-poll answered {worst:?} after the mutation was sent (worst of 5)");
    assert!(worst < Duration::from_millis(500), "wake-up took {worst:?}");

    // Another node polling the same version gets the same bytes (built once per version).
    let other = s.create_node("node-b").await;
    let a = s
        .node(&node, Method::GET, &format!("{SNAPSHOT_PATH}?after=0"), None)
        .await
        .expect(200);
    let b = s
        .node(&other, Method::GET, &format!("{SNAPSHOT_PATH}?after=0"), None)
        .await
        .expect(200);
    assert_eq!(a, b);
    assert_eq!(a["version"], version);

    // Bad query.
    s.node(&node, Method::GET, &format!("{SNAPSHOT_PATH}?after=x"), None)
        .await
        .expect_error(400, "InvalidParameter");
}

#[tokio::test]
async fn commands_long_poll() {
    let s = TestServer::start().await;
    let node = s.create_node("node-a").await;
    let inst = s.create_instance("cmds").await;
    s.create_topic(&inst, "T").await;

    // Without `after`: just the position.
    let start: CommandBatch = serde_json::from_value(
        s.node(&node, Method::GET, &format!("{COMMANDS_PATH}?waitSecs=5"), None)
            .await
            .expect(200),
    )
    .unwrap();
    assert_eq!((start.latest_seq, start.commands.len()), (0, 0));

    // Empty batch after waitSecs.
    let started = Instant::now();
    let empty: CommandBatch = serde_json::from_value(
        s.node(&node, Method::GET, &format!("{COMMANDS_PATH}?after=0&waitSecs=1"), None)
            .await
            .expect(200),
    )
    .unwrap();
    assert!(empty.commands.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(950));

    // A waiting poll gets SendMessage as soon as it is issued.
    let poll_path = format!("{COMMANDS_PATH}?after=0&waitSecs=30");
    let poll = s.node(&node, Method::GET, &poll_path, None);
    let poll = async { (poll.await, Instant::now()) };
    let send = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let sent = s
            .op(
                Method::POST,
                &format!("/api/v1/instances/{inst}/messages"),
                Some(json!({"topic": "T/a/b", "payload": "hello", "qos": 1})),
            )
            .await
            .expect(200);
        (sent, started)
    };
    let ((reply, answered_at), (sent, sent_at)) = tokio::join!(poll, send);
    println!(
        "commands long-poll answered {:?} after SendMessage was sent",
        answered_at - sent_at
    );
    let batch: CommandBatch = serde_json::from_value(reply.expect(200)).unwrap();
    let msg_id = sent["msgId"].as_str().unwrap();
    assert!(
        msg_id.len() == 32 && msg_id.chars().all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
        "MsgId {msg_id}"
    );
    assert_eq!(batch.commands.len(), 1);
    let first_seq = batch.commands[0].seq;
    assert_eq!(batch.latest_seq, first_seq);
    assert_eq!(sent["commandSeq"], first_seq);
    assert_eq!(
        batch.commands[0].command,
        Command::SendMessage {
            rules_node: None,
            instance_id: inst.clone(),
            topic: "T/a/b".into(),
            payload: "aGVsbG8=".into(),
            qos: 1,
            msg_id: msg_id.into(),
        }
    );

    // A kick (the client is online on some node) and a Base64 message follow with higher seqs.
    crate::sessions::report_connect(&s, &node, "boot-1", &inst, "GID_g@@@d1", "c1").await;
    s.op(
        Method::POST,
        &format!("/api/v1/instances/{inst}/sessions/GID_g@@@d1/close"),
        None,
    )
    .await
    .expect(202);
    s.op(
        Method::POST,
        &format!("/api/v1/instances/{inst}/messages"),
        Some(json!({"topic": "T/p2p/GID_g@@@d1", "payload": "AAEC", "base64": true})),
    )
    .await
    .expect(200);
    let batch: CommandBatch = serde_json::from_value(
        s.node(
            &node,
            Method::GET,
            &format!("{COMMANDS_PATH}?after={first_seq}&waitSecs=5"),
            None,
        )
        .await
        .expect(200),
    )
    .unwrap();
    assert_eq!(batch.commands.len(), 2);
    assert!(batch.commands[0].seq > first_seq && batch.commands[1].seq > batch.commands[0].seq);
    assert_eq!(batch.latest_seq, batch.commands[1].seq);
    assert_eq!(
        batch.commands[0].command,
        Command::CloseConnection {
            instance_id: inst.clone(),
            client_id: "GID_g@@@d1".into()
        }
    );
    match &batch.commands[1].command {
        Command::SendMessage { payload, qos, .. } => assert_eq!((payload.as_str(), *qos), ("AAEC", 0)),
        other => panic!("unexpected {other:?}"),
    }

    // `after` beyond anything issued (a reset database): answered at once with the real position.
    let reset: CommandBatch = serde_json::from_value(
        s.node(
            &node,
            Method::GET,
            &format!("{COMMANDS_PATH}?after=999999&waitSecs=30"),
            None,
        )
        .await
        .expect(200),
    )
    .unwrap();
    assert_eq!(reset.latest_seq, batch.latest_seq);
}

#[tokio::test]
async fn send_message_validation() {
    let s = TestServer::start().await;
    let inst = s.create_instance("sendv").await;
    s.create_topic(&inst, "T").await;
    let path = format!("/api/v1/instances/{inst}/messages");
    let send = |body: serde_json::Value| s.op(Method::POST, &path, Some(body));
    send(json!({"topic": "Nope/a", "payload": "x"}))
        .await
        .expect_invalid("topic");
    send(json!({"topic": "T/+", "payload": "x"}))
        .await
        .expect_invalid("topic");
    send(json!({"topic": "T/#", "payload": "x"}))
        .await
        .expect_invalid("topic");
    send(json!({"topic": format!("T/{}", "a".repeat(63)), "payload": "x"}))
        .await
        .expect_invalid("topic");
    send(json!({"topic": "", "payload": "x"})).await.expect_invalid("topic");
    send(json!({"topic": "T/a", "payload": "x", "qos": 2}))
        .await
        .expect_invalid("qos");
    send(json!({"topic": "T/a", "payload": "!!", "base64": true}))
        .await
        .expect_invalid("payload");
    send(json!({"topic": "T/a", "payload": "x".repeat(64 * 1024 + 1)}))
        .await
        .expect_invalid("payload");
    send(json!({"topic": "T/a"})).await.expect_invalid("payload");
    s.op(
        Method::POST,
        "/api/v1/instances/mqtt-000000000000/messages",
        Some(json!({"topic": "T/a", "payload": "x"})),
    )
    .await
    .expect_error(404, "NotFound");
    // An AccessKey bound to the instance may send; the MsgIds differ.
    let key = s.create_access_key(&[&inst]).await;
    let a = s
        .ak(&key, Method::POST, &path, Some(json!({"topic": "T/a", "payload": "x"})))
        .await
        .expect(200);
    let b = send(json!({"topic": "T", "payload": ""})).await.expect(200);
    assert_ne!(a["msgId"], b["msgId"]);
}

#[tokio::test]
async fn a_change_on_one_replica_wakes_polls_on_another() {
    let a = TestServer::start().await;
    let b = TestServer::start_with(|c| {
        c.database_url = a.state.config.database_url.clone();
        c.master_key = a.state.config.master_key.clone();
    })
    .await;
    let node = a.create_node("node-a").await;
    let inst = a.create_instance("replicas").await;
    let version = a.node(&node, Method::GET, SNAPSHOT_PATH, None).await.expect(200)["version"]
        .as_i64()
        .unwrap();

    // Replica B answers with a delta made from the change records replica A wrote.
    let snap_path = format!("{SNAPSHOT_PATH}?after={version}&waitSecs=30&deltas=true");
    let cmd_path = format!("{COMMANDS_PATH}?after=0&waitSecs=30");
    let polls = async {
        tokio::join!(
            b.node(&node, Method::GET, &snap_path, None),
            b.node(&node, Method::GET, &cmd_path, None)
        )
    };
    let changes = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        a.create_topic(&inst, "T").await;
        a.op(
            Method::POST,
            &format!("/api/v1/instances/{inst}/messages"),
            Some(json!({"topic": "T", "payload": "x"})),
        )
        .await
        .expect(200);
        started
    };
    let ((snap, cmds), started) = tokio::join!(polls, changes);
    println!(
        "polls on replica B answered {:?} after the changes on replica A began",
        started.elapsed()
    );
    assert_eq!(
        snap.headers[common::delta::CONFIG_KIND_HEADER],
        common::delta::KIND_DELTA
    );
    let delta = snap.expect(200);
    assert!(delta["version"].as_i64().unwrap() > version);
    assert_eq!(delta["instances"][0]["config"]["parentTopics"], json!(["T"]));
    let batch: CommandBatch = serde_json::from_value(cmds.expect(200)).unwrap();
    assert_eq!(batch.commands.len(), 1);
    assert!(started.elapsed() < Duration::from_secs(1));
}
