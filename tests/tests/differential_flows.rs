//! Stateful differential testing: random SEQUENCES of operations through the loaded programs
//! (TC egress opening flows, XDP ingress admitting their packets) and through the host
//! classifier over `SoftTables`, which must agree on every verdict and counter, and whose flow
//! tables must agree at the end of each sequence.
//!
//! A sequence (proptest) is up to [`SEQUENCE_MAX`] operations, weighted: an outbound TCP or UDP
//! packet to an address and port a rule names, its neighbours or any (opens or refreshes a
//! flow), with random TCP flags; an outbound packet of a tuple already sent; an inbound reply of
//! one, with random flags, 1 to 6 times in a row (what a flow cache serves); inbound near
//! misses of one (same remote, other port; same port, other remote; other local port; other
//! protocol; the other family's twin); inbound floods from the named ports 53, 123, 443 and 3478
//! of random addresses; a rule-set swap (the next `Config::generation`, in the rule set in force
//! or in the other of its pair, whose rules may no longer allow some flows); a flow deleted from
//! both tables, as a flush does.
//!
//! Each pair of stateful rule sets (timeouts of a day: the kernel's clock cannot be driven) is
//! loaded once on one flow map (see `gotofw_tests::flows`) and runs on an Ethernet link, then on
//! an L3 link. Per packet the kernel's verdict and the counter of the host's slot must match; per
//! sequence every counter of both rule sets and every flow (keys; rule, state, generation,
//! packets and bytes per direction; times within the clocks' slack). A sequence starts from
//! empty tables under a new generation. On a mismatch proptest shrinks the sequence, and the
//! panic prints it with its rule sets and seed, so that it can be replayed.
//!
//! `flow_differential` runs `GOTOFW_FLOW_DIFF_CASES` sequences (default [`DEFAULT_CASES`]),
//! half from a fixed seed and half from a seed taken from the clock unless
//! `GOTOFW_FLOW_DIFF_SEED` is set, which it prints. Loading the six programs takes most of its
//! time (about 17 s here); the sequences run at about 20,000 packets a second.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use filter_common::{Direction, ipproto, tcp_flags};
use filter_user::frame;
use gotofw_tests::{
    flows::FlowHarness,
    harness::{Framing, rule_set},
    require_root_or_skip,
    seeds::{cases_from_env, parse_seed},
};
use proptest::{
    collection::vec,
    prelude::*,
    sample::{Index, select},
    test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner},
};

/// Sequences per test unless `GOTOFW_FLOW_DIFF_CASES` says otherwise.
const DEFAULT_CASES: u64 = 4_000;
/// The fixed seed of `flow_differential`.
const FIXED_SEED: u64 = 0x6677_666c_6f77_0001;
/// Most operations in one sequence.
const SEQUENCE_MAX: usize = 48;

/// The swap pairs: the first rule set of each is in force at the start of a sequence, a swap
/// puts either in force.
const PAIRS: [(&str, &str); 3] = [
    ("udp-turn", "tcp-443"),
    ("tcp-443", "udp-turn + operator networks, resolvers"),
    ("udp-turn, turn-dst any", "tcp-turn"),
];

// ---------------------------------------------------------------------------------------------
// The generator.
// ---------------------------------------------------------------------------------------------

/// The client's addresses (the local end of every flow).
const LOCAL4: [[u8; 4]; 2] = [[192, 0, 2, 1], [192, 0, 2, 2]];
const LOCAL6: [u128; 2] = [
    0x2001_0db8_0000_0000_0000_0000_0000_0001,
    0x2001_0db8_0000_0000_0000_0000_0000_0002,
];

/// Remote IPv4 addresses: in and at the edges of the TURN networks, operator networks and
/// servers of the rule sets, and documentation addresses outside them.
const REMOTE4: [[u8; 4]; 14] = [
    [68, 64, 0, 10],
    [68, 64, 31, 255],
    [68, 64, 32, 0],
    [173, 199, 0, 5],
    [78, 108, 124, 1],
    [202, 173, 24, 9],
    [23, 239, 224, 3],
    [198, 51, 100, 1],
    [198, 51, 100, 127],
    [198, 51, 100, 128],
    [198, 51, 100, 53],
    [203, 0, 113, 123],
    [203, 0, 113, 10],
    [192, 0, 2, 200],
];

