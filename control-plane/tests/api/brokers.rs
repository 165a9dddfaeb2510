//! Broker nodes: credentials (CreateBrokerNode, CP_BROKER_NODES), node authentication on the sync
//! endpoints, and ListBrokers states from heartbeats.

use std::time::Duration;

use clap::Parser;
use common::sync::{HEARTBEAT_PATH, SNAPSHOT_PATH};
use control_plane::config::Cli;
use reqwest::Method;
use serde_json::{Value, json};

use crate::server::TestServer;

pub fn heartbeat(boot_id: &str, applied_version: i64) -> Value {
    json!({
        "bootId": boot_id, "softwareVersion": "test", "appliedVersion": applied_version,
        "appliedHash": "h", "lastError": null, "connections": 3, "subscriptions": 5,
        "messagesInPerSec": 1.5, "messagesOutPerSec": 2.5, "startedAtMs": 1_700_000_000_000_i64
    })
}

async fn current_version(s: &TestServer) -> i64 {
    s.op(Method::GET, "/api/v1/brokers", None).await.expect(200)["currentVersion"]
        .as_i64()
        .unwrap()
}

fn node_of<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["nodeId"] == id)
        .unwrap_or_else(|| panic!("no node {id} in {list}"))
}

#[tokio::test]
async fn node_authentication() {
    let s = TestServer::start().await;
    let node = s.create_node("node-a").await;
    assert!(node.1.len() >= 32, "secret too short: {}", node.1);
    let path = format!("{SNAPSHOT_PATH}?waitSecs=0");

    s.node(&node, Method::GET, &path, None).await.expect(200);
    let wrong = (node.0.clone(), format!("{}x", node.1));
    s.node(&wrong, Method::GET, &path, None)
        .await
        .expect_error(401, "Unauthenticated");
    let unknown = ("node-zz".to_string(), node.1.clone());
    s.node(&unknown, Method::GET, &path, None)
        .await
        .expect_error(401, "Unauthenticated");
    s.raw(Method::GET, &path, None, None)
        .await
        .expect_error(401, "Unauthenticated");
    s.raw(Method::GET, &path, Some(&format!("Bearer {}", s.admin_token)), None)
        .await
        .expect_error(401, "Unauthenticated");
    // Node credentials open nothing else.
    s.node(&node, Method::GET, "/api/v1/instances", None)
        .await
        .expect_error(401, "Unauthenticated");

    // Duplicate and invalid ids; only the secret hash is stored.
    let dup = s
        .op(Method::POST, "/api/v1/brokers", Some(json!({"nodeId": "node-a"})))
        .await
        .expect_error(409, "AlreadyExists");
    assert_eq!(dup["message"], "broker node \"node-a\" already exists");
    s.op(Method::POST, "/api/v1/brokers", Some(json!({"nodeId": "a:b"})))
        .await
        .expect_invalid("nodeId");
    let generated = s.op(Method::POST, "/api/v1/brokers", Some(json!({}))).await.expect(201);
    assert!(generated["nodeId"].as_str().unwrap().starts_with("node-"));
    let (stored,): (Vec<u8>,) = sqlx::query_as("select secret_sha256 from broker_nodes where id = 'node-a'")
        .fetch_one(&s.state.db)
        .await
        .unwrap();
    assert_eq!(stored, control_plane::auth::node::hash_secret(&node.1));

    // Deleted: 401 at once, and 404 on a second delete.
    s.op(Method::DELETE, "/api/v1/brokers/node-a", None).await.expect(204);
    s.node(&node, Method::GET, &path, None)
        .await
        .expect_error(401, "Unauthenticated");
    s.op(Method::DELETE, "/api/v1/brokers/node-a", None)
        .await
        .expect_error(404, "NotFound");

    // Broker management is for operators only.
    let inst = s.create_instance("brk").await;
    let key = s.create_access_key(&[&inst]).await;
    s.ak(&key, Method::GET, "/api/v1/brokers", None)
        .await
        .expect_error(403, "Forbidden");
    s.ak(&key, Method::POST, "/api/v1/brokers", Some(json!({})))
        .await
        .expect_error(403, "Forbidden");
}

