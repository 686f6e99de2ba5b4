//! The stand-in's Stripe account: its objects by id (customers, products,
//! prices, checkout sessions, subscriptions, schedules, invoices, payment
//! intents, charges, refunds, balance transactions…), the idempotency
//! cache, the events, the webhook endpoint, declining cards and cards that
//! ask for authentication, requests told to fail, the request log and the
//! clock; objects made from Stripe's fixtures with our values laid over
//! them, and Stripe's list shape.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};

use crate::API_VERSION;

/// Where and how webhooks go.
#[derive(Debug, Clone, Default)]
pub struct Webhook {
    /// The endpoint (`http://…/v1/webhooks/stripe`).
    pub url: Option<String>,
    /// The signing secret.
    pub secret: String,
    /// `false`: events are recorded (listable) but not delivered — a lost webhook.
    pub deliver: bool,
}

/// One API request as received.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Logged {
    /// `GET` or `POST`.
    pub method: String,
    /// The path, e.g. `/v1/customers`.
    pub path: String,
    /// The `Idempotency-Key` sent.
    pub idempotency_key: Option<String>,
    /// The parsed form body.
    pub params: Value,
    /// Replayed from the idempotency cache (no effect).
    pub replayed: bool,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) base_url: String,
    pub(crate) fixtures: Map<String, Value>,
    pub(crate) objects: HashMap<String, Value>,
    pub(crate) idempotency: HashMap<String, (u16, Value)>,
    /// When each key was first used (the stand-in's clock): Stripe forgets
    /// a key 24 hours later (docs.stripe.com/api/idempotent_requests).
    pub(crate) idempotency_at: HashMap<String, i64>,
    pub(crate) events: Vec<Value>,
    pub(crate) next: u64,
    pub(crate) webhook: Webhook,
    /// Customers whose card declines off-session payments.
    pub(crate) declining: HashSet<String>,
    /// Customers whose card asks for authentication (3D Secure) off-session.
    pub(crate) requiring_action: HashSet<String>,
    pub(crate) fail_next: Vec<u16>,
    pub(crate) log: Vec<Logged>,
    /// Seconds added to the stand-in's clock (subscription periods).
    pub(crate) clock_offset: i64,
    /// The wall-clock time the clock counts from instead of the real one
    /// (tests pin it to a calendar date); unix seconds.
    pub(crate) pinned: Option<i64>,
    /// While the clock processes what came due: the instant being processed
    /// (a period end, a phase end, an expiry), which `now()` answers.
    pub(crate) at: Option<i64>,
    /// Where the account is kept across restarts, when anywhere.
    pub(crate) state_file: Option<std::path::PathBuf>,
    /// What was last written there (a read changes nothing to write).
    pub(crate) saved: Vec<u8>,
}

/// What a restarted stand-in keeps: the account's objects (customer
/// balances and subscription schedules among them), idempotency cache,
/// events, id counter, clock and customers' cards (not the request log or
/// the failures asked for).
#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    objects: HashMap<String, Value>,
    idempotency: HashMap<String, (u16, Value)>,
    #[serde(default)]
    idempotency_at: HashMap<String, i64>,
    events: Vec<Value>,
    next: u64,
    clock_offset: i64,
    #[serde(default)]
    declining: Vec<String>,
    #[serde(default)]
    requiring_action: Vec<String>,
}

