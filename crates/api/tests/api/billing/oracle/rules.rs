//! The oracle's model: Stripe's documented billing rules written out
//! plainly, with no code of `tenantry_domain` or the engine. Money is in
//! cents (`i64`), time in whole UTC seconds.
//!
//! - R1 periods: calendar months or years counted from the billing anchor,
//!   each boundary computed from the anchor with the day clamped to the
//!   month's end (docs.stripe.com/billing/subscriptions/billing-cycle).
//! - R2/R3/R4 upgrades: per-second proration over the current period, each
//!   line rounded half away from zero to the cent; another interval starts
//!   a new period at the proration date; lifetime is charged in full
//!   (docs.stripe.com/billing/subscriptions/prorations).
//! - R5 downgrades at the period end; R6 renewals and dunning; R7 unpaid
//!   upgrades expire; R8 late payments applied or refunded; R9 a failed
//!   migration credits what was paid; R10 a credit ledger used by renewals.
//!
//! The model's state is what the database should hold: time-driven rules
//! (expiry, due downgrades, renewals, dunning) take effect when the billing
//! processor runs ([`Model::process`]), at the processor's `now`, and a run
//! repeats until nothing more is due.

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use uuid::Uuid;

/// An instant (whole seconds).
pub type Ts = DateTime<Utc>;

/// How long a preview's proration date is honoured (R2).
pub const QUOTE_VALIDITY: Duration = Duration::minutes(15);
/// How long an upgrade may stay unpaid (R7).
pub const PAYMENT_WINDOW: Duration = Duration::hours(24);
/// Past due this long: tenant suspended (R6).
pub const GRACE: Duration = Duration::days(3);
/// Past due this long: subscription expired, tenant deprovisioned (R6).
pub const TERMINATION: Duration = Duration::days(14);
/// Wait between attempts at a declined renewal (R6).
pub const RETRY: Duration = Duration::days(1);
/// Instants the engine derives from its own `now` (requested_at + 24 h,
/// past due since + 3 days…) are known here to within this much: the
/// harness never lets the clock land this close to one.
pub const FUZZ: Duration = Duration::seconds(5);

/// A billing interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Month,
    Year,
    Lifetime,
}

impl Interval {
    /// Months per period (`None`: never renews).
    pub fn months(self) -> Option<u32> {
        match self {
            Self::Month => Some(1),
            Self::Year => Some(12),
            Self::Lifetime => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Month => "month",
            Self::Year => "year",
            Self::Lifetime => "lifetime",
        }
    }
}

/// A plan of the oracle's own product, priced in USD.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub code: &'static str,
    pub cents: i64,
    pub interval: Interval,
    pub deployment: &'static str,
    pub cpu_cores: i32,
    pub memory_mib: i32,
    pub storage_gib: i32,
}

const fn plan(
    code: &'static str,
    cents: i64,
    interval: Interval,
    deployment: &'static str,
    size: i32,
) -> Plan {
    Plan {
        code,
        cents,
        interval,
        deployment,
        cpu_cores: size,
        memory_mib: 1024 * size,
        storage_gib: 10 * size,
    }
}

/// The catalog the test creates. Prices are odd on purpose (rounding);
/// each monthly plan has a yearly twin with the same entitlements; no
/// yearly plan has a monthly upgrade cheaper than its own price, so no rule
/// here yields a negative amount due.
pub const PLANS: &[Plan] = &[
    plan("m-basic", 1234, Interval::Month, "shared", 1),
    plan("m-pro", 2999, Interval::Month, "shared", 2),
    plan("m-dedicated", 4999, Interval::Month, "dedicated", 4),
    plan("y-basic", 12345, Interval::Year, "shared", 1),
    plan("y-pro", 29900, Interval::Year, "shared", 2),
    plan("y-dedicated", 49999, Interval::Year, "dedicated", 4),
    plan("lifetime", 99900, Interval::Lifetime, "dedicated", 8),
];

/// USD: the currency of every plan.
pub const CURRENCY: &str = "USD";

// ---------------------------------------------------------------------------
// R1: the calendar.

fn is_leap(y: i32) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Days in month `m` (1–12) of year `y`.
pub fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 31,
    }
}

/// `t` plus `n` calendar months, the day clamped to the month's last day,
/// the time of day (to the microsecond) kept.
pub fn add_months(t: Ts, n: u32) -> Ts {
    let total = t.year() * 12 + i32::try_from(t.month0()).unwrap() + i32::try_from(n).unwrap();
    let (y, m) = (
        total.div_euclid(12),
        u32::try_from(total.rem_euclid(12)).unwrap() + 1,
    );
    let d = t.day().min(days_in_month(y, m));
    let date = chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
    Utc.from_utc_datetime(&date.and_time(t.time()))
}

/// Boundary `n` of the periods anchored at `anchor`: anchor + n intervals,
/// from the anchor each time (Jan 31 → Feb 28/29 → Mar 31).
pub fn boundary(anchor: Ts, interval: Interval, n: u32) -> Ts {
    add_months(anchor, n * interval.months().unwrap())
}

/// The first boundary after `at` of the periods anchored at `anchor`.
pub fn next_boundary(anchor: Ts, interval: Interval, at: Ts) -> Ts {
    let step = interval.months().unwrap();
    let months = (at.year() - anchor.year()) * 12 + at.month0() as i32 - anchor.month0() as i32;
    let mut n = u32::try_from((months - 1).max(0)).unwrap() / step;
    loop {
        let b = boundary(anchor, interval, n);
        if b > at {
            return b;
        }
        n += 1;
    }
}

// ---------------------------------------------------------------------------
// Direction (DESIGN.md "plan change"; the rule, not its code).

/// Upgrade or downgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Upgrade,
    Downgrade,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upgrade => "upgrade",
            Self::Downgrade => "downgrade",
        }
    }
}

