//! Kernel tests (root only) of gotofw on L3 devices, real ones: a tun device in a gateway
//! namespace, joined by a relay to another in an internet namespace ([`TunLab`]), reporting link
//! type none (a tun, WireGuard), ppp (a PPP link) or raw-IP (an LTE modem). gotofw attaches to
//! the gateway's device (generic XDP: tun has no native mode) and filters real UDP and TCP of
//! the gateway's own sockets: the verdicts, counters, flows and drop-log samples are those of an
//! Ethernet WAN. Link types gotofw cannot parse stay refused. And `gotofw run` attaches anew
//! when the device is re-created (a PPP re-dial), also as another link type.

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket},
    process::Output,
    thread,
    time::{Duration, Instant},
};

use gotofw_tests::{
    ARPHRD_IPGRE, ARPHRD_NONE, ARPHRD_PPP, ARPHRD_RAWIP, ARPHRD_TUNNEL, Attached, EXIT_USAGE,
    GW_ADDR, Gotofw, Netns, OUTSIDE, Running, SERVER6, ServerHandle, TURN_A, TURN_B, TempDir,
    TunLab, counter_in, exit_code, expect_success, link_kind, pin_dir, require_root_or_skip,
    staging_leftovers, tcp_echo_server, tcp_probe, udp_echo_server, udp_probe, udp_send_from,
    xdp_prog_id,
};
use serde_json::Value;

#[path = "l3/pppoe.rs"]
mod pppoe;

/// Every name of these tests starts with this.
const PREFIX: &str = "gfwl3";
const PROBE_TIMEOUT: Duration = Duration::from_millis(400);
/// How long unsolicited datagrams may take to arrive, when they do.
const ARRIVAL_TIMEOUT: Duration = Duration::from_millis(400);
/// How long `gotofw run` may take to come up or to act on an event.
const DAEMON_WAIT: Duration = Duration::from_secs(15);

/// UDP 3478 of a TURN network: allowed by udp-turn.
const UDP_TURN: SocketAddr = v4(TURN_A, 3478);
/// UDP 3478 outside the TURN networks: blocked by udp-turn (default-block).
const UDP_OUTSIDE: SocketAddr = v4(OUTSIDE, 3478);
/// TCP 443 anywhere: allowed by every scenario (rule https).
const TCP_HTTPS: SocketAddr = v4(OUTSIDE, 443);
/// TCP 80 of a TURN network: blocked by udp-turn.
const TCP_80: SocketAddr = v4(TURN_A, 80);
/// The gateway's port that unsolicited datagrams go to.
const GW_PORT: u16 = 40_000;

const fn v4(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip, port))
}

/// The link types gotofw parses from the IP header on, with how `ip -d link` shows them.
const L3_TYPES: [(u16, &str); 3] = [
    (ARPHRD_NONE, "link/none"),
    (ARPHRD_PPP, "link/ppp"),
    (ARPHRD_RAWIP, "link/[519]"),
];

/// How the CLI enters the gateway's namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    /// `ip netns exec NAME gotofw ...`
    IpNetnsExec,
    /// `nsenter --net=/run/netns/NAME gotofw ...`
    Nsenter,
}

/// The tun lab with an echo server behind each probe of [`Lab::probes`].
struct Lab {
    _servers: Vec<ServerHandle>,
    net: TunLab,
    gotofw: Gotofw,
}

impl Lab {
    fn new(link_type: u16) -> Self {
        let net = TunLab::new(PREFIX, link_type).unwrap();
        let servers = vec![
            udp_echo_server(net.inet(), UDP_TURN).unwrap(),
            udp_echo_server(net.inet(), UDP_OUTSIDE).unwrap(),
            tcp_echo_server(net.inet(), TCP_HTTPS).unwrap(),
            tcp_echo_server(net.inet(), TCP_80).unwrap(),
        ];
        Self {
            _servers: servers,
            net,
            gotofw: Gotofw::default(),
        }
    }

    fn wan(&self) -> &str {
        self.net.wan()
    }

    fn run(&self, entry: Entry, args: &[&str]) -> Output {
        match entry {
            Entry::IpNetnsExec => self.gotofw.run_ip_netns_exec(self.net.gw(), args),
            Entry::Nsenter => self.gotofw.run(self.net.gw(), args),
        }
    }

