//! Compiles a rule list into the contents of the kernel's lookup maps, and runs the classifier on
//! the host over exactly those contents.

use std::{
    cell::{Cell, RefCell, RefMut},
    collections::{BTreeMap, HashMap},
};

use filter_common::{
    Config, FlowHit, FlowKey, FlowValue, FragKey, FragVerdict, Ipv4Key, Ipv6Key, MAX_DOMAIN_SETS,
    MAX_NETWORKS, MAX_RULES, MODE_INGRESS_ONLY, MODE_STATEFUL, MODE_STATELESS, PORT_TABLE_LOCAL,
    PORT_TABLE_REMOTE, Tables, flow_alive,
    flow_cache::{self, CACHE_ENTRIES, CachedFlow, FlowMaps},
    learn::{self, AddrKey, DnsTables, DomainEntry, LearnedValue, QueryKey, QueryValue, TrieKey},
    port_index,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::{
    domain_sets::{Pattern, Table},
    error::UsageError,
    limits::{self, FLOW_MAP_MIN_ENTRIES},
    scenario::{Action, DomainOptions, Networks, Options, Rule},
};

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
    /// Entries of the flow map: the flow table's size in stateful mode, else
    /// [`FLOW_MAP_MIN_ENTRIES`] (the map must exist); never below that.
    pub flow_map_entries: u32,
    /// Entries of the domain trie: each pattern's key (its reversed labels,
    /// `domain_sets::pattern_key`) with the sets it stands for.
    pub domains: BTreeMap<Vec<u8>, DomainEntry>,
    /// Entries of the DNS server map (answers are learned only from these; none: any).
    pub dns_servers: Vec<AddrKey>,
    /// Entries of the learned-address map (0 without domain rules: the loader's minimum).
    pub learned_map_entries: u32,
    /// The domain sets the rules name, in set order (set `i` is bit `i`): each name with its
    /// patterns as written, which a learned address's pattern indices point into.
    pub domain_sets: Vec<(String, Vec<String>)>,
}

/// Limits of the stateful flow table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowLimits {
    /// Most flows held; when full, the least recently used go.
    pub table_size: u32,
    /// Idle seconds before a UDP flow expires.
    pub udp_timeout: u32,
    /// Idle seconds before an established TCP flow expires.
    pub tcp_established_timeout: u32,
    /// Idle seconds before a half-open or closing TCP flow expires.
    pub tcp_transitory_timeout: u32,
}

impl Default for FlowLimits {
    fn default() -> Self {
        Self {
            table_size: limits::FLOW_TABLE_SIZE.default,
            udp_timeout: limits::UDP_TIMEOUT.default,
            tcp_established_timeout: limits::TCP_TIMEOUT.default,
            tcp_transitory_timeout: limits::TCP_TRANSITORY_TIMEOUT.default,
        }
    }
}

/// How inbound traffic is admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Mode {
    /// Inbound packets must belong to a flow an allowed outbound packet opened (TC egress
    /// records flows, XDP admits them).
    Stateful(FlowLimits),
    /// Outbound packets are matched against the rules as written (TC egress), inbound ones
    /// against the mirrored rules (XDP); no flow is kept.
    Stateless,
    /// Inbound packets are matched against the mirrored rules (XDP); outbound traffic is not
    /// filtered, and there is no egress hook.
    #[serde(rename = "ingress-only")]
    IngressOnly,
}

impl Mode {
    /// `stateful`, `stateless` or `ingress-only`.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Stateful(_) => "stateful",
            Self::Stateless => "stateless",
            Self::IngressOnly => "ingress-only",
        }
    }

    /// Whether the egress program enforces the rules (every mode but ingress-only).
    pub const fn filters_egress(&self) -> bool {
        !matches!(self, Self::IngressOnly)
    }
}

/// Networks `rules` name in all, as [`check_capacity`] counts them: each rule's list, so that a
/// network two rules name counts twice.
pub fn network_count(rules: &[Rule]) -> usize {
    rules
        .iter()
        .map(|rule| match &rule.networks {
            Networks::Any | Networks::Domains(_) => 0,
            Networks::List(nets) => nets.len(),
        })
        .sum()
}

