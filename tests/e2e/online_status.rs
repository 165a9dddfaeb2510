//! The Alibaba-compatible online-status query on the broker's HTTP listener (docs/spec.md 4):
//! `GET /route/clientId/get?accessKey=&resource=&timestamp=&instanceId=&signature=`.

use reqwest::StatusCode;
use serde_json::Value;
use test_support::mqtt;

use e2e::{System, now_ms};

async fn query(s: &System, params: &[(&str, String)], secret: &str) -> (StatusCode, Value) {
    query_at(s.broker().http_port, params, secret).await
}

/// The signed query to the broker whose HTTP listener is on `port`.
pub(crate) async fn query_at(port: u16, params: &[(&str, String)], secret: &str) -> (StatusCode, Value) {
    let to_sign = common::signing::online_query_string_to_sign(params.iter().map(|(k, v)| (*k, v.as_str())));
    let signature = common::signing::hmac_sha1_base64(secret.as_bytes(), to_sign.as_bytes());
    let mut all: Vec<(&str, String)> = params.to_vec();
    all.push(("signature", signature));
    let url = format!("http://127.0.0.1:{port}/route/clientId/get");
    let res = reqwest::Client::new().get(url).query(&all).send().await.expect("query");
    let status = res.status();
    (status, res.json().await.expect("JSON answer"))
}

pub(crate) fn params(s: &System, client_id: &str, timestamp: i64) -> Vec<(&'static str, String)> {
    vec![
        ("accessKey", s.fx.access_key.clone()),
        ("resource", client_id.to_string()),
        ("timestamp", timestamp.to_string()),
        ("instanceId", s.fx.instance.clone()),
    ]
}

#[tokio::test]
async fn online_offline_and_refusals() {
    let s = System::up(1).await;
    let cid = s.fx.client_id("status");
    let (_client, _ev, _) = mqtt::connect(s.fx.signature_opts(&cid, s.broker().mqtt_port))
        .await
        .unwrap();

    let (status, body) = query(&s, &params(&s, &cid, now_ms()), &s.fx.secret).await;
    assert_eq!(
        (status, &body["code"], &body["success"], &body["online"]),
        (StatusCode::OK, &0.into(), &true.into(), &1.into()),
        "{body}"
    );

    let (status, body) = query(&s, &params(&s, &s.fx.client_id("absent"), now_ms()), &s.fx.secret).await;
    assert_eq!(
        (status, &body["code"], &body["online"]),
        (StatusCode::OK, &0.into(), &0.into()),
        "{body}"
    );

    let (status, body) = query(&s, &params(&s, &cid, now_ms()), "wrong-secret").await;
    assert_eq!(
        (status, &body["code"], &body["success"]),
        (StatusCode::FORBIDDEN, &2.into(), &false.into()),
        "{body}"
    );

    let stale = now_ms() - 6 * 60 * 1000;
    let (status, body) = query(&s, &params(&s, &cid, stale), &s.fx.secret).await;
    assert_eq!((status, &body["code"]), (StatusCode::FORBIDDEN, &4.into()), "{body}");

    let mut missing = params(&s, &cid, now_ms());
    missing.retain(|(k, _)| *k != "resource");
    let (status, body) = query(&s, &missing, &s.fx.secret).await;
    assert_eq!((status, &body["code"]), (StatusCode::BAD_REQUEST, &1.into()), "{body}");
}
