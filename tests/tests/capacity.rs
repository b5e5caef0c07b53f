//! Capacity as the README states it: 64 rules, and up to `MAX_NETWORKS` (262,144) networks over
//! all rules, the same in `attach`, `check-config`, `reload`, `run`, `set-scenario` and
//! `explain` (root only, but for the pure `explain` case).
//!
//! Each kernel test builds its own two namespaces (prefix `gcp`): a gateway whose WAN interface
//! faces an "internet" namespace that answers, with UDP echo servers, on [`LAST`] (the address
//! of the last network every rule set here names) and [`NEXT`] (an address no rule names). The
//! filter is attached from a configuration file or the command line as an operator would; then
//! `status --json` must show every rule and every network, and the kernel must really match the
//! last network: a probe to [`LAST`] passes and one to [`NEXT`] is dropped (and both pass
//! before the attach, so a broken lab cannot pass for a working filter). One past each limit,
//! every command refuses with exit code 2 and a one-line message naming the limit, changing
//! nothing. Every attach has an [`Attached`] guard, every file is in a [`TempDir`], every wait
//! is bounded.

use std::{
    fmt::Write as _,
    fs,
    net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4},
    process::Output,
    time::{Duration, Instant},
};

use filter_common::{MAX_NETWORKS, MAX_RULES};
use filter_user::{
    cmd::explain::explain,
    compile::{FlowLimits, Mode},
    error::UsageError,
    scenario::{Options, Protocol, Scenario},
};
use gotofw_tests::{
    Attached, EXIT_USAGE, Gotofw, Netns, ServerHandle, TempDir, VethPair, addr_add, counter_in,
    require_root_or_skip, route_add, udp_echo_server, udp_probe, unique_name, veth_pair,
};
use serde_json::Value;

/// The gateway's WAN address and the internet side's.
const GW_ADDR: &str = "203.0.113.2/24";
const INET_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The address of the last network of every rule set here (as `LAST/32`).
const LAST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 77);
/// An address next to it that no rule names.
const NEXT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 78);
/// The port of the operator rules here.
const OP_PORT: u16 = 5000;
/// udp-turn's TURN port.
const TURN_PORT: u16 = 3478;

const PROBE_TIMEOUT: Duration = Duration::from_millis(400);
/// Longest any one gotofw command may take (an attach of 262,144 networks takes a few seconds).
const COMMAND_DEADLINE: Duration = Duration::from_mins(2);

/// The two namespaces, their link and the echo servers. Fields drop in order: servers, link,
/// namespaces.
struct Lab {
    _servers: Vec<ServerHandle>,
    veth: VethPair,
    gw: Netns,
    _inet: Netns,
    gotofw: Gotofw,
    dir: TempDir,
}

impl Lab {
    fn new() -> Self {
        let gw = Netns::new("gcpgw").unwrap();
        let inet = Netns::new("gcpin").unwrap();
        let (wan, isp) = (unique_name("gcpw"), unique_name("gcpi"));
        let veth = veth_pair(&gw, &wan, &inet, &isp).unwrap();
        addr_add(&gw, &wan, GW_ADDR).unwrap();
        addr_add(&inet, &isp, &format!("{INET_ADDR}/24")).unwrap();
        for addr in [LAST, NEXT] {
            addr_add(&inet, &isp, &format!("{addr}/32")).unwrap();
        }
        route_add(&gw, "198.51.100.0/24", IpAddr::V4(INET_ADDR)).unwrap();
        let mut servers = Vec::new();
        for addr in [LAST, NEXT] {
            for port in [OP_PORT, TURN_PORT] {
                let at = SocketAddr::V4(SocketAddrV4::new(addr, port));
                servers.push(udp_echo_server(&inet, at).unwrap());
            }
        }
        let lab = Self {
            _servers: servers,
            veth,
            gw,
            _inet: inet,
            gotofw: Gotofw::default(),
            dir: TempDir::new("gcp-cap").unwrap(),
        };
        for port in [OP_PORT, TURN_PORT] {
            assert!(lab.udp(LAST, port), "the lab answers on {LAST}:{port}");
            assert!(lab.udp(NEXT, port), "the lab answers on {NEXT}:{port}");
        }
        lab
    }

    fn wan(&self) -> &str {
        self.veth.a()
    }

    fn udp(&self, addr: Ipv4Addr, port: u16) -> bool {
        let dst = SocketAddr::V4(SocketAddrV4::new(addr, port));
        udp_probe(&self.gw, None, dst, PROBE_TIMEOUT)
    }

    /// The filter matches the last network and nothing next to it, on `port`.
    fn assert_last_network_matched(&self, port: u16) {
        assert!(
            self.udp(LAST, port),
            "{LAST}:{port}, in the last network, passes"
        );
        assert!(
            !self.udp(NEXT, port),
            "{NEXT}:{port}, in no network, is dropped"
        );
    }