/// Remote IPv6 addresses, likewise.
const REMOTE6: [u128; 6] = [
    0x2001_0db8_0077_0000_0000_0000_0000_0010,
    0x2001_0db8_0077_8000_0000_0000_0000_0001,
    0x2001_0db8_0078_0000_0000_0000_0000_0001,
    0x2001_0db8_0000_0000_0000_0000_0000_0053,
    0x2001_0db8_0005_0000_0000_0000_0000_0010,
    0x2001_0db8_0000_0000_0000_0000_0000_0200,
];

/// Remote ports the rule sets name, at the edges of their ranges, and neighbours.
const REMOTE_PORTS: [u16; 12] = [
    443, 3478, 53, 123, 45_000, 49_999, 47_500, 50_000, 3479, 442, 80, 19_302,
];
/// Local ports.
const LOCAL_PORTS: [u16; 5] = [50_000, 50_001, 40_000, 68, 123];
/// The ports floods come from.
const FLOOD_PORTS: [u16; 4] = [53, 123, 443, 3478];

/// TCP flag mixes (ACK is 0x10, PSH 0x08).
const FLAGS: [u8; 12] = [
    tcp_flags::SYN,
    tcp_flags::SYN | tcp_flags::ACK,
    tcp_flags::ACK,
    tcp_flags::ACK | 0x08,
    tcp_flags::ACK,
    tcp_flags::FIN | tcp_flags::ACK,
    tcp_flags::FIN,
    tcp_flags::RST,
    tcp_flags::RST | tcp_flags::ACK,
    tcp_flags::SYN | tcp_flags::FIN,
    tcp_flags::SYN | tcp_flags::RST,
    0,
];

fn flags() -> BoxedStrategy<u8> {
    prop_oneof![6 => select(&FLAGS[..]), 1 => any::<u8>()].boxed()
}

fn remote(v6: bool) -> BoxedStrategy<IpAddr> {
    if v6 {
        prop_oneof![
            4 => select(&REMOTE6[..]).prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
            1 => any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        ]
        .boxed()
    } else {
        prop_oneof![
            4 => select(&REMOTE4[..]).prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
            1 => any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        ]
        .boxed()
    }
}

fn remote_port() -> BoxedStrategy<u16> {
    prop_oneof![5 => select(&REMOTE_PORTS[..]), 1 => any::<u16>()].boxed()
}

fn local_port() -> BoxedStrategy<u16> {
    prop_oneof![5 => select(&LOCAL_PORTS[..]), 1 => any::<u16>()].boxed()
}

/// A flow's tuple as its outbound packets carry it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Tuple {
    tcp: bool,
    local: IpAddr,
    local_port: u16,
    remote: IpAddr,
    remote_port: u16,
}

impl fmt::Debug for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} -> {}",
            if self.tcp { "tcp" } else { "udp" },
            std::net::SocketAddr::new(self.local, self.local_port),
            std::net::SocketAddr::new(self.remote, self.remote_port)
        )
    }
}

impl Tuple {
    fn proto(&self) -> u8 {
        if self.tcp { ipproto::TCP } else { ipproto::UDP }
    }

    /// A packet of the tuple in `direction`, with TCP `flags` and `payload` bytes of payload.
    fn frame(&self, direction: Direction, flags: u8, payload: u8) -> Vec<u8> {
        let data = vec![0x5a; usize::from(payload)];
        let ((src, sport), (dst, dport)) = match direction {
            Direction::Egress => (
                (self.local, self.local_port),
                (self.remote, self.remote_port),
            ),
            Direction::Ingress => (
                (self.remote, self.remote_port),
                (self.local, self.local_port),
            ),
        };
        let l4 = if self.tcp {
            let mut l4 = frame::tcp(sport, dport, &data);
            l4[13] = flags;
            l4
        } else {
            frame::udp(sport, dport, &data)
        };
        frame::ip_frame(src, dst, self.proto(), &l4)
    }

    /// The same ports and protocol in the other family: an IPv4 address as the low bits of
    /// an address in 2001:db8:77::/96, an IPv6 one by its low 32 bits.
    fn twin(&self) -> Self {
        let flip = |a: IpAddr| -> IpAddr {
            match a {
                IpAddr::V4(a) => IpAddr::V6(Ipv6Addr::from(
                    0x2001_0db8_0077_0000_0000_0000_0000_0000 | u128::from(u32::from(a)),
                )),
                IpAddr::V6(a) => IpAddr::V4(Ipv4Addr::from(u128::from(a) as u32)),
            }
        };
        Self {
            local: flip(self.local),
            remote: flip(self.remote),
            ..*self
        }
    }
}

