//! `stripe-sim`: the Stripe stand-in on its own, for the local demo.
//!
//! Environment: `STRIPE_SIM_LISTEN` (default `127.0.0.1:12111`),
//! `STRIPE_SIM_PUBLIC_URL` (checkout pages; default `http://LISTEN`),
//! `STRIPE_SIM_WEBHOOK_URL` (e.g. `http://127.0.0.1:8080/v1/webhooks/stripe`)
//! and `STRIPE_SIM_WEBHOOK_SECRET` (`whsec_…`, the same as Tenantry's
//! `TENANTRY_STRIPE_WEBHOOK_SECRETS`); `STRIPE_SIM_STATE`, a file that keeps
//! the account across restarts.

use std::net::TcpListener;

fn main() -> anyhow::Result<()> {
    let listen = std::env::var("STRIPE_SIM_LISTEN").unwrap_or_else(|_| "127.0.0.1:12111".into());
    let public =
        std::env::var("STRIPE_SIM_PUBLIC_URL").unwrap_or_else(|_| format!("http://{listen}"));
    let mut sim = tenantry_stripe_sim::StripeSim::new(&public);
    if let Ok(path) = std::env::var("STRIPE_SIM_STATE") {
        sim = sim.keep_state_in(path.into())?;
    }
    if let Ok(url) = std::env::var("STRIPE_SIM_WEBHOOK_URL") {
        sim.set_webhook(
            &url,
            &std::env::var("STRIPE_SIM_WEBHOOK_SECRET").unwrap_or_default(),
        );
    }
    let listener = TcpListener::bind(&listen)?;
    eprintln!("stripe-sim listening on http://{listen}/ (API under /v1, control under /_sim)");
    actix_web::rt::System::new().block_on(async move { sim.serve(listener)?.await })?;
    Ok(())
}
