//! `gotofw flows`: the live flows of a stateful filter.

use std::{
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use filter_common::{FlowKey, flow_opened, flow_state, ipproto};
use serde::Serialize;

use crate::{
    cli::FlowsArgs,
    error::UsageError,
    loader::{self, FilterMode, FlowEntry},
    output::{json, print, table},
    slots::slot_name,
    system,
};

/// `flows --json`, documented in the README.
#[derive(Debug, Serialize)]
pub struct Flows {
    /// Format version.
    pub version: u32,
    /// One entry per stateful filter of this network namespace.
    pub interfaces: Vec<InterfaceFlows>,
}

/// The flows of one interface.
#[derive(Debug, Serialize)]
pub struct InterfaceFlows {
    /// Interface name.
    pub interface: String,
    /// Flows, oldest first.
    pub flows: Vec<Flow>,
}

/// One flow.
#[derive(Debug, Serialize)]
pub struct Flow {
    /// `tcp` or `udp`.
    pub protocol: &'static str,
    /// Local (WAN-side, after NAT) address and port.
    pub local: String,
    /// Remote address and port.
    pub remote: String,
    /// The rule it belongs to (the one that allowed its outbound packets); null for a flow of
    /// an earlier rule set, whose rule the current record does not name.
    pub rule: Option<String>,
    /// Opened (or last judged) under an earlier rule set (`set-scenario`, `attach --replace`,
    /// `reload`): its next packet is checked against the current rules, which keep or stop it.
    pub earlier_rule_set: bool,
    /// `udp`, `syn-sent`, `established`, `picked-up` (TCP picked up mid-stream, not answered
    /// yet) or `closing`.
    pub state: &'static str,
    /// How the flow was opened: `syn`, `mid-stream` (TCP from an outbound packet without SYN),
    /// `first-packet` (UDP) or `unrecorded` (kept from a filter that did not record it).
    pub opened: &'static str,
    /// Seconds since it was opened.
    pub age: f64,
    /// Seconds since its last packet.
    pub idle: f64,
    /// Whether it still admits packets (false: expired, waiting to be reused or evicted).
    pub alive: bool,
    /// Packets from the remote end (approximate).
    pub packets_in: u64,
    /// Packets to the remote end (approximate).
    pub packets_out: u64,
    /// Bytes from the remote end (approximate).
    pub bytes_in: u64,
    /// Bytes to the remote end (approximate).
    pub bytes_out: u64,
}

fn addr(bytes: [u8; 16], family: u8) -> IpAddr {
    if family == 4 {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(bytes))
    }
}

fn endpoint(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

fn flow(e: &FlowEntry, names: &[String], now: u64) -> Flow {
    let FlowKey {
        remote,
        local,
        remote_port,
        local_port,
        proto,
        family,
        ..
    } = e.key;
    let v = &e.value;
    // Milliseconds fit an f64 exactly for far longer than any flow lives.
    let secs = |ns: u64| {
        f64::from(u32::try_from(now.saturating_sub(ns) / 1_000_000).unwrap_or(u32::MAX)) / 1000.0
    };
    Flow {
        protocol: if proto == ipproto::TCP { "tcp" } else { "udp" },
        local: endpoint(addr(local, family), local_port),
        remote: endpoint(addr(remote, family), remote_port),
        rule: e
            .current
            .then(|| slot_name(names, filter_common::rule_slot(v.rule))),
        earlier_rule_set: !e.current,
        state: match v.state {
            flow_state::UDP => "udp",
            flow_state::TCP_SYN_SENT => "syn-sent",
            flow_state::TCP_ESTABLISHED => "established",
            flow_state::TCP_PICKED_UP => "picked-up",
            _ => "closing",
        },
        opened: opened_name(v.opened),
        age: secs(v.created_ns),
        idle: secs(v.last_seen_ns),
        alive: e.alive,
        packets_in: v.packets[0],
        packets_out: v.packets[1],
        bytes_in: v.bytes[0],
        bytes_out: v.bytes[1],
    }
}

/// The `opened` word of a [`flow_opened`] value.
const fn opened_name(opened: u32) -> &'static str {
    match opened {
        flow_opened::SYN => "syn",
        flow_opened::MID_STREAM => "mid-stream",
        flow_opened::FIRST_PACKET => "first-packet",
        _ => "unrecorded",
    }
}

