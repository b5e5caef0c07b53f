//! `gotofw pac` output run in a real PAC engine: Debian's python3-pacparser (SpiderMonkey with
//! the PAC helper functions), which `cargo xtask setup` installs. Each test generates a PAC with
//! the binary and asks the engine's `FindProxyForURL` about GoTo hosts, other hosts, lookalike
//! names and case variants; the answers must also agree with the Rust matcher in
//! `filter_user::domains`.

use std::{
    env, fs,
    io::Write as _,
    path::PathBuf,
    process::{Command, Output, Stdio},
};

use filter_user::domains::{self, Match};

/// Debian's interpreter: python3-pacparser installs into its dist-packages, which another
/// python3 earlier on PATH (pyenv, a venv) would not see.
const PYTHON: &str = "/usr/bin/python3";

const PROXY: &str = "PROXY proxy.example:3128";

fn gotofw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gotofw"))
        .args(args)
        .output()
        .expect("run gotofw")
}

/// The PAC `gotofw pac ARGS` prints.
fn pac(args: &[&str]) -> String {
    let out = gotofw(&[&["pac"][..], args].concat());
    assert!(
        out.status.success(),
        "gotofw pac {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("PAC is UTF-8")
}

/// Whether the PAC engine can run here; when it cannot, says why, and panics under CI=true.
fn engine_available() -> bool {
    let ok = Command::new(PYTHON)
        .args(["-W", "ignore", "-c", "import pacparser"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let why = format!(
            "{PYTHON} cannot import pacparser: run `cargo xtask setup` (installs python3-pacparser)"
        );
        assert!(env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipped: {why}");
    }
    ok
}

/// `FindProxyForURL("https://HOST/", HOST)` in pacparser for each host, in order.
fn find_proxy(pac: &str, hosts: &[&str]) -> Vec<String> {
    const SCRIPT: &str = r#"
import json, sys, pacparser
request = json.load(sys.stdin)
pacparser.init()
pacparser.parse_pac_string(request["pac"])
answers = [pacparser.find_proxy("https://%s/" % h, h) for h in request["hosts"]]
pacparser.cleanup()
json.dump(answers, sys.stdout)
"#;
    let mut child = Command::new(PYTHON)
        .args(["-W", "ignore", "-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    let request = serde_json::json!({ "pac": pac, "hosts": hosts });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "pacparser failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("pacparser answers")
}

/// Asks the engine about every host and checks each answer against `expected(host)`, and that
/// the engine and `domains::find` agree on which hosts are GoTo's.
fn check(pac: &str, training: bool, goto_route: &str, other_route: &str, hosts: &[&str]) {
    let answers = find_proxy(pac, hosts);
    let mut wrong = Vec::new();
    for (host, answer) in hosts.iter().zip(&answers) {
        let is_goto = domains::find(host, training).is_some();
        let expected = if is_goto { goto_route } else { other_route };
        if answer != expected {
            wrong.push(format!("{host}: engine {answer:?}, expected {expected:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Hosts derived from every seed domain: the name, names below it, case variants, a trailing
/// dot, and lookalikes that must not match. Returns (should match, must not match).
fn derived_hosts(training: bool) -> (Vec<String>, Vec<String>) {
    let mut goto = Vec::new();
    let mut other = Vec::new();
    for d in domains::selected(training) {
        let n = d.name;
        goto.extend([
            n.to_owned(),
            n.to_ascii_uppercase(),
            format!("{n}."),
            mixed_case(n),
        ]);
        let below = [
            format!("x.{n}"),
            format!("a.b-c.{}", n.to_ascii_uppercase()),
        ];
        match d.matching {
            Match::Suffix => goto.extend(below),
            Match::Exact => other.extend(below),
        }
        other.extend([
            format!("x{n}"),
            format!("not{n}"),
            format!("{n}.example.net"),
            format!("x.{n}.example.net"),
            format!("{n}x"),
            n[1..].to_owned(),
        ]);
    }
    (goto, other)
}

fn mixed_case(s: &str) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

const TRAINING_HOSTS: [&str; 6] = [
    "gototraining.com",
    "global.gototraining.com",
    "polls.firebase.app",
    "apis.google.com",
    "www.youtube.com",
    "rr3---sn-abc.googlevideo.com",
];

#[test]
fn essential_domains_go_to_the_proxy_and_nothing_else_does() {
    if !engine_available() {
        return;
    }
    let text = pac(&["--proxy", "proxy.example:3128"]);
    let (goto, other) = derived_hosts(false);
    let answers = find_proxy(&text, &strs(&goto));
    assert!(answers.iter().all(|a| a == PROXY), "{goto:?}\n{answers:?}");
    let answers = find_proxy(&text, &strs(&other));
    assert!(
        answers.iter().all(|a| a == "DIRECT"),
        "{other:?}\n{answers:?}"
    );

    let named = [
        "goto.com",
        "www.goto.com",
        "GoTo.Com",
        "X.GOTO-RTC.COM",
        "global.gotomeeting.com",
        "authentication.logmeininc.com",
        "webrtc.jive.com",
        "getgo.com",
        "a.expertcity.com.",
    ];
    assert!(find_proxy(&text, &named).iter().all(|a| a == PROXY));
    let lookalikes = [
        "goto.com.example.net",
        "notgoto.com",
        "xgoto.com",
        "goto.co",
        "goto-rtc.com.example.org",
        "my-jive.com",
        "gotomeeting.com.evil.example",
        "example.com",
        "google.com",
        "192.0.2.1",
        "2001:db8::1",
        "localhost",
    ];
    assert!(find_proxy(&text, &lookalikes).iter().all(|a| a == "DIRECT"));
    // Without --training the Training domains are other traffic.
    assert!(
        find_proxy(&text, &TRAINING_HOSTS)
            .iter()
            .all(|a| a == "DIRECT")
    );
    let all: Vec<&str> = [&named[..], &lookalikes, &TRAINING_HOSTS].concat();
    check(&text, false, PROXY, "DIRECT", &all);
}

#[test]
fn training_domains_only_with_training() {
    if !engine_available() {
        return;
    }
    let text = pac(&["--proxy", "proxy.example:3128", "--training"]);
    let (goto, other) = derived_hosts(true);
    let answers = find_proxy(&text, &strs(&goto));
    assert!(answers.iter().all(|a| a == PROXY), "{goto:?}\n{answers:?}");
    let answers = find_proxy(&text, &strs(&other));
    assert!(
        answers.iter().all(|a| a == "DIRECT"),
        "{other:?}\n{answers:?}"
    );
    assert!(
        find_proxy(&text, &TRAINING_HOSTS)
            .iter()
            .all(|a| a == PROXY)
    );
    // apis.google.com is listed without a wildcard: nothing else under google.com.
    let not_listed = [
        "google.com",
        "www.google.com",
        "drive.google.com",
        "x.apis.google.com",
        "apis.google.com.example.net",
        "youtube.com.example.net",
        "notyoutube.com",
    ];
    assert!(find_proxy(&text, &not_listed).iter().all(|a| a == "DIRECT"));
    let all: Vec<&str> = [
        &TRAINING_HOSTS[..],
        &not_listed,
        &["goto.com", "APIS.GOOGLE.COM"],
    ]
    .concat();
    check(&text, true, PROXY, "DIRECT", &all);
}

#[test]
fn direct_keeps_goto_away_from_the_proxy_for_the_rest() {
    if !engine_available() {
        return;
    }
    let text = pac(&["--direct", "--else", "PROXY dpi.example:8080"]);
    let hosts = [
        "goto.com",
        "x.goto-rtc.com",
        "example.com",
        "notgoto.com",
        "www.youtube.com",
    ];
    assert_eq!(
        find_proxy(&text, &hosts),
        [
            "DIRECT",
            "DIRECT",
            "PROXY dpi.example:8080",
            "PROXY dpi.example:8080",
            "PROXY dpi.example:8080"
        ]
    );
    check(&text, false, "DIRECT", "PROXY dpi.example:8080", &hosts);

    let text = pac(&[
        "--proxy",
        "[2001:db8::8]:3128",
        "--else",
        "proxy 192.0.2.9:8080",
    ]);
    assert_eq!(
        find_proxy(&text, &["goto.com", "example.com"]),
        ["PROXY [2001:db8::8]:3128", "PROXY 192.0.2.9:8080"]
    );
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = env::temp_dir().join(format!("gotofw-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn output_file_holds_what_stdout_would() {
    let dir = Scratch::new("pac-output");
    let file = dir.0.join("proxy.pac");
    let out = gotofw(&[
        "pac",
        "--proxy",
        "proxy.example:3128",
        "--training",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("12 GoTo domains go PROXY proxy.example:3128"),
        "{summary}"
    );
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        pac(&["--proxy", "proxy.example:3128", "--training"])
    );
    let leftovers: Vec<_> = fs::read_dir(&dir.0).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "temporary file left behind");
}

#[test]
fn bad_pac_input_names_the_value_and_exits_2() {
    let dir = Scratch::new("pac-bad");
    let file = dir.0.join("proxy.pac");
    let file = file.to_str().unwrap();
    for (args, needles) in [
        (
            &["--proxy", "proxy.example:0"][..],
            &["'proxy.example:0'", "1-65535"][..],
        ),
        (
            &["--proxy", "proxy.example:65536"],
            &["'proxy.example:65536'", "1-65535"],
        ),
        (
            &["--proxy", "proxy.example"],
            &["'proxy.example'", "HOST:PORT"],
        ),
        (
            &["--proxy", "2001:db8::1:3128"],
            &["'2001:db8::1:3128'", "[ADDR]:PORT"],
        ),
        (&["--proxy", "a\"b:80"], &["'a\"b:80'", "DNS name"]),
        (
            &["--proxy", "p.example:1", "--else", "SOCKS s:1"],
            &["--else 'SOCKS s:1'", "DIRECT"],
        ),
        (
            &["--proxy", "p.example:1", "--else", "PROXY s:0"],
            &["--else 's:0'", "1-65535"],
        ),
        (&[], &["--proxy HOST:PORT", "--direct"]),
        (&["--direct"], &["'DIRECT'", "--else"]),
    ] {
        let line: Vec<&str> = [&["pac"][..], args, &["--output", file]].concat();
        let out = gotofw(&line);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{line:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{line:?} printed to stdout");
        assert_eq!(stderr.lines().count(), 1, "{line:?}: {stderr}");
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "{line:?}: {needle:?} not in {stderr}"
            );
        }
        assert!(!PathBuf::from(file).exists(), "{line:?} wrote the file");
    }
}

#[test]
fn domains_lists_the_seed_tables() {
    let out = gotofw(&["domains", "--format", "json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let patterns: Vec<&str> = v["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["pattern"].as_str().unwrap())
        .collect();
    assert_eq!(
        patterns,
        [
            "*.goto.com",
            "*.goto-rtc.com",
            "*.jive.com",
            "*.getgo.com",
            "*.gotomeeting.com",
            "*.logmeininc.com",
            "*.expertcity.com"
        ]
    );
    let out = gotofw(&["domains", "--training", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["domains"].as_array().unwrap().len(), 12);
    assert_eq!(v["domains"][10]["pattern"], "*.youtube.com");
    assert_eq!(v["domains"][10]["use"], "sharing YouTube videos");

    let text = String::from_utf8(gotofw(&["domains", "--training"]).stdout).unwrap();
    for d in &domains::ALL {
        assert!(
            text.contains(&d.pattern()),
            "{} missing:\n{text}",
            d.pattern()
        );
    }
    let out = gotofw(&["domains", "--format", "yaml"]);
    assert_eq!(out.status.code(), Some(2));
    for cmd in ["domains", "pac"] {
        let help = String::from_utf8(gotofw(&[cmd, "--help"]).stdout).unwrap();
        assert!(help.contains("EXAMPLES:"), "{cmd} --help:\n{help}");
    }
}
