//! The GoTo firewall scenarios, the infrastructure allowances, and the rule set an operator's
//! choices make of them.

use std::{fmt, str::FromStr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::UsageError;
pub use crate::rule::{Action, Networks, PortRange, Protocol, Rule, RuleKind};

/// The networks GoTo runs its TURN servers on.
pub const TURN_NETWORKS: [&str; 5] = [
    "68.64.0.0/19",
    "173.199.0.0/18",
    "78.108.124.0/23",
    "202.173.24.0/21",
    "23.239.224.0/19",
];

/// Ports of the open scenario's UDP media range.
pub const MEDIA_PORTS: PortRange = PortRange {
    first: 45_000,
    last: 49_999,
};

/// One of the four documented configurations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// UDP to ports 45000-49999 and TCP 443, to any address.
    NoRestrictions,
    /// UDP 3478 to the TURN networks (or any address) and TCP 443.
    UdpTurn,
    /// TCP 3478 to the TURN networks and TCP 443.
    TcpTurn,
    /// TCP 443 only.
    #[value(name = "tcp-443")]
    #[serde(rename = "tcp-443")]
    Tcp443,
}

impl Scenario {
    /// All scenarios, most open first.
    pub const ALL: [Self; 4] = [
        Self::NoRestrictions,
        Self::UdpTurn,
        Self::TcpTurn,
        Self::Tcp443,
    ];

    /// The name operators type.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NoRestrictions => "no-restrictions",
            Self::UdpTurn => "udp-turn",
            Self::TcpTurn => "tcp-turn",
            Self::Tcp443 => "tcp-443",
        }
    }

    /// One line on what the scenario is for.
    pub const fn summary(self) -> &'static str {
        match self {
            Self::NoRestrictions => {
                "media over UDP 45000-49999 straight to GoTo's servers, signalling over TCP 443; \
                 shortest delays, needs return traffic for any address"
            }
            Self::UdpTurn => {
                "all media through GoTo's TURN servers over UDP 3478, signalling over TCP 443"
            }
            Self::TcpTurn => {
                "media over TCP 3478 to the TURN servers, signalling over TCP 443; more delay \
                 and audio loss than UDP"
            }
            Self::Tcp443 => "everything over TCP 443; the most restricted call quality",
        }
    }

    /// Whether a rule of the scenario is restricted to the TURN networks (by default).
    pub const fn uses_turn_networks(self) -> bool {
        matches!(self, Self::UdpTurn | Self::TcpTurn)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = UsageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|sc| sc.name() == s)
            .ok_or_else(|| UsageError::UnknownScenario(s.to_owned()))
    }
}

/// Where `udp-turn` lets UDP 3478 go (and `tcp-turn` TCP 3478).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TurnDst {
    /// Only the TURN networks.
    #[default]
    TurnNetworks,
    /// Any address (udp-turn only).
    Any,
    /// Only addresses learned from DNS answers for the GoTo domains (stateful mode).
    Domains,
}

/// Where the `https` rule lets TCP 443 go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum HttpsDst {
    /// Any address.
    #[default]
    Any,
    /// Only addresses learned from DNS answers for the GoTo domains (stateful mode).
    Domains,
}

/// A domain set the operator names (`[domains.sets]`, or the patterns of a `[[rules]]`'s
/// `domains`): its name and its patterns as written (`*.example.com`, `api.example.org`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainSet {
    /// Its name, as rules name it.
    pub name: String,
    /// Its patterns.
    pub patterns: Vec<String>,
}

/// What domain rules learn with: how long a learned address lives, how many are held, the
/// built-in sets the scenario's rules name, and the operator's sets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainOptions {
    /// Least seconds a learned address lives.
    pub ttl_min: u32,
    /// Most seconds a learned address lives.
    pub ttl_max: u32,
    /// Most learned addresses held.
    pub table_size: u32,
    /// The scenario's domain rules also name `goto-training` (`training = true`).
    #[serde(default)]
    pub training: bool,
    /// The operator's sets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sets: Vec<DomainSet>,
}

impl Default for DomainOptions {
    fn default() -> Self {
        Self {
            ttl_min: crate::limits::DNS_TTL_MIN.default,
            ttl_max: crate::limits::DNS_TTL_MAX.default,
            table_size: crate::limits::LEARNED_TABLE_SIZE.default,
            training: false,
            sets: Vec::new(),
        }
    }
}

