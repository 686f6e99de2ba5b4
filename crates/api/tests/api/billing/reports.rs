//! Operator views of billing across tenants — `/v1/charges`,
//! `/v1/plan-changes`, `/v1/billing/summary`: staff only, filtered,
//! paginated. Every expected figure is computed here, from the prices the
//! test sets and the rows it arranges, by the rule the API documents.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Value, json};
use tenantry_domain::Role;
use uuid::Uuid;

use crate::helpers::{Session, TestApp, assert_problem, spawn_app};

/// (product, code, price, currency, interval) of the plans the tests sell.
const PLANS: &[(&str, &str, &str, &str, &str)] = &[
    ("crm", "mini", "9.00", "USD", "month"),
    ("crm", "monthly", "29.00", "USD", "month"),
    ("crm", "yearly", "290.00", "USD", "year"),
    ("crm", "big", "49.99", "USD", "month"),
    ("crm", "forever", "500.00", "USD", "lifetime"),
    ("hrm", "solo", "15.00", "EUR", "month"),
    ("hrm", "solo-yearly", "100.00", "EUR", "year"),
];

/// (tenant slug, product, plan, subscription status).
const TENANTS: &[(&str, &str, &str, &str)] = &[
    ("alpha", "crm", "monthly", "active"),
    ("bravo", "crm", "monthly", "active"),
    ("charlie", "crm", "yearly", "active"),
    ("delta", "crm", "forever", "active"),
    ("echo", "crm", "big", "past_due"),
    ("foxtrot", "crm", "big", "canceled"),
    ("golf", "hrm", "solo", "active"),
    ("hotel", "hrm", "solo-yearly", "past_due"),
    ("india", "hrm", "solo", "expired"),
];

fn plan(product: &str, code: &str) -> (Decimal, &'static str, &'static str) {
    let (_, _, price, currency, interval) = PLANS
        .iter()
        .find(|p| p.0 == product && p.1 == code)
        .unwrap();
    (price.parse().unwrap(), currency, interval)
}

fn minor_unit(currency: &str) -> u32 {
    match currency {
        "USD" | "EUR" => 2,
        other => panic!("no minor unit for {other} in this test"),
    }
}

