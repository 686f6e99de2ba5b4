//! Tenant databases against the real PostgreSQL of `DATABASE_URL`: roles and
//! databases are server-wide, so every test uses names of its own (a random
//! suffix) and a guard drops them when the test ends, failed or not.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tenantry_domain::TenantSlug;
use tenantry_provisioning::tenant_db::{
    DatabaseServer, TenantDbError, TenantDbName, generate_password,
};
use tokio_postgres::{Client, NoTls};

fn admin_url() -> String {
    let url = std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: these tests need a PostgreSQL cluster (`make test` starts one)",
    );
    tenantry_test_db::with_database(&url, "postgres")
}

fn server() -> DatabaseServer {
    DatabaseServer::new(SecretString::from(admin_url()))
}

/// A tenant name no other test (or run) uses, dropped with its role when
/// the guard goes out of scope.
struct Tenant {
    name: TenantDbName,
}

impl Tenant {
    fn new(label: &str) -> Self {
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..12];
        let slug = TenantSlug::parse(&format!("tdb-{label}-{suffix}")).unwrap();
        Self {
            name: TenantDbName::from_slug(&slug),
        }
    }

    /// A connection URL for the tenant's own role and database.
    fn url(&self, password: &SecretString) -> String {
        let base = tenantry_test_db::with_database(&admin_url(), self.name.as_str());
        // postgres://user@host… → postgres://<role>:<password>@host…
        let (scheme, rest) = base.split_once("://").unwrap();
        let host = rest.split_once('@').map_or(rest, |(_, h)| h);
        let pw: String = password
            .expose_secret()
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        format!("{scheme}://{}:{pw}@{host}", self.name)
    }
}

impl Drop for Tenant {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime: clean up on a thread of its own.
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            if let Err(e) = rt.block_on(server().drop_database(&name)) {
                eprintln!("tenant_db cleanup of {name}: {e}");
            }
        });
        let _ = handle.join();
    }
}

async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

async fn admin() -> Client {
    connect(&admin_url()).await.unwrap()
}

async fn count(client: &Client, sql: &str, name: &TenantDbName) -> i64 {
    client
        .query_one(sql, &[&name.as_str()])
        .await
        .unwrap()
        .get(0)
}

async fn roles(name: &TenantDbName) -> i64 {
    count(
        &admin().await,
        "SELECT count(*) FROM pg_roles WHERE rolname = $1",
        name,
    )
    .await
}

async fn databases(name: &TenantDbName) -> i64 {
    count(
        &admin().await,
        "SELECT count(*) FROM pg_database WHERE datname = $1",
        name,
    )
    .await
}

/// The role's stored password verifier (`pg_authid` is superuser-only; the
/// test cluster's admin is one).
async fn verifier(name: &TenantDbName) -> String {
    admin()
        .await
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&name.as_str()],
        )
        .await
        .unwrap()
        .get(0)
}

/// Whether `password` matches a `SCRAM-SHA-256$iter:salt$StoredKey:ServerKey`
/// verifier (RFC 5802 §3 / RFC 7677): the check the server makes at login,
/// done here because the test cluster trusts every local connection.
/// ASCII passwords only (SASLprep leaves them unchanged).
fn scram_matches(verifier: &str, password: &str) -> bool {
    type HmacSha256 = Hmac<Sha256>;
    let hmac = |key: &[u8], data: &[u8]| {
        let mut m = HmacSha256::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().to_vec()
    };
    let rest = verifier.strip_prefix("SCRAM-SHA-256$").unwrap();
    let (params, keys) = rest.split_once('$').unwrap();
    let (iter, salt) = params.split_once(':').unwrap();
    let (stored_key, server_key) = keys.split_once(':').unwrap();
    let iter: u32 = iter.parse().unwrap();
    let salt = STANDARD.decode(salt).unwrap();
    // Hi(password, salt, i) = PBKDF2-HMAC-SHA-256 with one block.
    let mut u = hmac(
        password.as_bytes(),
        &[salt.as_slice(), &[0, 0, 0, 1]].concat(),
    );
    let mut salted = u.clone();
    for _ in 1..iter {
        u = hmac(password.as_bytes(), &u);
        for (s, x) in salted.iter_mut().zip(&u) {
            *s ^= x;
        }
    }
    let client_key = hmac(&salted, b"Client Key");
    let stored = Sha256::digest(&client_key).to_vec();
    let server = hmac(&salted, b"Server Key");
    STANDARD.encode(stored) == stored_key && STANDARD.encode(server) == server_key
}

