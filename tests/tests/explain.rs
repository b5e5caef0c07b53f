//! `gotofw explain IFACE` against the filter that runs (root only): attach with operator rules,
//! networks and allowances of the operator's choosing, then for each destination compare what
//! `explain IFACE` (JSON and text) says with a real probe through the interface and with the
//! counters that moved. Also: `explain --scenario` answering differently from the attached
//! filter, bad `explain IFACE` input, and `flows --json` after a `set-scenario`.
//!
//! Every lab is a [`WanLab`] named `gex...`; every attach has an [`Attached`] guard.

use std::{
    collections::BTreeSet,
    fmt, fs,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6},
    process::Output,
    time::Duration,
};

use gotofw_tests::{
    Attached, EXIT_USAGE, Gotofw, INET_ADDR, OUTSIDE, ServerHandle, TURN_A, TURN_B, TempDir,
    WanLab, exit_code, expect_success, require_root_or_skip, tcp_echo_server, tcp_probe,
    udp_echo_server, udp_probe,
};
use serde_json::Value;

/// How long a probe waits for its echo (a blocked probe costs all of it).
const PROBE_TIMEOUT: Duration = Duration::from_millis(400);

/// The allowances that are not rules: packets no probe sends (ARP, neighbour discovery) move them.
const FIXED_ALLOWANCES: [&str; 4] = ["non-ip", "icmpv6-nd", "icmp-errors", "pppoe-control"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Udp,
    Tcp,
}

/// A connection from the gateway to a server on the internet side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dest {
    proto: Proto,
    dst: SocketAddr,
}

impl Dest {
    const fn proto(self) -> &'static str {
        match self.proto {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.proto(), self.dst)
    }
}

const fn udp(ip: Ipv4Addr, port: u16) -> Dest {
    Dest {
        proto: Proto::Udp,
        dst: SocketAddr::V4(SocketAddrV4::new(ip, port)),
    }
}

const fn tcp(ip: Ipv4Addr, port: u16) -> Dest {
    Dest {
        proto: Proto::Tcp,
        dst: SocketAddr::V4(SocketAddrV4::new(ip, port)),
    }
}

/// The internet side's IPv6 address on the shared link (the gateway's is `...::2`).
const INET6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, 0, 1);

const fn tcp6(ip: Ipv6Addr, port: u16) -> Dest {
    Dest {
        proto: Proto::Tcp,
        dst: SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0)),
    }
}

const fn udp6(ip: Ipv6Addr, port: u16) -> Dest {
    Dest {
        proto: Proto::Udp,
        dst: SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0)),
    }
}

/// A `gex` [`WanLab`] with an echo server behind every destination.
struct Lab {
    // Dropped first: sockets, then link and namespaces, then files.
    servers: Vec<(Dest, ServerHandle)>,
    net: WanLab,
    gotofw: Gotofw,
    dir: TempDir,
}

impl Lab {
    fn new(dests: &[Dest]) -> Self {
        let net = WanLab::named(["gexg", "gexi", "gexw", "gexp"]).unwrap();
        // IPv6 on the link too (no duplicate address detection, so it is usable at once).
        for (ns, dev, addr) in [
            (net.gw(), net.wan(), "2001:db8:77::2/64"),
            (net.inet(), net.isp(), "2001:db8:77::1/64"),
        ] {
            ns.ip(["-6", "addr", "add", addr, "dev", dev, "nodad"])
                .unwrap();
        }
        let servers = dests
            .iter()
            .map(|&d| {
                let server = match d.proto {
                    Proto::Udp => udp_echo_server(net.inet(), d.dst),
                    Proto::Tcp => tcp_echo_server(net.inet(), d.dst),
                };
                (d, server.unwrap())
            })
            .collect();
        Self {
            servers,
            net,
            gotofw: Gotofw::default(),
            dir: TempDir::new("gex").unwrap(),
        }
    }

    fn wan(&self) -> &str {
        self.net.wan()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.gotofw.run(self.net.gw(), args)
    }

