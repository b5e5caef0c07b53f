//! [`Lab3`]: a client network behind a masquerading gateway, and an
//! "internet" with real GoTo-like servers inside and outside GoTo's TURN
//! networks. The lab of `tests/tests/lab3.rs` and of the demo.
//!
//! ```text
//!  lan                       gw (ip_forward, nft masquerade on wan)        inet
//!  eth0 192.0.2.10/24 ==== lan* 192.0.2.1/24   wan* 203.0.113.2/24 ==== eth0 203.0.113.1/24
//!  default via 192.0.2.1                        gotofw attaches here         68.64.0.10/32      (TURN net)
//!                           routes to the servers via 203.0.113.1           23.239.255.254/32  (TURN net)
//!                                                                           198.51.100.10/32   (outside)
//!                                                                           68.64.0.20/32      (no server)
//! ```
//!
//! On each of the three server addresses `inet` runs coturn's `turnserver`
//! (UDP and TCP 3478, long-term credentials, no TLS), nginx (HTTPS on 443 with
//! a certificate made at start, plain HTTP on 80) and UDP echo servers on the
//! edges of GoTo's media range (44999, 45000, 49999, 50000); `turnutils_peer`
//! on 203.0.113.1:3480 is the far end that TURN allocations relay to. The
//! clients run in `lan`: `turnutils_stunclient`, `turnutils_uclient` (UDP and
//! `-t` TCP allocations, data relayed to the peer and back), `curl` and the
//! lab's UDP probe. `inet` has no route to the LAN: everything it sees comes
//! from the gateway's WAN address.
//!
//! nftables counts, per server endpoint, what the gateway's stack sent out of
//! its WAN (before any TC egress filter), what `inet` received from and sent
//! to the gateway, and what reached the gateway's stack through its WAN (after
//! XDP): see [`Lab3::counts`].
//!
//! Names are [`unique_name`]s, configuration, certificate, logs and pid files
//! live in a temporary directory of the lab's own, so two labs never collide.
//! `Drop` kills the servers, removes the directory, the links and the
//! namespaces.

use std::{
    collections::BTreeMap,
    fmt, fs,
    net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4},
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{
    Gotofw, Netns, ServerHandle, VethPair, addr_add,
    daemon::{Bounds, Daemon, Finished, Transport, find_program, run_bounded},
    gotofw::{GW_ADDR, GW_ROUTES, INET_ADDR, OUTSIDE, TURN_A, TURN_B},
    route_add, tcp_echo_server,
    tempdir::TempDir,
    udp_echo_server, udp_probe, udp_send_from, unique_name, veth_pair,
};

/// The client host in `lan`.
pub const LAN_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// The gateway's LAN address, the client's default route.
pub const LAN_GW_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// An `inet` address inside the TURN network 68.64.0.0/19 where nothing
/// listens: the source of unsolicited traffic from "inside" a TURN network.
pub const ROGUE: Ipv4Addr = Ipv4Addr::new(68, 64, 0, 20);
/// The server addresses: two inside GoTo's TURN networks, one outside.
pub const SERVERS: [Ipv4Addr; 3] = [TURN_A, TURN_B, OUTSIDE];
/// The UDP echo ports: the edges of GoTo's media range 45000-49999, and just outside.
pub const MEDIA_PORTS: [u16; 4] = [44999, 45000, 49999, 50000];
/// Where `turnutils_peer` listens (in `inet`); TURN allocations relay to it.
pub const TURN_PEER: SocketAddrV4 = SocketAddrV4::new(INET_ADDR, 3480);
/// The TURN server's static long-term user.
pub const TURN_USER: &str = "gotofw";
/// Its password (the lab is closed: nothing outside it can reach the server).
pub const TURN_PASSWORD: &str = "lab-only";
/// The TURN realm.
pub const TURN_REALM: &str = "gotofw.lab";

/// Unsolicited traffic from `inet` to the gateway's WAN address that the
/// tests and the demo send: transport and source. Stateless mode admits what
/// comes from an allowed rule's port (and network), asked for or not; stateful
/// mode admits none of it.
pub const UNSOLICITED: [(Transport, SocketAddrV4); 4] = [
    (Transport::Tcp, SocketAddrV4::new(INET_ADDR, 443)),
    (Transport::Udp, SocketAddrV4::new(ROGUE, 3478)),
    (Transport::Tcp, SocketAddrV4::new(ROGUE, 3478)),
    (Transport::Udp, SocketAddrV4::new(INET_ADDR, 45000)),
];

