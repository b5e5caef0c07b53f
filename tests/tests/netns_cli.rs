//! Kernel tests of the `gotofw` command line (root only): attach a scenario to
//! the WAN interface of a gateway namespace, probe real servers on the other
//! side of a veth link, read the counters, detach, and check that nothing is
//! left behind.
//!
//! Each test builds its own [`WanLab`] (unique namespace and interface names),
//! so they run in parallel. Every attach goes with an [`Attached`] guard, since
//! gotofw's pins live in the host's bpffs and would outlive the namespaces.
//! The binary under test is `$GOTOFW_BIN`, else `target/<profile>/gotofw`
//! (`cargo xtask test` builds it and sets the variable).

use std::{
    fmt,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    process::Output,
    thread,
    time::Duration,
};

use gotofw_tests::{
    Attached, EXIT_USAGE, GW_ADDR, Gotofw, Netns, OUTSIDE, ServerHandle, TURN_A, TURN_B, WanLab,
    counter, counter_in, exit_code, expect_success, filter_objects, pin_dir, require_root_or_skip,
    staging_leftovers, tcp_echo_server, tcp_probe, udp_echo_server, udp_probe, udp_send_from,
    unique_name, xdp_prog_id,
};

/// How long a probe waits for its echo. An answered probe returns as soon as
/// the echo arrives; a blocked one costs all of it (probes of one round run
/// in parallel, so a round costs about one timeout).
const PROBE_TIMEOUT: Duration = Duration::from_millis(400);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Udp,
    Tcp,
}

/// One connection attempt from the gateway to a server on the internet side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Probe {
    proto: Proto,
    dst: SocketAddr,
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.proto {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        };
        write!(f, "{proto} {}", self.dst)
    }
}

const fn udp(ip: Ipv4Addr, port: u16) -> Probe {
    Probe {
        proto: Proto::Udp,
        dst: SocketAddr::V4(SocketAddrV4::new(ip, port)),
    }
}

const fn tcp(ip: Ipv4Addr, port: u16) -> Probe {
    Probe {
        proto: Proto::Tcp,
        dst: SocketAddr::V4(SocketAddrV4::new(ip, port)),
    }
}

const UDP_TURN_A: Probe = udp(TURN_A, 3478);
const UDP_TURN_B: Probe = udp(TURN_B, 3478);
const UDP_OUTSIDE: Probe = udp(OUTSIDE, 3478);
const TCP_TURN_A: Probe = tcp(TURN_A, 3478);
const TCP_OUTSIDE_3478: Probe = tcp(OUTSIDE, 3478);
const HTTPS: Probe = tcp(OUTSIDE, 443);
const HTTP_TURN_A: Probe = tcp(TURN_A, 80);
const MEDIA_LOW: Probe = udp(OUTSIDE, 45000);
const MEDIA_ABOVE: Probe = udp(OUTSIDE, 50000);

/// Every probe the tests run; each has an echo server.
const PROBES: [Probe; 9] = [
    UDP_TURN_A,
    UDP_TURN_B,
    UDP_OUTSIDE,
    TCP_TURN_A,
    TCP_OUTSIDE_3478,
    HTTPS,
    HTTP_TURN_A,
    MEDIA_LOW,
    MEDIA_ABOVE,
];

/// A [`WanLab`] with an echo server behind every probe.
struct Lab {
    // Dropped before the lab: sockets first, then link and namespaces.
    servers: Vec<(Probe, ServerHandle)>,
    net: WanLab,
    gotofw: Gotofw,
}

impl Lab {
    fn new() -> Self {
        let net = WanLab::new().unwrap();
        let servers = PROBES
            .iter()
            .map(|&probe| {
                let server = match probe.proto {
                    Proto::Udp => udp_echo_server(net.inet(), probe.dst),
                    Proto::Tcp => tcp_echo_server(net.inet(), probe.dst),
                };
                (probe, server.unwrap())
            })
            .collect();
        Self {
            servers,
            net,
            gotofw: Gotofw::default(),
        }
    }

    fn gw(&self) -> &Netns {
        self.net.gw()
    }

    fn wan(&self) -> &str {
        self.net.wan()
    }

    fn gotofw(&self, args: &[&str]) -> Output {
        self.gotofw.run(self.gw(), args)
    }

    /// Attaches `scenario` (stateless) to the WAN interface.
    fn attach(&self, scenario: &str) -> Attached<'_> {
        self.attach_in(scenario, Mode::Stateless)
    }

    /// Attaches `scenario` in `mode` to the WAN interface.
    fn attach_in(&self, scenario: &str, mode: Mode) -> Attached<'_> {
        let mut args = vec!["--scenario", scenario];
        args.extend(mode.flag());
        self.gotofw.attach(self.gw(), self.wan(), &args)
    }

    fn served(&self, probe: Probe) -> usize {
        self.servers
            .iter()
            .find(|(p, _)| *p == probe)
            .map(|(_, server)| server.served())
            .expect("every probe has a server")
    }

    fn probe(&self, probe: Probe) -> bool {
        match probe.proto {
            Proto::Udp => udp_probe(self.gw(), None, probe.dst, PROBE_TIMEOUT),
            Proto::Tcp => tcp_probe(self.gw(), probe.dst, PROBE_TIMEOUT),
        }
    }

    /// Runs `probes` at once; returns whether each came back.
    fn probe_all(&self, probes: &[Probe]) -> Vec<bool> {
        thread::scope(|scope| {
            let running: Vec<_> = probes
                .iter()
                .map(|&probe| scope.spawn(move || self.probe(probe)))
                .collect();
            running
                .into_iter()
                .map(|probe| probe.join().unwrap())
                .collect()
        })
    }

    /// Asserts that every probe in `probes` gets through (or not, per
    /// `expect`), listing every mismatch at once.
    fn assert_probes(&self, probes: &[Probe], expect: impl Fn(Probe) -> bool, when: &str) {
        let results = self.probe_all(probes);
        let wrong: Vec<String> = probes
            .iter()
            .zip(&results)
            .filter(|&(&probe, &ok)| ok != expect(probe))
            .map(|(probe, &ok)| {
                format!(
                    "{probe}: {} (expected {})",
                    verdict(ok),
                    verdict(expect(*probe))
                )
            })
            .collect();
        assert!(wrong.is_empty(), "{when}: {}", wrong.join("; "));
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "blocked" }
}

/// Asserts that `output` is gotofw's answer to bad input: exit code 2 and one
/// line on stderr.
fn assert_usage_error(output: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        exit_code(output),
        Some(EXIT_USAGE),
        "{what}: expected exit code 2; stderr: {stderr}"
    );
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{what}: expected one line on stderr: {stderr:?}"
    );
    assert!(stderr.starts_with("gotofw: error:"), "{what}: {stderr:?}");
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Stateful,
    Stateless,
    IngressOnly,
}

