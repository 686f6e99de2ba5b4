//! What the database holds for one tenant (one query), and its comparison
//! with the model: every charge, credit, plan change and period, and the
//! invariants — no negative charge, no second charge for the same seconds,
//! every payment applied or refunded, credits consumed at most once.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::{Decimal, prelude::ToPrimitive};
use serde_json::Value;
use uuid::Uuid;

use super::rules::{ChangeStatus, ChargeKind, FUZZ, Kind, Model, PLANS, Ts};

/// A difference between the model and the database (or the provider).
#[derive(Debug, Clone)]
pub struct Discrepancy {
    /// What was compared (`change.amount`, `inv.overlap`…): muted with
    /// `TENANTRY_ORACLE_SKIP` (comma-separated prefixes).
    pub tag: &'static str,
    /// The rule (R1–R10) or invariant it checks, and what differs.
    pub detail: String,
}

impl std::fmt::Display for Discrepancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.tag, self.detail)
    }
}

/// Collects discrepancies.
#[derive(Debug, Default)]
pub struct Found(pub Vec<Discrepancy>);

impl Found {
    pub fn add(&mut self, tag: &'static str, detail: impl Into<String>) {
        self.0.push(Discrepancy {
            tag,
            detail: detail.into(),
        });
    }

    fn eq<T: PartialEq + std::fmt::Debug>(
        &mut self,
        tag: &'static str,
        what: &str,
        model: T,
        db: T,
    ) {
        if model != db {
            self.add(tag, format!("{what}: model {model:?}, database {db:?}"));
        }
    }
}

/// A plan change row.
#[derive(Debug, Clone)]
pub struct DbChange {
    pub id: Uuid,
    pub kind: String,
    pub status: String,
    pub to: Uuid,
    pub amount: i64,
    pub currency: String,
    pub pd: Option<Ts>,
    pub effective_at: Option<Ts>,
    pub due_by: Option<Ts>,
    /// The period the quote's charge line covers.
    pub cover: Option<(Ts, Option<Ts>)>,
}

/// A charge row.
#[derive(Debug, Clone)]
pub struct DbCharge {
    pub id: Uuid,
    pub kind: String,
    pub change: Option<Uuid>,
    pub amount: i64,
    pub currency: String,
    pub status: String,
    pub start: Option<Ts>,
    pub end: Option<Ts>,
    pub key: String,
    pub credit_applied: Option<i64>,
    /// What it was paid through (a Stripe invoice `in_…`, a Checkout
    /// Session `cs_…`, an operator's reference).
    pub reference: Option<String>,
}

impl DbCharge {
    pub fn paid(&self) -> bool {
        self.status == "paid"
    }
}

/// A credit ledger row.
#[derive(Debug, Clone)]
pub struct DbCredit {
    pub amount: i64,
    pub kind: String,
    pub source: String,
    pub charge: Option<Uuid>,
    pub currency: String,
}

/// One tenant's billing rows.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub tenant_plan: Uuid,
    pub tenant_status: String,
    pub sub_plan: Uuid,
    pub sub_status: String,
    pub start: Option<Ts>,
    pub end: Option<Ts>,
    pub anchor: Option<Ts>,
    pub past_due_since: Option<Ts>,
    pub changes: Vec<DbChange>,
    pub charges: Vec<DbCharge>,
    /// `None` while the `credits` table does not exist.
    pub credits: Option<Vec<DbCredit>>,
}

/// The rows, briefly, for a failure's report.
pub fn describe(s: &Snapshot, plan_ids: &[Uuid]) -> String {
    let code = |id: Uuid| {
        plan_ids
            .iter()
            .position(|p| *p == id)
            .map_or("?", |i| PLANS[i].code)
    };
    let mut out = format!(
        "    subscription: {} on {} [{:?}, {:?}) anchor {:?}, past due since {:?}; tenant {} on {}\n",
        s.sub_status,
        code(s.sub_plan),
        s.start,
        s.end,
        s.anchor,
        s.past_due_since,
        s.tenant_status,
        code(s.tenant_plan)
    );
    for c in &s.changes {
        out.push_str(&format!(
            "    change {}: {} to {} {} amount {} pd {:?} effective {:?} due by {:?} covers {:?}\n",
            c.id,
            c.kind,
            code(c.to),
            c.status,
            c.amount,
            c.pd,
            c.effective_at,
            c.due_by,
            c.cover
        ));
    }
    for c in &s.charges {
        out.push_str(&format!(
            "    charge {}: {} {} {} cents [{:?}, {:?}) credit applied {:?}\n",
            c.key, c.kind, c.status, c.amount, c.start, c.end, c.credit_applied
        ));
    }
    for c in s.credits.iter().flatten() {
        out.push_str(&format!(
            "    credit {}: {} {} cents (charge {:?})\n",
            c.source, c.kind, c.amount, c.charge
        ));
    }
    out
}

