//! Alibaba's own API dialect: `tests/python/alibaba` calls every supported action through the
//! official Python SDK (`alibabacloud-onsmqtt20200420`, both signatures) and the legacy token server
//! with a client written from Alibaba's documented algorithm, against a server started here. The
//! Rust test below checks what the SDK cannot: that `/` is still the web console for everything
//! that is not an API call.

use reqwest::Method;

use crate::python::run_pytest;
use crate::server::TestServer;
use crate::server::now_ms;
use crate::sessions::{event, report_connect, send_events};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_and_legacy_token_server() {
    let s = TestServer::start().await;
    let id = s.create_instance("alibaba").await;
    let other = s.create_instance("alibaba-other").await;
    for instance in [&id, &other] {
        s.create_topic(instance, "T").await;
        s.create_group(instance, "GID_sdk").await;
    }
    let key = s.create_access_key(&[&id]).await;
    let other_key = s.create_access_key(&[&other]).await;
    // A client that a broker node reports online, for the session actions.
    let node = s.create_node("node-sdk").await;
    let online = "GID_sdk@@@online";
    report_connect(&s, &node, "boot-1", &id, online, "ch-sdk-1").await;
    // A client's history for QueryMqttTraceDevice: a clean session, a refused CONNECT, a keep-alive
    // timeout and a close from a broker that gives no reason.
    let traced = "GID_sdk@@@traced";
    let history = [
        ("connect", "ch-t1", None),
        ("disconnect", "ch-t1", None),
        ("tcpclean", "ch-t1", Some("disconnected by client")),
        ("tcpclean", "ch-t2", Some("not authorized")),
        ("connect", "ch-t3", None),
        ("tcpclean", "ch-t3", Some("no heart")),
        ("tcpclean", "ch-t4", None),
    ];
    let base = now_ms() - 60_000;
    let events = history
        .iter()
        .enumerate()
        .map(|(i, (kind, channel, reason))| {
            let mut e = event(&id, traced, kind, channel, &[]);
            e["time"] = (base + i as i64 * 1000).into();
            if let Some(r) = reason {
                e["reason"] = (*r).into();
            }
            e
        })
        .collect();
    send_events(&s, &node, "boot-1", events).await;

    let text = run_pytest(
        "tests/python/alibaba",
        vec![
            ("CP_URL", s.base.clone()),
            ("CP_INSTANCE_ID", id),
            ("CP_OTHER_INSTANCE_ID", other),
            ("CP_ACCESS_KEY_ID", key.0),
            ("CP_ACCESS_KEY_SECRET", key.1),
            ("CP_OTHER_ACCESS_KEY_ID", other_key.0),
            ("CP_OTHER_ACCESS_KEY_SECRET", other_key.1),
            ("CP_ONLINE_CLIENT_ID", online.to_string()),
            ("CP_TRACED_CLIENT_ID", traced.to_string()),
            ("CP_TRACE_BEGIN_MS", base.to_string()),
        ],
    )
    .await;
    // Printed with --no-capture: the SDK version and the time the Python tests took.
    println!("{text}");
}

#[tokio::test]
async fn the_console_keeps_everything_at_root_that_is_not_a_call() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<!doctype html><title>console</title>").unwrap();
    let path = dir.path().to_path_buf();
    let s = TestServer::start_with(|c| c.console_dir = path).await;
    let page = |res: reqwest::Response| async move { (res.status().as_u16(), res.text().await.unwrap()) };

    for uri in ["/", "/?lang=en", "/?action=lowercase-is-not-a-call"] {
        let (status, body) = page(s.http.get(format!("{}{uri}", s.base)).send().await.unwrap()).await;
        assert_eq!(status, 200, "{uri}");
        assert!(body.contains("<title>console</title>"), "{uri}: {body}");
    }
    let post_form = |body: &'static str| {
        s.http
            .post(format!("{}/", s.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    // A form POST without Action is not a call either (the console answers it as before).
    let res = post_form("lang=en").await.unwrap();
    assert!(!res.text().await.unwrap().contains("RequestId"));

    // With Action (query or form) or x-acs-action, it is a call: Alibaba's error shape.
    let unsigned = s.raw(Method::GET, "/?Action=ListInstances", None, None).await;
    assert_eq!(unsigned.status, 400, "{:?}", unsigned.body);
    assert_eq!(unsigned.body["Code"], "MissingParameter");
    assert!(unsigned.body["Message"].as_str().unwrap().contains("Version"));
    assert_eq!(
        unsigned.body["RequestId"],
        unsigned.headers["x-request-id"].to_str().unwrap()
    );
    assert_eq!(unsigned.body["HostId"], s.host);
    let res = post_form("Action=Nope&Version=2020-04-20").await.unwrap();
    assert_eq!(res.status(), 404);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["Code"], "InvalidAction.NotFound");
    let res = s
        .http
        .get(format!("{}/", s.base))
        .header("x-acs-action", "ListInstances")
        .header("x-acs-version", "2019-01-01")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["Code"], "InvalidVersion", "{body}");
    let res = s
        .http
        .delete(format!("{}/?Action=ListInstances&Version=2020-04-20", s.base))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["Code"], "UnsupportedHTTPMethod", "{body}");
}
