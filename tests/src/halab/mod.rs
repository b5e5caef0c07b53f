//! [`HaLab`]: a pair of gateways under keepalived (VRRP) and conntrackd (FTFW), gotofw in
//! stateful mode on both WAN interfaces, and a GoTo-like call through them while the master
//! fails. The lab of `tests/tests/ha.rs` and of `cargo xtask demo --ha`.
//!
//! ```text
//!  lan: br0 192.0.2.10/24            gw1 (priority 200)                     inet: br0 203.0.113.1/24
//!  default via 192.0.2.1    p1 ==== lan0 192.0.2.2/24    WAN 203.0.113.3/24 ==== p1   68.64.0.10/32 (TURN)
//!                                    sync0 198.51.100.249/30                            198.51.100.10/32 (HTTPS)
//!                                      ||  conntrackd FTFW (UDP 3780), VRRP of instance WAN
//!                                    sync0 198.51.100.250/30
//!                           p2 ==== lan0 192.0.2.3/24    WAN 203.0.113.4/24 ==== p2
//!                                    gw2 (priority 100)
//! ```
//!
//! keepalived holds the LAN virtual address 192.0.2.1/24 (instance `LAN`, adverts on `lan0`)
//! and the WAN virtual address 203.0.113.2/24 (instance `WAN`: adverts on the sync link, since
//! gotofw drops VRRP on the WAN as it drops everything nobody asked for; it tracks the WAN
//! interface), in one sync group whose notify script drives conntrackd as Debian's
//! `primary-backup.sh` does. Both gateways masquerade the LAN with `snat to 203.0.113.2`, so a
//! flow keeps its public tuple on either. The WAN interface has the same name on both
//! gateways, so one gotofw configuration file attaches both. `inet` runs the servers of the
//! three-namespace lab ([`Lab3`](crate::Lab3)'s, started by the same code), with a file of
//! [`DOWNLOAD_BYTES`] for nginx to serve.
//!
//! One job a file: this one builds the lab, [`daemons`] writes the keepalived and conntrackd
//! configurations and runs them, [`failover`] runs a call through a failover and measures it.

mod daemons;
mod failover;

use std::{
    fmt::Write as _,
    fs,
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

pub use self::{
    daemons::ADVERT_INT,
    failover::{
        DOWNLOAD_RATE, Download, FailoverReport, Failure, FlowSeen, KEEPALIVE_SECS, MEDIA_RATE,
        Media,
    },
};
use crate::{
    Attached, Gotofw, Netns, ServerHandle, VethPair, addr_add,
    daemon::{Daemon, find_program},
    gotofw::{GW_ADDR, INET_ADDR, OUTSIDE, TURN_A},
    lab3::{LAN_ADDR, SERVERS, ServerPrograms, make_certificate, start_servers},
    route_add,
    tempdir::TempDir,
    unique_name, veth_pair,
};

/// The LAN virtual address keepalived moves: the client's default route.
pub const LAN_VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The WAN virtual address keepalived moves: the source both gateways translate to.
pub const WAN_VIP: Ipv4Addr = GW_ADDR;
/// The TURN server the call allocates on (inside GoTo's TURN networks).
pub const TURN_SERVER: Ipv4Addr = TURN_A;
/// The HTTPS server of the download.
pub const DOWNLOAD_SERVER: Ipv4Addr = OUTSIDE;
/// The size of the download.
pub const DOWNLOAD_BYTES: usize = 4 << 20;
/// How long keepalived may take to settle (gw1 master, gw2 backup) or to move an address.
const SETTLE: Duration = Duration::from_secs(15);
/// How often addresses and daemons are polled.
const POLL: Duration = Duration::from_millis(20);

/// One gateway of the pair.
#[derive(Debug)]
pub(crate) struct Gateway {
    // Fields drop in this order: keepalived (stopped cleanly), conntrackd, then the namespace.
    /// Behind a lock so that a failover can stop and start it while gotofw guards borrow the
    /// namespace.
    keepalived: Mutex<Option<Daemon>>,
    conntrackd: Option<Daemon>,
    /// `gw1` or `gw2`.
    name: &'static str,
    /// keepalived's priority: gw1 is the master whenever it is up.
    priority: u8,
    lan_addr: Ipv4Addr,
    wan_addr: Ipv4Addr,
    sync_addr: Ipv4Addr,
    peer_sync_addr: Ipv4Addr,
    /// Its directory in the lab's: configurations, pid files, sockets, logs.
    dir: PathBuf,
    ns: Netns,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // keepalived removes its addresses and stops its VRRP process on SIGTERM; SIGKILL (the
        // Daemon's Drop) only when it does not exit in time. Errors ignored: nothing better to
        // do in a destructor.
        let keepalived = self.keepalived.get_mut();
        if let Ok(Some(keepalived)) = keepalived.map(Option::as_mut) {
            let _ = keepalived.signal_and_wait(libc::SIGTERM, Duration::from_secs(3));
        }
        if let Some(conntrackd) = self.conntrackd.as_mut() {
            let _ = conntrackd.signal_and_wait(libc::SIGTERM, Duration::from_secs(3));
        }
    }
}

