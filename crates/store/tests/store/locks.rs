//! `Pool::session_lock`: one holder at a time, released by `release` or by
//! dropping the guard (the connection closes), never returned to the pool.

use std::time::Duration;

use tenantry_test_db::TestDatabase;

const CLASS: i32 = 7;

#[tokio::test]
async fn a_session_lock_has_one_holder_and_is_released_by_release_or_drop() {
    let db = TestDatabase::new().await;
    let pool = crate::pool(db.url());
    let key = uuid::Uuid::now_v7();
    let first = pool.session_lock(CLASS, key).await.unwrap();

    // A second taker waits while the first holds it…
    let waiting = tokio::spawn({
        let pool = pool.clone();
        async move { pool.session_lock(CLASS, key).await.unwrap() }
    });
    // …which PostgreSQL shows as a backend waiting on an advisory lock.
    let (sql, conn) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = sql
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 7 AND NOT granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "nobody waits");
        tokio::task::yield_now().await;
    }
    assert!(!waiting.is_finished());

    // Another key is not blocked.
    pool.session_lock(CLASS, uuid::Uuid::now_v7())
        .await
        .unwrap()
        .release()
        .await;

    first.release().await;
    let second = waiting.await.unwrap();
    // Dropping the guard closes its connection, which releases the lock.
    drop(second);
    pool.session_lock(CLASS, key).await.unwrap().release().await;
    // Every connection that held a lock was closed, not pooled.
    let held: i64 = sql
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 7 \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 0);
}
