//! The configuration file as serde reads it: raw tables, unknown keys refused, each value
//! keeping its place in the file.

use serde::Deserialize;
use toml::Spanned;

use crate::{
    loader::options::{EgressHook, XdpModeArg},
    operator::{Position, RuleDirection},
    scenario::Action,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) interfaces: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) scenario: Option<Spanned<String>>,
    pub(super) mode: Option<Spanned<ModeName>>,
    pub(super) xdp_mode: Option<XdpModeArg>,
    pub(super) egress_hook: Option<EgressHook>,
    #[serde(default)]
    pub(super) training: bool,
    #[serde(default)]
    pub(super) turn: RawTurn,
    #[serde(default)]
    pub(super) media: RawMedia,
    #[serde(default)]
    pub(super) allow: RawAllow,
    #[serde(default)]
    pub(super) flows: RawFlows,
    #[serde(default)]
    pub(super) rules: Vec<Spanned<RawRule>>,
    #[serde(default)]
    pub(super) log: RawLog,
    #[serde(default)]
    pub(super) metrics: RawMetrics,
    #[serde(default)]
    pub(super) service: RawService,
    pub(super) https_to: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) domains: RawDomains,
}

/// `[domains.sets]`: each set's name and patterns.
pub(super) type RawSets = std::collections::BTreeMap<String, Spanned<Vec<Spanned<String>>>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDomains {
    pub(super) ttl_min: Option<Spanned<i64>>,
    pub(super) ttl_max: Option<Spanned<i64>>,
    pub(super) table_size: Option<Spanned<i64>>,
    pub(super) sets: Option<Spanned<RawSets>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) rate: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTurn {
    pub(super) destination: Option<Spanned<String>>,
    pub(super) networks: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) extra_networks: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMedia {
    pub(super) ports: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAllow {
    pub(super) non_ip: Option<bool>,
    pub(super) icmpv6_nd: Option<bool>,
    pub(super) icmp_errors: Option<bool>,
    pub(super) pppoe_control: Option<bool>,
    pub(super) dhcp: Option<bool>,
    pub(super) dns: Option<bool>,
    pub(super) ntp: Option<bool>,
    pub(super) dns_servers: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) ntp_servers: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFlows {
    pub(super) table_size: Option<Spanned<i64>>,
    pub(super) udp_timeout: Option<Spanned<i64>>,
    pub(super) tcp_timeout: Option<Spanned<i64>>,
    pub(super) tcp_transitory_timeout: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub(super) name: Spanned<String>,
    pub(super) direction: RuleDirection,
    pub(super) protocol: Spanned<String>,
    pub(super) ports: Spanned<toml::Value>,
    pub(super) networks: Option<Spanned<toml::Value>>,
    pub(super) domains: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) action: Action,
    pub(super) position: Position,
    pub(super) description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) listen: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub(super) on_stop: Option<OnStop>,
}

/// `mode` in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeName {
    /// Flows opened by outbound packets admit the inbound ones.
    Stateful,
    /// No flows: outbound packets are matched by the rules, replies by their source port and
    /// network.
    Stateless,
    /// Inbound packets only, as in stateless mode; outbound traffic is not filtered.
    #[serde(rename = "ingress-only")]
    IngressOnly,
}

impl ModeName {
    /// The name as the file spells it.
    pub(super) const fn text(self) -> &'static str {
        match self {
            Self::Stateful => "stateful",
            Self::Stateless => "stateless",
            Self::IngressOnly => "ingress-only",
        }
    }
}

/// What `gotofw run` does to its filters when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStop {
    /// Leave them attached and pinned: the gateway stays filtered (the default).
    #[default]
    Keep,
    /// Detach them.
    Detach,
}