    fn guard(&self) -> Attached<'_> {
        Attached::new(self.gotofw.clone(), &self.gw, self.wan())
    }

    /// Writes `text` to `name` in the test's directory and returns its path.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.0.join(name);
        fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    /// `gotofw args` in the gateway namespace, waited for at most [`COMMAND_DEADLINE`].
    fn run(&self, args: &[&str]) -> Output {
        self.gotofw.run_env(&self.gw, args, &[], COMMAND_DEADLINE)
    }

    fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "`gotofw {}` failed ({}): {}",
            shown(args),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `gotofw args` must refuse: exit code 2, one line that contains each of `needles`.
    fn refused(&self, args: &[&str], needles: &[&str]) {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(EXIT_USAGE),
            "`gotofw {}`: {stderr}",
            shown(args)
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "`gotofw {}`: {stderr}",
                shown(args)
            );
        }
    }

    fn status(&self) -> Value {
        let out = self.run_ok(&["status", self.wan(), "--json"]);
        serde_json::from_str(&out).unwrap()
    }
}

/// The command line, shortened for messages.
fn shown(args: &[&str]) -> String {
    let line = args.join(" ");
    if line.len() > 200 {
        format!("{}... ({} arguments)", &line[..200], args.len())
    } else {
        line
    }
}

/// The counters of rule `name` in `status` (one per direction), which must exist.
fn rule_counters<'a>(status: &'a Value, name: &str) -> Vec<&'a Value> {
    let found: Vec<&Value> = status["interfaces"][0]["counters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == name)
        .collect();
    assert!(!found.is_empty(), "no counter {name} in status");
    found
}

/// The networks `status` shows for rule `name`, in both directions alike.
fn rule_networks(status: &Value, name: &str) -> Vec<String> {
    let lists: Vec<Vec<String>> = rule_counters(status, name)
        .iter()
        .map(|c| {
            c["networks"]
                .as_array()
                .unwrap_or_else(|| panic!("{name} has no network list: {c}"))
                .iter()
                .map(|n| n.as_str().unwrap().to_owned())
                .collect()
        })
        .collect();
    assert!(
        lists.windows(2).all(|w| w[0] == w[1]),
        "{name}: directions differ"
    );
    lists.into_iter().next().unwrap()
}

/// `count` distinct IPv4 networks, the last one `LAST/32`; the others in 10.0.0.0/8 (no
/// traffic goes there).
fn v4_networks(count: usize) -> Vec<String> {
    let mut nets: Vec<String> = (0..count - 1)
        .map(|i| {
            let i = u32::try_from(i).unwrap();
            format!("{}/32", Ipv4Addr::from(0x0a00_0000 | i))
        })
        .collect();
    nets.push(format!("{LAST}/32"));
    nets
}

/// `count` distinct networks, the last one `LAST/32`, the others IPv6 /48s of 2001:db8::/32.
fn v6_networks(count: usize) -> Vec<String> {
    let mut nets: Vec<String> = (1..count).map(|i| format!("2001:db8:{i:x}::/48")).collect();
    nets.push(format!("{LAST}/32"));
    nets
}

/// A TOML array of strings.
fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// A configuration file for `wan`: `scenario`, then `rules` operator rules `r1`.. of one network
/// each, outbound UDP to [`OP_PORT`], after the scenario's; the last one's network is `LAST/32`.
fn rules_config(wan: &str, scenario: &str, rules: usize) -> String {
    let mut text = format!("interfaces = [\"{wan}\"]\nscenario = \"{scenario}\"\n");
    for i in 1..=rules {
        let net = if i == rules {
            format!("{LAST}/32")
        } else {
            format!("192.0.2.{i}/32")
        };
        let _ = write!(
            text,
            "\n[[rules]]\nname = \"r{i}\"\ndirection = \"outbound\"\nprotocol = \"udp\"\nports = [{OP_PORT}]\nnetworks = [\"{net}\"]\naction = \"allow\"\nposition = \"after\"\n"
        );
    }
    text
}

/// A configuration file for `wan` whose TURN network set is `networks` (udp-turn).
fn turn_config(wan: &str, networks: &[String]) -> String {
    format!(
        "interfaces = [\"{wan}\"]\nscenario = \"udp-turn\"\n\n[turn]\nnetworks = {}\n",
        toml_list(networks)
    )
}