fn rank(i: Interval) -> u8 {
    match i {
        Interval::Month => 0,
        Interval::Year => 1,
        Interval::Lifetime => 2,
    }
}

fn size(p: &Plan) -> (u8, i32, i32, i32) {
    let d = match p.deployment {
        "shared" => 0,
        "dedicated" => 1,
        _ => 2,
    };
    (d, p.cpu_cores, p.memory_mib, p.storage_gib)
}

/// Moving from `a` to `b`: lifetime is above every recurring plan; the same
/// entitlements on a longer interval are an upgrade; otherwise more per day
/// (monthly × 12 against yearly, both over 365 days) is the upgrade.
pub fn classify(a: &Plan, b: &Plan) -> Kind {
    let up = |x: bool| if x { Kind::Upgrade } else { Kind::Downgrade };
    let per_year = |p: &Plan| match p.interval {
        Interval::Month => Some(p.cents * 12),
        Interval::Year => Some(p.cents),
        Interval::Lifetime => None,
    };
    match (per_year(a), per_year(b)) {
        (None, None) => up(b.cents > a.cents || (b.cents == a.cents && size(b) > size(a))),
        (None, Some(_)) => Kind::Downgrade,
        (Some(_), None) => Kind::Upgrade,
        (Some(_), Some(_)) if size(a) == size(b) && a.interval != b.interval => {
            up(rank(b.interval) > rank(a.interval))
        }
        (Some(x), Some(y)) if x != y => up(y > x),
        (Some(_), Some(_)) if a.interval != b.interval => up(rank(b.interval) > rank(a.interval)),
        (Some(_), Some(_)) => up(size(b) > size(a)),
    }
}

// ---------------------------------------------------------------------------
// R2: proration.

/// `cents × (end − at) / (end − start)` over seconds, rounded half away
/// from zero to the cent (all positive here, so half up).
pub fn prorate(cents: i64, start: Ts, end: Ts, at: Ts) -> i64 {
    let len = i128::from((end - start).num_seconds().max(1));
    let rem = i128::from(
        (end - at)
            .num_seconds()
            .clamp(0, (end - start).num_seconds()),
    );
    let n = 2 * i128::from(cents) * rem + len;
    i64::try_from(n / (2 * len)).unwrap()
}

/// An upgrade's price at `pd` in period `[start, end)`: (amount due, what the
/// new plan's charge covers). R2 same interval, R3 another interval, R4
/// lifetime.
pub fn quote(from: &Plan, to: &Plan, start: Ts, end: Ts, pd: Ts) -> (i64, Ts, Option<Ts>) {
    if to.interval == Interval::Lifetime {
        return (to.cents, pd, None);
    }
    let credit = prorate(from.cents, start, end, pd);
    if to.interval == from.interval {
        (prorate(to.cents, start, end, pd) - credit, pd, Some(end))
    } else {
        let months = to.interval.months().unwrap();
        (to.cents - credit, pd, Some(add_months(pd, months)))
    }
}

// ---------------------------------------------------------------------------
// The state.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubStatus {
    Active,
    PastDue,
    Expired,
}

impl SubStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantStatus {
    Active,
    Suspended,
    Deprovisioning,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Deprovisioning => "deprovisioning",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeStatus {
    Pending,
    Scheduled,
    Applied,
    Canceled,
    Expired,
    Failed,
}

impl ChangeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Scheduled => "scheduled",
            Self::Applied => "applied",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
            Self::Failed => "failed",
        }
    }
}

/// A plan change as the model sees it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The database's id (learned from the engine's answer).
    pub db_id: Uuid,
    pub kind: Kind,
    pub from: usize,
    pub to: usize,
    pub status: ChangeStatus,
    /// Upgrades: the amount due (R2–R4); downgrades: 0.
    pub amount: i64,
    /// Upgrades: the proration date.
    pub pd: Option<Ts>,
    /// Upgrades: when an unpaid one expires (R7).
    pub expires_at: Option<Ts>,
    /// Whether `expires_at` comes from `requested_at` (fuzzy) rather than
    /// the period end (exact).
    pub expiry_fuzzy: bool,
    /// Downgrades: the period end it takes effect at (R5).
    pub effective_at: Option<Ts>,
    /// The period the quote prorated over.
    pub quoted: (Ts, Option<Ts>),
    /// What the upgrade's charge covers: [pd, e), [pd, pd + interval) or [pd, ∞).
    pub cover: Option<(Ts, Option<Ts>)>,
    /// Period and anchor before an interval change reset them (R3, for R9).
    pub previous: Option<(Ts, Option<Ts>, Ts)>,
    /// Its upgrade charge (index in [`Model::charges`]).
    pub charge: Option<usize>,
    /// Paid at a checkout (else a saved card).
    pub checkout: bool,
    /// Money was received for it.
    pub paid: bool,
    /// Its payment went back (R8).
    pub refunded: bool,
    /// Its migration failed after it was applied (R9).
    pub migration_failed: bool,
    /// A processor run has seen it expired (before that the database may
    /// still say `pending`).
    pub expiry_seen: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeKind {
    Renewal,
    Upgrade,
    Refund,
}

impl ChargeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Renewal => "renewal",
            Self::Upgrade => "upgrade",
            Self::Refund => "refund",
        }
    }
}

/// A charge row as the model sees it.
#[derive(Debug, Clone)]
pub struct Charge {
    pub kind: ChargeKind,
    /// What the provider is asked for (renewals: price − credit applied).
    pub amount: i64,
    /// Renewals: the period paid for.
    pub period: Option<(Ts, Option<Ts>)>,
    /// Paid (refunds: given back).
    pub paid: bool,
    /// Upgrades and refunds: the change.
    pub change: Option<usize>,
    /// The plan whose time it pays for.
    pub plan: usize,
    /// Renewals: the credit used (R10).
    pub credit_applied: i64,
    /// Declined renewals: next attempt (fuzzy).
    pub next_attempt: Option<Ts>,
    /// A provider's restarted cycle, paid by the credit the upgrade's
    /// charge prepaid (R3 on Stripe).
    pub prepaid: bool,
}