/// How long a server may take to listen after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// A STUN binding answers in milliseconds; a blocked one costs this.
const STUN_DEADLINE: Duration = Duration::from_secs(2);
/// A TURN client that has no relay address by then cannot reach its server.
const TURN_ALLOCATE_WITHIN: Duration = Duration::from_secs(2);
/// `turnutils_uclient` waits 1 to 6 s (at random) after allocating before it
/// sends its data, then needs the echoes: the bound for one that got through.
const TURN_DEADLINE: Duration = Duration::from_secs(10);
/// curl's `--connect-timeout`: what a blocked HTTP(S) request costs.
const CURL_CONNECT_TIMEOUT: &str = "2";
/// curl's `--max-time` once connected.
const CURL_MAX_TIME: &str = "5";
/// The kill bound around curl.
const CURL_DEADLINE: Duration = Duration::from_secs(6);
/// How long the UDP echo probe waits for its echo.
const UDP_PROBE_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long the unsolicited TCP connection may take.
const UNSOLICITED_TCP_DEADLINE: Duration = Duration::from_secs(2);
/// How long unsolicited traffic gets to reach its listener on the gateway.
const UNSOLICITED_WAIT: Duration = Duration::from_millis(1200);
/// The messages each `turnutils_uclient` relays.
const TURN_MESSAGES: u64 = 3;
/// The nftables table the lab adds in `gw` and `inet`.
const NFT_TABLE: &str = "gotofw_lab";

/// A service the lab's servers offer, with the client that uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// STUN binding on UDP 3478 (`turnutils_stunclient`).
    Stun,
    /// TURN allocation over UDP 3478, data relayed to the peer and back
    /// (`turnutils_uclient`).
    TurnUdp,
    /// TURN allocation over TCP 3478 (`turnutils_uclient -t`).
    TurnTcp,
    /// HTTPS on TCP 443 (`curl -k`).
    Https,
    /// Plain HTTP on TCP 80, which no scenario allows (`curl`).
    Http,
    /// A UDP echo on this port (the lab's UDP probe).
    UdpEcho(u16),
}

impl Service {
    /// Every service, in the order of the demo's table.
    pub const ALL: [Self; 9] = [
        Self::Stun,
        Self::TurnUdp,
        Self::TurnTcp,
        Self::Https,
        Self::Http,
        Self::UdpEcho(MEDIA_PORTS[0]),
        Self::UdpEcho(MEDIA_PORTS[1]),
        Self::UdpEcho(MEDIA_PORTS[2]),
        Self::UdpEcho(MEDIA_PORTS[3]),
    ];

    /// The transport the client uses.
    pub const fn transport(self) -> Transport {
        match self {
            Self::Stun | Self::TurnUdp | Self::UdpEcho(_) => Transport::Udp,
            Self::TurnTcp | Self::Https | Self::Http => Transport::Tcp,
        }
    }

    /// The server port.
    pub const fn port(self) -> u16 {
        match self {
            Self::Stun | Self::TurnUdp | Self::TurnTcp => 3478,
            Self::Https => 443,
            Self::Http => 80,
            Self::UdpEcho(port) => port,
        }
    }

    /// The client, as a short command line.
    pub const fn client(self) -> &'static str {
        match self {
            Self::Stun => "turnutils_stunclient",
            Self::TurnUdp => "turnutils_uclient",
            Self::TurnTcp => "turnutils_uclient -t",
            Self::Https => "curl -k https",
            Self::Http => "curl http",
            Self::UdpEcho(_) => "udp echo probe",
        }
    }
}

/// A server endpoint: transport, address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// TCP or UDP.
    pub transport: Transport,
    /// The server's address and port.
    pub addr: SocketAddrV4,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.transport.name(), self.addr)
    }
}

/// One client run against one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Probe {
    /// What the client does.
    pub service: Service,
    /// Which server address it talks to.
    pub server: Ipv4Addr,
}

impl Probe {
    /// The server endpoint it talks to.
    pub const fn endpoint(self) -> Endpoint {
        Endpoint {
            transport: self.service.transport(),
            addr: SocketAddrV4::new(self.server, self.service.port()),
        }
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.service.client(), self.endpoint())
    }
}

/// Every service on every server address: the lab's full matrix.
pub fn matrix() -> Vec<Probe> {
    Service::ALL
        .iter()
        .flat_map(|&service| SERVERS.iter().map(move |&server| Probe { service, server }))
        .collect()
}

/// What a client run came to.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The client completed: a binding, relayed data, a 200, an echo.
    pub ok: bool,
    /// What it got (`reflexive 203.0.113.2:40000`, `relayed 3/3`, `HTTP 200`,
    /// `echo`) or why it failed (`no answer in 2000 ms`).
    pub detail: String,
    /// How long it ran.
    pub elapsed: Duration,
}

