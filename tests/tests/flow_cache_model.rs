//! The flow path's fast structures on the host (`filter_common::flow_cache`): the classifier over
//! `SoftTables` with the flow cache and the remote summary switched on must agree with the plain
//! model (every inbound packet to the flow table) on every verdict and counter slot, and on the
//! flow table (with the cache's pending counts added), across random sequences of outbound and
//! inbound packets, clock steps within a tick and across timeouts, rule-set swaps and flows
//! removed from the table. The kernel runs the same functions over its maps; the kernel-vs-host
//! differential tests (`differential_flows`, `stateful`) check the kernel's side. No root.

use std::{
    cell::RefCell,
    collections::HashMap,
    mem::MaybeUninit,
    net::{IpAddr, Ipv4Addr, SocketAddr},
};

use filter_common::{
    Direction, FlowKey, FlowValue, FragKey, classify,
    flow_cache::{CachedFlow, pending_of},
    ipproto,
};
use filter_user::{
    compile::{Compiled, FlowLimits, Mode, SoftTables},
    frame,
    scenario::{Options, Scenario},
};
use proptest::{
    collection::vec,
    prelude::*,
    test_runner::{Config, RngAlgorithm, TestRng, TestRunner},
};

/// Timeouts the steps below cross: UDP 30 s, established TCP 300 s, transitory TCP 10 s.
const LIMITS: FlowLimits = FlowLimits {
    table_size: 4096,
    udp_timeout: 30,
    tcp_established_timeout: 300,
    tcp_transitory_timeout: 10,
};

/// The client's post-NAT address: the local end of every flow.
const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// The flows the sequences play with: (protocol, remote end, local port).
const FLOWS: [(u8, [u8; 4], u16, u16); 8] = [
    (ipproto::TCP, [203, 0, 113, 10], 443, 50_000),
    (ipproto::TCP, [203, 0, 113, 10], 443, 50_001),
    (ipproto::TCP, [198, 51, 100, 7], 443, 50_002),
    (ipproto::UDP, [68, 64, 0, 10], 3478, 50_003),
    (ipproto::UDP, [68, 64, 0, 11], 3478, 50_004),
    (ipproto::UDP, [198, 51, 100, 53], 53, 50_005),
    (ipproto::UDP, [203, 0, 113, 123], 123, 50_006),
    (ipproto::TCP, [68, 64, 0, 12], 443, 50_007),
];

/// Clock steps (ns): none (the same tick), under and over a tick, and across each timeout.
const STEPS: [u64; 10] = [
    0,
    1,
    1_000_000,
    4_000_000,
    1_000_000_000,
    9_000_000_000,
    11_000_000_000,
    31_000_000_000,
    299_000_000_000,
    301_000_000_000,
];

/// TCP flag sets of the sequences' packets.
const FLAGS: [u8; 8] = [0x10, 0x18, 0x02, 0x12, 0x11, 0x14, 0x04, 0x00];