/// The limit of 64 rules, reached with one-network operator rules from a file: attach, status,
/// check-config and the kernel take the 64th; the 65th is refused by check-config, attach,
/// reload, run and set-scenario.
#[test]
fn sixty_four_rules_of_one_network_each() {
    if !require_root_or_skip("sixty_four_rules_of_one_network_each") {
        return;
    }
    let lab = Lab::new();
    let wan = lab.wan().to_owned();
    // udp-turn takes 5 rules (turn-udp, https, dhcp, dns, ntp): 59 of the operator's make 64.
    let operator = MAX_RULES - 5;
    let config = lab.file("64.toml", &rules_config(&wan, "udp-turn", operator));
    let checked = lab.run_ok(&["check-config", "--config", &config]);
    assert!(checked.contains(": ok"), "{checked}");
    assert!(checked.contains(&format!("r{operator}")), "{checked}");

    let guard = lab.guard();
    lab.run_ok(&["attach", "--config", &config]);
    let status = lab.status();
    let names: std::collections::BTreeSet<&str> = status["interfaces"][0]["counters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] != "fixed" && c.get("networks").is_some())
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), MAX_RULES, "{names:?}");
    for i in 1..=operator {
        let want = if i == operator {
            format!("{LAST}/32")
        } else {
            format!("192.0.2.{i}/32")
        };
        assert_eq!(rule_networks(&status, &format!("r{i}")), [want]);
    }
    // The 64th rule is the mask's top bit: the kernel matches it.
    lab.assert_last_network_matched(OP_PORT);
    let last = format!("r{operator}");
    assert!(
        counter_in(&lab.status(), &last, "egress").0 >= 1,
        "{last} counted"
    );

    // One more rule: every command that reads the file refuses it, and the filter stays.
    let over = lab.file("65.toml", &rules_config(&wan, "udp-turn", operator + 1));
    let needles = ["65 rules", "64"];
    lab.refused(&["check-config", "--config", &over], &needles);
    lab.refused(&["attach", "--config", &over, "--replace"], &needles);
    lab.refused(&["reload", "--config", &over], &needles);
    lab.refused(&["run", "--config", &over], &needles);
    assert_eq!(rule_networks(&lab.status(), &last), [format!("{LAST}/32")]);
    lab.assert_last_network_matched(OP_PORT);

    // tcp-443 takes 4 rules: 60 of the operator's make 64; udp-turn would make them 65.
    let tcp443 = lab.file("tcp443.toml", &rules_config(&wan, "tcp-443", MAX_RULES - 4));
    lab.run_ok(&["attach", "--config", &tcp443, "--replace"]);
    lab.refused(&["set-scenario", &wan, "udp-turn"], &needles);
    let status = lab.status();
    assert_eq!(status["interfaces"][0]["scenario"], "tcp-443");
    assert!(rule_counters(&status, &format!("r{}", MAX_RULES - 4)).len() == 2);
    lab.assert_last_network_matched(OP_PORT);
    drop(guard);
}

/// One operator rule of 500 networks: attached from a file, shown whole, its last network
/// matched by the kernel.
#[test]
fn one_rule_of_500_networks() {
    if !require_root_or_skip("one_rule_of_500_networks") {
        return;
    }
    let lab = Lab::new();
    let networks = v6_networks(500);
    let config = lab.file(
        "500.toml",
        &format!(
            "interfaces = [\"{}\"]\nscenario = \"udp-turn\"\n\n[[rules]]\nname = \"big\"\ndirection = \"outbound\"\nprotocol = \"udp\"\nports = [{OP_PORT}]\nnetworks = {}\naction = \"allow\"\nposition = \"after\"\n",
            lab.wan(),
            toml_list(&networks)
        ),
    );
    let checked = lab.run_ok(&["check-config", "--config", &config]);
    assert!(
        checked.contains(": ok") && checked.contains(&format!("2001:db8:1f3::/48, {LAST}/32")),
        "{}",
        shown(&[&checked])
    );
    let guard = lab.guard();
    lab.run_ok(&["attach", "--config", &config]);
    assert_eq!(rule_networks(&lab.status(), "big"), networks);
    lab.assert_last_network_matched(OP_PORT);
    drop(guard);
}

