//! The `tenantry` binary itself: subcommands, configuration, graceful shutdown.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use tenantry_test_db::TestDatabase;

fn tenantry(db_url: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenantry"));
    cmd.env_remove("DATABASE_URL")
        .env("TENANTRY_LOG", "warn")
        .env(
            "TENANTRY_JWT_KEYS",
            tenantry_api::config::random_key_list("cli-jwt"),
        )
        .env(
            "TENANTRY_SECRET_KEYS",
            tenantry_api::config::random_key_list("cli-seal"),
        )
        .env("TENANTRY_ARGON2_MEMORY_KIB", "1024")
        .env("TENANTRY_ARGON2_ITERATIONS", "1");
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

    // `down N` reverts the newest N, newest first.
    let names: Vec<String> = tenantry_store::migrations::embedded()
        .unwrap()
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    let newest = names.last().unwrap();
    let (ok, out, err) = run(tenantry(Some(url)).args(["migrate", "down", "1"]));
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("reverted {newest}"));
    let (_, out, _) = run(tenantry(Some(url)).args(["migrate", "status"]));
    assert!(out.contains(&format!("[ ] {newest}")), "{out}");
    assert!(out.contains(&format!("[X] {}", names[0])), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_migrates_then_finishes_in_flight_requests_on_sigterm() {
    stops_gracefully_on("TERM").await;
}

/// Ctrl-C is as graceful as SIGTERM (actix alone would drop in-flight requests).
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_also_finishes_in_flight_requests() {
    stops_gracefully_on("INT").await;
}

/// On `signal` the server stops accepting, lets a request that is in flight
/// (blocked on a table lock held by this test) finish, then exits 0.
async fn stops_gracefully_on(signal: &str) {
    let db = TestDatabase::empty().await;
    let mut child = tenantry(Some(db.url()))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("TENANTRY_LOG", "info")
        .env("TENANTRY_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut next_json = move || {
        let line = lines.next().expect("server exited early").unwrap();
        serde_json::from_str::<serde_json::Value>(&line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"))
    };
    let port = loop {
        let v = next_json();
        if v["message"] == "serving the Tenantry API" {
            break v["port"].as_u64().unwrap();
        }
    };
    let base = format!("http://127.0.0.1:{port}");
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200, "serve applied the migrations");

    // Hold a lock the catalog query needs, so the next request stays in flight.
    let (pg, conn) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    pg.batch_execute("BEGIN; LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let in_flight = tokio::spawn(reqwest::get(format!("{base}/v1/products")));
    loop {
        let waiting: i64 = pg
            .query_one("SELECT count(*) FROM pg_locks WHERE relation = 'products'::regclass AND NOT granted", &[])
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }

    crate::helpers::signal(child.id(), signal);
    let stderr_task = tokio::task::spawn_blocking(move || {
        // Wait until the server has begun its graceful shutdown.
        loop {
            let v = next_json();
            if v["message"] == "accept thread stopped" {
                return next_json;
            }
        }
    });
    let mut next_json = stderr_task.await.unwrap();
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "no new connection is accepted during shutdown"
    );
    pg.batch_execute("COMMIT").await.unwrap();

    let res = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    let code = res.status();
    let body = res.text().await.unwrap();
    if code != 200 {
        let log = tokio::task::spawn_blocking(move || {
            (0..6).map(|_| next_json().to_string()).collect::<Vec<_>>()
        })
        .await
        .unwrap();
        panic!("{body}\n{log:#?}");
    }
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    let stopped = tokio::task::spawn_blocking(move || {
        loop {
            if next_json()["message"] == "stopped" {
                return true;
            }
        }
    });
    assert!(stopped.await.unwrap());
}

#[tokio::test]
async fn admin_create_bootstraps_an_admin_from_stdin() {
    use std::io::Write as _;
    let db = TestDatabase::new().await;
    let create = |email: &str, password: &str| {
        let mut child = tenantry(Some(db.url()))
            .args(["admin", "create", "--email", email, "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = create("Root@Example.Test", "a very good password");
    assert!(ok, "{err}");
    assert!(out.contains("created admin root@example.test"), "{out}");
    let (ok, _, err) = create("root@example.test", "another good password");
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = create("x@example.test", "short");
    assert!(!ok && err.contains("password"), "{err}");
    assert!(
        !err.contains("short\n"),
        "the password is not echoed: {err}"
    );
    let (ok, _, err) =
        run(tenantry(Some(db.url())).args(["admin", "create", "--email", "y@example.test"]));
    assert!(!ok && err.contains("--password-stdin"), "{err}");

    let (client, conn) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT role, password_hash FROM users WHERE email = 'root@example.test'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "admin");
    let hasher = tenantry_api::auth::password::Hasher::new(1024, 1, 1).unwrap();
    let phc: String = row.get(1);
    assert!(hasher.verify(
        &secrecy::SecretString::from("a very good password".to_owned()),
        Some(&phc)
    ));
}

/// Secrets never reach the logs: run the real server at debug level through
/// a login (with 2FA setup) and an API token, then search everything it wrote.
#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_reach_the_logs() {
    let db = TestDatabase::new().await;
    let jwt_keys = tenantry_api::config::random_key_list("logjwt");
    let seal_keys = tenantry_api::config::random_key_list("logseal");
    let password = "correct horse battery staple";
    let mut create = tenantry(Some(db.url()))
        .args([
            "admin",
            "create",
            "--email",
            "log@example.test",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut create.stdin.take().unwrap(),
        format!("{password}\n").as_bytes(),
    )
    .unwrap();
    assert!(create.wait().unwrap().success());

    let mut child = tenantry(Some(db.url()))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("TENANTRY_LOG", "debug")
        .env("TENANTRY_LOG_FORMAT", "json")
        .env("TENANTRY_JWT_KEYS", &jwt_keys)
        .env("TENANTRY_SECRET_KEYS", &seal_keys)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain stderr on a thread the whole time: at debug level the server
    // writes enough to fill a pipe nobody reads, and would block on it.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .inspect(|l| drop(tx.send(l.clone())))
            .collect::<Vec<_>>()
    });
    let port = loop {
        let line = rx.recv().expect("server exited early");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "serving the Tenantry API" {
            break v["port"].as_u64().unwrap();
        }
    };
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let login = client
        .post(format!("{base}/v1/auth/login"))
        .json(&serde_json::json!({"email": "log@example.test", "password": password}))
        .send()
        .await
        .unwrap();
    let refresh = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            c.strip_prefix("tenantry_refresh=")
                .map(|r| r.split(';').next().unwrap_or("").to_owned())
        })
        .unwrap();
    let access: serde_json::Value = login.json().await.unwrap();
    let access = access["access_token"].as_str().unwrap().to_owned();
    let token: serde_json::Value = client
        .post(format!("{base}/v1/api-tokens"))
        .bearer_auth(&access)
        .json(&serde_json::json!({"name": "t", "scopes": ["catalog:read"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let setup: serde_json::Value = client
        .post(format!("{base}/v1/auth/totp/setup"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // A wrong login too: its password must not be logged either.
    client
        .post(format!("{base}/v1/auth/login"))
        .json(&serde_json::json!({"email": "log@example.test", "password": "wrong-secret-guess"}))
        .send()
        .await
        .unwrap();
    crate::helpers::signal(child.id(), "TERM");
    let log = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    assert!(child.wait().unwrap().success());
    let all = log.join("\n");
    assert!(all.contains("request finished"), "the requests were logged");
    let key_material = |spec: &str| spec.split_once(':').unwrap().1.to_owned();
    for (what, secret) in [
        ("password", password.to_owned()),
        ("wrong password", "wrong-secret-guess".to_owned()),
        ("access token", access.clone()),
        ("refresh token", refresh),
        ("API token", token["secret"].as_str().unwrap().to_owned()),
        ("TOTP secret", setup["secret"].as_str().unwrap().to_owned()),
        ("JWT key", key_material(&jwt_keys)),
        ("sealing key", key_material(&seal_keys)),
        ("database password/URL", db.url().to_owned()),
    ] {
        assert!(!all.contains(&secret), "the {what} appeared in the logs");
    }
}

/// Every boolean setting of the configuration table takes what people type
/// in its variable (`TENANTRY_SANDBOX=1 make run`), in any case, and a value
/// that is no boolean is refused naming the variable's flag.
#[test]
fn every_boolean_variable_takes_what_people_type() {
    let vars = [
        ("TENANTRY_INSECURE_COOKIES", "--insecure-cookies"),
        ("TENANTRY_HSTS", "--hsts"),
        ("TENANTRY_SANDBOX", "--sandbox"),
    ];
    // These are all the booleans `--help` lists (their default is `false`).
    let (ok, help, _) = run(tenantry(None).arg("--help"));
    assert!(ok);
    let listed = help
        .lines()
        .filter(|l| l.trim_start().starts_with("--") && !l.contains("<"))
        .filter(|l| !l.contains("--help") && !l.contains("--version"))
        .count();
    assert_eq!(listed, vars.len(), "{help}");
    for (var, flag) in vars {
        assert!(help.contains(flag) && help.contains(var), "{flag}");
        for value in [
            "1", "0", "true", "false", "TRUE", "False", "yes", "no", "Yes", "NO", "on", "off",
            "ON", "Off",
        ] {
            let (ok, _, err) = run(tenantry(None).env(var, value).arg("openapi"));
            assert!(ok, "{var}={value}: {err}");
        }
        let (ok, _, err) = run(tenantry(None).env(var, "maybe").arg("openapi"));
        assert!(!ok && err.contains(flag) && err.contains("maybe"), "{err}");
    }
}
