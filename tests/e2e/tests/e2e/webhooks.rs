//! A duplicate webhook delivery changes nothing: Stripe retries and resends
//! deliver the same event id again, and the second delivery must be a no-op.

use serde_json::{Value, json};
use tenantry_e2e::World;

/// What a delivery could change, as the API shows it.
async fn state(w: &World, t: &str, owner: &str) -> Value {
    let mut tenant = w.tenant(t, owner).await;
    // `version` and `updated_at` change only when the tenant does.
    let activity = w
        .get(&format!("/v1/tenants/{t}/activity?limit=200"), &w.admin)
        .await;
    let jobs = w
        .get(&format!("/v1/jobs?tenant={t}&limit=200"), &w.admin)
        .await;
    let job_ids: Vec<Value> = jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].clone())
        .collect();
    tenant.as_object_mut().unwrap().remove("status_reason");
    json!({
        "tenant": tenant,
        "subscription": w.get(&format!("/v1/tenants/{t}/subscription"), owner).await,
        "plan_changes": w.get(&format!("/v1/tenants/{t}/plan-changes?limit=200"), owner).await,
        "deployments": w.deployments(t, owner).await,
        "activity": activity["items"].as_array().unwrap().len(),
        "jobs": job_ids,
        "containers": w.containers().await,
    })
}

#[tokio::test]
async fn a_duplicate_webhook_delivery_changes_nothing() {
    let w = World::start(50).await;
    w.register_nodes().await;
    let slug = w.slug("dupe");
    let (t, owner, checkout) = w.signup(&slug, "basic").await;
    w.pay(&checkout).await;
    w.wait_status(&t, &owner, "active").await;
    // An upgrade paid by invoice: another invoice.paid, of another kind.
    let change = w
        .post(
            &format!("/v1/tenants/{t}/plan-change"),
            Some(&owner),
            json!({"plan": "pro"}),
            202,
        )
        .await;
    let id = change["plan_change"]["id"].as_str().unwrap().to_owned();
    w.eventually("the upgrade applied and migrated", || async {
        let changes = w
            .get(&format!("/v1/tenants/{t}/plan-changes"), &owner)
            .await;
        let jobs = w.jobs(&t, "migrate").await;
        let applied = changes["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == id.as_str() && c["status"] == "applied");
        if applied && jobs.len() == 1 && jobs[0]["status"] == "succeeded" {
            Ok(())
        } else {
            Err(json!({"changes": changes, "jobs": jobs}))
        }
    })
    .await;

    let before = state(&w, &t, &owner).await;
    let events = w.stripe_events().await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"checkout.session.completed"), "{kinds:?}");
    assert!(
        kinds.iter().filter(|k| **k == "invoice.paid").count() >= 2,
        "signup and upgrade invoices: {kinds:?}"
    );
    // Every event again, in order, each accepted (200) as already known.
    for e in &events {
        let id = e["id"].as_str().unwrap();
        assert_eq!(
            w.redeliver(id).await,
            vec![200],
            "redelivery of {} {id}",
            e["type"]
        );
    }
    // Give the server time to act on them if it (wrongly) were to: any job
    // or change it started would show in the state below. Poll the jobs
    // list for a while instead of sleeping blind.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        let jobs = w
            .get(&format!("/v1/jobs?tenant={t}&limit=200"), &w.admin)
            .await;
        assert_eq!(
            jobs["items"].as_array().unwrap().len(),
            before["jobs"].as_array().unwrap().len(),
            "no new job: {jobs}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let after = state(&w, &t, &owner).await;
    assert_eq!(before, after, "a duplicate delivery changes nothing");
    assert_eq!(
        w.stripe_events().await.len(),
        events.len(),
        "and triggers no Stripe call that makes events"
    );
}
