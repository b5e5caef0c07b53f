//! Item 3: how cost and drop rate grow with the rule set: TURN network sets of 5 to 100k random
//! prefixes, 1 to 64 rules, flow tables of 1k to 1M flows; and the same network growth for an
//! nftables set and an iptables linear chain.

use std::{collections::BTreeMap, net::IpAddr};

use anyhow::{Context, Result};
use aya::{Ebpf, programs::Xdp};
use filter_common::ipproto;
use filter_user::{
    compile::Mode,
    scenario::{Action, Networks, PortRange, Protocol, Rule, RuleKind},
};
use ipnet::IpNet;
use serde::Serialize;

use crate::{
    Settings,
    baselines::{Iptables, Nft, NftHook},
    cost::{self, tc_cost, xdp_cost},
    frames, gotofw,
    lab::{Rate, VethLab},
    rng,
    stats::Sample,
};

/// gotofw at one size of the network set.
#[derive(Clone, Debug, Serialize)]
pub struct PrefixPoint {
    /// Prefixes in the set.
    pub prefixes: usize,
    /// Stateless XDP: UDP 3478 from inside one of the networks (allowed), ns.
    pub hit_ns: Sample,
    /// Stateless XDP: UDP 3478 from outside them (blocked after the trie lookup), ns.
    pub miss_ns: Sample,
    /// Stateful TC egress: UDP to 3478 of an address inside (opens or refreshes a flow), ns.
    pub egress_hit_ns: Sample,
    /// Stateful TC egress: UDP to 3478 outside (blocked), ns.
    pub egress_miss_ns: Sample,
    /// Drop rate of the stateless XDP program on the veth path (UDP 3478 from outside), Mpps.
    pub drop_mpps: Sample,
    /// Its receiver CPU time per packet, ns.
    pub drop_ns_per_packet: Sample,
    /// `miss_ns` / the same at the smallest size, per run.
    pub miss_growth: Sample,
    /// `hit_ns` / the same at the smallest size, per run.
    pub hit_growth: Sample,
}

/// A baseline at one size of its network set.
#[derive(Clone, Debug, Serialize)]
pub struct BaselinePoint {
    /// Prefixes (set elements or chain rules).
    pub prefixes: usize,
    /// Mpps processed (UDP 3478 from outside: walks the whole set or chain).
    pub mpps: Sample,
    /// Receiver CPU ns per packet.
    pub ns_per_packet: Sample,
    /// Raw runs.
    pub raw: Vec<Rate>,
}

/// gotofw at one rule count.
#[derive(Clone, Debug, Serialize)]
pub struct RulePoint {
    /// Rules.
    pub rules: usize,
    /// UDP 3478 from the last rule's network (every rule names the port), ns.
    pub last_rule_ns: Sample,
    /// UDP 3478 from outside every rule's network, ns.
    pub no_rule_ns: Sample,
}

/// gotofw at one flow-table fill.
#[derive(Clone, Debug, Serialize)]
pub struct FlowPoint {
    /// Flows in the table.
    pub flows: usize,
    /// Its size (entries).
    pub table_size: u32,
    /// A packet of a live flow, ns.
    pub hit_ns: Sample,
    /// A packet whose port a rule names but whose flow is not there, ns.
    pub miss_ns: Sample,
}

/// Known flows and a named-port flood on the veth path at one flow-table fill: gotofw's LRU
/// table and nftables' conntrack table holding the same number of flows.
#[derive(Clone, Debug, Serialize)]
pub struct VethFlowPoint {
    /// Flows in the table (gotofw) and conntrack entries (nftables).
    pub flows: usize,
    /// gotofw, UDP 3478 replies of a live TURN flow (passed into the stack): receiver CPU ns
    /// per packet.
    pub gotofw_known_ns: Sample,
    /// gotofw, UDP from port 53 with no flow (dropped).
    pub gotofw_flood_ns: Sample,
    /// nftables `ct state established`, the same known flow (accepted into the stack).
    pub nft_known_ns: Sample,
    /// nftables `ct state established`, the same flood (conntrack miss, then the drop).
    pub nft_flood_ns: Sample,
}