impl DomainOptions {
    /// The sets the scenario's domain rules name: `goto`, and `goto-training` with training.
    pub fn scenario_sets(&self) -> Vec<String> {
        let mut sets = vec![crate::domain_sets::GOTO.to_owned()];
        if self.training {
            sets.push(crate::domain_sets::GOTO_TRAINING.to_owned());
        }
        sets
    }
}

/// The infrastructure allowances: traffic a default-block gateway must still let in to keep
/// working. Each has a counter and can be switched off with `--no-allow NAME`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Allowance {
    /// Frames that are not IP (ARP, LLDP, ...).
    NonIp,
    /// ICMPv6 router and neighbour discovery (types 133-137, hop limit 255).
    #[value(name = "icmpv6-nd")]
    #[serde(rename = "icmpv6-nd")]
    Icmpv6Nd,
    /// ICMP and ICMPv6 errors (unreachable, packet too big, time exceeded, parameter problem)
    /// that quote a packet the rules allow.
    IcmpErrors,
    /// PPPoE discovery and the PPP control protocols of PPPoE sessions (LCP, IPCP, IPv6CP,
    /// authentication).
    PppoeControl,
    /// DHCPv4 and DHCPv6 server replies to the client ports (UDP 67 to 68, 547 to 546).
    Dhcp,
    /// DNS replies (UDP and TCP from port 53) from the configured resolvers.
    Dns,
    /// NTP replies (UDP from port 123) from the configured servers.
    Ntp,
}

impl Allowance {
    /// All allowances, in counter order.
    pub const ALL: [Self; 7] = [
        Self::NonIp,
        Self::Icmpv6Nd,
        Self::IcmpErrors,
        Self::PppoeControl,
        Self::Dhcp,
        Self::Dns,
        Self::Ntp,
    ];

    /// The name operators type.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NonIp => "non-ip",
            Self::Icmpv6Nd => "icmpv6-nd",
            Self::IcmpErrors => "icmp-errors",
            Self::PppoeControl => "pppoe-control",
            Self::Dhcp => "dhcp",
            Self::Dns => "dns",
            Self::Ntp => "ntp",
        }
    }

    /// One line on what it lets in.
    pub const fn summary(self) -> &'static str {
        match self {
            Self::NonIp => "frames that are not IP: ARP, LLDP, ...",
            Self::Icmpv6Nd => "ICMPv6 router/neighbour discovery (types 133-137, hop limit 255)",
            Self::IcmpErrors => {
                "ICMP/ICMPv6 errors (unreachable, too big, time exceeded, parameter problem) \
                 quoting a packet the rules allow"
            }
            Self::PppoeControl => {
                "PPPoE discovery and PPP control (LCP, IPCP, IPv6CP, authentication) in PPPoE \
                 sessions"
            }
            Self::Dhcp => "DHCP replies: UDP 67 to client port 68, UDP 547 to client port 546",
            Self::Dns => "DNS replies: UDP and TCP from port 53 of the DNS servers",
            Self::Ntp => "NTP replies: UDP from port 123 of the NTP servers",
        }
    }

    /// The fixed-logic switch bit, for the allowances that are not port rules.
    pub const fn switch_bit(self) -> Option<u32> {
        match self {
            Self::NonIp => Some(filter_common::allow::NON_IP),
            Self::Icmpv6Nd => Some(filter_common::allow::ICMPV6_ND),
            Self::IcmpErrors => Some(filter_common::allow::ICMP_ERRORS),
            Self::PppoeControl => Some(filter_common::allow::PPPOE_CONTROL),
            Self::Dhcp | Self::Dns | Self::Ntp => None,
        }
    }
}

