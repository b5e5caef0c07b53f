//! The loaded XDP program next to the host classifier: one rule set, both sides, one frame at a
//! time through `BPF_PROG_TEST_RUN`.
//!
//! A [`Harness`] loads the program (not attached) with its maps filled from one compiled rule
//! set, and keeps the host's twin of the kernel's fragment map. [`Harness::host`] classifies a
//! frame on the host and remembers first-fragment verdicts as the program does;
//! [`Harness::kernel`] runs it through the program. [`Harness::run`] does both and compares
//! everything: verdict, counter slot, the counter that moved, and the fragment map afterwards.
//! [`Harness::check`] also compares with an expected verdict, for table tests.
//!
//! Reading the 144 per-CPU counters takes 144 system calls, so bulk users
//! (`tests/differential.rs`) compare verdicts per frame with [`Harness::host`] and
//! [`Harness::kernel`], and counters and fragment maps per batch.

use std::{
    collections::HashMap,
    mem::MaybeUninit,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
};

use aya::{
    Ebpf,
    maps::{HashMap as BpfHashMap, PerCpuArray},
    programs::{SchedClassifier, TestRun as _, TestRunOptions, Xdp},
};
use filter_common::{
    ACTION_DROP, ACTION_PASS, COUNTER_ENTRIES, Counter, Decision, Direction, FIXED_SLOTS, FlowKey,
    FlowValue, FragKey, FragVerdict, classify, counter_index, slot,
};
use filter_user::{
    compile::{Compiled, Mode},
    frame, loader,
    scenario::{Allowance, Options, Protocol, Scenario, TurnDst},
    slots,
};
use ipnet::IpNet;

/// `XDP_DROP`, as `BPF_PROG_TEST_RUN` returns it.
pub const XDP_DROP: u32 = 1;
/// `XDP_PASS`, as `BPF_PROG_TEST_RUN` returns it.
pub const XDP_PASS: u32 = 2;

/// Shortest frame `BPF_PROG_TEST_RUN` accepts for XDP (an Ethernet header).
pub const MIN_TEST_RUN_FRAME: usize = 14;
/// Longest frame `BPF_PROG_TEST_RUN` hands whole to an XDP program without fragment support, with
/// 4 KiB pages: a page less the XDP headroom (256) and the `skb_shared_info` tailroom (320). The
/// kernel takes longer frames but puts the rest in fragments the program does not see.
pub const MAX_TEST_RUN_FRAME: usize = 4096 - 256 - 320;

/// Verdict word of an expectation: the packet passes.
pub const ALLOW: &str = "allow";
/// Verdict word of an expectation: the packet is dropped.
pub const BLOCK: &str = "block";
/// Expectation: no rule matched.
pub const DEFAULT: (&str, &str) = (BLOCK, "default-block");
/// Expectation: truncated or inconsistent headers.
pub const MALFORMED: (&str, &str) = (BLOCK, "malformed");
/// Expectation: beyond what the parser walks.
pub const UNSUPPORTED: (&str, &str) = (BLOCK, "unsupported");
/// Expectation: a later fragment whose first fragment was not seen.
pub const FRAGMENT_UNKNOWN: (&str, &str) = (BLOCK, "fragment-unknown");

/// The client behind the firewall, IPv4.
pub const CLIENT4: &str = "192.0.2.1:50000";
/// The client behind the firewall, IPv6.
pub const CLIENT6: &str = "[2001:db8::1]:50000";

/// Fragment-map contents: what the program remembered of first fragments.
pub type Fragments = HashMap<FragKey, FragVerdict>;

