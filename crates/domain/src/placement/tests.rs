//! Hand-computed cases, then properties of [`place`] over random fleets.

use super::*;
use proptest::prelude::*;

fn cap(cpu_cores: u32, memory_mib: u64, storage_gib: u64, max_instances: u32) -> NodeCapacity {
    NodeCapacity {
        cpu_cores,
        memory_mib,
        storage_gib,
        max_instances,
    }
}

fn used(cpu_cores: u64, memory_mib: u64, storage_gib: u64, instances: u32) -> Allocation {
    Allocation {
        cpu_cores,
        memory_mib,
        storage_gib,
        instances,
    }
}

fn node(id: &'static str, capacity: NodeCapacity, allocated: Allocation) -> NodeLoad<&'static str> {
    NodeLoad {
        id,
        driver: DriverKind::Proxmox,
        status: NodeStatus::Online,
        capacity,
        allocated,
    }
}

fn need(cpu_cores: u32, memory_mib: u32, storage_gib: u32) -> Resources {
    Resources {
        cpu_cores,
        memory_mib,
        storage_gib,
    }
}

const PROXMOX: DriverKind = DriverKind::Proxmox;

#[test]
fn picks_the_lowest_peak_ratio_after_placement() {
    // a: cpu 6/8 = .75, mem 6144/16384 = .375, disk 60/200 = .3, slots 3/10 → peak .75
    // b: cpu 4/16 = .25, mem 26624/32768 = .8125, disk 20/500, slots 2/20 → peak .8125
    // b has more free cpu and disk, but memory would be tighter there.
    let nodes = [
        node("a", cap(8, 16384, 200, 10), used(4, 4096, 50, 2)),
        node("b", cap(16, 32768, 500, 20), used(2, 24576, 10, 1)),
    ];
    let need = need(2, 2048, 10);
    assert_eq!(place(&nodes, PROXMOX, &need).unwrap().id, "a");
    let load = nodes[0].load_after(&need).unwrap();
    assert_eq!(load.peak(), Ratio::new(3, 4));
    assert_eq!(load.ratio(Resource::MemoryMib), Ratio::new(3, 8));
    assert_eq!(load.peak().permille(), 750);
    assert_eq!(nodes[1].load_after(&need).unwrap().peak().permille(), 812);
}

#[test]
fn instance_slots_count_as_load() {
    // a is nearly empty but would hold 4 of 4 instances (peak 1); b is at 50 % cpu.
    let nodes = [
        node("a", cap(64, 65536, 1000, 4), used(0, 0, 0, 3)),
        node("b", cap(4, 8192, 100, 100), used(1, 0, 0, 0)),
    ];
    assert_eq!(place(&nodes, PROXMOX, &need(1, 128, 1)).unwrap().id, "b");
}

#[test]
fn equal_peaks_go_to_the_lower_sum_of_ratios() {
    // Both peak at cpu 4/8 after placement. a: .5 + .5 + .5 + .2 = 1.7;
    // b: .5 + .25 + .1 + .1 = .95 → b, although it comes second.
    let nodes = [
        node("a", cap(8, 8192, 100, 10), used(2, 2048, 40, 1)),
        node("b", cap(8, 8192, 100, 20), used(2, 0, 0, 1)),
    ];
    let need = need(2, 2048, 10);
    let (a, b) = (
        nodes[0].load_after(&need).unwrap(),
        nodes[1].load_after(&need).unwrap(),
    );
    assert_eq!(a.peak(), b.peak());
    assert!(b < a);
    assert_eq!(place(&nodes, PROXMOX, &need).unwrap().id, "b");
}

#[test]
fn full_ties_go_to_the_first_node_given() {
    let a = node("a", cap(8, 8192, 100, 10), used(1, 1024, 10, 1));
    let b = NodeLoad {
        id: "b",
        ..a.clone()
    };
    // Same load, spelled with other fractions: cpu 2/4 vs 4/8 and so on.
    let c = node("c", cap(16, 16384, 200, 20), used(3, 3072, 30, 3));
    let need = need(1, 1024, 10);
    assert_eq!(a.load_after(&need), c.load_after(&need));
    let nodes = [a.clone(), b.clone(), c.clone()];
    assert_eq!(place(&nodes, PROXMOX, &need).unwrap().id, "a");
    let nodes = [c, b, a];
    assert_eq!(place(&nodes, PROXMOX, &need).unwrap().id, "c");
}

#[test]
fn only_online_nodes_of_the_driver_are_considered() {
    let empty = cap(32, 65536, 1000, 50);
    let busy = node("busy", cap(8, 8192, 100, 10), used(6, 4096, 50, 5));
    let mut nodes = vec![busy];
    for (id, status) in [
        ("offline", NodeStatus::Offline),
        ("maintenance", NodeStatus::Maintenance),
        ("draining", NodeStatus::Draining),
    ] {
        nodes.push(NodeLoad {
            status,
            ..node(id, empty, Allocation::default())
        });
    }
    nodes.push(NodeLoad {
        driver: DriverKind::Docker,
        ..node("docker", empty, Allocation::default())
    });
    assert_eq!(
        place(&nodes, PROXMOX, &need(2, 1024, 10)).unwrap().id,
        "busy"
    );
    assert_eq!(
        place(&nodes, DriverKind::Docker, &need(2, 1024, 10))
            .unwrap()
            .id,
        "docker"
    );
}

#[test]
fn an_exact_fit_is_room_and_one_more_is_not() {
    let n = node("a", cap(4, 4096, 40, 2), used(2, 2048, 20, 1));
    assert!(n.has_room(&need(2, 2048, 20)));
    assert_eq!(
        n.load_after(&need(2, 2048, 20)).unwrap().peak(),
        Ratio::new(1, 1)
    );
    for too_much in [need(3, 2048, 20), need(2, 2049, 20), need(2, 2048, 21)] {
        assert!(!n.has_room(&too_much));
        assert!(n.load_after(&too_much).is_none());
    }
    let full = node("b", cap(4, 4096, 40, 2), used(0, 0, 0, 2));
    assert_eq!(full.shortfalls(&need(1, 128, 1)), [Resource::Instances]);
}

#[test]
fn an_over_committed_node_has_no_room_and_nothing_free() {
    let n = node(
        "a",
        cap(4, 4096, 40, 2),
        used(u64::MAX, u64::MAX, 50, u32::MAX),
    );
    assert_eq!(n.free(Resource::CpuCores), 0);
    assert_eq!(n.free(Resource::StorageGib), 0);
    assert_eq!(n.shortfalls(&need(1, 128, 1)), Resource::ALL);
    assert!(n.load_after(&need(1, 128, 1)).is_none());
}

#[test]
fn comparisons_are_exact_where_floats_are_not() {
    // 2^53 + 1 and 2^53 are the same f64; the ratios still differ.
    let big = 1u64 << 60;
    let a = node(
        "a",
        cap(64, big, 1000, 100),
        used(0, (1 << 53) + 1 - 128, 0, 0),
    );
    let b = node("b", cap(64, big, 1000, 100), used(0, (1 << 53) - 128, 0, 0));
    let need = need(1, 128, 1);
    let (la, lb) = (a.load_after(&need).unwrap(), b.load_after(&need).unwrap());
    assert_eq!(la.peak(), lb.peak(), "cpu 1/64 is both peaks");
    assert!(lb < la, "b's memory is one MiB lower");
    let nodes = [a, b];
    assert_eq!(place(&nodes, PROXMOX, &need).unwrap().id, "b");
    // Sums near the top of u64 do not overflow.
    let huge = node(
        "h",
        cap(u32::MAX, u64::MAX, u64::MAX, u32::MAX),
        used(0, u64::MAX - 128, u64::MAX - 1, 0),
    );
    assert!(huge.load_after(&need).is_some());
}

#[test]
fn no_node_of_the_driver() {
    let nodes = [node("a", cap(8, 8192, 100, 10), Allocation::default())];
    let err = place(&nodes, DriverKind::Docker, &need(1, 128, 1)).unwrap_err();
    assert_eq!(
        err,
        NoPlacement::NoNodeForDriver {
            driver: DriverKind::Docker
        }
    );
    assert_eq!(err.to_string(), "there is no docker node");
    assert!(matches!(
        place::<u8>(&[], PROXMOX, &need(1, 128, 1)),
        Err(NoPlacement::NoNodeForDriver { .. })
    ));
}

#[test]
fn no_node_online() {
    let c = cap(8, 8192, 100, 10);
    let nodes = [
        NodeLoad {
            status: NodeStatus::Offline,
            ..node("a", c, Allocation::default())
        },
        NodeLoad {
            status: NodeStatus::Draining,
            ..node("b", c, Allocation::default())
        },
        NodeLoad {
            driver: DriverKind::Docker,
            ..node("c", c, Allocation::default())
        },
    ];
    let err = place(&nodes, PROXMOX, &need(1, 128, 1)).unwrap_err();
    assert_eq!(
        err,
        NoPlacement::NoneOnline {
            driver: PROXMOX,
            nodes: 2
        }
    );
    assert_eq!(err.to_string(), "none of the 2 proxmox nodes is online");
}

#[test]
fn no_room_names_the_scarcest_resource() {
    // Need 4 cores and 8 GiB. a lacks memory (6144 free), b lacks memory
    // (2048 free) and cpu, c lacks cpu: memory is short on 2 of 3 nodes.
    let nodes = [
        node("a", cap(16, 16384, 100, 10), used(0, 10240, 0, 0)),
        node("b", cap(4, 8192, 100, 10), used(2, 6144, 0, 0)),
        node("c", cap(4, 32768, 100, 10), used(1, 0, 0, 0)),
    ];
    let err = place(&nodes, PROXMOX, &need(4, 8192, 10)).unwrap_err();
    assert_eq!(
        err,
        NoPlacement::NoRoom {
            driver: PROXMOX,
            online: 3,
            scarcest: Resource::CpuCores,
            short_on: 2,
            needed: 4,
            most_free: 16,
        },
        "cpu and memory are each short on 2 nodes, and their most-free / need are equal \
         (16/4 = 32768/8192): the first in Resource::ALL"
    );
    assert_eq!(
        err.to_string(),
        "none of the 3 online proxmox nodes has room: cpu_cores is the scarcest \
         (2 of them lack it; 4 needed, at most 16 free on any)"
    );
    // Make memory short on all three: memory wins on count.
    let mut nodes = nodes;
    nodes[2].allocated.memory_mib = 30720;
    let NoPlacement::NoRoom {
        scarcest,
        short_on,
        most_free,
        ..
    } = place(&nodes, PROXMOX, &need(4, 8192, 10)).unwrap_err()
    else {
        panic!("expected NoRoom");
    };
    assert_eq!(
        (scarcest, short_on, most_free),
        (Resource::MemoryMib, 3, 6144)
    );
}

#[test]
fn scarcity_ties_go_to_the_resource_furthest_below_the_need() {
    // One node, short of memory (1024 of 4096 free: 1/4) and storage (5 of
    // 10 free: 1/2): memory is further below.
    let nodes = [node("a", cap(8, 4096, 10, 10), used(0, 3072, 5, 0))];
    let NoPlacement::NoRoom { scarcest, .. } =
        place(&nodes, PROXMOX, &need(1, 4096, 10)).unwrap_err()
    else {
        panic!("expected NoRoom");
    };
    assert_eq!(scarcest, Resource::MemoryMib);
}

#[test]
fn wide_integers_multiply_and_compare() {
    let max = Wide::from_u64(u64::MAX);
    // (2^64 - 1)^2 = 2^128 - 2^65 + 1
    let sq = max.mul_u64(u64::MAX);
    assert_eq!(sq.0[0], 1);
    assert_eq!(sq.0[1], u64::MAX - 1);
    assert!(sq > max);
    let eight = (0..8).fold(Wide::from_u64(1), |acc, _| acc.mul_u64(u64::MAX));
    assert!(eight > sq);
    assert_eq!(eight.0[9], 0, "2^512 fits below the top limb");
    assert_eq!(sq.add(&Wide::from_u64(u64::MAX)).0[1], u64::MAX);
}

// ---- properties ----------------------------------------------------------

fn arb_status() -> impl Strategy<Value = NodeStatus> {
    prop_oneof![
        4 => Just(NodeStatus::Online),
        1 => Just(NodeStatus::Offline),
        1 => Just(NodeStatus::Maintenance),
        1 => Just(NodeStatus::Draining),
    ]
}

fn arb_driver() -> impl Strategy<Value = DriverKind> {
    prop_oneof![3 => Just(DriverKind::Proxmox), 1 => Just(DriverKind::Docker)]
}

/// A node whose use is 0–120 % of its capacity (over-committed nodes exist
/// after an operator shrinks a capacity).
fn arb_node() -> impl Strategy<Value = NodeLoad<usize>> {
    (
        arb_driver(),
        arb_status(),
        (1u32..=64, 1u64..=65536, 1u64..=2000, 1u32..=30),
        (0u64..=120, 0u64..=120, 0u64..=120, 0u64..=120),
    )
        .prop_map(
            |(driver, status, (cpu, mem, disk, max), (pc, pm, pd, pi))| NodeLoad {
                id: 0,
                driver,
                status,
                capacity: cap(cpu, mem, disk, max),
                allocated: Allocation {
                    cpu_cores: u64::from(cpu) * pc / 100,
                    memory_mib: mem * pm / 100,
                    storage_gib: disk * pd / 100,
                    instances: u32::try_from(u64::from(max) * pi / 100).unwrap(),
                },
            },
        )
}

/// A fleet with ids = positions; small numbers so loads often tie.
fn arb_fleet() -> impl Strategy<Value = Vec<NodeLoad<usize>>> {
    prop::collection::vec(arb_node(), 0..40).prop_map(|mut v| {
        for (i, n) in v.iter_mut().enumerate() {
            n.id = i;
        }
        v
    })
}

fn arb_need() -> impl Strategy<Value = Resources> {
    (1u32..=16, 128u32..=16384, 1u32..=200).prop_map(|(c, m, s)| need(c, m, s))
}

/// The rule, written the slow way: every candidate's (load, position), minimum.
fn reference(nodes: &[NodeLoad<usize>], driver: DriverKind, need: &Resources) -> Option<usize> {
    nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.driver == driver && n.status == NodeStatus::Online)
        .filter_map(|(i, n)| n.load_after(need).map(|l| (l, i)))
        .min()
        .map(|(_, i)| i)
}

