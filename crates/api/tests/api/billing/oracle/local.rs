//! The local path: the billing engine called directly, with a
//! [`ScriptedGateway`] for the saved card (declines on demand), checkouts
//! paid by an operator (`mark-paid` through the API) or reported by the
//! provider ([`engine::confirm_payment`]), refund jobs run inline, and
//! provisioning's failed migration reported as provisioning reports it.
//!
//! [`Ledger`] wraps the scripted gateway and writes down every movement of
//! money it makes: the provider's side of the books, compared with ours.

use std::sync::{Arc, Mutex};

use rust_decimal::Decimal;
use serde_json::json;
use tenantry_billing::{
    BillingError, BillingFollowUp, ChargeOutcome, ChargeRequest, CheckoutRequest, CheckoutSession,
    PaymentGateway, RefundJobs, ScriptedGateway,
    engine::{self, Confirmation, Payment},
    gateway::{GatewayFuture, RefundOutcome, RefundRequest},
};
use tenantry_domain::{Currency, Money, billing::Requester};
use tenantry_store::{
    AsyncConnection as _, StoreError,
    activity::Actor,
    events::ProvisioningEvents as _,
    jobs::{BackgroundJob as _, kinds::BillingRefund},
    tenants::{self, Visibility},
};
use uuid::Uuid;

use super::check::{Found, Snapshot, cents};
use super::ops::Via;
use super::rules::{PLANS, Refusal, Ts};
use super::{Answer, Driver, Requested, World};
use crate::helpers::spawn_app;

/// One movement of money at the provider.
#[derive(Debug, Clone)]
pub struct Movement {
    pub tenant: Uuid,
    /// Our key (`renewal:…`, `upgrade:…`, `refund:…`).
    pub key: String,
    pub cents: i64,
    pub kind: MoveKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveKind {
    /// Taken from the saved card.
    Charged,
    /// Paid at a checkout (reported by the provider or recorded by staff).
    PaidAtCheckout,
    /// Given back.
    Refunded,
}

/// The scripted gateway, with the provider's books.
#[derive(Debug, Default)]
pub struct Ledger {
    scripted: ScriptedGateway,
    moves: Mutex<Vec<Movement>>,
}

fn money_cents(m: &Money) -> i64 {
    cents(m.amount())
}

impl Ledger {
    fn record(&self, m: Movement) {
        self.moves.lock().unwrap().push(m);
    }

    fn of(&self, tenant: Uuid) -> Vec<Movement> {
        self.moves
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.tenant == tenant)
            .cloned()
            .collect()
    }
}

impl PaymentGateway for Ledger {
    fn create_checkout(&self, request: CheckoutRequest) -> GatewayFuture<'_, CheckoutSession> {
        self.scripted.create_checkout(request)
    }

    fn charge(&self, request: ChargeRequest) -> GatewayFuture<'_, ChargeOutcome> {
        Box::pin(async move {
            let outcome = self.scripted.charge(request.clone()).await?;
            if matches!(outcome, ChargeOutcome::Paid { .. }) {
                self.record(Movement {
                    tenant: request.tenant_id,
                    key: request.idempotency_key.clone(),
                    cents: money_cents(&request.amount),
                    kind: MoveKind::Charged,
                });
            }
            Ok(outcome)
        })
    }

    fn refund(&self, request: RefundRequest) -> GatewayFuture<'_, RefundOutcome> {
        Box::pin(async move {
            let done = self
                .moves
                .lock()
                .unwrap()
                .iter()
                .any(|m| m.kind == MoveKind::Refunded && m.key == request.idempotency_key);
            let outcome = self.scripted.refund(request.clone()).await?;
            if !done && matches!(outcome, RefundOutcome::Refunded { .. }) {
                self.record(Movement {
                    tenant: request.tenant_id,
                    key: request.idempotency_key.clone(),
                    cents: money_cents(&request.amount),
                    kind: MoveKind::Refunded,
                });
            }
            Ok(outcome)
        })
    }
}

/// The engine with a scripted gateway.
pub struct Local {
    world: World,
    ledger: Arc<Ledger>,
}

