//! `pve-sim`: run the Proxmox VE API simulator for the local demo.
//!
//! ```text
//! pve-sim --listen 127.0.0.1:8006 --nodes pve1,pve2 \
//!     --token 'root@pam!tenantry=SECRET' --task-ms 200 \
//!     --template local:vztmpl/debian-12-odoo_17.0-1_amd64.tar.zst
//! ```
//!
//! Plain HTTP (a real PVE serves HTTPS on 8006). Every flag has a
//! `PVE_SIM_*` environment variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use pve_sim::{NodeSpec, Sim, SimConfig};
use tracing_subscriber::EnvFilter;

/// A Proxmox VE API simulator (LXC provisioning endpoints) over plain HTTP.
#[derive(Debug, Parser)]
#[command(name = "pve-sim", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "PVE_SIM_LISTEN", default_value = "127.0.0.1:8006")]
    listen: SocketAddr,
    /// Comma-separated node names.
    #[arg(
        long,
        env = "PVE_SIM_NODES",
        value_delimiter = ',',
        default_value = "pve1,pve2"
    )]
    nodes: Vec<String>,
    /// API token as `USER@REALM!TOKENID=SECRET` (repeatable).
    #[arg(long = "token", env = "PVE_SIM_TOKENS", value_delimiter = ' ')]
    tokens: Vec<String>,
    /// How long each task runs, in milliseconds.
    #[arg(long, env = "PVE_SIM_TASK_MS", default_value_t = 200)]
    task_ms: u64,
    /// A container template every node offers besides Debian 12's, as a
    /// volume id (`local:vztmpl/debian-12-odoo_17.0-1_amd64.tar.zst`); repeatable.
    #[arg(long = "template", env = "PVE_SIM_TEMPLATES", value_delimiter = ',')]
    templates: Vec<String>,
    /// The PVE version `GET /version` reports.
    #[arg(long, env = "PVE_SIM_VERSION", default_value = "9.1.1")]
    pve_version: String,
    /// A file that keeps the containers across restarts (created if missing).
    #[arg(long, env = "PVE_SIM_STATE")]
    state: Option<std::path::PathBuf>,
    /// Simulate an app in every running container: an HTTP server on this
    /// port at the CT's loopback address `127.{app-net}.{vmid/256}.{vmid%256}`
    /// (its net0 address), answering a page that names the CT and the
    /// tenant of the `X-Tenantry-Tenant` header.
    #[arg(long, env = "PVE_SIM_APP_PORT")]
    app_port: Option<u16>,
    /// The second octet of those addresses (1–254; simulators side by side
    /// need different ones).
    #[arg(long, env = "PVE_SIM_APP_NET", default_value_t = 100,
          value_parser = clap::value_parser!(u8).range(1..=254))]
    app_net: u8,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut cfg = SimConfig {
        nodes: args
            .nodes
            .iter()
            .map(|n| {
                let mut spec = NodeSpec::new(n.trim());
                spec.templates
                    .extend(args.templates.iter().map(|t| t.trim().to_owned()));
                spec
            })
            .collect(),
        task_duration: Duration::from_millis(args.task_ms),
        version: args.pve_version,
        state_file: args.state,
        ..SimConfig::default()
    };
    if !args.tokens.is_empty() {
        cfg.tokens = Vec::new();
        for t in &args.tokens {
            let Some((id, secret)) = t.split_once('=') else {
                return Err(std::io::Error::other(format!(
                    "--token must be USER@REALM!TOKENID=SECRET, got {t:?}"
                )));
            };
            cfg.tokens.push((id.to_owned(), secret.to_owned()));
        }
    }
    if let Some(port) = args.app_port {
        cfg.app = Some(pve_sim::AppSim {
            port,
            net: args.app_net,
        });
    }
    let sim = Sim::start_on(cfg, args.listen).await?;
    tracing::info!(base_url = %sim.base_url(), nodes = ?args.nodes, "pve-sim listening (plain HTTP)");
    println!("base URL: {}", sim.base_url());
    println!(
        "token:    PVEAPIToken={}={}",
        sim.token_id(),
        sim.token_secret()
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    sim.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
