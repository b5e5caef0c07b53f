//! Cost of the loaded programs per packet class, measured with BPF_PROG_TEST_RUN.
//!
//! `cargo run --release -p filter-user --example prog_cost [-- REPEAT [LOG_RATE]]` (root). Prints
//! the median of five runs of REPEAT (default 1,000,000) repetitions each, in nanoseconds per
//! packet, as the kernel reports it, with the drop log sampling at LOG_RATE (default: attach's
//! default, 10; 0 switches it off): the XDP program in stateless mode, the TC egress program in
//! stateful mode; and how many instructions the verifier processed for each program, in both
//! modes. A measurement, not a test: nothing is asserted.

use std::net::SocketAddr;

use aya::{
    Ebpf,
    programs::{TestRun, TestRunOptions},
};
use filter_common::{ethertype, ipproto};
use filter_user::{
    compile::{Compiled, FlowLimits, Mode},
    frame::{self, Ipv4, ethernet, tcp},
    loader,
    scenario::{Options, Protocol, Scenario},
};

fn main() -> anyhow::Result<()> {
    let repeat: u32 = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |s| s.parse())?;
    let options = Options::new(Scenario::UdpTurn);
    let log_rate: u32 = std::env::args()
        .nth(2)
        .map_or(Ok(filter_user::limits::LOG_RATE.default), |s| s.parse())?;
    let mut compiled = Compiled::new(&options.rules(), options.allowance_bits())?;
    compiled.config.log_rate = log_rate;
    let mut ebpf = loader::load(&compiled, b"{}")?;
    println!(
        "BPF_PROG_TEST_RUN, scenario udp-turn, drop log at {log_rate}/s, {repeat} repetitions, median of 5 runs"
    );
    let mut floors = aya::EbpfLoader::new().load(filter_user::BENCH_EBPF_OBJECT)?;
    let floor: &mut aya::programs::Xdp = floors.program_mut("gotofw_floor").unwrap().try_into()?;
    floor.load()?;
    let floor_frame = frame::packet(
        Protocol::Udp,
        "203.0.113.10:9".parse()?,
        "192.0.2.1:50000".parse()?,
    );
    let r = floor.test_run(TestRunOptions {
        data_in: Some(&floor_frame),
        repeat,
        ..TestRunOptions::new()
    })?;
    println!(
        "  {:<62} {:>6.1} ns/packet",
        "floor: empty XDP_DROP program",
        r.duration.as_secs_f64() * 1e9
    );
    // How close each program is to the verifier's budget (1,000,000 instructions processed).
    let mut stateful = Compiled::with_mode(
        &options.rules(),
        options.allowance_bits(),
        &Mode::Stateful(FlowLimits::default()),
    )?;
    stateful.config.log_rate = log_rate;
    let mut stateful = loader::load(&stateful, b"{}")?;
    verifier_counts(&ebpf, "stateless");
    verifier_counts(&stateful, "stateful");
    let program = loader::program(&mut ebpf)?;
    let client4: SocketAddr = "192.0.2.1:50000".parse()?;
    let client6: SocketAddr = "[2001:db8::1]:50000".parse()?;
    let reply = |proto, from: &str| {
        let from: SocketAddr = from.parse().unwrap();
        frame::packet(proto, from, if from.is_ipv4() { client4 } else { client6 })
    };
    let mut truncated = reply(Protocol::Tcp, "203.0.113.10:443");
    truncated.truncate(14 + 20 + 10);
    let mut bad_ihl = Ipv4::new("203.0.113.10".parse()?, "192.0.2.1".parse()?, ipproto::TCP)
        .build(&tcp(443, 50_000, b""));
    bad_ihl[0] = 0x44;
    let cases = [
        (
            "allowed: tcp from 443 (https)",
            reply(Protocol::Tcp, "203.0.113.10:443"),
        ),
        (
            "allowed: udp from TURN 68.64.0.10:3478",
            reply(Protocol::Udp, "68.64.0.10:3478"),
        ),
        (
            "blocked: udp from 203.0.113.10:3478 (port named, network not)",
            reply(Protocol::Udp, "203.0.113.10:3478"),
        ),
        (
            "blocked: udp from port 9 (no rule names it)",
            reply(Protocol::Udp, "203.0.113.10:9"),
        ),
        (
            "allowed: tcp 443 over IPv6",
            reply(Protocol::Tcp, "[2001:db8:5::10]:443"),
        ),
        ("malformed: TCP header cut", truncated),
        (
            "malformed: IPv4 IHL 4",
            ethernet(&[], ethertype::IPV4, &bad_ihl),
        ),
    ];
    println!("  gotofw_ingress (stateless):");
    for (name, frame) in cases {
        report(name, program, &frame, repeat);
    }
    let out = |proto, to: &str| {
        let to: SocketAddr = to.parse().unwrap();
        frame::packet(proto, if to.is_ipv4() { client4 } else { client6 }, to)
    };
    let egress_cases = [
        (
            "allowed: tcp to 443 (https), opens or refreshes its flow",
            out(Protocol::Tcp, "203.0.113.10:443"),
        ),
        (
            "allowed: udp to TURN 68.64.0.10:3478, opens or refreshes its flow",
            out(Protocol::Udp, "68.64.0.10:3478"),
        ),
        (
            "blocked: udp to port 9 (no rule names it)",
            out(Protocol::Udp, "203.0.113.10:9"),
        ),
    ];
    let egress = loader::egress_program(&mut stateful)?;
    println!("  gotofw_egress (stateful):");
    for (name, frame) in egress_cases {
        report(name, egress, &frame, repeat);
    }
    Ok(())
}

/// Prints the median of five runs of `frame` through `program`.
fn report<P>(name: &str, program: &P, frame: &[u8], repeat: u32)
where
    P: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = aya::programs::TestRunResult>,
{
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let r = program
                .test_run(TestRunOptions {
                    data_in: Some(frame),
                    repeat,
                    ..TestRunOptions::new()
                })
                .expect("test_run");
            // The kernel reports the mean duration of one repetition.
            r.duration.as_secs_f64() * 1e9
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    println!(
        "    {name:<66} {:>6.1} ns/packet  (min {:.1}, max {:.1})",
        runs[2], runs[0], runs[4]
    );
}

/// Prints, for each loaded program of `ebpf`, the instructions the verifier processed and the
/// size of the program as loaded.
fn verifier_counts(ebpf: &Ebpf, mode: &str) {
    let mut programs: Vec<_> = ebpf.programs().collect();
    programs.sort_by_key(|(name, _)| *name);
    for (name, program) in programs {
        if let Ok(info) = program.info() {
            println!(
                "  verifier: {name:<18} processed {:>6} instructions, {:>5} loaded ({mode})",
                info.verified_instruction_count().unwrap_or(0),
                // Eight bytes per BPF instruction.
                info.size_translated().unwrap_or(0) / 8
            );
        }
    }
}