    fn attach(&self, args: &[&str]) -> Attached<'_> {
        self.gotofw.attach(self.net.gw(), self.wan(), args)
    }

    /// Writes `text` to FILE in the lab's directory; returns its path.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.0.join(name);
        fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn served(&self, d: Dest) -> usize {
        self.servers
            .iter()
            .find(|(s, _)| *s == d)
            .map(|(_, server)| server.served())
            .expect("every destination has a server")
    }

    fn probe(&self, d: Dest) -> bool {
        match d.proto {
            Proto::Udp => udp_probe(self.net.gw(), None, d.dst, PROBE_TIMEOUT),
            Proto::Tcp => tcp_probe(self.net.gw(), d.dst, PROBE_TIMEOUT),
        }
    }

    fn status(&self) -> Value {
        self.gotofw.status_json(self.net.gw(), self.wan())
    }

    /// `gotofw explain WAN PROTO ADDR:PORT --json`.
    fn explain(&self, d: Dest) -> Value {
        let dst = d.dst.to_string();
        let args = ["explain", self.wan(), d.proto(), &dst, "--json"];
        let out = expect_success(&self.run(&args), &args.join(" "));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("explain --json: {e}: {out}"))
    }

    /// `gotofw explain WAN PROTO ADDR:PORT`.
    fn explain_text(&self, d: Dest) -> String {
        let dst = d.dst.to_string();
        let args = ["explain", self.wan(), d.proto(), &dst];
        expect_success(&self.run(&args), &args.join(" "))
    }

    /// `gotofw explain --scenario SCENARIO [extra] PROTO ADDR:PORT --json`.
    fn explain_scenario(&self, scenario: &str, extra: &[&str], d: Dest) -> Value {
        let dst = d.dst.to_string();
        let mut args = vec!["explain", "--scenario", scenario];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[d.proto(), &dst, "--json"]);
        let out = expect_success(&self.run(&args), &args.join(" "));
        serde_json::from_str(&out).unwrap()
    }
}

