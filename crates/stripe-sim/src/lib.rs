//! A stand-in for the parts of the Stripe API Tenantry calls, stateful
//! enough for the whole payment flow, which delivers signed webhooks the
//! way Stripe does. For tests and the local demo (`make run` without a
//! Stripe key); run it alone with the `stripe-sim` binary.
//!
//! Objects are Stripe's own OpenAPI fixtures (`fixtures/objects.json`, from
//! stripe/openapi's `fixtures3.json`) with our values laid over them, so
//! `async-stripe` parses them as it parses Stripe's. Requests are
//! form-encoded like Stripe's; `Idempotency-Key` replays the first answer
//! (docs.stripe.com/api/idempotent_requests); errors have Stripe's shape.
//!
//! API (`/v1`): `POST /customers`, `POST /products[/{id}]`,
//! `POST /prices[/{id}]`, `POST /checkout/sessions`,
//! `GET|POST /subscriptions/{id}`, `POST /invoiceitems`, `POST /invoices`,
//! `POST /invoices/{id}/finalize`, `POST /invoices/{id}/pay`, `GET /events`.
//!
//! Control (`/_sim`, what a customer or time would do): complete a
//! checkout, renew or delete a subscription, decline a customer's card,
//! fail the next API calls, configure webhook delivery (or lose webhooks),
//! redeliver an event, read the request log and objects.
//!
//! Over HTTP: `GET /pay/{session}` (the checkout page; its button posts
//! `/_sim/checkout/{session}/complete`), `POST /_sim/subscriptions/{id}/renew`,
//! `POST /_sim/subscriptions/{id}/delete`, `GET /_sim/requests`,
//! `POST /_sim/clock {"advance_seconds": N}`,
//! `GET /_sim/events` (every event, oldest first) and
//! `POST /_sim/events/{id}/redeliver` (sends it again, signed anew).

use std::{
    collections::{HashMap, HashSet},
    net::TcpListener,
    sync::{Arc, Mutex},
};

use actix_web::{HttpRequest, HttpResponse, dev::Server, web};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

/// The API version the stand-in's events claim (async-stripe 1.0's).
pub const API_VERSION: &str = "2026-09-30.endive";

const FIXTURES: &str = include_str!("../fixtures/objects.json");

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
struct State {
    base_url: String,
    fixtures: Map<String, Value>,
    objects: HashMap<String, Value>,
    idempotency: HashMap<String, (u16, Value)>,
    events: Vec<Value>,
    next: u64,
    webhook: Webhook,
    declining: HashSet<String>,
    fail_next: Vec<u16>,
    log: Vec<Logged>,
    /// Seconds added to the stand-in's clock (subscription periods).
    clock_offset: i64,
}

