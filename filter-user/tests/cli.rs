//! The `gotofw` binary as an operator meets it: help, listings, explain, and every kind of bad
//! input, which must give one line naming the value, exit code 2, and change nothing.

use std::{
    fs,
    path::Path,
    process::{Command, Output},
};

fn gotofw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gotofw"))
        .args(args)
        .output()
        .expect("run gotofw")
}

fn is_root() -> bool {
    // SAFETY: no arguments, no side effects.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `args`, expects exit code 2 and exactly one stderr line, `gotofw: error: ...`,
/// containing every needle (clap's errors included); returns that line.
fn usage_error(args: &[&str], needles: &[&str]) -> String {
    let out = gotofw(args);
    one_error_line(&out, &format!("{args:?}"), needles)
}

/// The one line `gotofw: error: ...` of `out` (exit code 2, nothing on standard output),
/// checked to contain every needle.
fn one_error_line(out: &Output, what: &str, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
    assert!(out.stdout.is_empty(), "{what} printed to stdout");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: not one line: {stderr:?}");
    let line = lines[0];
    assert!(
        line.starts_with("gotofw: error: "),
        "{what}: not gotofw's error: {line:?}"
    );
    for needle in needles {
        assert!(line.contains(needle), "{what}: {needle:?} not in {line:?}");
    }
    line.to_owned()
}

#[test]
fn help_reads_like_a_man_page() {
    for cmd in [
        &["--help"][..],
        &["attach", "--help"],
        &["status", "--help"],
        &["detach", "--help"],
        &["explain", "--help"],
        &["scenarios", "--help"],
    ] {
        let out = gotofw(cmd);
        assert!(out.status.success(), "{cmd:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("EXAMPLES:"),
            "{cmd:?} has no examples:\n{text}"
        );
    }
    let attach = String::from_utf8_lossy(&gotofw(&["attach", "--help"]).stdout).into_owned();
    for word in [
        "--scenario",
        "--turn-dst",
        "--network",
        "--replace-networks",
        "--no-allow",
        "--stateless",
        "--xdp-mode",
        "--replace",
    ] {
        assert!(attach.contains(word), "attach --help lacks {word}");
    }
}

#[test]
fn scenarios_lists_the_seed() {
    let out = gotofw(&["scenarios", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["no-restrictions", "udp-turn", "tcp-turn", "tcp-443"]
    );
    let udp_turn = &v["scenarios"][1];
    assert_eq!(udp_turn["rules"][0]["protocol"], "udp");
    assert_eq!(udp_turn["rules"][0]["ports"], "3478");
    assert_eq!(
        udp_turn["rules"][0]["networks"].as_array().unwrap().len(),
        5
    );
    assert_eq!(udp_turn["rules"][1]["ports"], "443");
    assert_eq!(udp_turn["default_action"], "block");
    assert_eq!(v["scenarios"][0]["rules"][0]["ports"], "45000-49999");
    let allowances: Vec<&str> = v["allowances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        allowances,
        [
            "non-ip",
            "icmpv6-nd",
            "icmp-errors",
            "pppoe-control",
            "dhcp",
            "dns",
            "ntp"
        ]
    );
    let text = String::from_utf8_lossy(&gotofw(&["scenarios"]).stdout).into_owned();
    assert!(
        text.contains("68.64.0.0/19") && text.contains("(default)"),
        "{text}"
    );
}

#[test]
fn explain_gives_the_verdict_and_rule() {
    let json = |args: &[&str]| -> serde_json::Value {
        let out = gotofw(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = json(&[
        "explain",
        "--scenario",
        "udp-turn",
        "udp",
        "68.64.0.10:3478",
        "--json",
    ]);
    assert_eq!(
        (v["verdict"].as_str(), v["rule"].as_str()),
        (Some("allow"), Some("turn-udp"))
    );
    assert_eq!(v["reply"]["verdict"], "allow");
    let v = json(&[
        "explain",
        "--scenario",
        "udp-turn",
        "udp",
        "203.0.113.10:3478",
        "--json",
    ]);
    assert_eq!(
        (v["verdict"].as_str(), v["rule"].as_str()),
        (Some("block"), Some("default-block"))
    );
    let v = json(&[
        "explain",
        "--scenario",
        "udp-turn",
        "--turn-dst",
        "any",
        "udp",
        "203.0.113.10:3478",
        "--json",
    ]);
    assert_eq!(v["verdict"], "allow");
    let v = json(&[
        "explain",
        "--scenario",
        "tcp-turn",
        "--network",
        "2001:db8:77::/48",
        "tcp",
        "[2001:db8:77::1]:3478",
        "--json",
    ]);
    assert_eq!(
        (v["verdict"].as_str(), v["rule"].as_str()),
        (Some("allow"), Some("turn-tcp"))
    );
    let v = json(&[
        "explain",
        "--scenario",
        "tcp-turn",
        "--network",
        "198.51.100.0/24",
        "--replace-networks",
        "tcp",
        "68.64.0.1:3478",
        "--json",
    ]);
    assert_eq!(v["verdict"], "block");
    let text = gotofw(&[
        "explain",
        "--scenario",
        "tcp-443",
        "tcp",
        "[2001:db8::1]:443",
    ]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("allow"));
}

#[test]
fn bad_input_names_the_value_and_exits_2() {
    usage_error(
        &[
            "explain",
            "--scenario",
            "udp_turn",
            "udp",
            "68.64.0.10:3478",
        ],
        &["udp_turn", "no-restrictions", "tcp-443"],
    );
    usage_error(
        &[
            "explain",
            "--scenario",
            "tcp-turn",
            "--network",
            "68.64.0.0/33",
            "tcp",
            "68.64.0.10:3478",
        ],
        &["68.64.0.0/33", "CIDR"],
    );
    usage_error(
        &[
            "explain",
            "--scenario",
            "tcp-turn",
            "--network",
            "68.64.0.1/19",
            "tcp",
            "68.64.0.10:3478",
        ],
        &["68.64.0.1/19", "68.64.0.0/19"],
    );
    usage_error(
        &[
            "explain",
            "--scenario",
            "tcp-turn",
            "--network",
            "2001:db8::/129",
            "tcp",
            "68.64.0.10:3478",
        ],
        &["2001:db8::/129"],
    );
    usage_error(
        &[
            "explain",
            "--scenario",
            "tcp-turn",
            "--network",
            "turn",
            "tcp",
            "68.64.0.10:3478",
        ],
        &["'turn'"],
    );
    usage_error(
        &[
            "explain",
            "--scenario",
            "tcp-443",
            "--network",
            "198.51.100.0/24",
            "tcp",
            "68.64.0.10:443",
        ],
        &["198.51.100.0/24", "tcp-443"],
    );
    usage_error(
        &[
            "explain",
            "--scenario",
            "tcp-turn",
            "--turn-dst",
            "any",
            "tcp",
            "68.64.0.10:3478",
        ],
        &["--turn-dst any", "tcp-turn"],
    );
    usage_error(
        &[
            "explain",
            "--scenario",
            "udp-turn",
            "--replace-networks",
            "udp",
            "68.64.0.10:3478",
        ],
        &["--replace-networks", "--network"],
    );
    usage_error(
        &[
            "explain",
            "--scenario",
            "udp-turn",
            "udp",
            "68.64.0.10:65536",
        ],
        &["68.64.0.10:65536", "1-65535"],
    );
    usage_error(
        &["explain", "--scenario", "udp-turn", "udp", "68.64.0.10:0"],
        &["68.64.0.10:0"],
    );
    usage_error(
        &["explain", "--scenario", "udp-turn", "udp", "68.64.0.10"],
        &["68.64.0.10", "ADDR:PORT"],
    );
    usage_error(
        &["explain", "--scenario", "udp-turn", "icmp", "68.64.0.10:1"],
        &["icmp"],
    );
    usage_error(
        &[
            "explain",
            "--scenario",
            "udp-turn",
            "--no-allow",
            "ssh",
            "udp",
            "68.64.0.10:3478",
        ],
        &["ssh"],
    );
    usage_error(
        &[
            "explain",
            "--scenario",
            "udp-turn",
            "--dns-server",
            "dns.example",
            "udp",
            "68.64.0.10:3478",
        ],
        &["dns.example", "--dns-server"],
    );
    usage_error(
        &[
            "attach",
            "gfw-nosuch0",
            "--scenario",
            "tcp-443",
            "--xdp-mode",
            "fast",
            "--stateless",
        ],
        &["fast"],
    );
}

#[test]
fn attach_and_detach_refuse_bad_targets_without_touching_anything() {
    let missing = format!("gfwx{}", std::process::id() % 100_000);
    let pins = Path::new("/sys/fs/bpf/gotofw").join(&missing);
    usage_error(
        &["attach", &missing, "--scenario", "tcp-443"],
        &[&missing, "ip link"],
    );
    usage_error(
        &[
            "attach",
            &missing,
            "--scenario",
            "tcp-443",
            "--stateless",
            "--udp-timeout",
            "5",
        ],
        &["--udp-timeout", "--stateless"],
    );
    usage_error(
        &[
            "attach",
            &missing,
            "--scenario",
            "tcp-443",
            "--flow-table-size",
            "10",
        ],
        &["10"],
    );
    usage_error(
        &["attach", &missing, "--scenario", "tcp-443", "--stateless"],
        &[&missing, "ip link"],
    );
    usage_error(
        &[
            "attach",
            "a-name-far-too-long-for-linux",
            "--scenario",
            "tcp-443",
            "--stateless",
        ],
        &["a-name-far-too-long-for-linux"],
    );
    usage_error(
        &[
            "attach",
            "lo",
            "--scenario",
            "udp-turn",
            "--network",
            "1.2.3.4/40",
            "--stateless",
        ],
        &["1.2.3.4/40"],
    );
    assert!(!pins.exists());
    if is_root() {
        usage_error(&["detach", &missing], &[&missing, "no gotofw filter"]);
        usage_error(&["status", &missing], &[&missing, "no gotofw filter"]);
        usage_error(
            &[
                "attach",
                "lo",
                "--scenario",
                "tcp-443",
                "--stateless",
                "--replace",
            ],
            &["--replace", "lo"],
        );
        assert!(!Path::new("/sys/fs/bpf/gotofw/lo").exists());
    }
    assert!(!pins.exists());
}

#[test]
fn unprivileged_runs_say_which_capability_is_missing() {
    if !is_root() {
        usage_error(&["status"], &["CAP_"]);
        return;
    }
    // Drop to nobody with no capabilities.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_gotofw"))
        .args(["attach", "lo", "--scenario", "tcp-443", "--stateless"])
        .output()
        .expect("setpriv (util-linux) is installed by cargo xtask setup");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("CAP_BPF") && stderr.contains("root"),
        "{stderr}"
    );
    assert!(!Path::new("/sys/fs/bpf/gotofw/lo").exists());
}

/// Runs a shell script in fresh mount and network namespaces (only `lo`), with `$HOST_BPFFS` the
/// host's bpffs as the script reaches it and `$KEY` the pin key of its `lo`. What the script left
/// pinned under that key is detached afterwards, so a failing script leaves nothing behind.
fn in_private_namespaces(script: &str) -> Output {
    let host_bpffs = format!("/proc/{}/root/sys/fs/bpf", std::process::id());
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--net",
            "--propagation",
            "private",
            "sh",
            "-ec",
            &format!("KEY=\"lo:$(stat -L -c %i /proc/self/ns/net)\"; echo \"key=$KEY\"\n{script}"),
        ])
        .env("GOTOFW", env!("CARGO_BIN_EXE_gotofw"))
        .env("HOST_BPFFS", host_bpffs)
        .output()
        .expect("unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if let Some(key) = stdout.lines().find_map(|l| l.strip_prefix("key="))
        && Path::new("/sys/fs/bpf/gotofw").join(key).exists()
    {
        let _ = gotofw(&["detach", key]);
    }
    out
}

#[test]
fn a_private_mount_namespace_pins_in_the_host_bpffs() {
    if !is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "needs root in CI"
        );
        eprintln!("skipping a_private_mount_namespace_pins_in_the_host_bpffs: needs root");
        return;
    }
    // A private mount namespace without bpffs, as `ip netns exec` leaves one: gotofw must pin
    // in the host's bpffs (a bpffs mounted here would die with the namespace), mount nothing,
    // and find the filter again from here.
    let out = in_private_namespaces(
        r#"umount /sys/fs/bpf 2>/dev/null || true
        ! grep -q ' /sys/fs/bpf bpf ' /proc/mounts
        ip link set lo up
        "$GOTOFW" attach lo --scenario tcp-443 --stateless --xdp-mode generic
        ! grep -q ' /sys/fs/bpf bpf ' /proc/mounts
        test -e "$HOST_BPFFS/gotofw/$KEY/link"
        "$GOTOFW" status lo --json | grep -q '"scenario": "tcp-443"'
        "$GOTOFW" detach lo
        ! ip -d link show lo | grep -q xdp
        test ! -e "$HOST_BPFFS/gotofw/$KEY"
        echo done"#,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("done"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_failed_attach_leaves_the_interface_as_it_was() {
    if !is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "needs root in CI"
        );
        eprintln!("skipping a_failed_attach_leaves_the_interface_as_it_was: needs root");
        return;
    }
    // Loopback has no native XDP: the attach fails after load and map fill. The pin key of this
    // namespace's "lo" keeps it apart from every other test's.
    let out = in_private_namespaces(
        r#"ip link set lo up
        if out=$("$GOTOFW" attach lo --scenario udp-turn --stateless --xdp-mode native 2>&1); then exit 3; fi
        echo "$out"
        ! ip -d link show lo | grep -q xdp
        test ! -e "$HOST_BPFFS/gotofw/$KEY"
        test -z "$(ls "$HOST_BPFFS/gotofw-staging" | grep "^$KEY@" || true)"
        "$GOTOFW" attach lo --scenario udp-turn --stateless --xdp-mode generic >/dev/null
        test -e "$HOST_BPFFS/gotofw/$KEY/link"
        "$GOTOFW" detach lo >/dev/null
        echo done"#,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("done"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("native XDP") && stdout.contains("--xdp-mode generic"),
        "{stdout}"
    );
}

