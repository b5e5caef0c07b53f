//! Packets per second on the veth path (see [`crate::lab`]): each receiver in turn, 64-byte
//! frames, several runs, every receiver measured once per run so that ratios pair runs taken
//! seconds apart.

use std::collections::BTreeMap;

use anyhow::Result;
use filter_common::ipproto;
use filter_user::compile::Mode;
use serde::Serialize;

use crate::{
    Settings,
    baselines::{Iptables, Nft, NftCt, NftHook, XdpFilter},
    cost, frames, gotofw,
    lab::{Rate, ReplyRoutes, VethLab, open_udp_flow},
    stats::Sample,
};

/// Live flows in gotofw's table on the veth path (random ones, and the replayed flow).
pub const FLOW_FILL: usize = 10_000;

/// A receiver under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Receiver {
    /// `gotofw_floor`: an empty XDP_DROP program.
    Floor,
    /// gotofw (stateful, the default mode) on blocked traffic (a source port no rule names).
    GotofwBlocked,
    /// gotofw on blocked traffic whose port a rule names (UDP 3478 from outside the TURN
    /// networks): a flow-table miss, then the drop.
    GotofwBlockedNamedPort,
    /// gotofw on allowed traffic, known flows: UDP 3478 replies from a TURN server whose flow is
    /// live (in a table of [`FLOW_FILL`] live flows); the packets go on into the receiver's
    /// stack (to a port without a socket, where the stack drops them).
    GotofwAllowed,
    /// A bare XDP_PASS program on the same known-flow frames: what passing a packet into the
    /// stack costs without any filter (the reference for gotofw's share of the known-flow cost).
    XdpPassKnownFlow,
    /// nftables with conntrack (`ct state established` in inet prerouting after conntrack) on
    /// the same frames, whose flow was opened from the receiver side first.
    NftCtKnownFlow,
    /// gotofw on a named-port flood: UDP from port 53 of an address without a flow.
    GotofwNamed53,
    /// gotofw on a named-port flood: UDP from port 123.
    GotofwNamed123,
    /// nftables with conntrack on the port-53 flood (a conntrack lookup that misses, a new
    /// entry, then the drop).
    NftCtNamed53,
    /// nftables with conntrack on the port-123 flood.
    NftCtNamed123,
    /// xdp-filter (deny policy, allowed source ports).
    XdpFilter,
    /// nftables, netdev ingress chain.
    NftNetdev,
    /// nftables, inet prerouting chain at priority raw.
    NftPrerouting,
    /// iptables (nf_tables variant), raw PREROUTING.
    Iptables,
}

impl Receiver {
    /// All receivers, in table order.
    pub const ALL: [Self; 14] = [
        Self::Floor,
        Self::GotofwBlocked,
        Self::GotofwBlockedNamedPort,
        Self::GotofwNamed53,
        Self::GotofwNamed123,
        Self::GotofwAllowed,
        Self::XdpPassKnownFlow,
        Self::NftCtKnownFlow,
        Self::NftCtNamed53,
        Self::NftCtNamed123,
        Self::XdpFilter,
        Self::NftNetdev,
        Self::NftPrerouting,
        Self::Iptables,
    ];

