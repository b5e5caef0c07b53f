//! [`DomainLab`]: the parts that [`Lab3`] needs for domain rules (issue 13), added to a running
//! lab: a real DNS server in `inet`, the client's system resolver pointed at it, and GoTo-like
//! names with addresses that TCP 443 reaches.
//!
//! ```text
//!  lan (resolv.conf: 198.51.100.53)  ---- gw (NAT; gotofw --https-to domains) ----  inet
//!  getent / curl / client.py                                                       dnsmasq on 198.51.100.53:53
//!  (`ip netns exec`)                                                               (hosts file of the lab's own,
//!                                                                                   TTL 2 s), forgers on .54, .55
//!                                          68.64.8.0/21 tcp 443 --DNAT--> nginx 198.51.100.10:443
//! ```
//!
//! - dnsmasq (Debian's dnsmasq-base) runs in the foreground under a [`Daemon`] guard with
//!   `--conf-file=/dev/null --no-resolv --no-hosts`: it reads neither the host's configuration
//!   nor its resolv.conf nor /etc/hosts, only the lab's hosts file, and answers with a TTL of
//!   [`LOCAL_TTL`] seconds. It serves [`NAMED`] (names under goto.com and goto-rtc.com, the
//!   apex goto.com, the lookalikes goto.com.example.net and evilgoto.com) and [`FRESH_NAMES`]
//!   names `n0001.goto.com`... with distinct addresses ([`fresh`]).
//! - Every address of the names lies in 68.64.8.0/21 (inside GoTo's TURN network 68.64.0.0/19,
//!   which the gateway routes to `inet`; no tcp-443 rule names it): `inet` DNATs TCP 443 to
//!   them to the lab's nginx, so every one of them serves HTTPS.
//! - The client resolves through its system resolver: `/etc/netns/LAN/resolv.conf`, which
//!   `ip netns exec LAN` bind-mounts over `/etc/resolv.conf`, names the DNS server; its guard
//!   removes the file and its directory on drop, panic included.
//! - `client.py` (Python's standard library only) resolves and connects at once, for the race
//!   test, and holds a TLS connection open past the TTL.
//!
//! Dropping it stops dnsmasq and removes the resolver file, the DNAT table, the addresses it
//! added and its temporary directory; the [`Lab3`] it borrows stays.

mod wire;

use std::{
    fmt::Write as _,
    fs,
    io::ErrorKind,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

pub use self::wire::{answer, id_and_name, query};
use crate::{
    Bounds, Daemon, Finished, Lab3, Netns, OUTSIDE, TempDir, Transport, addr_add, find_program,
    run_bounded,
};

/// The DNS server's address in `inet`.
pub const DNS_SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);
/// A second `inet` address: a forger that answers from an address the query did not go to.
pub const SPOOFER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 54);
/// A resolver address where nothing answers by itself: the forger's, see
/// [`DomainLab::forge`].
pub const SILENT_RESOLVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 55);
/// The network of the names' addresses; `inet` DNATs TCP 443 to it to nginx.
pub const NAME_NET: &str = "68.64.8.0/21";
/// The TTL of every answer of the lab's dnsmasq, in seconds (`--local-ttl`).
pub const LOCAL_TTL: u32 = 2;
/// The TTL bounds the lab's tests attach with (`--dns-ttl-min`, `--dns-ttl-max`).
pub const TTL_MIN: u32 = 1;
/// See [`TTL_MIN`].
pub const TTL_MAX: u32 = 5;
/// How many fresh names `n0001.goto.com`... dnsmasq serves.
pub const FRESH_NAMES: usize = 1200;

/// Whether a name is one of GoTo's (Table 1) or a lookalike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Matches a pattern of GoTo's Table 1 (`*.goto.com`, `*.goto-rtc.com`).
    Goto,
    /// Looks like one and matches none.
    Lookalike,
}

