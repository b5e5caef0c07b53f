//! `demo`: gotofw at work on a real (virtual) network, in a few seconds.
//!
//! Builds a gateway namespace whose WAN interface faces an "internet"
//! namespace with echo servers inside and outside GoTo's TURN networks, runs
//! each probe without a filter and with gotofw attached (stateless, the chosen
//! scenario), prints what got through next to what `gotofw explain` predicts,
//! shows `gotofw status`, then detaches and removes everything. Needs root.
//!
//! Exit status: 0 when every probe behaved as `gotofw explain` predicts, 1
//! otherwise (or when the lab cannot be built), 130 when interrupted.

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::PathBuf,
    process::ExitCode,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::Parser;
use gotofw_tests::{
    Attached, GW_ADDR, Gotofw, INET_ADDR, OUTSIDE, ServerHandle, TURN_A, TURN_B, WanLab,
    expect_success, find_gotofw_bin, is_root, tcp_echo_server, tcp_probe, udp_echo_server,
    udp_probe,
};
use serde_json::Value;

/// How long a probe waits for its echo (a blocked probe costs all of it).
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// Run gotofw on a two-namespace lab: probes to servers inside and outside
/// GoTo's TURN networks, without and with the filter. Needs root.
#[derive(Debug, Parser)]
#[command(name = "demo", version, about, long_about = None)]
struct Args {
    /// The GoTo scenario to attach.
    #[arg(
        long,
        default_value = "udp-turn",
        value_name = "NAME",
        value_parser = ["no-restrictions", "udp-turn", "tcp-turn", "tcp-443"],
    )]
    scenario: String,
    /// The gotofw binary [default: $GOTOFW_BIN, else gotofw next to this program].
    #[arg(long, value_name = "PATH")]
    gotofw: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    const fn name(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        }
    }
}

/// One connection from the gateway to a server on the internet side.
#[derive(Clone, Copy, Debug)]
struct Probe {
    proto: Proto,
    dst: SocketAddr,
    /// Why this destination is interesting.
    note: &'static str,
}

const fn probe(proto: Proto, ip: Ipv4Addr, port: u16, note: &'static str) -> Probe {
    Probe {
        proto,
        dst: SocketAddr::V4(SocketAddrV4::new(ip, port)),
        note,
    }
}

const PROBES: [Probe; 9] = [
    probe(Proto::Udp, TURN_A, 3478, "TURN net"),
    probe(Proto::Udp, TURN_B, 3478, "TURN net"),
    probe(Proto::Udp, OUTSIDE, 3478, "not a TURN net"),
    probe(Proto::Tcp, TURN_A, 3478, "TURN net"),
    probe(Proto::Tcp, OUTSIDE, 3478, "not a TURN net"),
    probe(Proto::Tcp, OUTSIDE, 443, "https, any address"),
    probe(Proto::Tcp, TURN_A, 80, "http, no scenario"),
    probe(Proto::Udp, OUTSIDE, 45000, "media range"),
    probe(Proto::Udp, OUTSIDE, 50000, "above media range"),
];

impl Probe {
    fn label(&self) -> String {
        format!("{} {} ({})", self.proto.name(), self.dst, self.note)
    }

    fn run(&self, lab: &WanLab) -> bool {
        match self.proto {
            Proto::Udp => udp_probe(lab.gw(), None, self.dst, PROBE_TIMEOUT),
            Proto::Tcp => tcp_probe(lab.gw(), self.dst, PROBE_TIMEOUT),
        }
    }
}

/// What `gotofw explain --json` predicts for a probe's reply at the WAN
/// ingress (stateless mode filters nothing else): its verdict and rule.
#[derive(Debug)]
struct Prediction {
    allow: bool,
    rule: String,
}

fn predict(gotofw: &Gotofw, scenario: &str, probe: &Probe) -> Result<Prediction> {
    let dst = probe.dst.to_string();
    let args = [
        "explain",
        "--scenario",
        scenario,
        probe.proto.name(),
        &dst,
        "--json",
    ];
    let stdout = expect_success(&gotofw.run_here(&args), &args.join(" "));
    let json: Value = serde_json::from_str(&stdout)
        .with_context(|| format!("`gotofw explain` printed no JSON: {stdout}"))?;
    let reply = &json["reply"];
    let allow = match reply["verdict"].as_str() {
        Some("allow") => true,
        Some("block") => false,
        _ => bail!("`gotofw explain` gave no reply verdict: {json}"),
    };
    Ok(Prediction {
        allow,
        rule: reply["rule"].as_str().unwrap_or("?").to_owned(),
    })
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Turns Ctrl-C into a flag the demo checks between steps, so that it stops
/// early but still detaches and deletes its namespaces.
fn catch_interrupts() {
    let handler = on_interrupt as extern "C" fn(libc::c_int);
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

fn check_interrupt() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!(Interrupted);
    }
    Ok(())
}

/// Ctrl-C (or SIGTERM) arrived.
#[derive(Debug)]
struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted; removed the lab")
    }
}

impl std::error::Error for Interrupted {}

