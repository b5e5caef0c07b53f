//! The loaded XDP program against the host classifier, on crafted frames (BPF_PROG_TEST_RUN).
//!
//! Every case runs through the kernel program and through `filter_common::classify` on the host
//! over the same compiled tables. Both must give the verdict and the counter slot the case
//! expects, the kernel must have counted the frame (one packet, its length in bytes) in that
//! slot and in no other, and both fragment maps must hold the same verdicts afterwards (see
//! `gotofw_tests::harness`). The named evasion cases are in `evasion.rs`, random hostile frames
//! in `differential.rs`.

use std::net::IpAddr;

use filter_common::{ethertype, ipproto, ppp};
use filter_user::{
    compile::{FlowLimits, Mode},
    frame::{self, Ipv4, Ipv6, ethernet, icmp, ipv6_ext, ipv6_fragment, tcp, udp},
    scenario::{Allowance, Options, Protocol, Scenario, TurnDst},
};
use gotofw_tests::{
    harness::{
        ALLOW, BLOCK, CLIENT4, CLIENT6, DEFAULT, Framing, Harness, MALFORMED, MALFORMED_DECISION,
        MAX_TEST_RUN_FRAME, UNSUPPORTED, XDP_DROP, XDP_PASS, reply_tcp, reply_udp, sock, v4, v6,
        verdict_word,
    },
    require_root_or_skip,
};

/// The TURN networks: first address, last address, first address past the end, last before.
const TURN_EDGES: [(&str, &str, &str, &str); 5] = [
    ("68.64.0.0", "68.64.31.255", "68.64.32.0", "68.63.255.255"),
    (
        "173.199.0.0",
        "173.199.63.255",
        "173.199.64.0",
        "173.198.255.255",
    ),
    (
        "78.108.124.0",
        "78.108.125.255",
        "78.108.126.0",
        "78.108.123.255",
    ),
    (
        "202.173.24.0",
        "202.173.31.255",
        "202.173.32.0",
        "202.173.23.255",
    ),
    (
        "23.239.224.0",
        "23.239.255.255",
        "23.240.0.0",
        "23.239.223.255",
    ),
];

fn scenario_cases(h: &mut Harness, sc: Scenario, turn_any: bool) {
    // TURN networks: edges, UDP and TCP 3478.
    for (first, last, past, before) in TURN_EDGES {
        for (addr, inside) in [(first, true), (last, true), (past, false), (before, false)] {
            let udp_want = match sc {
                Scenario::UdpTurn if inside || turn_any => (ALLOW, "turn-udp"),
                _ => DEFAULT,
            };
            h.check(
                &format!("udp from {addr}:3478"),
                &reply_udp(&format!("{addr}:3478")),
                udp_want,
            );
            let tcp_want = match sc {
                Scenario::TcpTurn if inside => (ALLOW, "turn-tcp"),
                _ => DEFAULT,
            };
            h.check(
                &format!("tcp from {addr}:3478"),
                &reply_tcp(&format!("{addr}:3478")),
                tcp_want,
            );
        }
    }
    // The media port range and its edges.
    for (port, inside) in [
        (44_999, false),
        (45_000, true),
        (47_500, true),
        (49_999, true),
        (50_000, false),
    ] {
        let want = if sc == Scenario::NoRestrictions && inside {
            (ALLOW, "media-udp")
        } else {
            DEFAULT
        };
        h.check(
            &format!("udp from media port {port}"),
            &reply_udp(&format!("203.0.113.10:{port}")),
            want,
        );
        h.check(
            &format!("udp from media port {port}, IPv6"),
            &reply_udp(&format!("[2001:db8:5::10]:{port}")),
            want,
        );
    }
    // TCP 443: every scenario, any address, both families; UDP 443 never.
    for from in ["203.0.113.10:443", "68.64.0.10:443", "[2001:db8:5::10]:443"] {
        h.check(
            &format!("tcp from {from}"),
            &reply_tcp(from),
            (ALLOW, "https"),
        );
        h.check(&format!("udp from {from}"), &reply_udp(from), DEFAULT);
    }
    // A port no rule names.
    h.check("tcp from port 80", &reply_tcp("68.64.0.10:80"), DEFAULT);
    // IPv6 from TURN port: the seed's networks are IPv4 only.
    let v6_turn = match sc {
        Scenario::UdpTurn if turn_any => (ALLOW, "turn-udp"),
        _ => DEFAULT,
    };
    h.check(
        "udp from [2001:db8:5::10]:3478",
        &reply_udp("[2001:db8:5::10]:3478"),
        v6_turn,
    );
}

