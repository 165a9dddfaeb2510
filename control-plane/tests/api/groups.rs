//! Group IDs: prefix, length, characters, case, uniqueness, get/list/delete.

use reqwest::Method;
use serde_json::json;

use crate::server::TestServer;

#[tokio::test]
async fn crud_and_name_rules() {
    let s = TestServer::start().await;
    let id = s.create_instance("groups").await;
    let path = format!("/api/v1/instances/{id}/groups");
    let longest = format!("GID_{}", "a".repeat(60));
    for good in ["GID_abc", "GID-abc", "GID_A-b_9", longest.as_str()] {
        s.op(Method::POST, &path, Some(json!({"groupId": good})))
            .await
            .expect(201);
    }
    let too_long = format!("GID_{}", "a".repeat(61));
    for bad in [
        "GID_ab",
        "gid_abc",
        "Gid_abcd",
        "GIDabcd",
        "XID_abc",
        "abcdefg",
        "GID_a.c",
        "GID_a c",
        "",
        too_long.as_str(),
    ] {
        s.op(Method::POST, &path, Some(json!({"groupId": bad})))
            .await
            .expect_invalid("groupId");
    }
    let dup = s
        .op(Method::POST, &path, Some(json!({"groupId": "GID_abc"})))
        .await
        .expect_error(409, "AlreadyExists");
    assert_eq!(dup["message"], "group ID \"GID_abc\" already exists");

    let got = s.op(Method::GET, &format!("{path}/GID_abc"), None).await.expect(200);
    assert_eq!(got["groupId"], "GID_abc");
    let list = s.op(Method::GET, &path, None).await.expect(200);
    assert_eq!(list["groupIds"].as_array().unwrap().len(), 4);
    s.op(Method::DELETE, &format!("{path}/GID_abc"), None).await.expect(204);
    s.op(Method::GET, &format!("{path}/GID_abc"), None)
        .await
        .expect_error(404, "NotFound");
    s.op(Method::DELETE, &format!("{path}/GID_abc"), None)
        .await
        .expect_error(404, "NotFound");
}

#[tokio::test]
async fn deleting_a_group_removes_its_device_credentials() {
    let s = TestServer::start().await;
    let id = s.create_instance("groups2").await;
    s.create_group(&id, "GID_dev").await;
    s.op(
        Method::POST,
        &format!("/api/v1/instances/{id}/device-credentials"),
        Some(json!({"clientId": "GID_dev@@@d1"})),
    )
    .await
    .expect(201);
    s.op(Method::DELETE, &format!("/api/v1/instances/{id}/groups/GID_dev"), None)
        .await
        .expect(204);
    s.op(
        Method::GET,
        &format!("/api/v1/instances/{id}/device-credentials/GID_dev@@@d1"),
        None,
    )
    .await
    .expect_error(404, "NotFound");
}