    fn guard(&self) -> Attached<'_> {
        Attached::new(self.gotofw.clone(), self.net.gw(), self.wan())
    }

    fn status(&self) -> Value {
        self.gotofw.status_json(self.net.gw(), self.wan())
    }

    /// `[udp TURN:3478, udp outside:3478, tcp 443, tcp TURN:80]` from the gateway: whether each
    /// came back.
    fn probes(&self) -> [bool; 4] {
        let gw = self.net.gw();
        [
            udp_probe(gw, None, UDP_TURN, PROBE_TIMEOUT),
            udp_probe(gw, None, UDP_OUTSIDE, PROBE_TIMEOUT),
            tcp_probe(gw, TCP_HTTPS, PROBE_TIMEOUT),
            tcp_probe(gw, TCP_80, PROBE_TIMEOUT),
        ]
    }

    /// Sends three datagrams nobody asked for from `src` in the internet namespace to the
    /// gateway's [`GW_PORT`], and returns how many arrived.
    fn unsolicited(&self, src: SocketAddr) -> usize {
        let dst = v4(GW_ADDR, GW_PORT);
        let socket = self.net.gw().run(|| UdpSocket::bind(dst)).unwrap();
        udp_send_from(self.net.inet(), src, dst, 3).unwrap();
        let deadline = Instant::now() + ARRIVAL_TIMEOUT;
        let mut buf = [0u8; 2048];
        let mut arrived = 0;
        while arrived < 3 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || socket.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match socket.recv_from(&mut buf) {
                Ok((_, from)) if from == src => arrived += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        arrived
    }

    /// The flows of the gateway's device.
    fn flows(&self) -> Vec<Value> {
        let out = self.run(Entry::Nsenter, &["flows", self.wan(), "--json"]);
        let flows: Value = serde_json::from_str(&expect_success(&out, "flows --json")).unwrap();
        flows["interfaces"][0]["flows"]
            .as_array()
            .unwrap_or_else(|| panic!("no flows list: {flows}"))
            .clone()
    }
}

/// Starts `gotofw run` in `ns` on a configuration file (in the directory returned, which must
/// outlive the daemon) naming `iface` with scenario udp-turn, and waits until it runs.
fn start_run(gotofw: &Gotofw, ns: &Netns, iface: &str) -> (TempDir, Running) {
    let dir = TempDir::new(PREFIX).unwrap();
    let config = dir.path().join("run.toml");
    std::fs::write(
        &config,
        format!("interfaces = [\"{iface}\"]\nscenario = \"udp-turn\"\n"),
    )
    .unwrap();
    let config = config.to_string_lossy().into_owned();
    let mut daemon = gotofw.spawn(ns, &["run", "--config", &config], &[]);
    assert!(
        daemon
            .wait_for_stderr("running: udp-turn", DAEMON_WAIT)
            .is_some(),
        "gotofw run did not come up"
    );
    (dir, daemon)
}

