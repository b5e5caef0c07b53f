//! Issue 13, "see it" (root only): a filter with a domain rule (`attach --scenario tcp-443
//! --https-to domains`) in a lab of its own, its learned map and DNS statistics written from
//! the test with aya (as the kernel's learning program writes them), and what `learned`,
//! `status`, `metrics`, `explain` and the drop log show of them; the kernel agrees (a learned
//! address connects, an expired one is blocked as not-learned).
//!
//! The DNS lab (a real resolver teaching the filter) is elsewhere; here the entries are put by
//! hand, so every figure shown is known. Namespaces and interfaces are named `gfwdb...`; every
//! attach has an [`Attached`] guard, every wait is bounded.

use std::{
    net::{IpAddr, SocketAddr, SocketAddrV4, TcpStream},
    path::Path,
    time::Duration,
};

use aya::maps::{HashMap, Map, MapData, PerCpuArray, PerCpuValues};
use filter_common::learn::{AddrKey, LearnedValue, stat};
use gotofw_tests::{
    Attached, Gotofw, OUTSIDE, WanLab, counter_in, expect_success, require_root_or_skip,
    tcp_echo_server, tcp_probe,
};
use serde_json::Value;

const PROBE_TIMEOUT: Duration = Duration::from_millis(400);
/// Where `gotofw metrics` serves, on the gateway namespace's loopback.
const METRICS: &str = "127.0.0.1:9469";

/// An address the test teaches (for 60 s), and one it teaches already expired.
const LEARNED: SocketAddrV4 = SocketAddrV4::new(OUTSIDE, 443);
const EXPIRED: SocketAddrV4 = SocketAddrV4::new(std::net::Ipv4Addr::new(198, 51, 100, 20), 443);
/// An IPv6 address taught for 30 s (no traffic goes to it).
const LEARNED6: &str = "2001:db8:77::7";

/// CLOCK_MONOTONIC_COARSE, the kernel's clock of learned entries, in nanoseconds.
fn now_ns() -> u64 {
    filter_user::loader::monotonic_coarse_ns()
}

fn key(addr: IpAddr) -> AddrKey {
    filter_user::loader::learned::addr_key(addr)
}

/// Writes a learned entry for domain set 0 into the pinned map of the filter in `dir`.
fn teach(dir: &Path, addr: IpAddr, pattern: u16, expires_ns: u64, ttl: u32) {
    let data = MapData::from_pin(dir.join("learned")).expect("the pinned learned map");
    let mut map: HashMap<_, AddrKey, LearnedValue> =
        HashMap::try_from(Map::LruHashMap(data)).unwrap();
    let mut value = LearnedValue {
        learned_ns: now_ns(),
        ttl,
        ..LearnedValue::default()
    };
    value.expires_ns[0] = expires_ns;
    value.patterns[0] = pattern;
    map.insert(key(addr), value, 0).unwrap();
}

