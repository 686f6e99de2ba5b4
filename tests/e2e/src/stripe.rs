//! The customer's and Stripe's side, through the stand-in: signing up to
//! its checkout, paying on the checkout page as a customer does, the
//! events it sent and their redelivery, and both sandbox clocks moved together.

use serde_json::{Value, json};

use crate::{PASSWORD, World};

impl World {
    /// Signs `slug` up for odoo / `plan` (paid): (tenant id, owner token, checkout URL).
    pub async fn signup(&self, slug: &str, plan: &str) -> (String, String, String) {
        let email = format!("owner@{slug}.e2e.test");
        let body = self
            .post(
                "/v1/signup",
                None,
                json!({"company_name": format!("{slug} Ltd"), "slug": slug, "email": email,
                       "password": PASSWORD, "product": "odoo", "plan": plan}),
                201,
            )
            .await;
        assert_eq!(body["tenant"]["status"], "pending_payment", "{body}");
        let checkout = body["checkout_url"].as_str().unwrap().to_owned();
        assert!(
            checkout.starts_with(&self.stripe),
            "checkout at the stand-in: {checkout}"
        );
        let owner = self.login(&email).await;
        (
            body["tenant"]["id"].as_str().unwrap().to_owned(),
            owner,
            checkout,
        )
    }

    /// Pays a checkout as a customer does: opens the page, presses its button.
    /// Returns the events the stand-in delivered.
    pub async fn pay(&self, checkout_url: &str) -> Vec<Value> {
        let page = self
            .http
            .get(checkout_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let action = page
            .split("action=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("no payment form: {page}"));
        let events: Value = self
            .http
            .post(format!("{}{action}", self.stripe))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        events.as_array().unwrap().clone()
    }

    /// Every event the stand-in sent, oldest first.
    pub async fn stripe_events(&self) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/_sim/events", self.stripe))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.as_array().unwrap().clone()
    }

    /// Delivers a recorded event again (Stripe's retry or "Resend"): the
    /// webhook endpoint's statuses.
    pub async fn redeliver(&self, event_id: &str) -> Vec<u16> {
        self.http
            .post(format!("{}/_sim/events/{event_id}/redeliver", self.stripe))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Moves Tenantry's sandbox clock and the stand-in's by `seconds`.
    pub async fn advance_clock(&self, seconds: i64) -> Value {
        let moved = self
            .post(
                "/v1/sandbox/clock",
                Some(&self.admin),
                json!({"advance_seconds": seconds}),
                200,
            )
            .await;
        let res = self
            .http
            .post(format!("{}/_sim/clock", self.stripe))
            .json(&json!({"advance_seconds": seconds}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        moved
    }
}
