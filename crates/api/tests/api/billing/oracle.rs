//! An oracle over random sequences (issue #16, point 11): random cases —
//! a signup, then upgrades (same interval, to a year, to lifetime),
//! downgrades and their cancellation, payments on time and late, card
//! declines, processor runs, failed migrations and clock jumps across month
//! ends and 29 February — run through the billing engine on the real
//! PostgreSQL, and after every step the database is compared with an
//! independent model of Stripe's documented rules ([`rules`]): every
//! charge, credit, plan change and period, and the invariants (no negative
//! charge, no second charge for the same seconds, every payment applied or
//! refunded, credits consumed at most once, our state equal to the
//! provider's).
//!
//! The harness is written against [`Driver`]: [`local::Local`] drives the
//! engine with a scripted gateway (the test `billing_oracle_local_path`,
//! part of `make test`); [`standin::StandIn`] runs the operations it takes so
//! far (listed in its module) with the Stripe stand-in as the provider
//! (`billing_oracle_stand_in_path`, also in `make test`, with fewer cases).
//!
//! Each case is a fresh tenant in one shared app and database; the sandbox
//! billing clock is set before every engine call so billing time is the
//! model's (real time moves on: the engine's now is up to about a second
//! later, so the harness never lets the clock land that close before an
//! instant the outcome depends on — [`rules::Model::snap`]). A failing case
//! is shrunk (proptest) and printed with its operations, what each did, the
//! differences and both sides' rows, and the seed and case number that
//! replay it.
//!
//! Knobs (environment):
//! - `TENANTRY_ORACLE_CASES`: cases to run (default [`DEFAULT_CASES`]);
//!   `bench/billing_oracle.sh` runs 10,000.
//! - `TENANTRY_ORACLE_SEED`: the run's seed (default: random, printed);
//!   `TENANTRY_ORACLE_CASE`: run only this case of that seed.
//! - `TENANTRY_ORACLE_MAX_OPS`: operations per case, at most (default 16).
//! - `TENANTRY_ORACLE_LIFETIME_WEIGHT`, `TENANTRY_ORACLE_FAIL_MIGRATION_WEIGHT`:
//!   how often upgrades go to lifetime and migrations fail ([`ops::op`]:
//!   defaults 2 and 4).
//! - `TENANTRY_ORACLE_SKIP`: comparisons to leave out, comma-separated tag
//!   prefixes (`change.status,inv.overlap`), while the engine catches up.
//! - `TENANTRY_ORACLE_KEEP_GOING=1`: run every case, shrink the first of
//!   each kind of failure, report them all at the end.
//! - `TENANTRY_ORACLE_CREDITS=off`: leave out the credit ledger checks
//!   (they run when the `credits` table exists).
//! - `TENANTRY_ORACLE_BUDGET_SECS`: start no case after this long (default
//!   90 s when `TENANTRY_ORACLE_CASES` is not set, so `make test` ends inside
//!   nextest's 3-minute limit on a loaded machine; none otherwise);
//!   `TENANTRY_ORACLE_SHRINK_SECS`: shrink a failure this long at most
//!   (default 60).

mod check;
mod local;
mod ops;
mod rules;
mod standin;

use std::time::{Duration as StdDuration, Instant};

use chrono::{Datelike, Duration, TimeZone, Timelike, Utc};
use proptest::{
    strategy::{Strategy, ValueTree},
    test_runner::{Config as PtConfig, RngAlgorithm, TestRng, TestRunner},
};
use uuid::Uuid;

use check::{Compared, Found, Snapshot};
use ops::{Case, Jump, Op, Up, Via};
use rules::{Interval, Kind, Model, Outcome, PLANS, PayOutcome, Refusal, Request, Ts};

use crate::helpers::{Session, TestApp};

/// Cases `make test` runs: about 37 s on the 2-core development machine
/// (debug build, nothing else running), 500 cases of up to 16 operations.
const DEFAULT_CASES: usize = 500;

/// Cases of the stand-in path in `make test` (slower: Checkout, webhooks and
/// Stripe's own renewals on every case).
const STAND_IN_DEFAULT_CASES: usize = 60;

/// What an engine call answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The change is applied.
    Applied,
    /// The change waits for its payment.
    Pending,
    /// The change is scheduled.
    Scheduled,
    /// Refused.
    Refused(Refusal),
    /// The payment was refunded.
    Refunded,
    /// Anything else (an error the rules do not expect).
    Other(String),
}

/// What a plan change request did.
#[derive(Debug, Clone)]
pub struct Requested {
    pub answer: Answer,
    /// The change recorded by the call, if any.
    pub change: Option<Uuid>,
    /// Its proration date.
    pub pd: Option<Ts>,
}

