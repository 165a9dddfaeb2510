//! Configuration deltas on the snapshot poll (`deltas=true`): built from the change records, they
//! carry the settings of changed instances and device credentials one by one; the full snapshot
//! when the records do not reach back to the broker's version.

use common::config_digest;
use common::delta::{CONFIG_KIND_HEADER, Delta, KIND_DELTA, KIND_SNAPSHOT, fold};
use common::snapshot::Snapshot;
use common::sync::SNAPSHOT_PATH;
use reqwest::Method;
use serde_json::{Value, json};

use crate::server::{Reply, TestServer};

type Node = (String, String);

async fn poll(s: &TestServer, node: &Node, after: i64) -> Reply {
    s.node(
        node,
        Method::GET,
        &format!("{SNAPSHOT_PATH}?after={after}&deltas=true"),
        None,
    )
    .await
}

fn kind(r: &Reply) -> &str {
    r.headers.get(CONFIG_KIND_HEADER).unwrap().to_str().unwrap()
}

async fn delta(s: &TestServer, node: &Node, after: i64) -> Delta {
    let r = poll(s, node, after).await;
    assert_eq!(kind(&r), KIND_DELTA, "{:?}", r.body);
    let delta: Delta = serde_json::from_value(r.expect(200)).unwrap();
    delta.check_hash().unwrap();
    assert_eq!(delta.from_version, after);
    delta
}

async fn full(s: &TestServer, node: &Node) -> Snapshot {
    let r = s.node(node, Method::GET, SNAPSHOT_PATH, None).await;
    assert_eq!(kind(&r), KIND_SNAPSHOT);
    serde_json::from_value(r.expect(200)).unwrap()
}

async fn register(s: &TestServer, instance: &str, client_id: &str) -> Value {
    s.op(
        Method::POST,
        &format!("/api/v1/instances/{instance}/device-credentials"),
        Some(json!({"clientId": client_id})),
    )
    .await
    .expect(201)
}

#[tokio::test]
async fn a_delta_carries_only_what_changed_and_replays_to_the_snapshot() {
    let s = TestServer::start().await;
    let node = s.create_node("node-d").await;
    let a = s.create_instance("alpha").await;
    let b = s.create_instance("bravo").await;
    s.create_group(&a, "GID_alpha").await;
    s.create_group(&a, "GID_alpha2").await;
    let start = full(&s, &node).await;
    let mut version = start.version;
    let mut deltas = Vec::new();

    // One device: the delta holds it alone, no instance settings, nothing of the other instance.
    let cred = register(&s, &a, "GID_alpha@@@one").await;
    let d = delta(&s, &node, version).await;
    assert!(d.content.instances.is_empty(), "{:?}", d.content.instances);
    assert_eq!(d.content.devices.len(), 1);
    assert_eq!(d.content.devices[0].instance_id, a);
    let upserted = &d.content.devices[0].upserts;
    assert_eq!(upserted.len(), 1);
    assert_eq!(upserted[0].client_id, "GID_alpha@@@one");
    assert_eq!(
        upserted[0].device_access_key_id,
        cred["deviceAccessKeyId"].as_str().unwrap()
    );
    assert_eq!(
        upserted[0].device_access_key_secret,
        cred["deviceAccessKeySecret"].as_str().unwrap()
    );
    deltas.push(d.clone());
    version = d.version;

    // A delta from an older version covers every change since, once.
    register(&s, &a, "GID_alpha@@@two").await;
    register(&s, &a, "GID_alpha2@@@three").await;
    s.op(
        Method::DELETE,
        &format!("/api/v1/instances/{a}/device-credentials/GID_alpha@@@one"),
        None,
    )
    .await
    .expect(204);
    let d = delta(&s, &node, version).await;
    let changes = &d.content.devices[0];
    assert_eq!(changes.removed, ["GID_alpha@@@one"]);
    let mut upserted: Vec<&str> = changes.upserts.iter().map(|u| u.client_id.as_str()).collect();
    upserted.sort();
    assert_eq!(upserted, ["GID_alpha2@@@three", "GID_alpha@@@two"]);
    deltas.push(d.clone());
    version = d.version;

    // Settings of one instance: that instance alone, without its devices.
    s.create_topic(&b, "T").await;
    let d = delta(&s, &node, version).await;
    assert_eq!(d.content.instances.len(), 1);
    assert_eq!(d.content.instances[0].config.id, b);
    assert!(!d.content.instances[0].devices_included);
    assert!(d.content.devices.is_empty());
    deltas.push(d.clone());
    version = d.version;

    // A new instance comes whole, with the credentials registered since it was created.
    let c = s.create_instance("charlie").await;
    s.create_group(&c, "GID_charlie").await;
    register(&s, &c, "GID_charlie@@@1").await;
    let d = delta(&s, &node, version).await;
    let new = d.content.instances.iter().find(|i| i.config.id == c).unwrap();
    assert!(new.devices_included);
    assert_eq!(new.config.device_credentials.len(), 1);
    assert!(d.content.devices.is_empty(), "not twice: {:?}", d.content.devices);
    deltas.push(d.clone());
    version = d.version;

    // Deleting a group removes its credentials one by one; deleting an instance removes it.
    s.op(Method::DELETE, &format!("/api/v1/instances/{a}/groups/GID_alpha"), None)
        .await
        .expect(204);
    s.op(Method::DELETE, &format!("/api/v1/instances/{b}"), None)
        .await
        .expect(204);
    let d = delta(&s, &node, version).await;
    assert_eq!(d.content.removed_instances, [b]);
    assert_eq!(d.content.devices[0].removed, ["GID_alpha@@@two"]);
    deltas.push(d.clone());

    // The snapshot and the deltas fold into the snapshot of now, to the byte.
    assert_eq!(fold(start, deltas), full(&s, &node).await);
}