/// The named hosts of the lab's DNS server.
pub const NAMED: [(&str, Ipv4Addr, Kind); 7] = [
    ("global.goto.com", Ipv4Addr::new(68, 64, 8, 1), Kind::Goto),
    ("a1.goto-rtc.com", Ipv4Addr::new(68, 64, 8, 2), Kind::Goto),
    ("goto.com", Ipv4Addr::new(68, 64, 8, 3), Kind::Goto),
    (
        "goto.com.example.net",
        Ipv4Addr::new(68, 64, 8, 4),
        Kind::Lookalike,
    ),
    ("evilgoto.com", Ipv4Addr::new(68, 64, 8, 5), Kind::Lookalike),
    ("hold.goto.com", Ipv4Addr::new(68, 64, 8, 10), Kind::Goto),
    ("expire.goto.com", Ipv4Addr::new(68, 64, 8, 11), Kind::Goto),
];
/// An address in [`NAME_NET`] that no answer carries.
pub const NEVER_ANSWERED: Ipv4Addr = Ipv4Addr::new(68, 64, 8, 6);
/// The name the forgers answer for.
pub const FORGED_NAME: &str = "forged.goto.com";
/// The address of the forger's answer from [`SPOOFER`] (right id, wrong source).
pub const FORGED_SOURCE: Ipv4Addr = Ipv4Addr::new(68, 64, 8, 7);
/// The address of the forger's answer with a wrong id (right source).
pub const FORGED_ID: Ipv4Addr = Ipv4Addr::new(68, 64, 8, 8);
/// The address of the genuine answer that follows them (right source, right id).
pub const GENUINE: Ipv4Addr = Ipv4Addr::new(68, 64, 8, 9);

/// The fresh name `index` (0-based) and its address: `n0001.goto.com` at 68.64.10.1, ...
pub fn fresh(index: usize) -> (String, Ipv4Addr) {
    assert!(index < FRESH_NAMES, "only {FRESH_NAMES} fresh names");
    let host = u32::from(Ipv4Addr::new(68, 64, 10, 0)) + 1 + index as u32;
    (format!("n{:04}.goto.com", index + 1), Ipv4Addr::from(host))
}

/// The address dnsmasq gives `name`, if it serves it.
pub fn address_of(name: &str) -> Option<Ipv4Addr> {
    NAMED
        .iter()
        .find(|(named, _, _)| *named == name)
        .map(|&(_, addr, _)| addr)
        .or_else(|| {
            (0..FRESH_NAMES)
                .map(fresh)
                .find(|(fresh, _)| fresh == name)
                .map(|(_, addr)| addr)
        })
}

/// The `gotofw attach IFACE` arguments of the domain-locked scenario: tcp-443 with https to the
/// learned addresses of GoTo's names, learning from `dns_servers`, with the lab's TTL bounds.
pub fn attach_args(dns_servers: &[Ipv4Addr]) -> Vec<String> {
    let mut args: Vec<String> = ["--scenario", "tcp-443", "--https-to", "domains"]
        .map(str::to_owned)
        .to_vec();
    for server in dns_servers {
        args.push("--dns-server".to_owned());
        args.push(server.to_string());
    }
    args.extend([
        "--dns-ttl-min".to_owned(),
        TTL_MIN.to_string(),
        "--dns-ttl-max".to_owned(),
        TTL_MAX.to_string(),
    ]);
    args
}

/// How long dnsmasq may take to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The bound around one `getent` or `curl`.
const CLIENT_DEADLINE: Duration = Duration::from_secs(8);
/// The nftables table of the DNAT in `inet`.
const NFT_TABLE: &str = "gotofw_dlab";
/// How long a connect may take before it counts as blocked: a dropped SYN costs 1 s.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);

/// The removal of `/etc/netns/NS/` (the client's resolv.conf) on drop.
#[derive(Debug)]
struct ResolvConf(PathBuf);

impl ResolvConf {
    fn new(ns: &Netns, server: Ipv4Addr) -> Result<Self> {
        let dir = Path::new("/etc/netns").join(ns.name());
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let guard = Self(dir);
        // One try a second, twice: a lost query costs a second, never more.
        fs::write(
            guard.0.join("resolv.conf"),
            format!("nameserver {server}\noptions timeout:1 attempts:2\n"),
        )?;
        Ok(guard)
    }
}