/// Writes `per_cpu(cpu)` into slot `slot` of the pinned DNS statistics of the filter in `dir`.
fn count(dir: &Path, slot: u32, per_cpu: impl Fn(usize) -> u64) {
    let data = MapData::from_pin(dir.join("dns_stats")).expect("the pinned dns_stats map");
    let mut map: PerCpuArray<_, u64> = PerCpuArray::try_from(Map::PerCpuArray(data)).unwrap();
    let cpus = aya::util::nr_cpus().unwrap();
    let values = PerCpuValues::try_from((0..cpus).map(&per_cpu).collect::<Vec<_>>()).unwrap();
    map.set(slot, values, 0).unwrap();
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The rows of `learned --json` for the first interface, as (address, set, pattern, expired,
/// flows).
fn rows(v: &Value) -> Vec<(String, String, String, bool, u64)> {
    v["interfaces"][0]["learned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["address"].as_str().unwrap().to_owned(),
                r["set"].as_str().unwrap().to_owned(),
                r["pattern"].as_str().unwrap().to_owned(),
                r["expired"].as_bool().unwrap(),
                r["flows"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Scrapes `gotofw metrics` in `lab`'s gateway namespace; `None` while it does not answer.
fn scrape(lab: &WanLab) -> Option<String> {
    let out = lab
        .gw()
        .exec(
            "curl",
            [
                "--silent",
                "--fail",
                "--max-time",
                "5",
                &format!("http://{METRICS}/metrics"),
            ],
        )
        .expect("run curl (installed by `cargo xtask setup`)");
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap())
}

#[test]
#[expect(clippy::too_many_lines, reason = "one lab, every view of it in order")]
fn issue13_learned_status_metrics_explain_and_log_show_what_domain_rules_learned() {
    if !require_root_or_skip(
        "issue13_learned_status_metrics_explain_and_log_show_what_domain_rules_learned",
    ) {
        return;
    }
    let lab = WanLab::named(["gfwdb"; 4]).unwrap();
    let _server = tcp_echo_server(lab.inet(), SocketAddr::V4(LEARNED)).unwrap();
    let gotofw = Gotofw::default();
    let wan = lab.wan().to_owned();
    let attached = gotofw.attach(
        lab.gw(),
        &wan,
        &["--scenario", "tcp-443", "--https-to", "domains"],
    );
    let dir = attached.pin_dir();
    let run = |args: &[&str]| expect_success(&gotofw.run(lab.gw(), args), &args.join(" "));

    // Nothing learned: the kernel blocks HTTPS as not-learned, and every view is empty.
    assert!(!tcp_probe(lab.gw(), SocketAddr::V4(LEARNED), PROBE_TIMEOUT));
    let status = attached.status_json();
    assert!(
        counter_in(&status, "not-learned", "egress").0 >= 1,
        "{status}"
    );
    let dns = &status["interfaces"][0]["dns"];
    assert_eq!(dns["domain_sets"], serde_json::json!(["goto"]), "{status}");
    assert_eq!(dns["learned_now"], 0, "{status}");
    assert!(rows(&json(&run(&["learned", &wan, "--json"]))).is_empty());
    let explained = json(&run(&[
        "explain",
        &wan,
        "tcp",
        &LEARNED.to_string(),
        "--json",
    ]));
    assert_eq!(
        (&explained["verdict"], &explained["rule"]),
        (&Value::from("block"), &Value::from("not-learned")),
        "{explained}"
    );

    // Teach: LEARNED for a minute, EXPIRED a second ago, LEARNED6 for 30 s; count DNS figures.
    let goto = filter_user::domain_sets::builtin("goto").unwrap();
    let pattern = |text: &str| u16::try_from(goto.iter().position(|p| p.text() == text).unwrap());
    let (wildcard, rtc) = (
        pattern("*.goto.com").unwrap(),
        pattern("*.goto-rtc.com").unwrap(),
    );
    let now = now_ns();
    teach(
        &dir,
        IpAddr::V4(*LEARNED.ip()),
        wildcard,
        now + 60_000_000_000,
        60,
    );
    teach(&dir, IpAddr::V4(*EXPIRED.ip()), rtc, now - 1_000_000_000, 5);
    teach(
        &dir,
        LEARNED6.parse().unwrap(),
        rtc,
        now + 30_000_000_000,
        30,
    );
    let cpus = aya::util::nr_cpus().unwrap() as u64;
    let figures = [
        (stat::QUERIES, 7),
        (stat::ANSWERS, 5),
        (stat::LEARNED, 9),
        (stat::REFUSED_UNSOLICITED, 3),
        (stat::REFUSED_TRUNCATED, 2),
        (stat::REFUSED_NO_SET, 1),
        (stat::LEARN_FAILED, 4),
        (stat::MISSED, 6),
    ];
    for (slot, n) in figures {
        // Spread over the CPUs, as the per-CPU counters are: the views show the sum.
        count(&dir, slot, |cpu| n * (cpu as u64 + 1));
    }
    let sum = |n: u64| n * cpus * (cpus + 1) / 2;

    // The kernel agrees: the learned address connects (and its flow is held open), the expired
    // one is blocked as not-learned.
    let held = lab
        .gw()
        .run(|| TcpStream::connect_timeout(&SocketAddr::V4(LEARNED), PROBE_TIMEOUT))
        .expect("https to a learned address");
    assert!(!tcp_probe(lab.gw(), SocketAddr::V4(EXPIRED), PROBE_TIMEOUT));

    // learned: the two unexpired pairs, with their patterns and the flow; --all adds the expired.
    let learned = json(&run(&["learned", &wan, "--json"]));
    assert_eq!(
        rows(&learned),
        [
            (
                OUTSIDE.to_string(),
                "goto".into(),
                "*.goto.com".into(),
                false,
                1
            ),
            (
                LEARNED6.into(),
                "goto".into(),
                "*.goto-rtc.com".into(),
                false,
                0
            ),
        ],
        "{learned}"
    );
    let first = &learned["interfaces"][0]["learned"][0];
    let expires = first["expires_in"].as_f64().unwrap();
    assert!((50.0..=60.0).contains(&expires), "{first}");
    assert_eq!(first["ttl"], 60, "{first}");
    let every = rows(&json(&run(&["learned", &wan, "--json", "--all"])));
    assert_eq!(every.len(), 3, "{every:?}");
    assert!(
        every.contains(&(
            EXPIRED.ip().to_string(),
            "goto".into(),
            "*.goto-rtc.com".into(),
            true,
            0
        )),
        "{every:?}"
    );
    let text = run(&["learned", &wan]);
    assert!(
        text.starts_with(&format!("{wan}: 2 learned (sets goto; table of ")),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&OUTSIDE.to_string()))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("*.goto.com") && line.contains("60s") && line.trim_end().ends_with('1'),
        "{line}"
    );
    assert!(!text.contains(&EXPIRED.ip().to_string()), "{text}");
    assert!(run(&["learned", &wan, "--all"]).contains("expired"));
    let all_filters = json(&run(&["learned", "--json"]));
    assert!(
        all_filters["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["interface"] == wan.as_str()),
        "{all_filters}"
    );

    // status: the summed figures, every reason, the learned table now.
    let status = attached.status_json();
    let dns = &status["interfaces"][0]["dns"];
    for (field, slot) in [
        ("queries", stat::QUERIES),
        ("answers", stat::ANSWERS),
        ("learned", stat::LEARNED),
        ("learn_failed", stat::LEARN_FAILED),
        ("missed", stat::MISSED),
    ] {
        let n = figures.iter().find(|(s, _)| *s == slot).unwrap().1;
        assert_eq!(dns[field].as_u64(), Some(sum(n)), "{field}: {dns}");
    }
    assert_eq!(
        dns["refused"]["unsolicited"].as_u64(),
        Some(sum(3)),
        "{dns}"
    );
    assert_eq!(dns["refused"]["truncated"].as_u64(), Some(sum(2)), "{dns}");
    assert_eq!(dns["refused"]["no-set"].as_u64(), Some(sum(1)), "{dns}");
    assert_eq!(dns["refused"]["cut"], 0, "{dns}");
    assert_eq!(dns["refused"].as_object().unwrap().len(), 11, "{dns}");
    assert_eq!(
        (dns["learned_now"].as_u64(), dns["learned_entries"].as_u64()),
        (Some(2), Some(3))
    );
    let not_learned = counter_in(&status, "not-learned", "egress").0;
    assert!(not_learned >= 2, "{status}");
    let text = run(&["status", &wan]);
    assert!(
        text.contains(&format!(
            "  dns (sets goto): {} queries, {} answers learned from, {} addresses learned (2 now, table of ",
            sum(7),
            sum(5),
            sum(9)
        )),
        "{text}"
    );
    assert!(text.contains(&format!("unsolicited {}", sum(3))), "{text}");

    // explain IFACE asks the pinned learned map; explain --domain names the set and pattern and
    // lists the addresses learned for it.
    for (dst, verdict, rule) in [
        (LEARNED, "allow", "https"),
        (EXPIRED, "block", "not-learned"),
    ] {
        let e = json(&run(&["explain", &wan, "tcp", &dst.to_string(), "--json"]));
        assert_eq!(
            (e["verdict"].as_str(), e["rule"].as_str()),
            (Some(verdict), Some(rule)),
            "{dst}: {e}"
        );
    }
    let e = json(&run(&[
        "explain",
        "--domain",
        "WWW.GoTo.com",
        &wan,
        "--json",
    ]));
    assert_eq!(
        e["matches"],
        serde_json::json!([{"set": "goto", "pattern": "*.goto.com"}]),
        "{e}"
    );
    let listed: Vec<(&str, bool)> = e["learned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["address"].as_str().unwrap(),
                l["expired"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed.len(), 3, "{e}");
    assert!(
        listed.contains(&(OUTSIDE.to_string().as_str(), false)),
        "{e}"
    );
    let text = run(&["explain", "--domain", "www.goto.com", &wan]);
    assert!(
        text.starts_with(
            "www.goto.com: in goto (by *.goto.com) of the domain sets of the filter of"
        ),
        "{text}"
    );
    assert!(text.contains("2 addresses learned for it now"), "{text}");
    let text = run(&["explain", "--domain", "evilgoto.com", &wan]);
    assert!(text.contains("in no set"), "{text}");

    // metrics: the same figures, one series per reason.
    let mut daemon = gotofw.spawn(lab.gw(), &["metrics", "--listen", METRICS, &wan], &[]);
    daemon
        .wait_for_stderr("serving metrics", Duration::from_secs(10))
        .expect("gotofw metrics starts");
    let body = scrape(&lab).expect("a scrape");
    assert!(body.ends_with("# EOF\n"), "{body}");
    let w = format!("interface=\"{wan}\"");
    for line in [
        "# TYPE gotofw_dns_answers_refused counter".to_owned(),
        format!("gotofw_dns_queries_total{{{w}}} {}", sum(7)),
        format!("gotofw_dns_answers_learned_total{{{w}}} {}", sum(5)),
        format!("gotofw_dns_addresses_learned_total{{{w}}} {}", sum(9)),
        format!("gotofw_dns_learn_failed_total{{{w}}} {}", sum(4)),
        format!("gotofw_dns_answers_missed_total{{{w}}} {}", sum(6)),
        format!(
            "gotofw_dns_answers_refused_total{{{w},reason=\"unsolicited\"}} {}",
            sum(3)
        ),
        format!("gotofw_dns_answers_refused_total{{{w},reason=\"not-answer\"}} 0"),
        format!("gotofw_dns_learned_addresses{{{w}}} 2"),
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "{line} missing in:\n{body}"
        );
    }
    let reasons = body
        .lines()
        .filter(|l| l.starts_with("gotofw_dns_answers_refused_total{"))
        .count();
    assert_eq!(reasons, 11, "{body}");
    assert!(
        body.lines().any(|l| l.starts_with(&format!(
            "gotofw_rule_packets_total{{{w},rule=\"not-learned\",kind=\"fixed\",action=\"block\",direction=\"egress\"}} "
        ))),
        "{body}"
    );
    drop(daemon);

    // The drop log names the domain rule a not-learned drop wanted (the ring still holds the
    // samples of the first probe's SYNs: the one to EXPIRED is looked for).
    for json_mode in [true, false] {
        let mut args = vec!["log", wan.as_str(), "--timeout", "3"];
        if json_mode {
            args.push("--json");
        }
        let reader = gotofw.spawn(lab.gw(), &args, &[]);
        std::thread::sleep(Duration::from_millis(500));
        assert!(!tcp_probe(lab.gw(), SocketAddr::V4(EXPIRED), PROBE_TIMEOUT));
        let out = reader.wait(Duration::from_secs(20));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let to_expired = format!("-> {EXPIRED}");
        if json_mode {
            let sample = text
                .lines()
                .map(json)
                .find(|s| s["dst"] == EXPIRED.to_string().as_str())
                .unwrap_or_else(|| panic!("no sample to {EXPIRED}:\n{text}"));
            assert_eq!(sample["rule"], "not-learned", "{sample}");
            assert_eq!(sample["domain_rule"], "https: domains goto", "{sample}");
        } else {
            let line = text
                .lines()
                .find(|l| l.contains(&to_expired))
                .unwrap_or_else(|| panic!("no sample to {EXPIRED}:\n{text}"));
            assert!(
                line.contains("  not-learned (https: domains goto)  "),
                "{line}"
            );
        }
    }
    drop(held);
    drop(attached);
}

/// A filter without domain rules has empty learned and DNS views, and its metrics carry the
/// DNS series at zero (stable series whatever the rule set).
#[test]
fn issue13_a_filter_without_domain_rules_shows_nothing_learned_and_zero_series() {
    if !require_root_or_skip(
        "issue13_a_filter_without_domain_rules_shows_nothing_learned_and_zero_series",
    ) {
        return;
    }
    let lab = WanLab::named(["gfwdb"; 4]).unwrap();
    let gotofw = Gotofw::default();
    let wan = lab.wan().to_owned();
    let attached: Attached<'_> = gotofw.attach(lab.gw(), &wan, &["--scenario", "udp-turn"]);
    let run = |args: &[&str]| expect_success(&gotofw.run(lab.gw(), args), &args.join(" "));
    let learned = json(&run(&["learned", &wan, "--json"]));
    assert_eq!(
        learned["interfaces"][0]["domain_sets"],
        serde_json::json!([])
    );
    assert!(rows(&learned).is_empty());
    assert!(run(&["learned", &wan]).contains("no domain rules"));
    let status = attached.status_json();
    let dns = &status["interfaces"][0]["dns"];
    assert_eq!(
        (dns["queries"].as_u64(), dns["learned_now"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(!run(&["status", &wan]).contains("dns ("));
    let text = run(&["explain", "--domain", "www.goto.com", &wan]);
    assert!(text.contains("has no domain rules"), "{text}");
    let mut daemon = gotofw.spawn(lab.gw(), &["metrics", "--listen", METRICS, &wan], &[]);
    daemon
        .wait_for_stderr("serving metrics", Duration::from_secs(10))
        .expect("gotofw metrics starts");
    let body = scrape(&lab).expect("a scrape");
    let w = format!("interface=\"{wan}\"");
    for line in [
        format!("gotofw_dns_queries_total{{{w}}} 0"),
        format!("gotofw_dns_answers_refused_total{{{w},reason=\"no-set\"}} 0"),
        format!("gotofw_dns_learned_addresses{{{w}}} 0"),
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "{line} missing in:\n{body}"
        );
    }
}