/// Packets nftables counted for one endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointCounts {
    /// Packets to the server that the gateway's stack sent out of its WAN
    /// interface, after masquerading and before any TC egress filter (`gw`
    /// postrouting).
    pub sent_by_gw: u64,
    /// Packets from the gateway that reached the server (`inet` input).
    pub to_server: u64,
    /// Packets the server sent to the gateway (`inet` output).
    pub from_server: u64,
    /// Packets from the server that reached the gateway's stack through its
    /// WAN interface, i.e. that XDP passed (`gw` prerouting, raw priority).
    pub seen_by_gw: u64,
}

impl EndpointCounts {
    /// The packets counted since `before`.
    #[must_use]
    pub fn since(self, before: Self) -> Self {
        Self {
            sent_by_gw: self.sent_by_gw.saturating_sub(before.sent_by_gw),
            to_server: self.to_server.saturating_sub(before.to_server),
            from_server: self.from_server.saturating_sub(before.from_server),
            seen_by_gw: self.seen_by_gw.saturating_sub(before.seen_by_gw),
        }
    }
}

/// The filtering mode gotofw is attached in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `--stateless`: XDP admits replies that mirror an allowed rule.
    Stateless,
    /// The default: TC egress records allowed flows, XDP admits their packets.
    Stateful,
}

impl Mode {
    /// `stateless` or `stateful`, as `gotofw status --json` spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Stateless => "stateless",
            Self::Stateful => "stateful",
        }
    }

    /// The arguments of `gotofw attach IFACE` for `scenario` in this mode.
    pub fn attach_args(self, scenario: &str) -> Vec<&str> {
        let mut args = vec!["--scenario", scenario];
        if self == Self::Stateless {
            args.push("--stateless");
        }
        args
    }
}

/// Whether this gotofw attaches in stateful mode: it attaches without
/// `--stateless` to `iface` in `ns` and detaches again. `Err` carries its
/// message when it refuses with exit code 2 (stateful mode not there yet);
/// any other failure panics.
pub fn stateful_support(gotofw: &Gotofw, ns: &Netns, iface: &str) -> Result<(), String> {
    let guard = crate::Attached::new(gotofw.clone(), ns, iface);
    let args = ["attach", iface, "--scenario", "tcp-443"];
    let output = gotofw.run(ns, &args);
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if output.status.success() {
        let detach = guard.detach();
        assert!(
            detach.status.success(),
            "gotofw detach {iface} after a stateful attach: {}",
            String::from_utf8_lossy(&detach.stderr).trim()
        );
        return Ok(());
    }
    assert_eq!(
        output.status.code(),
        Some(crate::EXIT_USAGE),
        "`gotofw {}` failed unexpectedly ({}): {stderr}",
        args.join(" "),
        output.status
    );
    Err(stderr)
}

/// What `gotofw explain --json` says about a connection to an endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explained {
    /// The connection's verdict: whether the client gets through.
    pub allow: bool,
    /// The rule that decides the connection's first packet.
    pub rule: String,
    /// Whether its replies pass the WAN ingress in stateless mode, i.e.
    /// whether a packet *from* the endpoint passes, asked for or not.
    pub reply_allow: bool,
    /// The rule that decides its replies at the WAN ingress (stateless mode).
    pub reply_rule: String,
}

