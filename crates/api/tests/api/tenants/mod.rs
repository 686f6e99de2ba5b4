//! Tenants: signup, operator API, lifecycle, members, subscription,
//! idempotency, ETags and pagination — what the topic files share: signing
//! up and counting rows.

mod idempotency;
mod lifecycle;
mod members;
mod operators;
mod signup;

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp};

fn signup_body(slug: &str, email: &str, product: &str, plan: &str) -> Value {
    json!({"company_name": format!("{slug} Inc"), "slug": slug, "email": email, "password": PASSWORD, "product": product, "plan": plan})
}

async fn signup(app: &TestApp, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/signup"))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn count(app: &TestApp, table: &str) -> i64 {
    app.sql()
        .await
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}
