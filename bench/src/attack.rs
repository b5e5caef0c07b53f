//! Item 4: allowed traffic under attack. A three-namespace lab (lan, gw with masquerade, inet)
//! built here: when this item was written the lab library had none, and `tests/src/lab3.rs`,
//! which came later, runs coturn and nginx but does not expose what this item needs (the
//! generator's end of the WAN link, GRO and threaded NAPI on the WAN interface, iperf3). iperf3
//! TCP throughput and UDP echo round trips from lan to a TURN address in inet through gw, while
//! the generator floods gw's WAN interface with blocked traffic, with gotofw or nftables doing
//! the blocking.
//!
//! Every blocker sees the same receive path: an XDP program runs on gw's WAN interface in all
//! cases (a bare XDP_PASS in front of nftables), so flood and allowed traffic share the veth's
//! one NAPI ring, as they share a NIC's receive ring. (Without an XDP program, a veth hands the
//! peer's ordinary packets to the stack's backlog and only the generator's frames go through
//! the ring: the flood could then never crowd out allowed traffic, whatever the filter.)
//!
//! The round trips use a UDP echo on port 3478 of a TURN address rather than ICMP ping: the
//! GoTo scenarios do not admit ICMP echo replies, so `ping` would measure the filter's verdict,
//! not the path.

use std::{
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    path::Path,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use aya::programs::Xdp;
use gotofw_tests::{Netns, VethPair, addr_add, route_add, udp_echo_server, veth_pair};
use serde::Serialize;

use crate::{
    Settings,
    baselines::{Nft, NftHook},
    frames,
    lab::{End, Generator, attach_native, pin_napi, prepare_rx, xdp_pass},
    stats::Sample,
    sys::{self, GEN_CPU},
};

/// The client's address in lan.
const LAN_CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// gw's address in lan.
const LAN_GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
/// The TCP port of iperf3 (https, which every scenario allows).
const IPERF_PORT: u16 = 443;
/// The UDP echo (TURN) port.
const ECHO_PORT: u16 = 3478;
/// Interval between echo probes.
const ECHO_INTERVAL: Duration = Duration::from_millis(10);
/// The paced flood: below what gotofw drops on one CPU here, above what nftables does.
const PACED_FLOOD: f64 = 1e6;
/// How long one echo probe waits for its reply.
const ECHO_TIMEOUT: Duration = Duration::from_millis(200);

/// Who blocks the flood.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Blocker {
    /// gotofw (udp-turn, stateful, the default: XDP ingress and TC egress), attached with the
    /// gotofw binary.
    Gotofw,
    /// nftables netdev ingress on the WAN interface with the benchmark's port rules (stateless).
    NftNetdev,
    /// nftables inet prerouting, `ct state established,related accept`, else drop on the WAN.
    NftConntrack,
}

impl Blocker {
    /// The name in the tables.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Gotofw => "gotofw (udp-turn, stateful)",
            Self::NftNetdev => "nftables netdev ingress (port rules)",
            Self::NftConntrack => "nftables prerouting, ct state (stateful)",
        }
    }
}

/// The flood of one scenario.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flood {
    /// No flood.
    None,
    /// About this many packets per second.
    Paced(f64),
    /// As fast as the generator can.
    Max,
}

impl Flood {
    fn name(self) -> String {
        match self {
            Self::None => "no flood".into(),
            Self::Paced(pps) => format!("flood {:.1} Mpps", pps / 1e6),
            Self::Max => "flood at the generator's maximum".into(),
        }
    }
}

/// One scenario of the attack table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Who blocks.
    pub blocker: Blocker,
    /// Name.
    pub name: String,
    /// The flood.
    pub flood: Flood,
    /// iperf3 TCP throughput lan → inet, Mbit/s.
    pub tcp_mbps: Sample,
    /// Median UDP echo round trip, ms.
    pub rtt_median_ms: Sample,
    /// 99th percentile round trip, ms.
    pub rtt_p99_ms: Sample,
    /// Share of echo probes unanswered.
    pub echo_loss: Sample,
    /// Flood frames the generator sent, Mpps.
    pub flood_offered_mpps: Sample,
    /// Frames gw's WAN interface processed (flood and allowed), Mpps.
    pub wan_processed_mpps: Sample,
}

/// The lab.
struct Lab {
    lan: Netns,
    gw: Netns,
    inet: Netns,
    _links: [VethPair; 2],
    wan: End,
    inet_end: End,
}

