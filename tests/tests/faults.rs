//! Faults (root only): `gotofw attach` killed with SIGKILL at every stage, two commands on one
//! interface at once, who may read the pins, and runs without the capabilities gotofw needs.
//!
//! The kills use gotofw's testing hook `GOTOFW_FAULT_STAGE=STAGE` (see `fault_point` in
//! `filter-user/src/loader/fault.rs`): gotofw raises SIGKILL on itself when it reaches the stage. For
//! each stage, a fresh attach (`tcp-443` on a clean interface) and a `--replace` (`tcp-443` over
//! a counting `udp-turn` filter), both stateful, so both links are involved.
//!
//! Right after the kill, before any other gotofw command runs, the interface must do what it did
//! before the attach, or what the new filter says: an attach arms its rule set with one write,
//! and until then its programs hand every packet to the ones they replace (or pass it). Which of
//! the two depends only on whether the kill came before the stage `armed` ([`expected`]).
//!
//! The next gotofw command, even `status`, then settles the pins to match ([`observe`] checks
//! every detail: the pins, the kernel objects they name, the programs attached to the interface,
//! the maps those programs use, what `status` says, which probes pass and which counters move):
//! nothing at all (no pin directory, no program on the interface, all traffic passes), or the
//! previous filter, or the new one, complete. Then the next ordinary command works: `attach`
//! (or `attach --replace`) yields the new complete filter, and `detach` leaves the interface
//! with no program, no pins and no staging entry. `detach` alone recovers from any stage too.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    os::unix::{fs::PermissionsExt as _, process::ExitStatusExt as _},
    path::Path,
    process::Output,
    thread,
    time::{Duration, Instant},
};

use gotofw_tests::{
    Attached, EXIT_USAGE, FilterObjects, Gotofw, OUTSIDE, Pinned, ServerHandle, TURN_A, WanLab,
    counter_in, filter_objects, pin_dir, prog_map_ids, require_root_or_skip, staging_leftovers,
    tcp_echo_server, tcp_probe, udp_echo_server, udp_probe,
};
use serde_json::Value;

/// Longest any gotofw command may take here.
const DEADLINE: Duration = Duration::from_secs(45);
/// How long a probe waits for its echo; a blocked probe costs all of it (probes run at once).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The scenario of the filter a `--replace` replaces.
const PREVIOUS: &str = "udp-turn";
/// The scenario every killed command attaches.
const NEW: &str = "tcp-443";
/// Pins every complete filter has (the object's other maps may add more).
const REQUIRED_PINS: [&str; 10] = [
    "link", "tc_link", "meta", "config", "counters", "flows", "frags", "ports", "nets_v4",
    "nets_v6",
];
/// How long a paused command sleeps at its stage (`GOTOFW_PAUSE_SECS`).
const PAUSE: Duration = Duration::from_secs(2);

/// Which of three probes from the gateway come back: UDP 3478 to a TURN network, UDP 3478
/// elsewhere, TCP 443.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Traffic {
    turn_udp: bool,
    outside_udp: bool,
    https: bool,
}

/// No filter.
const OPEN: Traffic = Traffic {
    turn_udp: true,
    outside_udp: true,
    https: true,
};
/// The traffic of a stateful filter of `scenario` (one of [`PREVIOUS`] and [`NEW`]).
fn traffic_of(scenario: &str) -> Traffic {
    match scenario {
        "udp-turn" => Traffic {
            turn_udp: true,
            outside_udp: false,
            https: true,
        },
        "tcp-443" => Traffic {
            turn_udp: false,
            outside_udp: false,
            https: true,
        },
        other => panic!("no traffic expectation for scenario {other}"),
    }
}

/// What a killed attach left, as [`observe`] establishes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// No filter at all.
    Nothing,
    /// A complete filter of this scenario.
    Complete(&'static str),
}

impl Outcome {
    /// The probes that pass.
    fn traffic(self) -> Traffic {
        match self {
            Self::Nothing => OPEN,
            Self::Complete(scenario) => traffic_of(scenario),
        }
    }
}

/// Stages of an attach, in order (see `fault_point`).
const STAGES: [&str; 11] = [
    "locked",
    "loaded",
    "filled",
    "verified",
    "maps-pinned",
    "attached",
    "link-pinned",
    "egress-attached",
    "pinned",
    "armed",
    "renamed",
];

