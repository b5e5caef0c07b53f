//! What ships for operators: the commented configuration example and the systemd unit, and the
//! commands that read them (`check-config`, `attach --config`, `run`) when the file is wrong.
//! None of this needs root.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn packaging(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging")
        .join(name)
}

fn gotofw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gotofw"))
        .args(args)
        .output()
        .expect("run gotofw")
}

/// A file in a directory of its own, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str, text: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("gotofw-packaging-{}-{name}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gotofw.toml");
        fs::write(&path, text).unwrap();
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// Exit code 2, nothing on stdout, one line on stderr that contains every needle.
fn usage_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
}

#[test]
fn check_config_prints_the_rule_table_of_the_example() {
    let example = packaging("gotofw.toml");
    let out = gotofw(&["check-config", "--config", example.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        ": ok",
        "interfaces: eth1",
        "scenario udp-turn, stateful mode (flow table 262144;",
        "turn-udp",
        "68.64.0.0/19, 173.199.0.0/18, 78.108.124.0/23, 202.173.24.0/21, 23.239.224.0/19",
        "fixed allowances: non-ip, icmpv6-nd, icmp-errors",
        "then: block",
        "metrics on http://127.0.0.1:9469/metrics; on stop, keep the filters attached",
    ] {
        assert!(stdout.contains(needle), "{needle:?} not in:\n{stdout}");
    }
}

#[test]
fn bad_files_name_file_line_and_value_and_change_nothing() {
    let file = Scratch::new(
        "bad",
        "interfaces = [\"eth1\"]\nscenario = \"udp-turn\"\n\n[turn]\nextra_networks = [\"2001:db8::1/32\"]\n",
    );
    let line = format!("{}:5:", file.path());
    for args in [
        vec!["check-config", "--config", file.path()],
        vec!["attach", "--config", file.path()],
        vec!["run", "--config", file.path()],
    ] {
        usage_error(&gotofw(&args), &[&line, "2001:db8::1/32", "2001:db8::/32"]);
    }
    let typo = Scratch::new(
        "typo",
        "interfaces = [\"eth1\"]\nscenario = \"udp-turn\"\nmod = \"stateless\"\n",
    );
    usage_error(
        &gotofw(&["check-config", "--config", typo.path()]),
        &[
            &format!("{}:3:", typo.path()),
            "unknown field `mod`",
            "`mode`",
        ],
    );
    usage_error(
        &gotofw(&["check-config", "--config", "/nonexistent/gotofw.toml"]),
        &["/nonexistent/gotofw.toml", "cannot read", "--config"],
    );
}

#[test]
fn new_commands_have_examples_in_their_help() {
    for (cmd, words) in [
        ("check-config", &["--config", "EXAMPLES:"][..]),
        ("metrics", &["--listen", "EXAMPLES:", "Prometheus"]),
        ("run", &["--config", "SIGHUP", "on_stop", "EXAMPLES:"]),
        ("status", &["--watch", "--interval", "--count", "EXAMPLES:"]),
        ("attach", &["--config", "EXAMPLES:"]),
    ] {
        let out = gotofw(&[cmd, "--help"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{cmd}");
        for word in words {
            assert!(text.contains(word), "{cmd} --help lacks {word}:\n{text}");
        }
    }
}

/// `[Section]` -> key -> values, in file order (keys may repeat).
fn unit(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            name.clone_into(&mut section);
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not key=value: {line}"));
        assert!(!section.is_empty(), "{line} outside a section");
        out.entry(section.clone())
            .or_default()
            .entry(key.to_owned())
            .or_default()
            .push(value.to_owned());
    }
    out
}

#[test]
fn the_unit_runs_the_service_with_what_it_needs_and_little_else() {
    let text = fs::read_to_string(packaging("gotofw.service")).unwrap();
    let unit = unit(&text);
    let service = &unit["Service"];
    let one = |key: &str| -> &str {
        let values = service.get(key).unwrap_or_else(|| panic!("no {key}="));
        assert_eq!(values.len(), 1, "{key}");
        &values[0]
    };
    assert_eq!(one("Type"), "notify");
    assert_eq!(
        one("ExecStart"),
        "/usr/sbin/gotofw run --config /etc/gotofw/gotofw.toml"
    );
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(one("RestartPreventExitStatus"), "2");
    let caps: Vec<&str> = one("CapabilityBoundingSet").split_whitespace().collect();
    for cap in ["CAP_BPF", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"] {
        assert!(caps.contains(&cap), "{cap} not kept: {caps:?}");
    }
    assert!(
        one("ReadWritePaths")
            .split_whitespace()
            .any(|p| p == "/sys/fs/bpf")
    );
    assert_eq!(
        one("RuntimeDirectory"),
        "gotofw",
        "the lock directory /run/gotofw"
    );
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("NoNewPrivileges"), "yes");
    // Settings that would hide the interfaces or the pins from the service.
    assert!(!service.contains_key("PrivateNetwork"));
    assert!(!service.contains_key("ProtectKernelTunables"));
    assert!(!service.contains_key("User"));
    assert!(
        service["SystemCallFilter"]
            .iter()
            .any(|f| f.split_whitespace().any(|s| s == "bpf")),
        "bpf(2) filtered out"
    );
    assert!(
        unit["Unit"]["RequiresMountsFor"]
            .iter()
            .any(|v| v == "/sys/fs/bpf"),
        "bpffs"
    );
    assert_eq!(unit["Install"]["WantedBy"], ["multi-user.target"]);
}
