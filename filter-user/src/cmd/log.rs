//! `gotofw log`: the drop log, live. The kernel samples dropped packets (at most `--log-rate`
//! per second and CPU, so a flood cannot hurt) into a ring buffer; this prints them.

use std::{
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::maps::{Map, MapData, MapInfo, RingBuf};
use filter_common::{Direction, DropEvent, ipproto, names::pin};
use serde::Serialize;

use crate::{
    cli::LogArgs,
    error::UsageError,
    loader::{self, monotonic_coarse_ns},
    output::print,
    slots::slot_name,
    system::{self, InterfaceLock},
};

/// One sample, as `--json` prints it (one object per line).
#[derive(Debug, Serialize)]
pub struct Sample {
    /// Wall-clock time, UTC.
    pub time: String,
    /// The interface.
    pub interface: String,
    /// `ingress` (from the WAN) or `egress`.
    pub direction: &'static str,
    /// `tcp`, `udp`, `icmp`, `icmpv6`, another protocol number, or `non-ip`.
    pub protocol: String,
    /// Source address and port (port 0 when it has none).
    pub src: String,
    /// Destination address and port.
    pub dst: String,
    /// The rule or slot that dropped it.
    pub rule: String,
    /// For a drop in slot `not-learned`: the domain rule that wanted a learned address, and its
    /// sets (`https: domains goto`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain_rule: Option<String>,
    /// Frame length.
    pub bytes: u32,
}

fn addr(bytes: [u8; 16], family: u8) -> Option<IpAddr> {
    match family {
        4 => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        6 => Some(IpAddr::V6(Ipv6Addr::from(bytes))),
        _ => None,
    }
}

/// A domain rule of a filter, as the drop log names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainRule {
    /// Rule name.
    pub name: String,
    /// IP protocols it matches.
    pub protocols: Vec<u8>,
    /// Remote port ranges it matches (inclusive).
    pub ports: Vec<(u16, u16)>,
    /// Names of the domain sets it admits learned addresses of.
    pub sets: Vec<String>,
}

/// Port ranges as records write them (`443`, `45000-49999`, `80,443`); `None` if unreadable.
fn port_ranges(text: &str) -> Option<Vec<(u16, u16)>> {
    text.split(',')
        .map(|part| match part.split_once('-') {
            Some((lo, hi)) => Some((lo.trim().parse().ok()?, hi.trim().parse().ok()?)),
            None => part.trim().parse().ok().map(|p| (p, p)),
        })
        .collect()
}

/// The domain rules of a filter: the rules of `meta` whose bit is in `cfg.domain_mask` (the
/// kernel's own word on which are), with the sets `cfg.set_rules` gives each, named by `meta`.
pub fn domain_rules(meta: &loader::Meta, cfg: &filter_common::Config) -> Vec<DomainRule> {
    let mut out = Vec::new();
    for (i, rule) in meta.rules.iter().enumerate().take(64) {
        let bit = 1u64 << i;
        if cfg.domain_mask & bit == 0 {
            continue;
        }
        let sets = cfg
            .set_rules
            .iter()
            .enumerate()
            .filter(|(_, rules)| *rules & bit != 0)
            .map(|(set, _)| {
                meta.domain_sets
                    .get(set)
                    .map_or_else(|| format!("set-{set}"), |s| s.name.clone())
            })
            .collect();
        let protocols = rule
            .protocol
            .split('+')
            .filter_map(|p| match p {
                "tcp" => Some(ipproto::TCP),
                "udp" => Some(ipproto::UDP),
                _ => None,
            })
            .collect();
        out.push(DomainRule {
            name: rule.name.clone(),
            protocols,
            ports: port_ranges(&rule.ports).unwrap_or_default(),
            sets,
        });
    }
    out
}