/// Parsing cases: the same expectations in every scenario (they use TCP 443 and the allowances).
fn parsing_cases(h: &mut Harness) {
    let https = (ALLOW, "https");
    let src = v4("203.0.113.10");
    let dst = v4("192.0.2.1");
    let tcp443 = tcp(443, 50_000, b"");
    let ip4 = Ipv4::new(src, dst, ipproto::TCP);

    // VLAN tags.
    let inner = ip4.build(&tcp443);
    h.check(
        "802.1Q",
        &ethernet(&[(ethertype::VLAN, 7)], ethertype::IPV4, &inner),
        https,
    );
    h.check(
        "802.1ad + 802.1Q",
        &ethernet(
            &[(ethertype::QINQ, 7), (ethertype::VLAN, 8)],
            ethertype::IPV4,
            &inner,
        ),
        https,
    );
    h.check(
        "three tags",
        &ethernet(
            &[
                (ethertype::QINQ, 7),
                (ethertype::VLAN, 8),
                (ethertype::VLAN, 9),
            ],
            ethertype::IPV4,
            &inner,
        ),
        (BLOCK, "unsupported"),
    );
    let ip6 = Ipv6::new(v6("2001:db8:5::10"), v6("2001:db8::1"), ipproto::TCP);
    h.check(
        "802.1Q IPv6",
        &ethernet(
            &[(ethertype::VLAN, 7)],
            ethertype::IPV6,
            &ip6.build(&tcp443),
        ),
        https,
    );
    // VLAN tag cut short.
    let mut cut = ethernet(&[(ethertype::VLAN, 7)], ethertype::IPV4, &[]);
    cut.truncate(16);
    h.check("truncated VLAN tag", &cut, MALFORMED);

    // IPv4 options.
    let mut with_opts = ip4.clone();
    with_opts.options = vec![1, 1, 1, 0];
    h.check(
        "IPv4 options (IHL 6)",
        &ethernet(&[], ethertype::IPV4, &with_opts.build(&tcp443)),
        https,
    );
    with_opts.options = vec![1; 40];
    h.check(
        "IPv4 options (IHL 15)",
        &ethernet(&[], ethertype::IPV4, &with_opts.build(&tcp443)),
        https,
    );

    // Truncated and inconsistent IPv4.
    let good = ethernet(&[], ethertype::IPV4, &inner);
    h.check("IPv4 header cut at 10 bytes", &good[..24], MALFORMED);
    h.check(
        "TCP header cut at 10 bytes",
        &good[..14 + 20 + 10],
        MALFORMED,
    );
    let mut bad = good.clone();
    bad[14] = 0x44; // IHL 4
    h.check("IPv4 IHL 4", &bad, MALFORMED);
    let mut bad = good.clone();
    bad[14] = 0x4f; // IHL 15, past the packet
    h.check("IPv4 IHL past the packet", &bad, MALFORMED);
    let mut bad = good.clone();
    bad[14] = 0x65; // version 6 in an IPv4 ethertype
    h.check("IPv4 version 6", &bad, MALFORMED);
    let mut bad = good.clone();
    bad[16..18].copy_from_slice(&500u16.to_be_bytes());
    h.check("IPv4 total length past the frame", &bad, MALFORMED);
    let mut bad = good.clone();
    bad[16..18].copy_from_slice(&19u16.to_be_bytes());
    h.check("IPv4 total length under the header", &bad, MALFORMED);
    let mut bad = good.clone();
    bad[14 + 20 + 12] = 4 << 4;
    h.check("TCP data offset 4", &bad, MALFORMED);
    let mut bad = good.clone();
    bad[14 + 20 + 12] = 15 << 4;
    h.check("TCP data offset past the packet", &bad, MALFORMED);
    // Ethernet padding after a short IPv4 packet is fine.
    let mut padded = good.clone();
    padded.extend_from_slice(&[0; 6]);
    h.check("Ethernet padding", &padded, https);

    // UDP lengths.
    let dns = udp(53, 50_000, b"answer");
    let dns_frame = ethernet(
        &[],
        ethertype::IPV4,
        &Ipv4::new(src, dst, ipproto::UDP).build(&dns),
    );
    h.check("DNS reply", &dns_frame, (ALLOW, "dns"));
    let mut bad = dns_frame.clone();
    bad[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&0u16.to_be_bytes());
    h.check("UDP length 0", &bad, MALFORMED);
    let mut bad = dns_frame.clone();
    bad[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&200u16.to_be_bytes());
    h.check("UDP length past the packet", &bad, MALFORMED);

    // Other protocols.
    let gre = ethernet(
        &[],
        ethertype::IPV4,
        &Ipv4::new(src, dst, 47).build(&[0; 8]),
    );
    h.check("GRE", &gre, DEFAULT);

    // Fragments (IPv4): the first is judged, later ones follow it.
    let frag_udp = udp(443, 50_000, &[0; 32]);
    let first = Ipv4 {
        id: 0x4242,
        flags_frag: 0x2000,
        ..Ipv4::new(src, dst, ipproto::TCP)
    };
    h.check(
        "first fragment",
        &ethernet(
            &[],
            ethertype::IPV4,
            &first.build(&tcp(443, 50_000, &[0; 16])),
        ),
        https,
    );
    let second = Ipv4 {
        flags_frag: 0x2000 | 5,
        ..first.clone()
    };
    h.check(
        "second fragment",
        &ethernet(&[], ethertype::IPV4, &second.build(&[0; 40])),
        https,
    );
    let last = Ipv4 {
        flags_frag: 10,
        ..first.clone()
    };
    h.check(
        "last fragment",
        &ethernet(&[], ethertype::IPV4, &last.build(&[0; 8])),
        https,
    );
    let orphan = Ipv4 {
        id: 0x4343,
        flags_frag: 5,
        ..first.clone()
    };
    h.check(
        "fragment without a first",
        &ethernet(&[], ethertype::IPV4, &orphan.build(&[0; 8])),
        (BLOCK, "fragment-unknown"),
    );
    let overlap = Ipv4 {
        flags_frag: 1,
        ..first.clone()
    };
    h.check(
        "fragment overlapping the TCP header",
        &ethernet(&[], ethertype::IPV4, &overlap.build(&[0; 8])),
        MALFORMED,
    );
    let blocked_first = Ipv4 {
        id: 0x4444,
        flags_frag: 0x2000,
        ..Ipv4::new(src, dst, ipproto::UDP)
    };
    // A first fragment's UDP length is the whole datagram's: 24 bytes here, 40 in the next.
    let mut first_udp = udp(9, 50_000, &[0; 16]);
    first_udp[4..6].copy_from_slice(&64u16.to_be_bytes());
    h.check(
        "blocked first fragment",
        &ethernet(&[], ethertype::IPV4, &blocked_first.build(&first_udp)),
        DEFAULT,
    );
    let short = Ipv4 {
        id: 0x4646,
        ..blocked_first.clone()
    };
    h.check(
        "UDP first fragment whose datagram length ends inside it",
        &ethernet(
            &[],
            ethertype::IPV4,
            &short.build(&udp(443, 50_000, &[0; 16])),
        ),
        MALFORMED,
    );
    let blocked_second = Ipv4 {
        flags_frag: 3,
        ..blocked_first
    };
    h.check(
        "fragment after a blocked first",
        &ethernet(&[], ethertype::IPV4, &blocked_second.build(&frag_udp)),
        DEFAULT,
    );
    let tiny = Ipv4 {
        id: 0x4545,
        flags_frag: 0x2000,
        ..Ipv4::new(src, dst, ipproto::TCP)
    };
    h.check(
        "tiny first fragment (ports in the next)",
        &ethernet(&[], ethertype::IPV4, &tiny.build(&tcp443[..8])),
        MALFORMED,
    );

    // IPv6 extension headers and fragments.
    let mut chain = ip6.clone();
    chain.next = 0;
    chain.ext = [ipv6_ext(60, 0), ipv6_ext(ipproto::TCP, 1)].concat();
    h.check(
        "IPv6 hop-by-hop + destination options",
        &ethernet(&[], ethertype::IPV6, &chain.build(&tcp443)),
        https,
    );
    let mut long = ip6.clone();
    long.next = 60;
    long.ext = (0..9)
        .flat_map(|i| ipv6_ext(if i == 8 { ipproto::TCP } else { 60 }, 0))
        .collect();
    h.check(
        "IPv6 chain of nine extension headers",
        &ethernet(&[], ethertype::IPV6, &long.build(&tcp443)),
        (BLOCK, "unsupported"),
    );
    let mut eight = ip6.clone();
    eight.next = 60;
    eight.ext = (0..7)
        .flat_map(|i| ipv6_ext(if i == 6 { ipproto::TCP } else { 60 }, 0))
        .collect();
    h.check(
        "IPv6 chain of seven extension headers",
        &ethernet(&[], ethertype::IPV6, &eight.build(&tcp443)),
        https,
    );
    let mut cut_ext = ip6.clone();
    cut_ext.next = 60;
    cut_ext.ext = ipv6_ext(ipproto::TCP, 4);
    let mut bytes = ethernet(&[], ethertype::IPV6, &cut_ext.build(&[]));
    bytes.truncate(14 + 40 + 16);
    let plen = (bytes.len() - 54) as u16;
    bytes[18..20].copy_from_slice(&plen.to_be_bytes());
    h.check("IPv6 extension header past the payload", &bytes, MALFORMED);
    let mut f1 = ip6.clone();
    f1.next = 44;
    f1.ext = ipv6_fragment(ipproto::TCP, 0, true, 0xabcd);
    h.check(
        "IPv6 first fragment",
        &ethernet(&[], ethertype::IPV6, &f1.build(&tcp443)),
        https,
    );
    let mut f2 = ip6.clone();
    f2.next = 44;
    f2.ext = ipv6_fragment(ipproto::TCP, 24, false, 0xabcd);
    h.check(
        "IPv6 later fragment",
        &ethernet(&[], ethertype::IPV6, &f2.build(&[0; 16])),
        https,
    );
    f2.ext = ipv6_fragment(ipproto::TCP, 24, false, 0xabce);
    h.check(
        "IPv6 fragment without a first",
        &ethernet(&[], ethertype::IPV6, &f2.build(&[0; 16])),
        (BLOCK, "fragment-unknown"),
    );
    let mut f3 = ip6.clone();
    f3.next = 44;
    f3.ext = [
        ipv6_fragment(60, 0, true, 0xabcf),
        ipv6_ext(ipproto::TCP, 0),
    ]
    .concat();
    h.check(
        "IPv6 fragment header then more extension headers",
        &ethernet(&[], ethertype::IPV6, &f3.build(&tcp443)),
        https,
    );
    let mut two = ip6.clone();
    two.next = 44;
    two.ext = [
        ipv6_fragment(44, 0, true, 1),
        ipv6_fragment(ipproto::TCP, 0, true, 2),
    ]
    .concat();
    h.check(
        "two IPv6 fragment headers",
        &ethernet(&[], ethertype::IPV6, &two.build(&tcp443)),
        MALFORMED,
    );
    let good6 = ethernet(&[], ethertype::IPV6, &ip6.build(&tcp443));
    h.check("IPv6 header cut", &good6[..14 + 30], MALFORMED);
    let mut bad6 = good6.clone();
    bad6[18..20].copy_from_slice(&400u16.to_be_bytes());
    h.check("IPv6 payload length past the frame", &bad6, MALFORMED);
    let mut jumbo = good6.clone();
    jumbo[18..20].copy_from_slice(&0u16.to_be_bytes());
    h.check("IPv6 payload length 0", &jumbo, (BLOCK, "unsupported"));
}

