//! The status model: what `gotofw status` (and its `--json`), `status --watch` and the metrics
//! show of the attached filters, read from their pins: the record, liveness and the counters.

use std::{collections::BTreeMap, fmt::Write as _};

use anyhow::{Context as _, anyhow};
use aya::maps::MapData;
use filter_common::{
    Config, Direction,
    learn::{AddrKey, LearnedValue, stat},
    names::pin,
    rule_slot,
};
use serde::Serialize;

use crate::{
    compile::FlowLimits,
    error::UsageError,
    liveness,
    loader::{
        self, Attached, FilterMode, XdpModeArg,
        learned::{DnsStats, unexpired},
    },
    slots::FIXED,
    system,
};

/// `status --json`, documented in the README.
#[derive(Debug, Serialize)]
pub struct Status {
    /// Format version.
    pub version: u32,
    /// One entry per interface of this network namespace with a filter.
    pub interfaces: Vec<InterfaceStatus>,
    /// Pin keys (`NAME:NETNS`) of filters attached in other network namespaces.
    pub other_namespaces: Vec<String>,
}

/// One attached filter.
#[derive(Debug, Serialize)]
pub struct InterfaceStatus {
    /// Interface name.
    pub interface: String,
    /// Pin key: the interface name, with `:NETNS` outside the namespace of PID 1.
    pub key: String,
    /// Index at attach time.
    pub ifindex: u32,
    /// Network namespace (nsfs inode) at attach time.
    pub netns: u64,
    /// Whether the interface still exists (same index, same namespace).
    pub present: bool,
    /// Whether the filter is really filtering: `state` is `filtering`.
    pub filtering: bool,
    /// `filtering`, `severed`, `interface-gone`, `interface-recreated`, `replaced` or
    /// `egress-missing` (see [`liveness::State`]).
    pub state: liveness::State,
    /// What was found, when not filtering.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub state_detail: String,
    /// Scenario name.
    pub scenario: String,
    /// `stateful`, `stateless` or `ingress-only`.
    pub mode: FilterMode,
    /// XDP mode in use: `native` or `generic`.
    pub xdp_mode: XdpModeArg,
    /// How the programs read the interface's frames: `ethernet` (Ethernet, VLAN tags, PPPoE)
    /// or `ip` (an L3 link: tun, WireGuard, PPP, raw IP), from the kernel's config entry.
    pub link: &'static str,
    /// The egress program's hook: `tcx` or `clsact` (none in ingress-only mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress_hook: Option<loader::EgressHook>,
    /// Drop-log samples per second and CPU (`gotofw log`); 0 when the log is off.
    pub log_rate: u32,
    /// Drop-log samples lost since the rule set was loaded: the ring buffer was full while a
    /// reader followed the log (read within the last 10 s, but not fast enough); what a ring
    /// nobody reads cannot take is not counted. Absent for a filter attached by a gotofw
    /// from before the count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_samples_lost: Option<u64>,
    /// Unix time of the attach.
    pub attached_at: u64,
    /// Where the pins are.
    pub pin_dir: String,
    /// Flow table figures (stateful mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flows: Option<FlowSummary>,
    /// Every counter: rules in match order, then the fixed slots.
    pub counters: Vec<CounterStatus>,
    /// What the domain rules learned from DNS answers (every filter has it: all zero without
    /// domain rules).
    pub dns: DnsStatus,
}

/// The reasons an answer teaches nothing, by the [`stat`] slot each counts in, as `status` and
/// the metrics (label `reason`) name them.
pub const REFUSED_REASONS: [(u32, &str); 11] = [
    (stat::REFUSED_CUT, "cut"),
    (stat::REFUSED_NOT_ANSWER, "not-answer"),
    (stat::REFUSED_TRUNCATED, "truncated"),
    (stat::REFUSED_QUESTION_COUNT, "question-count"),
    (stat::REFUSED_BAD_LABEL, "bad-label"),
    (stat::REFUSED_NAME_TOO_LONG, "name-too-long"),
    (stat::REFUSED_NOT_ADDRESS_QUERY, "not-address-query"),
    (stat::REFUSED_UNSOLICITED, "unsolicited"),
    (stat::REFUSED_SERVER, "server"),
    (stat::REFUSED_UNPARSED, "unparsed"),
    (stat::REFUSED_NO_SET, "no-set"),
];