impl State {
    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}_sim{:012}", self.next)
    }

    fn now(&self) -> i64 {
        chrono::Utc::now().timestamp() + self.clock_offset
    }

    /// A fixture with `over` laid over it.
    fn object(&self, kind: &str, over: Value) -> Value {
        let mut base = self
            .fixtures
            .get(kind)
            .cloned()
            .unwrap_or_else(|| json!({}));
        merge(&mut base, over);
        base
    }

    fn event(&mut self, kind: &str, object: Value) -> Value {
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

/// Parses a Stripe form body (`a[b][0][c]=v`) into JSON; numeric keys make arrays.
pub fn parse_form(body: &str) -> Value {
    let mut root = Value::Object(Map::new());
    for (k, v) in form_urlencoded_pairs(body) {
        let mut path: Vec<String> = Vec::new();
        let (head, rest) = k.split_once('[').map_or((k.as_str(), ""), |(h, r)| (h, r));
        path.push(head.to_owned());
        for seg in rest.split('[') {
            let seg = seg.trim_end_matches(']');
            if !seg.is_empty() || !rest.is_empty() {
                path.push(seg.to_owned());
            }
        }
        let path: Vec<String> = path.into_iter().filter(|s| !s.is_empty()).collect();
        let mut cur = &mut root;
        for (i, seg) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            if !cur.is_object() {
                *cur = Value::Object(Map::new());
            }
            let Value::Object(m) = cur else { break };
            if last {
                m.insert(seg.clone(), Value::String(v.clone()));
                break;
            }
            cur = m
                .entry(seg.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    arrays(root)
}

fn form_urlencoded_pairs(body: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(body).unwrap_or_default()
}

fn arrays(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            if !m.is_empty() && m.keys().all(|k| k.parse::<usize>().is_ok()) {
                let mut items: Vec<(usize, Value)> = m
                    .into_iter()
                    .map(|(k, v)| (k.parse().unwrap_or(0), arrays(v)))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(m.into_iter().map(|(k, v)| (k, arrays(v))).collect())
            }
        }
        other => other,
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

fn error(status: u16, kind: &str, code: &str, message: &str) -> (u16, Value) {
    (
        status,
        json!({"error": {"type": kind, "code": code, "message": message}}),
    )
}

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

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        match self.state.lock() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
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

    /// Serves the stand-in on `listener` (API, control and checkout pages).
    ///
    /// # Errors
    /// An I/O error binding the server.
    pub fn serve(&self, listener: TcpListener) -> std::io::Result<Server> {
        let sim = self.clone();
        Ok(actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(web::Data::new(sim.clone()))
                .route("/pay/{id}", web::get().to(pay_page))
                .route(
                    "/_sim/checkout/{id}/complete",
                    web::post().to(control_complete),
                )
                .route(
                    "/_sim/subscriptions/{id}/renew",
                    web::post().to(control_renew),
                )
                .route(
                    "/_sim/subscriptions/{id}/delete",
                    web::post().to(control_delete),
                )
                .route("/_sim/requests", web::get().to(control_requests))
                .route("/_sim/events", web::get().to(control_events))
                .route("/_sim/clock", web::post().to(control_clock))
                .route(
                    "/_sim/events/{id}/redeliver",
                    web::post().to(control_redeliver),
                )
                .default_service(web::to(api))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run())
    }
}

fn complete(s: &mut State, session_id: &str) -> Vec<Value> {
    let Some(session) = s.objects.get(session_id).cloned() else {
        return Vec::new();
    };
    if session["status"] == "complete" {
        return Vec::new();
    }
    let now = s.now();
    let customer = session["customer"].as_str().unwrap_or_default().to_owned();
    let meta = session["metadata"].clone();
    let internal = session["_sim"].clone();
    let line = internal["line_items"][0].clone();
    let mut events = Vec::new();
    let mut completed = session.clone();
    completed["status"] = json!("complete");
    completed["payment_status"] = json!("paid");
    if session["mode"] == "subscription" {
        let price_id = line["price"].as_str().unwrap_or_default().to_owned();
        let price = s
            .objects
            .get(&price_id)
            .cloned()
            .unwrap_or_else(|| json!({}));
        let sub_id = s.id("sub");
        let item_id = s.id("si");
        let end = now + period_seconds(&price);
        let sub_meta = internal["subscription_data"]["metadata"].clone();
        let item = s.object("subscription_item", json!({"id": item_id, "price": price, "subscription": sub_id,
            "quantity": 1, "current_period_start": now, "current_period_end": end, "metadata": {}, "created": now}));
        let sub = s.object("subscription", json!({"id": sub_id, "customer": customer, "status": "active",
            "metadata": sub_meta, "items": {"object": "list", "data": [item], "has_more": false, "url": "/v1/subscription_items"},
            "created": now, "start_date": now, "billing_cycle_anchor": now, "cancel_at_period_end": false,
            "latest_invoice": null, "currency": price["currency"]}));
        s.objects.insert(sub_id.clone(), sub);
        completed["subscription"] = json!(sub_id);
        let invoice = subscription_invoice(s, &sub_id, "subscription_create", now, end, true);
        completed["invoice"] = invoice["id"].clone();
        s.objects.insert(session_id.to_owned(), completed.clone());
        events.push(s.event("checkout.session.completed", strip(&completed)));
        events.push(s.event("invoice.paid", invoice));
    } else {
        completed["metadata"] = meta;
        s.objects.insert(session_id.to_owned(), completed.clone());
        events.push(s.event("checkout.session.completed", strip(&completed)));
    }
    events
}

fn period_seconds(price: &Value) -> i64 {
    match price["recurring"]["interval"].as_str() {
        Some("year") => 365 * 86_400,
        _ => 30 * 86_400,
    }
}

/// An object without the stand-in's private fields.
fn strip(v: &Value) -> Value {
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        m.remove("_sim");
    }
    v
}

fn subscription_invoice(
    s: &mut State,
    sub_id: &str,
    reason: &str,
    start: i64,
    end: i64,
    paid: bool,
) -> Value {
    let sub = s.objects.get(sub_id).cloned().unwrap_or_else(|| json!({}));
    let item = sub["items"]["data"][0].clone();
    let price = item["price"].clone();
    let amount = int(&price["unit_amount"]);
    let id = s.id("in");
    let line_id = s.id("il");
    let parent = json!({"type": "subscription_details", "quote_details": null,
        "subscription_details": {"metadata": sub["metadata"], "subscription": sub_id}});
    let line = s.object("line_item", json!({"id": line_id, "invoice": id, "amount": amount, "currency": price["currency"],
        "description": format!("1 × {}", price["nickname"].as_str().unwrap_or("plan")),
        "period": {"start": start, "end": end}, "subscription": sub_id,
        "parent": {"type": "subscription_item_details", "invoice_item_details": null,
                   "subscription_item_details": {"invoice_item": null, "proration": false,
                       "proration_details": {"credited_items": null}, "subscription": sub_id, "subscription_item": item["id"]}}}));
    let declined = s
        .declining
        .contains(sub["customer"].as_str().unwrap_or_default());
    let paid = paid && !declined;
    let invoice = s.object("invoice", json!({"id": id, "customer": sub["customer"], "subscription": sub_id,
        "billing_reason": reason, "currency": price["currency"], "amount_due": amount,
        "amount_paid": if paid { amount } else { 0 }, "amount_remaining": if paid { 0 } else { amount },
        "status": if paid { "paid" } else { "open" }, "attempted": true, "attempt_count": 1,
        "parent": parent, "metadata": {}, "period_start": start, "period_end": start, "created": start,
        "lines": {"object": "list", "data": [line], "has_more": false, "url": format!("/v1/invoices/{id}/lines")}}));
    s.objects.insert(id, invoice.clone());
    invoice
}

fn renew(s: &mut State, sub_id: &str) -> Vec<Value> {
    let Some(sub) = s.objects.get(sub_id).cloned() else {
        return Vec::new();
    };
    let item = sub["items"]["data"][0].clone();
    let start = int(&item["current_period_end"]);
    let end = start + period_seconds(&item["price"]);
    let invoice = subscription_invoice(s, sub_id, "subscription_cycle", start, end, true);
    let paid = invoice["status"] == "paid";
    if let Some(sub) = s.objects.get_mut(sub_id) {
        if paid {
            sub["items"]["data"][0]["current_period_start"] = json!(start);
            sub["items"]["data"][0]["current_period_end"] = json!(end);
        } else {
            sub["status"] = json!("past_due");
        }
    }
    let kind = if paid {
        "invoice.paid"
    } else {
        "invoice.payment_failed"
    };
    vec![s.event(kind, invoice)]
}

async fn pay_page(path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(format!(
        "<!doctype html><title>Stripe stand-in checkout</title><h1>Checkout {id}</h1>\
         <form method=post action=\"/_sim/checkout/{id}/complete\"><button>Pay (test)</button></form>"
    ))
}

async fn control_complete(sim: web::Data<StripeSim>, path: web::Path<String>) -> HttpResponse {
    HttpResponse::Ok().json(sim.complete_checkout(&path).await)
}

async fn control_renew(sim: web::Data<StripeSim>, path: web::Path<String>) -> HttpResponse {
    HttpResponse::Ok().json(sim.renew(&path).await)
}

async fn control_delete(sim: web::Data<StripeSim>, path: web::Path<String>) -> HttpResponse {
    HttpResponse::Ok().json(sim.delete_subscription(&path).await)
}

async fn control_requests(sim: web::Data<StripeSim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.requests())
}