/// A way to run the operations: the engine with a scripted gateway
/// ([`local::Local`]), or the engine and the app with the Stripe stand-in
/// ([`standin::StandIn`]).
pub trait Driver {
    /// Its name, for the report.
    fn name(&self) -> &'static str;
    /// The database, catalog and clock it runs on.
    fn world(&self) -> &World;
    /// Whether the provider renews subscriptions itself, each period as the
    /// clock passes its end (Stripe), rather than our billing processor.
    fn provider_renews(&self) -> bool {
        false
    }
    /// Whether this path signs tenants up on `plan`.
    fn supports_signup(&self, _plan: usize) -> bool {
        true
    }
    /// Whether this path takes a change from `from` to `to` (paid at a
    /// checkout: `checkout`).
    fn supports_change(&self, _from: usize, _to: usize, _checkout: bool) -> bool {
        true
    }
    /// Whether this path takes the operation at all.
    fn supports(&self, _op: &Op) -> bool {
        true
    }
    /// Moves billing time (and the provider's) to `now`.
    async fn sync_clock(&mut self, now: Ts) {
        self.world().set_clock(now).await;
    }
    /// A new tenant (slug `slug`) on plan `plan` whose first period starts
    /// at `anchor` (the clocks are there); returns it and the anchor it got
    /// (a provider may start it a second later).
    async fn signup(&mut self, slug: &str, plan: usize, anchor: Ts) -> (Uuid, Ts);
    /// The customer asks to move to `to` with a preview taken at
    /// `preview_at`, paying at a checkout (`checkout`) or with the saved card.
    async fn request(
        &mut self,
        tenant: Uuid,
        to: usize,
        preview_at: Ts,
        checkout: bool,
    ) -> Requested;
    /// The customer cancels the scheduled downgrade.
    async fn cancel_scheduled(&mut self, tenant: Uuid) -> Answer;
    /// `cents` arrive for change `change` through `via`; refunds the
    /// engine decides on are carried out before this returns.
    async fn pay(&mut self, tenant: Uuid, change: Uuid, cents: i64, via: Via) -> Answer;
    /// Whether provisioning's failed migration of change `k` now is on
    /// this path.
    fn supports_failed_migration(&self, _m: &Model, _k: usize) -> bool {
        true
    }
    /// The provider's billing cycle anchor now, when it keeps its own (a
    /// Price of another interval restarts the cycle when it is set there).
    async fn provider_anchor(&mut self, _tenant: Uuid) -> Option<Ts> {
        None
    }
    /// Whether a payment for `change` can be made through `via` now (a
    /// provider's checkout session may have expired: nobody can pay it).
    async fn can_pay(&mut self, _change: Uuid, _via: Via) -> bool {
        true
    }
    /// The customer's saved card declines (or works again).
    async fn decline(&mut self, tenant: Uuid, declined: bool);
    /// The billing processor runs until nothing more is due.
    async fn process(&mut self) -> Result<(), String>;
    /// Provisioning reports that the migration of `change` failed.
    async fn fail_migration(&mut self, tenant: Uuid, change: Uuid) -> Result<(), String>;
    /// The provider's side against ours: every payment and refund it made is
    /// a paid charge of ours with the same amount, and the reverse.
    async fn compare_provider(&mut self, tenant: Uuid, snapshot: &Snapshot, found: &mut Found);
    /// The case is over: the tenant leaves the processor's sight.
    async fn retire(&mut self, tenant: Uuid);
}

/// What the engine's refusal means to the model.
pub fn refusal(e: &tenantry_billing::BillingError) -> Answer {
    use tenantry_billing::BillingError;
    match e {
        BillingError::SubscriptionNotActive(_) => Answer::Refused(Refusal::NotActive),
        BillingError::NotAllowed(_) => Answer::Refused(Refusal::NotAllowed),
        BillingError::ChangePending => Answer::Refused(Refusal::ChangePending),
        BillingError::Declined(_) => Answer::Refused(Refusal::Declined),
        BillingError::NotFound(_) => Answer::Refused(Refusal::NotFound),
        other => Answer::Other(other.to_string()),
    }
}

/// What a plan change request came to: the change's status, or the refusal.
pub fn answer_of(
    result: &Result<tenantry_billing::engine::RequestOutcome, tenantry_billing::BillingError>,
) -> Answer {
    match result {
        Ok(out) => match out.change.status.as_str() {
            "applied" => Answer::Applied,
            "pending" => Answer::Pending,
            "scheduled" => Answer::Scheduled,
            other => Answer::Other(format!("a change {other}")),
        },
        Err(e) => refusal(e),
    }
}

/// The app, its database and the oracle's catalog.
pub struct World {
    pub app: TestApp,
    pub pool: tenantry_store::Pool,
    pub sql: tokio_postgres::Client,
    /// Plan ids, in the order of [`PLANS`].
    pub plan_ids: Vec<Uuid>,
    pub product_id: Uuid,
    pub clock: tenantry_billing::Clock,
    pub settings: tenantry_billing::EngineSettings,
    snapshot_sql: String,
    admin: Option<(Session, Instant)>,
    /// The sandbox offset last written (seconds).
    offset: std::cell::Cell<Option<i64>>,
}