/// What a drop in slot `not-learned` names: the first domain rule of `rules` whose protocol and
/// remote port match the event's, as `https: domains goto`.
pub fn not_learned_rule(e: &DropEvent, rules: &[DomainRule]) -> Option<String> {
    if e.slot != filter_common::slot::NOT_LEARNED {
        return None;
    }
    let port = if e.direction == Direction::Egress as u8 {
        e.dport
    } else {
        e.sport
    };
    rules
        .iter()
        .find(|r| {
            r.protocols.contains(&e.proto)
                && r.ports.iter().any(|&(lo, hi)| (lo..=hi).contains(&port))
        })
        .map(|r| format!("{}: domains {}", r.name, r.sets.join(", ")))
}

fn sample(
    e: &DropEvent,
    iface: &str,
    rules: &[String],
    domain: &[DomainRule],
    offset_ns: i128,
) -> Sample {
    let wall_ns = i128::from(e.time_ns) + offset_ns;
    let secs = u64::try_from(wall_ns / 1_000_000_000).unwrap_or(0);
    let millis = u64::try_from(wall_ns % 1_000_000_000 / 1_000_000).unwrap_or(0);
    let utc = system::format_utc(secs);
    let time = format!("{}.{millis:03} UTC", utc.trim_end_matches(" UTC"));
    let protocol = match (e.family, e.proto) {
        (0, _) => "non-ip".to_owned(),
        (_, ipproto::TCP) => "tcp".to_owned(),
        (_, ipproto::UDP) => "udp".to_owned(),
        (4, ipproto::ICMP) => "icmp".to_owned(),
        (6, ipproto::ICMPV6) => "icmpv6".to_owned(),
        (_, other) => format!("proto-{other}"),
    };
    let end = |a: [u8; 16], port: u16| {
        addr(a, e.family).map_or_else(
            || "-".to_owned(),
            |ip| SocketAddr::new(ip, port).to_string(),
        )
    };
    Sample {
        time,
        interface: iface.to_owned(),
        direction: if e.direction == Direction::Egress as u8 {
            "egress"
        } else {
            "ingress"
        },
        protocol,
        src: end(e.src, e.sport),
        dst: end(e.dst, e.dport),
        rule: slot_name(rules, e.slot),
        domain_rule: not_learned_rule(e, domain),
        bytes: e.len,
    }
}

/// The drop log being followed: its ring buffer, the ids of the maps it came with, and the
/// rule names that name its samples' slots.
struct Source {
    ring: RingBuf<MapData>,
    log_id: u32,
    meta_id: Option<u32>,
    names: Names,
}

/// What names a filter's samples: its rule names in match order, and its domain rules.
struct Names {
    rules: Vec<String>,
    domain: Vec<DomainRule>,
}

/// Id of the map pinned at `path`, or `None` when nothing (openable) is pinned there.
fn pinned_map_id(path: &Path) -> Option<u32> {
    MapInfo::from_pin(path).ok().map(|info| info.id())
}

/// The rule names of the filter of `iface`, and the id of the `meta` map they were read from
/// (taken first: a swap meanwhile shows as a new id at the next check).
fn rule_names(iface: &str, dir: &Path) -> anyhow::Result<(Option<u32>, Names)> {
    let meta_id = pinned_map_id(&dir.join(pin::META));
    let attached = loader::read_attached(iface)?;
    crate::liveness::note_if_broken(&attached);
    let cfg = attached.config()?;
    if cfg.log_rate == 0 {
        return Err(UsageError::LogOff(iface.to_owned()).into());
    }
    let rules = attached.meta.rules.iter().map(|r| r.name.clone()).collect();
    let domain = domain_rules(&attached.meta, &cfg);
    Ok((meta_id, Names { rules, domain }))
}

/// Opens the drop log of the filter of `iface`, pinned in `dir`.
fn open(iface: &str, dir: &Path) -> anyhow::Result<Source> {
    let (meta_id, names) = rule_names(iface, dir)?;
    let data = MapData::from_pin(dir.join(pin::LOG))
        .with_context(|| format!("opening {}/log", dir.display()))?;
    let log_id = data.info()?.id();
    let ring = RingBuf::try_from(Map::RingBuf(data))?;
    Ok(Source {
        ring,
        log_id,
        meta_id,
        names,
    })
}