#[tokio::test]
async fn heartbeats_drive_list_brokers_states() {
    let s = TestServer::start_with(|c| c.broker_silent_secs = 1).await;
    let a = s.create_node("node-a").await;
    let b = s.create_node("node-b").await;
    s.create_node("node-c").await;
    let v = current_version(&s).await;

    s.node(&a, Method::POST, HEARTBEAT_PATH, Some(heartbeat("boot-a", v)))
        .await
        .expect(204);
    s.node(&b, Method::POST, HEARTBEAT_PATH, Some(heartbeat("boot-b", v - 1)))
        .await
        .expect(204);
    let list = s.op(Method::GET, "/api/v1/brokers", None).await.expect(200);
    let na = node_of(&list, "node-a");
    assert_eq!(na["state"], "in_sync", "{na}");
    assert_eq!(na["appliedVersion"], v);
    assert_eq!(na["bootId"], "boot-a");
    assert_eq!(
        (na["connections"].as_i64(), na["subscriptions"].as_i64()),
        (Some(3), Some(5))
    );
    assert_eq!(na["messagesOutPerSec"], 2.5);
    assert!(na["lastHeartbeatAt"].is_string());
    assert_eq!(node_of(&list, "node-b")["state"], "lagging");
    assert_eq!(node_of(&list, "node-c")["state"], "never_seen");

    // A mutation makes the in-sync node lag until it reports the new version.
    s.create_instance("bump").await;
    let list = s.op(Method::GET, "/api/v1/brokers", None).await.expect(200);
    assert_eq!(node_of(&list, "node-a")["state"], "lagging");
    let v2 = list["currentVersion"].as_i64().unwrap();
    assert!(v2 > v);
    let mut hb = heartbeat("boot-a", v2);
    hb["lastError"] = json!("snapshot refused: hash mismatch");
    s.node(&a, Method::POST, HEARTBEAT_PATH, Some(hb)).await.expect(204);
    let list = s.op(Method::GET, "/api/v1/brokers", None).await.expect(200);
    assert_eq!(node_of(&list, "node-a")["state"], "in_sync");
    assert_eq!(node_of(&list, "node-a")["lastError"], "snapshot refused: hash mismatch");

    // Silent after the (here 1 s) threshold without heartbeats.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let list = s.op(Method::GET, "/api/v1/brokers", None).await.expect(200);
    assert_eq!(node_of(&list, "node-a")["state"], "silent");
    assert_eq!(node_of(&list, "node-b")["state"], "silent");

    // Malformed heartbeat: 400 naming the field.
    s.node(&a, Method::POST, HEARTBEAT_PATH, Some(json!({"bootId": "x"})))
        .await
        .expect_error(400, "InvalidParameter");
}

#[tokio::test]
async fn broker_nodes_option_creates_and_updates_nodes() {
    // The env var and the flag are the same clap argument.
    let cli = Cli::try_parse_from(["control-plane", "--broker-nodes", "node-1:secret1,node-2:secret2"]).unwrap();
    let config = cli.options.resolve().unwrap();
    assert_eq!(config.broker_nodes, vec!["node-1:secret1", "node-2:secret2"]);

    let s = TestServer::start_with(|c| c.broker_nodes = config.broker_nodes.clone()).await;
    let path = format!("{SNAPSHOT_PATH}?waitSecs=0");
    let n1 = ("node-1".to_string(), "secret1".to_string());
    let n2 = ("node-2".to_string(), "secret2".to_string());
    s.node(&n1, Method::GET, &path, None).await.expect(200);
    s.node(&n2, Method::GET, &path, None).await.expect(200);
    let list = s.op(Method::GET, "/api/v1/brokers", None).await.expect(200);
    assert_eq!(node_of(&list, "node-1")["state"], "never_seen");

    // A restart with a new secret updates the node (the old secret stops working).
    control_plane::auth::node::bootstrap(&s.state.db, &["node-1:rotated".to_string()])
        .await
        .unwrap();
    s.node(&n1, Method::GET, &path, None)
        .await
        .expect_error(401, "Unauthenticated");
    s.node(&("node-1".into(), "rotated".into()), Method::GET, &path, None)
        .await
        .expect(200);

    let bad = control_plane::auth::node::bootstrap(&s.state.db, &["no-secret".to_string()]).await;
    assert!(bad.is_err());
    let err = control_plane::auth::node::bootstrap(&s.state.db, &["bad id:topsecret".to_string()])
        .await
        .unwrap_err()
        .to_string();
    assert!(!err.contains("topsecret"), "secret leaked into the error: {err}");
}

#[tokio::test]
async fn cluster_link_from_heartbeats() {
    let s = TestServer::start().await;
    let alone = s.create_node("alone").await;
    let member = s.create_node("member").await;
    let v = current_version(&s).await;
    s.node(&alone, Method::POST, HEARTBEAT_PATH, Some(heartbeat("boot-1", v)))
        .await
        .expect(204);
    let mut hb = heartbeat("boot-2", v);
    hb["clusterLink"] = json!(true);
    s.node(&member, Method::POST, HEARTBEAT_PATH, Some(hb.clone()))
        .await
        .expect(204);
    let list = s.op(Method::GET, "/api/v1/brokers", None).await.expect(200);
    assert_eq!(node_of(&list, "member")["clusterLink"], "up");
    // A broker that runs alone sends no clusterLink and shows none.
    assert!(node_of(&list, "alone").get("clusterLink").is_none(), "{list}");

    // The link goes down, then the broker stops being a cluster member (restarted alone).
    hb["clusterLink"] = json!(false);
    s.node(&member, Method::POST, HEARTBEAT_PATH, Some(hb))
        .await
        .expect(204);
    let list = s.op(Method::GET, "/api/v1/brokers", None).await.expect(200);
    assert_eq!(node_of(&list, "member")["clusterLink"], "down");
    s.node(&member, Method::POST, HEARTBEAT_PATH, Some(heartbeat("boot-3", v)))
        .await
        .expect(204);
    let list = s.op(Method::GET, "/api/v1/brokers", None).await.expect(200);
    assert!(node_of(&list, "member").get("clusterLink").is_none(), "{list}");

    // Not a boolean: 400.
    let mut bad = heartbeat("boot-3", v);
    bad["clusterLink"] = json!("up");
    s.node(&member, Method::POST, HEARTBEAT_PATH, Some(bad))
        .await
        .expect_error(400, "InvalidParameter");
}