/// Σ n/d compared in u128 (denominators ≤ 2^16 here, so it cannot overflow).
fn sum_cmp_u128(a: &Load, b: &Load) -> Ordering {
    let frac = |l: &Load| {
        let dens: Vec<u128> = l.ratios.iter().map(|r| u128::from(r.den)).collect();
        let d: u128 = dens.iter().product();
        let n: u128 = l
            .ratios
            .iter()
            .map(|r| u128::from(r.num) * d / u128::from(r.den))
            .sum();
        (n, d)
    };
    let ((n1, d1), (n2, d2)) = (frac(a), frac(b));
    (n1 * d2).cmp(&(n2 * d1))
}

proptest! {
    #[test]
    fn the_chosen_node_is_eligible_and_fits(nodes in arb_fleet(), driver in arb_driver(), need in arb_need()) {
        if let Ok(n) = place(&nodes, driver, &need) {
            prop_assert_eq!(n.driver, driver);
            prop_assert_eq!(n.status, NodeStatus::Online);
            prop_assert!(n.has_room(&need));
            prop_assert!(n.shortfalls(&need).is_empty());
            // Adding the need never exceeds capacity.
            let c = n.capacity;
            let a = n.allocated;
            prop_assert!(a.cpu_cores + u64::from(need.cpu_cores) <= u64::from(c.cpu_cores));
            prop_assert!(a.memory_mib + u64::from(need.memory_mib) <= c.memory_mib);
            prop_assert!(a.storage_gib + u64::from(need.storage_gib) <= c.storage_gib);
            prop_assert!(a.instances < c.max_instances);
            prop_assert!(n.load_after(&need).unwrap().peak() <= Ratio::new(1, 1));
        }
    }

    #[test]
    fn no_eligible_node_is_strictly_less_loaded(nodes in arb_fleet(), driver in arb_driver(), need in arb_need()) {
        match place(&nodes, driver, &need) {
            Ok(chosen) => {
                let best = chosen.load_after(&need).unwrap();
                for n in nodes.iter().filter(|n| n.accepts(driver)) {
                    if let Some(l) = n.load_after(&need) {
                        prop_assert!(l >= best, "node {} is less loaded than {}", n.id, chosen.id);
                        if l == best {
                            prop_assert!(n.id >= chosen.id, "an equal earlier node {} was passed over", n.id);
                        }
                    }
                }
                prop_assert_eq!(Some(chosen.id), reference(&nodes, driver, &need));
            }
            Err(e) => {
                prop_assert_eq!(reference(&nodes, driver, &need), None);
                let of_driver = nodes.iter().filter(|n| n.driver == driver).count();
                let online = nodes.iter().filter(|n| n.accepts(driver)).count();
                match e {
                    NoPlacement::NoNodeForDriver { .. } => prop_assert_eq!(of_driver, 0),
                    NoPlacement::NoneOnline { nodes: k, .. } => {
                        prop_assert_eq!(k, of_driver);
                        prop_assert!(k > 0 && online == 0);
                    }
                    NoPlacement::NoRoom { online: k, scarcest, short_on, needed, most_free, .. } => {
                        prop_assert_eq!(k, online);
                        prop_assert!(short_on >= 1 && short_on <= k);
                        // No resource is short on more online nodes than the scarcest.
                        for r in Resource::ALL {
                            let c = nodes.iter().filter(|n| n.accepts(driver) && n.shortfalls(&need).contains(r)).count();
                            prop_assert!(c <= short_on);
                        }
                        let free = nodes.iter().filter(|n| n.accepts(driver)).map(|n| n.free(scarcest)).max();
                        prop_assert_eq!(Some(most_free), free);
                        prop_assert!(needed >= 1);
                    }
                }
            }
        }
    }

    #[test]
    fn the_input_order_matters_only_among_equal_loads(
        (nodes, shuffled) in arb_fleet().prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        driver in arb_driver(),
        need in arb_need(),
    ) {
        let a = place(&nodes, driver, &need);
        let b = place(&shuffled, driver, &need);
        match (a, b) {
            (Ok(a), Ok(b)) => {
                let (la, lb) = (a.load_after(&need).unwrap(), b.load_after(&need).unwrap());
                prop_assert_eq!(la, lb);
                let equals = nodes.iter()
                    .filter(|n| n.accepts(driver) && n.load_after(&need) == Some(la))
                    .count();
                if equals == 1 {
                    prop_assert_eq!(a.id, b.id);
                }
                // Among equals, the first in the shuffled order wins.
                let first = shuffled.iter()
                    .find(|n| n.accepts(driver) && n.load_after(&need) == Some(la))
                    .map(|n| n.id);
                prop_assert_eq!(Some(b.id), first);
            }
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "{a:?} vs {b:?}"),
        }
    }

    #[test]
    fn load_order_is_peak_then_exact_sum(a in arb_node(), b in arb_node(), need in arb_need()) {
        if let (Some(la), Some(lb)) = (a.load_after(&need), b.load_after(&need)) {
            let expected = la.peak().cmp(&lb.peak()).then_with(|| sum_cmp_u128(&la, &lb));
            prop_assert_eq!(la.cmp(&lb), expected);
            prop_assert_eq!(lb.cmp(&la), expected.reverse());
        }
    }

    #[test]
    fn wide_and_u128_sums_agree(a in arb_node(), b in arb_node(), need in arb_need()) {
        if let (Some(la), Some(lb)) = (a.load_after(&need), b.load_after(&need)) {
            prop_assert_eq!(la.cmp_sum_wide(&lb), sum_cmp_u128(&la, &lb));
            prop_assert_eq!(la.cmp_sum(&lb), sum_cmp_u128(&la, &lb));
        }
    }

    #[test]
    fn sums_of_huge_ratios_compare_by_value(
        nums in prop::array::uniform4(0u64..=u64::MAX / 3),
        dens in prop::array::uniform4(u64::MAX / 3..=u64::MAX),
        bump in 0usize..4,
    ) {
        // Too big for u128: the wide path. The same values spelled 3× larger
        // compare equal (when they fit), and raising one numerator raises the sum.
        let load =
            |n: [u64; 4], d: [u64; 4]| Load::new([0, 1, 2, 3].map(|i| Ratio::new(n[i], d[i])));
        let l = load(nums, dens);
        prop_assert!(l.sum_u128().is_none());
        prop_assert_eq!(l.cmp_sum(&l), Ordering::Equal);
        let mut more = nums;
        more[bump] += 1;
        let m = load(more, dens);
        prop_assert_eq!(l.cmp_sum(&m), Ordering::Less);
        prop_assert_eq!(m.cmp_sum(&l), Ordering::Greater);
        let third = load(nums.map(|n| n / 3 * 3), dens.map(|d| d / 3 * 3));
        let scaled = load(nums.map(|n| n / 3), dens.map(|d| d / 3));
        prop_assert_eq!(third.cmp_sum(&scaled), Ordering::Equal);
    }

    #[test]
    fn ratios_compare_like_cross_multiplication(a in 0u64..=u64::MAX, b in 1u64..=u64::MAX, k in 1u64..=1000) {
        let r = Ratio::new(a, b);
        prop_assert_eq!(r.cmp(&r), Ordering::Equal);
        if let (Some(ka), Some(kb)) = (a.checked_mul(k), b.checked_mul(k)) {
            prop_assert_eq!(Ratio::new(ka, kb), r);
        }
        if a < u64::MAX {
            prop_assert!(Ratio::new(a + 1, b) > r);
        }
    }
}