/// The snapshot query; `credits` only when the table exists.
pub fn snapshot_sql(with_credits: bool) -> String {
    let credits = if with_credits {
        "coalesce((SELECT json_agg(json_build_object('amount', amount::text, 'kind', kind, 'source', source, \
         'charge', charge_id, 'currency', currency) ORDER BY id) FROM credits WHERE tenant_id = $1), '[]')"
    } else {
        "NULL::json"
    };
    format!(
        "SELECT json_build_object(
           'tenant', (SELECT json_build_object('plan', plan_id, 'status', status) FROM tenants WHERE id = $1),
           'sub', (SELECT json_build_object('plan', plan_id, 'status', status, 'start', current_period_start,
                    'end', current_period_end, 'anchor', billing_anchor, 'past_due_since', past_due_since)
                   FROM subscriptions WHERE tenant_id = $1),
           'changes', coalesce((SELECT json_agg(json_build_object('id', id, 'kind', kind, 'status', status,
                    'to', to_plan_id, 'amount', amount::text, 'currency', currency, 'pd', proration_date,
                    'effective_at', effective_at, 'due_by', payment_due_by, 'lines', lines) ORDER BY id)
                   FROM plan_changes WHERE tenant_id = $1), '[]'),
           'charges', coalesce((SELECT json_agg(json_build_object('id', id, 'kind', kind, 'change', plan_change_id,
                    'amount', amount::text, 'currency', currency, 'status', status, 'start', period_start,
                    'end', period_end, 'key', idempotency_key, 'reference', provider_reference,
                    'credit_applied', to_jsonb(c) ->> 'credit_applied') ORDER BY id)
                   FROM charges c WHERE tenant_id = $1), '[]'),
           'credits', {credits})::text"
    )
}

fn ts(v: &Value) -> Option<Ts> {
    v.as_str()
        .map(|s| s.parse().unwrap_or_else(|e| panic!("timestamp {s:?}: {e}")))
}

fn id(v: &Value) -> Uuid {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_default()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// A decimal amount (major unit) in cents; panics on fractions of a cent.
pub fn cents(d: Decimal) -> i64 {
    let c = d * Decimal::from(100);
    assert_eq!(c, c.trunc(), "{d} is not a whole number of cents");
    c.to_i64().unwrap()
}

fn cents_of(v: &Value) -> i64 {
    cents(v.as_str().unwrap_or("0").parse().unwrap())
}

/// Parses the snapshot query's row.
pub fn parse(json: &str) -> Snapshot {
    let v: Value = serde_json::from_str(json).unwrap();
    let changes = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let charge_line = c["lines"]
                .as_array()
                .and_then(|l| l.iter().find(|l| l["kind"] == "charge"));
            DbChange {
                id: id(&c["id"]),
                kind: text(&c["kind"]),
                status: text(&c["status"]),
                to: id(&c["to"]),
                amount: cents_of(&c["amount"]),
                currency: text(&c["currency"]),
                pd: ts(&c["pd"]),
                effective_at: ts(&c["effective_at"]),
                due_by: ts(&c["due_by"]),
                cover: charge_line
                    .and_then(|l| ts(&l["period_start"]).map(|s| (s, ts(&l["period_end"])))),
            }
        })
        .collect();
    let charges = v["charges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| DbCharge {
            id: id(&c["id"]),
            kind: text(&c["kind"]),
            change: c["change"].as_str().and_then(|s| s.parse().ok()),
            amount: cents_of(&c["amount"]),
            currency: text(&c["currency"]),
            status: text(&c["status"]),
            start: ts(&c["start"]),
            end: ts(&c["end"]),
            key: text(&c["key"]),
            credit_applied: c["credit_applied"]
                .as_str()
                .map(|s| cents(s.parse().unwrap())),
            reference: c["reference"].as_str().map(str::to_owned),
        })
        .collect();
    let credits = v["credits"].as_array().map(|a| {
        a.iter()
            .map(|c| DbCredit {
                amount: cents_of(&c["amount"]),
                kind: text(&c["kind"]),
                source: text(&c["source"]),
                charge: c["charge"].as_str().and_then(|s| s.parse().ok()),
                currency: text(&c["currency"]),
            })
            .collect()
    });
    Snapshot {
        tenant_plan: id(&v["tenant"]["plan"]),
        tenant_status: text(&v["tenant"]["status"]),
        sub_plan: id(&v["sub"]["plan"]),
        sub_status: text(&v["sub"]["status"]),
        start: ts(&v["sub"]["start"]),
        end: ts(&v["sub"]["end"]),
        anchor: ts(&v["sub"]["anchor"]),
        past_due_since: ts(&v["sub"]["past_due_since"]),
        changes,
        charges,
        credits,
    }
}

