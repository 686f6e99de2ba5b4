//! [`StripeSim`], the handle on a running stand-in: control (webhook
//! endpoint, lost webhooks, declined cards and cards asking for
//! authentication, failing requests, the clock), its objects, events and
//! request log, `Stripe-Signature` signing and webhook delivery, and what a
//! customer or time would do — pay a checkout session, let time pass (which
//! renews subscriptions, moves schedules, expires sessions), renew a
//! subscription now, cancel one.

use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::checkout::complete;
use crate::clock::run_until;
use crate::schedules::phase_end;
use crate::state::{Logged, State, Webhook};
use crate::subscriptions::{cancel, cycle};

const FIXTURES: &str = include_str!("../fixtures/objects.json");

/// A running stand-in.
#[derive(Debug, Clone)]
pub struct StripeSim {
    state: Arc<Mutex<State>>,
    http: reqwest::Client,
    gates: Arc<Mutex<Vec<Gate>>>,
}

/// A request held at the door until the test lets it through.
#[derive(Debug, Clone)]
struct Gate {
    method: String,
    path_prefix: String,
    arrived: Arc<tokio::sync::Notify>,
    open: Arc<tokio::sync::Semaphore>,
}

/// The handle on a held request ([`StripeSim::hold`]).
#[derive(Debug)]
pub struct Held {
    arrived: Arc<tokio::sync::Notify>,
    open: Arc<tokio::sync::Semaphore>,
}

impl Held {
    /// Waits until a matching request has arrived (and is held).
    pub async fn arrived(&self) {
        self.arrived.notified().await;
    }

    /// Lets the held request (and any later matching one) through.
    pub fn release(&self) {
        self.open
            .add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
    }
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
            gates: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Holds the next API request whose method is `method` and whose path
    /// starts with `path_prefix` (e.g. `"POST"`, `"/v1/subscription_schedules"`)
    /// until [`Held::release`]: a test makes something happen while a
    /// caller is in the middle of its calls to Stripe.
    pub fn hold(&self, method: &str, path_prefix: &str) -> Held {
        let gate = Gate {
            method: method.to_owned(),
            path_prefix: path_prefix.to_owned(),
            arrived: Arc::new(tokio::sync::Notify::new()),
            open: Arc::new(tokio::sync::Semaphore::new(0)),
        };
        let held = Held {
            arrived: gate.arrived.clone(),
            open: gate.open.clone(),
        };
        if let Ok(mut g) = self.gates.lock() {
            g.push(gate);
        }
        held
    }

