//! Domain rules with real parts (issue 13): the three-namespace lab ([`Lab3`]) plus
//! [`DomainLab`]: Debian's dnsmasq in `inet` serving names under goto.com and goto-rtc.com,
//! lookalikes and 1,200 fresh names with TTL 2 s; the client in `lan` resolving through its system
//! resolver (`/etc/netns/LAN/resolv.conf`, `getent`, `curl https://NAME/`, Python's
//! `getaddrinfo` + `connect`) across the masquerading gateway, whose WAN has gotofw attached with
//! `--scenario tcp-443 --https-to domains --dns-server 198.51.100.53 --dns-ttl-min 1
//! --dns-ttl-max 5` (stateful).
//!
//! - `domains_allow_learned_names_only`: GoTo's names connect (curl gets HTTP 200); a
//!   lookalike's address (resolved, but not a GoTo name) and an address never answered are
//!   blocked and counted `not-learned`.
//! - `domains_ttl_expiry_and_established_flows`: a TLS connection opened right after the answer
//!   still works after the TTL; a new connection to the same address then is blocked.
//! - `domains_spoofed_answers_teach_nothing`: an answer with the query's id from another
//!   address, and one from the resolver's address with a wrong id, teach nothing; the genuine
//!   answer after them does.
//! - `domains_race_first_syn`: 1,200 fresh names, each resolved and connected to at once, 8 at a
//!   time: every first SYN passes (connect < 1 s, the SYN retransmit time) and the egress
//!   `not-learned` counter stays 0, then moves when an unlearned address is tried.
//!
//! Before attaching, each test checks the lab without a filter (every name resolves and its
//! address connects), so that a broken lab cannot pass for a blocking filter.

use std::{
    net::Ipv4Addr,
    thread,
    time::{Duration, Instant},
};

use gotofw_tests::{
    Attached, Gotofw, Lab3, counter_packets,
    dlab::{
        self, DNS_SERVER, DomainLab, FORGED_ID, FORGED_SOURCE, GENUINE, Kind, LOCAL_TTL, NAMED,
        NEVER_ANSWERED, SILENT_RESOLVER,
    },
    expect_success, require_root_or_skip,
};
use serde_json::Value;

/// The prefix of this file's namespaces and links.
const PREFIX: &str = "gfwdc";

/// Builds the lab, checks it without a filter, attaches the domain-locked scenario with
/// `dns_servers`; runs `check` and detaches.
fn with_domain_lab(dns_servers: &[Ipv4Addr], check: impl FnOnce(&DomainLab, &Attached)) {
    let gotofw = Gotofw::default();
    let lab =
        Lab3::with_prefix(Some(PREFIX)).unwrap_or_else(|err| panic!("building the lab: {err:#}"));
    let dlab = DomainLab::new(&lab).unwrap_or_else(|err| panic!("the domain lab: {err:#}"));
    for (name, addr, _) in NAMED {
        let resolved = dlab.resolve(name).unwrap();
        assert_eq!(
            resolved,
            [addr],
            "the lab is broken: without a filter {name} resolves to {resolved:?}; dnsmasq:\n{}",
            dlab.dns_log()
        );
        assert!(
            dlab.connects(addr),
            "the lab is broken: without a filter {addr}:443 ({name}) does not connect"
        );
    }
    let attached = Attached::new(gotofw.clone(), lab.gw(), lab.wan());
    let args = dlab::attach_args(dns_servers);
    let mut attach = vec!["attach", lab.wan()];
    attach.extend(args.iter().map(String::as_str));
    expect_success(&gotofw.run(lab.gw(), &attach), &attach.join(" "));
    lab.flush_neighbours().unwrap();
    check(&dlab, &attached);
    let detach = attached.detach();
    assert!(
        detach.status.success(),
        "detach: {}",
        String::from_utf8_lossy(&detach.stderr)
    );
}

fn not_learned(attached: &Attached) -> u64 {
    counter_packets(&attached.status_json(), "not-learned", "egress")
}

fn status_line(status: &Value) -> String {
    format!("status: {status:#}")
}

#[test]
fn domains_allow_learned_names_only() {
    if !require_root_or_skip("domains_allow_learned_names_only") {
        return;
    }
    with_domain_lab(&[DNS_SERVER], |dlab, attached| {
        let mut wrong = Vec::new();
        let mut blocked = 0;
        for (name, addr, kind) in NAMED.iter().take(5) {
            let outcome = dlab.curl(name).unwrap();
            match (kind, outcome) {
                (Kind::Goto, Ok(_)) | (Kind::Lookalike, Err(_)) => {}
                (Kind::Goto, Err(detail)) => {
                    wrong.push(format!(
                        "{name} ({addr}): blocked ({detail}), expected HTTP 200"
                    ));
                }
                (Kind::Lookalike, Ok(detail)) => {
                    wrong.push(format!("{name} ({addr}): {detail}, expected blocked"));
                }
            }
            if *kind == Kind::Lookalike {
                blocked += 1;
                // It did resolve: the block is the filter's, not the resolver's.
                let resolved = dlab.resolve(name).unwrap();
                if resolved != [*addr] {
                    wrong.push(format!("{name} resolves to {resolved:?} under the filter"));
                }
            }
        }
        if dlab.connects(NEVER_ANSWERED) {
            wrong.push(format!("{NEVER_ANSWERED}:443, never answered, connects"));
        }
        blocked += 1;
        let status = attached.status_json();
        let counted = counter_packets(&status, "not-learned", "egress");
        if counted < blocked {
            wrong.push(format!(
                "egress not-learned counted {counted} packets, but {blocked} connections were blocked"
            ));
        }
        assert!(
            wrong.is_empty(),
            "{}\n{}",
            wrong.join("\n"),
            status_line(&status)
        );
    });
}