#[tokio::test]
async fn without_the_records_a_broker_gets_the_full_snapshot() {
    let s = TestServer::start().await;
    let node = s.create_node("node-e").await;
    let a = s.create_instance("alpha").await;
    let old = full(&s, &node).await.version;
    s.create_topic(&a, "T").await;

    // Deltas only when asked for.
    let r = s
        .node(&node, Method::GET, &format!("{SNAPSHOT_PATH}?after={old}"), None)
        .await;
    assert_eq!(kind(&r), KIND_SNAPSHOT);
    // A version the control plane never issued (its database was reset): the snapshot.
    assert_eq!(kind(&poll(&s, &node, old + 1000).await), KIND_SNAPSHOT);

    // Records pruned: a broker behind them gets the snapshot; one at the floor or later a delta.
    for table in ["config_changes", "config_device_changes"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "update {table} set changed_at = now() - interval '8 days'"
        )))
        .execute(&s.state.db)
        .await
        .unwrap();
    }
    let purged = control_plane::housekeeping::run_once(&s.state.db).await.unwrap();
    assert!(purged.config_changes > 0);
    let current = full(&s, &node).await.version;
    assert_eq!(kind(&poll(&s, &node, old).await), KIND_SNAPSHOT);
    s.create_topic(&a, "U").await;
    let d = delta(&s, &node, current).await;
    assert_eq!(d.content.instances[0].config.parent_topics, ["T", "U"]);
}

async fn heartbeat(s: &TestServer, node: &Node, applied_version: i64, digest: &str) {
    let beat = common::sync::Heartbeat {
        boot_id: "boot-1".into(),
        applied_version,
        config_digest: Some(digest.into()),
        ..Default::default()
    };
    s.node(
        node,
        Method::POST,
        common::sync::HEARTBEAT_PATH,
        Some(serde_json::to_value(beat).unwrap()),
    )
    .await
    .expect(204);
}

#[tokio::test]
async fn a_broker_whose_digest_differs_gets_the_full_snapshot_once() {
    let s = TestServer::start().await;
    let node = s.create_node("node-f").await;
    let a = s.create_instance("alpha").await;
    s.create_group(&a, "GID_alpha").await;
    register(&s, &a, "GID_alpha@@@1").await;
    let snap = full(&s, &node).await;
    s.create_topic(&a, "T").await;

    // The digest of what the control plane built at that version: deltas go on.
    let ours = config_digest::to_hex(config_digest::of_instances(&snap.content.instances));
    heartbeat(&s, &node, snap.version, &ours).await;
    assert_eq!(kind(&poll(&s, &node, snap.version).await), KIND_DELTA);
    // Another version's digest is not compared.
    heartbeat(&s, &node, snap.version - 1, &"0".repeat(32)).await;
    assert_eq!(kind(&poll(&s, &node, snap.version).await), KIND_DELTA);

    // A broker that holds something else at that version gets the full snapshot, then deltas again.
    heartbeat(&s, &node, snap.version, &"0".repeat(32)).await;
    assert_eq!(kind(&poll(&s, &node, snap.version).await), KIND_SNAPSHOT);
    assert_eq!(kind(&poll(&s, &node, snap.version).await), KIND_DELTA);
}

#[tokio::test]
async fn a_delta_too_large_to_be_worth_it_is_a_snapshot() {
    let s = TestServer::start().await;
    let node = s.create_node("node-g").await;
    let a = s.create_instance("alpha").await;
    let after = full(&s, &node).await.version;
    // One more recorded device change than a delta carries (as a long absence would leave).
    let mut tx = s.state.db.begin().await.unwrap();
    let (version,): (i64,) = sqlx::query_as("update config_version set version = version + 1 returning version")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "insert into config_device_changes (version, instance_id, client_id)
         select $1, $2, 'GID_alpha@@@' || g from generate_series(1, $3) g",
    )
    .bind(version)
    .bind(&a)
    .bind(100_001_i64)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let r = poll(&s, &node, after).await;
    assert_eq!(kind(&r), KIND_SNAPSHOT);
    assert_eq!(r.expect(200)["version"], version);
}
