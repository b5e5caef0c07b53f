//! Compiles a rule list into the contents of the kernel's lookup maps, and runs the classifier on
//! the host over exactly those contents.

use std::collections::{BTreeMap, HashMap};

use filter_common::{
    Config, FragKey, FragVerdict, Ipv4Key, Ipv6Key, MAX_RULES, MODE_STATELESS, PORT_TABLE_LOCAL,
    PORT_TABLE_REMOTE, Tables, port_index,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::scenario::{Action, Networks, Rule};

/// What the kernel maps hold for one rule set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compiled {
    /// Non-zero entries of the port map, by index.
    pub ports: BTreeMap<u32, u64>,
    /// IPv4 LPM entries: each prefix with the mask of every rule whose networks contain it.
    pub nets_v4: BTreeMap<Ipv4Net, u64>,
    /// IPv6 LPM entries, likewise.
    pub nets_v6: BTreeMap<Ipv6Net, u64>,
    /// The config entry.
    pub config: Config,
}

/// Too many rules for the engine.
#[derive(Debug, thiserror::Error)]
#[error("{0} rules exceed the engine's maximum of {MAX_RULES}")]
pub struct TooManyRules(pub usize);

impl Compiled {
    /// Compiles `rules` (first match first) with the fixed allowances `allowances`.
    pub fn new(rules: &[Rule], allowances: u32) -> Result<Self, TooManyRules> {
        if rules.len() > MAX_RULES {
            return Err(TooManyRules(rules.len()));
        }
        let mut out = Self {
            config: Config {
                allowances,
                mode: MODE_STATELESS,
                ..Config::default()
            },
            ..Self::default()
        };
        let mut raw_v4: HashMap<Ipv4Net, u64> = HashMap::new();
        let mut raw_v6: HashMap<Ipv6Net, u64> = HashMap::new();
        for (i, rule) in rules.iter().enumerate() {
            let bit = 1u64 << i;
            if rule.action == Action::Allow {
                out.config.allow_mask |= bit;
            }
            for proto in &rule.protocols {
                for range in &rule.remote_ports {
                    for port in range.first..=range.last {
                        *out.ports
                            .entry(port_index(PORT_TABLE_REMOTE, proto.index(), port))
                            .or_default() |= bit;
                    }
                }
                for range in &rule.local_ports {
                    for port in range.first..=range.last {
                        *out.ports
                            .entry(port_index(PORT_TABLE_LOCAL, proto.index(), port))
                            .or_default() |= bit;
                    }
                }
            }
            if !rule.local_ports.is_empty() {
                out.config.local_port_mask |= bit;
            }
            match &rule.networks {
                Networks::Any => out.config.any_mask |= bit,
                Networks::List(nets) => {
                    for net in nets {
                        match net {
                            IpNet::V4(n) => *raw_v4.entry(n.trunc()).or_default() |= bit,
                            IpNet::V6(n) => *raw_v6.entry(n.trunc()).or_default() |= bit,
                        }
                    }
                }
            }
        }
        // A longest-prefix match returns one entry, so each prefix must carry the bits of every
        // shorter prefix that contains it.
        out.nets_v4 = fold(&raw_v4, Ipv4Net::supernet);
        out.nets_v6 = fold(&raw_v6, Ipv6Net::supernet);
        Ok(out)
    }

    /// The classifier's tables over these contents, for host-side classification.
    pub fn tables(&self) -> SoftTables<'_> {
        SoftTables {
            compiled: self,
            fragments: HashMap::new(),
        }
    }
}

fn fold<N: Copy + Ord + std::hash::Hash>(
    raw: &HashMap<N, u64>,
    supernet: impl Fn(&N) -> Option<N>,
) -> BTreeMap<N, u64> {
    raw.keys()
        .map(|net| {
            let mut mask = raw[net];
            let mut cur = supernet(net);
            while let Some(up) = cur {
                if let Some(m) = raw.get(&up) {
                    mask |= m;
                }
                cur = supernet(&up);
            }
            (*net, mask)
        })
        .collect()
}