/// 1000 `--network` options on the command line: attach takes them all, status shows them, the
/// kernel matches the last, and explain accepts the same command line and agrees.
#[test]
fn a_thousand_network_options() {
    if !require_root_or_skip("a_thousand_network_options") {
        return;
    }
    let lab = Lab::new();
    let networks = v6_networks(1000);
    let mut options: Vec<&str> = vec!["--scenario", "udp-turn"];
    for net in &networks {
        options.extend(["--network", net.as_str()]);
    }
    let guard = lab.guard();
    let mut attach = vec!["attach", lab.wan()];
    attach.extend(&options);
    lab.run_ok(&attach);
    let shown = rule_networks(&lab.status(), "turn-udp");
    // GoTo's five TURN networks, then the 1000 added.
    assert_eq!(shown.len(), 1005);
    assert_eq!(shown[5..], networks[..]);
    lab.assert_last_network_matched(TURN_PORT);

    for (addr, verdict) in [(LAST, "allow"), (NEXT, "block")] {
        let mut args = vec!["explain"];
        args.extend(&options);
        let dst = format!("{addr}:{TURN_PORT}");
        args.extend(["udp", dst.as_str(), "--json"]);
        let out: Value = serde_json::from_str(&lab.run_ok(&args)).unwrap();
        assert_eq!(out["verdict"], verdict, "{dst}: {out}");
        // And the attached filter, asked through its pinned maps, says the same.
        let args = ["explain", lab.wan(), "udp", dst.as_str(), "--json"];
        let out: Value = serde_json::from_str(&lab.run_ok(&args)).unwrap();
        assert_eq!(
            out["verdict"],
            verdict,
            "explain {}: {dst}: {out}",
            lab.wan()
        );
    }
    drop(guard);
}

/// 100,000 networks from a file: attach (timed, not asserted), status shows every one, the
/// kernel matches the last. Then the limit itself: exactly `MAX_NETWORKS` are taken by
/// check-config and attach, one more is refused by check-config, attach, reload and run, and
/// the filter stays as it was.
#[test]
fn a_hundred_thousand_networks_and_the_limit() {
    if !require_root_or_skip("a_hundred_thousand_networks_and_the_limit") {
        return;
    }
    let lab = Lab::new();
    let wan = lab.wan().to_owned();
    let networks = v4_networks(100_000);
    let config = lab.file("100k.toml", &turn_config(&wan, &networks));
    let guard = lab.guard();
    let started = Instant::now();
    lab.run_ok(&["attach", "--config", &config]);
    eprintln!(
        "attach with 100,000 networks took {:?} (not asserted)",
        started.elapsed()
    );
    assert_eq!(rule_networks(&lab.status(), "turn-udp"), networks);
    lab.assert_last_network_matched(TURN_PORT);

    let full = v4_networks(MAX_NETWORKS);
    let at_limit = lab.file("limit.toml", &turn_config(&wan, &full));
    let checked = lab.run_ok(&["check-config", "--config", &at_limit]);
    assert!(checked.contains(": ok"), "{checked}");
    let started = Instant::now();
    lab.run_ok(&["attach", "--config", &at_limit, "--replace"]);
    eprintln!(
        "attach --replace with {MAX_NETWORKS} networks took {:?} (not asserted)",
        started.elapsed()
    );
    assert_eq!(rule_networks(&lab.status(), "turn-udp").len(), MAX_NETWORKS);
    lab.assert_last_network_matched(TURN_PORT);

    let mut past = full;
    past.insert(0, "192.0.2.0/24".to_owned());
    let over = lab.file("over.toml", &turn_config(&wan, &past));
    let count = format!("{} networks", MAX_NETWORKS + 1);
    let limit = MAX_NETWORKS.to_string();
    let needles = [count.as_str(), limit.as_str()];
    lab.refused(&["check-config", "--config", &over], &needles);
    lab.refused(&["attach", "--config", &over, "--replace"], &needles);
    lab.refused(&["reload", "--config", &over], &needles);
    lab.refused(&["run", "--config", &over], &needles);
    assert_eq!(rule_networks(&lab.status(), "turn-udp").len(), MAX_NETWORKS);
    lab.assert_last_network_matched(TURN_PORT);
    drop(guard);
}

/// `explain` takes exactly the rule sets attach takes: `MAX_NETWORKS` networks, not one more
/// (the command line cannot carry that many, so this drives the function `explain` runs).
#[test]
fn explain_refuses_one_past_the_network_limit() {
    let dst: SocketAddr = format!("{LAST}:{TURN_PORT}").parse().unwrap();
    let mut options = Options::new(Scenario::UdpTurn);
    options.turn_networks = v4_networks(MAX_NETWORKS)
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
    let e = explain(
        &options,
        Mode::Stateful(FlowLimits::default()),
        Protocol::Udp,
        dst,
    )
    .unwrap();
    assert_eq!(e.verdict, "allow");
    options.turn_networks.push("192.0.2.0/24".parse().unwrap());
    let err = explain(
        &options,
        Mode::Stateful(FlowLimits::default()),
        Protocol::Udp,
        dst,
    )
    .unwrap_err();
    assert!(
        err.downcast_ref::<UsageError>().is_some(),
        "a usage error (exit 2): {err:#}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("{} networks", MAX_NETWORKS + 1))
            && text.contains(&MAX_NETWORKS.to_string()),
        "{text}"
    );
}