/// A row of the credit ledger: granted (> 0) or applied (< 0).
#[derive(Debug, Clone)]
pub struct Credit {
    pub amount: i64,
    /// Granted for this change's failed migration.
    pub change: Option<usize>,
    /// Applied to this charge.
    pub charge: Option<usize>,
}

/// The whole expected state of one tenant.
#[derive(Debug, Clone)]
pub struct Model {
    pub now: Ts,
    pub plan: usize,
    pub sub: SubStatus,
    pub tenant: TenantStatus,
    pub start: Ts,
    pub end: Option<Ts>,
    pub anchor: Ts,
    /// Fuzzy (the processor's now).
    pub past_due_since: Option<Ts>,
    pub declined: bool,
    pub changes: Vec<Change>,
    pub charges: Vec<Charge>,
    pub credits: Vec<Credit>,
    /// The applied upgrade whose migration may still fail (R9): cleared by
    /// anything that moves the subscription on.
    pub migratable: Option<usize>,
    /// Changes money was received for, in order.
    pub payments: Vec<usize>,
    /// How often each rule was exercised (for the run's figures).
    pub seen: std::collections::BTreeMap<&'static str, usize>,
    /// The provider renews the subscription itself, each period as the
    /// clock passes its end ([`Model::provider_tick`]), and its first
    /// period was paid through it (Stripe); else our processor renews.
    pub provider_renews: bool,
    /// The provider's period end when it ran ahead of ours: Stripe moves a
    /// subscription to its next period even when that period's invoice is
    /// declined (the subscription `past_due`), while our period stays the
    /// last one paid (R6 on the provider paths).
    pub provider_ahead: Option<Ts>,
    /// The provider's billing anchor when a declined invoice of a new cycle
    /// moved it and ours has not followed yet.
    pub provider_anchor: Option<Ts>,
}

/// Why the engine should refuse a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The subscription is not active.
    NotActive,
    /// A lifetime plan cannot be downgraded by its customer (422).
    NotAllowed,
    /// Another change is open.
    ChangePending,
    /// Nothing to cancel.
    NotFound,
    /// The downgrade to cancel took effect at the period end (R5).
    TookEffect,
    /// The saved card was declined (an upgrade recorded as failed).
    Declined,
}

/// What a request should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied at once (paid by the saved card, or nothing to pay).
    Applied,
    /// Waiting for its payment at a checkout.
    Pending,
    /// Scheduled for the period end.
    Scheduled,
    /// Refused.
    Refused(Refusal),
}

/// A request as planned by the model before the engine is asked.
#[derive(Debug, Clone, Copy)]
pub enum Request {
    /// Not exercised (the rules say nothing about this state).
    Skip(&'static str),
    /// Refused with no change recorded.
    Refused(Refusal),
    /// A change is recorded.
    Change {
        kind: Kind,
        to: usize,
        checkout: bool,
        /// The proration date when the preview's is honoured; `None`: the
        /// engine's now (read back from the database).
        pd: Option<Ts>,
    },
}

/// What paying should do (R8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayOutcome {
    Applied,
    Refunded,
}

impl Model {
    /// A tenant signed up on `plan` with its first period starting at
    /// `anchor` (now); `provider_renews`: see [`Model::provider_renews`].
    pub fn signup(plan: usize, anchor: Ts, provider_renews: bool) -> Self {
        let end = PLANS[plan].interval.months().map(|m| add_months(anchor, m));
        // A provider's signup is its first invoice: the first period, paid.
        let first = (provider_renews && end.is_some()).then(|| Charge {
            kind: ChargeKind::Renewal,
            amount: PLANS[plan].cents,
            period: Some((anchor, end)),
            paid: true,
            change: None,
            plan,
            credit_applied: 0,
            next_attempt: None,
            prepaid: false,
        });
        Self {
            now: anchor,
            plan,
            sub: SubStatus::Active,
            tenant: TenantStatus::Active,
            start: anchor,
            end,
            anchor,
            past_due_since: None,
            declined: false,
            changes: Vec::new(),
            charges: first.into_iter().collect(),
            credits: Vec::new(),
            migratable: None,
            payments: Vec::new(),
            seen: std::collections::BTreeMap::new(),
            provider_renews,
            provider_ahead: None,
            provider_anchor: None,
        }
    }

    /// Counts that `what` happened.
    pub fn saw(&mut self, what: &'static str) {
        *self.seen.entry(what).or_default() += 1;
    }

