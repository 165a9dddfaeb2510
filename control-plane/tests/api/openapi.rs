//! `openapi/openapi.json` must be what the code generates. Regenerate with
//! `cargo run -p control-plane -- openapi > openapi/openapi.json` (or run this test with UPDATE_OPENAPI=1).

#[test]
fn checked_in_document_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
    let generated = format!("{}\n", control_plane::api::openapi().to_pretty_json().unwrap());
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "openapi/openapi.json is out of date; regenerate it with:\n  cargo run -p control-plane -- openapi > openapi/openapi.json"
    );
}

#[test]
fn operation_ids_are_the_alibaba_action_names() {
    let doc = serde_json::to_value(control_plane::api::openapi()).unwrap();
    let mut ids: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|p| {
            p.as_object()
                .unwrap()
                .values()
                .filter_map(|o| o["operationId"].as_str().map(String::from))
        })
        .collect();
    ids.sort();
    for want in [
        "ApplyToken",
        "RevokeToken",
        "QueryToken",
        "CreateGroupId",
        "ListGroupId",
        "DeleteGroupId",
        "RegisterDeviceCredential",
        "GetDeviceCredential",
        "RefreshDeviceCredential",
        "UnRegisterDeviceCredential",
        "ListDeviceCredentialClientId",
        "Login",
        "CreateInstance",
        "ListInstances",
        "GetInstance",
        "UpdateInstance",
        "DeleteInstance",
        "CreateTopic",
        "ListTopics",
        "DeleteTopic",
        "CreateAccessKey",
        "ListAccessKeys",
        "UpdateAccessKey",
        "DeleteAccessKey",
        "CreateBrokerNode",
        "ListBrokers",
        "DeleteBrokerNode",
        "QuerySessionByClientId",
        "BatchQuerySessionByClientIds",
        "CloseConnection",
        "SendMessage",
        "ListClientEvents",
        "GetInstanceUsageHistory",
        "CreateRule",
        "ListRules",
        "GetRule",
        "UpdateRule",
        "DeleteRule",
        "EnableRule",
        "DisableRule",
        "TestRule",
        "ListRuleDeadLetters",
    ] {
        assert!(ids.iter().any(|i| i == want), "missing operationId {want}: {ids:?}");
    }
    // The broker-sync endpoints are the common::sync contract, not public API.
    assert!(
        doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .all(|p| !p.starts_with(common::sync::SYNC_BASE)),
        "broker-sync paths leaked into the OpenAPI document"
    );
}

/// Every status the API can answer is in the document: credentials (401, 403) on every operation that
/// needs them, bad input (400), oversize bodies (413) and an unavailable database or a timeout (503)
/// everywhere. (`tests/fuzz/run` checks the answers themselves.)
#[test]
fn every_operation_documents_the_common_answers() {
    let doc = serde_json::to_value(control_plane::api::openapi()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            let mut want = vec!["400", "503"];
            if secured {
                want.extend(["401", "403", "413"]);
            }
            if op.get("requestBody").is_some() {
                want.push("413");
            }
            for status in want {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} does not document {status}"
                );
            }
        }
    }
}