/// Checks that the idle ring of `source` is still the drop log of the filter of `iface`, and
/// follows the filter's new one when it is not: a detach and a new attach replace the ring (and
/// the old one never fills again); a `--replace` or `set-scenario` may keep it but rename the
/// rules. Between a detach and the next attach there is none: that is said once, on standard
/// error, and the wait goes on.
fn follow(iface: &str, dir: &Path, source: &mut Source, detached: &mut bool) -> anyhow::Result<()> {
    match pinned_map_id(&dir.join(pin::LOG)) {
        Some(id) if id == source.log_id => {
            if pinned_map_id(&dir.join(pin::META)) != source.meta_id {
                match rule_names(iface, dir) {
                    Ok(names) => (source.meta_id, source.names) = names,
                    Err(e) if gone(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Some(_) => match open(iface, dir) {
            Ok(new) => {
                *source = new;
                *detached = false;
                eprintln!("gotofw log: {iface} has a new filter; following its drop log");
            }
            Err(e) if gone(&e) => {}
            Err(e) => return Err(e),
        },
        None => {
            if !*detached {
                *detached = true;
                eprintln!(
                    "gotofw log: the filter of {iface} was detached; waiting for the next attach"
                );
            }
        }
    }
    Ok(())
}

/// Whether `e` says the filter went while it was being read (the next check sees what follows).
fn gone(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref(), Some(UsageError::NotAttached(_)))
}

/// Runs the command.
pub fn run(args: &LogArgs) -> anyhow::Result<()> {
    system::require_capabilities()?;
    let iface = if let Some(name) = &args.iface {
        name.clone()
    } else {
        let mut own = system::own_interfaces(loader::attached_keys()?);
        match own.len() {
            1 => own.remove(0),
            0 => return Err(UsageError::NoFilters.into()),
            _ => return Err(UsageError::WhichInterface(own.join(", ")).into()),
        }
    };
    let key = system::key_for(&iface)?;
    let dir = system::key_dir(&key)?;
    // One reader per filter (a sample the ring hands one reader is gone for the others); the
    // filter's lock is not taken, so commands on the interface go on meanwhile.
    let _reader =
        InterfaceLock::try_acquire_log_reader(&key)?.map_err(|pid| UsageError::LogBusy {
            iface: iface.clone(),
            holder: pid.map_or_else(
                || "its pid not written yet".to_owned(),
                |p| format!("pid {p}"),
            ),
        })?;
    let mut source = open(&iface, &dir)?;
    // Kernel times are CLOCK_MONOTONIC_COARSE; this maps them to wall-clock time.
    let wall = i128::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos(),
    )?;
    let offset_ns = wall - i128::from(monotonic_coarse_ns());
    let deadline = args
        .timeout
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let mut seen = 0u64;
    let mut detached = false;
    loop {
        let mut out = String::new();
        let mut read = 0u64;
        while let Some(item) = source.ring.next() {
            read += 1;
            if item.len() < size_of::<DropEvent>() {
                continue;
            }
            // SAFETY: the kernel writes whole `DropEvent`s; read unaligned to be safe.
            let event = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<DropEvent>()) };
            let s = sample(
                &event,
                &iface,
                &source.names.rules,
                &source.names.domain,
                offset_ns,
            );
            if args.json {
                let _ = writeln!(out, "{}", serde_json::to_string(&s)?);
            } else {
                let _ = writeln!(
                    out,
                    "{}  {:<3}  {:<6}  {} -> {}  {}  {} bytes",
                    s.time,
                    if s.direction == "egress" { "out" } else { "in" },
                    s.protocol,
                    s.src,
                    s.dst,
                    s.domain_rule
                        .as_ref()
                        .map_or_else(|| s.rule.clone(), |d| format!("{} ({d})", s.rule)),
                    s.bytes
                );
            }
            seen += 1;
            if args.count.is_some_and(|n| seen >= n) {
                break;
            }
        }
        print(&out)?;
        if args.count.is_some_and(|n| seen >= n) || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(());
        }
        if read == 0 {
            follow(&iface, &dir, &mut source, &mut detached)?;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use filter_common::{Config, FIXED_SLOTS, slot};

    use super::*;
    use crate::loader::meta::{DomainSetInfo, Meta, RuleInfo};

    fn rule(name: &str, protocol: &str, ports: &str) -> RuleInfo {
        RuleInfo {
            name: name.into(),
            kind: crate::rule::RuleKind::Scenario,
            action: "allow".into(),
            protocol: protocol.into(),
            ports: ports.into(),
            local_ports: String::new(),
            networks: serde_json::Value::String("any".into()),
            description: String::new(),
        }
    }

    fn event(slot: u32, direction: Direction, proto: u8, dport: u16) -> DropEvent {
        DropEvent {
            time_ns: 0,
            len: 60,
            slot,
            direction: direction as u8,
            family: 4,
            proto,
            _pad: 0,
            sport: 50_000,
            dport,
            src: [192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            dst: [198, 51, 100, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        }
    }

    /// A not-learned drop names the first domain rule whose protocol and port match, with the
    /// sets the kernel's config gives it; a rule that is not a domain rule is never named.
    #[test]
    fn a_not_learned_drop_names_its_domain_rule() {
        let mut meta: Meta = serde_json::from_str(
            r#"{"version":3,"interface":"wan0","ifindex":3,"scenario":"tcp-443","mode":"stateful","xdp_mode":"generic","attached_at":0,"rules":[],"allowances":[]}"#,
        )
        .unwrap();
        meta.rules = vec![
            rule("dns", "tcp+udp", "53"),
            rule("https", "tcp", "443"),
            rule("turn", "tcp+udp", "3478,5000-5010"),
            rule("https-too", "tcp", "443"),
        ];
        meta.domain_sets = vec![
            DomainSetInfo {
                name: "goto".into(),
                patterns: vec!["*.goto.com".into()],
            },
            DomainSetInfo {
                name: "mine".into(),
                patterns: vec!["api.example.org".into()],
            },
        ];
        let mut cfg = Config {
            domain_sets: 2,
            domain_mask: 0b1110,
            ..Config::default()
        };
        cfg.set_rules[0] = 0b1010;
        cfg.set_rules[1] = 0b1100;
        let rules = domain_rules(&meta, &cfg);
        assert_eq!(
            rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["https", "turn", "https-too"]
        );
        let named = |e: DropEvent| not_learned_rule(&e, &rules);
        let nl = slot::NOT_LEARNED;
        assert_eq!(
            named(event(nl, Direction::Egress, ipproto::TCP, 443)).as_deref(),
            Some("https: domains goto")
        );
        assert_eq!(
            named(event(nl, Direction::Egress, ipproto::UDP, 5005)).as_deref(),
            Some("turn: domains mine")
        );
        assert_eq!(named(event(nl, Direction::Egress, ipproto::UDP, 443)), None);
        assert_eq!(
            named(event(
                slot::DEFAULT_BLOCK,
                Direction::Egress,
                ipproto::TCP,
                443
            )),
            None
        );
        let s = sample(
            &event(nl, Direction::Egress, ipproto::TCP, 443),
            "wan0",
            &meta
                .rules
                .iter()
                .map(|r| r.name.clone())
                .collect::<Vec<_>>(),
            &rules,
            0,
        );
        assert_eq!(s.rule, "not-learned");
        assert_eq!(s.domain_rule.as_deref(), Some("https: domains goto"));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["domain_rule"], "https: domains goto", "{json}");
        let s = sample(
            &event(FIXED_SLOTS + 1, Direction::Egress, ipproto::TCP, 443),
            "wan0",
            &["dns".to_owned(), "https".to_owned()],
            &rules,
            0,
        );
        assert!(
            serde_json::to_value(&s)
                .unwrap()
                .get("domain_rule")
                .is_none()
        );
        assert_eq!(
            port_ranges("443,45000-49999"),
            Some(vec![(443, 443), (45000, 49999)])
        );
        assert_eq!(port_ranges("x"), None);
    }
}
