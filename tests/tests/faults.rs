//! Faults (root only): `gotofw attach` killed with SIGKILL at every stage, two commands on one
//! interface at once, who may read the pins, and runs without the capabilities gotofw needs.
//!
//! The kills use gotofw's testing hook `GOTOFW_FAULT_STAGE=STAGE` (see `fault_point` in
//! `filter-user/src/kernel.rs`): gotofw raises SIGKILL on itself when it reaches the stage. For
//! each stage, a fresh attach (`tcp-443` on a clean interface) and a `--replace` (`tcp-443` over
//! a counting `udp-turn` filter), both stateful, so both links are involved. Right after the
//! kill the test establishes what the interface has, in every detail ([`observe`]): the pins,
//! the kernel objects they name, the programs attached to the interface, the maps those programs
//! use, what `status` says, which probes pass and which counters move. The outcome must be the
//! one [`expected`] names for the stage:
//!
//! - nothing (no pin directory, no program on the interface, all traffic passes), or the
//!   previous filter, or the new one, complete: every pin, the pinned links are the programs on
//!   the interface, those programs count in the pinned maps, `status` works, traffic is filtered
//!   as its scenario says and the counters move;
//! - or one of two windows no ordering of the steps can close, since attaching a link and
//!   pinning it, and pinning two links, are separate system calls. A fresh attach killed between
//!   pinning its link in the staging directory and renaming that into place leaves its programs
//!   attached with their pins only in staging ([`Outcome::Staged`]); a `--replace` killed between
//!   swapping its programs into the pinned links and exchanging the directories leaves the
//!   previous filter's directory (and `status`) in place while the links run the new programs,
//!   which count in maps no pin names ([`Outcome::Swapped`]).
//!
//! Then the next ordinary command must recover cleanly: `attach` (or `attach --replace`), which
//! removes what the killed one staged, yields the new complete filter, and `detach` leaves the
//! interface with no program, no pins and no staging entry. `detach` alone also recovers from
//! both windows.

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
    counter_in, filter_objects, pin_dir, pins, prog_map_ids, require_root_or_skip,
    staging_leftovers, tcp_echo_server, tcp_probe, udp_echo_server, udp_probe,
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
/// A stateful XDP program without its egress half: no flow is ever opened.
const CLOSED: Traffic = Traffic {
    turn_udp: false,
    outside_udp: false,
    https: false,
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
    /// No pin directory; the killed attach's XDP program attached, pinned only in staging, and
    /// with `tc` its egress program too (else no program on the egress: in stateful mode no
    /// flow opens, so nothing comes back in).
    Staged { tc: bool },
    /// The previous filter's pin directory, maps and `status`, but its XDP link runs the new
    /// program, and with `tc` its egress link too (else the egress link still runs the previous
    /// program); the new programs count in maps no pin names.
    Swapped { tc: bool },
}