impl Lab {
    fn new() -> Result<Self> {
        let lan = Netns::new("blan")?;
        let gw = Netns::new("bgw")?;
        let inet = Netns::new("binet")?;
        let (lan_if, gw_lan_if) = (sys::short_ifname('l'), sys::short_ifname('m'));
        let (wan_if, inet_if) = (sys::short_ifname('w'), sys::short_ifname('i'));
        let lan_link = veth_pair(&lan, &lan_if, &gw, &gw_lan_if)?;
        let wan_link = veth_pair(&gw, &wan_if, &inet, &inet_if)?;
        addr_add(&lan, &lan_if, &format!("{LAN_CLIENT}/24"))?;
        addr_add(&gw, &gw_lan_if, &format!("{LAN_GW}/24"))?;
        addr_add(&gw, &wan_if, &format!("{}/24", frames::WAN_ADDR))?;
        addr_add(&inet, &inet_if, &format!("{}/24", frames::PEER_ADDR))?;
        addr_add(&inet, "lo", &format!("{}/32", frames::TURN))?;
        route_add(&lan, "default", LAN_GW.into())?;
        route_add(&gw, "default", frames::PEER_ADDR.into())?;
        gw.set_sysctl("net.ipv4.ip_forward", "1")?;
        sys::ns_run_stdin(
            &gw,
            "nft",
            &["-f", "-"],
            &format!(
                "table ip gotofw_bench_nat {{\n  chain post {{\n    type nat hook postrouting priority srcnat;\n    oifname \"{wan_if}\" masquerade\n  }}\n}}\n"
            ),
        )?;
        prepare_rx(&gw, &wan_if)?;
        let wan = End::read(&gw, &wan_if)?;
        let inet_end = End::read(&inet, &inet_if)?;
        // Permanent neighbour entries on the WAN link: under the maximum flood an ARP request or
        // reply waits in the same ring as the flood and can be lost, and a connect that cannot
        // resolve its next hop fails with "No route to host". The item measures the allowed
        // data traffic, not ARP's luck, so neither end has to resolve the other.
        let mac = |m: [u8; 6]| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        };
        let peer = frames::PEER_ADDR.to_string();
        let own = frames::WAN_ADDR.to_string();
        let (inet_mac, wan_mac) = (mac(inet_end.mac), mac(wan.mac));
        gw.ip([
            "neigh",
            "replace",
            &peer,
            "lladdr",
            &inet_mac,
            "dev",
            &wan_if,
            "nud",
            "permanent",
        ])?;
        inet.ip([
            "neigh",
            "replace",
            &own,
            "lladdr",
            &wan_mac,
            "dev",
            &inet_if,
            "nud",
            "permanent",
        ])?;
        Ok(Self {
            lan,
            gw,
            inet,
            _links: [lan_link, wan_link],
            wan,
            inet_end,
        })
    }
}

/// gotofw attached with its binary in a namespace; detached on drop.
pub(crate) struct GotofwAttached<'a> {
    bin: &'a Path,
    ns: &'a Netns,
    iface: String,
    /// What `gotofw attach` wrote to standard error (its notes).
    pub(crate) stderr: String,
}

impl<'a> GotofwAttached<'a> {
    pub(crate) fn attach(bin: &'a Path, ns: &'a Netns, iface: &str, args: &[&str]) -> Result<Self> {
        let mut guard = Self {
            bin,
            ns,
            iface: iface.to_owned(),
            stderr: String::new(),
        };
        let bin_str = bin
            .to_str()
            .ok_or_else(|| anyhow!("gotofw path is not UTF-8"))?;
        let mut line = vec!["attach", iface];
        line.extend_from_slice(args);
        let output = ns.exec(bin_str, &line)?;
        sys::check(&output, &format!("{bin_str} {}", line.join(" ")))?;
        guard.stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        Ok(guard)
    }
}

impl Drop for GotofwAttached<'_> {
    fn drop(&mut self) {
        if let Some(bin) = self.bin.to_str() {
            let _ = self.ns.exec(bin, ["detach", &self.iface]);
        }
    }
}

/// A blocker installed in gw; removed on drop.
enum Installed<'a> {
    Gotofw(#[expect(dead_code, reason = "a guard, held for its Drop")] GotofwAttached<'a>),
    Nft(
        #[expect(dead_code, reason = "guards, held for their Drop")] Nft<'a>,
        #[expect(dead_code, reason = "guards, held for their Drop")] Box<Xdp>,
    ),
}