/// Runs `gotofw explain --scenario SCENARIO [--stateless] --json PROTO ADDR:PORT`.
/// A gotofw that has no stateful mode has no `explain --stateless` either
/// (it explains stateless mode): when it refuses the flag, this asks again
/// without it.
pub fn explain(
    gotofw: &Gotofw,
    scenario: &str,
    mode: Mode,
    endpoint: Endpoint,
) -> Result<Explained> {
    let dst = endpoint.addr.to_string();
    let mut args = vec![
        "explain",
        "--scenario",
        scenario,
        "--json",
        endpoint.transport.name(),
        &dst,
    ];
    if mode == Mode::Stateless {
        args.insert(1, "--stateless");
    }
    let mut output = gotofw.run_here(&args);
    if mode == Mode::Stateless
        && output.status.code() == Some(crate::EXIT_USAGE)
        && String::from_utf8_lossy(&output.stderr).contains("--stateless")
    {
        args.remove(1);
        output = gotofw.run_here(&args);
    }
    if !output.status.success() {
        bail!(
            "`gotofw {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let json: Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("`gotofw {}` printed no JSON", args.join(" ")))?;
    let text = |value: &Value| {
        value
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("`gotofw {}`: unexpected JSON {json}", args.join(" ")))
    };
    let verdict = |value: &Value| match text(value)?.as_str() {
        "allow" => Ok(true),
        "block" => Ok(false),
        other => bail!("`gotofw explain`: unknown verdict {other:?} in {json}"),
    };
    Ok(Explained {
        allow: verdict(&json["verdict"])?,
        rule: text(&json["rule"])?,
        reply_allow: verdict(&json["reply"]["verdict"])?,
        reply_rule: text(&json["reply"]["rule"])?,
    })
}

/// The packets of the counter called `name` for `direction` (`ingress` or
/// `egress`) in a `status --json` document of one interface, 0 when there is
/// no such counter (stateless mode has no egress counters).
pub fn counter_packets(status: &Value, name: &str, direction: &str) -> u64 {
    status["interfaces"][0]["counters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|counter| counter["name"] == name && counter["direction"] == direction)
        .filter_map(|counter| counter["packets"].as_u64())
        .sum()
}

/// The programs the lab runs, found once at start.
#[derive(Debug)]
struct Programs {
    stunclient: PathBuf,
    uclient: PathBuf,
    curl: PathBuf,
    nft: PathBuf,
    socat: PathBuf,
}

/// The three-namespace lab; see the module documentation.
///
/// Create and drop it on the same thread: its servers die with the thread
/// that started them (`PR_SET_PDEATHSIG`), so that a killed test leaves none.
#[derive(Debug)]
pub struct Lab3 {
    // Fields drop in this order: servers first, then their files, then links
    // and namespaces.
    daemons: Vec<Daemon>,
    echoes: Vec<ServerHandle>,
    dir: TempDir,
    lan_link: VethPair,
    wan_link: VethPair,
    lan: Netns,
    gw: Netns,
    inet: Netns,
    endpoints: Vec<Endpoint>,
    programs: Programs,
}

impl Lab3 {
    /// Builds the lab and starts its servers; returns when they all listen.
    pub fn new() -> Result<Self> {
        let programs = Programs {
            stunclient: find_program("turnutils_stunclient", "coturn")?,
            uclient: find_program("turnutils_uclient", "coturn")?,
            curl: find_program("curl", "curl")?,
            nft: find_program("nft", "nftables")?,
            socat: find_program("socat", "socat")?,
        };
        let turnserver = find_program("turnserver", "coturn")?;
        let peer = find_program("turnutils_peer", "coturn")?;
        let nginx = find_program("nginx", "nginx-light")?;
        let openssl = find_program("openssl", "openssl")?;

        let lan = Netns::new("lan")?;
        let gw = Netns::new("gw")?;
        let inet = Netns::new("inet")?;
        let lan_link = veth_pair(&lan, "eth0", &gw, &unique_name("lan"))?;
        let wan_link = veth_pair(&gw, &unique_name("wan"), &inet, "eth0")?;
        addr_add(&lan, "eth0", &format!("{LAN_ADDR}/24"))?;
        addr_add(&gw, lan_link.b(), &format!("{LAN_GW_ADDR}/24"))?;
        addr_add(&gw, wan_link.a(), &format!("{GW_ADDR}/24"))?;
        addr_add(&inet, "eth0", &format!("{INET_ADDR}/24"))?;
        for server in SERVERS.into_iter().chain([ROGUE]) {
            addr_add(&inet, "eth0", &format!("{server}/32"))?;
        }
        route_add(&lan, "default", IpAddr::V4(LAN_GW_ADDR))?;
        for cidr in GW_ROUTES {
            route_add(&gw, cidr, IpAddr::V4(INET_ADDR))
                .with_context(|| format!("routing {cidr} in {}", gw.name()))?;
        }
        gw.set_sysctl("net.ipv4.ip_forward", "1")?;

        let mut endpoints: Vec<Endpoint> = matrix().iter().map(|p| p.endpoint()).collect();
        endpoints.sort_unstable();
        endpoints.dedup();

        let dir = TempDir::new("gotofw-lab3")?;
        let mut lab = Self {
            daemons: Vec::new(),
            echoes: Vec::new(),
            dir,
            lan_link,
            wan_link,
            lan,
            gw,
            inet,
            endpoints,
            programs,
        };
        lab.install_nft()?;
        lab.make_certificate(&openssl)?;
        lab.start_servers(&turnserver, &peer, &nginx)?;
        Ok(lab)
    }

    /// The client namespace.
    pub fn lan(&self) -> &Netns {
        &self.lan
    }

    /// The gateway namespace.
    pub fn gw(&self) -> &Netns {
        &self.gw
    }

    /// The internet namespace, where the servers run.
    pub fn inet(&self) -> &Netns {
        &self.inet
    }

    /// The gateway's WAN interface, where gotofw attaches.
    pub fn wan(&self) -> &str {
        self.wan_link.a()
    }

    /// The gateway's LAN interface.
    pub fn lan_iface(&self) -> &str {
        self.lan_link.b()
    }

    /// Forgets the neighbour (ARP) entries of the WAN link on both ends, so
    /// that the next packet needs a fresh ARP exchange through the filter.
    pub fn flush_neighbours(&self) -> Result<()> {
        self.gw.ip(["neigh", "flush", "dev", self.wan()])?;
        self.inet.ip(["neigh", "flush", "dev", "eth0"])?;
        Ok(())
    }

    /// The lab's temporary directory (configuration, certificate, logs).
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// Every server endpoint of the matrix.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.0.join(file)
    }

    fn path_str(&self, file: &str) -> String {
        self.path(file).display().to_string()
    }

    /// Runs `nft -f FILE` in `ns` with `rules` written to FILE.
    fn nft_apply(&self, ns: &Netns, file: &str, rules: &str) -> Result<()> {
        let path = self.path(file);
        fs::write(&path, rules)?;
        let nft = self.programs.nft.display().to_string();
        let output = ns.exec(&nft, ["-f", &path.display().to_string()])?;
        if !output.status.success() {
            bail!(
                "nft -f {} in {} failed: {}",
                path.display(),
                ns.name(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// The gateway's masquerade and WAN-ingress counters; `inet`'s counters
    /// of what it received from and sent to the gateway.
    fn install_nft(&self) -> Result<()> {
        let wan = self.wan();
        let (mut gw_counters, mut gw_in, mut gw_out) = (Vec::new(), Vec::new(), Vec::new());
        let (mut inet_counters, mut inet_in, mut inet_out) = (Vec::new(), Vec::new(), Vec::new());
        for (index, endpoint) in self.endpoints.iter().enumerate() {
            let (proto, ip, port) = (
                endpoint.transport.name(),
                endpoint.addr.ip(),
                endpoint.addr.port(),
            );
            gw_counters.push(format!(
                "  counter seen_{index} {{ }}\n  counter out_{index} {{ }}"
            ));
            inet_counters.push(format!(
                "  counter to_{index} {{ }}\n  counter from_{index} {{ }}"
            ));
            gw_in.push(format!(
                "    iifname \"{wan}\" ip saddr {ip} {proto} sport {port} counter name \"seen_{index}\""
            ));
            gw_out.push(format!(
                "    oifname \"{wan}\" ip daddr {ip} {proto} dport {port} counter name \"out_{index}\""
            ));
            inet_in.push(format!(
                "    ip saddr {GW_ADDR} ip daddr {ip} {proto} dport {port} counter name \"to_{index}\""
            ));
            inet_out.push(format!(
                "    ip saddr {ip} ip daddr {GW_ADDR} {proto} sport {port} counter name \"from_{index}\""
            ));
        }
        let gw = format!(
            "table ip {NFT_TABLE} {{\n{}\n  chain nat_out {{\n    \
             type nat hook postrouting priority srcnat; policy accept;\n    \
             oifname \"{wan}\" masquerade\n  }}\n  chain wan_in {{\n    \
             type filter hook prerouting priority raw; policy accept;\n{}\n  }}\n  chain wan_out {{\n    \
             type filter hook postrouting priority srcnat + 10; policy accept;\n{}\n  }}\n}}\n",
            gw_counters.join("\n"),
            gw_in.join("\n"),
            gw_out.join("\n"),
        );
        let inet = format!(
            "table ip {NFT_TABLE} {{\n{}\n  chain from_gw {{\n    \
             type filter hook input priority filter; policy accept;\n{}\n  }}\n  chain to_gw {{\n    \
             type filter hook output priority filter; policy accept;\n{}\n  }}\n}}\n",
            inet_counters.join("\n"),
            inet_in.join("\n"),
            inet_out.join("\n"),
        );
        self.nft_apply(&self.gw, "gw.nft", &gw)?;
        self.nft_apply(&self.inet, "inet.nft", &inet)
    }

    /// A self-signed certificate for nginx, valid for the server addresses.
    fn make_certificate(&self, openssl: &Path) -> Result<()> {
        let san: Vec<String> = SERVERS.iter().map(|ip| format!("IP:{ip}")).collect();
        let output = Command::new(openssl)
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=gotofw-lab", "-addext"])
            .arg(format!("subjectAltName={}", san.join(",")))
            .arg("-keyout")
            .arg(self.path("key.pem"))
            .arg("-out")
            .arg(self.path("cert.pem"))
            .output()
            .context("cannot run openssl")?;
        if !output.status.success() {
            bail!(
                "openssl req failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    fn start_servers(&mut self, turnserver: &Path, peer: &Path, nginx: &Path) -> Result<()> {
        let mut turn = format!(
            "listening-port=3478\nrelay-ip={TURN_A}\n\
             # Relay ports away from the UDP echo ports (45000-50000).\n\
             min-port=60000\nmax-port=60999\n\
             lt-cred-mech\nuser={TURN_USER}:{TURN_PASSWORD}\nrealm={TURN_REALM}\nfingerprint\n\
             no-tls\nno-dtls\nno-rfc5780\nno-cli\nno-stdout-log\nsimple-log\n\
             log-file={}\npidfile={}\nuserdb={}\n",
            self.path_str("turnserver.log"),
            self.path_str("turnserver.pid"),
            self.path_str("turndb"),
        );
        for server in SERVERS {
            turn.push_str("listening-ip=");
            turn.push_str(&server.to_string());
            turn.push('\n');
        }
        fs::write(self.path("turnserver.conf"), turn)?;
        let mut daemon = Daemon::spawn(
            &self.inet,
            "turnserver",
            turnserver,
            &["-c".to_owned(), self.path_str("turnserver.conf")],
            &self.path("turnserver.out"),
        )?;
        let turn_sockets: Vec<(Transport, SocketAddr)> = SERVERS
            .iter()
            .flat_map(|&ip| {
                [Transport::Udp, Transport::Tcp]
                    .map(|transport| (transport, SocketAddr::V4(SocketAddrV4::new(ip, 3478))))
            })
            .collect();
        daemon.wait_listening(&self.inet, &turn_sockets, READY_TIMEOUT)?;
        self.daemons.push(daemon);

        let mut daemon = Daemon::spawn(
            &self.inet,
            "turnutils_peer",
            peer,
            &[
                "-L".to_owned(),
                TURN_PEER.ip().to_string(),
                "-p".to_owned(),
                TURN_PEER.port().to_string(),
            ],
            &self.path("turnutils_peer.out"),
        )?;
        daemon.wait_listening(
            &self.inet,
            &[(Transport::Udp, SocketAddr::V4(TURN_PEER))],
            READY_TIMEOUT,
        )?;
        self.daemons.push(daemon);

        let listen: Vec<String> = SERVERS
            .iter()
            .map(|ip| format!("    listen {ip}:443 ssl;\n    listen {ip}:80;\n"))
            .collect();
        let listen = listen.concat();
        let temp: Vec<String> = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
            .iter()
            .map(|kind| {
                format!(
                    "  {kind}_temp_path {};\n",
                    self.path_str(&format!("nginx-{kind}"))
                )
            })
            .collect();
        let temp = temp.concat();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {pid};\nerror_log stderr;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n{temp}  default_type text/plain;\n  \
             ssl_certificate {cert};\n  ssl_certificate_key {key};\n  server {{\n{listen}    \
             location / {{ return 200 \"gotofw lab: $scheme on $server_addr\\n\"; }}\n  }}\n}}\n",
            pid = self.path_str("nginx.pid"),
            cert = self.path_str("cert.pem"),
            key = self.path_str("key.pem"),
        );
        fs::write(self.path("nginx.conf"), conf)?;
        let mut daemon = Daemon::spawn(
            &self.inet,
            "nginx",
            nginx,
            &[
                "-p".to_owned(),
                self.path_str(""),
                "-c".to_owned(),
                self.path_str("nginx.conf"),
            ],
            &self.path("nginx.out"),
        )?;
        let web_sockets: Vec<(Transport, SocketAddr)> = SERVERS
            .iter()
            .flat_map(|&ip| {
                [443, 80].map(|port| (Transport::Tcp, SocketAddr::V4(SocketAddrV4::new(ip, port))))
            })
            .collect();
        daemon.wait_listening(&self.inet, &web_sockets, READY_TIMEOUT)?;
        self.daemons.push(daemon);

        for ip in SERVERS {
            for port in MEDIA_PORTS {
                let echo =
                    udp_echo_server(&self.inet, SocketAddr::V4(SocketAddrV4::new(ip, port)))?;
                self.echoes.push(echo);
            }
        }
        Ok(())
    }

    /// Runs one client in `lan` against one server and says how it went.
    /// Every client is bounded: one whose server does not answer costs about
    /// 1.5 to 2 s.
    pub fn probe(&self, probe: Probe) -> Result<Outcome> {
        let server = probe.server.to_string();
        let run = |program: &Path, args: Vec<String>, bounds: Bounds| {
            run_bounded(&self.lan, program, &args, bounds)
        };
        let start = Instant::now();
        let (ok, detail) = match probe.service {
            Service::Stun => {
                let finished = run(
                    &self.programs.stunclient,
                    vec![server],
                    Bounds {
                        deadline: STUN_DEADLINE,
                        progress: None,
                    },
                )?;
                let reflexive = finished
                    .output
                    .lines()
                    .find_map(|line| line.split("UDP reflexive addr: ").nth(1))
                    .map(str::trim);
                match reflexive {
                    Some(addr) if finished.success() => (true, format!("reflexive {addr}")),
                    _ => (false, failure(&finished)),
                }
            }
            Service::TurnUdp | Service::TurnTcp => {
                let mut args: Vec<String> = ["-v", "-c", "-n", &TURN_MESSAGES.to_string()]
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                if probe.service == Service::TurnTcp {
                    args.push("-t".to_owned());
                }
                args.extend(
                    [
                        "-u",
                        TURN_USER,
                        "-w",
                        TURN_PASSWORD,
                        "-e",
                        &TURN_PEER.ip().to_string(),
                        "-r",
                        &TURN_PEER.port().to_string(),
                        &server,
                    ]
                    .map(str::to_owned),
                );
                let finished = run(
                    &self.programs.uclient,
                    args,
                    Bounds {
                        deadline: TURN_DEADLINE,
                        progress: Some((TURN_ALLOCATE_WITHIN, "Received relay addr")),
                    },
                )?;
                match relayed(&finished.output) {
                    Some((sent, received))
                        if finished.success() && sent > 0 && received == sent =>
                    {
                        (true, format!("relayed {received}/{sent}"))
                    }
                    Some((sent, received)) if finished.success() => {
                        (false, format!("relayed {received}/{sent}"))
                    }
                    _ => (false, failure(&finished)),
                }
            }
            Service::Https | Service::Http => {
                let scheme = if probe.service == Service::Https {
                    "https"
                } else {
                    "http"
                };
                let args = [
                    "-k",
                    "-sS",
                    "--noproxy",
                    "*",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}\n",
                    "--connect-timeout",
                    CURL_CONNECT_TIMEOUT,
                    "--max-time",
                    CURL_MAX_TIME,
                    &format!("{scheme}://{server}/"),
                ]
                .map(str::to_owned)
                .to_vec();
                let finished = run(
                    &self.programs.curl,
                    args,
                    Bounds {
                        deadline: CURL_DEADLINE,
                        progress: None,
                    },
                )?;
                if finished.success() && finished.output.lines().any(|line| line == "200") {
                    (true, "HTTP 200".to_owned())
                } else if let Some(error) = finished
                    .output
                    .lines()
                    .find(|line| line.starts_with("curl: ("))
                {
                    (false, error.to_owned())
                } else {
                    (false, failure(&finished))
                }
            }
            Service::UdpEcho(port) => {
                let dst = SocketAddr::V4(SocketAddrV4::new(probe.server, port));
                if udp_probe(&self.lan, None, dst, UDP_PROBE_TIMEOUT) {
                    (true, "echo".to_owned())
                } else {
                    (
                        false,
                        format!("no echo in {} ms", UDP_PROBE_TIMEOUT.as_millis()),
                    )
                }
            }
        };
        Ok(Outcome {
            ok,
            detail,
            elapsed: start.elapsed(),
        })
    }

    /// Runs every probe at once, one thread each; returns their outcomes in
    /// order. A round costs about its slowest client.
    ///
    /// # Panics
    /// When a client cannot be started.
    pub fn probe_all(&self, probes: &[Probe]) -> Vec<Outcome> {
        thread::scope(|scope| {
            let running: Vec<_> = probes
                .iter()
                .map(|&probe| scope.spawn(move || self.probe(probe)))
                .collect();
            running
                .into_iter()
                .zip(probes)
                .map(|(thread, probe)| {
                    thread
                        .join()
                        .expect("a probe thread panicked")
                        .unwrap_or_else(|err| panic!("{probe}: {err:#}"))
                })
                .collect()
        })
    }

    /// nftables' packet counts for every endpoint. The gateway is read first,
    /// so a packet counted there has been counted by `inet` too.
    pub fn counts(&self) -> Result<BTreeMap<Endpoint, EndpointCounts>> {
        let gw = self.nft_counters(&self.gw)?;
        let inet = self.nft_counters(&self.inet)?;
        let get = |counters: &BTreeMap<String, u64>, name: String| {
            counters
                .get(&name)
                .copied()
                .with_context(|| format!("no nft counter {name}"))
        };
        self.endpoints
            .iter()
            .enumerate()
            .map(|(index, &endpoint)| {
                Ok((
                    endpoint,
                    EndpointCounts {
                        sent_by_gw: get(&gw, format!("out_{index}"))?,
                        to_server: get(&inet, format!("to_{index}"))?,
                        from_server: get(&inet, format!("from_{index}"))?,
                        seen_by_gw: get(&gw, format!("seen_{index}"))?,
                    },
                ))
            })
            .collect()
    }

    /// The packets of every named counter of the lab's nft table in `ns`.
    fn nft_counters(&self, ns: &Netns) -> Result<BTreeMap<String, u64>> {
        let nft = self.programs.nft.display().to_string();
        let output = ns.exec(&nft, ["-j", "list", "counters", "table", "ip", NFT_TABLE])?;
        if !output.status.success() {
            bail!(
                "nft list counters in {} failed: {}",
                ns.name(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let json: Value = serde_json::from_slice(&output.stdout)
            .context("`nft -j list counters` printed no JSON")?;
        Ok(json["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let counter = &item["counter"];
                Some((
                    counter["name"].as_str()?.to_owned(),
                    counter["packets"].as_u64()?,
                ))
            })
            .collect())
    }

    /// Whether unsolicited traffic from `src` (an `inet` address, such as
    /// [`INET_ADDR`] or [`ROGUE`]) reaches a listener on the gateway's WAN
    /// address, port `gw_port`: a TCP connection attempt (socat, its source
    /// port bound; the listener sees it once the handshake completes) or three
    /// UDP datagrams. Takes up to about 1.2 s. Use a fresh port for every call
    /// (the listener lives for the call only; TIME_WAIT would refuse a second
    /// TCP connection from the same source).
    pub fn reaches_gateway(
        &self,
        transport: Transport,
        src: SocketAddrV4,
        gw_port: u16,
    ) -> Result<bool> {
        let dst = SocketAddrV4::new(GW_ADDR, gw_port);
        let listener = match transport {
            Transport::Tcp => tcp_echo_server(&self.gw, SocketAddr::V4(dst)),
            Transport::Udp => udp_echo_server(&self.gw, SocketAddr::V4(dst)),
        }?;
        match transport {
            Transport::Udp => {
                udp_send_from(&self.inet, SocketAddr::V4(src), SocketAddr::V4(dst), 3)?;
            }
            Transport::Tcp => {
                let args = [
                    "-u".to_owned(),
                    "/dev/null".to_owned(),
                    format!("TCP4:{dst},bind={src},reuseaddr,connect-timeout=1"),
                ];
                run_bounded(
                    &self.inet,
                    &self.programs.socat,
                    &args,
                    Bounds {
                        deadline: UNSOLICITED_TCP_DEADLINE,
                        progress: None,
                    },
                )?;
            }
        }
        let deadline = Instant::now() + UNSOLICITED_WAIT;
        while listener.served() == 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        Ok(listener.served() > 0)
    }

    /// Logs of the lab's servers, for a failing test's message.
    pub fn server_logs(&self) -> String {
        self.daemons
            .iter()
            .map(|daemon| format!("--- pid {}:\n{}", daemon.pid(), daemon.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// `(sent, received)` from `turnutils_uclient`'s closing line
/// `start_mclient: tot_send_msgs=3, tot_recv_msgs=3`.
fn relayed(output: &str) -> Option<(u64, u64)> {
    let line = output
        .lines()
        .rev()
        .find(|line| line.contains("start_mclient: tot_send_msgs="))?;
    let number = |key: &str| -> Option<u64> {
        let rest = line.split(key).nth(1)?;
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((number("tot_send_msgs=")?, number("tot_recv_msgs=")?))
}

/// Why a client run failed, in a few words.
fn failure(finished: &Finished) -> String {
    match finished.status {
        None => format!("no answer in {} ms", finished.elapsed.as_millis()),
        Some(status) => {
            let last = finished
                .output
                .lines()
                .rev()
                .find(|line| !line.trim().is_empty())
                .unwrap_or("")
                .trim();
            format!("{status}: {last}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uclient_totals_are_parsed() {
        let output = "1: : start_mclient: msz=1, tot_send_msgs=0, tot_recv_msgs=0\n\
                      4: : start_mclient: tot_send_msgs=3, tot_recv_msgs=2\n\
                      4: : start_mclient: tot_send_bytes ~ 300, tot_recv_bytes ~ 200\n";
        assert_eq!(relayed(output), Some((3, 2)));
        assert_eq!(relayed("allocate sent\n"), None);
    }

    #[test]
    fn the_matrix_covers_every_service_on_every_server() {
        let probes = matrix();
        assert_eq!(probes.len(), Service::ALL.len() * SERVERS.len());
        assert!(probes.contains(&Probe {
            service: Service::UdpEcho(49999),
            server: OUTSIDE
        }));
        assert_eq!(
            Probe {
                service: Service::TurnTcp,
                server: TURN_A
            }
            .endpoint()
            .to_string(),
            "tcp 68.64.0.10:3478"
        );
    }

    #[test]
    fn modes_attach_with_their_flags() {
        assert_eq!(
            Mode::Stateless.attach_args("udp-turn"),
            ["--scenario", "udp-turn", "--stateless"]
        );
        assert_eq!(
            Mode::Stateful.attach_args("tcp-443"),
            ["--scenario", "tcp-443"]
        );
    }

    #[test]
    fn counters_are_read_per_direction() {
        let status = serde_json::json!({"interfaces": [{"counters": [
            {"name": "https", "direction": "ingress", "packets": 3},
            {"name": "https", "direction": "egress", "packets": 4},
            {"name": "default-block", "direction": "ingress", "packets": 1}
        ]}]});
        assert_eq!(counter_packets(&status, "https", "ingress"), 3);
        assert_eq!(counter_packets(&status, "https", "egress"), 4);
        assert_eq!(counter_packets(&status, "default-block", "egress"), 0);
        assert_eq!(counter_packets(&status, "turn-udp", "ingress"), 0);
    }
}
