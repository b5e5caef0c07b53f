//! Named evasion cases: frames built to slip past a filter, each through the loaded XDP program
//! and the host classifier (`BPF_PROG_TEST_RUN`), which must both give the verdict and counter
//! slot the test names, count the frame once, and leave the same fragment map behind.
//!
//! Most run under `udp-turn` with the seed's defaults: TCP 443 from anywhere is allowed (`https`),
//! so a frame that passes by mistake shows as `allow https`.

use filter_common::{ethertype, ipproto};
use filter_user::frame::{Ipv4, Ipv6, ethernet, icmp, ipv6_ext, ipv6_fragment, tcp, udp};
use gotofw_tests::{
    harness::{
        ALLOW, DEFAULT, FRAGMENT_UNKNOWN, Harness, MALFORMED, UNSUPPORTED, reply_udp, rule_set, v4,
        v6,
    },
    require_root_or_skip,
};

const HTTPS: (&str, &str) = (ALLOW, "https");
const ICMP_ERRORS: (&str, &str) = (ALLOW, "icmp-errors");

/// The remote end of the test traffic and the client behind the firewall.
const REMOTE4: &str = "203.0.113.10";
const CLIENT4: &str = "192.0.2.1";
const REMOTE6: &str = "2001:db8:5::10";
const CLIENT6: &str = "2001:db8::1";

/// Offset of the IP header in an untagged frame.
const IP: usize = 14;

/// A harness for the rule set `label` of `harness::rule_sets()`, or `None` when the test may
/// skip (not root, outside CI).
fn harness(test: &str, label: &str) -> Option<Harness> {
    if !require_root_or_skip(test) {
        return None;
    }
    let options = rule_set(label).unwrap_or_else(|| panic!("no rule set {label}"));
    Some(Harness::new(&format!("{test}, {label}"), &options))
}

fn eth4(packet: &[u8]) -> Vec<u8> {
    ethernet(&[], ethertype::IPV4, packet)
}

fn eth6(packet: &[u8]) -> Vec<u8> {
    ethernet(&[], ethertype::IPV6, packet)
}

/// An IPv4 header from the remote end to the client.
fn ip4(proto: u8) -> Ipv4 {
    Ipv4::new(v4(REMOTE4), v4(CLIENT4), proto)
}

/// An IPv6 header from the remote end to the client.
fn ip6(next: u8) -> Ipv6 {
    Ipv6::new(v6(REMOTE6), v6(CLIENT6), next)
}

/// A TCP segment from port 443 (allowed in every scenario) with `payload`.
fn tcp443(payload: &[u8]) -> Vec<u8> {
    tcp(443, 50_000, payload)
}

/// An IPv4 fragment of a TCP datagram with id `id`: `offset` in 8-byte units.
fn frag4(id: u16, offset: u16, more: bool, payload: &[u8]) -> Vec<u8> {
    let header = Ipv4 {
        id,
        flags_frag: (u16::from(more) << 13) | offset,
        ..ip4(ipproto::TCP)
    };
    eth4(&header.build(payload))
}