/// Tuples some rule of the pairs allows: `(tcp, remote, remote port)`.
const ALLOWED: [(bool, &str, u16); 8] = [
    (false, "68.64.0.10", 3478),
    (true, "68.64.0.10", 3478),
    (true, "203.0.113.10", 443),
    (false, "198.51.100.53", 53),
    (false, "203.0.113.123", 123),
    (false, "2001:db8:77::10", 3478),
    (true, "2001:db8:5::10", 443),
    (false, "173.199.0.5", 45_000),
];

fn tuple() -> BoxedStrategy<Tuple> {
    prop_oneof![1 => any_tuple(), 1 => allowed_tuple()].boxed()
}

fn allowed_tuple() -> BoxedStrategy<Tuple> {
    (select(&ALLOWED[..]), any::<bool>(), local_port())
        .prop_map(|((tcp, remote, remote_port), second, local_port)| {
            let remote: IpAddr = remote.parse().expect("an address");
            let local = if remote.is_ipv6() {
                IpAddr::V6(Ipv6Addr::from(LOCAL6[usize::from(second)]))
            } else {
                IpAddr::V4(Ipv4Addr::from(LOCAL4[usize::from(second)]))
            };
            Tuple {
                tcp,
                local,
                local_port,
                remote,
                remote_port,
            }
        })
        .boxed()
}

fn any_tuple() -> BoxedStrategy<Tuple> {
    (any::<bool>(), prop::bool::weighted(0.25), any::<bool>())
        .prop_flat_map(|(tcp, v6, second)| {
            let local = if v6 {
                IpAddr::V6(Ipv6Addr::from(LOCAL6[usize::from(second)]))
            } else {
                IpAddr::V4(Ipv4Addr::from(LOCAL4[usize::from(second)]))
            };
            (local_port(), remote(v6), remote_port()).prop_map(
                move |(local_port, remote, remote_port)| Tuple {
                    tcp,
                    local,
                    local_port,
                    remote,
                    remote_port,
                },
            )
        })
        .boxed()
}

/// How an inbound near miss differs from a flow's replies.
#[derive(Clone, Copy, Debug)]
enum Miss {
    /// The same remote address, another remote port.
    RemotePort(u16),
    /// The same ports, another remote address (of the same family).
    Remote(u128),
    /// Another local port.
    LocalPort(u16),
    /// The other protocol (TCP for UDP and back).
    Proto,
    /// The other family.
    Twin,
}

fn miss() -> BoxedStrategy<Miss> {
    prop_oneof![
        2 => remote_port().prop_map(Miss::RemotePort),
        1 => any::<u16>().prop_map(Miss::RemotePort),
        2 => any::<u128>().prop_map(Miss::Remote),
        2 => local_port().prop_map(Miss::LocalPort),
        2 => Just(Miss::Proto),
        1 => Just(Miss::Twin),
    ]
    .boxed()
}

impl Miss {
    fn apply(self, t: &Tuple) -> Tuple {
        match self {
            Self::RemotePort(p) => Tuple {
                remote_port: if p == t.remote_port { p ^ 1 } else { p },
                ..*t
            },
            Self::Remote(a) => {
                let remote = match t.remote {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(a as u32)),
                    IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(a)),
                };
                let remote = if remote == t.remote {
                    match remote {
                        IpAddr::V4(r) => IpAddr::V4(Ipv4Addr::from(u32::from(r) ^ 1)),
                        IpAddr::V6(r) => IpAddr::V6(Ipv6Addr::from(u128::from(r) ^ 1)),
                    }
                } else {
                    remote
                };
                Tuple { remote, ..*t }
            }
            Self::LocalPort(p) => Tuple {
                local_port: if p == t.local_port { p ^ 1 } else { p },
                ..*t
            },
            Self::Proto => Tuple { tcp: !t.tcp, ..*t },
            Self::Twin => t.twin(),
        }
    }
}