    /// The name in the tables.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Floor => "empty XDP_DROP program (floor)",
            Self::GotofwBlocked => "gotofw, blocked (port no rule names)",
            Self::GotofwBlockedNamedPort => "gotofw, blocked (UDP 3478 from outside TURN)",
            Self::GotofwAllowed => {
                "gotofw, known flow (UDP 3478 reply of a live TURN flow, on into the stack)"
            }
            Self::XdpPassKnownFlow => "bare XDP_PASS, the same known-flow packets (no filter)",
            Self::NftCtKnownFlow => "nftables ct state established, the same known flow",
            Self::GotofwNamed53 => "gotofw, named-port flood (UDP from 53, no flow)",
            Self::GotofwNamed123 => "gotofw, named-port flood (UDP from 123, no flow)",
            Self::NftCtNamed53 => "nftables ct state established, UDP from 53, no flow",
            Self::NftCtNamed123 => "nftables ct state established, UDP from 123, no flow",
            Self::XdpFilter => "xdp-filter, blocked",
            Self::NftNetdev => "nftables netdev ingress, blocked",
            Self::NftPrerouting => "nftables inet prerouting (raw), blocked",
            Self::Iptables => "iptables raw PREROUTING, blocked",
        }
    }

    /// The frame it receives: blocked traffic (UDP from port 9) unless said otherwise.
    fn frame(self) -> Vec<u8> {
        match self {
            Self::GotofwAllowed | Self::XdpPassKnownFlow | Self::NftCtKnownFlow => {
                frames::udp_in(frames::TURN, 3478)
            }
            Self::GotofwNamed53 | Self::NftCtNamed53 => frames::udp_in(frames::NO_FLOW, 53),
            Self::GotofwNamed123 | Self::NftCtNamed123 => frames::udp_in(frames::NO_FLOW, 123),
            Self::GotofwBlockedNamedPort => frames::udp_in(frames::OUTSIDE, 3478),
            _ => frames::udp_in(frames::OUTSIDE, frames::UNNAMED_PORT),
        }
    }
}

/// One receiver's results over the runs.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The receiver.
    pub receiver: Receiver,
    /// Its name.
    pub name: &'static str,
    /// Mpps processed.
    pub mpps: Sample,
    /// Receiver CPU ns per packet.
    pub ns_per_packet: Sample,
    /// Capacity from the CPU time: 1000 / ns per packet, in Mpps.
    pub capacity_mpps: Sample,
    /// Mpps the generator sent.
    pub gen_mpps: Sample,
    /// Share of its CPU the receiver used.
    pub rx_cpu_busy: Sample,
    /// Processed Mpps / gotofw's (blocked), per run.
    pub mpps_vs_gotofw: Sample,
    /// CPU ns per packet / gotofw's (blocked), per run.
    pub ns_vs_gotofw: Sample,
    /// Every run's raw numbers.
    pub raw: Vec<Rate>,
}

