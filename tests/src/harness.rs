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
    sets
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
