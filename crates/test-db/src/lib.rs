#![expect(
    clippy::panic,
    reason = "test support: a missing or broken test cluster must fail the test loudly"
)]

//! Per-test PostgreSQL databases, the crates.io `crates_io_test_db` way.
//!
//! Each [`TestDatabase`] is a fresh database cloned (`CREATE DATABASE …
//! TEMPLATE …`) from a template that is migrated once per test run, and
//! dropped when the value is dropped. Tests therefore run in parallel without
//! sharing a row. Databases left behind by crashed runs are dropped when the
//! next run builds its template.
//!
//! The cluster comes from `DATABASE_URL` (any database on it; the role must
//! be allowed to create databases). `make test` starts a private cluster and
//! sets it; without it every test fails loudly rather than skipping.

use std::sync::OnceLock;

use tokio_postgres::{Client, NoTls};

/// Prefix of every database this crate creates.
const PREFIX: &str = "tt_";
/// Advisory lock key held while a template is built (ASCII "testdb").
const TEMPLATE_LOCK_KEY: i64 = 0x7465_7374_6462;

/// A database of its own for one test.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
}

fn admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "DATABASE_URL is not set: the tests need a PostgreSQL cluster. \
             Run them with `make test`, which starts one, or point DATABASE_URL at a \
             server whose role may CREATE DATABASE."
        )
    })
}

/// `url` with its database name replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{db}?{q}"),
        None => format!("{host_part}/{db}"),
    }
}

/// An id of this test run: nextest's run id when it runs us, else one per process.
fn run_id() -> &'static str {
    static RUN: OnceLock<String> = OnceLock::new();
    RUN.get_or_init(|| {
        let raw = std::env::var("NEXTEST_RUN_ID")
            .unwrap_or_else(|_| format!("p{}", uuid::Uuid::new_v4().simple()));
        raw.chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect::<String>()
            .to_lowercase()
    })
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test cluster at DATABASE_URL: {e:?}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

impl TestDatabase {
    /// A database with every migration applied, cloned from this run's template.
    pub async fn new() -> Self {
        let admin_url = with_database(&admin_url(), "postgres");
        let template = ensure_template(&admin_url).await;
        Self::create(admin_url, Some(&template)).await
    }

    /// An empty database (no migrations), for tests of the migrations themselves.
    pub async fn empty() -> Self {
        let admin_url = with_database(&admin_url(), "postgres");
        Self::create(admin_url, None).await
    }

    async fn create(admin_url: String, template: Option<&str>) -> Self {
        let name = format!("{PREFIX}{}_{}", run_id(), uuid::Uuid::new_v4().simple());
        let client = connect(&admin_url).await;
        let sql = match template {
            Some(t) => format!("CREATE DATABASE \"{name}\" TEMPLATE \"{t}\""),
            None => format!("CREATE DATABASE \"{name}\""),
        };
        client
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        Self {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        }
    }

    /// Connection URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        // Drop runs inside the test's runtime; a thread with its own runtime
        // may block without starving it.
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok((client, conn)) = tokio_postgres::connect(&admin_url, NoTls).await {
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    if let Err(e) = client.batch_execute(&sql).await {
                        eprintln!("test-db: {sql}: {e:?}");
                    }
                }
            });
        });
        let _ = handle.join();
    }
}

/// Builds this run's migrated template once (across the run's processes, under
/// an advisory lock) and returns its name. Cleans up databases of earlier runs.
async fn ensure_template(admin_url: &str) -> String {
    let name = format!("{PREFIX}tmpl_{}", run_id());
    let client = connect(admin_url).await;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK_KEY])
        .await
        .unwrap_or_else(|e| panic!("template lock: {e:?}"));
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap_or_else(|e| panic!("template lookup: {e:?}"))
        .is_some();
    if !exists {
        drop_leftovers(&client).await;
        let building = format!("{name}_building");
        // One statement per call: DROP/CREATE DATABASE refuse to run in the
        // implicit transaction of a multi-statement batch.
        for sql in [
            format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"),
            format!("CREATE DATABASE \"{building}\""),
        ] {
            client
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        }
        let url = secrecy::SecretString::from(with_database(admin_url, &building));
        tenantry_store::migrations::run_pending(&url)
            .await
            .unwrap_or_else(|e| panic!("migrating the test template failed: {e:?}"));
        client
            .batch_execute(&format!(
                "ALTER DATABASE \"{building}\" RENAME TO \"{name}\""
            ))
            .await
            .unwrap_or_else(|e| panic!("rename template: {e:?}"));
    }
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK_KEY])
        .await
        .unwrap_or_else(|e| panic!("template unlock: {e:?}"));
    name
}

/// Drops test databases of other runs that nobody is connected to (a run in
/// progress elsewhere keeps its databases: dropping one in use fails and is skipped).
async fn drop_leftovers(client: &Client) {
    let mine = format!("{PREFIX}{}", run_id());
    let mine_tmpl = format!("{PREFIX}tmpl_{}", run_id());
    let rows = client
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'tt\\_%'",
            &[],
        )
        .await
        .unwrap_or_default();
    for row in rows {
        let db: String = row.get(0);
        if db.starts_with(&mine) || db.starts_with(&mine_tmpl) {
            continue;
        }
        let _ = client
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{db}\""))
            .await;
    }
}

/// A TCP port on 127.0.0.1 that nobody listens on now, for a server a test
/// starts as another process (which binds it later).
///
/// Drawn at random from 20000–32767, below Linux's ephemeral range
/// (`net.ipv4.ip_local_port_range`, 32768–60999 by default): a port the
/// kernel hands out for `bind(0)` or an outgoing connection may be taken
/// again by the time the other process binds it, one from this range only
/// by another test drawing the same number.
pub fn free_port() -> u16 {
    const FIRST: u16 = 20_000;
    const COUNT: u16 = 12_768;
    loop {
        let bytes = uuid::Uuid::new_v4().into_bytes();
        let port = FIRST + u16::from_le_bytes([bytes[0], bytes[1]]) % COUNT;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_keeping_the_query() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/app?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
    }
}