/// The outcome of an attach (`replace`: `--replace`) killed at `stage`: the previous state
/// before the new rule set is armed, the new filter after.
fn expected(stage: &str, replace: bool) -> Outcome {
    let at = |s: &str| {
        STAGES
            .iter()
            .position(|x| *x == s)
            .unwrap_or_else(|| panic!("unknown stage {s}"))
    };
    if at(stage) >= at("armed") {
        Outcome::Complete(NEW)
    } else if replace {
        Outcome::Complete(PREVIOUS)
    } else {
        Outcome::Nothing
    }
}

/// How many staging directories an attach killed at `stage` leaves: none before it pins
/// anything, one after (with `--replace`, after the exchange, the one holding the old pins).
fn expected_staging(stage: &str, replace: bool) -> usize {
    match stage {
        "locked" | "loaded" | "filled" | "verified" => 0,
        "renamed" => usize::from(replace),
        _ => 1,
    }
}

/// A [`WanLab`] with echo servers behind the three probes of [`Traffic`].
struct Lab {
    // Dropped before the lab: sockets first, then link and namespaces.
    _servers: Vec<ServerHandle>,
    net: WanLab,
    gotofw: Gotofw,
}

const UDP_TURN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(TURN_A, 3478));
const UDP_OUTSIDE: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(OUTSIDE, 3478));
const HTTPS: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(OUTSIDE, 443));

impl Lab {
    fn new() -> Self {
        let net = WanLab::new().unwrap();
        let servers = vec![
            udp_echo_server(net.inet(), UDP_TURN).unwrap(),
            udp_echo_server(net.inet(), UDP_OUTSIDE).unwrap(),
            tcp_echo_server(net.inet(), HTTPS).unwrap(),
        ];
        Self {
            _servers: servers,
            net,
            gotofw: Gotofw::default(),
        }
    }

    fn wan(&self) -> &str {
        self.net.wan()
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.gotofw.run_env(self.net.gw(), args, env, DEADLINE)
    }

