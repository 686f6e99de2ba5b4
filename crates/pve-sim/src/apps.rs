//! The applications inside the simulated containers, for demos and tests
//! that go through a reverse proxy: with [`crate::AppSim`] configured, each
//! running CT gets the loopback address `127.{net}.{vmid / 256}.{vmid % 256}`
//! as its `net0` DHCP lease, and an HTTP server on that address and
//! `AppSim::port` answers as the CT's app would: a page naming the CT, its
//! node and host name, and the tenant the `X-Tenantry-Tenant` header names.
//! A stopped or destroyed CT answers nothing (connection refused), and
//! [`crate::Faults::set_app_down`] makes a running one refuse too (an app
//! that never comes up).
//!
//! Linux routes every address of `127.0.0.0/8` to the loopback interface,
//! so the addresses need no set-up; a listener per running CT is kept in
//! step with the containers every 100 ms.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::Shared;
use crate::model::Power;

/// The address CT `vmid`'s app answers at.
pub(crate) fn app_address(net: u8, vmid: u32) -> Ipv4Addr {
    let [_, _, hi, lo] = vmid.to_be_bytes();
    Ipv4Addr::new(127, net, hi, lo)
}

/// Keeps one listener per running CT until aborted.
pub(crate) fn spawn(shared: Shared, net: u8, port: u16) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut listening: HashMap<u32, JoinHandle<()>> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            let wanted: Vec<u32> = {
                let st = crate::lock(&shared);
                st.cts
                    .values()
                    .filter(|ct| {
                        ct.power == Power::Running && !st.faults.apps_down.contains(&ct.vmid)
                    })
                    .map(|ct| ct.vmid)
                    .collect()
            };
            listening.retain(|vmid, task| {
                let keep = wanted.contains(vmid) && !task.is_finished();
                if !keep {
                    task.abort();
                }
                keep
            });
            for vmid in wanted {
                if listening.contains_key(&vmid) {
                    continue;
                }
                let addr = SocketAddr::from((app_address(net, vmid), port));
                match TcpListener::bind(addr).await {
                    Ok(listener) => {
                        listening.insert(vmid, tokio::spawn(serve(shared.clone(), vmid, listener)));
                    }
                    Err(e) => {
                        tracing::warn!(%addr, error = %e, "pve-sim: CT {vmid}'s app cannot listen")
                    }
                }
            }
        }
    })
}

async fn serve(shared: Shared, vmid: u32, listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            // The request head, 8 KiB and 5 s at most.
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            let head = String::from_utf8_lossy(&buf);
            let tenant = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("x-tenantry-tenant"))
                .map(|(_, v)| v.trim().to_owned())
                .filter(|v| v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or_default();
            let (node, hostname) = {
                let st = crate::lock(&shared);
                match st.cts.get(&vmid) {
                    Some(ct) => (
                        ct.node.clone(),
                        ct.config.get("hostname").cloned().unwrap_or_default(),
                    ),
                    None => return,
                }
            };
            let body = format!(
                "<!doctype html><title>CT {vmid}</title><pre>\nct={vmid}\nnode={node}\nhostname={hostname}\ntenant={tenant}\n</pre>\n"
            );
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