/// The rule sets the differential test and the fuzz target run under, by label: every scenario
/// with the seed's defaults, TURN to any address, the allowances off, and operator networks
/// (IPv6, nested, a default route, resolvers and time servers named).
pub fn rule_sets() -> Vec<(&'static str, Options)> {
    let net = |s: &str| s.parse().expect("a valid network");
    let mut sets: Vec<(&'static str, Options)> = Scenario::ALL
        .iter()
        .map(|&sc| (sc.name(), Options::new(sc)))
        .collect();
    let mut any = Options::new(Scenario::UdpTurn);
    any.turn_dst = TurnDst::Any;
    sets.push(("udp-turn, turn-dst any", any));
    let mut off = Options::new(Scenario::Tcp443);
    off.disabled = Allowance::ALL.to_vec();
    sets.push(("tcp-443, no allowances", off));
    let mut off = Options::new(Scenario::NoRestrictions);
    off.disabled = vec![Allowance::NonIp, Allowance::Icmpv6Nd, Allowance::Dhcp];
    sets.push(("no-restrictions, no non-ip, icmpv6-nd, dhcp", off));
    let mut ops = Options::new(Scenario::UdpTurn);
    ops.turn_networks.extend([
        net("2001:db8:77::/48"),
        net("2001:db8:77:8000::/49"),
        net("198.51.100.0/25"),
    ]);
    ops.dns_servers = vec![net("198.51.100.53/32"), net("2001:db8::53/128")];
    ops.ntp_servers = vec![net("203.0.113.123/32")];
    sets.push(("udp-turn + operator networks, resolvers", ops));
    let mut replaced = Options::new(Scenario::TcpTurn);
    replaced.turn_networks = vec![
        net("2001:db8:77::/48"),
        net("::/0"),
        net("0.0.0.0/0"),
        net("68.64.0.0/19"),
    ];
    replaced.disabled = vec![Allowance::IcmpErrors];
    sets.push(("tcp-turn, replaced by default routes", replaced));
    sets.push((BIG_NETWORK_SET, big_network_options(400)));
    sets
}

/// The label of the rule set of [`rule_sets`] whose IPv4 network set is large enough for the
/// direct first stage of the network lookup (`filter_common::nets`).
pub const BIG_NETWORK_SET: &str = "udp-turn + 400 networks, resolvers inside (direct stage)";

/// UDP TURN with [`big_network_set`]`(count)` added to the TURN networks, and resolvers and
/// time servers nested in TURN networks and next to them (other rules: other masks).
pub fn big_network_options(count: usize) -> Options {
    let net = |s: &str| s.parse().expect("a valid network");
    let mut o = Options::new(Scenario::UdpTurn);
    o.turn_networks
        .extend(big_network_set(count, 0x6766_6e31_3400 ^ count as u64));
    o.dns_servers = vec![
        net("68.64.16.0/20"),
        net("68.64.32.0/24"),
        net("198.51.100.53/32"),
    ];
    o.ntp_servers = vec![net("23.239.255.0/24"), net("203.0.113.123/32")];
    o
}

/// `count` pseudo-random IPv4 networks (seeded; /8 to /32, so that some nest in others), then
/// networks nested in and next to the TURN networks' edges (a /32, a /30 and a /26 at each of
/// their first and last addresses and the addresses just outside).
pub fn big_network_set(count: usize, seed: u64) -> Vec<IpNet> {
    let mut state = seed;
    let mut next = move || {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let v4 = |addr: u32, len: u8| {
        IpNet::V4(
            ipnet::Ipv4Net::new(Ipv4Addr::from(addr), len)
                .expect("a length of at most 32")
                .trunc(),
        )
    };
    let mut out: Vec<IpNet> = (0..count)
        .map(|_| {
            let r = next();
            v4(r as u32, 8 + ((r >> 32) % 25) as u8)
        })
        .collect();
    let edges: [(u32, u8); 5] = [
        (0x4440_0000, 19), // 68.64.0.0/19
        (0xadc7_0000, 18), // 173.199.0.0/18
        (0x4e6c_7c00, 23), // 78.108.124.0/23
        (0xcaad_1800, 21), // 202.173.24.0/21
        (0x17ef_e000, 19), // 23.239.224.0/19
    ];
    for (first, len) in edges {
        let last = first + ((1u32 << (32 - len)) - 1);
        for addr in [first, last, first.wrapping_sub(1), last.wrapping_add(1)] {
            out.extend([v4(addr, 32), v4(addr, 30), v4(addr, 26)]);
        }
    }
    out
}

/// The options of the rule set labelled `label` in [`rule_sets`].
pub fn rule_set(label: &str) -> Option<Options> {
    rule_sets()
        .into_iter()
        .find(|(l, _)| *l == label)
        .map(|(_, o)| o)
}

/// `s` as an IPv4 address; panics when it is not one.
pub fn v4(s: &str) -> Ipv4Addr {
    s.parse().expect("an IPv4 address")
}

/// `s` as an IPv6 address; panics when it is not one.
pub fn v6(s: &str) -> Ipv6Addr {
    s.parse().expect("an IPv6 address")
}

/// `s` as a socket address; panics when it is not one.
pub fn sock(s: &str) -> SocketAddr {
    s.parse().expect("an address:port")
}

fn reply(proto: Protocol, from: &str) -> Vec<u8> {
    let from = sock(from);
    let to = sock(if from.is_ipv4() { CLIENT4 } else { CLIENT6 });
    frame::packet(proto, from, to)
}

/// A small UDP reply from `from` (`addr:port`) to the client.
pub fn reply_udp(from: &str) -> Vec<u8> {
    reply(Protocol::Udp, from)
}

/// A TCP reply (20-byte header) from `from` (`addr:port`) to the client.
pub fn reply_tcp(from: &str) -> Vec<u8> {
    reply(Protocol::Tcp, from)
}

/// The decision on truncated or inconsistent headers.
pub const MALFORMED_DECISION: Decision = Decision {
    action: ACTION_DROP,
    slot: slot::MALFORMED,
    dns: filter_common::domain::mark::NONE,
};

/// Whether `decision` names a counter slot that exists under `compiled` (with `rules` rules) and
/// whose action is `decision.action`: a pass only in a passing allowance or an allow rule, a drop
/// only in a drop slot or a block rule.
pub fn decision_consistent(compiled: &Compiled, rules: usize, decision: Decision) -> bool {
    let passes = match decision.slot {
        slot::NON_IP | slot::ICMPV6_ND | slot::ICMP_ERRORS | slot::PPPOE_CONTROL => true,
        slot::DEFAULT_BLOCK | slot::MALFORMED | slot::UNSUPPORTED | slot::FRAGMENT_UNKNOWN => false,
        s if s >= FIXED_SLOTS && ((s - FIXED_SLOTS) as usize) < rules => {
            compiled.config.allow_mask & (1 << (s - FIXED_SLOTS)) != 0
        }
        _ => return false,
    };
    decision.action == if passes { ACTION_PASS } else { ACTION_DROP }
}

/// What one frame did on both sides (see [`Harness::run`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// The host classifier's decision.
    pub host: Decision,
    /// The kernel's: its XDP action and the counter slot that moved.
    pub kernel: Decision,
}

/// How a link carries the IP packets of the (untagged Ethernet) frames that
/// [`Harness::check`] is given: the tests build Ethernet frames, and run the same cases on every
/// link type by framing them anew.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Framing {
    /// As built: Ethernet.
    #[default]
    Ethernet,
    /// The IP packet alone, as on an L3 link (tun, PPP, WireGuard): the harness's program is
    /// told the link is [`filter_common::link::IP`].
    Ip,
    /// In a PPPoE session frame behind these VLAN tags `(tpid, vid)`.
    Pppoe(Vec<(u16, u16)>),
}

impl Framing {
    /// The link type the program is told for this framing.
    pub const fn link(&self) -> u32 {
        match self {
            Self::Ip => filter_common::link::IP,
            Self::Ethernet | Self::Pppoe(_) => filter_common::link::ETHERNET,
        }
    }

    /// `frame`, an untagged Ethernet frame carrying IPv4 or IPv6, framed for this link; panics
    /// when it carries something else (a test's mistake).
    pub fn apply(&self, frame: &[u8]) -> Vec<u8> {
        if *self == Self::Ethernet {
            return frame.to_vec();
        }
        let ether = u16::from_be_bytes([frame[12], frame[13]]);
        assert!(
            ether == filter_common::ethertype::IPV4 || ether == filter_common::ethertype::IPV6,
            "only untagged IP frames are framed anew (ethertype {ether:#06x})"
        );
        match self {
            Self::Ethernet => unreachable!(),
            Self::Ip => frame[14..].to_vec(),
            Self::Pppoe(tags) => frame::pppoe_ip(tags, 0x0101, &frame[14..]),
        }
    }
}

/// A rule set under test: its loaded program and its host twin.
pub struct Harness {
    label: String,
    names: Vec<String>,
    ebpf: Ebpf,
    compiled: Compiled,
    fragments: Fragments,
    framing: Framing,
}