/// One operation of a sequence. `flow` picks one of the tuples sent out so far (none: the
/// operation sends a packet of a tuple never sent).
#[derive(Clone, Debug)]
enum Op {
    /// An outbound packet of a new tuple.
    Out {
        tuple: Tuple,
        flags: u8,
        payload: u8,
    },
    /// An outbound packet of a tuple sent before.
    Again { flow: Index, flags: u8, payload: u8 },
    /// Inbound replies of a tuple sent before, one per flags value, in a row.
    Reply {
        flow: Index,
        flags: Vec<u8>,
        payload: u8,
    },
    /// An inbound near miss of a tuple sent before.
    Near { flow: Index, miss: Miss, flags: u8 },
    /// Inbound packets from a named port of random addresses, to a client port.
    Flood {
        tcp: bool,
        port: u16,
        local_port: u16,
        sources: Vec<u128>,
        v6: bool,
    },
    /// A rule-set swap to the rule set `to` of the pair, under the next generation.
    Swap { to: u8 },
    /// The flow of a tuple sent before deleted from both tables.
    Delete { flow: Index },
}

fn op() -> BoxedStrategy<Op> {
    prop_oneof![
        6 => (tuple(), flags(), 0u8..=64).prop_map(|(tuple, flags, payload)| Op::Out {
            tuple,
            flags,
            payload
        }),
        3 => (any::<Index>(), flags(), 0u8..=64)
            .prop_map(|(flow, flags, payload)| Op::Again { flow, flags, payload }),
        8 => (any::<Index>(), vec(flags(), 1..=6), 0u8..=64)
            .prop_map(|(flow, flags, payload)| Op::Reply { flow, flags, payload }),
        4 => (any::<Index>(), miss(), flags())
            .prop_map(|(flow, miss, flags)| Op::Near { flow, miss, flags }),
        3 => (
            any::<bool>(),
            select(&FLOOD_PORTS[..]),
            local_port(),
            vec(any::<u128>(), 1..=4),
            prop::bool::weighted(0.25),
        )
            .prop_map(|(tcp, port, local_port, sources, v6)| Op::Flood {
                tcp,
                port,
                local_port,
                sources,
                v6
            }),
        1 => (0u8..2).prop_map(|to| Op::Swap { to }),
        1 => any::<Index>().prop_map(|flow| Op::Delete { flow }),
    ]
    .boxed()
}

/// The tuple a flow-picking operation names: one of `sent`, or `fallback` when none was sent.
fn pick(sent: &[Tuple], flow: Index) -> Tuple {
    if sent.is_empty() {
        Tuple {
            tcp: false,
            local: IpAddr::V4(Ipv4Addr::from(LOCAL4[0])),
            local_port: 50_000,
            remote: IpAddr::V4(Ipv4Addr::from(REMOTE4[0])),
            remote_port: 3478,
        }
    } else {
        sent[flow.index(sent.len())]
    }
}

// ---------------------------------------------------------------------------------------------
// The runner.
// ---------------------------------------------------------------------------------------------

/// What the runs did, for the summary.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    sequences: u64,
    ops: u64,
    packets: u64,
    passed_in: u64,
    swaps: u64,
    deletes: u64,
    flows: u64,
}

/// The flow key of `t`, as the kernel keys its flow.
fn flow_key(t: &Tuple) -> filter_common::FlowKey {
    let mut key = filter_common::FlowKey {
        remote_port: t.remote_port,
        local_port: t.local_port,
        proto: t.proto(),
        ..Default::default()
    };
    match (t.remote, t.local) {
        (IpAddr::V4(r), IpAddr::V4(l)) => {
            key.remote[..4].copy_from_slice(&r.octets());
            key.local[..4].copy_from_slice(&l.octets());
            key.family = 4;
        }
        (IpAddr::V6(r), IpAddr::V6(l)) => {
            key.remote = r.octets();
            key.local = l.octets();
            key.family = 6;
        }
        _ => unreachable!("a tuple's addresses are of one family"),
    }
    key
}

/// One sequence's run: what it sent, and a line per packet and operation (printed on a
/// mismatch: the packets as sent, to replay by hand or in a test).
struct Run<'a> {
    h: &'a mut FlowHarness,
    stats: &'a mut Stats,
    trace: Vec<String>,
}