/// The allowances, switched on (`on` = true) or all off.
fn allowance_cases(h: &mut Harness, on: bool) {
    let pass = |name: &'static str| if on { (ALLOW, name) } else { DEFAULT };
    // ARP.
    let arp = ethernet(&[], 0x0806, &[0; 28]);
    h.check("ARP", &arp, pass("non-ip"));
    h.check(
        "ARP, 802.1Q",
        &ethernet(&[(ethertype::VLAN, 3)], 0x0806, &[0; 28]),
        pass("non-ip"),
    );
    h.check(
        "PPPoE session header of zeros",
        &ethernet(&[], ethertype::PPPOE_SESSION, &[0; 28]),
        MALFORMED,
    );
    // PPPoE discovery and PPP control protocols: the pppoe-control allowance.
    h.check(
        "PPPoE discovery (PADI)",
        &ethernet(
            &[],
            ethertype::PPPOE_DISCOVERY,
            &frame::pppoe_discovery(0x09, 0, &[0x01, 0x01, 0, 0]),
        ),
        pass("pppoe-control"),
    );
    for (name, proto) in [
        ("LCP", ppp::LCP),
        ("IPCP", ppp::IPCP),
        ("IPv6CP", ppp::IPV6CP),
    ] {
        // An LCP echo request: code 9, id 1, length 8, magic number.
        let lcp = [9, 1, 0, 8, 0x12, 0x34, 0x56, 0x78];
        h.check(
            &format!("PPPoE session, {name}"),
            &ethernet(
                &[(ethertype::VLAN, 7)],
                ethertype::PPPOE_SESSION,
                &frame::pppoe_session(0x0101, proto, &lcp),
            ),
            pass("pppoe-control"),
        );
    }

    // Neighbour discovery needs hop limit 255.
    let router = v6("fe80::1");
    let me = v6("fe80::2");
    let mut nd = Ipv6::new(router, me, ipproto::ICMPV6);
    nd.hop_limit = 255;
    let ns_msg = icmp(135, 0, &[0; 16]);
    h.check(
        "neighbour solicitation",
        &ethernet(&[], ethertype::IPV6, &nd.build(&ns_msg)),
        pass("icmpv6-nd"),
    );
    h.check(
        "router advertisement",
        &ethernet(&[], ethertype::IPV6, &nd.build(&icmp(134, 0, &[0; 8]))),
        pass("icmpv6-nd"),
    );
    nd.hop_limit = 64;
    h.check(
        "neighbour solicitation, hop limit 64",
        &ethernet(&[], ethertype::IPV6, &nd.build(&ns_msg)),
        DEFAULT,
    );
    let echo6 = Ipv6::new(v6("2001:db8:5::10"), v6("2001:db8::1"), ipproto::ICMPV6);
    h.check(
        "ICMPv6 echo reply",
        &ethernet(&[], ethertype::IPV6, &echo6.build(&icmp(129, 0, &[]))),
        DEFAULT,
    );
    h.check(
        "ICMPv6 cut",
        &ethernet(&[], ethertype::IPV6, &echo6.build(&[1, 0, 0])),
        MALFORMED,
    );

    // ICMP errors quoting an allowed and a blocked packet.
    let us = v4("192.0.2.1");
    let quoted_ok = Ipv4::new(us, v4("203.0.113.10"), ipproto::TCP).build(&tcp(50_000, 443, b""));
    let quoted_bad = Ipv4::new(us, v4("203.0.113.10"), ipproto::TCP).build(&tcp(50_000, 80, b""));
    let router4 = v4("198.51.100.1");
    let err = |quoted: &[u8]| {
        ethernet(
            &[],
            ethertype::IPV4,
            &Ipv4::new(router4, us, ipproto::ICMP).build(&icmp(3, 4, &quoted[..28])),
        )
    };
    h.check(
        "ICMP frag-needed quoting TCP 443",
        &err(&quoted_ok),
        pass("icmp-errors"),
    );
    h.check(
        "ICMP unreachable quoting TCP 80",
        &err(&quoted_bad),
        DEFAULT,
    );
    let echo = ethernet(
        &[],
        ethertype::IPV4,
        &Ipv4::new(router4, us, ipproto::ICMP).build(&icmp(0, 0, &[0; 8])),
    );
    h.check("ICMP echo reply", &echo, DEFAULT);
    let short = ethernet(
        &[],
        ethertype::IPV4,
        &Ipv4::new(router4, us, ipproto::ICMP).build(&icmp(3, 4, &quoted_ok[..10])),
    );
    h.check(
        "ICMP error quoting a cut header",
        &short,
        if on { MALFORMED } else { DEFAULT },
    );
    let us6 = v6("2001:db8::1");
    let q6 = Ipv6::new(us6, v6("2001:db8:5::10"), ipproto::TCP).build(&tcp(50_000, 443, b""));
    let too_big = ethernet(
        &[],
        ethertype::IPV6,
        &Ipv6::new(v6("2001:db8:9::1"), us6, ipproto::ICMPV6).build(&icmp(2, 0, &q6[..48])),
    );
    h.check(
        "ICMPv6 packet too big quoting TCP 443",
        &too_big,
        pass("icmp-errors"),
    );

    // DHCP: server port to client port only.
    let dhcp = |sport, dport| {
        ethernet(
            &[],
            ethertype::IPV4,
            &Ipv4::new(v4("192.0.2.254"), v4("255.255.255.255"), ipproto::UDP)
                .build(&udp(sport, dport, &[0; 32])),
        )
    };
    h.check("DHCPv4 offer", &dhcp(67, 68), pass("dhcp"));
    h.check("UDP from 67 to another port", &dhcp(67, 80), DEFAULT);
    let dhcp6 = ethernet(
        &[],
        ethertype::IPV6,
        &Ipv6::new(v6("fe80::1"), v6("fe80::2"), ipproto::UDP).build(&udp(547, 546, &[0; 32])),
    );
    h.check("DHCPv6 advertise", &dhcp6, pass("dhcp"));
    // DNS and NTP.
    h.check("DNS over TCP", &reply_tcp("198.51.100.53:53"), pass("dns"));
    h.check("NTP", &reply_udp("198.51.100.123:123"), pass("ntp"));
}

