//! A Stripe-billed subscription after signup, by webhook: renewals paid and
//! failed (dunning and its recovery, late deliveries), deletion in Stripe
//! and the end of service at the period end, and upgrade invoices.

use serde_json::{Value, json};
use uuid::Uuid;

use super::{World, invoice, shaped, world};

/// A Stripe-billed active tenant set up through webhooks: (tenant, subscription, period end).
async fn billed(w: &World, slug: &str) -> (Uuid, Uuid, i64) {
    let now = chrono::Utc::now().timestamp();
    let (tenant, sub, _) = w.signup(slug, "basic").await;
    let ssub = format!("sub_{slug}");
    w.deliver(
        &w.for_tenant(shaped("checkout.session.completed"), tenant, sub, &ssub)
            .await,
    )
    .await;
    w.deliver(
        &w.for_tenant(
            invoice("invoice.paid", "subscription_create", now, now + 100),
            tenant,
            sub,
            &ssub,
        )
        .await,
    )
    .await;
    let db = w.app.sql().await;
    db.execute(
        "UPDATE tenants SET status = 'active' WHERE id = $1",
        &[&tenant],
    )
    .await
    .unwrap();
    db.execute(
        "UPDATE subscriptions SET status = 'active' WHERE id = $1",
        &[&sub],
    )
    .await
    .unwrap();
    (tenant, sub, now + 100)
}

#[tokio::test]
async fn a_renewal_paid_advances_the_period_clears_past_due_and_lifts_a_suspension() {
    let w = world().await;
    let (t, sub, end) = billed(&w, "acme").await;
    let ev = async |name: &str, reason: &str, s: i64, e: i64| {
        w.for_tenant(invoice(name, reason, s, e), t, sub, "sub_acme")
            .await
    };
    // A failed renewal: dunning.
    let failed = ev(
        "invoice.payment_failed",
        "subscription_cycle",
        end,
        end + 100,
    )
    .await;
    assert_eq!(w.deliver(&failed).await["outcome"], "applied");
    assert_eq!(
        w.one(&format!(
            "SELECT status FROM subscriptions WHERE id = '{sub}'"
        ))
        .await,
        "past_due"
    );
    // Dunning suspends the tenant after the grace (the processor, as configured).
    w.app
        .sql()
        .await
        .execute(
            "UPDATE tenants SET status = 'suspended', status_reason = 'non-payment' WHERE id = $1",
            &[&t],
        )
        .await
        .unwrap();
    // The retry succeeds.
    let paid = ev("invoice.paid", "subscription_cycle", end, end + 100).await;
    assert_eq!(w.deliver(&paid).await["outcome"], "applied");
    assert_eq!(w.one(&format!("SELECT status || ' ' || (past_due_since IS NULL) || ' ' || extract(epoch FROM current_period_end)::bigint FROM subscriptions WHERE id = '{sub}'")).await,
               format!("active true {}", end + 100));
    assert_eq!(w.tenant_status(t).await, "active");
    assert_eq!(
        w.count(&format!(
            "SELECT 1 FROM jobs WHERE kind = 'resume' AND tenant_id = '{t}'"
        ))
        .await,
        1
    );
    // Late deliveries: the failure again (a new event id) and an older invoice change nothing.
    let late = ev(
        "invoice.payment_failed",
        "subscription_cycle",
        end,
        end + 100,
    )
    .await;
    assert_eq!(w.deliver(&late).await["outcome"], "ignored");
    let old = ev("invoice.paid", "subscription_cycle", end - 100, end).await;
    assert_eq!(w.deliver(&old).await["outcome"], "ignored");
    assert_eq!(w.one(&format!("SELECT status || ' ' || extract(epoch FROM current_period_end)::bigint FROM subscriptions WHERE id = '{sub}'")).await, format!("active {}", end + 100));
    assert_eq!(
        w.count(&format!(
            "SELECT 1 FROM charges WHERE subscription_id = '{sub}' AND status = 'paid'"
        ))
        .await,
        2
    );
}