impl Mode {
    const fn name(self) -> &'static str {
        match self {
            Self::Stateful => "stateful",
            Self::Stateless => "stateless",
            Self::IngressOnly => "ingress-only",
        }
    }

    /// The option of `attach` that picks the mode.
    const fn flag(self) -> Option<&'static str> {
        match self {
            Self::Stateful => None,
            Self::Stateless => Some("--stateless"),
            Self::IngressOnly => Some("--ingress-only"),
        }
    }

    /// Whether the outbound rules are enforced at the egress.
    fn filters_egress(self) -> bool {
        self != Self::IngressOnly
    }
}

/// A scenario's expected outcome: for each probe, the rule whose reply
/// counter lets it back in, or `None` when the reply is blocked.
type Expectation = fn(Probe) -> Option<&'static str>;

/// Stateful only: the allowed probes left flows (listed by `gotofw flows` under their rule), and
/// unsolicited packets from a server's port reach nothing.
fn assert_stateful_extras(lab: &Lab, expect: Expectation) {
    let out = lab.gotofw(&["flows", lab.wan(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let flows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = flows["interfaces"][0]["flows"].as_array().unwrap().clone();
    for probe in PROBES.iter().filter(|&&p| expect(p).is_some()) {
        let proto = match probe.proto {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        };
        let remote = probe.dst.to_string();
        let flow = list
            .iter()
            .find(|f| f["remote"] == remote.as_str() && f["protocol"] == proto)
            .unwrap_or_else(|| panic!("no flow for {probe} in {flows}"));
        assert_eq!(flow["rule"], expect(*probe).unwrap(), "{flow}");
        assert!(flow["packets_in"].as_u64().unwrap() >= 1, "{flow}");
        assert_eq!(
            flow["local"].as_str().unwrap().split(':').next(),
            Some("203.0.113.2")
        );
    }
    assert_eq!(
        unsolicited_datagrams_received(lab),
        0,
        "unsolicited datagrams got through"
    );
}

/// Sends three datagrams from port 3478 of a TURN network, and three from UDP port 443, to the
/// gateway, none of them a reply; returns how many a listener on the gateway received.
fn unsolicited_datagrams_received(lab: &Lab) -> usize {
    let port = 41_000;
    let listener = udp_echo_server(lab.gw(), SocketAddr::from((GW_ADDR, port))).unwrap();
    // Another TURN address: the echo servers hold theirs.
    let turn = Ipv4Addr::new(68, 64, 0, 11);
    let _ = gotofw_tests::addr_add(lab.net.inet(), lab.net.isp(), &format!("{turn}/32"));
    for src in [
        SocketAddr::from((turn, 3478)),
        SocketAddr::from((OUTSIDE, 443)),
    ] {
        udp_send_from(lab.net.inet(), src, SocketAddr::from((GW_ADDR, port)), 3).unwrap();
    }
    thread::sleep(Duration::from_millis(200));
    listener.served()
}

/// The whole life of one scenario on a fresh lab: probes without a filter,
/// attach, probes and counters with it (ARP through the filter included),
/// detach, and probes again on a clean interface.
fn scenario_round_trip(scenario: &str, mode: Mode, expect: Expectation) {
    let lab = Lab::new();
    lab.assert_probes(&PROBES, |_| true, "without a filter");

    let attached = lab.attach_in(scenario, mode);
    assert!(
        attached.is_attached(),
        "{} missing",
        attached.pin_dir().display()
    );
    let prog = xdp_prog_id(lab.gw(), lab.wan());
    assert!(
        prog.is_some(),
        "no XDP program on {} after attach",
        lab.wan()
    );
    // From now on ARP must cross the filter (non-ip allowance).
    lab.net.flush_neighbours().unwrap();

    let served_before: Vec<usize> = PROBES.iter().map(|&p| lab.served(p)).collect();
    lab.assert_probes(
        &PROBES,
        |probe| expect(probe).is_some(),
        &format!("with gotofw {scenario} ({})", mode.name()),
    );
    // Ingress-only mode filters only the WAN ingress: every UDP request reached
    // its server, so a blocked UDP probe is a dropped reply. Stateful and
    // stateless mode enforce the rules at the egress: a blocked request never
    // leaves.
    for (probe, before) in PROBES.iter().zip(served_before) {
        if probe.proto == Proto::Udp {
            let sent = !mode.filters_egress() || expect(*probe).is_some();
            assert_eq!(
                lab.served(*probe),
                before + usize::from(sent),
                "{probe}: request served {} times",
                lab.served(*probe) - before
            );
        }
    }

    let status = attached.status_json();
    let iface = &status["interfaces"][0];
    assert_eq!(status["interfaces"].as_array().map(Vec::len), Some(1));
    assert_eq!(iface["interface"], lab.wan());
    assert_eq!(iface["scenario"], scenario);
    assert_eq!(iface["mode"], mode.name());
    assert_eq!(iface["present"], true);
    assert_eq!(iface["log_rate"], 10, "attach's default drop-log rate");
    // Each answered UDP probe is one echo through its rule; each TCP one is at
    // least a SYN-ACK and the echoed data.
    let mut rules: Vec<&str> = PROBES.iter().filter_map(|&p| expect(p)).collect();
    rules.dedup();
    for rule in rules {
        let least: u64 = PROBES
            .iter()
            .filter(|&&p| expect(p) == Some(rule))
            .map(|p| match p.proto {
                Proto::Udp => 1,
                Proto::Tcp => 2,
            })
            .sum();
        let (packets, bytes) = counter_in(&status, rule, "ingress");
        assert!(
            packets >= least && bytes > 0,
            "{rule}: {packets} packets, {bytes} bytes; expected at least {least} packets"
        );
        if mode.filters_egress() {
            // The requests went out under the same rule.
            let (out, _) = counter_in(&status, rule, "egress");
            assert!(out >= least / 2, "{rule}: {out} packets out: {status}");
        }
    }
    // Blocked probes: their replies (ingress-only) or their requests.
    let blocked = PROBES.iter().filter(|&&p| expect(p).is_none()).count() as u64;
    let direction = if mode.filters_egress() {
        "egress"
    } else {
        "ingress"
    };
    let egress_rows = iface["counters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["direction"] == "egress")
        .count();
    assert_eq!(
        egress_rows > 0,
        mode.filters_egress(),
        "egress rows in status ({egress_rows}): {status}"
    );
    let (packets, bytes) = counter_in(&status, "default-block", direction);
    assert!(
        packets >= blocked && bytes > 0,
        "{direction} default-block: {packets} packets, {bytes} bytes; expected at least {blocked}"
    );
    if mode == Mode::Stateful {
        assert_stateful_extras(&lab, expect);
    } else {
        // The difference stateful mode makes: stateless admits anything from an allowed port.
        let expected = if expect(UDP_TURN_A).is_some() { 3 } else { 0 };
        assert_eq!(
            unsolicited_datagrams_received(&lab),
            expected,
            "stateless, unsolicited"
        );
    }
    let (arp, _) = counter(&status, "non-ip");
    assert!(arp > 0, "non-ip (ARP) did not move: {status}");
    for fixed in ["malformed", "fragment-unknown"] {
        assert_eq!(counter(&status, fixed).0, 0, "{fixed}: {status}");
    }

    let output = attached.detach();
    assert!(
        output.status.success(),
        "detach: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        xdp_prog_id(lab.gw(), lab.wan()),
        None,
        "XDP left on {}",
        lab.wan()
    );
    assert!(!pin_dir(lab.wan()).exists(), "pins left after detach");
    assert_eq!(
        staging_leftovers(lab.wan()),
        Vec::<std::path::PathBuf>::new()
    );
    lab.assert_probes(&PROBES, |_| true, "after detach");
    assert_usage_error(
        &lab.gotofw(&["status", lab.wan(), "--json"]),
        "status after detach",
    );
}

fn expect_no_restrictions(probe: Probe) -> Option<&'static str> {
    match probe {
        MEDIA_LOW => Some("media-udp"),
        HTTPS => Some("https"),
        _ => None,
    }
}

fn expect_udp_turn(probe: Probe) -> Option<&'static str> {
    match probe {
        UDP_TURN_A | UDP_TURN_B => Some("turn-udp"),
        HTTPS => Some("https"),
        _ => None,
    }
}

fn expect_tcp_turn(probe: Probe) -> Option<&'static str> {
    match probe {
        TCP_TURN_A => Some("turn-tcp"),
        HTTPS => Some("https"),
        _ => None,
    }
}

fn expect_tcp_443(probe: Probe) -> Option<&'static str> {
    (probe == HTTPS).then_some("https")
}