/// Words of Rust's types and parsers that an operator should never read.
const RUST_WORDS: &[&str] = &[
    "i64",
    "i128",
    "u32",
    "u64",
    "floating point",
    "invalid type",
    "a sequence",
    "invalid digit",
    "float literal",
    "target type",
    "..=",
    "os error",
];

#[test]
fn clap_errors_are_one_line_naming_the_argument_and_the_help() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &[
                "attach",
                "eth0",
                "--scenario",
                "udp-turn",
                "--log-rate",
                "1.5",
            ],
            &[
                "'1.5'",
                "--log-rate",
                "not a whole number",
                "see `gotofw attach --help`",
            ],
        ),
        (
            &[
                "attach",
                "eth0",
                "--scenario",
                "udp-turn",
                "--flow-table-size",
                "0",
            ],
            &["'0'", "--flow-table-size", "give 1024 to 16777216"],
        ),
        (
            &[
                "attach",
                "eth0",
                "--scenario",
                "udp-turn",
                "--udp-timeout",
                "99999999999999999999",
            ],
            &["--udp-timeout", "too large"],
        ),
        (
            &[
                "attach",
                "eth0",
                "--scenario",
                "udp-turn",
                "--tcp-timeout",
                "-5",
            ],
            &["'-5'", "negative"],
        ),
        (
            &["attach", "eth0", "--scenario"],
            &["--scenario", "value is required"],
        ),
        (&["attach"], &["--scenario", "<IFACE>"]),
        (
            &["attach", "eth0", "--scenarios", "udp-turn"],
            &["'--scenarios'", "'--scenario'"],
        ),
        (&["attache", "eth0"], &["'attache'", "see `gotofw --help`"]),
        (
            &["status", "--json", "--watch"],
            &["--json", "--watch", "see `gotofw status --help`"],
        ),
        (
            &["status", "--watch", "--count", "0"],
            &["'0'", "--count", "1 or more"],
        ),
        (
            &["log", "eth0", "--timeout", "soon"],
            &["'soon'", "not a number"],
        ),
        (
            &[
                "explain",
                "--scenario",
                "udp_turn",
                "udp",
                "68.64.0.10:3478",
            ],
            &["'udp_turn'", "tcp-443"],
        ),
        (
            &["set-scenario", "eth0"],
            &["<NAME>", "see `gotofw set-scenario --help`"],
        ),
        (&["completions", "tcsh"], &["'tcsh'", "bash"]),
        (
            &[
                "attach",
                "eth0",
                "--scenario",
                "udp-turn",
                "--xdp-mode",
                "fast",
            ],
            &["'fast'", "--xdp-mode", ": use one of auto, native, generic"],
        ),
        (
            &["check-config", "--config", "/nonexistent/gotofw.toml"],
            &["/nonexistent/gotofw.toml", "no such file"],
        ),
    ];
    for (args, needles) in cases {
        let line = usage_error(args, needles);
        for word in RUST_WORDS {
            assert!(!line.contains(word), "{args:?}: {word:?} in {line:?}");
        }
    }
    // Help and version stay as clap writes them.
    let out = gotofw(&["attach", "--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).lines().count() > 20);
    let out = gotofw(&["--version"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("gotofw "));
}

#[test]
fn long_values_are_shortened_in_errors() {
    let long = "a".repeat(5000);
    let long_net = format!("{}::/64", "1".repeat(5000));
    let cases: &[&[&str]] = &[
        &["attach", "eth0", "--scenario", &long],
        &["attach", &long, "--scenario", "tcp-443"],
        &[
            "explain",
            "--scenario",
            "udp-turn",
            "--network",
            &long,
            "udp",
            "68.64.0.10:3478",
        ],
        &[
            "explain",
            "--scenario",
            "udp-turn",
            "--network",
            &long_net,
            "udp",
            "68.64.0.10:3478",
        ],
        &[
            "explain",
            "--scenario",
            "udp-turn",
            "--dns-server",
            &long,
            "udp",
            "68.64.0.10:3478",
        ],
        &["explain", "--scenario", "udp-turn", "udp", &long],
        &["pac", "--proxy", &long],
        &["pac", "--direct", "--else", &long],
        &["status", &long],
        &[
            "attach",
            "eth0",
            "--scenario",
            "udp-turn",
            "--log-rate",
            &long,
        ],
        &["attach", "eth0", "--scenario", "udp-turn", &long],
    ];
    for args in cases {
        let what = format!(
            "{:?}",
            args.iter()
                .map(|a| &a[..a.len().min(12)])
                .collect::<Vec<_>>()
        );
        let line = one_error_line(&gotofw(args), &what, &["characters)"]);
        assert!(
            line.len() < 400,
            "{what}: {} characters: {line}",
            line.len()
        );
    }
    let dir = Scratch::new("long-config");
    for body in [
        format!("scenario = \"{long}\"\n"),
        format!("{long} = 1\n"),
        format!("interfaces = [\"{long}\"]\nscenario = \"tcp-443\"\n"),
        format!("scenario = \"udp-turn\"\n[turn]\nextra_networks = [\"{long}\"]\n"),
    ] {
        let file = dir.0.join("long.toml");
        fs::write(&file, &body).unwrap();
        let line = usage_error(
            &["check-config", "--config", file.to_str().unwrap()],
            &["characters)"],
        );
        assert!(line.len() < 400, "{} characters: {line}", line.len());
    }
}

#[test]
fn settings_without_effect_are_refused_on_the_command_line() {
    // explain checks its options as attach does; attach refuses before it looks for the
    // interface, which does not exist (nothing could change).
    let missing = format!("gin{}", std::process::id() % 100_000);
    for (options, needles) in [
        (
            &[
                "--scenario",
                "udp-turn",
                "--no-allow",
                "dns",
                "--dns-server",
                "192.0.2.53",
            ][..],
            &["--dns-server '192.0.2.53'", "no effect", "--no-allow dns"][..],
        ),
        (
            &[
                "--scenario",
                "udp-turn",
                "--no-allow",
                "ntp",
                "--ntp-server",
                "192.0.2.123",
            ],
            &["--ntp-server '192.0.2.123'", "--no-allow ntp"],
        ),
        (
            &[
                "--scenario",
                "udp-turn",
                "--turn-dst",
                "any",
                "--network",
                "10.0.0.0/8",
            ],
            &["--network '10.0.0.0/8'", "no effect", "--turn-dst any"],
        ),
        (
            &["--scenario", "tcp-443", "--network", "10.0.0.0/8"],
            &["--network '10.0.0.0/8'", "no effect", "tcp-443"],
        ),
        (
            &["--scenario", "no-restrictions", "--network", "10.0.0.0/8"],
            &["'10.0.0.0/8'", "no-restrictions"],
        ),
        (
            &["--scenario", "tcp-turn", "--turn-dst", "any"],
            &["--turn-dst any", "tcp-turn", "GoTo's document"],
        ),
        (
            &[
                "--scenario",
                "udp-turn",
                "--network",
                "::ffff:68.64.0.0/116",
            ],
            &["'::ffff:68.64.0.0/116'", "IPv4-mapped", "68.64.0.0/20"],
        ),
        (
            &[
                "--scenario",
                "udp-turn",
                "--dns-server",
                "::ffff:192.0.2.53",
            ],
            &["--dns-server '::ffff:192.0.2.53'", "192.0.2.53/32"],
        ),
        (
            &["--scenario", "udp-turn", "--network", "010.000.000.000/8"],
            &["'010.000.000.000/8'", "leading zeros", "10.0.0.0/8"],
        ),
        (
            &["--scenario", "udp-turn", "--ntp-server", "192.0.2.010"],
            &["'192.0.2.010'", "192.0.2.10"],
        ),
    ] {
        let explain: Vec<&str> = ["explain"]
            .into_iter()
            .chain(options.iter().copied())
            .chain(["udp", "68.64.0.10:3478"])
            .collect();
        usage_error(&explain, needles);
        let attach: Vec<&str> = ["attach", missing.as_str()]
            .into_iter()
            .chain(options.iter().copied())
            .collect();
        usage_error(&attach, needles);
    }
    // What does take effect is still accepted.
    for options in [
        &[
            "--scenario",
            "udp-turn",
            "--turn-dst",
            "any",
            "--no-allow",
            "ntp",
        ][..],
        &[
            "--scenario",
            "tcp-turn",
            "--network",
            "2001:db8::/32",
            "--dns-server",
            "192.0.2.53",
        ],
        &["--scenario", "udp-turn", "--network", "::/0"],
    ] {
        let args: Vec<&str> = ["explain"]
            .into_iter()
            .chain(options.iter().copied())
            .chain(["udp", "68.64.0.10:3478"])
            .collect();
        let out = gotofw(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Runs `gotofw args`, killed after `secs` seconds if it has not ended.
fn gotofw_within(args: &[&str], secs: u64) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_gotofw"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run gotofw");
    let pid = child.id();
    let (done, wait) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = done.send(());
        out
    });
    if wait
        .recv_timeout(std::time::Duration::from_secs(secs))
        .is_err()
    {
        // SAFETY: kill(2) of the child this test started, still unreaped (the waiter holds it).
        unsafe { libc::kill(i32::try_from(pid).unwrap(), libc::SIGKILL) };
        panic!("gotofw {args:?} still ran after {secs} s");
    }
    waiter.join().unwrap().expect("gotofw's output")
}

#[test]
fn configuration_files_are_read_within_a_bound() {
    let dir = Scratch::new("config-bound");
    let big = dir.0.join("big.toml");
    // A sparse file past the 32 MiB limit.
    fs::File::create(&big)
        .unwrap()
        .set_len((32 << 20) + 1)
        .unwrap();
    let big = big.to_str().unwrap().to_owned();
    let fifo = dir.0.join("fifo.toml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let fifo = fifo.to_str().unwrap().to_owned();
    let dir_path = dir.0.to_str().unwrap().to_owned();
    // A pipe that would give 64 MiB: the reader stops past 32 MiB.
    let feeder = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            use std::io::Write as _;
            let mut pipe = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            let chunk = vec![b'#'; 1 << 20];
            for _ in 0..64 {
                if pipe.write_all(&chunk).is_err() {
                    break;
                }
            }
        })
    };
    for (file, needles) in [
        (
            "/dev/zero",
            &["/dev/zero", "character device", "32 MiB"][..],
        ),
        (dir_path.as_str(), &["directory", "32 MiB"]),
        (big.as_str(), &["big.toml", "larger than the 32 MiB"]),
        (fifo.as_str(), &["fifo.toml", "larger than the 32 MiB"]),
    ] {
        for command in ["check-config", "attach", "reload", "run"] {
            if file == fifo && command != "check-config" {
                continue; // the pipe gives its content once
            }
            let out = gotofw_within(&[command, "--config", file], 5);
            one_error_line(&out, &format!("{command} --config {file}"), needles);
        }
    }
    feeder.join().unwrap();
    // Not UTF-8.
    let latin1 = dir.0.join("latin1.toml");
    fs::write(&latin1, b"scenario = \"tcp-443\" # \xe9t\xe9\n").unwrap();
    usage_error(
        &["check-config", "--config", latin1.to_str().unwrap()],
        &["latin1.toml", "UTF-8"],
    );
}