#[test]
fn every_scenario_kernel_and_host_agree() {
    if !require_root_or_skip("every_scenario_kernel_and_host_agree") {
        return;
    }
    for sc in Scenario::ALL {
        let mut h = Harness::new(sc.name(), &Options::new(sc));
        scenario_cases(&mut h, sc, false);
        parsing_cases(&mut h);
        allowance_cases(&mut h, true);
    }
    let mut any = Options::new(Scenario::UdpTurn);
    any.turn_dst = TurnDst::Any;
    let mut h = Harness::new("udp-turn, turn-dst any", &any);
    scenario_cases(&mut h, Scenario::UdpTurn, true);
}

/// Every scenario's cases on an L3 link (bare IP) and in PPPoE sessions (untagged and behind two
/// VLAN tags): the same verdicts and slots as on Ethernet, kernel and host alike.
#[test]
fn l3_links_and_pppoe_sessions_get_ethernets_verdicts() {
    if !require_root_or_skip("l3_links_and_pppoe_sessions_get_ethernets_verdicts") {
        return;
    }
    let framings = [
        ("bare IP", Framing::Ip),
        ("PPPoE", Framing::Pppoe(vec![])),
        (
            "PPPoE, QinQ",
            Framing::Pppoe(vec![(ethertype::QINQ, 10), (ethertype::VLAN, 20)]),
        ),
    ];
    for (what, framing) in framings {
        for sc in Scenario::ALL {
            let label = format!("{}, {what}", sc.name());
            let mut h = Harness::with(&label, &Options::new(sc), &Mode::Stateless, framing.clone());
            scenario_cases(&mut h, sc, false);
            h.check(
                "DNS over TCP",
                &reply_tcp("198.51.100.53:53"),
                (ALLOW, "dns"),
            );
            h.check("NTP", &reply_udp("198.51.100.123:123"), (ALLOW, "ntp"));
        }
    }
}

