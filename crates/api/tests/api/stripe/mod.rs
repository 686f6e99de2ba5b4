//! Stripe against the stand-in (`crates/stripe-sim`): what the topic files
//! share — the app wired to a fresh stand-in that delivers signed webhooks to
//! it, real-shaped event payloads (`tests/fixtures/stripe/events`) with our
//! ids laid over them, and a tenant who signed up and paid at checkout.

mod catalog;
mod checkout;
mod config;
mod currencies;
mod fulfilment;
mod money;
mod reconcile;
mod subscriptions;
mod upgrades;
mod webhook;

use secrecy::SecretString;
use serde_json::{Value, json};
use tenantry_api::config::Payments;
use tenantry_billing::stripe::{self as bstripe, StripeSettings, signature};
use tenantry_stripe_sim::StripeSim;
use uuid::Uuid;

use crate::helpers::{TestApp, demo_catalog_path, spawn_app_with};

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
        let mut handlers = tenantry_store::worker::Handlers::new();
        bstripe::jobs::StripeJobs {
            stripe: self.stripe.clone(),
            clock: self.clock(),
        }
        .register(&mut handlers);
        handlers
            .run_inline(&self.app.pool(), kind, payload)
            .await
            .map_err(|e| e.to_string())
    }

    /// A paid signup (Stripe Checkout); returns (tenant, subscription, checkout url).
    async fn signup(&self, slug: &str, plan: &str) -> (Uuid, Uuid, String) {
        self.signup_to(slug, "odoo", plan).await
    }

    /// A paid signup to `product`'s `plan`; as [`World::signup`].
    async fn signup_to(&self, slug: &str, product: &str, plan: &str) -> (Uuid, Uuid, String) {
        let res = self
            .app
            .client
            .post(self.app.url("/v1/signup"))
            .json(&json!({"company_name": format!("{slug} Ltd"), "slug": slug, "email": format!("owner@{slug}.test"),
                          "password": crate::helpers::PASSWORD, "product": product, "plan": plan}))
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

    /// `e` with our ids laid over it where Stripe puts them, as Stripe would
    /// send it for `tenant`: the customer and (for a Checkout Session) the
    /// signup session we opened, with the amount and currency it asked.
    async fn for_tenant(&self, e: Value, tenant: Uuid, sub: Uuid, stripe_sub: &str) -> Value {
        let customer = self
            .one(&format!(
                "SELECT provider_customer_id FROM subscriptions WHERE id = '{sub}'"
            ))
            .await;
        let mut e = for_tenant(e, tenant, sub, &customer, stripe_sub);
        if e["data"]["object"]["object"] == "checkout.session" {
            let row = self
                .one(&format!(
                    "SELECT session_id || ' ' || amount_minor || ' ' || lower(currency) FROM stripe_checkouts WHERE key = 'signup:{sub}' ORDER BY created_at DESC LIMIT 1"
                ))
                .await;
            let [session, amount, currency] = row.split(' ').collect::<Vec<_>>()[..] else {
                panic!("no signup session of {sub}: {row:?}");
            };
            let o = &mut e["data"]["object"];
            o["id"] = json!(session);
            o["amount_total"] = json!(amount.parse::<i64>().unwrap());
            o["currency"] = json!(currency);
        }
        e
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

/// A tenant who signed up and paid at the stand-in's checkout: (tenant, owner token, stripe subscription).
async fn paid_tenant(w: &World, slug: &str, plan: &str) -> (Uuid, String, String) {
    paid_tenant_of(w, slug, "odoo", plan).await
}

/// [`paid_tenant`] of another product.
async fn paid_tenant_of(
    w: &World,
    slug: &str,
    product: &str,
    plan: &str,
) -> (Uuid, String, String) {
    let (tenant, _, url) = w.signup_to(slug, product, plan).await;
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