    fn run_ok(&self, args: &[&str]) -> Output {
        let out = self.run(args, &[]);
        assert!(
            out.status.success(),
            "gotofw {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `status IFACE --json`, or `None` when gotofw says the interface has no filter.
    fn status(&self) -> Option<Value> {
        let out = self.run(&["status", self.wan(), "--json"], &[]);
        if out.status.code() == Some(EXIT_USAGE)
            && String::from_utf8_lossy(&out.stderr).contains("has no gotofw filter")
        {
            return None;
        }
        assert!(
            out.status.success(),
            "status: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(serde_json::from_slice(&out.stdout).expect("status --json prints JSON"))
    }

    /// The three probes, at once.
    fn traffic(&self) -> Traffic {
        let gw = self.net.gw();
        thread::scope(|scope| {
            let turn = scope.spawn(|| udp_probe(gw, None, UDP_TURN, PROBE_TIMEOUT));
            let outside = scope.spawn(|| udp_probe(gw, None, UDP_OUTSIDE, PROBE_TIMEOUT));
            let https = scope.spawn(|| tcp_probe(gw, HTTPS, PROBE_TIMEOUT));
            Traffic {
                turn_udp: turn.join().unwrap(),
                outside_udp: outside.join().unwrap(),
                https: https.join().unwrap(),
            }
        })
    }

    /// A guard that detaches whatever is attached to the WAN interface when it drops.
    fn guard(&self) -> Attached<'_> {
        Attached::new(self.gotofw.clone(), self.net.gw(), self.wan())
    }

    /// Attaches the previous filter for a `--replace` to replace (the caller holds a
    /// [`Lab::guard`]), checks it and returns its objects.
    fn attach_previous(&self) -> FilterObjects {
        self.run_ok(&["attach", self.wan(), "--scenario", PREVIOUS]);
        assert_eq!(
            observe(self, None),
            Outcome::Complete(PREVIOUS),
            "the previous filter"
        );
        filter_objects(self.net.gw(), self.wan())
    }

    /// `attach IFACE --scenario NEW [--replace]` with the testing hooks of `env`.
    fn attach_new(&self, replace: bool, env: &[(&str, &str)]) -> Output {
        let mut args = vec!["attach", self.wan(), "--scenario", NEW];
        if replace {
            args.push("--replace");
        }
        self.run(&args, env)
    }

    /// No program on the interface, no pins, no staging entry, and all traffic passes.
    fn assert_clean(&self, when: &str) {
        let objects = filter_objects(self.net.gw(), self.wan());
        assert!(
            objects.pins.is_empty()
                && objects.xdp.is_none()
                && xdp_prog_count(&self.net, self.wan()) == 0
                && objects.tcx_egress.is_empty()
                && objects.clsact_egress.is_empty()
                && objects.staging.is_empty()
                && !pin_dir(self.wan()).exists(),
            "{when}: the interface is not clean: {objects:#?}"
        );
        // The lab's interface had no qdisc of its own: one gotofw added goes with its filter.
        let qdiscs = self
            .net
            .gw()
            .exec("tc", ["qdisc", "show", "dev", self.wan()])
            .expect("tc qdisc show");
        let qdiscs = String::from_utf8_lossy(&qdiscs.stdout);
        assert!(
            !qdiscs.contains("clsact"),
            "{when}: a clsact qdisc is left: {qdiscs}"
        );
        assert_eq!(self.traffic(), OPEN, "{when}: traffic without a filter");
    }
}

impl Drop for Lab {
    /// Removes what a killed attach staged for the WAN interface, should a failing test leave
    /// it (unpinning a staged link detaches it; the namespaces go next).
    fn drop(&mut self) {
        for dir in staging_leftovers(self.wan()) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// How many XDP programs the interface has (`ip -d link`: one per attach mode).
fn xdp_prog_count(net: &WanLab, iface: &str) -> usize {
    let json = net
        .gw()
        .ip(["-j", "-d", "link", "show", "dev", iface])
        .unwrap_or_default();
    let links: Value = serde_json::from_str(&json).unwrap_or(Value::Null);
    let xdp = &links[0]["xdp"];
    match xdp["attached"].as_array() {
        Some(list) => list.iter().filter(|a| a["prog"]["id"].is_u64()).count(),
        None => usize::from(xdp["prog"]["id"].is_u64()),
    }
}

/// The program id of link pin `name` among `pins`.
fn link_prog(pins: &BTreeMap<String, Pinned>, name: &str) -> Option<u32> {
    match pins.get(name) {
        Some(Pinned::Link { prog, .. }) => Some(*prog),
        _ => None,
    }
}

/// Runs `status` (which settles what a killed attach left), then establishes what the interface
/// has, checks every detail of it against one of the outcomes, and returns that outcome;
/// panics, describing everything, when it is none of them. `previous` is the filter a
/// `--replace` replaced.
fn observe(lab: &Lab, previous: Option<&FilterObjects>) -> Outcome {
    let status = lab.status();
    let objects = filter_objects(lab.net.gw(), lab.wan());
    let describe = || format!("{objects:#?}");
    assert!(
        objects.staging.is_empty(),
        "status left staging entries: {}",
        describe()
    );
    assert!(
        xdp_prog_count(&lab.net, lab.wan()) <= 1,
        "more than one XDP program: {}",
        describe()
    );
    if objects.pins.is_empty() {
        assert!(
            status.is_none(),
            "status reports a filter without a pin directory: {}",
            describe()
        );
        assert!(
            objects.xdp.is_none() && objects.tcx_egress.is_empty(),
            "programs attached with no pin directory: {}",
            describe()
        );
        assert_eq!(lab.traffic(), OPEN, "no filter, yet: {}", describe());
        return Outcome::Nothing;
    }
    for name in REQUIRED_PINS {
        assert!(
            objects.pins.contains_key(name),
            "pin {name} missing: {}",
            describe()
        );
    }
    let (Some(xdp_prog), Some(tc_prog), Some(Pinned::Map(counters))) = (
        link_prog(&objects.pins, "link"),
        link_prog(&objects.pins, "tc_link"),
        objects.pins.get("counters").copied(),
    ) else {
        panic!(
            "link, tc_link or counters is not what it should be: {}",
            describe()
        );
    };
    assert_eq!(
        objects.xdp,
        Some(xdp_prog),
        "the XDP program is not the pinned link's: {}",
        describe()
    );
    assert_eq!(
        objects.tcx_egress,
        [tc_prog],
        "the egress program is not the pinned link's: {}",
        describe()
    );
    assert!(
        prog_map_ids(xdp_prog).contains(&counters) && prog_map_ids(tc_prog).contains(&counters),
        "the pinned links run programs that do not count in the pinned maps: {}",
        describe()
    );
    let status = status.expect("status reports the pinned filter");
    let scenario = status["interfaces"][0]["scenario"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let scenario = [PREVIOUS, NEW]
        .into_iter()
        .find(|s| *s == scenario)
        .unwrap_or_else(|| panic!("unexpected scenario {scenario}"));
    let https = |status: &Value| {
        (
            counter_in(status, "https", "ingress").0,
            counter_in(status, "https", "egress").0,
        )
    };
    let before = https(&status);
    let traffic = lab.traffic();
    let after = https(&lab.status().expect("status again"));
    assert_eq!(traffic, traffic_of(scenario), "{scenario}: {}", describe());
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "{scenario}: the https counters did not move ({before:?} -> {after:?})"
    );
    if let Some(previous) = previous {
        let names = |p: &BTreeMap<String, Pinned>| p.keys().cloned().collect::<Vec<_>>();
        assert_eq!(names(&objects.pins), names(&previous.pins), "pin names");
    }
    Outcome::Complete(scenario)
}

/// Kills `attach --scenario tcp-443` (with `replace`, over a `udp-turn` filter) at `stage`,
/// checks the outcome, and recovers with the next ordinary command.
fn kill_at(stage: &str, replace: bool) {
    let lab = Lab::new();
    // Created before anything is attached: it detaches whatever is left, even on a panic.
    let guard = lab.guard();
    let previous = replace.then(|| lab.attach_previous());

    let out = lab.attach_new(replace, &[("GOTOFW_FAULT_STAGE", stage)]);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGKILL),
        "attach with GOTOFW_FAULT_STAGE={stage} was not killed: {}; {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let what = if replace { "--replace" } else { "fresh attach" };
    // Before any other command: the interface does what the outcome says.
    let staging = filter_objects(lab.net.gw(), lab.wan()).staging;
    assert!(xdp_prog_count(&lab.net, lab.wan()) <= 1);
    assert_eq!(
        lab.traffic(),
        expected(stage, replace).traffic(),
        "{what} killed at {stage}: traffic before any other command"
    );
    let outcome = observe(&lab, previous.as_ref());
    assert_eq!(
        outcome,
        expected(stage, replace),
        "{what} killed at {stage}"
    );
    assert_eq!(
        staging.len(),
        expected_staging(stage, replace),
        "{what} killed at {stage}: staging {staging:?}"
    );

    // The next ordinary command recovers.
    if outcome == Outcome::Complete(NEW) && !replace {
        lab.run_ok(&["detach", lab.wan()]);
    } else {
        let recovered = lab.attach_new(replace, &[]);
        assert!(
            recovered.status.success(),
            "{what} killed at {stage}, then attached again: {}",
            String::from_utf8_lossy(&recovered.stderr)
        );
        let objects = filter_objects(lab.net.gw(), lab.wan());
        assert!(
            objects.staging.is_empty(),
            "{what} killed at {stage}: staging left after the next attach: {objects:#?}"
        );
        assert_eq!(
            observe(&lab, previous.as_ref()),
            Outcome::Complete(NEW),
            "{what} killed at {stage}, then attached again"
        );
        lab.run_ok(&["detach", lab.wan()]);
    }
    lab.assert_clean(&format!("{what} killed at {stage}, recovered, detached"));
    drop(guard);
}

macro_rules! kills {
    ($($name:ident: $stage:literal, $replace:literal;)*) => {$(
        #[test]
        fn $name() {
            if !require_root_or_skip(stringify!($name)) {
                return;
            }
            kill_at($stage, $replace);
        }
    )*};
}

kills! {
    fresh_attach_killed_when_locked: "locked", false;
    fresh_attach_killed_after_load: "loaded", false;
    fresh_attach_killed_after_map_fill: "filled", false;
    fresh_attach_killed_after_program_load: "verified", false;
    fresh_attach_killed_after_pinning_maps: "maps-pinned", false;
    fresh_attach_killed_after_attach_before_link_pin: "attached", false;
    fresh_attach_killed_after_link_pin: "link-pinned", false;
    fresh_attach_killed_after_egress_attach: "egress-attached", false;
    fresh_attach_killed_after_pin_before_arming: "pinned", false;
    fresh_attach_killed_after_arming: "armed", false;
    fresh_attach_killed_after_rename: "renamed", false;
    replace_killed_when_locked: "locked", true;
    replace_killed_after_load: "loaded", true;
    replace_killed_after_map_fill: "filled", true;
    replace_killed_after_program_load: "verified", true;
    replace_killed_after_pinning_maps: "maps-pinned", true;
    replace_killed_after_swap_before_link_pin: "attached", true;
    replace_killed_after_link_pin: "link-pinned", true;
    replace_killed_after_egress_swap: "egress-attached", true;
    replace_killed_after_pin_before_arming: "pinned", true;
    replace_killed_after_arming_before_exchange: "armed", true;
    replace_killed_after_rename: "renamed", true;
}

#[test]
fn detach_alone_recovers_from_a_kill_at_any_stage() {
    if !require_root_or_skip("detach_alone_recovers_from_a_kill_at_any_stage") {
        return;
    }
    for (stage, replace) in [
        ("pinned", false),
        ("armed", false),
        ("link-pinned", true),
        ("armed", true),
    ] {
        let lab = Lab::new();
        let guard = lab.guard();
        if replace {
            lab.attach_previous();
        }
        let out = lab.attach_new(replace, &[("GOTOFW_FAULT_STAGE", stage)]);
        assert_eq!(out.status.signal(), Some(libc::SIGKILL));
        let out = lab.run_ok(&["detach", lab.wan()]);
        // One line tells what the killed attach left and what became of it.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let armed = stage == "armed";
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("gotofw: note: ")
                && stderr.contains("was killed midway")
                && stderr.contains(if armed { "is in force" } else { "never armed" }),
            "killed at {stage}: {stderr}"
        );
        lab.assert_clean(&format!("killed at {stage}, then detached"));
        drop(guard);
    }
}

/// A `--replace` between modes switches the egress hook with the XDP one. Stateful and
/// stateless mode both filter at the egress: the new egress program is swapped into the link.
/// To ingress-only, the new egress program (which passes everything once armed) takes the
/// filter's egress link until the pins move, and the link goes then; from ingress-only, a new
/// egress link passes everything until armed. Killed just before or just after the arming, the
/// interface does what the previous or the new filter says, and `status` then settles the pins.
#[test]
fn replace_across_modes_killed_around_the_arming() {
    if !require_root_or_skip("replace_across_modes_killed_around_the_arming") {
        return;
    }
    // tcp-443 stateless admits replies by source port: the three probes come out as stateful.
    for (from, to, stage, in_force) in [
        ("stateful", "stateless", "pinned", PREVIOUS),
        ("stateful", "stateless", "armed", NEW),
        ("stateless", "stateful", "pinned", PREVIOUS),
        ("stateless", "stateful", "armed", NEW),
        ("stateful", "ingress-only", "pinned", PREVIOUS),
        ("stateful", "ingress-only", "armed", NEW),
        ("ingress-only", "stateless", "pinned", PREVIOUS),
        ("ingress-only", "stateless", "armed", NEW),
    ] {
        let what = format!("{from} -> {to}, killed at {stage}");
        let lab = Lab::new();
        let guard = lab.guard();
        let mode_flag = |mode: &str| match mode {
            "stateless" => Some("--stateless"),
            "ingress-only" => Some("--ingress-only"),
            _ => None,
        };
        let mut args = vec!["attach", lab.wan(), "--scenario", PREVIOUS];
        args.extend(mode_flag(from));
        lab.run_ok(&args);
        let mut args = vec!["attach", lab.wan(), "--scenario", NEW, "--replace"];
        args.extend(mode_flag(to));
        let out = lab.run(&args, &[("GOTOFW_FAULT_STAGE", stage)]);
        assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{what}");
        assert_eq!(lab.traffic(), traffic_of(in_force), "{what}: traffic");
        let status = lab.status().expect("a filter");
        let iface = &status["interfaces"][0];
        let mode = if in_force == NEW { to } else { from };
        assert_eq!(iface["scenario"], in_force, "{what}: {status}");
        assert_eq!(iface["mode"], mode, "{what}: {status}");
        let objects = filter_objects(lab.net.gw(), lab.wan());
        assert!(objects.staging.is_empty(), "{what}: {objects:#?}");
        let egress = mode != "ingress-only";
        assert_eq!(
            objects.pins.contains_key("tc_link"),
            egress,
            "{what}: {objects:#?}"
        );
        assert_eq!(
            objects.tcx_egress.len(),
            usize::from(egress),
            "{what}: {objects:#?}"
        );
        assert_eq!(lab.traffic(), traffic_of(in_force), "{what}: after status");
        lab.run_ok(&["detach", lab.wan()]);
        lab.assert_clean(&what);
        drop(guard);
    }
}

/// The clsact egress hook (`--egress-hook clsact`, what `auto` takes before Linux 6.6): its
/// netlink filter outlives a killed attach whatever the stage, unlike a tcx link that was not
/// pinned yet. Killed around the egress attach and the arming, fresh and `--replace`, the
/// interface does what the previous filter (or none) does before the arming and what the new one
/// does after; `status` then settles everything: exactly gotofw's filter on the egress, running
/// the pinned egress program, which counts in the pinned maps, or no filter at all. `detach`
/// removes the filter with the rest.
#[test]
fn clsact_egress_hook_killed_around_the_arming() {
    if !require_root_or_skip("clsact_egress_hook_killed_around_the_arming") {
        return;
    }
    for (stage, replace) in [
        ("egress-attached", false),
        ("pinned", false),
        ("armed", false),
        ("egress-attached", true),
        ("pinned", true),
        ("armed", true),
    ] {
        let what = format!(
            "clsact, {} killed at {stage}",
            if replace { "--replace" } else { "fresh attach" }
        );
        let lab = Lab::new();
        let guard = lab.guard();
        if replace {
            lab.run_ok(&[
                "attach",
                lab.wan(),
                "--scenario",
                PREVIOUS,
                "--egress-hook",
                "clsact",
            ]);
        }
        let mut args = vec![
            "attach",
            lab.wan(),
            "--scenario",
            NEW,
            "--egress-hook",
            "clsact",
        ];
        if replace {
            args.push("--replace");
        }
        let out = lab.run(&args, &[("GOTOFW_FAULT_STAGE", stage)]);
        assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{what}");
        let outcome = expected(stage, replace);
        assert_eq!(lab.traffic(), outcome.traffic(), "{what}: traffic");

        let status = lab.status();
        let objects = filter_objects(lab.net.gw(), lab.wan());
        assert!(objects.staging.is_empty(), "{what}: {objects:#?}");
        assert!(objects.tcx_egress.is_empty(), "{what}: {objects:#?}");
        match outcome {
            Outcome::Nothing => {
                assert!(status.is_none(), "{what}: {status:?}");
                assert!(
                    objects.pins.is_empty()
                        && objects.xdp.is_none()
                        && objects.clsact_egress.is_empty(),
                    "{what}: {objects:#?}"
                );
            }
            Outcome::Complete(scenario) => {
                let status = status.expect("a filter");
                let iface = &status["interfaces"][0];
                assert_eq!(iface["scenario"], scenario, "{what}: {status}");
                assert_eq!(iface["egress_hook"], "clsact", "{what}: {status}");
                let (Some(Pinned::Program(egress)), Some(Pinned::Map(counters))) = (
                    objects.pins.get("egress_prog").copied(),
                    objects.pins.get("counters").copied(),
                ) else {
                    panic!("{what}: {objects:#?}");
                };
                assert_eq!(objects.clsact_egress, [egress], "{what}: {objects:#?}");
                assert_eq!(objects.xdp, link_prog(&objects.pins, "link"), "{what}");
                assert!(prog_map_ids(egress).contains(&counters), "{what}");
                let before = counter_in(&status, "https", "egress").0;
                assert_eq!(lab.traffic(), traffic_of(scenario), "{what}: after status");
                let after = counter_in(&lab.status().expect("status"), "https", "egress").0;
                assert!(
                    after > before,
                    "{what}: egress counters {before} -> {after}"
                );
            }
        }
        if outcome != Outcome::Nothing {
            lab.run_ok(&["detach", lab.wan()]);
        }
        lab.assert_clean(&what);
        drop(guard);
    }
}

/// Two commands on one interface: the second waits for the first's lock and then sees what the
/// first did.
#[test]
fn commands_on_one_interface_wait_for_each_other() {
    if !require_root_or_skip("commands_on_one_interface_wait_for_each_other") {
        return;
    }
    let lab = Lab::new();
    let guard = lab.guard();
    let pause = PAUSE.as_secs().to_string();
    let paused_at = |stage: &'static str| {
        [
            ("GOTOFW_PAUSE_STAGE", stage),
            ("GOTOFW_PAUSE_SECS", pause.as_str()),
        ]
    };

    // A fresh attach pauses with everything staged; a second attach waits, then finds the
    // first one's filter and is refused.
    let env = paused_at("pinned");
    let mut first = lab.gotofw.spawn(
        lab.net.gw(),
        &["attach", lab.wan(), "--scenario", PREVIOUS],
        &env,
    );
    let line = first.wait_for_stderr("paused at stage pinned", DEADLINE);
    assert!(line.is_some(), "the first attach never paused");
    assert!(!pin_dir(lab.wan()).exists(), "pinned before the rename");
    let start = Instant::now();
    let second = lab
        .gotofw
        .spawn(lab.net.gw(), &["attach", lab.wan(), "--scenario", NEW], &[]);
    let second = second.wait(DEADLINE);
    let waited = start.elapsed();
    let first = first.wait(DEADLINE);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(EXIT_USAGE), "{stderr}");
    assert!(stderr.contains("already has a gotofw filter"), "{stderr}");
    assert!(
        waited >= PAUSE / 2,
        "the second attach did not wait for the first ({waited:?})"
    );
    assert_eq!(observe(&lab, None), Outcome::Complete(PREVIOUS));

