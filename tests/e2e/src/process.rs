//! The processes of a world: starting pve-sim, the Stripe stand-in and
//! `tenantry serve` (set up with the CLI as an operator would), killing the
//! server like a crash, and the child processes killed when dropped.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tenantry_test_db::TestDatabase;

use crate::{
    ADMIN_EMAIL, ODOO_TEMPLATE, PASSWORD, PVE_TOKEN_ID, WEBHOOK_SECRET, World, binary, free_port,
    root,
};

/// A child process killed (SIGKILL) when dropped, also when a test fails.
#[derive(Debug)]
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn random_key(kid: &str) -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    format!(
        "{kid}:{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// Waits until `url` answers any HTTP status, or panics after 30 s.
async fn wait_http(http: &reqwest::Client, url: &str, what: &str, proc: &mut Proc) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if http.get(url).send().await.is_ok() {
            return;
        }
        if let Some(status) = proc.0.try_wait().unwrap() {
            panic!("{what} exited early: {status}");
        }
        assert!(Instant::now() < deadline, "{what} never answered at {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl World {
    /// Starts pve-sim (tasks of `task_ms` each), the stand-in and Tenantry,
    /// creates the admin, loads the demo catalog and registers the nodes.
    pub async fn start(task_ms: u64) -> World {
        let http = reqwest::Client::new();
        let db = TestDatabase::new().await;
        let (api_port, pve_port, stripe_port) = (free_port(), free_port(), free_port());
        let api = format!("http://127.0.0.1:{api_port}");
        let pve_secret = uuid::Uuid::new_v4().to_string();

        let mut pve_sim = Proc(
            Command::new(binary("pve-sim"))
                .args(["--listen", &format!("127.0.0.1:{pve_port}")])
                .args(["--nodes", "pve1,pve2", "--template", ODOO_TEMPLATE])
                .args(["--token", &format!("{PVE_TOKEN_ID}={pve_secret}")])
                .args(["--task-ms", &task_ms.to_string()])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let pve = format!("http://127.0.0.1:{pve_port}/api2/json");
        wait_http(&http, &format!("{pve}/version"), "pve-sim", &mut pve_sim).await;

        let stripe = format!("http://127.0.0.1:{stripe_port}");
        let mut stripe_sim = Proc(
            Command::new(binary("stripe-sim"))
                .env("STRIPE_SIM_LISTEN", format!("127.0.0.1:{stripe_port}"))
                .env(
                    "STRIPE_SIM_WEBHOOK_URL",
                    format!("{api}/v1/webhooks/stripe"),
                )
                .env("STRIPE_SIM_WEBHOOK_SECRET", WEBHOOK_SECRET)
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_http(
            &http,
            &format!("{stripe}/_sim/events"),
            "stripe-sim",
            &mut stripe_sim,
        )
        .await;

        let backups = std::env::temp_dir().join(format!("tenantry-e2e-{}", uuid::Uuid::new_v4()));
        let env: Vec<(String, String)> = [
            ("DATABASE_URL", db.url().to_owned()),
            ("TENANTRY_LISTEN", format!("127.0.0.1:{api_port}")),
            ("TENANTRY_JWT_KEYS", random_key("e2e-jwt")),
            ("TENANTRY_SECRET_KEYS", random_key("e2e-seal")),
            ("TENANTRY_ARGON2_MEMORY_KIB", "1024".into()),
            ("TENANTRY_ARGON2_ITERATIONS", "1".into()),
            ("TENANTRY_LOGIN_RATE_PER_MINUTE", "1000".into()),
            ("TENANTRY_SIGNUP_RATE_PER_MINUTE", "1000".into()),
            ("TENANTRY_SANDBOX", "true".into()),
            ("TENANTRY_PAYMENTS", "stripe".into()),
            ("TENANTRY_STRIPE_SECRET_KEY", "sk_test_e2e".into()),
            ("TENANTRY_STRIPE_API_BASE", format!("{stripe}/")),
            ("TENANTRY_STRIPE_WEBHOOK_SECRETS", WEBHOOK_SECRET.into()),
            ("TENANTRY_STRIPE_RECONCILE_INTERVAL_SECS", "0".into()),
            ("TENANTRY_BILLING_INTERVAL_SECS", "0".into()),
            ("TENANTRY_NODE_CHECK_SECS", "0".into()),
            ("TENANTRY_WORKERS", "2".into()),
            ("TENANTRY_JOB_POLL_SECS", "1".into()),
            ("TENANTRY_JOB_LEASE_SECS", "2".into()),
            ("TENANTRY_JOB_BACKOFF_SECS", "0".into()),
            ("TENANTRY_PROXMOX_TASK_POLL_MS", "50".into()),
            ("TENANTRY_BASE_DOMAIN", "e2e.test".into()),
            ("TENANTRY_BACKUP_DIR", backups.display().to_string()),
            ("TENANTRY_SHUTDOWN_TIMEOUT_SECS", "5".into()),
            ("TENANTRY_LOG", "warn".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();

        let mut world = World {
            db,
            api,
            pve,
            pve_secret,
            stripe,
            http,
            admin: String::new(),
            suffix: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
            env,
            server: None,
            _pve_sim: pve_sim,
            _stripe_sim: stripe_sim,
            backups,
        };
        // As an operator sets up a new installation: the CLI, then the API.
        world.cli(&["migrate", "up"], None);
        let catalog = root().join("catalog/demo.toml");
        world.cli(&["catalog", "load", catalog.to_str().unwrap()], None);
        world.cli(
            &[
                "admin",
                "create",
                "--email",
                ADMIN_EMAIL,
                "--password-stdin",
            ],
            Some(PASSWORD),
        );
        world.start_server().await;
        world.admin = world.login(ADMIN_EMAIL).await;
        world
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary("tenantry"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    fn cli(&self, args: &[&str], stdin: Option<&str>) {
        use std::io::Write as _;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            writeln!(child.stdin.take().unwrap(), "{input}").unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "tenantry {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `tenantry serve` and waits for `/readyz`.
    pub async fn start_server(&mut self) {
        let mut proc = Proc(
            self.command(&["serve"])
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = proc.0.try_wait().unwrap() {
                panic!("tenantry serve exited early: {status}");
            }
            if let Ok(res) = self.http.get(format!("{}/readyz", self.api)).send().await
                && res.status() == 200
            {
                break;
            }
            assert!(Instant::now() < deadline, "tenantry never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.server = Some(proc);
    }

    /// Kills `tenantry serve` with SIGKILL (a crash: no draining, no lease given back).
    pub fn kill_server(&mut self) {
        let mut proc = self.server.take().expect("a running server");
        proc.0.kill().unwrap();
        proc.0.wait().unwrap();
    }

    /// The slug this world uses for `base`.
    pub fn slug(&self, base: &str) -> String {
        format!("{base}-{}", self.suffix)
    }
}
