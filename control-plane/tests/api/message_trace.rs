//! QueryMessageTrace without brokers: the records live on the brokers, so with none live the answer
//! is empty and says no broker was asked; its own validation still applies.

use reqwest::Method;

use crate::server::TestServer;

#[tokio::test]
async fn without_a_live_broker_nothing_is_asked_and_nothing_found() {
    let s = TestServer::start().await;
    let id = s.create_instance("trace").await;
    let path = format!("/api/v1/instances/{id}/message-trace");
    let page = s
        .op(Method::GET, &format!("{path}?clientId=GID_x@@@d"), None)
        .await
        .expect(200);
    assert_eq!(
        (page["brokersAsked"].as_u64(), page["total"].as_u64()),
        (Some(0), Some(0)),
        "{page}"
    );
    assert_eq!(page["records"], serde_json::json!([]));
    s.op(Method::GET, &path, None).await.expect_invalid("msgId");
    s.op(Method::GET, &format!("{path}?msgId=xyz"), None)
        .await
        .expect_invalid("msgId");
    s.op(Method::GET, &format!("{path}?clientId=c&kind=other"), None)
        .await
        .expect_invalid("kind");
    s.op(Method::GET, &format!("{path}?clientId=c&beginTime=10&endTime=5"), None)
        .await
        .expect_invalid("beginTime");
}