impl Run<'_> {
    /// Sends a packet of `t` in `direction` on both sides.
    fn send(
        &mut self,
        direction: Direction,
        t: &Tuple,
        flags: u8,
        payload: u8,
    ) -> Result<(), String> {
        self.stats.packets += 1;
        let shown = match direction {
            Direction::Egress => format!("{t:?}"),
            Direction::Ingress => format!(
                "{} {} -> {}",
                if t.tcp { "tcp" } else { "udp" },
                std::net::SocketAddr::new(t.remote, t.remote_port),
                std::net::SocketAddr::new(t.local, t.local_port)
            ),
        };
        let what = format!(
            "{direction:?} {shown}{} payload {payload}",
            if t.tcp {
                format!(" flags {flags:#04x}")
            } else {
                String::new()
            }
        );
        match self.h.step(direction, &t.frame(direction, flags, payload)) {
            Ok((passed, slot)) => {
                if passed && direction == Direction::Ingress {
                    self.stats.passed_in += 1;
                }
                self.trace.push(format!(
                    "{what}: {} in {slot}",
                    if passed { "allow" } else { "block" }
                ));
                Ok(())
            }
            Err(e) => {
                self.trace.push(format!("{what}: MISMATCH"));
                Err(format!("under {}: {e}", self.h.label()))
            }
        }
    }

    fn run(&mut self, seq: &[Op]) -> Result<(), String> {
        self.h.clear_flows();
        self.h.resync_counters();
        self.h.swap(0);
        self.trace.push(format!(
            "start: {}, generation {}",
            self.h.label(),
            self.h.generation()
        ));
        let mut sent: Vec<Tuple> = Vec::new();
        for op in seq {
            match op {
                Op::Out {
                    tuple,
                    flags,
                    payload,
                } => {
                    self.send(Direction::Egress, tuple, *flags, *payload)?;
                    if !sent.contains(tuple) {
                        sent.push(*tuple);
                    }
                }
                Op::Again {
                    flow,
                    flags,
                    payload,
                } => self.send(Direction::Egress, &pick(&sent, *flow), *flags, *payload)?,
                Op::Reply {
                    flow,
                    flags,
                    payload,
                } => {
                    let t = pick(&sent, *flow);
                    for f in flags {
                        self.send(Direction::Ingress, &t, *f, *payload)?;
                    }
                }
                Op::Near { flow, miss, flags } => {
                    let t = miss.apply(&pick(&sent, *flow));
                    self.send(Direction::Ingress, &t, *flags, 8)?;
                }
                Op::Flood {
                    tcp,
                    port,
                    local_port,
                    sources,
                    v6,
                } => {
                    for &s in sources {
                        let (remote, local) = if *v6 {
                            (
                                IpAddr::V6(Ipv6Addr::from(s)),
                                IpAddr::V6(Ipv6Addr::from(LOCAL6[0])),
                            )
                        } else {
                            (
                                IpAddr::V4(Ipv4Addr::from(s as u32)),
                                IpAddr::V4(Ipv4Addr::from(LOCAL4[0])),
                            )
                        };
                        let t = Tuple {
                            tcp: *tcp,
                            local,
                            local_port: *local_port,
                            remote,
                            remote_port: *port,
                        };
                        self.send(Direction::Ingress, &t, tcp_flags::ACK, 32)?;
                    }
                }
                Op::Swap { to } => {
                    self.h.swap(usize::from(*to));
                    self.stats.swaps += 1;
                    self.trace.push(format!(
                        "swap: {}, generation {}",
                        self.h.label(),
                        self.h.generation()
                    ));
                }
                Op::Delete { flow } => {
                    let t = pick(&sent, *flow);
                    self.stats.deletes += 1;
                    self.trace.push(format!("delete {t:?}"));
                    self.h.delete_flow(&flow_key(&t))?;
                }
            }
        }
        self.stats.sequences += 1;
        self.stats.ops += seq.len() as u64;
        self.stats.flows += self.h.host_flows().len() as u64;
        self.h
            .compare_counters()
            .map_err(|e| format!("after the sequence: {e}"))?;
        self.h.compare_flows().map_err(|e| {
            format!(
                "after the sequence, generation {}: {e}",
                self.h.generation()
            )
        })
    }
}

/// Runs one sequence from empty tables under a new generation; the first mismatch, with the
/// packets sent up to it.
fn run_sequence(h: &mut FlowHarness, seq: &[Op], stats: &mut Stats) -> Result<(), String> {
    let mut run = Run {
        h,
        stats,
        trace: Vec::new(),
    };
    run.run(seq).map_err(|e| {
        format!(
            "{e}\nthe packets, as sent (frames built by `Tuple::frame`):\n  {}",
            run.trace.join("\n  ")
        )
    })
}

