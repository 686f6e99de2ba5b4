//! Upgrades: the preview quotes exactly what is charged (Stripe's proration
//! rule), applied once paid or at once on a saved payment method; unpaid
//! upgrades expire; interval changes; a second upgrade prorates from the first.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use rust_decimal_macros::dec;
use serde_json::{Value, json};

use super::{owner_of, set_saved_method, subscription, time};
use crate::helpers::{assert_problem, spawn_app};

fn dec_of(v: &Value) -> Decimal {
    v.as_str().unwrap().parse().unwrap()
}

/// Stripe's proration, computed here from its published rule: each line
/// price × remaining / period length, rounded to the cent.
fn stripe_line(
    price: Decimal,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Decimal {
    let len = Decimal::from((end - start).num_seconds());
    let rem = Decimal::from((end - at).num_seconds());
    (price * rem / len).round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

#[tokio::test]
async fn an_upgrade_is_quoted_exactly_and_applied_once_paid() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (t, owner) = owner_of(&app, "acme", "odoo", "basic").await;
    // Move into the period a little, so the proration is not trivial.
    app.sql().await.execute("UPDATE subscriptions SET current_period_start = current_period_start - interval '9 days 7 hours', current_period_end = current_period_end - interval '9 days 7 hours', billing_anchor = billing_anchor - interval '9 days 7 hours' WHERE tenant_id = $1", &[&t]).await.unwrap();
    let sub = subscription(&app, t, &owner.access_token).await;
    let (start, end) = (
        time(&sub["current_period_start"]),
        time(&sub["current_period_end"]),
    );

    let preview: Value = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change/preview"),
            &owner.access_token,
            json!({"plan": "pro"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(preview["kind"], "upgrade");
    assert_eq!(preview["timing"], "on_payment");
    let at = time(&preview["proration_date"]);
    let credit = stripe_line(dec!(29), start, end, at);
    let charge = stripe_line(dec!(49), start, end, at);
    assert_eq!(dec_of(&preview["lines"][0]["amount"]["amount"]), -credit);
    assert_eq!(dec_of(&preview["lines"][1]["amount"]["amount"]), charge);
    assert_eq!(dec_of(&preview["amount_due"]), charge - credit);
    assert_eq!(preview["currency"], "USD");
    assert_eq!(time(&preview["lines"][1]["period_end"]), end);

    // The request with the preview's proration date is charged exactly the preview (Lago PR #5522).
    let res = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "pro", "proration_date": preview["proration_date"]}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["plan_change"]["status"], "pending");
    assert_eq!(out["payment"], "checkout_required");
    assert!(
        out["checkout_url"]
            .as_str()
            .unwrap()
            .contains("/sandbox/checkout/")
    );
    assert_eq!(
        out["plan_change"]["amount"]["amount"],
        preview["amount_due"]
    );
    // Not paid yet: still on basic.
    let tenant: Value = app
        .get_as(&format!("/v1/tenants/{t}"), &owner.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tenant["plan"], "basic");
    assert_eq!(
        subscription(&app, t, &owner.access_token).await["scheduled_plan_change"]["status"],
        "pending"
    );

    // Paid (an operator records it: the sandbox stands in for the provider's webhook).
    let change_id = out["plan_change"]["id"].as_str().unwrap();
    let paid = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-changes/{change_id}/mark-paid"),
            &admin.access_token,
            json!({"reference": "wire-123"}),
        )
        .await;
    assert_eq!(paid.status(), 200);
    let paid: Value = paid.json().await.unwrap();
    assert_eq!(paid["plan_change"]["status"], "applied");
    assert_eq!(
        paid["job"]["kind"], "migrate",
        "shared → dedicated starts the migration"
    );
    let tenant: Value = app
        .get_as(&format!("/v1/tenants/{t}"), &owner.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (tenant["plan"].as_str(), tenant["deployment"].as_str()),
        (Some("pro"), Some("dedicated"))
    );
    let sub = subscription(&app, t, &owner.access_token).await;
    assert_eq!(
        sub["next_charge_amount"]["amount"], "49.00",
        "the next renewal uses the new price"
    );
    // Paying twice changes nothing.
    assert_eq!(
        app.post_as(
            &format!("/v1/tenants/{t}/plan-changes/{change_id}/mark-paid"),
            &admin.access_token,
            json!({"reference": "wire-123"})
        )
        .await
        .status(),
        200
    );
    let charges: i64 = app
        .sql()
        .await
        .query_one("SELECT count(*) FROM charges WHERE tenant_id = $1", &[&t])
        .await
        .unwrap()
        .get(0);
    assert_eq!(charges, 1);
}

#[tokio::test]
async fn a_saved_payment_method_is_charged_and_the_upgrade_applies_at_once() {
    let app = spawn_app().await;
    let (t, owner) = owner_of(&app, "acme", "inventory", "starter").await;
    set_saved_method(&app, t).await;
    let res = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "business"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["payment"], "charged_to_saved_payment_method");
    assert_eq!(out["plan_change"]["status"], "applied");
    assert_eq!(out["job"], Value::Null, "shared → shared: no migration");
    let charge: (String, Decimal) = {
        let row = app
            .sql()
            .await
            .query_one(
                "SELECT status, amount::text FROM charges WHERE tenant_id = $1",
                &[&t],
            )
            .await
            .unwrap();
        (row.get(0), row.get::<_, String>(1).parse().unwrap())
    };
    assert_eq!(charge.0, "paid");
    assert_eq!(charge.1, dec_of(&out["plan_change"]["amount"]["amount"]));
}

