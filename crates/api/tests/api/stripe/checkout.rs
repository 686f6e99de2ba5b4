//! Signup checkout: the subscription Checkout Session for the plan's price,
//! and the outbound calls that create it, retried under one idempotency key
//! and finished by the queued job when Stripe is down.

use serde_json::json;

use super::{World, world};
use crate::helpers::assert_problem;

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

/// The customer's round trip as a browser makes it: the checkout page's
/// button posts a form, the stand-in sends them on to the session's
/// `success_url` (as Stripe does), and Tenantry's page there says where the
/// tenant stands; the page's cancel link leads to Tenantry's cancel page.
#[tokio::test]
async fn checkout_returns_the_customer_to_pages_that_say_where_the_tenant_stands() {
    let w = world().await;
    let (tenant, _, url) = w.signup("acme", "basic").await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = browser
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let attribute = |name: &str| {
        page.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("no {name} on the checkout page: {page}"))
            .to_owned()
    };
    let (action, cancel) = (attribute("action"), attribute("href"));
    let base = url.split("/pay/").next().unwrap();
    let res = browser
        .post(format!("{base}{action}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let session = World::session_of(&url);
    let configured = w.sim.object(&session).unwrap();
    assert_eq!(
        location,
        configured["success_url"]
            .as_str()
            .unwrap()
            .replace("{CHECKOUT_SESSION_ID}", &session),
        "the session id is filled in"
    );
    // The webhook was delivered before the redirect: the tenant is provisioning.
    assert_eq!(w.tenant_status(tenant).await, "provisioning");
    // The configured URLs name the public host; the pages are served here.
    let here = |u: &str| {
        let path = u.splitn(4, '/').nth(3).unwrap();
        w.app.url(&format!("/{path}"))
    };
    let res = browser.get(here(&location)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let text = res.text().await.unwrap();
    assert!(
        text.contains("acme") && text.contains("being set up") && text.contains("provisioning"),
        "{text}"
    );
    // A session that is not ours, and none at all.
    let res = browser
        .get(w.app.url("/billing/success?session_id=cs_unknown"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = browser
        .get(w.app.url("/billing/success"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // The cancel link.
    assert_eq!(cancel, configured["cancel_url"].as_str().unwrap());
    let res = browser.get(here(&cancel)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Nothing was charged"));
}