/// What is not a well-formed IP packet on an L3 link, or in a PPPoE session, is dropped and
/// counted; never passed as `non-ip` because its header was misread.
#[test]
fn l3_and_pppoe_frames_that_lie_are_dropped() {
    if !require_root_or_skip("l3_and_pppoe_frames_that_lie_are_dropped") {
        return;
    }
    let turn = reply_udp("68.64.0.10:3478");
    let ip = &turn[14..];
    // L3: the frame is the IP packet.
    let mut l3 = Harness::with(
        "udp-turn, L3",
        &Options::new(Scenario::UdpTurn),
        &Mode::Stateless,
        Framing::Ip,
    );
    let allowed = l3.run(ip).unwrap();
    assert_eq!(
        verdict_word(allowed.kernel),
        ALLOW,
        "bare IPv4 to a TURN network"
    );
    for (case, bytes, want) in [
        ("an Ethernet frame on an L3 link", turn.clone(), MALFORMED),
        (
            "ARP on an L3 link",
            ethernet(&[], 0x0806, &[0; 28]),
            MALFORMED,
        ),
        ("version 5", [&[0x55][..], &ip[1..]].concat(), MALFORMED),
        ("version 0", vec![0; 40], MALFORMED),
        ("cut IPv4 header", ip[..19].to_vec(), MALFORMED),
    ] {
        l3.check_raw(case, &bytes, want);
    }
    // PPPoE: the session header must tell the truth.
    let mut pppoe = Harness::new("udp-turn, PPPoE", &Options::new(Scenario::UdpTurn));
    let session = |proto: u16, payload: &[u8]| {
        ethernet(
            &[],
            ethertype::PPPOE_SESSION,
            &frame::pppoe_session(0x0101, proto, payload),
        )
    };
    let good = session(ppp::IPV4, ip);
    pppoe.check("inner UDP to a TURN network", &good, (ALLOW, "turn-udp"));
    let with_length = |len: u16| {
        let mut f = good.clone();
        f[18..20].copy_from_slice(&len.to_be_bytes());
        f
    };
    let exact = u16::try_from(2 + ip.len()).unwrap();
    pppoe.check(
        "PPPoE length past the frame",
        &with_length(exact + 1),
        MALFORMED,
    );
    pppoe.check(
        "PPPoE length cutting the IP packet",
        &with_length(exact - 1),
        MALFORMED,
    );
    pppoe.check("PPPoE length 0", &with_length(0), MALFORMED);
    for cut in [15, 19, 21] {
        pppoe.check(&format!("cut at {cut}"), &good[..cut], MALFORMED);
    }
    let mut code = good.clone();
    code[15] = 0x65;
    pppoe.check("a discovery code in a session", &code, MALFORMED);
    let mut version = good.clone();
    version[14] = 0x21;
    pppoe.check("PPPoE version 2", &version, MALFORMED);
    pppoe.check(
        "a compressed PPP protocol field",
        &ethernet(
            &[],
            ethertype::PPPOE_SESSION,
            &[
                &[0x11, 0, 1, 1],
                &(exact - 1).to_be_bytes()[..],
                &[0x21],
                ip,
            ]
            .concat(),
        ),
        UNSUPPORTED,
    );
    pppoe.check("PPP protocol 0x0020", &session(0x0020, ip), MALFORMED);
    pppoe.check("PPP MPLS", &session(0x0281, ip), (ALLOW, "non-ip"));
    // The blocked inner packet is blocked, not passed as the frame's ethertype.
    pppoe.check(
        "inner UDP elsewhere",
        &session(ppp::IPV4, &reply_udp("203.0.113.10:3478")[14..]),
        DEFAULT,
    );
    // Discovery must not lie either.
    let padi = frame::pppoe_discovery(0x09, 0, &[0x01, 0x01, 0, 0]);
    let mut lying = padi.clone();
    lying[5] = 5;
    pppoe.check(
        "PPPoE discovery length past the frame",
        &ethernet(&[], ethertype::PPPOE_DISCOVERY, &lying),
        MALFORMED,
    );
}

