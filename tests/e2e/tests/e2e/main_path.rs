//! The main path, as `make demo` walks it, each state asserted through the API.

use serde_json::{Value, json};
use tenantry_e2e::World;

/// The plan change `id` in the tenant's history.
async fn plan_change(w: &World, tenant: &str, token: &str, id: &str) -> Value {
    let history = w
        .get(
            &format!("/v1/tenants/{tenant}/plan-changes?limit=200"),
            token,
        )
        .await;
    history["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("plan change {id} not in {history}"))
}

/// Waits until the tenant's active deployment is of `kind` and its last
/// migrate job succeeded; returns that deployment.
async fn migrated(w: &World, tenant: &str, token: &str, kind: &str, migrations: usize) -> Value {
    w.eventually(
        &format!("a {kind} deployment after migration {migrations}"),
        || async {
            let t = w.tenant(tenant, token).await;
            assert_ne!(t["status"], "failed", "{t}");
            let jobs = w.jobs(tenant, "migrate").await;
            let active = w
                .deployments(tenant, token)
                .await
                .into_iter()
                .find(|d| d["status"] == "active");
            match (&active, jobs.last()) {
                (Some(d), Some(j))
                    if t["status"] == "active"
                        && d["kind"] == kind
                        && jobs.len() == migrations
                        && j["status"] == "succeeded" =>
                {
                    Ok(d.clone())
                }
                _ => Err(json!({"tenant": t, "active": active, "jobs": jobs})),
            }
        },
    )
    .await
}

#[tokio::test]
async fn the_main_path_from_signup_to_downgrade_through_the_public_api() {
    let w = World::start(200).await;
    w.register_nodes().await;

    // Ballast: a staff-made dedicated tenant. Placement ties go to the first
    // node by name, so it lands on pve1, and pve2 is then the least loaded.
    let ballast_slug = w.slug("ballast");
    let ballast = w
        .post(
            "/v1/tenants",
            Some(&w.admin),
            json!({"company_name": "Ballast Ltd", "slug": ballast_slug, "product": "odoo", "plan": "pro",
                   "owner_email": format!("owner@{ballast_slug}.e2e.test"), "skip_payment": true}),
            202,
        )
        .await;
    let ballast_id = ballast["tenant"]["id"].as_str().unwrap().to_owned();
    w.wait_status(&ballast_id, &w.admin, "active").await;
    let ballast_dep = w.deployments(&ballast_id, &w.admin).await[0].clone();
    assert_eq!(ballast_dep["node"], "pve1", "{ballast_dep}");
    assert_eq!(
        w.node_instances().await,
        vec![("pve1".to_owned(), 1), ("pve2".to_owned(), 0)]
    );

    // 1. Sign up for a paid shared plan: pending payment, a checkout at the stand-in.
    let slug = w.slug("acme");
    let (t, owner, checkout) = w.signup(&slug, "basic").await;
    assert_eq!(w.tenant(&t, &owner).await["status"], "pending_payment");
    assert!(
        w.jobs(&t, "provision").await.is_empty(),
        "nothing before payment"
    );

    // 2. Checkout completed: the webhooks are delivered and accepted.
    let events = w.pay(&checkout).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["checkout.session.completed", "invoice.paid"]);
    let status = w.tenant(&t, &owner).await["status"].clone();
    assert!(
        status == "provisioning" || status == "active",
        "paid → provisioning: {status}"
    );

    // 3. Provisioned on the least-loaded node: a new shared instance on pve2.
    let tenant = w.wait_status(&t, &owner, "active").await;
    assert_eq!(tenant["plan"], "basic", "{tenant}");
    let provision = w.jobs(&t, "provision").await;
    assert_eq!(provision.len(), 1, "one provision job: {provision:?}");
    assert_eq!(provision[0]["status"], "succeeded");
    let deps = w.deployments(&t, &owner).await;
    assert_eq!(deps.len(), 1, "{deps:?}");
    let shared = &deps[0];
    assert_eq!(shared["status"], "active");
    assert_eq!(shared["kind"], "shared");
    assert_eq!(shared["node"], "pve2", "the least-loaded node: {shared}");
    assert!(
        shared["host_port"].is_null(),
        "shared tenants have no port of their own"
    );
    let sub = w
        .get(&format!("/v1/tenants/{t}/subscription"), &owner)
        .await;
    assert_eq!(sub["status"], "active", "{sub}");
    assert_eq!(sub["provider"], "stripe", "{sub}");
    let containers = w.containers().await;
    assert_eq!(
        containers.len(),
        2,
        "ballast + the shared instance: {containers:?}"
    );

    // 4. Upgrade to a dedicated plan, ten days into the period: the preview's
    // prorated amount is what is charged.
    w.advance_clock(10 * 86_400).await;
    let preview = w
        .post(
            &format!("/v1/tenants/{t}/plan-change/preview"),
            Some(&owner),
            json!({"plan": "pro"}),
            200,
        )
        .await;
    assert_eq!(preview["kind"], "upgrade", "{preview}");
    assert_eq!(preview["timing"], "on_payment", "{preview}");
    let due: f64 = preview["amount_due"].as_str().unwrap().parse().unwrap();
    assert!(
        due > 0.0 && due < 20.0,
        "prorated: less than the full 20.00 difference twenty days before the end: {preview}"
    );
    let lines = preview["lines"].as_array().unwrap();
    assert!(
        lines.iter().any(|l| l["kind"] == "credit") && lines.iter().any(|l| l["kind"] == "charge")
    );
    let change = w
        .post(
            &format!("/v1/tenants/{t}/plan-change"),
            Some(&owner),
            json!({"plan": "pro", "proration_date": preview["proration_date"]}),
            202,
        )
        .await;
    assert_eq!(
        change["payment"], "charged_to_saved_payment_method",
        "{change}"
    );
    assert_eq!(
        change["plan_change"]["amount"]["amount"], preview["amount_due"],
        "charged exactly the preview"
    );
    let upgrade_id = change["plan_change"]["id"].as_str().unwrap().to_owned();

    // 5. Paid: applied (the invoice.paid webhook, or the charge's answer).
    let upgrade = w
        .eventually("the upgrade applied", || async {
            let c = plan_change(&w, &t, &owner, &upgrade_id).await;
            if c["status"] == "applied" {
                Ok(c)
            } else {
                Err(c)
            }
        })
        .await;
    assert_eq!(upgrade["to_plan"], "pro");
    assert_eq!(w.tenant(&t, &owner).await["plan"], "pro");

    // 6. Migrated to a dedicated container with its own port, on the node
    // least loaded after placement (pve1: the ballast's 2 cores; pve2: the
    // shared instance's 4), keeping the tenant's database.
    let dedicated = migrated(&w, &t, &owner, "dedicated", 1).await;
    assert_eq!(dedicated["node"], "pve1", "{dedicated}");
    let port = dedicated["host_port"].as_i64().expect("a port of its own");
    assert!((8200..=8299).contains(&port), "{dedicated}");
    assert_ne!(
        port,
        ballast_dep["host_port"].as_i64().unwrap(),
        "ports are unique per node"
    );
    assert_eq!(
        dedicated["database"], shared["database"],
        "the database is kept"
    );
    assert_ne!(dedicated["container_id"], shared["container_id"]);
    assert_eq!(
        w.containers().await.len(),
        3,
        "the shared instance stays for others"
    );

    // 7. Downgrade: scheduled at the period end; the tenant keeps pro meanwhile.
    let down = w
        .post(
            &format!("/v1/tenants/{t}/plan-change"),
            Some(&owner),
            json!({"plan": "basic"}),
            201,
        )
        .await;
    let down = down.get("plan_change").cloned().unwrap_or(down);
    assert_eq!(down["status"], "scheduled", "{down}");
    assert_eq!(down["kind"], "downgrade");
    let sub = w
        .get(&format!("/v1/tenants/{t}/subscription"), &owner)
        .await;
    assert_eq!(sub["scheduled_plan_change"]["id"], down["id"], "{sub}");
    assert_eq!(
        down["effective_at"], sub["current_period_end"],
        "at the period end"
    );
    assert_eq!(w.tenant(&t, &owner).await["plan"], "pro");

    // 8. The sandbox clock past the period end: the processor applies it.
    let clock = w.get("/v1/sandbox/clock", &w.admin).await;
    let to_end = chrono_secs(down["effective_at"].as_str().unwrap())
        - chrono_secs(clock["now"].as_str().unwrap());
    w.advance_clock(to_end + 60).await;

    // 9. Applied and migrated back to the shared instance; the dedicated
    // container is gone and its port free.
    let applied = plan_change(&w, &t, &owner, down["id"].as_str().unwrap()).await;
    assert_eq!(applied["status"], "applied", "{applied}");
    assert_eq!(w.tenant(&t, &owner).await["plan"], "basic");
    let back = migrated(&w, &t, &owner, "shared", 2).await;
    assert_eq!(back["node"], "pve2");
    assert_eq!(back["database"], shared["database"]);
    let retired = w
        .deployments(&t, &owner)
        .await
        .into_iter()
        .filter(|d| d["kind"] == "dedicated")
        .collect::<Vec<_>>();
    assert!(
        retired.iter().all(|d| d["status"] == "retired"),
        "{retired:?}"
    );
    assert_eq!(
        w.containers().await.len(),
        2,
        "the dedicated container is destroyed"
    );
    assert_eq!(
        w.node_instances().await,
        vec![("pve1".to_owned(), 1), ("pve2".to_owned(), 1)]
    );

    // 10. The activity log and the plan-change history tell the story.
    let activity = w
        .get(&format!("/v1/tenants/{t}/activity?limit=200"), &w.admin)
        .await;
    let actions: Vec<&str> = activity["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    for expected in [
        "tenant.signup",
        "subscription.first_period_paid",
        "tenant.provisioned",
        "plan_change.requested",
        "plan_change.applied",
        "tenant.migrated",
        "plan_change.scheduled",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "plan_change.applied")
            .count(),
        2
    );
    assert_eq!(
        actions.iter().filter(|a| **a == "tenant.migrated").count(),
        2
    );
    let history = w
        .get(&format!("/v1/tenants/{t}/plan-changes"), &owner)
        .await;
    let history: Vec<(String, String, String)> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().to_owned(),
                c["to_plan"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        history,
        vec![
            ("upgrade".into(), "pro".into(), "applied".into()),
            ("downgrade".into(), "basic".into(), "applied".into()),
        ]
    );
}

/// Seconds since the epoch of an RFC 3339 time.
pub fn chrono_secs(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .timestamp()
}
