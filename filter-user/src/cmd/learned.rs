//! `gotofw learned`: the addresses the domain rules of attached filters learned from DNS
//! answers (issue 13), with the set and pattern that taught each, its time to expiry, the TTL
//! the answer gave and the live flows that use it.

use std::{collections::HashMap, fmt::Write as _};

use serde::Serialize;

pub use crate::learned_model::LearnedAddress;
use crate::{
    cli::LearnedArgs,
    error::UsageError,
    learned_model::{live_flows, rows},
    loader::{self, Attached, learned::learned_sets},
    output::{json, print, table},
    system,
};

/// `learned --json`, documented in the README.
#[derive(Debug, Serialize)]
pub struct Learned {
    /// Format version.
    pub version: u32,
    /// One entry per filter of this network namespace.
    pub interfaces: Vec<InterfaceLearned>,
}

/// What the filter of one interface learned.
#[derive(Debug, Serialize)]
pub struct InterfaceLearned {
    /// Interface name.
    pub interface: String,
    /// The domain sets its rules name, in set order (empty: no domain rules, nothing learned).
    pub domain_sets: Vec<String>,
    /// Most addresses its learned table holds (the least recently used go first).
    pub table_size: u32,
    /// One entry per (address, set), by address then set.
    pub learned: Vec<LearnedAddress>,
}

/// What the filter `attached` learned, at `now`.
fn of(attached: &Attached, now: u64, all: bool) -> anyhow::Result<InterfaceLearned> {
    let map = attached.learned_map()?;
    let sets = learned_sets(&map.entries());
    let flows = if sets.is_empty() {
        HashMap::new()
    } else {
        live_flows(attached, now)?
    };
    Ok(InterfaceLearned {
        interface: attached.meta.interface.clone(),
        domain_sets: attached
            .meta
            .domain_sets
            .iter()
            .map(|s| s.name.clone())
            .collect(),
        table_size: map.max_entries(),
        learned: rows(&attached.meta, &sets, &flows, now, all),
    })
}

/// Reads what the filter of `iface`, or every filter of this namespace, learned.
pub fn collect(iface: Option<&str>, all: bool) -> anyhow::Result<Learned> {
    let names = match iface {
        Some(name) => {
            if !system::key_dir(&system::key_for(name)?)?.exists() {
                return Err(UsageError::NotAttached(name.to_owned()).into());
            }
            vec![name.to_owned()]
        }
        None => system::own_interfaces(loader::attached_keys()?),
    };
    let mut interfaces = Vec::new();
    for name in names {
        let attached = loader::read_attached(&name)?;
        crate::liveness::note_if_broken(&attached);
        interfaces.push(of(&attached, loader::monotonic_coarse_ns(), all)?);
    }
    Ok(Learned {
        version: 1,
        interfaces,
    })
}

