//! Differential testing: random hostile frames through the loaded XDP program and through the
//! host classifier, which must agree on every one.
//!
//! A generator (proptest) builds structured frames: Ethernet with 0-3 VLAN tags (802.1Q, 802.1ad,
//! others), PPPoE sessions behind them (version, code, length field and PPP protocol honest or
//! not), or nothing in front of the IP header (an L3 link); then IPv4 with random IHL, options, total length, flags, fragment offsets and ids, IPv6
//! with random extension-header chains (hop-by-hop, routing, destination options, fragment, AH;
//! some longer than the parser's bound), TCP, UDP, ICMP and ICMPv6 (errors quoting a packet) with
//! random lengths and data offsets; ports lean on the ones the rules name and their neighbours,
//! addresses on the edges of the TURN and operator networks. Then it may cut the frame at a random
//! byte and flip random bytes. Some cases are trains of fragments of one datagram, fed in
//! sequence (in order, out of order, overlapping), so that fragment state must evolve the same on
//! both sides.
//!
//! Cases run in batches under each rule set of `harness::rule_sets()`, three quarters on an
//! Ethernet link and a quarter on an L3 link (the program told `link::IP`). Per frame the XDP action
//! must match the host's verdict (and the host's decision must be consistent: a pass only in a
//! pass slot); per batch the kernel's counters must have moved exactly as the host's slot
//! histogram says, and both fragment maps must hold the same entries. On a mismatch the batch is
//! replayed frame by frame (counters read around each) to name the culprit, proptest shrinks the
//! batch, and the minimal batch is written to `tests/regressions/` (replayed by
//! `regressions_replay`).
//!
//! `differential_fixed_seed` and `differential_random_seed` run `GOTOFW_DIFF_CASES` cases each
//! (default 150,000); the second takes its seed from the clock unless `GOTOFW_DIFF_SEED` is set,
//! and prints it. `cargo xtask fuzz --cases N` runs the second with more cases.

use std::{
    cell::{Cell, RefCell},
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use filter_common::{
    Counter, Direction, SLOTS_PER_DIRECTION, counter_index, ethertype, ipproto, ppp,
};
use filter_user::{compile::Mode, frame::ethernet};
use gotofw_tests::{
    harness::{
        Framing, Harness, MALFORMED_DECISION, MAX_TEST_RUN_FRAME, MIN_TEST_RUN_FRAME, XDP_DROP,
        XDP_PASS, rule_set, rule_sets, verdict_word,
    },
    require_root_or_skip,
    seeds::{cases_from_env, parse_seed},
};
use proptest::{
    collection::vec,
    prelude::*,
    sample::{Index, select},
    test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner},
};

/// Cases per test run unless `GOTOFW_DIFF_CASES` says otherwise.
const DEFAULT_CASES: u64 = 150_000;
/// The seed of `differential_fixed_seed`.
const FIXED_SEED: u64 = 0x6f74_6f67_6677_0001;
/// Most cases in one batch; batches hold 1 to this many (shrinking removes cases).
const BATCH_MAX: usize = 512;
/// What the label of a rule set's run on an L3 link ends with (and a regression file's `rules:`
/// line, for a batch found there).
const L3_SUFFIX: &str = ", bare IP";
/// Where failing batches are written, and where `regressions_replay` reads them.
const REGRESSIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/regressions");

// ---------------------------------------------------------------------------------------------
// The generator.
// ---------------------------------------------------------------------------------------------

/// A length field: consistent with what it covers, off by a little, or any value.
#[derive(Clone, Copy, Debug)]
enum Len {
    Exact,
    Off(i16),
    Any(u16),
}

impl Len {
    fn value(self, exact: usize) -> u16 {
        match self {
            Self::Exact => exact as u16,
            Self::Off(d) => {
                let exact = i32::try_from(exact).unwrap_or(i32::MAX);
                u16::try_from(exact.saturating_add(i32::from(d)).clamp(0, 0xffff))
                    .unwrap_or(u16::MAX)
            }
            Self::Any(v) => v,
        }
    }
}

fn len_field() -> BoxedStrategy<Len> {
    prop_oneof![
        12 => Just(Len::Exact),
        2 => (-24i16..=24).prop_map(Len::Off),
        1 => any::<u16>().prop_map(Len::Any),
    ]
    .boxed()
}

/// Remote TCP ports the rule sets name.
const TCP_PORTS: [u16; 3] = [443, 3478, 53];
/// Remote UDP ports the rule sets name, at the edges of their ranges.
const UDP_PORTS: [u16; 10] = [
    3478, 53, 123, 67, 547, 45_000, 45_001, 47_500, 49_998, 49_999,
];
/// Their neighbours and the extremes.
const NEAR_PORTS: [u16; 12] = [
    44_999, 50_000, 546, 0, 80, 442, 444, 3477, 3479, 65_535, 122, 124,
];
/// Local ports: the client's, the DHCP client ports, and others.
const LOCAL_PORTS: [u16; 6] = [50_000, 68, 546, 67, 443, 0];

/// A remote port: one the rules name for `proto` (TCP or UDP), a neighbour, or any.
fn port(proto: u8) -> BoxedStrategy<u16> {
    let named: &'static [u16] = if proto == ipproto::TCP {
        &TCP_PORTS
    } else {
        &UDP_PORTS
    };
    prop_oneof![
        4 => select(named),
        1 => select(&TCP_PORTS[..]),
        1 => select(&UDP_PORTS[..]),
        2 => select(&NEAR_PORTS[..]),
        1 => any::<u16>(),
    ]
    .boxed()
}

/// A local port.
fn local_port() -> BoxedStrategy<u16> {
    prop_oneof![4 => select(&LOCAL_PORTS[..]), 1 => select(&NEAR_PORTS[..]), 1 => any::<u16>()]
        .boxed()
}

/// IPv4 addresses on the edges of the TURN networks and the operator networks of the rule sets,
/// the configured servers and the clients.
const V4_EDGES: [[u8; 4]; 30] = [
    [68, 64, 0, 0],
    [68, 64, 31, 255],
    [68, 64, 32, 0],
    [68, 63, 255, 255],
    [173, 199, 0, 0],
    [173, 199, 63, 255],
    [173, 199, 64, 0],
    [173, 198, 255, 255],
    [78, 108, 124, 0],
    [78, 108, 125, 255],
    [78, 108, 126, 0],
    [78, 108, 123, 255],
    [202, 173, 24, 0],
    [202, 173, 31, 255],
    [202, 173, 32, 0],
    [202, 173, 23, 255],
    [23, 239, 224, 0],
    [23, 239, 255, 255],
    [23, 240, 0, 0],
    [23, 239, 223, 255],
    [198, 51, 100, 0],
    [198, 51, 100, 127],
    [198, 51, 100, 128],
    [198, 51, 100, 53],
    [203, 0, 113, 123],
    [203, 0, 113, 10],
    [192, 0, 2, 1],
    [255, 255, 255, 255],
    [0, 0, 0, 0],
    [127, 0, 0, 1],
];

fn addr4() -> BoxedStrategy<Ipv4Addr> {
    let edge = select(&V4_EDGES[..]).prop_map(Ipv4Addr::from);
    let near = (select(&V4_EDGES[..]), -2i32..=2)
        .prop_map(|(a, d)| Ipv4Addr::from(u32::from_be_bytes(a).wrapping_add_signed(d)));
    prop_oneof![4 => edge, 2 => near, 2 => any::<u32>().prop_map(Ipv4Addr::from)].boxed()
}