impl fmt::Display for Allowance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The operator's choices, checked: what `attach` and `explain` build a rule set from. Stored
/// with an attached filter so that `set-scenario` can rebuild it with another scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// The scenario.
    pub scenario: Scenario,
    /// Destination of `udp-turn`'s UDP 3478.
    pub turn_dst: TurnDst,
    /// The TURN network set after the operator's additions or replacement.
    pub turn_networks: Vec<IpNet>,
    /// Allowances switched off.
    pub disabled: Vec<Allowance>,
    /// Resolvers DNS replies may come from; empty for any.
    pub dns_servers: Vec<IpNet>,
    /// Servers NTP replies may come from; empty for any.
    pub ntp_servers: Vec<IpNet>,
    /// The UDP media port range of `no-restrictions`.
    pub media_ports: PortRange,
    /// The operator's own rules (configuration file), placed before or after the scenario's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operator_rules: Vec<crate::operator::OperatorRule>,
    /// Dropped packets sampled into the drop log, per second and CPU (0: off).
    #[serde(default = "default_log_rate")]
    pub log_rate: u32,
    /// The hook for the egress program in stateful mode.
    #[serde(default)]
    pub egress_hook: crate::loader::options::EgressHook,
    /// Destination of the `https` rule (TCP 443).
    #[serde(default)]
    pub https_to: HttpsDst,
    /// How domain rules learn, and the operator's domain sets.
    #[serde(default)]
    pub domains: DomainOptions,
}

impl Options {
    /// GoTo's document's defaults for `scenario`.
    pub fn new(scenario: Scenario) -> Self {
        Self {
            scenario,
            turn_dst: TurnDst::TurnNetworks,
            turn_networks: default_turn_networks(),
            disabled: Vec::new(),
            dns_servers: Vec::new(),
            ntp_servers: Vec::new(),
            media_ports: MEDIA_PORTS,
            operator_rules: Vec::new(),
            log_rate: crate::limits::LOG_RATE.default,
            egress_hook: crate::loader::options::EgressHook::Auto,
            https_to: HttpsDst::Any,
            domains: DomainOptions::default(),
        }
    }

    /// The rules, first match first: the operator's `before` rules, the scenario's, the port-based
    /// allowances, then the operator's `after` rules.
    pub fn rules(&self) -> Vec<Rule> {
        let turn = Networks::List(self.turn_networks.clone());
        let learned = Networks::Domains(self.domains.scenario_sets());
        let turn = match self.turn_dst {
            TurnDst::Domains => learned.clone(),
            TurnDst::TurnNetworks | TurnDst::Any => turn,
        };
        let https = Rule {
            name: "https".into(),
            kind: RuleKind::Scenario,
            action: Action::Allow,
            protocols: vec![Protocol::Tcp],
            remote_ports: vec![PortRange::one(443)],
            local_ports: Vec::new(),
            networks: match self.https_to {
                HttpsDst::Any => Networks::Any,
                HttpsDst::Domains => learned,
            },
            description: "signalling (and in tcp-443 all media) over TCP 443".into(),
            unsolicited_replies: false,
        };
        let mut rules = match self.scenario {
            Scenario::NoRestrictions => vec![
                Rule {
                    name: "media-udp".into(),
                    kind: RuleKind::Scenario,
                    action: Action::Allow,
                    protocols: vec![Protocol::Udp],
                    remote_ports: vec![self.media_ports],
                    local_ports: Vec::new(),
                    networks: Networks::Any,
                    description: "media over UDP straight to GoTo's servers".into(),
                    unsolicited_replies: false,
                },
                https,
            ],
            Scenario::UdpTurn => vec![
                Rule {
                    name: "turn-udp".into(),
                    kind: RuleKind::Scenario,
                    action: Action::Allow,
                    protocols: vec![Protocol::Udp],
                    remote_ports: vec![PortRange::one(3478)],
                    local_ports: Vec::new(),
                    networks: match self.turn_dst {
                        TurnDst::TurnNetworks | TurnDst::Domains => turn,
                        TurnDst::Any => Networks::Any,
                    },
                    description: "media over UDP to the TURN servers".into(),
                    unsolicited_replies: false,
                },
                https,
            ],
            Scenario::TcpTurn => vec![
                Rule {
                    name: "turn-tcp".into(),
                    kind: RuleKind::Scenario,
                    action: Action::Allow,
                    protocols: vec![Protocol::Tcp],
                    remote_ports: vec![PortRange::one(3478)],
                    local_ports: Vec::new(),
                    networks: turn,
                    description: "media over TCP to the TURN servers".into(),
                    unsolicited_replies: false,
                },
                https,
            ],
            Scenario::Tcp443 => vec![https],
        };
        let servers = |list: &[IpNet]| {
            if list.is_empty() {
                Networks::Any
            } else {
                Networks::List(list.to_vec())
            }
        };
        for allowance in [Allowance::Dhcp, Allowance::Dns, Allowance::Ntp] {
            if self.disabled.contains(&allowance) {
                continue;
            }
            let (protocols, remote_ports, local_ports, networks) = match allowance {
                Allowance::Dhcp => (
                    vec![Protocol::Udp],
                    vec![PortRange::one(67), PortRange::one(547)],
                    vec![PortRange::one(68), PortRange::one(546)],
                    Networks::Any,
                ),
                Allowance::Dns => (
                    vec![Protocol::Tcp, Protocol::Udp],
                    vec![PortRange::one(53)],
                    Vec::new(),
                    servers(&self.dns_servers),
                ),
                _ => (
                    vec![Protocol::Udp],
                    vec![PortRange::one(123)],
                    Vec::new(),
                    servers(&self.ntp_servers),
                ),
            };
            rules.push(Rule {
                name: allowance.name().into(),
                kind: RuleKind::Allowance,
                action: Action::Allow,
                protocols,
                remote_ports,
                local_ports,
                networks,
                description: allowance.summary().into(),
                unsolicited_replies: allowance == Allowance::Dhcp,
            });
        }
        crate::operator::place(&self.operator_rules, rules)
    }