/// `learned` as a table.
pub fn render(learned: &Learned) -> String {
    let mut out = String::new();
    if learned.interfaces.is_empty() {
        out.push_str("no gotofw filter in this network namespace\n");
    }
    for i in &learned.interfaces {
        if i.domain_sets.is_empty() && i.learned.is_empty() {
            let _ = writeln!(
                out,
                "{}: no domain rules (nothing is learned; see --https-to domains and [[rules]] domains)",
                i.interface
            );
            continue;
        }
        let _ = writeln!(
            out,
            "{}: {} learned (sets {}; table of {})",
            i.interface,
            i.learned.len(),
            i.domain_sets.join(", "),
            i.table_size
        );
        if i.learned.is_empty() {
            continue;
        }
        let mut rows = vec![
            [
                "ADDRESS", "SET", "PATTERN", "EXPIRES", "TTL", "LEARNED", "FLOWS",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for l in &i.learned {
            rows.push(vec![
                l.address.clone(),
                l.set.clone(),
                l.pattern.clone(),
                if l.expired {
                    "expired".to_owned()
                } else {
                    format!("in {:.0}s", l.expires_in.ceil())
                },
                format!("{}s", l.ttl),
                format!("{:.0}s ago", l.learned_ago.floor()),
                l.flows.to_string(),
            ]);
        }
        out.push_str(&table(&rows));
    }
    out
}

/// Runs the command.
pub fn run(args: &LearnedArgs) -> anyhow::Result<()> {
    system::require_capabilities()?;
    let learned = collect(args.iface.as_deref(), args.all)?;
    if args.json {
        return Ok(print(&json(&learned)?)?);
    }
    Ok(print(&render(&learned))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::{Meta, learned::LearnedSet, meta::DomainSetInfo};

    fn meta() -> Meta {
        let mut meta: Meta = serde_json::from_str(
            r#"{"version":3,"interface":"wan0","ifindex":3,"scenario":"tcp-443","mode":"stateful","xdp_mode":"generic","attached_at":0,"rules":[],"allowances":[]}"#,
        )
        .unwrap();
        meta.domain_sets = vec![
            DomainSetInfo {
                name: "goto".into(),
                patterns: vec!["*.goto.com".into(), "*.goto-rtc.com".into()],
            },
            DomainSetInfo {
                name: "mine".into(),
                patterns: vec!["api.example.org".into()],
            },
        ];
        meta
    }

    fn set(addr: &str, set: usize, pattern: u16, expires_ns: u64) -> LearnedSet {
        LearnedSet {
            addr: addr.parse().unwrap(),
            set,
            pattern,
            expires_ns,
            learned_ns: 1_000_000_000,
            ttl: 30,
        }
    }

    /// Rows name the set and pattern by the record, count the live flows to the address, and
    /// leave expired pairs out unless asked for.
    #[test]
    fn rows_name_sets_and_patterns_and_hide_expired_ones() {
        let now = 10_000_000_000;
        let sets = [
            set("198.51.100.7", 0, 1, 40_000_000_000),
            set("198.51.100.7", 1, 0, 5_000_000_000),
            set("2001:db8::7", 3, 9, 20_500_000_000),
        ];
        let flows = HashMap::from([("198.51.100.7".parse().unwrap(), 2)]);
        let shown = rows(&meta(), &sets, &flows, now, false);
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert_eq!(
            (shown[0].set.as_str(), shown[0].pattern.as_str()),
            ("goto", "*.goto-rtc.com")
        );
        assert!((shown[0].expires_in - 30.0).abs() < 1e-9, "{shown:?}");
        assert!((shown[0].learned_ago - 9.0).abs() < 1e-9, "{shown:?}");
        assert_eq!(shown[0].flows, 2);
        assert_eq!(shown[1].address, "2001:db8::7");
        assert_eq!(
            (shown[1].set.as_str(), shown[1].pattern.as_str()),
            ("set-3", "pattern-9")
        );
        assert_eq!(shown[1].flows, 0);
        let every = rows(&meta(), &sets, &flows, now, true);
        assert_eq!(every.len(), 3);
        assert!(every[1].expired && every[1].expires_in == 0.0, "{every:?}");
        assert_eq!(every[1].pattern, "api.example.org");

        let text = render(&Learned {
            version: 1,
            interfaces: vec![InterfaceLearned {
                interface: "wan0".into(),
                domain_sets: vec!["goto".into(), "mine".into()],
                table_size: 4096,
                learned: every,
            }],
        });
        assert!(
            text.starts_with("wan0: 3 learned (sets goto, mine; table of 4096)\n"),
            "{text}"
        );
        let line = |addr: &str, set: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(addr) && l.contains(set))
                .unwrap_or_else(|| panic!("{addr} {set} in:\n{text}"))
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            line("198.51.100.7", "goto"),
            "198.51.100.7 goto *.goto-rtc.com in 30s 30s 9s ago 2"
        );
        assert_eq!(
            line("198.51.100.7", "mine"),
            "198.51.100.7 mine api.example.org expired 30s 9s ago 2"
        );
    }

    #[test]
    fn a_filter_without_domain_rules_says_so() {
        let text = render(&Learned {
            version: 1,
            interfaces: vec![InterfaceLearned {
                interface: "wan0".into(),
                domain_sets: Vec::new(),
                table_size: 1,
                learned: Vec::new(),
            }],
        });
        assert!(text.starts_with("wan0: no domain rules"), "{text}");
    }
}