/// IPv6 addresses on the edges of the operator networks, servers, link-local and the client.
const V6_EDGES: [u128; 14] = [
    0x2001_0db8_0077_0000_0000_0000_0000_0000,
    0x2001_0db8_0077_ffff_ffff_ffff_ffff_ffff,
    0x2001_0db8_0076_ffff_ffff_ffff_ffff_ffff,
    0x2001_0db8_0078_0000_0000_0000_0000_0000,
    0x2001_0db8_0077_8000_0000_0000_0000_0000,
    0x2001_0db8_0077_7fff_ffff_ffff_ffff_ffff,
    0x2001_0db8_0000_0000_0000_0000_0000_0053,
    0x2001_0db8_0000_0000_0000_0000_0000_0054,
    0x2001_0db8_0000_0000_0000_0000_0000_0001,
    0x2001_0db8_0005_0000_0000_0000_0000_0010,
    0xfe80_0000_0000_0000_0000_0000_0000_0001,
    0xff02_0000_0000_0000_0000_0000_0000_0001,
    0,
    1,
];

fn addr6() -> BoxedStrategy<Ipv6Addr> {
    let edge = select(&V6_EDGES[..]).prop_map(Ipv6Addr::from);
    let near = (select(&V6_EDGES[..]), -2i128..=2)
        .prop_map(|(a, d)| Ipv6Addr::from(a.wrapping_add_signed(d)));
    prop_oneof![4 => edge, 2 => near, 2 => any::<u128>().prop_map(Ipv6Addr::from)].boxed()
}

/// The destination of an inbound packet: mostly the client.
fn dst4() -> BoxedStrategy<Ipv4Addr> {
    prop_oneof![3 => Just(Ipv4Addr::new(192, 0, 2, 1)), 1 => addr4()].boxed()
}

fn dst6() -> BoxedStrategy<Ipv6Addr> {
    prop_oneof![
        3 => Just(Ipv6Addr::from(V6_EDGES[8])),
        1 => Just(Ipv6Addr::from(V6_EDGES[10] + 1)),
        1 => addr6(),
    ]
    .boxed()
}

/// Fragment ids: a few values shared by many cases (so that cases of one batch meet each other's
/// remembered verdicts), or any.
fn frag_id() -> BoxedStrategy<u32> {
    prop_oneof![3 => select(&[0u32, 1, 0x1234, 0x4242][..]), 1 => any::<u32>()].boxed()
}

/// An IPv4 or IPv6 header and the first eight bytes of a transport header, as an ICMP error
/// quotes them (the packet we sent, so from the client).
#[derive(Clone, Debug)]
struct Quote {
    v6: bool,
    /// IPv4: IHL nibble (None: 5); IPv6: ignored.
    ihl: Option<u8>,
    version: Option<u8>,
    flags_frag: u16,
    proto: u8,
    src4: Ipv4Addr,
    dst4: Ipv4Addr,
    src6: Ipv6Addr,
    dst6: Ipv6Addr,
    sport: u16,
    dport: u16,
    /// Cut the quote to this many bytes.
    cut: Option<Index>,
}

impl Quote {
    fn bytes(&self) -> Vec<u8> {
        let ports = [self.sport.to_be_bytes(), self.dport.to_be_bytes()].concat();
        let mut q = if self.v6 {
            let mut h = vec![0x60, 0, 0, 0, 0, 8, self.proto, 64];
            h.extend_from_slice(&self.src6.octets());
            h.extend_from_slice(&self.dst6.octets());
            h
        } else {
            let mut h = vec![0x45, 0, 0, 28, 0x12, 0x34];
            h.extend_from_slice(&self.flags_frag.to_be_bytes());
            h.extend_from_slice(&[64, self.proto, 0, 0]);
            h.extend_from_slice(&self.src4.octets());
            h.extend_from_slice(&self.dst4.octets());
            if let Some(ihl) = self.ihl {
                h[0] = 0x40 | (ihl & 0x0f);
                h.resize(h.len().max(usize::from(ihl & 0x0f) * 4), 1);
            }
            h
        };
        if let Some(v) = self.version {
            q[0] = (q[0] & 0x0f) | (v << 4);
        }
        q.extend_from_slice(&ports);
        q.extend_from_slice(&[0, 0, 0, 1]);
        if let Some(cut) = self.cut {
            q.truncate(cut.index(q.len() + 1));
        }
        q
    }
}

fn quote(v6: bool) -> BoxedStrategy<Quote> {
    let v6 = prop_oneof![9 => Just(v6), 1 => any::<bool>()];
    (
        v6,
        prop::option::weighted(0.15, 0u8..=15),
        prop::option::weighted(0.05, 0u8..=15),
        prop_oneof![4 => Just(0x4000u16), 1 => Just(0x2000), 1 => any::<u16>()],
        prop_oneof![4 => Just(ipproto::TCP), 4 => Just(ipproto::UDP), 1 => any::<u8>()],
        (dst4(), addr4(), dst6(), addr6()),
        (local_port(), port(ipproto::UDP)),
        prop::option::weighted(0.2, any::<Index>()),
    )
        .prop_map(
            |(
                v6,
                ihl,
                version,
                flags_frag,
                proto,
                (src4, dst4, src6, dst6),
                (sport, dport),
                cut,
            )| {
                Quote {
                    v6,
                    ihl,
                    version,
                    flags_frag,
                    proto,
                    src4,
                    dst4,
                    src6,
                    dst6,
                    sport,
                    dport,
                    cut,
                }
            },
        )
        .boxed()
}

/// A transport header and payload.
#[derive(Clone, Debug)]
enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        /// Data offset nibble.
        doff: u8,
        flags: u8,
        /// Option bytes actually present, in words.
        opt_words: u8,
        payload: u8,
    },
    Udp {
        sport: u16,
        dport: u16,
        len: Len,
        payload: u8,
    },
    /// ICMP for IPv4, ICMPv6 for IPv6.
    Icmp {
        kind: u8,
        code: u8,
        quote: Option<Quote>,
    },
    Raw {
        proto: u8,
        bytes: Vec<u8>,
    },
}

impl L4 {
    fn proto(&self, v6: bool) -> u8 {
        match self {
            Self::Tcp { .. } => ipproto::TCP,
            Self::Udp { .. } => ipproto::UDP,
            Self::Icmp { .. } if v6 => ipproto::ICMPV6,
            Self::Icmp { .. } => ipproto::ICMP,
            Self::Raw { proto, .. } => *proto,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Tcp {
                sport,
                dport,
                doff,
                flags,
                opt_words,
                payload,
            } => {
                let mut h = Vec::new();
                h.extend_from_slice(&sport.to_be_bytes());
                h.extend_from_slice(&dport.to_be_bytes());
                h.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
                h.push((doff & 0x0f) << 4);
                h.push(*flags);
                h.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
                h.resize(h.len() + usize::from(*opt_words) * 4, 1);
                h.resize(h.len() + usize::from(*payload), 0xaa);
                h
            }
            Self::Udp {
                sport,
                dport,
                len,
                payload,
            } => {
                let total = 8 + usize::from(*payload);
                let mut h = Vec::new();
                h.extend_from_slice(&sport.to_be_bytes());
                h.extend_from_slice(&dport.to_be_bytes());
                h.extend_from_slice(&len.value(total).to_be_bytes());
                h.extend_from_slice(&[0, 0]);
                h.resize(total, 0xbb);
                h
            }
            Self::Icmp { kind, code, quote } => {
                let mut h = vec![*kind, *code, 0, 0, 0, 0, 0, 0];
                if let Some(q) = quote {
                    h.extend_from_slice(&q.bytes());
                }
                h
            }
            Self::Raw { bytes, .. } => bytes.clone(),
        }
    }
}