/// The kernel's lookups, done on the host over the compiled contents (longest-prefix match by
/// scanning); holds the fragment verdicts a caller chooses to remember.
#[derive(Debug)]
pub struct SoftTables<'a> {
    compiled: &'a Compiled,
    /// Remembered first-fragment verdicts.
    pub fragments: HashMap<FragKey, FragVerdict>,
}

impl Tables for SoftTables<'_> {
    fn port_mask(&self, index: u32) -> u64 {
        self.compiled.ports.get(&index).copied().unwrap_or(0)
    }

    fn config(&self) -> Config {
        self.compiled.config
    }

    fn net_mask_v4(&self, addr: Ipv4Key) -> u64 {
        let addr = std::net::Ipv4Addr::from(addr);
        self.compiled
            .nets_v4
            .iter()
            .filter(|(net, _)| net.contains(&addr))
            .max_by_key(|(net, _)| net.prefix_len())
            .map_or(0, |(_, m)| *m)
    }

    fn net_mask_v6(&self, addr: Ipv6Key) -> u64 {
        let addr = std::net::Ipv6Addr::from(addr);
        self.compiled
            .nets_v6
            .iter()
            .filter(|(net, _)| net.contains(&addr))
            .max_by_key(|(net, _)| net.prefix_len())
            .map_or(0, |(_, m)| *m)
    }

    fn fragment(&self, key: &FragKey) -> Option<FragVerdict> {
        self.fragments.get(key).copied()
    }
}

#[cfg(test)]
mod tests {
    use filter_common::PROTO_IDX_UDP;

    use super::*;
    use crate::scenario::{Options, PortRange, Protocol, RuleKind, Scenario};

    fn rule(name: &str, nets: &[&str]) -> Rule {
        Rule {
            name: name.into(),
            kind: RuleKind::Scenario,
            action: Action::Allow,
            protocols: vec![Protocol::Udp],
            remote_ports: vec![PortRange::one(3478)],
            local_ports: Vec::new(),
            networks: Networks::List(nets.iter().map(|n| n.parse().unwrap()).collect()),
            description: String::new(),
        }
    }

    #[test]
    fn nested_prefixes_carry_the_bits_of_their_supernets() {
        let rules = [
            rule("a", &["198.51.100.0/24"]),
            rule("b", &["198.51.100.128/25", "2001:db8::/32"]),
            rule("c", &["198.51.0.0/16"]),
        ];
        let c = Compiled::new(&rules, 0).unwrap();
        assert_eq!(c.nets_v4[&"198.51.100.0/24".parse().unwrap()], 0b101);
        assert_eq!(c.nets_v4[&"198.51.100.128/25".parse().unwrap()], 0b111);
        assert_eq!(c.nets_v4[&"198.51.0.0/16".parse().unwrap()], 0b100);
        assert_eq!(c.nets_v6.len(), 1);
        let t = c.tables();
        assert_eq!(t.net_mask_v4([198, 51, 100, 200]), 0b111);
        assert_eq!(t.net_mask_v4([198, 51, 100, 1]), 0b101);
        assert_eq!(t.net_mask_v4([198, 51, 7, 1]), 0b100);
        assert_eq!(t.net_mask_v4([192, 0, 2, 1]), 0);
    }

    #[test]
    fn port_ranges_fill_every_port_and_no_other() {
        let c = Compiled::new(&Options::new(Scenario::NoRestrictions).rules(), 0).unwrap();
        let t = c.tables();
        let udp = |p| t.port_mask(port_index(PORT_TABLE_REMOTE, PROTO_IDX_UDP, p));
        assert_eq!(udp(44_999), 0);
        assert_eq!(udp(45_000), 1);
        assert_eq!(udp(49_999), 1);
        assert_eq!(udp(50_000), 0);
        assert_ne!(udp(53), 0);
    }

    #[test]
    fn too_many_rules_is_an_error() {
        let rules: Vec<Rule> = (0..=MAX_RULES).map(|i| rule(&i.to_string(), &[])).collect();
        assert!(Compiled::new(&rules, 0).is_err());
        assert!(Compiled::new(&rules[..MAX_RULES], 0).is_ok());
    }
}
