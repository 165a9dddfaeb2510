//! A small client of the control-plane REST API (operator login), and the standard fixture: one
//! instance with a parent topic, a group and a bound AccessKey.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::ControlPlane;

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    bearer: String,
}

impl Api {
    pub async fn login(cp: &ControlPlane) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(70))
            .build()
            .expect("http client");
        let base = format!("{}/api/v1", cp.url);
        let res = http
            .post(format!("{base}/login"))
            .json(&json!({"username": "admin", "password": cp.admin_password}))
            .send()
            .await
            .expect("login request");
        assert_eq!(res.status(), StatusCode::OK, "login failed");
        let body: Value = res.json().await.expect("login body");
        let bearer = body["token"].as_str().expect("token in login answer").to_string();
        Self { http, base, bearer }
    }

    /// Any call; returns the status and the JSON body (Null when empty).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.bearer);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("API request");
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A call that must succeed (2xx); returns the body.
    pub async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.call(method.clone(), path, body).await;
        assert!(status.is_success(), "{method} {path} answered {status}: {value}");
        value
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.ok(Method::POST, path, Some(body)).await
    }

    /// The configuration version every broker should reach.
    pub async fn brokers(&self) -> Value {
        self.ok(Method::GET, "/brokers", None).await
    }

    /// Waits until every listed node reports the current configuration version.
    pub async fn wait_in_sync(&self, nodes: &[&str]) {
        for _ in 0..200 {
            let b = self.brokers().await;
            let all = nodes.iter().all(|n| {
                b["brokers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|x| x["nodeId"] == *n && x["state"] == "in_sync")
            });
            if all {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "brokers {nodes:?} did not reach the current version: {}",
            self.brokers().await
        );
    }
}

/// The resources most tests need.
pub struct Fixture {
    pub instance: String,
    pub parent: String,
    pub group: String,
    pub access_key: String,
    pub secret: String,
}

impl Fixture {
    pub async fn create(api: &Api) -> Self {
        let inst = api
            .post("/instances", json!({"name": format!("e2e-{}", rand_suffix())}))
            .await;
        let instance = inst["instanceId"].as_str().expect("instanceId").to_string();
        let parent = "T".to_string();
        let group = "GID_e2e".to_string();
        api.post(&format!("/instances/{instance}/topics"), json!({"topic": parent}))
            .await;
        api.post(&format!("/instances/{instance}/groups"), json!({"groupId": group}))
            .await;
        let ak = api.post("/access-keys", json!({"instanceIds": [instance]})).await;
        Self {
            instance,
            parent,
            group,
            access_key: ak["accessKeyId"].as_str().expect("accessKeyId").to_string(),
            secret: ak["accessKeySecret"].as_str().expect("accessKeySecret").to_string(),
        }
    }

    pub fn client_id(&self, device: &str) -> String {
        format!("{}@@@{device}", self.group)
    }

    pub fn signature_username(&self) -> String {
        format!("Signature|{}|{}", self.access_key, self.instance)
    }

    pub fn signature_password(&self, client_id: &str) -> String {
        common::signing::mqtt_password(&self.secret, client_id)
    }

    /// v3.1.1 options for a Signature-mode client on `port`.
    pub fn signature_opts(&self, client_id: &str, port: u16) -> rumqttc::MqttOptions {
        let mut o = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
        o.set_credentials(self.signature_username(), self.signature_password(client_id));
        o.set_keep_alive(Duration::from_secs(30));
        o
    }

    /// Registers a device credential for the client ID of `device`; the API's answer.
    pub async fn register_device(&self, api: &Api, device: &str) -> Value {
        api.post(
            &format!("/instances/{}/device-credentials", self.instance),
            json!({"clientId": self.client_id(device)}),
        )
        .await
    }

    /// v3.1.1 options for a DeviceCredential-mode client with `credential` (an API answer) on `port`.
    pub fn device_opts(&self, credential: &Value, port: u16) -> rumqttc::MqttOptions {
        let client_id = credential["clientId"].as_str().expect("clientId");
        let key_id = credential["deviceAccessKeyId"].as_str().expect("deviceAccessKeyId");
        let secret = credential["deviceAccessKeySecret"]
            .as_str()
            .expect("deviceAccessKeySecret");
        let mut o = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
        o.set_credentials(
            format!("DeviceCredential|{key_id}|{}", self.instance),
            common::signing::mqtt_password(secret, client_id),
        );
        o.set_keep_alive(Duration::from_secs(30));
        o
    }

    /// Applies for a token (operator call on behalf of the fixture's AccessKey).
    pub async fn token(&self, api: &Api, resources: &str, actions: &str) -> String {
        let body = json!({
            "resources": resources,
            "actions": actions,
            "expireTime": crate::now_ms() + 3_600_000,
            "accessKeyId": self.access_key,
        });
        let t = api.post(&format!("/instances/{}/tokens", self.instance), body).await;
        t["token"].as_str().expect("token").to_string()
    }
}

fn rand_suffix() -> String {
    let n: u64 = rand::random();
    format!("{:x}", n)
}
