//! The `/v1` API: each request logged, failed on demand, replayed by its
//! `Idempotency-Key`, else routed to the module that owns the resource —
//! with Stripe's error shape.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::form::parse_form;
use crate::state::{Logged, State, list, strip};
use crate::{
    StripeSim, catalog, checkout, customers, invoices, payments, schedules, subscriptions,
};

/// An answer: HTTP status and JSON body.
pub(crate) type Reply = (u16, Value);

/// Stripe's error body (docs.stripe.com/api/errors); an empty `code` is
/// left out, as Stripe leaves it out of errors that have none.
pub(crate) fn error(status: u16, kind: &str, code: &str, message: &str) -> Reply {
    let mut e = json!({"type": kind, "message": message});
    if !code.is_empty() {
        e["code"] = json!(code);
    }
    (status, json!({ "error": e }))
}

/// A 400 `invalid_request_error` about one parameter (`code` as in
/// [`error`]).
pub(crate) fn invalid(param: &str, code: &str, message: &str) -> Reply {
    let (status, mut body) = error(400, "invalid_request_error", code, message);
    body["error"]["param"] = json!(param);
    (status, body)
}

/// A 404 for an unknown id, in Stripe's words: `No such invoice: 'in_…'`.
pub(crate) fn no_such(what: &str, id: &str) -> Reply {
    error(
        404,
        "invalid_request_error",
        "resource_missing",
        &format!("No such {what}: '{id}'"),
    )
}

/// How long Stripe keeps an idempotency key, seconds.
const IDEMPOTENCY_TTL: i64 = 24 * 3600;

/// Every `/v1` API request over HTTP.
pub(crate) async fn api(
    sim: web::Data<StripeSim>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let method = req.method().as_str().to_owned();
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
    let (status, value) = sim.call(&method, req.path(), params, key).await;
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
    )
    .json(value)
}

impl StripeSim {
    /// One API request (parsed form `params`): logged, failed on demand,
    /// replayed by key, else handled; its events delivered before it answers.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        params: Value,
        key: Option<String>,
    ) -> Reply {
        self.pass_gates(method, path).await;
        let (status, value, events) = self.with(|s| {
            // Keys count on POST only (docs.stripe.com/api/idempotent_requests).
            let key = key.filter(|_| method == "POST");
            // Keys are kept 24 hours (docs.stripe.com/api/idempotent_requests).
            let now = s.now();
            if let Some(k) = &key
                && s.idempotency_at
                    .get(k)
                    .is_some_and(|at| now - at >= IDEMPOTENCY_TTL)
            {
                s.idempotency.remove(k);
                s.idempotency_at.remove(k);
            }
            let replay = key.as_ref().and_then(|k| s.idempotency.get(k).cloned());
            s.log.push(Logged {
                method: method.to_owned(),
                path: path.to_owned(),
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
            let (st, v) = handle(s, method, path, &params, &mut events);
            let v = strip(&v);
            // Stripe caches the first answer of a key, errors included (not 5xx).
            if let Some(k) = &key {
                s.idempotency.insert(k.clone(), (st, v.clone()));
                s.idempotency_at.insert(k.clone(), now);
            }
            (st, v, events)
        });
        if !events.is_empty() {
            self.deliver(&events).await;
        }
        (status, value)
    }
}

/// An object of `kind` by id.
fn get(s: &State, kind: &str, id: &str) -> Reply {
    match s.objects.get(id) {
        Some(o) if o["object"] == kind => (200, strip(o)),
        _ => no_such(kind, id),
    }
}

fn handle(s: &mut State, method: &str, path: &str, p: &Value, events: &mut Vec<Value>) -> Reply {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        ("POST", ["v1", "customers"]) => customers::create(s, p),
        ("GET", ["v1", "customers", id]) => get(s, "customer", id),
        ("POST", ["v1", "customers", id, "balance_transactions"]) => {
            customers::create_balance_transaction(s, id, p)
        }
        ("GET", ["v1", "customers", id, "balance_transactions"]) => {
            customers::balance_transactions(s, id, p)
        }
        ("POST", ["v1", "products"]) => catalog::create_product(s, p),
        ("GET", ["v1", "products", id]) => get(s, "product", id),
        ("POST", ["v1", "products", id]) | ("POST", ["v1", "prices", id]) => {
            catalog::update(s, id, p)
        }
        ("POST", ["v1", "prices"]) => catalog::create_price(s, p),
        ("GET", ["v1", "prices", id]) => get(s, "price", id),
        ("POST", ["v1", "checkout", "sessions"]) => checkout::create(s, p),
        ("GET", ["v1", "checkout", "sessions", id]) => get(s, "checkout.session", id),
        ("POST", ["v1", "checkout", "sessions", id, "expire"]) => {
            checkout::expire_request(s, id, events)
        }
        ("POST", ["v1", "subscriptions"]) => subscriptions::create(s, p, events),
        ("GET", ["v1", "subscriptions", id]) => get(s, "subscription", id),
        ("POST", ["v1", "subscriptions", id]) => subscriptions::update(s, id, p, events),
        ("DELETE", ["v1", "subscriptions", id]) => subscriptions::cancel_now(s, id, events),
        ("POST", ["v1", "subscription_schedules"]) => schedules::create(s, p, events),
        ("GET", ["v1", "subscription_schedules", id]) => get(s, "subscription_schedule", id),
        ("POST", ["v1", "subscription_schedules", id]) => schedules::update(s, id, p, events),
        ("POST", ["v1", "subscription_schedules", id, "release"]) => {
            schedules::release_request(s, id, events)
        }
        ("GET", ["v1", "invoices"]) => invoices::list_request(s, p),
        ("POST", ["v1", "invoices"]) => invoices::create(s, p),
        ("GET", ["v1", "invoices", id]) => get(s, "invoice", id),
        ("POST", ["v1", "invoiceitems"]) => invoices::add_item(s, p),
        ("POST", ["v1", "invoices", id, "finalize"]) => invoices::finalize_request(s, id, events),
        ("POST", ["v1", "invoices", id, "pay"]) => invoices::pay_request(s, id, events),
        ("POST", ["v1", "invoices", id, "void"]) => invoices::void_request(s, id, events),
        ("GET", ["v1", "payment_intents", id]) => payments::get_intent(s, id, p),
        ("GET", ["v1", "charges", id]) => get(s, "charge", id),
        ("POST", ["v1", "refunds"]) => payments::refund(s, p, events),
        ("GET", ["v1", "refunds"]) => payments::list_refunds(s, p),
        ("GET", ["v1", "refunds", id]) => get(s, "refund", id),
        ("GET", ["v1", "events"]) => {
            let since = crate::form::int(&p["created"]["gte"]);
            let events: Vec<Value> = s
                .events
                .iter()
                .filter(|e| crate::form::int(&e["created"]) >= since)
                .cloned()
                .collect();
            (200, list("/v1/events", events, p))
        }
        _ => error(
            404,
            "invalid_request_error",
            "unrecognized_request",
            &format!("Unrecognized request URL ({method}: {path})."),
        ),
    }
}