/// Measures one receiver once: installs it, sends, removes it.
pub fn measure_once(
    settings: &Settings,
    lab: &VethLab,
    receiver: Receiver,
    nets: Option<&[ipnet::IpNet]>,
) -> Result<Rate> {
    let frame = frames::to_mac(&receiver.frame(), lab.rx_end.mac);
    let iface = lab.rx_end.name.as_str();
    let default_nets = filter_user::scenario::default_turn_networks();
    let nets = nets.unwrap_or(&default_nets);
    match receiver {
        Receiver::Floor => {
            let mut ebpf = gotofw::bench_object()?;
            let prog = gotofw::extra(&mut ebpf, "gotofw_floor")?;
            lab.attach(prog)?;
            lab.measure(&frame, settings.pps_duration)
        }
        Receiver::GotofwBlocked
        | Receiver::GotofwBlockedNamedPort
        | Receiver::GotofwAllowed
        | Receiver::GotofwNamed53
        | Receiver::GotofwNamed123 => {
            let mut ebpf = gotofw::load(
                &gotofw::bench_rules(Some(nets.to_vec())),
                &Mode::Stateful(gotofw::limits(262_144)),
            )?;
            let key = frames::flow_key(frames::TURN, 3478, ipproto::UDP);
            gotofw::fill_flows(
                &mut ebpf,
                FLOW_FILL,
                (&key, &gotofw::live_flow(gotofw::TURN_RULE, ipproto::UDP)),
            )?;
            let prog = gotofw::ingress(&mut ebpf)?;
            // The frames must get the verdict the row names (a flow that expired or a rule
            // that changed would make a pass row measure a drop).
            let want = if receiver == Receiver::GotofwAllowed {
                "pass"
            } else {
                "drop"
            };
            let got = cost::verdict(cost::xdp_cost(prog, &frame, 1)?.1);
            anyhow::ensure!(got == want, "{}: gotofw returned {got}", receiver.name());
            let _routes = (receiver == Receiver::GotofwAllowed)
                .then(|| ReplyRoutes::add(lab))
                .transpose()?;
            lab.attach(prog)?;
            lab.measure(&frame, settings.pps_duration)
        }
        Receiver::XdpPassKnownFlow => {
            let _routes = ReplyRoutes::add(lab)?;
            let mut prog = crate::lab::xdp_pass()?;
            lab.attach(&mut prog)?;
            lab.measure(&frame, settings.pps_duration)
        }
        Receiver::NftCtKnownFlow | Receiver::NftCtNamed53 | Receiver::NftCtNamed123 => {
            let _routes = ReplyRoutes::add(lab)?;
            let nft = NftCt::load(&lab.rx_ns)?;
            if receiver == Receiver::NftCtKnownFlow {
                open_udp_flow(lab, frames::TURN, 3478)?;
            }
            let before = nft.accepted()?;
            let rate = lab.measure(&frame, settings.pps_duration)?;
            let accepted = nft.accepted()? - before;
            // Known flow: conntrack must have called (nearly) every packet established; the
            // floods: none.
            if receiver == Receiver::NftCtKnownFlow {
                anyhow::ensure!(
                    accepted * 10 >= rate.processed * 9,
                    "nftables accepted {accepted} of {} known-flow packets: no conntrack entry?",
                    rate.processed
                );
            } else {
                anyhow::ensure!(
                    accepted == 0,
                    "nftables accepted {accepted} packets of a flood with no flow"
                );
            }
            Ok(rate)
        }
        Receiver::XdpFilter => {
            let _filter = XdpFilter::load(&lab.rx_ns, iface)?;
            lab.measure(&frame, settings.pps_duration)
        }
        Receiver::NftNetdev | Receiver::NftPrerouting => {
            let hook = if receiver == Receiver::NftNetdev {
                NftHook::Netdev
            } else {
                NftHook::Prerouting
            };
            let _nft = Nft::load(&lab.rx_ns, hook, iface, nets)?;
            lab.measure(&frame, settings.pps_duration)
        }
        Receiver::Iptables => {
            let _ipt = Iptables::load(&lab.rx_ns, nets)?;
            lab.measure(&frame, settings.pps_duration)
        }
    }
}

/// Item 2: every receiver, `settings.runs` times, interleaved.
pub fn veth_rates(settings: &Settings, lab: &VethLab) -> Result<Vec<Row>> {
    let mut raw: BTreeMap<Receiver, Vec<Rate>> = BTreeMap::new();
    for _ in 0..settings.runs {
        for receiver in Receiver::ALL {
            let rate = measure_once(settings, lab, receiver, None)?;
            raw.entry(receiver).or_default().push(rate);
        }
    }
    Ok(rows(&raw, Receiver::GotofwBlocked))
}

/// Rows with their ratios to `reference`'s runs.
pub fn rows(raw: &BTreeMap<Receiver, Vec<Rate>>, reference: Receiver) -> Vec<Row> {
    let sample = |rates: &[Rate], f: fn(&Rate) -> f64| Sample::of(rates.iter().map(f).collect());
    let reference = &raw[&reference];
    let ref_mpps = sample(reference, |r| r.mpps);
    let ref_ns = sample(reference, |r| r.ns_per_packet);
    raw.iter()
        .map(|(receiver, rates)| {
            let mpps = sample(rates, |r| r.mpps);
            let ns = sample(rates, |r| r.ns_per_packet);
            Row {
                receiver: *receiver,
                name: receiver.name(),
                mpps_vs_gotofw: mpps.ratio_to(&ref_mpps),
                ns_vs_gotofw: ns.ratio_to(&ref_ns),
                capacity_mpps: ns.map(|v| 1000.0 / v),
                gen_mpps: sample(rates, |r| r.gen_mpps),
                rx_cpu_busy: sample(rates, |r| r.rx_cpu_busy),
                mpps,
                ns_per_packet: ns,
                raw: rates.clone(),
            }
        })
        .collect()
}