fn fuzzy_eq(a: Option<Ts>, b: Option<Ts>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => (a - b).abs() <= FUZZ,
        _ => false,
    }
}

/// Whether two spans share a whole second (Stripe's periods are whole
/// seconds, a proration date ours to the microsecond: a cycle Stripe
/// restarts at the second a quote's instant falls in shares less than one
/// with the charge that paid for it).
fn overlaps(a: (Ts, Option<Ts>), b: (Ts, Option<Ts>)) -> bool {
    let before = |x: (Ts, Option<Ts>), y: (Ts, Option<Ts>)| {
        x.1.is_some_and(|e| e - y.0 < chrono::Duration::seconds(1))
    };
    !(before(a, b) || before(b, a))
}

/// What was compared, for the run's figures.
#[derive(Debug, Default, Clone, Copy)]
pub struct Compared {
    pub charges: usize,
    pub changes: usize,
    pub credits: usize,
}

/// Compares the model with the database rows of its tenant.
pub fn compare(m: &Model, s: &Snapshot, plan_ids: &[Uuid], found: &mut Found) -> Compared {
    let mut n = Compared::default();
    let code = |id: Uuid| {
        plan_ids
            .iter()
            .position(|p| *p == id)
            .map_or("?", |i| PLANS[i].code)
    };
    // The subscription and tenant (R1, R3, R5, R6, R9).
    found.eq(
        "sub.status",
        "R6 subscription status",
        m.sub.as_str(),
        &s.sub_status,
    );
    found.eq(
        "tenant.status",
        "R6 tenant status",
        m.tenant.as_str(),
        &s.tenant_status,
    );
    found.eq(
        "sub.plan",
        "subscription plan",
        m.plan().code,
        code(s.sub_plan),
    );
    found.eq(
        "tenant.plan",
        "tenant plan",
        m.plan().code,
        code(s.tenant_plan),
    );
    found.eq(
        "sub.period",
        "R1/R3/R5/R6/R9 current period",
        (Some(m.start), m.end),
        (s.start, s.end),
    );
    found.eq(
        "sub.anchor",
        "R1/R3/R5 billing anchor",
        Some(m.anchor),
        s.anchor,
    );
    if !fuzzy_eq(m.past_due_since, s.past_due_since) {
        found.add(
            "sub.past_due_since",
            format!(
                "R6 past due since: model {:?} (±{FUZZ}), database {:?}",
                m.past_due_since, s.past_due_since
            ),
        );
    }

    // Plan changes.
    let by_id: HashMap<Uuid, &DbChange> = s.changes.iter().map(|c| (c.id, c)).collect();
    for c in &m.changes {
        n.changes += 1;
        let Some(d) = by_id.get(&c.db_id) else {
            found.add(
                "change.missing",
                format!(
                    "plan change {} ({} to {}) is not in the database",
                    c.db_id,
                    c.kind.as_str(),
                    PLANS[c.to].code
                ),
            );
            continue;
        };
        let what = format!("change {} to {}", c.kind.as_str(), PLANS[c.to].code);
        found.eq(
            "change.kind",
            &format!("{what}: kind"),
            c.kind.as_str(),
            &d.kind,
        );
        found.eq(
            "change.plan",
            &format!("{what}: target plan"),
            PLANS[c.to].code,
            code(d.to),
        );
        let lazily_expired = c.kind == Kind::Upgrade
            && !c.expiry_seen
            && matches!(c.status, ChangeStatus::Pending | ChangeStatus::Expired)
            && c.expires_at.is_some_and(|x| x <= m.now);
        let status_ok = d.status == c.status.as_str()
            || (lazily_expired && matches!(d.status.as_str(), "pending" | "expired"));
        if !status_ok {
            found.add(
                "change.status",
                format!(
                    "R5/R7/R8/R9 {what}: model {}{}, database {}",
                    c.status.as_str(),
                    if lazily_expired {
                        " (or pending until the processor runs)"
                    } else {
                        ""
                    },
                    d.status
                ),
            );
        }
        found.eq(
            "change.currency",
            &format!("{what}: currency"),
            super::rules::CURRENCY,
            &d.currency,
        );
        if c.kind == Kind::Upgrade {
            found.eq(
                "change.amount",
                &format!("R2/R3/R4 {what}: amount due (cents)"),
                c.amount,
                d.amount,
            );
            found.eq(
                "change.proration_date",
                &format!("R2 {what}: proration date"),
                c.pd,
                d.pd,
            );
            let due_ok = if c.expiry_fuzzy {
                fuzzy_eq(c.expires_at, d.due_by)
            } else {
                c.expires_at == d.due_by
            };
            if !due_ok {
                found.add(
                    "change.payment_due_by",
                    format!(
                        "R7 {what}: expires at: model {:?}{}, database {:?}",
                        c.expires_at,
                        if c.expiry_fuzzy {
                            " (± 5 s)"
                        } else {
                            " (the period end)"
                        },
                        d.due_by
                    ),
                );
            }
            found.eq(
                "change.cover",
                &format!("R2/R3/R4 {what}: time its charge line covers"),
                c.cover,
                d.cover,
            );
        } else {
            found.eq(
                "change.effective_at",
                &format!("R5 {what}: effective at"),
                c.effective_at,
                d.effective_at,
            );
        }
    }
    for d in &s.changes {
        if !m.changes.iter().any(|c| c.db_id == d.id) {
            found.add(
                "change.unexpected",
                format!(
                    "plan change {} ({} to {}, {}) is not in the model",
                    d.id,
                    d.kind,
                    code(d.to),
                    d.status
                ),
            );
        }
    }

    // Charges: renewals by period, upgrades and refunds by change.
    let change_index: HashMap<Uuid, usize> = m
        .changes
        .iter()
        .enumerate()
        .map(|(k, c)| (c.db_id, k))
        .collect();
    let mut matched = vec![false; m.charges.len()];
    for d in &s.charges {
        n.charges += 1;
        if d.amount < 0 {
            found.add(
                "inv.negative",
                format!("charge {} ({}) is negative: {}", d.id, d.kind, d.amount),
            );
        }
        let i = match d.kind.as_str() {
            "renewal" => model_renewal(m, d),
            "upgrade" | "refund" => d
                .change
                .and_then(|id| change_index.get(&id))
                .and_then(|&k| {
                    let kind = if d.kind == "upgrade" {
                        ChargeKind::Upgrade
                    } else {
                        ChargeKind::Refund
                    };
                    m.charges
                        .iter()
                        .position(|c| c.kind == kind && c.change == Some(k))
                }),
            _ => None,
        };
        let Some(i) = i else {
            found.add(
                "charge.unexpected",
                format!(
                    "{} charge {} of {} ({:?}–{:?}, {}) is not in the model",
                    d.kind, d.id, d.amount, d.start, d.end, d.status
                ),
            );
            continue;
        };
        if std::mem::replace(&mut matched[i], true) {
            found.add(
                "inv.double-charge",
                format!(
                    "a second {} charge {} for the same {}",
                    d.kind,
                    d.id,
                    if d.kind == "renewal" {
                        "period"
                    } else {
                        "change"
                    }
                ),
            );
            continue;
        }
        let c = &m.charges[i];
        let what = match c.period {
            Some((a, b)) => format!("{} charge for [{a}, {b:?})", c.kind.as_str()),
            None => format!(
                "{} charge of change to {}",
                c.kind.as_str(),
                PLANS[m.changes[c.change.unwrap()].to].code
            ),
        };
        found.eq(
            "charge.amount",
            &format!("R2-R6/R10 {what}: amount (cents)"),
            c.amount,
            d.amount,
        );
        found.eq(
            "charge.currency",
            &format!("{what}: currency"),
            super::rules::CURRENCY,
            &d.currency,
        );
        if !(c.paid == d.paid()
            || (c.kind == ChargeKind::Refund && !c.paid && d.status == "pending"))
        {
            found.add(
                "charge.status",
                format!(
                    "R6/R8 {what}: model {}, database {}",
                    if c.paid { "paid" } else { "unpaid" },
                    d.status
                ),
            );
        }
        match c.kind {
            ChargeKind::Renewal => {
                found.eq(
                    "charge.period",
                    &format!("R1/R6 {what}: period end"),
                    c.period.and_then(|p| p.1),
                    d.end,
                );
                if let Some(applied) = d.credit_applied {
                    found.eq(
                        "charge.credit_applied",
                        &format!("R10 {what}: credit applied"),
                        c.credit_applied,
                        applied,
                    );
                }
            }
            ChargeKind::Upgrade if d.start.is_some() => {
                let cover = m.changes[c.change.unwrap()].cover;
                found.eq(
                    "charge.period",
                    &format!("R2 {what}: period"),
                    cover,
                    d.start.map(|s| (s, d.end)),
                );
            }
            _ => {}
        }
    }
    for (i, c) in m.charges.iter().enumerate() {
        if !matched[i] {
            found.add(
                "charge.missing",
                format!(
                    "{} charge of {} cents{} is not in the database",
                    c.kind.as_str(),
                    c.amount,
                    c.period
                        .map(|p| format!(" for [{}, {:?})", p.0, p.1))
                        .unwrap_or_default()
                ),
            );
        }
    }

    invariants(m, s, plan_ids, found);
    if let Some(credits) = &s.credits {
        n.credits += credits.len();
        compare_credits(m, s, credits, found);
    }
    n
}

