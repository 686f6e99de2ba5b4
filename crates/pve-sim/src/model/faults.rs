//! The faults a test can inject: a node's next task failing or timing out
//! on its lock, an unreachable node, lock contention on a vmid, dropped or
//! delayed requests, a CT that takes the vmid `nextid` just answered, and
//! the IPv4 address a CT's `net0` shows.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use super::Cidr4;

#[derive(Debug)]
pub(crate) struct DropRule {
    pub method: String,
    pub suffix: String,
}

#[derive(Debug)]
pub(crate) struct FaultState {
    pub task_duration: Duration,
    pub fail_next: HashMap<String, String>,
    pub timeout_next: BTreeSet<String>,
    pub unreachable: BTreeSet<String>,
    pub contention: HashMap<u32, u32>,
    pub drops: Vec<DropRule>,
    pub delays: Vec<(DropRule, std::time::Duration)>,
    pub take_next_id: bool,
    /// `net0`'s IPv4 address by vmid, chosen by a test (`None`: none).
    pub addresses: HashMap<u32, Option<Cidr4>>,
    /// Root disk bytes in use by vmid, chosen by a test (else a tenth of
    /// the disk while running).
    pub disk_used: HashMap<u32, u64>,
    /// CTs whose simulated app refuses connections.
    pub apps_down: BTreeSet<u32>,
}

impl FaultState {
    pub fn new(task_duration: Duration) -> Self {
        FaultState {
            task_duration,
            fail_next: HashMap::new(),
            timeout_next: BTreeSet::new(),
            unreachable: BTreeSet::new(),
            contention: HashMap::new(),
            drops: Vec::new(),
            delays: Vec::new(),
            take_next_id: false,
            addresses: HashMap::new(),
            disk_used: HashMap::new(),
            apps_down: BTreeSet::new(),
        }
    }
}
