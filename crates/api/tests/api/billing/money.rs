//! Money correctness on the local path (the sandbox gateway): an interval
//! change starts a new billing cycle and is never billed twice, a late
//! payment is applied while it can be and refunded when not, a failed
//! migration's payment comes back as a credit the next renewal uses, and a
//! stuck upgrade can be abandoned and its checkout obtained again.

use chrono::{DateTime, Months, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use rust_decimal_macros::dec;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{owner_of, set_saved_method, subscription, time};
use crate::helpers::{TestApp, assert_problem, spawn_app};

fn dec_of(v: &Value) -> Decimal {
    v.as_str().unwrap().parse().unwrap()
}

/// Stripe's proration of one line: price × remaining / length, to the cent.
fn line(price: Decimal, start: DateTime<Utc>, end: DateTime<Utc>, at: DateTime<Utc>) -> Decimal {
    let len = Decimal::from((end - start).num_seconds());
    let rem = Decimal::from((end - at).num_seconds());
    (price * rem / len).round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

async fn text(app: &TestApp, sql: &str) -> String {
    app.sql()
        .await
        .query_one(&format!("SELECT ({sql})::text"), &[])
        .await
        .unwrap()
        .get::<_, Option<String>>(0)
        .unwrap_or_default()
}

/// One timestamp a query returns.
async fn instant(app: &TestApp, sql: &str) -> DateTime<Utc> {
    text(app, &format!("SELECT to_json(({sql})) #>> '{{}}'"))
        .await
        .parse()
        .unwrap()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    text(app, &format!("SELECT count(*) FROM ({sql}) q"))
        .await
        .parse()
        .unwrap()
}

async fn advance(app: &TestApp, admin: &str, seconds: i64) -> Value {
    let res = app
        .post_as(
            "/v1/sandbox/clock",
            admin,
            json!({"advance_seconds": seconds}),
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Regression (issue 16): a month → year upgrade charged the year but kept
/// the monthly period, so the old month's end billed the year again.
#[tokio::test]
async fn a_month_to_year_upgrade_starts_a_yearly_cycle_billed_once() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (t, owner) = owner_of(&app, "yearly", "odoo", "basic").await;
    set_saved_method(&app, t).await;
    let before = subscription(&app, t, &owner.access_token).await;
    let (start, end) = (
        time(&before["current_period_start"]),
        time(&before["current_period_end"]),
    );
    advance(&app, &admin.access_token, 9 * 86_400 + 3_600).await;
    let res = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "basic-yearly"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["payment"], "charged_to_saved_payment_method");
    let change = &out["plan_change"];
    assert_eq!(change["status"], "applied");
    let pd = instant(
        &app,
        &format!(
            "SELECT proration_date FROM plan_changes WHERE id = '{}'",
            change["id"].as_str().unwrap()
        ),
    )
    .await;
    // Charged: the year in full, less the unused month (Stripe's rule).
    assert_eq!(
        dec_of(&change["amount"]["amount"]),
        dec!(290) - line(dec!(29), start, end, pd)
    );
    // A new yearly cycle from the change: period, anchor and next charge.
    let after = subscription(&app, t, &owner.access_token).await;
    let year_end = pd.checked_add_months(Months::new(12)).unwrap();
    assert_eq!(time(&after["current_period_start"]), pd);
    assert_eq!(time(&after["current_period_end"]), year_end);
    assert_eq!(time(&after["next_charge_at"]), year_end);
    assert_eq!(dec_of(&after["next_charge_amount"]["amount"]), dec!(290));
    let anchor = instant(
        &app,
        &format!("SELECT billing_anchor FROM subscriptions WHERE tenant_id = '{t}'"),
    )
    .await;
    assert_eq!(anchor, pd);
    // The old month's end passes: nothing is billed.
    advance(&app, &admin.access_token, 40 * 86_400).await;
    let renewals = format!("SELECT 1 FROM charges WHERE tenant_id = '{t}' AND kind = 'renewal'");
    assert_eq!(count(&app, &renewals).await, 0, "the year is paid");
    // A year after the change: one renewal of the year, for the next year.
    advance(&app, &admin.access_token, 330 * 86_400).await;
    assert_eq!(count(&app, &renewals).await, 1);
    let amount = text(
        &app,
        &format!("SELECT amount FROM charges WHERE tenant_id = '{t}' AND kind = 'renewal'"),
    )
    .await;
    assert_eq!(amount.parse::<Decimal>().unwrap(), dec!(290));
    let period_start = instant(
        &app,
        &format!("SELECT period_start FROM charges WHERE tenant_id = '{t}' AND kind = 'renewal'"),
    )
    .await;
    assert_eq!(period_start, year_end);
}

/// A year → month downgrade takes effect at the year's end: the monthly
/// cycle starts there, and the renewal there bills the first month.
#[tokio::test]
async fn a_year_to_month_downgrade_starts_monthly_cycles_at_the_year_end() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (t, owner) = owner_of(&app, "monthly", "odoo", "basic-yearly").await;
    set_saved_method(&app, t).await;
    let res = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "basic"}),
        )
        .await;
    assert_eq!(res.status(), 201, "scheduled for the year's end");
    let out: Value = res.json().await.unwrap();
    let year_end = time(&out["plan_change"]["effective_at"]);
    advance(&app, &admin.access_token, 370 * 86_400).await;
    let sub = subscription(&app, t, &owner.access_token).await;
    assert_eq!(sub["plan"], "basic");
    let month_end = year_end.checked_add_months(Months::new(1)).unwrap();
    assert_eq!(time(&sub["current_period_start"]), year_end);
    assert_eq!(time(&sub["current_period_end"]), month_end);
    let paid: Vec<String> = app
        .sql()
        .await
        .query(
            "SELECT amount::text FROM charges WHERE tenant_id = $1 AND kind = 'renewal' ORDER BY period_start",
            &[&t],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        paid.first().map(|a| a.parse::<Decimal>().unwrap()),
        Some(dec!(29)),
        "the first month after the year, at the monthly price"
    );
}

