#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

//! Integration tests of the PVE simulator, through HTTP as a driver sees it.

mod bodies;
mod envelope;
mod errors;
mod faults;
mod ha;
mod helpers;
mod interfaces;
mod lifecycle;
mod validation;