    // A --replace pauses after loading its programs; a detach waits, then removes the filter
    // the --replace made, leaving nothing behind.
    let before = filter_objects(lab.net.gw(), lab.wan());
    let env = paused_at("verified");
    let mut first = lab.gotofw.spawn(
        lab.net.gw(),
        &["attach", lab.wan(), "--scenario", NEW, "--replace"],
        &env,
    );
    assert!(
        first
            .wait_for_stderr("paused at stage verified", DEADLINE)
            .is_some(),
        "the --replace never paused"
    );
    let start = Instant::now();
    let detach = lab
        .gotofw
        .spawn(lab.net.gw(), &["detach", lab.wan()], &[])
        .wait(DEADLINE);
    let waited = start.elapsed();
    let first = first.wait(DEADLINE);
    assert!(
        first.status.success(),
        "--replace: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("replaced the rule set"),
        "{}",
        String::from_utf8_lossy(&first.stdout)
    );
    assert!(
        detach.status.success(),
        "detach: {}",
        String::from_utf8_lossy(&detach.stderr)
    );
    assert!(
        waited >= PAUSE / 2,
        "the detach did not wait for the --replace ({waited:?})"
    );
    assert!(!before.pins.is_empty());
    lab.assert_clean("after the --replace and the detach");
    drop(guard);
}

