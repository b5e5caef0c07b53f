//! Item 6: what XDP costs allowed traffic. iperf3 TCP through a routing gateway (client
//! namespace -> gw -> server namespace, no NAT), with no XDP program at all on gw's WAN
//! interface, with gotofw attached there in native mode and in generic mode (the real CLI,
//! udp-turn, stateful: the client opens the connection, so the flow is learned at egress and the
//! replies are allowed), at MTU 1500 and 9000, the runs of every setup interleaved.
//!
//! *Download* (iperf3 `-R`: the server, on the WAN side, sends to the client inside) is the
//! direction whose data goes through the XDP program on the WAN; in *upload* the XDP program
//! sees only the ACKs and the data leaves through the TC egress program.
//!
//! Every run records the offloads that decide the cost, as `ethtool -k` shows them just before
//! the transfer: TSO and GSO of the WAN's peer (the server's end, which sends the download),
//! GRO of the WAN, and the XDP mode `ip link` reports on the WAN. The veth driver turns TSO off
//! on the peer of a veth that has a native XDP program (`veth_xdp_set`, `veth_fix_features` in
//! `drivers/net/veth.c`), so the peer's TCP is cut into MTU-size packets before the veth; the
//! diagnostic setups (full mode only, never the baseline) separate that from the program: the
//! same TSO off by hand with no XDP program, a bare XDP_PASS in native mode, and gotofw native
//! with GRO switched on on the WAN.

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use anyhow::{Context, Result, anyhow, bail};
use aya::programs::Xdp;
use gotofw_tests::{Netns, VethPair, addr_add, route_add, unique_name, veth_pair};
use serde::Serialize;

use crate::{
    Settings,
    attack::{GotofwAttached, KillOnDrop},
    frames::{PEER_ADDR, WAN_ADDR},
    lab::{End, attach_native, xdp_pass},
    stats::Sample,
    sys,
};

/// The client's address (inside, behind gw).
const CLIENT: &str = "192.0.2.1";
/// gw's address on the inside.
const GW_LAN: &str = "192.0.2.254";
/// The TCP port of iperf3: https, which udp-turn allows.
const PORT: u16 = 443;

/// Which way the data flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The server (WAN side) sends to the client: the data goes through the WAN's XDP program.
    Download,
    /// The client sends to the server: the data leaves through the WAN's TC egress program, the
    /// XDP program sees the ACKs.
    Upload,
}

impl Direction {
    const fn name(self) -> &'static str {
        match self {
            Self::Download => "download (server -> client, through XDP)",
            Self::Upload => "upload (client -> server, ACKs through XDP)",
        }
    }
}

/// What runs on gw's WAN interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Setup {
    /// No XDP program at all: the baseline.
    NoXdp,
    /// `gotofw attach WAN --scenario udp-turn --xdp-mode native`.
    GotofwNative,
    /// The same with `--xdp-mode generic`.
    GotofwGeneric,
    /// Diagnostic: no XDP program, the peer's TSO switched off by hand (`ethtool -K PEER tso
    /// off`): what the veth driver does to the peer when a native program is attached.
    PeerTsoOff,
    /// Diagnostic: a bare XDP_PASS program (not frags-aware) in native mode.
    PassNative,
    /// Diagnostic: gotofw native with GRO switched on on the WAN (`ethtool -K WAN gro on`).
    GotofwNativeGro,
}

impl Setup {
    /// The name in the table.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NoXdp => "no XDP program",
            Self::GotofwNative => "gotofw, native XDP",
            Self::GotofwGeneric => "gotofw, generic XDP",
            Self::PeerTsoOff => "diagnostic: no XDP program, peer's TSO off by hand",
            Self::PassNative => "diagnostic: bare XDP_PASS, native",
            Self::GotofwNativeGro => "diagnostic: gotofw native, WAN GRO on by hand",
        }
    }

    /// Whether the row is a diagnostic (not part of the comparison the item is for).
    pub const fn diagnostic(self) -> bool {
        matches!(
            self,
            Self::PeerTsoOff | Self::PassNative | Self::GotofwNativeGro
        )
    }
}

/// The offloads of one run, read just before its transfer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Offloads {
    /// `tx-tcp-segmentation` (TSO) of the WAN's peer (the server's end), e.g. `on`, `off [fixed]`.
    pub peer_tso: String,
    /// `generic-segmentation-offload` of the WAN's peer.
    pub peer_gso: String,
    /// `generic-receive-offload` of the WAN.
    pub wan_gro: String,
    /// The XDP mode on the WAN as `ip -d link` reports it: `none`, `native`, `generic`.
    pub wan_xdp: String,
}