/// In stateful mode the egress program learns the flow from the packet inside the link layer,
/// on every link: an L3 link's bare IP and a PPPoE session behind a VLAN tag as on Ethernet. The
/// reply passes only once the flow is learned; a blocked packet out is dropped and learns
/// nothing.
#[test]
fn flows_are_learned_from_the_inner_packet_at_egress_on_every_link() {
    /// `TC_ACT_UNSPEC` (tcx: next) and `TC_ACT_SHOT`, as `BPF_PROG_TEST_RUN` returns them.
    const TC_NEXT: i32 = -1;
    const TC_SHOT: i32 = 2;
    if !require_root_or_skip("flows_are_learned_from_the_inner_packet_at_egress_on_every_link") {
        return;
    }
    let turn = "68.64.0.10:3478";
    for (what, framing) in [
        ("Ethernet", Framing::Ethernet),
        ("bare IP", Framing::Ip),
        ("PPPoE, 802.1Q", Framing::Pppoe(vec![(ethertype::VLAN, 7)])),
    ] {
        let h = Harness::with(
            &format!("udp-turn, stateful, {what}"),
            &Options::new(Scenario::UdpTurn),
            &Mode::Stateful(FlowLimits::default()),
            framing.clone(),
        );
        let reply = framing.apply(&reply_udp(turn));
        assert_eq!(
            h.kernel(&reply),
            Ok(XDP_DROP),
            "{what}: a reply before its flow"
        );
        let out = framing.apply(&frame::packet(Protocol::Udp, sock(CLIENT4), sock(turn)));
        assert_eq!(
            h.egress(&out),
            Ok(TC_NEXT),
            "{what}: UDP out to a TURN network"
        );
        let keys = h.flow_keys();
        assert_eq!(keys.len(), 1, "{what}: one flow learned");
        let key = keys[0];
        assert_eq!(
            (key.family, key.proto, key.remote_port, key.local_port),
            (4, ipproto::UDP, 3478, 50_000),
            "{what}: the flow's ports"
        );
        assert_eq!(&key.remote[..4], &v4("68.64.0.10").octets(), "{what}");
        assert_eq!(&key.local[..4], &v4("192.0.2.1").octets(), "{what}");
        assert_eq!(
            h.kernel(&reply),
            Ok(XDP_PASS),
            "{what}: the reply of the flow"
        );
        let elsewhere = framing.apply(&frame::packet(
            Protocol::Udp,
            sock(CLIENT4),
            sock("203.0.113.10:3478"),
        ));
        assert_eq!(
            h.egress(&elsewhere),
            Ok(TC_SHOT),
            "{what}: UDP out elsewhere"
        );
        assert_eq!(
            h.flow_keys().len(),
            1,
            "{what}: a blocked packet learns nothing"
        );
    }
}

