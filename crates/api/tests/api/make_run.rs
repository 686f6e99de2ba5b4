//! `make run` (scripts/run): the private cluster, its reuse, DATABASE_URL
//! mode, and a clean stop on SIGTERM.

use std::{
    io::Read,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tenantry_test_db::TestDatabase;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn make_run(data_dir: &Path, pg_port: u16, http_port: u16, database_url: Option<&str>) -> Child {
    let mut cmd = Command::new(root().join("scripts/run"));
    cmd.env("TENANTRY_BIN", env!("CARGO_BIN_EXE_tenantry"))
        .env("TENANTRY_DATA_DIR", data_dir)
        .env("TENANTRY_PG_PORT", pg_port.to_string())
        .env("TENANTRY_LISTEN", format!("127.0.0.1:{http_port}"))
        .env("TENANTRY_LOG", "warn")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(url) = database_url {
        cmd.env("DATABASE_URL", url);
    }
    cmd.spawn().expect("scripts/run")
}

/// Polls `/readyz` until it answers 200 (the server is up), or fails after 60 s.
async fn wait_ready(child: &mut Child, http_port: u16) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("make run exited early ({status}): {err}");
        }
        if let Ok(res) = client
            .get(format!("http://127.0.0.1:{http_port}/readyz"))
            .send()
            .await
            && res.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "make run did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stop(child: Child) -> String {
    crate::helpers::signal(child.id(), "TERM");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "make run must exit 0 on SIGTERM: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn cluster_running(dir: &Path) -> bool {
    dir.join("postgres/postmaster.pid").exists()
}

async fn product_count(http_port: u16) -> usize {
    let page: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{http_port}/v1/products"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn make_run_starts_reuses_and_stops_a_private_cluster() {
    let data_dir = std::env::temp_dir().join(format!("tenantry-run-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&data_dir).unwrap();
    let pg_port = free_port();

    // First run: a new cluster, the database, migrations, the demo catalog.
    let http_port = free_port();
    let mut child = make_run(&data_dir, pg_port, http_port, None);
    wait_ready(&mut child, http_port).await;
    assert_eq!(product_count(http_port).await, 2);
    assert!(cluster_running(&data_dir));
    let out = stop(child).await;
    assert!(out.contains("2 product(s) created"), "{out}");
    assert!(out.contains("PostgreSQL stopped"), "{out}");
    assert!(
        !cluster_running(&data_dir),
        "SIGTERM stops the private cluster too"
    );
    // A new data dir gets a demo admin with a printed random password.
    let password = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("make run: demo admin  email: admin@tenantry.local  password: ")
        })
        .unwrap_or_else(|| panic!("no demo admin printed: {out}"))
        .to_owned();
    assert!(password.len() >= 20);

    // Second run: the same cluster and data, nothing created again.
    let http_port = free_port();
    let mut child = make_run(&data_dir, pg_port, http_port, None);
    wait_ready(&mut child, http_port).await;
    assert_eq!(product_count(http_port).await, 2);
    let login = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{http_port}/v1/auth/login"))
        .json(&serde_json::json!({"email": "admin@tenantry.local", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "the printed credentials work");
    let out = stop(child).await;
    assert!(
        !out.contains("demo admin"),
        "only a new data dir gets one: {out}"
    );
    assert!(out.contains("no pending migration"), "{out}");
    assert!(out.contains("16 unchanged"), "{out}");
    assert!(!cluster_running(&data_dir));

    std::fs::remove_dir_all(&data_dir).ok();
}

#[tokio::test]
async fn make_run_with_database_url_starts_no_cluster() {
    let db = TestDatabase::empty().await;
    let data_dir = std::env::temp_dir().join(format!("tenantry-run-{}", uuid::Uuid::new_v4()));
    let http_port = free_port();
    let mut child = make_run(&data_dir, free_port(), http_port, Some(db.url()));
    wait_ready(&mut child, http_port).await;
    assert_eq!(product_count(http_port).await, 2);
    let out = stop(child).await;
    assert!(out.contains("using DATABASE_URL"), "{out}");
    assert!(
        !out.contains("demo admin"),
        "never with DATABASE_URL: {out}"
    );
    assert!(!data_dir.join("postgres").exists(), "no cluster is created");
}