/// Protocols behind an IP header with random bytes: the known ones, GRE, ESP, AH, no next
/// header, and extension-header numbers where an upper layer belongs.
const RAW_PROTOS: [u8; 12] = [
    ipproto::TCP,
    ipproto::UDP,
    ipproto::ICMP,
    ipproto::ICMPV6,
    47,
    50,
    51,
    59,
    0,
    43,
    44,
    60,
];

/// Ethertypes that are not IP: ARP, LLDP, PPPoE session and discovery, VLAN tags with nothing
/// behind them, and zero (an 802.3 length).
const OTHER_ETHERTYPES: [u16; 7] = [
    0x0806,
    0x88cc,
    ethertype::PPPOE_SESSION,
    ethertype::VLAN,
    ethertype::QINQ,
    0x8863,
    0x0000,
];

/// ICMP and ICMPv6 types worth hitting: errors, echo, neighbour discovery.
const ICMP_TYPES: [u8; 17] = [
    3, 11, 12, 0, 8, 5, 1, 2, 4, 128, 129, 133, 134, 135, 136, 137, 138,
];

/// Transport payload bytes: none, some, or enough for several fragments.
fn payload_len() -> BoxedStrategy<u8> {
    prop_oneof![3 => Just(0u8), 2 => 1u8..=64, 1 => 65u8..=220].boxed()
}

fn l4(v6: bool) -> BoxedStrategy<L4> {
    let tcp = (
        port(ipproto::TCP),
        local_port(),
        prop_oneof![10 => Just(5u8), 1 => 0u8..=15],
        prop_oneof![2 => Just(0x02u8), 2 => Just(0x12), 2 => Just(0x10), 1 => any::<u8>()],
        prop_oneof![6 => Just(0u8), 2 => 0u8..=10],
        payload_len(),
    )
        .prop_map(|(sport, dport, doff, flags, opt_words, payload)| L4::Tcp {
            sport,
            dport,
            doff,
            flags,
            opt_words,
            payload,
        });
    let udp = (port(ipproto::UDP), local_port(), len_field(), payload_len()).prop_map(
        |(sport, dport, len, payload)| L4::Udp {
            sport,
            dport,
            len,
            payload,
        },
    );
    let icmp = (
        prop_oneof![4 => select(&ICMP_TYPES[..]), 1 => any::<u8>()],
        prop_oneof![3 => Just(0u8), 1 => any::<u8>()],
        prop::option::weighted(0.7, quote(v6)),
    )
        .prop_map(|(kind, code, quote)| L4::Icmp { kind, code, quote });
    let raw = (
        prop_oneof![
            2 => select(&RAW_PROTOS[..]),
            1 => any::<u8>(),
        ],
        vec(any::<u8>(), 0..48),
    )
        .prop_map(|(proto, bytes)| L4::Raw { proto, bytes });
    prop_oneof![4 => tcp, 4 => udp, 3 => icmp, 1 => raw].boxed()
}

/// An IPv4 packet.
#[derive(Clone, Debug)]
struct V4 {
    /// Version nibble when not 4.
    version: Option<u8>,
    /// IHL nibble when not the header's length.
    ihl: Option<u8>,
    options: Vec<u8>,
    total: Len,
    id: u16,
    flags_frag: u16,
    /// Protocol when not the transport's.
    proto: Option<u8>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    l4: L4,
}

impl V4 {
    /// The packet with `flags_frag` and `payload` in place of the generated ones.
    fn packet(&self, flags_frag: u16, payload: &[u8]) -> Vec<u8> {
        let hlen = 20 + self.options.len();
        let mut p = Vec::with_capacity(hlen + payload.len());
        let ihl = self.ihl.unwrap_or((hlen / 4) as u8 & 0x0f);
        p.push((self.version.unwrap_or(4) << 4) | (ihl & 0x0f));
        p.push(0);
        p.extend_from_slice(&self.total.value(hlen + payload.len()).to_be_bytes());
        p.extend_from_slice(&self.id.to_be_bytes());
        p.extend_from_slice(&flags_frag.to_be_bytes());
        p.push(64);
        p.push(self.proto.unwrap_or(self.l4.proto(false)));
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(&self.src.octets());
        p.extend_from_slice(&self.dst.octets());
        p.extend_from_slice(&self.options);
        p.extend_from_slice(payload);
        p
    }
}

fn v4() -> BoxedStrategy<V4> {
    (
        prop::option::weighted(0.03, 0u8..=15),
        prop::option::weighted(0.04, 0u8..=15),
        prop_oneof![
            12 => Just(Vec::new()),
            4 => select(&[4usize, 8, 12, 40][..]).prop_map(|n| vec![1u8; n]),
            1 => vec(any::<u8>(), 0..=44),
        ],
        prop_oneof![30 => Just(Len::Exact), 1 => len_field()],
        frag_id().prop_map(|id| id as u16),
        prop_oneof![
            12 => Just(0x4000u16),
            4 => Just(0u16),
            2 => Just(0x2000u16),
            1 => (any::<bool>(), 1u16..=4).prop_map(|(mf, off)| u16::from(mf) << 13 | off),
            1 => any::<u16>(),
        ],
        prop::option::weighted(0.05, any::<u8>()),
        (addr4(), dst4()),
        l4(false),
    )
        .prop_map(
            |(version, ihl, options, total, id, flags_frag, proto, (src, dst), l4)| V4 {
                version,
                ihl,
                options,
                total,
                id,
                flags_frag,
                proto,
                src,
                dst,
                l4,
            },
        )
        .boxed()
}

/// An IPv6 extension header.
#[derive(Clone, Debug)]
enum Ext {
    /// Hop-by-hop (0), routing (43), destination options (60) or another of the kinds the parser
    /// walks (135, 139, 140): `8 * (units + 1)` bytes.
    Opts { kind: u8, units: u8 },
    /// Fragment header: offset in 8-byte units.
    Fragment { offset: u16, more: bool, id: u32 },
    /// Authentication header: `4 * (len + 2)` bytes.
    Ah { len: u8 },
}

impl Ext {
    const fn kind(&self) -> u8 {
        match self {
            Self::Opts { kind, .. } => *kind,
            Self::Fragment { .. } => 44,
            Self::Ah { .. } => 51,
        }
    }

    fn bytes(&self, next: u8) -> Vec<u8> {
        match self {
            Self::Opts { units, .. } => {
                let mut h = vec![0u8; 8 * (usize::from(*units) + 1)];
                h[0] = next;
                h[1] = *units;
                h[2] = 1;
                h[3] = (h.len() - 4) as u8;
                h
            }
            Self::Fragment { offset, more, id } => {
                let mut h = vec![next, 0];
                h.extend_from_slice(&((offset << 3) | u16::from(*more)).to_be_bytes());
                h.extend_from_slice(&id.to_be_bytes());
                h
            }
            Self::Ah { len } => {
                let mut h = vec![0u8; 4 * (usize::from(*len) + 2)];
                h[0] = next;
                h[1] = *len;
                h
            }
        }
    }
}

