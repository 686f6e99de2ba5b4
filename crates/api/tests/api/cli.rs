//! The `tenantry` binary itself: subcommands, configuration, graceful shutdown.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use tenantry_test_db::TestDatabase;

fn tenantry(db_url: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenantry"));
    cmd.env_remove("DATABASE_URL").env("TENANTRY_LOG", "warn");
    if let Some(url) = db_url {
        cmd.env("DATABASE_URL", url);
    }
    cmd
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("run tenantry");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_every_setting_variable() {
    let (ok, out, _) = run(tenantry(None).arg("--help"));
    assert!(ok);
    for var in [
        "DATABASE_URL",
        "TENANTRY_LISTEN",
        "TENANTRY_LOG_FORMAT",
        "TENANTRY_DATA_DIR",
    ] {
        assert!(out.contains(var), "{var}: {out}");
    }
    for sub in ["serve", "migrate", "openapi", "catalog"] {
        let (ok, out, _) = run(tenantry(None).args([sub, "--help"]));
        assert!(ok, "{sub} --help");
        assert!(
            out.contains("TENANTRY_LISTEN"),
            "{sub} --help lacks the settings: {out}"
        );
    }
}

#[test]
fn openapi_prints_the_committed_spec() {
    let (ok, out, _) = run(tenantry(None).arg("openapi"));
    assert!(ok);
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../openapi/openapi.json"
    ))
    .unwrap();
    assert_eq!(out, committed);
}

#[test]
fn a_missing_database_url_is_a_clear_error() {
    let (ok, _, err) = run(tenantry(None).args(["migrate", "status"]));
    assert!(!ok);
    assert!(err.contains("DATABASE_URL is not set"), "{err}");
}

#[tokio::test]
async fn migrate_up_down_status_and_catalog_load() {
    let db = TestDatabase::empty().await;
    let url = db.url();
    let (ok, out, err) = run(tenantry(Some(url)).args(["migrate", "status"]));
    assert!(ok, "{err}");
    assert!(out.contains("[ ] 2026-11-21-000001_catalog"), "{out}");

    let (ok, out, err) = run(tenantry(Some(url)).args(["migrate", "up"]));
    assert!(ok, "{err}");
    assert!(out.contains("applied 2026-11-21-000001_catalog"), "{out}");
    let (_, out, _) = run(tenantry(Some(url)).args(["migrate", "up"]));
    assert!(out.contains("no pending migration"), "{out}");

    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/../../catalog/demo.toml");
    let (ok, out, err) = run(tenantry(Some(url)).args(["catalog", "load", demo]));
    assert!(ok, "{err}");
    assert!(
        out.contains("2 product(s) created") && out.contains("14 plan(s) created"),
        "{out}"
    );
    let (ok, out, _) = run(tenantry(Some(url)).args(["catalog", "load", demo]));
    assert!(ok);
    assert!(
        out.contains("0 product(s) created, 0 updated; 0 plan(s) created, 0 updated; 16 unchanged"),
        "{out}"
    );

    let (ok, _, err) = run(tenantry(Some(url)).args(["catalog", "load", "/nonexistent.toml"]));
    assert!(!ok);
    assert!(err.contains("/nonexistent.toml"), "{err}");

    // The catalog's tables hold rows: reverting them is refused? No: down drops them.
    let (ok, out, err) = run(tenantry(Some(url)).args(["migrate", "down", "1"]));
    assert!(ok, "{err}");
    assert!(out.contains("reverted 2026-11-21-000001_catalog"), "{out}");
    let (_, out, _) = run(tenantry(Some(url)).args(["migrate", "status"]));
    assert!(out.contains("[ ] 2026-11-21-000001_catalog"), "{out}");
}

#[tokio::test]
async fn serve_migrates_then_stops_cleanly_on_sigterm() {
    let db = TestDatabase::empty().await;
    let mut child = tenantry(Some(db.url()))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("TENANTRY_LOG", "info")
        .env("TENANTRY_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the log until the server says where it listens.
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        if v["message"] == "serving the Tenantry API" {
            break v["port"].as_u64().unwrap();
        }
    };
    let client = reqwest::Client::new();
    let ready = client
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "serve applied the migrations");

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("\"stopped\"")), "{rest:?}");
    let _ = Duration::ZERO;
}
