//! Device credentials: register, get, refresh, unregister, list client IDs by group (paged).

use reqwest::Method;
use serde_json::json;

use crate::server::TestServer;

#[tokio::test]
async fn lifecycle() {
    let s = TestServer::start().await;
    let id = s.create_instance("devices").await;
    s.create_group(&id, "GID_dev").await;
    let key = s.create_access_key(&[&id]).await;
    let path = format!("/api/v1/instances/{id}/device-credentials");

    let c = s
        .ak(&key, Method::POST, &path, Some(json!({"clientId": "GID_dev@@@d1"})))
        .await
        .expect(201);
    let key_id = c["deviceAccessKeyId"].as_str().unwrap().to_string();
    let secret = c["deviceAccessKeySecret"].as_str().unwrap().to_string();
    assert!(key_id.starts_with("DC.") && secret.starts_with("DC."), "{c}");
    assert_eq!(c["clientId"], "GID_dev@@@d1");
    // One credential per client ID.
    let dup = s
        .ak(&key, Method::POST, &path, Some(json!({"clientId": "GID_dev@@@d1"})))
        .await
        .expect_error(409, "AlreadyExists");
    assert_eq!(
        dup["message"],
        "client ID \"GID_dev@@@d1\" already has a device credential"
    );

    let g = s
        .ak(&key, Method::GET, &format!("{path}/GID_dev@@@d1"), None)
        .await
        .expect(200);
    assert_eq!(
        (g["deviceAccessKeyId"].as_str(), g["deviceAccessKeySecret"].as_str()),
        (Some(&*key_id), Some(&*secret))
    );

    let r = s
        .ak(&key, Method::POST, &format!("{path}/GID_dev@@@d1/refresh"), None)
        .await
        .expect(200);
    assert_eq!(r["deviceAccessKeyId"], key_id.as_str());
    let new_secret = r["deviceAccessKeySecret"].as_str().unwrap();
    assert!(new_secret.starts_with("DC.") && new_secret != secret);
    let g = s
        .op(Method::GET, &format!("{path}/GID_dev@@@d1"), None)
        .await
        .expect(200);
    assert_eq!(g["deviceAccessKeySecret"], new_secret);

    // The snapshot carries the decrypted secret for brokers.
    let snap = control_plane::broker_link::snapshot::build(&s.state.db, &s.state.secrets)
        .await
        .unwrap();
    let dc = &snap.content.instances[0].device_credentials[0];
    assert_eq!(
        (dc.client_id.as_str(), dc.device_access_key_secret.as_str()),
        ("GID_dev@@@d1", new_secret)
    );

    s.ak(&key, Method::DELETE, &format!("{path}/GID_dev@@@d1"), None)
        .await
        .expect(204);
    s.ak(&key, Method::GET, &format!("{path}/GID_dev@@@d1"), None)
        .await
        .expect_error(404, "NotFound");
    s.ak(&key, Method::DELETE, &format!("{path}/GID_dev@@@d1"), None)
        .await
        .expect_error(404, "NotFound");
    s.ak(&key, Method::POST, &format!("{path}/GID_dev@@@d1/refresh"), None)
        .await
        .expect_error(404, "NotFound");
}

#[tokio::test]
async fn client_id_rules() {
    let s = TestServer::start().await;
    let id = s.create_instance("devices").await;
    s.create_group(&id, "GID_dev").await;
    let path = format!("/api/v1/instances/{id}/device-credentials");
    let longest = format!("GID_dev@@@{}", "d".repeat(54));
    assert_eq!(longest.len(), 64);
    s.op(Method::POST, &path, Some(json!({"clientId": longest})))
        .await
        .expect(201);
    s.op(Method::POST, &path, Some(json!({"clientId": "GID_dev@@@a-b_C9"})))
        .await
        .expect(201);
    let too_long = format!("GID_dev@@@{}", "d".repeat(55));
    for bad in [
        "GID_dev",
        "GID_dev@@d1",
        "GID_dev@@@",
        "GID_dev@@@d.1",
        "gid_dev@@@d1",
        "GID_dev@@@a@@@b",
        "",
        too_long.as_str(),
    ] {
        s.op(Method::POST, &path, Some(json!({"clientId": bad})))
            .await
            .expect_invalid("clientId");
    }
    // The group must exist.
    s.op(Method::POST, &path, Some(json!({"clientId": "GID_other@@@d1"})))
        .await
        .expect_invalid("clientId");
    s.op(Method::POST, &path, Some(json!({})))
        .await
        .expect_invalid("clientId");
}

#[tokio::test]
async fn list_client_ids_by_group_paged() {
    let s = TestServer::start().await;
    let id = s.create_instance("devices").await;
    s.create_group(&id, "GID_aaa").await;
    s.create_group(&id, "GID_bbb").await;
    let path = format!("/api/v1/instances/{id}/device-credentials");
    for i in 0..5 {
        s.op(
            Method::POST,
            &path,
            Some(json!({"clientId": format!("GID_aaa@@@d{i}")})),
        )
        .await
        .expect(201);
    }
    s.op(Method::POST, &path, Some(json!({"clientId": "GID_bbb@@@x"})))
        .await
        .expect(201);

    let p1 = s
        .op(Method::GET, &format!("{path}?groupId=GID_aaa&pageSize=2"), None)
        .await
        .expect(200);
    assert_eq!(p1["clientIds"], json!(["GID_aaa@@@d0", "GID_aaa@@@d1"]));
    assert_eq!((p1["total"].clone(), p1["pageNo"].clone()), (json!(5), json!(1)));
    let p3 = s
        .op(
            Method::GET,
            &format!("{path}?groupId=GID_aaa&pageSize=2&pageNo=3"),
            None,
        )
        .await
        .expect(200);
    assert_eq!(p3["clientIds"], json!(["GID_aaa@@@d4"]));
    let p9 = s
        .op(
            Method::GET,
            &format!("{path}?groupId=GID_aaa&pageSize=2&pageNo=9"),
            None,
        )
        .await
        .expect(200);
    assert_eq!((p9["clientIds"].clone(), p9["total"].clone()), (json!([]), json!(5)));
    let all = s
        .op(Method::GET, &format!("{path}?groupId=GID_aaa"), None)
        .await
        .expect(200);
    assert_eq!(all["clientIds"].as_array().unwrap().len(), 5);
    assert!(!all.to_string().contains("DC."), "a list never returns secrets");

    s.op(Method::GET, &path, None).await.expect_invalid("groupId");
    s.op(Method::GET, &format!("{path}?groupId=GID_aaa&pageSize=0"), None)
        .await
        .expect_invalid("pageSize");
    s.op(Method::GET, &format!("{path}?groupId=GID_aaa&pageSize=101"), None)
        .await
        .expect_invalid("pageSize");
    s.op(Method::GET, &format!("{path}?groupId=GID_aaa&pageNo=0"), None)
        .await
        .expect_invalid("pageNo");
    s.op(Method::GET, &format!("{path}?groupId=GID_aaa&pageNo=x"), None)
        .await
        .expect_invalid("query");
}