fn customer() -> Actor {
    Actor::system("oracle customer")
}

impl Local {
    pub async fn new() -> Self {
        Self {
            world: World::new(spawn_app().await).await,
            ledger: Arc::default(),
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

    /// Runs the tenant's queued refund jobs, as a worker would.
    async fn run_refunds(&self, tenant: Uuid) -> Result<(), String> {
        let rows = self
            .world
            .sql
            .query(
                "SELECT id, payload FROM jobs WHERE tenant_id = $1 AND kind = $2 AND status = 'queued' ORDER BY id",
                &[&tenant, &BillingRefund::KIND],
            )
            .await
            .unwrap();
        let mut handlers = tenantry_store::worker::Handlers::new();
        RefundJobs {
            gateway: self.ledger.clone(),
        }
        .register(&mut handlers);
        for r in rows {
            let (id, payload): (Uuid, serde_json::Value) = (r.get(0), r.get(1));
            handlers
                .run_inline(&self.world.pool, BillingRefund::KIND, payload)
                .await
                .map_err(|e| format!("refund job: {e}"))?;
            self.world
                .sql
                .execute("UPDATE jobs SET status = 'succeeded' WHERE id = $1", &[&id])
                .await
                .unwrap();
        }
        Ok(())
    }
}

impl Driver for Local {
    fn name(&self) -> &'static str {
        "local path"
    }

    fn world(&self) -> &World {
        &self.world
    }

    async fn signup(&mut self, slug: &str, plan: usize, anchor: Ts) -> (Uuid, Ts) {
        self.ledger = Arc::default();
        let tenant = self.world.insert_tenant(slug, plan, anchor, "none").await;
        (tenant, anchor)
    }

    async fn request(
        &mut self,
        tenant: Uuid,
        to: usize,
        preview_at: Ts,
        checkout: bool,
    ) -> Requested {
        let w = &self.world;
        let before = self.newest_change(tenant).await.map(|c| c.0);
        if checkout {
            w.sql
                .execute(
                    "UPDATE subscriptions SET saved_payment_method = false WHERE tenant_id = $1",
                    &[&tenant],
                )
                .await
                .unwrap();
        }
        let view = {
            let mut conn = w.pool.get().await.unwrap();
            tenants::find_tenant(&mut conn, &tenant.to_string(), Visibility::All)
                .await
                .unwrap()
        };
        let result = engine::request_change(
            &w.pool,
            &*self.ledger,
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
        if checkout {
            w.sql
                .execute(
                    "UPDATE subscriptions SET saved_payment_method = true WHERE tenant_id = $1",
                    &[&tenant],
                )
                .await
                .unwrap();
        }
        let after = self.newest_change(tenant).await;
        let change = after.filter(|a| Some(a.0) != before);
        let answer = super::answer_of(&result);
        Requested {
            answer,
            change: change.map(|c| c.0),
            pd: change.and_then(|c| c.1),
        }
    }

    async fn cancel_scheduled(&mut self, tenant: Uuid) -> Answer {
        let w = &self.world;
        match engine::cancel_scheduled(&w.pool, &w.clock, tenant, &customer()).await {
            Ok(_) => Answer::Applied,
            Err(BillingError::WrongState(_)) => Answer::Refused(Refusal::TookEffect),
            Err(e) => super::refusal(&e),
        }
    }

    async fn pay(&mut self, tenant: Uuid, change: Uuid, amount: i64, via: Via) -> Answer {
        let key = format!("upgrade:{change}");
        self.ledger.record(Movement {
            tenant,
            key,
            cents: amount,
            kind: MoveKind::PaidAtCheckout,
        });
        let answer = match via {
            Via::Operator => match self.world.mark_paid(tenant, change).await {
                Ok(()) => self.world.settled(change).await,
                Err(e) => e,
            },
            Via::Provider => {
                let w = &self.world;
                let reference = format!("cs_oracle_{}", change.simple());
                let paid = Money::exact(
                    Decimal::new(amount, 2),
                    Currency::parse(super::rules::CURRENCY).unwrap(),
                )
                .unwrap();
                let payment = Payment {
                    reference: &reference,
                    amount: Some(paid),
                    refund_via: None,
                };
                match engine::confirm_payment(
                    &w.pool,
                    &w.clock,
                    change,
                    payment,
                    &Actor::system("checkout"),
                )
                .await
                {
                    Ok(Confirmation::Applied { .. }) => Answer::Applied,
                    Ok(Confirmation::Refunded { .. }) => Answer::Refunded,
                    Ok(Confirmation::Unmatched { reason, .. }) => {
                        Answer::Other(format!("unmatched: {reason}"))
                    }
                    Err(e) => Answer::Other(e.to_string()),
                }
            }
        };
        if let Err(e) = self.run_refunds(tenant).await {
            return Answer::Other(e);
        }
        answer
    }

    async fn decline(&mut self, tenant: Uuid, declined: bool) {
        self.ledger.scripted.decline(tenant, declined);
    }

    async fn process(&mut self) -> Result<(), String> {
        let w = &self.world;
        for _ in 0..100 {
            let r = engine::process_due(&w.pool, &*self.ledger, &w.clock, &w.settings)
                .await
                .map_err(|e| e.to_string())?;
            // Only a renewal paid or a change applied can make more work due
            // at the same instant (the next period, the renewal at the new price).
            if r.renewed == 0 && r.applied_changes == 0 {
                return Ok(());
            }
        }
        Err("the processor still finds work after 100 runs".into())
    }

    async fn fail_migration(&mut self, tenant: Uuid, change: Uuid) -> Result<(), String> {
        let mut conn = self.world.pool.get().await.map_err(|e| e.to_string())?;
        conn.transaction::<_, StoreError, _>(async |conn| {
            tenants::lock_tenant(conn, tenant).await?;
            tenantry_store::deployments::record_migration_failed(
                conn,
                tenant,
                Some(change),
                json!({"reason": "the oracle failed it"}),
            )
            .await?;
            BillingFollowUp {
                clock: self.world.clock,
            }
            .migration_failed(conn, tenant, change)
            .await?;
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())
    }

    async fn compare_provider(&mut self, tenant: Uuid, s: &Snapshot, found: &mut Found) {
        let moves = self.ledger.of(tenant);
        for m in &moves {
            let same = moves
                .iter()
                .filter(|x| {
                    x.key == m.key
                        && (x.kind == MoveKind::Refunded) == (m.kind == MoveKind::Refunded)
                })
                .count();
            if same > 1 {
                found.add(
                    "provider.twice",
                    format!("the provider moved money {same} times for {}", m.key),
                );
            }
            match s.charges.iter().find(|c| c.key == m.key) {
                None => found.add(
                    "provider.unknown",
                    format!(
                        "the provider moved {} cents ({:?}) for {}, which we have no charge for",
                        m.cents, m.kind, m.key
                    ),
                ),
                Some(c) => {
                    if c.amount != m.cents {
                        found.add(
                            "provider.amount",
                            format!(
                                "{}: the provider moved {} cents ({:?}), our charge says {}",
                                m.key, m.cents, m.kind, c.amount
                            ),
                        );
                    }
                    if !c.paid() {
                        found.add(
                            "provider.status",
                            format!(
                                "{}: the provider moved {} cents ({:?}), our charge is {}",
                                m.key, m.cents, m.kind, c.status
                            ),
                        );
                    }
                }
            }
        }
        for c in s.charges.iter().filter(|c| c.paid() && c.amount > 0) {
            let refund = c.kind == "refund";
            if !moves
                .iter()
                .any(|m| m.key == c.key && (m.kind == MoveKind::Refunded) == refund)
            {
                found.add("provider.missing", format!("our {} charge {} ({} cents) is paid, but the provider moved no money for it", c.kind, c.key, c.amount));
            }
        }
    }

    async fn retire(&mut self, tenant: Uuid) {
        self.ledger.scripted.decline(tenant, false);
        self.world.retire(tenant).await;
    }
}
