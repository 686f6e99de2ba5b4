//! Tenantry's API over HTTP, as the tests use it: signing in, requests
//! with expected statuses, registering and checking the nodes, polling
//! until a state is reached (tenants, deployments, jobs, node instances),
//! and pve-sim's own container list.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{DEADLINE, PASSWORD, PVE_TOKEN_ID, World};

impl World {
    /// Signs in; the access token.
    pub async fn login(&self, email: &str) -> String {
        let (status, body) = self
            .call(
                "POST",
                "/v1/auth/login",
                None,
                Some(json!({"email": email, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, 200, "login {email}: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A request to Tenantry's API: (status, JSON body or Null).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.api)
        };
        let mut req = self
            .http
            .request(method.parse().unwrap(), url.as_str())
            .timeout(Duration::from_secs(30));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// GET that must answer 200.
    pub async fn get(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.call("GET", path, Some(token), None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// POST that must answer `expect`.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value, expect: u16) -> Value {
        let (status, answer) = self.call("POST", path, token, Some(body)).await;
        assert_eq!(status, expect, "POST {path}: {answer}");
        answer
    }

    /// Registers pve-sim's two nodes and the local Docker engine, and checks
    /// each: all must be online. Returns their ids by name.
    pub async fn register_nodes(&self) -> Vec<(String, String)> {
        let mut ids = Vec::new();
        for name in ["pve1", "pve2"] {
            let node = self
                .post(
                    "/v1/nodes",
                    Some(&self.admin),
                    json!({
                        "kind": "proxmox", "name": name, "api_url": self.pve,
                        "credentials": {"token_id": PVE_TOKEN_ID, "token_secret": self.pve_secret},
                        "capacity": {"cpu_cores": 16, "memory_mib": 65536, "storage_gib": 1024, "max_instances": 50},
                    }),
                    201,
                )
                .await;
            ids.push((name.to_owned(), node["id"].as_str().unwrap().to_owned()));
        }
        let docker = self
            .post(
                "/v1/nodes",
                Some(&self.admin),
                json!({
                    "kind": "docker", "name": "docker-local", "api_url": "unix:///var/run/docker.sock",
                    "capacity": {"cpu_cores": 2, "memory_mib": 4096, "storage_gib": 50, "max_instances": 10},
                }),
                201,
            )
            .await;
        ids.push((
            "docker-local".to_owned(),
            docker["id"].as_str().unwrap().to_owned(),
        ));
        for (name, id) in &ids {
            let check = self
                .post(
                    &format!("/v1/nodes/{id}/check"),
                    Some(&self.admin),
                    json!({}),
                    200,
                )
                .await;
            assert_eq!(check["reachable"], true, "{name}: {check}");
            assert_eq!(check["status"], "online", "{name}: {check}");
            assert!(check["version"].is_string(), "{name}: {check}");
        }
        ids
    }

    /// Polls `probe` until it returns `Some`, or panics with `what` and the
    /// last state after [`DEADLINE`].
    pub async fn eventually<T, F, Fut>(&self, what: &str, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Value>>,
    {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match probe().await {
                Ok(v) => return v,
                Err(last) => assert!(Instant::now() < deadline, "never saw {what}; last: {last}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The tenant as its owner (or staff) sees it.
    pub async fn tenant(&self, id: &str, token: &str) -> Value {
        self.get(&format!("/v1/tenants/{id}"), token).await
    }

    /// Waits for the tenant's `status` (failing at once on `failed`).
    pub async fn wait_status(&self, id: &str, token: &str, status: &str) -> Value {
        self.eventually(&format!("tenant {id} {status}"), || async {
            let t = self.tenant(id, token).await;
            assert_ne!(t["status"], "failed", "the tenant failed: {t}");
            if t["status"] == status { Ok(t) } else { Err(t) }
        })
        .await
    }

    /// The tenant's deployments, newest first.
    pub async fn deployments(&self, id: &str, token: &str) -> Vec<Value> {
        self.get(&format!("/v1/tenants/{id}/deployments"), token)
            .await
            .as_array()
            .unwrap()
            .clone()
    }

    /// The tenant's jobs of `kind`, oldest first.
    pub async fn jobs(&self, id: &str, kind: &str) -> Vec<Value> {
        self.get(
            &format!("/v1/jobs?tenant={id}&kind={kind}&limit=200"),
            &self.admin,
        )
        .await["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// The online Proxmox nodes' instance counts, by name.
    pub async fn node_instances(&self) -> Vec<(String, i64)> {
        let nodes = self.get("/v1/nodes?limit=200", &self.admin).await;
        nodes["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["kind"] == "proxmox")
            .map(|n| {
                (
                    n["name"].as_str().unwrap().to_owned(),
                    n["instances"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    /// Containers on pve-sim's nodes, as its Proxmox API lists them: (node, vmid).
    pub async fn containers(&self) -> Vec<(String, String)> {
        let mut all = Vec::new();
        for node in ["pve1", "pve2"] {
            let res: Value = self
                .http
                .get(format!("{}/nodes/{node}/lxc", self.pve))
                .header(
                    "Authorization",
                    format!("PVEAPIToken={PVE_TOKEN_ID}={}", self.pve_secret),
                )
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for ct in res["data"].as_array().unwrap() {
                let vmid = match &ct["vmid"] {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                all.push((node.to_owned(), vmid));
            }
        }
        all.sort();
        all
    }
}
