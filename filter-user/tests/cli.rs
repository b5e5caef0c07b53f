//! The `gotofw` binary as an operator meets it: help, listings, explain, and every kind of bad
//! input, which must give one line naming the value, exit code 2, and change nothing.

use std::{
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

/// Runs `args`, expects exit code 2 and one stderr line containing every needle.
fn usage_error(args: &[&str], needles: &[&str]) {
    let out = gotofw(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    // clap adds a usage hint after its own one-line error; ours are exactly one line.
    assert!(!lines.is_empty(), "{args:?}: no error");
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{args:?}: {needle:?} not in {:?}",
            lines[0]
        );
    }
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
        ["non-ip", "icmpv6-nd", "icmp-errors", "dhcp", "dns", "ntp"]
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
