//! Onboarding in bulk: BatchRegisterDeviceCredential and BatchCreateGroupId answer per item, in the
//! order asked, do what they can in one configuration change, and refuse a call that is too large
//! or that names an instance the caller may not touch.

use reqwest::Method;
use serde_json::{Value, json};

use crate::server::TestServer;

async fn version(s: &TestServer) -> i64 {
    let (v,): (i64,) = sqlx::query_as("select version from config_version")
        .fetch_one(&s.state.db)
        .await
        .unwrap();
    v
}

fn codes(results: &Value) -> Vec<(String, Option<String>)> {
    results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let id = r["clientId"].as_str().or(r["groupId"].as_str()).unwrap().to_string();
            (id, r["error"]["code"].as_str().map(str::to_string))
        })
        .collect()
}

#[tokio::test]
async fn a_thousand_credentials_register_in_one_call_and_one_configuration_change() {
    let s = TestServer::start().await;
    let id = s.create_instance("bulk").await;
    s.create_group(&id, "GID_bulk").await;
    let key = s.create_access_key(&[&id]).await;
    let path = format!("/api/v1/instances/{id}/device-credentials/batch");
    // 64 characters each (the instance's default maximum): a body over the API's usual 64 KiB limit.
    let ids: Vec<String> = (0..1_000).map(|i| format!("GID_bulk@@@{i:0>53}")).collect();
    assert!(serde_json::to_vec(&json!({"clientIds": ids})).unwrap().len() > 64 * 1024);

    let v0 = version(&s).await;
    let r = s
        .ak(&key, Method::POST, &path, Some(json!({"clientIds": ids})))
        .await
        .expect(200);
    assert_eq!((r["registered"].as_u64(), r["failed"].as_u64()), (Some(1_000), Some(0)));
    assert_eq!(
        version(&s).await,
        v0 + 1,
        "one configuration change for the whole batch"
    );
    let first = &r["results"][0];
    assert_eq!(first["clientId"], ids[0].as_str());
    let secret = first["credential"]["deviceAccessKeySecret"].as_str().unwrap();
    assert!(secret.starts_with("DC."), "{first}");

    // Each is a credential like one registered alone: readable, with the secret shown at creation.
    let got = s
        .ak(
            &key,
            Method::GET,
            &format!("/api/v1/instances/{id}/device-credentials/{}", ids[0]),
            None,
        )
        .await
        .expect(200);
    assert_eq!(got["deviceAccessKeySecret"], secret);
    let snap = control_plane::broker_link::snapshot::build(&s.state.db, &s.state.secrets)
        .await
        .unwrap();
    assert_eq!(snap.content.instances[0].device_credentials.len(), 1_000);
}

#[tokio::test]
async fn each_item_gets_its_own_answer_in_the_order_asked() {
    let s = TestServer::start().await;
    let id = s.create_instance("bulk-items").await;
    s.create_group(&id, "GID_bulk").await;
    let path = format!("/api/v1/instances/{id}/device-credentials");
    s.op(Method::POST, &path, Some(json!({"clientId": "GID_bulk@@@old"})))
        .await
        .expect(201);

    let asked = [
        "GID_bulk@@@new1",
        "GID_bulk@@@old",
        "GID_none@@@x",
        "no-separator",
        "GID_bulk@@@new1",
        "GID_bulk@@@new2",
    ];
    let r = s
        .op(
            Method::POST,
            &format!("{path}/batch"),
            Some(json!({"clientIds": asked})),
        )
        .await
        .expect(200);
    let want: Vec<(String, Option<String>)> = [
        None,
        Some("AlreadyExists"),
        Some("InvalidParameter"),
        Some("InvalidParameter"),
        Some("InvalidParameter"),
        None,
    ]
    .iter()
    .zip(asked)
    .map(|(code, id)| (id.to_string(), code.map(str::to_string)))
    .collect();
    assert_eq!(codes(&r), want, "{r}");
    assert_eq!((r["registered"].as_u64(), r["failed"].as_u64()), (Some(2), Some(4)));
    assert_eq!(
        r["results"][1]["error"]["message"],
        "client ID \"GID_bulk@@@old\" already has a device credential"
    );
    assert_eq!(
        r["results"][2]["error"]["message"],
        "clientId: its group ID does not exist in the instance"
    );
    assert_eq!(r["results"][4]["error"]["message"], "clientIds: listed more than once");

    // Nothing to do: no configuration change.
    let v0 = version(&s).await;
    let r = s
        .op(
            Method::POST,
            &format!("{path}/batch"),
            Some(json!({"clientIds": ["GID_bulk@@@old"]})),
        )
        .await
        .expect(200);
    assert_eq!(r["failed"], 1);
    assert_eq!(version(&s).await, v0);
}

