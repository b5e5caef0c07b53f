//! Kernel tests (root only) of gotofw run the two ways operators enter a network namespace:
//! `ip netns exec` (a private mount namespace whose fresh `/sys` has no bpffs) and
//! `nsenter --net=` (the host's mounts). A filter attached either way must outlive the command
//! (pinned on the host's bpffs, filtering real traffic), and every command must see it from
//! either way. Also: interfaces of a link type gotofw cannot read are refused; L3 ones (tun) are
//! attached.

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::{Path, PathBuf},
    process::Output,
    time::Duration,
};

use gotofw_tests::{
    Attached, EXIT_USAGE, Gotofw, Netns, OUTSIDE, PIN_ROOT, ServerHandle, TURN_A, WanLab,
    exit_code, expect_success, pin_dir, require_root_or_skip, staging_leftovers, tcp_echo_server,
    tcp_probe, udp_echo_server, udp_probe, unique_name, xdp_prog_id,
};
use serde_json::Value;

const PROBE_TIMEOUT: Duration = Duration::from_millis(400);

/// How the CLI enters the gateway's namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    /// `ip netns exec NAME gotofw ...`
    IpNetnsExec,
    /// `nsenter --net=/run/netns/NAME gotofw ...`
    Nsenter,
}

const BOTH: [Entry; 2] = [Entry::IpNetnsExec, Entry::Nsenter];

/// The WAN lab with an echo server behind each probe: UDP 3478 of a TURN network (allowed by
/// udp-turn), UDP 3478 elsewhere and TCP 80 of a TURN network (blocked by every scenario here),
/// TCP 3478 of a TURN network (allowed by tcp-turn only).
struct Lab {
    _servers: Vec<ServerHandle>,
    net: WanLab,
    gotofw: Gotofw,
}

const UDP_TURN: SocketAddr = v4(TURN_A, 3478);
const UDP_OUTSIDE: SocketAddr = v4(OUTSIDE, 3478);
const TCP_TURN_80: SocketAddr = v4(TURN_A, 80);
const TCP_TURN: SocketAddr = v4(TURN_A, 3478);

const fn v4(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip, port))
}

