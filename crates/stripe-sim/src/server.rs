//! The stand-in over HTTP: the `/v1` API, the `/_sim` control endpoints
//! (complete a checkout session, renew or delete a subscription, a
//! customer's card, the request log, events, redelivery, the clock) and the
//! checkout page.

use std::net::TcpListener;

use actix_web::{HttpResponse, dev::Server, web};
use serde_json::{Value, json};

use crate::StripeSim;
use crate::api::api;
use crate::form::int;

impl StripeSim {
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
                .route("/_sim/customers/{id}/card", web::post().to(control_card))
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

async fn pay_page(sim: web::Data<StripeSim>, path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    let session = sim
        .with(|s| s.objects.get(&id).cloned())
        .unwrap_or_default();
    let cancel = session["cancel_url"]
        .as_str()
        .map(|u| format!("<p><a href=\"{u}\">Cancel</a></p>"))
        .unwrap_or_default();
    let body = if session["status"] == "open" {
        format!(
            "<form method=post action=\"/_sim/checkout/{id}/complete\"><button>Pay (test)</button></form>{cancel}"
        )
    } else {
        format!(
            "<p>This checkout session is {}.</p>",
            session["status"].as_str().unwrap_or("unknown")
        )
    };
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><title>Stripe stand-in checkout</title><h1>Checkout {id}</h1>{body}"
        ))
}

/// Completes a checkout session. A browser's form post (what the page's
/// button sends) is sent on to the session's `success_url`, with
/// `{CHECKOUT_SESSION_ID}` filled in, as Stripe redirects after paying; a
/// script's post gets the events it caused.
async fn control_complete(
    sim: web::Data<StripeSim>,
    path: web::Path<String>,
    req: actix_web::HttpRequest,
) -> HttpResponse {
    let events = sim.complete_checkout(&path).await;
    let from_browser = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let success = sim
        .with(|s| {
            s.objects
                .get(path.as_str())
                .filter(|o| o["status"] == "complete")
                .map(|o| o["success_url"].clone())
        })
        .and_then(|u| u.as_str().map(str::to_owned));
    match success {
        Some(url) if from_browser => HttpResponse::SeeOther()
            .insert_header((
                actix_web::http::header::LOCATION,
                url.replace("{CHECKOUT_SESSION_ID}", &path),
            ))
            .finish(),
        _ => HttpResponse::Ok().json(events),
    }
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

/// Moves the stand-in's clock: `{"advance_seconds": N}` forward, or
/// `{"offset_seconds": N}` to that offset from real time (the demo keeps it
/// in step with Tenantry's sandbox clock, also across restarts), and
/// processes what came due (renewals, schedule phases, expiries), delivering
/// its events. Answers `{"offset_seconds", "now", "events"}`.
async fn control_clock(sim: web::Data<StripeSim>, body: web::Json<Value>) -> HttpResponse {
    let events = if let Some(offset) = body.get("offset_seconds") {
        sim.set_clock_offset(int(offset)).await
    } else {
        sim.advance(int(&body["advance_seconds"])).await
    };
    HttpResponse::Ok()
        .json(json!({"offset_seconds": sim.clock_offset(), "now": sim.now(), "events": events}))
}

/// A customer's card: `{"declined": bool, "requires_action": bool}` (either
/// may be left out). Answers the card as it now is.
async fn control_card(
    sim: web::Data<StripeSim>,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> HttpResponse {
    if let Some(d) = body["declined"].as_bool() {
        sim.decline(&path, d);
    }
    if let Some(a) = body["requires_action"].as_bool() {
        sim.require_action(&path, a);
    }
    let (declined, requires_action) = sim.with(|s| {
        (
            s.declining.contains(path.as_str()),
            s.requiring_action.contains(path.as_str()),
        )
    });
    HttpResponse::Ok().json(
        json!({"customer": path.as_str(), "declined": declined, "requires_action": requires_action}),
    )
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
