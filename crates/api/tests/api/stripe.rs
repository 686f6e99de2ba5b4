//! Stripe: configuration, catalog sync, signup checkout, exact upgrade
//! charges, idempotent outbound calls, the webhook (signatures, duplicates,
//! order, other API versions) with real-shaped payloads, effects, and
//! reconciliation — against the Stripe stand-in (`crates/stripe-sim`).

use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{Value, json};
use tenantry_api::config::{Payments, Settings};
use tenantry_billing::stripe::{self as bstripe, StripeSettings, signature};
use tenantry_domain::Role;
use tenantry_stripe_sim::StripeSim;
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem, demo_catalog_path, spawn_app_with};

const SECRET: &str = "whsec_current";
const OLD_SECRET: &str = "whsec_previous";

struct World {
    app: TestApp,
    sim: StripeSim,
    stripe: bstripe::Stripe,
}

fn stripe_settings(api_base: &str) -> StripeSettings {
    StripeSettings {
        secret_key: SecretString::from("sk_test_standin".to_owned()),
        webhook_secrets: vec![
            SecretString::from(SECRET.to_owned()),
            SecretString::from(OLD_SECRET.to_owned()),
        ],
        api_base: format!("{api_base}/"),
        success_url: "https://app.example.test/billing/success?session_id={CHECKOUT_SESSION_ID}"
            .into(),
        cancel_url: "https://app.example.test/billing/canceled".into(),
        tolerance_secs: 300,
        retries: 3,
    }
}

/// The app with Stripe pointed at a fresh stand-in that delivers its webhooks to the app.
async fn world() -> World {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sim_url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let sim = StripeSim::new(&sim_url);
    tokio::spawn(sim.serve(listener).unwrap());
    let settings = stripe_settings(&sim_url);
    let app = spawn_app_with(|s| s.payments = Payments::Stripe(settings.clone())).await;
    tenantry_api::catalog_file::load(&app.settings, demo_catalog_path())
        .await
        .unwrap();
    sim.set_webhook(&app.url("/v1/webhooks/stripe"), SECRET);
    World {
        stripe: bstripe::Stripe::new(settings).unwrap(),
        app,
        sim,
    }
}

impl World {
    fn clock(&self) -> tenantry_billing::Clock {
        self.app.settings.billing_clock()
    }