/// Moves the stand-in's clock: `{"advance_seconds": N}` (the demo keeps it
/// in step with Tenantry's sandbox clock). Answers the total offset.
async fn control_clock(sim: web::Data<StripeSim>, body: web::Json<Value>) -> HttpResponse {
    sim.advance(int(&body["advance_seconds"]));
    let offset = sim.with(|s| s.clock_offset);
    HttpResponse::Ok().json(json!({"offset_seconds": offset}))
}

async fn control_events(sim: web::Data<StripeSim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.events())
}

/// Resends a recorded event, as Stripe's dashboard "Resend" (or a retry)
/// does; answers the webhook endpoint's HTTP statuses, 404 for an unknown event.
async fn control_redeliver(sim: web::Data<StripeSim>, path: web::Path<String>) -> HttpResponse {
    let known = sim.with(|s| s.events.iter().any(|e| e["id"] == path.as_str()));
    if !known {
        return HttpResponse::NotFound().json(json!({"error": "no such event"}));
    }
    HttpResponse::Ok().json(sim.redeliver(&path).await)
}

/// Every `/v1` API request: logged, failed on demand, replayed by key, else handled.
async fn api(sim: web::Data<StripeSim>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let method = req.method().as_str().to_owned();
    let path = req.path().to_owned();
    let params = if method == "GET" {
        parse_form(req.query_string())
    } else {
        parse_form(std::str::from_utf8(&body).unwrap_or(""))
    };
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (status, value, events) = sim.with(|s| {
        // Keys count on POST only (docs.stripe.com/api/idempotent_requests).
        let key = key.filter(|_| method == "POST");
        let replay = key.as_ref().and_then(|k| s.idempotency.get(k).cloned());
        s.log.push(Logged {
            method: method.clone(),
            path: path.clone(),
            idempotency_key: key.clone(),
            params: params.clone(),
            replayed: replay.is_some(),
        });
        if !s.fail_next.is_empty() {
            let status = s.fail_next.remove(0);
            let (st, v) = error(
                status,
                "api_error",
                "sim_failure",
                "the stand-in was told to fail this request",
            );
            return (st, v, Vec::new());
        }
        if let Some((st, v)) = replay {
            return (st, v, Vec::new());
        }
        let mut events = Vec::new();
        let (st, v) = handle(s, &method, &path, &params, &mut events);
        // Stripe caches the first answer of a key, errors included (not 5xx).
        if let Some(k) = &key {
            s.idempotency.insert(k.clone(), (st, v.clone()));
        }
        (st, strip(&v), events)
    });
    if !events.is_empty() {
        sim.deliver(&events).await;
    }
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
    )
    .json(value)
}