/// An extension header and, when not the consistent one, the Next Header it names.
#[derive(Clone, Debug)]
struct ExtH {
    ext: Ext,
    next: Option<u8>,
}

fn ext() -> BoxedStrategy<ExtH> {
    let opts = (
        prop_oneof![3 => select(&[0u8, 43, 60][..]), 1 => select(&[135u8, 139, 140][..])],
        prop_oneof![8 => Just(0u8), 4 => 1u8..=3, 2 => 4u8..=40, 1 => any::<u8>()],
    )
        .prop_map(|(kind, units)| Ext::Opts { kind, units });
    let fragment = (
        prop_oneof![6 => Just(0u16), 2 => 1u16..=4, 1 => 0u16..0x2000],
        any::<bool>(),
        frag_id(),
    )
        .prop_map(|(offset, more, id)| Ext::Fragment { offset, more, id });
    let ah = prop_oneof![3 => Just(4u8), 1 => 0u8..=8].prop_map(|len| Ext::Ah { len });
    (
        prop_oneof![4 => opts, 2 => fragment, 1 => ah],
        prop::option::weighted(0.05, any::<u8>()),
    )
        .prop_map(|(ext, next)| ExtH { ext, next })
        .boxed()
}

/// The bytes of an extension-header chain followed by a header of type `last`; returns the type of
/// the chain's first header too.
fn chain(exts: &[ExtH], last: u8) -> (u8, Vec<u8>) {
    let mut bytes = Vec::new();
    for (i, e) in exts.iter().enumerate() {
        let next = e
            .next
            .unwrap_or_else(|| exts.get(i + 1).map_or(last, |n| n.ext.kind()));
        bytes.extend_from_slice(&e.ext.bytes(next));
    }
    (exts.first().map_or(last, |e| e.ext.kind()), bytes)
}

/// An IPv6 packet.
#[derive(Clone, Debug)]
struct V6 {
    version: Option<u8>,
    payload: Len,
    /// Next Header of the fixed header when not the consistent one.
    next: Option<u8>,
    hop_limit: u8,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    exts: Vec<ExtH>,
    l4: L4,
}

impl V6 {
    /// The packet: fixed header naming `next`, then `rest`.
    fn packet(&self, next: u8, rest: &[u8]) -> Vec<u8> {
        let mut p = Vec::with_capacity(40 + rest.len());
        p.extend_from_slice(&[self.version.unwrap_or(6) << 4, 0, 0, 0]);
        p.extend_from_slice(&self.payload.value(rest.len()).to_be_bytes());
        p.push(self.next.unwrap_or(next));
        p.push(self.hop_limit);
        p.extend_from_slice(&self.src.octets());
        p.extend_from_slice(&self.dst.octets());
        p.extend_from_slice(rest);
        p
    }

    fn whole(&self) -> Vec<u8> {
        let (first, mut rest) = chain(&self.exts, self.l4.proto(true));
        rest.extend_from_slice(&self.l4.bytes());
        self.packet(first, &rest)
    }
}

fn v6() -> BoxedStrategy<V6> {
    (
        prop::option::weighted(0.03, 0u8..=15),
        prop_oneof![30 => Just(Len::Exact), 1 => Just(Len::Any(0)), 2 => len_field()],
        prop::option::weighted(0.05, any::<u8>()),
        prop_oneof![2 => Just(64u8), 1 => Just(255u8), 1 => any::<u8>()],
        (addr6(), dst6()),
        prop_oneof![
            8 => Just(Vec::new()),
            4 => vec(ext(), 1..=3),
            1 => vec(ext(), 6..=11),
        ],
        l4(true),
    )
        .prop_map(
            |(version, payload, next, hop_limit, (src, dst), exts, l4)| V6 {
                version,
                payload,
                next,
                hop_limit,
                src,
                dst,
                exts,
                l4,
            },
        )
        .boxed()
}

/// VLAN tags, outermost first: (TPID, TCI).
fn tags() -> BoxedStrategy<Vec<(u16, u16)>> {
    let tag = (
        prop_oneof![
            4 => Just(ethertype::VLAN),
            3 => Just(ethertype::QINQ),
            1 => any::<u16>(),
        ],
        any::<u16>(),
    );
    prop_oneof![
        20 => Just(Vec::new()),
        4 => vec(tag.clone(), 1..=1),
        3 => vec(tag.clone(), 2..=2),
        1 => vec(tag, 3..=3),
    ]
    .boxed()
}

/// The link layer in front of the packet.
#[derive(Clone, Debug)]
enum Link {
    /// Ethernet with VLAN tags (TPID, TCI), outermost first.
    Ether(Vec<(u16, u16)>),
    /// Ethernet, VLAN tags, then a PPPoE session header: its version/type byte (`None`: 0x11),
    /// code (`None`: 0), length field, and PPP protocol (`None`: the one of the packet's
    /// ethertype, or the ethertype itself when it is not IP).
    Pppoe {
        tags: Vec<(u16, u16)>,
        version: Option<u8>,
        code: Option<u8>,
        len: Len,
        proto: Option<u16>,
    },
    /// None: the packet alone, as on an L3 link (the harness is told `link::IP`).
    Bare,
}

/// PPP protocols worth trying: IP, the control protocols, another network protocol (MPLS), a
/// compressed field, not a protocol number.
const PPP_PROTOCOLS: [u16; 9] = [
    ppp::IPV4,
    ppp::IPV6,
    ppp::LCP,
    ppp::IPCP,
    ppp::IPV6CP,
    0xc223,
    0x0281,
    0x2145,
    0x0020,
];

/// The link layer of a case: bare on an L3 link (`l3`), else Ethernet, mostly, or PPPoE.
fn link_layer(l3: bool) -> BoxedStrategy<Link> {
    if l3 {
        return Just(Link::Bare).boxed();
    }
    let pppoe = (
        tags(),
        prop::option::weighted(0.05, any::<u8>()),
        prop::option::weighted(0.05, any::<u8>()),
        len_field(),
        prop::option::weighted(
            0.2,
            prop_oneof![3 => select(&PPP_PROTOCOLS[..]), 1 => any::<u16>()],
        ),
    )
        .prop_map(|(tags, version, code, len, proto)| Link::Pppoe {
            tags,
            version,
            code,
            len,
            proto,
        });
    prop_oneof![5 => tags().prop_map(Link::Ether), 1 => pppoe].boxed()
}

/// What an Ethernet frame carries.
#[derive(Clone, Debug)]
enum Net {
    V4(V4),
    V6(V6),
    /// Anything else: ARP, LLDP, PPPoE, a VLAN ethertype with nothing behind it, random.
    Other {
        ether: u16,
        body: Vec<u8>,
    },
}

/// A frame.
#[derive(Clone, Debug)]
struct Frame {
    tags: Link,
    /// Ethertype when not the consistent one.
    ether: Option<u16>,
    net: Net,
}

