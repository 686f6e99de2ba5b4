//! The stand-in path: the same operations with Stripe as the provider — the
//! app configured for Stripe against the stand-in (`crates/stripe-sim`),
//! which delivers its signed webhooks to the app. A tenant signs up through
//! `POST /v1/signup` and pays at the stand-in's Checkout; plan changes go
//! through the engine with the [`StripeGateway`]; the `stripe.*` and
//! `billing.refund` jobs they enqueue run inline after each operation, as a
//! worker would; Stripe renews the subscription itself as its clock (moved
//! with the billing clock) passes each period end, and the model does the
//! same ([`super::rules::Model::provider_tick`]).
//!
//! What this path takes so far: signups on recurring plans, upgrades (to
//! another interval too: Stripe restarts its cycle when the Price is set,
//! prepaid by a balance credit, and ours follows its invoice) with the
//! saved card or at a checkout, downgrades (any interval), cancelling them, declines (Stripe moves the period on
//! unpaid and, in the stand-in, never retries; our dunning suspends and
//! ends the service, which cancels the Stripe subscription), payments at
//! Stripe's Checkout, on time and late while the session is open (Stripe
//! expires it after 24 hours), refunded through Stripe when they can no
//! longer apply, payments an operator records (late ones that no longer
//! apply go back by hand: the operator records it with `mark-refunded`),
//! failed migrations (the credit goes to the Stripe customer balance, which
//! Stripe applies to the next invoice of any kind it finalizes: a renewal,
//! paid or declined, or an upgrade charged to the card; a declined upgrade
//! invoice is voided and gives it back), clock jumps and processor runs.
//! A failed migration of a change of interval puts Stripe back on the
//! period the change had replaced (a trial to its end, which moves
//! Stripe's anchor there); one after a move to lifetime resumes the
//! recurring subscription before its period end, or replaces it once it
//! ended. A change of interval fails while the period it put aside still
//! runs (a migration fails soon after its change).

use std::collections::HashMap;

use secrecy::SecretString;
use serde_json::{Value, json};
use tenantry_api::config::Payments;
use tenantry_billing::{
    BillingError, RefundJobs,
    engine::{self},
    stripe::{self as bstripe, StripeGateway, StripeSettings},
};
use tenantry_domain::billing::Requester;
use tenantry_store::{
    activity::Actor,
    tenants::{self, Visibility},
};
use tenantry_stripe_sim::StripeSim;
use uuid::Uuid;

use super::check::{Found, Snapshot};
use super::ops::{Op, Via};
use super::rules::{Interval, Model, PLANS, Refusal, Ts};
use super::{Answer, Driver, Requested, World};
use crate::helpers::{PASSWORD, spawn_app_with};

const SECRET: &str = "whsec_oracle";

/// The engine and the app, with the Stripe stand-in as the provider.
pub struct StandIn {
    world: World,
    sim: StripeSim,
    stripe: bstripe::Stripe,
    gateway: StripeGateway,
    /// Stripe customer and subscription of each tenant.
    ids: HashMap<Uuid, (String, String)>,
    /// The case's tenant (the processor's jobs are run for it).
    current: Option<Uuid>,
    /// Jobs that failed since the last comparison.
    job_errors: Vec<String>,
    /// The Checkout Session of each upgrade paid at a checkout.
    sessions: HashMap<Uuid, String>,
}

fn settings(api_base: &str) -> StripeSettings {
    StripeSettings {
        secret_key: SecretString::from("sk_test_oracle".to_owned()),
        webhook_secrets: vec![SecretString::from(SECRET.to_owned())],
        api_base: format!("{api_base}/"),
        success_url: "https://app.example.test/billing/success?session_id={CHECKOUT_SESSION_ID}"
            .into(),
        cancel_url: "https://app.example.test/billing/canceled".into(),
        tolerance_secs: 300,
        retries: 3,
    }
}

fn customer() -> Actor {
    Actor::system("oracle customer")
}