fn main() -> ExitCode {
    let args = Args::parse();
    if !is_root() {
        eprintln!(
            "demo: needs root: it creates network namespaces and attaches XDP programs (run `sudo cargo xtask demo`)"
        );
        return ExitCode::FAILURE;
    }
    let bin = match args.gotofw.clone().map_or_else(find_gotofw_bin, Ok) {
        Ok(bin) if bin.is_file() => bin,
        Ok(bin) => {
            eprintln!("demo: --gotofw {}: no such file", bin.display());
            return ExitCode::FAILURE;
        }
        Err(message) => {
            eprintln!("demo: {message}");
            return ExitCode::FAILURE;
        }
    };
    catch_interrupts();
    match run(&args.scenario, &Gotofw::at(bin)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) if err.is::<Interrupted>() => {
            eprintln!("demo: {err}");
            ExitCode::from(130)
        }
        Err(err) => {
            eprintln!("demo: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the demo; true when every probe matched its prediction.
fn run(scenario: &str, gotofw: &Gotofw) -> Result<bool> {
    let start = Instant::now();
    let predictions = PROBES
        .iter()
        .map(|probe| predict(gotofw, scenario, probe))
        .collect::<Result<Vec<_>>>()?;

    let lab = WanLab::new().context("building the lab (namespaces, veth link)")?;
    let servers = start_servers(&lab)?;
    println!("gotofw demo: scenario {scenario}, stateless mode");
    println!(
        "  gateway:  namespace {}, WAN interface {} ({GW_ADDR}/24), routes to the servers via {INET_ADDR}",
        lab.gw().name(),
        lab.wan(),
    );
    println!(
        "  internet: namespace {}, echo servers on {TURN_A} and {TURN_B} (inside TURN networks) and {OUTSIDE} (outside)",
        lab.inet().name(),
    );
    println!(
        "  Each probe goes out from the gateway and waits {} ms for its echo. gotofw filters the WAN's",
        PROBE_TIMEOUT.as_millis()
    );
    println!(
        "  inbound packets (XDP): a reply passes when it mirrors a rule of the scenario; ARP always passes."
    );
    println!();

    let mut without = Vec::new();
    for probe in &PROBES {
        check_interrupt()?;
        without.push(probe.run(&lab));
    }
    check_interrupt()?;

    let attached = Attached::new(gotofw.clone(), lab.gw(), lab.wan());
    let attach = ["attach", lab.wan(), "--scenario", scenario, "--stateless"];
    println!("$ gotofw {}", attach.join(" "));
    print!(
        "{}",
        expect_success(&gotofw.run(lab.gw(), &attach), &attach.join(" "))
    );
    println!();
    // Forget the MAC addresses learnt so far: ARP has to cross the filter now.
    lab.flush_neighbours()?;

    let mut with = Vec::new();
    for probe in &PROBES {
        check_interrupt()?;
        with.push(probe.run(&lab));
    }

    let labels: Vec<String> = PROBES.iter().map(Probe::label).collect();
    let width = labels.iter().map(String::len).max().unwrap_or(0);
    let mut mismatches = 0;
    let mut broken = 0;
    for (((label, &before), &after), prediction) in
        labels.iter().zip(&without).zip(&with).zip(&predictions)
    {
        let note = if !before {
            broken += 1;
            "   <- lab broken: no echo without a filter".to_owned()
        } else if after == prediction.allow {
            String::new()
        } else {
            mismatches += 1;
            format!(
                "   <- MISMATCH: `gotofw explain` says {}",
                verdict(prediction.allow)
            )
        };
        let line = format!(
            "{label:width$}   no filter: {:7}   gotofw {scenario}: {:7} ({}){note}",
            verdict(before),
            verdict(after),
            prediction.rule,
        );
        println!("{line}");
    }
    println!();

    check_interrupt()?;
    println!("$ gotofw status {}", lab.wan());
    print!(
        "{}",
        expect_success(&gotofw.run(lab.gw(), &["status", lab.wan()]), "status")
    );
    println!();

    let detach = attached.detach();
    println!("$ gotofw detach {}", lab.wan());
    print!("{}", expect_success(&detach, "detach"));
    drop(attached);
    drop(servers);
    drop(lab);

    let elapsed = start.elapsed().as_secs_f64();
    if broken == 0 && mismatches == 0 {
        println!(
            "all {} probes behaved as `gotofw explain` predicts; lab removed ({elapsed:.1} s)",
            PROBES.len()
        );
        Ok(true)
    } else {
        println!(
            "{mismatches} probes disagreed with `gotofw explain`, {broken} failed without a filter; lab removed ({elapsed:.1} s)"
        );
        Ok(false)
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "blocked" }
}

/// An echo server behind every probe.
fn start_servers(lab: &WanLab) -> Result<Vec<ServerHandle>> {
    PROBES
        .iter()
        .map(|probe| match probe.proto {
            Proto::Udp => udp_echo_server(lab.inet(), probe.dst),
            Proto::Tcp => tcp_echo_server(lab.inet(), probe.dst),
        })
        .collect()
}