/// Domain rules' learning (issue 13): the filter's DNS statistics (summed over CPUs since the
/// attach) and its learned table now.
#[derive(Debug, Default, Serialize)]
pub struct DnsStatus {
    /// The domain sets the rules name, in set order (empty: no domain rules).
    pub domain_sets: Vec<String>,
    /// Queries for names of the sets that the egress program recorded.
    pub queries: u64,
    /// Answers learned from (their records may still have given no address).
    pub answers: u64,
    /// Addresses learned (A and AAAA records of those answers).
    pub learned: u64,
    /// Answers that taught nothing, by reason (every reason, zero included).
    pub refused: BTreeMap<&'static str, u64>,
    /// Addresses the learned table refused to take.
    pub learn_failed: u64,
    /// Answers the ingress program could not hand to the learning program (a failed tail
    /// call): nothing learned from them.
    pub missed: u64,
    /// Addresses in the learned table that hold for a set now (unexpired).
    pub learned_now: usize,
    /// Entries in the learned table, expired ones included.
    pub learned_entries: usize,
    /// Most addresses the learned table holds (the least recently used go first).
    pub table_size: u32,
}

impl DnsStatus {
    /// The status of `stats` and of the learned table's `entries` (of `table_size`) at `now`.
    pub fn new(
        domain_sets: Vec<String>,
        stats: &DnsStats,
        entries: &[(AddrKey, LearnedValue)],
        table_size: u32,
        now: u64,
    ) -> Self {
        let at = |slot: u32| stats.get(slot as usize).copied().unwrap_or(0);
        Self {
            domain_sets,
            queries: at(stat::QUERIES),
            answers: at(stat::ANSWERS),
            learned: at(stat::LEARNED),
            refused: REFUSED_REASONS
                .iter()
                .map(|&(slot, reason)| (reason, at(slot)))
                .collect(),
            learn_failed: at(stat::LEARN_FAILED),
            missed: at(stat::MISSED),
            learned_now: unexpired(entries, now),
            learned_entries: entries.len(),
            table_size,
        }
    }

    /// Answers refused, all reasons.
    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }

    /// The line `status` prints, e.g. `dns (sets goto): 12 queries, 11 answers learned from,
    /// 30 addresses learned (25 now, table of 4096), 1 refused (unsolicited 1)`; `None` for a
    /// filter without domain rules that counted nothing.
    pub fn line(&self) -> Option<String> {
        let refused = self.refused_total();
        if self.domain_sets.is_empty()
            && self.queries
                + self.answers
                + self.learned
                + refused
                + self.learn_failed
                + self.missed
                == 0
            && self.learned_entries == 0
        {
            return None;
        }
        let mut line = format!(
            "dns (sets {}): {} queries, {} answers learned from, {} addresses learned ({} now, table of {}), {refused} refused",
            if self.domain_sets.is_empty() {
                "none".to_owned()
            } else {
                self.domain_sets.join(", ")
            },
            self.queries,
            self.answers,
            self.learned,
            self.learned_now,
            self.table_size,
        );
        let reasons: Vec<String> = REFUSED_REASONS
            .iter()
            .filter_map(|(_, r)| {
                let n = self.refused.get(r).copied().unwrap_or(0);
                (n != 0).then(|| format!("{r} {n}"))
            })
            .collect();
        if !reasons.is_empty() {
            let _ = write!(line, " ({})", reasons.join(", "));
        }
        if self.learn_failed != 0 {
            let _ = write!(line, ", {} not taken by the table", self.learn_failed);
        }
        if self.missed != 0 {
            let _ = write!(line, ", {} missed (tail call failed)", self.missed);
        }
        Some(line)
    }
}