impl Frame {
    fn bytes(&self) -> Vec<u8> {
        let (ether, payload) = match &self.net {
            Net::V4(p) => (ethertype::IPV4, p.packet(p.flags_frag, &p.l4.bytes())),
            Net::V6(p) => (ethertype::IPV6, p.whole()),
            Net::Other { ether, body } => {
                let mut body = body.clone();
                // Most PPPoE discovery frames get a consistent header, so that their
                // allowance is reached, not only the malformed check.
                if *ether == ethertype::PPPOE_DISCOVERY && body.len() >= 6 && body[0] & 0x80 == 0 {
                    let len = (body.len() - 6) as u16;
                    body[0] = 0x11;
                    body[4..6].copy_from_slice(&len.to_be_bytes());
                }
                (*ether, body)
            }
        };
        link(&self.tags, self.ether.unwrap_or(ether), &payload)
    }
}

/// The frame of `payload` (of ethertype `ether`) behind link layer `hdr`. VLAN tags keep their
/// TCI whole (the frame builder masks it).
fn link(hdr: &Link, ether: u16, payload: &[u8]) -> Vec<u8> {
    let tagged = |tags: &[(u16, u16)], ether: u16, payload: &[u8]| {
        let mut f = ethernet(&[], ether, payload);
        let tag_bytes: Vec<u8> = tags
            .iter()
            .flat_map(|(tpid, tci)| [tpid.to_be_bytes(), tci.to_be_bytes()].concat())
            .collect();
        f.splice(12..12, tag_bytes);
        f
    };
    match hdr {
        Link::Ether(tags) => tagged(tags, ether, payload),
        Link::Bare => payload.to_vec(),
        Link::Pppoe {
            tags,
            version,
            code,
            len,
            proto,
        } => {
            let proto = proto.unwrap_or(match ether {
                ethertype::IPV4 => ppp::IPV4,
                ethertype::IPV6 => ppp::IPV6,
                other => other,
            });
            let mut session = vec![version.unwrap_or(0x11), code.unwrap_or(0), 0x01, 0x01];
            session.extend_from_slice(&len.value(2 + payload.len()).to_be_bytes());
            session.extend_from_slice(&proto.to_be_bytes());
            session.extend_from_slice(payload);
            tagged(tags, ethertype::PPPOE_SESSION, &session)
        }
    }
}

fn frame(l3: bool) -> BoxedStrategy<Frame> {
    let other = (
        prop_oneof![
            3 => select(&OTHER_ETHERTYPES[..]),
            1 => any::<u16>(),
        ],
        vec(any::<u8>(), 0..64),
    )
        .prop_map(|(ether, body)| Net::Other { ether, body });
    (
        link_layer(l3),
        prop::option::weighted(
            0.03,
            prop_oneof![
                select(&[ethertype::IPV4, ethertype::IPV6, ethertype::VLAN][..]),
                any::<u16>()
            ],
        ),
        prop_oneof![
            5 => v4().prop_map(Net::V4),
            4 => v6().prop_map(Net::V6),
            1 => other,
        ],
    )
        .prop_map(|(tags, ether, net)| Frame { tags, ether, net })
        .boxed()
}

/// What is done to a built frame: cut at a byte, bytes flipped.
#[derive(Clone, Debug, Default)]
struct Damage {
    cut: Option<Index>,
    flips: Vec<(Index, u8)>,
}

impl Damage {
    fn apply(&self, mut f: Vec<u8>) -> Vec<u8> {
        if let Some(cut) = self.cut {
            f.truncate(cut.index(f.len() + 1));
        }
        for (at, xor) in &self.flips {
            if !f.is_empty() {
                let i = at.index(f.len());
                f[i] ^= xor;
            }
        }
        f
    }
}

fn damage() -> BoxedStrategy<Damage> {
    let flips = vec((any::<Index>(), 1u8..=255), 1..=3);
    prop_oneof![
        20 => Just(Damage::default()),
        3 => any::<Index>().prop_map(|cut| Damage { cut: Some(cut), flips: Vec::new() }),
        3 => flips.clone().prop_map(|flips| Damage { cut: None, flips }),
        1 => (any::<Index>(), flips).prop_map(|(cut, flips)| Damage { cut: Some(cut), flips }),
    ]
    .boxed()
}

/// A piece of a datagram: fragment offset (8-byte units), payload bytes, more-fragments flag.
#[derive(Clone, Debug)]
struct Piece {
    offset: u16,
    len: u16,
    more: bool,
    damage: Damage,
}

/// How a datagram is cut into fragments.
#[derive(Clone, Debug)]
enum Plan {
    /// In order, `units * 8` bytes a piece; sent reversed, or with one piece left out.
    InOrder {
        units: u8,
        reverse: bool,
        skip: Option<Index>,
        damage: Vec<Damage>,
    },
    /// Any pieces.
    Pieces(Vec<Piece>),
}

impl Plan {
    fn pieces(&self, total: usize) -> Vec<Piece> {
        match self {
            Self::Pieces(p) => p.clone(),
            Self::InOrder {
                units,
                reverse,
                skip,
                damage,
            } => {
                let step = usize::from(*units).max(1) * 8;
                let mut out: Vec<Piece> = (0..total.div_ceil(step).max(1))
                    .map(|i| {
                        let start = i * step;
                        Piece {
                            offset: (start / 8) as u16,
                            len: step.min(total.saturating_sub(start)) as u16,
                            more: start + step < total,
                            damage: damage.get(i).cloned().unwrap_or_default(),
                        }
                    })
                    .collect();
                if let Some(skip) = skip
                    && out.len() > 1
                {
                    out.remove(skip.index(out.len()));
                }
                if *reverse {
                    out.reverse();
                }
                out
            }
        }
    }
}

fn plan() -> BoxedStrategy<Plan> {
    let in_order = (
        prop_oneof![1 => 1u8..=2, 3 => 3u8..=8],
        prop::bool::weighted(0.1),
        prop::option::weighted(0.1, any::<Index>()),
        vec(damage(), 0..=4),
    )
        .prop_map(|(units, reverse, skip, damage)| Plan::InOrder {
            units,
            reverse,
            skip,
            damage,
        });
    let piece = (
        prop_oneof![3 => 0u16..=6, 1 => any::<u16>().prop_map(|o| o & 0x1fff)],
        prop_oneof![3 => select(&[0u16, 8, 16, 24][..]), 1 => 0u16..=80],
        any::<bool>(),
        damage(),
    )
        .prop_map(|(offset, len, more, damage)| Piece {
            offset,
            len,
            more,
            damage,
        });
    prop_oneof![3 => in_order, 1 => vec(piece, 1..=5).prop_map(Plan::Pieces)].boxed()
}

/// A datagram to fragment.
#[derive(Clone, Debug)]
enum Datagram {
    V4(V4),
    /// The fragment header goes after the first `at` extension headers (of the generated chain,
    /// less any fragment headers it holds).
    V6 {
        packet: V6,
        at: usize,
    },
}

/// One case: a frame, a train of fragments of one datagram, or random bytes behind an IP
/// ethertype.
#[derive(Clone, Debug)]
enum Case {
    One(Frame, Damage),
    Train {
        tags: Link,
        datagram: Datagram,
        plan: Plan,
    },
    Raw {
        tags: Link,
        ether: u16,
        bytes: Vec<u8>,
    },
}

