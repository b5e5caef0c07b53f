//! The direct first stage of the IPv4 network lookup (`filter_common::nets`, built by
//! `filter_user::direct`) against the longest-prefix scan of the host model.
//!
//! On the host: for random prefix sets (nested, overlapping, /0, /32, adjacent, at /16 and /20
//! block edges) the two-stage lookup (built stage, then the trie model where the stage does not
//! decide) gives every address the mask `SoftTables::net_mask_v4` gives it. In the kernel
//! (BPF_PROG_TEST_RUN): with 2,000 random TURN networks and nested ones, the program's verdicts
//! equal the host's on the edges of every network and on random addresses, with the stage built.

use std::{collections::BTreeMap, net::Ipv4Addr};

use aya::maps::{Array, MapData};
use filter_common::{Tables as _, nets::Node};
use filter_user::{
    compile::Compiled,
    direct::{DIRECT_MIN_PREFIXES, Direct},
};
use gotofw_tests::{
    harness::{Harness, XDP_DROP, XDP_PASS, big_network_options, reply_udp},
    require_root_or_skip,
};
use ipnet::Ipv4Net;
use proptest::{collection::vec, prelude::*};

/// The host model's mask of `addr`: the longest-prefix scan.
fn scan(compiled: &Compiled, addr: u32) -> u64 {
    compiled.tables().net_mask_v4(Ipv4Addr::from(addr).octets())
}

/// The first, last, just-before and just-after addresses of every prefix.
fn edges(nets: &BTreeMap<Ipv4Net, u64>) -> Vec<u32> {
    nets.keys()
        .flat_map(|n| {
            let (first, last) = (u32::from(n.network()), u32::from(n.broadcast()));
            [first, last, first.wrapping_sub(1), last.wrapping_add(1)]
        })
        .collect()
}

/// A prefix near one of a few anchors (so that prefixes nest, overlap and sit next to each
/// other), with lengths leaning on /0, /16, /20, /24, /32 and the ones around them.
fn prefix() -> impl Strategy<Value = (u32, u8, u64)> {
    let anchor = prop_oneof![
        Just(0u32),
        Just(0xc633_0000),
        Just(0xc633_f000),
        Just(0xffff_ffff),
        any::<u32>().prop_map(|a| a & 0xffff_0000),
        any::<u32>(),
    ];
    let len = prop_oneof![
        Just(0u8),
        Just(32),
        Just(16),
        Just(20),
        Just(24),
        15u8..=17,
        19u8..=21,
        0u8..=32,
    ];
    (anchor, 0u32..0x2_0000, any::<bool>(), len, any::<u64>()).prop_map(
        |(anchor, delta, down, len, mask)| {
            let addr = if down {
                anchor.wrapping_sub(delta)
            } else {
                anchor.wrapping_add(delta)
            };
            (addr, len, mask)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_two_stage_lookup_is_the_longest_prefix_match(
        prefixes in vec(prefix(), 0..80),
        probes in vec(any::<u32>(), 64),
        budget in prop_oneof![Just(usize::MAX), 4096usize..4110],
    ) {
        let nets: BTreeMap<Ipv4Net, u64> = prefixes
            .iter()
            .map(|&(a, len, m)| {
                (Ipv4Net::new(Ipv4Addr::from(a), len).expect("len <= 32").trunc(), m)
            })
            .collect();
        let compiled = Compiled { nets_v4: nets.clone(), ..Compiled::default() };
        let direct = Direct::build_within(&nets, budget).expect("building the direct stage");
        let mut addrs = edges(&nets);
        addrs.extend(&probes);
        addrs.extend([0, u32::MAX, 0xc633_0000, 0xc632_ffff, 0xc633_ffff, 0xc634_0000]);
        for addr in addrs {
            let want = scan(&compiled, addr);
            let got = direct.lookup(Ipv4Addr::from(addr).octets(), || scan(&compiled, addr));
            prop_assert_eq!(got, want, "{} in {:?}", Ipv4Addr::from(addr), nets);
        }
    }
}

#[test]
fn a_built_stage_decides_every_address_alone() {
    // Once built, the stage never falls back to the trie (it covers /0 to /32).
    let nets: BTreeMap<Ipv4Net, u64> = [
        ("0.0.0.0/1", 1),
        ("198.51.100.0/24", 2),
        ("198.51.100.7/32", 4),
        ("203.0.113.128/25", 8),
    ]
    .iter()
    .map(|&(n, m)| (n.parse().expect("a network"), m))
    .collect();
    let compiled = Compiled {
        nets_v4: nets.clone(),
        ..Compiled::default()
    };
    let direct = Direct::build(&nets).expect("built");
    for addr in edges(&nets) {
        let got = direct.lookup(Ipv4Addr::from(addr).octets(), || {
            panic!("{} walked the trie", Ipv4Addr::from(addr))
        });
        assert_eq!(got, scan(&compiled, addr), "{}", Ipv4Addr::from(addr));
    }
}

/// The direct stage's node map of a loaded harness: its entries.
fn direct_nodes(h: &Harness) -> u32 {
    let map: Array<&MapData, Node> = Array::try_from(
        h.ebpf()
            .map("NET_DIRECT_V4")
            .expect("the NET_DIRECT_V4 map"),
    )
    .expect("NET_DIRECT_V4 is an array");
    map.len()
}

#[test]
fn kernel_agrees_with_the_host_on_a_large_network_set() {
    if !require_root_or_skip("kernel_agrees_with_the_host_on_a_large_network_set") {
        return;
    }
    let options = big_network_options(2000);
    let mut h = Harness::new("2,000 networks", &options);
    let compiled = h.compiled().clone();
    assert!(compiled.nets_v4.len() >= DIRECT_MIN_PREFIXES);
    let built = Direct::for_rule_set(&compiled.nets_v4)
        .expect("building")
        .expect("built at this size");
    // The kernel has the stage the builder made, not the one-node stand-in.
    assert_eq!(direct_nodes(&h) as usize, built.nodes.len());
    assert!(built.nodes.len() > 4096, "nodes below the root");
    let mut addrs = edges(&compiled.nets_v4);
    let mut state = 0x6766_6e31_345f_6b00_u64;
    // Bounded: 20,000 pseudo-random addresses (an LCG) besides the edges.
    for _ in 0..20_000 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        addrs.push((state >> 32) as u32);
    }
    let (mut allowed, mut blocked) = (0u32, 0u32);
    for addr in addrs {
        // 3478: the TURN rule; 53 and 123: the resolvers' and time servers' rules.
        for port in [3478, 53, 123] {
            let frame = reply_udp(&format!("{}:{port}", Ipv4Addr::from(addr)));
            let host = h.host(&frame);
            let want = if host.passes() { XDP_PASS } else { XDP_DROP };
            let got = h.kernel(&frame).expect("BPF_PROG_TEST_RUN");
            assert_eq!(
                got,
                want,
                "{}:{port}: kernel {got}, host {want} ({})",
                Ipv4Addr::from(addr),
                h.slot_name(host.slot)
            );
            if host.passes() {
                allowed += 1;
            } else {
                blocked += 1;
            }
        }
    }
    // Both verdicts were seen many times (the set is neither empty nor everything).
    assert!(
        allowed > 5000 && blocked > 5000,
        "{allowed} allowed, {blocked} blocked"
    );
}