/// One counter.
#[derive(Debug, Serialize)]
pub struct CounterStatus {
    /// Rule or slot name.
    pub name: String,
    /// `scenario`, `allowance` or `fixed`.
    pub kind: String,
    /// `allow` or `block`.
    pub action: String,
    /// `ingress` (WAN to LAN) or `egress`.
    pub direction: &'static str,
    /// Packets, summed over CPUs.
    pub packets: u64,
    /// Bytes (whole frames), summed over CPUs.
    pub bytes: u64,
    /// Protocol of a rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Remote ports of a rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<String>,
    /// Local ports a rule is limited to (DHCP's client ports, an inbound operator rule's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_ports: Option<String>,
    /// Networks of a rule: `"any"` or a list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networks: Option<serde_json::Value>,
}

impl CounterStatus {
    /// The table cells of what the counter's rule matches, as `status` and `status --watch`
    /// print them: direction, protocol, ports, networks.
    pub fn match_cells(&self) -> [String; 4] {
        let direction = if self.direction == "ingress" {
            "in"
        } else {
            "out"
        };
        let ports = match (&self.ports, &self.local_ports) {
            (Some(ports), Some(local)) => format!("{ports} (local {local})"),
            (Some(ports), None) => ports.clone(),
            (None, _) => "-".into(),
        };
        [
            direction.to_owned(),
            self.protocol.clone().unwrap_or_else(|| "-".into()),
            ports,
            self.networks
                .as_ref()
                .map_or_else(|| "-".into(), loader::networks_text),
        ]
    }
}

/// The status of the filter `a`. Its mode, flow limits and drop-log rate are all read from what
/// the kernel enforces: the config entry its programs read at every packet (`mode`, the
/// timeouts, `log_rate`) and the size of its flow map. The record (`a.meta`) says what the
/// attach asked for; status shows what is in force.
fn interface_status(a: &Attached) -> anyhow::Result<InterfaceStatus> {
    let config = a.config()?;
    let mode = FilterMode::from_config(config.mode).ok_or_else(|| {
        anyhow!(
            "the filter on {} runs in mode {}, which this gotofw does not know: run the gotofw that attached it, or detach it and attach it again",
            a.meta.interface,
            config.mode
        )
    })?;
    let stateful = mode == FilterMode::Stateful;
    // Every filter with an egress hook counts there (stateful and stateless mode).
    let directions: &[Direction] = if stateful || a.meta.egress_hook.is_some() {
        &[Direction::Ingress, Direction::Egress]
    } else {
        &[Direction::Ingress]
    };
    let mut counters = Vec::new();
    for &direction in directions {
        push_counters(a, direction, &mut counters);
    }
    let health = liveness::of(a);
    let flows = if stateful {
        let entries = a.flows(loader::monotonic_coarse_ns())?;
        let limits = flow_limits(a, &config)?;
        Some(FlowSummary {
            table_size: limits.table_size,
            entries: entries.len(),
            live: entries.iter().filter(|e| e.alive).count(),
            limits: Some(limits),
        })
    } else {
        None
    };
    Ok(InterfaceStatus {
        interface: a.meta.interface.clone(),
        key: a
            .dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        ifindex: a.meta.ifindex,
        netns: a.meta.netns,
        present: health.present,
        filtering: health.filtering(),
        state: health.state,
        state_detail: health.detail,
        scenario: a.meta.scenario.clone(),
        mode,
        xdp_mode: a.meta.xdp_mode,
        link: crate::link_type::link_name(config.link),
        egress_hook: a.meta.egress_hook,
        log_rate: config.log_rate,
        log_samples_lost: a.log_samples_lost()?,
        attached_at: a.meta.attached_at,
        pin_dir: a.dir.display().to_string(),
        flows,
        counters,
        dns: dns_status(a)?,
    })
}

/// What the domain rules of `a` learned: its DNS statistics and learned table.
fn dns_status(a: &Attached) -> anyhow::Result<DnsStatus> {
    let map = a.learned_map()?;
    Ok(DnsStatus::new(
        a.meta.domain_sets.iter().map(|s| s.name.clone()).collect(),
        &a.dns_stats()?,
        &map.entries(),
        map.max_entries(),
        loader::monotonic_coarse_ns(),
    ))
}