/// `bytes[offset * 8..][..len]`, zero-filled past the end.
fn slice(bytes: &[u8], offset: u16, len: u16) -> Vec<u8> {
    let start = usize::from(offset) * 8;
    (start..start + usize::from(len))
        .map(|i| bytes.get(i).copied().unwrap_or(0))
        .collect()
}

impl Case {
    /// The frames of the case, in the order they are fed, cut to what `BPF_PROG_TEST_RUN` gives
    /// the program whole.
    fn frames(&self) -> Vec<Vec<u8>> {
        let mut frames = self.frames_uncut();
        for f in &mut frames {
            f.truncate(MAX_TEST_RUN_FRAME);
        }
        frames
    }

    fn frames_uncut(&self) -> Vec<Vec<u8>> {
        match self {
            Self::One(f, d) => vec![d.apply(f.bytes())],
            Self::Raw { tags, ether, bytes } => vec![link(tags, *ether, bytes)],
            Self::Train {
                tags,
                datagram: Datagram::V4(p),
                plan,
            } => {
                let payload = p.l4.bytes();
                plan.pieces(payload.len())
                    .iter()
                    .map(|piece| {
                        let ff = u16::from(piece.more) << 13 | (piece.offset & 0x1fff);
                        let packet = p.packet(ff, &slice(&payload, piece.offset, piece.len));
                        piece.damage.apply(link(tags, ethertype::IPV4, &packet))
                    })
                    .collect()
            }
            Self::Train {
                tags,
                datagram: Datagram::V6 { packet, at },
                plan,
            } => {
                let exts: Vec<ExtH> = packet
                    .exts
                    .iter()
                    .filter(|e| !matches!(e.ext, Ext::Fragment { .. }))
                    .cloned()
                    .collect();
                let at = (*at).min(exts.len());
                let proto = packet.l4.proto(true);
                let (rest_first, mut rest) = chain(&exts[at..], proto);
                rest.extend_from_slice(&packet.l4.bytes());
                let id = 0x4242_0000 | u32::from(packet.src.octets()[15]);
                plan.pieces(rest.len())
                    .iter()
                    .map(|piece| {
                        let mut head = exts[..at].to_vec();
                        head.push(ExtH {
                            ext: Ext::Fragment {
                                offset: piece.offset & 0x1fff,
                                more: piece.more,
                                id,
                            },
                            next: Some(rest_first),
                        });
                        let (first, mut bytes) = chain(&head, rest_first);
                        bytes.extend_from_slice(&slice(&rest, piece.offset, piece.len));
                        let p = packet.packet(first, &bytes);
                        piece.damage.apply(link(tags, ethertype::IPV6, &p))
                    })
                    .collect()
            }
        }
    }
}

/// A case for a link of type `link::IP` (`l3`) or Ethernet.
fn case(l3: bool) -> BoxedStrategy<Case> {
    let one = (frame(l3), damage()).prop_map(|(f, d)| Case::One(f, d));
    let datagram = prop_oneof![
        v4().prop_map(Datagram::V4),
        (v6(), prop_oneof![2 => Just(usize::MAX), 1 => 0usize..=4])
            .prop_map(|(packet, at)| Datagram::V6 { packet, at }),
    ];
    let train = (link_layer(l3), datagram, plan()).prop_map(|(tags, datagram, plan)| Case::Train {
        tags,
        datagram,
        plan,
    });
    let raw = (
        link_layer(l3),
        select(&[ethertype::IPV4, ethertype::IPV6][..]),
        vec(any::<u8>(), 0..120),
    )
        .prop_map(|(tags, ether, bytes)| Case::Raw { tags, ether, bytes });
    prop_oneof![14 => one, 4 => train, 1 => raw].boxed()
}

// ---------------------------------------------------------------------------------------------
// Running batches.
// ---------------------------------------------------------------------------------------------