/// Regression (issue 16): an upgrade paid after its 24-hour window was
/// ignored — the money kept, the plan unchanged. Now it is applied while
/// the quote still holds, else refunded with an activity row and an alert.
#[tokio::test]
async fn a_late_payment_is_applied_while_it_can_be_and_refunded_when_not() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let sql = app.sql().await;
    // Paid late, still in the period it was quoted for: applied.
    let (t, owner) = owner_of(&app, "late-ok", "odoo", "basic").await;
    let out: Value = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "pro"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let change = out["plan_change"]["id"].as_str().unwrap().to_owned();
    advance(&app, &admin.access_token, 25 * 3_600).await;
    assert_eq!(
        text(
            &app,
            &format!("SELECT status FROM plan_changes WHERE id = '{change}'")
        )
        .await,
        "expired",
        "its window passed"
    );
    let res = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-changes/{change}/mark-paid"),
            &admin.access_token,
            json!({"reference": "wire-late-1"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let paid: Value = res.json().await.unwrap();
    assert_eq!(paid["payment"], "marked_paid");
    assert_eq!(paid["plan_change"]["status"], "applied");
    assert_eq!(
        count(&app, &format!("SELECT 1 FROM activity_log WHERE tenant_id = '{t}' AND action = 'plan_change.applied_late'")).await,
        1
    );

    // Paid after the period it was quoted for ended: refunded in full.
    let (u, owner_u) = owner_of(&app, "late-gone", "odoo", "basic").await;
    let out: Value = app
        .post_as(
            &format!("/v1/tenants/{u}/plan-change"),
            &owner_u.access_token,
            json!({"plan": "pro"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let change = out["plan_change"]["id"].as_str().unwrap().to_owned();
    let asked = dec_of(&out["plan_change"]["amount"]["amount"]);
    // The period ends (a renewal moves it on; the processor expires the upgrade).
    set_saved_method(&app, u).await;
    advance(&app, &admin.access_token, 32 * 86_400).await;
    let res = app
        .post_as(
            &format!("/v1/tenants/{u}/plan-changes/{change}/mark-paid"),
            &admin.access_token,
            json!({"reference": "wire-late-2"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let refunded: Value = res.json().await.unwrap();
    assert_eq!(refunded["payment"], "refunded");
    assert_eq!(refunded["plan_change"]["status"], "expired");
    let tenant: Value = app
        .get_as(&format!("/v1/tenants/{u}"), &owner_u.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tenant["plan"], "basic", "not applied");
    let row = sql
        .query_one(
            "SELECT amount::text, status, provider_reference FROM charges WHERE tenant_id = $1 AND kind = 'refund'",
            &[&u],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0).parse::<Decimal>().unwrap(), asked);
    assert_eq!(row.get::<_, String>(1), "pending");
    assert_eq!(
        row.get::<_, Option<String>>(2).as_deref(),
        Some("wire-late-2")
    );
    assert_eq!(
        count(&app, &format!("SELECT 1 FROM alerts WHERE tenant_id = '{u}' AND kind = 'payment.refunded' AND resolved_at IS NULL")).await,
        1
    );
    assert_eq!(
        count(&app, &format!("SELECT 1 FROM activity_log WHERE tenant_id = '{u}' AND action = 'plan_change.payment_refunded'")).await,
        1
    );
    // The refund job gives it back through the gateway (the sandbox records it), once.
    let job = text(
        &app,
        &format!("SELECT payload FROM jobs WHERE tenant_id = '{u}' AND kind = 'billing.refund'"),
    )
    .await;
    let job: Value = serde_json::from_str(&job).unwrap();
    let mut handlers = tenantry_store::worker::Handlers::new();
    tenantry_billing::RefundJobs {
        gateway: std::sync::Arc::new(tenantry_billing::SandboxGateway::new(
            "https://sandbox.test",
        )),
    }
    .register(&mut handlers);
    for _ in 0..2 {
        handlers
            .run_inline(&app.pool(), "billing.refund", job.clone())
            .await
            .unwrap();
    }
    let row = sql
        .query_one(
            "SELECT status, provider_reference FROM charges WHERE tenant_id = $1 AND kind = 'refund'",
            &[&u],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "paid");
    assert!(row.get::<_, String>(1).starts_with("re_sandbox_"));
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT 1 FROM activity_log WHERE tenant_id = '{u}' AND action = 'charge.refunded'"
            )
        )
        .await,
        1
    );
    // Recording the same payment again changes nothing.
    let again: Value = app
        .post_as(
            &format!("/v1/tenants/{u}/plan-changes/{change}/mark-paid"),
            &admin.access_token,
            json!({"reference": "wire-late-2"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["payment"], "refunded");
    assert_eq!(
        count(
            &app,
            &format!("SELECT 1 FROM charges WHERE tenant_id = '{u}' AND kind = 'refund'")
        )
        .await,
        1
    );
}

/// Regression (issue 16): a failed migration recorded an event nothing
/// read. Now its payment comes back as a credit, once, and the next renewal
/// is paid from it.
#[tokio::test]
async fn a_failed_migration_credits_its_payment_once_and_the_next_renewal_uses_it() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (t, owner) = owner_of(&app, "credited", "odoo", "basic").await;
    set_saved_method(&app, t).await;
    advance(&app, &admin.access_token, 10 * 86_400).await;
    let out: Value = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "pro"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(out["plan_change"]["status"], "applied");
    let change: Uuid = out["plan_change"]["id"].as_str().unwrap().parse().unwrap();
    let paid = dec_of(&out["plan_change"]["amount"]["amount"]);
    assert!(paid > dec!(0));
    super::fail_migration(&app, t, change).await;
    super::fail_migration(&app, t, change).await;
    let credits: Value = app
        .get_as(&format!("/v1/tenants/{t}/credits"), &owner.access_token)
        .await
        .json()
        .await
        .unwrap();
    let items = credits["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "once");
    assert_eq!(items[0]["kind"], "granted");
    assert_eq!(items[0]["reason"], "migration_failed");
    assert_eq!(dec_of(&items[0]["amount"]["amount"]), paid);
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT 1 FROM provisioning_events WHERE tenant_id = '{t}' AND consumed_at IS NULL"
            )
        )
        .await,
        0,
        "the event is consumed"
    );
    let sub = subscription(&app, t, &owner.access_token).await;
    assert_eq!(sub["plan"], "basic", "back on the old plan");
    assert_eq!(dec_of(&sub["credit_balance"][0]["amount"]), paid);
    assert_eq!(dec_of(&sub["next_charge_credit"]["amount"]), paid);
    assert_eq!(
        dec_of(&sub["next_charge_amount"]["amount"]),
        dec!(29) - paid
    );
    // The renewal is paid from the credit first.
    advance(&app, &admin.access_token, 25 * 86_400).await;
    let row = app
        .sql()
        .await
        .query_one(
            "SELECT amount::text, credit_applied::text, status FROM charges WHERE tenant_id = $1 AND kind = 'renewal'",
            &[&t],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, String>(0).parse::<Decimal>().unwrap(),
        dec!(29) - paid
    );
    assert_eq!(row.get::<_, String>(1).parse::<Decimal>().unwrap(), paid);
    assert_eq!(row.get::<_, String>(2), "paid");
    let sub = subscription(&app, t, &owner.access_token).await;
    assert_eq!(sub["credit_balance"], json!([]), "used up, once");
    advance(&app, &admin.access_token, 31 * 86_400).await;
    let second: Vec<String> = app
        .sql()
        .await
        .query(
            "SELECT credit_applied::text FROM charges WHERE tenant_id = $1 AND kind = 'renewal' ORDER BY period_start",
            &[&t],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(second.len(), 2);
    assert_eq!(second[1].parse::<Decimal>().unwrap(), dec!(0));
}

/// A pending upgrade can be abandoned by who asked for it, and its
/// checkout obtained again while it is open.
#[tokio::test]
async fn a_pending_upgrade_has_a_checkout_until_its_requester_abandons_it() {
    let app = spawn_app().await;
    let (t, owner) = owner_of(&app, "stuck", "odoo", "basic").await;
    assert_problem(
        app.post_as(
            &format!("/v1/tenants/{t}/checkout"),
            &owner.access_token,
            json!({}),
        )
        .await,
        404,
    )
    .await;
    let out: Value = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "pro"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let change = out["plan_change"]["id"].as_str().unwrap().to_owned();
    let res = app
        .post_as(
            &format!("/v1/tenants/{t}/checkout"),
            &owner.access_token,
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let checkout: Value = res.json().await.unwrap();
    assert_eq!(checkout["purpose"], "upgrade");
    assert_eq!(checkout["plan_change_id"], change.as_str());
    assert_eq!(checkout["amount"], out["plan_change"]["amount"]);
    assert_eq!(checkout["checkout_url"], out["checkout_url"]);
    // A member (no billing:write) may not abandon it; its requester may.
    let member = app
        .user(
            "member@stuck.test",
            tenantry_domain::Role::TenantMember,
            Some(t),
        )
        .await;
    assert_problem(
        app.post_as(
            &format!("/v1/tenants/{t}/plan-changes/{change}/abandon"),
            &member.access_token,
            json!({}),
        )
        .await,
        403,
    )
    .await;
    let res = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-changes/{change}/abandon"),
            &owner.access_token,
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let abandoned: Value = res.json().await.unwrap();
    assert_eq!(abandoned["status"], "canceled");
    assert_eq!(
        text(
            &app,
            &format!("SELECT status FROM charges WHERE plan_change_id = '{change}'")
        )
        .await,
        "canceled"
    );
    assert_problem(
        app.post_as(
            &format!("/v1/tenants/{t}/checkout"),
            &owner.access_token,
            json!({}),
        )
        .await,
        404,
    )
    .await;
    // Another change may be asked for now.
    let res = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "pro"}),
        )
        .await;
    assert_eq!(res.status(), 202);
}

/// To lifetime (local path): the one-time price is charged in full, no
/// credit for the month, and nothing renews after.
#[tokio::test]
async fn an_upgrade_to_lifetime_charges_its_price_and_never_renews() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (t, owner) = owner_of(&app, "forever", "inventory", "starter").await;
    set_saved_method(&app, t).await;
    advance(&app, &admin.access_token, 5 * 86_400).await;
    let out: Value = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "lifetime"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(out["plan_change"]["status"], "applied");
    assert_eq!(dec_of(&out["plan_change"]["amount"]["amount"]), dec!(499));
    let sub = subscription(&app, t, &owner.access_token).await;
    assert!(sub["next_charge_at"].is_null());
    advance(&app, &admin.access_token, 400 * 86_400).await;
    assert_eq!(
        count(
            &app,
            &format!("SELECT 1 FROM charges WHERE tenant_id = '{t}' AND kind = 'renewal'")
        )
        .await,
        0
    );
    assert_eq!(
        subscription(&app, t, &owner.access_token).await["status"],
        "active"
    );
}

/// Once its period has ended, a scheduled downgrade is in effect even
/// before the processor applies it: canceling it then is refused (the
/// renewal at the period end bills the new plan).
#[tokio::test]
async fn a_due_downgrade_can_no_longer_be_canceled() {
    let app = spawn_app().await;
    let (t, owner) = owner_of(&app, "too-late", "odoo", "pro").await;
    let out: Value = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "basic"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let effective = time(&out["plan_change"]["effective_at"]);
    // The clock reaches the period end; the processor has not run yet.
    let pool = app.pool();
    let mut conn = pool.get().await.unwrap();
    let now: DateTime<Utc> = instant(&app, "SELECT now()").await;
    tenantry_store::billing::set_sandbox_offset(&mut conn, (effective - now).num_seconds() + 1)
        .await
        .unwrap();
    let cancel = app
        .delete_as(
            &format!("/v1/tenants/{t}/scheduled-plan-change"),
            &owner.access_token,
        )
        .await;
    let problem = assert_problem(cancel, 409).await;
    assert!(problem["detail"].as_str().unwrap().contains("took effect"));
    assert_eq!(
        text(
            &app,
            &format!("SELECT status FROM plan_changes WHERE tenant_id = '{t}'")
        )
        .await,
        "scheduled"
    );
}