impl World {
    /// The oracle's product and plans loaded into `app`'s database.
    pub async fn new(app: TestApp) -> Self {
        let dir = std::env::temp_dir().join(format!("tenantry-oracle-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("catalog.toml");
        std::fs::write(&path, catalog_toml()).unwrap();
        tenantry_api::catalog_file::load(&app.settings, &path)
            .await
            .unwrap();
        std::fs::remove_dir_all(&dir).ok();
        let sql = app.sql().await;
        sql.batch_execute("SET TIME ZONE 'UTC'").await.unwrap();
        let product_id: Uuid = sql
            .query_one("SELECT id FROM products WHERE slug = 'oracle'", &[])
            .await
            .unwrap()
            .get(0);
        let mut plan_ids = Vec::new();
        for p in PLANS {
            let row = sql
                .query_one(
                    "SELECT id FROM plans WHERE product_id = $1 AND code = $2",
                    &[&product_id, &p.code],
                )
                .await
                .unwrap();
            plan_ids.push(row.get(0));
        }
        let credits_table: bool = sql
            .query_one("SELECT to_regclass('public.credits') IS NOT NULL", &[])
            .await
            .unwrap()
            .get(0);
        let credits = credits_table && credit_checks_enabled();
        if !credits {
            eprintln!(
                "billing oracle: credit ledger checks off (no `credits` table, or TENANTRY_ORACLE_CREDITS=off)"
            );
        }
        let pool = tenantry_store::Pool::new(
            app.settings.database_url.as_ref().unwrap(),
            tenantry_store::PoolSettings {
                max_size: 8,
                timeout: StdDuration::from_secs(10),
            },
        )
        .unwrap();
        Self {
            pool,
            sql,
            plan_ids,
            product_id,
            clock: tenantry_billing::Clock::new(true),
            settings: tenantry_billing::EngineSettings {
                sandbox: true,
                ..tenantry_billing::EngineSettings::default()
            },
            snapshot_sql: check::snapshot_sql(credits),
            admin: None,
            offset: std::cell::Cell::new(None),
            app,
        }
    }

    /// Sets the sandbox clock so billing time is `now` or at most about a
    /// second after it (real time moves on; whole seconds of offset).
    pub async fn set_clock(&self, now: Ts) -> i64 {
        let ms = (now - Utc::now()).num_milliseconds();
        let offset = (ms + 999).div_euclid(1000);
        if self.offset.replace(Some(offset)) == Some(offset) {
            return offset;
        }
        let mut conn = self.pool.get().await.unwrap();
        tenantry_store::billing::set_sandbox_offset(&mut conn, offset)
            .await
            .unwrap();
        offset
    }

    /// Inserts an active tenant on `plan` whose first period starts at
    /// `anchor`, billed by `provider` with a saved card.
    pub async fn insert_tenant(&self, slug: &str, plan: usize, anchor: Ts, provider: &str) -> Uuid {
        let tenant = Uuid::now_v7();
        let p = &PLANS[plan];
        let end = p.interval.months().map(|m| rules::add_months(anchor, m));
        self.sql
            .execute(
                "INSERT INTO tenants (id, slug, company_name, product_id, plan_id, deployment, status, provisioned_at, version, created_at, updated_at)
                 VALUES ($1, $2, $2 || ' Ltd', $3, $4, $5, 'active', $6::text::timestamptz, 1, $6::text::timestamptz, $6::text::timestamptz)",
                &[&tenant, &slug, &self.product_id, &self.plan_ids[plan], &p.deployment, &anchor.to_rfc3339()],
            )
            .await
            .unwrap();
        self.sql
            .execute(
                "INSERT INTO subscriptions (id, tenant_id, plan_id, status, current_period_start, current_period_end, provider,
                                            created_at, updated_at, billing_anchor, saved_payment_method)
                 VALUES ($1, $2, $3, 'active', $4::text::timestamptz, $5::text::timestamptz, $6, $4::text::timestamptz,
                         $4::text::timestamptz, $4::text::timestamptz, true)",
                &[&Uuid::now_v7(), &tenant, &self.plan_ids[plan], &anchor.to_rfc3339(), &end.map(|e| e.to_rfc3339()), &provider],
            )
            .await
            .unwrap();
        tenant
    }

    /// The tenant's billing rows.
    pub async fn snapshot(&self, tenant: Uuid) -> Snapshot {
        let row = self
            .sql
            .query_one(&self.snapshot_sql, &[&tenant])
            .await
            .unwrap();
        check::parse(&row.get::<_, String>(0))
    }

    /// Takes the tenant out of the processor's sight (its open changes
    /// canceled, its subscription expired), so later cases stay cheap.
    pub async fn retire(&self, tenant: Uuid) {
        self.sql
            .batch_execute(&format!(
                "UPDATE plan_changes SET status = 'canceled' WHERE tenant_id = '{tenant}' AND status IN ('pending', 'scheduled');
                 UPDATE subscriptions SET status = 'expired', past_due_since = NULL WHERE tenant_id = '{tenant}';"
            ))
            .await
            .unwrap();
    }

    /// Staff record a bank transfer for `change`
    /// (`POST …/plan-changes/{id}/mark-paid`); `Err` with what they were told
    /// when it is refused.
    pub async fn mark_paid(&mut self, tenant: Uuid, change: Uuid) -> Result<(), Answer> {
        let token = self.admin_token().await;
        let res = self
            .app
            .post_as(
                &format!("/v1/tenants/{tenant}/plan-changes/{change}/mark-paid"),
                &token,
                serde_json::json!({"reference": format!("bank transfer for {change}")}),
            )
            .await;
        let status = res.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(Answer::Other(format!(
                "mark-paid answered {status}: {}",
                res.text().await.unwrap_or_default()
            )))
        }
    }

    /// What became of a payment for `change`: refunded (a refund charge
    /// exists), applied, or something else (reported).
    pub async fn settled(&self, change: Uuid) -> Answer {
        let row = self
            .sql
            .query_one(
                "SELECT status, EXISTS (SELECT 1 FROM charges WHERE plan_change_id = $1 AND kind = 'refund') FROM plan_changes WHERE id = $1",
                &[&change],
            )
            .await
            .unwrap();
        let (status, refunded): (String, bool) = (row.get(0), row.get(1));
        if refunded {
            Answer::Refunded
        } else if status == "applied" {
            Answer::Applied
        } else {
            Answer::Other(format!("the change is {status} and nothing was refunded"))
        }
    }

