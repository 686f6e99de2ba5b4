//! Catalog sync to Stripe Products and Prices: idempotent, archiving a
//! changed price, and one-time prices (a payment checkout) for lifetime plans.

use tenantry_billing::stripe as bstripe;

use super::{World, world};

#[tokio::test]
async fn catalog_sync_is_idempotent_and_archives_a_changed_price() {
    let w = world().await;
    let pool = w.app.pool();
    let first = bstripe::catalog::sync_catalog(&w.stripe, &pool)
        .await
        .unwrap();
    assert_eq!(first.products_created, 2);
    let paid_plans = w
        .count("SELECT 1 FROM plans WHERE active AND price > 0")
        .await;
    assert_eq!(first.prices_created as i64, paid_plans);
    let again = bstripe::catalog::sync_catalog(&w.stripe, &pool)
        .await
        .unwrap();
    assert_eq!(
        (
            again.products_created,
            again.prices_created,
            again.prices_archived
        ),
        (0, 0, 0)
    );
    assert_eq!(
        w.sim.objects("price").len() as i64,
        paid_plans,
        "no second Price"
    );
    // Shapes: monthly and yearly recurring, in minor units.
    let basic = w.one("SELECT s.stripe_id FROM stripe_catalog s JOIN plans p ON p.id = s.local_id WHERE p.code = 'basic'").await;
    let price = w.sim.object(&basic).unwrap();
    assert_eq!(
        (price["unit_amount"].as_i64(), price["currency"].as_str()),
        (Some(2900), Some("usd"))
    );
    assert_eq!(price["recurring"]["interval"], "month");
    let yearly = w.one("SELECT s.stripe_id FROM stripe_catalog s JOIN plans p ON p.id = s.local_id WHERE p.code = 'pro-yearly'").await;
    assert_eq!(
        w.sim.object(&yearly).unwrap()["recurring"]["interval"],
        "year"
    );
    // A price change: a new Price, the old one archived.
    w.app
        .sql()
        .await
        .execute("UPDATE plans SET price = 31.50 WHERE code = 'basic'", &[])
        .await
        .unwrap();
    let changed = bstripe::catalog::sync_catalog(&w.stripe, &pool)
        .await
        .unwrap();
    assert_eq!((changed.prices_created, changed.prices_archived), (1, 1));
    assert_eq!(w.sim.object(&basic).unwrap()["active"], false);
    let new = w.one("SELECT s.stripe_id FROM stripe_catalog s JOIN plans p ON p.id = s.local_id WHERE p.code = 'basic'").await;
    assert_eq!(w.sim.object(&new).unwrap()["unit_amount"], 3150);
    // Every create carried an idempotency key.
    assert!(
        w.sim
            .requests()
            .iter()
            .filter(|r| r.method == "POST")
            .all(|r| r.idempotency_key.is_some())
    );
}

#[tokio::test]
async fn a_lifetime_plan_gets_a_one_time_price_and_a_payment_checkout() {
    let w = world().await;
    let product = w.one("SELECT id FROM products WHERE slug = 'odoo'").await;
    w.app
        .sql()
        .await
        .execute(
            &format!("INSERT INTO plans (id, product_id, code, name, tier_rank, price, currency, billing_interval, deployment, cpu_cores, memory_mib, storage_gib, backup_schedule, active)
                      SELECT gen_random_uuid(), '{product}', 'lifetime', 'Lifetime', 9, 999.00, 'USD', 'lifetime', deployment, cpu_cores, memory_mib, storage_gib, backup_schedule, true
                      FROM plans WHERE code = 'basic' AND product_id = '{product}'"),
            &[],
        )
        .await
        .unwrap();
    let (tenant, _, url) = w.signup("forever", "lifetime").await;
    let session = w.sim.object(&World::session_of(&url)).unwrap();
    assert_eq!(session["mode"], "payment");
    let price = w
        .sim
        .object(session["_sim"]["line_items"][0]["price"].as_str().unwrap())
        .unwrap();
    assert!(price["recurring"].is_null());
    assert_eq!(price["unit_amount"], 99900);
    w.sim
        .complete_checkout(session["id"].as_str().unwrap())
        .await;
    assert_eq!(w.tenant_status(tenant).await, "provisioning");
}
