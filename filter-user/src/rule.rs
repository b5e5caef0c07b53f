//! The rule model: one compiled rule (protocols, ports, networks, an action) and its parts, as
//! the scenarios, the allowances and the operator's own rules all make them. A leaf module: the
//! scenario and operator modules build on it (`scenario` re-exports it).

use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A transport protocol a rule names.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// Index of the protocol in the port map.
    pub const fn index(self) -> u32 {
        match self {
            Self::Tcp => filter_common::PROTO_IDX_TCP,
            Self::Udp => filter_common::PROTO_IDX_UDP,
        }
    }

    /// IP protocol number.
    pub const fn number(self) -> u8 {
        match self {
            Self::Tcp => filter_common::ipproto::TCP,
            Self::Udp => filter_common::ipproto::UDP,
        }
    }

    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An inclusive range of ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port, at least `first`.
    pub last: u16,
}

impl PortRange {
    /// A single port.
    pub const fn one(port: u16) -> Self {
        Self {
            first: port,
            last: port,
        }
    }

    /// Whether `port` lies in the range.
    pub const fn contains(self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl Serialize for PortRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    /// The form `Serialize` writes: `PORT` or `FIRST-LAST`.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let parse = |p: &str| p.trim().parse::<u16>().ok();
        let range = match text.split_once('-') {
            Some((a, b)) => parse(a)
                .zip(parse(b))
                .map(|(first, last)| Self { first, last }),
            None => parse(&text).map(Self::one),
        };
        range
            .filter(|r| r.first <= r.last)
            .ok_or_else(|| serde::de::Error::custom(format!("'{text}' is not a port range")))
    }
}

/// Remote addresses a rule holds for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Networks {
    /// Any address, IPv4 or IPv6.
    Any,
    /// Only these networks.
    List(Vec<IpNet>),
    /// Only addresses learned from DNS answers for names of these domain sets (stateful mode).
    Domains(Vec<String>),
}

impl Networks {
    /// The domain sets, for a rule with a domain destination.
    pub fn domain_sets(&self) -> Option<&[String]> {
        match self {
            Self::Domains(sets) => Some(sets),
            Self::Any | Self::List(_) => None,
        }
    }
}

impl Serialize for Networks {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Any => s.serialize_str("any"),
            Self::List(nets) => s.collect_seq(nets.iter().map(ToString::to_string)),
            Self::Domains(sets) => {
                use serde::ser::SerializeMap as _;
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("domains", sets)?;
                map.end()
            }
        }
    }
}

impl fmt::Display for Networks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::List(nets) if nets.len() <= 2 => {
                let names: Vec<String> = nets.iter().map(ToString::to_string).collect();
                f.write_str(&names.join(","))
            }
            Self::List(nets) => write!(f, "{} networks", nets.len()),
            Self::Domains(sets) => write!(f, "domains {}", sets.join(",")),
        }
    }
}

/// What a rule does to the traffic it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let it through.
    Allow,
    /// Drop it.
    Block,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Allow => "allow",
            Self::Block => "block",
        })
    }
}

/// Where a rule comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// A rule of the scenario.
    Scenario,
    /// An infrastructure allowance.
    Allowance,
    /// A rule of the operator's configuration file.
    Operator,
}

impl RuleKind {
    /// `scenario`, `allowance` or `operator`, as stored and shown.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Scenario => "scenario",
            Self::Allowance => "allowance",
            Self::Operator => "operator",
        }
    }
}

impl fmt::Display for RuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One compiled rule: outbound traffic of `protocols` to `remote_ports` of `networks` gets
/// `action`. In stateless mode the kernel applies its mirror to inbound traffic (from those ports
/// of those networks).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Stable name, used in counters and `--no-allow`.
    pub name: String,
    /// Scenario rule or allowance.
    pub kind: RuleKind,
    /// Allow or block.
    pub action: Action,
    /// Transport protocols.
    pub protocols: Vec<Protocol>,
    /// Remote (server) ports.
    pub remote_ports: Vec<PortRange>,
    /// Local (client) ports the rule is limited to; empty for any.
    pub local_ports: Vec<PortRange>,
    /// Remote addresses.
    pub networks: Networks,
    /// What the rule is for.
    pub description: String,
    /// Whether its replies may arrive without a flow to match (DHCP offers go to an address the
    /// client does not have yet): in stateful mode only these rules admit inbound packets by port
    /// and network.
    #[serde(skip)]
    pub unsolicited_replies: bool,
}

impl Rule {
    /// Ports as operators read them: `3478`, `45000-49999`, `67,547`.
    pub fn ports_text(&self) -> String {
        let ports: Vec<String> = self.remote_ports.iter().map(ToString::to_string).collect();
        ports.join(",")
    }

    /// Protocols as operators read them: `tcp`, `udp`, `tcp+udp`.
    pub fn protocols_text(&self) -> String {
        let protos: Vec<&str> = self.protocols.iter().map(|p| p.name()).collect();
        protos.join("+")
    }
}