#[tokio::test]
async fn a_subscription_deleted_in_stripe_is_canceled_at_period_end() {
    let w = world().await;
    let (t, sub, end) = billed(&w, "acme").await;
    // An update without cancellation: recorded, no effect.
    let updated = w
        .for_tenant(shaped("customer.subscription.updated"), t, sub, "sub_acme")
        .await;
    assert_eq!(w.deliver(&updated).await["outcome"], "ignored");
    let deleted = w
        .for_tenant(shaped("customer.subscription.deleted"), t, sub, "sub_acme")
        .await;
    assert_eq!(w.deliver(&deleted).await["outcome"], "applied");
    assert_eq!(w.one(&format!("SELECT status || ' ' || extract(epoch FROM current_period_end)::bigint FROM subscriptions WHERE id = '{sub}'")).await, format!("canceled {end}"), "service runs to the period end");
    assert_eq!(w.count(&format!("SELECT 1 FROM activity_log WHERE action = 'subscription.canceled' AND tenant_id = '{t}'")).await, 1);
    let again = w
        .for_tenant(shaped("customer.subscription.deleted"), t, sub, "sub_acme")
        .await;
    assert_eq!(w.deliver(&again).await["outcome"], "ignored");

    // The paid period runs to its end; then the processor ends the service.
    let process = async || {
        tenantry_billing::engine::process_due(
            &w.app.pool(),
            &tenantry_billing::SandboxGateway::new("http://x"),
            &w.clock(),
            &w.app.settings.billing,
        )
        .await
        .unwrap()
    };
    assert_eq!(process().await.ended, 0);
    assert_eq!(w.tenant_status(t).await, "active");
    let mut conn = w.app.pool().get().await.unwrap();
    tenantry_store::billing::set_sandbox_offset(&mut conn, 200)
        .await
        .unwrap();
    drop(conn);
    assert!(
        w.clock()
            .now(&mut w.app.pool().get().await.unwrap())
            .await
            .unwrap()
            .timestamp()
            > end
    );
    assert_eq!(process().await.ended, 1);
    assert_eq!(
        w.one(&format!(
            "SELECT status || ' ' || status_reason FROM tenants WHERE id = '{t}'"
        ))
        .await,
        "deprovisioning canceled"
    );
    let deprovision = format!(
        "SELECT 1 FROM jobs WHERE kind = 'deprovision' AND tenant_id = '{t}' AND (payload->>'final_backup')::bool"
    );
    assert_eq!(w.count(&deprovision).await, 1);
    assert_eq!(w.count(&format!("SELECT 1 FROM activity_log WHERE action = 'tenant.status_changed' AND tenant_id = '{t}' AND after->>'reason' = 'canceled'")).await, 1);
    // Once only.
    assert_eq!(process().await.ended, 0);
    assert_eq!(w.count(&deprovision).await, 1);
}

#[tokio::test]
async fn an_upgrade_invoice_paid_applies_the_change_once() {
    let w = world().await;
    let (t, sub, _) = billed(&w, "acme").await;
    w.app
        .sql()
        .await
        .execute(
            "UPDATE subscriptions SET saved_payment_method = false WHERE id = $1",
            &[&sub],
        )
        .await
        .unwrap();
    let owner = w.app.login("owner@acme.test").await;
    // Payment checkout path creates a pending change; pay it by webhook (as Stripe would, with our metadata).
    let body: Value = w
        .app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "pro"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let change = body["plan_change"]["id"].as_str().unwrap().to_owned();
    let asked: rust_decimal::Decimal = body["plan_change"]["amount"]["amount"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let cents =
        rust_decimal::prelude::ToPrimitive::to_i64(&(asked * rust_decimal::Decimal::from(100)))
            .unwrap();
    let paid = |total: i64| {
        let mut e = invoice("invoice.paid", "manual", 0, 0);
        let o = &mut e["data"]["object"];
        o["metadata"] = json!({"plan_change_id": change, "tenant_id": t.to_string(), "charge": format!("upgrade:{change}")});
        o["parent"] = Value::Null;
        o["currency"] = json!("usd");
        o["total"] = json!(total);
        o["amount_due"] = json!(total);
        o["amount_paid"] = json!(total);
        e
    };
    // Regression (issue 16): an invoice for another amount than we asked is
    // recorded, not applied, and an operator is alerted.
    let short = paid(cents - 1);
    assert_eq!(w.deliver(&short).await["outcome"], "ignored");
    assert_eq!(
        w.one(&format!(
            "SELECT status FROM plan_changes WHERE id = '{change}'"
        ))
        .await,
        "pending"
    );
    assert_eq!(
        w.count(&format!(
            "SELECT 1 FROM alerts WHERE kind = 'payment.unmatched' AND tenant_id = '{t}' AND resolved_at IS NULL"
        ))
        .await,
        1
    );
    let e = paid(cents);
    assert_eq!(w.deliver(&e).await["outcome"], "applied");
    let mut dup = e.clone();
    dup["id"] = json!(format!("evt_{}", Uuid::now_v7().simple()));
    assert_eq!(
        w.deliver(&dup).await["outcome"],
        "ignored",
        "a second signal of the same payment"
    );
    assert_eq!(
        w.one(&format!(
            "SELECT p.code FROM tenants t JOIN plans p ON p.id = t.plan_id WHERE t.id = '{t}'"
        ))
        .await,
        "pro"
    );
    assert_eq!(
        w.count(&format!(
            "SELECT 1 FROM activity_log WHERE action = 'plan_change.applied' AND tenant_id = '{t}'"
        ))
        .await,
        1
    );
}
