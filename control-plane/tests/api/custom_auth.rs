//! Custom authentication over REST: identities (secret never shown, usernames unique across
//! instances), permissions, the connect blacklist, their quotas, paging, and what the snapshot
//! gives brokers.

use reqwest::Method;
use serde_json::json;

use crate::server::TestServer;

#[tokio::test]
async fn identities_permissions_and_blacklist() {
    let s = TestServer::start().await;
    let id = s.create_instance("custom").await;
    let other = s.create_instance("custom-other").await;
    let key = s.create_access_key(&[&id]).await;
    let base = format!("/api/v1/instances/{id}/custom-auth");
    let identities = format!("{base}/identities");

    let fleet = s
        .ak(
            &key,
            Method::POST,
            &identities,
            Some(json!({"username": "fleet", "secret": "s3cret", "identityType": "USER", "signMode": "ORIGIN"})),
        )
        .await
        .expect(201);
    assert_eq!(
        (fleet["username"].as_str(), fleet["identityType"].as_str()),
        (Some("fleet"), Some("USER"))
    );
    assert!(fleet.get("secret").is_none(), "{fleet}");
    s.ak(
        &key,
        Method::POST,
        &identities,
        Some(json!({"username": "pump-7", "secret": "k", "identityType": "CLIENT", "clientId": "pump7", "signMode": "SIGNED"})),
    )
    .await
    .expect(201);

    // Refusals, each naming its field.
    for (body, field) in [
        (
            json!({"username": "a b", "secret": "x", "identityType": "USER", "signMode": "ORIGIN"}),
            "username",
        ),
        (
            json!({"username": "ok", "secret": "", "identityType": "USER", "signMode": "ORIGIN"}),
            "secret",
        ),
        (
            json!({"username": "ok", "secret": "x", "identityType": "CLIENT", "signMode": "ORIGIN"}),
            "clientId",
        ),
        (
            json!({"username": "ok", "secret": "x", "identityType": "USER", "clientId": "c", "signMode": "ORIGIN"}),
            "clientId",
        ),
    ] {
        s.ak(&key, Method::POST, &identities, Some(body))
            .await
            .expect_invalid(field);
    }
    s.ak(
        &key,
        Method::POST,
        &identities,
        Some(json!({"username": "ok", "secret": "x", "identityType": "ADMIN", "signMode": "ORIGIN"})),
    )
    .await
    .expect(400);
    s.ak(
        &key,
        Method::POST,
        &identities,
        Some(json!({"username": "ok", "secret": "x", "identityType": "USER", "signMode": "ORIGIN", "extra": 1})),
    )
    .await
    .expect(400);
    // Unique across instances (the operator may use both).
    s.op(
        Method::POST,
        &format!("/api/v1/instances/{other}/custom-auth/identities"),
        Some(json!({"username": "fleet", "secret": "y", "identityType": "USER", "signMode": "ORIGIN"})),
    )
    .await
    .expect_error(409, "AlreadyExists");
    // An AccessKey reaches only its instances.
    s.ak(
        &key,
        Method::GET,
        &format!("/api/v1/instances/{other}/custom-auth/identities"),
        None,
    )
    .await
    .expect_error(403, "Forbidden");

    let updated = s
        .ak(
            &key,
            Method::PUT,
            &format!("{identities}/fleet"),
            Some(json!({"secret": "new", "identityType": "USER", "signMode": "SIGNED"})),
        )
        .await
        .expect(200);
    assert_eq!(updated["signMode"], "SIGNED");
    s.ak(
        &key,
        Method::PUT,
        &format!("{identities}/nobody"),
        Some(json!({"secret": "new", "identityType": "USER", "signMode": "SIGNED"})),
    )
    .await
    .expect_error(404, "NotFound");

    // Paging: one per page.
    let first = s
        .ak(&key, Method::GET, &format!("{identities}?size=1"), None)
        .await
        .expect(200);
    assert_eq!(first["identities"][0]["username"], "fleet");
    let token = first["nextToken"].as_str().unwrap();
    let second = s
        .ak(
            &key,
            Method::GET,
            &format!("{identities}?size=1&nextToken={token}"),
            None,
        )
        .await
        .expect(200);
    assert_eq!(second["identities"][0]["clientId"], "pump7");
    assert!(second.get("nextToken").is_none(), "{second}");
    s.ak(&key, Method::GET, &format!("{identities}?nextToken=x"), None)
        .await
        .expect_invalid("nextToken");

    let permissions = format!("{base}/permissions");
    let allow = json!({"identityType": "USER", "identity": "fleet", "topic": "T/#", "permitAction": "PUB_SUB", "effect": "ALLOW"});
    s.ak(&key, Method::POST, &permissions, Some(allow.clone()))
        .await
        .expect(201);
    s.ak(&key, Method::POST, &permissions, Some(allow))
        .await
        .expect_error(409, "AlreadyExists");
    s.ak(
        &key,
        Method::POST,
        &permissions,
        Some(json!({"identityType": "USER", "identity": "fleet", "topic": "$SYS/#", "permitAction": "SUB", "effect": "ALLOW"})),
    )
    .await
    .expect_invalid("topic");
    s.ak(
        &key,
        Method::PUT,
        &permissions,
        Some(json!({"identityType": "USER", "identity": "fleet", "topic": "T/#", "permitAction": "PUB", "effect": "DENY"})),
    )
    .await
    .expect(200);
    let listed = s
        .ak(&key, Method::GET, &format!("{permissions}?identity=fleet"), None)
        .await
        .expect(200);
    assert_eq!(listed["permissions"][0]["effect"], "DENY");

    let blacklist = format!("{base}/connect-blacklist");
    s.ak(&key, Method::POST, &blacklist, Some(json!({"clientId": "stolen"})))
        .await
        .expect(204);
    s.ak(&key, Method::POST, &blacklist, Some(json!({"clientId": "stolen"})))
        .await
        .expect_error(409, "AlreadyExists");

    // The snapshot gives brokers everything, the secrets opened.
    let snap = control_plane::broker_link::snapshot::build(&s.state.db, &s.state.secrets)
        .await
        .unwrap();
    let inst = snap.content.instances.iter().find(|i| i.id == id).unwrap();
    let custom = &inst.custom_auth;
    assert_eq!(
        custom
            .identities
            .iter()
            .map(|i| (i.username.as_str(), i.secret.as_str()))
            .collect::<Vec<_>>(),
        [("fleet", "new"), ("pump-7", "k")]
    );
    assert_eq!(custom.permissions.len(), 1);
    assert_eq!(custom.connect_blacklist, ["stolen"]);
    snap.validate().unwrap();

    // Deleting.
    s.ak(&key, Method::DELETE, &format!("{identities}/pump-7"), None)
        .await
        .expect(204);
    s.ak(&key, Method::DELETE, &format!("{identities}/pump-7"), None)
        .await
        .expect_error(404, "NotFound");
    s.ak(
        &key,
        Method::DELETE,
        &format!("{permissions}?identityType=USER&identity=fleet&topic=T%2F%23"),
        None,
    )
    .await
    .expect(204);
    s.ak(
        &key,
        Method::DELETE,
        &format!("{permissions}?identityType=USER&identity=fleet"),
        None,
    )
    .await
    .expect_invalid("topic");
    s.ak(&key, Method::DELETE, &format!("{blacklist}/stolen"), None)
        .await
        .expect(204);
    let empty = s.ak(&key, Method::GET, &blacklist, None).await.expect(200);
    assert_eq!(empty["entries"], json!([]));
}