#[derive(Clone, Debug)]
enum Op {
    /// An outbound packet of flow `flow` with TCP flags `FLAGS[flags]`.
    Out { flow: usize, flags: usize },
    /// `times` inbound replies of flow `flow` with TCP flags `FLAGS[flags]`.
    In {
        flow: usize,
        flags: usize,
        times: usize,
    },
    /// An inbound packet like a reply of `flow` with one thing changed (`kind`).
    Near { flow: usize, kind: u8 },
    /// An inbound packet from `addr`'s port `port` with no flow.
    Flood { addr: u32, port: u16, tcp: bool },
    /// The clock moves by `STEPS[step]`.
    Step { step: usize },
    /// A rule-set swap to the other scenario (a new generation).
    Swap,
    /// Flow `flow` leaves the table (an eviction, or a user's flush); the clock then moves, as
    /// the cache may admit a removed flow for the rest of its tick.
    Evict { flow: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let n = FLOWS.len();
    prop_oneof![
        4 => (0..n, 0..FLAGS.len()).prop_map(|(flow, flags)| Op::Out { flow, flags }),
        6 => (0..n, 0..FLAGS.len(), 1..5usize)
            .prop_map(|(flow, flags, times)| Op::In { flow, flags, times }),
        2 => (0..n, 0..6u8).prop_map(|(flow, kind)| Op::Near { flow, kind }),
        2 => (any::<u32>(), prop::sample::select(vec![53u16, 123, 443, 3478, 9]), any::<bool>())
            .prop_map(|(addr, port, tcp)| Op::Flood { addr, port, tcp }),
        3 => (0..STEPS.len()).prop_map(|step| Op::Step { step }),
        1 => Just(Op::Swap),
        1 => (0..n).prop_map(|flow| Op::Evict { flow }),
    ]
}

/// A frame of flow `i` in `direction`, with `flags` when it is TCP.
fn flow_frame(i: usize, direction: Direction, flags: u8) -> Vec<u8> {
    let (proto, remote, rport, lport) = FLOWS[i];
    let remote = SocketAddr::from((remote, rport));
    let local = SocketAddr::from((LOCAL, lport));
    let (src, dst) = match direction {
        Direction::Egress => (local, remote),
        Direction::Ingress => (remote, local),
    };
    l4_frame(proto, src, dst, flags)
}

fn l4_frame(proto: u8, src: SocketAddr, dst: SocketAddr, flags: u8) -> Vec<u8> {
    let l4 = if proto == ipproto::TCP {
        let mut l4 = frame::tcp(src.port(), dst.port(), b"");
        l4[13] = flags;
        l4
    } else {
        frame::udp(src.port(), dst.port(), b"0123")
    };
    frame::ip_frame(src.ip(), dst.ip(), proto, &l4)
}

/// The flow key of flow `i`.
fn key_of(i: usize) -> FlowKey {
    let (proto, remote, rport, lport) = FLOWS[i];
    let mut key = FlowKey {
        remote_port: rport,
        local_port: lport,
        proto,
        family: 4,
        ..FlowKey::default()
    };
    key.remote[..4].copy_from_slice(&remote);
    key.local[..4].copy_from_slice(&LOCAL.octets());
    key
}

/// A near miss of flow `i`'s reply.
fn near_frame(i: usize, kind: u8) -> Vec<u8> {
    let (proto, remote, rport, lport) = FLOWS[i];
    let mut remote = SocketAddr::from((remote, rport));
    let mut local = SocketAddr::from((LOCAL, lport));
    let mut proto = proto;
    match kind {
        0 => remote.set_port(rport.wrapping_add(1)),
        1 => {
            let IpAddr::V4(a) = remote.ip() else {
                unreachable!()
            };
            remote.set_ip(IpAddr::V4(Ipv4Addr::from(u32::from(a) ^ 1)));
        }
        2 => local.set_port(lport.wrapping_add(1)),
        3 => local.set_ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))),
        4 => {
            proto = if proto == ipproto::TCP {
                ipproto::UDP
            } else {
                ipproto::TCP
            };
        }
        _ => remote.set_port(lport),
    }
    l4_frame(proto, remote, local, 0x10)
}

/// One side's state: what `SoftTables` holds between packets.
#[derive(Default)]
struct Side {
    flows: HashMap<FlowKey, FlowValue>,
    cache: Vec<CachedFlow>,
    remotes: Vec<u32>,
}

impl Side {
    /// Runs `frame` in `direction` at `now` over `compiled`: (action, slot).
    fn run(
        &mut self,
        compiled: &Compiled,
        fast: bool,
        now: u64,
        direction: Direction,
        frame: &[u8],
    ) -> (u32, u32) {
        let mut tables = compiled.tables();
        if fast {
            tables = tables.with_fast_path();
            if !self.cache.is_empty() {
                *tables.flow_cache.borrow_mut() = std::mem::take(&mut self.cache);
                *tables.remotes.borrow_mut() = std::mem::take(&mut self.remotes);
            }
        }
        *tables.flows.borrow_mut() = std::mem::take(&mut self.flows);
        tables.now.set(now);
        let outcome = classify(
            frame,
            &tables,
            direction,
            &mut MaybeUninit::<FragKey>::uninit(),
        );
        self.take(&tables);
        (outcome.decision.action, outcome.decision.slot)
    }

    fn take(&mut self, tables: &SoftTables<'_>) {
        self.flows = tables.flows.take();
        self.cache = tables.flow_cache.take();
        self.remotes = tables.remotes.take();
    }

    /// The flow table with the cache's pending counts added.
    fn merged(&self) -> HashMap<FlowKey, FlowValue> {
        self.flows
            .iter()
            .map(|(k, v)| {
                let (p, b) = pending_of(k, v.created_ns, &self.cache);
                let mut v = *v;
                v.packets[0] += p;
                v.bytes[0] += b;
                (*k, v)
            })
            .collect()
    }
}