/// All of item 3.
#[derive(Clone, Debug, Serialize)]
pub struct Scaling {
    /// gotofw by network-set size.
    pub prefixes: Vec<PrefixPoint>,
    /// nftables netdev ingress by set size.
    pub nft_set: Vec<BaselinePoint>,
    /// iptables raw PREROUTING by chain length.
    pub iptables_chain: Vec<BaselinePoint>,
    /// gotofw by rule count.
    pub rules: Vec<RulePoint>,
    /// gotofw by flow count.
    pub flows: Vec<FlowPoint>,
    /// gotofw and nftables with conntrack on the veth path, by flow count.
    pub veth_flows: Vec<VethFlowPoint>,
    /// `nf_conntrack_max` when the item ran (larger fills are left out of `veth_flows`).
    pub conntrack_max: u64,
}

/// The prefix set of `n` networks (seeded by `n`, so the same on every run).
fn nets(n: usize) -> Vec<IpNet> {
    rng::networks(n, 0x6e65_7473 ^ n as u64)
}

fn xdp(ebpf: &Ebpf) -> &Xdp {
    ebpf.program("gotofw_ingress")
        .expect("loaded by loader::load")
        .try_into()
        .expect("an XDP program")
}

fn by_size<K: Ord + Clone>(map: &mut BTreeMap<K, Vec<f64>>, key: &K, value: f64) {
    map.entry(key.clone()).or_default().push(value);
}

/// gotofw across network-set sizes (cost and drop rate), runs interleaved across sizes.
fn prefixes(settings: &Settings, lab: &VethLab) -> Result<Vec<PrefixPoint>> {
    let sizes = &settings.prefix_sizes;
    let mut stateless = Vec::new();
    let mut stateful = Vec::new();
    for &n in sizes {
        let set = nets(n);
        stateless.push(gotofw::load(
            &gotofw::bench_rules(Some(set.clone())),
            &Mode::Stateless,
        )?);
        stateful.push(gotofw::load(
            &gotofw::bench_rules(Some(set)),
            &Mode::Stateful(gotofw::limits(262_144)),
        )?);
    }
    let wan: IpAddr = frames::WAN_ADDR.into();
    let miss_in = frames::udp_in(frames::OUTSIDE, 3478);
    let miss_out = frames::udp(wan, frames::LOCAL_PORT, frames::OUTSIDE.into(), 3478);
    let mut m: BTreeMap<(&str, usize), Vec<f64>> = BTreeMap::new();
    for _ in 0..settings.runs {
        for (i, &n) in sizes.iter().enumerate() {
            let inside = rng::inside(&nets(n)[n / 2]);
            let hit_in = frames::udp_in(inside, 3478);
            let hit_out = frames::udp(wan, frames::LOCAL_PORT, inside.into(), 3478);
            let prog = xdp(&stateless[i]);
            by_size(
                &mut m,
                &("hit", n),
                xdp_cost(prog, &hit_in, settings.repeat)?.0,
            );
            by_size(
                &mut m,
                &("miss", n),
                xdp_cost(prog, &miss_in, settings.repeat)?.0,
            );
            let egress = gotofw::egress(&mut stateful[i])?;
            by_size(
                &mut m,
                &("ehit", n),
                tc_cost(egress, &hit_out, settings.repeat)?.0,
            );
            by_size(
                &mut m,
                &("emiss", n),
                tc_cost(egress, &miss_out, settings.repeat)?.0,
            );
            let prog = gotofw::ingress(&mut stateless[i])?;
            let link = lab.attach(prog)?;
            let rate = lab.measure(
                &frames::to_mac(&miss_in, lab.rx_end.mac),
                settings.pps_duration,
            );
            prog.detach(link)?;
            let rate = rate?;
            by_size(&mut m, &("mpps", n), rate.mpps);
            by_size(&mut m, &("nspp", n), rate.ns_per_packet);
        }
    }
    let get = |what: &str, n: usize| Sample::of(m[&(what, n)].clone());
    let first = sizes[0];
    Ok(sizes
        .iter()
        .map(|&n| PrefixPoint {
            prefixes: n,
            hit_ns: get("hit", n),
            miss_ns: get("miss", n),
            egress_hit_ns: get("ehit", n),
            egress_miss_ns: get("emiss", n),
            drop_mpps: get("mpps", n),
            drop_ns_per_packet: get("nspp", n),
            miss_growth: get("miss", n).ratio_to(&get("miss", first)),
            hit_growth: get("hit", n).ratio_to(&get("hit", first)),
        })
        .collect())
}