impl Drop for ResolvConf {
    fn drop(&mut self) {
        // Ignored: nothing better to do in a destructor. /etc/netns itself may be shared.
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The result of one name of [`DomainLab::race`].
#[derive(Clone, Debug)]
pub struct RaceResult {
    /// The name resolved.
    pub name: String,
    /// Its first IPv4 address, when it resolved.
    pub addr: Option<Ipv4Addr>,
    /// How long resolving took.
    pub resolve_ms: f64,
    /// How long the connect took (a dropped first SYN makes it 1 s or more).
    pub connect_ms: Option<f64>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// The result of [`DomainLab::hold`].
#[derive(Clone, Debug, Default)]
pub struct HoldResult {
    /// The address the name resolved to.
    pub addr: Option<Ipv4Addr>,
    /// The status line of the first GET, right after resolving.
    pub first: Option<String>,
    /// Whether a new connection to the address succeeded after the wait.
    pub fresh: Option<bool>,
    /// Its error, if it failed.
    pub fresh_error: Option<String>,
    /// The status line of the second GET, on the first connection, after the wait.
    pub second: Option<String>,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

fn text(json: &Value, key: &str) -> Option<String> {
    json[key].as_str().map(str::to_owned)
}

fn addr(json: &Value) -> Option<Ipv4Addr> {
    json["addr"].as_str()?.parse().ok()
}

impl RaceResult {
    fn from_json(json: &Value) -> Option<Self> {
        Some(Self {
            name: text(json, "name")?,
            addr: addr(json),
            resolve_ms: json["resolve_ms"].as_f64()?,
            connect_ms: json["connect_ms"].as_f64(),
            error: text(json, "error"),
        })
    }
}

impl HoldResult {
    fn from_json(json: &Value) -> Self {
        Self {
            addr: addr(json),
            first: text(json, "first"),
            fresh: json["fresh"].as_bool(),
            fresh_error: text(json, "fresh_error"),
            second: text(json, "second"),
            error: text(json, "error"),
        }
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct DomainLab<'lab> {
    // Drops first: dnsmasq, then the resolver file, then the directory.
    dnsmasq: Daemon,
    _resolv: ResolvConf,
    dir: TempDir,
    lab: &'lab Lab3,
    ip: PathBuf,
    python: PathBuf,
    curl: PathBuf,
}

impl<'lab> DomainLab<'lab> {
    /// Adds the DNS server, the names and the client's resolver to `lab`.
    pub fn new(lab: &'lab Lab3) -> Result<Self> {
        let dnsmasq = find_program("dnsmasq", "dnsmasq-base")?;
        let ip = find_program("ip", "iproute2")?;
        let nft = find_program("nft", "nftables")?;
        let curl = find_program("curl", "curl")?;
        let python = ["/usr/bin/python3", "/bin/python3"]
            .map(PathBuf::from)
            .into_iter()
            .find(|path| path.is_file())
            .map_or_else(|| find_program("python3", "python3"), Ok)?;
        let dir = TempDir::new("gfwdc")?;
        let inet = lab.inet();
        for addr in [DNS_SERVER, SPOOFER, SILENT_RESOLVER] {
            addr_add(inet, "eth0", &format!("{addr}/32"))?;
        }
        let nat = format!(
            "table ip {NFT_TABLE} {{\n  chain names {{\n    \
             type nat hook prerouting priority dstnat; policy accept;\n    \
             ip daddr {NAME_NET} tcp dport 443 dnat to {OUTSIDE}:443\n  }}\n}}\n"
        );
        let nat_file = dir.path().join("inet.nft");
        fs::write(&nat_file, nat)?;
        let output = inet.exec(&nft.display().to_string(), [Path::new("-f"), &nat_file])?;
        if !output.status.success() {
            bail!(
                "nft -f {} in {}: {}",
                nat_file.display(),
                inet.name(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }

        let mut hosts = String::new();
        for (name, addr, _) in NAMED {
            let _ = writeln!(hosts, "{addr} {name}");
        }
        for index in 0..FRESH_NAMES {
            let (name, addr) = fresh(index);
            let _ = writeln!(hosts, "{addr} {name}");
        }
        let hosts_file = dir.path().join("hosts");
        fs::write(&hosts_file, hosts)?;
        let args: Vec<String> = [
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            "--user=root",
            "--pid-file=",
            "--log-facility=-",
            "--log-queries",
            "--cache-size=10000",
        ]
        .map(str::to_owned)
        .into_iter()
        .chain([
            format!("--listen-address={DNS_SERVER}"),
            format!("--local-ttl={LOCAL_TTL}"),
            format!("--addn-hosts={}", hosts_file.display()),
        ])
        .collect();
        let mut daemon = Daemon::spawn(
            inet,
            "dnsmasq",
            &dnsmasq,
            &args,
            &dir.path().join("dnsmasq.log"),
        )?;
        let socket = SocketAddr::V4(SocketAddrV4::new(DNS_SERVER, 53));
        daemon.wait_listening(
            inet,
            &[(Transport::Udp, socket), (Transport::Tcp, socket)],
            READY_TIMEOUT,
        )?;
        let resolv = ResolvConf::new(lab.lan(), DNS_SERVER)?;
        Ok(Self {
            dnsmasq: daemon,
            _resolv: resolv,
            dir,
            lab,
            ip,
            python,
            curl,
        })
    }

    /// The lab it extends.
    pub fn lab(&self) -> &'lab Lab3 {
        self.lab
    }

    /// The tail of dnsmasq's log, for a failing test's message.
    pub fn dns_log(&self) -> String {
        self.dnsmasq.log_tail()
    }

    /// Runs `program args` in `lan` through `ip netns exec`, so that the system resolver reads
    /// the lab's resolv.conf.
    fn in_lan(&self, program: &Path, args: &[String], deadline: Duration) -> Result<Finished> {
        let mut all = vec![
            "netns".to_owned(),
            "exec".to_owned(),
            self.lab.lan().name().to_owned(),
            program.display().to_string(),
        ];
        all.extend_from_slice(args);
        run_bounded(
            self.lab.lan(),
            &self.ip,
            &all,
            Bounds {
                deadline,
                progress: None,
            },
        )
    }

    /// `getent ahostsv4 NAME` in `lan`: the addresses its system resolver finds (empty when
    /// it finds none).
    pub fn resolve(&self, name: &str) -> Result<Vec<Ipv4Addr>> {
        let getent = find_program("getent", "libc-bin")?;
        let finished = self.in_lan(
            &getent,
            &["ahostsv4".to_owned(), name.to_owned()],
            CLIENT_DEADLINE,
        )?;
        let mut addrs: Vec<Ipv4Addr> = finished
            .output
            .lines()
            .filter_map(|line| line.split_whitespace().next()?.parse().ok())
            .collect();
        addrs.dedup();
        Ok(addrs)
    }

    /// `curl -4 -k https://NAME/` in `lan`: `Ok(detail)` on HTTP 200, `Err(detail)` otherwise.
    pub fn curl(&self, name: &str) -> Result<Result<String, String>> {
        let args = [
            "-4",
            "-k",
            "-sS",
            "--noproxy",
            "*",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{remote_ip}\n",
            "--connect-timeout",
            "2",
            "--max-time",
            "5",
            &format!("https://{name}/"),
        ]
        .map(str::to_owned);
        let finished = self.in_lan(&self.curl, &args, CLIENT_DEADLINE)?;
        let line = finished
            .output
            .lines()
            .find(|line| line.starts_with("200 "));
        Ok(match line {
            Some(line) if finished.success() => Ok(format!("HTTP {line}")),
            _ => Err(finished
                .output
                .lines()
                .find(|line| line.starts_with("curl: ("))
                .unwrap_or(finished.output.trim())
                .to_owned()),
        })
    }

    fn client(&self, args: &[String], deadline: Duration) -> Result<Finished> {
        let script = self.dir.path().join("client.py");
        if !script.exists() {
            fs::write(&script, include_str!("client.py"))?;
        }
        let mut all = vec!["-I".to_owned(), script.display().to_string()];
        all.extend_from_slice(args);
        self.in_lan(&self.python, &all, deadline)
    }

    /// Resolves each of `names` and connects to TCP 443 of its address at once (`client.py
    /// race`), `workers` at a time; one result a name, in order, fewer when it gave up after
    /// 20 failed names.
    pub fn race(
        &self,
        names: &[String],
        workers: usize,
        deadline: Duration,
    ) -> Result<Vec<RaceResult>> {
        let file = self.dir.path().join("race-names");
        fs::write(&file, names.join("\n"))?;
        let finished = self.client(
            &[
                "race".to_owned(),
                workers.to_string(),
                file.display().to_string(),
            ],
            deadline,
        )?;
        let results: Vec<RaceResult> = finished
            .output
            .lines()
            .filter(|line| line.starts_with('{'))
            .map(|line| {
                serde_json::from_str(line)
                    .ok()
                    .as_ref()
                    .and_then(RaceResult::from_json)
                    .with_context(|| format!("client.py race printed a bad line: {line}"))
            })
            .collect::<Result<_>>()?;
        if !finished.success() {
            bail!(
                "client.py race failed ({:?}) after {} of {} names; output:\n{}",
                finished.status,
                results.len(),
                names.len(),
                finished
                    .output
                    .lines()
                    .rev()
                    .take(10)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        Ok(results)
    }

    /// Resolves `name`, opens a TLS connection to its port 443 and GETs /, waits `wait`, tries
    /// a new connection to the same address, and GETs / again on the first (`client.py hold`).
    pub fn hold(&self, name: &str, wait: Duration) -> Result<HoldResult> {
        let finished = self.client(
            &[
                "hold".to_owned(),
                name.to_owned(),
                format!("{:.3}", wait.as_secs_f64()),
            ],
            wait + Duration::from_secs(15),
        )?;
        let line = finished
            .output
            .lines()
            .find(|line| line.starts_with('{'))
            .with_context(|| format!("client.py hold printed no result: {}", finished.output))?;
        let json: Value = serde_json::from_str(line)
            .with_context(|| format!("client.py hold printed a bad line: {line}"))?;
        Ok(HoldResult::from_json(&json))
    }

    /// Whether a TCP connection from `lan` to `addr:443` opens within [`CONNECT_TIMEOUT`].
    pub fn connects(&self, addr: Ipv4Addr) -> bool {
        let dst = SocketAddr::V4(SocketAddrV4::new(addr, 443));
        self.lab
            .lan()
            .run(|| TcpStream::connect_timeout(&dst, CONNECT_TIMEOUT).is_ok())
    }

    /// Forged answers, then a genuine one, to a query for [`FORGED_NAME`] that the client sends
    /// to [`SILENT_RESOLVER`], where the forger listens: first an answer with the query's id
    /// from [`SPOOFER`] (a source the query did not go to) carrying [`FORGED_SOURCE`], then one
    /// from the resolver's address with a wrong id carrying [`FORGED_ID`], then the genuine
    /// answer (right source, right id) carrying [`GENUINE`]. Returns how many answers reached
    /// the client's socket.
    pub fn forge(&self) -> Result<usize> {
        let inet = self.lab.inet();
        let (resolver, spoofer) = inet.run(|| -> Result<(UdpSocket, UdpSocket)> {
            Ok((
                UdpSocket::bind(SocketAddrV4::new(SILENT_RESOLVER, 53))?,
                UdpSocket::bind(SocketAddrV4::new(SPOOFER, 53))?,
            ))
        })?;
        let client = self
            .lab
            .lan()
            .run(|| UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))?;
        let id: u16 = 0x4a7e;
        client.send_to(
            &query(id, FORGED_NAME),
            SocketAddrV4::new(SILENT_RESOLVER, 53),
        )?;
        resolver.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut buf = [0_u8; 512];
        let (len, from) = resolver
            .recv_from(&mut buf)
            .context("the query to the silent resolver did not arrive")?;
        let (got_id, name) =
            id_and_name(&buf[..len]).context("the forger received a malformed query")?;
        if got_id != id || name != FORGED_NAME {
            bail!("the forger received id {got_id:#x} for {name:?}");
        }
        let ttl = 60;
        spoofer.send_to(&answer(id, &name, &[FORGED_SOURCE], ttl), from)?;
        resolver.send_to(&answer(id ^ 0x5a5a, &name, &[FORGED_ID], ttl), from)?;
        thread::sleep(Duration::from_millis(50));
        resolver.send_to(&answer(id, &name, &[GENUINE], ttl), from)?;
        client.set_read_timeout(Some(Duration::from_millis(200)))?;
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut received = 0;
        while Instant::now() < deadline {
            match client.recv(&mut buf) {
                Ok(_) => received += 1,
                Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if received > 0 {
                        break;
                    }
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(received)
    }
}

impl Drop for DomainLab<'_> {
    fn drop(&mut self) {
        // Ignored errors: a destructor can only try. The namespace's deletion removes these too.
        let inet = self.lab.inet();
        let _ = inet.exec("nft", ["delete", "table", "ip", NFT_TABLE]);
        for addr in [DNS_SERVER, SPOOFER, SILENT_RESOLVER] {
            let _ = inet.ip(["addr", "del", &format!("{addr}/32"), "dev", "eth0"]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_names_have_distinct_addresses_in_the_name_net() {
        assert_eq!(
            fresh(0),
            ("n0001.goto.com".to_owned(), Ipv4Addr::new(68, 64, 10, 1))
        );
        let (name, last) = fresh(FRESH_NAMES - 1);
        assert_eq!(name, "n1200.goto.com");
        assert_eq!(last, Ipv4Addr::new(68, 64, 14, 176));
        assert!(last < Ipv4Addr::new(68, 64, 16, 0));
        assert_eq!(
            address_of("n0002.goto.com"),
            Some(Ipv4Addr::new(68, 64, 10, 2))
        );
        assert_eq!(
            address_of("evilgoto.com"),
            Some(Ipv4Addr::new(68, 64, 8, 5))
        );
        assert_eq!(address_of("nope.goto.com"), None);
    }

    #[test]
    fn attach_args_name_the_servers_and_bounds() {
        assert_eq!(
            attach_args(&[DNS_SERVER]).join(" "),
            "--scenario tcp-443 --https-to domains --dns-server 198.51.100.53 \
             --dns-ttl-min 1 --dns-ttl-max 5"
        );
    }
}