impl Harness {
    /// Compiles `options` (stateless) and loads the program with its maps filled; panics
    /// (naming `label`) when the kernel refuses it.
    pub fn new(label: &str, options: &Options) -> Self {
        Self::with(label, options, &Mode::Stateless, Framing::Ethernet)
    }

    /// Like [`Harness::new`], compiled for `mode`, its frames framed by `framing` in
    /// [`Harness::check`] and its program told the link type of that framing.
    pub fn with(label: &str, options: &Options, mode: &Mode, framing: Framing) -> Self {
        let rules = options.rules();
        let mut compiled = Compiled::with_mode(&rules, options.allowance_bits(), mode)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        compiled.config.link = framing.link();
        let ebpf = loader::load(&compiled, b"{}").unwrap_or_else(|e| panic!("{label}: {e:#}"));
        Self {
            label: label.to_owned(),
            names: rules.iter().map(|r| r.name.clone()).collect(),
            ebpf,
            compiled,
            fragments: Fragments::new(),
            framing,
        }
    }

    /// Frames the frames of [`Harness::check`] by `framing` from now on, and tells the loaded
    /// program and the host the link type of that framing (one config write: no new load).
    pub fn set_framing(&mut self, framing: Framing) {
        self.compiled.config.link = framing.link();
        let mut config: aya::maps::Array<_, filter_common::Config> =
            aya::maps::Array::try_from(self.ebpf.map_mut("CONFIG").expect("the CONFIG map"))
                .expect("CONFIG is an array");
        config
            .set(0, self.compiled.config, 0)
            .expect("writing the config entry");
        self.framing = framing;
    }

    /// Runs `frame` through the egress (TC) program once; returns its TC action. The program
    /// is loaded in every mode but ingress-only.
    pub fn egress(&self, frame: &[u8]) -> Result<i32, String> {
        let tc: &SchedClassifier = self
            .ebpf
            .program("gotofw_egress")
            .ok_or("the object has no egress program loaded")?
            .try_into()
            .map_err(|e| format!("gotofw_egress: {e}"))?;
        tc.test_run(TestRunOptions {
            data_in: Some(frame),
            ..TestRunOptions::new()
        })
        .map(|r| r.return_value.cast_signed())
        .map_err(|e| {
            format!(
                "BPF_PROG_TEST_RUN (egress) of a {}-byte frame: {e}",
                frame.len()
            )
        })
    }

    /// The kernel's flow table: its keys.
    pub fn flow_keys(&self) -> Vec<FlowKey> {
        let map: BpfHashMap<&aya::maps::MapData, FlowKey, FlowValue> =
            BpfHashMap::try_from(self.ebpf.map("FLOWS").expect("the FLOWS map"))
                .expect("FLOWS is a hash map");
        map.keys()
            .map(|k| k.expect("reading the flow map"))
            .collect()
    }

    /// The label given to [`Harness::new`].
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The loaded object (its maps).
    pub fn ebpf(&self) -> &Ebpf {
        &self.ebpf
    }

    /// The compiled map contents.
    pub fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    /// The name of counter slot `slot` under this rule set.
    pub fn slot_name(&self, slot: u32) -> String {
        slots::slot_name(&self.names, slot)
    }

    /// Whether `decision` is consistent with this rule set (see [`decision_consistent`]).
    pub fn consistent(&self, decision: Decision) -> bool {
        decision_consistent(&self.compiled, self.names.len(), decision)
    }

    fn xdp(&self) -> &Xdp {
        self.ebpf
            .program("gotofw_ingress")
            .expect("the object has its XDP program")
            .try_into()
            .expect("gotofw_ingress is an XDP program")
    }

    /// Every counter (both directions), summed over CPUs.
    pub fn counters(&self) -> Vec<Counter> {
        let map: PerCpuArray<_, Counter> =
            PerCpuArray::try_from(self.ebpf.map("COUNTERS").expect("the COUNTERS map"))
                .expect("COUNTERS is a per-CPU array");
        (0..COUNTER_ENTRIES)
            .map(|i| {
                map.get(&i, 0).expect("reading a counter").iter().fold(
                    Counter::default(),
                    |a, c| Counter {
                        packets: a.packets + c.packets,
                        bytes: a.bytes + c.bytes,
                    },
                )
            })
            .collect()
    }

    fn frag_map(&self) -> BpfHashMap<&aya::maps::MapData, FragKey, FragVerdict> {
        BpfHashMap::try_from(self.ebpf.map("FRAGS").expect("the FRAGS map"))
            .expect("FRAGS is a hash map")
    }

    /// The kernel's fragment map.
    pub fn kernel_fragments(&self) -> Fragments {
        self.frag_map()
            .iter()
            .map(|entry| entry.expect("reading the fragment map"))
            .collect()
    }

    /// The host's fragment map.
    pub fn host_fragments(&self) -> &Fragments {
        &self.fragments
    }

    /// Empties the fragment map on both sides.
    pub fn clear_fragments(&mut self) {
        self.fragments.clear();
        let mut map: BpfHashMap<_, FragKey, FragVerdict> =
            BpfHashMap::try_from(self.ebpf.map_mut("FRAGS").expect("the FRAGS map"))
                .expect("FRAGS is a hash map");
        let keys: Vec<FragKey> = map
            .keys()
            .map(|k| k.expect("reading the fragment map"))
            .collect();
        for key in keys {
            map.remove(&key).expect("removing a fragment entry");
        }
    }

    /// Classifies `frame` on the host (ingress) and remembers a first fragment's verdict, as the
    /// program does.
    pub fn host(&mut self, frame: &[u8]) -> Decision {
        let mut tables = self.compiled.tables();
        tables.fragments = std::mem::take(&mut self.fragments);
        let mut key = MaybeUninit::<FragKey>::uninit();
        let outcome = classify(frame, &tables, Direction::Ingress, &mut key);
        self.fragments = tables.fragments;
        if outcome.remember {
            // SAFETY: the classifier writes the key whenever it asks to remember.
            let key = unsafe { key.assume_init() };
            self.fragments.insert(key, outcome.frag_verdict());
        }
        // The kernel's decision is read from its verdict and counters, which say nothing of
        // the DNS mark (whose effects the DNS tests check): compared without it.
        Decision {
            dns: filter_common::domain::mark::NONE,
            ..outcome.decision
        }
    }