#[test]
fn allowances_switched_off_fall_to_the_default_block() {
    if !require_root_or_skip("allowances_switched_off_fall_to_the_default_block") {
        return;
    }
    let mut opts = Options::new(Scenario::Tcp443);
    opts.disabled = Allowance::ALL.to_vec();
    let mut h = Harness::new("tcp-443, no allowances", &opts);
    allowance_cases(&mut h, false);
    h.check(
        "TCP 443 still allowed",
        &reply_tcp("203.0.113.10:443"),
        (ALLOW, "https"),
    );
}

#[test]
fn operator_networks_extend_and_replace_the_turn_list() {
    if !require_root_or_skip("operator_networks_extend_and_replace_the_turn_list") {
        return;
    }
    let mut opts = Options::new(Scenario::UdpTurn);
    opts.turn_networks.push("2001:db8:77::/48".parse().unwrap());
    opts.turn_networks.push("198.51.100.0/25".parse().unwrap());
    let mut h = Harness::new("udp-turn + operator networks", &opts);
    h.check(
        "IPv6 operator network",
        &reply_udp("[2001:db8:77::5]:3478"),
        (ALLOW, "turn-udp"),
    );
    h.check(
        "IPv6 next to it",
        &reply_udp("[2001:db8:78::5]:3478"),
        DEFAULT,
    );
    h.check(
        "IPv4 operator network, last",
        &reply_udp("198.51.100.127:3478"),
        (ALLOW, "turn-udp"),
    );
    h.check("IPv4 past it", &reply_udp("198.51.100.128:3478"), DEFAULT);
    h.check(
        "seed network still in",
        &reply_udp("68.64.0.1:3478"),
        (ALLOW, "turn-udp"),
    );

    opts.turn_networks = vec!["198.51.100.0/24".parse().unwrap()];
    let mut h = Harness::new("udp-turn, replaced networks", &opts);
    h.check(
        "replacement network",
        &reply_udp("198.51.100.200:3478"),
        (ALLOW, "turn-udp"),
    );
    h.check("seed network gone", &reply_udp("68.64.0.1:3478"), DEFAULT);

    // Servers for DNS restrict the allowance to them.
    let mut opts = Options::new(Scenario::Tcp443);
    opts.dns_servers = vec!["198.51.100.53/32".parse().unwrap()];
    let mut h = Harness::new("tcp-443, one resolver", &opts);
    h.check(
        "the resolver",
        &reply_udp("198.51.100.53:53"),
        (ALLOW, "dns"),
    );
    h.check("another resolver", &reply_udp("198.51.100.54:53"), DEFAULT);
}

#[test]
fn ip_helpers_are_consistent() {
    // Not a kernel test: guards the frame builders the table relies on.
    let f = reply_udp("68.64.0.10:3478");
    assert_eq!(f.len(), 14 + 20 + 8 + 6);
    assert!(matches!(sock(CLIENT4).ip(), IpAddr::V4(_)));
    assert_eq!(frame::icmp_proto(sock(CLIENT6).ip()), ipproto::ICMPV6);
}