/// Runs `cases` sequences over every pair from each of `seeds` (the programs are loaded once:
/// loading takes most of the time); panics on a mismatch with the shrunk sequence.
#[expect(clippy::cast_precision_loss, reason = "rates for people to read")]
fn differential_flows(seeds: &[u64], cases: u64) {
    let started = Instant::now();
    let mut loading = Duration::ZERO;
    let mut total = Stats::default();
    let runs = PAIRS.len() as u64 * 2 * seeds.len() as u64;
    let per_run = cases.div_ceil(runs).max(1);
    for (n, (first, second)) in PAIRS.iter().enumerate() {
        let load = Instant::now();
        let sets: Vec<(&str, _)> = [first, second]
            .iter()
            .map(|l| {
                (
                    **l,
                    rule_set(l).unwrap_or_else(|| panic!("no rule set {l}")),
                )
            })
            .collect();
        let mut h = FlowHarness::new(&sets);
        loading += load.elapsed();
        for (l3, &seed) in [false, true]
            .into_iter()
            .flat_map(|l3| seeds.iter().map(move |s| (l3, s)))
        {
            let (framing, link) = if l3 {
                (Framing::Ip, "an L3 link")
            } else {
                (Framing::Ethernet, "Ethernet")
            };
            h.set_framing(framing);
            let label = format!("{first} <-> {second}, on {link}, seed {seed:#x}");
            let mut rng_seed = [0u8; 32];
            rng_seed[..8].copy_from_slice(&seed.to_le_bytes());
            rng_seed[8..16].copy_from_slice(&(n as u64 | u64::from(l3) << 32).to_le_bytes());
            let config = Config {
                cases: u32::try_from(per_run).unwrap_or(u32::MAX),
                failure_persistence: None,
                max_shrink_iters: 20_000,
                max_shrink_time: 300_000,
                ..Config::default()
            };
            let mut runner = TestRunner::new_with_rng(
                config,
                TestRng::from_seed(RngAlgorithm::ChaCha, &rng_seed),
            );
            let stats = std::cell::RefCell::new(Stats::default());
            let h_cell = std::cell::RefCell::new(&mut h);
            let result = runner.run(&vec(op(), 1..=SEQUENCE_MAX), |seq| {
                run_sequence(&mut h_cell.borrow_mut(), &seq, &mut stats.borrow_mut())
                    .map_err(TestCaseError::fail)
            });
            match result {
                Ok(()) => {}
                Err(TestError::Abort(why)) => panic!("[{label}] seed {seed:#x}: aborted: {why}"),
                Err(TestError::Fail(why, seq)) => panic!(
                    "[{label}] seed {seed:#x}: kernel and host disagree: {why}\nthe shrunk \
                     sequence ({} operations; rerun with GOTOFW_FLOW_DIFF_SEED={seed:#x}):\n\
                     {seq:?}",
                    seq.len()
                ),
            }
            let s = stats.into_inner();
            eprintln!(
                "  [{label}] {} sequences, {} packets ({} inbound passed), {} swaps, {} \
                 deletes, {} flows at the ends",
                s.sequences, s.packets, s.passed_in, s.swaps, s.deletes, s.flows
            );
            total.sequences += s.sequences;
            total.ops += s.ops;
            total.packets += s.packets;
            total.passed_in += s.passed_in;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "flow differential: {} sequences ({} operations, {} packets, {} inbound \
         passed) in {secs:.1} s ({:.1} s loading programs): {:.0} packets/s",
        total.sequences,
        total.ops,
        total.packets,
        total.passed_in,
        loading.as_secs_f64(),
        total.packets as f64 / (secs - loading.as_secs_f64()).max(1e-3),
    );
}

#[test]
fn flow_differential() {
    if !require_root_or_skip("flow_differential") {
        return;
    }
    let random = std::env::var("GOTOFW_FLOW_DIFF_SEED").map_or_else(
        |_| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_nanos() as u64
        },
        |s| parse_seed("GOTOFW_FLOW_DIFF_SEED", &s),
    );
    eprintln!(
        "flow_differential: seeds {FIXED_SEED:#x} and {random:#x} (rerun the second with \
         GOTOFW_FLOW_DIFF_SEED={random:#x})"
    );
    differential_flows(
        &[FIXED_SEED, random],
        cases_from_env("GOTOFW_FLOW_DIFF_CASES", DEFAULT_CASES),
    );
}