#[tokio::test]
async fn ensure_twice_makes_one_role_and_one_database_owned_by_it() {
    let t = Tenant::new("twice");
    let server = server();
    let pw = generate_password();
    assert!(!server.exists(&t.name).await.unwrap());
    server.ensure_database(&t.name, &pw).await.unwrap();
    server.ensure_database(&t.name, &pw).await.unwrap();
    assert!(server.exists(&t.name).await.unwrap());
    assert_eq!((roles(&t.name).await, databases(&t.name).await), (1, 1));
    let row = admin()
        .await
        .query_one(
            "SELECT pg_get_userbyid(d.datdba)::text, r.rolcanlogin, r.rolsuper, r.rolcreatedb, \
             r.rolcreaterole FROM pg_database d, pg_roles r \
             WHERE d.datname = $1 AND r.rolname = $1",
            &[&t.name.as_str()],
        )
        .await
        .unwrap();
    let owner: String = row.get(0);
    assert_eq!(owner, t.name.as_str());
    let flags: (bool, bool, bool, bool) = (row.get(1), row.get(2), row.get(3), row.get(4));
    assert_eq!(flags, (true, false, false, false), "LOGIN and nothing else");
}

#[tokio::test]
async fn the_tenant_logs_in_with_its_password_and_owns_its_database() {
    let t = Tenant::new("login");
    let pw = generate_password();
    server().ensure_database(&t.name, &pw).await.unwrap();
    let v = verifier(&t.name).await;
    assert!(v.starts_with("SCRAM-SHA-256$"), "{v}");
    assert!(scram_matches(&v, pw.expose_secret()));
    assert!(!scram_matches(&v, generate_password().expose_secret()));
    let tenant = connect(&t.url(&pw)).await.unwrap();
    let who: String = tenant
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, t.name.as_str());
    tenant
        .batch_execute("CREATE TABLE notes (id int primary key, body text); INSERT INTO notes VALUES (1, 'hi')")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_password_with_quotes_and_backslashes_is_stored_exactly() {
    let t = Tenant::new("quote");
    let pw = SecretString::from(r#"it's a 'quote' \' \\ "x"; -- $$ $a$"#.to_owned());
    server().ensure_database(&t.name, &pw).await.unwrap();
    assert!(scram_matches(&verifier(&t.name).await, pw.expose_secret()));
    connect(&t.url(&pw)).await.unwrap();
}

#[tokio::test]
async fn ensure_again_resets_the_password_to_the_one_given() {
    // A retried step after a crash: the role exists with another password
    // (say the job generated one, crashed before storing it, and generated
    // again); ensure converges to the password now stored.
    let t = Tenant::new("reset");
    let server = server();
    let (first, second) = (generate_password(), generate_password());
    server.ensure_database(&t.name, &first).await.unwrap();
    server.ensure_database(&t.name, &second).await.unwrap();
    let v = verifier(&t.name).await;
    assert!(scram_matches(&v, second.expose_secret()));
    assert!(!scram_matches(&v, first.expose_secret()));
    assert_eq!(roles(&t.name).await, 1);
}

#[tokio::test]
async fn ensure_converges_from_any_half_done_state() {
    let server = server();
    let pw = generate_password();

    // Crashed after CREATE ROLE, before CREATE DATABASE.
    let t = Tenant::new("half-role");
    admin()
        .await
        .batch_execute(&format!("CREATE ROLE \"{}\" NOLOGIN SUPERUSER", t.name))
        .await
        .unwrap();
    server.ensure_database(&t.name, &pw).await.unwrap();
    assert_eq!((roles(&t.name).await, databases(&t.name).await), (1, 1));
    let super_: bool = admin()
        .await
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = $1",
            &[&t.name.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!super_, "the role's attributes converge too");
    connect(&t.url(&pw)).await.unwrap();

    // A database left without its role (owned by the admin).
    let t = Tenant::new("half-db");
    admin()
        .await
        .batch_execute(&format!("CREATE DATABASE \"{}\"", t.name))
        .await
        .unwrap();
    server.ensure_database(&t.name, &pw).await.unwrap();
    assert_eq!((roles(&t.name).await, databases(&t.name).await), (1, 1));
    connect(&t.url(&pw))
        .await
        .unwrap()
        .batch_execute("CREATE TABLE t (id int)")
        .await
        .unwrap();
}

#[tokio::test]
async fn concurrent_steps_on_one_name_are_serialised() {
    let t = Tenant::new("race");
    let pw = generate_password();
    let (a, b) = (server(), server());
    // Two workers running the same step at once (a retried job whose first
    // run is still alive): the advisory lock on the name serialises them.
    let (ra, rb) = tokio::join!(
        a.ensure_database(&t.name, &pw),
        b.ensure_database(&t.name, &pw)
    );
    ra.unwrap();
    rb.unwrap();
    assert_eq!((roles(&t.name).await, databases(&t.name).await), (1, 1));
    // A drop racing an ensure ends in one state or the other, never half.
    let (rc, rd) = tokio::join!(a.drop_database(&t.name), b.ensure_database(&t.name, &pw));
    rc.unwrap();
    rd.unwrap();
    let state = (roles(&t.name).await, databases(&t.name).await);
    assert!(state == (1, 1) || state == (0, 0), "{state:?}");
}

#[tokio::test]
async fn other_tenants_cannot_connect_to_a_tenant_database() {
    let (a, b) = (Tenant::new("iso-a"), Tenant::new("iso-b"));
    let server = server();
    let (pa, pb) = (generate_password(), generate_password());
    server.ensure_database(&a.name, &pa).await.unwrap();
    server.ensure_database(&b.name, &pb).await.unwrap();
    // a's role and password, b's database.
    let url = tenantry_test_db::with_database(&a.url(&pa), b.name.as_str());
    let err = connect(&url).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
        "{err}"
    );
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn temp_dir(label: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "tenantry-tenant-db-{label}-{}",
        uuid::Uuid::new_v4().simple()
    ))
}

