//! Placement: which node a new instance goes to.
//!
//! The rule (issue "Provisioning II"): among the **online** nodes (not
//! `offline`, `maintenance` or `draining`) of the product's driver that have
//! room for the plan's cpu, memory and storage (capacity minus what is already
//! allocated) and for one more instance, pick the one that is **least loaded
//! after placement**.
//!
//! A node's load after placement is the highest of its four utilisation
//! ratios — cpu cores, memory, storage, instances — once the new instance is
//! added: `(allocated + need) / capacity`. Ties go to the lower *sum* of the
//! four ratios (the node that is emptier overall), then to the node that comes
//! first in the input. Every comparison is exact rational arithmetic (cross
//! multiplication, no floats), so the same input always gives the same node.
//!
//! The result depends on the input order only among nodes whose load and sum
//! are both equal; callers that want the same answer every time pass nodes in
//! a stable order (the store lists them by name).

use std::cmp::Ordering;
use std::fmt;

use crate::{DriverKind, NodeCapacity, NodeStatus, Resources};

string_enum! {
    /// A resource placement accounts for, named as in [`NodeCapacity`].
    Resource {
        /// CPU cores.
        CpuCores => "cpu_cores",
        /// Memory, MiB.
        MemoryMib => "memory_mib",
        /// Storage, GiB.
        StorageGib => "storage_gib",
        /// Instance slots (`max_instances`).
        Instances => "instances",
    }
}

/// What is already reserved on a node: the sum of its instances' plan
/// resources, and how many instances it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allocation {
    /// CPU cores reserved.
    pub cpu_cores: u64,
    /// Memory reserved, MiB.
    pub memory_mib: u64,
    /// Storage reserved, GiB.
    pub storage_gib: u64,
    /// Instances on the node.
    pub instances: u32,
}

/// A node as placement sees it: who it is, what it runs, whether it takes new
/// instances, what it offers and what is already taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLoad<Id> {
    /// The caller's handle for the node (a node id, a name…).
    pub id: Id,
    /// The driver the node runs instances with.
    pub driver: DriverKind,
    /// Its status; only [`NodeStatus::Online`] takes placements.
    pub status: NodeStatus,
    /// What it offers Tenantry.
    pub capacity: NodeCapacity,
    /// What is already reserved on it.
    pub allocated: Allocation,
}

/// An exact, non-negative fraction `num / den` (`den` > 0), compared by value.
#[derive(Debug, Clone, Copy)]
pub struct Ratio {
    num: u64,
    den: u64,
}

impl Ratio {
    /// `num / den`; a zero denominator is read as `0 / 1` (a resource the node
    /// does not offer and nothing uses).
    fn new(num: u64, den: u64) -> Self {
        if den == 0 {
            Self { num: 0, den: 1 }
        } else {
            Self { num, den }
        }
    }

    /// The numerator.
    pub fn numerator(&self) -> u64 {
        self.num
    }

    /// The denominator (never 0).
    pub fn denominator(&self) -> u64 {
        self.den
    }

    /// The ratio in thousandths, rounded down (for logs and capacity views).
    pub fn permille(&self) -> u64 {
        let p = u128::from(self.num) * 1000 / u128::from(self.den);
        u64::try_from(p).unwrap_or(u64::MAX)
    }
}

impl PartialEq for Ratio {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ratio {}

impl PartialOrd for Ratio {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ratio {
    fn cmp(&self, other: &Self) -> Ordering {
        // a/b ? c/d ⇔ a·d ? c·b; both products fit in u128.
        (u128::from(self.num) * u128::from(other.den))
            .cmp(&(u128::from(other.num) * u128::from(self.den)))
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// A node's utilisation after a placement: one ratio per [`Resource`].
///
/// Ordered by the highest ratio ([`Load::peak`]), then by the sum of the four
/// ratios, both exactly; equal loads compare equal whatever their fractions'
/// spelling.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    ratios: [Ratio; 4],
    /// Index of the highest ratio, found once: every comparison starts there.
    peak: u8,
}

impl Load {
    /// The ratio of `resource` (in [`Resource::ALL`] order).
    pub fn ratio(&self, resource: Resource) -> Ratio {
        self.ratios[resource_index(resource)]
    }