macro_rules! round_trips {
    ($($name:ident: $scenario:literal, $mode:expr, $expect:expr;)*) => {$(
        #[test]
        fn $name() {
            if !require_root_or_skip(stringify!($name)) {
                return;
            }
            scenario_round_trip($scenario, $mode, $expect);
        }
    )*};
}

round_trips! {
    scenario_no_restrictions_round_trip: "no-restrictions", Mode::Stateless, expect_no_restrictions;
    scenario_udp_turn_round_trip: "udp-turn", Mode::Stateless, expect_udp_turn;
    scenario_tcp_turn_round_trip: "tcp-turn", Mode::Stateless, expect_tcp_turn;
    scenario_tcp_443_round_trip: "tcp-443", Mode::Stateless, expect_tcp_443;
    stateful_no_restrictions_round_trip: "no-restrictions", Mode::Stateful, expect_no_restrictions;
    stateful_udp_turn_round_trip: "udp-turn", Mode::Stateful, expect_udp_turn;
    stateful_tcp_turn_round_trip: "tcp-turn", Mode::Stateful, expect_tcp_turn;
    stateful_tcp_443_round_trip: "tcp-443", Mode::Stateful, expect_tcp_443;
    ingress_only_udp_turn_round_trip: "udp-turn", Mode::IngressOnly, expect_udp_turn;
    ingress_only_tcp_443_round_trip: "tcp-443", Mode::IngressOnly, expect_tcp_443;
}

#[test]
fn second_attach_without_replace_is_refused_and_the_first_filter_stays() {
    if !require_root_or_skip("second_attach_without_replace_is_refused_and_the_first_filter_stays")
    {
        return;
    }
    let lab = Lab::new();
    let _attached = lab.attach("udp-turn");
    let prog = xdp_prog_id(lab.gw(), lab.wan());

    let again = lab.gotofw(&["attach", lab.wan(), "--scenario", "tcp-443", "--stateless"]);
    assert_usage_error(&again, "second attach");

    assert_eq!(xdp_prog_id(lab.gw(), lab.wan()), prog, "program changed");
    let status = lab.gotofw.status_json(lab.gw(), lab.wan());
    assert_eq!(status["interfaces"][0]["scenario"], "udp-turn");
    let probes = [UDP_TURN_A, UDP_OUTSIDE, HTTPS];
    lab.assert_probes(
        &probes,
        |probe| probe != UDP_OUTSIDE,
        "after a refused second attach",
    );
}