/// An nftables set or an iptables chain across sizes.
fn baseline(
    settings: &Settings,
    lab: &VethLab,
    sizes: &[usize],
    iptables: bool,
) -> Result<Vec<BaselinePoint>> {
    let frame = frames::to_mac(&frames::udp_in(frames::OUTSIDE, 3478), lab.rx_end.mac);
    let mut out = Vec::new();
    for &n in sizes {
        let set = nets(n);
        let mut rates = Vec::new();
        {
            // Loaded once per size: a 100k-element set or chain takes seconds to load.
            let _ipt;
            let _nft;
            if iptables {
                _ipt = Iptables::load(&lab.rx_ns, &set)?;
            } else {
                _nft = Nft::load(&lab.rx_ns, NftHook::Netdev, &lab.rx_end.name, &set)?;
            }
            for _ in 0..settings.runs {
                rates.push(lab.measure(&frame, settings.pps_duration)?);
            }
        }
        out.push(BaselinePoint {
            prefixes: n,
            mpps: Sample::of(rates.iter().map(|r| r.mpps).collect()),
            ns_per_packet: Sample::of(rates.iter().map(|r| r.ns_per_packet).collect()),
            raw: rates,
        });
    }
    Ok(out)
}

/// `count` rules, all UDP 3478, rule `i` for 198.18.i.0/24.
pub fn rule_set(count: usize) -> Vec<Rule> {
    (0..count)
        .map(|i| Rule {
            name: format!("r{i}"),
            kind: RuleKind::Scenario,
            action: Action::Allow,
            protocols: vec![Protocol::Udp],
            remote_ports: vec![PortRange::one(3478)],
            local_ports: Vec::new(),
            networks: Networks::List(vec![
                format!("198.18.{i}.0/24").parse().expect("a valid CIDR"),
            ]),
            description: String::new(),
            unsolicited_replies: false,
        })
        .collect()
}

fn rules(settings: &Settings) -> Result<Vec<RulePoint>> {
    let sizes = &settings.rule_counts;
    let loaded = sizes
        .iter()
        .map(|&k| gotofw::load(&rule_set(k), &Mode::Stateless))
        .collect::<Result<Vec<_>>>()?;
    let none = frames::udp_in(frames::OUTSIDE, 3478);
    let mut m: BTreeMap<(&str, usize), Vec<f64>> = BTreeMap::new();
    for _ in 0..settings.runs {
        for (ebpf, &k) in loaded.iter().zip(sizes) {
            let last = frames::udp_in(std::net::Ipv4Addr::new(198, 18, (k - 1) as u8, 10), 3478);
            let prog = xdp(ebpf);
            by_size(
                &mut m,
                &("last", k),
                xdp_cost(prog, &last, settings.repeat)?.0,
            );
            by_size(
                &mut m,
                &("none", k),
                xdp_cost(prog, &none, settings.repeat)?.0,
            );
        }
    }
    Ok(sizes
        .iter()
        .map(|&k| RulePoint {
            rules: k,
            last_rule_ns: Sample::of(m[&("last", k)].clone()),
            no_rule_ns: Sample::of(m[&("none", k)].clone()),
        })
        .collect())
}

