//! Placement cost: microseconds per `place` decision over a fleet of 1,000
//! nodes (a benchmark, not a test; figures go to `bench/README.md`).
//!
//! ```sh
//! make bench-placement          # = cargo bench -p tenantry-domain --bench placement
//! ```
//!
//! Three fleets, each of 1,000 nodes: `mixed` (both drivers, a fifth not
//! online, uses spread 0–100 %), `uniform` (identical empty nodes: every
//! comparison goes to the exact sum tie-break), and `full` (no room anywhere:
//! the error path that names the scarcest resource). Deterministic input (a
//! fixed-seed xorshift), so runs compare.

use std::hint::black_box;
use std::time::{Duration, Instant};

use tenantry_domain::{
    Allocation, DriverKind, NodeCapacity, NodeLoad, NodeStatus, Resources, place,
};

const NODES: usize = 1_000;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn mixed() -> Vec<NodeLoad<u32>> {
    let mut rng = XorShift(0x5eed_1234_abcd_ef01);
    (0..NODES)
        .map(|i| {
            let cpu = 8 + 8 * rng.below(8) as u32;
            let mem = 16_384 * (1 + rng.below(16));
            let disk = 500 * (1 + rng.below(8));
            let max = 20 + rng.below(80) as u32;
            let pct = rng.below(101);
            NodeLoad {
                id: i as u32,
                driver: if rng.below(4) == 0 {
                    DriverKind::Docker
                } else {
                    DriverKind::Proxmox
                },
                status: match rng.below(10) {
                    0 => NodeStatus::Offline,
                    1 => NodeStatus::Draining,
                    _ => NodeStatus::Online,
                },
                capacity: NodeCapacity {
                    cpu_cores: cpu,
                    memory_mib: mem,
                    storage_gib: disk,
                    max_instances: max,
                },
                allocated: Allocation {
                    cpu_cores: u64::from(cpu) * pct / 100,
                    memory_mib: mem * rng.below(101) / 100,
                    storage_gib: disk * rng.below(101) / 100,
                    instances: (u64::from(max) * rng.below(101) / 100) as u32,
                },
            }
        })
        .collect()
}

fn uniform() -> Vec<NodeLoad<u32>> {
    (0..NODES)
        .map(|i| NodeLoad {
            id: i as u32,
            driver: DriverKind::Proxmox,
            status: NodeStatus::Online,
            capacity: NodeCapacity {
                cpu_cores: 32,
                memory_mib: 131_072,
                storage_gib: 2_000,
                max_instances: 50,
            },
            allocated: Allocation::default(),
        })
        .collect()
}

fn full() -> Vec<NodeLoad<u32>> {
    let mut nodes = uniform();
    for n in &mut nodes {
        n.allocated.memory_mib = 130_000;
    }
    nodes
}

/// Runs `place` until `budget` has passed (at least 100 times); returns
/// (decisions, µs per decision).
fn measure(nodes: &[NodeLoad<u32>], need: &Resources, budget: Duration) -> (u64, f64) {
    // Warm-up.
    for _ in 0..100 {
        let _ = black_box(place(
            black_box(nodes),
            DriverKind::Proxmox,
            black_box(need),
        ));
    }
    let start = Instant::now();
    let mut n = 0u64;
    while n < 100 || start.elapsed() < budget {
        for _ in 0..100 {
            let _ = black_box(place(
                black_box(nodes),
                DriverKind::Proxmox,
                black_box(need),
            ));
        }
        n += 100;
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    (n, us)
}

fn main() {
    let need = Resources {
        cpu_cores: 2,
        memory_mib: 2_048,
        storage_gib: 20,
    };
    let budget = Duration::from_secs(2);
    println!(
        "| fleet (1,000 nodes) | outcome | decisions | µs/decision median of 5 | µs/decision best of 5 |"
    );
    println!("|---|---|---|---|---|");
    for (name, nodes) in [("mixed", mixed()), ("uniform", uniform()), ("full", full())] {
        let outcome = match place(&nodes, DriverKind::Proxmox, &need) {
            Ok(n) => format!("node {}", n.id),
            Err(e) => format!("error: {e}"),
        };
        let mut runs: Vec<(u64, f64)> =
            (0..5).map(|_| measure(&nodes, &need, budget / 5)).collect();
        runs.sort_by(|a, b| a.1.total_cmp(&b.1));
        let count: u64 = runs.iter().map(|r| r.0).sum();
        let (median, best) = (runs[2].1, runs[0].1);
        println!("| {name} | {outcome} | {count} | {median:.2} | {best:.2} |");
    }
}
