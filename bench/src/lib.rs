//! gotofw's benchmarks, run by `cargo xtask bench`: program cost per packet class
//! (BPF_PROG_TEST_RUN), packets per second on a veth path against xdp-filter, nftables and
//! iptables, scaling with the rule set and the flow table, allowed traffic under a flood,
//! memory, and what XDP costs allowed TCP through a gateway. [`run`] measures everything and [`report::write`] writes `BENCHMARKS.md` and the raw
//! numbers as JSON.
//!
//! Everything runs inside network namespaces this crate creates (documentation and benchmark
//! addresses only), every loop is bounded, and every namespace, rule set and pin is removed by a
//! guard. Nothing here asserts a speed: the targets are written down next to the numbers.

// Packet counts, bytes and nanoseconds become f64 for rates and statistics; they stay far
// below 2^52.
#![expect(clippy::cast_precision_loss, reason = "see above")]

pub mod attack;
pub mod baselines;
pub mod charts;
pub mod cost;
pub mod dns;
pub mod frames;
pub mod gotofw;
pub mod lab;
pub mod memory;
pub mod pps;
pub mod report;
pub mod rng;
pub mod scaling;
pub mod stats;
pub mod sys;
pub mod tcp;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde::Serialize;

/// How much to measure.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// The short smoke mode.
    pub quick: bool,
    /// Runs of every measurement (medians and spreads are over these).
    pub runs: usize,
    /// BPF_PROG_TEST_RUN repetitions per call.
    pub repeat: u32,
    /// How long the generator sends per rate measurement.
    #[serde(serialize_with = "secs")]
    pub pps_duration: Duration,
    /// Sizes of the TURN network set (gotofw and nftables).
    pub prefix_sizes: Vec<usize>,
    /// Lengths of the iptables chain.
    pub iptables_sizes: Vec<usize>,
    /// Rule counts.
    pub rule_counts: Vec<usize>,
    /// Flow-table fills.
    pub flow_counts: Vec<usize>,
    /// The flow-table size of the memory item.
    pub max_flow_table: u32,
    /// Runs of the attack item.
    pub attack_runs: usize,
    /// Seconds of iperf3 per attack run.
    pub attack_secs: u64,
    /// Rounds of the TCP item (every setup once per round).
    pub tcp_runs: usize,
    /// Seconds of iperf3 per TCP transfer.
    pub tcp_secs: u64,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Settings {
    /// The full benchmark (a few minutes).
    pub fn full() -> Self {
        Self {
            quick: false,
            runs: 5,
            repeat: 1_000_000,
            pps_duration: Duration::from_secs(1),
            prefix_sizes: vec![5, 1_000, 10_000, 100_000],
            iptables_sizes: vec![5, 1_000, 100_000],
            rule_counts: vec![1, 8, 64],
            flow_counts: vec![1_000, 10_000, 100_000, 1_000_000],
            max_flow_table: 16_777_216,
            attack_runs: 3,
            attack_secs: 5,
            tcp_runs: 5,
            tcp_secs: 3,
        }
    }

    /// The smoke mode: every item with tiny sizes, in seconds.
    pub fn quick() -> Self {
        Self {
            quick: true,
            runs: 2,
            repeat: 10_000,
            pps_duration: Duration::from_millis(100),
            prefix_sizes: vec![5, 100],
            iptables_sizes: vec![5, 100],
            rule_counts: vec![1, 64],
            flow_counts: vec![1_000],
            max_flow_table: 65_536,
            attack_runs: 1,
            attack_secs: 1,
            tcp_runs: 1,
            tcp_secs: 1,
        }
    }
}

/// Where the machine and the run are described.
#[derive(Clone, Debug, Serialize)]
pub struct Environment {
    /// When the run started (UTC).
    pub date: String,
    /// The command that ran it.
    pub command: String,
    /// `uname`.
    pub kernel: String,
    /// CPUs.
    pub cpu: String,
    /// Load averages (1, 5, 15 min) before the run.
    pub loadavg_before: [f64; 3],
    /// Load averages after it.
    pub loadavg_after: [f64; 3],
    /// Seconds the run took.
    pub seconds: f64,
    /// Versions of the tools compared with.
    pub tools: BTreeMap<String, String>,
    /// How CPUs were pinned.
    pub pinning: String,
}