#[tokio::test]
async fn backup_writes_a_custom_format_dump_that_pg_restore_lists() {
    let t = Tenant::new("backup");
    let server = server();
    let pw = generate_password();
    server.ensure_database(&t.name, &pw).await.unwrap();
    connect(&t.url(&pw))
        .await
        .unwrap()
        .batch_execute(
            "CREATE TABLE invoices (id int primary key); INSERT INTO invoices VALUES (42)",
        )
        .await
        .unwrap();
    let dir = temp_dir("backup");
    let path = server.backup(&t.name, &dir.join("nested")).await.unwrap();

    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        file.starts_with(&format!("{}-", t.name)) && file.ends_with("Z.dump"),
        "{file}"
    );
    assert_eq!(files_in(&dir.join("nested")), [file], "no .partial left");
    // Issue 17, point 10: a dump holds a tenant's data: owner-only.
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600, "the dump is 0600");
        assert_eq!(mode(&dir.join("nested")), 0o700, "its directory is 0700");
    }
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"PGDMP"), "custom format header");
    let list = std::process::Command::new("pg_restore")
        .arg("--list")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let listing = String::from_utf8_lossy(&list.stdout);
    assert!(listing.contains("TABLE public invoices"), "{listing}");
    assert!(listing.contains("TABLE DATA public invoices"), "{listing}");
    // The backup drops nothing.
    assert!(server.exists(&t.name).await.unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_failed_backup_leaves_no_file_and_drops_nothing() {
    let t = Tenant::new("badbackup");
    let pw = generate_password();
    server().ensure_database(&t.name, &pw).await.unwrap();
    let dir = temp_dir("bad");

    let failing = server().with_pg_dump("/bin/false");
    let err = failing.backup(&t.name, &dir).await.unwrap_err();
    assert!(matches!(err, TenantDbError::Dump { .. }), "{err:?}");
    assert!(!err.is_transient());
    let err = failing.backup_and_drop(&t.name, &dir).await.unwrap_err();
    assert!(matches!(err, TenantDbError::Dump { .. }), "{err:?}");
    assert!(files_in(&dir).is_empty(), "{:?}", files_in(&dir));
    assert!(server().exists(&t.name).await.unwrap());
    assert_eq!(roles(&t.name).await, 1);

    let missing = server().with_pg_dump("/nonexistent/pg_dump");
    let err = missing.backup(&t.name, &dir).await.unwrap_err();
    assert!(matches!(err, TenantDbError::Io { .. }), "{err:?}");

    let gone = Tenant::new("nodb");
    let err = server().backup(&gone.name, &dir).await.unwrap_err();
    assert!(matches!(err, TenantDbError::NoSuchDatabase(_)), "{err:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn drop_twice_removes_database_and_role_even_with_sessions_open() {
    let t = Tenant::new("drop");
    let server = server();
    let pw = generate_password();
    server.ensure_database(&t.name, &pw).await.unwrap();
    let session = connect(&t.url(&pw)).await.unwrap();
    // Another session of the role, on another database.
    let elsewhere = connect(&tenantry_test_db::with_database(&t.url(&pw), "postgres"))
        .await
        .unwrap();

    server.drop_database(&t.name).await.unwrap();
    server.drop_database(&t.name).await.unwrap();
    assert!(!server.exists(&t.name).await.unwrap());
    assert_eq!((roles(&t.name).await, databases(&t.name).await), (0, 0));
    assert!(
        session.query_one("SELECT 1", &[]).await.is_err(),
        "terminated"
    );
    assert!(
        elsewhere.query_one("SELECT 1", &[]).await.is_err(),
        "terminated"
    );
    assert!(connect(&t.url(&pw)).await.is_err());
}

#[tokio::test]
async fn drop_removes_a_role_left_without_its_database() {
    let t = Tenant::new("orphan");
    admin()
        .await
        .batch_execute(&format!("CREATE ROLE \"{}\" LOGIN", t.name))
        .await
        .unwrap();
    server().drop_database(&t.name).await.unwrap();
    assert_eq!(roles(&t.name).await, 0);
    // And a name never created is no error.
    server()
        .drop_database(&Tenant::new("never").name)
        .await
        .unwrap();
}

#[tokio::test]
async fn backup_and_drop_is_safe_to_rerun() {
    let t = Tenant::new("deprov");
    let server = server();
    let pw = generate_password();
    server.ensure_database(&t.name, &pw).await.unwrap();
    let dir = temp_dir("deprov");
    let dump = server.backup_and_drop(&t.name, &dir).await.unwrap();
    let dump = dump.unwrap();
    assert!(std::fs::metadata(&dump).unwrap().len() > 0);
    assert_eq!((roles(&t.name).await, databases(&t.name).await), (0, 0));
    // Re-run after the drop (crash before the job recorded it): no second
    // dump, no error.
    assert_eq!(server.backup_and_drop(&t.name, &dir).await.unwrap(), None);
    assert_eq!(files_in(&dir).len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_unreachable_server_is_transient_and_a_refusal_is_not() {
    // Port 1 on loopback: connection refused.
    let down = DatabaseServer::new(SecretString::from(
        "postgres://postgres@127.0.0.1:1/postgres".to_owned(),
    ))
    .with_connect_timeout(Duration::from_secs(2));
    let name = Tenant::new("down").name.clone();
    let err = down.exists(&name).await.unwrap_err();
    assert!(matches!(err, TenantDbError::Unavailable { .. }), "{err:?}");
    assert!(err.is_transient());
    let err = down
        .ensure_database(&name, &generate_password())
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");

    // An admin role that does not exist: refused, permanent.
    let url = admin_url().replacen("postgres@", "no_such_admin_role@", 1);
    let err = DatabaseServer::new(SecretString::from(url))
        .exists(&name)
        .await
        .unwrap_err();
    assert!(matches!(err, TenantDbError::Refused { .. }), "{err:?}");
    assert!(!err.is_transient());

    // A role without CREATEROLE may not create tenants: refused, permanent.
    let weak = Tenant::new("weak");
    let pw = generate_password();
    server().ensure_database(&weak.name, &pw).await.unwrap();
    let as_tenant = DatabaseServer::new(SecretString::from(weak.url(&pw)));
    let other = Tenant::new("victim");
    let err = as_tenant
        .ensure_database(&other.name, &pw)
        .await
        .unwrap_err();
    assert!(matches!(err, TenantDbError::Refused { .. }), "{err:?}");
    assert!(!err.is_transient());
    assert_eq!(roles(&other.name).await, 0);

    let bad = DatabaseServer::new(SecretString::from("not a url=".to_owned()));
    assert!(matches!(
        bad.exists(&name).await.unwrap_err(),
        TenantDbError::Invalid(_)
    ));
    let err = server()
        .ensure_database(&name, &SecretString::from(String::new()))
        .await
        .unwrap_err();
    assert!(matches!(err, TenantDbError::Invalid(_)), "{err:?}");
}

#[tokio::test]
async fn suspend_locks_the_tenant_out_and_resume_lets_it_back_in() {
    let t = Tenant::new("suspend");
    let server = server();
    let pw = generate_password();
    server.ensure_database(&t.name, &pw).await.unwrap();
    let session = connect(&t.url(&pw)).await.unwrap();
    session
        .batch_execute("CREATE TABLE kept (id int); INSERT INTO kept VALUES (7)")
        .await
        .unwrap();

    server.set_login(&t.name, false).await.unwrap();
    server.set_login(&t.name, false).await.unwrap();
    assert!(
        session.query_one("SELECT 1", &[]).await.is_err(),
        "terminated"
    );
    let err = connect(&t.url(&pw)).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
        "{err}"
    );

    server.set_login(&t.name, true).await.unwrap();
    let back = connect(&t.url(&pw)).await.unwrap();
    let kept: i32 = back
        .query_one("SELECT id FROM kept", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, 7);

    let err = server
        .set_login(&Tenant::new("ghost").name, true)
        .await
        .unwrap_err();
    assert!(matches!(err, TenantDbError::NoSuchRole(_)), "{err:?}");
    assert!(!err.is_transient());
}