    /// Waits at the first gate this request matches, if any (the gate is
    /// used up: later requests pass).
    pub(crate) async fn pass_gates(&self, method: &str, path: &str) {
        let gate = self.gates.lock().ok().and_then(|mut g| {
            let i = g
                .iter()
                .position(|x| x.method == method && path.starts_with(&x.path_prefix))?;
            Some(g.remove(i))
        });
        if let Some(gate) = gate {
            gate.arrived.notify_one();
            let _permit = gate.open.acquire().await;
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

    /// Declines (or accepts again) this customer's card off-session: paying
    /// an invoice answers 402 `card_declined`, a renewal fails
    /// (`invoice.payment_failed`, `past_due`). Checkout pages still pay.
    pub fn decline(&self, customer: &str, declined: bool) {
        self.with(|s| {
            if declined {
                s.declining.insert(customer.to_owned());
            } else {
                s.declining.remove(customer);
            }
        });
    }

    /// Makes this customer's card ask for authentication (3D Secure) on
    /// off-session payments, or stop asking: paying an invoice answers 402
    /// `authentication_required` and leaves it `open`, a renewal leaves its
    /// invoice open and the subscription `past_due`; both emit
    /// `invoice.payment_action_required`.
    pub fn require_action(&self, customer: &str, on: bool) {
        self.with(|s| {
            if on {
                s.requiring_action.insert(customer.to_owned());
            } else {
                s.requiring_action.remove(customer);
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

    /// The stand-in's time, unix seconds (real time plus the clock's offset).
    pub fn now(&self) -> i64 {
        self.with(|s| s.now())
    }

    /// Moves the stand-in's clock forward by `seconds`, then processes, in
    /// time order and each at its own instant, everything that came due:
    /// schedule phase ends, subscription period ends (a renewal invoice for
    /// each period that ended, oldest first, or the end of a subscription
    /// set to cancel at period end), checkout sessions expiring. Delivers
    /// the events, in order, and returns them.
    pub async fn advance(&self, seconds: i64) -> Vec<Value> {
        let events = self.with(|s| {
            s.clock_offset += seconds;
            let target = s.now();
            run_until(s, target)
        });
        self.deliver(&events).await;
        events
    }

    /// Sets the clock to `offset` seconds from real time and processes what
    /// came due, as [`Self::advance`] does (nothing, when it moved back).
    pub async fn set_clock_offset(&self, offset: i64) -> Vec<Value> {
        let events = self.with(|s| {
            s.clock_offset = offset;
            let target = s.now();
            run_until(s, target)
        });
        self.deliver(&events).await;
        events
    }

    /// The clock's offset from real time, seconds.
    pub fn clock_offset(&self) -> i64 {
        self.with(|s| s.clock_offset)
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

    /// The customer pays an open checkout session (an expired or completed
    /// one is left alone): the session completes; in `subscription` mode a
    /// subscription starts now (its `billing_cycle_anchor`) with its first
    /// invoice paid; in `payment` mode a PaymentIntent is made. Emits and
    /// delivers `checkout.session.completed` then `invoice.paid`
    /// (subscription mode), as Stripe does. Returns the events.
    pub async fn complete_checkout(&self, session_id: &str) -> Vec<Value> {
        let events = self.with(|s| complete(s, session_id));
        self.deliver(&events).await;
        events
    }

    /// A billing cycle of a subscription now, without moving the clock: the
    /// end of its current period is processed at once — a schedule phase
    /// ending by then first, then the next calendar period's invoice
    /// (`subscription_cycle`), paid or failed as the customer's card
    /// behaves, the period moving on either way (or, with
    /// `cancel_at_period_end`, the subscription ends). Emits and delivers
    /// `invoice.paid`, `invoice.payment_failed` or
    /// `invoice.payment_action_required` (or `customer.subscription.deleted`).
    pub async fn renew(&self, subscription_id: &str) -> Vec<Value> {
        let events = self.with(|s| {
            let mut events = Vec::new();
            let period_end = s
                .objects
                .get(subscription_id)
                .and_then(|sub| sub["items"]["data"][0]["current_period_end"].as_i64());
            // A phase ending by the period's end changes the price first.
            for _ in 0..100 {
                let Some(sched) = s
                    .objects
                    .get(subscription_id)
                    .and_then(|sub| sub["schedule"].as_str())
                    .and_then(|id| s.objects.get(id))
                    .filter(|o| o["status"] == "active")
                else {
                    break;
                };
                let (id, end) = (
                    sched["id"].as_str().unwrap_or_default().to_owned(),
                    sched["current_phase"]["end_date"].as_i64(),
                );
                match (end, period_end) {
                    (Some(end), Some(p)) if end <= p => events.extend(phase_end(s, &id, end)),
                    _ => break,
                }
            }
            events.extend(cycle(s, subscription_id));
            events
        });
        self.deliver(&events).await;
        events
    }

    /// The subscription is canceled in Stripe now (dashboard, dunning's
    /// end): emits and delivers `customer.subscription.deleted`.
    pub async fn delete_subscription(&self, subscription_id: &str) -> Vec<Value> {
        let events = self.with(|s| {
            if s.objects
                .get(subscription_id)
                .is_none_or(|o| o["status"] == "canceled")
            {
                return Vec::new();
            }
            let now = s.now();
            cancel(s, subscription_id, now)
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
    /// its objects, events, clock, id counter and customers' cards.
    #[tokio::test]
    async fn a_restarted_stand_in_keeps_its_account_in_its_state_file() {
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
        sim.advance(86_400).await;
        sim.decline("cus_declining", true);
        sim.require_action("cus_3ds", true);
        drop(sim);

        let again = StripeSim::new("http://127.0.0.1:1")
            .keep_state_in(file.clone())
            .unwrap();
        assert_eq!(again.object(&id).unwrap()["object"], "customer");
        assert_eq!(again.events().len(), 1);
        assert_eq!(again.with(|s| s.clock_offset), 86_400);
        let next = again.with(|s| s.id("cus"));
        assert_ne!(next, id, "ids continue after the kept ones");
        assert!(again.with(|s| s.declining.contains("cus_declining")));
        assert!(again.with(|s| s.requiring_action.contains("cus_3ds")));
        std::fs::remove_file(&file).ok();
    }
}