    /// An admin's access token (signed in again every ten minutes of real
    /// time, before it expires).
    pub async fn admin_token(&mut self) -> String {
        match &self.admin {
            Some((s, at)) if at.elapsed() < StdDuration::from_secs(600) => s.access_token.clone(),
            Some(_) => {
                let s = self.app.login("admin@example.test").await;
                let token = s.access_token.clone();
                self.admin = Some((s, Instant::now()));
                token
            }
            None => {
                let s = self.app.admin().await;
                let token = s.access_token.clone();
                self.admin = Some((s, Instant::now()));
                token
            }
        }
    }
}

fn credit_checks_enabled() -> bool {
    std::env::var("TENANTRY_ORACLE_CREDITS").map_or(true, |v| v != "off")
}

/// The oracle's product, with [`PLANS`].
fn catalog_toml() -> String {
    let mut s = String::from(
        r#"[[products]]
slug = "oracle"
name = "Oracle"
description = "The billing oracle's product."
driver = "proxmox"
lxc_template = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
internal_port = 8080
shared = { max_tenants = 100000, cpu_cores = 64, memory_mib = 262144, storage_gib = 10000 }
dedicated_ports = { start = 9000, end = 9999 }
"#,
    );
    for (i, p) in PLANS.iter().enumerate() {
        s.push_str(&format!(
            r#"
  [[products.plans]]
  code = "{code}"
  name = "{code}"
  tier_rank = {i}
  price = "{price}"
  currency = "{cur}"
  interval = "{interval}"
  deployment = "{deployment}"
  cpu_cores = {cores}
  memory_mib = {mem}
  storage_gib = {disk}
  backup_schedule = "weekly"
"#,
            code = p.code,
            price = rust_decimal::Decimal::new(p.cents, 2),
            cur = rules::CURRENCY,
            interval = p.interval.as_str(),
            deployment = p.deployment,
            cores = p.cpu_cores,
            mem = p.memory_mib,
            disk = p.storage_gib,
        ));
    }
    s
}

// ---------------------------------------------------------------------------
// Running one case.

/// Figures of a run.
#[derive(Debug, Default, Clone)]
struct Figures {
    /// How often each rule was exercised.
    seen: std::collections::BTreeMap<&'static str, usize>,
    cases: usize,
    ops: usize,
    skipped: usize,
    steps_checked: usize,
    charges: usize,
    changes: usize,
    credits: usize,
}

/// Why a case failed.
#[derive(Debug, Clone)]
struct Failure {
    step: usize,
    found: Vec<check::Discrepancy>,
    trace: Vec<String>,
    /// The database's rows at that step, then the model's.
    db: String,
}

impl Failure {
    fn tags(&self) -> Vec<&'static str> {
        let mut t: Vec<_> = self.found.iter().map(|d| d.tag).collect();
        t.sort_unstable();
        t.dedup();
        t
    }

    /// The first difference, by its tag and first words: failures with the
    /// same signature are reported once when keeping going.
    fn signature(&self) -> String {
        self.found.first().map_or_else(String::new, |d| {
            let head: Vec<&str> = d.detail.split_whitespace().take(3).collect();
            format!("{} {}", d.tag, head.join(" "))
        })
    }
}

fn skipped(tag: &str, skip: &[String]) -> bool {
    skip.iter()
        .any(|p| !p.is_empty() && tag.starts_with(p.as_str()))
}

/// Runs `case` on a fresh tenant; `Err` at the first step the database and
/// the model differ.
async fn run_case<D: Driver>(
    d: &mut D,
    case: &Case,
    slug: &str,
    skip: &[String],
    figures: &mut Figures,
) -> Result<(), Failure> {
    if !d.supports_signup(case.signup.plan) {
        figures.skipped += case.ops.len();
        return Ok(());
    }
    d.sync_clock(case.signup.anchor).await;
    let (tenant, anchor) = d.signup(slug, case.signup.plan, case.signup.anchor).await;
    let mut m = Model::signup(case.signup.plan, anchor, d.provider_renews());
    let mut trace = vec![format!(
        "signup: {} [{}, {:?})",
        m.plan().code,
        m.start,
        m.end
    )];
    figures.cases += 1;
    let mut at_signup = Found::default();
    if (anchor - case.signup.anchor).abs() > rules::FUZZ {
        at_signup.add(
            "sub.anchor",
            format!(
                "R1 the subscription signed up at {} is anchored at {anchor}",
                case.signup.anchor
            ),
        );
    }
    let result = async {
        check_step(d, &m, tenant, at_signup, skip, figures)
            .await
            .map_err(|(found, db)| Failure {
                step: 0,
                found,
                trace: trace.clone(),
                db,
            })?;
        for (i, op) in case.ops.iter().enumerate() {
            let mut found = Found::default();
            let ran = if d.supports(op) {
                step(d, &mut m, tenant, op, &mut found).await
            } else {
                Err("not on this path")
            };
            match ran {
                Ok(l) => {
                    figures.ops += 1;
                    trace.push(format!("{i:>2}: {l}"));
                }
                Err(why) => {
                    figures.skipped += 1;
                    trace.push(format!("{i:>2}: {op:?}: skipped ({why})"));
                    continue;
                }
            }
            check_step(d, &m, tenant, found, skip, figures)
                .await
                .map_err(|(found, db)| Failure {
                    step: i + 1,
                    found,
                    trace: trace.clone(),
                    db,
                })?;
        }
        Ok(())
    }
    .await;
    d.retire(tenant).await;
    for (k, v) in &m.seen {
        *figures.seen.entry(k).or_default() += v;
    }
    result
}