/// Runs `frame` (longer than one test_run buffer) on both sides and checks `want`, and that the
/// same headers in a short, linear frame give the same verdict and slot.
fn check_multi_buffer(
    h: &mut Harness,
    case: &str,
    frame: &[u8],
    linear: &[u8],
    want: (&str, &str),
) {
    let ctx = format!("[{}] {case}", h.label());
    let run = h
        .run_multi_buffer(frame)
        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
    let got = (verdict_word(run.kernel), h.slot_name(run.kernel.slot));
    assert_eq!((got.0, got.1.as_str()), want, "{ctx}: multi-buffer verdict");
    h.check(&format!("{case}, linear"), linear, want);
}

#[test]
fn multi_buffer_frames_are_classified_by_their_first_buffer() {
    if !require_root_or_skip("multi_buffer_frames_are_classified_by_their_first_buffer") {
        return;
    }
    let mut h = Harness::new("udp-turn, jumbo", &Options::new(Scenario::UdpTurn));
    let (src4, dst4) = (v4("203.0.113.10"), v4("192.0.2.1"));
    let (src6, dst6) = (v6("2001:db8:5::10"), v6("2001:db8::1"));
    // A 9000-byte MTU's frames: 9014 bytes with the Ethernet header, three buffers in test_run.
    let jumbo = vec![0x5a; 9000 - 40];
    for (proto, sport, want) in [
        (ipproto::TCP, 443, (ALLOW, "https")),
        (ipproto::UDP, 9, DEFAULT),
        (ipproto::TCP, 80, DEFAULT),
    ] {
        let l4 = |payload: &[u8]| {
            if proto == ipproto::TCP {
                tcp(sport, 50_000, payload)
            } else {
                udp(sport, 50_000, payload)
            }
        };
        let ip4 = Ipv4::new(src4, dst4, proto);
        let ip6 = Ipv6::new(src6, dst6, proto);
        check_multi_buffer(
            &mut h,
            &format!("IPv4 proto {proto} from port {sport}, 9000 bytes"),
            &ethernet(&[], ethertype::IPV4, &ip4.build(&l4(&jumbo[20..]))),
            &ethernet(&[], ethertype::IPV4, &ip4.build(&l4(b""))),
            want,
        );
        check_multi_buffer(
            &mut h,
            &format!("IPv6 proto {proto} from port {sport}, 9000 bytes"),
            &ethernet(&[], ethertype::IPV6, &ip6.build(&l4(&jumbo[40..]))),
            &ethernet(&[], ethertype::IPV6, &ip6.build(&l4(b""))),
            want,
        );
    }

    // IPv6 extension headers filling the first buffer: the TCP header starts `at` bytes in
    // (`at - 54` a multiple of 8).
    // (Two destination options headers of 2048 and `rest` bytes after the 54 of Ethernet + IPv6.)
    let ext_frame = |at: usize| {
        let rest = at - 54 - 2048;
        let mut ip6 = Ipv6::new(src6, dst6, ipproto::TCP);
        ip6.next = 60;
        ip6.ext = [
            ipv6_ext(60, 255),
            ipv6_ext(ipproto::TCP, u8::try_from(rest / 8 - 1).unwrap()),
        ]
        .concat();
        let frame = ethernet(&[], ethertype::IPV6, &ip6.build(&tcp(443, 50_000, &jumbo)));
        assert_eq!(
            frame[at..at + 4],
            tcp(443, 50_000, b"")[..4],
            "TCP header at {at}"
        );
        frame
    };
    // The whole TCP header in the first buffer: read there, allowed like the linear frame.
    let inside = ext_frame(MAX_TEST_RUN_FRAME - 26);
    let run = h
        .run_multi_buffer(&inside)
        .unwrap_or_else(|e| panic!("TCP header at the end of the first buffer: {e}"));
    assert_eq!(run.kernel, run.host);
    assert_eq!(h.slot_name(run.kernel.slot), "https");
    // The TCP header cut at the end of the first buffer, the rest in the next: the program
    // never reads past the first buffer, so it is a header cut short, malformed and dropped,
    // never passed (the host, reading the frame linear, would allow it).
    let cut = ext_frame(MAX_TEST_RUN_FRAME - 2);
    assert!(
        h.host(&cut).passes(),
        "the cut frame read linear is allowed"
    );
    let (kernel, packets, bytes) = h
        .kernel_counted(&cut)
        .unwrap_or_else(|e| panic!("TCP header cut by the first buffer: {e}"));
    assert_eq!(
        kernel, MALFORMED_DECISION,
        "TCP header cut by the first buffer"
    );
    assert_eq!((packets, bytes), (1, cut.len() as u64));
    // The host reading only the first buffer, as the program does, agrees.
    assert_eq!(h.host(&cut[..MAX_TEST_RUN_FRAME]), MALFORMED_DECISION);
}
