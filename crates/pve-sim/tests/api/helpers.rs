//! A running simulator plus request helpers.

use std::time::Duration;

use pve_sim::{Sim, SimConfig};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const TEMPLATE: &str = pve_sim::DEBIAN_12_TEMPLATE;

pub struct TestSim {
    pub sim: Sim,
    pub client: reqwest::Client,
}

/// A response: status, body text.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
    pub fn data(&self) -> Value {
        self.json()["data"].clone()
    }
    /// The message of an error body, without its trailing newline.
    pub fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .unwrap_or("")
            .trim_end_matches('\n')
            .to_owned()
    }
}

pub async fn spawn() -> TestSim {
    spawn_with(SimConfig {
        task_duration: Duration::ZERO,
        ..SimConfig::default()
    })
    .await
}

pub async fn spawn_with(cfg: SimConfig) -> TestSim {
    let sim = Sim::start(cfg).await.expect("sim starts");
    TestSim {
        sim,
        client: reqwest::Client::new(),
    }
}

impl TestSim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    pub fn auth(&self) -> String {
        format!(
            "PVEAPIToken={}={}",
            self.sim.token_id(),
            self.sim.token_secret()
        )
    }

    async fn finish(r: reqwest::RequestBuilder) -> Resp {
        let resp = r.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let body = resp.text().await.expect("body read");
        Resp { status, body }
    }

    pub async fn get(&self, path: &str) -> Resp {
        Self::finish(
            self.client
                .get(self.url(path))
                .header("Authorization", self.auth()),
        )
        .await
    }

    /// A form-encoded request (the way most PVE clients talk).
    pub async fn form(&self, method: &str, path: &str, params: &[(&str, &str)]) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut r = self
            .client
            .request(m.clone(), self.url(path))
            .header("Authorization", self.auth());
        if m == reqwest::Method::GET || m == reqwest::Method::DELETE {
            r = r.query(params);
        } else {
            r = r.form(params);
        }
        Self::finish(r).await
    }

    pub async fn json(&self, method: &str, path: &str, body: Value) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        Self::finish(
            self.client
                .request(m, self.url(path))
                .header("Authorization", self.auth())
                .json(&body),
        )
        .await
    }

    /// Creates CT `vmid` on `node` and returns its UPID.
    pub async fn create(&self, node: &str, vmid: u32, extra: &[(&str, &str)]) -> String {
        let id = vmid.to_string();
        let mut p = vec![
            ("vmid", id.as_str()),
            ("ostemplate", TEMPLATE),
            ("rootfs", "local-lvm:8"),
        ];
        p.extend_from_slice(extra);
        let r = self.form("POST", &format!("/nodes/{node}/lxc"), &p).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.data().as_str().expect("UPID").to_owned()
    }

    /// Polls a task until it stops; returns its final status object.
    pub async fn wait_task(&self, node: &str, upid: &str) -> Value {
        for _ in 0..500 {
            let r = self
                .get(&format!("/nodes/{node}/tasks/{upid}/status"))
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            let d = r.data();
            if d["status"] == "stopped" {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("task {upid} did not stop");
    }

    /// Creates CT `vmid` and waits for the create task to succeed.
    pub async fn created(&self, node: &str, vmid: u32, extra: &[(&str, &str)]) {
        let upid = self.create(node, vmid, extra).await;
        assert_eq!(self.wait_task(node, &upid).await["exitstatus"], "OK");
    }

    /// A raw HTTP/1.1 exchange, to see the status line (reason phrase) and
    /// send exactly the headers given.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> RawResp {
        let mut stream = tokio::net::TcpStream::connect(self.sim.addr())
            .await
            .expect("connect");
        let mut req = format!(
            "{method} /api2/json{path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        req.push_str(body);
        stream.write_all(req.as_bytes()).await.expect("write");
        let mut out = String::new();
        stream.read_to_string(&mut out).await.expect("read");
        let (head, body) = out.split_once("\r\n\r\n").expect("head and body");
        let status_line = head.lines().next().unwrap_or("").to_owned();
        RawResp {
            status_line,
            body: body.to_owned(),
        }
    }
}

#[derive(Debug)]
pub struct RawResp {
    /// e.g. `HTTP/1.1 500 CT is locked (create)`
    pub status_line: String,
    pub body: String,
}
