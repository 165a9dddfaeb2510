//! ApplyToken / RevokeToken / QueryToken: resources, actions, the 60 s minimum, the 30-day cap,
//! offline verification with the snapshot's public key, revocation.

use common::quotas::TOKEN_MAX_VALIDITY_MS;
use common::token::{TokenAction, TokenVerifier};
use reqwest::Method;
use serde_json::{Value, json};

use crate::server::{TestServer, now_ms};

struct Fixture {
    s: TestServer,
    id: String,
    key: (String, String),
}

async fn fixture() -> Fixture {
    let s = TestServer::start().await;
    let id = s.create_instance("tokens").await;
    s.create_topic(&id, "T").await;
    s.create_topic(&id, "U").await;
    let key = s.create_access_key(&[&id]).await;
    Fixture { s, id, key }
}

impl Fixture {
    fn path(&self, suffix: &str) -> String {
        format!("/api/v1/instances/{}/tokens{suffix}", self.id)
    }

    async fn apply(&self, body: Value) -> crate::server::Reply {
        self.s.ak(&self.key, Method::POST, &self.path(""), Some(body)).await
    }
}

#[tokio::test]
async fn apply_verify_offline_and_query() {
    let f = fixture().await;
    let exp = now_ms() + 3_600_000;
    let b = f
        .apply(json!({"resources": "T/a/+,U/#,T", "actions": "R,W", "expireTime": exp}))
        .await
        .expect(200);
    assert_eq!(b["expireTime"], exp);
    let token = b["token"].as_str().unwrap();

    let snapshot = control_plane::broker_link::snapshot::build(&f.s.state.db, &f.s.state.secrets)
        .await
        .unwrap();
    let verifier = TokenVerifier::new(&snapshot.content.token_keys);
    let claims = verifier.verify(token, now_ms()).unwrap();
    assert_eq!(claims.iid, f.id);
    assert_eq!(claims.ak, f.key.0);
    assert_eq!(claims.act, TokenAction::RW);
    assert_eq!(claims.res, vec!["T/a/+", "U/#", "T"]);
    assert_eq!(claims.exp_ms, exp);
    assert!(claims.covers_topic("T/a/x") && claims.covers_topic("U/x/y") && !claims.covers_topic("T/b/x"));

    for (actions, act) in [("R", TokenAction::R), ("W", TokenAction::W), ("W,R", TokenAction::RW)] {
        let b = f
            .apply(json!({"resources": "T", "actions": actions, "expireTime": exp}))
            .await
            .expect(200);
        assert_eq!(
            verifier.verify(b["token"].as_str().unwrap(), now_ms()).unwrap().act,
            act
        );
    }

    let q =
        f.s.ak(&f.key, Method::POST, &f.path("/query"), Some(json!({"token": token})))
            .await
            .expect(200);
    assert_eq!(
        (q["valid"].clone(), q["status"].clone(), q["expireTime"].clone()),
        (json!(true), json!("valid"), json!(exp))
    );
    let q =
        f.s.ak(
            &f.key,
            Method::POST,
            &f.path("/query"),
            Some(json!({"token": "forged.token.x"})),
        )
        .await
        .expect(200);
    assert_eq!(
        (q["valid"].clone(), q["status"].clone()),
        (json!(false), json!("invalid"))
    );
}

#[tokio::test]
async fn expiry_minimum_and_cap() {
    let f = fixture().await;
    let res = json!("T");
    f.apply(json!({"resources": res, "actions": "R", "expireTime": now_ms() + 59_000}))
        .await
        .expect_invalid("expireTime");
    f.apply(json!({"resources": res, "actions": "R", "expireTime": now_ms() - 1}))
        .await
        .expect_invalid("expireTime");
    f.apply(json!({"resources": res, "actions": "R", "expireTime": now_ms() + 62_000}))
        .await
        .expect(200);

    let before = now_ms();
    let far = before + 365 * 24 * 3600 * 1000;
    let b = f
        .apply(json!({"resources": res, "actions": "R", "expireTime": far}))
        .await
        .expect(200);
    let effective = b["expireTime"].as_i64().unwrap();
    assert!(
        effective >= before + TOKEN_MAX_VALIDITY_MS && effective <= now_ms() + TOKEN_MAX_VALIDITY_MS,
        "{effective}"
    );
    let verifier = TokenVerifier::new([f.s.state.token_signer.public_key()]);
    assert_eq!(
        verifier.verify(b["token"].as_str().unwrap(), now_ms()).unwrap().exp_ms,
        effective
    );
    // Exactly 30 days is kept as asked.
    let exact = now_ms() + TOKEN_MAX_VALIDITY_MS - 5_000;
    let b = f
        .apply(json!({"resources": res, "actions": "R", "expireTime": exact}))
        .await
        .expect(200);
    assert_eq!(b["expireTime"], exact);
}