fn flows(settings: &Settings) -> Result<Vec<FlowPoint>> {
    let sizes = &settings.flow_counts;
    let (hit, key) = frames::known_flow();
    let miss = frames::udp_in(frames::OUTSIDE, 3478);
    let mut loaded = Vec::new();
    for &n in sizes {
        let table = u32::try_from(n + n / 4).unwrap_or(u32::MAX).max(1024);
        let mut ebpf = gotofw::load(
            &gotofw::bench_rules(None),
            &Mode::Stateful(gotofw::limits(table)),
        )?;
        gotofw::fill_flows(
            &mut ebpf,
            n,
            (&key, &gotofw::live_flow(gotofw::HTTPS_RULE, ipproto::TCP)),
        )?;
        loaded.push((ebpf, table));
    }
    let mut m: BTreeMap<(&str, usize), Vec<f64>> = BTreeMap::new();
    for _ in 0..settings.runs {
        for ((ebpf, _), &n) in loaded.iter().zip(sizes) {
            let prog = xdp(ebpf);
            let (ns, ret) = xdp_cost(prog, &hit, settings.repeat)?;
            anyhow::ensure!(
                cost::verdict(ret) == "pass",
                "the probed flow is not in the table of {n} flows"
            );
            by_size(&mut m, &("hit", n), ns);
            by_size(
                &mut m,
                &("miss", n),
                xdp_cost(prog, &miss, settings.repeat)?.0,
            );
        }
    }
    Ok(sizes
        .iter()
        .zip(&loaded)
        .map(|(&n, (_, table))| FlowPoint {
            flows: n,
            table_size: *table,
            hit_ns: Sample::of(m[&("hit", n)].clone()),
            miss_ns: Sample::of(m[&("miss", n)].clone()),
        })
        .collect())
}