#[test]
fn configuration_type_errors_are_in_operator_words() {
    let dir = Scratch::new("config-types");
    for (body, needles) in [
        (
            "[flows]\ntable_size = 1.5\n",
            &[":4: table_size = 1.5", "whole number", "decimal"][..],
        ),
        (
            "[flows]\nudp_timeout = 99999999999999999999\n",
            &[":4: udp_timeout = 99999999999999999999", "too large"],
        ),
        ("[allow]\ndns = 1\n", &[":4: dns = 1", "true or false"]),
        (
            "[log]\nrate = \"fast\"\n",
            &[":4: rate = \"fast\"", "whole number"],
        ),
        (
            "[turn]\nextra_networks = \"10.0.0.0/8\"\n",
            &[":4: ", "list"],
        ),
        ("[turn]\nextra_networks = [1]\n", &[":4: ", "quoted string"]),
        ("rules = 5\n", &[":3: rules = 5", "list"]),
    ] {
        let file = dir.0.join("types.toml");
        fs::write(
            &file,
            format!("interfaces = [\"gin0\"]\nscenario = \"udp-turn\"\n{body}"),
        )
        .unwrap();
        let line = usage_error(
            &["check-config", "--config", file.to_str().unwrap()],
            needles,
        );
        for word in RUST_WORDS {
            assert!(!line.contains(word), "{body:?}: {word:?} in {line:?}");
        }
    }
}

