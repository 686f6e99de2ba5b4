//! The stand-in's Stripe account: its objects by id (customers, products,
//! prices, checkout sessions, subscriptions, invoices…), the idempotency
//! cache, the events, the webhook endpoint, declining cards, requests told
//! to fail, the request log and the clock; and objects made from Stripe's
//! fixtures with our values laid over them.

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
    pub(crate) events: Vec<Value>,
    pub(crate) next: u64,
    pub(crate) webhook: Webhook,
    pub(crate) declining: HashSet<String>,
    pub(crate) fail_next: Vec<u16>,
    pub(crate) log: Vec<Logged>,
    /// Seconds added to the stand-in's clock (subscription periods).
    pub(crate) clock_offset: i64,
    /// Where the account is kept across restarts, when anywhere.
    pub(crate) state_file: Option<std::path::PathBuf>,
    /// What was last written there (a read changes nothing to write).
    pub(crate) saved: Vec<u8>,
}

/// What a restarted stand-in keeps: the account's objects, idempotency
/// cache, events, id counter and clock (not the request log or the faults).
#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    objects: HashMap<String, Value>,
    idempotency: HashMap<String, (u16, Value)>,
    events: Vec<Value>,
    next: u64,
    clock_offset: i64,
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
                self.events = kept.events;
                self.next = kept.next;
                self.clock_offset = kept.clock_offset;
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
            events: self.events.clone(),
            next: self.next,
            clock_offset: self.clock_offset,
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

    pub(crate) fn now(&self) -> i64 {
        chrono::Utc::now().timestamp() + self.clock_offset
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

    pub(crate) fn event(&mut self, kind: &str, object: Value) -> Value {
        let id = self.id("evt");
        let created = self.now();
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
