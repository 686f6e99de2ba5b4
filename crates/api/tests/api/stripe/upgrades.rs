//! Upgrades and downgrades billed by Stripe: exactly the engine's quote
//! charged to the saved card, the subscription's price moved without
//! proration, a downgrade as a subscription schedule switching at the
//! period end, a payment checkout without a saved card, a declined charge.

use serde_json::{Value, json};

use super::{World, paid_tenant, world};
use crate::helpers::assert_problem;

#[tokio::test]
async fn an_upgrade_charges_exactly_the_quote_and_moves_the_price_without_proration() {
    let w = world().await;
    let (t, token, stripe_sub) = paid_tenant(&w, "acme", "basic").await;
    assert_eq!(
        w.one(&format!(
            "SELECT saved_payment_method FROM subscriptions WHERE tenant_id = '{t}'"
        ))
        .await,
        "true"
    );
    let preview: Value = w
        .app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change/preview"),
            &token,
            json!({"plan": "pro"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let res = w
        .app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &token,
            json!({"plan": "pro", "proration_date": preview["proration_date"]}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["payment"], "charged_to_saved_payment_method");
    assert_eq!(body["plan_change"]["status"], "applied");
    let due: rust_decimal::Decimal = preview["amount_due"].as_str().unwrap().parse().unwrap();
    let cents = (due * rust_decimal::Decimal::from(100))
        .to_string()
        .parse::<f64>()
        .unwrap() as i64;
    let items: Vec<Value> = w.sim.objects("invoiceitem");
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]["amount"].as_i64(),
        Some(cents),
        "exactly the engine's quote"
    );
    let invoice = w.sim.object(items[0]["invoice"].as_str().unwrap()).unwrap();
    assert_eq!(invoice["status"], "paid");
    assert_eq!(
        invoice["metadata"]["plan_change_id"],
        body["plan_change"]["id"]
    );
    // The invoice.paid webhook came too: the change is applied once.
    assert_eq!(
        w.count(&format!(
            "SELECT 1 FROM activity_log WHERE tenant_id = '{t}' AND action = 'plan_change.applied'"
        ))
        .await,
        1
    );
    // The price moves with the job, without proration.
    assert_eq!(
        w.count("SELECT 1 FROM jobs WHERE kind = 'stripe.sync_price'")
            .await,
        1
    );
    let sub_id = w
        .one(&format!(
            "SELECT id FROM subscriptions WHERE tenant_id = '{t}'"
        ))
        .await;
    w.run_job("stripe.sync_price", json!({"subscription_id": sub_id}))
        .await
        .unwrap();
    let pro = w.one("SELECT s.stripe_id FROM stripe_catalog s JOIN plans p ON p.id = s.local_id WHERE p.code = 'pro'").await;
    assert_eq!(
        w.sim.object(&stripe_sub).unwrap()["items"]["data"][0]["price"]["id"],
        pro.as_str()
    );
    let update = w
        .sim
        .requests()
        .into_iter()
        .find(|r| r.path == format!("/v1/subscriptions/{stripe_sub}") && r.method == "POST")
        .unwrap();
    assert_eq!(update.params["proration_behavior"], "none");
    // Running it again makes no second update.
    w.run_job("stripe.sync_price", json!({"subscription_id": sub_id}))
        .await
        .unwrap();
    assert_eq!(
        w.sim
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.starts_with("/v1/subscriptions/"))
            .count(),
        1
    );
    // The next renewal bills the new price.
    w.sim.renew(&stripe_sub).await;
    let last = w
        .sim
        .objects("invoice")
        .into_iter()
        .rfind(|i| i["billing_reason"] == "subscription_cycle")
        .unwrap();
    assert_eq!(last["amount_paid"], 4900);
    // A downgrade at the period end is a subscription schedule: the price
    // stays until the period end, then the second phase bills the new one.
    let res = w
        .app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &token,
            json!({"plan": "basic"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    w.run_job("stripe.sync_price", json!({"subscription_id": sub_id}))
        .await
        .unwrap();
    let basic = w.one("SELECT s.stripe_id FROM stripe_catalog s JOIN plans p ON p.id = s.local_id WHERE p.code = 'basic'").await;
    let stripe_subscription = w.sim.object(&stripe_sub).unwrap();
    assert_eq!(
        stripe_subscription["items"]["data"][0]["price"]["id"],
        pro.as_str(),
        "billed as it is until the period end"
    );
    let schedule = w
        .sim
        .object(stripe_subscription["schedule"].as_str().unwrap())
        .unwrap();
    assert_eq!(schedule["status"], "active");
    assert_eq!(schedule["end_behavior"], "release");
    let phases = schedule["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 2);
    assert_eq!(phases[0]["items"][0]["price"], pro.as_str());
    assert_eq!(
        phases[0]["end_date"], stripe_subscription["items"]["data"][0]["current_period_end"],
        "the switch is at the period end"
    );
    assert_eq!(phases[1]["items"][0]["price"], basic.as_str());
    assert_eq!(
        w.one(&format!(
            "SELECT code FROM plans p JOIN tenants t ON t.plan_id = p.id WHERE t.id = '{t}'"
        ))
        .await,
        "pro",
        "ours changes at the period end"
    );
    let res = w
        .app
        .delete_as(&format!("/v1/tenants/{t}/scheduled-plan-change"), &token)
        .await;
    assert_eq!(res.status(), 200);
    w.run_job("stripe.sync_price", json!({"subscription_id": sub_id}))
        .await
        .unwrap();
    let stripe_subscription = w.sim.object(&stripe_sub).unwrap();
    assert_eq!(
        stripe_subscription["items"]["data"][0]["price"]["id"],
        pro.as_str()
    );
    assert!(
        stripe_subscription["schedule"].is_null(),
        "canceled: the schedule is released"
    );
    assert_eq!(
        w.sim.object(schedule["id"].as_str().unwrap()).unwrap()["status"],
        "released"
    );
    assert!(
        w.sim
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.starts_with("/v1/subscriptions/"))
            .all(|r| r.params["proration_behavior"] == "none")
    );
    assert_eq!(
        w.one(&format!(
            "SELECT price_version = price_synced_version FROM subscriptions WHERE id = '{sub_id}'"
        ))
        .await,
        "true",
        "Stripe was seen to match the latest change"
    );
}

#[tokio::test]
async fn without_a_saved_card_an_upgrade_is_paid_at_a_payment_checkout() {
    let w = world().await;
    let (t, token, _) = paid_tenant(&w, "acme", "basic").await;
    w.app
        .sql()
        .await
        .execute(
            "UPDATE subscriptions SET saved_payment_method = false WHERE tenant_id = $1",
            &[&t],
        )
        .await
        .unwrap();
    let res = w
        .app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &token,
            json!({"plan": "pro"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["payment"], "checkout_required");
    let url = body["checkout_url"].as_str().unwrap();
    let session = w.sim.object(&World::session_of(url)).unwrap();
    assert_eq!(session["mode"], "payment");
    let due: rust_decimal::Decimal = body["plan_change"]["amount"]["amount"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        rust_decimal::Decimal::from(
            session["_sim"]["line_items"][0]["price_data"]["unit_amount"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap()
        ),
        due * rust_decimal::Decimal::from(100)
    );
    assert_eq!(
        w.one(&format!(
            "SELECT status FROM plan_changes WHERE tenant_id = '{t}'"
        ))
        .await,
        "pending"
    );
    w.sim.complete_checkout(&World::session_of(url)).await;
    assert_eq!(
        w.one(&format!(
            "SELECT status FROM plan_changes WHERE tenant_id = '{t}'"
        ))
        .await,
        "applied"
    );
}

#[tokio::test]
async fn a_declined_upgrade_charge_is_402_and_changes_no_plan() {
    let w = world().await;
    let (t, token, _) = paid_tenant(&w, "acme", "basic").await;
    let customer = w
        .one(&format!(
            "SELECT provider_customer_id FROM subscriptions WHERE tenant_id = '{t}'"
        ))
        .await;
    w.sim.decline(&customer, true);
    let res = w
        .app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &token,
            json!({"plan": "pro"}),
        )
        .await;
    assert_problem(res, 402).await;
    assert_eq!(
        w.one(&format!(
            "SELECT p.code FROM tenants t JOIN plans p ON p.id = t.plan_id WHERE t.id = '{t}'"
        ))
        .await,
        "basic"
    );
}
