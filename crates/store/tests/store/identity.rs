//! Failed logins are counted atomically: concurrent failures each count,
//! and the one that reaches the limit locks the account (issue 17, point 2).

use secrecy::SecretString;
use tenantry_store::{Pool, PoolSettings, identity};
use tenantry_test_db::TestDatabase;

#[tokio::test]
async fn concurrent_failed_logins_each_count_and_the_limit_locks() {
    let db = TestDatabase::new().await;
    let pool = Pool::new(
        &SecretString::from(db.url().to_owned()),
        PoolSettings {
            max_size: 24,
            timeout: std::time::Duration::from_secs(10),
        },
    )
    .expect("pool");
    let id = uuid::Uuid::now_v7();
    {
        let mut conn = pool.get().await.unwrap();
        identity::create_user(
            &mut conn,
            &identity::NewUser {
                id,
                email: "race@example.test",
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
                role: "admin",
                tenant_id: None,
            },
        )
        .await
        .unwrap();
    }
    // 20 sessions × 10 failures, all at once, under a limit none reaches.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (pool, start) = (pool.clone(), start.clone());
            tokio::spawn(async move {
                let mut conn = pool.get().await.unwrap();
                start.wait().await;
                for _ in 0..10 {
                    let _ = identity::record_login_failure(
                        &mut conn,
                        id,
                        10_000,
                        chrono::Duration::minutes(15),
                    )
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mut conn = pool.get().await.unwrap();
    let user = identity::find_user(&mut conn, id).await.unwrap();
    assert_eq!(user.failed_logins, 200, "every failure counted");
    assert_eq!(user.locked_until, None);

    // Concurrent failures across the limit: exactly the ones reaching it lock.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (pool, start) = (pool.clone(), start.clone());
            tokio::spawn(async move {
                let mut conn = pool.get().await.unwrap();
                start.wait().await;
                identity::record_login_failure(&mut conn, id, 205, chrono::Duration::minutes(15))
                    .await
                    .unwrap()
                    .1
            })
        })
        .collect();
    let mut locks = 0;
    for t in tasks {
        locks += usize::from(t.await.unwrap());
    }
    // 200 + 5 reaches 205 once (the count restarts at 0); 15 more stay below.
    assert_eq!(locks, 1, "one failure reached the limit");
    let user = identity::find_user(&mut conn, id).await.unwrap();
    assert_eq!(user.failed_logins, 15);
    assert!(user.locked_until.is_some_and(|t| t > chrono::Utc::now()));
}
