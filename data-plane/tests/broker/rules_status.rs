//! Status notification rules feeding Alibaba's documented receiver logic: a client is online
//! while some channel of it has had `connect` and no `tcpclean`, through reconnects and takeovers.

use std::collections::HashMap;

use common::rules::{RuleSource, RuleTarget, WebhookFormat};

use crate::rules::{SECRET, rule, start, webhook, with_rules};
use crate::support::{GROUP, v3};
use test_support::receiver::{Received, Receiver};

/// Alibaba's receiver logic over the events received so far, for one client.
fn online(events: &[Received], client: &str) -> bool {
    let mut channels: HashMap<String, (bool, bool)> = HashMap::new();
    for e in events.iter().map(Received::json).filter(|e| e["clientId"] == client) {
        let ch = channels
            .entry(e["channelId"].as_str().unwrap().to_string())
            .or_default();
        match e["eventType"].as_str().unwrap() {
            "connect" => ch.0 = true,
            "tcpclean" => ch.1 = true,
            "disconnect" => {}
            other => panic!("unexpected event type {other}"),
        }
    }
    channels.values().any(|(connect, clean)| *connect && !*clean)
}

#[tokio::test]
async fn status_events_keep_a_receiver_right_through_reconnects_and_takeovers() {
    let hook = Receiver::start(SECRET).await;
    let status = rule(
        7,
        RuleSource::Status {
            group_ids: vec![GROUP.into()],
        },
        webhook(&hook.url(), WebhookFormat::Json),
    );
    // A rule of another group gets nothing of this client.
    let other = rule(
        8,
        RuleSource::Status {
            group_ids: vec!["GID_other".into()],
        },
        RuleTarget::Webhook {
            url: format!("{}?other", hook.url()),
            format: WebhookFormat::Json,
            secret: None,
            timeout_ms: 1_000,
        },
    );
    let b = start(&with_rules(vec![status.clone(), other], true));
    let client = format!("{GROUP}@@@dev");

    let (c1, mut ev1, _) = v3::connect(b.sig_opts(&client)).await.unwrap();
    let got = hook.wait_for(1, 10).await;
    assert!(online(&got, &client));
    let first = got[0].json();
    assert_eq!(first["eventType"], "connect");
    assert_eq!(first["clientId"], client.as_str());
    assert_eq!(first["channelId"].as_str().unwrap().len(), 32);
    assert!(first["clientIp"].as_str().unwrap().starts_with("127.0.0.1"));
    assert!((first["time"].as_i64().unwrap() - common::time::now_ms()).abs() < 60_000);
    assert!(got[0].signed);

    // Takeover: a second connection with the same client ID; the first one's channel is cleaned.
    let (c2, mut ev2, _) = v3::connect(b.sig_opts(&client)).await.unwrap();
    let _ = v3::drain(&mut ev1, 0.3).await;
    let got = hook.wait_for(3, 10).await;
    assert!(online(&got, &client), "the new channel is online: {got:?}");

    // A clean disconnect: disconnect + tcpclean.
    c2.disconnect().await.unwrap();
    let _ = v3::drain(&mut ev2, 0.3).await;
    let got = hook.wait_for(5, 10).await;
    assert!(!online(&got, &client));
    assert!(got.iter().any(|r| r.json()["eventType"] == "disconnect"));

    // Back, then gone without DISCONNECT (the TCP connection just drops).
    let (c3, ev3, _) = v3::connect(b.sig_opts(&client)).await.unwrap();
    let got = hook.wait_for(6, 10).await;
    assert!(online(&got, &client));
    drop((c3, ev3));
    let got = hook.wait_for(7, 10).await;
    assert!(!online(&got, &client));
    drop(c1);

    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let got = hook.got();
    assert_eq!(got.len(), 7, "{got:?}");
    assert!(got.iter().all(|r| r.signed), "only the group's rule delivered");
}