    /// The highest of the four ratios: the load placement minimises.
    pub fn peak(&self) -> Ratio {
        self.ratios[usize::from(self.peak)]
    }

    fn new(ratios: [Ratio; 4]) -> Self {
        let mut peak = 0u8;
        for (i, r) in (0u8..).zip(&ratios) {
            if *r > ratios[usize::from(peak)] {
                peak = i;
            }
        }
        Self { ratios, peak }
    }

    /// Compares the sums of the ratios exactly: Σ nᵢ/dᵢ ? Σ mᵢ/eᵢ, as
    /// (Σ nᵢ·∏ⱼ≠ᵢ dⱼ)·∏ eⱼ ? (Σ mᵢ·∏ⱼ≠ᵢ eⱼ)·∏ dⱼ: in `u128` when that
    /// cannot overflow (real fleets: capacities of a few dozen bits), else in
    /// 640-bit integers.
    fn cmp_sum(&self, other: &Self) -> Ordering {
        if let (Some((n1, d1)), Some((n2, d2))) = (self.sum_u128(), other.sum_u128())
            && let (Some(l), Some(r)) = (n1.checked_mul(d2), n2.checked_mul(d1))
        {
            return l.cmp(&r);
        }
        self.cmp_sum_wide(other)
    }

    /// [`Load::cmp_sum`] in 640-bit integers, whatever the magnitudes.
    fn cmp_sum_wide(&self, other: &Self) -> Ordering {
        let (n1, d1) = self.sum_fraction();
        let (n2, d2) = other.sum_fraction();
        let lhs = d2.iter().fold(n1, |acc, d| acc.mul_u64(*d));
        let rhs = d1.iter().fold(n2, |acc, d| acc.mul_u64(*d));
        lhs.cmp(&rhs)
    }

    /// The sum as `(numerator, denominator)` in `u128`, if it fits.
    fn sum_u128(&self) -> Option<(u128, u128)> {
        let den = self
            .ratios
            .iter()
            .try_fold(1u128, |acc, r| acc.checked_mul(u128::from(r.den)))?;
        let mut num = 0u128;
        for (i, r) in self.ratios.iter().enumerate() {
            let term = self
                .ratios
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .try_fold(u128::from(r.num), |acc, (_, o)| {
                    acc.checked_mul(u128::from(o.den))
                })?;
            num = num.checked_add(term)?;
        }
        Some((num, den))
    }

    /// The sum as a numerator (wide) over the product of the denominators
    /// (returned as its factors).
    fn sum_fraction(&self) -> (Wide, [u64; 4]) {
        let dens = self.ratios.map(|r| r.den);
        let mut num = Wide::ZERO;
        for (i, r) in self.ratios.iter().enumerate() {
            let term = dens
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .fold(Wide::from_u64(r.num), |acc, (_, d)| acc.mul_u64(*d));
            num = num.add(&term);
        }
        (num, dens)
    }
}

impl PartialEq for Load {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Load {}

impl PartialOrd for Load {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Load {
    fn cmp(&self, other: &Self) -> Ordering {
        self.peak()
            .cmp(&other.peak())
            .then_with(|| self.cmp_sum(other))
    }
}

fn resource_index(r: Resource) -> usize {
    match r {
        Resource::CpuCores => 0,
        Resource::MemoryMib => 1,
        Resource::StorageGib => 2,
        Resource::Instances => 3,
    }
}

/// An unsigned integer of 640 bits, little-endian 64-bit limbs: wide enough
/// for a sum of four products of four `u64`s times four more `u64`s (≤ 2⁵¹⁴).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wide([u64; 10]);

impl Wide {
    const ZERO: Self = Self([0; 10]);

    fn from_u64(n: u64) -> Self {
        let mut w = Self::ZERO;
        w.0[0] = n;
        w
    }