/// The flow limits the kernel holds `a` to: the timeouts of its config entry and the size of its
/// flow map.
fn flow_limits(a: &Attached, config: &Config) -> anyhow::Result<FlowLimits> {
    let flows = a.dir.join(pin::FLOWS);
    let table_size = MapData::from_pin(&flows)
        .and_then(|map| map.info())
        .with_context(|| format!("reading the size of {}", flows.display()))?
        .max_entries();
    Ok(FlowLimits {
        table_size,
        udp_timeout: config.udp_timeout,
        tcp_established_timeout: config.tcp_established_timeout,
        tcp_transitory_timeout: config.tcp_transitory_timeout,
    })
}

impl InterfaceStatus {
    /// The state as `status` prints it: `filtering`, or `NOT FILTERING: STATE (DETAIL)`.
    pub fn state_text(&self) -> String {
        if self.filtering {
            "filtering".to_owned()
        } else if self.state_detail.is_empty() {
            format!("NOT FILTERING: {}", self.state.name())
        } else {
            format!(
                "NOT FILTERING: {} ({})",
                self.state.name(),
                self.state_detail
            )
        }
    }
}

/// Flow table figures (stateful mode).
#[derive(Debug, Serialize)]
pub struct FlowSummary {
    /// Most flows the table holds.
    pub table_size: u32,
    /// Entries in the table, live or expired (expired ones go when the table needs room).
    pub entries: usize,
    /// Entries not idle past their timeout.
    pub live: usize,
    /// Table size and timeouts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<FlowLimits>,
}

fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Ingress => "ingress",
        Direction::Egress => "egress",
    }
}

fn push_counters(a: &Attached, direction: Direction, counters: &mut Vec<CounterStatus>) {
    let dir = direction_name(direction);
    for (i, rule) in a.meta.rules.iter().enumerate() {
        let c = a.counter(direction, rule_slot(i as u32));
        counters.push(CounterStatus {
            name: rule.name.clone(),
            kind: rule.kind.name().to_owned(),
            action: rule.action.clone(),
            direction: dir,
            packets: c.packets,
            bytes: c.bytes,
            protocol: Some(rule.protocol.clone()),
            ports: Some(rule.ports.clone()),
            local_ports: Some(rule.local_ports.clone()).filter(|p| !p.is_empty()),
            networks: Some(rule.networks.clone()),
        });
    }
    for f in &FIXED {
        if let Some(allowance) = f.allowance
            && !a.meta.allowances.iter().any(|n| n == allowance.name())
        {
            continue;
        }
        let c = a.counter(direction, f.slot);
        counters.push(CounterStatus {
            name: f.name.to_owned(),
            kind: if f.allowance.is_some() {
                "allowance"
            } else {
                "fixed"
            }
            .to_owned(),
            action: f.action.to_string(),
            direction: dir,
            packets: c.packets,
            bytes: c.bytes,
            protocol: None,
            ports: None,
            local_ports: None,
            networks: None,
        });
    }
}

/// Reads the status of `iface`, or of every attached interface.
pub fn collect(iface: Option<&str>) -> anyhow::Result<Status> {
    let keys = loader::attached_keys()?;
    let (names, other_namespaces) = match iface {
        Some(name) => {
            if !system::key_dir(&system::key_for(name)?)?.exists() {
                return Err(UsageError::NotAttached(name.to_owned()).into());
            }
            (vec![name.to_owned()], Vec::new())
        }
        None => (
            system::own_interfaces(keys.iter().cloned()),
            system::foreign_keys(keys),
        ),
    };
    let mut interfaces = Vec::new();
    for name in names {
        let attached = loader::read_attached(&name)?;
        interfaces.push(interface_status(&attached)?);
    }
    Ok(Status {
        version: 1,
        interfaces,
        other_namespaces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{Compiled, Mode};

    /// Status reads the mode back from the config entry: each mode compiles to a value that
    /// reads back as that mode, and a value no mode compiles to is refused.
    #[test]
    fn the_config_entry_names_the_mode() {
        for mode in [
            Mode::Stateful(FlowLimits::default()),
            Mode::Stateless,
            Mode::IngressOnly,
        ] {
            let compiled = Compiled::with_mode(&[], 0, &mode).unwrap();
            assert_eq!(
                FilterMode::from_config(compiled.config.mode),
                Some(FilterMode::from(&mode)),
                "{mode:?}"
            );
        }
        assert_eq!(FilterMode::from_config(3), None);
    }
}