fn install<'a>(lab: &'a Lab, blocker: Blocker, gotofw_bin: &'a Path) -> Result<Installed<'a>> {
    Ok(match blocker {
        Blocker::Gotofw => Installed::Gotofw(GotofwAttached::attach(
            gotofw_bin,
            &lab.gw,
            &lab.wan.name,
            &["--scenario", "udp-turn"],
        )?),
        Blocker::NftNetdev => Installed::Nft(
            Nft::load(
                &lab.gw,
                NftHook::Netdev,
                &lab.wan.name,
                &filter_user::scenario::default_turn_networks(),
            )?,
            pass_in_front(lab)?,
        ),
        Blocker::NftConntrack => {
            let wan = &lab.wan.name;
            sys::ns_run_stdin(
                &lab.gw,
                "nft",
                &["-f", "-"],
                &format!(
                    "table inet gotofw_bench {{\n  chain pre {{\n    type filter hook prerouting priority filter; policy accept;\n    iifname \"{wan}\" ct state established,related accept\n    iifname \"{wan}\" drop\n  }}\n}}\n"
                ),
            )?;
            Installed::Nft(Nft::existing(&lab.gw, "inet"), pass_in_front(lab)?)
        }
    })
}

/// The XDP_PASS program, attached to gw's WAN interface (detached when it drops).
fn pass_in_front(lab: &Lab) -> Result<Box<Xdp>> {
    let mut pass = xdp_pass()?;
    attach_native(&lab.gw, lab.wan.ifindex, &mut pass)?;
    Ok(Box::new(pass))
}

/// One run of one scenario's raw numbers.
struct Once {
    tcp_mbps: f64,
    rtts_ms: Vec<f64>,
    sent: usize,
    offered_mpps: f64,
    processed_mpps: f64,
}