#[test]
fn domains_ttl_expiry_and_established_flows() {
    if !require_root_or_skip("domains_ttl_expiry_and_established_flows") {
        return;
    }
    with_domain_lab(&[DNS_SERVER], |dlab, attached| {
        // The answer's TTL (2 s, within the bounds 1-5 s) and a margin.
        let wait = Duration::from_secs(u64::from(LOCAL_TTL)) + Duration::from_millis(1500);
        let before = not_learned(attached);
        let held = dlab.hold("hold.goto.com", wait).unwrap();
        let after = not_learned(attached);
        let status = attached.status_json();
        assert_eq!(held.error, None, "{held:?}");
        assert_eq!(held.addr, Some(NAMED[5].1), "{held:?}");
        assert_eq!(held.first.as_deref(), Some("HTTP/1.1 200 OK"), "{held:?}");
        assert_eq!(
            held.fresh,
            Some(false),
            "a new connection after the TTL went through: {held:?}\n{}",
            status_line(&status)
        );
        assert_eq!(
            held.second.as_deref(),
            Some("HTTP/1.1 200 OK"),
            "the connection opened before the TTL ended did not outlive it: {held:?}\n{}",
            status_line(&status)
        );
        assert!(
            after > before,
            "the blocked new connection was not counted not-learned ({before} -> {after})"
        );
    });
}

#[test]
fn domains_spoofed_answers_teach_nothing() {
    if !require_root_or_skip("domains_spoofed_answers_teach_nothing") {
        return;
    }
    with_domain_lab(&[DNS_SERVER, SILENT_RESOLVER], |dlab, attached| {
        for addr in [FORGED_SOURCE, FORGED_ID, GENUINE] {
            assert!(
                !dlab.connects(addr),
                "{addr}:443 connects before any answer"
            );
        }
        let received = dlab.forge().unwrap();
        let start = Instant::now();
        let genuine = dlab.connects(GENUINE);
        let source = dlab.connects(FORGED_SOURCE);
        let id = dlab.connects(FORGED_ID);
        let status = attached.status_json();
        assert!(
            start.elapsed() < Duration::from_secs(u64::from(dlab::TTL_MAX)),
            "the checks took longer than the learned TTL"
        );
        assert!(
            !source,
            "an answer from {} (the query went to {SILENT_RESOLVER}) taught {FORGED_SOURCE}\n{}",
            dlab::SPOOFER,
            status_line(&status)
        );
        assert!(
            !id,
            "an answer with a wrong DNS id taught {FORGED_ID}\n{}",
            status_line(&status)
        );
        assert!(
            genuine,
            "the genuine answer after the forged ones taught nothing ({received} answers reached the client)\n{}",
            status_line(&status)
        );
    });
}

/// The fresh names the race resolves and connects to.
const RACE_NAMES: usize = dlab::FRESH_NAMES;
/// Connections at once.
const RACE_WORKERS: usize = 8;
/// A connect slower than this lost its first SYN (Linux retransmits it after 1 s).
const FIRST_SYN: Duration = Duration::from_secs(1);

#[test]
fn domains_race_first_syn() {
    if !require_root_or_skip("domains_race_first_syn") {
        return;
    }
    with_domain_lab(&[DNS_SERVER], |dlab, attached| {
        let names: Vec<String> = (0..RACE_NAMES).map(|index| dlab::fresh(index).0).collect();
        let start = Instant::now();
        let results = dlab
            .race(&names, RACE_WORKERS, Duration::from_secs(100))
            .unwrap_or_else(|err| panic!("{err:#}"));
        let elapsed = start.elapsed();
        let counted = not_learned(attached);
        let mut wrong = Vec::new();
        if results.len() != names.len() {
            wrong.push(format!(
                "the client gave up after {} of {} names",
                results.len(),
                names.len()
            ));
        }
        let mut slowest: f64 = 0.0;
        for (index, result) in results.iter().enumerate() {
            let expected = dlab::fresh(index);
            if result.name != expected.0 || result.addr != Some(expected.1) {
                wrong.push(format!("{result:?}: expected {expected:?}"));
                continue;
            }
            match (result.connect_ms, &result.error) {
                (Some(ms), None) if ms < FIRST_SYN.as_secs_f64() * 1000.0 => {
                    slowest = slowest.max(ms);
                }
                _ => wrong.push(format!("{result:?}: the first SYN did not pass")),
            }
        }
        eprintln!(
            "race: {} names resolved and connected in {:.1} s, slowest connect {slowest:.1} ms, \
             {} failures, egress not-learned {counted}",
            results.len(),
            elapsed.as_secs_f64(),
            wrong.len()
        );
        let shown: Vec<&String> = wrong.iter().take(10).collect();
        assert!(
            wrong.is_empty() && counted == 0,
            "{} problems in the race of {RACE_NAMES} names (egress not-learned {counted}):\n{}",
            wrong.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
        // The counter counts: an address never answered moves it.
        assert!(!dlab.connects(NEVER_ANSWERED), "{NEVER_ANSWERED} connects");
        thread::sleep(Duration::from_millis(100));
        assert!(
            not_learned(attached) > 0,
            "the not-learned counter does not count"
        );
    });
}