/// What a run did.
#[derive(Clone, Copy, Debug)]
struct Stats {
    cases: u64,
    frames: u64,
    /// Frames the kernel ran (the others are shorter than an Ethernet header).
    kernel_frames: u64,
    passed: u64,
    /// Frames per counter slot.
    slots: [u64; SLOTS_PER_DIRECTION as usize],
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            cases: 0,
            frames: 0,
            kernel_frames: 0,
            passed: 0,
            slots: [0; SLOTS_PER_DIRECTION as usize],
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(text: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits in {text:?}"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|e| format!("{text:?}: {e}")))
        .collect()
}

/// Runs a batch: verdicts per frame, counters and fragment maps per batch.
fn run_batch(h: &mut Harness, batch: &[Case], stats: &Cell<Stats>) -> Result<(), TestCaseError> {
    h.clear_fragments();
    let before = h.counters();
    let mut want = vec![Counter::default(); SLOTS_PER_DIRECTION as usize];
    let mut s = stats.get();
    for (i, case) in batch.iter().enumerate() {
        s.cases += 1;
        for (j, frame) in case.frames().iter().enumerate() {
            s.frames += 1;
            let host = h.host(frame);
            let at = || format!("case {i}, frame {j} ({})", hex(frame));
            if !h.consistent(host) {
                return Err(TestCaseError::fail(format!(
                    "{}: host decision {host:?} is not that slot's action",
                    at()
                )));
            }
            if frame.len() < MIN_TEST_RUN_FRAME {
                if host != MALFORMED_DECISION {
                    return Err(TestCaseError::fail(format!(
                        "{}: short frame not malformed: {host:?}",
                        at()
                    )));
                }
                continue;
            }
            s.kernel_frames += 1;
            let action = h
                .kernel(frame)
                .map_err(|e| TestCaseError::fail(format!("{}: {e}", at())))?;
            let host_action = if host.passes() { XDP_PASS } else { XDP_DROP };
            if action != host_action {
                return Err(TestCaseError::fail(format!(
                    "{}: kernel returned XDP action {action}, host says {} in {}",
                    at(),
                    verdict_word(host),
                    h.slot_name(host.slot)
                )));
            }
            s.passed += u64::from(host.passes());
            s.slots[host.slot as usize] += 1;
            let c = &mut want[host.slot as usize];
            c.packets += 1;
            c.bytes += frame.len() as u64;
        }
    }
    stats.set(s);
    let after = h.counters();
    let mut problems = Vec::new();
    for (i, (a, b)) in after.iter().zip(&before).enumerate() {
        let moved = Counter {
            packets: a.packets - b.packets,
            bytes: a.bytes - b.bytes,
        };
        let ingress = counter_index(Direction::Ingress, 0) as usize;
        let expected = i
            .checked_sub(ingress)
            .and_then(|slot| want.get(slot))
            .copied()
            .unwrap_or_default();
        if moved != expected {
            problems.push(format!(
                "counter {i}: kernel moved {moved:?}, host histogram {expected:?}"
            ));
        }
    }
    let kernel_frags = h.kernel_fragments();
    if &kernel_frags != h.host_fragments() {
        problems.push(format!(
            "fragment maps differ: kernel {} entries, host {}",
            kernel_frags.len(),
            h.host_fragments().len()
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(TestCaseError::fail(format!(
        "batch of {} cases: {}; replayed frame by frame: {}",
        batch.len(),
        problems.join("; "),
        replay(h, batch)
    )))
}

/// Replays `batch` frame by frame with every check; names the first frame that fails one.
fn replay(h: &mut Harness, batch: &[Case]) -> String {
    h.clear_fragments();
    for (i, case) in batch.iter().enumerate() {
        for (j, frame) in case.frames().iter().enumerate() {
            if let Err(e) = h.run(frame) {
                return format!("case {i}, frame {j} ({}): {e}", hex(frame));
            }
        }
    }
    "no frame fails alone (state across frames, or a flaky kernel)".to_owned()
}

/// Runs `cases` cases under every rule set from `seed`; panics on a mismatch after writing the
/// shrunk batch to the regressions directory.
#[expect(clippy::cast_precision_loss, reason = "rates for people to read")]
fn differential(seed: u64, cases: u64) {
    let sets = rule_sets();
    let per_set = cases.div_ceil(sets.len() as u64);
    let mut total = Stats::default();
    let mut by_slot: BTreeMap<String, u64> = BTreeMap::new();
    let mut loading = Duration::ZERO;
    let started = Instant::now();
    // Every rule set on Ethernet (three quarters of its cases, PPPoE among them), then on an
    // L3 link (a quarter): the same loaded program, told the link type anew.
    let mut harness = None;
    // Cases and passed frames on the L3 link.
    let mut l3_total = (0u64, 0u64);
    let runs = sets
        .iter()
        .enumerate()
        .flat_map(|(n, (label, options))| [false, true].map(|l3| (n, label, options, l3)));
    for (n, set_label, options, l3) in runs {
        let (label, framing, share) = if l3 {
            (format!("{set_label}{L3_SUFFIX}"), Framing::Ip, per_set / 4)
        } else {
            (
                (*set_label).to_owned(),
                Framing::Ethernet,
                per_set - per_set / 4,
            )
        };
        let label = label.as_str();
        if !l3 {
            let load = Instant::now();
            harness = Some(RefCell::new(Harness::new(set_label, options)));
            loading += load.elapsed();
        }
        let harness = harness.as_ref().expect("loaded for the Ethernet run");
        harness.borrow_mut().set_framing(framing);
        let stats = Cell::new(Stats::default());
        // Batches hold 256 cases on average; run rounds until this run has its share.
        for round in 0u64.. {
            let missing = share.saturating_sub(stats.get().cases);
            if missing == 0 {
                break;
            }
            let mut rng_seed = [0u8; 32];
            rng_seed[..8].copy_from_slice(&seed.to_le_bytes());
            rng_seed[8..16].copy_from_slice(&(n as u64 | u64::from(l3) << 32).to_le_bytes());
            rng_seed[16..24].copy_from_slice(&round.to_le_bytes());
            let config = Config {
                cases: missing.div_ceil(BATCH_MAX as u64 / 2) as u32,
                failure_persistence: None,
                // Shrinking removes cases one at a time, then simplifies the rest: allow for
                // that, but not for ever.
                max_shrink_iters: 100_000,
                max_shrink_time: 600_000,
                ..Config::default()
            };
            let mut runner = TestRunner::new_with_rng(
                config,
                TestRng::from_seed(RngAlgorithm::ChaCha, &rng_seed),
            );
            let result = runner.run(&vec(case(l3), 1..=BATCH_MAX), |batch| {
                run_batch(&mut harness.borrow_mut(), &batch, &stats)
            });
            match result {
                Ok(()) => {}
                Err(TestError::Abort(why)) => panic!("[{label}] seed {seed:#x}: aborted: {why}"),
                Err(TestError::Fail(why, batch)) => {
                    let (path, text) = save_regression(label, seed, &why.to_string(), &batch);
                    panic!(
                        "[{label}] seed {seed:#x}: kernel and host disagree: {why}\nminimal \
                         batch ({} cases) written to {} (add it to the repository):\n{text}",
                        batch.len(),
                        path.display()
                    );
                }
            }
        }
        let s = stats.get();
        if l3 {
            l3_total.0 += s.cases;
            l3_total.1 += s.passed;
        }
        total.cases += s.cases;
        total.frames += s.frames;
        total.kernel_frames += s.kernel_frames;
        total.passed += s.passed;
        for (slot, n) in s.slots.iter().enumerate() {
            if *n > 0 {
                *by_slot
                    .entry(harness.borrow().slot_name(slot as u32))
                    .or_default() += n;
            }
        }
        if cases >= 1_000_000 {
            eprintln!(
                "  [{label}] {} cases, {} frames ({:.0} s so far)",
                s.cases,
                s.frames,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let running = (secs - loading.as_secs_f64()).max(1e-3);
    eprintln!(
        "differential seed {seed:#x}: {} cases ({} frames, {} through the kernel, {} passed) \
         under {} rule sets (each on Ethernet and an L3 link) in {secs:.1} s ({:.1} s loading programs): {:.0} cases/s, {:.0} \
         frames/s",
        total.cases,
        total.frames,
        total.kernel_frames,
        total.passed,
        sets.len(),
        loading.as_secs_f64(),
        total.cases as f64 / running,
        total.frames as f64 / running,
    );
    let mut by_slot: Vec<(String, u64)> = by_slot.into_iter().collect();
    by_slot.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let slots: Vec<String> = by_slot.iter().map(|(k, n)| format!("{k} {n}")).collect();
    eprintln!("  frames by counter slot: {}", slots.join(", "));
    eprintln!(
        "  on an L3 link: {} cases, {} frames passed",
        l3_total.0, l3_total.1
    );
}

/// Writes a failing batch as a regression file; returns its path and text (for the log, when the
/// file is lost with the machine, as in CI).
fn save_regression(label: &str, seed: u64, why: &str, batch: &[Case]) -> (PathBuf, String) {
    let slug: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dir = Path::new(REGRESSIONS);
    let _ = fs::create_dir_all(dir);
    let path = dir.join(format!("diff-{slug}-{seed:016x}.hex"));
    let mut text = String::new();
    let _ = writeln!(text, "# Found by tests/differential.rs, seed {seed:#x}.");
    for line in why.lines() {
        let _ = writeln!(text, "# {line}");
    }
    let _ = writeln!(text, "rules: {label}");
    for case in batch {
        for frame in case.frames() {
            let _ = writeln!(text, "frame: {}", hex(&frame));
        }
    }
    let _ = writeln!(text, "# The shrunk batch:");
    for line in format!("{batch:#?}").lines() {
        let _ = writeln!(text, "# {line}");
    }
    if let Err(e) = fs::write(&path, &text) {
        eprintln!("could not write {}: {e}", path.display());
    }
    (path, text)
}

#[test]
fn differential_fixed_seed() {
    if !require_root_or_skip("differential_fixed_seed") {
        return;
    }
    differential(
        FIXED_SEED,
        cases_from_env("GOTOFW_DIFF_CASES", DEFAULT_CASES),
    );
}

#[test]
fn differential_random_seed() {
    if !require_root_or_skip("differential_random_seed") {
        return;
    }
    let seed = std::env::var("GOTOFW_DIFF_SEED").map_or_else(
        |_| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_nanos() as u64
        },
        |s| parse_seed("GOTOFW_DIFF_SEED", &s),
    );
    eprintln!("differential_random_seed: seed {seed:#x} (rerun with GOTOFW_DIFF_SEED={seed:#x})");
    differential(seed, cases_from_env("GOTOFW_DIFF_CASES", DEFAULT_CASES));
}

// ---------------------------------------------------------------------------------------------
// Regression files.
// ---------------------------------------------------------------------------------------------

/// A regression file: `rules: LABEL` (a label of `harness::rule_sets()`), then `frame: HEX` lines
/// fed in order from empty fragment maps, each optionally followed by `want: allow|block SLOT`.
/// `#` starts a comment line. `known-bug: TEXT` marks `want`s the classifier does not meet yet:
/// the replay then checks that kernel and host agree and reports the unmet `want`s, and fails
/// once they are all met (so that the fixed bug's marker goes).
/// An expected verdict: `allow` or `block`, and the slot name.
type Want = (String, String);

struct Regression {
    rules: String,
    frames: Vec<(Vec<u8>, Option<Want>)>,
    known_bug: Option<String>,
}

fn parse_regression(text: &str) -> Result<Regression, String> {
    let mut rules = None;
    let mut frames: Vec<(Vec<u8>, Option<Want>)> = Vec::new();
    let mut known_bug = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .ok_or_else(|| format!("line {}: no `key:`", n + 1))?;
        let value = value.trim();
        match key.trim() {
            "rules" => rules = Some(value.to_owned()),
            "frame" => frames.push((unhex(value)?, None)),
            "want" => {
                let (verdict, slot) = value
                    .split_once(' ')
                    .ok_or_else(|| format!("line {}: want VERDICT SLOT", n + 1))?;
                let last = frames
                    .last_mut()
                    .ok_or_else(|| format!("line {}: want before any frame", n + 1))?;
                last.1 = Some((verdict.to_owned(), slot.trim().to_owned()));
            }
            "known-bug" => known_bug = Some(value.to_owned()),
            other => return Err(format!("line {}: unknown key {other:?}", n + 1)),
        }
    }
    Ok(Regression {
        rules: rules.ok_or("no `rules:` line")?,
        frames,
        known_bug,
    })
}

/// The rule set and link of a regression file's `rules:` label: a rule set of `rule_sets()`,
/// with [`L3_SUFFIX`] for a batch found on an L3 link.
fn regression_rules(label: &str) -> Option<(filter_user::scenario::Options, Framing)> {
    match label.strip_suffix(L3_SUFFIX) {
        Some(set) => rule_set(set).map(|o| (o, Framing::Ip)),
        None => rule_set(label).map(|o| (o, Framing::Ethernet)),
    }
}

#[test]
fn regression_files_parse() {
    // Not a kernel test: every file must name a known rule set and hold frames.
    let mut count = 0;
    for entry in fs::read_dir(REGRESSIONS).expect("tests/regressions exists") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "hex") {
            continue;
        }
        let r = parse_regression(&fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            regression_rules(&r.rules).is_some(),
            "{}: unknown rule set {:?}",
            path.display(),
            r.rules
        );
        assert!(!r.frames.is_empty(), "{}: no frames", path.display());
        count += 1;
    }
    assert!(count > 0, "no regression files in {REGRESSIONS}");
}

#[test]
fn regressions_replay() {
    if !require_root_or_skip("regressions_replay") {
        return;
    }
    let mut paths: Vec<PathBuf> = fs::read_dir(REGRESSIONS)
        .expect("tests/regressions exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hex"))
        .collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let r = parse_regression(&fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (options, framing) =
            regression_rules(&r.rules).unwrap_or_else(|| panic!("{name}: unknown rule set"));
        let mut h = Harness::with(&r.rules, &options, &Mode::Stateless, framing);
        let mut unmet = Vec::new();
        for (i, (frame, want)) in r.frames.iter().enumerate() {
            let run = h
                .run(frame)
                .unwrap_or_else(|e| panic!("{name}, frame {i}: {e}"));
            let got = (verdict_word(run.host), h.slot_name(run.host.slot));
            if let Some((verdict, slot)) = want
                && (got.0, got.1.as_str()) != (verdict.as_str(), slot.as_str())
            {
                unmet.push(format!(
                    "frame {i}: got {} {}, want {verdict} {slot}",
                    got.0, got.1
                ));
            }
        }
        match (&r.known_bug, unmet.is_empty()) {
            (None, true) => {}
            (None, false) => panic!("{name}: {}", unmet.join("; ")),
            (Some(bug), false) => {
                eprintln!(
                    "{name}: known bug ({bug}) still present: {}",
                    unmet.join("; ")
                );
            }
            (Some(bug), true) => panic!(
                "{name}: the known bug ({bug}) is fixed: delete its known-bug line, and un-ignore \
                 the test the file names"
            ),
        }
    }
}

#[test]
fn generator_builds_what_it_says() {
    // Not a kernel test: a few fixed shapes through the builders.
    let tcp = L4::Tcp {
        sport: 443,
        dport: 50_000,
        doff: 5,
        flags: 0x12,
        opt_words: 0,
        payload: 0,
    };
    let p = V4 {
        version: None,
        ihl: None,
        options: Vec::new(),
        total: Len::Exact,
        id: 1,
        flags_frag: 0x4000,
        proto: None,
        src: Ipv4Addr::new(203, 0, 113, 10),
        dst: Ipv4Addr::new(192, 0, 2, 1),
        l4: tcp.clone(),
    };
    let f = Frame {
        tags: Link::Ether(vec![(ethertype::QINQ, 0xf007)]),
        ether: None,
        net: Net::V4(p.clone()),
    }
    .bytes();
    assert_eq!(f.len(), 14 + 4 + 20 + 20);
    assert_eq!(&f[12..18], &[0x88, 0xa8, 0xf0, 0x07, 0x08, 0x00]);
    assert_eq!(f[18], 0x45);
    assert_eq!(u16::from_be_bytes([f[20], f[21]]), 40);
    // A train in 8-byte pieces: offsets 0, 1, 2; more-fragments on all but the last.
    let train = Case::Train {
        tags: Link::Ether(Vec::new()),
        datagram: Datagram::V4(p),
        plan: Plan::InOrder {
            units: 1,
            reverse: false,
            skip: None,
            damage: Vec::new(),
        },
    }
    .frames();
    assert_eq!(train.len(), 3);
    let ff: Vec<u16> = train
        .iter()
        .map(|f| u16::from_be_bytes([f[20], f[21]]))
        .collect();
    assert_eq!(ff, [0x2000, 0x2001, 2]);
    // IPv6 with a fragment header after one destination-options header.
    let v6p = V6 {
        version: None,
        payload: Len::Exact,
        next: None,
        hop_limit: 64,
        src: Ipv6Addr::from(V6_EDGES[0]),
        dst: Ipv6Addr::from(V6_EDGES[8]),
        exts: vec![ExtH {
            ext: Ext::Opts { kind: 60, units: 0 },
            next: None,
        }],
        l4: tcp,
    };
    let frames = Case::Train {
        tags: Link::Ether(Vec::new()),
        datagram: Datagram::V6 { packet: v6p, at: 1 },
        plan: Plan::InOrder {
            units: 4,
            reverse: false,
            skip: None,
            damage: Vec::new(),
        },
    }
    .frames();
    assert_eq!(frames.len(), 1);
    let f = &frames[0];
    assert_eq!(f[14 + 6], 60, "fixed header names destination options");
    assert_eq!(
        f[14 + 40],
        44,
        "destination options name the fragment header"
    );
    assert_eq!(f[14 + 48], ipproto::TCP, "the fragment header names TCP");
    assert_eq!(hex(&unhex("00ff10").unwrap()), "00ff10");
}