fn handle(
    s: &mut State,
    method: &str,
    path: &str,
    p: &Value,
    events: &mut Vec<Value>,
) -> (u16, Value) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let now = s.now();
    match (method, parts.as_slice()) {
        ("POST", ["v1", "customers"]) => {
            let id = s.id("cus");
            let o = s.object("customer", json!({"id": id, "email": p["email"], "name": p["name"], "metadata": p["metadata"].clone(), "created": now, "discount": null}));
            s.objects.insert(id, o.clone());
            (200, o)
        }
        ("POST", ["v1", "products"]) => {
            let id = s.id("prod");
            let o = s.object("product", json!({"id": id, "name": p["name"], "metadata": p["metadata"].clone(), "active": true, "created": now, "default_price": null}));
            s.objects.insert(id, o.clone());
            (200, o)
        }
        ("POST", ["v1", "products", id]) | ("POST", ["v1", "prices", id]) => {
            match s.objects.get_mut(*id) {
                Some(o) => {
                    if let Some(n) = p.get("name") {
                        o["name"] = n.clone();
                    }
                    if let Some(a) = p.get("active") {
                        o["active"] = json!(a == "true");
                    }
                    (200, o.clone())
                }
                None => error(
                    404,
                    "invalid_request_error",
                    "resource_missing",
                    &format!("No such object: '{id}'"),
                ),
            }
        }
        ("POST", ["v1", "prices"]) => {
            let id = s.id("price");
            let recurring = if p["recurring"].is_object() {
                json!({"interval": p["recurring"]["interval"], "interval_count": 1, "meter": null, "usage_type": "licensed", "trial_period_days": null})
            } else {
                Value::Null
            };
            let amount = int(&p["unit_amount"]);
            let o = s.object("price", json!({"id": id, "product": p["product"], "currency": p["currency"], "unit_amount": amount,
                "unit_amount_decimal": amount.to_string(), "recurring": recurring, "active": true, "nickname": p["nickname"],
                "type": if recurring.is_null() { "one_time" } else { "recurring" }, "metadata": p["metadata"].clone(), "created": now}));
            s.objects.insert(id, o.clone());
            (200, o)
        }
        ("POST", ["v1", "checkout", "sessions"]) => {
            let id = s.id("cs_test");
            let url = format!("{}/pay/{id}", s.base_url);
            let mode = p["mode"].as_str().unwrap_or("payment").to_owned();
            let mut total = 0;
            for l in p["line_items"].as_array().cloned().unwrap_or_default() {
                let unit = match l["price"].as_str() {
                    Some(pid) => {
                        int(&s.objects.get(pid).cloned().unwrap_or_default()["unit_amount"])
                    }
                    None => int(&l["price_data"]["unit_amount"]),
                };
                total += unit * int(&l["quantity"]).max(1);
            }
            let o = s.object("checkout.session", json!({"id": id, "url": url, "mode": mode, "status": "open", "payment_status": "unpaid",
                "customer": p["customer"], "client_reference_id": p["client_reference_id"], "metadata": p["metadata"].clone(),
                "success_url": p["success_url"], "cancel_url": p["cancel_url"], "amount_total": total, "amount_subtotal": total,
                "currency": p["line_items"][0]["price_data"]["currency"].as_str().unwrap_or("usd"),
                "subscription": null, "invoice": null, "payment_intent": null, "created": now, "expires_at": now + 86_400,
                "_sim": {"line_items": p["line_items"], "subscription_data": p["subscription_data"], "payment_intent_data": p["payment_intent_data"]}}));
            s.objects.insert(id, o.clone());
            (200, o)
        }
        ("GET", ["v1", "subscriptions", id]) => match s.objects.get(*id) {
            Some(o) => (200, o.clone()),
            None => error(
                404,
                "invalid_request_error",
                "resource_missing",
                &format!("No such subscription: '{id}'"),
            ),
        },
        ("POST", ["v1", "subscriptions", id]) => {
            let Some(mut sub) = s.objects.get(*id).cloned() else {
                return error(
                    404,
                    "invalid_request_error",
                    "resource_missing",
                    &format!("No such subscription: '{id}'"),
                );
            };
            if p["proration_behavior"] != "none" {
                return error(
                    400,
                    "invalid_request_error",
                    "parameter_missing",
                    "the stand-in only moves prices with proration_behavior=none",
                );
            }
            if let Some(price_id) = p["items"][0]["price"].as_str() {
                let Some(price) = s.objects.get(price_id).cloned() else {
                    return error(
                        400,
                        "invalid_request_error",
                        "resource_missing",
                        &format!("No such price: '{price_id}'"),
                    );
                };
                sub["items"]["data"][0]["price"] = price;
            }
            s.objects.insert((*id).to_owned(), sub.clone());
            events.push(s.event("customer.subscription.updated", sub.clone()));
            (200, sub)
        }
        ("POST", ["v1", "invoices"]) => {
            let id = s.id("in");
            let o = s.object("invoice", json!({"id": id, "customer": p["customer"], "currency": p["currency"], "status": "draft",
                "description": p["description"], "metadata": p["metadata"].clone(), "billing_reason": "manual", "subscription": null,
                "parent": null, "amount_due": 0, "amount_paid": 0, "amount_remaining": 0, "attempted": false, "attempt_count": 0, "created": now,
                "lines": {"object": "list", "data": [], "has_more": false, "url": format!("/v1/invoices/{id}/lines")}}));
            s.objects.insert(id, o.clone());
            (200, o)
        }
        ("POST", ["v1", "invoiceitems"]) => {
            let inv_id = p["invoice"].as_str().unwrap_or_default().to_owned();
            let Some(mut inv) = s.objects.get(&inv_id).cloned() else {
                return error(
                    400,
                    "invalid_request_error",
                    "resource_missing",
                    "No such invoice",
                );
            };
            let id = s.id("ii");
            let amount = int(&p["amount"]);
            let o = s.object("invoiceitem", json!({"id": id, "invoice": inv_id, "customer": p["customer"], "amount": amount,
                "currency": p["currency"], "description": p["description"], "metadata": p["metadata"].clone(), "date": now}));
            let line_id = s.id("il");
            let line = s.object("line_item", json!({"id": line_id, "invoice": inv_id, "amount": amount, "currency": p["currency"],
                "description": p["description"], "period": {"start": now, "end": now}, "subscription": null,
                "parent": {"type": "invoice_item_details", "subscription_item_details": null,
                           "invoice_item_details": {"invoice_item": id, "proration": false, "proration_details": {"credited_items": null}, "subscription": null}}}));
            if let Some(lines) = inv["lines"]["data"].as_array_mut() {
                lines.push(line);
            }
            inv["amount_due"] = json!(int(&inv["amount_due"]) + amount);
            inv["amount_remaining"] = inv["amount_due"].clone();
            s.objects.insert(inv_id, inv);
            s.objects.insert(id, o.clone());
            (200, o)
        }
        ("POST", ["v1", "invoices", id, "finalize"]) => match s.objects.get_mut(*id) {
            Some(inv) => {
                inv["status"] = json!("open");
                (200, inv.clone())
            }
            None => error(
                404,
                "invalid_request_error",
                "resource_missing",
                "No such invoice",
            ),
        },
        ("POST", ["v1", "invoices", id, "pay"]) => {
            let Some(mut inv) = s.objects.get(*id).cloned() else {
                return error(
                    404,
                    "invalid_request_error",
                    "resource_missing",
                    "No such invoice",
                );
            };
            let customer = inv["customer"].as_str().unwrap_or_default().to_owned();
            inv["attempted"] = json!(true);
            inv["attempt_count"] = json!(int(&inv["attempt_count"]) + 1);
            if s.declining.contains(&customer) {
                s.objects.insert((*id).to_owned(), inv.clone());
                events.push(s.event("invoice.payment_failed", inv));
                return (
                    402,
                    json!({"error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."}}),
                );
            }
            inv["status"] = json!("paid");
            inv["amount_paid"] = inv["amount_due"].clone();
            inv["amount_remaining"] = json!(0);
            s.objects.insert((*id).to_owned(), inv.clone());
            events.push(s.event("invoice.paid", inv.clone()));
            (200, inv)
        }
        ("GET", ["v1", "events"]) => {
            let since = int(&p["created"]["gte"]);
            let limit = usize::try_from(int(&p["limit"]).clamp(1, 100)).unwrap_or(10);
            let mut newest_first: Vec<&Value> = s
                .events
                .iter()
                .rev()
                .filter(|e| int(&e["created"]) >= since)
                .collect();
            if let Some(after) = p["starting_after"].as_str()
                && let Some(i) = newest_first.iter().position(|e| e["id"] == after)
            {
                newest_first = newest_first.split_off(i + 1);
            }
            let has_more = newest_first.len() > limit;
            let data: Vec<Value> = newest_first.into_iter().take(limit).cloned().collect();
            (
                200,
                json!({"object": "list", "data": data, "has_more": has_more, "url": "/v1/events"}),
            )
        }
        _ => error(
            404,
            "invalid_request_error",
            "unrecognized_request",
            &format!("Unrecognized request URL ({method}: {path})."),
        ),
    }
}