/// The database-side invariants.
fn invariants(m: &Model, s: &Snapshot, plan_ids: &[Uuid], found: &mut Found) {
    for d in &s.changes {
        if d.amount < 0 {
            found.add(
                "inv.negative",
                format!("plan change {} has a negative amount {}", d.id, d.amount),
            );
        }
    }
    // No second charge for the same seconds of the same plan.
    let refunded: Vec<Uuid> = s
        .charges
        .iter()
        .filter(|c| c.kind == "refund")
        .filter_map(|c| c.change)
        .collect();
    let mut covers: Vec<(Uuid, (Ts, Option<Ts>), String)> = Vec::new();
    for d in s.charges.iter().filter(|c| c.paid() && c.amount > 0) {
        match d.kind.as_str() {
            "renewal" => {
                let plan = model_renewal(m, d).map(|i| plan_ids[m.charges[i].plan]);
                if let (Some(plan), Some(start)) = (plan, d.start) {
                    covers.push((plan, (start, d.end), format!("renewal {}", d.id)));
                }
            }
            "upgrade" => {
                let Some(change) = d
                    .change
                    .and_then(|id| s.changes.iter().find(|c| c.id == id))
                else {
                    continue;
                };
                if refunded.contains(&change.id) || change.status == "failed" {
                    continue;
                }
                let cover = d.start.map(|s| (s, d.end)).or(change.cover);
                if let Some(cover) = cover {
                    covers.push((change.to, cover, format!("upgrade {}", d.id)));
                }
            }
            _ => {}
        }
    }
    for (i, a) in covers.iter().enumerate() {
        for b in &covers[i + 1..] {
            if a.0 == b.0 && overlaps(a.1, b.1) {
                found.add(
                    "inv.overlap",
                    format!(
                        "paid {} [{}, {:?}) and {} [{}, {:?}) charge the same seconds of one plan",
                        a.2, a.1.0, a.1.1, b.2, b.1.0, b.1.1
                    ),
                );
            }
        }
    }
    // (A provider's restarted cycle, prepaid by the credit the upgrade's
    // charge paid for, takes no money of its own.)
    let prepaid = |d: &DbCharge| model_renewal(m, d).is_some_and(|i| m.charges[i].prepaid);
    let mut renewals: Vec<(Ts, Option<Ts>)> = s
        .charges
        .iter()
        .filter(|c| c.kind == "renewal" && c.paid() && !prepaid(c))
        .filter_map(|c| c.start.map(|s| (s, c.end)))
        .collect();
    renewals.sort();
    for w in renewals.windows(2) {
        if overlaps(w[0], w[1]) {
            found.add(
                "inv.overlap",
                format!(
                    "paid renewals [{}, {:?}) and [{}, {:?}) overlap",
                    w[0].0, w[0].1, w[1].0, w[1].1
                ),
            );
        }
    }
    // Every payment ends applied, or refunded, or (its migration failed
    // after it was applied) credited (R8, R9).
    let credited = |id: Uuid| {
        m.changes
            .iter()
            .any(|x| x.db_id == id && x.migration_failed)
    };
    let settled = |c: &DbChange| {
        c.status == "applied"
            || refunded.contains(&c.id)
            || (c.status == "failed" && credited(c.id))
    };
    for &k in &m.payments {
        let id = m.changes[k].db_id;
        match s.changes.iter().find(|c| c.id == id) {
            Some(c) if settled(c) => {}
            Some(c) => found.add(
                "inv.payment-kept",
                format!(
                    "R8 the payment for change {id} is neither applied nor refunded (change {})",
                    c.status
                ),
            ),
            None => found.add(
                "inv.payment-kept",
                format!("R8 the payment for change {id} has no change"),
            ),
        }
    }
    for d in s
        .charges
        .iter()
        .filter(|c| c.kind == "upgrade" && c.paid() && c.amount > 0)
    {
        if let Some(c) = d
            .change
            .and_then(|id| s.changes.iter().find(|c| c.id == id))
            && !settled(c)
        {
            found.add(
                "inv.payment-kept",
                format!(
                    "R8 upgrade charge {} is paid but its change is {} and nothing was refunded",
                    d.id, c.status
                ),
            );
        }
    }
}