/// One transfer.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    /// Gbit/s the receiver got.
    pub gbps: f64,
    /// Retransmissions the sender counted.
    pub retransmits: u64,
    /// The offloads just before it.
    pub offloads: Offloads,
    /// The 1-minute load average just before it.
    pub load1: f64,
    /// What `gotofw attach` wrote to standard error (its `gotofw: note:` lines), if it ran.
    pub attach_notes: String,
}

/// One row of the table: a setup at one MTU and direction, over every run.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The MTU of every interface on the path.
    pub mtu: u32,
    /// Which way the data flows.
    pub direction: Direction,
    /// What runs on the WAN.
    pub setup: Setup,
    /// Gbit/s.
    pub gbps: Sample,
    /// Per run, Gbit/s over the no-XDP run of the same MTU, direction and round.
    pub vs_no_xdp: Sample,
    /// Retransmissions per run.
    pub retransmits: Sample,
    /// Every run.
    pub runs: Vec<Run>,
}

/// Item 6.
#[derive(Clone, Debug, Serialize)]
pub struct Tcp {
    /// Seconds of iperf3 per transfer.
    pub secs: u64,
    /// Rounds (every setup once per round).
    pub rounds: usize,
    /// The rows.
    pub rows: Vec<Row>,
}

/// The cases one round measures: MTU, direction and setups, in order.
fn cases(settings: &Settings) -> Vec<(u32, Direction, Vec<Setup>)> {
    use Setup::{GotofwGeneric, GotofwNative, GotofwNativeGro, NoXdp, PassNative, PeerTsoOff};
    if settings.quick {
        return vec![(
            1500,
            Direction::Download,
            vec![NoXdp, GotofwNative, GotofwGeneric],
        )];
    }
    vec![
        (
            1500,
            Direction::Download,
            vec![
                NoXdp,
                GotofwNative,
                GotofwGeneric,
                PeerTsoOff,
                PassNative,
                GotofwNativeGro,
            ],
        ),
        (
            1500,
            Direction::Upload,
            vec![NoXdp, GotofwNative, GotofwGeneric],
        ),
        (
            9000,
            Direction::Download,
            vec![NoXdp, GotofwNative, GotofwGeneric, PeerTsoOff],
        ),
    ]
}

/// The lab: client, gw (routing) and server namespaces.
struct Lab {
    client: Netns,
    gw: Netns,
    server: Netns,
    _links: [VethPair; 2],
    /// (namespace index 0 client, 1 gw, 2 server; interface) of every end, for the MTU.
    ends: [(usize, String); 4],
    wan: End,
    peer: String,
}

impl Lab {
    fn new() -> Result<Self> {
        let client = Netns::new("gfwtc")?;
        let gw = Netns::new("gfwtc")?;
        let server = Netns::new("gfwtc")?;
        let (cli_if, lan_if) = (unique_name("gfwtc"), unique_name("gfwtc"));
        let (wan_if, peer_if) = (unique_name("gfwtc"), unique_name("gfwtc"));
        let lan = veth_pair(&client, &cli_if, &gw, &lan_if)?;
        let wan = veth_pair(&gw, &wan_if, &server, &peer_if)?;
        addr_add(&client, &cli_if, &format!("{CLIENT}/24"))?;
        addr_add(&gw, &lan_if, &format!("{GW_LAN}/24"))?;
        addr_add(&gw, &wan_if, &format!("{WAN_ADDR}/24"))?;
        addr_add(&server, &peer_if, &format!("{PEER_ADDR}/24"))?;
        route_add(&client, "default", GW_LAN.parse()?)?;
        route_add(&server, "192.0.2.0/24", WAN_ADDR.into())?;
        gw.set_sysctl("net.ipv4.ip_forward", "1")?;
        let wan_end = End::read(&gw, &wan_if)?;
        Ok(Self {
            client,
            gw,
            server,
            _links: [lan, wan],
            ends: [(0, cli_if), (1, lan_if), (1, wan_if), (2, peer_if.clone())],
            wan: wan_end,
            peer: peer_if,
        })
    }

    fn ns(&self, i: usize) -> &Netns {
        match i {
            0 => &self.client,
            1 => &self.gw,
            _ => &self.server,
        }
    }

    /// Sets the MTU of every interface on the path.
    fn set_mtu(&self, mtu: u32) -> Result<()> {
        for (ns, iface) in &self.ends {
            self.ns(*ns)
                .ip(["link", "set", "dev", iface, "mtu", &mtu.to_string()])
                .with_context(|| format!("setting MTU {mtu} on {iface}"))?;
        }
        Ok(())
    }

    /// The offloads that matter, now.
    fn offloads(&self) -> Result<Offloads> {
        let peer = features(&self.server, &self.peer)?;
        let wan = features(&self.gw, &self.wan.name)?;
        let get = |map: &BTreeMap<String, String>, key: &str| {
            map.get(key).cloned().unwrap_or_else(|| "unknown".into())
        };
        Ok(Offloads {
            peer_tso: get(&peer, "tx-tcp-segmentation"),
            peer_gso: get(&peer, "generic-segmentation-offload"),
            wan_gro: get(&wan, "generic-receive-offload"),
            wan_xdp: xdp_mode(&self.gw, &self.wan.name)?,
        })
    }
}