/// Everything one run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The run.
    pub environment: Environment,
    /// Its sizes.
    pub settings: Settings,
    /// Item 1.
    pub cost: cost::CostTable,
    /// Item 2.
    pub pps: Vec<pps::Row>,
    /// Item 3.
    pub scaling: scaling::Scaling,
    /// Item 4.
    pub attack: Vec<attack::Row>,
    /// Item 5.
    pub memory: memory::Memory,
    /// Item 6.
    pub tcp: tcp::Tcp,
    /// Item 7.
    pub dns: dns::DnsCost,
}

/// How the CPUs are used, for the report.
pub const PINNING: &str = "The generator thread (BPF_PROG_TEST_RUN in live-frames mode) is \
pinned to CPU 0 with sched_setaffinity (what `taskset -c 0` does). The receiving veth end \
runs threaded NAPI (`/sys/class/net/IFACE/threaded` = 1), and its NAPI kernel thread \
(`napi/IFACE-ID`) is pinned to CPU 1 with `taskset -p -c 1 PID`: the receiver under test \
(XDP program, or the stack with nftables or iptables) runs on CPU 1 alone, the generator on \
CPU 0. In item 4, iperf3, the echo probes and the other veths' softirqs are not pinned: they \
share both CPUs with the generator and the WAN receiver, as a gateway's own work would.";

/// Fails unless we are root and the tools are installed.
pub fn preflight() -> Result<()> {
    if !gotofw_tests::is_root() {
        bail!("the benchmarks need root (network namespaces, XDP, BPF_PROG_TEST_RUN)");
    }
    for tool in [
        "ip",
        "nsenter",
        "bpftool",
        "ethtool",
        "taskset",
        "xdp-filter",
        "nft",
        "iptables",
        "iptables-restore",
        "iperf3",
        "timeout",
    ] {
        if sys::which(tool).is_none() {
            bail!(
                "`{tool}` is not installed: run `cargo xtask setup` (it installs the bench's tools)"
            );
        }
    }
    if !std::path::Path::new("/usr/bin/time").is_file() {
        bail!("/usr/bin/time is not installed: run `cargo xtask setup` (Debian package `time`)");
    }
    Ok(())
}

/// Debian versions of the tools compared with and driven.
fn tools() -> BTreeMap<String, String> {
    ["xdp-tools", "nftables", "iptables", "iperf3", "bpftool"]
        .into_iter()
        .map(|package| {
            let version = std::process::Command::new("dpkg-query")
                .args(["-W", "-f", "${Version}", package])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map_or_else(
                    || "unknown".to_owned(),
                    |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
                );
            (package.to_owned(), version)
        })
        .collect()
}

fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Runs every item with `settings`; `gotofw_bin` is the binary items 4, 5 and 6 drive; `command`
/// is recorded as the command that ran the benchmark. Prints progress to stderr.
pub fn run(settings: &Settings, gotofw_bin: &std::path::Path, command: &str) -> Result<Report> {
    preflight()?;
    let start = Instant::now();
    let loadavg_before = sys::loadavg();
    let date = date();
    let step = |what: &str| eprintln!("[{:6.1} s] {what}", start.elapsed().as_secs_f64());
    let lab = lab::VethLab::new().context("building the veth lab")?;
    step("1/7 program cost (BPF_PROG_TEST_RUN)");
    let cost = cost::program_cost(settings, &lab).context("program cost")?;
    step("2/7 packets per second on the veth path");
    let pps = pps::veth_rates(settings, &lab).context("packets per second")?;
    step("3/7 scaling");
    let scaling = scaling::scaling(settings, &lab).context("scaling")?;
    drop(lab);
    step("4/7 allowed traffic under attack");
    let attack = attack::under_attack(settings, gotofw_bin).context("under attack")?;
    step("5/7 memory");
    let memory = memory::memory(settings, gotofw_bin).context("memory")?;
    step("6/7 what XDP costs allowed TCP");
    let tcp = tcp::tcp_through_gateway(settings, gotofw_bin).context("TCP through the gateway")?;
    step("7/7 domain rules (BPF_PROG_TEST_RUN)");
    let dns = dns::dns_cost(settings).context("domain rules")?;
    step("done");
    Ok(Report {
        environment: Environment {
            date,
            command: command.to_owned(),
            kernel: sys::kernel(),
            cpu: sys::cpu(),
            loadavg_before,
            loadavg_after: sys::loadavg(),
            seconds: start.elapsed().as_secs_f64(),
            tools: tools(),
            pinning: PINNING.to_owned(),
        },
        settings: settings.clone(),
        cost,
        pps,
        scaling,
        attack,
        memory,
        tcp,
        dns,
    })
}

/// Where `BENCHMARKS.md` goes by default: the workspace root.
pub fn default_out_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf)
}