/// Reads the flows of `iface`, or of every stateful filter of this namespace.
pub fn collect(iface: Option<&str>, all: bool) -> anyhow::Result<Flows> {
    let names = match iface {
        Some(name) => {
            if !system::key_dir(&system::key_for(name)?)?.exists() {
                return Err(UsageError::NotAttached(name.to_owned()).into());
            }
            vec![name.to_owned()]
        }
        None => system::own_interfaces(loader::attached_keys()?),
    };
    let now = loader::monotonic_coarse_ns();
    let mut interfaces = Vec::new();
    for name in names {
        let attached = loader::read_attached(&name)?;
        crate::liveness::note_if_broken(&attached);
        if attached.meta.mode != FilterMode::Stateful {
            if iface.is_some() {
                return Err(UsageError::NoFlows(name, attached.meta.mode.name().to_owned()).into());
            }
            continue;
        }
        let rules: Vec<String> = attached.meta.rules.iter().map(|r| r.name.clone()).collect();
        let mut flows: Vec<Flow> = attached
            .flows(now)?
            .iter()
            .filter(|e| all || e.alive)
            .map(|e| flow(e, &rules, now))
            .collect();
        flows.sort_by(|a, b| b.age.total_cmp(&a.age));
        interfaces.push(InterfaceFlows {
            interface: attached.meta.interface.clone(),
            flows,
        });
    }
    Ok(Flows {
        version: 3,
        interfaces,
    })
}

/// Runs the command.
pub fn run(args: &FlowsArgs) -> anyhow::Result<()> {
    system::require_capabilities()?;
    let flows = collect(args.iface.as_deref(), args.all)?;
    if args.json {
        return Ok(print(&json(&flows)?)?);
    }
    let mut out = String::new();
    if flows.interfaces.is_empty() {
        out.push_str("no stateful gotofw filter in this network namespace\n");
    }
    for i in &flows.interfaces {
        let _ = writeln!(out, "{}: {} flows", i.interface, i.flows.len());
        let mut rows = vec![
            [
                "PROTO", "LOCAL", "REMOTE", "RULE", "STATE", "OPENED", "AGE", "IDLE", "PKTS IN",
                "PKTS OUT",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for f in &i.flows {
            rows.push(vec![
                f.protocol.to_owned(),
                f.local.clone(),
                f.remote.clone(),
                f.rule.clone().unwrap_or_else(|| {
                    "(earlier rule set: rechecked at its next packet)".to_owned()
                }),
                if f.alive {
                    f.state.to_owned()
                } else {
                    format!("{} (expired)", f.state)
                },
                f.opened.to_owned(),
                format!("{:.0}s", f.age),
                format!("{:.0}s", f.idle),
                f.packets_in.to_string(),
                f.packets_out.to_string(),
            ]);
        }
        out.push_str(&table(&rows));
    }
    Ok(print(&out)?)
}

#[cfg(test)]
mod tests {
    use filter_common::flow_new;

    use super::*;

    fn entry(current: bool) -> FlowEntry {
        FlowEntry {
            key: FlowKey {
                remote: [68, 64, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                local: [203, 0, 113, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                remote_port: 3478,
                local_port: 50_000,
                proto: ipproto::UDP,
                family: 4,
                _pad: [0; 2],
            },
            value: flow_new(1, 7, ipproto::UDP, 0, 1_000_000_000, 60),
            alive: true,
            current,
        }
    }

    /// `rule` is a rule name or null, never a sentence; `earlier_rule_set` says which.
    #[test]
    fn a_flow_of_an_earlier_rule_set_has_no_rule_name() {
        let names = ["https".to_owned(), "turn-udp".to_owned()];
        let now = 3_000_000_000;
        let current = serde_json::to_value(flow(&entry(true), &names, now)).unwrap();
        assert_eq!(current["rule"], "turn-udp", "{current}");
        assert_eq!(current["earlier_rule_set"], false, "{current}");
        assert_eq!(current["remote"], "68.64.0.10:3478", "{current}");
        let earlier = serde_json::to_value(flow(&entry(false), &names, now)).unwrap();
        assert!(earlier["rule"].is_null(), "{earlier}");
        assert_eq!(earlier["earlier_rule_set"], true, "{earlier}");
    }
}