    /// Runs `frame` through the program once; returns its XDP action. Frames outside
    /// [`MIN_TEST_RUN_FRAME`]..=[`MAX_TEST_RUN_FRAME`] are an error (the kernel refuses short
    /// ones, and puts the rest of long ones in further buffers: see [`Harness::kernel_any`]).
    pub fn kernel(&self, frame: &[u8]) -> Result<u32, String> {
        if frame.len() > MAX_TEST_RUN_FRAME {
            return Err(format!(
                "a {}-byte frame is longer than the {MAX_TEST_RUN_FRAME} bytes BPF_PROG_TEST_RUN \
                 puts in the first buffer",
                frame.len()
            ));
        }
        self.kernel_any(frame)
    }

    /// Like [`Harness::kernel`], with no upper bound: a frame longer than
    /// [`MAX_TEST_RUN_FRAME`] reaches the (frags-aware) program as a multi-buffer frame, its
    /// first [`MAX_TEST_RUN_FRAME`] bytes linear and the rest in fragments.
    pub fn kernel_any(&self, frame: &[u8]) -> Result<u32, String> {
        self.xdp()
            .test_run(TestRunOptions {
                data_in: Some(frame),
                ..TestRunOptions::new()
            })
            .map(|r| r.return_value)
            .map_err(|e| format!("BPF_PROG_TEST_RUN of a {}-byte frame: {e}", frame.len()))
    }

    /// Runs `frame` through the program once (any length, see [`Harness::kernel_any`]) and
    /// reads what it did: the decision, from its XDP action and the one counter slot that
    /// moved, and the packets and bytes that slot moved by.
    pub fn kernel_counted(&self, frame: &[u8]) -> Result<(Decision, u64, u64), String> {
        let before = self.counters();
        let action = self.kernel_any(frame)?;
        let after = self.counters();
        let action = match action {
            XDP_PASS => ACTION_PASS,
            XDP_DROP => ACTION_DROP,
            other => return Err(format!("the program returned XDP action {other}")),
        };
        let moved: Vec<usize> = (0..after.len())
            .filter(|&i| after[i] != before[i])
            .collect();
        let [index] = moved[..] else {
            return Err(format!("counters that moved: {moved:?} (want one)"));
        };
        let ingress = counter_index(Direction::Ingress, 0) as usize;
        let kernel = Decision {
            action,
            slot: (index - ingress) as u32,
            dns: filter_common::domain::mark::NONE,
        };
        Ok((
            kernel,
            after[index].packets - before[index].packets,
            after[index].bytes - before[index].bytes,
        ))
    }

    /// Runs `frame` on both sides and compares everything: the XDP action with the host's
    /// verdict, that exactly one counter moved by one packet and the frame's length, in the
    /// host's slot, and the fragment maps afterwards. Returns both decisions, or what differs.
    pub fn run(&mut self, frame: &[u8]) -> Result<Run, String> {
        let host = self.host(frame);
        if frame.len() < MIN_TEST_RUN_FRAME {
            // BPF_PROG_TEST_RUN refuses it; the program's first read would fail the same way.
            return if host == MALFORMED_DECISION {
                Ok(Run { host, kernel: host })
            } else {
                Err(format!(
                    "a {}-byte frame is not malformed on the host: {host:?}",
                    frame.len()
                ))
            };
        }
        if frame.len() > MAX_TEST_RUN_FRAME {
            // A multi-buffer frame: the host sees all of it, the program only the first buffer.
            return Err(format!(
                "a {}-byte frame is longer than the {MAX_TEST_RUN_FRAME} bytes BPF_PROG_TEST_RUN \
                 puts in the first buffer (see `run_multi_buffer`)",
                frame.len()
            ));
        }
        self.compare(frame, host)
    }

    /// Like [`Harness::run`], for a frame longer than [`MAX_TEST_RUN_FRAME`] whose headers
    /// all lie in the first buffer: the program, reading only that buffer, must still agree
    /// with the host reading the frame linear.
    pub fn run_multi_buffer(&mut self, frame: &[u8]) -> Result<Run, String> {
        if frame.len() <= MAX_TEST_RUN_FRAME {
            return Err(format!(
                "a {}-byte frame fits in one buffer (want more than {MAX_TEST_RUN_FRAME})",
                frame.len()
            ));
        }
        let host = self.host(frame);
        self.compare(frame, host)
    }

    /// The kernel half of [`Harness::run`]: runs `frame` and compares with the host's `host`.
    fn compare(&mut self, frame: &[u8], host: Decision) -> Result<Run, String> {
        let (kernel, dp, db) = self.kernel_counted(frame)?;
        if (dp, db) != (1, frame.len() as u64) {
            return Err(format!(
                "slot {} moved by {dp} packets and {db} bytes (want 1 and {})",
                kernel.slot,
                frame.len()
            ));
        }
        if kernel != host {
            return Err(format!(
                "kernel and host disagree: kernel {} in {}, host {} in {}",
                verdict_word(kernel),
                self.slot_name(kernel.slot),
                verdict_word(host),
                self.slot_name(host.slot),
            ));
        }
        let kernel_frags = self.kernel_fragments();
        if kernel_frags != self.fragments {
            return Err(format!(
                "fragment maps differ: kernel {kernel_frags:?}, host {:?}",
                self.fragments
            ));
        }
        Ok(Run { host, kernel })
    }

    /// Runs `frame` on both sides (see [`Harness::run`]) and checks that both give `want`
    /// (`("allow" | "block", slot name)`); panics naming `case` otherwise.
    /// The frame is framed for the harness's link first (see [`Framing`]).
    pub fn check(&mut self, case: &str, frame: &[u8], want: (&str, &str)) {
        let frame = self.framing.apply(frame);
        self.check_raw(case, &frame, want);
    }

    /// Like [`Harness::check`], with `frame` as given (not framed for the link).
    pub fn check_raw(&mut self, case: &str, frame: &[u8], want: (&str, &str)) {
        let ctx = format!("[{}] {case}", self.label);
        let run = self.run(frame).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let got = (verdict_word(run.host), self.slot_name(run.host.slot));
        assert_eq!((got.0, got.1.as_str()), want, "{ctx}: unexpected verdict");
    }
}

/// `allow` or `block`.
pub fn verdict_word(decision: Decision) -> &'static str {
    if decision.passes() { ALLOW } else { BLOCK }
}