#[test]
fn pac_output_follows_a_symlink_and_refuses_a_missing_directory() {
    let dir = Scratch::new("pac-out");
    let real = dir.0.join("real");
    fs::create_dir(&real).unwrap();
    let target = real.join("proxy.pac");
    fs::write(&target, "old").unwrap();
    let link = dir.0.join("proxy.pac");
    std::os::unix::fs::symlink("real/proxy.pac", &link).unwrap();
    let pac = |output: &Path| {
        gotofw(&[
            "pac",
            "--direct",
            "--else",
            "PROXY p.example:1",
            "--output",
            output.to_str().unwrap(),
        ])
    };
    let out = pac(&link);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced"
    );
    assert!(
        fs::read_to_string(&target)
            .unwrap()
            .contains("FindProxyForURL")
    );
    let leftovers: Vec<_> = fs::read_dir(&real)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    let missing = dir.0.join("nodir").join("proxy.pac");
    one_error_line(
        &pac(&missing),
        "pac into a missing directory",
        &["nodir", "does not exist"],
    );
    assert!(!dir.0.join("nodir").exists());
    one_error_line(&pac(&real), "pac onto a directory", &["is a directory"]);
    let dangling = dir.0.join("dangling.pac");
    std::os::unix::fs::symlink("nowhere/proxy.pac", &dangling).unwrap();
    one_error_line(
        &pac(&dangling),
        "pac onto a dangling link",
        &["dangling.pac", "symbolic link"],
    );
    assert!(
        fs::symlink_metadata(&dangling)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn user_facing_text_says_gotos_document_not_the_seed() {
    for args in [
        &["domains"][..],
        &["domains", "--training"],
        &["domains", "--format", "json"],
        &["scenarios"],
        &["scenarios", "--json"],
        &["pac", "--direct", "--else", "PROXY p.example:1"],
    ] {
        let out = gotofw(args);
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        assert!(!text.contains("seed"), "{args:?} says \"seed\"");
    }
    let mut help = vec![filter_user::cli::command()];
    while let Some(mut cmd) = help.pop() {
        let text = cmd.render_long_help().to_string().to_lowercase();
        assert!(
            !text.contains("seed"),
            "{} --help says \"seed\"",
            cmd.get_name()
        );
        help.extend(cmd.get_subcommands().cloned());
    }
    usage_error(
        &[
            "explain",
            "--scenario",
            "tcp-443",
            "--turn-dst",
            "any",
            "tcp",
            "68.64.0.10:443",
        ],
        &["GoTo's document"],
    );
}

/// A scratch directory removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("gotofw-cli-{name}-{}", std::process::id()));
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

/// Domain rules need stateful mode: every command that builds a rule set refuses one in
/// stateless or ingress-only mode with one line and exit code 2, and attaches nothing; so do
/// a resolver network with domain rules and learning options without one.
#[test]
fn domain_rules_outside_stateful_mode_are_refused_by_every_command() {
    let missing = format!("gfwda{}", std::process::id() % 100_000);
    let pins = Path::new("/sys/fs/bpf/gotofw").join(&missing);
    for mode in ["--stateless", "--ingress-only"] {
        usage_error(
            &[
                "attach",
                &missing,
                "--scenario",
                "tcp-443",
                "--https-to",
                "domains",
                mode,
            ],
            &["--https-to domains needs stateful mode", &mode[2..]],
        );
        usage_error(
            &[
                "attach",
                &missing,
                "--scenario",
                "tcp-turn",
                "--turn-dst",
                "domains",
                mode,
            ],
            &["--turn-dst domains needs stateful mode", &mode[2..]],
        );
    }
    usage_error(
        &[
            "explain",
            "--scenario",
            "tcp-443",
            "--https-to",
            "domains",
            "--stateless",
            "tcp",
            "192.0.2.1:443",
        ],
        &["--https-to domains needs stateful mode", "stateless"],
    );
    usage_error(
        &[
            "attach",
            &missing,
            "--scenario",
            "tcp-443",
            "--https-to",
            "domains",
            "--dns-server",
            "192.0.2.0/24",
        ],
        &["'192.0.2.0/24'", "/32 or /128"],
    );
    usage_error(
        &[
            "attach",
            &missing,
            "--scenario",
            "tcp-443",
            "--dns-ttl-min",
            "5",
        ],
        &["--dns-ttl-min has no effect", "--https-to domains"],
    );
    usage_error(
        &[
            "attach",
            &missing,
            "--scenario",
            "tcp-443",
            "--turn-dst",
            "domains",
        ],
        &["--turn-dst domains", "tcp-443"],
    );
    let dir = Scratch::new("domains-stateless");
    let file = dir.0.join("gotofw.toml");
    let rule = "[[rules]]\nname = \"office\"\ndirection = \"outbound\"\nprotocol = \"tcp\"\nports = 8443\ndomains = [\"*.example.com\"]\naction = \"allow\"\nposition = \"after\"\n";
    for (body, line, needle) in [
        (
            format!(
                "interfaces = [\"{missing}\"]\nscenario = \"tcp-443\"\nmode = \"stateless\"\nhttps_to = \"domains\"\n"
            ),
            4,
            "https_to = \"domains\"",
        ),
        (
            format!(
                "interfaces = [\"{missing}\"]\nscenario = \"tcp-443\"\nmode = \"ingress-only\"\n{rule}"
            ),
            5,
            "'office'",
        ),
    ] {
        fs::write(&file, &body).unwrap();
        let path = file.to_str().unwrap();
        for cmd in [
            &["check-config", "--config", path][..],
            &["reload", "--config", path],
            &["run", "--config", path],
            &["attach", "--config", path],
        ] {
            usage_error(cmd, &[&format!("{path}:{line}: "), needle, "stateful"]);
        }
    }
    // The command line's mode over a file's domain rule: refused at the rule's line.
    fs::write(
        &file,
        format!("interfaces = [\"{missing}\"]\nscenario = \"tcp-443\"\n{rule}"),
    )
    .unwrap();
    let path = file.to_str().unwrap();
    usage_error(
        &["attach", "--config", path, "--stateless"],
        &[&format!("{path}:4: "), "'office'", "stateless"],
    );
    assert!(!pins.exists(), "a refused attach pinned {}", pins.display());
}
