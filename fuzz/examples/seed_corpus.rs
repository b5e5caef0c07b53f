//! Writes the seed corpus of the `classify` fuzz target: frames of every kind the classifier
//! knows, made with gotofw's frame builders, each prefixed with the byte that picks its rule set
//! and link; every untagged IP frame also bare, as on an L3 link (`l3-` in the name).
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus [DIR]` (default
//! `fuzz/corpus/classify`). The files are named after what they hold; rerunning rewrites them.

use std::{fs, path::PathBuf};

use filter_common::{ethertype, ipproto, ppp};
use filter_user::frame::{
    Ipv4, Ipv6, ethernet, icmp, ipv6_ext, ipv6_fragment, pppoe_discovery, pppoe_ip,
    pppoe_session, tcp, udp,
};
use gotofw_tests::harness::{reply_tcp, reply_udp, rule_sets, v4, v6};

fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let remote4 = v4("203.0.113.10");
    let client4 = v4("192.0.2.1");
    let remote6 = v6("2001:db8:5::10");
    let client6 = v6("2001:db8::1");
    let tcp443 = tcp(443, 50_000, b"");
    let ip4 = Ipv4::new(remote4, client4, ipproto::TCP);
    let ip6 = Ipv6::new(remote6, client6, ipproto::TCP);
    let eth4 = |p: &[u8]| ethernet(&[], ethertype::IPV4, p);
    let eth6 = |p: &[u8]| ethernet(&[], ethertype::IPV6, p);
    let quoted = Ipv4::new(client4, remote4, ipproto::TCP).build(&tcp(50_000, 443, b""));
    let quoted6 = Ipv6::new(client6, remote6, ipproto::UDP).build(&udp(50_000, 3478, b""));
    let mut nd = Ipv6::new(v6("fe80::1"), v6("fe80::2"), ipproto::ICMPV6);
    nd.hop_limit = 255;
    let mut options = ip4.clone();
    options.options = vec![1; 8];
    let mut chain = ip6.clone();
    chain.next = 0;
    chain.ext = [ipv6_ext(43, 0), ipv6_ext(60, 1), ipv6_ext(ipproto::TCP, 0)].concat();
    let mut frag6 = ip6.clone();
    frag6.next = 44;
    frag6.ext = [ipv6_fragment(60, 0, true, 7), ipv6_ext(ipproto::TCP, 0)].concat();
    let mut later6 = ip6.clone();
    later6.next = 44;
    later6.ext = ipv6_fragment(ipproto::TCP, 32, false, 7);
    let first4 = Ipv4 {
        id: 0x4242,
        flags_frag: 0x2000,
        ..ip4.clone()
    };
    let later4 = Ipv4 {
        flags_frag: 3,
        ..first4.clone()
    };
    vec![
        ("udp-turn-68.64.0.10", reply_udp("68.64.0.10:3478")),
        ("udp-turn-outside", reply_udp("68.64.32.0:3478")),
        ("tcp-turn-173.199.63.255", reply_tcp("173.199.63.255:3478")),
        ("media-45000", reply_udp("203.0.113.10:45000")),
        ("media-49999-v6", reply_udp("[2001:db8:5::10]:49999")),
        ("https", reply_tcp("203.0.113.10:443")),
        ("https-v6", reply_tcp("[2001:db8:5::10]:443")),
        ("operator-v6", reply_udp("[2001:db8:77::5]:3478")),
        ("dns", reply_udp("198.51.100.53:53")),
        ("dns-tcp-v6", reply_tcp("[2001:db8::53]:53")),
        ("ntp", reply_udp("203.0.113.123:123")),
        (
            "dhcp",
            eth4(
                &Ipv4::new(v4("192.0.2.254"), v4("255.255.255.255"), ipproto::UDP)
                    .build(&udp(67, 68, &[0; 32])),
            ),
        ),
        (
            "dhcp6",
            eth6(
                &Ipv6::new(v6("fe80::1"), v6("fe80::2"), ipproto::UDP)
                    .build(&udp(547, 546, &[0; 16])),
            ),
        ),
        (
            "vlan",
            ethernet(
                &[(ethertype::VLAN, 7)],
                ethertype::IPV4,
                &ip4.build(&tcp443),
            ),
        ),
        (
            "qinq-v6",
            ethernet(
                &[(ethertype::QINQ, 7), (ethertype::VLAN, 8)],
                ethertype::IPV6,
                &ip6.build(&tcp443),
            ),
        ),
        (
            "three-tags",
            ethernet(
                &[
                    (ethertype::QINQ, 1),
                    (ethertype::VLAN, 2),
                    (ethertype::VLAN, 3),
                ],
                ethertype::IPV4,
                &ip4.build(&tcp443),
            ),
        ),
        ("ipv4-options", eth4(&options.build(&tcp443))),
        ("ipv6-chain", eth6(&chain.build(&tcp443))),
        (
            "first-fragment",
            eth4(&first4.build(&tcp(443, 50_000, &[0; 4]))),
        ),
        ("later-fragment", eth4(&later4.build(&[0; 16]))),
        ("ipv6-first-fragment", eth6(&frag6.build(&tcp443))),
        ("ipv6-later-fragment", eth6(&later6.build(&[0; 16]))),
        (
            "icmp-unreachable",
            eth4(
                &Ipv4::new(v4("198.51.100.1"), client4, ipproto::ICMP).build(&icmp(
                    3,
                    4,
                    &quoted[..28],
                )),
            ),
        ),
        (
            "icmpv6-too-big",
            eth6(
                &Ipv6::new(v6("2001:db8:9::1"), client6, ipproto::ICMPV6).build(&icmp(
                    2,
                    0,
                    &quoted6[..48],
                )),
            ),
        ),
        (
            "icmp-echo",
            eth4(&Ipv4::new(remote4, client4, ipproto::ICMP).build(&icmp(0, 0, &[0; 8]))),
        ),
        ("nd", eth6(&nd.build(&icmp(135, 0, &[0; 16])))),
        ("arp", ethernet(&[], 0x0806, &[0; 28])),
        ("pppoe", ethernet(&[], ethertype::PPPOE_SESSION, &[0; 8])),
        (
            "pppoe-turn",
            pppoe_ip(&[], 1, &reply_udp("68.64.0.10:3478")[14..]),
        ),
        (
            "pppoe-vlan-https-v6",
            pppoe_ip(&[(ethertype::VLAN, 7)], 1, &ip6.build(&tcp443)),
        ),
        (
            "pppoe-lcp",
            ethernet(
                &[],
                ethertype::PPPOE_SESSION,
                &pppoe_session(1, ppp::LCP, &[9, 1, 0, 8, 1, 2, 3, 4]),
            ),
        ),
        (
            "pppoe-padi",
            ethernet(
                &[],
                ethertype::PPPOE_DISCOVERY,
                &pppoe_discovery(0x09, 0, &[1, 1, 0, 0]),
            ),
        ),
        (
            "pppoe-long",
            ethernet(
                &[],
                ethertype::PPPOE_SESSION,
                &[&[0x11, 0, 0, 1, 0x40, 0][..], &ip4.build(&tcp443)].concat(),
            ),
        ),
        ("gre", eth4(&Ipv4::new(remote4, client4, 47).build(&[0; 8]))),
    ]
}

fn main() {
    let dir = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/classify")),
        PathBuf::from,
    );
    fs::create_dir_all(&dir).expect("creating the corpus directory");
    let sets = rule_sets();
    let mut written = 0;
    for (i, (name, frame)) in frames().into_iter().enumerate() {
        // Each frame under two rule sets: one that allows much, one that varies with the frame.
        for set in [1, (i % (sets.len() - 1)) + 1]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
        {
            let mut input = vec![set as u8];
            input.extend_from_slice(&frame);
            let slug: String = sets[set]
                .0
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            fs::write(dir.join(format!("{name}@{slug}")), input).expect("writing a seed");
            written += 1;
            // The same packet on an L3 link: no Ethernet header, the link bit set.
            let ether = u16::from_be_bytes([frame[12], frame[13]]);
            if ether == ethertype::IPV4 || ether == ethertype::IPV6 {
                let mut bare = vec![0x80 | set as u8];
                bare.extend_from_slice(&frame[14..]);
                fs::write(dir.join(format!("{name}@l3-{slug}")), bare).expect("writing a seed");
                written += 1;
            }
        }
    }
    println!("wrote {written} seeds to {}", dir.display());
}