/// Checks that `rules` fit a filter: at most [`MAX_RULES`] rules naming at most
/// [`MAX_NETWORKS`] networks in all. Every command that builds a rule set (`attach`, `run`,
/// `reload`, `check-config`, `set-scenario`, `explain`) passes here, so they all accept the same.
pub fn check_capacity(rules: &[Rule]) -> Result<(), UsageError> {
    if rules.len() > MAX_RULES {
        return Err(UsageError::TooManyRules(rules.len()));
    }
    let networks = network_count(rules);
    if networks > MAX_NETWORKS {
        return Err(UsageError::TooManyNetworks(networks));
    }
    Ok(())
}

/// Checks the domain rules of `rules` for `mode`: they need stateful mode (the first one
/// found is named), and the resolvers they learn from must be single addresses.
pub fn check_domain_rules(
    rules: &[Rule],
    mode: &Mode,
    dns_servers: &[IpNet],
) -> Result<(), UsageError> {
    let Some(rule) = rules.iter().find(|r| r.networks.domain_sets().is_some()) else {
        return Ok(());
    };
    if !matches!(mode, Mode::Stateful(_)) {
        return Err(UsageError::DomainRulesNeedStateful {
            what: format!("rule '{}' ({})", rule.name, rule.networks),
            mode: mode.name(),
        });
    }
    if let Some(net) = dns_servers
        .iter()
        .find(|n| n.prefix_len() != n.max_prefix_len())
    {
        return Err(UsageError::DnsServerNetwork(*net));
    }
    Ok(())
}

/// The address of a host network as the kernel's maps key it.
fn addr_key(net: &IpNet) -> AddrKey {
    let (addr, family) = match net.addr() {
        std::net::IpAddr::V4(a) => {
            let mut addr = [0u8; 16];
            addr[..4].copy_from_slice(&a.octets());
            (addr, 4)
        }
        std::net::IpAddr::V6(a) => (a.octets(), 6),
    };
    AddrKey {
        addr,
        family,
        _pad: [0; 3],
    }
}

impl Compiled {
    /// Compiles the rules of `options` for `mode`: [`Compiled::with_mode`] with the options'
    /// allowances, domain sets and DNS servers.
    pub fn for_options(options: &Options, mode: &Mode) -> Result<Self, UsageError> {
        let rules = options.rules();
        let mut out = Self::with_mode(&rules, options.allowance_bits(), mode)?;
        out.add_domains(&rules, mode, &options.domains, &options.dns_servers)?;
        Ok(out)
    }