#[test]
fn replace_swaps_the_rule_set() {
    if !require_root_or_skip("replace_swaps_the_rule_set") {
        return;
    }
    let lab = Lab::new();
    let attached = lab.attach("udp-turn");
    let probes = [UDP_TURN_A, HTTPS, TCP_TURN_A];
    lab.assert_probes(&probes, |probe| probe != TCP_TURN_A, "udp-turn");

    let output = lab.gotofw(&[
        "attach",
        lab.wan(),
        "--scenario",
        "tcp-turn",
        "--stateless",
        "--replace",
    ]);
    assert!(
        output.status.success(),
        "attach --replace: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(xdp_prog_id(lab.gw(), lab.wan()).is_some());
    let status = attached.status_json();
    assert_eq!(status["interfaces"][0]["scenario"], "tcp-turn");
    // The old scenario's rules are gone, the new one's in place.
    lab.assert_probes(
        &probes,
        |probe| probe != UDP_TURN_A,
        "after --replace tcp-turn",
    );
    let status = attached.status_json();
    assert!(counter(&status, "turn-tcp").0 >= 2, "{status}");

    // --replace on an interface without a filter is refused.
    drop(attached);
    assert_usage_error(
        &lab.gotofw(&[
            "attach",
            lab.wan(),
            "--scenario",
            "tcp-443",
            "--stateless",
            "--replace",
        ]),
        "--replace without a filter",
    );
    assert!(!pin_dir(lab.wan()).exists());
    assert_eq!(xdp_prog_id(lab.gw(), lab.wan()), None);
}

#[test]
fn detach_and_status_without_a_filter_are_usage_errors() {
    if !require_root_or_skip("detach_and_status_without_a_filter_are_usage_errors") {
        return;
    }
    let lab = WanLab::new().unwrap();
    let gotofw = Gotofw::default();
    assert_usage_error(
        &gotofw.run(lab.gw(), &["detach", lab.wan()]),
        "detach without a filter",
    );
    assert_usage_error(
        &gotofw.run(lab.gw(), &["status", lab.wan()]),
        "status without a filter",
    );
    assert!(!pin_dir(lab.wan()).exists());
    assert_eq!(xdp_prog_id(lab.gw(), lab.wan()), None);
}

#[test]
fn attach_to_a_missing_interface_is_a_usage_error_and_pins_nothing() {
    if !require_root_or_skip("attach_to_a_missing_interface_is_a_usage_error_and_pins_nothing") {
        return;
    }
    let ns = Netns::new("gw-none").unwrap();
    let gotofw = Gotofw::default();
    let missing = unique_name("nosuch");
    let _guard = Attached::new(gotofw.clone(), &ns, &missing);
    let output = gotofw.run(
        &ns,
        &["attach", &missing, "--scenario", "udp-turn", "--stateless"],
    );
    assert_usage_error(&output, "attach to a missing interface");
    assert!(
        !pin_dir(&missing).exists(),
        "pinned for a missing interface"
    );
    assert!(staging_leftovers(&missing).is_empty());
}

/// Pins live in the host's bpffs: deleting the namespace (and with it the
/// interface) leaves them, `status` says the interface is gone, and `detach`
/// from any namespace removes them.
#[test]
fn detach_cleans_up_after_the_interface_is_gone() {
    if !require_root_or_skip("detach_cleans_up_after_the_interface_is_gone") {
        return;
    }
    let elsewhere = Netns::new("gw-ctl").unwrap();
    let gotofw = Gotofw::default();
    let lab = WanLab::new().unwrap();
    let wan = lab.wan().to_owned();
    let output = gotofw.run(
        lab.gw(),
        &["attach", &wan, "--scenario", "tcp-443", "--stateless"],
    );
    assert!(output.status.success());
    // Outside the namespace of PID 1 the pins are keyed NAME:NETNS; another namespace names the
    // filter by that key. The guard outlives the lab.
    let key = pin_dir(&wan)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(key.starts_with(&format!("{wan}:")), "{key}");
    let guard = Attached::new(gotofw.clone(), &elsewhere, &key);
    drop(lab);

    assert!(guard.is_attached(), "the pins went with the namespace");
    let listing = gotofw.run(&elsewhere, &["status", "--json"]);
    let listing: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap();
    assert!(
        listing["other_namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == key.as_str()),
        "{listing}"
    );
    // Not filtering any more: exit code 3, and its links (checked from here) are severed.
    let out = gotofw.run(&elsewhere, &["status", &key, "--json"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["interfaces"][0]["present"], false, "{status}");
    assert_eq!(status["interfaces"][0]["state"], "severed", "{status}");
    assert_eq!(
        status["interfaces"][0]["interface"],
        wan.as_str(),
        "{status}"
    );
    let output = guard.detach();
    assert!(
        output.status.success(),
        "detach of a vanished interface: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!guard.is_attached());
    assert!(staging_leftovers(&wan).is_empty());
}

#[test]
fn issue2_same_interface_name_in_two_namespaces_are_two_filters() {
    if !require_root_or_skip("issue2_same_interface_name_in_two_namespaces_are_two_filters") {
        return;
    }
    // Containers all have an eth0 with the same index; each namespace's filter is its own.
    let gotofw = Gotofw::default();
    let (a, b) = (Netns::new("nsa").unwrap(), Netns::new("nsb").unwrap());
    let (a_peer, b_peer) = (Netns::new("pa").unwrap(), Netns::new("pb").unwrap());
    let _la = gotofw_tests::veth_pair(&a, "eth9", &a_peer, "eth0").unwrap();
    let _lb = gotofw_tests::veth_pair(&b, "eth9", &b_peer, "eth0").unwrap();
    let attach = |ns: &Netns, scenario: &str| {
        gotofw.run(
            ns,
            &["attach", "eth9", "--scenario", scenario, "--stateless"],
        )
    };
    assert!(attach(&a, "udp-turn").status.success());
    let guard_a = Attached::new(gotofw.clone(), &a, "eth9");
    let out = attach(&b, "tcp-443");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let guard_b = Attached::new(gotofw.clone(), &b, "eth9");
    let scenario = |ns: &Netns| {
        let out = gotofw.run(ns, &["status", "eth9", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            v["interfaces"][0]["scenario"].as_str().unwrap().to_owned(),
            v["interfaces"][0]["present"].as_bool().unwrap(),
        )
    };
    assert_eq!(scenario(&a), ("udp-turn".to_owned(), true));
    assert_eq!(scenario(&b), ("tcp-443".to_owned(), true));
    assert!(gotofw.run(&b, &["detach", "eth9"]).status.success());
    assert_eq!(
        scenario(&a),
        ("udp-turn".to_owned(), true),
        "detach in b touched a"
    );
    assert!(xdp_prog_id(&a, "eth9").is_some());
    assert!(xdp_prog_id(&b, "eth9").is_none());
    drop(guard_b);
    drop(guard_a);
}

/// A round trip on an open TCP connection: true when the echo came back.
fn tcp_round_trip(stream: &mut std::net::TcpStream) -> bool {
    use std::io::{Read as _, Write as _};
    let mut buf = [0u8; 4];
    stream.write_all(b"ping").is_ok() && stream.read_exact(&mut buf).is_ok() && &buf == b"ping"
}

/// Whether `socket` receives a datagram within the probe timeout.
fn udp_receives(socket: &std::net::UdpSocket) -> bool {
    let mut buf = [0u8; 64];
    socket.recv_from(&mut buf).is_ok()
}

#[test]
fn issue6_set_scenario_keeps_allowed_flows_while_traffic_runs() {
    if !require_root_or_skip("issue6_set_scenario_keeps_allowed_flows_while_traffic_runs") {
        return;
    }
    let lab = Lab::new();
    let attached = lab.attach_in("udp-turn", Mode::Stateful);
    // An HTTPS connection and a TURN "call" that stay open across the switch. The call's server
    // side is played by datagrams sent from 68.64.0.11:3478 in the internet namespace.
    let mut web = lab
        .gw()
        .run(|| std::net::TcpStream::connect_timeout(&HTTPS.dst, PROBE_TIMEOUT))
        .expect("HTTPS connects under udp-turn");
    web.set_read_timeout(Some(PROBE_TIMEOUT)).unwrap();
    let turn = Ipv4Addr::new(68, 64, 0, 11);
    gotofw_tests::addr_add(lab.net.inet(), lab.net.isp(), &format!("{turn}/32")).unwrap();
    let call = lab
        .gw()
        .run(|| std::net::UdpSocket::bind(SocketAddr::from((GW_ADDR, 0))))
        .unwrap();
    call.set_read_timeout(Some(PROBE_TIMEOUT)).unwrap();
    let call_addr = call.local_addr().unwrap();
    let turn_server = SocketAddr::from((turn, 3478));
    let media_in = || udp_send_from(lab.net.inet(), turn_server, call_addr, 1).unwrap();

    call.send_to(b"media", turn_server).unwrap();
    media_in();
    assert!(
        udp_receives(&call),
        "TURN media does not flow under udp-turn"
    );
    assert!(
        tcp_round_trip(&mut web),
        "HTTPS does not flow under udp-turn"
    );

    let out = lab.gotofw(&["set-scenario", lab.wan(), "tcp-443"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = attached.status_json();
    assert_eq!(status["interfaces"][0]["scenario"], "tcp-443");

    // The HTTPS connection carries on, on the same socket, now under tcp-443's https rule.
    assert!(
        tcp_round_trip(&mut web),
        "the HTTPS connection died in the switch"
    );
    assert!(
        tcp_round_trip(&mut web),
        "the HTTPS connection died after the switch"
    );
    let status = attached.status_json();
    assert!(counter_in(&status, "https", "ingress").0 >= 2, "{status}");
    // The TURN call stops at its first packet: inbound and outbound.
    media_in();
    assert!(!udp_receives(&call), "TURN media still flows under tcp-443");
    call.send_to(b"media", turn_server).unwrap();
    thread::sleep(Duration::from_millis(100));
    let status = attached.status_json();
    assert!(
        counter_in(&status, "default-block", "ingress").0 >= 1,
        "{status}"
    );
    assert!(
        counter_in(&status, "default-block", "egress").0 >= 1,
        "{status}"
    );
    // The flow stays in the table until it idles out: switching back within its timeout lets
    // the call resume (the rules allow it again); the HTTPS connection carries on throughout.
    let out = lab.gotofw(&["set-scenario", lab.wan(), "udp-turn"]);
    assert!(out.status.success());
    media_in();
    assert!(
        udp_receives(&call),
        "the call did not resume under udp-turn"
    );
    assert!(tcp_round_trip(&mut web), "HTTPS after switching back");
}

#[test]
fn issue3_stateful_egress_passes_large_paged_packets() {
    use std::io::{Read as _, Write as _};
    if !require_root_or_skip("issue3_stateful_egress_passes_large_paged_packets") {
        return;
    }
    // Large writes leave as GSO packets whose payload is paged, not in the linear part the TC
    // program reads: the IP length must be checked against the whole packet.
    let lab = Lab::new();
    let attached = lab.attach_in("tcp-443", Mode::Stateful);
    let mut web = lab
        .gw()
        .run(|| std::net::TcpStream::connect_timeout(&HTTPS.dst, PROBE_TIMEOUT))
        .expect("HTTPS connects");
    web.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    web.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    let sent: Vec<u8> = (0..256 * 1024_u32)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    let mut reader = web.try_clone().unwrap();
    let echo = thread::spawn(move || {
        let mut got = vec![0u8; 256 * 1024];
        reader.read_exact(&mut got).map(|()| got)
    });
    web.write_all(&sent)
        .expect("256 KiB written through the filter");
    let got = echo
        .join()
        .unwrap()
        .expect("256 KiB echoed through the filter");
    assert!(got == sent, "the echo differs");
    let status = attached.status_json();
    assert_eq!(counter_in(&status, "malformed", "egress").0, 0, "{status}");
    assert!(
        counter_in(&status, "https", "egress").1 >= 256 * 1024,
        "{status}"
    );
}

#[test]
fn issue6_reload_applies_the_file_atomically() {
    if !require_root_or_skip("issue6_reload_applies_the_file_atomically") {
        return;
    }
    let lab = Lab::new();
    let dir = std::env::temp_dir().join(unique_name("gfwcfg"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gotofw.toml");
    let write = |scenario: &str| {
        std::fs::write(
            &file,
            format!(
                "interfaces = [\"{}\"]\nscenario = \"{scenario}\"\n",
                lab.wan()
            ),
        )
        .unwrap();
    };
    let reload = || {
        let out = lab.gotofw(&["reload", "--config", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // The first reload attaches (nothing was there); the guard detaches whatever is left.
    write("udp-turn");
    let attached = Attached::new(lab.gotofw.clone(), lab.gw(), lab.wan());
    reload();
    assert_eq!(
        attached.status_json()["interfaces"][0]["scenario"],
        "udp-turn"
    );
    let mut web = lab
        .gw()
        .run(|| std::net::TcpStream::connect_timeout(&HTTPS.dst, PROBE_TIMEOUT))
        .expect("HTTPS connects");
    web.set_read_timeout(Some(PROBE_TIMEOUT)).unwrap();
    assert!(tcp_round_trip(&mut web));
    assert!(lab.probe(UDP_TURN_A), "TURN under udp-turn");
    // The file changes; a reload swaps the rule set and keeps the HTTPS connection.
    write("tcp-443");
    reload();
    let status = attached.status_json();
    assert_eq!(status["interfaces"][0]["scenario"], "tcp-443", "{status}");
    assert_eq!(status["interfaces"][0]["mode"], "stateful", "{status}");
    assert!(
        tcp_round_trip(&mut web),
        "the HTTPS connection died in the reload"
    );
    assert!(!lab.probe(UDP_TURN_A), "TURN still allowed under tcp-443");
    // A reload of an unchanged file changes nothing.
    reload();
    assert_eq!(
        attached.status_json()["interfaces"][0]["attached_at"],
        status["interfaces"][0]["attached_at"]
    );
    // A broken file is refused and changes nothing.
    std::fs::write(&file, "scenario = \"udp_turn\"\n").unwrap();
    let out = lab.gotofw(&["reload", "--config", file.to_str().unwrap()]);
    assert_eq!(
        exit_code(&out),
        Some(EXIT_USAGE),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        attached.status_json()["interfaces"][0]["scenario"],
        "tcp-443"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn issue6_drop_log_samples_drops_within_its_rate() {
    if !require_root_or_skip("issue6_drop_log_samples_drops_within_its_rate") {
        return;
    }
    let lab = Lab::new();
    let attached = lab.gotofw.attach(
        lab.gw(),
        lab.wan(),
        &["--scenario", "udp-turn", "--log-rate", "1000"],
    );
    // The reader runs while blocked traffic is sent: an outbound probe outside the TURN
    // networks (dropped at egress) and an inbound datagram no flow expects (dropped at ingress).
    let reader = {
        let bin = lab.gotofw.bin().to_string_lossy().into_owned();
        let ns = lab.gw().path().display().to_string();
        let wan = lab.wan().to_owned();
        thread::spawn(move || {
            std::process::Command::new("nsenter")
                .arg(format!("--net={ns}"))
                .args([&bin, "log", &wan, "--json", "--timeout", "2"])
                .output()
                .unwrap()
        })
    };
    thread::sleep(Duration::from_millis(300));
    assert!(!lab.probe(UDP_OUTSIDE));
    udp_send_from(
        lab.net.inet(),
        SocketAddr::from((OUTSIDE, 443)),
        SocketAddr::from((GW_ADDR, 41_000)),
        3,
    )
    .unwrap();
    let out = reader.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // (Other drops show up too, e.g. the namespace's own IPv6 multicast listener reports.)
    let out_drop = lines
        .iter()
        .find(|l| l["direction"] == "egress" && l["dst"] == "198.51.100.10:3478")
        .unwrap_or_else(|| panic!("no egress sample of the probe in {lines:?}"));
    assert_eq!(out_drop["protocol"], "udp");
    assert_eq!(out_drop["rule"], "default-block");
    let in_drop = lines
        .iter()
        .find(|l| l["direction"] == "ingress" && l["src"] == "198.51.100.10:443")
        .unwrap_or_else(|| panic!("no ingress sample of the datagram in {lines:?}"));
    assert_eq!(in_drop["dst"], "203.0.113.2:41000");
    assert_eq!(in_drop["protocol"], "udp");
    assert_eq!(in_drop["rule"], "default-block");

    // The rate limit: 2 per second and CPU, 300 drops in a burst. A CPU's bucket holds at most
    // 2 samples and earns 2 a second, so over T seconds at most 2 * CPUs * (T + 1) samples
    // reach the log (whatever else is dropped meanwhile included), while every drop is counted.
    let started = std::time::Instant::now();
    let out = lab.gotofw(&[
        "attach",
        lab.wan(),
        "--scenario",
        "udp-turn",
        "--replace",
        "--log-rate",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        attached.status_json()["interfaces"][0]["log_rate"],
        2,
        "--log-rate 2 is the rate in force"
    );
    let drain = lab.gotofw(&["log", lab.wan(), "--json", "--timeout", "0.2"]);
    assert!(drain.status.success());
    udp_send_from(
        lab.net.inet(),
        SocketAddr::from((OUTSIDE, 443)),
        SocketAddr::from((GW_ADDR, 41_000)),
        300,
    )
    .unwrap();
    let out = lab.gotofw(&["log", lab.wan(), "--json", "--timeout", "0.5"]);
    let sampled = String::from_utf8_lossy(&out.stdout).lines().count();
    let cpus = thread::available_parallelism().map_or(1, usize::from);
    let bound = 2 * cpus * (usize::try_from(started.elapsed().as_secs()).unwrap() + 2);
    assert!(
        (1..=bound).contains(&sampled) && sampled < 30,
        "{sampled} samples of 300 drops (bound {bound})"
    );
    let status = attached.status_json();
    assert!(
        counter_in(&status, "default-block", "ingress").0 >= 300,
        "{status}"
    );
}

#[test]
fn issue6_set_scenario_does_not_lose_a_concurrent_change() {
    if !require_root_or_skip("issue6_set_scenario_does_not_lose_a_concurrent_change") {
        return;
    }
    // A replace that adds a network holds the interface lock (paused by the testing hook) while
    // set-scenario starts: set-scenario must read the filter after the replace, not before.
    let lab = Lab::new();
    let attached = lab.attach_in("udp-turn", Mode::Stateful);
    let replace = {
        let bin = lab.gotofw.bin().to_string_lossy().into_owned();
        let ns = lab.gw().path().display().to_string();
        let wan = lab.wan().to_owned();
        thread::spawn(move || {
            std::process::Command::new("nsenter")
                .arg(format!("--net={ns}"))
                .args([&bin, "attach", &wan, "--scenario", "tcp-turn", "--replace"])
                .args(["--network", "2001:db8:77::/48"])
                .env("GOTOFW_PAUSE_STAGE", "locked")
                .env("GOTOFW_PAUSE_SECS", "1")
                .output()
                .unwrap()
        })
    };
    thread::sleep(Duration::from_millis(300));
    let out = lab.gotofw(&["set-scenario", lab.wan(), "udp-turn"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replaced = replace.join().unwrap();
    assert!(
        replaced.status.success(),
        "{}",
        String::from_utf8_lossy(&replaced.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("from tcp-turn to udp-turn"),
        "set-scenario did not see the replace: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let status = attached.status_json();
    assert_eq!(status["interfaces"][0]["scenario"], "udp-turn");
    let turn = &status["interfaces"][0]["counters"][0];
    assert_eq!(turn["name"], "turn-udp");
    assert!(
        turn["networks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "2001:db8:77::/48"),
        "the replace's network was lost: {turn}"
    );
}

/// Copies of the TCP or UDP packets a namespace receives for its own addresses (a raw IPv4
/// socket, as a capture on the internet side would see them); closed on drop.
struct Capture {
    fd: std::os::fd::OwnedFd,
}

impl Capture {
    fn new(ns: &Netns, proto: i32) -> Self {
        use std::os::fd::FromRawFd as _;
        let fd = ns.run(|| {
            // SAFETY: plain socket(2) call.
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, proto) }
        });
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        // SAFETY: a descriptor just created, owned by nobody else.
        Self {
            fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
        }
    }

    /// Packets received so far to destination port `port`; TCP: SYNs without ACK only.
    fn count(&self, port: u16) -> usize {
        use std::os::fd::AsRawFd as _;
        let mut n = 0;
        let mut buf = [0u8; 2048];
        // Bounded: the socket buffer holds far fewer packets than this.
        for _ in 0..100_000 {
            // SAFETY: receives into `buf`, at most its length.
            let got =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            let Ok(got) = usize::try_from(got) else { break };
            let ihl = usize::from(buf[0] & 0x0f) * 4;
            if got < ihl + 14 {
                continue;
            }
            let l4 = &buf[ihl..got];
            let syn_only = buf[9] != 6 || l4[13] & 0x12 == 0x02;
            if u16::from_be_bytes([l4[2], l4[3]]) == port && syn_only {
                n += 1;
            }
        }
        n
    }
}

/// What leaves the gateway for UDP port 5000 and TCP port 80 (both blocked by every scenario
/// but no-restrictions' media range): datagrams and SYNs a capture on the internet side sees.
fn blocked_requests_seen(lab: &Lab) -> (usize, usize) {
    let udp_cap = Capture::new(lab.net.inet(), libc::IPPROTO_UDP);
    let tcp_cap = Capture::new(lab.net.inet(), libc::IPPROTO_TCP);
    let udp_5000 = SocketAddr::from((OUTSIDE, 5000));
    udp_send_from(lab.gw(), SocketAddr::from((GW_ADDR, 41_500)), udp_5000, 3).unwrap();
    // A connection attempt: its SYN (and any retransmission) towards a real listener.
    let _ = lab.probe(HTTP_TURN_A);
    thread::sleep(Duration::from_millis(100));
    (udp_cap.count(5000), tcp_cap.count(80))
}

/// Item 6 of issue 10: with `--stateless`, UDP to port 5000 and a TCP SYN to port 80 no longer
/// leave the gateway (the egress enforces the rules as written, without a flow table); with
/// `--ingress-only` they do, as its name says; allowed traffic works in both, and the egress
/// counters tell which rule decided.
#[test]
fn issue10_stateless_keeps_blocked_requests_in() {
    if !require_root_or_skip("issue10_stateless_keeps_blocked_requests_in") {
        return;
    }
    let lab = Lab::new();
    let allowed = [UDP_TURN_A, HTTPS];
    let (udp, syn) = blocked_requests_seen(&lab);
    assert!(
        udp >= 3 && syn >= 1,
        "without a filter: {udp} datagrams, {syn} SYNs arrived"
    );

    let attached = lab.attach_in("udp-turn", Mode::Stateless);
    lab.assert_probes(&allowed, |_| true, "stateless, allowed");
    let (udp, syn) = blocked_requests_seen(&lab);
    assert_eq!(
        (udp, syn),
        (0, 0),
        "--stateless let blocked requests leave (datagrams to 5000, SYNs to 80)"
    );
    let status = attached.status_json();
    assert_eq!(status["interfaces"][0]["mode"], "stateless");
    let (blocked, _) = counter_in(&status, "default-block", "egress");
    assert!(blocked >= 4, "egress default-block: {blocked}: {status}");
    let (https, _) = counter_in(&status, "https", "egress");
    assert!(https >= 1, "egress https: {https}: {status}");
    assert!(status["interfaces"][0]["flows"].is_null(), "{status}");
    expect_success(&attached.detach(), "detach");

    let attached = lab.attach_in("udp-turn", Mode::IngressOnly);
    lab.assert_probes(&allowed, |_| true, "ingress-only, allowed");
    let (udp, syn) = blocked_requests_seen(&lab);
    assert!(
        udp >= 3 && syn >= 1,
        "--ingress-only: {udp} datagrams, {syn} SYNs arrived (they are not filtered)"
    );
    let status = attached.status_json();
    assert_eq!(status["interfaces"][0]["mode"], "ingress-only");
    assert!(status["interfaces"][0]["egress_hook"].is_null(), "{status}");
    assert!(
        gotofw_tests::tcx_egress_prog_ids(lab.gw(), lab.wan()).is_empty(),
        "ingress-only mode left an egress program"
    );
}

/// Whether `iface` in `ns` has a clsact qdisc (`tc qdisc show dev IFACE`).
fn has_clsact(ns: &Netns, iface: &str) -> bool {
    let out = ns.exec("tc", ["qdisc", "show", "dev", iface]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).contains("clsact")
}

/// Runs `tc args` in `ns`; it must succeed.
fn tc(ns: &Netns, args: &[&str]) -> String {
    let out = ns.exec("tc", args).unwrap();
    assert!(
        out.status.success(),
        "tc {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Item 9 of issue 10: `detach` of a clsact filter removes the clsact qdisc gotofw added for it
/// (and so does a `--replace` to ingress-only mode, which drops the egress filter), but not a
/// qdisc the operator had, nor one that holds an operator's filter by then.
#[test]
fn issue10_detach_removes_the_clsact_qdisc_it_added() {
    if !require_root_or_skip("issue10_detach_removes_the_clsact_qdisc_it_added") {
        return;
    }
    let net = WanLab::new().unwrap();
    let g = Gotofw::default();
    let (gw, wan) = (net.gw(), net.wan());
    let clsact = ["--egress-hook", "clsact"];
    assert!(!has_clsact(gw, wan), "a fresh veth has a clsact qdisc");

    // gotofw adds it; detach removes it.
    for mode in [&["--stateless"][..], &[]] {
        let mut args = vec!["--scenario", "tcp-443"];
        args.extend(mode);
        args.extend(clsact);
        let attached = g.attach(gw, wan, &args);
        assert!(has_clsact(gw, wan), "{args:?}: no clsact qdisc");
        assert_eq!(
            attached.status_json()["interfaces"][0]["egress_hook"],
            "clsact"
        );
        expect_success(&attached.detach(), "detach");
        assert!(
            !has_clsact(gw, wan),
            "{args:?}: detach left the clsact qdisc"
        );
    }

    // A --replace to ingress-only drops the egress filter, and the qdisc with it.
    let attached = g.attach(
        gw,
        wan,
        &["--scenario", "udp-turn", "--egress-hook", "clsact"],
    );
    assert!(has_clsact(gw, wan));
    expect_success(
        &g.run(
            gw,
            &[
                "attach",
                wan,
                "--scenario",
                "udp-turn",
                "--ingress-only",
                "--replace",
            ],
        ),
        "replace to ingress-only",
    );
    assert!(
        !has_clsact(gw, wan),
        "--replace --ingress-only left the clsact qdisc"
    );
    expect_success(&attached.detach(), "detach");

    // The operator's own qdisc stays.
    tc(gw, &["qdisc", "add", "dev", wan, "clsact"]);
    let attached = g.attach(
        gw,
        wan,
        &["--scenario", "tcp-443", "--egress-hook", "clsact"],
    );
    expect_success(&attached.detach(), "detach");
    assert!(
        has_clsact(gw, wan),
        "detach removed the operator's clsact qdisc"
    );
    tc(gw, &["qdisc", "del", "dev", wan, "clsact"]);

    // gotofw's qdisc that holds an operator's filter by now stays too, with a note.
    let attached = g.attach(
        gw,
        wan,
        &["--scenario", "tcp-443", "--egress-hook", "clsact"],
    );
    tc(
        gw,
        &[
            "filter",
            "add",
            "dev",
            wan,
            "ingress",
            "prio",
            "7",
            "bpf",
            "bytecode",
            "1,6 0 0 0,",
        ],
    );
    let out = attached.detach();
    expect_success(&out, "detach");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("gotofw: note: ") && stderr.contains("kept the clsact qdisc"),
        "{stderr}"
    );
    assert!(
        has_clsact(gw, wan),
        "detach removed a qdisc holding another filter"
    );
    assert!(
        tc(gw, &["filter", "show", "dev", wan, "ingress"]).contains("bytecode"),
        "the operator's filter is gone"
    );
}

/// The live flows `gotofw flows IFACE --json` lists.
fn flow_count(lab: &Lab) -> usize {
    let out = lab.gotofw(&["flows", lab.wan(), "--json"]);
    let text = expect_success(&out, "flows --json");
    let flows: serde_json::Value = serde_json::from_str(&text).unwrap();
    flows["interfaces"][0]["flows"]
        .as_array()
        .map_or(0, Vec::len)
}

/// Item 9 of issue 10: `attach --replace` with another `--flow-table-size` starts an empty flow
/// table, and now says so on standard error (with the number of flows it drops); with the same
/// size the flows are kept, silently.
#[test]
fn issue10_replace_with_another_flow_table_size_says_the_flows_go() {
    if !require_root_or_skip("issue10_replace_with_another_flow_table_size_says_the_flows_go") {
        return;
    }
    let lab = Lab::new();
    let size = |n: &'static str| ["--scenario", "udp-turn", "--flow-table-size", n];
    let _attached = lab.gotofw.attach(lab.gw(), lab.wan(), &size("1024"));
    lab.assert_probes(&[UDP_TURN_A, HTTPS], |_| true, "stateful udp-turn");
    let before = flow_count(&lab);
    assert!(before >= 2, "{before} flows after two connections");

    let replace = |n: &'static str| {
        let mut args = vec!["attach", lab.wan(), "--replace"];
        args.extend(size(n));
        lab.gotofw(&args)
    };
    let same = replace("1024");
    expect_success(&same, "--replace with the same table size");
    let stderr = String::from_utf8_lossy(&same.stderr);
    assert!(!stderr.contains("flow table"), "{stderr}");
    assert_eq!(
        flow_count(&lab),
        before,
        "the same table size kept the flows"
    );

    let other = replace("2048");
    expect_success(&other, "--replace with another table size");
    let stderr = String::from_utf8_lossy(&other.stderr);
    let wan = lab.wan();
    let note = format!(
        "gotofw: note: {wan}: the flow table changes size (1024 to 2048 entries) and starts empty: {before} flows of the old one are dropped"
    );
    assert!(stderr.contains(&note), "expected {note:?} in: {stderr}");
    assert_eq!(flow_count(&lab), 0, "the new table is not empty");
    assert_eq!(
        lab.gotofw.status_json(lab.gw(), wan)["interfaces"][0]["flows"]["table_size"],
        2048
    );
}

/// Issue 14: the flows are kept across a swap only with the remote summary that stamps them. A
/// filter whose pins have no summary (as one attached by a gotofw from before it) is replaced
/// with a new, empty flow table, and the note says why; the connections then open new flows.
#[test]
fn issue14_a_swap_keeps_the_flows_only_with_their_remote_summary() {
    if !require_root_or_skip("issue14_a_swap_keeps_the_flows_only_with_their_remote_summary") {
        return;
    }
    let lab = Lab::new();
    let args = ["--scenario", "udp-turn", "--flow-table-size", "1024"];
    let attached = lab.gotofw.attach(lab.gw(), lab.wan(), &args);
    lab.assert_probes(&[UDP_TURN_A, HTTPS], |_| true, "stateful udp-turn");
    let before = flow_count(&lab);
    assert!(before >= 2, "{before} flows after two connections");
    let remotes = attached.pin_dir().join(filter_common::names::pin::REMOTES);
    assert!(remotes.exists(), "{} is not pinned", remotes.display());
    std::fs::remove_file(&remotes).unwrap();

    let mut replace = vec!["attach", lab.wan(), "--replace"];
    replace.extend(args);
    let out = lab.gotofw(&replace);
    expect_success(&out, "--replace of a filter without a remote summary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let note = format!(
        "gotofw: note: {}: the filter it replaces has no remote summary (an earlier gotofw attached it), so the flow table starts empty: {before} flows of the old one are dropped",
        lab.wan()
    );
    assert!(stderr.contains(&note), "expected {note:?} in: {stderr}");
    assert_eq!(flow_count(&lab), 0, "the new table is not empty");
    assert!(remotes.exists(), "the new filter pinned no remote summary");
    // New connections open new flows, whose replies pass.
    lab.assert_probes(&[UDP_TURN_A, HTTPS], |_| true, "after the swap");
    assert!(flow_count(&lab) >= 2);
}

/// Rewrites the format version in the record stored with the filter pinned in `dir` (its
/// first field, so in the `META` map's first entry) to `version`, a number of as many digits.
fn rewrite_meta_version(dir: &std::path::Path, version: u32) {
    use aya::maps::{Array, Map, MapData};
    let data = MapData::from_pin(dir.join(filter_common::names::pin::META)).unwrap();
    let mut meta: Array<_, [u8; filter_common::META_CHUNK]> =
        Array::try_from(Map::Array(data)).unwrap();
    let mut first = meta.get(&0, 0).unwrap();
    let (old, new) = (
        format!("{{\"version\":{},", filter_user::loader::META_VERSION),
        format!("{{\"version\":{version},"),
    );
    assert_eq!(old.len(), new.len(), "{new} does not fit in place of {old}");
    assert!(
        first.starts_with(old.as_bytes()),
        "the record does not start with {old}: {}",
        String::from_utf8_lossy(&first)
    );
    first[..new.len()].copy_from_slice(new.as_bytes());
    meta.set(0, first, 0).unwrap();
}

/// A filter whose stored record has a format version this gotofw does not know is refused,
/// never misread: every command that reads it fails (exit 1) in one line naming the version
/// and the fix, and changes nothing; `detach`, the fix it names, still removes the filter.
#[test]
fn a_record_of_an_unknown_format_version_is_refused() {
    if !require_root_or_skip("a_record_of_an_unknown_format_version_is_refused") {
        return;
    }
    let lab = WanLab::with_prefix("ht").unwrap();
    let gotofw = Gotofw::default();
    let attached = gotofw.attach(lab.gw(), lab.wan(), &["--scenario", "udp-turn"]);
    let future = filter_user::loader::META_VERSION + 1;
    rewrite_meta_version(&attached.pin_dir(), future);
    let prog = xdp_prog_id(lab.gw(), lab.wan());
    let wan = lab.wan();
    for args in [
        vec!["status", wan],
        vec!["status", wan, "--json"],
        vec!["status"],
        vec!["flows", wan],
        vec!["set-scenario", wan, "tcp-443"],
        vec!["attach", wan, "--scenario", "tcp-443", "--replace"],
    ] {
        let output = gotofw.run(lab.gw(), &args);
        let what = args.join(" ");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(exit_code(&output), Some(1), "gotofw {what}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "gotofw {what}: {stderr}");
        assert!(
            stderr.starts_with("gotofw: error: ")
                && stderr.contains(&format!("format version {future}"))
                && stderr.contains("run the gotofw that attached the filter, or detach it"),
            "gotofw {what}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "gotofw {what} printed output");
        assert_eq!(xdp_prog_id(lab.gw(), wan), prog, "gotofw {what} changed it");
    }
    expect_success(&attached.detach(), "detach");
    assert!(!attached.is_attached(), "detach left the pins");
    assert_eq!(xdp_prog_id(lab.gw(), wan), None, "detach left the program");
}

/// `detach` removes a clsact filter whose record has an unknown format version too: the
/// interface its netlink filter is on is in the pin key, whatever the record says.
#[test]
fn a_clsact_filter_whose_record_has_an_unknown_format_version_detaches() {
    if !require_root_or_skip("a_clsact_filter_whose_record_has_an_unknown_format_version_detaches")
    {
        return;
    }
    let lab = WanLab::with_prefix("ht").unwrap();
    let gotofw = Gotofw::default();
    let attached = gotofw.attach(
        lab.gw(),
        lab.wan(),
        &["--scenario", "udp-turn", "--egress-hook", "clsact"],
    );
    let before = filter_objects(lab.gw(), lab.wan());
    assert!(
        before.xdp.is_some() && !before.clsact_egress.is_empty(),
        "{before:?}"
    );
    rewrite_meta_version(&attached.pin_dir(), filter_user::loader::META_VERSION + 1);
    expect_success(&attached.detach(), "detach");
    let after = filter_objects(lab.gw(), lab.wan());
    assert!(
        !attached.is_attached() && after.xdp.is_none() && after.clsact_egress.is_empty(),
        "detach left {after:?}"
    );
}
