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
//!
//! One job a file: [`matrix`] names the services, endpoints and probes, [`servers`] starts
//! the servers, [`clients`] runs the clients against them, [`counts`] installs and reads the
//! nftables counters, [`unsolicited`] sends what nobody asked for, [`gotofw`] drives gotofw
//! in the lab's terms (modes, `explain`, counters).

mod clients;
mod counts;
mod gotofw;
mod matrix;
mod servers;
mod unsolicited;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddrV4},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

pub(crate) use self::servers::{ServerPrograms, make_certificate, start_servers};
pub use self::{
    counts::EndpointCounts,
    gotofw::{Explained, Mode, counter_packets, explain, stateful_support},
    matrix::{Endpoint, Outcome, Probe, Service, matrix},
    unsolicited::UNSOLICITED,
};
use crate::{
    Netns, ServerHandle, VethPair, addr_add,
    daemon::{Daemon, find_program},
    gotofw::{GW_ADDR, GW_ROUTES, INET_ADDR, OUTSIDE, TURN_A, TURN_B},
    route_add,
    tempdir::TempDir,
    unique_name, veth_pair,
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
        Self::with_prefix(None)
    }

    /// [`Lab3::new`] with every namespace and link named [`unique_name`]`(prefix)`, so that a
    /// test's leftovers (after a kill) are recognisably its own; `None`: `lan`, `gw`, `inet`,
    /// `lan` and `wan`.
    pub fn with_prefix(prefix: Option<&str>) -> Result<Self> {
        let name = |default: &'static str| prefix.unwrap_or(default).to_owned();
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

        let lan = Netns::new(&name("lan"))?;
        let gw = Netns::new(&name("gw"))?;
        let inet = Netns::new(&name("inet"))?;
        let lan_link = veth_pair(&lan, "eth0", &gw, &unique_name(&name("lan")))?;
        let wan_link = veth_pair(&gw, &unique_name(&name("wan")), &inet, "eth0")?;
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

    /// Logs of the lab's servers, for a failing test's message.
    pub fn server_logs(&self) -> String {
        self.daemons
            .iter()
            .map(|daemon| format!("--- pid {}:\n{}", daemon.pid(), daemon.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