/// Mode bits of `path` (permissions only).
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// `dir` is 0700 and every file in it 0600.
fn assert_private_dir(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    let entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .collect();
    assert!(!entries.is_empty(), "{} is empty", dir.display());
    for entry in entries {
        assert_eq!(mode(&entry.path()), 0o600, "{}", entry.path().display());
    }
}

/// Pins, staging directories and the lock directory are root's alone, whatever the umask.
#[test]
fn pins_and_locks_are_root_only() {
    if !require_root_or_skip("pins_and_locks_are_root_only") {
        return;
    }
    let lab = Lab::new();
    let guard = lab.guard();
    // gotofw under umask 000, paused with everything staged.
    let shell = Gotofw::at("/bin/sh");
    let bin = lab.gotofw.bin().to_string_lossy().into_owned();
    let pause = PAUSE.as_secs().to_string();
    let mut attach = shell.spawn(
        lab.net.gw(),
        &[
            "-c",
            "umask 000; exec \"$0\" \"$@\"",
            &bin,
            "attach",
            lab.wan(),
            "--scenario",
            NEW,
        ],
        &[
            ("GOTOFW_PAUSE_STAGE", "pinned"),
            ("GOTOFW_PAUSE_SECS", pause.as_str()),
        ],
    );
    assert!(
        attach
            .wait_for_stderr("paused at stage pinned", DEADLINE)
            .is_some(),
        "the attach never paused"
    );
    let staged = filter_objects(lab.net.gw(), lab.wan()).staging;
    assert_eq!(staged.len(), 1, "{staged:?}");
    assert_private_dir(&staged[0]);
    // The lock file, while the attach holds it: root's, 0600.
    let key = staged[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .split_once('@')
        .unwrap()
        .0
        .to_owned();
    let lock = Path::new("/run/gotofw").join(format!("{key}.lock"));
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&lock).unwrap());
    assert_eq!(owner, 0, "{}", lock.display());
    assert_eq!(mode(&lock), 0o600, "{}", lock.display());
    let out = attach.wait(DEADLINE);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for dir in [
        gotofw_tests::PIN_ROOT,
        gotofw_tests::PIN_STAGING,
        "/run/gotofw",
    ] {
        assert_eq!(mode(Path::new(dir)), 0o700, "{dir}");
    }
    assert_private_dir(&pin_dir(lab.wan()));
    // Let go with the lock.
    assert!(!lock.exists(), "{} outlived the attach", lock.display());
    drop(guard);
}

