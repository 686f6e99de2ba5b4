//! Provisioning: the `Driver` trait with one module per implementation
//! (Proxmox VE LXC, Docker), placement, port allocation and the reconciler.
//!
//! Depends on `store` and `domain`, never on `billing`: an applied plan
//! change reaches provisioning as a job in `store` (see DESIGN.md, "Layout").
//! The provisioning issues fill this crate in.