async fn check_step<D: Driver>(
    d: &mut D,
    m: &Model,
    tenant: Uuid,
    mut found: Found,
    skip: &[String],
    figures: &mut Figures,
) -> Result<(), (Vec<check::Discrepancy>, String)> {
    let snap = d.world().snapshot(tenant).await;
    let Compared {
        charges,
        changes,
        credits,
    } = check::compare(m, &snap, &d.world().plan_ids, &mut found);
    d.compare_provider(tenant, &snap, &mut found).await;
    figures.steps_checked += 1;
    figures.charges += charges;
    figures.changes += changes;
    figures.credits += credits;
    let left: Vec<_> = found
        .0
        .into_iter()
        .filter(|x| !skipped(x.tag, skip))
        .collect();
    if left.is_empty() {
        Ok(())
    } else {
        Err((
            left,
            format!(
                "{}the model expected:\n{}",
                check::describe(&snap, &d.world().plan_ids),
                m.describe()
            ),
        ))
    }
}

fn expect(found: &mut Found, what: &str, want: &Answer, got: &Answer) {
    if want != got {
        found.add(
            "op.result",
            format!("{what}: model {want:?}, engine {got:?}"),
        );
    }
}

fn outcome_answer(o: Outcome) -> Answer {
    match o {
        Outcome::Applied => Answer::Applied,
        Outcome::Pending => Answer::Pending,
        Outcome::Scheduled => Answer::Scheduled,
        Outcome::Refused(r) => Answer::Refused(r),
    }
}

/// Brings the driver's clocks to the model's now; a provider that renews
/// by itself has renewed what came due (in the model too).
async fn sync<D: Driver>(d: &mut D, m: &mut Model) {
    d.sync_clock(m.now).await;
    m.provider_tick();
}

/// Where a jump lands (before snapping).
fn target(m: &Model, jump: Jump) -> Ts {
    let now = m.now;
    let at = |d: chrono::NaiveDate, anchor_time: bool| {
        let (h, mi, s) = if anchor_time {
            (m.anchor.hour(), m.anchor.minute(), m.anchor.second())
        } else {
            (23, 59, 59)
        };
        Utc.from_utc_datetime(&d.and_hms_opt(h, mi, s).unwrap())
    };
    match jump {
        Jump::Minutes(n) => now + Duration::minutes(n.into()),
        Jump::Hours(n) => now + Duration::hours(n.into()),
        Jump::Days(n) => now + Duration::days(n.into()),
        Jump::PeriodEnd => m
            .end
            .filter(|e| *e > now)
            .unwrap_or(now + Duration::days(30)),
        Jump::MonthEnd {
            months,
            anchor_time,
        } => {
            let mut k = u32::from(months);
            loop {
                let first = rules::add_months(
                    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
                        .unwrap(),
                    k,
                );
                let last = first
                    .date_naive()
                    .with_day(rules::days_in_month(first.year(), first.month()))
                    .unwrap();
                let t = at(last, anchor_time);
                if t > now {
                    return t;
                }
                k += 1;
            }
        }
        Jump::LeapDay { anchor_time } => (now.year()..now.year() + 9)
            .filter_map(|y| chrono::NaiveDate::from_ymd_opt(y, 2, 29))
            .map(|d| at(d, anchor_time))
            .find(|t| *t > now)
            .unwrap_or(now + Duration::days(1)),
        Jump::NextEvent => m.next_event().unwrap_or(now + Duration::days(1)),
    }
}

