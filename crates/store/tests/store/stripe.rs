//! The Stripe twins of catalog objects.

use chrono::Utc;
use tenantry_store::{
    StoreError,
    stripe::{self, CatalogTwin},
};
use tenantry_test_db::TestDatabase;

fn twin(local_id: uuid::Uuid, stripe_id: &str) -> CatalogTwin {
    CatalogTwin {
        local_id,
        kind: "price".into(),
        stripe_id: stripe_id.into(),
        fingerprint: "2900 usd month".into(),
        synced_at: Utc::now(),
    }
}

/// Found by the end-to-end suite: a signup's checkout and a job synced the
/// same plan at once, got the same Price back and both saved it; one failed
/// on `stripe_catalog_stripe_id_key` and the signup answered 503. The race
/// needs both inserts to pass PostgreSQL's pre-check together, so this
/// tries many pairs.
#[tokio::test]
async fn the_same_twin_saved_twice_at_once_is_saved_once_without_error() {
    let db = TestDatabase::new().await;
    let pool = crate::pool(db.url());
    for round in 0..200 {
        let t = twin(uuid::Uuid::now_v7(), &format!("price_race{round}"));
        let save = |t: CatalogTwin| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut conn = pool.get().await.unwrap();
                stripe::save_twin(&mut conn, &t).await
            })
        };
        let (a, b) = tokio::join!(save(t.clone()), save(t.clone()));
        a.unwrap().unwrap();
        b.unwrap().unwrap();
        let mut conn = pool.get().await.unwrap();
        assert_eq!(
            stripe::twin(&mut conn, t.local_id)
                .await
                .unwrap()
                .map(|s| s.stripe_id),
            Some(t.stripe_id)
        );
    }
}

#[tokio::test]
async fn a_stripe_id_of_another_object_is_still_a_conflict() {
    let db = TestDatabase::new().await;
    let pool = crate::pool(db.url());
    let mut conn = pool.get().await.unwrap();
    stripe::save_twin(&mut conn, &twin(uuid::Uuid::now_v7(), "price_one"))
        .await
        .unwrap();
    let err = stripe::save_twin(&mut conn, &twin(uuid::Uuid::now_v7(), "price_one"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { constraint } if constraint == "stripe_catalog_stripe_id_key"),
        "{err:?}"
    );
}