#[tokio::test]
async fn an_unpaid_upgrade_expires_and_stops_blocking() {
    // Paymenter #1266: an unpaid upgrade must not lock the tenant forever.
    let app = spawn_app().await;
    let (t, owner) = owner_of(&app, "acme", "odoo", "basic").await;
    let first: Value = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "pro"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let due_by = time(&first["plan_change"]["payment_due_by"]);
    let requested = time(&first["plan_change"]["requested_at"]);
    assert_eq!(due_by - requested, Duration::hours(24));
    assert_problem(
        app.post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "enterprise"}),
        )
        .await,
        409,
    )
    .await;
    // The payment window passes.
    app.sql().await.execute("UPDATE plan_changes SET payment_due_by = now() - interval '1 second' WHERE tenant_id = $1", &[&t]).await.unwrap();
    let second = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "enterprise"}),
        )
        .await;
    assert_eq!(second.status(), 202);
    let history: Value = app
        .get_as(
            &format!("/v1/tenants/{t}/plan-changes"),
            &owner.access_token,
        )
        .await
        .json()
        .await
        .unwrap();
    let statuses: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["expired", "pending"]);
}

#[tokio::test]
async fn annual_to_monthly_is_a_downgrade_and_monthly_to_annual_an_upgrade() {
    // Lago #1834.
    let app = spawn_app().await;
    let (t, owner) = owner_of(&app, "acme", "odoo", "basic-yearly").await;
    let p: Value = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change/preview"),
            &owner.access_token,
            json!({"plan": "basic"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (p["kind"].as_str(), p["timing"].as_str()),
        (Some("downgrade"), Some("end_of_term"))
    );
    let (t2, owner2) = owner_of(&app, "beta", "odoo", "basic").await;
    let p: Value = app
        .post_as(
            &format!("/v1/tenants/{t2}/plan-change/preview"),
            &owner2.access_token,
            json!({"plan": "basic-yearly"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(p["kind"], "upgrade");
    // A new interval starts a new cycle: credit the unused month, charge the year.
    assert_eq!(p["lines"][1]["amount"]["amount"], "290.00");
}

#[tokio::test]
async fn a_second_upgrade_prorates_from_the_upgraded_plan() {
    // Lago #1778: never re-credit time already credited.
    let app = spawn_app().await;
    let (t, owner) = owner_of(&app, "acme", "inventory", "starter").await;
    set_saved_method(&app, t).await;
    app.sql().await.execute("UPDATE subscriptions SET current_period_start = current_period_start - interval '5 days', current_period_end = current_period_end - interval '5 days' WHERE tenant_id = $1", &[&t]).await.unwrap();
    let sub = subscription(&app, t, &owner.access_token).await;
    let (start, end) = (
        time(&sub["current_period_start"]),
        time(&sub["current_period_end"]),
    );
    let first: Value = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "business"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["plan_change"]["status"], "applied");
    let second: Value = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change/preview"),
            &owner.access_token,
            json!({"plan": "enterprise"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let at = time(&second["proration_date"]);
    assert_eq!(
        dec_of(&second["lines"][0]["amount"]["amount"]),
        -stripe_line(dec!(19), start, end, at),
        "credit of business, not starter"
    );
    assert_eq!(
        dec_of(&second["lines"][1]["amount"]["amount"]),
        stripe_line(dec!(59), start, end, at)
    );
}

/// A webhook or job that holds the subscription (as `invoice.paid` does
/// before it locks the tenant) does not stop an upgrade request from
/// recording its change and charge: the foreign-key checks of those inserts
/// share only the keys of the rows they reference. Locked `FOR UPDATE`, the
/// inserts waited on the subscription while holding the tenant's key share,
/// and the webhook, wanting the tenant next, deadlocked with them (seen at
/// CI).
#[tokio::test]
async fn an_upgrade_is_requested_while_a_webhook_holds_the_subscription() {
    let app = spawn_app().await;
    let (t, owner) = owner_of(&app, "locked", "odoo", "basic").await;
    let sub_id: uuid::Uuid = app
        .sql()
        .await
        .query_one("SELECT id FROM subscriptions WHERE tenant_id = $1", &[&t])
        .await
        .unwrap()
        .get(0);
    let pool = app.pool();
    let mut conn = pool.get().await.unwrap();
    let status = tenantry_store::AsyncConnection::transaction::<_, tenantry_store::StoreError, _>(
        &mut conn,
        async |conn| {
            tenantry_store::stripe::lock_subscription(conn, sub_id).await?;
            // A hang here (the old lock) fails the test rather than waiting for ever.
            let res = tokio::time::timeout(
                std::time::Duration::from_secs(30),
                app.post_as(
                    &format!("/v1/tenants/{t}/plan-change"),
                    &owner.access_token,
                    json!({"plan": "pro"}),
                ),
            )
            .await
            .expect("the request waited on the held subscription");
            // The webhook goes on to the tenant, which nobody holds now.
            tenantry_store::tenants::lock_tenant(conn, t).await?;
            Ok(res.status())
        },
    )
    .await
    .unwrap();
    assert_eq!(status, 202);
    assert_eq!(
        subscription(&app, t, &owner.access_token).await["scheduled_plan_change"]["status"],
        "pending"
    );
}
