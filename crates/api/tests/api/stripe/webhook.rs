//! The webhook endpoint: signatures (forged, stale, unsigned, unknown
//! secret, rotated secret), duplicate event ids, and event types recorded
//! but not handled.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tenantry_billing::stripe::signature;

use super::{OLD_SECRET, SECRET, shaped, world};
use crate::helpers::assert_problem;

#[tokio::test]
async fn forged_stale_unsigned_and_unknown_secret_deliveries_are_400_and_record_nothing() {
    let w = world().await;
    let e = shaped("invoice.paid");
    let now = chrono::Utc::now().timestamp();
    let body = serde_json::to_vec(&e).unwrap();
    for (header, why) in [
        (None, "unsigned"),
        (
            Some(signature::sign(&body, "whsec_someone_else", now)),
            "unknown secret",
        ),
        (
            Some(signature::sign(&body, SECRET, now - 301)),
            "replayed after the tolerance",
        ),
        (
            Some(signature::sign(b"{\"id\":\"evt_other\"}", SECRET, now)),
            "forged body",
        ),
        (Some("t=abc,v1=zz".to_owned()), "malformed"),
    ] {
        let mut req = w
            .app
            .client
            .post(w.app.url("/v1/webhooks/stripe"))
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(h) = header {
            req = req.header("stripe-signature", h);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 400, "{why}");
        assert_problem(res, 400).await;
    }
    assert_eq!(w.count("SELECT 1 FROM stripe_events").await, 0);
    // Signed but not an event: 400 too.
    let junk = json!({"hello": "world"});
    assert_eq!(w.post_event(&junk, SECRET, now).await.status(), 400);
    assert_eq!(w.count("SELECT 1 FROM stripe_events").await, 0);
}

#[tokio::test]
async fn a_duplicate_event_id_changes_nothing_and_other_types_are_recorded_and_ignored() {
    let w = world().await;
    let (tenant, sub, _) = w.signup("acme", "basic").await;
    let e = w
        .for_tenant(
            shaped("checkout.session.completed"),
            tenant,
            sub,
            "sub_acme",
        )
        .await;
    let started = Instant::now();
    assert_eq!(w.deliver(&e).await["outcome"], "applied");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered in {:?}",
        started.elapsed()
    );
    // The same id again, even signed with the previous (rotated) secret: nothing more.
    let res = w
        .post_event(&e, OLD_SECRET, chrono::Utc::now().timestamp())
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["outcome"], "duplicate");
    assert_eq!(w.provision_jobs(tenant).await, 1);
    assert_eq!(w.count("SELECT 1 FROM stripe_events").await, 1);
    let row = w
        .app
        .sql()
        .await
        .query_one(
            "SELECT type, api_version, payload->>'id', processed_at IS NOT NULL FROM stripe_events",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "checkout.session.completed");
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("2026-07-29.dahlia")
    );
    assert_eq!(row.get::<_, String>(2), e["id"].as_str().unwrap());
    assert!(row.get::<_, bool>(3));
    // Another type: 200, recorded, ignored.
    let mut other = shaped("invoice.paid");
    other["type"] = json!("customer.created");
    assert_eq!(w.deliver(&other).await["outcome"], "ignored");
    let err = w
        .one(&format!(
            "SELECT error FROM stripe_events WHERE id = '{}'",
            other["id"].as_str().unwrap()
        ))
        .await;
    assert!(err.contains("not handled"), "{err}");
}