/// The model's renewal a database renewal is: the one of the same period,
/// else of the same start (two periods may start at one second: a cycle a
/// provider restarts in the first second of a period).
fn model_renewal(m: &Model, d: &DbCharge) -> Option<usize> {
    let is = |c: &super::rules::Charge| c.kind == ChargeKind::Renewal;
    m.charges
        .iter()
        .position(|c| {
            is(c)
                && c.period
                    .is_some_and(|p| Some(p.0) == d.start && p.1 == d.end)
        })
        .or_else(|| {
            m.charges
                .iter()
                .position(|c| is(c) && c.period.map(|p| p.0) == d.start)
        })
}

/// The credit ledger (R9, R10): what was granted and applied, once each.
fn compare_credits(m: &Model, s: &Snapshot, credits: &[DbCredit], found: &mut Found) {
    let balance: i64 = credits.iter().map(|c| c.amount).sum();
    found.eq(
        "credits.balance",
        "R10 credit balance (cents)",
        m.balance(),
        balance,
    );
    if balance < 0 {
        found.add(
            "inv.credit-twice",
            format!("the credit balance is negative: {balance}"),
        );
    }
    let mut granted: Vec<i64> = credits
        .iter()
        .filter(|c| c.kind == "granted")
        .map(|c| c.amount)
        .collect();
    let mut model_granted: Vec<i64> = m
        .credits
        .iter()
        .filter(|c| c.amount > 0)
        .map(|c| c.amount)
        .collect();
    granted.sort_unstable();
    model_granted.sort_unstable();
    found.eq(
        "credits.granted",
        "R9 credits granted (cents)",
        model_granted,
        granted,
    );
    let mut per_charge: BTreeMap<Uuid, i64> = BTreeMap::new();
    for c in credits {
        if c.currency != super::rules::CURRENCY {
            found.add(
                "credits.currency",
                format!("credit {} in {}", c.source, c.currency),
            );
        }
        if c.kind == "applied" {
            match c.charge {
                Some(id) => *per_charge.entry(id).or_default() -= c.amount,
                None => found.add(
                    "credits.applied",
                    format!("applied credit {} names no charge", c.source),
                ),
            }
        }
    }
    for (charge, applied) in per_charge {
        let Some(d) = s.charges.iter().find(|c| c.id == charge) else {
            found.add(
                "credits.applied",
                format!("credit applied to charge {charge}, which is not the tenant's"),
            );
            continue;
        };
        let model = m
            .charges
            .iter()
            .find(|c| match d.kind.as_str() {
                "upgrade" => {
                    c.kind == ChargeKind::Upgrade
                        && c.change.map(|k| m.changes[k].db_id) == d.change
                }
                _ => false,
            })
            .or_else(|| model_renewal(m, d).map(|i| &m.charges[i]))
            .map(|c| c.credit_applied);
        found.eq(
            "credits.applied",
            &format!(
                "R10 credit applied to the {} charge {} (from {:?})",
                d.kind, d.key, d.start
            ),
            model,
            Some(applied),
        );
    }
}