/// The programs the lab runs, found once at start.
#[derive(Debug)]
struct Programs {
    python3: PathBuf,
    curl: PathBuf,
    keepalived: PathBuf,
    conntrackd: PathBuf,
}

/// The HA lab; see the module documentation.
///
/// Create and drop it on the same thread: its servers die with the thread that started them.
#[derive(Debug)]
pub struct HaLab {
    // Fields drop in this order: gateways (their daemons, then namespaces), servers, links,
    // namespaces, then the files.
    gateways: [Gateway; 2],
    servers: Vec<Daemon>,
    echoes: Vec<ServerHandle>,
    links: Vec<VethPair>,
    lan: Netns,
    inet: Netns,
    wan: String,
    programs: Programs,
    dir: TempDir,
}

impl HaLab {
    /// Builds the lab, starts the servers, conntrackd and keepalived on both gateways; returns
    /// once gw1 holds both virtual addresses.
    pub fn new() -> Result<Self> {
        let programs = Programs {
            python3: find_program("python3", "python3")?,
            curl: find_program("curl", "curl")?,
            keepalived: find_program("keepalived", "keepalived")?,
            conntrackd: find_program("conntrackd", "conntrackd")?,
        };
        let servers = ServerPrograms {
            turnserver: &find_program("turnserver", "coturn")?,
            peer: &find_program("turnutils_peer", "coturn")?,
            nginx: &find_program("nginx", "nginx-light")?,
        };
        let openssl = find_program("openssl", "openssl")?;
        find_program("nft", "nftables")?;

        let dir = TempDir::new("gfha")?;
        let lan = Netns::new("gfhal")?;
        let inet = Netns::new("gfhai")?;
        let gateway = |name, priority, last: u8, sync: [u8; 2]| -> Result<Gateway> {
            let gw_dir = dir.path().join(name);
            fs::create_dir(&gw_dir)?;
            Ok(Gateway {
                keepalived: Mutex::new(None),
                conntrackd: None,
                name,
                priority,
                lan_addr: Ipv4Addr::new(192, 0, 2, last),
                wan_addr: Ipv4Addr::new(203, 0, 113, last + 1),
                sync_addr: Ipv4Addr::new(198, 51, 100, sync[0]),
                peer_sync_addr: Ipv4Addr::new(198, 51, 100, sync[1]),
                dir: gw_dir,
                ns: Netns::new(if priority > 150 { "gfha1" } else { "gfha2" })?,
            })
        };
        let gateways = [
            gateway("gw1", 200, 2, [249, 250])?,
            gateway("gw2", 100, 3, [250, 249])?,
        ];
        let wan = unique_name("gfhaw");
        let mut lab = Self {
            gateways,
            servers: Vec::new(),
            echoes: Vec::new(),
            links: Vec::new(),
            lan,
            inet,
            wan,
            programs,
            dir,
        };
        lab.wire()?;
        make_certificate(&openssl, lab.dir.path())?;
        lab.write_download()?;
        start_servers(
            &lab.inet,
            lab.dir.path(),
            &servers,
            &mut lab.servers,
            &mut lab.echoes,
        )?;
        for index in 0..2 {
            lab.start_conntrackd(index)?;
        }
        for gw in &lab.gateways {
            gw.start_keepalived(&lab.programs.keepalived, &lab.programs.conntrackd, &lab.wan)?;
        }
        lab.wait_master(0)?;
        Ok(lab)
    }