#[tokio::test]
async fn resources_and_actions_rules() {
    let f = fixture().await;
    let exp = now_ms() + 600_000;
    let hundred: Vec<String> = (0..100).map(|i| format!("T/{i}")).collect();
    f.apply(json!({"resources": hundred.join(","), "actions": "R", "expireTime": exp}))
        .await
        .expect(200);
    let hundred_one: Vec<String> = (0..101).map(|i| format!("T/{i}")).collect();
    f.apply(json!({"resources": hundred_one.join(","), "actions": "R", "expireTime": exp}))
        .await
        .expect_invalid("resources");
    for bad in [
        "",
        "X/a",
        "T,X",
        "T/#/a",
        "T/a#",
        "+/a",
        "#",
        "T,,U",
        &format!("T/{}", "a".repeat(63)),
    ] {
        f.apply(json!({"resources": bad, "actions": "R", "expireTime": exp}))
            .await
            .expect_invalid("resources");
    }
    for bad in ["", "X", "RW,", "r"] {
        f.apply(json!({"resources": "T", "actions": bad, "expireTime": exp}))
            .await
            .expect_invalid("actions");
    }
    f.apply(json!({"resources": "T", "expireTime": exp}))
        .await
        .expect_invalid("actions");
    f.apply(json!({"resources": "T", "actions": "R", "expireTime": "soon"}))
        .await
        .expect_invalid("expireTime");
    f.apply(json!({"resources": "T", "actions": "R", "expireTime": exp, "accessKeyId": "LTAIother"}))
        .await
        .expect_invalid("accessKeyId");

    // Operators must say which bound AccessKey the token is for.
    let path = f.path("");
    f.s.op(
        Method::POST,
        &path,
        Some(json!({"resources": "T", "actions": "R", "expireTime": exp})),
    )
    .await
    .expect_invalid("accessKeyId");
    let unbound = f.s.create_access_key(&[]).await;
    f.s.op(
        Method::POST,
        &path,
        Some(json!({"resources": "T", "actions": "R", "expireTime": exp, "accessKeyId": unbound.0})),
    )
    .await
    .expect_invalid("accessKeyId");
    f.s.op(
        Method::POST,
        &path,
        Some(json!({"resources": "T", "actions": "R", "expireTime": exp, "accessKeyId": f.key.0})),
    )
    .await
    .expect(200);
    f.s.op(
        Method::POST,
        "/api/v1/instances/mqtt-000000000000/tokens",
        Some(json!({"resources": "T", "actions": "R", "expireTime": exp, "accessKeyId": f.key.0})),
    )
    .await
    .expect_error(404, "NotFound");
}

#[tokio::test]
async fn revoke_and_query() {
    let f = fixture().await;
    let exp = now_ms() + 600_000;
    let token = f
        .apply(json!({"resources": "T/#", "actions": "W", "expireTime": exp}))
        .await
        .expect(200)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let other = f
        .apply(json!({"resources": "T/#", "actions": "W", "expireTime": exp}))
        .await
        .expect(200)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let v0 = control_plane::broker_link::snapshot::build(&f.s.state.db, &f.s.state.secrets)
        .await
        .unwrap()
        .version;

    f.s.ak(&f.key, Method::POST, &f.path("/revoke"), Some(json!({"token": token})))
        .await
        .expect(204);
    let q =
        f.s.ak(&f.key, Method::POST, &f.path("/query"), Some(json!({"token": token})))
            .await
            .expect(200);
    assert_eq!(
        (q["valid"].clone(), q["status"].clone()),
        (json!(false), json!("revoked"))
    );
    let q =
        f.s.op(Method::POST, &f.path("/query"), Some(json!({"token": other})))
            .await
            .expect(200);
    assert_eq!(q["valid"], true, "only the revoked token is affected");
    // Revoking twice is fine; unknown tokens are 404; the body must name the token.
    f.s.ak(&f.key, Method::POST, &f.path("/revoke"), Some(json!({"token": token})))
        .await
        .expect(204);
    f.s.ak(&f.key, Method::POST, &f.path("/revoke"), Some(json!({"token": "abc"})))
        .await
        .expect_error(404, "NotFound");
    f.s.ak(&f.key, Method::POST, &f.path("/revoke"), Some(json!({})))
        .await
        .expect_invalid("token");

    let snap = control_plane::broker_link::snapshot::build(&f.s.state.db, &f.s.state.secrets)
        .await
        .unwrap();
    assert!(snap.version > v0, "revocation bumps the config version");
    let inst = snap.content.instances.iter().find(|i| i.id == f.id).unwrap();
    let jti = TokenVerifier::new(&snap.content.token_keys)
        .verify(&token, now_ms())
        .unwrap()
        .jti;
    assert_eq!(inst.revoked_tokens.len(), 1);
    assert_eq!(inst.revoked_tokens[0].jti, jti);
    assert_eq!(inst.revoked_tokens[0].exp_ms, exp);

    // A token of another instance is invalid here, and cannot be revoked through this instance.
    let id2 = f.s.create_instance("tokens-2").await;
    f.s.create_topic(&id2, "T").await;
    let p2 = format!("/api/v1/instances/{id2}/tokens");
    let t2 =
        f.s.op(
            Method::POST,
            &p2,
            Some(json!({"resources": "T", "actions": "R", "expireTime": exp, "accessKeyId": f.key.0})),
        )
        .await;
    t2.expect_invalid("accessKeyId");
    let q =
        f.s.op(Method::POST, &format!("{p2}/query"), Some(json!({"token": other})))
            .await
            .expect(200);
    assert_eq!(q["status"], "invalid");
    f.s.op(Method::POST, &format!("{p2}/revoke"), Some(json!({"token": other})))
        .await
        .expect_error(404, "NotFound");
}