#[tokio::test]
async fn calls_too_large_or_for_another_instance_are_refused_whole() {
    let s = TestServer::start().await;
    let id = s.create_instance("bulk-limits").await;
    let other = s.create_instance("bulk-other").await;
    s.create_group(&id, "GID_bulk").await;
    let key = s.create_access_key(&[&id]).await;
    let path = format!("/api/v1/instances/{id}/device-credentials/batch");

    let too_many: Vec<String> = (0..1_001).map(|i| format!("GID_bulk@@@d{i}")).collect();
    let e = s
        .op(Method::POST, &path, Some(json!({"clientIds": too_many})))
        .await
        .expect_error(400, "InvalidParameter");
    assert_eq!(e["field"], "clientIds");
    s.op(Method::POST, &path, Some(json!({"clientIds": []})))
        .await
        .expect_error(400, "InvalidParameter");
    s.op(
        Method::POST,
        &format!("/api/v1/instances/{id}/groups/batch"),
        Some(json!({"groups": []})),
    )
    .await
    .expect_error(400, "InvalidParameter");
    // Larger than any valid call could be.
    let huge = "x".repeat(2 << 20);
    s.op(Method::POST, &path, Some(json!({"clientIds": [huge]})))
        .await
        .expect_error(413, "PayloadTooLarge");

    s.ak(
        &key,
        Method::POST,
        &format!("/api/v1/instances/{other}/device-credentials/batch"),
        Some(json!({"clientIds": ["GID_bulk@@@d1"]})),
    )
    .await
    .expect_error(403, "Forbidden");
    s.ak(
        &key,
        Method::POST,
        &format!("/api/v1/instances/{other}/groups/batch"),
        Some(json!({"groups": [{"groupId": "GID_x1"}]})),
    )
    .await
    .expect_error(403, "Forbidden");
}

#[tokio::test]
async fn groups_are_created_in_bulk_with_an_answer_each() {
    let s = TestServer::start().await;
    let id = s.create_instance("bulk-groups").await;
    s.create_group(&id, "GID_old").await;
    let path = format!("/api/v1/instances/{id}/groups/batch");

    let v0 = version(&s).await;
    let r = s
        .op(
            Method::POST,
            &path,
            Some(json!({"groups": [
                {"groupId": "GID_new1", "description": "first"},
                {"groupId": "GID_old"},
                {"groupId": "bad"},
                {"groupId": "GID_new1"},
                {"groupId": "GID_new2"},
            ]})),
        )
        .await
        .expect(200);
    let want: Vec<(String, Option<String>)> = [
        ("GID_new1", None),
        ("GID_old", Some("AlreadyExists")),
        ("bad", Some("InvalidParameter")),
        ("GID_new1", Some("InvalidParameter")),
        ("GID_new2", None),
    ]
    .iter()
    .map(|(g, c)| (g.to_string(), c.map(str::to_string)))
    .collect();
    assert_eq!(codes(&r), want, "{r}");
    assert_eq!((r["created"].as_u64(), r["failed"].as_u64()), (Some(2), Some(3)));
    assert_eq!(r["results"][0]["group"]["description"], "first");
    assert_eq!(version(&s).await, v0 + 1);

    let list = s
        .op(Method::GET, &format!("/api/v1/instances/{id}/groups"), None)
        .await
        .expect(200);
    let names: Vec<&str> = list["groupIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["groupId"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["GID_new1", "GID_new2", "GID_old"]);
}