    /// Links, bridges, addresses, routes, forwarding and the gateways' source NAT.
    fn wire(&mut self) -> Result<()> {
        for (index, gw) in self.gateways.iter().enumerate() {
            let port = format!("p{}", index + 1);
            self.links
                .push(veth_pair(&gw.ns, "lan0", &self.lan, &port)?);
            self.links
                .push(veth_pair(&gw.ns, &self.wan, &self.inet, &port)?);
        }
        let [gw1, gw2] = &self.gateways;
        self.links
            .push(veth_pair(&gw1.ns, "sync0", &gw2.ns, "sync0")?);
        for ns in [&self.lan, &self.inet] {
            ns.ip(["link", "add", "br0", "type", "bridge"])?;
            for port in ["p1", "p2"] {
                ns.ip(["link", "set", port, "master", "br0"])?;
            }
            ns.ip(["link", "set", "br0", "up"])?;
        }
        addr_add(&self.lan, "br0", &format!("{LAN_ADDR}/24"))?;
        route_add(&self.lan, "default", IpAddr::V4(LAN_VIP))?;
        addr_add(&self.inet, "br0", &format!("{INET_ADDR}/24"))?;
        for server in SERVERS {
            addr_add(&self.inet, "br0", &format!("{server}/32"))?;
        }
        for gw in &self.gateways {
            addr_add(&gw.ns, "lan0", &format!("{}/24", gw.lan_addr))?;
            addr_add(&gw.ns, &self.wan, &format!("{}/24", gw.wan_addr))?;
            addr_add(&gw.ns, "sync0", &format!("{}/30", gw.sync_addr))?;
            route_add(&gw.ns, "default", IpAddr::V4(INET_ADDR))?;
            gw.ns.set_sysctl("net.ipv4.ip_forward", "1")?;
            let rules = nat_rules(&self.wan);
            let file = gw.dir.join("nat.nft");
            fs::write(&file, rules)?;
            let output = gw.ns.exec("nft", [Path::new("-f"), &file])?;
            if !output.status.success() {
                bail!(
                    "nft -f {} in {} failed: {}",
                    file.display(),
                    gw.name,
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
            // A master that comes back still holds its kernel's entry of a connection the other
            // carried on meanwhile: strict window tracking would find the new sequence numbers
            // out of window, call the packets invalid and leave them untranslated (without this,
            // a download was reset just after a failback, once in eight failovers).
            // (The sysctl exists once the NAT rules brought conntrack into the namespace.)
            gw.ns
                .set_sysctl("net.netfilter.nf_conntrack_tcp_be_liberal", "1")?;
        }
        Ok(())
    }

    /// `files/download`: [`DOWNLOAD_BYTES`] of a pattern that no layer compresses away.
    fn write_download(&self) -> Result<()> {
        let files = self.dir.path().join("files");
        fs::create_dir(&files)?;
        let mut state: u32 = 0x1234_5678;
        let data: Vec<u8> = (0..DOWNLOAD_BYTES)
            .map(|_| {
                // xorshift32: cheap and not compressible.
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state.to_le_bytes()[0]
            })
            .collect();
        fs::write(files.join("download"), data).context("cannot write the download file")
    }

    /// The client namespace.
    pub fn lan(&self) -> &Netns {
        &self.lan
    }

    /// The internet namespace, where the servers run.
    pub fn inet(&self) -> &Netns {
        &self.inet
    }

    /// Gateway `index` (0: gw1, 1: gw2).
    pub fn gw(&self, index: usize) -> &Netns {
        &self.gateways[index].ns
    }

    /// The WAN interface's name, the same on both gateways.
    pub fn wan(&self) -> &str {
        &self.wan
    }

    /// The lab's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The configuration file gotofw attaches from on both gateways.
    pub fn gotofw_config(&self) -> PathBuf {
        self.dir.path().join("gotofw.toml")
    }

    /// Writes [`HaLab::gotofw_config`] and runs `gotofw attach --config FILE` on both gateways,
    /// entered with `ip netns exec` as an operator would; returns the guards that detach.
    pub fn attach_gotofw(&self, gotofw: &Gotofw) -> Result<Vec<Attached<'_>>> {
        let config = self.gotofw_config();
        fs::write(&config, gotofw_toml(&self.wan))?;
        let config = config.display().to_string();
        let mut guards = Vec::new();
        for gw in &self.gateways {
            guards.push(Attached::new(gotofw.clone(), &gw.ns, &self.wan));
            let output = gotofw.run_ip_netns_exec(&gw.ns, &["attach", "--config", &config]);
            if !output.status.success() {
                bail!(
                    "gotofw attach --config {config} in {} failed: {}",
                    gw.name,
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
        }
        Ok(guards)
    }

    /// Whether gateway `index` holds both virtual addresses.
    pub fn holds_vips(&self, index: usize) -> Result<bool> {
        holds_vips(&self.gateways[index], &self.wan)
    }

    /// Waits until gateway `index` holds both virtual addresses and the other neither; returns
    /// how long that took.
    pub fn wait_master(&self, index: usize) -> Result<Duration> {
        wait_master(&self.gateways, &self.wan, index)
    }

    /// The tails of the gateways' daemon and notify logs, for error messages.
    pub fn daemon_logs(&self) -> String {
        daemon_logs(&self.gateways)
    }
}

/// Whether `gw` holds both virtual addresses.
fn holds_vips(gw: &Gateway, wan: &str) -> Result<bool> {
    let lan = gw.ns.ip(["-4", "-o", "addr", "show", "dev", "lan0"])?;
    let wan = gw.ns.ip(["-4", "-o", "addr", "show", "dev", wan])?;
    Ok(lan.contains(&format!(" {LAN_VIP}/")) && wan.contains(&format!(" {WAN_VIP}/")))
}

/// Whether `gw` holds either virtual address.
fn holds_any_vip(gw: &Gateway) -> Result<bool> {
    let all = gw.ns.ip(["-4", "-o", "addr", "show"])?;
    Ok(all.contains(&format!(" {LAN_VIP}/")) || all.contains(&format!(" {WAN_VIP}/")))
}

/// Waits until `gateways[index]` holds both virtual addresses and the other neither; returns
/// how long that took.
fn wait_master(gateways: &[Gateway; 2], wan: &str, index: usize) -> Result<Duration> {
    let start = Instant::now();
    loop {
        if holds_vips(&gateways[index], wan)? && !holds_any_vip(&gateways[1 - index])? {
            return Ok(start.elapsed());
        }
        if start.elapsed() > SETTLE {
            bail!(
                "{} does not hold both virtual addresses alone after {} s; keepalived:\n{}",
                gateways[index].name,
                SETTLE.as_secs(),
                daemon_logs(gateways)
            );
        }
        std::thread::sleep(POLL);
    }
}

/// The tails of the gateways' daemon and notify logs, for error messages.
fn daemon_logs(gateways: &[Gateway; 2]) -> String {
    let mut out = String::new();
    for gw in gateways {
        let keepalived = gw
            .keepalived
            .lock()
            .ok()
            .and_then(|daemon| daemon.as_ref().map(Daemon::log_tail));
        let conntrackd = gw.conntrackd.as_ref().map(Daemon::log_tail);
        for (what, tail) in [("keepalived", keepalived), ("conntrackd", conntrackd)] {
            if let Some(tail) = tail {
                let _ = writeln!(out, "--- {} {what}:\n{tail}", gw.name);
            }
        }
        let notify = fs::read_to_string(gw.dir.join("notify.log")).unwrap_or_default();
        let _ = write!(out, "--- {} notify.log:\n{notify}", gw.name);
    }
    out
}

/// The nftables rules of both gateways: masquerade the LAN behind the WAN virtual address.
/// `snat to` an address rather than `masquerade`: the backup does not hold the address, and a
/// flow must keep its public tuple when it moves.
fn nat_rules(wan: &str) -> String {
    format!(
        "table ip gfha_nat {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\toifname \"{wan}\" ip saddr 192.0.2.0/24 snat to {WAN_VIP}\n\
         \t}}\n\
         }}\n"
    )
}

/// The one gotofw configuration file of the pair.
fn gotofw_toml(wan: &str) -> String {
    format!(
        "# Both gateways of the pair: the WAN interface has the same name on each.\n\
         interfaces = [\"{wan}\"]\n\
         scenario = \"udp-turn\"\n\
         mode = \"stateful\"\n"
    )
}