    pub fn plan(&self) -> &'static Plan {
        &PLANS[self.plan]
    }

    fn recurring(&self) -> bool {
        self.plan().interval != Interval::Lifetime
    }

    /// The credit balance (R10).
    pub fn balance(&self) -> i64 {
        self.credits.iter().map(|c| c.amount).sum()
    }

    /// Whether change `k` is pending and still in its payment window.
    fn payable(&self, k: usize) -> bool {
        let c = &self.changes[k];
        c.status == ChangeStatus::Pending && c.expires_at.is_some_and(|x| self.now < x)
    }

    /// The open change: scheduled, or pending within its window (R7).
    pub fn open_change(&self) -> Option<usize> {
        (0..self.changes.len())
            .find(|&k| self.changes[k].status == ChangeStatus::Scheduled || self.payable(k))
    }

    /// The current recurring period is over and not yet renewed.
    fn period_over(&self) -> bool {
        self.recurring() && self.end.is_some_and(|e| self.now >= e)
    }

    // -- requests ----------------------------------------------------------

    /// Plans a customer's request to move to `to`, with a preview taken at
    /// `preview_at` (R2: honoured 15 minutes, within the current period).
    pub fn plan_request(&self, to: usize, preview_at: Ts, checkout: bool) -> Request {
        if to == self.plan {
            return Request::Skip("same plan");
        }
        if self.sub != SubStatus::Active {
            return Request::Refused(Refusal::NotActive);
        }
        let kind = classify(self.plan(), &PLANS[to]);
        if kind == Kind::Downgrade && !self.recurring() {
            return Request::Refused(Refusal::NotAllowed);
        }
        if self.period_over() {
            return Request::Skip("the period is over and not renewed yet");
        }
        if self.open_change().is_some() {
            return Request::Refused(Refusal::ChangePending);
        }
        let honoured = preview_at <= self.now
            && self.now - preview_at < QUOTE_VALIDITY
            && preview_at >= self.start;
        Request::Change {
            kind,
            to,
            checkout,
            pd: honoured.then_some(preview_at),
        }
    }

    /// The outcome `request` should have (for a [`Request::Change`]), given
    /// the proration date the engine used.
    pub fn expected_outcome(&self, kind: Kind, to: usize, checkout: bool, pd: Ts) -> Outcome {
        if kind == Kind::Downgrade {
            return Outcome::Scheduled;
        }
        let (amount, ..) = self.quote_at(to, pd);
        if amount <= 0 {
            Outcome::Applied
        } else if checkout {
            Outcome::Pending
        } else if self.declined && amount > self.invoice_credit(amount, checkout) {
            Outcome::Refused(Refusal::Declined)
        } else {
            Outcome::Applied
        }
    }

    /// The credit a provider's invoice of `amount` uses (R10): Stripe
    /// applies the customer balance to any invoice it finalizes, so on the
    /// provider paths an upgrade charged to the saved card uses it too (a
    /// Checkout Session in payment mode does not); locally only renewals do.
    fn invoice_credit(&self, amount: i64, checkout: bool) -> i64 {
        if self.provider_renews && !checkout {
            self.balance().min(amount).max(0)
        } else {
            0
        }
    }

    fn quote_at(&self, to: usize, pd: Ts) -> (i64, Ts, Option<Ts>) {
        match self.end {
            Some(end) => quote(self.plan(), &PLANS[to], self.start, end, pd),
            // A lifetime subscription is never upgraded here (one lifetime plan).
            None => (PLANS[to].cents, pd, None),
        }
    }

    /// Records the change `db_id` the engine made for a planned request
    /// with proration date `pd`; returns its index.
    pub fn record_request(
        &mut self,
        db_id: Uuid,
        kind: Kind,
        to: usize,
        checkout: bool,
        pd: Ts,
    ) -> usize {
        let k = self.changes.len();
        self.migratable = None;
        let quoted = (self.start, self.end);
        if kind == Kind::Downgrade {
            self.saw("R5 downgrade scheduled");
            self.changes.push(Change {
                db_id,
                kind,
                from: self.plan,
                to,
                status: ChangeStatus::Scheduled,
                amount: 0,
                pd: None,
                expires_at: None,
                expiry_fuzzy: false,
                effective_at: self.end,
                quoted,
                cover: None,
                previous: None,
                charge: None,
                checkout: false,
                paid: false,
                refunded: false,
                migration_failed: false,
                expiry_seen: false,
            });
            return k;
        }
        let (raw, cover_start, cover_end) = self.quote_at(to, pd);
        let amount = raw.max(0);
        let window = self.now + PAYMENT_WINDOW;
        let (expires_at, expiry_fuzzy) = match self.end {
            Some(e) if e <= window => (Some(e), false),
            _ => (Some(window), true),
        };
        let outcome = self.expected_outcome(kind, to, checkout, pd);
        let (fi, ti) = (self.plan().interval, PLANS[to].interval);
        self.saw(if ti == Interval::Lifetime {
            "R4 upgrade to lifetime"
        } else if fi == ti {
            "R2 upgrade, same interval"
        } else {
            "R3 upgrade to another interval"
        });
        self.saw(match outcome {
            Outcome::Applied if amount == 0 => "R2 upgrade with nothing to pay, applied",
            Outcome::Applied => "upgrade paid by the saved card",
            Outcome::Pending => "upgrade waiting at a checkout",
            _ => "upgrade declined by the saved card",
        });
        self.charges.push(Charge {
            kind: ChargeKind::Upgrade,
            amount,
            period: None,
            paid: false,
            change: Some(k),
            plan: to,
            credit_applied: 0,
            next_attempt: None,
            prepaid: false,
        });
        self.changes.push(Change {
            db_id,
            kind,
            from: self.plan,
            to,
            status: ChangeStatus::Pending,
            amount,
            pd: Some(pd),
            expires_at,
            expiry_fuzzy,
            effective_at: None,
            quoted,
            cover: Some((cover_start, cover_end)),
            previous: None,
            charge: Some(self.charges.len() - 1),
            checkout,
            paid: false,
            refunded: false,
            migration_failed: false,
            expiry_seen: false,
        });
        match outcome {
            Outcome::Applied => {
                let credit = self.invoice_credit(amount, checkout);
                if credit > 0 {
                    self.saw("R10 credit applied to an upgrade invoice");
                    let i = self.charges.len() - 1;
                    self.charges[i].credit_applied = credit;
                    self.credits.push(Credit {
                        amount: -credit,
                        change: None,
                        charge: Some(i),
                    });
                }
                self.receive(k);
                self.apply_upgrade(k);
            }
            // The declined invoice is voided: its credit goes back.
            Outcome::Refused(Refusal::Declined) => self.changes[k].status = ChangeStatus::Failed,
            _ => {}
        }
        k
    }

    /// Money received for change `k` (nothing when it costs nothing).
    fn receive(&mut self, k: usize) {
        let c = &mut self.changes[k];
        if let Some(i) = c.charge {
            self.charges[i].paid = true;
        }
        if c.amount > 0 {
            c.paid = true;
            self.payments.push(k);
        }
    }

    /// R2–R4 take effect: the plan switches; another recurring interval
    /// starts a new period at the proration date (R3).
    fn apply_upgrade(&mut self, k: usize) {
        let c = self.changes[k].clone();
        let (from, to) = (PLANS[c.from].interval, PLANS[c.to].interval);
        if from != to && to != Interval::Lifetime {
            let pd = c.pd.unwrap();
            self.changes[k].previous = Some((self.start, self.end, self.anchor));
            self.start = pd;
            self.end = Some(add_months(pd, to.months().unwrap()));
            self.anchor = pd;
        }
        self.plan = c.to;
        self.changes[k].status = ChangeStatus::Applied;
        self.migratable = Some(k);
    }

    /// R3 on a provider that keeps its own cycle (Stripe): the Price of the
    /// new interval, set at `at`, restarts the cycle there — period
    /// `[at, at + interval)`, anchor `at` — and invoices it at once. We
    /// charged that period with the upgrade, so a balance credit of the
    /// Price goes first (granted) and that invoice uses it (applied): a
    /// renewal charge of 0 for the new period, paid by the credit.
    pub fn provider_cycle_reset(&mut self, at: Ts) {
        let months = self.plan().interval.months().unwrap();
        let price = self.plan().cents;
        self.saw("R3 provider's cycle restarted when the Price is set, prepaid by credit");
        self.start = at;
        self.end = Some(add_months(at, months));
        self.anchor = at;
        self.provider_ahead = None;
        self.provider_anchor = None;
        self.credits.push(Credit {
            amount: price,
            change: None,
            charge: None,
        });
        self.charges.push(Charge {
            kind: ChargeKind::Renewal,
            amount: 0,
            period: Some((at, self.end)),
            paid: true,
            change: None,
            plan: self.plan,
            credit_applied: price,
            next_attempt: None,
            prepaid: true,
        });
        self.credits.push(Credit {
            amount: -price,
            change: None,
            charge: Some(self.charges.len() - 1),
        });
    }

    /// Cancels the scheduled downgrade (R5): only before it takes effect.
    pub fn cancel_scheduled(&mut self) -> Outcome {
        let due = |c: &Change| c.effective_at.is_some_and(|e| e <= self.now);
        match self
            .changes
            .iter()
            .position(|c| c.status == ChangeStatus::Scheduled && !due(c))
        {
            Some(k) => {
                self.saw("R5 downgrade canceled before the period end");
                self.changes[k].status = ChangeStatus::Canceled;
                self.migratable = None;
                Outcome::Applied
            }
            None if self
                .changes
                .iter()
                .any(|c| c.status == ChangeStatus::Scheduled) =>
            {
                self.saw("R5 cancel refused: the downgrade took effect");
                Outcome::Refused(Refusal::TookEffect)
            }
            None => Outcome::Refused(Refusal::NotFound),
        }
    }

    // -- payments ------------------------------------------------------------

    /// The change an on-time payment is for: the pending upgrade in its window.
    pub fn on_time_target(&self) -> Option<usize> {
        (0..self.changes.len()).find(|&k| self.payable(k))
    }

    /// The change a late payment is for: the last checkout upgrade never
    /// paid whose window has passed (or that was abandoned).
    pub fn late_target(&self) -> Option<usize> {
        (0..self.changes.len()).rev().find(|&k| {
            let c = &self.changes[k];
            c.kind == Kind::Upgrade
                && c.checkout
                && !c.paid
                && c.amount > 0
                && matches!(
                    c.status,
                    ChangeStatus::Pending | ChangeStatus::Expired | ChangeStatus::Canceled
                )
                && !self.payable(k)
        })
    }

    /// What paying change `k` now should do: applied in its window; late,
    /// applied if it still can be — same period as quoted (unless lifetime),
    /// still on the from-plan, no other open change, active — else refunded (R8).
    pub fn expected_payment(&self, k: usize) -> PayOutcome {
        if self.payable(k) {
            return PayOutcome::Applied;
        }
        let c = &self.changes[k];
        let same_period = PLANS[c.to].interval == Interval::Lifetime
            || ((self.start, self.end) == c.quoted && c.quoted.1.is_some_and(|e| self.now < e));
        let applicable = self.sub == SubStatus::Active
            && self.plan == c.from
            && self.open_change().is_none()
            && same_period;
        if applicable {
            PayOutcome::Applied
        } else {
            PayOutcome::Refunded
        }
    }

    /// Records the payment of change `k`.
    pub fn pay(&mut self, k: usize) -> PayOutcome {
        let outcome = self.expected_payment(k);
        self.saw(match (self.payable(k), outcome) {
            (true, _) => "payment in the window, applied",
            (false, PayOutcome::Applied) => "R8 late payment applied",
            (false, PayOutcome::Refunded) => "R8 late payment refunded",
        });
        self.receive(k);
        match outcome {
            PayOutcome::Applied => self.apply_upgrade(k),
            PayOutcome::Refunded => {
                let c = &mut self.changes[k];
                if c.status == ChangeStatus::Pending {
                    c.status = ChangeStatus::Expired;
                }
                // The engine has seen it: no longer `pending`.
                c.expiry_seen = true;
                c.refunded = true;
                let (amount, plan) = (c.amount, c.to);
                self.charges.push(Charge {
                    kind: ChargeKind::Refund,
                    amount,
                    period: None,
                    paid: false,
                    change: Some(k),
                    plan,
                    credit_applied: 0,
                    next_attempt: None,
                    prepaid: false,
                });
            }
        }
        outcome
    }

    /// The refund of change `k` was carried out by the provider.
    pub fn refund_done(&mut self, k: usize) {
        for c in &mut self.charges {
            if c.kind == ChargeKind::Refund && c.change == Some(k) {
                c.paid = true;
            }
        }
    }

    // -- R9 ------------------------------------------------------------------

    /// The change a failed migration is for: the applied upgrade nothing has
    /// moved on from (`true`), or one that already failed (`false`: a repeat
    /// that must change nothing).
    pub fn migration_target(&self) -> Option<(usize, bool)> {
        if let Some(k) = self.migratable {
            return Some((k, true));
        }
        (0..self.changes.len())
            .rev()
            .find(|&k| self.changes[k].migration_failed)
            .map(|k| (k, false))
    }

    /// R9: back to the old plan (and period), credit what was paid, once.
    pub fn migration_failed(&mut self, k: usize) {
        if self.changes[k].migration_failed {
            self.saw("R9 failed migration reported again: nothing");
            return;
        }
        let c = self.changes[k].clone();
        self.saw(if c.previous.is_some() {
            "R9 failed migration, period restored, credited"
        } else {
            "R9 failed migration, credited"
        });
        self.plan = c.from;
        if let Some((s, e, a)) = c.previous {
            self.start = s;
            self.end = e;
            self.anchor = a;
        }
        self.changes[k].status = ChangeStatus::Failed;
        self.changes[k].migration_failed = true;
        if c.paid && c.amount > 0 {
            self.credits.push(Credit {
                amount: c.amount,
                change: Some(k),
                charge: None,
            });
        }
        self.migratable = None;
    }

    /// R9 on a provider that keeps its own cycle (Stripe): a change of
    /// interval had restarted it; the period put back is kept there with a
    /// trial to its end, which moves the provider's anchor (and ours, read
    /// from it) to that end. A move to lifetime had the subscription end at
    /// its period end; the failure resumes it (nothing else moves).
    pub fn provider_keeps_period(&mut self, k: usize) {
        let c = &self.changes[k];
        if c.previous.is_some()
            && let Some(end) = self.end
        {
            self.saw("R9 on the provider: back on the period put aside, trial to its end");
            self.anchor = end;
        } else if PLANS[c.to].interval == Interval::Lifetime {
            self.saw("R9 on the provider: the recurring subscription resumed before its end");
        }
    }

    /// R9 on a provider after a move to lifetime whose recurring
    /// subscription ended: a new one from `at` bills its first period at
    /// once, the balance first (the failed migration's credit covers any
    /// recurring price), and ours follows it: period and anchor from `at`.
    pub fn provider_replaced(&mut self, at: Ts) {
        let months = self.plan().interval.months().unwrap();
        let price = self.plan().cents;
        let credit = self.balance().min(price).max(0);
        assert_eq!(credit, price, "the model's credit covers the first period");
        self.saw("R9 on the provider: the ended subscription replaced, paid from the credit");
        self.start = at;
        self.end = Some(add_months(at, months));
        self.anchor = at;
        self.provider_ahead = None;
        self.provider_anchor = None;
        self.charges.push(Charge {
            kind: ChargeKind::Renewal,
            amount: price - credit,
            period: Some((at, self.end)),
            paid: true,
            change: None,
            plan: self.plan,
            credit_applied: credit,
            next_attempt: None,
            prepaid: false,
        });
        self.credits.push(Credit {
            amount: -credit,
            change: None,
            charge: Some(self.charges.len() - 1),
        });
    }

    // -- the processor -------------------------------------------------------

    /// A processor run at `now`, repeated until nothing more is due.
    pub fn process(&mut self) {
        for _ in 0..200 {
            if !self.pass() {
                return;
            }
        }
        panic!("the model's processor does not settle");
    }

    fn pass(&mut self) -> bool {
        let now = self.now;
        let mut moved = false;
        // R7: unpaid upgrades expire.
        for c in &mut self.changes {
            if c.status == ChangeStatus::Pending && c.expires_at.is_some_and(|x| x <= now) {
                c.status = ChangeStatus::Expired;
                c.expiry_seen = true;
                *self.seen.entry("R7 unpaid upgrade expired").or_default() += 1;
            }
            if c.status == ChangeStatus::Expired {
                c.expiry_seen = true;
            }
        }
        // R5: a due downgrade switches the plan before the renewal.
        if let Some(k) = (0..self.changes.len()).find(|&k| {
            let c = &self.changes[k];
            c.status == ChangeStatus::Scheduled && c.effective_at.is_some_and(|e| e <= now)
        }) {
            let c = self.changes[k].clone();
            if PLANS[c.from].interval != PLANS[c.to].interval {
                self.anchor = c.effective_at.unwrap();
                self.saw("R5 downgrade to another interval applied at the period end");
            } else {
                self.saw("R5 downgrade applied at the period end");
            }
            self.plan = c.to;
            self.changes[k].status = ChangeStatus::Applied;
            self.migratable = None;
            moved = true;
        }
        // R6: the renewal for the next period, once; retried when declined.
        if !self.provider_renews
            && matches!(self.sub, SubStatus::Active | SubStatus::PastDue)
            && self.recurring()
            && let Some(e) = self.end.filter(|e| *e <= now)
        {
            let existing = self
                .charges
                .iter()
                .position(|c| c.kind == ChargeKind::Renewal && c.period.is_some_and(|p| p.0 == e));
            let attempt = match existing {
                Some(i) => {
                    let due = self.charges[i].next_attempt.is_some_and(|t| t <= now);
                    (!self.charges[i].paid && due).then_some(i)
                }
                None => {
                    let interval = self.plan().interval;
                    let next = next_boundary(self.anchor, interval, e);
                    let price = self.plan().cents;
                    let credit = self.balance().min(price).max(0);
                    if credit > 0 {
                        self.saw(if credit == price {
                            "R10 renewal paid in full by credit"
                        } else {
                            "R10 credit applied to a renewal"
                        });
                    }
                    if next.day() != e.day() || e.day() != self.anchor.day() {
                        self.saw("R1 period boundary clamped to a month end");
                    }
                    if next.month() == 2 && next.day() == 29 {
                        self.saw("R1 period ending on 29 February");
                    }
                    self.charges.push(Charge {
                        kind: ChargeKind::Renewal,
                        amount: price - credit,
                        period: Some((e, Some(next))),
                        paid: false,
                        change: None,
                        plan: self.plan,
                        credit_applied: credit,
                        next_attempt: None,
                        prepaid: false,
                    });
                    let i = self.charges.len() - 1;
                    if credit > 0 {
                        self.credits.push(Credit {
                            amount: -credit,
                            change: None,
                            charge: Some(i),
                        });
                    }
                    Some(i)
                }
            };
            if let Some(i) = attempt {
                moved = true;
                self.migratable = None;
                let retry = self.charges[i].next_attempt.is_some();
                let declined = self.declined && self.charges[i].amount > 0;
                self.saw(match (retry, declined) {
                    (false, false) => "R6 renewal paid",
                    (false, true) => "R6 renewal declined: past due",
                    (true, false) => "R6 retry paid: active again",
                    (true, true) => "R6 retry declined",
                });
                let ch = &mut self.charges[i];
                if declined {
                    ch.next_attempt = Some(now + RETRY);
                    self.sub = SubStatus::PastDue;
                    self.past_due_since.get_or_insert(now);
                } else {
                    ch.paid = true;
                    ch.next_attempt = None;
                    let (s, e) = ch.period.unwrap();
                    self.start = s;
                    self.end = e;
                    self.sub = SubStatus::Active;
                    self.past_due_since = None;
                    if self.tenant == TenantStatus::Suspended {
                        self.tenant = TenantStatus::Active;
                    }
                }
            }
        }
        // R6: dunning.
        if self.sub == SubStatus::PastDue
            && let Some(since) = self.past_due_since
        {
            if self.tenant == TenantStatus::Active && since + GRACE <= now {
                self.tenant = TenantStatus::Suspended;
                *self
                    .seen
                    .entry("R6 suspended after 3 days past due")
                    .or_default() += 1;
            }
            if since + TERMINATION <= now {
                *self
                    .seen
                    .entry("R6 expired after 14 days past due")
                    .or_default() += 1;
                self.sub = SubStatus::Expired;
                self.tenant = TenantStatus::Deprovisioning;
                self.migratable = None;
                for c in &mut self.changes {
                    if matches!(c.status, ChangeStatus::Pending | ChangeStatus::Scheduled) {
                        c.status = ChangeStatus::Canceled;
                    }
                }
            }
        }
        moved
    }

    /// The expected rows, briefly, for a failure's report.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "    subscription: {} on {} [{}, {:?}) anchor {}, past due since {:?}; tenant {}; card {}\n",
            self.sub.as_str(),
            self.plan().code,
            self.start,
            self.end,
            self.anchor,
            self.past_due_since,
            self.tenant.as_str(),
            if self.declined { "declines" } else { "works" }
        );
        for c in &self.changes {
            out.push_str(&format!(
                "    change {}: {} to {} {} amount {} pd {:?} effective {:?} expires {:?} covers {:?}{}{}\n",
                c.db_id,
                c.kind.as_str(),
                PLANS[c.to].code,
                c.status.as_str(),
                c.amount,
                c.pd,
                c.effective_at,
                c.expires_at,
                c.cover,
                if c.refunded { ", refunded" } else { "" },
                if c.migration_failed { ", migration failed" } else { "" }
            ));
        }
        for c in &self.charges {
            out.push_str(&format!(
                "    charge: {} {} {} cents {:?} credit applied {}\n",
                c.kind.as_str(),
                if c.paid { "paid" } else { "unpaid" },
                c.amount,
                c.period,
                c.credit_applied
            ));
        }
        for c in &self.credits {
            let what = match (c.change, c.charge) {
                (Some(k), _) => format!(
                    "for the failed migration of change {}",
                    self.changes[k].db_id
                ),
                (_, Some(i)) => format!("applied to the renewal {:?}", self.charges[i].period),
                _ => String::new(),
            };
            out.push_str(&format!("    credit {} cents {what}\n", c.amount));
        }
        out
    }

    /// The provider renews what came due by now, each period at its own
    /// end (Stripe test clocks): the plan it bills from a period end is the
    /// one a downgrade due by then moves to (a subscription schedule's
    /// phase; another interval starts the period there, R5); a lifetime
    /// plan's subscription ends at its period end instead (R4). Our
    /// processor switches our plan later ([`Model::process`]). A declined
    /// card fails the period's invoice: the provider still moves on to the
    /// period ([`Model::provider_ahead`]) and never retries (the stand-in
    /// has no Smart Retries); ours is `past_due` and dunning runs (R6); a
    /// later period paid makes it active again on that period.
    pub fn provider_tick(&mut self) {
        if !self.provider_renews {
            return;
        }
        for _ in 0..2000 {
            let Some(e) = self.provider_ahead.or(self.end).filter(|e| *e <= self.now) else {
                return;
            };
            if !matches!(self.sub, SubStatus::Active | SubStatus::PastDue) || !self.recurring() {
                return;
            }
            let due = self.changes.iter().position(|c| {
                c.status == ChangeStatus::Scheduled && c.effective_at.is_some_and(|x| x <= e)
            });
            let billed = due.map_or(self.plan, |k| self.changes[k].to);
            if PLANS[billed].interval == Interval::Lifetime {
                return;
            }
            // A phase of another interval starts a new cycle where it starts
            // (ours moves there when the invoice is paid, or when our
            // processor applies the downgrade).
            let mut anchor = self.provider_anchor.unwrap_or(self.anchor);
            if due.is_some_and(|k| {
                let c = &self.changes[k];
                c.effective_at == Some(e) && PLANS[c.from].interval != PLANS[billed].interval
            }) {
                anchor = e;
            }
            let next = next_boundary(anchor, PLANS[billed].interval, e);
            let price = PLANS[billed].cents;
            // Finalized with the balance applied; the card pays the rest, or declines.
            let credit = self.balance().min(price).max(0);
            let declined = self.declined && price > credit;
            self.charges.push(Charge {
                kind: ChargeKind::Renewal,
                amount: price - credit,
                period: Some((e, Some(next))),
                paid: !declined,
                change: None,
                plan: billed,
                credit_applied: credit,
                next_attempt: None,
                prepaid: false,
            });
            if credit > 0 {
                let i = self.charges.len() - 1;
                self.credits.push(Credit {
                    amount: -credit,
                    change: None,
                    charge: Some(i),
                });
            }
            if declined {
                self.provider_anchor = (anchor != self.anchor).then_some(anchor);
                self.saw("R6 renewal by the provider, declined: past due");
                self.migratable = None;
                self.sub = SubStatus::PastDue;
                self.past_due_since.get_or_insert(self.now);
                self.provider_ahead = Some(next);
                continue;
            }
            self.saw(if self.sub == SubStatus::PastDue {
                "R6 renewal by the provider, paid: active again"
            } else {
                "R6 renewal by the provider, paid"
            });
            if credit > 0 {
                self.saw("R10 credit applied to a renewal invoice by the provider");
            }
            self.migratable = None;
            self.anchor = anchor;
            self.provider_anchor = None;
            self.start = e;
            self.end = Some(next);
            self.provider_ahead = None;
            self.sub = SubStatus::Active;
            self.past_due_since = None;
            if self.tenant == TenantStatus::Suspended {
                self.tenant = TenantStatus::Active;
            }
        }
        panic!("the model's provider does not settle");
    }

    // -- time ------------------------------------------------------------------

    /// Instants the engine computes from its own clock (known to [`FUZZ`]).
    fn fuzzy_instants(&self) -> Vec<Ts> {
        let mut v = Vec::new();
        for c in &self.changes {
            if c.status == ChangeStatus::Pending && c.expiry_fuzzy {
                v.extend(c.expires_at);
            }
        }
        if let Some(s) = self.past_due_since {
            v.push(s + GRACE);
            v.push(s + TERMINATION);
        }
        for c in &self.charges {
            if !c.paid {
                v.extend(c.next_attempt);
            }
        }
        v
    }

    /// Instants known exactly: the period end, a due downgrade, an expiry at
    /// the period end.
    fn exact_instants(&self) -> Vec<Ts> {
        let mut v = Vec::new();
        if self.recurring() && self.sub != SubStatus::Expired {
            v.extend(self.end);
            v.extend(self.provider_ahead);
        }
        for c in &self.changes {
            if c.status == ChangeStatus::Scheduled {
                v.extend(c.effective_at);
            }
            if c.status == ChangeStatus::Pending && !c.expiry_fuzzy {
                v.extend(c.expires_at);
            }
        }
        v
    }

    /// `t` moved off the instants where the engine's clock (a little ahead of
    /// the model's) could disagree with the model: just before an exact one
    /// (→ onto it), around a fuzzy one (→ [`FUZZ`] after it). The exact ones
    /// include the period boundaries a processor run at `t` would catch up
    /// through (found by running a copy of the model a little later).
    pub fn snap(&self, mut t: Ts) -> Ts {
        for _ in 0..20 {
            let before = t;
            let mut probe = self.clone();
            probe.now = t + FUZZ;
            probe.provider_tick();
            probe.process();
            let boundaries = probe.charges[self.charges.len()..]
                .iter()
                .filter_map(|c| c.period.map(|p| p.0));
            let ahead = self
                .exact_instants()
                .into_iter()
                .chain(probe.exact_instants())
                .chain(boundaries)
                .filter(|d| t < *d && *d - t <= FUZZ)
                .min();
            if let Some(d) = ahead {
                t = d;
            }
            for d in self.fuzzy_instants() {
                if (t - d).abs() <= FUZZ {
                    t = d + FUZZ + Duration::seconds(1);
                }
            }
            if t == before {
                break;
            }
        }
        t
    }

    /// The next instant something is due after now (for "jump to the next event").
    pub fn next_event(&self) -> Option<Ts> {
        let fuzzy = self
            .fuzzy_instants()
            .into_iter()
            .map(|d| d + FUZZ + Duration::seconds(1));
        self.exact_instants()
            .into_iter()
            .chain(fuzzy)
            .filter(|d| *d > self.now)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(y: i32, m: u32, d: u32) -> Ts {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
    }

    #[test]
    fn month_ends_clamp_from_the_anchor() {
        let a = t(2028, 1, 31);
        let b: Vec<_> = (0..4).map(|n| boundary(a, Interval::Month, n)).collect();
        assert_eq!(b, [a, t(2028, 2, 29), t(2028, 3, 31), t(2028, 4, 30)]);
        assert_eq!(boundary(t(2028, 2, 29), Interval::Year, 1), t(2029, 2, 28));
        assert_eq!(
            next_boundary(a, Interval::Month, t(2028, 2, 29)),
            t(2028, 3, 31)
        );
        assert_eq!(next_boundary(a, Interval::Month, a), t(2028, 2, 29));
    }

    #[test]
    fn proration_rounds_half_up_to_the_cent() {
        let (s, e) = (t(2026, 4, 1), t(2026, 5, 1));
        assert_eq!(prorate(2900, s, e, s + Duration::days(10)), 1933);
        assert_eq!(prorate(4900, s, e, s + Duration::days(10)), 3267);
        assert_eq!(
            prorate(1, s, e, s + Duration::days(15)),
            1,
            "0.5 cent rounds up"
        );
    }
}
