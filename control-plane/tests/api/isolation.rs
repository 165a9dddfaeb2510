//! Isolation: an AccessKey bound to instance A gets 403 on instance B for every operation, whether
//! B exists or not, and the error says nothing about B.

use reqwest::Method;
use serde_json::{Value, json};

use crate::server::{TestServer, now_ms};

/// Every instance-scoped operation, as (method, path suffix, body).
fn operations(b: &str) -> Vec<(Method, String, Option<Value>)> {
    let i = format!("/api/v1/instances/{b}");
    let exp = now_ms() + 600_000;
    vec![
        (Method::GET, i.clone(), None),
        (Method::PATCH, i.clone(), Some(json!({"description": "x"}))),
        (Method::DELETE, i.clone(), None),
        (Method::POST, format!("{i}/topics"), Some(json!({"topic": "X"}))),
        (Method::GET, format!("{i}/topics"), None),
        (Method::GET, format!("{i}/topics/T"), None),
        (Method::DELETE, format!("{i}/topics/T"), None),
        (Method::POST, format!("{i}/groups"), Some(json!({"groupId": "GID_xxx"}))),
        (Method::GET, format!("{i}/groups"), None),
        (Method::GET, format!("{i}/groups/GID_grp1"), None),
        (Method::DELETE, format!("{i}/groups/GID_grp1"), None),
        (
            Method::POST,
            format!("{i}/tokens"),
            Some(json!({"resources": "T", "actions": "R", "expireTime": exp})),
        ),
        (Method::POST, format!("{i}/tokens/revoke"), Some(json!({"token": "x"}))),
        (Method::POST, format!("{i}/tokens/query"), Some(json!({"token": "x"}))),
        (
            Method::POST,
            format!("{i}/device-credentials"),
            Some(json!({"clientId": "GID_grp1@@@d2"})),
        ),
        (Method::GET, format!("{i}/device-credentials/GID_grp1@@@d1"), None),
        (
            Method::POST,
            format!("{i}/device-credentials/GID_grp1@@@d1/refresh"),
            None,
        ),
        (Method::DELETE, format!("{i}/device-credentials/GID_grp1@@@d1"), None),
        (Method::GET, format!("{i}/device-credentials?groupId=GID_grp1"), None),
        (Method::GET, format!("{i}/sessions/GID_grp1@@@d1"), None),
        (
            Method::POST,
            format!("{i}/sessions/batch-query"),
            Some(json!({"clientIds": ["GID_grp1@@@d1"]})),
        ),
        (Method::POST, format!("{i}/sessions/GID_grp1@@@d1/close"), None),
        (
            Method::POST,
            format!("{i}/messages"),
            Some(json!({"topic": "T/a", "payload": "x"})),
        ),
        (Method::GET, format!("{i}/client-events?clientId=GID_grp1@@@d1"), None),
    ]
}

#[tokio::test]
async fn access_key_of_a_gets_403_on_b_for_every_operation() {
    let s = TestServer::start().await;
    let a = s.create_instance("inst-a").await;
    let b = s.create_instance("inst-b").await;
    for inst in [&a, &b] {
        s.create_topic(inst, "T").await;
        s.create_group(inst, "GID_grp1").await;
        s.op(
            Method::POST,
            &format!("/api/v1/instances/{inst}/device-credentials"),
            Some(json!({"clientId": "GID_grp1@@@d1"})),
        )
        .await
        .expect(201);
    }
    let key = s.create_access_key(&[&a]).await;
    let before = s
        .op(Method::GET, &format!("/api/v1/instances/{b}"), None)
        .await
        .expect(200);

    for target in [b.as_str(), "mqtt-000000000000", "not-an-instance"] {
        for (method, path, body) in operations(target) {
            let r = s.ak(&key, method.clone(), &path, body).await;
            assert_eq!(r.status, 403, "{method} {path}: {:?}", r.body);
            let e = r.expect_error(403, "Forbidden");
            assert!(!e.to_string().contains(&b), "error mentions B: {e}");
        }
    }
    // B is untouched.
    let after = s
        .op(Method::GET, &format!("/api/v1/instances/{b}"), None)
        .await
        .expect(200);
    assert_eq!(before["usage"], after["usage"]);
    s.op(
        Method::GET,
        &format!("/api/v1/instances/{b}/device-credentials/GID_grp1@@@d1"),
        None,
    )
    .await
    .expect(200);

    // The same operations on A are allowed (not 403), the operator-only ones aside.
    for (method, path, body) in operations(&a) {
        let r = s.ak(&key, method.clone(), &path, body).await;
        let operator_only = path == format!("/api/v1/instances/{a}") && method != Method::GET;
        assert_eq!(
            r.status == 403,
            operator_only,
            "{method} {path}: {} {:?}",
            r.status,
            r.body
        );
    }
}
