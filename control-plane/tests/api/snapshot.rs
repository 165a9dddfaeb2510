//! The broker snapshot: content from the database with decrypted secrets, a version bumped by every
//! mutation that changes it, and nothing a broker would refuse.

use reqwest::Method;
use serde_json::json;

use crate::server::TestServer;

#[tokio::test]
async fn snapshot_content_and_version_bumps() {
    let s = TestServer::start().await;
    let build = || control_plane::broker_link::snapshot::build(&s.state.db, &s.state.secrets);
    let v0 = build().await.unwrap().version;
    let id = s.create_instance("snap").await;
    let v1 = build().await.unwrap().version;
    assert!(v1 > v0);
    s.create_topic(&id, "T").await;
    s.create_group(&id, "GID_grp1").await;
    let key = s.create_access_key(&[&id]).await;
    s.op(
        Method::POST,
        &format!("/api/v1/instances/{id}/device-credentials"),
        Some(json!({"clientId": "GID_grp1@@@d1"})),
    )
    .await
    .expect(201);
    let snap = build().await.unwrap();
    assert!(snap.version >= v1 + 4, "each mutation bumps the version");
    snap.validate().unwrap();
    assert_eq!(snap.content.token_keys.len(), 1);
    assert_eq!(&snap.content.token_keys[0], s.state.token_signer.public_key());
    let inst = &snap.content.instances[0];
    assert_eq!((inst.id.as_str(), inst.name.as_str()), (id.as_str(), "snap"));
    assert_eq!(inst.parent_topics, vec!["T"]);
    assert_eq!(inst.group_ids, vec!["GID_grp1"]);
    assert_eq!(inst.access_keys.len(), 1);
    assert_eq!(
        (
            &inst.access_keys[0].access_key_id,
            &inst.access_keys[0].access_key_secret
        ),
        (&key.0, &key.1)
    );
    assert!(inst.access_keys[0].enabled);
    assert_eq!(inst.device_credentials.len(), 1);
    assert_eq!(inst.quotas, common::quotas::Quotas::default());

    // Reads do not bump; disabling a key does and shows up.
    let v = snap.version;
    s.op(Method::GET, &format!("/api/v1/instances/{id}"), None)
        .await
        .expect(200);
    assert_eq!(build().await.unwrap().version, v);
    s.op(
        Method::PATCH,
        &format!("/api/v1/access-keys/{}", key.0),
        Some(json!({"enabled": false})),
    )
    .await
    .expect(200);
    let snap = build().await.unwrap();
    assert!(snap.version > v);
    assert!(!snap.content.instances[0].access_keys[0].enabled);

    // Secrets are encrypted at rest.
    let raw: Vec<(Vec<u8>,)> = sqlx::query_as("select secret_enc from access_keys")
        .fetch_all(&s.state.db)
        .await
        .unwrap();
    assert!(!raw[0].0.windows(key.1.len()).any(|w| w == key.1.as_bytes()));
}