    /// Fills the domain parts from `rules`' domain destinations: the sets in order of first
    /// naming, the trie of their patterns, the rules each set admits, the resolvers learned from
    /// and the learning limits. Nothing when no rule has a domain destination.
    fn add_domains(
        &mut self,
        rules: &[Rule],
        mode: &Mode,
        domains: &DomainOptions,
        dns_servers: &[IpNet],
    ) -> Result<(), UsageError> {
        check_domain_rules(rules, mode, dns_servers)?;
        let mut names: Vec<&str> = Vec::new();
        for rule in rules {
            for set in rule.networks.domain_sets().unwrap_or_default() {
                if !names.contains(&set.as_str()) {
                    names.push(set);
                }
            }
        }
        if names.is_empty() {
            return Ok(());
        }
        if names.len() > MAX_DOMAIN_SETS {
            return Err(UsageError::TooManyDomainSets(names.len()));
        }
        let mut sets = Vec::new();
        for name in &names {
            let patterns = if let Some(patterns) = crate::domain_sets::builtin(name) {
                patterns
            } else {
                let Some(set) = domains.sets.iter().find(|s| s.name == *name) else {
                    let rule = rules
                        .iter()
                        .find(|r| {
                            r.networks
                                .domain_sets()
                                .is_some_and(|s| s.iter().any(|n| n == name))
                        })
                        .map_or_else(String::new, |r| r.name.clone());
                    return Err(UsageError::UnknownDomainSet {
                        rule,
                        set: (*name).to_owned(),
                    });
                };
                set.patterns
                    .iter()
                    .map(|p| {
                        Pattern::parse(p).map_err(|why| UsageError::BadDomainPattern {
                            set: set.name.clone(),
                            why,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?
            };
            sets.push(patterns);
        }
        for (i, rule) in rules.iter().enumerate() {
            if let Some(named) = rule.networks.domain_sets() {
                let bit = 1u64 << i;
                self.config.domain_mask |= bit;
                for (set, name) in names.iter().enumerate() {
                    if named.iter().any(|n| n == name) {
                        self.config.set_rules[set] |= bit;
                    }
                }
            }
        }
        self.domains = Table::of_patterns(&sets).domain_entries();
        self.domain_sets = names
            .iter()
            .zip(&sets)
            .map(|(name, patterns)| {
                (
                    (*name).to_owned(),
                    patterns.iter().map(Pattern::text).collect(),
                )
            })
            .collect();
        self.config.domain_sets = u32::try_from(names.len()).expect("at most 8 sets");
        self.dns_servers = dns_servers.iter().map(addr_key).collect();
        self.config.dns_servers =
            u32::try_from(self.dns_servers.len()).map_err(|_| UsageError::TooManyDnsServers)?;
        self.config.dns_ttl_min = domains.ttl_min;
        self.config.dns_ttl_max = domains.ttl_max;
        if domains.ttl_min > domains.ttl_max {
            return Err(UsageError::TtlRange {
                min: domains.ttl_min,
                max: domains.ttl_max,
            });
        }
        self.learned_map_entries = domains.table_size;
        Ok(())
    }

    /// Compiles `rules` (first match first) with the fixed allowances `allowances`, for stateless
    /// mode.
    pub fn new(rules: &[Rule], allowances: u32) -> Result<Self, UsageError> {
        Self::with_mode(rules, allowances, &Mode::Stateless)
    }

    /// Compiles `rules` (first match first) with the fixed allowances `allowances` for `mode`;
    /// refuses rule sets that do not fit a filter (see [`check_capacity`]).
    pub fn with_mode(rules: &[Rule], allowances: u32, mode: &Mode) -> Result<Self, UsageError> {
        check_capacity(rules)?;
        let mut config = Config {
            allowances,
            mode: MODE_STATELESS,
            armed: filter_common::ARMED,
            ..Config::default()
        };
        let mut flow_map_entries = FLOW_MAP_MIN_ENTRIES;
        if *mode == Mode::IngressOnly {
            config.mode = MODE_INGRESS_ONLY;
        }
        if let Mode::Stateful(limits) = mode {
            flow_map_entries = limits.table_size.max(FLOW_MAP_MIN_ENTRIES);
            config.mode = MODE_STATEFUL;
            config.udp_timeout = limits.udp_timeout;
            config.tcp_established_timeout = limits.tcp_established_timeout;
            config.tcp_transitory_timeout = limits.tcp_transitory_timeout;
            config.remote_mask = flow_cache::remote_entries(flow_map_entries) - 1;
        }
        let mut out = Self {
            config,
            flow_map_entries,
            ..Self::default()
        };
        let mut raw_v4: HashMap<Ipv4Net, u64> = HashMap::new();
        let mut raw_v6: HashMap<Ipv6Net, u64> = HashMap::new();
        for (i, rule) in rules.iter().enumerate() {
            let bit = 1u64 << i;
            if rule.action == Action::Allow {
                out.config.allow_mask |= bit;
            }
            if !matches!(mode, Mode::Stateful(_)) || rule.unsolicited_replies {
                out.config.ingress_mask |= bit;
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
                // Compiled by `add_domains`.
                Networks::Domains(_) => {}
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
            flows: RefCell::new(HashMap::new()),
            learned: RefCell::new(HashMap::new()),
            queries: RefCell::new(HashMap::new()),
            dns_stats: RefCell::new([0; learn::stat::ENTRIES as usize]),
            now: Cell::new(1),
            flow_cache: RefCell::new(Vec::new()),
            remotes: RefCell::new(Vec::new()),
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
    /// The flow table (stateful mode).
    pub flows: RefCell<HashMap<FlowKey, FlowValue>>,
    /// The learned addresses (domain rules).
    pub learned: RefCell<HashMap<AddrKey, LearnedValue>>,
    /// The DNS queries awaiting answers.
    pub queries: RefCell<HashMap<QueryKey, QueryValue>>,
    /// The DNS statistics, by [`learn::stat`] slot.
    pub dns_stats: RefCell<[u64; learn::stat::ENTRIES as usize]>,
    /// The clock flows are stamped with, in nanoseconds; the caller moves it.
    pub now: Cell<u64>,
    /// The flow cache of one CPU (empty: none; see [`SoftTables::with_fast_path`]).
    pub flow_cache: RefCell<Vec<CachedFlow>>,
    /// The remote summary (empty: none).
    pub remotes: RefCell<Vec<u32>>,
}

impl SoftTables<'_> {
    /// These tables with the kernel's fast flow path: a flow cache (of one CPU) and the remote
    /// summary in front of the flow table.
    #[must_use]
    pub fn with_fast_path(self) -> Self {
        let remotes = self.compiled.config.remote_mask as usize + 1;
        *self.flow_cache.borrow_mut() = vec![CachedFlow::default(); CACHE_ENTRIES as usize];
        *self.remotes.borrow_mut() = vec![0; remotes];
        self
    }
}

impl Tables for SoftTables<'_> {
    fn port_mask(&self, index: u32) -> u64 {
        self.compiled.ports.get(&index).copied().unwrap_or(0)
    }

    fn config(&self) -> &Config {
        &self.compiled.config
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

    fn flow_ingress(&self, cfg: &Config, key: &FlowKey, tcp_flags: u8, len: u64) -> FlowHit {
        flow_cache::ingress(self, cfg, key, tcp_flags, len)
    }

    fn flow_rebind(&self, cfg: &Config, key: &FlowKey, rule: u32, tcp_flags: u8, len: u64) {
        flow_cache::rebind(self, cfg, key, rule, tcp_flags, len);
    }

    fn flow_egress(
        &self,
        cfg: &Config,
        key: &FlowKey,
        rule: u32,
        generation: u32,
        tcp_flags: u8,
        len: u64,
    ) {
        flow_cache::egress(self, cfg, key, rule, generation, tcp_flags, len);
    }

    fn flow_peek(&self, cfg: &Config, key: &FlowKey) -> Option<u32> {
        let flows = self.flows.borrow();
        flows
            .get(key)
            .filter(|v| flow_alive(cfg, v, self.now.get()))
            .map(|v| v.rule)
    }

    fn flow_rule(&self, cfg: &Config, key: &FlowKey) -> Option<u32> {
        let flows = self.flows.borrow();
        flows
            .get(key)
            .filter(|v| flow_alive(cfg, v, self.now.get()) && v.generation == cfg.generation)
            .map(|v| v.rule)
    }

    fn learned_sets(&self, family: u8, addr: &[u8; 16]) -> u32 {
        let key = AddrKey {
            addr: *addr,
            family,
            _pad: [0; 3],
        };
        self.learned
            .borrow()
            .get(&key)
            .map_or(0, |v| learn::learned_sets(v, self.now.get()))
    }
}

/// The flow path's maps on the host: one CPU's flow cache and the remote summary when
/// [`SoftTables::with_fast_path`] switched them on (else none: every inbound packet goes to the
/// table, the plain model the kernel's cached path must agree with). A clock reading stands for
/// its tick: the kernel's clock moves only at ticks.
impl FlowMaps for SoftTables<'_> {
    type Cache<'a>
        = RefMut<'a, CachedFlow>
    where
        Self: 'a;
    type Flow<'a>
        = RefMut<'a, FlowValue>
    where
        Self: 'a;
    type Remote<'a>
        = RefMut<'a, u32>
    where
        Self: 'a;

    fn tick(&self) -> u64 {
        self.now.get()
    }

    fn clock(&self) -> (u64, u64) {
        (self.now.get(), self.now.get())
    }

    fn cache(&self, index: u32) -> Option<RefMut<'_, CachedFlow>> {
        RefMut::filter_map(self.flow_cache.borrow_mut(), |c| c.get_mut(index as usize)).ok()
    }

    fn flow(&self, key: &FlowKey) -> Option<RefMut<'_, FlowValue>> {
        RefMut::filter_map(self.flows.borrow_mut(), |f| f.get_mut(key)).ok()
    }

    fn insert_flow(&self, key: &FlowKey, value: &FlowValue) {
        self.flows.borrow_mut().insert(*key, *value);
    }

    fn remote(&self, index: u32) -> Option<RefMut<'_, u32>> {
        RefMut::filter_map(self.remotes.borrow_mut(), |r| r.get_mut(index as usize)).ok()
    }
}

/// The longest entry of `domains` that is a prefix of `key` (as the kernel's trie answers).
pub fn domain_lookup(
    domains: &BTreeMap<Vec<u8>, DomainEntry>,
    key: &TrieKey,
) -> Option<DomainEntry> {
    let len = ((key.prefix_len / 8) as usize).min(key.data.len());
    let name = key.data.get(..len)?;
    domains
        .iter()
        .filter(|(pattern, _)| name.starts_with(pattern))
        .max_by_key(|(pattern, _)| pattern.len())
        .map(|(_, entry)| *entry)
}

impl DnsTables for SoftTables<'_> {
    fn is_server(&self, addr: &AddrKey) -> bool {
        self.compiled.dns_servers.contains(addr)
    }

    fn domain(&self, key: &TrieKey) -> Option<DomainEntry> {
        domain_lookup(&self.compiled.domains, key)
    }

    fn record_query(&self, key: &QueryKey, value: &QueryValue) {
        self.queries.borrow_mut().insert(*key, *value);
    }

    fn take_query(&self, key: &QueryKey) -> Option<QueryValue> {
        self.queries.borrow_mut().remove(key)
    }

    fn learn(
        &self,
        addr: &AddrKey,
        entry: &DomainEntry,
        expires_ns: u64,
        ttl: u32,
        now: u64,
    ) -> bool {
        let mut learned = self.learned.borrow_mut();
        let value = learned.entry(*addr).or_default();
        learn::learned_merge(value, entry, expires_ns, ttl, now);
        true
    }

    fn count(&self, stat: u32) {
        if let Some(slot) = self.dns_stats.borrow_mut().get_mut(stat as usize) {
            *slot += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use filter_common::PROTO_IDX_UDP;

    use super::*;
    use crate::scenario::{Options, PortRange, Protocol, RuleKind, Scenario};

    /// The flow map's size is the flow table's in stateful mode and the token minimum
    /// otherwise, and never below it, whatever a filter's record says.
    #[test]
    fn the_flow_map_size_is_set_once_with_its_minimum() {
        let rules = Options::new(Scenario::Tcp443).rules();
        let entries = |mode: Mode| {
            Compiled::with_mode(&rules, 0, &mode)
                .unwrap()
                .flow_map_entries
        };
        assert_eq!(entries(Mode::Stateless), FLOW_MAP_MIN_ENTRIES);
        assert_eq!(entries(Mode::IngressOnly), FLOW_MAP_MIN_ENTRIES);
        assert_eq!(
            entries(Mode::Stateful(FlowLimits::default())),
            limits::FLOW_TABLE_SIZE.default
        );
        let from_record = FlowLimits {
            table_size: 0,
            ..FlowLimits::default()
        };
        assert_eq!(entries(Mode::Stateful(from_record)), FLOW_MAP_MIN_ENTRIES);
    }

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
            unsolicited_replies: false,
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
        let err = Compiled::new(&rules, 0).unwrap_err().to_string();
        assert!(err.contains("65 rules") && err.contains("64"), "{err}");
    }

    #[test]
    fn the_network_limit_counts_every_rule_s_list() {
        let nets = |range: std::ops::Range<u32>| -> Networks {
            Networks::List(
                range
                    .map(|i| IpNet::V4(Ipv4Net::new(i.into(), 32).unwrap()))
                    .collect(),
            )
        };
        let limit = u32::try_from(MAX_NETWORKS).unwrap();
        let mut a = rule("a", &[]);
        a.networks = nets(0..limit - 1);
        let mut b = rule("b", &[]);
        // A network both rules name counts twice.
        b.networks = nets(0..1);
        let mut rules = vec![a, b, rule("any", &[])];
        rules[2].networks = Networks::Any;
        assert_eq!(network_count(&rules), MAX_NETWORKS);
        assert!(check_capacity(&rules).is_ok());
        rules[1].networks = nets(0..2);
        let err = Compiled::new(&rules, 0).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{} networks", MAX_NETWORKS + 1))
                && err.contains(&MAX_NETWORKS.to_string()),
            "{err}"
        );
    }

    fn domain_options() -> Options {
        let mut opts = Options::new(Scenario::Tcp443);
        opts.https_to = crate::scenario::HttpsDst::Domains;
        opts.dns_servers = vec!["192.0.2.53/32".parse().unwrap()];
        opts
    }

    fn stateful() -> Mode {
        Mode::Stateful(FlowLimits::default())
    }

    /// `--https-to domains`: the https rule is a domain rule for the set `goto`, whose trie
    /// holds every pattern of GoTo's Table 1 (as `gotofw domains` lists it) with its index;
    /// the resolver, the TTL bounds and the learned table's size are the options'.
    #[test]
    fn https_to_domains_compiles_the_goto_set() {
        let c = Compiled::for_options(&domain_options(), &stateful()).unwrap();
        let https = 0;
        assert_eq!(c.config.domain_sets, 1);
        assert_eq!(c.config.domain_mask, 1 << https);
        assert_eq!(c.config.set_rules[0], 1 << https);
        assert_eq!(c.config.set_rules[1..], [0; MAX_DOMAIN_SETS - 1]);
        assert_eq!(c.config.any_mask & (1 << https), 0);
        assert_eq!(c.config.dns_servers, 1);
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&[192, 0, 2, 53]);
        assert_eq!(
            c.dns_servers,
            [AddrKey {
                addr,
                family: 4,
                _pad: [0; 3]
            }]
        );
        assert_eq!(c.config.dns_ttl_min, limits::DNS_TTL_MIN.default);
        assert_eq!(c.config.dns_ttl_max, limits::DNS_TTL_MAX.default);
        assert_eq!(c.learned_map_entries, limits::LEARNED_TABLE_SIZE.default);
        let essential: Vec<&crate::domains::Domain> = crate::domains::ALL
            .iter()
            .filter(|d| d.list == crate::domains::List::Essential)
            .collect();
        assert_eq!(c.domain_sets.len(), 1);
        assert_eq!(c.domain_sets[0].0, "goto");
        let listed: Vec<String> = essential.iter().map(|d| d.pattern()).collect();
        assert_eq!(c.domain_sets[0].1, listed);
        assert_eq!(c.domains.len(), essential.len());
        for (i, domain) in essential.iter().enumerate() {
            let entry = c.domains[&crate::domain_sets::pattern_key(domain)];
            assert_eq!(entry.sets, 1, "{domain}");
            assert_eq!(usize::from(entry.patterns[0]), i, "{domain}");
        }
        // Without domain rules nothing of it is compiled.
        let plain = Compiled::for_options(&Options::new(Scenario::Tcp443), &stateful()).unwrap();
        assert_eq!(plain.config.domain_sets, 0);
        assert_eq!(plain.config.domain_mask, 0);
        assert!(plain.domains.is_empty() && plain.dns_servers.is_empty());
        assert_eq!(plain.learned_map_entries, 0);
    }