/// Packets of every counter of `direction` in a `status --json` document, by name.
fn packets(status: &Value, direction: &str) -> Vec<(String, u64)> {
    status["interfaces"][0]["counters"]
        .as_array()
        .unwrap_or_else(|| panic!("no counters in {status}"))
        .iter()
        .filter(|c| c["direction"] == direction)
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["packets"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The counters of `direction` that moved between two `status --json` documents.
fn moved(before: &Value, after: &Value, direction: &str) -> BTreeSet<String> {
    let old = packets(before, direction);
    packets(after, direction)
        .into_iter()
        .filter(|(name, n)| old.iter().any(|(o, m)| o == name && m != n))
        .map(|(name, _)| name)
        .collect()
}

/// Only rules (scenario, allowance and operator rules) and `default-block`: what no packet but
/// the probes moves on the lab's link (ARP and neighbour discovery move the fixed allowances).
fn of_rules(names: BTreeSet<String>) -> BTreeSet<String> {
    names
        .into_iter()
        .filter(|n| !FIXED_ALLOWANCES.contains(&n.as_str()) && n != "default-block")
        .collect()
}

fn rule_or_none(rule: &str) -> BTreeSet<String> {
    if rule == "default-block" {
        BTreeSet::new()
    } else {
        BTreeSet::from([rule.to_owned()])
    }
}

/// For every destination, one at a time: `explain WAN` (JSON and text), then a probe through the
/// interface; the probe gets through exactly when explain allows the connection, and the rule
/// counters that moved are the ones explain names (stateful: the outbound rule at the egress, the
/// reply's at the ingress; stateless: the reply's at the ingress). Returns the explanations.
fn assert_explain_matches_the_filter(lab: &Lab, dests: &[Dest], stateful: bool) -> Vec<Value> {
    let mut wrong = Vec::new();
    let mut all = Vec::new();
    for &d in dests {
        let e = lab.explain(d);
        assert_eq!(e["interface"], lab.wan(), "{e}");
        assert_eq!(
            e["mode"],
            if stateful { "stateful" } else { "stateless" },
            "{e}"
        );
        let (verdict, rule) = (e["verdict"].as_str().unwrap(), e["rule"].as_str().unwrap());
        let reply = e["reply"]["verdict"].as_str().unwrap();
        let reply_rule = e["reply"]["rule"].as_str().unwrap();
        let allowed = verdict == "allow" && reply == "allow";
        // Operators often enter the namespace with `ip netns exec` (a private mount namespace):
        // the same filter answers.
        let dst = d.dst.to_string();
        let bin = lab.gotofw.bin().to_string_lossy().into_owned();
        let args = ["explain", lab.wan(), d.proto(), &dst, "--json"];
        let out = lab.net.gw().ip_netns_exec(&bin, args).unwrap();
        let via_ip: Value = serde_json::from_str(&expect_success(&out, "ip netns exec: explain"))
            .unwrap_or_else(|err| panic!("{d}: ip netns exec explain --json: {err}"));
        if via_ip != e {
            wrong.push(format!(
                "{d}: through ip netns exec {via_ip}, through nsenter {e}"
            ));
        }
        let text = lab.explain_text(d);
        let head = text.lines().next().unwrap_or_default();
        let word = if allowed { "allow" } else { "block" };
        if !head.ends_with(&format!(": {verdict}"))
            || !text.contains(&format!("by {rule}"))
            || !text.contains(&format!("by {reply_rule}"))
        {
            wrong.push(format!("{d}: text {text:?} disagrees with JSON {e}"));
        }

        let served = lab.served(d);
        let before = lab.status();
        let got = lab.probe(d);
        let after = lab.status();
        if got != allowed {
            wrong.push(format!(
                "{d}: probe {}, explain says {word} ({rule}, reply {reply_rule})",
                if got { "got through" } else { "blocked" }
            ));
        }
        let ingress = of_rules(moved(&before, &after, "ingress"));
        let want_in = if reply == "allow" {
            rule_or_none(reply_rule)
        } else {
            BTreeSet::new()
        };
        if ingress != want_in {
            wrong.push(format!(
                "{d}: ingress rule counters moved {ingress:?}, explain says {want_in:?}"
            ));
        }
        if stateful {
            let egress = moved(&before, &after, "egress");
            let want_out = rule_or_none(rule);
            if of_rules(egress.clone()) != want_out
                || (rule == "default-block" && !egress.contains("default-block"))
            {
                wrong.push(format!(
                    "{d}: egress counters moved {egress:?}, explain says {rule}"
                ));
            }
            // Stateful mode enforces the rules at the egress: a blocked request never leaves.
            if d.proto == Proto::Udp && lab.served(d) != served + usize::from(verdict == "allow") {
                wrong.push(format!(
                    "{d}: served {} requests, explain says outbound {verdict}",
                    lab.served(d) - served
                ));
            }
        }
        all.push(e);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    all
}

fn verdict_of(e: &Value) -> (String, String) {
    let allowed = e["verdict"] == "allow" && e["reply"]["verdict"] == "allow";
    let word = if allowed { "allow" } else { "block" };
    (word.to_owned(), e["rule"].as_str().unwrap().to_owned())
}

/// Stateful, from a configuration file: operator rules before (a block carving a TURN server out)
/// and after (a TCP port of a lab server) the scenario's, plus an extra TURN network. `explain
/// WAN` agrees with the probes and counters; `explain --scenario udp-turn` would not.
#[test]
fn explain_iface_answers_from_the_attached_filter_and_its_operator_rules() {
    if !require_root_or_skip(
        "explain_iface_answers_from_the_attached_filter_and_its_operator_rules",
    ) {
        return;
    }
    let turn_a = udp(TURN_A, 3478);
    let outside_turn = udp(OUTSIDE, 3478);
    let lab_web = tcp(INET_ADDR, 8080);
    let dests = [
        turn_a,
        udp(TURN_B, 3478),
        outside_turn,
        tcp(OUTSIDE, 443),
        lab_web,
        tcp(TURN_A, 80),
        udp(OUTSIDE, 45000),
        tcp(OUTSIDE, 3478),
        tcp6(INET6, 443),
        udp6(INET6, 3478),
    ];
    let lab = Lab::new(&dests);
    let config = lab.file(
        "gex.toml",
        &format!(
            r#"interfaces = ["{wan}"]
scenario = "udp-turn"

[turn]
extra_networks = ["198.51.100.0/24"]

[[rules]]
name = "no-turn-a"
direction = "outbound"
protocol = "udp"
ports = [3478]
networks = ["{TURN_A}"]
action = "block"
position = "before"

[[rules]]
name = "lab-web"
direction = "outbound"
protocol = "tcp"
ports = [8080]
networks = ["{INET_ADDR}"]
action = "allow"
position = "after"
"#,
            wan = lab.wan()
        ),
    );
    let _attached = lab.attach(&["--config", &config]);
    let got = assert_explain_matches_the_filter(&lab, &dests, true);
    let by = |d: Dest| verdict_of(&got[dests.iter().position(|x| *x == d).unwrap()]);
    let pair = |v: &str, r: &str| (v.to_owned(), r.to_owned());
    assert_eq!(by(turn_a), pair("block", "no-turn-a"));
    assert_eq!(by(outside_turn), pair("allow", "turn-udp"));
    assert_eq!(by(lab_web), pair("allow", "lab-web"));
    // The same scenario built from the command line knows neither the operator rules nor the
    // extra network: it answers otherwise, and the filter (as the probes showed) does not.
    for (d, want) in [
        (turn_a, pair("allow", "turn-udp")),
        (outside_turn, pair("block", "default-block")),
        (lab_web, pair("block", "default-block")),
    ] {
        assert_eq!(
            verdict_of(&lab.explain_scenario("udp-turn", &[], d)),
            want,
            "{d}"
        );
    }
}

/// Stateless, from the command line: the TURN list replaced by a network of the operator's, and
/// the DNS allowance off. `explain WAN` agrees with the probes and ingress counters.
#[test]
fn explain_iface_follows_replaced_networks_and_allowances_in_stateless_mode() {
    if !require_root_or_skip(
        "explain_iface_follows_replaced_networks_and_allowances_in_stateless_mode",
    ) {
        return;
    }
    let turn_a = tcp(TURN_A, 3478);
    let outside_turn = tcp(OUTSIDE, 3478);
    let dns = udp(INET_ADDR, 53);
    let turn6 = tcp6(INET6, 3478);
    let dests = [
        turn_a,
        outside_turn,
        tcp(OUTSIDE, 443),
        udp(OUTSIDE, 3478),
        dns,
        turn6,
        tcp6(INET6, 3479),
    ];
    let lab = Lab::new(&dests);
    let options = [
        "--scenario",
        "tcp-turn",
        "--network",
        "198.51.100.0/24",
        "--network",
        "2001:db8:77::/48",
        "--replace-networks",
        "--no-allow",
        "dns",
        "--stateless",
    ];
    let _attached = lab.attach(&options);
    let got = assert_explain_matches_the_filter(&lab, &dests, false);
    let by = |d: Dest| verdict_of(&got[dests.iter().position(|x| *x == d).unwrap()]);
    assert_eq!(by(turn_a).0, "block");
    assert_eq!(by(outside_turn), ("allow".into(), "turn-tcp".into()));
    assert_eq!(by(dns).0, "block");
    assert_eq!(by(turn6), ("allow".into(), "turn-tcp".into()));
    // Without the options, the scenario allows the first and the DNS allowance the last.
    assert_eq!(
        verdict_of(&lab.explain_scenario("tcp-turn", &["--stateless"], turn_a)).0,
        "allow"
    );
    assert_eq!(
        verdict_of(&lab.explain_scenario("tcp-turn", &["--stateless"], dns)),
        ("allow".into(), "dns".into())
    );
}

/// Stateful, `--turn-dst any`: UDP 3478 to any address, and nothing else new.
#[test]
fn explain_iface_follows_turn_dst_any() {
    if !require_root_or_skip("explain_iface_follows_turn_dst_any") {
        return;
    }
    let any = udp(INET_ADDR, 3478);
    let dests = [any, udp(INET_ADDR, 3479), tcp(INET_ADDR, 3478)];
    let lab = Lab::new(&dests);
    let _attached = lab.attach(&["--scenario", "udp-turn", "--turn-dst", "any"]);
    let got = assert_explain_matches_the_filter(&lab, &dests, true);
    assert_eq!(verdict_of(&got[0]), ("allow".into(), "turn-udp".into()));
    assert_eq!(
        verdict_of(&lab.explain_scenario("udp-turn", &[], any)).0,
        "block"
    );
}

/// Ingress-only: no egress program, so `explain WAN` says every outbound packet leaves
/// (`unfiltered`), which the servers see, and the connection stands or falls by the reply's
/// mirrored rule, as the probes show.
#[test]
fn explain_iface_in_ingress_only_mode_says_outbound_is_unfiltered() {
    if !require_root_or_skip("explain_iface_in_ingress_only_mode_says_outbound_is_unfiltered") {
        return;
    }
    let turn = udp(TURN_A, 3478);
    let outside = udp(OUTSIDE, 3478);
    let dests = [turn, outside, tcp(OUTSIDE, 443)];
    let lab = Lab::new(&dests);
    let _attached = lab.attach(&["--scenario", "udp-turn", "--ingress-only"]);
    let mut wrong = Vec::new();
    for d in dests {
        let e = lab.explain(d);
        if e["mode"] != "ingress-only" || e["verdict"] != "allow" || e["rule"] != "unfiltered" {
            wrong.push(format!("{d}: {e}"));
        }
        let reply = e["reply"]["verdict"].as_str().unwrap().to_owned();
        let head = lab
            .explain_text(d)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        if !head.ends_with(&format!(": {reply}")) {
            wrong.push(format!("{d}: text {head:?}, reply {reply}"));
        }
        let served = lab.served(d);
        let got = lab.probe(d);
        if got != (reply == "allow") {
            wrong.push(format!(
                "{d}: probe got through: {got}, explain's reply {reply}"
            ));
        }
        if d.proto == Proto::Udp && lab.served(d) <= served {
            wrong.push(format!(
                "{d}: the request did not leave, explain says unfiltered"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(lab.explain(turn)["reply"]["verdict"], "allow");
    assert_eq!(lab.explain(outside)["reply"]["verdict"], "block");
}

/// Asserts exit code 2, one line on stderr, containing every one of `want`.
fn assert_usage_error(out: &Output, what: &str, want: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(exit_code(out), Some(EXIT_USAGE), "{what}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{what}: {stderr:?}");
    for w in want {
        assert!(stderr.contains(w), "{what}: {stderr:?} lacks {w:?}");
    }
}

/// `explain IFACE` refuses, in one line with exit code 2: an interface without a filter, options
/// that build a rule set of their own, an interface with --scenario, and no rule set at all.
#[test]
fn explain_iface_refuses_what_it_cannot_answer() {
    if !require_root_or_skip("explain_iface_refuses_what_it_cannot_answer") {
        return;
    }
    let lab = Lab::new(&[]);
    let wan = lab.wan().to_owned();
    let cases: [(Vec<&str>, Vec<&str>); 5] = [
        (
            vec!["explain", &wan, "udp", "68.64.0.10:3478"],
            vec![&wan, "no gotofw filter", "--scenario"],
        ),
        (
            vec!["explain", "gex-none0", "udp", "68.64.0.10:3478"],
            vec!["gex-none0", "no gotofw filter"],
        ),
        (
            vec!["explain", &wan, "udp", "68.64.0.10:3478", "--stateless"],
            vec!["--stateless", "--scenario"],
        ),
        (
            vec![
                "explain",
                "--scenario",
                "tcp-443",
                &wan,
                "tcp",
                "198.51.100.1:443",
            ],
            vec![&wan, "tcp-443", "drop --scenario"],
        ),
        (
            vec!["explain", "udp", "68.64.0.10:3478"],
            vec!["IFACE PROTO ADDR:PORT", "--scenario"],
        ),
    ];
    for (args, want) in &cases {
        assert_usage_error(&lab.run(args), &args.join(" "), want);
    }
    // With a filter, the options are still refused, and nothing changes.
    let attached = lab.attach(&["--scenario", "tcp-443"]);
    let before = attached.status_json();
    let out = lab.run(&[
        "explain",
        &wan,
        "udp",
        "68.64.0.10:3478",
        "--network",
        "198.51.100.0/24",
    ]);
    assert_usage_error(&out, "explain WAN --network", &["--network", &wan]);
    let out = lab.run(&["explain", &wan, "icmp", "68.64.0.10:3478"]);
    assert_usage_error(&out, "explain WAN icmp", &["'icmp'"]);
    let after = attached.status_json();
    assert_eq!(
        before["interfaces"][0]["attached_at"],
        after["interfaces"][0]["attached_at"]
    );
}

/// `flows --json` after a `set-scenario`: `rule` is a rule name or null, never a sentence, and
/// `earlier_rule_set` tells a flow of the earlier rule set (rechecked at its next packet) from
/// one the current rules opened.
#[test]
fn flows_json_after_set_scenario_names_rules_or_null() {
    if !require_root_or_skip("flows_json_after_set_scenario_names_rules_or_null") {
        return;
    }
    let turn = udp(TURN_B, 3478);
    let https = tcp(OUTSIDE, 443);
    let lab = Lab::new(&[turn, https]);
    let _attached = lab.attach(&["--scenario", "udp-turn"]);
    assert!(lab.probe(turn) && lab.probe(https), "probes under udp-turn");
    let json = |what: &str| -> Value {
        let out = expect_success(&lab.run(&["flows", lab.wan(), "--json"]), what);
        serde_json::from_str(&out).unwrap()
    };
    let flows = |what: &str| -> Vec<Value> {
        json(what)["interfaces"][0]["flows"]
            .as_array()
            .unwrap()
            .clone()
    };
    let find = |list: &[Value], d: Dest| -> Vec<Value> {
        list.iter()
            .filter(|f| f["remote"] == d.dst.to_string().as_str() && f["protocol"] == d.proto())
            .cloned()
            .collect()
    };
    let list = flows("flows under udp-turn");
    for (d, rule) in [(turn, "turn-udp"), (https, "https")] {
        let found = find(&list, d);
        assert_eq!(found.len(), 1, "{d}: {list:?}");
        assert_eq!(found[0]["rule"], rule, "{d}: {}", found[0]);
        assert_eq!(found[0]["earlier_rule_set"], false, "{d}: {}", found[0]);
    }
    expect_success(
        &lab.run(&["set-scenario", lab.wan(), "tcp-443"]),
        "set-scenario",
    );
    let list = flows("flows after set-scenario");
    for d in [turn, https] {
        let found = find(&list, d);
        assert_eq!(found.len(), 1, "{d}: {list:?}");
        assert!(found[0]["rule"].is_null(), "{d}: {}", found[0]);
        assert_eq!(found[0]["earlier_rule_set"], true, "{d}: {}", found[0]);
    }
    // A new connection opens a flow of the current rule set, under its rule's name.
    assert!(lab.probe(https), "https under tcp-443");
    let list = flows("flows after a new https connection");
    let current: Vec<Value> = find(&list, https)
        .into_iter()
        .filter(|f| f["earlier_rule_set"] == false)
        .collect();
    assert_eq!(current.len(), 1, "{list:?}");
    assert_eq!(current[0]["rule"], "https", "{}", current[0]);
    // `rule` changed type (it may be null; version 2), flows gained `opened` and the
    // `picked-up` state (version 3): the format's version says so.
    assert_eq!(json("flows")["version"], 3);
    // The text table keeps saying what the JSON's null means.
    let text = expect_success(&lab.run(&["flows", lab.wan()]), "flows");
    assert!(text.contains("(earlier rule set"), "{text}");
}