/// The compiled rule set of `scenario` in stateful mode, generation `generation`.
fn compiled(scenario: Scenario, generation: u32) -> Compiled {
    let options = Options::new(scenario);
    let mut c = Compiled::with_mode(
        &options.rules(),
        options.allowance_bits(),
        &Mode::Stateful(LIMITS),
    )
    .expect("a valid rule set");
    c.config.generation = generation;
    c
}

/// Runs `ops` on the plain and the fast model; the first disagreement, if any.
fn run_sequence(ops: &[Op]) -> Result<Stats, String> {
    let scenarios = [Scenario::UdpTurn, Scenario::TcpTurn];
    let mut which = 0;
    let mut generation = 1;
    let mut rules = compiled(scenarios[which], generation);
    let (mut plain, mut fast) = (Side::default(), Side::default());
    let mut now: u64 = 5_000_000_000_000;
    let mut stats = Stats::default();
    let log = RefCell::new(Vec::new());
    let both = |plain: &mut Side, fast: &mut Side, rules: &Compiled, now, d, f: &[u8]| {
        let a = plain.run(rules, false, now, d, f);
        let b = fast.run(rules, true, now, d, f);
        log.borrow_mut()
            .push(format!("{d:?} -> plain {a:?} fast {b:?}"));
        if a == b {
            Ok(a)
        } else {
            Err(format!(
                "{d:?} frame {f:02x?}: plain {a:?}, fast {b:?}\n{}",
                log.borrow().join("\n")
            ))
        }
    };
    for op in ops {
        match *op {
            Op::Out { flow, flags } => {
                both(
                    &mut plain,
                    &mut fast,
                    &rules,
                    now,
                    Direction::Egress,
                    &flow_frame(flow, Direction::Egress, FLAGS[flags]),
                )?;
            }
            Op::In { flow, flags, times } => {
                for _ in 0..times {
                    let (action, _) = both(
                        &mut plain,
                        &mut fast,
                        &rules,
                        now,
                        Direction::Ingress,
                        &flow_frame(flow, Direction::Ingress, FLAGS[flags]),
                    )?;
                    stats.admitted += u64::from(action == filter_common::ACTION_PASS);
                }
            }
            Op::Near { flow, kind } => {
                both(
                    &mut plain,
                    &mut fast,
                    &rules,
                    now,
                    Direction::Ingress,
                    &near_frame(flow, kind),
                )?;
            }
            Op::Flood { addr, port, tcp } => {
                let proto = if tcp { ipproto::TCP } else { ipproto::UDP };
                let src = SocketAddr::from((Ipv4Addr::from(addr), port));
                let dst = SocketAddr::from((LOCAL, 50_000));
                both(
                    &mut plain,
                    &mut fast,
                    &rules,
                    now,
                    Direction::Ingress,
                    &l4_frame(proto, src, dst, 0x10),
                )?;
            }
            Op::Step { step } => now += STEPS[step],
            Op::Swap => {
                which ^= 1;
                generation += 1;
                rules = compiled(scenarios[which], generation);
            }
            Op::Evict { flow } => {
                let key = key_of(flow);
                if plain.flows.remove(&key).is_some() {
                    stats.evicted += 1;
                }
                fast.flows.remove(&key);
                now += 1;
            }
        }
        let (p, f) = (plain.merged(), fast.merged());
        if p != f {
            return Err(format!(
                "after {op:?} the flow tables differ:\nplain {p:?}\nfast  {f:?}\n{}",
                log.borrow().join("\n")
            ));
        }
    }
    stats.cached += fast.cache.iter().map(|e| e.packets).sum::<u64>();
    Ok(stats)
}

#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    admitted: u64,
    cached: u64,
    evicted: u64,
}

#[test]
fn the_fast_flow_path_agrees_with_the_plain_model() {
    let cases: u32 = std::env::var("GOTOFW_FLOW_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[0x14; 32]),
    );
    let totals = RefCell::new(Stats::default());
    let result = runner.run(&vec(op(), 1..80), |ops| {
        let s = run_sequence(&ops).map_err(TestCaseError::fail)?;
        let mut t = totals.borrow_mut();
        t.admitted += s.admitted;
        t.cached += s.cached;
        t.evicted += s.evicted;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let t = *totals.borrow();
    println!("{cases} sequences: {t:?}");
    // The sequences must reach the paths they are about.
    assert!(t.admitted > 1_000 && t.evicted > 100, "{t:?}");
}
