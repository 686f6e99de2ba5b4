#![expect(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

//! End-to-end tests: the main path of the issue "Put it all together",
//! against separate processes (`tenantry serve`, `pve-sim`, `stripe-sim`), a
//! real PostgreSQL and the real Docker engine, through the public API only.
//! One binary with modules (STYLE 13).

mod main_path;
mod restart;
mod webhooks;
