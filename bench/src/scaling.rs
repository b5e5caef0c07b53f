//! Item 3: how cost and drop rate grow with the rule set: TURN network sets of 5 to 100k random
//! prefixes, 1 to 64 rules, flow tables of 1k to 1M flows; and the same network growth for an
//! nftables set and an iptables linear chain.

use std::{collections::BTreeMap, net::IpAddr};

use anyhow::Result;
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

/// Runs item 3.
pub fn scaling(settings: &Settings, lab: &VethLab) -> Result<Scaling> {
    Ok(Scaling {
        prefixes: prefixes(settings, lab)?,
        rules: rules(settings)?,
        flows: flows(settings)?,
        nft_set: baseline(settings, lab, &settings.prefix_sizes, false)?,
        iptables_chain: baseline(settings, lab, &settings.iptables_sizes, true)?,
    })
}