impl State {
    /// Reads `path` into the account, when it exists, and keeps the account
    /// there from now on.
    pub(crate) fn load(&mut self, path: std::path::PathBuf) -> std::io::Result<()> {
        match std::fs::read(&path) {
            Ok(text) => {
                let kept: Kept = serde_json::from_slice(&text).map_err(|e| {
                    std::io::Error::other(format!(
                        "{}: not a stripe-sim state: {e}",
                        path.display()
                    ))
                })?;
                self.objects = kept.objects;
                self.idempotency = kept.idempotency;
                self.idempotency_at = kept.idempotency_at;
                self.events = kept.events;
                self.next = kept.next;
                self.clock_offset = kept.clock_offset;
                self.declining = kept.declining.into_iter().collect();
                self.requiring_action = kept.requiring_action.into_iter().collect();
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.state_file = Some(path);
        Ok(())
    }

    /// Writes the account to its file (a temporary file renamed over it,
    /// so a crash leaves the old state or the new one), when it has one and
    /// the account changed since the last write.
    pub(crate) fn save(&mut self) {
        let Some(path) = self.state_file.clone() else {
            return;
        };
        let kept = Kept {
            objects: self.objects.clone(),
            idempotency: self.idempotency.clone(),
            idempotency_at: self.idempotency_at.clone(),
            events: self.events.clone(),
            next: self.next,
            clock_offset: self.clock_offset,
            declining: sorted(&self.declining),
            requiring_action: sorted(&self.requiring_action),
        };
        let json = match serde_json::to_vec(&kept) {
            Ok(json) if json != self.saved => json,
            Ok(_) => return,
            Err(e) => {
                eprintln!("stripe-sim: cannot save its state: {e}");
                return;
            }
        };
        let tmp = path.with_extension("tmp");
        match std::fs::write(&tmp, &json).and_then(|()| std::fs::rename(&tmp, &path)) {
            Ok(()) => self.saved = json,
            Err(e) => eprintln!(
                "stripe-sim: cannot save its state to {}: {e}",
                path.display()
            ),
        }
    }
}

impl State {
    pub(crate) fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}_sim{:012}", self.next)
    }

    /// The stand-in's time, unix seconds: the real (or pinned) time plus
    /// the clock's offset, or the instant being processed.
    pub(crate) fn now(&self) -> i64 {
        self.at.unwrap_or_else(|| self.clock())
    }

    /// The clock itself: the real (or pinned) time plus the offset, even
    /// while what came due earlier is being processed.
    fn clock(&self) -> i64 {
        self.pinned
            .unwrap_or_else(|| chrono::Utc::now().timestamp())
            + self.clock_offset
    }

    /// A fixture with `over` laid over it.
    pub(crate) fn object(&self, kind: &str, over: Value) -> Value {
        let mut base = self
            .fixtures
            .get(kind)
            .cloned()
            .unwrap_or_else(|| json!({}));
        merge(&mut base, over);
        base
    }

    /// Records an event about `object` (without the stand-in's private
    /// fields), created when the stand-in sends it: after a clock move, at
    /// the clock's new time (as a test clock's events are created when it
    /// advances), while the objects carry the instant they came due.
    pub(crate) fn event(&mut self, kind: &str, object: Value) -> Value {
        let object = strip(&object);
        let id = self.id("evt");
        let created = self.clock();
        let e = self.object(
            "event",
            json!({"id": id, "type": kind, "api_version": API_VERSION, "created": created,
                   "data": {"object": object}, "livemode": false, "pending_webhooks": 1,
                   "request": {"id": null, "idempotency_key": null}}),
        );
        // `data.object` replaces the fixture's object wholesale.
        let mut e = e;
        e["data"] = json!({"object": object});
        self.events.push(e.clone());
        e
    }
}

fn sorted(set: &HashSet<String>) -> Vec<String> {
    let mut v: Vec<String> = set.iter().cloned().collect();
    v.sort();
    v
}

/// An object without the stand-in's private fields (`_sim`).
pub(crate) fn strip(v: &Value) -> Value {
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        m.remove("_sim");
    }
    v
}

/// The order objects were made in: the counter in their id.
pub(crate) fn seq(id: &str) -> u64 {
    id.rsplit("_sim")
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Stripe's list of `items` (already filtered), newest first (`created`,
/// then creation order), paged by `limit` (default 10, 1 to 100) and
/// `starting_after` (docs.stripe.com/api/pagination).
pub(crate) fn list(url: &str, mut items: Vec<Value>, p: &Value) -> Value {
    items.sort_by(|a, b| {
        let key = |o: &Value| {
            (
                o["created"].as_i64().unwrap_or(0),
                seq(o["id"].as_str().unwrap_or_default()),
            )
        };
        key(b).cmp(&key(a))
    });
    if let Some(after) = p["starting_after"].as_str()
        && let Some(i) = items.iter().position(|o| o["id"] == after)
    {
        items = items.split_off(i + 1);
    }
    let limit = match crate::form::int(&p["limit"]) {
        0 => 10,
        n => usize::try_from(n.clamp(1, 100)).unwrap_or(10),
    };
    let has_more = items.len() > limit;
    let data: Vec<Value> = items.into_iter().take(limit).map(|o| strip(&o)).collect();
    json!({"object": "list", "data": data, "has_more": has_more, "url": url})
}

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) if v.is_object() && slot.is_object() && k != "metadata" => {
                        merge(slot, v)
                    }
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}