/// Without CAP_NET_ADMIN, or without both CAP_BPF and CAP_SYS_ADMIN, every command that touches
/// the filter says which capability is missing (exit 2, one line) and changes nothing.
#[test]
fn missing_capabilities_are_named_and_change_nothing() {
    if !require_root_or_skip("missing_capabilities_are_named_and_change_nothing") {
        return;
    }
    let lab = Lab::new();
    let guard = lab.guard();
    let before = lab.attach_previous();
    let setpriv = Gotofw::at("setpriv");
    let bin = lab.gotofw.bin().to_string_lossy().into_owned();
    for (drop_caps, missing) in [
        ("-net_admin", "CAP_NET_ADMIN"),
        ("-bpf,-sys_admin", "CAP_BPF"),
    ] {
        let bounding = format!("--bounding-set={drop_caps}");
        for command in [
            &["attach", lab.wan(), "--scenario", NEW, "--replace"][..],
            &["set-scenario", lab.wan(), NEW],
            &["detach", lab.wan()],
            &["status", lab.wan(), "--json"],
            &["flows", lab.wan()],
            &["explain", lab.wan(), "udp", "68.64.0.10:3478"],
        ] {
            let mut args = vec!["--inh-caps=-all", &bounding, &bin];
            args.extend_from_slice(command);
            let out = setpriv.run_env(lab.net.gw(), &args, &[], DEADLINE);
            let what = format!("{drop_caps}: gotofw {}", command.join(" "));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(EXIT_USAGE), "{what}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{what}: {stderr:?}");
            assert!(
                stderr.starts_with("gotofw: error:") && stderr.contains(missing),
                "{what}: {stderr:?}"
            );
            assert_eq!(
                filter_objects(lab.net.gw(), lab.wan()),
                before,
                "{what} changed the filter"
            );
        }
    }
    assert_eq!(observe(&lab, None), Outcome::Complete(PREVIOUS));
    drop(guard);
}