/// The outcome of an attach (`replace`: `--replace`) killed at `stage`.
fn expected(stage: &str, replace: bool) -> Outcome {
    match (stage, replace) {
        ("locked" | "loaded" | "filled" | "verified" | "maps-pinned" | "attached", false) => {
            Outcome::Nothing
        }
        ("link-pinned" | "egress-attached", false) => Outcome::Staged { tc: false },
        ("pinned", false) => Outcome::Staged { tc: true },
        ("locked" | "loaded" | "filled" | "verified" | "maps-pinned", true) => {
            Outcome::Complete(PREVIOUS)
        }
        ("attached" | "link-pinned", true) => Outcome::Swapped { tc: false },
        ("egress-attached" | "pinned", true) => Outcome::Swapped { tc: true },
        ("renamed", _) => Outcome::Complete(NEW),
        (other, _) => panic!("unknown stage {other}"),
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
                && objects.staging.is_empty()
                && !pin_dir(self.wan()).exists(),
            "{when}: the interface is not clean: {objects:#?}"
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

/// Establishes what the interface has, checks every detail of it against one of the outcomes,
/// and returns that outcome; panics, describing everything, when it is none of them. `previous`
/// is the filter a `--replace` replaced.
fn observe(lab: &Lab, previous: Option<&FilterObjects>) -> Outcome {
    let objects = filter_objects(lab.net.gw(), lab.wan());
    let staged: Vec<BTreeMap<String, Pinned>> = objects.staging.iter().map(|d| pins(d)).collect();
    let describe = || format!("{objects:#?}\nstaged pins: {staged:#?}");
    assert!(
        xdp_prog_count(&lab.net, lab.wan()) <= 1,
        "more than one XDP program: {}",
        describe()
    );
    if objects.pins.is_empty() {
        assert!(
            lab.status().is_none(),
            "status reports a filter without a pin directory: {}",
            describe()
        );
        if objects.xdp.is_none() && objects.tcx_egress.is_empty() {
            assert_eq!(lab.traffic(), OPEN, "no filter, yet: {}", describe());
            return Outcome::Nothing;
        }
        // Programs attached with no pin directory: they must be what an attach staged.
        let staged_prog = |name| staged.iter().find_map(|p| link_prog(p, name));
        assert!(
            objects.xdp.is_some() && objects.xdp == staged_prog("link"),
            "an XDP program is attached that no pin names: {}",
            describe()
        );
        let tc_prog = staged_prog("tc_link");
        assert_eq!(
            objects.tcx_egress,
            Vec::from_iter(tc_prog),
            "egress programs: {}",
            describe()
        );
        let tc = tc_prog.is_some();
        let expect = if tc { traffic_of(NEW) } else { CLOSED };
        assert_eq!(lab.traffic(), expect, "staged programs: {}", describe());
        return Outcome::Staged { tc };
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
    let xdp_counts_here = prog_map_ids(xdp_prog).contains(&counters);
    let tc_counts_here = prog_map_ids(tc_prog).contains(&counters);
    let status = lab.status().expect("status reports the pinned filter");
    let scenario = status["interfaces"][0]["scenario"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let https = |status: &Value| {
        (
            counter_in(status, "https", "ingress").0,
            counter_in(status, "https", "egress").0,
        )
    };
    let before = https(&status);
    let traffic = lab.traffic();
    let after = https(&lab.status().expect("status again"));
    let (in_moved, out_moved) = (after.0 > before.0, after.1 > before.1);
    if xdp_counts_here && tc_counts_here {
        let scenario = [PREVIOUS, NEW]
            .into_iter()
            .find(|s| *s == scenario)
            .unwrap_or_else(|| panic!("unexpected scenario {scenario}"));
        assert_eq!(traffic, traffic_of(scenario), "{scenario}: {}", describe());
        assert!(
            in_moved && out_moved,
            "{scenario}: the https counters did not move ({before:?} -> {after:?})"
        );
        if let Some(previous) = previous {
            let names = |p: &BTreeMap<String, Pinned>| p.keys().cloned().collect::<Vec<_>>();
            assert_eq!(names(&objects.pins), names(&previous.pins), "pin names");
        }
        return Outcome::Complete(scenario);
    }
    // The links run programs that count elsewhere: a --replace killed between its link swaps
    // and its directory exchange. The directory is still the previous filter's.
    let previous = previous.unwrap_or_else(|| {
        panic!(
            "the pinned links run programs that do not count in the pinned maps, and nothing was replaced: {}",
            describe()
        )
    });
    let maps_and_links = |p: &BTreeMap<String, Pinned>| -> Vec<(String, Pinned)> {
        p.iter()
            .map(|(name, object)| match object {
                Pinned::Link { id, .. } => (name.clone(), Pinned::Link { id: *id, prog: 0 }),
                other => (name.clone(), *other),
            })
            .collect()
    };
    assert_eq!(
        maps_and_links(&objects.pins),
        maps_and_links(&previous.pins),
        "the pin directory is not the previous filter's: {}",
        describe()
    );
    assert_eq!(scenario, PREVIOUS, "status: {status}");
    assert!(!xdp_counts_here, "{}", describe());
    assert_eq!(traffic, traffic_of(NEW), "swapped programs: {}", describe());
    assert!(
        !in_moved,
        "the ingress counters moved although the XDP program counts elsewhere"
    );
    assert_eq!(
        out_moved, tc_counts_here,
        "the egress counters moved ({out_moved}) though the egress program counts here ({tc_counts_here})"
    );
    Outcome::Swapped {
        tc: !tc_counts_here,
    }
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
    let staging = filter_objects(lab.net.gw(), lab.wan()).staging;
    let outcome = observe(&lab, previous.as_ref());
    let what = if replace { "--replace" } else { "fresh attach" };
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
    fresh_attach_killed_after_pin_before_rename: "pinned", false;
    fresh_attach_killed_after_rename: "renamed", false;
    replace_killed_when_locked: "locked", true;
    replace_killed_after_load: "loaded", true;
    replace_killed_after_map_fill: "filled", true;
    replace_killed_after_program_load: "verified", true;
    replace_killed_after_pinning_maps: "maps-pinned", true;
    replace_killed_after_swap_before_link_pin: "attached", true;
    replace_killed_after_link_pin: "link-pinned", true;
    replace_killed_after_egress_swap: "egress-attached", true;
    replace_killed_after_pin_before_rename: "pinned", true;
    replace_killed_after_rename: "renamed", true;
}

#[test]
fn detach_alone_recovers_from_both_windows() {
    if !require_root_or_skip("detach_alone_recovers_from_both_windows") {
        return;
    }
    for (stage, replace) in [("pinned", false), ("attached", true)] {
        let lab = Lab::new();
        let guard = lab.guard();
        let previous = replace.then(|| lab.attach_previous());
        let out = lab.attach_new(replace, &[("GOTOFW_FAULT_STAGE", stage)]);
        assert_eq!(out.status.signal(), Some(libc::SIGKILL));
        assert_eq!(
            observe(&lab, previous.as_ref()),
            expected(stage, replace),
            "killed at {stage}"
        );
        let out = lab.run_ok(&["detach", lab.wan()]);
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        lab.assert_clean(&format!("killed at {stage}, then detached"));
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
    // The lock file takes the umask (0666 under umask 000): the directory keeps others out.
    let key = pin_dir(lab.wan())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let lock = Path::new("/run/gotofw").join(format!("{key}.lock"));
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&lock).unwrap());
    assert_eq!(owner, 0, "{}", lock.display());
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

/// A `--replace` after one killed between its link swaps and its directory exchange must not
/// reuse the killed attempt's rule-set generation: flows that attempt opened are checked against
/// the rules in force at their next packet, like any flow of an earlier rule set.
#[test]
fn a_replace_after_a_killed_replace_rechecks_the_killed_attempts_flows() {
    if !require_root_or_skip("a_replace_after_a_killed_replace_rechecks_the_killed_attempts_flows")
    {
        return;
    }
    let lab = Lab::new();
    let guard = lab.guard();
    lab.attach_previous();
    // Killed after swapping in udp-turn with --turn-dst any (UDP 3478 to any address).
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
        &[("GOTOFW_FAULT_STAGE", "pinned")],
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
