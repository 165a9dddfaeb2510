//! Every configuration version records which instances it changed (`config_changes`), in the same
//! transaction as the change; `*` stands for all instances.

use reqwest::Method;
use serde_json::json;

use crate::server::TestServer;

/// The instances recorded for versions after `after`, in order.
async fn changes_after(s: &TestServer, after: i64) -> Vec<(i64, String)> {
    sqlx::query_as("select version, instance_id from config_changes where version > $1 order by version, instance_id")
        .bind(after)
        .fetch_all(&s.state.db)
        .await
        .unwrap()
}

async fn version(s: &TestServer) -> i64 {
    let (v,): (i64,) = sqlx::query_as("select version from config_version")
        .fetch_one(&s.state.db)
        .await
        .unwrap();
    v
}

#[tokio::test]
async fn each_version_names_the_instances_it_changed() {
    let s = TestServer::start().await;
    // The token signing key created at start-up concerns every instance.
    assert_eq!(changes_after(&s, 0).await, vec![(version(&s).await, "*".to_string())]);

    let v0 = version(&s).await;
    let a = s.create_instance("alpha").await;
    let b = s.create_instance("beta").await;
    s.create_topic(&a, "T").await;
    assert_eq!(
        changes_after(&s, v0).await,
        vec![(v0 + 1, a.clone()), (v0 + 2, b.clone()), (v0 + 3, a.clone())]
    );

    // An AccessKey changes the instances it is bound to, before and after a rebinding.
    let v1 = version(&s).await;
    let key = s.create_access_key(&[&a]).await;
    s.op(
        Method::PATCH,
        &format!("/api/v1/access-keys/{}", key.0),
        Some(json!({"instanceIds": [&b]})),
    )
    .await
    .expect(200);
    let mut rebound = vec![(v1 + 2, a.clone()), (v1 + 2, b.clone())];
    rebound.sort();
    let mut expected = vec![(v1 + 1, a.clone())];
    expected.extend(rebound);
    assert_eq!(changes_after(&s, v1).await, expected);

    // A failed change records nothing and keeps the version.
    let v2 = version(&s).await;
    s.op(
        Method::POST,
        &format!("/api/v1/instances/{a}/topics"),
        Some(json!({"topic": "T"})),
    )
    .await
    .expect_error(409, "AlreadyExists");
    assert_eq!(version(&s).await, v2);
    assert!(changes_after(&s, v2).await.is_empty());

    s.op(Method::DELETE, &format!("/api/v1/instances/{b}"), None)
        .await
        .expect(204);
    assert_eq!(changes_after(&s, v2).await, vec![(v2 + 1, b)]);
}