    /// `self · m`; the bounds above keep the top limb's carry at zero.
    fn mul_u64(self, m: u64) -> Self {
        let mut out = Self::ZERO;
        let mut carry: u128 = 0;
        for (o, limb) in out.0.iter_mut().zip(self.0) {
            let p = u128::from(limb) * u128::from(m) + carry;
            *o = p as u64;
            carry = p >> 64;
        }
        out
    }

    fn add(self, other: &Self) -> Self {
        let mut out = Self::ZERO;
        let mut carry = false;
        for ((o, a), b) in out.0.iter_mut().zip(self.0).zip(other.0) {
            let (s1, c1) = a.overflowing_add(b);
            let (s2, c2) = s1.overflowing_add(u64::from(carry));
            *o = s2;
            carry = c1 || c2;
        }
        out
    }
}

impl PartialOrd for Wide {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Wide {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.iter().rev().cmp(other.0.iter().rev())
    }
}

impl<Id> NodeLoad<Id> {
    /// Whether placement may consider this node for `driver` at all: same
    /// driver and a status that takes new instances (`online`).
    pub fn accepts(&self, driver: DriverKind) -> bool {
        self.driver == driver && self.status.accepts_placements()
    }

    /// Capacity and use of each resource, in [`Resource::ALL`] order, as
    /// `(capacity, allocated, needed)`.
    fn amounts(&self, need: &Resources) -> [(u64, u64, u64); 4] {
        let c = &self.capacity;
        let a = &self.allocated;
        [
            (
                u64::from(c.cpu_cores),
                a.cpu_cores,
                u64::from(need.cpu_cores),
            ),
            (c.memory_mib, a.memory_mib, u64::from(need.memory_mib)),
            (c.storage_gib, a.storage_gib, u64::from(need.storage_gib)),
            (u64::from(c.max_instances), u64::from(a.instances), 1),
        ]
    }

    /// How much of `resource` is still free: capacity minus allocated, 0 when
    /// the node is already over-committed.
    pub fn free(&self, resource: Resource) -> u64 {
        let (cap, used, _) = self.amounts(&Resources {
            cpu_cores: 0,
            memory_mib: 0,
            storage_gib: 0,
        })[resource_index(resource)];
        cap.saturating_sub(used)
    }

    /// For each resource in [`Resource::ALL`] order, whether `need` (plus one
    /// instance slot) does not fit in what is free.
    fn short_mask(&self, need: &Resources) -> [bool; 4] {
        self.amounts(need)
            .map(|(cap, used, want)| u128::from(used) + u128::from(want) > u128::from(cap))
    }

    /// The resources this node lacks for `need` plus one instance slot, in
    /// [`Resource::ALL`] order; empty when it has room.
    pub fn shortfalls(&self, need: &Resources) -> Vec<Resource> {
        self.short_mask(need)
            .iter()
            .zip(Resource::ALL)
            .filter(|(short, _)| **short)
            .map(|(_, r)| *r)
            .collect()
    }

    /// Whether `need` and one more instance fit in what is free.
    pub fn has_room(&self, need: &Resources) -> bool {
        !self.short_mask(need).contains(&true)
    }