/// Domain rules (issue 13) on both sides: the egress program recording DNS queries, the
/// ingress program learning from their answers, and the host running the same functions
/// (`filter_common::learn`) over `SoftTables`, with the programs' shells
/// (`gotofw_query_tc`, `gotofw_learn_xdp`, `gotofw_records_xdp`) modelled here.
pub mod dns {
    use std::{collections::HashMap, mem::MaybeUninit};

    use aya::{
        Ebpf,
        maps::{HashMap as BpfHashMap, MapData, PerCpuArray},
        programs::{SchedClassifier, TestRun as _, TestRunOptions, Xdp},
    };
    use filter_common::{
        ACTION_DROP, ACTION_PASS, COUNTER_ENTRIES, Counter, Decision, Direction, FlowKey,
        FlowValue, FragKey, FragVerdict, MAX_DOMAIN_SETS, SLOTS_PER_DIRECTION, classify,
        dns::{MESSAGE_BUF, Message},
        domain::mark,
        learn::{
            self, AddrKey, DomainEntry, LearnedValue, QueryKey, QueryValue, Work, stat,
            udp_datagram,
        },
    };
    use filter_user::{
        compile::{Compiled, FlowLimits, Mode, SoftTables},
        domain_sets::{Table, pattern_key},
        domains::{ALL, Domain, Match},
        loader,
        scenario::{Options, Scenario},
        slots,
    };

    use super::{Framing, XDP_DROP, XDP_PASS};

    /// `TCX_NEXT` (-1) as `BPF_PROG_TEST_RUN` returns it.
    pub const TCX_NEXT: u32 = u32::MAX;
    /// `TCX_DROP`.
    pub const TCX_DROP: u32 = 2;

    /// The client behind the firewall, IPv4 (the local end of every flow).
    pub const CLIENT4: &str = "192.0.2.1";
    /// The client behind the firewall, IPv6.
    pub const CLIENT6: &str = "2001:db8::1";
    /// The resolver, IPv4.
    pub const RESOLVER4: &str = "198.51.100.53";
    /// The resolver, IPv6.
    pub const RESOLVER6: &str = "2001:db8::53";

