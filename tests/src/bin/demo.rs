//! `demo`: gotofw at work between a client network and GoTo-like servers.
//!
//! Builds the three-namespace lab ([`Lab3`]): a client host behind a
//! masquerading gateway, and an "internet" running coturn, nginx and UDP
//! echo servers on addresses inside and outside GoTo's TURN networks. Runs the
//! GoTo-like clients (STUN binding, TURN allocations over UDP and TCP with
//! relayed data, HTTPS, HTTP, UDP media ports) without a filter and with
//! gotofw attached to the gateway's WAN interface, in each mode this gotofw
//! has, plus unsolicited traffic from the internet to the gateway; prints what
//! got through next to what `gotofw explain` predicts, and the `gotofw
//! status` table of each round. When this gotofw has stateful mode, a last
//! step locks the gateway to GoTo's domains: dnsmasq in the internet namespace,
//! the client's system resolver pointed at it, gotofw attached with `--scenario
//! tcp-443 --https-to domains`; GoTo's names resolve and connect, a lookalike
//! and a raw address do not, and the counters say why. Then it detaches and
//! removes everything. Needs root.
//!
//! Exit status: 0 when every client behaved as `gotofw explain` predicts, 1
//! otherwise (or when the lab cannot be built), 130 when interrupted.

use std::{
    fmt::Write as _,
    path::PathBuf,
    process::ExitCode,
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::Instant,
};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use gotofw_tests::{
    Attached, Endpoint, GW_ADDR, Gotofw, INET_ADDR, LAN_ADDR, LAN_GW_ADDR, Lab3, MEDIA_PORTS, Mode,
    OUTSIDE, Outcome, Probe, TURN_A, TURN_B, TURN_PEER, UNSOLICITED,
    dlab::{self, DomainLab, Kind},
    expect_success, explain, find_gotofw_bin, is_root, matrix, stateful_support,
};