    /// The node's [`Load`] once `need` is placed on it, or `None` when it has
    /// no room (so every ratio of a returned load is at most 1).
    pub fn load_after(&self, need: &Resources) -> Option<Load> {
        let amounts = self.amounts(need);
        let mut ratios = [Ratio::new(0, 1); 4];
        for (r, (cap, used, want)) in ratios.iter_mut().zip(amounts) {
            let after = used.checked_add(want).filter(|a| *a <= cap)?;
            *r = Ratio::new(after, cap);
        }
        Some(Load::new(ratios))
    }
}

/// Why no node could take an instance; each says what an operator can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoPlacement {
    /// No node runs the product's driver.
    #[error("there is no {driver} node")]
    NoNodeForDriver {
        /// The product's driver.
        driver: DriverKind,
    },
    /// Nodes of the driver exist, but none is `online` (all are offline, in
    /// maintenance or draining).
    #[error("none of the {nodes} {driver} nodes is online")]
    NoneOnline {
        /// The product's driver.
        driver: DriverKind,
        /// How many nodes of that driver there are.
        nodes: usize,
    },
    /// Online nodes exist, but none has room for the plan.
    #[error(
        "none of the {online} online {driver} nodes has room: {scarcest} is the scarcest \
         ({short_on} of them lack it; {needed} needed, at most {most_free} free on any)"
    )]
    NoRoom {
        /// The product's driver.
        driver: DriverKind,
        /// How many online nodes of that driver there are.
        online: usize,
        /// The resource most nodes lack (ties: the one whose largest free
        /// amount is furthest below the need, then [`Resource::ALL`] order).
        scarcest: Resource,
        /// How many online nodes lack it.
        short_on: usize,
        /// How much of it the plan needs (1 for instances).
        needed: u64,
        /// The most of it free on any online node.
        most_free: u64,
    },
}

/// Picks the node for an instance of a `driver` product that reserves `need`:
/// the online node of that driver with room whose [`Load`] after placement is
/// lowest (peak ratio, then sum of ratios), the first in `nodes` on a tie.
///
/// Runs in one pass over `nodes`, allocation-free unless it fails.
///
/// # Errors
/// [`NoPlacement`] saying whether no node runs the driver, none is online, or
/// none has room (naming the scarcest resource).
pub fn place<'a, Id>(
    nodes: &'a [NodeLoad<Id>],
    driver: DriverKind,
    need: &Resources,
) -> Result<&'a NodeLoad<Id>, NoPlacement> {
    let mut best: Option<(&NodeLoad<Id>, Load)> = None;
    for node in nodes.iter().filter(|n| n.accepts(driver)) {
        let Some(load) = node.load_after(need) else {
            continue;
        };
        // Strictly lower only: an equal load keeps the earlier node.
        if best.as_ref().is_none_or(|(_, b)| load < *b) {
            best = Some((node, load));
        }
    }
    match best {
        Some((node, _)) => Ok(node),
        None => Err(explain(nodes, driver, need)),
    }
}

/// Why [`place`] found nothing.
fn explain<Id>(nodes: &[NodeLoad<Id>], driver: DriverKind, need: &Resources) -> NoPlacement {
    let of_driver = nodes.iter().filter(|n| n.driver == driver).count();
    if of_driver == 0 {
        return NoPlacement::NoNodeForDriver { driver };
    }
    let online = nodes.iter().filter(|n| n.accepts(driver)).count();
    if online == 0 {
        return NoPlacement::NoneOnline {
            driver,
            nodes: of_driver,
        };
    }
    let mut short_on = [0usize; 4];
    let mut most_free = [0u64; 4];
    for node in nodes.iter().filter(|n| n.accepts(driver)) {
        let short = node.short_mask(need);
        for (i, r) in Resource::ALL.iter().enumerate() {
            short_on[i] += usize::from(short[i]);
            most_free[i] = most_free[i].max(node.free(*r));
        }
    }
    let needed = |i: usize| -> u64 {
        match Resource::ALL[i] {
            Resource::CpuCores => u64::from(need.cpu_cores),
            Resource::MemoryMib => u64::from(need.memory_mib),
            Resource::StorageGib => u64::from(need.storage_gib),
            Resource::Instances => 1,
        }
    };
    // Most nodes short of it, then the lowest most-free / needed.
    let scarcest = (0..4)
        .max_by(|&a, &b| {
            short_on[a]
                .cmp(&short_on[b])
                .then_with(|| {
                    Ratio::new(most_free[b], needed(b).max(1))
                        .cmp(&Ratio::new(most_free[a], needed(a).max(1)))
                })
                // max_by keeps the last of equals; prefer the first.
                .then(b.cmp(&a))
        })
        .unwrap_or(0);
    NoPlacement::NoRoom {
        driver,
        online,
        scarcest: Resource::ALL[scarcest],
        short_on: short_on[scarcest],
        needed: needed(scarcest),
        most_free: most_free[scarcest],
    }
}

#[cfg(test)]
mod tests;