fn unix(t: Ts) -> i64 {
    t.timestamp()
}

impl StandIn {
    pub async fn new() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let sim_url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let sim = StripeSim::new(&sim_url);
        tokio::spawn(sim.serve(listener).unwrap());
        let settings = settings(&sim_url);
        let app = spawn_app_with(|s| s.payments = Payments::Stripe(settings.clone())).await;
        let world = World::new(app).await;
        sim.set_webhook(&world.app.url("/v1/webhooks/stripe"), SECRET);
        let stripe = bstripe::Stripe::new(settings).unwrap();
        bstripe::catalog::sync_catalog(&stripe, &world.pool)
            .await
            .unwrap();
        let gateway = StripeGateway::new(stripe.clone(), world.pool.clone());
        Self {
            world,
            sim,
            stripe,
            gateway,
            ids: HashMap::new(),
            current: None,
            job_errors: Vec::new(),
            sessions: HashMap::new(),
        }
    }

    /// Runs the tenant's queued `stripe.*` and `billing.refund` jobs, as a
    /// worker would, until none is left (bounded).
    async fn run_jobs(&mut self, tenant: Uuid) {
        let mut handlers = tenantry_store::worker::Handlers::new();
        bstripe::jobs::StripeJobs {
            stripe: self.stripe.clone(),
            clock: self.world.clock,
        }
        .register(&mut handlers);
        RefundJobs {
            gateway: std::sync::Arc::new(self.gateway.clone()),
        }
        .register(&mut handlers);
        for _ in 0..5 {
            let rows = self
                .world
                .sql
                .query(
                    "SELECT id, kind, payload FROM jobs WHERE tenant_id = $1 AND status = 'queued'
                       AND (kind LIKE 'stripe.%' OR kind = 'billing.refund') ORDER BY id",
                    &[&tenant],
                )
                .await
                .unwrap();
            if rows.is_empty() {
                return;
            }
            for r in rows {
                let (id, kind, payload): (Uuid, String, Value) = (r.get(0), r.get(1), r.get(2));
                let outcome = handlers.run_inline(&self.world.pool, &kind, payload).await;
                let status = if let Err(e) = outcome {
                    self.job_errors.push(format!("job {kind}: {e}"));
                    "failed"
                } else {
                    "succeeded"
                };
                self.world
                    .sql
                    .execute("UPDATE jobs SET status = $2 WHERE id = $1", &[&id, &status])
                    .await
                    .unwrap();
            }
        }
    }

    async fn newest_change(&self, tenant: Uuid) -> Option<(Uuid, Option<Ts>)> {
        self.world
            .sql
            .query_opt(
                "SELECT id, to_json(proration_date)::text FROM plan_changes WHERE tenant_id = $1 ORDER BY id DESC LIMIT 1",
                &[&tenant],
            )
            .await
            .unwrap()
            .map(|r| {
                let pd: Option<String> = r.get(1);
                (r.get(0), pd.map(|p| p.trim_matches('"').parse().unwrap()))
            })
    }
}

