use tenantry_store::{PageRequest, catalog};
use tenantry_test_db::TestDatabase;

#[tokio::test]
async fn loading_the_demo_catalog_twice_changes_nothing_the_second_time() {
    let db = TestDatabase::new().await;
    let pool = crate::pool(db.url());
    let mut conn = pool.get().await.unwrap();
    let demo = crate::demo_catalog();
    let plan_count: usize = demo.iter().map(|p| p.plans.len()).sum();

    let first = catalog::load_catalog(&mut conn, &demo).await.unwrap();
    assert_eq!(first.products_created, demo.len());
    assert_eq!(first.plans_created, plan_count);
    assert_eq!(first.unchanged, 0);

    let page = PageRequest {
        after: None,
        limit: 200,
    };
    let before = catalog::list_active_plans(&mut conn, None, page)
        .await
        .unwrap();
    let second = catalog::load_catalog(&mut conn, &demo).await.unwrap();
    assert_eq!(
        second.products_created
            + second.products_updated
            + second.plans_created
            + second.plans_updated,
        0
    );
    assert_eq!(second.unchanged, demo.len() + plan_count);
    let after = catalog::list_active_plans(&mut conn, None, page)
        .await
        .unwrap();
    assert_eq!(before, after, "no row rewritten, updated_at unchanged");
}

#[tokio::test]
async fn a_changed_price_updates_only_that_plan() {
    let db = TestDatabase::new().await;
    let pool = crate::pool(db.url());
    let mut conn = pool.get().await.unwrap();
    let mut demo = crate::demo_catalog();
    catalog::load_catalog(&mut conn, &demo).await.unwrap();

    let usd = tenantry_domain::Currency::parse("USD").unwrap();
    demo[0].plans[0].price = tenantry_domain::Money::from_minor_units(3100, usd);
    let report = catalog::load_catalog(&mut conn, &demo).await.unwrap();
    assert_eq!(report.plans_updated, 1);
    assert_eq!(report.products_updated, 0);

    let odoo = catalog::find_active_product(&mut conn, "odoo")
        .await
        .unwrap();
    let plans = catalog::active_plans_of(&mut conn, odoo.id).await.unwrap();
    let basic = plans.iter().find(|p| p.code == "basic").unwrap();
    assert_eq!(basic.price, rust_decimal_macros::dec!(31.00));
    assert!(basic.updated_at > basic.created_at);
}

#[tokio::test]
async fn pages_cover_every_plan_exactly_once() {
    let db = TestDatabase::new().await;
    let pool = crate::pool(db.url());
    let mut conn = pool.get().await.unwrap();
    let demo = crate::demo_catalog();
    catalog::load_catalog(&mut conn, &demo).await.unwrap();

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = catalog::list_active_plans(
            &mut conn,
            Some("inventory"),
            PageRequest { after, limit: 3 },
        )
        .await
        .unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|p| p.plan.code.clone()));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = demo[1].plans.iter().map(|p| p.code.to_string()).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn unknown_product_is_not_found() {
    let db = TestDatabase::new().await;
    let pool = crate::pool(db.url());
    let mut conn = pool.get().await.unwrap();
    assert!(matches!(
        catalog::find_active_product(&mut conn, "nope").await,
        Err(tenantry_store::StoreError::NotFound)
    ));
}