/// Sets the 16-bit big-endian field at `at`.
fn set16(frame: &mut [u8], at: usize, value: u16) {
    frame[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

#[test]
fn evasion_ipv4_ihl_below_5() {
    let Some(mut h) = harness("evasion_ipv4_ihl_below_5", "udp-turn") else {
        return;
    };
    let good = eth4(&ip4(ipproto::TCP).build(&tcp443(b"")));
    h.check("IHL 5 (control)", &good, HTTPS);
    for ihl in 0..5u8 {
        let mut bad = good.clone();
        bad[IP] = 0x40 | ihl;
        h.check(&format!("IHL {ihl}"), &bad, MALFORMED);
    }
}

#[test]
fn evasion_ipv4_ihl_past_the_packet() {
    let Some(mut h) = harness("evasion_ipv4_ihl_past_the_packet", "udp-turn") else {
        return;
    };
    let good = eth4(&ip4(ipproto::TCP).build(&tcp443(b"")));
    // IHL 15 (60 bytes) in a 40-byte packet.
    let mut bad = good.clone();
    bad[IP] = 0x4f;
    h.check("IHL 15 in a 40-byte packet", &bad, MALFORMED);
    // IHL 15 with the frame long enough (Ethernet padding) but the total length not.
    let mut padded = bad.clone();
    padded.resize(padded.len() + 40, 0);
    h.check(
        "IHL 15, header inside the frame's padding",
        &padded,
        MALFORMED,
    );
    // IHL 6: the "options" are the ports, and the TCP header read 4 bytes on is cut.
    let mut shifted = good.clone();
    shifted[IP] = 0x46;
    h.check("IHL 6 over the TCP header", &shifted, MALFORMED);
}

#[test]
fn evasion_ipv4_total_length_below_the_header() {
    let Some(mut h) = harness("evasion_ipv4_total_length_below_the_header", "udp-turn") else {
        return;
    };
    let good = eth4(&ip4(ipproto::TCP).build(&tcp443(b"")));
    for total in [0u16, 1, 19] {
        let mut bad = good.clone();
        set16(&mut bad, IP + 2, total);
        h.check(&format!("total length {total}"), &bad, MALFORMED);
    }
    // The header alone: the TCP header that follows in the frame is padding, not packet.
    let mut bad = good.clone();
    set16(&mut bad, IP + 2, 20);
    h.check(
        "total length 20, TCP header in the padding",
        &bad,
        MALFORMED,
    );
    let mut bad = good.clone();
    set16(&mut bad, IP + 2, 39);
    h.check(
        "total length one byte short of the TCP header",
        &bad,
        MALFORMED,
    );
}

#[test]
fn evasion_ipv4_total_length_past_the_frame() {
    let Some(mut h) = harness("evasion_ipv4_total_length_past_the_frame", "udp-turn") else {
        return;
    };
    let good = eth4(&ip4(ipproto::TCP).build(&tcp443(b"")));
    for total in [41u16, 500, u16::MAX] {
        let mut bad = good.clone();
        set16(&mut bad, IP + 2, total);
        h.check(
            &format!("total length {total} in 40 bytes"),
            &bad,
            MALFORMED,
        );
    }
}

/// RFC 1858: a first fragment too small to hold the TCP header, so that a filter that reads only
/// what is there judges flags or ports the receiver will not see.
#[test]
fn evasion_rfc1858_tiny_fragment() {
    let Some(mut h) = harness("evasion_rfc1858_tiny_fragment", "udp-turn") else {
        return;
    };
    let segment = tcp443(&[0; 24]);
    // Eight bytes of TCP: the ports, not the flags or the data offset.
    h.check(
        "first fragment with 8 bytes of TCP",
        &frag4(0x1858, 0, true, &segment[..8]),
        MALFORMED,
    );
    // The verdict is remembered: the fragments that carry the rest follow it.
    h.check(
        "its second fragment (offset 8, over the TCP header)",
        &frag4(0x1858, 1, true, &segment[8..16]),
        MALFORMED,
    );
    h.check(
        "its last fragment (offset 24, past the TCP header)",
        &frag4(0x1858, 3, false, &segment[24..]),
        MALFORMED,
    );
    // Nothing of TCP at all: the ports would be in the next fragment.
    h.check(
        "first fragment with no TCP bytes",
        &frag4(0x1859, 0, true, &[]),
        MALFORMED,
    );
    h.check(
        "its next fragment at offset 24",
        &frag4(0x1859, 3, false, &segment[24..]),
        MALFORMED,
    );
    // UDP with four of its eight header bytes (not a multiple of 8, but sent anyway).
    let dns = udp(53, 50_000, &[0; 16]);
    let first = Ipv4 {
        id: 0x185a,
        flags_frag: 0x2000,
        ..ip4(ipproto::UDP)
    };
    h.check(
        "UDP first fragment with 4 header bytes",
        &eth4(&first.build(&dns[..4])),
        MALFORMED,
    );
    // A first fragment that holds the whole TCP header is judged on it (control).
    h.check(
        "first fragment with the whole TCP header",
        &frag4(0x185b, 0, true, &segment[..24]),
        HTTPS,
    );
}

/// RFC 3128: a later fragment with offset 1 (8 bytes) overwrites the TCP header of an allowed
/// first fragment, rewriting flags or ports after the filter judged them.
#[test]
fn evasion_rfc3128_overlapping_fragment() {
    let Some(mut h) = harness("evasion_rfc3128_overlapping_fragment", "udp-turn") else {
        return;
    };
    let segment = tcp443(&[0; 24]);
    h.check(
        "allowed first fragment",
        &frag4(0x3128, 0, true, &segment[..24]),
        HTTPS,
    );
    // Offset 1 and 2 (bytes 8 and 16) lie inside the 20-byte TCP header.
    let rewrite = tcp(443, 22, &[])[..8].to_vec();
    h.check(
        "offset 1 over the TCP header",
        &frag4(
            0x3128,
            1,
            true,
            &[rewrite.clone(), rewrite.clone()].concat(),
        ),
        MALFORMED,
    );
    h.check(
        "offset 2 over the TCP header",
        &frag4(0x3128, 2, true, &rewrite),
        MALFORMED,
    );
    // Offset 3 (byte 24) is past it: the datagram's fragments follow the first.
    h.check(
        "offset 3, past the TCP header",
        &frag4(0x3128, 3, false, &segment[24..]),
        HTTPS,
    );
    // A second first fragment of the same datagram replaces the verdict: the fragments after it
    // follow the newer header (a receiver discards the overlapping datagram anyway).
    h.check(
        "another first fragment, from port 22",
        &frag4(0x3128, 0, true, &tcp(22, 50_000, &[0; 4])),
        DEFAULT,
    );
    h.check(
        "a later fragment after it",
        &frag4(0x3128, 3, false, &segment[24..]),
        DEFAULT,
    );
}

#[test]
fn evasion_fragment_without_first() {
    let Some(mut h) = harness("evasion_fragment_without_first", "udp-turn") else {
        return;
    };
    h.check(
        "IPv4 later fragment, no first",
        &frag4(0x0bad, 5, false, &[0; 16]),
        FRAGMENT_UNKNOWN,
    );
    h.check(
        "IPv4 middle fragment, no first",
        &frag4(0x0bad, 3, true, &[0; 16]),
        FRAGMENT_UNKNOWN,
    );
    // A known first fragment does not vouch for other datagrams: another id, protocol or source.
    h.check(
        "first fragment",
        &frag4(0x0bae, 0, true, &tcp443(&[0; 4])),
        HTTPS,
    );
    h.check(
        "later fragment, another id",
        &frag4(0x0baf, 3, false, &[0; 8]),
        FRAGMENT_UNKNOWN,
    );
    let other_proto = Ipv4 {
        id: 0x0bae,
        flags_frag: 3,
        ..ip4(ipproto::UDP)
    };
    h.check(
        "later fragment, another protocol",
        &eth4(&other_proto.build(&[0; 8])),
        FRAGMENT_UNKNOWN,
    );
    let other_src = Ipv4 {
        id: 0x0bae,
        flags_frag: 3,
        ..Ipv4::new(v4("203.0.113.11"), v4(CLIENT4), ipproto::TCP)
    };
    h.check(
        "later fragment, another source",
        &eth4(&other_src.build(&[0; 8])),
        FRAGMENT_UNKNOWN,
    );
    let mut f = ip6(44);
    f.ext = ipv6_fragment(ipproto::TCP, 24, false, 0x0bad);
    h.check(
        "IPv6 later fragment, no first",
        &eth6(&f.build(&[0; 16])),
        FRAGMENT_UNKNOWN,
    );
}

#[test]
fn evasion_ipv6_fragment_header_then_extension_headers() {
    let Some(mut h) = harness(
        "evasion_ipv6_fragment_header_then_extension_headers",
        "udp-turn",
    ) else {
        return;
    };
    // Fragment header, destination options, then TCP: the parser walks on past the fragment
    // header and judges the TCP header.
    let mut first = ip6(44);
    first.ext = [
        ipv6_fragment(60, 0, true, 0x6060),
        ipv6_ext(ipproto::TCP, 0),
    ]
    .concat();
    h.check(
        "first fragment: fragment, destination options, TCP 443",
        &eth6(&first.build(&tcp443(&[0; 8]))),
        HTTPS,
    );
    let mut last = ip6(44);
    last.ext = ipv6_fragment(60, 40, false, 0x6060);
    h.check(
        "its last fragment, past the TCP header",
        &eth6(&last.build(&[0; 16])),
        HTTPS,
    );
    // The same shape from a port no rule names.
    let mut blocked = first.clone();
    blocked.ext = [
        ipv6_fragment(60, 0, true, 0x6061),
        ipv6_ext(ipproto::TCP, 0),
    ]
    .concat();
    h.check(
        "first fragment from port 22",
        &eth6(&blocked.build(&tcp(22, 50_000, &[]))),
        DEFAULT,
    );
    // An extension header cut by the end of the first fragment.
    let mut cut = ip6(44);
    cut.ext = [
        ipv6_fragment(60, 0, true, 0x6062),
        ipv6_ext(ipproto::TCP, 3)[..8].to_vec(),
    ]
    .concat();
    h.check(
        "first fragment ending inside an extension header",
        &eth6(&cut.build(&[])),
        MALFORMED,
    );
    // Two fragment headers.
    let mut two = ip6(44);
    two.ext = [
        ipv6_fragment(44, 0, true, 0x6063),
        ipv6_fragment(ipproto::TCP, 0, true, 0x6063),
    ]
    .concat();
    h.check(
        "two fragment headers",
        &eth6(&two.build(&tcp443(b""))),
        MALFORMED,
    );
}

/// The RFC 3128 overlap behind IPv6 extension headers: with destination options between the
/// fragment header and TCP, a later fragment at offset 8 lands on the TCP header, yet the
/// classifier's overlap check looks at the fragment header's Next Header (60, destination
/// options), for which it knows no transport header to protect, and the fragment takes the
/// allowed first fragment's verdict. Ignored until the classifier is fixed; see
/// tests/regressions/ipv6-overlap-behind-extension-headers.hex.
#[test]
fn evasion_ipv6_overlap_behind_extension_headers() {
    let Some(mut h) = harness("evasion_ipv6_overlap_behind_extension_headers", "udp-turn") else {
        return;
    };
    let mut first = ip6(44);
    first.ext = [
        ipv6_fragment(60, 0, true, 0x3128),
        ipv6_ext(ipproto::TCP, 0),
    ]
    .concat();
    h.check(
        "allowed first fragment: fragment, destination options, TCP 443",
        &eth6(&first.build(&tcp443(&[0; 8]))),
        HTTPS,
    );
    let mut overlap = ip6(44);
    overlap.ext = ipv6_fragment(60, 8, true, 0x3128);
    h.check(
        "offset 8: over the TCP header, rewriting its ports",
        &eth6(&overlap.build(&tcp(443, 22, &[])[..16])),
        MALFORMED,
    );
}

/// Not an evasion but its mirror image, found writing the one above: the first fragment of a
/// fragmented UDP datagram carries the UDP length of the whole datagram, longer than the
/// fragment, and the classifier's `l4 + len > end` check calls it malformed, so no fragmented UDP
/// datagram passes (large DNS answers, media). Ignored until the classifier is fixed; see
/// tests/regressions/udp-first-fragment-judged-malformed.hex.
#[test]
fn fragmented_udp_first_fragment_takes_its_rule() {
    let Some(mut h) = harness("fragmented_udp_first_fragment_takes_its_rule", "udp-turn") else {
        return;
    };
    // UDP's header is 8 bytes: a later fragment at offset 1 is past it.
    let dns = udp(53, 50_000, &[0; 16]);
    let first = Ipv4 {
        id: 0x3129,
        flags_frag: 0x2000,
        ..ip4(ipproto::UDP)
    };
    h.check(
        "UDP first fragment (16 of 24 bytes)",
        &eth4(&first.build(&dns[..16])),
        (ALLOW, "dns"),
    );
    let second = Ipv4 {
        flags_frag: 2,
        ..first
    };
    h.check(
        "UDP last fragment",
        &eth4(&second.build(&dns[16..])),
        (ALLOW, "dns"),
    );
    let mut first6 = ip6(44);
    first6.ext = ipv6_fragment(ipproto::UDP, 0, true, 0x3129);
    h.check(
        "IPv6 UDP first fragment",
        &eth6(&first6.build(&dns[..16])),
        (ALLOW, "dns"),
    );
}

#[test]
fn evasion_ipv6_extension_chain_past_the_bound() {
    let Some(mut h) = harness("evasion_ipv6_extension_chain_past_the_bound", "udp-turn") else {
        return;
    };
    let chain = |n: usize| {
        let mut p = ip6(60);
        p.ext = (0..n)
            .flat_map(|i| ipv6_ext(if i + 1 == n { ipproto::TCP } else { 60 }, 0))
            .collect();
        eth6(&p.build(&tcp443(b"")))
    };
    h.check("eight extension headers (the bound)", &chain(8), HTTPS);
    h.check("nine extension headers", &chain(9), UNSUPPORTED);
    h.check("sixteen extension headers", &chain(16), UNSUPPORTED);
    // Nine headers whose last is a fragment header: still past the bound.
    let mut p = ip6(60);
    p.ext = (0..8)
        .flat_map(|i| ipv6_ext(if i == 7 { 44 } else { 60 }, 0))
        .collect();
    p.ext
        .extend_from_slice(&ipv6_fragment(ipproto::TCP, 0, true, 0x0909));
    h.check(
        "eight headers then a fragment header",
        &eth6(&p.build(&tcp443(b""))),
        UNSUPPORTED,
    );
}

#[test]
fn evasion_tcp_data_offset_below_5() {
    let Some(mut h) = harness("evasion_tcp_data_offset_below_5", "udp-turn") else {
        return;
    };
    let good = eth4(&ip4(ipproto::TCP).build(&tcp443(&[0; 40])));
    h.check("data offset 5 (control)", &good, HTTPS);
    for doff in 0..5u8 {
        let mut bad = good.clone();
        bad[IP + 20 + 12] = doff << 4;
        h.check(&format!("data offset {doff}"), &bad, MALFORMED);
    }
    let mut bad = eth4(&ip4(ipproto::TCP).build(&tcp443(&[0; 36])));
    bad[IP + 20 + 12] = 15 << 4;
    h.check("data offset 15, 4 bytes past the packet", &bad, MALFORMED);
}

#[test]
fn evasion_udp_length_zero() {
    let Some(mut h) = harness("evasion_udp_length_zero", "udp-turn") else {
        return;
    };
    let good = eth4(&ip4(ipproto::UDP).build(&udp(53, 50_000, b"answer")));
    h.check("UDP length 14 (control)", &good, (ALLOW, "dns"));
    for len in [0u16, 1, 7] {
        let mut bad = good.clone();
        set16(&mut bad, IP + 20 + 4, len);
        h.check(&format!("UDP length {len}"), &bad, MALFORMED);
    }
}

#[test]
fn evasion_udp_length_past_the_frame() {
    let Some(mut h) = harness("evasion_udp_length_past_the_frame", "udp-turn") else {
        return;
    };
    let good = eth4(&ip4(ipproto::UDP).build(&udp(53, 50_000, b"answer")));
    for len in [15u16, 200, u16::MAX] {
        let mut bad = good.clone();
        set16(&mut bad, IP + 20 + 4, len);
        h.check(&format!("UDP length {len} in 14 bytes"), &bad, MALFORMED);
    }
    // Past the IP packet but inside the frame (Ethernet padding).
    let mut bad = good.clone();
    bad.resize(bad.len() + 16, 0);
    set16(&mut bad, IP + 20 + 4, 22);
    h.check("UDP length reaching into the padding", &bad, MALFORMED);
}

#[test]
fn evasion_third_vlan_tag() {
    let Some(mut h) = harness("evasion_third_vlan_tag", "udp-turn") else {
        return;
    };
    let inner = ip4(ipproto::TCP).build(&tcp443(b""));
    h.check(
        "two tags (control)",
        &ethernet(
            &[(ethertype::QINQ, 1), (ethertype::VLAN, 2)],
            ethertype::IPV4,
            &inner,
        ),
        HTTPS,
    );
    for tags in [
        [
            (ethertype::QINQ, 1),
            (ethertype::VLAN, 2),
            (ethertype::VLAN, 3),
        ],
        [
            (ethertype::VLAN, 1),
            (ethertype::VLAN, 2),
            (ethertype::QINQ, 3),
        ],
        [
            (ethertype::QINQ, 1),
            (ethertype::QINQ, 2),
            (ethertype::QINQ, 3),
        ],
    ] {
        h.check(
            &format!("three tags {tags:x?}"),
            &ethernet(&tags, ethertype::IPV4, &inner),
            UNSUPPORTED,
        );
    }
    // Not "non-IP" either: what is behind the third tag is unknown.
    h.check(
        "ARP behind three tags",
        &ethernet(
            &[
                (ethertype::VLAN, 1),
                (ethertype::VLAN, 2),
                (ethertype::VLAN, 3),
            ],
            0x0806,
            &[0; 28],
        ),
        UNSUPPORTED,
    );
}

#[test]
fn evasion_icmp_error_quoting_a_disallowed_flow() {
    let Some(mut h) = harness("evasion_icmp_error_quoting_a_disallowed_flow", "udp-turn") else {
        return;
    };
    let router = v4("198.51.100.1");
    // The quoted packet is one the client sent: from the client to `to`.
    let quoted4 = |proto: u8, to: &str, dport: u16| {
        let l4 = if proto == ipproto::TCP {
            tcp(50_000, dport, b"")
        } else {
            udp(50_000, dport, b"")
        };
        Ipv4::new(v4(CLIENT4), v4(to), proto).build(&l4)[..28].to_vec()
    };
    let error4 = |kind: u8, quoted: &[u8]| {
        eth4(&Ipv4::new(router, v4(CLIENT4), ipproto::ICMP).build(&icmp(kind, 0, quoted)))
    };
    h.check(
        "unreachable quoting TCP to 443 (control)",
        &error4(3, &quoted4(ipproto::TCP, REMOTE4, 443)),
        ICMP_ERRORS,
    );
    h.check(
        "unreachable quoting UDP to 3478 in a TURN network (control)",
        &error4(3, &quoted4(ipproto::UDP, "68.64.0.1", 3478)),
        ICMP_ERRORS,
    );
    h.check(
        "unreachable quoting TCP to 22",
        &error4(3, &quoted4(ipproto::TCP, REMOTE4, 22)),
        DEFAULT,
    );
    h.check(
        "unreachable quoting UDP to 3478 outside the TURN networks",
        &error4(3, &quoted4(ipproto::UDP, "68.64.32.0", 3478)),
        DEFAULT,
    );
    h.check(
        "time exceeded quoting UDP to 443",
        &error4(11, &quoted4(ipproto::UDP, REMOTE4, 443)),
        DEFAULT,
    );
    // The quoted packet's source port is the client's, not the remote's: an error quoting a
    // packet *from* port 443 names no allowed flow.
    let from443 = Ipv4::new(v4(CLIENT4), v4(REMOTE4), ipproto::TCP).build(&tcp(443, 50_000, b""))
        [..28]
        .to_vec();
    h.check(
        "unreachable quoting TCP from 443 to 50000",
        &error4(3, &from443),
        DEFAULT,
    );
    // A quoted later fragment carries no ports to judge.
    let mut fragment = quoted4(ipproto::TCP, REMOTE4, 443);
    set16(&mut fragment, 6, 3);
    h.check(
        "unreachable quoting a later fragment",
        &error4(3, &fragment),
        DEFAULT,
    );
    // Not an error type.
    h.check(
        "redirect quoting TCP to 443",
        &error4(5, &quoted4(ipproto::TCP, REMOTE4, 443)),
        DEFAULT,
    );
    // ICMPv6: packet too big quoting TCP to 443 passes, to 22 does not; one quoting a packet
    // with an extension header is not matched.
    let quoted6 = |dport: u16, ext: bool| {
        let mut p = Ipv6::new(v6(CLIENT6), v6(REMOTE6), ipproto::TCP);
        if ext {
            p.next = 60;
            p.ext = ipv6_ext(ipproto::TCP, 0);
        }
        p.build(&tcp(50_000, dport, b""))[..if ext { 56 } else { 48 }].to_vec()
    };
    let error6 = |quoted: &[u8]| {
        eth6(
            &Ipv6::new(v6("2001:db8:9::1"), v6(CLIENT6), ipproto::ICMPV6)
                .build(&icmp(2, 0, quoted)),
        )
    };
    h.check(
        "ICMPv6 too big quoting TCP to 443 (control)",
        &error6(&quoted6(443, false)),
        ICMP_ERRORS,
    );
    h.check(
        "ICMPv6 too big quoting TCP to 22",
        &error6(&quoted6(22, false)),
        DEFAULT,
    );
    h.check(
        "ICMPv6 too big quoting TCP to 443 behind destination options",
        &error6(&quoted6(443, true)),
        DEFAULT,
    );
    // An IPv4 packet quoted in ICMPv6.
    h.check(
        "ICMPv6 error quoting IPv4",
        &error6(&[quoted4(ipproto::TCP, REMOTE4, 443), vec![0; 20]].concat()),
        MALFORMED,
    );
}

/// The same overlap on an ICMP error: the first fragment quotes an allowed flow and passes under
/// `icmp-errors`; a later fragment at offset 8 rewrites the quoted header to name another flow,
/// and passes too, since the overlap check protects only the 8-byte ICMP header. Ignored until
/// the classifier is fixed; see tests/regressions/icmp-error-quote-rewritten-by-overlap.hex.
#[test]
fn evasion_icmp_error_quote_rewritten_by_overlap() {
    let Some(mut h) = harness("evasion_icmp_error_quote_rewritten_by_overlap", "udp-turn") else {
        return;
    };
    let quoted = |dport: u16| {
        Ipv4::new(v4(CLIENT4), v4(REMOTE4), ipproto::TCP).build(&tcp(50_000, dport, b""))[..28]
            .to_vec()
    };
    let first = Ipv4 {
        id: 0x1c4e,
        flags_frag: 0x2000,
        ..Ipv4::new(v4("198.51.100.1"), v4(CLIENT4), ipproto::ICMP)
    };
    let mut message = icmp(3, 4, &quoted(443));
    message.resize(40, 0);
    h.check(
        "first fragment: frag-needed quoting TCP to 443",
        &eth4(&first.build(&message)),
        ICMP_ERRORS,
    );
    let second = Ipv4 {
        flags_frag: 1,
        ..first
    };
    let mut rewrite = quoted(22);
    rewrite.resize(32, 0);
    h.check(
        "offset 8: the quoted header rewritten to TCP to 22",
        &eth4(&second.build(&rewrite)),
        MALFORMED,
    );
}

#[test]
fn evasion_pppoe_and_jumbogram() {
    let Some(mut h) = harness("evasion_pppoe_and_jumbogram", "udp-turn") else {
        return;
    };
    // A blocked packet wrapped in a PPPoE session is judged by its inner packet: never passed
    // as "non-IP", nor by the frame's ethertype.
    let blocked = reply_udp("203.0.113.10:3478");
    h.check(
        "blocked UDP in a PPPoE session",
        &filter_user::frame::pppoe_ip(&[], 1, &blocked[14..]),
        DEFAULT,
    );
    // A PPPoE length field that claims more than the frame holds.
    h.check(
        "PPPoE session longer than the frame",
        &ethernet(
            &[],
            ethertype::PPPOE_SESSION,
            &[0x11, 0, 0, 1, 0, 42, 0, 0x21],
        ),
        MALFORMED,
    );
    let mut jumbo = eth6(&ip6(ipproto::TCP).build(&tcp443(b"")));
    set16(&mut jumbo, IP + 4, 0);
    h.check("IPv6 payload length 0 (jumbogram)", &jumbo, UNSUPPORTED);
}