/// `ethtool -k IFACE` in `ns`, as feature -> `on`, `off`, `off [fixed]`...
fn features(ns: &Netns, iface: &str) -> Result<BTreeMap<String, String>> {
    let text = sys::ns_run(ns, "ethtool", ["-k", iface])?;
    Ok(parse_features(&text))
}

/// The lines `name: value` of `ethtool -k`.
fn parse_features(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            let value = value.trim();
            (!value.is_empty()).then(|| (name.trim().to_owned(), value.to_owned()))
        })
        .collect()
}

/// The XDP mode on `iface` as `ip -j -d link show` reports it.
fn xdp_mode(ns: &Netns, iface: &str) -> Result<String> {
    let json = ns.ip(["-j", "-d", "link", "show", "dev", iface])?;
    let value: serde_json::Value = serde_json::from_str(&json)?;
    // iproute2's XDP_ATTACHED_* numbers: 1 driver, 2 skb (generic), 3 hardware, 4 several.
    Ok(match value[0]["xdp"]["mode"].as_u64() {
        None | Some(0) => "none".into(),
        Some(1) => "native".into(),
        Some(2) => "generic".into(),
        Some(3) => "offload".into(),
        Some(n) => format!("mode {n}"),
    })
}

/// `ethtool -K IFACE FEATURE VALUE` in `ns`, undone (`restore`) on drop.
struct Feature<'a> {
    ns: &'a Netns,
    iface: String,
    name: &'static str,
    restore: &'static str,
}

impl<'a> Feature<'a> {
    fn set(
        ns: &'a Netns,
        iface: &str,
        feature: &'static str,
        (value, restore): (&str, &'static str),
    ) -> Result<Self> {
        sys::ns_run(ns, "ethtool", ["-K", iface, feature, value])?;
        Ok(Self {
            ns,
            iface: iface.to_owned(),
            name: feature,
            restore,
        })
    }
}

impl Drop for Feature<'_> {
    fn drop(&mut self) {
        let _ = sys::ns_run(
            self.ns,
            "ethtool",
            ["-K", &self.iface, self.name, self.restore],
        );
    }
}

/// What a setup installed; removed on drop, in the order of the fields (gotofw before the
/// feature it was attached over).
#[derive(Default)]
struct Installed<'a> {
    gotofw: Option<GotofwAttached<'a>>,
    pass: Option<Box<Xdp>>,
    feature: Option<Feature<'a>>,
}

fn install<'a>(lab: &'a Lab, setup: Setup, gotofw_bin: &'a Path) -> Result<Installed<'a>> {
    let mut installed = Installed::default();
    let gotofw = |mode: &str| {
        GotofwAttached::attach(
            gotofw_bin,
            &lab.gw,
            &lab.wan.name,
            &["--scenario", "udp-turn", "--xdp-mode", mode],
        )
    };
    match setup {
        Setup::NoXdp => {}
        Setup::GotofwNative => installed.gotofw = Some(gotofw("native")?),
        Setup::GotofwGeneric => installed.gotofw = Some(gotofw("generic")?),
        Setup::PeerTsoOff => {
            installed.feature = Some(Feature::set(&lab.server, &lab.peer, "tso", ("off", "on"))?);
        }
        Setup::PassNative => {
            let mut pass = xdp_pass()?;
            attach_native(&lab.gw, lab.wan.ifindex, &mut pass)?;
            installed.pass = Some(Box::new(pass));
        }
        Setup::GotofwNativeGro => {
            installed.feature = Some(Feature::set(&lab.gw, &lab.wan.name, "gro", ("on", "off"))?);
            installed.gotofw = Some(gotofw("native")?);
        }
    }
    Ok(installed)
}