/// Run gotofw on a three-namespace lab with real GoTo-like clients and
/// servers (coturn, nginx, curl), without and with the filter. Needs root.
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
    /// Only this mode [default: stateless, then stateful when this gotofw has it].
    #[arg(long, value_enum, value_name = "MODE")]
    mode: Option<ModeArg>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModeArg {
    Stateless,
    Stateful,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Turns Ctrl-C into a flag the demo checks between steps, so that it stops
/// early but still detaches, stops the servers and deletes its namespaces.
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
    match run(&args, &Gotofw::at(bin)) {
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

/// One filtered round: the mode, the clients' outcomes and predictions, and
/// whether each unsolicited case reached the gateway.
struct Round {
    mode: Mode,
    outcomes: Vec<Outcome>,
    allow: Vec<bool>,
    rules: Vec<String>,
    unsolicited: Vec<(bool, bool)>,
}

/// Runs the demo; true when every client behaved as predicted.
fn run(args: &Args, gotofw: &Gotofw) -> Result<bool> {
    let start = Instant::now();
    let scenario = args.scenario.as_str();
    let lab = Lab3::new().context("building the lab (namespaces, links, servers)")?;
    let modes = match args.mode {
        Some(ModeArg::Stateless) => vec![Mode::Stateless],
        Some(ModeArg::Stateful) => vec![Mode::Stateful],
        None => match stateful_support(gotofw, lab.gw(), lab.wan()) {
            Ok(()) => vec![Mode::Stateless, Mode::Stateful],
            Err(message) => {
                println!("note: stateful mode is not available ({message}); stateless only\n");
                vec![Mode::Stateless]
            }
        },
    };
    print_lab(&lab, scenario);

    let probes = matrix();
    check_interrupt()?;
    let baseline = lab.probe_all(&probes);
    println!(
        "without a filter: {} of {} clients completed\n",
        baseline.iter().filter(|outcome| outcome.ok).count(),
        probes.len()
    );

    let mut rounds = Vec::new();
    for (index, &mode) in modes.iter().enumerate() {
        check_interrupt()?;
        let ports = 7000 + (index * UNSOLICITED.len()) as u16;
        rounds.push(round(&lab, gotofw, scenario, mode, &probes, ports)?);
    }

    let (mismatches, broken) = print_table(&probes, &baseline, &rounds);
    println!();
    let mut domain_mismatches = 0;
    let mut domains = "";
    if rounds.iter().any(|round| round.mode == Mode::Stateful) {
        check_interrupt()?;
        domain_mismatches = domain_round(&lab, gotofw)?;
        domains = ", the domain-locked step as expected";
    }
    drop(lab);
    let elapsed = start.elapsed().as_secs_f64();
    if mismatches == 0 && broken == 0 && domain_mismatches == 0 {
        println!(
            "every client and unsolicited packet behaved as `gotofw explain` predicts{domains}; lab removed ({elapsed:.1} s)"
        );
        Ok(true)
    } else {
        println!(
            "{mismatches} results disagreed with `gotofw explain`, {domain_mismatches} with the domain-locked expectation, {broken} clients failed without a filter; lab removed ({elapsed:.1} s)"
        );
        Ok(false)
    }
}

fn print_lab(lab: &Lab3, scenario: &str) {
    println!("gotofw demo: scenario {scenario}");
    println!(
        "  lan  {:<15} client {LAN_ADDR}/24, default route via {LAN_GW_ADDR}",
        lab.lan().name()
    );
    println!(
        "  gw   {:<15} LAN {} {LAN_GW_ADDR}/24, WAN {} {GW_ADDR}/24 (masquerade; gotofw here)",
        lab.gw().name(),
        lab.lan_iface(),
        lab.wan(),
    );
    println!(
        "  inet {:<15} {INET_ADDR}/24; servers on {TURN_A} and {TURN_B} (TURN networks) and {OUTSIDE} (outside):",
        lab.inet().name(),
    );
    let media: Vec<String> = MEDIA_PORTS.iter().map(ToString::to_string).collect();
    println!(
        "       coturn turnserver (udp+tcp 3478), nginx (https 443, http 80), udp echo ({}); turnutils_peer on {TURN_PEER}",
        media.join(" ")
    );
    println!(
        "  Clients run in lan at once; one that gets no answer gives up after 1.5-2 s. turnutils_uclient"
    );
    println!("  waits 1-6 s (its own random delay) before relaying its 3 messages.");
    println!();
}

/// Attaches in `mode`, runs the clients and the unsolicited traffic, prints
/// the status table, detaches.
fn round(
    lab: &Lab3,
    gotofw: &Gotofw,
    scenario: &str,
    mode: Mode,
    probes: &[Probe],
    ports: u16,
) -> Result<Round> {
    let mut allow = Vec::new();
    let mut rules = Vec::new();
    for probe in probes {
        let explained = explain(gotofw, scenario, mode, probe.endpoint())?;
        allow.push(explained.allow);
        rules.push(explained.rule);
    }
    let expected_unsolicited = UNSOLICITED
        .iter()
        .map(|&(transport, addr)| {
            let explained = explain(
                gotofw,
                scenario,
                Mode::Stateless,
                Endpoint { transport, addr },
            )?;
            Ok(mode == Mode::Stateless && explained.reply_allow)
        })
        .collect::<Result<Vec<bool>>>()?;

    let attached = Attached::new(gotofw.clone(), lab.gw(), lab.wan());
    let mut attach = vec!["attach", lab.wan()];
    attach.extend(mode.attach_args(scenario));
    println!("$ gotofw {}", attach.join(" "));
    print!(
        "{}",
        expect_success(&gotofw.run(lab.gw(), &attach), &attach.join(" "))
    );
    // Forget the MAC addresses learnt so far: ARP has to cross the filter now.
    lab.flush_neighbours()?;
    let started = Instant::now();
    let outcomes = lab.probe_all(probes);
    check_interrupt()?;
    let reached = thread::scope(|scope| {
        let cases: Vec<_> = UNSOLICITED
            .iter()
            .enumerate()
            .map(|(index, &(transport, src))| {
                scope.spawn(move || lab.reaches_gateway(transport, src, ports + index as u16))
            })
            .collect();
        cases
            .into_iter()
            .map(|case| case.join().expect("an unsolicited case panicked"))
            .collect::<Result<Vec<bool>>>()
    })?;
    println!(
        "  ({} clients and {} unsolicited sends in {:.1} s)",
        probes.len(),
        UNSOLICITED.len(),
        started.elapsed().as_secs_f64()
    );
    println!("$ gotofw status {}", lab.wan());
    print!(
        "{}",
        expect_success(&gotofw.run(lab.gw(), &["status", lab.wan()]), "status")
    );
    println!("$ gotofw detach {}", lab.wan());
    print!("{}", expect_success(&attached.detach(), "detach"));
    println!();
    Ok(Round {
        mode,
        outcomes,
        allow,
        rules,
        unsolicited: reached.into_iter().zip(expected_unsolicited).collect(),
    })
}

/// The domain-locked step: dnsmasq in inet, tcp-443 with https to GoTo's learned addresses
/// only; names of GoTo's and lookalikes resolved with `getent` and fetched with `curl`, and an
/// address no answer named. Returns the results that differ from the expectation.
fn domain_round(lab: &Lab3, gotofw: &Gotofw) -> Result<usize> {
    let dns = DomainLab::new(lab).context("starting dnsmasq in the internet namespace")?;
    println!(
        "domain-locked: dnsmasq on {}:53 in inet serves GoTo-like names and lookalikes (TTL {} s);",
        dlab::DNS_SERVER,
        dlab::LOCAL_TTL
    );
    println!(
        "  the client's resolv.conf names it; their addresses in {} serve HTTPS (nginx).",
        dlab::NAME_NET
    );
    let attached = Attached::new(gotofw.clone(), lab.gw(), lab.wan());
    let args = dlab::attach_args(&[dlab::DNS_SERVER]);
    let mut attach = vec!["attach", lab.wan()];
    attach.extend(args.iter().map(String::as_str));
    println!("$ gotofw {}", attach.join(" "));
    print!(
        "{}",
        expect_success(&gotofw.run(lab.gw(), &attach), &attach.join(" "))
    );
    lab.flush_neighbours()?;
    let mut mismatches = 0;
    println!(
        "{:<22} {:<28} {:<10} {:<10} why",
        "name", "getent ahostsv4", "curl", "expected"
    );
    for (name, addr, kind) in dlab::NAMED.iter().take(5) {
        check_interrupt()?;
        let resolved = dns.resolve(name)?;
        let fetched = dns.curl(name)?;
        let expected = *kind == Kind::Goto;
        if fetched.is_ok() != expected || resolved != [*addr] {
            mismatches += 1;
        }
        let shown: Vec<String> = resolved.iter().map(ToString::to_string).collect();
        let why = match kind {
            Kind::Goto => "a name of GoTo's Table 1: its answer taught the address",
            Kind::Lookalike => "resolves, but matches no GoTo pattern: not learned",
        };
        println!(
            "{name:<22} {:<28} {:<10} {:<10} {why}",
            if shown.is_empty() {
                "(none)".to_owned()
            } else {
                shown.join(" ")
            },
            cell(fetched.is_ok(), expected),
            if expected { "ok" } else { "blocked" },
        );
    }
    let raw = dns.connects(dlab::NEVER_ANSWERED);
    if raw {
        mismatches += 1;
    }
    println!(
        "{:<22} {:<28} {:<10} {:<10} no answer named it",
        format!("{}:443", dlab::NEVER_ANSWERED),
        "-",
        cell(raw, false),
        "blocked"
    );
    println!("$ gotofw status {}", lab.wan());
    print!(
        "{}",
        expect_success(&gotofw.run(lab.gw(), &["status", lab.wan()]), "status")
    );
    println!("$ gotofw detach {}", lab.wan());
    print!("{}", expect_success(&attached.detach(), "detach"));
    println!();
    Ok(mismatches)
}

/// `ok`/`blocked`, with `!` when it differs from the prediction.
fn cell(got: bool, expected: bool) -> String {
    let word = if got { "ok" } else { "blocked" };
    if got == expected {
        word.to_owned()
    } else {
        format!("{word} (!)")
    }
}

/// Prints the table of every client and unsolicited case; returns the
/// mismatches and the clients that failed without a filter.
fn print_table(probes: &[Probe], baseline: &[Outcome], rounds: &[Round]) -> (usize, usize) {
    let mut mismatches = 0;
    let mut broken = 0;
    let mut notes = Vec::new();
    let mut header = format!("{:<22} {:<25} {:<10}", "client", "server", "no filter");
    for round in rounds {
        let _ = write!(header, " {:<11}", round.mode.name());
    }
    let _ = write!(header, " explain (rule)");
    println!("{header}");
    for (index, probe) in probes.iter().enumerate() {
        let endpoint = probe.endpoint();
        let before = &baseline[index];
        if !before.ok {
            broken += 1;
            notes.push(format!(
                "{probe}: failed without a filter: {}",
                before.detail
            ));
        }
        let mut line = format!(
            "{:<22} {:<25} {:<10}",
            probe.service.client(),
            endpoint.to_string(),
            if before.ok { "ok" } else { "FAILED" }
        );
        for round in rounds {
            let outcome = &round.outcomes[index];
            let expected = round.allow[index];
            if outcome.ok != expected {
                mismatches += 1;
                notes.push(format!(
                    "{probe} ({}): {}",
                    round.mode.name(),
                    outcome.detail
                ));
            }
            let _ = write!(line, " {:<11}", cell(outcome.ok, expected));
        }
        if let Some(last) = rounds.last() {
            let verdict = if last.allow[index] { "allow" } else { "block" };
            let _ = write!(line, " {verdict} ({})", last.rules[index]);
        }
        println!("{line}");
    }
    println!();
    println!("unsolicited, from inet to the gateway's WAN address {GW_ADDR} (a listener there):");
    for (index, (transport, src)) in UNSOLICITED.iter().enumerate() {
        let mut line = format!(
            "{:<22} {:<25} {:<10}",
            format!("{} from port {}", transport.name(), src.port()),
            src.to_string(),
            "-"
        );
        for round in rounds {
            let (reached, expected) = round.unsolicited[index];
            if reached != expected {
                mismatches += 1;
                notes.push(format!(
                    "unsolicited {} from {src} ({}): {}",
                    transport.name(),
                    round.mode.name(),
                    if reached {
                        "reached the gateway"
                    } else {
                        "did not reach the gateway"
                    }
                ));
            }
            let word = if reached { "reaches" } else { "dropped" };
            let word = if reached == expected {
                word.to_owned()
            } else {
                format!("{word} (!)")
            };
            let _ = write!(line, " {word:<11}");
        }
        println!("{line}");
    }
    if !notes.is_empty() {
        println!();
        println!("(!) differs from `gotofw explain`; notes:");
        for note in notes {
            println!("  {note}");
        }
    }
    (mismatches, broken)
}