    /// Two sets, one holding a pattern nested in the other's and one of its own nested in
    /// itself: each trie entry has the sets of every pattern that is a prefix of it, and per
    /// set the index of that set's longest such pattern.
    #[test]
    fn each_set_s_pattern_index_is_its_longest_match() {
        let mut opts = domain_options();
        opts.domains.sets = vec![
            crate::scenario::DomainSet {
                name: "office".into(),
                patterns: vec!["*.example.com".into(), "api.example.com".into()],
            },
            crate::scenario::DomainSet {
                name: "api".into(),
                patterns: vec!["*.eu.example.com".into(), "*.api.example.com".into()],
            },
        ];
        opts.operator_rules = vec![crate::operator::OperatorRule {
            name: "office-https".into(),
            direction: crate::operator::RuleDirection::Outbound,
            protocols: vec![Protocol::Tcp],
            ports: vec![PortRange::one(8443)],
            networks: None,
            domains: vec!["office".into(), "api".into()],
            action: Action::Allow,
            position: crate::operator::Position::Before,
            description: String::new(),
        }];
        let c = Compiled::for_options(&opts, &stateful()).unwrap();
        let names: Vec<&str> = c.domain_sets.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["office", "api", "goto"]);
        assert_eq!(c.config.domain_sets, 3);
        // office-https is rule 0 (before), https rule 1.
        assert_eq!(c.config.set_rules[..3], [0b01, 0b01, 0b10]);
        assert_eq!(c.config.domain_mask, 0b11);
        let lookup = |host: &str| {
            let name = crate::domain_sets::wire_name(host).unwrap();
            let mut key = TrieKey {
                prefix_len: 0,
                data: [0; filter_common::dns::MAX_NAME + 1],
            };
            let len = filter_common::dns::reversed_key(&name, &mut key.data);
            key.prefix_len = u32::try_from((len + 1) * 8).unwrap();
            domain_lookup(&c.domains, &key).map(|e| (e.sets, e.patterns))
        };
        // `*.api.example.com` holds for its apex too.
        let (sets, patterns) = lookup("api.example.com").unwrap();
        assert_eq!(sets, 0b011);
        assert_eq!(
            patterns[..2],
            [1, 1],
            "the exact pattern is office's longest"
        );
        let (sets, patterns) = lookup("x.api.example.com").unwrap();
        assert_eq!(sets, 0b011);
        assert_eq!(patterns[..2], [0, 1]);
        let (sets, patterns) = lookup("a.eu.example.com").unwrap();
        assert_eq!(sets, 0b011);
        assert_eq!(patterns[..2], [0, 0]);
        assert_eq!(lookup("www.example.com").map(|e| e.0), Some(0b001));
        assert_eq!(lookup("global.goto.com").map(|e| e.0), Some(0b100));
        assert_eq!(lookup("example.org"), None);
    }

    /// Domain rules need stateful mode and single resolver addresses, fit 8 sets, and name
    /// only sets that exist.
    #[test]
    fn domain_rules_outside_their_bounds_are_refused() {
        let opts = domain_options();
        for mode in [Mode::Stateless, Mode::IngressOnly] {
            let err = Compiled::for_options(&opts, &mode).unwrap_err().to_string();
            assert!(
                err.contains("needs stateful mode") && err.contains("https"),
                "{err}"
            );
        }
        let mut wide = domain_options();
        wide.dns_servers = vec!["192.0.2.0/24".parse().unwrap()];
        let err = Compiled::for_options(&wide, &stateful())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'192.0.2.0/24'") && err.contains("/32"),
            "{err}"
        );
        // Without domain rules a resolver network is what it always was.
        wide.https_to = crate::scenario::HttpsDst::Any;
        assert!(Compiled::for_options(&wide, &stateful()).is_ok());

        let mut many = domain_options();
        let rule = |sets: Vec<String>| crate::operator::OperatorRule {
            name: "many".into(),
            direction: crate::operator::RuleDirection::Outbound,
            protocols: vec![Protocol::Tcp],
            ports: vec![PortRange::one(8443)],
            networks: None,
            domains: sets,
            action: Action::Allow,
            position: crate::operator::Position::After,
            description: String::new(),
        };
        let names: Vec<String> = (0..MAX_DOMAIN_SETS).map(|i| format!("s{i}")).collect();
        many.domains.sets = names
            .iter()
            .map(|n| crate::scenario::DomainSet {
                name: n.clone(),
                patterns: vec![format!("*.{n}.example")],
            })
            .collect();
        many.operator_rules = vec![rule(names[..MAX_DOMAIN_SETS - 1].to_vec())];
        assert!(
            Compiled::for_options(&many, &stateful()).is_ok(),
            "7 and goto"
        );
        many.operator_rules = vec![rule(names.clone())];
        let err = Compiled::for_options(&many, &stateful())
            .unwrap_err()
            .to_string();
        assert!(err.contains("9 domain sets") && err.contains('8'), "{err}");
        many.operator_rules = vec![rule(vec!["nowhere".into()])];
        let err = Compiled::for_options(&many, &stateful())
            .unwrap_err()
            .to_string();
        assert!(err.contains("'nowhere'"), "{err}");
    }

    /// On the host, as `explain --scenario` asks: TCP 443 to an address no answer taught is
    /// `not-learned`; once learned for `goto`, the https rule allows it.
    #[test]
    fn an_unlearned_address_is_not_learned_and_a_learned_one_passes() {
        let c = Compiled::for_options(&domain_options(), &stateful()).unwrap();
        let t = c.tables();
        let dst = "203.0.113.7:443".parse().unwrap();
        let names = ["https", "dhcp", "dns", "ntp"];
        let ask = |t: &SoftTables<'_>| {
            let (out, _) = crate::cmd::explain::connection(t, &names, Protocol::Tcp, dst);
            (out.verdict, out.rule)
        };
        assert_eq!(ask(&t), ("block", "not-learned".to_owned()));
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&[203, 0, 113, 7]);
        let key = AddrKey {
            addr,
            family: 4,
            _pad: [0; 3],
        };
        let entry = DomainEntry {
            sets: 1,
            ..DomainEntry::default()
        };
        t.now.set(1_000);
        assert!(t.learn(&key, &entry, 1_000 + 60_000_000_000, 60, 1_000));
        assert_eq!(ask(&t), ("allow", "https".to_owned()));
    }
}