/// Runs one operation on the engine and the model; returns its trace line,
/// or why it does not apply to the state.
async fn step<D: Driver>(
    d: &mut D,
    m: &mut Model,
    tenant: Uuid,
    op: &Op,
    found: &mut Found,
) -> Result<String, &'static str> {
    match *op {
        Op::Advance(jump) => {
            let to = m.snap(target(m, jump));
            m.now = to;
            Ok(format!("clock → {to}"))
        }
        Op::Process => {
            sync(d, m).await;
            if let Err(e) = d.process().await {
                found.add("op.result", format!("processor: {e}"));
            }
            let before = (m.charges.len(), m.plan, m.sub, m.tenant);
            m.process();
            Ok(format!(
                "process at {}: {} new charge(s), plan {}, {} / tenant {}, period [{}, {:?})",
                m.now,
                m.charges.len() - before.0,
                m.plan().code,
                m.sub.as_str(),
                m.tenant.as_str(),
                m.start,
                m.end
            ))
        }
        Op::Upgrade {
            up,
            pick,
            checkout,
            preview_age_min,
        } => {
            let from = m.plan();
            let cands: Vec<usize> = (0..PLANS.len())
                .filter(|&p| {
                    let to = &PLANS[p];
                    p != m.plan
                        && d.supports_change(m.plan, p, checkout)
                        && rules::classify(from, to) == Kind::Upgrade
                        && match up {
                            Up::SameInterval => to.interval == from.interval,
                            Up::ToYear => {
                                from.interval == Interval::Month && to.interval == Interval::Year
                            }
                            Up::ToLifetime => to.interval == Interval::Lifetime,
                        }
                })
                .collect();
            if cands.is_empty() {
                return Err("no such upgrade from this plan");
            }
            let to = cands[usize::from(pick) % cands.len()];
            request(d, m, tenant, to, checkout, preview_age_min, found).await
        }
        Op::Downgrade { pick } => {
            let from = m.plan();
            let cands: Vec<usize> = (0..PLANS.len())
                .filter(|&p| {
                    p != m.plan
                        && d.supports_change(m.plan, p, false)
                        && PLANS[p].interval != Interval::Lifetime
                        && rules::classify(from, &PLANS[p]) == Kind::Downgrade
                })
                .collect();
            if cands.is_empty() {
                return Err("no downgrade from this plan");
            }
            let to = cands[usize::from(pick) % cands.len()];
            request(d, m, tenant, to, false, 0, found).await
        }
        Op::CancelDowngrade => {
            sync(d, m).await;
            let want = outcome_answer(m.cancel_scheduled());
            let got = d.cancel_scheduled(tenant).await;
            let got = if got == Answer::Scheduled {
                Answer::Applied
            } else {
                got
            };
            expect(found, "R5 cancel the scheduled downgrade", &want, &got);
            Ok(format!("cancel scheduled downgrade: {want:?}"))
        }
        Op::Pay(via) | Op::PayLate(via) => {
            sync(d, m).await;
            let k = if matches!(op, Op::Pay(_)) {
                m.on_time_target()
                    .ok_or("no upgrade waits for its payment")?
            } else {
                m.late_target().ok_or("no unpaid upgrade past its window")?
            };
            let (id, cents) = (m.changes[k].db_id, m.changes[k].amount);
            if !d.can_pay(id, via).await {
                return Err("its checkout session expired: it cannot be paid");
            }
            let outcome = m.pay(k);
            let got = d.pay(tenant, id, cents, via).await;
            let want = match outcome {
                PayOutcome::Applied => {
                    provider_cycle(d, m, tenant, k, found).await;
                    Answer::Applied
                }
                PayOutcome::Refunded => {
                    m.refund_done(k);
                    Answer::Refunded
                }
            };
            expect(found, "R8 payment", &want, &got);
            Ok(format!(
                "{} {cents} cents for the change to {} via {via:?}: {want:?}",
                if matches!(op, Op::Pay(_)) {
                    "pay"
                } else {
                    "pay late"
                },
                PLANS[m.changes[k].to].code
            ))
        }
        Op::Decline(on) => {
            m.declined = on;
            d.decline(tenant, on).await;
            Ok(format!("card {}", if on { "declines" } else { "works" }))
        }
        Op::FailMigration => {
            sync(d, m).await;
            let (k, first) = m.migration_target().ok_or("no applied upgrade to fail")?;
            if !d.supports_failed_migration(m, k) {
                return Err("not on this path");
            }
            m.migration_failed(k);
            if let Err(e) = d.fail_migration(tenant, m.changes[k].db_id).await {
                found.add("op.result", format!("failed migration: {e}"));
            }
            if first && m.provider_renews {
                provider_after_failed_migration(d, m, tenant, k, found).await;
            }
            Ok(format!(
                "migration of the change to {} fails{}: back on {}, credit balance {}",
                PLANS[m.changes[k].to].code,
                if first { "" } else { " (again)" },
                m.plan().code,
                m.balance()
            ))
        }
    }
}

/// R9 on a provider that keeps its own cycle: [`Model::provider_keeps_period`],
/// or, once the subscription a move to lifetime let end has ended, a new
/// one from now (the model learns the instant from the provider, within
/// [`rules::FUZZ`] of now).
async fn provider_after_failed_migration<D: Driver>(
    d: &mut D,
    m: &mut Model,
    tenant: Uuid,
    k: usize,
    found: &mut Found,
) {
    let ended =
        PLANS[m.changes[k].to].interval == Interval::Lifetime && m.end.is_some_and(|e| e <= m.now);
    if !ended {
        m.provider_keeps_period(k);
        return;
    }
    match d.provider_anchor(tenant).await {
        Some(at) if (at - m.now).abs() <= rules::FUZZ => {
            m.provider_replaced(at);
            m.now = m.now.max(at);
        }
        other => found.add(
            "provider.anchor",
            format!(
                "R9 a new provider subscription should start about {}; its anchor is {other:?}",
                m.now
            ),
        ),
    }
}

/// A provider that keeps its own cycle restarts it when an applied change
/// of interval reaches it (Stripe: when the Price is set, at its now; the
/// model learns that instant from it, within [`rules::FUZZ`] of now).
async fn provider_cycle<D: Driver>(
    d: &mut D,
    m: &mut Model,
    tenant: Uuid,
    k: usize,
    found: &mut Found,
) {
    let c = &m.changes[k];
    let (from, to) = (PLANS[c.from].interval, PLANS[c.to].interval);
    if !m.provider_renews
        || c.status != rules::ChangeStatus::Applied
        || from == to
        || to == Interval::Lifetime
    {
        return;
    }
    match d.provider_anchor(tenant).await {
        Some(at) if (at - m.now).abs() <= rules::FUZZ => {
            m.provider_cycle_reset(at);
            // The provider's clock ran on in real time; the next step must
            // not set it (or ours) back before the cycle it started.
            m.now = m.now.max(at);
        }
        other => found.add(
            "provider.anchor",
            format!(
                "R3 the provider's new cycle should start about {} (when the Price is set); its anchor is {other:?}",
                m.now
            ),
        ),
    }
}

