//! Signup payments by webhook: provisioning starts exactly once whatever the
//! order and duplication of the events, and only once a delayed payment
//! (a SEPA debit) succeeds.

use serde_json::{Value, json};

use super::{SECRET, invoice, shaped, world};

#[tokio::test]
async fn signup_paid_starts_provisioning_once_in_any_order() {
    let w = world().await;
    let now = chrono::Utc::now().timestamp();
    // Three tenants get the same two events (checkout completed, first invoice paid), duplicated, in different orders.
    let mut tenants = Vec::new();
    for (i, order) in [[0, 1, 0, 1], [1, 0, 1, 1], [1, 1, 0, 0]]
        .iter()
        .enumerate()
    {
        let (tenant, sub, _) = w.signup(&format!("shuffle-{i}"), "basic").await;
        let ssub = format!("sub_s{i}");
        let events = [
            w.for_tenant(shaped("checkout.session.completed"), tenant, sub, &ssub)
                .await,
            w.for_tenant(
                invoice(
                    "invoice.paid",
                    "subscription_create",
                    now,
                    now + 30 * 86_400,
                ),
                tenant,
                sub,
                &ssub,
            )
            .await,
        ];
        for &k in order {
            w.deliver(&events[k]).await;
        }
        tenants.push(tenant);
    }
    for t in tenants {
        assert_eq!(w.tenant_status(t).await, "provisioning");
        assert_eq!(w.provision_jobs(t).await, 1, "exactly one provisioning job");
        assert_eq!(
            w.one(&format!(
                "SELECT status FROM subscriptions WHERE tenant_id = '{t}'"
            ))
            .await,
            "incomplete",
            "active only once provisioned"
        );
        assert_eq!(w.one(&format!("SELECT provider || ' ' || provider_subscription_id || ' ' || saved_payment_method FROM subscriptions WHERE tenant_id = '{t}'")).await.split(' ').next(), Some("stripe"));
        assert_eq!(w.one(&format!("SELECT extract(epoch FROM current_period_end)::bigint FROM subscriptions WHERE tenant_id = '{t}'")).await, (now + 30 * 86_400).to_string());
        assert_eq!(w.count(&format!("SELECT 1 FROM activity_log WHERE tenant_id = '{t}' AND action = 'tenant.status_changed'")).await, 1);
    }
}

#[tokio::test]
async fn a_delayed_payment_starts_provisioning_only_when_it_succeeds() {
    let w = world().await;
    let (tenant, sub, _) = w.signup("sepa", "basic").await;
    let base = w
        .for_tenant(
            shaped("checkout.session.completed"),
            tenant,
            sub,
            "sub_sepa",
        )
        .await;
    let session = |kind: &str, payment_status: &str| {
        let mut e = base.clone();
        e["id"] = json!(format!("evt_{}", uuid::Uuid::now_v7().simple()));
        e["type"] = json!(kind);
        e["data"]["object"]["payment_status"] = json!(payment_status);
        e
    };
    // Completed with a SEPA debit still on its way: nothing to fulfil yet.
    let completed = session("checkout.session.completed", "unpaid");
    assert_eq!(w.deliver(&completed).await["outcome"], "ignored");
    assert_eq!(w.tenant_status(tenant).await, "pending_payment");
    assert_eq!(w.provision_jobs(tenant).await, 0);
    // A failed debit is recorded and changes nothing either.
    let failed = session("checkout.session.async_payment_failed", "unpaid");
    assert_eq!(w.deliver(&failed).await["outcome"], "ignored");
    assert_eq!(w.tenant_status(tenant).await, "pending_payment");

    // The money arrives: the same session, now paid.
    let succeeded = session("checkout.session.async_payment_succeeded", "paid");
    assert_eq!(w.deliver(&succeeded).await["outcome"], "applied");
    assert_eq!(w.tenant_status(tenant).await, "provisioning");
    assert_eq!(w.provision_jobs(tenant).await, 1);
    let res = w
        .post_event(&succeeded, SECRET, chrono::Utc::now().timestamp())
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["outcome"], "duplicate");
    assert_eq!(w.provision_jobs(tenant).await, 1);
    assert_eq!(
        w.one(&format!(
            "SELECT provider_subscription_id FROM subscriptions WHERE id = '{sub}'"
        ))
        .await,
        "sub_sepa"
    );
}