    /// Switch bits of the enabled fixed-logic allowances.
    pub fn allowance_bits(&self) -> u32 {
        Allowance::ALL
            .iter()
            .filter(|a| !self.disabled.contains(a))
            .filter_map(|a| a.switch_bit())
            .fold(0, |acc, bit| acc | bit)
    }
}

/// Network options as typed, shared by `attach` and `explain`.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct RawNetworkArgs {
    /// Where udp-turn sends UDP 3478 (and tcp-turn TCP 3478): only the TURN networks (the
    /// default), any address (udp-turn only), or domains: only addresses that DNS answers for
    /// the GoTo domains taught (stateful mode).
    #[arg(long, value_enum, value_name = "DST")]
    pub turn_dst: Option<TurnDst>,

    /// Where the https rule sends TCP 443: any address (the default), or domains: only
    /// addresses that DNS answers for the GoTo domains (`gotofw domains`) taught, learned in the
    /// kernel before the answer reaches the client (stateful mode).
    #[arg(long, value_enum, value_name = "DST")]
    pub https_to: Option<HttpsDst>,

    /// Add a network (CIDR, IPv4 or IPv6) to the TURN network set. Repeatable.
    #[arg(long, value_name = "CIDR")]
    pub network: Vec<String>,

    /// Use only the --network CIDRs as the TURN network set, instead of adding them to GoTo's
    /// five published networks.
    #[arg(long)]
    pub replace_networks: bool,

    /// Switch an infrastructure allowance off. Repeatable.
    #[arg(long, value_enum, value_name = "ALLOWANCE")]
    pub no_allow: Vec<Allowance>,

    /// Accept DNS replies only from this resolver (address or CIDR; with domain rules, an
    /// address: answers are learned from these alone). Repeatable; default any.
    #[arg(long, value_name = "ADDR")]
    pub dns_server: Vec<String>,

    /// Accept NTP replies only from this server (address or CIDR). Repeatable; default any.
    #[arg(long, value_name = "ADDR")]
    pub ntp_server: Vec<String>,
}

/// The log rate of a record written before there was one.
const fn default_log_rate() -> u32 {
    crate::limits::LOG_RATE.default
}

/// GoTo's published TURN networks.
pub fn default_turn_networks() -> Vec<IpNet> {
    TURN_NETWORKS
        .iter()
        .map(|n| {
            n.parse()
                .expect("the built-in TURN networks are valid CIDRs")
        })
        .collect()
}

/// `text` with the leading zeros of its IPv4 parts taken off, when it has any (`010.0.0.0/8`).
fn without_leading_zeros(text: &str) -> Option<String> {
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (text, None),
    };
    // The IPv4 part: the whole address, or the tail of an IPv6 one (`::ffff:010.1.2.3`).
    let (head, v4) = match addr.rfind(':') {
        Some(i) => addr.split_at(i + 1),
        None => ("", addr),
    };
    let parts: Vec<&str> = v4.split('.').collect();
    let padded =
        |p: &&str| p.len() > 1 && p.starts_with('0') && p.bytes().all(|b| b.is_ascii_digit());
    if parts.len() < 2 || !parts.iter().any(padded) {
        return None;
    }
    let plain: Vec<&str> = parts
        .iter()
        .map(|p| {
            if padded(p) {
                let t = p.trim_start_matches('0');
                if t.is_empty() { "0" } else { t }
            } else {
                p
            }
        })
        .collect();
    let mut out = format!("{head}{}", plain.join("."));
    if let Some(prefix) = prefix {
        out.push('/');
        out.push_str(prefix);
    }
    Some(out)
}