/// `amount` as the API shows money: rounded half away from zero to the
/// currency's minor unit, with exactly that many decimals.
fn shown(amount: Decimal, currency: &str) -> Value {
    let mut a =
        amount.round_dp_with_strategy(minor_unit(currency), RoundingStrategy::MidpointAwayFromZero);
    a.rescale(minor_unit(currency));
    json!({"amount": a.to_string(), "currency": currency})
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

struct Arranged {
    app: TestApp,
    admin: Session,
    tenants: BTreeMap<&'static str, Uuid>,
}

impl Arranged {
    fn t(&self, slug: &str) -> Uuid {
        self.tenants[slug]
    }

    async fn plan_id(&self, product: &str, code: &str) -> Uuid {
        self.app
            .sql()
            .await
            .query_one(
                "SELECT p.id FROM plans p JOIN products pr ON pr.id = p.product_id
                 WHERE pr.slug = $1 AND p.code = $2",
                &[&product, &code],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// A charge on `tenant`'s subscription, made at `created_at`.
    #[expect(clippy::too_many_arguments, reason = "one row's columns")]
    async fn charge(
        &self,
        tenant: &str,
        kind: &str,
        status: &str,
        amount: &str,
        currency: &str,
        period_start: Option<DateTime<Utc>>,
        created_at: DateTime<Utc>,
    ) -> Uuid {
        let id = Uuid::now_v7();
        let period = |t: Option<DateTime<Utc>>| {
            t.map_or("NULL".to_owned(), |t| {
                format!("'{}'::timestamptz", rfc3339(t))
            })
        };
        self.app
            .sql()
            .await
            .execute(
                &format!(
                    "INSERT INTO charges (id, tenant_id, subscription_id, kind, amount, currency, status,
                                          period_start, period_end, idempotency_key, created_at, updated_at)
                     SELECT $1::uuid, s.tenant_id, s.id, $2::text, '{amount}'::numeric, $3::text, $4::text,
                            {start}, {end}, $1::uuid::text, '{created}'::timestamptz, '{created}'::timestamptz
                     FROM subscriptions s WHERE s.tenant_id = $5::uuid",
                    start = period(period_start),
                    end = period(period_start.map(|t| t + Duration::days(30))),
                    created = rfc3339(created_at),
                ),
                &[&id, &kind, &currency, &status, &self.t(tenant)],
            )
            .await
            .unwrap();
        id
    }

    /// A plan change of `tenant` from its current plan to `to`.
    async fn change(
        &self,
        tenant: &str,
        to: (&str, &str),
        kind: &str,
        status: &str,
        effective_at: Option<DateTime<Utc>>,
    ) -> Uuid {
        let id = Uuid::now_v7();
        let to_plan = self.plan_id(to.0, to.1).await;
        let timing = if kind == "upgrade" {
            "on_payment"
        } else {
            "end_of_term"
        };
        let effective = effective_at.map_or("NULL".to_owned(), |t| {
            format!("'{}'::timestamptz", rfc3339(t))
        });
        self.app
            .sql()
            .await
            .execute(
                &format!(
                    "INSERT INTO plan_changes (id, tenant_id, subscription_id, from_plan_id, to_plan_id,
                                               from_deployment, to_deployment, kind, timing, status,
                                               currency, requested_at, effective_at, actor_label)
                     SELECT $1::uuid, s.tenant_id, s.id, s.plan_id, $2::uuid, 'dedicated', 'dedicated',
                            $3::text, $4::text, $5::text, p.currency, now(), {effective}, 'test'
                     FROM subscriptions s JOIN plans p ON p.id = $2::uuid
                     WHERE s.tenant_id = $6::uuid"
                ),
                &[&id, &to_plan, &kind, &timing, &status, &self.t(tenant)],
            )
            .await
            .unwrap();
        id
    }

    async fn get(&self, path: &str, token: &str) -> Value {
        let res = self.app.get_as(path, token).await;
        let status = res.status();
        let text = res.text().await.unwrap();
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Every item of a list, following `next_cursor` with pages of `limit`;
    /// also returns how many pages it took.
    async fn all_pages(&self, path: &str, limit: u32) -> (Vec<Value>, usize) {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let url = match &cursor {
                None => format!("{path}{sep}limit={limit}"),
                Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
            };
            let page = self.get(&url, &self.admin.access_token).await;
            pages += 1;
            let got = page["items"].as_array().unwrap();
            assert!(got.len() <= limit as usize);
            items.extend(got.iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        (items, pages)
    }

    async fn ids(&self, path: &str) -> Vec<Uuid> {
        self.get(path, &self.admin.access_token).await["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().parse().unwrap())
            .collect()
    }
}

/// The catalog of [`PLANS`] (created by an admin through the API) and the
/// tenants of [`TENANTS`], each with one subscription in its status.
async fn arrange() -> Arranged {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for (i, product) in ["crm", "hrm"].into_iter().enumerate() {
        let plans: Vec<Value> = PLANS
            .iter()
            .filter(|p| p.0 == product)
            .enumerate()
            .map(|(rank, (_, code, price, currency, interval))| {
                json!({"code": code, "name": code, "tier_rank": rank, "price": price,
                       "currency": currency, "interval": interval, "deployment": "dedicated",
                       "cpu_cores": 1, "memory_mib": 512, "storage_gib": 5, "backup_schedule": "daily"})
            })
            .collect();
        let start = 9000 + 100 * i;
        let res = app
            .post_as(
                "/v1/products",
                &admin.access_token,
                json!({"slug": product, "name": product, "driver": "docker", "image": "app:1",
                       "internal_port": 8080, "dedicated_ports": {"start": start, "end": start + 99},
                       "plans": plans}),
            )
            .await;
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    }
    let mut tenants = BTreeMap::new();
    let sql = app.sql().await;
    for (slug, product, code, status) in TENANTS {
        let t = app.tenant_on(slug, product, code).await;
        sql.execute(
            "UPDATE subscriptions
             SET status = $1::text, past_due_since = CASE WHEN $1::text = 'past_due' THEN now() END
             WHERE tenant_id = $2::uuid",
            &[status, &t],
        )
        .await
        .unwrap();
        tenants.insert(*slug, t);
    }
    Arranged {
        app,
        admin,
        tenants,
    }
}

#[tokio::test]
async fn only_staff_see_the_billing_reports() {
    let w = arrange().await;
    let operator = w.app.user("op@example.test", Role::Operator, None).await;
    let owner = w
        .app
        .user("owner@alpha.test", Role::TenantOwner, Some(w.t("alpha")))
        .await;
    for path in ["/v1/charges", "/v1/plan-changes", "/v1/billing/summary"] {
        w.get(path, &w.admin.access_token).await;
        w.get(path, &operator.access_token).await;
        let body = assert_problem(w.app.get_as(path, &owner.access_token).await, 403).await;
        assert!(
            body["detail"].as_str().unwrap().contains("staff"),
            "{path}: {body}"
        );
        assert_problem(w.app.get(path).await, 401).await;
    }
}

/// (id, tenant, kind, status, period_start, created_at) of an arranged charge.
type ChargeRow = (
    Uuid,
    &'static str,
    &'static str,
    &'static str,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
);

#[tokio::test]
async fn charges_filter_by_tenant_status_kind_and_window_and_paginate() {
    let w = arrange().await;
    let at = |m: u32, d: u32| -> DateTime<Utc> {
        format!("2030-{m:02}-{d:02}T00:00:00Z").parse().unwrap()
    };
    let mut rows: Vec<ChargeRow> = Vec::new();
    for (tenant, kind, status, amount, currency, period_start, created_at) in [
        (
            "alpha",
            "renewal",
            "paid",
            "29.00",
            "USD",
            Some(at(1, 1)),
            at(1, 1),
        ),
        (
            "alpha",
            "renewal",
            "failed",
            "29.00",
            "USD",
            Some(at(2, 1)),
            at(2, 1),
        ),
        (
            "echo",
            "upgrade",
            "pending",
            "10.50",
            "USD",
            None,
            at(2, 15),
        ),
        // Made in January for the period starting in March: its instant is March.
        (
            "echo",
            "renewal",
            "processing",
            "49.99",
            "USD",
            Some(at(3, 1)),
            at(1, 20),
        ),
        (
            "hotel",
            "renewal",
            "failed",
            "100.00",
            "EUR",
            Some(at(2, 10)),
            at(2, 10),
        ),
    ] {
        let id = w
            .charge(
                tenant,
                kind,
                status,
                amount,
                currency,
                period_start,
                created_at,
            )
            .await;
        rows.push((id, tenant, kind, status, period_start, created_at));
    }
    let expect = |keep: &dyn Fn(&ChargeRow) -> bool| -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = rows.iter().filter(|r| keep(r)).map(|r| r.0).collect();
        ids.sort();
        ids
    };

    assert_eq!(
        w.ids("/v1/charges").await,
        expect(&|_| true),
        "oldest first"
    );
    let echo = w.t("echo");
    assert_eq!(
        w.ids(&format!("/v1/charges?tenant={echo}")).await,
        expect(&|r| r.1 == "echo")
    );
    assert_eq!(
        w.ids("/v1/charges?status=failed").await,
        expect(&|r| r.3 == "failed")
    );
    assert_eq!(
        w.ids("/v1/charges?kind=upgrade").await,
        expect(&|r| r.2 == "upgrade")
    );
    let alpha = w.t("alpha");
    assert_eq!(
        w.ids(&format!(
            "/v1/charges?tenant={alpha}&status=failed&kind=renewal"
        ))
        .await,
        expect(&|r| r.1 == "alpha" && r.3 == "failed" && r.2 == "renewal")
    );
    // The window is [from, to) on coalesce(period_start, created_at).
    let (from, to) = (at(2, 1), at(3, 1));
    let in_window = |r: &ChargeRow| {
        let instant = r.4.unwrap_or(r.5);
        from <= instant && instant < to
    };
    assert_eq!(
        w.ids(&format!(
            "/v1/charges?from={}&to={}",
            rfc3339(from),
            rfc3339(to)
        ))
        .await,
        expect(&in_window)
    );
    assert_eq!(
        w.ids(&format!("/v1/charges?from={}", rfc3339(at(2, 12))))
            .await,
        expect(&|r| r.4.unwrap_or(r.5) >= at(2, 12))
    );
    assert_eq!(
        w.ids(&format!(
            "/v1/charges?to={}&status=failed",
            rfc3339(at(2, 10))
        ))
        .await,
        expect(&|r| r.4.unwrap_or(r.5) < at(2, 10) && r.3 == "failed")
    );

    // One item in full.
    let page = w
        .get("/v1/charges?kind=upgrade", &w.admin.access_token)
        .await;
    let upgrade = &page["items"][0];
    assert_eq!(upgrade["id"], rows[2].0.to_string());
    assert_eq!(upgrade["tenant_id"], echo.to_string());
    assert_eq!(upgrade["kind"], "upgrade");
    assert_eq!(upgrade["status"], "pending");
    assert_eq!(
        upgrade["amount"],
        json!({"amount": "10.50", "currency": "USD"})
    );
    assert_eq!(upgrade["plan_change_id"], Value::Null);
    assert_eq!(upgrade["period_start"], Value::Null);
    assert_eq!(upgrade["attempts"], 0);
    assert_eq!(time(&upgrade["created_at"]), rows[2].5);
    for field in [
        "subscription_id",
        "period_end",
        "next_attempt_at",
        "provider_reference",
        "last_error",
        "updated_at",
    ] {
        assert!(upgrade.get(field).is_some(), "{field} missing: {upgrade}");
    }
    let hotel = w
        .get(
            &format!("/v1/charges?tenant={}", w.t("hotel")),
            &w.admin.access_token,
        )
        .await;
    assert_eq!(
        hotel["items"][0]["amount"],
        json!({"amount": "100.00", "currency": "EUR"})
    );
    assert_eq!(time(&hotel["items"][0]["period_start"]), at(2, 10));

    // Pages of 2 walk every charge once, in order.
    let (items, pages) = w.all_pages("/v1/charges", 2).await;
    let walked: Vec<Uuid> = items
        .iter()
        .map(|i| i["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(walked, expect(&|_| true));
    assert_eq!(pages, rows.len().div_ceil(2));
    let (failed, _) = w.all_pages("/v1/charges?status=failed", 1).await;
    assert_eq!(failed.len(), expect(&|r| r.3 == "failed").len());

    // Bad filters are 400s naming the parameter.
    for (query, field) in [
        ("status=refunded", "status"),
        ("kind=gift", "kind"),
        ("tenant=alpha", "tenant"),
        ("from=yesterday", "from"),
        ("limit=0", "limit"),
        ("cursor=nope", "cursor"),
        ("colour=red", ""),
    ] {
        let body = assert_problem(
            w.app
                .get_as(&format!("/v1/charges?{query}"), &w.admin.access_token)
                .await,
            400,
        )
        .await;
        if !field.is_empty() {
            assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
        }
    }
    let body = assert_problem(
        w.app
            .get_as(
                &format!("/v1/charges?from={}&to={}", rfc3339(to), rfc3339(from)),
                &w.admin.access_token,
            )
            .await,
        400,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "to");
}

/// (id, tenant, kind, status, effective_at) of an arranged plan change.
type ChangeRow = (
    Uuid,
    &'static str,
    &'static str,
    &'static str,
    Option<DateTime<Utc>>,
);

#[tokio::test]
async fn plan_changes_across_tenants_filter_and_paginate() {
    let w = arrange().await;
    let now = Utc::now();
    // A real downgrade, asked by alpha's owner: scheduled for its period end.
    let owner = w
        .app
        .user("owner@alpha.test", Role::TenantOwner, Some(w.t("alpha")))
        .await;
    let res = w
        .app
        .post_as(
            &format!("/v1/tenants/{}/plan-change", w.t("alpha")),
            &owner.access_token,
            json!({"plan": "mini"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let asked: Value = res.json().await.unwrap();
    let pc = &asked["plan_change"];
    let mut rows: Vec<ChangeRow> = vec![(
        pc["id"].as_str().unwrap().parse().unwrap(),
        "alpha",
        "downgrade",
        "scheduled",
        Some(time(&pc["effective_at"])),
    )];
    for (tenant, to, kind, status, effective_at) in [
        ("echo", ("crm", "forever"), "upgrade", "pending", None),
        (
            "charlie",
            ("crm", "big"),
            "upgrade",
            "applied",
            Some(now - Duration::days(10)),
        ),
        (
            "golf",
            ("hrm", "solo-yearly"),
            "downgrade",
            "canceled",
            Some(now + Duration::days(5)),
        ),
        (
            "hotel",
            ("hrm", "solo"),
            "downgrade",
            "scheduled",
            Some(now + Duration::days(3)),
        ),
    ] {
        let id = w.change(tenant, to, kind, status, effective_at).await;
        rows.push((id, tenant, kind, status, effective_at));
    }
    let expect = |keep: &dyn Fn(&ChangeRow) -> bool| -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = rows.iter().filter(|r| keep(r)).map(|r| r.0).collect();
        ids.sort();
        ids
    };

    assert_eq!(w.ids("/v1/plan-changes").await, expect(&|_| true));
    assert_eq!(
        w.ids("/v1/plan-changes?status=pending,scheduled").await,
        expect(&|r| ["pending", "scheduled"].contains(&r.3))
    );
    assert_eq!(
        w.ids("/v1/plan-changes?status=applied").await,
        expect(&|r| r.3 == "applied")
    );
    assert_eq!(
        w.ids("/v1/plan-changes?status=scheduled&kind=downgrade")
            .await,
        expect(&|r| r.3 == "scheduled" && r.2 == "downgrade")
    );
    assert_eq!(
        w.ids("/v1/plan-changes?kind=upgrade").await,
        expect(&|r| r.2 == "upgrade")
    );
    assert_eq!(
        w.ids(&format!("/v1/plan-changes?tenant={}", w.t("charlie")))
            .await,
        expect(&|r| r.1 == "charlie")
    );
    let due_before = now + Duration::days(7);
    assert_eq!(
        w.ids(&format!(
            "/v1/plan-changes?due_before={}",
            rfc3339(due_before)
        ))
        .await,
        expect(&|r| r.4.is_some_and(|e| e < due_before))
    );
    assert_eq!(
        w.ids(&format!(
            "/v1/plan-changes?due_before={}&status=scheduled",
            rfc3339(due_before)
        ))
        .await,
        expect(&|r| r.4.is_some_and(|e| e < due_before) && r.3 == "scheduled")
    );

    // The plan change as the tenant's own history shows it.
    let listed = w
        .get(
            &format!("/v1/plan-changes?tenant={}", w.t("alpha")),
            &w.admin.access_token,
        )
        .await;
    let mine = &listed["items"][0];
    for field in [
        "id",
        "from_plan",
        "to_plan",
        "kind",
        "timing",
        "status",
        "amount",
        "actor",
        "effective_at",
    ] {
        assert_eq!(mine[field], pc[field], "{field}");
    }
    assert_eq!(mine["from_plan"], "monthly");
    assert_eq!(mine["to_plan"], "mini");
    let echo = w
        .get(
            &format!("/v1/plan-changes?tenant={}", w.t("echo")),
            &w.admin.access_token,
        )
        .await;
    assert_eq!(echo["items"][0]["from_plan"], "big");
    assert_eq!(echo["items"][0]["to_plan"], "forever");
    assert_eq!(echo["items"][0]["effective_at"], Value::Null);

    let (items, pages) = w.all_pages("/v1/plan-changes", 2).await;
    let walked: Vec<Uuid> = items
        .iter()
        .map(|i| i["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(walked, expect(&|_| true));
    assert_eq!(pages, rows.len().div_ceil(2));

    for (query, field) in [
        ("status=pending,nope", "status"),
        ("status=", "status"),
        ("kind=sideways", "kind"),
        ("due_before=tomorrow", "due_before"),
        ("tenant=42", "tenant"),
        ("limit=201", "limit"),
    ] {
        let body = assert_problem(
            w.app
                .get_as(&format!("/v1/plan-changes?{query}"), &w.admin.access_token)
                .await,
            400,
        )
        .await;
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
}

/// (tenant, kind, status, effective_at) of an arranged plan change.
type Due = (
    &'static str,
    &'static str,
    &'static str,
    Option<DateTime<Utc>>,
);

#[tokio::test]
async fn the_summary_adds_up_what_the_test_arranged() {
    let w = arrange().await;
    let now = Utc::now();
    // Charges: what the past-due subscriptions owe is what they were asked
    // and did not pay; paid charges and other subscriptions' do not count.
    let charges = [
        ("echo", "renewal", "failed", "49.99", "USD"),
        ("echo", "upgrade", "pending", "10.50", "USD"),
        ("echo", "renewal", "processing", "49.99", "USD"),
        ("echo", "renewal", "paid", "49.99", "USD"),
        ("hotel", "renewal", "failed", "100.00", "EUR"),
        ("alpha", "renewal", "failed", "29.00", "USD"),
        ("foxtrot", "renewal", "failed", "49.99", "USD"),
    ];
    for (tenant, kind, status, amount, currency) in charges {
        w.charge(tenant, kind, status, amount, currency, Some(now), now)
            .await;
    }
    // Plan changes: scheduled downgrades within 7 days are due.
    let changes: Vec<(Due, (&str, &str))> = vec![
        (
            (
                "alpha",
                "downgrade",
                "scheduled",
                Some(now + Duration::days(2)),
            ),
            ("crm", "mini"),
        ),
        (
            (
                "charlie",
                "downgrade",
                "scheduled",
                Some(now + Duration::days(6)),
            ),
            ("crm", "monthly"),
        ),
        (
            (
                "bravo",
                "downgrade",
                "scheduled",
                Some(now + Duration::days(9)),
            ),
            ("crm", "mini"),
        ),
        (
            (
                "golf",
                "downgrade",
                "applied",
                Some(now + Duration::days(1)),
            ),
            ("hrm", "solo-yearly"),
        ),
        (("echo", "upgrade", "pending", None), ("crm", "forever")),
        (
            (
                "hotel",
                "downgrade",
                "canceled",
                Some(now + Duration::days(1)),
            ),
            ("hrm", "solo"),
        ),
    ];
    for ((tenant, kind, status, effective_at), to) in &changes {
        w.change(tenant, *to, kind, status, *effective_at).await;
    }

    let summary = w.get("/v1/billing/summary", &w.admin.access_token).await;
    let as_of = time(&summary["as_of"]);
    assert!((as_of - Utc::now()).num_seconds().abs() < 60, "{as_of}");

    // MRR per currency: monthly price, or yearly price / 12, of every
    // active or past-due subscription; lifetime plans left out; rounded once.
    let mut mrr: BTreeMap<&str, Decimal> = BTreeMap::new();
    for (_, product, code, status) in TENANTS {
        if !["active", "past_due"].contains(status) {
            continue;
        }
        let (price, currency, interval) = plan(product, code);
        let monthly = match interval {
            "month" => price,
            "year" => price / Decimal::from(12),
            _ => continue,
        };
        *mrr.entry(currency).or_default() += monthly;
    }
    let want: Vec<Value> = mrr.iter().map(|(c, a)| shown(*a, c)).collect();
    assert_eq!(summary["mrr"], json!(want));
    // The example, by the same rule: 29 + 290 / 12 = 53.1666… → 53.17.
    assert_eq!(
        shown(
            Decimal::from(29) + Decimal::from(290) / Decimal::from(12),
            "USD"
        ),
        json!({"amount": "53.17", "currency": "USD"})
    );

    let mut active: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for (_, product, code, status) in TENANTS {
        if *status == "active" {
            *active.entry((product, code)).or_default() += 1;
        }
    }
    let want: Vec<Value> = active
        .iter()
        .map(|((p, c), n)| json!({"product": p, "plan": c, "count": n}))
        .collect();
    assert_eq!(summary["active_subscriptions"], json!(want));

    let past_due: Vec<&str> = TENANTS
        .iter()
        .filter(|t| t.3 == "past_due")
        .map(|t| t.0)
        .collect();
    assert_eq!(summary["past_due"]["count"], past_due.len());
    let mut owed: BTreeMap<&str, Decimal> = BTreeMap::new();
    for (tenant, kind, status, amount, currency) in charges {
        if past_due.contains(&tenant)
            && ["renewal", "upgrade"].contains(&kind)
            && ["pending", "processing", "failed"].contains(&status)
        {
            *owed.entry(currency).or_default() += amount.parse::<Decimal>().unwrap();
        }
    }
    let want: Vec<Value> = owed.iter().map(|(c, a)| shown(*a, c)).collect();
    assert_eq!(summary["past_due"]["outstanding"], json!(want));

    // Downgrades due: scheduled, effective before the billing clock + 7 days.
    let due = |clock: DateTime<Utc>| -> Vec<(String, String, String)> {
        let mut d: Vec<_> = changes
            .iter()
            .filter(|((_, kind, status, at), _)| {
                *kind == "downgrade"
                    && *status == "scheduled"
                    && at.is_some_and(|at| at < clock + Duration::days(7))
            })
            .map(|((tenant, _, _, at), to)| {
                let from = TENANTS.iter().find(|t| t.0 == *tenant).unwrap().2;
                (*at, tenant.to_string(), from.to_owned(), to.1.to_owned())
            })
            .collect();
        d.sort();
        d.into_iter().map(|(_, t, f, to)| (t, f, to)).collect()
    };
    let listed = |s: &Value| -> Vec<(String, String, String)> {
        s["downgrades_due"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["tenant_slug"].as_str().unwrap().to_owned(),
                    i["from_plan"].as_str().unwrap().to_owned(),
                    i["to_plan"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let want = due(as_of);
    assert_eq!(listed(&summary), want);
    assert_eq!(summary["downgrades_due"]["count"], want.len());
    assert_eq!(
        time(&summary["downgrades_due"]["until"]),
        as_of + Duration::days(7)
    );
    let first = &summary["downgrades_due"]["items"][0];
    assert_eq!(first["tenant_id"], w.t("alpha").to_string());
    assert_eq!(first["product"], "crm");
    assert_eq!(
        time(&first["effective_at"]).timestamp_micros(),
        (now + Duration::days(2)).timestamp_micros()
    );

    // The summary follows the billing clock: three days on, bravo's
    // downgrade (in nine days) is due within seven.
    w.app
        .sql()
        .await
        .execute(
            "INSERT INTO sandbox_clock (singleton, offset_seconds) VALUES (true, $1)
             ON CONFLICT (singleton) DO UPDATE SET offset_seconds = EXCLUDED.offset_seconds",
            &[&(3 * 86_400_i64)],
        )
        .await
        .unwrap();
    let later = w.get("/v1/billing/summary", &w.admin.access_token).await;
    let later_as_of = time(&later["as_of"]);
    assert!(
        (later_as_of - (Utc::now() + Duration::days(3)))
            .num_seconds()
            .abs()
            < 60,
        "{later_as_of}"
    );
    let want_later = due(later_as_of);
    assert!(want_later.len() > want.len());
    assert_eq!(listed(&later), want_later);
    assert_eq!(later["downgrades_due"]["count"], want_later.len());
}