impl Lab {
    fn new() -> Self {
        let net = WanLab::named(["gnxgw", "gnxin", "gnxw", "gnxp"]).unwrap();
        let servers = vec![
            udp_echo_server(net.inet(), UDP_TURN).unwrap(),
            udp_echo_server(net.inet(), UDP_OUTSIDE).unwrap(),
            tcp_echo_server(net.inet(), TCP_TURN_80).unwrap(),
            tcp_echo_server(net.inet(), TCP_TURN).unwrap(),
        ];
        Self {
            _servers: servers,
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

    fn run(&self, entry: Entry, args: &[&str]) -> Output {
        match entry {
            Entry::IpNetnsExec => self.gotofw.run_ip_netns_exec(self.gw(), args),
            Entry::Nsenter => self.gotofw.run(self.gw(), args),
        }
    }

    fn run_ok(&self, entry: Entry, args: &[&str]) -> String {
        expect_success(&self.run(entry, args), &format!("{args:?} via {entry:?}"))
    }

    fn status(&self, entry: Entry) -> Value {
        let out = self.run_ok(entry, &["status", self.wan(), "--json"]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json ({e}): {out}"))
    }

    /// `[udp TURN, udp outside, tcp TURN:80, tcp TURN:3478]`: whether each probe came back.
    fn probes(&self) -> [bool; 4] {
        [
            udp_probe(self.gw(), None, UDP_TURN, PROBE_TIMEOUT),
            udp_probe(self.gw(), None, UDP_OUTSIDE, PROBE_TIMEOUT),
            tcp_probe(self.gw(), TCP_TURN_80, PROBE_TIMEOUT),
            tcp_probe(self.gw(), TCP_TURN, PROBE_TIMEOUT),
        ]
    }

    /// Asserts that the filter of the WAN interface outlived the command that made it: pinned on
    /// the host's bpffs, an XDP program on the interface, nothing left in staging, the
    /// traffic of `scenario` filtered, and `status` through both entries shows it.
    fn assert_filtering(&self, scenario: &str, when: &str) {
        let dir = pin_dir(self.wan());
        assert!(
            dir.starts_with(PIN_ROOT) && dir.join("link").exists(),
            "{when}: no pins of {} on the host's bpffs ({})",
            self.wan(),
            dir.display()
        );
        assert!(
            xdp_prog_id(self.gw(), self.wan()).is_some(),
            "{when}: no XDP program on {}",
            self.wan()
        );
        assert!(staging_leftovers(self.wan()).is_empty(), "{when}: staging");
        let want = match scenario {
            "udp-turn" => [true, false, false, false],
            "tcp-turn" => [false, false, false, true],
            other => unreachable!("no expectation for {other}"),
        };
        assert_eq!(
            self.probes(),
            want,
            "{when}: [udp TURN, udp outside, tcp TURN:80, tcp TURN:3478] with {scenario}"
        );
        for entry in BOTH {
            let status = self.status(entry);
            assert_eq!(
                status["interfaces"][0]["scenario"], scenario,
                "{when}: status via {entry:?}: {status}"
            );
            // The pin directory it names is the one the host sees.
            let shown = status["interfaces"][0]["pin_dir"].as_str().unwrap_or("");
            let same = fs::metadata(shown)
                .ok()
                .zip(fs::metadata(&dir).ok())
                .is_some_and(|(a, b)| {
                    use std::os::unix::fs::MetadataExt as _;
                    (a.dev(), a.ino()) == (b.dev(), b.ino())
                });
            assert!(
                same,
                "{when}: status via {entry:?} names {shown}, not {}",
                dir.display()
            );
        }
    }

    /// A second attach through either entry is refused as gotofw's own filter, not a foreign
    /// XDP program, and changes nothing.
    fn assert_second_attach_refused(&self) {
        let before = xdp_prog_id(self.gw(), self.wan());
        for entry in BOTH {
            let out = self.run(entry, &["attach", self.wan(), "--scenario", "tcp-443"]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(exit_code(&out), Some(EXIT_USAGE), "via {entry:?}: {stderr}");
            assert!(
                stderr.contains("already has a gotofw filter"),
                "via {entry:?}: {stderr}"
            );
            assert_eq!(xdp_prog_id(self.gw(), self.wan()), before);
        }
    }

    /// The flows of the WAN interface, through `entry`.
    fn flows(&self, entry: Entry) -> Vec<Value> {
        let out = self.run_ok(entry, &["flows", self.wan(), "--json"]);
        let flows: Value = serde_json::from_str(&out).unwrap();
        flows["interfaces"][0]["flows"]
            .as_array()
            .unwrap_or_else(|| panic!("no flows list: {flows}"))
            .clone()
    }
}

#[test]
fn attach_through_ip_netns_exec_outlives_the_command() {
    if !require_root_or_skip("attach_through_ip_netns_exec_outlives_the_command") {
        return;
    }
    let lab = Lab::new();
    assert_eq!(lab.probes(), [true; 4], "without a filter");
    let _guard = Attached::new(lab.gotofw.clone(), lab.gw(), lab.wan());
    let out = lab.run_ok(
        Entry::IpNetnsExec,
        &["attach", lab.wan(), "--scenario", "udp-turn"],
    );
    lab.assert_filtering("udp-turn", "after attach via ip netns exec");
    // It names where the pins really are, not a /sys/fs/bpf of its own.
    let pinned = out
        .split("pinned at ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no pin path in {out}"));
    assert!(
        Path::new(pinned).ends_with(pin_dir(lab.wan()).file_name().unwrap())
            && !pinned.starts_with("/sys/"),
        "attach says pinned at {pinned}"
    );
    lab.assert_second_attach_refused();
    assert!(
        lab.flows(Entry::IpNetnsExec)
            .iter()
            .any(|f| f["remote"] == "68.64.0.10:3478"),
        "no flow of the allowed TURN probe via ip netns exec"
    );

    let out = lab.run_ok(Entry::IpNetnsExec, &["set-scenario", lab.wan(), "tcp-turn"]);
    assert!(out.contains("tcp-turn"), "{out}");
    lab.assert_filtering("tcp-turn", "after set-scenario via ip netns exec");

    lab.run_ok(
        Entry::IpNetnsExec,
        &["attach", lab.wan(), "--scenario", "udp-turn", "--replace"],
    );
    lab.assert_filtering("udp-turn", "after --replace via ip netns exec");

    lab.run_ok(Entry::IpNetnsExec, &["detach", lab.wan()]);
    assert!(!pin_dir(lab.wan()).exists(), "pins left after detach");
    assert_eq!(xdp_prog_id(lab.gw(), lab.wan()), None);
    assert_eq!(lab.probes(), [true; 4], "after detach");
}

#[test]
fn attach_through_nsenter_is_managed_through_ip_netns_exec() {
    if !require_root_or_skip("attach_through_nsenter_is_managed_through_ip_netns_exec") {
        return;
    }
    let lab = Lab::new();
    let _guard = Attached::new(lab.gotofw.clone(), lab.gw(), lab.wan());
    lab.run_ok(
        Entry::Nsenter,
        &["attach", lab.wan(), "--scenario", "tcp-turn"],
    );
    lab.assert_filtering("tcp-turn", "after attach via nsenter");
    lab.assert_second_attach_refused();
    // The list without an interface names it too.
    let listed = lab.run_ok(Entry::IpNetnsExec, &["status"]);
    assert!(
        listed.contains(lab.wan()),
        "status via ip netns exec: {listed}"
    );
    assert!(
        lab.flows(Entry::IpNetnsExec)
            .iter()
            .any(|f| f["remote"] == "68.64.0.10:3478"),
        "no flow of the allowed TCP TURN probe via ip netns exec"
    );
    lab.run_ok(Entry::IpNetnsExec, &["set-scenario", lab.wan(), "udp-turn"]);
    lab.assert_filtering("udp-turn", "after set-scenario via ip netns exec");
    lab.run_ok(Entry::IpNetnsExec, &["detach", lab.wan()]);
    assert!(!pin_dir(lab.wan()).exists(), "pins left after detach");
    assert_eq!(xdp_prog_id(lab.gw(), lab.wan()), None);
    assert_eq!(lab.probes(), [true; 4], "after detach");
}

/// A configuration file in a fresh directory, removed on drop.
struct TempConfig {
    dir: PathBuf,
}

impl TempConfig {
    fn new(text: &str) -> Self {
        let dir = std::env::temp_dir().join(unique_name("gnxcfg"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("gotofw.toml"), text).unwrap();
        Self { dir }
    }

    fn path(&self) -> String {
        self.dir.join("gotofw.toml").display().to_string()
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Sets the link type (`ARPHRD_*`) of the persistent tun device `name` of `ns`, which must be
/// down (`TUNSETLINK`).
fn set_tun_link_type(ns: &Netns, name: &str, kind: u16) {
    const TUNSETIFF: libc::Ioctl = 0x4004_54ca;
    const TUNSETLINK: libc::Ioctl = 0x4004_54cd;
    const IFF_TUN: libc::c_short = 0x0001;
    const IFF_NO_PI: libc::c_short = 0x1000;
    ns.run(|| {
        let tun = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .expect("opening /dev/net/tun");
        // SAFETY: ifreq is plain old data; all zeroes is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
            *dst = src.cast_signed();
        }
        req.ifr_ifru.ifru_flags = IFF_TUN | IFF_NO_PI;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&tun);
        // SAFETY: a /dev/net/tun descriptor and an ifreq naming an existing tun device.
        assert_eq!(
            unsafe { libc::ioctl(fd, TUNSETIFF, &raw mut req) },
            0,
            "TUNSETIFF {name}"
        );
        // SAFETY: TUNSETLINK takes the link type as its integer argument.
        let set = unsafe { libc::ioctl(fd, TUNSETLINK, libc::c_ulong::from(kind)) };
        assert_eq!(
            set,
            0,
            "TUNSETLINK {name} {kind}: {}",
            std::io::Error::last_os_error()
        );
    });
}

/// An interface whose link type the classifier cannot read (here a tun device that says it is
/// GRE) is refused both ways, by every command that attaches, with nothing left behind. The
/// same device as `link/none` (a plain tun device, as WireGuard) is attached both ways, its
/// frames read as bare IP.
#[test]
fn interfaces_of_a_link_type_gotofw_cannot_read_are_refused() {
    if !require_root_or_skip("interfaces_of_a_link_type_gotofw_cannot_read_are_refused") {
        return;
    }
    let ns = Netns::new("gnxtun").unwrap();
    let tun = unique_name("gnxt");
    ns.ip(["tuntap", "add", "mode", "tun", "name", &tun])
        .unwrap();
    set_tun_link_type(&ns, &tun, libc::ARPHRD_IPGRE);
    ns.ip(["link", "set", &tun, "up"]).unwrap();
    let gotofw = Gotofw::default();
    let _guard = Attached::new(gotofw.clone(), &ns, &tun);
    let config = TempConfig::new(&format!(
        "interfaces = [\"{tun}\"]\nscenario = \"udp-turn\"\n"
    ));
    let config = config.path();
    let attempts: [(&str, Vec<&str>); 4] = [
        ("attach", vec!["attach", &tun, "--scenario", "udp-turn"]),
        (
            "stateless attach",
            vec!["attach", &tun, "--scenario", "tcp-443", "--stateless"],
        ),
        ("attach --config", vec!["attach", "--config", &config]),
        ("reload", vec!["reload", "--config", &config]),
    ];
    let run = |entry: Entry, args: &[&str]| match entry {
        Entry::IpNetnsExec => gotofw.run_ip_netns_exec(&ns, args),
        Entry::Nsenter => gotofw.run(&ns, args),
    };
    for entry in BOTH {
        for (what, args) in &attempts {
            let out = run(entry, args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let when = format!("{what} via {entry:?}");
            assert_eq!(exit_code(&out), Some(EXIT_USAGE), "{when}: {stderr}");
            assert_eq!(stderr.trim_end().lines().count(), 1, "{when}: {stderr}");
            assert!(
                stderr.contains(&tun) && stderr.contains("link type gre"),
                "{when}: {stderr}"
            );
            assert!(!pin_dir(&tun).exists(), "{when}: pinned");
            assert!(staging_leftovers(&tun).is_empty(), "{when}: staging");
            assert_eq!(xdp_prog_id(&ns, &tun), None, "{when}: XDP program on {tun}");
        }
    }
    ns.ip(["link", "set", &tun, "down"]).unwrap();
    set_tun_link_type(&ns, &tun, libc::ARPHRD_NONE);
    ns.ip(["link", "set", &tun, "up"]).unwrap();
    for entry in BOTH {
        let when = format!("attach of link/none via {entry:?}");
        let out = run(entry, &["attach", &tun, "--scenario", "udp-turn"]);
        let stdout = expect_success(&out, &when);
        assert!(stdout.contains("xdp generic"), "{when}: {stdout}");
        let status: Value = serde_json::from_slice(&run(entry, &["status", &tun, "--json"]).stdout)
            .expect("status --json");
        assert_eq!(status["interfaces"][0]["link"], "ip", "{when}: {status}");
        assert!(xdp_prog_id(&ns, &tun).is_some(), "{when}: no XDP program");
        expect_success(&run(entry, &["detach", &tun]), &format!("{when}: detach"));
        assert_eq!(xdp_prog_id(&ns, &tun), None, "{when}: detached");
    }
}