/// A `--replace` killed after arming its rule set leaves it in force, and the `--replace` after
/// it must not reuse that rule set's generation: flows opened under it are checked against the
/// rules in force at their next packet, like any flow of an earlier rule set.
#[test]
fn a_replace_after_a_killed_armed_replace_rechecks_its_flows() {
    if !require_root_or_skip("a_replace_after_a_killed_armed_replace_rechecks_its_flows") {
        return;
    }
    let lab = Lab::new();
    let guard = lab.guard();
    lab.attach_previous();
    // Killed after arming udp-turn with --turn-dst any (UDP 3478 to any address).
    let out = lab.run(
        &[
            "attach",
            lab.wan(),
            "--scenario",
            PREVIOUS,
            "--turn-dst",
            "any",
            "--replace",
        ],
        &[("GOTOFW_FAULT_STAGE", "armed")],
    );
    assert_eq!(out.status.signal(), Some(libc::SIGKILL));
    // A TURN call to a server outside the TURN networks, which the killed attempt's rules allow.
    let server = std::net::Ipv4Addr::new(198, 51, 100, 20);
    gotofw_tests::addr_add(lab.net.inet(), lab.net.isp(), &format!("{server}/32")).unwrap();
    let far = SocketAddr::from((server, 3478));
    let call = lab
        .net
        .gw()
        .run(|| std::net::UdpSocket::bind(SocketAddr::from((gotofw_tests::GW_ADDR, 0))))
        .unwrap();
    call.set_read_timeout(Some(PROBE_TIMEOUT)).unwrap();
    call.send_to(b"media", far).unwrap();
    let media_in = || {
        gotofw_tests::udp_send_from(lab.net.inet(), far, call.local_addr().unwrap(), 1).unwrap();
        let mut buf = [0u8; 64];
        call.recv_from(&mut buf).is_ok()
    };
    assert!(media_in(), "the killed attempt's flow does not carry media");
    // The next --replace, plain udp-turn: UDP 3478 only to the TURN networks.
    lab.run_ok(&["attach", lab.wan(), "--scenario", PREVIOUS, "--replace"]);
    assert!(
        !media_in(),
        "media of a flow the killed attempt opened still comes in, unchecked, under plain {PREVIOUS}"
    );
    assert_eq!(observe(&lab, None), Outcome::Complete(PREVIOUS));
    drop(guard);
}