/// `nf_conntrack_max` (0 when unreadable).
pub fn conntrack_max() -> u64 {
    std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The remote end of filler flow `i` (RFC 2544's 198.18.0.0/15, 131,072 addresses, then the
/// next source port).
fn filler(i: usize) -> (std::net::Ipv4Addr, u16) {
    let addr = std::net::Ipv4Addr::from(0xc612_0000 | (i as u32 & 0x0001_ffff));
    (addr, 1024 + (i >> 17) as u16)
}

/// Known flows and the port-53 flood on the veth path at each fill of `settings.flow_counts`
/// that conntrack can hold (below 90% of `nf_conntrack_max`, which counts per namespace): gotofw
/// with the fill in its table, nftables with as many conntrack entries, made by real traffic
/// (one datagram per flow from the receiver's namespace; unreplied UDP entries live 30 s, and
/// fills run in ascending order, each sending only the flows it adds). gotofw's fills are
/// measured first, with no nftables table loaded; each receiver's runs alternate known flow and
/// flood.
fn veth_flows(settings: &Settings, lab: &VethLab, max: u64) -> Result<Vec<VethFlowPoint>> {
    let sizes: Vec<usize> = settings
        .flow_counts
        .iter()
        .copied()
        .filter(|&n| (n as u64) * 10 < max * 9)
        .collect();
    let known = frames::to_mac(&frames::udp_in(frames::TURN, 3478), lab.rx_end.mac);
    let flood = frames::to_mac(&frames::udp_in(frames::NO_FLOW, 53), lab.rx_end.mac);
    let _routes = crate::lab::ReplyRoutes::add(lab)?;
    let mut m: BTreeMap<(&str, usize), Vec<f64>> = BTreeMap::new();
    // gotofw first, with no nftables table in the namespace (its passed packets would go
    // through conntrack and the chain).
    for &n in &sizes {
        let mut ebpf = gotofw::load(
            &gotofw::bench_rules(None),
            &Mode::Stateful(gotofw::limits(
                u32::try_from(n + n / 4).unwrap_or(u32::MAX).max(1024),
            )),
        )?;
        let key = frames::flow_key(frames::TURN, 3478, ipproto::UDP);
        gotofw::fill_flows(
            &mut ebpf,
            n,
            (&key, &gotofw::live_flow(gotofw::TURN_RULE, ipproto::UDP)),
        )?;
        let prog = gotofw::ingress(&mut ebpf)?;
        for _ in 0..settings.runs {
            let link = lab.attach(prog)?;
            let k = lab.measure(&known, settings.pps_duration);
            let f = lab.measure(&flood, settings.pps_duration);
            prog.detach(link)?;
            by_size(&mut m, &("gk", n), k?.ns_per_packet);
            by_size(&mut m, &("gf", n), f?.ns_per_packet);
        }
    }
    // Then nftables, its conntrack table grown from fill to fill.
    let nft = crate::baselines::NftCt::load(&lab.rx_ns)?;
    // Unreplied UDP entries would expire after 30 s, before the largest fill is measured (the
    // namespace's own setting; the namespace goes with the lab).
    crate::sys::ns_sysfs_write(
        &lab.rx_ns,
        "/proc/sys/net/netfilter/nf_conntrack_udp_timeout",
        "600",
    )?;
    crate::lab::open_udp_flow(lab, frames::TURN, 3478)?;
    let mut opened = 0;
    for &n in &sizes {
        let upto = n.saturating_sub(1);
        lab.rx_ns.run(|| -> Result<()> {
            let socket = std::net::UdpSocket::bind((frames::WAN_ADDR, frames::LOCAL_PORT + 1))
                .context("binding the flows' local end")?;
            for i in opened..upto {
                // The transmit queue can fill: retry a bounded number of times.
                let mut tries = 0;
                while let Err(e) = socket.send_to(b"f", filler(i)) {
                    tries += 1;
                    anyhow::ensure!(tries < 1000, "opening filler flow {i}: {e}");
                    std::thread::sleep(std::time::Duration::from_micros(100));
                }
            }
            Ok(())
        })?;
        opened = opened.max(upto);
        let count: u64 = crate::sys::ns_run(
            &lab.rx_ns,
            "cat",
            ["/proc/sys/net/netfilter/nf_conntrack_count"],
        )?
        .trim()
        .parse()
        .context("reading nf_conntrack_count")?;
        anyhow::ensure!(
            count * 10 >= n as u64 * 9,
            "conntrack holds {count} entries, not the {n} flows sent"
        );
        for _ in 0..settings.runs {
            let before = nft.accepted()?;
            let k = lab.measure(&known, settings.pps_duration)?;
            let accepted = nft.accepted()? - before;
            anyhow::ensure!(
                accepted * 10 >= k.processed * 9,
                "nftables accepted {accepted} of {} known-flow packets at {n} flows",
                k.processed
            );
            by_size(&mut m, &("nk", n), k.ns_per_packet);
            by_size(
                &mut m,
                &("nf", n),
                lab.measure(&flood, settings.pps_duration)?.ns_per_packet,
            );
        }
    }
    drop(nft);
    let get = |what: &str, n: usize| Sample::of(m[&(what, n)].clone());
    Ok(sizes
        .iter()
        .map(|&n| VethFlowPoint {
            flows: n,
            gotofw_known_ns: get("gk", n),
            gotofw_flood_ns: get("gf", n),
            nft_known_ns: get("nk", n),
            nft_flood_ns: get("nf", n),
        })
        .collect())
}

/// Runs item 3.
pub fn scaling(settings: &Settings, lab: &VethLab) -> Result<Scaling> {
    let max = conntrack_max();
    Ok(Scaling {
        prefixes: prefixes(settings, lab)?,
        rules: rules(settings)?,
        flows: flows(settings)?,
        nft_set: baseline(settings, lab, &settings.prefix_sizes, false)?,
        iptables_chain: baseline(settings, lab, &settings.iptables_sizes, true)?,
        veth_flows: veth_flows(settings, lab, max)?,
        conntrack_max: max,
    })
}