#[tokio::test]
async fn the_connection_quota_bounds_identities_and_entries() {
    let s = TestServer::start().await;
    let id = s.create_instance("custom-quota").await;
    s.op(
        Method::PATCH,
        &format!("/api/v1/instances/{id}"),
        Some(json!({"quotas": {"maxConnections": 2}})),
    )
    .await
    .expect(200);
    let base = format!("/api/v1/instances/{id}/custom-auth");
    for n in 0..3 {
        let reply = s
            .op(
                Method::POST,
                &format!("{base}/identities"),
                Some(json!({"username": format!("u{n}"), "secret": "x", "identityType": "USER", "signMode": "ORIGIN"})),
            )
            .await;
        if n < 2 {
            reply.expect(201);
        } else {
            reply.expect_error(409, "QuotaExceeded");
        }
    }
    // Permissions and blacklist entries share one bound.
    s.op(
        Method::POST,
        &format!("{base}/permissions"),
        Some(json!({"identityType": "CLIENT", "identity": "c1", "topic": "T/+", "permitAction": "SUB", "effect": "ALLOW"})),
    )
    .await
    .expect(201);
    s.op(
        Method::POST,
        &format!("{base}/connect-blacklist"),
        Some(json!({"clientId": "c2"})),
    )
    .await
    .expect(204);
    s.op(
        Method::POST,
        &format!("{base}/connect-blacklist"),
        Some(json!({"clientId": "c3"})),
    )
    .await
    .expect_error(409, "QuotaExceeded");
    // A lower limit would strand what exists: refused, naming the quota.
    let below = s
        .op(
            Method::PATCH,
            &format!("/api/v1/instances/{id}"),
            Some(json!({"quotas": {"maxConnections": 1}})),
        )
        .await
        .expect_error(409, "QuotaBelowUsage");
    assert_eq!(below["field"], "quotas.maxConnections");
    let shorter = s
        .op(
            Method::PATCH,
            &format!("/api/v1/instances/{id}"),
            Some(json!({"quotas": {"maxTopicLength": 2}})),
        )
        .await
        .expect_error(409, "QuotaBelowUsage");
    assert_eq!(shorter["field"], "quotas.maxTopicLength");
}