    async fn run_job(&self, kind: &str, payload: Value) -> Result<(), String> {
        bstripe::jobs::run(
            &self.stripe,
            &self.app.pool(),
            &self.clock(),
            kind,
            &payload,
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// A paid signup (Stripe Checkout); returns (tenant, subscription, checkout url).
    async fn signup(&self, slug: &str, plan: &str) -> (Uuid, Uuid, String) {
        let res = self
            .app
            .client
            .post(self.app.url("/v1/signup"))
            .json(&json!({"company_name": format!("{slug} Ltd"), "slug": slug, "email": format!("owner@{slug}.test"),
                          "password": crate::helpers::PASSWORD, "product": "odoo", "plan": plan}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        let tenant: Uuid = body["tenant"]["id"].as_str().unwrap().parse().unwrap();
        let sub = self
            .one(&format!(
                "SELECT id FROM subscriptions WHERE tenant_id = '{tenant}'"
            ))
            .await;
        (
            tenant,
            sub.parse().unwrap(),
            body["checkout_url"].as_str().unwrap().to_owned(),
        )
    }

    /// One text value of a query.
    async fn one(&self, sql: &str) -> String {
        let row = self
            .app
            .sql()
            .await
            .query_one(&format!("SELECT ({sql})::text"), &[])
            .await
            .unwrap();
        row.get::<_, Option<String>>(0).unwrap_or_default()
    }

    async fn count(&self, sql: &str) -> i64 {
        self.one(&format!("SELECT count(*) FROM ({sql}) q"))
            .await
            .parse()
            .unwrap()
    }

    async fn tenant_status(&self, t: Uuid) -> String {
        self.one(&format!("SELECT status FROM tenants WHERE id = '{t}'"))
            .await
    }

    async fn provision_jobs(&self, t: Uuid) -> i64 {
        self.count(&format!(
            "SELECT 1 FROM jobs WHERE kind = 'provision' AND tenant_id = '{t}'"
        ))
        .await
    }

    /// Posts `event` to the webhook signed with `secret` at `t`.
    async fn post_event(&self, event: &Value, secret: &str, t: i64) -> reqwest::Response {
        let body = serde_json::to_vec(event).unwrap();
        self.app
            .client
            .post(self.app.url("/v1/webhooks/stripe"))
            .header("content-type", "application/json")
            .header("stripe-signature", signature::sign(&body, secret, t))
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn deliver(&self, event: &Value) -> Value {
        let res = self
            .post_event(event, SECRET, chrono::Utc::now().timestamp())
            .await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// The session id of a checkout URL of the stand-in.
    fn session_of(url: &str) -> String {
        url.rsplit('/').next().unwrap().to_owned()
    }
}

/// A real-shaped event payload (`tests/fixtures/stripe/events`) with a fresh id.
fn shaped(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/stripe/events/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut e: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    e["id"] = json!(format!("evt_{}", Uuid::now_v7().simple()));
    e
}

/// Our ids laid over a real-shaped payload, where Stripe would put them.
fn for_tenant(mut e: Value, tenant: Uuid, sub: Uuid, customer: &str, stripe_sub: &str) -> Value {
    let meta = json!({"tenant_id": tenant.to_string(), "subscription_id": sub.to_string()});
    let o = &mut e["data"]["object"];
    o["customer"] = json!(customer);
    match o["object"].as_str().unwrap() {
        "checkout.session" => {
            o["client_reference_id"] = json!(tenant.to_string());
            o["metadata"] = meta;
            o["subscription"] = json!(stripe_sub);
        }
        "invoice" => {
            o["subscription"] = json!(stripe_sub);
            o["parent"]["subscription_details"]["subscription"] = json!(stripe_sub);
            o["parent"]["subscription_details"]["metadata"] = meta;
        }
        _ => {
            o["id"] = json!(stripe_sub);
            o["metadata"] = meta;
        }
    }
    e
}

/// An invoice event for the period [start, end).
fn invoice(name: &str, reason: &str, start: i64, end: i64) -> Value {
    let mut e = shaped(name);
    e["data"]["object"]["billing_reason"] = json!(reason);
    e["data"]["object"]["id"] = json!(format!("in_{}", Uuid::now_v7().simple()));
    e["data"]["object"]["lines"]["data"][0]["period"] = json!({"start": start, "end": end});
    e
}

// 1. Configuration ----------------------------------------------------------

#[test]
fn stripe_settings_come_from_flags_and_variables() {
    let cli = tenantry_api::cli::Cli::parse_from_with_config(
        [
            "tenantry",
            "--stripe-secret-key",
            "sk_test_x",
            "--stripe-webhook-secrets",
            "whsec_new, whsec_old,",
            "--stripe-api-base",
            "http://127.0.0.1:12111",
            "--public-url",
            "https://api.example.test",
            "openapi",
        ]
        .map(Into::into)
        .to_vec(),
    )
    .unwrap();
    let settings = Settings::from(cli.settings);
    let Payments::Stripe(s) = &settings.payments else {
        panic!("{:?}", settings.payments)
    };
    assert_eq!(
        s.webhook_secrets.len(),
        2,
        "comma-separated, blanks dropped"
    );
    assert_eq!(s.api_base, "http://127.0.0.1:12111/");
    assert_eq!(
        s.success_url,
        "https://api.example.test/billing/success?session_id={CHECKOUT_SESSION_ID}"
    );
    assert_eq!(s.cancel_url, "https://api.example.test/billing/canceled");
    assert!(
        !format!("{settings:?}").contains("sk_test_x"),
        "the key is never printed"
    );
    let off = tenantry_api::cli::Cli::parse_from_with_config(
        [
            "tenantry",
            "--payments",
            "disabled",
            "--stripe-secret-key",
            "sk",
            "openapi",
        ]
        .map(Into::into)
        .to_vec(),
    )
    .unwrap();
    assert!(matches!(
        Settings::from(off.settings).payments,
        Payments::Disabled
    ));
    let none = tenantry_api::cli::Cli::parse_from_with_config(
        ["tenantry", "openapi"].map(Into::into).to_vec(),
    )
    .unwrap();
    assert!(matches!(
        Settings::from(none.settings).payments,
        Payments::Sandbox
    ));
}

#[tokio::test]
async fn with_payments_disabled_an_operator_marks_a_signup_paid() {
    let app = spawn_app_with(|s| s.payments = Payments::Disabled).await;
    tenantry_api::catalog_file::load(&app.settings, demo_catalog_path())
        .await
        .unwrap();
    let res = app
        .client
        .post(app.url("/v1/signup"))
        .json(
            &json!({"company_name": "Acme", "slug": "acme", "email": "o@acme.test",
                      "password": crate::helpers::PASSWORD, "product": "odoo", "plan": "basic"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tenant"]["status"], "pending_payment");
    assert!(
        body["checkout_url"].is_null(),
        "no checkout when payments are off"
    );
    let t = body["tenant"]["id"].as_str().unwrap().to_owned();
    let admin = app.admin().await;
    let owner = app.login("o@acme.test").await;
    // Bad input changes nothing; the owner cannot mark their own payment.
    assert_problem(
        app.post_as(
            &format!("/v1/tenants/{t}/mark-paid"),
            &admin.access_token,
            json!({"reference": " "}),
        )
        .await,
        422,
    )
    .await;
    assert_problem(
        app.post_as(
            &format!("/v1/tenants/{t}/mark-paid"),
            &owner.access_token,
            json!({"reference": "x"}),
        )
        .await,
        403,
    )
    .await;
    let res = app
        .post_as(
            &format!("/v1/tenants/{t}/mark-paid"),
            &admin.access_token,
            json!({"reference": "bank transfer 42"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tenant"]["status"], "provisioning");
    assert_eq!(body["job"]["kind"], "provision");
    let again = app
        .post_as(
            &format!("/v1/tenants/{t}/mark-paid"),
            &admin.access_token,
            json!({"reference": "again"}),
        )
        .await;
    assert_eq!(
        assert_problem(again, 409).await["type"],
        "https://tenantry.dev/problems/invalid-transition"
    );
    let db = app.sql().await;
    let jobs: i64 = db
        .query_one("SELECT count(*) FROM jobs WHERE kind = 'provision'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(jobs, 1);
    let logged: i64 = db
        .query_one("SELECT count(*) FROM activity_log WHERE action = 'tenant.status_changed' AND after->>'payment' = 'bank transfer 42'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, 1);
    // An upgrade waits for an operator too.
    let t2 = app.tenant_on("beta", "odoo", "basic").await;
    let o2 = app.user("o@beta.test", Role::TenantOwner, Some(t2)).await;
    let res = app
        .post_as(
            &format!("/v1/tenants/{t2}/plan-change"),
            &o2.access_token,
            json!({"plan": "pro"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["payment"], "awaiting_operator");
    assert!(body["checkout_url"].is_null());
}

// 2. Catalog sync -------------------------------------------------------------

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

// 3. Signup ---------------------------------------------------------------------

#[tokio::test]
async fn signup_opens_a_subscription_checkout_for_the_plans_price() {
    let w = world().await;
    let (tenant, sub, url) = w.signup("acme", "pro").await;
    let session = w
        .sim
        .object(&World::session_of(&url))
        .expect("the checkout_url is the session's URL");
    assert_eq!(session["url"], url.as_str());
    assert_eq!(session["mode"], "subscription");
    assert_eq!(session["client_reference_id"], tenant.to_string());
    assert_eq!(session["metadata"]["tenant_id"], tenant.to_string());
    assert_eq!(session["metadata"]["subscription_id"], sub.to_string());
    assert_eq!(
        session["_sim"]["subscription_data"]["metadata"]["subscription_id"],
        sub.to_string()
    );
    let pro = w.one("SELECT s.stripe_id FROM stripe_catalog s JOIN plans p ON p.id = s.local_id WHERE p.code = 'pro'").await;
    assert_eq!(session["_sim"]["line_items"][0]["price"], pro.as_str());
    let customer = w.sim.object(session["customer"].as_str().unwrap()).unwrap();
    assert_eq!(customer["email"], "owner@acme.test");
    // Queued as a job too (a worker finishes it if Stripe was down).
    assert_eq!(
        w.count("SELECT 1 FROM jobs WHERE kind = 'stripe.create_checkout'")
            .await,
        1
    );
    // Running that job again changes nothing at Stripe.
    let before = w.sim.requests().len();
    w.run_job(
        "stripe.create_checkout",
        json!({"tenant_id": tenant, "subscription_id": sub}),
    )
    .await
    .unwrap();
    assert_eq!(w.sim.requests().len(), before, "the session is remembered");
    assert_eq!(w.tenant_status(tenant).await, "pending_payment");
}

// 4. Upgrade and downgrade -------------------------------------------------------

/// A tenant who signed up and paid at the stand-in's checkout: (tenant, owner token, stripe subscription).
async fn paid_tenant(w: &World, slug: &str, plan: &str) -> (Uuid, String, String) {
    let (tenant, _, url) = w.signup(slug, plan).await;
    w.sim.complete_checkout(&World::session_of(&url)).await;
    assert_eq!(w.tenant_status(tenant).await, "provisioning");
    // Provisioning is another component's: it activates the tenant and subscription.
    let db = w.app.sql().await;
    db.execute(
        "UPDATE tenants SET status = 'active' WHERE id = $1",
        &[&tenant],
    )
    .await
    .unwrap();
    db.execute(
        "UPDATE subscriptions SET status = 'active' WHERE tenant_id = $1",
        &[&tenant],
    )
    .await
    .unwrap();
    let owner = w.app.login(&format!("owner@{slug}.test")).await;
    let stripe_sub = w
        .one(&format!(
            "SELECT provider_subscription_id FROM subscriptions WHERE tenant_id = '{tenant}'"
        ))
        .await;
    (tenant, owner.access_token, stripe_sub)
}

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
    // A downgrade at the period end moves the price at once, without proration, and back when canceled.
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
    assert_eq!(
        w.sim.object(&stripe_sub).unwrap()["items"]["data"][0]["price"]["id"],
        basic.as_str()
    );
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
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/tenants/{t}/scheduled-plan-change"),
            &token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    w.run_job("stripe.sync_price", json!({"subscription_id": sub_id}))
        .await
        .unwrap();
    assert_eq!(
        w.sim.object(&stripe_sub).unwrap()["items"]["data"][0]["price"]["id"],
        pro.as_str()
    );
    assert!(
        w.sim
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.starts_with("/v1/subscriptions/"))
            .all(|r| r.params["proration_behavior"] == "none")
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

// 5. Outbound calls ------------------------------------------------------------------

#[tokio::test]
async fn transient_stripe_failures_are_retried_under_the_same_key() {
    let w = world().await;
    w.sim.fail_next(&[500, 429]);
    let (tenant, sub, url) = w.signup("acme", "basic").await;
    assert!(url.contains("/pay/"));
    let reqs = w.sim.requests();
    let first = reqs.iter().find(|r| r.path == "/v1/products").unwrap();
    let same = reqs
        .iter()
        .filter(|r| r.idempotency_key == first.idempotency_key)
        .count();
    assert_eq!(same, 3, "two failures, then success, all with one key");
    assert_eq!(w.sim.objects("product").len(), 1);
    // Stripe down for longer: signup answers 503 and the queued job finishes the work later.
    w.sim.fail_next(&[500; 12]);
    let res = w
        .app
        .client
        .post(w.app.url("/v1/signup"))
        .json(
            &json!({"company_name": "Beta", "slug": "beta", "email": "owner@beta.test",
                      "password": crate::helpers::PASSWORD, "product": "odoo", "plan": "basic"}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 503).await;
    let beta = w.one("SELECT id FROM tenants WHERE slug = 'beta'").await;
    let beta_sub = w
        .one(&format!(
            "SELECT id FROM subscriptions WHERE tenant_id = '{beta}'"
        ))
        .await;
    let _ = w
        .run_job(
            "stripe.create_checkout",
            json!({"tenant_id": beta, "subscription_id": beta_sub}),
        )
        .await;
    w.sim.fail_next(&[]);
    while w
        .one(&format!(
            "SELECT count(*) FROM stripe_checkouts WHERE tenant_id = '{beta}'"
        ))
        .await
        == "0"
    {
        match w
            .run_job(
                "stripe.create_checkout",
                json!({"tenant_id": beta, "subscription_id": beta_sub}),
            )
            .await
        {
            Ok(()) => break,
            Err(e) => assert!(e.contains("500"), "{e}"),
        }
    }
    assert_eq!(
        w.sim.objects("customer").len(),
        2,
        "one customer per tenant, however often retried"
    );
    assert_eq!(w.sim.objects("checkout.session").len(), 2);
    let _ = (tenant, sub);
}

// 6. Webhook -------------------------------------------------------------------------

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
    let e = for_tenant(
        shaped("checkout.session.completed"),
        tenant,
        sub,
        "cus_acme",
        "sub_acme",
    );
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

// 7. Effects, order, versions ---------------------------------------------------------

#[tokio::test]
async fn signup_paid_starts_provisioning_once_in_any_order() {
    let w = world().await;
    let now = chrono::Utc::now().timestamp();
    // Three tenants get the same two events (checkout completed, first invoice paid), duplicated, in different orders.
    let mut tenants = Vec::new();
    for (i, order) in [[0, 1, 0, 1], [1, 0, 1, 1], [1, 1, 0, 0]]
        .iter()
        .enumerate()
    {
        let (tenant, sub, _) = w.signup(&format!("shuffle-{i}"), "basic").await;
        let (cus, ssub) = (format!("cus_s{i}"), format!("sub_s{i}"));
        let events = [
            for_tenant(
                shaped("checkout.session.completed"),
                tenant,
                sub,
                &cus,
                &ssub,
            ),
            for_tenant(
                invoice(
                    "invoice.paid",
                    "subscription_create",
                    now,
                    now + 30 * 86_400,
                ),
                tenant,
                sub,
                &cus,
                &ssub,
            ),
        ];
        for &k in order {
            w.deliver(&events[k]).await;
        }
        tenants.push(tenant);
    }
    for t in tenants {
        assert_eq!(w.tenant_status(t).await, "provisioning");
        assert_eq!(w.provision_jobs(t).await, 1, "exactly one provisioning job");
        assert_eq!(
            w.one(&format!(
                "SELECT status FROM subscriptions WHERE tenant_id = '{t}'"
            ))
            .await,
            "incomplete",
            "active only once provisioned"
        );
        assert_eq!(w.one(&format!("SELECT provider || ' ' || provider_subscription_id || ' ' || saved_payment_method FROM subscriptions WHERE tenant_id = '{t}'")).await.split(' ').next(), Some("stripe"));
        assert_eq!(w.one(&format!("SELECT extract(epoch FROM current_period_end)::bigint FROM subscriptions WHERE tenant_id = '{t}'")).await, (now + 30 * 86_400).to_string());
        assert_eq!(w.count(&format!("SELECT 1 FROM activity_log WHERE tenant_id = '{t}' AND action = 'tenant.status_changed'")).await, 1);
    }
}

#[tokio::test]
async fn a_delayed_payment_starts_provisioning_only_when_it_succeeds() {
    let w = world().await;
    let (tenant, sub, _) = w.signup("sepa", "basic").await;
    let session = |kind: &str, payment_status: &str| {
        let mut e = for_tenant(
            shaped("checkout.session.completed"),
            tenant,
            sub,
            "cus_sepa",
            "sub_sepa",
        );
        e["type"] = json!(kind);
        e["data"]["object"]["payment_status"] = json!(payment_status);
        e
    };
    // Completed with a SEPA debit still on its way: nothing to fulfil yet.
    let completed = session("checkout.session.completed", "unpaid");
    assert_eq!(w.deliver(&completed).await["outcome"], "ignored");
    assert_eq!(w.tenant_status(tenant).await, "pending_payment");
    assert_eq!(w.provision_jobs(tenant).await, 0);
    // A failed debit is recorded and changes nothing either.
    let failed = session("checkout.session.async_payment_failed", "unpaid");
    assert_eq!(w.deliver(&failed).await["outcome"], "ignored");
    assert_eq!(w.tenant_status(tenant).await, "pending_payment");

    // The money arrives: the same session, now paid.
    let succeeded = session("checkout.session.async_payment_succeeded", "paid");
    assert_eq!(w.deliver(&succeeded).await["outcome"], "applied");
    assert_eq!(w.tenant_status(tenant).await, "provisioning");
    assert_eq!(w.provision_jobs(tenant).await, 1);
    let res = w
        .post_event(&succeeded, SECRET, chrono::Utc::now().timestamp())
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["outcome"], "duplicate");
    assert_eq!(w.provision_jobs(tenant).await, 1);
    assert_eq!(
        w.one(&format!(
            "SELECT provider_subscription_id FROM subscriptions WHERE id = '{sub}'"
        ))
        .await,
        "sub_sepa"
    );
}

/// A Stripe-billed active tenant set up through webhooks: (tenant, subscription, period end).
async fn billed(w: &World, slug: &str) -> (Uuid, Uuid, i64) {
    let now = chrono::Utc::now().timestamp();
    let (tenant, sub, _) = w.signup(slug, "basic").await;
    let (cus, ssub) = (format!("cus_{slug}"), format!("sub_{slug}"));
    w.deliver(&for_tenant(
        shaped("checkout.session.completed"),
        tenant,
        sub,
        &cus,
        &ssub,
    ))
    .await;
    w.deliver(&for_tenant(
        invoice("invoice.paid", "subscription_create", now, now + 100),
        tenant,
        sub,
        &cus,
        &ssub,
    ))
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
    let ev = |name: &str, reason: &str, s: i64, e: i64| {
        for_tenant(invoice(name, reason, s, e), t, sub, "cus_acme", "sub_acme")
    };
    // A failed renewal: dunning.
    let failed = ev(
        "invoice.payment_failed",
        "subscription_cycle",
        end,
        end + 100,
    );
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
    let paid = ev("invoice.paid", "subscription_cycle", end, end + 100);
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
    );
    assert_eq!(w.deliver(&late).await["outcome"], "ignored");
    let old = ev("invoice.paid", "subscription_cycle", end - 100, end);
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
    let updated = for_tenant(
        shaped("customer.subscription.updated"),
        t,
        sub,
        "cus_acme",
        "sub_acme",
    );
    assert_eq!(w.deliver(&updated).await["outcome"], "ignored");
    let deleted = for_tenant(
        shaped("customer.subscription.deleted"),
        t,
        sub,
        "cus_acme",
        "sub_acme",
    );
    assert_eq!(w.deliver(&deleted).await["outcome"], "applied");
    assert_eq!(w.one(&format!("SELECT status || ' ' || extract(epoch FROM current_period_end)::bigint FROM subscriptions WHERE id = '{sub}'")).await, format!("canceled {end}"), "service runs to the period end");
    assert_eq!(w.count(&format!("SELECT 1 FROM activity_log WHERE action = 'subscription.canceled' AND tenant_id = '{t}'")).await, 1);
    let again = for_tenant(
        shaped("customer.subscription.deleted"),
        t,
        sub,
        "cus_acme",
        "sub_acme",
    );
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
    let mut e = invoice("invoice.paid", "manual", 0, 0);
    e["data"]["object"]["metadata"] = json!({"plan_change_id": change, "tenant_id": t.to_string()});
    e["data"]["object"]["parent"] = Value::Null;
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

// 8. Reconciliation and the whole flow ---------------------------------------------------

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
