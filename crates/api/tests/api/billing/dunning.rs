//! Dunning with a scripted gateway: a declined renewal makes the
//! subscription past due, then suspends, recovers on a paid retry, or ends
//! in termination with a final backup.

use serde_json::{Value, json};
use tenantry_billing::{Clock, EngineSettings, ScriptedGateway, engine};

use super::{owner_of, set_saved_method};
use crate::helpers::spawn_app;

#[tokio::test]
async fn dunning_suspends_recovers_and_terminates() {
    let app = spawn_app().await;
    let pool = app.pool();
    let gateway = ScriptedGateway::default();
    let settings = EngineSettings {
        sandbox: true,
        ..EngineSettings::default()
    };
    let clock = Clock::new(true);
    let (late, _) = owner_of(&app, "late-payer", "odoo", "basic").await;
    let (gone, gone_owner) = owner_of(&app, "gone", "odoo", "pro").await;
    for t in [late, gone] {
        set_saved_method(&app, t).await;
        gateway.decline(t, true);
    }
    // `gone` has a downgrade scheduled, which termination must cancel (Lago PR #345).
    assert_eq!(
        app.post_as(
            &format!("/v1/tenants/{gone}/plan-change"),
            &gone_owner.access_token,
            json!({"plan": "basic"})
        )
        .await
        .status(),
        201
    );
    let sql = app.sql().await;
    // `gone`'s change is due only later, so its renewal is what fails.
    sql.execute("UPDATE plan_changes SET effective_at = effective_at + interval '60 days' WHERE tenant_id = $1", &[&gone]).await.unwrap();
    let status = async |t: uuid::Uuid| -> (String, String) {
        let row = sql.query_one("SELECT t.status, s.status FROM tenants t JOIN subscriptions s ON s.tenant_id = t.id WHERE t.id = $1", &[&t]).await.unwrap();
        (row.get(0), row.get(1))
    };
    // Move the clock directly (the endpoint would also run the app's own
    // processor with the sandbox gateway, which never declines).
    let advance = async |days: i64| {
        let mut conn = pool.get().await.unwrap();
        let offset = tenantry_store::billing::sandbox_offset(&mut conn)
            .await
            .unwrap();
        tenantry_store::billing::set_sandbox_offset(&mut conn, offset + days * 86_400)
            .await
            .unwrap();
        drop(conn);
        engine::process_due(&pool, &gateway, &clock, &settings)
            .await
            .unwrap()
    };

    // Period ends: the renewal is declined → past due, still active.
    let r = advance(31).await;
    assert_eq!(r.declined, 2);
    assert_eq!(status(late).await, ("active".into(), "past_due".into()));
    // Past the 3-day grace → suspended, with a job to stop the instance.
    advance(4).await;
    assert_eq!(status(late).await, ("suspended".into(), "past_due".into()));
    let suspend_jobs: i64 = sql
        .query_one(
            "SELECT count(*) FROM jobs WHERE tenant_id = $1 AND kind = 'suspend'",
            &[&late],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(suspend_jobs, 1);
    // The card works again: the next retry pays and un-suspends (Paymenter #854).
    gateway.decline(late, false);
    let r = advance(1).await;
    assert_eq!(r.recovered, 1);
    assert_eq!(status(late).await, ("active".into(), "active".into()));
    let resume_jobs: i64 = sql
        .query_one(
            "SELECT count(*) FROM jobs WHERE tenant_id = $1 AND kind = 'resume'",
            &[&late],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(resume_jobs, 1);
    let paid: i64 = sql
        .query_one(
            "SELECT count(*) FROM charges WHERE tenant_id = $1 AND status = 'paid'",
            &[&late],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        paid, 1,
        "one charge for the period, paid on retry, never twice"
    );

    // `gone` never pays: after 14 days → expired, deprovisioning with a final backup.
    advance(10).await;
    assert_eq!(
        status(gone).await,
        ("deprovisioning".into(), "expired".into())
    );
    let payload: Value = sql
        .query_one(
            "SELECT payload FROM jobs WHERE tenant_id = $1 AND kind = 'deprovision'",
            &[&gone],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(payload["final_backup"], true);
    let change: String = sql
        .query_one(
            "SELECT status FROM plan_changes WHERE tenant_id = $1",
            &[&gone],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(change, "canceled");
}