async fn request<D: Driver>(
    d: &mut D,
    m: &mut Model,
    tenant: Uuid,
    to: usize,
    checkout: bool,
    preview_age_min: u8,
    found: &mut Found,
) -> Result<String, &'static str> {
    let preview_at = m.now - Duration::minutes(preview_age_min.into());
    // The provider's renewals due by now come first: they decide what the
    // request meets (an active subscription again, a period renewed).
    sync(d, m).await;
    let planned = m.plan_request(to, preview_at, checkout);
    let what = format!("{} → {}", m.plan().code, PLANS[to].code);
    match planned {
        Request::Skip(why) => Err(why),
        Request::Refused(r) => {
            m.saw(match r {
                Refusal::NotActive => "refused: the subscription is not active",
                Refusal::NotAllowed => "R5 refused: a lifetime plan is not downgraded",
                _ => "refused: another change is open",
            });
            sync(d, m).await;
            let got = d.request(tenant, to, preview_at, checkout).await;
            expect(
                found,
                &format!("request {what}"),
                &Answer::Refused(r),
                &got.answer,
            );
            if got.change.is_some() && r != Refusal::Declined {
                found.add(
                    "change.unexpected",
                    format!("request {what} was refused ({r:?}) but recorded a change"),
                );
            }
            Ok(format!("request {what}: refused ({r:?})"))
        }
        Request::Change {
            kind,
            to,
            checkout,
            pd,
        } => {
            sync(d, m).await;
            let got = d.request(tenant, to, preview_at, checkout).await;
            let pd = match (kind, pd) {
                (Kind::Downgrade, _) => m.now,
                (_, Some(pd)) => pd,
                // The preview is not honoured: the engine prorates at its now.
                (_, None) => match got.pd {
                    Some(p) if (p - m.now).abs() <= rules::FUZZ && p >= m.now => {
                        // The engine's clock ran on in real time past the
                        // model's now; the next step must not set it back
                        // before the instant it charged from (a period may
                        // start there): the model's now moves to the next
                        // whole second.
                        let whole = p.with_nanosecond(0).unwrap();
                        m.now = m.now.max(if whole < p {
                            whole + Duration::seconds(1)
                        } else {
                            whole
                        });
                        p
                    }
                    other => {
                        found.add("change.proration_date", format!("R2 request {what}: a preview of {preview_at} is not honoured at {}, so the engine's now is charged; it used {other:?}", m.now));
                        m.now
                    }
                },
            };
            let want = outcome_answer(m.expected_outcome(kind, to, checkout, pd));
            expect(found, &format!("request {what}"), &want, &got.answer);
            let Some(id) = got.change else {
                found.add(
                    "change.missing",
                    format!("request {what} recorded no change"),
                );
                return Ok(format!("request {what}: no change recorded"));
            };
            let k = m.record_request(id, kind, to, checkout, pd);
            provider_cycle(d, m, tenant, k, found).await;
            let c = &m.changes[k];
            Ok(format!(
                "request {what} ({}{}, pd {}): {want:?}, amount {} cents",
                c.kind.as_str(),
                if checkout { ", checkout" } else { "" },
                pd,
                c.amount
            ))
        }
    }
}

// ---------------------------------------------------------------------------
// The run.