/// The IPv4 network an IPv4-mapped IPv6 network (inside `::ffff:0:0/96`) stands for.
fn mapped_v4(net: IpNet) -> Option<ipnet::Ipv4Net> {
    let IpNet::V6(v6) = net else { return None };
    let bits = u128::from(v6.network());
    let mapped = v6.prefix_len() >= 96 && bits >> 32 == 0xffff;
    let v4 = std::net::Ipv4Addr::from(u32::try_from(bits & 0xffff_ffff).ok()?);
    mapped
        .then(|| ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).ok())
        .flatten()
}

/// Parses a CIDR or a bare address (a host network) given to `flag`. Refused besides what does
/// not parse: host bits past the prefix, leading zeros in an IPv4 address (`010.0.0.0/8`: octal
/// to some tools, decimal to others), and IPv4-mapped IPv6 networks, which never match.
pub fn parse_network(text: &str, flag: &'static str) -> Result<IpNet, UsageError> {
    if let Some(plain) = without_leading_zeros(text) {
        return Err(UsageError::LeadingZeros {
            flag,
            value: text.to_owned(),
            plain,
        });
    }
    let net: IpNet = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => match text.parse::<std::net::IpAddr>() {
            Ok(addr) => IpNet::from(addr),
            Err(_) => {
                return Err(UsageError::BadNetwork {
                    flag,
                    value: text.to_owned(),
                });
            }
        },
    };
    if net.trunc() != net {
        return Err(UsageError::HostBits {
            flag,
            value: text.to_owned(),
            network: net.trunc(),
        });
    }
    if let Some(v4) = mapped_v4(net) {
        return Err(UsageError::MappedNetwork {
            flag,
            value: text.to_owned(),
            v4,
        });
    }
    Ok(net)
}