impl Driver for StandIn {
    fn name(&self) -> &'static str {
        "Stripe stand-in path"
    }

    fn world(&self) -> &World {
        &self.world
    }

    fn provider_renews(&self) -> bool {
        true
    }

    fn supports_signup(&self, plan: usize) -> bool {
        PLANS[plan].interval != Interval::Lifetime
    }

    fn supports_failed_migration(&self, m: &Model, k: usize) -> bool {
        let c = &m.changes[k];
        // A migration fails soon after its change, not weeks later: the
        // period a change of interval put aside (to which Stripe goes back
        // with a trial) still runs.
        let running =
            |end: Option<Ts>| end.is_some_and(|e| e > m.now + chrono::Duration::seconds(120));
        let over =
            |end: Option<Ts>| end.is_some_and(|e| e < m.now - chrono::Duration::seconds(120));
        if PLANS[c.to].interval == Interval::Lifetime {
            // Before the end Stripe's subscription resumes; after it a new
            // one replaces it (paid from the credit, which covers any
            // recurring price). Not within two minutes of the end, where
            // which of the two happens is a race with the clock.
            running(m.end) || over(m.end)
        } else if PLANS[c.from].interval != PLANS[c.to].interval {
            c.previous.is_none_or(|p| running(p.1))
        } else {
            true
        }
    }

    async fn provider_anchor(&mut self, tenant: Uuid) -> Option<Ts> {
        let (_, sub) = self.ids.get(&tenant)?;
        let at = self.sim.object(sub)?["billing_cycle_anchor"].as_i64()?;
        chrono::TimeZone::timestamp_opt(&chrono::Utc, at, 0).single()
    }

    fn supports(&self, op: &Op) -> bool {
        matches!(
            op,
            Op::Advance(_)
                | Op::Process
                | Op::Upgrade { .. }
                | Op::Downgrade { .. }
                | Op::CancelDowngrade
                | Op::Decline(_)
                | Op::Pay(_)
                | Op::PayLate(_)
                | Op::FailMigration
        )
    }

    async fn sync_clock(&mut self, now: Ts) {
        let offset = self.world.set_clock(now).await;
        if self.sim.clock_offset() != offset {
            self.sim.set_clock_offset(offset).await;
        }
    }

    async fn signup(&mut self, slug: &str, plan: usize, _anchor: Ts) -> (Uuid, Ts) {
        let app = &self.world.app;
        let res = app
            .client
            .post(app.url("/v1/signup"))
            .json(&json!({"company_name": format!("{slug} Ltd"), "slug": slug, "email": format!("owner@{slug}.test"),
                          "password": PASSWORD, "product": "oracle", "plan": PLANS[plan].code}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "signup on {}", PLANS[plan].code);
        let body: Value = res.json().await.unwrap();
        let tenant: Uuid = body["tenant"]["id"].as_str().unwrap().parse().unwrap();
        let url = body["checkout_url"].as_str().unwrap();
        let session = url.rsplit('/').next().unwrap();
        self.sim.complete_checkout(session).await;
        // Provisioning is another component's: it activates the tenant and subscription.
        self.world
            .sql
            .execute(
                "UPDATE tenants SET status = 'active' WHERE id = $1",
                &[&tenant],
            )
            .await
            .unwrap();
        let row = self
            .world
            .sql
            .query_one(
                "UPDATE subscriptions SET status = 'active' WHERE tenant_id = $1
                 RETURNING to_json(billing_anchor)::text, provider_customer_id, provider_subscription_id",
                &[&tenant],
            )
            .await
            .unwrap();
        let anchor: Option<String> = row.get(0);
        let anchor: Ts = anchor.unwrap().trim_matches('"').parse().unwrap();
        self.ids.insert(tenant, (row.get(1), row.get(2)));
        self.current = Some(tenant);
        self.run_jobs(tenant).await;
        (tenant, anchor)
    }

    async fn request(
        &mut self,
        tenant: Uuid,
        to: usize,
        preview_at: Ts,
        checkout: bool,
    ) -> Requested {
        let before = self.newest_change(tenant).await.map(|c| c.0);
        let w = &self.world;
        // No saved card: the engine opens a Checkout Session.
        w.sql
            .execute(
                "UPDATE subscriptions SET saved_payment_method = $2 WHERE tenant_id = $1",
                &[&tenant, &!checkout],
            )
            .await
            .unwrap();
        let view = {
            let mut conn = w.pool.get().await.unwrap();
            tenants::find_tenant(&mut conn, &tenant.to_string(), Visibility::All)
                .await
                .unwrap()
        };
        let result = engine::request_change(
            &w.pool,
            &self.gateway,
            &w.clock,
            &w.settings,
            &view,
            PLANS[to].code,
            Some(preview_at),
            Requester::Customer,
            None,
            &customer(),
        )
        .await;
        self.world
            .sql
            .execute(
                "UPDATE subscriptions SET saved_payment_method = true WHERE tenant_id = $1",
                &[&tenant],
            )
            .await
            .unwrap();
        self.run_jobs(tenant).await;
        let after = self.newest_change(tenant).await;
        let change = after.filter(|a| Some(a.0) != before);
        if let Ok(out) = &result
            && let Some(url) = &out.checkout_url
        {
            let session = url.rsplit('/').next().unwrap_or_default().to_owned();
            self.sessions.insert(out.change.id, session);
        }
        let answer = super::answer_of(&result);
        Requested {
            answer,
            change: change.map(|c| c.0),
            pd: change.and_then(|c| c.1),
        }
    }

    async fn cancel_scheduled(&mut self, tenant: Uuid) -> Answer {
        let w = &self.world;
        let answer = match engine::cancel_scheduled(&w.pool, &w.clock, tenant, &customer()).await {
            Ok(_) => Answer::Applied,
            Err(BillingError::WrongState(_)) => Answer::Refused(Refusal::TookEffect),
            Err(e) => super::refusal(&e),
        };
        self.run_jobs(tenant).await;
        answer
    }

    async fn can_pay(&mut self, change: Uuid, via: Via) -> bool {
        match via {
            Via::Operator => true,
            // Stripe expires a session 24 hours after it opened.
            Via::Provider => self
                .sessions
                .get(&change)
                .and_then(|s| self.sim.object(s))
                .is_some_and(|s| s["status"] == "open"),
        }
    }

    async fn pay(&mut self, tenant: Uuid, change: Uuid, _cents: i64, via: Via) -> Answer {
        match via {
            Via::Operator => {
                if let Err(e) = self.world.mark_paid(tenant, change).await {
                    return e;
                }
            }
            // The customer pays at Stripe's page; Stripe's webhook reports it.
            Via::Provider => {
                let Some(session) = self.sessions.get(&change).cloned() else {
                    return Answer::Other("no checkout session was opened".into());
                };
                if self.sim.complete_checkout(&session).await.is_empty() {
                    return Answer::Other(format!("session {session} could not be paid"));
                }
            }
        }
        self.run_jobs(tenant).await;
        let answer = self.world.settled(change).await;
        // A transfer Stripe never saw goes back by hand: the operator
        // returns it and records that.
        if answer == Answer::Refunded && matches!(via, Via::Operator) {
            let refund: Uuid = self
                .world
                .sql
                .query_one(
                    "SELECT id FROM charges WHERE plan_change_id = $1 AND kind = 'refund'",
                    &[&change],
                )
                .await
                .unwrap()
                .get(0);
            let token = self.world.admin_token().await;
            let res = self
                .world
                .app
                .post_as(
                    &format!("/v1/charges/{refund}/mark-refunded"),
                    &token,
                    json!({"reference": format!("transfer back for {change}")}),
                )
                .await;
            if !res.status().is_success() {
                return Answer::Other(format!("mark-refunded answered {}", res.status()));
            }
        }
        answer
    }

    async fn decline(&mut self, tenant: Uuid, declined: bool) {
        if let Some((customer, _)) = self.ids.get(&tenant) {
            self.sim.decline(customer, declined);
        }
    }

    async fn process(&mut self) -> Result<(), String> {
        for _ in 0..100 {
            let w = &self.world;
            let r = engine::process_due(&w.pool, &self.gateway, &w.clock, &w.settings)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(t) = self.current {
                self.run_jobs(t).await;
            }
            if r.renewed == 0 && r.applied_changes == 0 {
                return Ok(());
            }
        }
        Err("the processor still finds work after 100 runs".into())
    }

    async fn fail_migration(&mut self, tenant: Uuid, change: Uuid) -> Result<(), String> {
        crate::billing::fail_migration(&self.world.app, tenant, change).await;
        // The credit goes to Stripe's customer balance; the plan's price back
        // (or, after a move to lifetime whose Stripe subscription ended, a
        // new subscription in its place).
        self.run_jobs(tenant).await;
        let row = self
            .world
            .sql
            .query_one(
                "SELECT provider_subscription_id FROM subscriptions WHERE tenant_id = $1",
                &[&tenant],
            )
            .await
            .map_err(|e| e.to_string())?;
        if let Some(ids) = self.ids.get_mut(&tenant) {
            ids.1 = row.get(0);
        }
        Ok(())
    }

    async fn compare_provider(&mut self, tenant: Uuid, s: &Snapshot, found: &mut Found) {
        for e in self.job_errors.drain(..) {
            found.add("provider.job", e);
        }
        let Some((customer, sub_id)) = self.ids.get(&tenant) else {
            return;
        };
        let invoices: Vec<Value> = self
            .sim
            .objects("invoice")
            .into_iter()
            .filter(|i| i["customer"] == customer.as_str() && i["status"] == "paid")
            .collect();
        let line_start = |i: &Value| {
            i["lines"]["data"]
                .as_array()
                .and_then(|l| l.iter().find_map(|l| l["period"]["start"].as_i64()))
        };
        // What the card paid of a charge of ours: an upgrade's amount less
        // the balance Stripe applied; a renewal's amount is already that.
        let net = |x: &super::check::DbCharge| {
            if x.kind == "upgrade" {
                x.amount - x.credit_applied.unwrap_or(0)
            } else {
                x.amount
            }
        };
        // Every payment Stripe took is a paid charge of ours, for as much.
        for inv in invoices
            .iter()
            .filter(|i| i["amount_paid"].as_i64().unwrap_or(0) > 0)
        {
            let paid = inv["amount_paid"].as_i64().unwrap_or(0);
            let change = inv["metadata"]["plan_change_id"]
                .as_str()
                .and_then(|c| c.parse::<Uuid>().ok());
            let ours = match change {
                Some(c) => s
                    .charges
                    .iter()
                    .find(|x| x.kind == "upgrade" && x.change == Some(c)),
                None => s
                    .charges
                    .iter()
                    .find(|x| x.kind == "renewal" && x.start.map(unix) == line_start(inv)),
            };
            match ours {
                Some(x) if x.paid() && net(x) == paid => {}
                Some(x) => found.add(
                    "provider.amount",
                    format!(
                        "Stripe invoice {} took {paid} cents; our charge {} is {} for {}",
                        inv["id"], x.key, x.status, x.amount
                    ),
                ),
                None => found.add(
                    "provider.unknown",
                    format!(
                        "Stripe invoice {} ({}) took {paid} cents; we have no charge for it",
                        inv["id"], inv["billing_reason"]
                    ),
                ),
            }
        }
        // Every upgrade paid at a Checkout Session is a paid charge of ours,
        // for as much.
        let sessions: Vec<Value> = self
            .sim
            .objects("checkout.session")
            .into_iter()
            .filter(|c| {
                c["customer"] == customer.as_str()
                    && c["payment_status"] == "paid"
                    && c["metadata"]["plan_change_id"].is_string()
            })
            .collect();
        for cs in &sessions {
            let paid = cs["amount_total"].as_i64().unwrap_or(0);
            let change = cs["metadata"]["plan_change_id"]
                .as_str()
                .unwrap_or_default();
            let ours = s.charges.iter().find(|x| {
                x.kind == "upgrade" && x.change.map(|c| c.to_string()).as_deref() == Some(change)
            });
            if !ours.is_some_and(|x| x.paid() && x.amount == paid) {
                found.add(
                    "provider.amount",
                    format!(
                        "Stripe's Checkout Session {} took {paid} cents for change {change}; our charge: {:?}",
                        cs["id"],
                        ours.map(|x| (&x.status, x.amount))
                    ),
                );
            }
        }
        // What Stripe refunded is what our refund charges gave back through
        // it (`re_…`; an operator gives a transfer back by hand).
        let refunded: i64 = self
            .sim
            .objects("charge")
            .iter()
            .filter(|c| c["customer"] == customer.as_str())
            .map(|c| c["amount_refunded"].as_i64().unwrap_or(0))
            .sum();
        let ours_refunded: i64 = s
            .charges
            .iter()
            .filter(|x| {
                x.kind == "refund"
                    && x.paid()
                    && x.reference.as_deref().is_some_and(|r| r.starts_with("re_"))
            })
            .map(|x| x.amount)
            .sum();
        if refunded != ours_refunded {
            found.add(
                "provider.refund",
                format!("R8 Stripe refunded {refunded} cents; our refund charges {ours_refunded}"),
            );
        }
        // Every paid charge of ours that went through Stripe (not one an
        // operator recorded) is a payment Stripe took.
        let through_stripe = |x: &&super::check::DbCharge| {
            x.kind != "refund"
                && x.reference.as_deref().is_none_or(|r| {
                    r.starts_with("in_") || r.starts_with("cs_") || r.starts_with("pi_")
                })
        };
        for x in s
            .charges
            .iter()
            .filter(|x| x.paid() && x.amount > 0)
            .filter(through_stripe)
        {
            let by_session = sessions.iter().find(|cs| {
                x.kind == "upgrade"
                    && cs["metadata"]["plan_change_id"].as_str()
                        == x.change.map(|c| c.to_string()).as_deref()
            });
            if let Some(cs) = by_session {
                if cs["amount_total"].as_i64() != Some(x.amount) {
                    found.add(
                        "provider.amount",
                        format!(
                            "our upgrade charge {} is {} cents; Stripe's session {} took {}",
                            x.key, x.amount, cs["id"], cs["amount_total"]
                        ),
                    );
                }
                continue;
            }
            let theirs = invoices.iter().find(|inv| match x.kind.as_str() {
                "upgrade" => {
                    inv["metadata"]["plan_change_id"].as_str()
                        == x.change.map(|c| c.to_string()).as_deref()
                }
                _ => {
                    inv["metadata"]["plan_change_id"].is_null()
                        && line_start(inv) == x.start.map(unix)
                }
            });
            match theirs {
                Some(inv) if inv["amount_paid"].as_i64() == Some(net(x)) => {}
                Some(inv) => found.add(
                    "provider.amount",
                    format!(
                        "our {} charge {} is {} cents; Stripe invoice {} took {}",
                        x.kind, x.key, x.amount, inv["id"], inv["amount_paid"]
                    ),
                ),
                None => found.add(
                    "provider.missing",
                    format!(
                        "our {} charge {} ({} cents) is paid; Stripe took no such payment",
                        x.kind, x.key, x.amount
                    ),
                ),
            }
        }
        // Stripe's subscription is in our period.
        if let Some(sub) = self.sim.object(sub_id)
            && (sub["status"] == "active" || sub["status"] == "past_due")
        {
            let item = &sub["items"]["data"][0];
            let theirs = (
                item["current_period_start"].as_i64(),
                item["current_period_end"].as_i64(),
            );
            let ours = (s.start.map(unix), s.end.map(unix));
            if theirs != ours && s.sub_status == "active" {
                found.add(
                    "provider.period",
                    format!("Stripe's period is {theirs:?}, ours {ours:?} (unix seconds)"),
                );
            }
            // Ended by our dunning: Stripe bills it no more.
            if s.sub_status == "expired" {
                found.add(
                    "provider.not_canceled",
                    format!(
                        "R6 our subscription is expired; Stripe's {sub_id} is still {}",
                        sub["status"]
                    ),
                );
            }
        }
    }

    async fn retire(&mut self, tenant: Uuid) {
        if let Some((_, sub)) = self.ids.remove(&tenant) {
            self.sim.delete_subscription(&sub).await;
        }
        self.job_errors.clear();
        self.current = None;
        self.world.retire(tenant).await;
    }
}