struct RunConfig {
    cases: usize,
    seed: u64,
    only_case: Option<usize>,
    max_ops: usize,
    skip: Vec<String>,
    keep_going: bool,
    /// Stop starting cases after this long (the default run only: it must
    /// end, shrinking included, well inside nextest's 3-minute limit even on
    /// a loaded machine).
    budget: Option<StdDuration>,
    /// Stop shrinking a failure after this long.
    shrink_budget: StdDuration,
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

impl RunConfig {
    fn from_env() -> Self {
        Self {
            cases: env("TENANTRY_ORACLE_CASES").unwrap_or(DEFAULT_CASES),
            seed: env("TENANTRY_ORACLE_SEED").unwrap_or_else(|| {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap();
                splitmix(t.as_nanos() as u64 ^ u64::from(std::process::id()))
            }),
            only_case: env("TENANTRY_ORACLE_CASE"),
            max_ops: env("TENANTRY_ORACLE_MAX_OPS").unwrap_or(16),
            skip: std::env::var("TENANTRY_ORACLE_SKIP")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            keep_going: std::env::var("TENANTRY_ORACLE_KEEP_GOING").is_ok_and(|v| v == "1"),
            budget: env::<u64>("TENANTRY_ORACLE_BUDGET_SECS")
                .or_else(|| {
                    env::<usize>("TENANTRY_ORACLE_CASES")
                        .is_none()
                        .then_some(90)
                })
                .map(StdDuration::from_secs),
            shrink_budget: StdDuration::from_secs(env("TENANTRY_ORACLE_SHRINK_SECS").unwrap_or(60)),
        }
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator of case `i` of the run seeded `seed`.
fn runner_for(seed: u64, i: usize) -> TestRunner {
    let mut bytes = [0u8; 32];
    let mut x = seed ^ (i as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    for chunk in bytes.chunks_mut(8) {
        x = splitmix(x);
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    TestRunner::new_with_rng(
        PtConfig::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

/// Shrinks a failing case: smaller cases that still fail with one of the
/// same kinds of discrepancy.
fn shrink<D: Driver>(
    rt: &tokio::runtime::Runtime,
    d: &mut D,
    tree: &mut impl ValueTree<Value = Case>,
    first: Failure,
    skip: &[String],
    budget: StdDuration,
    slug: &mut dyn FnMut() -> String,
) -> (Case, Failure, usize) {
    let tags = first.tags();
    let mut best = (tree.current(), first);
    let mut shrinks = 0;
    let started = Instant::now();
    let mut scratch = Figures::default();
    if !tree.simplify() {
        return (best.0, best.1, 0);
    }
    for _ in 0..2000 {
        if started.elapsed() > budget {
            break;
        }
        let case = tree.current();
        let s = slug();
        match rt.block_on(run_case(d, &case, &s, skip, &mut scratch)) {
            Err(f) if f.tags().iter().any(|t| tags.contains(t)) => {
                shrinks += 1;
                best = (case, f);
                if !tree.simplify() {
                    break;
                }
            }
            _ => {
                if !tree.complicate() {
                    break;
                }
            }
        }
    }
    (best.0, best.1, shrinks)
}

fn report(driver: &str, seed: u64, i: usize, case: &Case, f: &Failure, shrinks: usize) -> String {
    let mut s = format!(
        "billing oracle ({driver}): case {i} failed — reproduce with TENANTRY_ORACLE_SEED={seed} TENANTRY_ORACLE_CASE={i}\n\
         minimal case after {shrinks} shrink(s):\n{case}\
         what happened:\n"
    );
    for l in &f.trace {
        s.push_str(&format!("  {l}\n"));
    }
    s.push_str(&format!(
        "after {}, the database differs from the model:\n",
        if f.step == 0 {
            "the signup".to_owned()
        } else {
            format!("operation {}", f.step - 1)
        }
    ));
    for x in &f.found {
        s.push_str(&format!("  {x}\n"));
    }
    s.push_str("the database then:\n");
    s.push_str(&f.db);
    s
}

/// Runs the configured cases through `d`; panics with the report of the
/// first failure (or, keeping going, of every kind of failure).
fn run_all<D: Driver>(rt: &tokio::runtime::Runtime, d: &mut D, cfg: &RunConfig) {
    let started = Instant::now();
    let strategy = ops::case(cfg.max_ops);
    let mut figures = Figures::default();
    let mut failures: Vec<(Vec<String>, String)> = Vec::new();
    let run_id = Uuid::now_v7().simple().to_string();
    let mut counter = 0usize;
    let mut slug = || {
        counter += 1;
        format!("oracle-{}-{counter}", &run_id[20..])
    };
    eprintln!(
        "billing oracle ({}): seed {} (TENANTRY_ORACLE_SEED), {} case(s) of up to {} operations",
        d.name(),
        cfg.seed,
        cfg.only_case.map_or(cfg.cases, |_| 1),
        cfg.max_ops
    );
    let range = match cfg.only_case {
        Some(i) => i..i + 1,
        None => 0..cfg.cases,
    };
    for i in range {
        if cfg.budget.is_some_and(|b| started.elapsed() > b) {
            eprintln!(
                "billing oracle ({}): time budget spent (TENANTRY_ORACLE_BUDGET_SECS): stopping before case {i}",
                d.name()
            );
            break;
        }
        let mut runner = runner_for(cfg.seed, i);
        let mut tree = strategy.new_tree(&mut runner).unwrap();
        let case = tree.current();
        let s = slug();
        let Err(f) = rt.block_on(run_case(d, &case, &s, &cfg.skip, &mut figures)) else {
            continue;
        };
        let sig = f.signature();
        if cfg.keep_going
            && (failures.iter().any(|(s, _)| s.contains(&sig)) || failures.len() >= 12)
        {
            continue;
        }
        let (small, shrunk, shrinks) =
            shrink(rt, d, &mut tree, f, &cfg.skip, cfg.shrink_budget, &mut slug);
        let text = report(d.name(), cfg.seed, i, &small, &shrunk, shrinks);
        eprintln!("{text}");
        failures.push((vec![sig, shrunk.signature()], text));
        if !cfg.keep_going {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "billing oracle ({}): {} cases, {} operations ({} skipped), {} steps checked, {} charge, {} plan change and {} credit comparisons, {:.1} s",
        d.name(),
        figures.cases,
        figures.ops,
        figures.skipped,
        figures.steps_checked,
        figures.charges,
        figures.changes,
        figures.credits,
        secs
    );
    let mut seen = String::new();
    for (k, v) in &figures.seen {
        seen.push_str(&format!("  {v:>7}  {k}\n"));
    }
    eprintln!("rules exercised:\n{seen}");
    if !failures.is_empty() {
        let kinds: Vec<String> = failures.iter().map(|(s, _)| s[1].clone()).collect();
        panic!(
            "the billing oracle ({}) found {} kind(s) of failure (reports above): {}",
            d.name(),
            failures.len(),
            kinds.join("; ")
        );
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The oracle on the local path: the engine with a scripted gateway.
#[test]
fn billing_oracle_local_path() {
    let cfg = RunConfig::from_env();
    let rt = runtime();
    let mut d = rt.block_on(local::Local::new());
    run_all(&rt, &mut d, &cfg);
}

/// The oracle on the Stripe stand-in path (the operations it takes so far:
/// see [`standin`]): [`STAND_IN_DEFAULT_CASES`] cases in `make test` (each
/// one a signup through Checkout and webhooks), `TENANTRY_ORACLE_STAND_IN_CASES`
/// for more.
#[test]
fn billing_oracle_stand_in_path() {
    let mut cfg = RunConfig::from_env();
    cfg.cases = env("TENANTRY_ORACLE_STAND_IN_CASES").unwrap_or(STAND_IN_DEFAULT_CASES);
    let rt = runtime();
    let mut d = rt.block_on(standin::StandIn::new());
    run_all(&rt, &mut d, &cfg);
}