/// iperf3 from the client to a one-off server in the server namespace for `secs` seconds
/// (`-R` for a download): Gbit/s received and the sender's retransmissions.
fn iperf(lab: &Lab, secs: u64, direction: Direction) -> Result<(f64, u64)> {
    let server = Command::new("nsenter")
        .arg(format!("--net={}", lab.server.path().display()))
        .args([
            "--",
            "timeout",
            &(secs + 20).to_string(),
            "iperf3",
            "-s",
            "-1",
        ])
        .args(["-p", &PORT.to_string(), "-B", &PEER_ADDR.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start iperf3 (apt-get install iperf3)")?;
    let mut server = KillOnDrop(server);
    thread::sleep(Duration::from_millis(150));
    let mut args = vec![
        (secs + 15).to_string(),
        "iperf3".into(),
        "-c".into(),
        PEER_ADDR.to_string(),
        "-p".into(),
        PORT.to_string(),
        "-t".into(),
        secs.to_string(),
        "-J".into(),
    ];
    if direction == Direction::Download {
        args.push("-R".into());
    }
    let out = sys::ns_run(&lab.client, "timeout", args);
    let _ = server.0.wait();
    let json: serde_json::Value = serde_json::from_str(&out?).context("iperf3 -J output")?;
    let end = &json["end"];
    let bps = end["sum_received"]["bits_per_second"]
        .as_f64()
        .ok_or_else(|| anyhow!("iperf3 reported no throughput: {}", json["error"]))?;
    Ok((
        bps / 1e9,
        end["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
    ))
}

/// Runs item 6 with the gotofw binary `gotofw_bin`.
pub fn tcp_through_gateway(settings: &Settings, gotofw_bin: &Path) -> Result<Tcp> {
    if !gotofw_bin.is_file() {
        bail!("no gotofw binary at {}", gotofw_bin.display());
    }
    let lab = Lab::new()?;
    let cases = cases(settings);
    let mut raw: Vec<Vec<Vec<Run>>> = cases
        .iter()
        .map(|(_, _, setups)| setups.iter().map(|_| Vec::new()).collect())
        .collect();
    for _ in 0..settings.tcp_runs {
        for (case, (mtu, direction, setups)) in cases.iter().enumerate() {
            lab.set_mtu(*mtu)?;
            for (i, &setup) in setups.iter().enumerate() {
                let installed = install(&lab, setup, gotofw_bin)
                    .with_context(|| format!("{} at MTU {mtu}", setup.name()))?;
                let offloads = lab.offloads()?;
                let load1 = sys::loadavg()[0];
                let (gbps, retransmits) = iperf(&lab, settings.tcp_secs, *direction)
                    .with_context(|| format!("iperf3, {} at MTU {mtu}", setup.name()))?;
                let attach_notes = installed
                    .gotofw
                    .as_ref()
                    .map(|g| g.stderr.trim().to_owned())
                    .unwrap_or_default();
                drop(installed);
                raw[case][i].push(Run {
                    gbps,
                    retransmits,
                    offloads,
                    load1,
                    attach_notes,
                });
            }
        }
    }
    let mut rows = Vec::new();
    for ((mtu, direction, setups), runs) in cases.into_iter().zip(raw) {
        let baseline = Sample::of(runs[0].iter().map(|r| r.gbps).collect());
        for (setup, runs) in setups.into_iter().zip(runs) {
            let gbps = Sample::of(runs.iter().map(|r| r.gbps).collect());
            rows.push(Row {
                mtu,
                direction,
                setup,
                vs_no_xdp: gbps.ratio_to(&baseline),
                gbps,
                retransmits: Sample::of(runs.iter().map(|r| r.retransmits as f64).collect()),
                runs,
            });
        }
    }
    Ok(Tcp {
        secs: settings.tcp_secs,
        rounds: settings.tcp_runs,
        rows,
    })
}

/// One offload column over every run of a row: the value if every run saw the same, else each
/// value with its count.
pub fn summarise(runs: &[Run], field: impl Fn(&Offloads) -> &str) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for run in runs {
        *counts.entry(field(&run.offloads)).or_default() += 1;
    }
    if counts.len() == 1 {
        return counts.into_keys().next().unwrap_or_default().to_owned();
    }
    counts
        .into_iter()
        .map(|(value, n)| format!("{value} ({n}/{})", runs.len()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Row {
    /// The row's name.
    pub fn name(&self) -> &'static str {
        self.setup.name()
    }

    /// Its direction, in words.
    pub fn direction_name(&self) -> &'static str {
        self.direction.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethtool_k_lines_become_features() {
        let text = "Features for x:\nrx-checksumming: on\ntcp-segmentation-offload: off\n\
                    \ttx-tcp-segmentation: off [fixed]\ngeneric-receive-offload: on\n";
        let map = parse_features(text);
        assert_eq!(map["tx-tcp-segmentation"], "off [fixed]");
        assert_eq!(map["generic-receive-offload"], "on");
        assert!(!map.contains_key("Features for x"));
    }

    #[test]
    fn offload_columns_say_when_runs_differ() {
        let run = |tso: &str| Run {
            gbps: 1.0,
            retransmits: 0,
            offloads: Offloads {
                peer_tso: tso.into(),
                ..Offloads::default()
            },
            load1: 0.0,
            attach_notes: String::new(),
        };
        let same = [run("on"), run("on")];
        assert_eq!(summarise(&same, |o| &o.peer_tso), "on");
        let mixed = [run("on"), run("off [fixed]"), run("on")];
        assert_eq!(
            summarise(&mixed, |o| &o.peer_tso),
            "off [fixed] (1/3), on (2/3)"
        );
    }
}