/// `nets` without repeats, first occurrence kept.
pub fn dedup_networks(mut nets: Vec<IpNet>) -> Vec<IpNet> {
    let mut seen = std::collections::HashSet::new();
    nets.retain(|n| seen.insert(*n));
    nets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, resolve};

    /// The options `attach IFACE --scenario SCENARIO` with the network options `raw` makes, or
    /// its error: the command line alone, through [`resolve`].
    fn from_command_line(raw: &RawNetworkArgs, scenario: Scenario) -> Result<Options, UsageError> {
        let cli = Overrides {
            interface: Some("wan0".into()),
            scenario: Some(scenario),
            networks: raw.clone(),
            ..Overrides::default()
        };
        resolve(None, &cli).map(|r| r.options)
    }

    #[test]
    fn scenario_names_round_trip() {
        for sc in Scenario::ALL {
            assert_eq!(sc.name().parse::<Scenario>().unwrap(), sc);
        }
        let err = "udp_turn".parse::<Scenario>().unwrap_err().to_string();
        assert!(err.contains("udp_turn") && err.contains("tcp-443"), "{err}");
    }

    #[test]
    fn networks_extend_or_replace() {
        let raw = RawNetworkArgs {
            network: vec!["2001:db8::/32".into(), "198.51.100.7".into()],
            ..Default::default()
        };
        let opts = from_command_line(&raw, Scenario::UdpTurn).unwrap();
        assert_eq!(opts.turn_networks.len(), 7);
        let raw = RawNetworkArgs {
            replace_networks: true,
            ..raw
        };
        let opts = from_command_line(&raw, Scenario::UdpTurn).unwrap();
        let want: Vec<IpNet> = vec![
            "2001:db8::/32".parse().unwrap(),
            "198.51.100.7/32".parse().unwrap(),
        ];
        assert_eq!(opts.turn_networks, want);
    }

    #[test]
    fn bad_networks_name_the_value() {
        for (value, needle) in [
            ("68.64.0.0/33", "68.64.0.0/33"),
            ("68.64.0.1/19", "68.64.0.0/19"),
            ("turn", "turn"),
            ("2001:db8::/129", "2001:db8::/129"),
        ] {
            let raw = RawNetworkArgs {
                network: vec![value.into()],
                ..Default::default()
            };
            let err = from_command_line(&raw, Scenario::TcpTurn)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{value}: {err}");
        }
    }

    #[test]
    fn networks_that_cannot_match_or_mean_two_things_are_refused() {
        for (value, needles) in [
            (
                "010.000.000.000/8",
                &["'010.000.000.000/8'", "leading zeros", "10.0.0.0/8"][..],
            ),
            ("192.0.2.01", &["'192.0.2.01'", "192.0.2.1"]),
            ("::ffff:010.1.2.3", &["leading zeros", "::ffff:10.1.2.3"]),
            ("::ffff:68.64.0.0/116", &["IPv4-mapped", "68.64.0.0/20"]),
            ("::ffff:192.0.2.1", &["IPv4-mapped", "192.0.2.1/32"]),
            ("::ffff:0:0/96", &["IPv4-mapped", "0.0.0.0/0"]),
        ] {
            let err = parse_network(value, "--network").unwrap_err().to_string();
            for needle in needles {
                assert!(err.contains(needle), "{value}: {needle:?} not in {err}");
            }
        }
        // Networks around the mapped range match IPv6 packets too; zeros alone are no padding.
        for value in [
            "::/0",
            "::/64",
            "2001:db8::/32",
            "0.0.0.0/0",
            "10.0.0.0/8",
            "2001:db8::0100",
        ] {
            assert!(parse_network(value, "--network").is_ok(), "{value}");
        }
    }

    #[test]
    fn servers_of_a_switched_off_allowance_are_refused() {
        let raw = RawNetworkArgs {
            no_allow: vec![Allowance::Dns],
            dns_server: vec!["192.0.2.53".into()],
            ..Default::default()
        };
        let err = from_command_line(&raw, Scenario::UdpTurn)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--dns-server '192.0.2.53'") && err.contains("--no-allow dns"),
            "{err}"
        );
        let raw = RawNetworkArgs {
            no_allow: vec![Allowance::Dns],
            ntp_server: vec!["192.0.2.123".into()],
            ..Default::default()
        };
        assert!(from_command_line(&raw, Scenario::UdpTurn).is_ok());
        let raw = RawNetworkArgs {
            turn_dst: Some(TurnDst::Any),
            network: vec!["10.0.0.0/8".into()],
            ..Default::default()
        };
        assert!(matches!(
            from_command_line(&raw, Scenario::UdpTurn),
            Err(UsageError::NetworksUnusedWithAnyDst(_))
        ));
    }

    #[test]
    fn options_that_do_nothing_are_refused() {
        let raw = RawNetworkArgs {
            network: vec!["198.51.100.0/24".into()],
            ..Default::default()
        };
        assert!(from_command_line(&raw, Scenario::Tcp443).is_err());
        let raw = RawNetworkArgs {
            turn_dst: Some(TurnDst::Any),
            ..Default::default()
        };
        assert!(from_command_line(&raw, Scenario::TcpTurn).is_err());
        assert!(from_command_line(&raw, Scenario::UdpTurn).is_ok());
        let raw = RawNetworkArgs {
            replace_networks: true,
            ..Default::default()
        };
        assert!(matches!(
            from_command_line(&raw, Scenario::UdpTurn),
            Err(UsageError::EmptyNetworks)
        ));
    }

    #[test]
    fn scenario_rules_follow_gotos_document() {
        let names = |sc| {
            Options::new(sc)
                .rules()
                .iter()
                .map(|r| r.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(Scenario::NoRestrictions),
            ["media-udp", "https", "dhcp", "dns", "ntp"]
        );
        assert_eq!(
            names(Scenario::UdpTurn),
            ["turn-udp", "https", "dhcp", "dns", "ntp"]
        );
        assert_eq!(
            names(Scenario::TcpTurn),
            ["turn-tcp", "https", "dhcp", "dns", "ntp"]
        );
        assert_eq!(names(Scenario::Tcp443), ["https", "dhcp", "dns", "ntp"]);
        let mut opts = Options::new(Scenario::UdpTurn);
        opts.turn_dst = TurnDst::Any;
        assert_eq!(opts.rules()[0].networks, Networks::Any);
        opts.disabled = vec![Allowance::Dns, Allowance::NonIp];
        assert_eq!(opts.rules().len(), 4);
        assert_eq!(
            opts.allowance_bits(),
            filter_common::allow::ICMPV6_ND
                | filter_common::allow::ICMP_ERRORS
                | filter_common::allow::PPPOE_CONTROL
        );
    }
}