    /// [`CLIENT4`], parsed.
    pub const V4_CLIENT: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 0, 2, 1);
    /// [`RESOLVER4`], parsed.
    pub const V4_RESOLVER: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 51, 100, 53);

    /// The clamps of learned TTLs of [`DnsHarness`] rule sets, in seconds.
    pub const TTL_MIN: u32 = 30;
    /// See [`TTL_MIN`].
    pub const TTL_MAX: u32 = 3600;

    /// Flow limits of [`DnsHarness`] rule sets.
    pub const LIMITS: FlowLimits = FlowLimits {
        table_size: 4096,
        udp_timeout: 30,
        tcp_established_timeout: 300,
        tcp_transitory_timeout: 30,
    };

    fn domain(matching: Match, name: &'static str) -> Domain {
        Domain {
            matching,
            name,
            ..ALL[0]
        }
    }

    /// The domain sets of [`DnsHarness`] rule sets, each a list of patterns (a set's pattern
    /// index is its place in its list): set 0 `*.goto.com`, `*.goto-rtc.com`; set 1 the exact
    /// name `api.example.org` and `*.eu.goto.com` (inside set 0's first pattern).
    pub fn sets() -> Vec<Vec<Domain>> {
        vec![
            vec![
                domain(Match::Suffix, "goto.com"),
                domain(Match::Suffix, "goto-rtc.com"),
            ],
            vec![
                domain(Match::Exact, "api.example.org"),
                domain(Match::Suffix, "eu.goto.com"),
            ],
        ]
    }

    /// The domain trie of `sets`, as the compiler is to fill `Compiled::domains`: each
    /// pattern's key with its sets folded (`domain_sets::Table`) and, per set, the index of
    /// the longest pattern of it that is a prefix of the key.
    pub fn domain_entries(
        sets: &[Vec<Domain>],
    ) -> std::collections::BTreeMap<Vec<u8>, DomainEntry> {
        let refs: Vec<&[Domain]> = sets.iter().map(Vec::as_slice).collect();
        let table = Table::new(&refs);
        table
            .entries()
            .iter()
            .map(|(key, mask)| {
                let mut entry = DomainEntry {
                    sets: u32::try_from(*mask).expect("at most 32 sets"),
                    ..DomainEntry::default()
                };
                for (i, set) in sets.iter().enumerate() {
                    if let Some((index, _)) = set
                        .iter()
                        .map(pattern_key)
                        .enumerate()
                        .filter(|(_, p)| key.starts_with(p))
                        .max_by_key(|(_, p)| p.len())
                    {
                        entry.patterns[i] = u16::try_from(index).expect("few patterns");
                    }
                }
                (key.clone(), entry)
            })
            .collect()
    }

    /// The `tcp-443` scenario compiled for stateful mode with its `https` rule (TCP 443) a
    /// domain rule of both [`sets`] (when `domain_rules`; else as compiled: any address), the
    /// TTLs clamped to [`TTL_MIN`]..=[`TTL_MAX`], answers learned from any resolver.
    pub fn compiled(domain_rules: bool) -> (Compiled, Vec<String>) {
        let options = Options::new(Scenario::Tcp443);
        let rules = options.rules();
        let mut compiled =
            Compiled::with_mode(&rules, options.allowance_bits(), &Mode::Stateful(LIMITS))
                .expect("tcp-443 compiles");
        if domain_rules {
            let https = rules
                .iter()
                .position(|r| r.name == "https")
                .expect("tcp-443 has its https rule");
            let bit = 1u64 << https;
            let sets = sets();
            compiled.config.any_mask &= !bit;
            compiled.config.domain_mask = bit;
            compiled.config.domain_sets = u32::try_from(sets.len()).expect("few sets");
            for i in 0..sets.len() {
                compiled.config.set_rules[i] = bit;
            }
            compiled.config.dns_ttl_min = TTL_MIN;
            compiled.config.dns_ttl_max = TTL_MAX;
            compiled.domains = domain_entries(&sets);
            compiled.learned_map_entries = 1024;
        }
        (compiled, rules.iter().map(|r| r.name.clone()).collect())
    }

    /// CLOCK_MONOTONIC_COARSE now, in nanoseconds: the clock the programs stamp with.
    pub fn coarse_now() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid timespec to write.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &raw mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC_COARSE)");
        u64::try_from(ts.tv_sec).expect("a positive clock") * 1_000_000_000
            + u64::try_from(ts.tv_nsec).expect("a positive clock")
    }

    /// The host's twin of the kernel's maps.
    #[derive(Clone, Debug, Default)]
    pub struct HostState {
        /// FLOWS.
        pub flows: HashMap<FlowKey, FlowValue>,
        /// LEARNED.
        pub learned: HashMap<AddrKey, LearnedValue>,
        /// QUERIES.
        pub queries: HashMap<QueryKey, QueryValue>,
        /// FRAGS.
        pub fragments: HashMap<FragKey, FragVerdict>,
        /// DNS_STATS.
        pub dns_stats: [u64; stat::ENTRIES as usize],
    }

    /// The kernel shell of `gotofw_query_tc` on the host: the datagram, the message as the
    /// program copies it (at most [`MESSAGE_BUF`] bytes), then `learn::record_query`.
    pub fn host_query(frame: &[u8], tables: &SoftTables<'_>, now: u64) {
        let cfg = *filter_common::Tables::config(tables);
        let Some(dgram) = udp_datagram(frame, cfg.link) else {
            return;
        };
        let Some(buf) = copy_message(frame, &dgram) else {
            return;
        };
        let msg = Message::new(&buf.0, buf.1);
        let mut work = Work::EMPTY;
        let _ = learn::record_query(&msg, &dgram, &mut work, tables, now);
    }

    /// The kernel shells of `gotofw_learn_xdp` and `gotofw_records_xdp` on the host: the
    /// datagram (refused, unparsed, when it is none), the message as copied, then
    /// `learn::learn_answer`, its refusal counted as the program counts it. The addresses
    /// learned, or why none was.
    pub fn host_answer(
        frame: &[u8],
        tables: &SoftTables<'_>,
        now: u64,
    ) -> Result<u32, learn::NotLearned> {
        let cfg = *filter_common::Tables::config(tables);
        let unparsed = || {
            learn::DnsTables::count(tables, stat::REFUSED_UNPARSED);
            Err(learn::NotLearned::Refused(filter_common::dns::Refused::Cut))
        };
        let Some(dgram) = udp_datagram(frame, cfg.link) else {
            return unparsed();
        };
        let Some(buf) = copy_message(frame, &dgram) else {
            return unparsed();
        };
        let msg = Message::new(&buf.0, buf.1);
        let mut work = Work::EMPTY;
        let learned = learn::learn_answer(&msg, &dgram, &cfg, &mut work, tables, now);
        if let Err(why) = learned {
            learn::DnsTables::count(tables, why.stat());
        }
        learned
    }

    /// `copy_message` of the kernel: the datagram's payload, at most [`MESSAGE_BUF`] bytes,
    /// none when it is empty or starts past `MAX_PACKET_OFFSET`.
    fn copy_message(
        frame: &[u8],
        dgram: &learn::Datagram,
    ) -> Option<(Box<[u8; MESSAGE_BUF]>, usize)> {
        let len = dgram.len.min(MESSAGE_BUF);
        if len == 0 || dgram.payload > filter_common::MAX_PACKET_OFFSET {
            return None;
        }
        let bytes = frame.get(dgram.payload..dgram.payload + len)?;
        let mut buf = Box::new([0u8; MESSAGE_BUF]);
        buf[..len].copy_from_slice(bytes);
        Some((buf, len))
    }

    /// What one frame did on one side: the verdict and counter slot.
    pub type Verdict = (&'static str, String);

    /// A rule set with domain rules, loaded (not attached) and on the host.
    pub struct DnsHarness {
        label: String,
        names: Vec<String>,
        ebpf: Ebpf,
        compiled: Compiled,
        framing: Framing,
        /// The host's maps.
        pub host: HostState,
    }

    impl DnsHarness {
        /// [`compiled`]`(domain_rules)`, changed by `edit`, for a link of `framing`, loaded.
        pub fn new(
            label: &str,
            domain_rules: bool,
            framing: Framing,
            edit: impl FnOnce(&mut Compiled),
        ) -> Self {
            let (mut compiled, names) = compiled(domain_rules);
            compiled.config.link = framing.link();
            edit(&mut compiled);
            let ebpf = loader::load(&compiled, b"{}").unwrap_or_else(|e| panic!("{label}: {e:#}"));
            Self {
                label: label.to_owned(),
                names,
                ebpf,
                compiled,
                framing,
                host: HostState::default(),
            }
        }

        /// The compiled rule set.
        pub const fn compiled(&self) -> &Compiled {
            &self.compiled
        }

        /// The framing frames are given in.
        pub const fn framing(&self) -> &Framing {
            &self.framing
        }

        /// The loaded object.
        pub const fn ebpf(&self) -> &Ebpf {
            &self.ebpf
        }

        /// The loaded object, to change its maps (what the host does not see).
        pub const fn ebpf_mut(&mut self) -> &mut Ebpf {
            &mut self.ebpf
        }

        /// The name of counter slot `slot`.
        pub fn slot_name(&self, slot: u32) -> String {
            slots::slot_name(&self.names, slot)
        }

        /// Runs `frame` (an untagged Ethernet frame, framed anew for the link) on the host in
        /// `direction`: the classifier, then the DNS shell its mark asks for. The decision and
        /// what learning returned (ingress answers only).
        pub fn host_run(
            &mut self,
            direction: Direction,
            frame: &[u8],
        ) -> (Decision, Option<Result<u32, learn::NotLearned>>) {
            let frame = self.framing.apply(frame);
            self.host_run_raw(direction, &frame)
        }

        fn host_run_raw(
            &mut self,
            direction: Direction,
            frame: &[u8],
        ) -> (Decision, Option<Result<u32, learn::NotLearned>>) {
            let mut tables = self.compiled.tables();
            let state = std::mem::take(&mut self.host);
            *tables.flows.borrow_mut() = state.flows;
            *tables.learned.borrow_mut() = state.learned;
            *tables.queries.borrow_mut() = state.queries;
            *tables.dns_stats.borrow_mut() = state.dns_stats;
            tables.fragments = state.fragments;
            let now = coarse_now();
            tables.now.set(now);
            let mut key = MaybeUninit::<FragKey>::uninit();
            let outcome = classify(frame, &tables, direction, &mut key);
            if outcome.remember {
                // SAFETY: the classifier writes the key whenever it asks to remember.
                let key = unsafe { key.assume_init() };
                tables.fragments.insert(key, outcome.frag_verdict());
            }
            let mut learned = None;
            if outcome.decision.action == ACTION_PASS {
                match (direction, outcome.decision.dns) {
                    (Direction::Egress, mark::QUERY) => host_query(frame, &tables, now),
                    (Direction::Ingress, mark::ANSWER) => {
                        learned = Some(host_answer(frame, &tables, now));
                    }
                    _ => {}
                }
            }
            self.host = HostState {
                flows: tables.flows.take(),
                learned: tables.learned.take(),
                queries: tables.queries.take(),
                fragments: std::mem::take(&mut tables.fragments),
                dns_stats: *tables.dns_stats.borrow(),
            };
            (outcome.decision, learned)
        }

        fn counters(&self) -> Vec<Counter> {
            let map: PerCpuArray<_, Counter> =
                PerCpuArray::try_from(self.ebpf.map("COUNTERS").expect("the COUNTERS map"))
                    .expect("COUNTERS is a per-CPU array");
            (0..COUNTER_ENTRIES)
                .map(|i| {
                    map.get(&i, 0).expect("reading a counter").iter().fold(
                        Counter::default(),
                        |a, c| Counter {
                            packets: a.packets + c.packets,
                            bytes: a.bytes + c.bytes,
                        },
                    )
                })
                .collect()
        }

        /// Runs `frame` (framed anew for the link) through the kernel program of `direction`
        /// once: its decision, from its return value and the one counter slot that moved.
        pub fn kernel_run(&self, direction: Direction, frame: &[u8]) -> Result<Decision, String> {
            let frame = self.framing.apply(frame);
            self.kernel_run_raw(direction, &frame)
        }

        fn kernel_run_raw(&self, direction: Direction, frame: &[u8]) -> Result<Decision, String> {
            let before = self.counters();
            let opts = TestRunOptions {
                data_in: Some(frame),
                ..TestRunOptions::new()
            };
            let ret = match direction {
                Direction::Ingress => {
                    let xdp: &Xdp = self
                        .ebpf
                        .program("gotofw_ingress")
                        .ok_or("no XDP program")?
                        .try_into()
                        .map_err(|e| format!("{e}"))?;
                    xdp.test_run(opts)
                }
                Direction::Egress => {
                    let tc: &SchedClassifier = self
                        .ebpf
                        .program("gotofw_egress")
                        .ok_or("no egress program")?
                        .try_into()
                        .map_err(|e| format!("{e}"))?;
                    tc.test_run(opts)
                }
            }
            .map_err(|e| format!("BPF_PROG_TEST_RUN of a {}-byte frame: {e}", frame.len()))?
            .return_value;
            let action = match (direction, ret) {
                (Direction::Ingress, XDP_PASS) | (Direction::Egress, TCX_NEXT) => ACTION_PASS,
                (Direction::Ingress, XDP_DROP) | (Direction::Egress, TCX_DROP) => ACTION_DROP,
                (_, other) => return Err(format!("{direction:?}: return value {other}")),
            };
            let after = self.counters();
            let moved: Vec<u32> = (0..COUNTER_ENTRIES)
                .filter(|&i| after[i as usize] != before[i as usize])
                .collect();
            let [index] = moved[..] else {
                return Err(format!("counters that moved: {moved:?} (want one)"));
            };
            if index / SLOTS_PER_DIRECTION != direction as u32 {
                return Err(format!("counted in the wrong direction (index {index})"));
            }
            Ok(Decision {
                action,
                slot: index % SLOTS_PER_DIRECTION,
                dns: mark::NONE,
            })
        }

        fn word(&self, d: Decision) -> Verdict {
            (super::verdict_word(d), self.slot_name(d.slot))
        }

        /// Runs `frame` in `direction` on both sides and compares the verdicts and slots, then
        /// every DNS map ([`DnsHarness::compare`]). The verdict, and what the host's learning
        /// returned.
        pub fn step(
            &mut self,
            case: &str,
            direction: Direction,
            frame: &[u8],
        ) -> (Verdict, Option<Result<u32, learn::NotLearned>>) {
            let frame = self.framing.apply(frame);
            let ctx = format!("[{}] {case}", self.label);
            let (host, learned) = self.host_run_raw(direction, &frame);
            let kernel = self
                .kernel_run_raw(direction, &frame)
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let (h, k) = (self.word(host), self.word(kernel));
            assert_eq!(
                k, h,
                "{ctx}: {direction:?} verdicts: kernel (left) vs host (right)"
            );
            self.compare()
                .unwrap_or_else(|e| panic!("{ctx}: after the {direction:?} frame: {e}"));
            (h, learned)
        }

        fn lru<K: aya::Pod, V: aya::Pod>(&self, name: &str) -> BpfHashMap<&MapData, K, V> {
            BpfHashMap::try_from(self.ebpf.map(name).unwrap_or_else(|| panic!("map {name}")))
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        }

        /// The kernel's LEARNED map.
        pub fn kernel_learned(&self) -> HashMap<AddrKey, LearnedValue> {
            self.lru::<AddrKey, LearnedValue>("LEARNED")
                .iter()
                .map(|e| e.expect("reading LEARNED"))
                .collect()
        }

        /// The kernel's QUERIES map.
        pub fn kernel_queries(&self) -> HashMap<QueryKey, QueryValue> {
            self.lru::<QueryKey, QueryValue>("QUERIES")
                .iter()
                .map(|e| e.expect("reading QUERIES"))
                .collect()
        }

        /// The kernel's FLOWS keys.
        pub fn kernel_flows(&self) -> Vec<FlowKey> {
            self.lru::<FlowKey, FlowValue>("FLOWS")
                .keys()
                .map(|k| k.expect("reading FLOWS"))
                .collect()
        }

        /// The kernel's DNS_STATS, summed over CPUs.
        pub fn kernel_stats(&self) -> [u64; stat::ENTRIES as usize] {
            let map: PerCpuArray<_, u64> =
                PerCpuArray::try_from(self.ebpf.map("DNS_STATS").expect("the DNS_STATS map"))
                    .expect("DNS_STATS is a per-CPU array");
            let mut out = [0; stat::ENTRIES as usize];
            for (i, slot) in out.iter_mut().enumerate() {
                *slot = map
                    .get(&(i as u32), 0)
                    .expect("reading DNS_STATS")
                    .iter()
                    .sum();
            }
            out
        }

        /// Compares the kernel's LEARNED, QUERIES, FLOWS (keys) and DNS_STATS with the host's.
        /// Times are stamped by two clocks read a moment apart: a learned entry must have the
        /// same sets, patterns and TTL, the same lifetime per set (expiry less learned time,
        /// the clamped TTL) and a learned time within 200 ms of the host's; a query the same
        /// question and a time within 200 ms.
        pub fn compare(&self) -> Result<(), String> {
            const SLACK: u64 = 200_000_000;
            let stats = self.kernel_stats();
            if stats != self.host.dns_stats {
                return Err(format!(
                    "DNS_STATS differ: kernel {stats:?}, host {:?}",
                    self.host.dns_stats
                ));
            }
            let kernel = self.kernel_learned();
            let mut kk: Vec<_> = kernel.keys().copied().collect();
            let mut hk: Vec<_> = self.host.learned.keys().copied().collect();
            kk.sort_by_key(|k| (k.family, k.addr));
            hk.sort_by_key(|k| (k.family, k.addr));
            if kk != hk {
                return Err(format!(
                    "LEARNED keys differ: kernel {:?}, host {:?}",
                    kk.iter().map(show).collect::<Vec<_>>(),
                    hk.iter().map(show).collect::<Vec<_>>()
                ));
            }
            for key in &kk {
                let (k, h) = (&kernel[key], &self.host.learned[key]);
                let shape = |v: &LearnedValue| {
                    let mut per_set = [(0u64, 0u16); MAX_DOMAIN_SETS];
                    for (i, slot) in per_set.iter_mut().enumerate() {
                        if v.expires_ns[i] != 0 {
                            *slot = (v.expires_ns[i].saturating_sub(v.learned_ns), v.patterns[i]);
                        }
                    }
                    (per_set, v.ttl)
                };
                if shape(k) != shape(h) || k.learned_ns.abs_diff(h.learned_ns) > SLACK {
                    return Err(format!(
                        "LEARNED[{}] differs: kernel {k:?}, host {h:?}",
                        show(key)
                    ));
                }
            }
            let kq = self.kernel_queries();
            if kq.len() != self.host.queries.len()
                || kq.iter().any(|(key, v)| {
                    self.host.queries.get(key).is_none_or(|h| {
                        h.question != v.question || h.sent_ns.abs_diff(v.sent_ns) > SLACK
                    })
                })
            {
                return Err(format!(
                    "QUERIES differ: kernel {kq:?}, host {:?}",
                    self.host.queries
                ));
            }
            let mut kf = self.kernel_flows();
            let mut hf: Vec<_> = self.host.flows.keys().copied().collect();
            let order = |k: &FlowKey| {
                (
                    k.family,
                    k.proto,
                    k.remote,
                    k.local,
                    k.remote_port,
                    k.local_port,
                )
            };
            kf.sort_by_key(order);
            hf.sort_by_key(order);
            if kf != hf {
                return Err(format!("FLOWS keys differ: kernel {kf:?}, host {hf:?}"));
            }
            Ok(())
        }

        /// Empties LEARNED, QUERIES, FLOWS and FRAGS on both sides (the statistics go on).
        pub fn reset(&mut self) {
            fn clear<K: aya::Pod, V: aya::Pod>(ebpf: &mut Ebpf, name: &str) {
                let mut map: BpfHashMap<_, K, V> =
                    BpfHashMap::try_from(ebpf.map_mut(name).expect("a map")).expect("a hash map");
                let keys: Vec<K> = map.keys().map(|k| k.expect("reading a map")).collect();
                for key in keys {
                    map.remove(&key).expect("removing an entry");
                }
            }
            clear::<AddrKey, LearnedValue>(&mut self.ebpf, "LEARNED");
            clear::<QueryKey, QueryValue>(&mut self.ebpf, "QUERIES");
            clear::<FlowKey, FlowValue>(&mut self.ebpf, "FLOWS");
            clear::<FragKey, FragVerdict>(&mut self.ebpf, "FRAGS");
            // As a flush does: no CPU's flow cache may admit a removed flow for the rest of its
            // tick.
            let mut cache: PerCpuArray<_, filter_common::flow_cache::CachedFlow> =
                PerCpuArray::try_from(
                    self.ebpf
                        .map_mut(filter_common::names::map::FLOW_CACHE)
                        .expect("the FLOW_CACHE map"),
                )
                .expect("FLOW_CACHE is a per-CPU array");
            loader::flow_cache::forget_all(&mut cache).expect("emptying the flow cache");
            let stats = self.host.dns_stats;
            self.host = HostState {
                dns_stats: stats,
                ..HostState::default()
            };
        }

        /// Sets every set's expiry of the learned address `key` to `expires_ns` on both sides
        /// (an address whose TTL ran out, without waiting for it).
        pub fn set_expiry(&mut self, key: &AddrKey, expires_ns: u64) {
            let mut map: BpfHashMap<_, AddrKey, LearnedValue> =
                BpfHashMap::try_from(self.ebpf.map_mut("LEARNED").expect("LEARNED"))
                    .expect("LEARNED is a hash map");
            let mut value = map.get(key, 0).expect("a learned address");
            for e in &mut value.expires_ns {
                if *e != 0 {
                    *e = expires_ns;
                }
            }
            map.insert(key, value, 0).expect("updating LEARNED");
            let host = self.host.learned.get_mut(key).expect("a learned address");
            for e in &mut host.expires_ns {
                if *e != 0 {
                    *e = expires_ns;
                }
            }
            host.learned_ns = value.learned_ns;
        }
    }

    fn show(key: &AddrKey) -> String {
        if key.family == 4 {
            std::net::Ipv4Addr::new(key.addr[0], key.addr[1], key.addr[2], key.addr[3]).to_string()
        } else {
            std::net::Ipv6Addr::from(key.addr).to_string()
        }
    }

    /// The learned-map key of `addr`.
    pub fn addr_key(addr: std::net::IpAddr) -> AddrKey {
        let mut key = AddrKey::default();
        match addr {
            std::net::IpAddr::V4(a) => {
                key.addr[..4].copy_from_slice(&a.octets());
                key.family = 4;
            }
            std::net::IpAddr::V6(a) => {
                key.addr = a.octets();
                key.family = 6;
            }
        }
        key
    }
}
