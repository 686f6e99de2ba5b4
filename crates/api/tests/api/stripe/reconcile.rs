//! Reconciliation of lost webhooks, and the whole flow against the stand-in
//! (renewal, decline, deletion), which leaves renewals to Stripe.

use serde_json::json;
use tenantry_billing::stripe as bstripe;

use super::{World, paid_tenant, world};

#[tokio::test]
async fn a_lost_webhook_is_recovered_by_reconciliation() {
    let w = world().await;
    let (tenant, _, url) = w.signup("acme", "basic").await;
    w.sim.set_delivery(false);
    w.sim.complete_checkout(&World::session_of(&url)).await;
    assert_eq!(
        w.tenant_status(tenant).await,
        "pending_payment",
        "the webhooks were lost"
    );
    let report = bstripe::reconcile::reconcile(
        &w.stripe,
        &w.app.pool(),
        &w.clock(),
        bstripe::reconcile::WINDOW,
    )
    .await
    .unwrap();
    assert_eq!(
        report.recovered, 2,
        "checkout.session.completed and invoice.paid"
    );
    assert_eq!(w.tenant_status(tenant).await, "provisioning");
    assert_eq!(w.provision_jobs(tenant).await, 1);
    assert_eq!(
        w.count("SELECT 1 FROM stripe_events WHERE source = 'reconcile'")
            .await,
        2
    );
    // The job does the same and finds nothing new; a late webhook is a duplicate.
    w.run_job("stripe.reconcile", json!({})).await.unwrap();
    w.sim.set_delivery(true);
    let first = w.sim.events()[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(w.sim.redeliver(&first).await, vec![200]);
    assert_eq!(w.provision_jobs(tenant).await, 1);
    assert_eq!(w.count("SELECT 1 FROM stripe_events").await, 2);
}

#[tokio::test]
async fn the_whole_flow_against_the_stand_in() {
    let w = world().await;
    let (t, _, stripe_sub) = paid_tenant(&w, "acme", "basic").await;
    let sub = w
        .one(&format!(
            "SELECT id FROM subscriptions WHERE tenant_id = '{t}'"
        ))
        .await;
    let end = w
        .one(&format!(
            "SELECT current_period_end::text FROM subscriptions WHERE id = '{sub}'"
        ))
        .await;
    // A renewal, paid.
    assert_eq!(w.sim.renew(&stripe_sub).await.len(), 1);
    assert!(
        w.one(&format!(
            "SELECT current_period_end::text FROM subscriptions WHERE id = '{sub}'"
        ))
        .await
            > end
    );
    // A declined renewal: past due.
    let customer = w
        .one(&format!(
            "SELECT provider_customer_id FROM subscriptions WHERE id = '{sub}'"
        ))
        .await;
    w.sim.decline(&customer, true);
    w.sim.renew(&stripe_sub).await;
    assert_eq!(
        w.one(&format!(
            "SELECT status FROM subscriptions WHERE id = '{sub}'"
        ))
        .await,
        "past_due"
    );
    // Deleted in Stripe: canceled.
    w.sim.delete_subscription(&stripe_sub).await;
    assert_eq!(
        w.one(&format!(
            "SELECT status FROM subscriptions WHERE id = '{sub}'"
        ))
        .await,
        "canceled"
    );
    // Every event the stand-in sent was recorded once and processed.
    let sent = w.sim.events().len() as i64;
    assert_eq!(
        w.count("SELECT 1 FROM stripe_events WHERE processed_at IS NOT NULL")
            .await,
        sent
    );
    // The billing processor leaves Stripe-billed renewals to Stripe, even when due.
    w.app
        .sql()
        .await
        .execute("UPDATE subscriptions SET status = 'active', current_period_start = now() - interval '31 days', current_period_end = now() - interval '1 day'", &[])
        .await
        .unwrap();
    let report = tenantry_billing::engine::process_due(
        &w.app.pool(),
        &tenantry_billing::SandboxGateway::new("http://x"),
        &w.clock(),
        &w.app.settings.billing,
    )
    .await
    .unwrap();
    assert_eq!(
        report.renewed + report.declined + report.awaiting_customer,
        0
    );
}
