//! Starts the real control plane in-process on port 0 against a fresh database and talks HTTP to it,
//! as an operator (bearer JWT) or as a backend app (ACS3-signed AccessKey requests).

use base64::Engine;
use control_plane::auth::acs3;
use control_plane::config::Config;
use reqwest::Method;
use serde_json::{Value, json};

pub const ADMIN_PASSWORD: &str = "test-admin-password";

pub struct TestServer {
    pub base: String,
    pub host: String,
    pub http: reqwest::Client,
    pub admin_token: String,
    pub state: control_plane::state::AppState,
}

/// An HTTP answer: status and JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {:?}", self.body);
        self.body
    }

    /// Asserts an error answer with this status and code; returns the body.
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {:?}", self.body);
        assert_eq!(self.body["code"], code, "unexpected error: {:?}", self.body);
        assert!(
            self.body["requestId"].as_str().is_some_and(|s| !s.is_empty()),
            "no requestId: {:?}",
            self.body
        );
        self.body
    }

    /// Asserts a 400 naming `field`.
    #[track_caller]
    pub fn expect_invalid(self, field: &str) -> Value {
        let body = self.expect_error(400, "InvalidParameter");
        assert_eq!(body["field"], field, "wrong field: {body:?}");
        body
    }
}

/// Options for one signed request, to build the negative cases.
#[derive(Default, Clone)]
pub struct SignOpts {
    pub date: Option<String>,
    pub nonce: Option<String>,
    pub tamper_signature: bool,
    pub wrong_secret: bool,
    pub tamper_body_after_signing: bool,
}

pub fn random_master_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with a changed configuration (e.g. a short broker silence threshold).
    pub async fn start_with(change: impl FnOnce(&mut Config)) -> Self {
        Self::start_on(crate::pg::fresh_database().await, change).await
    }

    /// Starts on the database at `database_url` (e.g. on a test's own PostgreSQL).
    pub async fn start_on(database_url: String, change: impl FnOnce(&mut Config)) -> Self {
        control_plane::telemetry::init_tracing(false);
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url,
            database_max_connections: 5,
            master_key: Some(random_master_key()),
            admin_password: Some(ADMIN_PASSWORD.into()),
            ..Config::default()
        };
        change(&mut config);
        let state = control_plane::server::build_state(config).await.expect("server state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(control_plane::server::serve(
            state.clone(),
            listener,
            std::future::pending(),
        ));
        let http = reqwest::Client::new();
        let base = format!("http://{addr}");
        let login = http
            .post(format!("{base}/api/v1/login"))
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 200);
        let admin_token = login.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string();
        Self {
            base,
            host: addr.to_string(),
            http,
            admin_token,
            state,
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let res = req.send().await.expect("HTTP request");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply { status, body, headers }
    }

    /// A request with the operator's bearer token.
    pub async fn op(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin_token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    /// A request without credentials (or with a raw Authorization header).
    pub async fn raw(&self, method: Method, path: &str, authorization: Option<&str>, body: Option<Value>) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    /// An ACS3-HMAC-SHA256 signed request with AccessKey `(id, secret)`.
    pub async fn ak(&self, key: &(String, String), method: Method, path: &str, body: Option<Value>) -> Reply {
        self.ak_with(key, method, path, body, SignOpts::default()).await
    }

    pub async fn ak_with(
        &self,
        key: &(String, String),
        method: Method,
        path_and_query: &str,
        body: Option<Value>,
        o: SignOpts,
    ) -> Reply {
        let payload = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
        let headers = self.signed_headers(key, method.as_str(), path_and_query, &acs3::sha256_hex(&payload), &o);
        let mut req = self.http.request(method, format!("{}{path_and_query}", self.base));
        for (n, v) in &headers {
            if *n != "host" {
                req = req.header(*n, v);
            }
        }
        let payload = if o.tamper_body_after_signing {
            b"{\"tampered\":true}".to_vec()
        } else {
            payload
        };
        self.send(req.body(payload)).await
    }

    /// The headers of an ACS3-signed request (`host` included) for a body with SHA-256 `hash`.
    pub fn signed_headers(
        &self,
        key: &(String, String),
        method: &str,
        path_and_query: &str,
        hash: &str,
        o: &SignOpts,
    ) -> Vec<(&'static str, String)> {
        let date = o
            .date
            .clone()
            .unwrap_or_else(|| chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
        let nonce = o.nonce.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut headers = vec![
            ("content-type", "application/json".to_string()),
            ("host", self.host.clone()),
            ("x-acs-content-sha256", hash.to_string()),
            ("x-acs-date", date),
            ("x-acs-signature-nonce", nonce),
        ];
        let names: Vec<String> = headers.iter().map(|(n, _)| n.to_string()).collect();
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let canonical = acs3::canonical_request(
            method,
            path,
            query,
            &names,
            |n| {
                headers
                    .iter()
                    .filter(|(h, _)| *h == n)
                    .map(|(_, v)| v.clone())
                    .collect()
            },
            hash,
        );
        let secret = if o.wrong_secret {
            "not-the-secret"
        } else {
            key.1.as_str()
        };
        let mut signature = acs3::signature(secret, &acs3::string_to_sign(&canonical));
        if o.tamper_signature {
            signature.replace_range(0..1, if signature.starts_with('0') { "1" } else { "0" });
        }
        let auth = format!(
            "ACS3-HMAC-SHA256 Credential={},SignedHeaders={},Signature={signature}",
            key.0,
            names.join(";")
        );
        headers.push(("authorization", auth));
        headers
    }

    /// A broker-sync request with node credentials `(id, secret)`.
    pub async fn node(&self, node: &(String, String), method: Method, path: &str, body: Option<Value>) -> Reply {
        let auth = common::sync::node_authorization(&node.0, &node.1);
        self.raw(method, path, Some(&auth), body).await
    }

    // ---- fixtures ----

    /// Creates a broker node; returns (nodeId, nodeSecret).
    pub async fn create_node(&self, node_id: &str) -> (String, String) {
        let b = self
            .op(Method::POST, "/api/v1/brokers", Some(json!({"nodeId": node_id})))
            .await
            .expect(201);
        (
            b["nodeId"].as_str().unwrap().to_string(),
            b["nodeSecret"].as_str().unwrap().to_string(),
        )
    }

    pub async fn create_instance(&self, name: &str) -> String {
        let b = self
            .op(Method::POST, "/api/v1/instances", Some(json!({"name": name})))
            .await
            .expect(201);
        b["instanceId"].as_str().unwrap().to_string()
    }

    pub async fn create_topic(&self, instance: &str, topic: &str) {
        self.op(
            Method::POST,
            &format!("/api/v1/instances/{instance}/topics"),
            Some(json!({"topic": topic})),
        )
        .await
        .expect(201);
    }

    pub async fn create_group(&self, instance: &str, group: &str) {
        self.op(
            Method::POST,
            &format!("/api/v1/instances/{instance}/groups"),
            Some(json!({"groupId": group})),
        )
        .await
        .expect(201);
    }

    /// Creates an AccessKey bound to `instances`; returns (id, secret).
    pub async fn create_access_key(&self, instances: &[&str]) -> (String, String) {
        let b = self
            .op(
                Method::POST,
                "/api/v1/access-keys",
                Some(json!({"instanceIds": instances})),
            )
            .await
            .expect(201);
        (
            b["accessKeyId"].as_str().unwrap().to_string(),
            b["accessKeySecret"].as_str().unwrap().to_string(),
        )
    }
}

pub use common::time::now_ms;