/// iperf3 in lan against a one-off server in inet, for `secs` seconds: Mbit/s received.
fn iperf(lab: &Lab, secs: u64) -> Result<f64> {
    let server = Command::new("nsenter")
        .arg(format!("--net={}", lab.inet.path().display()))
        .args([
            "--",
            "timeout",
            &(secs + 20).to_string(),
            "iperf3",
            "-s",
            "-1",
        ])
        .args([
            "-p",
            &IPERF_PORT.to_string(),
            "-B",
            &frames::TURN.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("cannot start iperf3 (apt-get install iperf3)")?;
    let mut server = KillOnDrop(server);
    // The server listens within milliseconds; the client retries its connect anyway.
    thread::sleep(Duration::from_millis(150));
    let out = sys::ns_run(
        &lab.lan,
        "timeout",
        [
            (secs + 15).to_string(),
            "iperf3".into(),
            "-c".into(),
            frames::TURN.to_string(),
            "-p".into(),
            IPERF_PORT.to_string(),
            "-t".into(),
            secs.to_string(),
            "-J".into(),
        ],
    );
    let _ = server.0.wait();
    let json: serde_json::Value = serde_json::from_str(&out?).context("iperf3 -J output")?;
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|bps| bps / 1e6)
        .ok_or_else(|| anyhow!("iperf3 reported no throughput: {}", json["error"]))
}

/// A child process killed (and reaped) on drop.
pub(crate) struct KillOnDrop(pub(crate) std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// UDP echo round trips from lan for about `duration`: the answered ones' times (ms) and the
/// number of probes.
fn echo(lan: &Netns, duration: Duration) -> Result<(Vec<f64>, usize)> {
    lan.run(|| -> Result<(Vec<f64>, usize)> {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.connect(SocketAddr::from((frames::TURN, ECHO_PORT)))?;
        socket.set_read_timeout(Some(ECHO_TIMEOUT))?;
        let start = Instant::now();
        let mut rtts = Vec::new();
        let mut sent = 0usize;
        let mut buf = [0u8; 64];
        let max = (duration.as_millis() / ECHO_INTERVAL.as_millis()).max(1) as usize;
        for seq in 0..max as u64 {
            if start.elapsed() >= duration {
                break;
            }
            let t = Instant::now();
            socket.send(&seq.to_be_bytes())?;
            sent += 1;
            // Replies to earlier probes that came late are skipped, not counted.
            while let Ok(n) = socket.recv(&mut buf) {
                if n >= 8 && buf[..8] == seq.to_be_bytes() {
                    rtts.push(t.elapsed().as_secs_f64() * 1e3);
                    break;
                }
            }
            if let Some(rest) = ECHO_INTERVAL.checked_sub(t.elapsed()) {
                thread::sleep(rest);
            }
        }
        Ok((rtts, sent))
    })
}

fn run_once(lab: &Lab, generator: &Generator, flood: Flood, settings: &Settings) -> Result<Once> {
    let secs = settings.attack_secs;
    let flood_frame = frames::to_mac(
        &frames::udp(
            frames::OUTSIDE.into(),
            frames::UNNAMED_PORT,
            frames::WAN_ADDR.into(),
            5000,
        ),
        lab.wan.mac,
    );
    pin_napi(&lab.wan.name)?;
    let processed = || -> Result<u64> {
        Ok(sys::ethtool_stats(&lab.gw, &lab.wan.name)?
            .get("rx_queue_0_xdp_packets")
            .copied()
            .unwrap_or(0))
    };
    let before = processed()?;
    let started = Instant::now();
    let pps = match flood {
        Flood::Paced(pps) => Some(pps),
        _ => None,
    };
    let (tcp, echoes, sent_flood) = thread::scope(|scope| {
        let flooder = (flood != Flood::None).then(|| {
            scope.spawn(|| {
                lab.inet.run(|| -> Result<(u64, f64)> {
                    sys::pin_current_thread(GEN_CPU)?;
                    generator.send_paced(
                        lab.inet_end.ifindex,
                        &flood_frame,
                        Duration::from_secs(secs) + Duration::from_millis(800),
                        pps,
                    )
                })
            })
        });
        if flood != Flood::None {
            thread::sleep(Duration::from_millis(200));
        }
        let echoer = scope.spawn(|| echo(&lab.lan, Duration::from_secs(secs)));
        let tcp = iperf(lab, secs);
        let echoes = echoer.join().map_err(|_| anyhow!("echo thread panicked"));
        let sent = match flooder {
            Some(f) => f.join().map_err(|_| anyhow!("flood thread panicked")),
            None => Ok(Ok((0, 1.0))),
        };
        (tcp, echoes, sent)
    });
    let elapsed = started.elapsed().as_secs_f64();
    let processed = processed()?.saturating_sub(before);
    let (rtts_ms, sent) = echoes??;
    let (flood_sent, flood_secs) = sent_flood??;
    Ok(Once {
        tcp_mbps: tcp?,
        rtts_ms,
        sent,
        offered_mpps: flood_sent as f64 / flood_secs / 1e6,
        processed_mpps: processed as f64 / elapsed / 1e6,
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[expect(
        clippy::cast_sign_loss,
        reason = "p is in 0..=1, so the product is not negative"
    )]
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs item 4 with the gotofw binary `gotofw_bin`.
pub fn under_attack(settings: &Settings, gotofw_bin: &Path) -> Result<Vec<Row>> {
    if !gotofw_bin.is_file() {
        bail!("no gotofw binary at {}", gotofw_bin.display());
    }
    let lab = Lab::new()?;
    let generator = Generator::load()?;
    let _echo = udp_echo_server(&lab.inet, SocketAddr::from((frames::TURN, ECHO_PORT)))?;
    let paced = Flood::Paced(PACED_FLOOD);
    let scenarios: &[(Blocker, Flood)] = if settings.quick {
        // One of each blocker and of each flood: every code path, in a few seconds.
        &[
            (Blocker::Gotofw, Flood::Max),
            (Blocker::NftNetdev, paced),
            (Blocker::NftConntrack, Flood::None),
        ]
    } else {
        &[
            (Blocker::Gotofw, Flood::None),
            (Blocker::Gotofw, paced),
            (Blocker::Gotofw, Flood::Max),
            (Blocker::NftNetdev, paced),
            (Blocker::NftNetdev, Flood::Max),
            (Blocker::NftConntrack, Flood::None),
            (Blocker::NftConntrack, paced),
            (Blocker::NftConntrack, Flood::Max),
        ]
    };
    let mut raw: Vec<Vec<Once>> = scenarios.iter().map(|_| Vec::new()).collect();
    for _ in 0..settings.attack_runs {
        for (i, &(blocker, flood)) in scenarios.iter().enumerate() {
            let _installed = install(&lab, blocker, gotofw_bin)?;
            raw[i].push(run_once(&lab, &generator, flood, settings)?);
        }
    }
    Ok(scenarios
        .iter()
        .zip(raw)
        .map(|(&(blocker, flood), runs)| {
            let per = |f: &dyn Fn(&Once) -> f64| Sample::of(runs.iter().map(f).collect());
            let sorted = |o: &Once| {
                let mut v = o.rtts_ms.clone();
                v.sort_by(f64::total_cmp);
                v
            };
            Row {
                blocker,
                name: format!("{}, {}", blocker.name(), flood.name()),
                flood,
                tcp_mbps: per(&|o| o.tcp_mbps),
                rtt_median_ms: per(&|o| percentile(&sorted(o), 0.5)),
                rtt_p99_ms: per(&|o| percentile(&sorted(o), 0.99)),
                echo_loss: per(&|o| 1.0 - o.rtts_ms.len() as f64 / o.sent.max(1) as f64),
                flood_offered_mpps: per(&|o| o.offered_mpps),
                wan_processed_mpps: per(&|o| o.processed_mpps),
            }
        })
        .collect())
}
