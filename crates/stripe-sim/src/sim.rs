//! [`StripeSim`], the handle on a running stand-in: control (webhook
//! endpoint, lost webhooks, declined cards, failing requests, the clock),
//! its objects, events and request log, `Stripe-Signature` signing and
//! webhook delivery, and what a customer or time would do — pay a checkout
//! session, renew a subscription, cancel one.

use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use crate::state::{Logged, State, Webhook};
use crate::subscriptions::{complete, renew};

const FIXTURES: &str = include_str!("../fixtures/objects.json");

/// A running stand-in.
#[derive(Debug, Clone)]
pub struct StripeSim {
    state: Arc<Mutex<State>>,
    http: reqwest::Client,
}

impl StripeSim {
    /// A stand-in whose checkout pages live under `base_url`.
    pub fn new(base_url: &str) -> Self {
        let fixtures = serde_json::from_str::<Map<String, Value>>(FIXTURES).unwrap_or_default();
        Self {
            state: Arc::new(Mutex::new(State {
                base_url: base_url.trim_end_matches('/').to_owned(),
                fixtures,
                webhook: Webhook {
                    deliver: true,
                    ..Webhook::default()
                },
                ..State::default()
            })),
            http: reqwest::Client::new(),
        }
    }

    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut s = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let out = f(&mut s);
        s.save();
        out
    }

    /// Keeps the account in `path` (JSON, rewritten atomically after every
    /// change), reading what an earlier run left there: a restarted
    /// stand-in still has its customers, prices, sessions and subscriptions.
    ///
    /// # Errors
    /// When the file exists but cannot be read as a stand-in's state.
    pub fn keep_state_in(self, path: std::path::PathBuf) -> std::io::Result<Self> {
        {
            let mut s = match self.state.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            s.load(path)?;
        }
        Ok(self)
    }

    /// Sets where webhooks go and with which secret.
    pub fn set_webhook(&self, url: &str, secret: &str) {
        self.with(|s| {
            s.webhook.url = Some(url.to_owned());
            s.webhook.secret = secret.to_owned();
        });
    }

    /// Stops (`false`) or resumes delivering webhooks: events still happen and are listable.
    pub fn set_delivery(&self, deliver: bool) {
        self.with(|s| s.webhook.deliver = deliver);
    }

    /// Declines (or accepts again) this customer's card.
    pub fn decline(&self, customer: &str, declined: bool) {
        self.with(|s| {
            if declined {
                s.declining.insert(customer.to_owned());
            } else {
                s.declining.remove(customer);
            }
        });
    }

    /// The next API requests answer these statuses (500, 429…), one each.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.with(|s| s.fail_next.extend_from_slice(statuses));
    }

    /// The API requests received.
    pub fn requests(&self) -> Vec<Logged> {
        self.with(|s| s.log.clone())
    }

    /// An object by id.
    pub fn object(&self, id: &str) -> Option<Value> {
        self.with(|s| s.objects.get(id).cloned())
    }

    /// Every object of a kind (`customer`, `price`…).
    pub fn objects(&self, kind: &str) -> Vec<Value> {
        self.with(|s| {
            let mut v: Vec<Value> = s
                .objects
                .values()
                .filter(|o| o["object"] == kind)
                .cloned()
                .collect();
            v.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
            v
        })
    }

    /// Every event, oldest first.
    pub fn events(&self) -> Vec<Value> {
        self.with(|s| s.events.clone())
    }

    /// Moves the stand-in's clock (subscription periods) forward.
    pub fn advance(&self, seconds: i64) {
        self.with(|s| s.clock_offset += seconds);
    }

    /// `Stripe-Signature` for `body` with `secret` at `t`.
    pub fn sign(body: &[u8], secret: &str, t: i64) -> String {
        let sig = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .map(|mut m| {
                m.update(format!("{t}.").as_bytes());
                m.update(body);
                hex::encode(m.finalize().into_bytes())
            })
            .unwrap_or_default();
        format!("t={t},v1={sig}")
    }

    /// Delivers `events` to the webhook endpoint (if delivering), one after
    /// the other, signed at now; returns the HTTP statuses.
    pub async fn deliver(&self, events: &[Value]) -> Vec<u16> {
        let (url, secret, deliver) = self.with(|s| {
            (
                s.webhook.url.clone(),
                s.webhook.secret.clone(),
                s.webhook.deliver,
            )
        });
        let mut statuses = Vec::new();
        let (Some(url), true) = (url, deliver) else {
            return statuses;
        };
        for e in events {
            let body = serde_json::to_vec(e).unwrap_or_default();
            let header = Self::sign(&body, &secret, chrono::Utc::now().timestamp());
            let status = self
                .http
                .post(&url)
                .header("content-type", "application/json")
                .header("stripe-signature", header)
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            statuses.push(status);
        }
        statuses
    }

    /// Redelivers one recorded event (as Stripe does on a retry or a resend).
    pub async fn redeliver(&self, id: &str) -> Vec<u16> {
        let e = self.with(|s| s.events.iter().find(|e| e["id"] == id).cloned());
        match e {
            Some(e) => self.deliver(&[e]).await,
            None => Vec::new(),
        }
    }

    /// The customer pays a checkout: the session completes; in
    /// `subscription` mode a subscription starts (one period) with its
    /// first invoice paid. Emits and delivers `checkout.session.completed`
    /// then `invoice.paid` (subscription mode), as Stripe does. Returns the events.
    pub async fn complete_checkout(&self, session_id: &str) -> Vec<Value> {
        let events = self.with(|s| complete(s, session_id));
        self.deliver(&events).await;
        events
    }

    /// A billing cycle of a subscription: its next period's invoice, paid or
    /// (when the customer's card declines) failed. Emits and delivers
    /// `invoice.paid` or `invoice.payment_failed`.
    pub async fn renew(&self, subscription_id: &str) -> Vec<Value> {
        let events = self.with(|s| renew(s, subscription_id));
        self.deliver(&events).await;
        events
    }

    /// The subscription is canceled in Stripe (dashboard, dunning's end):
    /// emits and delivers `customer.subscription.deleted`.
    pub async fn delete_subscription(&self, subscription_id: &str) -> Vec<Value> {
        let events = self.with(|s| {
            let Some(sub) = s.objects.get_mut(subscription_id) else {
                return Vec::new();
            };
            sub["status"] = json!("canceled");
            let sub = sub.clone();
            vec![s.event("customer.subscription.deleted", sub)]
        });
        self.deliver(&events).await;
        events
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::StripeSim;

    /// A stand-in that keeps its account in a file, restarted, still has
    /// its objects, events, clock and id counter.
    #[test]
    fn a_restarted_stand_in_keeps_its_account_in_its_state_file() {
        let file = std::env::temp_dir().join(format!(
            "stripe-sim-state-{}-{}.json",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let sim = StripeSim::new("http://127.0.0.1:1")
            .keep_state_in(file.clone())
            .unwrap();
        let id = sim.with(|s| {
            let id = s.id("cus");
            s.objects
                .insert(id.clone(), json!({"id": id, "object": "customer"}));
            s.event("customer.created", json!({"id": id}));
            id
        });
        sim.advance(86_400);
        drop(sim);

        let again = StripeSim::new("http://127.0.0.1:1")
            .keep_state_in(file.clone())
            .unwrap();
        assert_eq!(again.object(&id).unwrap()["object"], "customer");
        assert_eq!(again.events().len(), 1);
        assert_eq!(again.with(|s| s.clock_offset), 86_400);
        let next = again.with(|s| s.id("cus"));
        assert_ne!(next, id, "ids continue after the kept ones");
        std::fs::remove_file(&file).ok();
    }
}