/// Stops `daemon` (SIGTERM), which must exit 0.
fn stop_run(daemon: Running) {
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(daemon.pid().cast_signed(), libc::SIGTERM) };
    let out = daemon.wait(DAEMON_WAIT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `(name, direction)` packets of counter `name` in `after` minus those in `before`.
fn grew(before: &Value, after: &Value, name: &str, direction: &str) -> u64 {
    counter_in(after, name, direction).0 - counter_in(before, name, direction).0
}

/// The lab itself, without gotofw: each L3 link type carries UDP and TCP both ways, and a device
/// deleted and created anew as another type carries them again.
#[test]
fn tun_lab_carries_traffic_for_every_l3_link_type() {
    if !require_root_or_skip("tun_lab_carries_traffic_for_every_l3_link_type") {
        return;
    }
    for (link_type, shown) in L3_TYPES {
        let lab = Lab::new(link_type);
        assert_eq!(link_kind(lab.net.gw(), lab.wan()).unwrap(), shown);
        assert_eq!(
            link_kind(lab.net.inet(), lab.net.isp()).unwrap(),
            "link/none"
        );
        assert_eq!(lab.probes(), [true; 4], "{shown}: the lab's probes");
        assert_eq!(
            lab.unsolicited(v4(OUTSIDE, 5000)),
            3,
            "{shown}: inbound datagrams"
        );
        assert!(lab.net.relayed() > 0);
    }
    let lab = Lab::new(ARPHRD_NONE);
    lab.net.delete_wan().unwrap();
    assert!(lab.net.gw().ip(["link", "show", lab.wan()]).is_err());
    assert_eq!(lab.probes(), [false; 4], "without the gateway's device");
    lab.net.create_wan(ARPHRD_PPP).unwrap();
    assert_eq!(link_kind(lab.net.gw(), lab.wan()).unwrap(), "link/ppp");
    assert_eq!(lab.probes(), [true; 4], "the device created anew");
    lab.net.delete_wan().unwrap();
    lab.net.create_wan_veth().unwrap();
    assert_eq!(link_kind(lab.net.gw(), lab.wan()).unwrap(), "link/ether");
    assert_eq!(lab.probes(), [true; 4], "a veth of the name");
    assert_eq!(lab.unsolicited(v4(OUTSIDE, 5000)), 3, "a veth of the name");
    lab.net.delete_wan().unwrap();
    lab.net.create_wan(ARPHRD_NONE).unwrap();
    assert_eq!(lab.probes(), [true; 4], "a tun again");
}

/// Attaches udp-turn (stateful) through `entry` to the gateway's device of link type
/// `link_type`, and checks real traffic both ways against the counters, the flow table and the
/// drop log.
fn filters_real_traffic(link_type: u16, shown: &str, entry: Entry) {
    let lab = Lab::new(link_type);
    assert_eq!(link_kind(lab.net.gw(), lab.wan()).unwrap(), shown);
    assert_eq!(lab.probes(), [true; 4], "{shown}: without a filter");
    assert_eq!(
        lab.unsolicited(v4(OUTSIDE, 5000)),
        3,
        "{shown}: without a filter"
    );

    let guard = lab.guard();
    let out = lab.run(entry, &["attach", lab.wan(), "--scenario", "udp-turn"]);
    let stdout = expect_success(
        &out,
        &format!("attach {} ({shown}) via {entry:?}", lab.wan()),
    );
    // tun has no native XDP: auto attaches in generic mode, and says so.
    assert!(stdout.contains("xdp generic"), "{shown}: {stdout}");
    assert!(guard.is_attached() && xdp_prog_id(lab.net.gw(), lab.wan()).is_some());
    let status = lab.status();
    assert_eq!(status["interfaces"][0]["state"], "filtering", "{status}");
    assert_eq!(status["interfaces"][0]["xdp_mode"], "generic", "{status}");

    let reader = lab.gotofw.spawn(
        lab.net.gw(),
        // The blocked UDP out, three unsolicited datagrams in, the TCP 80 SYN out.
        &[
            "log",
            lab.wan(),
            "--json",
            "--count",
            "5",
            "--timeout",
            "15",
        ],
        &[],
    );
    // The reader opens the ring buffer before the drops it is to see.
    thread::sleep(Duration::from_millis(500));

    let before = lab.status();
    assert!(
        udp_probe(lab.net.gw(), None, UDP_TURN, PROBE_TIMEOUT),
        "{shown}: UDP to TURN"
    );
    let after_turn = lab.status();
    assert!(
        !udp_probe(lab.net.gw(), None, UDP_OUTSIDE, PROBE_TIMEOUT),
        "{shown}: UDP 3478 outside the TURN networks passed"
    );
    let after_outside = lab.status();
    assert_eq!(
        lab.unsolicited(v4(OUTSIDE, 5000)),
        0,
        "{shown}: unsolicited inbound passed"
    );
    let after_unsolicited = lab.status();
    assert!(
        tcp_probe(lab.net.gw(), TCP_HTTPS, PROBE_TIMEOUT),
        "{shown}: TCP 443"
    );
    let after_https = lab.status();
    assert!(
        !tcp_probe(lab.net.gw(), TCP_80, PROBE_TIMEOUT),
        "{shown}: TCP 80 passed"
    );
    let after_80 = lab.status();

    // The allowed UDP: out by its rule, its echo in by the flow it made.
    assert_eq!(
        grew(&before, &after_turn, "turn-udp", "egress"),
        1,
        "{shown}"
    );
    assert_eq!(
        grew(&before, &after_turn, "turn-udp", "ingress"),
        1,
        "{shown}"
    );
    // The blocked UDP: stopped on its way out; nothing came back.
    assert_eq!(
        grew(&after_turn, &after_outside, "default-block", "egress"),
        1,
        "{shown}"
    );
    assert_eq!(
        grew(&after_turn, &after_outside, "default-block", "ingress"),
        0,
        "{shown}"
    );
    // Unsolicited inbound: no flow expects it.
    assert_eq!(
        grew(
            &after_outside,
            &after_unsolicited,
            "default-block",
            "ingress"
        ),
        3,
        "{shown}"
    );
    // TCP 443 both ways by rule https, TCP 80 stopped on its way out (its SYN, maybe again).
    assert!(
        grew(&after_unsolicited, &after_https, "https", "egress") >= 3,
        "{shown}"
    );
    assert!(
        grew(&after_unsolicited, &after_https, "https", "ingress") >= 2,
        "{shown}"
    );
    assert!(
        grew(&after_https, &after_80, "default-block", "egress") >= 1,
        "{shown}"
    );
    assert_eq!(
        grew(&after_https, &after_80, "default-block", "ingress"),
        0,
        "{shown}"
    );
    // Not one packet misread as something that is not IP, or as a broken header.
    for direction in ["ingress", "egress"] {
        for slot in ["non-ip", "malformed", "unsupported"] {
            assert_eq!(
                counter_in(&after_80, slot, direction).0,
                0,
                "{shown}: {direction} {slot}: {after_80}"
            );
        }
    }

    // The flow the allowed UDP made at egress, with the echo that came back on it.
    let flows = lab.flows();
    let flow = flows
        .iter()
        .find(|f| f["remote"] == UDP_TURN.to_string() && f["protocol"] == "udp")
        .unwrap_or_else(|| panic!("{shown}: no flow to {UDP_TURN}: {flows:?}"));
    assert_eq!(flow["rule"], "turn-udp", "{flow}");
    assert!(
        flow["local"]
            .as_str()
            .is_some_and(|l| l.starts_with("203.0.113.2:")),
        "{flow}"
    );
    assert_eq!(
        (flow["packets_out"].as_u64(), flow["packets_in"].as_u64()),
        (Some(1), Some(1))
    );

    // The drop log: the blocked packets with their real addresses and lengths (IP header on).
    let out = reader.wait(Duration::from_secs(20));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let outbound = samples
        .iter()
        .find(|s| s["direction"] == "egress" && s["dst"] == UDP_OUTSIDE.to_string())
        .unwrap_or_else(|| panic!("{shown}: no sample of the blocked UDP out: {samples:?}"));
    assert_eq!(outbound["protocol"], "udp", "{outbound}");
    assert_eq!(outbound["rule"], "default-block", "{outbound}");
    assert!(
        outbound["src"]
            .as_str()
            .is_some_and(|s| s.starts_with("203.0.113.2:")),
        "{outbound}"
    );
    let inbound: Vec<&Value> = samples
        .iter()
        .filter(|s| s["direction"] == "ingress" && s["src"] == "198.51.100.10:5000")
        .collect();
    assert_eq!(
        inbound.len(),
        3,
        "{shown}: samples of the unsolicited datagrams: {samples:?}"
    );
    for sample in inbound {
        assert_eq!(sample["dst"], format!("{GW_ADDR}:{GW_PORT}"), "{sample}");
        assert_eq!(sample["protocol"], "udp", "{sample}");
        assert_eq!(sample["rule"], "default-block", "{sample}");
        // 20 bytes of IPv4, 8 of UDP, 20 of payload: the frame is the IP packet.
        assert_eq!(sample["bytes"], 48, "{sample}");
    }
    let tcp80 = samples
        .iter()
        .find(|s| s["dst"] == TCP_80.to_string())
        .unwrap_or_else(|| panic!("{shown}: no sample of TCP 80: {samples:?}"));
    assert_eq!(
        (&tcp80["protocol"], &tcp80["direction"]),
        (&"tcp".into(), &"egress".into())
    );

    let detached = lab.run(entry, &["detach", lab.wan()]);
    expect_success(&detached, "detach");
    assert_eq!(xdp_prog_id(lab.net.gw(), lab.wan()), None);
    assert_eq!(lab.probes(), [true; 4], "{shown}: after detach");
}

#[test]
fn issue12_tun_link_none_filters_real_traffic_attached_through_ip_netns_exec() {
    if !require_root_or_skip(
        "issue12_tun_link_none_filters_real_traffic_attached_through_ip_netns_exec",
    ) {
        return;
    }
    filters_real_traffic(ARPHRD_NONE, "link/none", Entry::IpNetnsExec);
}

#[test]
fn issue12_tun_link_ppp_filters_real_traffic_attached_through_nsenter() {
    if !require_root_or_skip("issue12_tun_link_ppp_filters_real_traffic_attached_through_nsenter") {
        return;
    }
    filters_real_traffic(ARPHRD_PPP, "link/ppp", Entry::Nsenter);
}

#[test]
fn issue12_tun_link_rawip_filters_real_traffic_attached_through_nsenter() {
    if !require_root_or_skip("issue12_tun_link_rawip_filters_real_traffic_attached_through_nsenter")
    {
        return;
    }
    filters_real_traffic(ARPHRD_RAWIP, "link/[519]", Entry::Nsenter);
}

/// IPv6 over each L3 link type: the classifier tells the packet's version by its first nibble
/// (no ethertype says it): TCP 443 passes both ways, TCP 80 and UDP 3478 outside the TURN
/// networks are blocked and counted in `default-block`, nothing misread as `non-ip`,
/// `malformed` or `unsupported`.
#[test]
fn issue12_tun_ipv6_over_every_l3_link_type() {
    if !require_root_or_skip("issue12_tun_ipv6_over_every_l3_link_type") {
        return;
    }
    let https = SocketAddr::new(SERVER6.into(), 443);
    let http = SocketAddr::new(SERVER6.into(), 80);
    let udp = SocketAddr::new(SERVER6.into(), 3478);
    for (link_type, shown) in L3_TYPES {
        let lab = Lab::new(link_type);
        lab.net.enable_ipv6().unwrap();
        let _servers = [
            tcp_echo_server(lab.net.inet(), https).unwrap(),
            tcp_echo_server(lab.net.inet(), http).unwrap(),
            udp_echo_server(lab.net.inet(), udp).unwrap(),
        ];
        let gw = lab.net.gw();
        let probes = || {
            [
                tcp_probe(gw, https, PROBE_TIMEOUT),
                tcp_probe(gw, http, PROBE_TIMEOUT),
                udp_probe(gw, None, udp, PROBE_TIMEOUT),
            ]
        };
        assert_eq!(probes(), [true; 3], "{shown}: IPv6 without a filter");
        let _guard = lab.guard();
        expect_success(
            &lab.run(
                Entry::Nsenter,
                &["attach", lab.wan(), "--scenario", "udp-turn"],
            ),
            "attach",
        );
        let before = lab.status();
        assert_eq!(
            probes(),
            [true, false, false],
            "{shown}: IPv6 through gotofw"
        );
        let after = lab.status();
        assert!(
            grew(&before, &after, "https", "egress") >= 3,
            "{shown}: {after}"
        );
        assert!(
            grew(&before, &after, "https", "ingress") >= 2,
            "{shown}: {after}"
        );
        assert!(
            grew(&before, &after, "default-block", "egress") >= 2,
            "{shown}: {after}"
        );
        for direction in ["ingress", "egress"] {
            for slot in ["non-ip", "malformed", "unsupported"] {
                assert_eq!(
                    counter_in(&after, slot, direction).0,
                    0,
                    "{shown}: {direction} {slot}: {after}"
                );
            }
        }
    }
}

/// Stateless mode on a PPP link: replies pass by their source port and TURN network, whoever
/// asked; the rest stays blocked.
#[test]
fn issue12_tun_link_ppp_stateless() {
    if !require_root_or_skip("issue12_tun_link_ppp_stateless") {
        return;
    }
    let lab = Lab::new(ARPHRD_PPP);
    let _guard = lab.guard();
    let out = lab.run(
        Entry::Nsenter,
        &["attach", lab.wan(), "--scenario", "udp-turn", "--stateless"],
    );
    expect_success(&out, "attach --stateless");
    let status = lab.status();
    assert_eq!(status["interfaces"][0]["mode"], "stateless", "{status}");
    assert_eq!(lab.probes(), [true, false, true, false]);
    // Port 3478 of the echo servers' addresses is taken: another host outside the TURN
    // networks.
    let (turn, outside) = (v4(TURN_B, 3478), v4(Ipv4Addr::new(198, 51, 100, 11), 3478));
    lab.net
        .inet()
        .ip([
            "addr",
            "add",
            &format!("{}/32", outside.ip()),
            "dev",
            lab.net.isp(),
        ])
        .unwrap();
    let before = lab.status();
    // From a TURN server's port 3478: the stateless reply rule admits it, asked for or not.
    assert_eq!(lab.unsolicited(turn), 3, "a TURN server's datagrams");
    let after_turn = lab.status();
    assert_eq!(grew(&before, &after_turn, "turn-udp", "ingress"), 3);
    assert_eq!(
        lab.unsolicited(outside),
        0,
        "datagrams from outside the TURN networks"
    );
    let after = lab.status();
    assert_eq!(grew(&after_turn, &after, "default-block", "ingress"), 3);
    assert_eq!(counter_in(&after, "non-ip", "ingress").0, 0, "{after}");
    assert_eq!(counter_in(&after, "malformed", "ingress").0, 0, "{after}");
}

/// A link type gotofw cannot parse (GRE, IPIP: a header it does not read before the IP one) is
/// refused: exit 2, one line naming the interface and the type, nothing attached.
#[test]
fn issue12_unparsed_link_types_stay_refused() {
    if !require_root_or_skip("issue12_unparsed_link_types_stay_refused") {
        return;
    }
    for (link_type, name) in [(ARPHRD_IPGRE, "gre"), (ARPHRD_TUNNEL, "ipip")] {
        let lab = Lab::new(link_type);
        let _guard = lab.guard();
        for entry in [Entry::Nsenter, Entry::IpNetnsExec] {
            let out = lab.run(entry, &["attach", lab.wan(), "--scenario", "udp-turn"]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let when = format!("link type {name} via {entry:?}");
            assert_eq!(exit_code(&out), Some(EXIT_USAGE), "{when}: {stderr}");
            assert_eq!(stderr.trim_end().lines().count(), 1, "{when}: {stderr}");
            assert!(
                stderr.contains(lab.wan()) && stderr.contains(&format!("link type {name}")),
                "{when}: {stderr}"
            );
            assert!(!pin_dir(lab.wan()).exists(), "{when}: pinned");
            assert!(staging_leftovers(lab.wan()).is_empty(), "{when}: staging");
            assert_eq!(xdp_prog_id(lab.net.gw(), lab.wan()), None, "{when}");
        }
        assert_eq!(
            lab.probes(),
            [true; 4],
            "link type {name}: the lab after the refusals"
        );
    }
}

/// tun has no native XDP: `--xdp-mode native` is refused (one line that says so and names the
/// way out), nothing attached; `--xdp-mode generic` attaches.
#[test]
fn issue12_native_xdp_on_a_tun_is_refused() {
    if !require_root_or_skip("issue12_native_xdp_on_a_tun_is_refused") {
        return;
    }
    let lab = Lab::new(ARPHRD_NONE);
    let guard = lab.guard();
    let out = lab.run(
        Entry::Nsenter,
        &[
            "attach",
            lab.wan(),
            "--scenario",
            "udp-turn",
            "--xdp-mode",
            "native",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(lab.wan()) && stderr.contains("native XDP") && stderr.contains("generic"),
        "{stderr}"
    );
    assert!(!guard.is_attached() && staging_leftovers(lab.wan()).is_empty());
    assert_eq!(xdp_prog_id(lab.net.gw(), lab.wan()), None);
    assert_eq!(lab.probes(), [true; 4], "after the refusal");

    let out = lab.run(
        Entry::Nsenter,
        &[
            "attach",
            lab.wan(),
            "--scenario",
            "udp-turn",
            "--xdp-mode",
            "generic",
        ],
    );
    expect_success(&out, "attach --xdp-mode generic");
    assert_eq!(lab.probes(), [true, false, true, false]);
}

/// `gotofw run` on a tun WAN: the device deleted (a PPP link hung up) and created anew with the
/// same name but a new index and another link type (none, then ppp, then an Ethernet veth, then
/// raw-IP), the service attaches anew each time, and the new device is filtered as its link type
/// says: allowed traffic passes, blocked traffic is blocked and counted as such, nothing as
/// non-ip or malformed (the frames of one read with the other's header).
#[test]
fn issue12_run_reattaches_a_recreated_tun_of_another_link_type() {
    if !require_root_or_skip("issue12_run_reattaches_a_recreated_tun_of_another_link_type") {
        return;
    }
    let lab = Lab::new(ARPHRD_NONE);
    let guard = lab.guard();
    let (_dir, mut daemon) = start_run(&lab.gotofw, lab.net.gw(), lab.wan());
    assert_eq!(lab.probes(), [true, false, true, false], "at start");

    let mut ifindex = lab.status()["interfaces"][0]["ifindex"].as_u64().unwrap();
    // A re-dial (none -> ppp), an Ethernet of the name (ppp -> ether), a modem (ether -> raw-IP).
    let kinds = [
        (Some(ARPHRD_PPP), "link/ppp"),
        (None, "link/ether"),
        (Some(ARPHRD_RAWIP), "link/[519]"),
    ];
    for (link_type, shown) in kinds {
        lab.net.delete_wan().unwrap();
        assert!(
            daemon
                .wait_for_stderr("interface gone", DAEMON_WAIT)
                .is_some(),
            "{shown}: the service did not see the device go"
        );
        let start = Instant::now();
        match link_type {
            Some(link_type) => lab.net.create_wan(link_type).unwrap(),
            None => lab.net.create_wan_veth().unwrap(),
        }
        assert_eq!(link_kind(lab.net.gw(), lab.wan()).unwrap(), shown);
        let filtering = || {
            let out = lab
                .gotofw
                .run(lab.net.gw(), &["status", lab.wan(), "--json"]);
            let v: Value = serde_json::from_slice(&out.stdout).ok()?;
            (v["interfaces"][0]["state"] == "filtering").then_some(v)
        };
        let mut status = filtering();
        // Bounded: DAEMON_WAIT.
        while status.is_none() && start.elapsed() < DAEMON_WAIT {
            thread::sleep(Duration::from_millis(20));
            status = filtering();
        }
        let status = status.unwrap_or_else(|| panic!("{shown}: not filtering again"));
        eprintln!("{shown}: filtering again after {:?}", start.elapsed());
        assert!(
            daemon
                .wait_for_stderr("attached anew", DAEMON_WAIT)
                .is_some(),
            "{shown}: no `attached anew` line"
        );
        let now = status["interfaces"][0]["ifindex"].as_u64().unwrap();
        assert_ne!(now, ifindex, "{shown}: the same index");
        ifindex = now;

        let before = lab.status();
        assert_eq!(
            lab.probes(),
            [true, false, true, false],
            "{shown}: re-created"
        );
        assert_eq!(
            lab.unsolicited(v4(OUTSIDE, 5000)),
            0,
            "{shown}: unsolicited inbound"
        );
        let after = lab.status();
        assert_eq!(grew(&before, &after, "turn-udp", "egress"), 1, "{shown}");
        assert_eq!(grew(&before, &after, "turn-udp", "ingress"), 1, "{shown}");
        assert!(
            grew(&before, &after, "default-block", "ingress") >= 3,
            "{shown}"
        );
        for direction in ["ingress", "egress"] {
            // ARP crosses the veth: non-ip is what it is counted as there.
            if link_type.is_some() {
                assert_eq!(grew(&before, &after, "non-ip", direction), 0, "{shown}");
            }
            assert_eq!(grew(&before, &after, "malformed", direction), 0, "{shown}");
            assert_eq!(
                grew(&before, &after, "unsupported", direction),
                0,
                "{shown}"
            );
        }
    }
    stop_run(daemon);
    drop(guard);
}

/// `status` of the gateway's device: its exit code and JSON, or `None` when it printed none (no
/// filter: an attach at work).
fn try_status(lab: &Lab) -> Option<(Option<i32>, Value)> {
    let out = lab.run(Entry::Nsenter, &["status", lab.wan(), "--json"]);
    Some((exit_code(&out), serde_json::from_slice(&out.stdout).ok()?))
}

/// [`try_status`], which must print its JSON.
fn status_exit(lab: &Lab) -> (Option<i32>, Value) {
    try_status(lab).unwrap_or_else(|| panic!("status --json of {} printed no JSON", lab.wan()))
}

/// The same interface (its index kept) saying it has another link type, as a raw-IP modem
/// switched to Ethernet framing: the filter reads the old layout, so `status` says it is not
/// filtering (`link-type-changed`, exit 3) until the link type is one of the same layout again;
/// a type gotofw cannot read is named. `gotofw run` attaches anew for the new layout.
#[test]
fn issue12_a_link_type_changed_in_place_is_not_filtering() {
    if !require_root_or_skip("issue12_a_link_type_changed_in_place_is_not_filtering") {
        return;
    }
    let lab = Lab::new(ARPHRD_NONE);
    let guard = lab.guard();
    expect_success(
        &lab.run(
            Entry::Nsenter,
            &["attach", lab.wan(), "--scenario", "udp-turn"],
        ),
        "attach",
    );
    let ifindex = lab.status()["interfaces"][0]["ifindex"].clone();
    let (code, v) = status_exit(&lab);
    assert_eq!(
        (code, &v["interfaces"][0]["state"]),
        (Some(0), &"filtering".into())
    );
    for (kind, shown, words) in [
        (libc::ARPHRD_ETHER, "ether", "whose frames are ethernet"),
        (ARPHRD_IPGRE, "gre", "which gotofw cannot read"),
    ] {
        lab.net.retype_wan(kind).unwrap();
        let (code, v) = status_exit(&lab);
        let i = &v["interfaces"][0];
        assert_eq!(code, Some(3), "{shown}: {v}");
        assert_eq!(i["state"], "link-type-changed", "{shown}: {v}");
        assert_eq!(i["filtering"], false, "{shown}: {v}");
        assert_eq!(i["ifindex"], ifindex, "{shown}: the same interface");
        let detail = i["state_detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("link type {shown} now")) && detail.contains(words),
            "{shown}: {detail}"
        );
    }
    // Back to a type of the same layout (bare IP): filtering, and filtering right.
    lab.net.retype_wan(ARPHRD_PPP).unwrap();
    let (code, v) = status_exit(&lab);
    assert_eq!(
        (code, &v["interfaces"][0]["state"]),
        (Some(0), &"filtering".into()),
        "{v}"
    );
    assert_eq!(lab.probes(), [true, false, true, false], "as ppp");
    expect_success(&lab.run(Entry::Nsenter, &["detach", lab.wan()]), "detach");

    // `gotofw run` sees the change (the device went down and up) and attaches anew, for the
    // new layout.
    let (_dir, mut daemon) = start_run(&lab.gotofw, lab.net.gw(), lab.wan());
    assert_eq!(lab.status()["interfaces"][0]["link"], "ip");
    lab.net.retype_wan(libc::ARPHRD_ETHER).unwrap();
    assert!(
        daemon
            .wait_for_stderr("link-type-changed", DAEMON_WAIT)
            .is_some(),
        "run did not see the link type change"
    );
    let start = Instant::now();
    let filtering = || try_status(&lab).filter(|(_, v)| v["interfaces"][0]["state"] == "filtering");
    let mut v = filtering();
    // Bounded: DAEMON_WAIT.
    while v.is_none() && start.elapsed() < DAEMON_WAIT {
        thread::sleep(Duration::from_millis(20));
        v = filtering();
    }
    let v = v.expect("filtering again after the link type changed");
    let i = &v.1["interfaces"][0];
    assert_eq!(
        (v.0, &i["state"], &i["link"]),
        (Some(0), &"filtering".into(), &"ethernet".into()),
        "{}",
        v.1
    );
    stop_run(daemon);
    drop(guard);
}
