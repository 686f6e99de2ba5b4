use std::process::Command;

use secrecy::SecretString;
use tenantry_store::migrations;
use tenantry_test_db::TestDatabase;

/// The schema as `pg_dump --schema-only` prints it, minus diesel's own bookkeeping
/// table and the dump's version comments.
fn schema_dump(url: &str) -> String {
    let out = Command::new("pg_dump")
        .args([
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--exclude-table=__diesel_schema_migrations",
            url,
        ])
        .output()
        .expect("pg_dump must be installed (PostgreSQL client tools) to test migrations");
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .filter(|l| {
            !l.starts_with("-- Dumped")
                && !l.starts_with("\\restrict")
                && !l.starts_with("\\unrestrict")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn every_migration_goes_up_down_and_up_again_to_the_same_schema() {
    let db = TestDatabase::empty().await;
    let url = SecretString::from(db.url().to_owned());
    let empty = schema_dump(db.url());
    let all = migrations::embedded().unwrap();
    assert!(!all.is_empty());

    let applied = migrations::run_pending(&url).await.unwrap();
    assert_eq!(applied.len(), all.len());
    let up = schema_dump(db.url());
    assert_ne!(up, empty, "migrations must create something");

    let reverted = migrations::revert(&url, all.len()).await.unwrap();
    assert_eq!(reverted.len(), all.len());
    assert_eq!(
        schema_dump(db.url()),
        empty,
        "down.sql files must undo up.sql exactly"
    );

    migrations::run_pending(&url).await.unwrap();
    assert_eq!(
        schema_dump(db.url()),
        up,
        "up after down must rebuild the same schema"
    );
}

#[tokio::test]
async fn status_lists_every_migration_and_whether_it_is_applied() {
    let db = TestDatabase::empty().await;
    let url = SecretString::from(db.url().to_owned());
    let before = migrations::status(&url).await.unwrap();
    assert!(before.iter().all(|m| !m.applied));
    migrations::run_pending(&url).await.unwrap();
    let after = migrations::status(&url).await.unwrap();
    assert_eq!(after.len(), before.len());
    assert!(after.iter().all(|m| m.applied));
    assert_eq!(migrations::revert(&url, 1).await.unwrap().len(), 1);
    let last = migrations::status(&url).await.unwrap();
    assert!(!last.last().unwrap().applied);
}

#[tokio::test]
async fn concurrent_runs_apply_each_migration_once() {
    let db = TestDatabase::empty().await;
    let url = SecretString::from(db.url().to_owned());
    let runs = futures_util::future::join_all((0..4).map(|_| migrations::run_pending(&url))).await;
    let applied: usize = runs.into_iter().map(|r| r.unwrap().len()).sum();
    assert_eq!(applied, migrations::embedded().unwrap().len());
}

#[tokio::test]
async fn pending_count_tells_readiness() {
    let db = TestDatabase::empty().await;
    let url = SecretString::from(db.url().to_owned());
    let pool = crate::pool(db.url());
    let mut conn = pool.get().await.unwrap();
    assert!(
        migrations::pending_count(&mut conn).await.is_err(),
        "no bookkeeping table yet"
    );
    migrations::run_pending(&url).await.unwrap();
    assert_eq!(migrations::pending_count(&mut conn).await.unwrap(), 0);
    migrations::revert(&url, 1).await.unwrap();
    assert_eq!(migrations::pending_count(&mut conn).await.unwrap(), 1);
}

/// The committed `schema.rs` must be what `diesel print-schema` makes of the migrations.
#[tokio::test]
async fn schema_rs_matches_migrations() {
    let db = TestDatabase::new().await;
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = Command::new("diesel")
        .args(["print-schema", "--database-url", db.url()])
        .current_dir(root)
        .output()
        .expect("diesel CLI must be installed: cargo install diesel_cli --no-default-features --features postgres (make tools)");
    assert!(
        out.status.success(),
        "diesel print-schema: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = std::fs::read_to_string(format!("{root}/crates/store/src/schema.rs")).unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        committed,
        "crates/store/src/schema.rs is stale: run `make schema`"
    );
}
