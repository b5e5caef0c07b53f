//! The operator's `[[rules]]`, checked.

use std::collections::HashSet;

use ipnet::IpNet;
use toml::Spanned;

use super::{
    load::Locator,
    raw::RawRule,
    values::{parse_ports, shown},
};
use crate::{
    domain_sets::{Pattern, builtin},
    error::UsageError,
    operator::{OperatorRule, RuleDirection},
    scenario::{Allowance, DomainSet, Options, Protocol, Scenario, dedup_networks, parse_network},
    slots::FIXED,
};

impl Locator<'_> {
    /// The rules, each with the line of its name, and the domain sets their patterns make
    /// (one per rule that lists patterns, named after it), each with that line.
    pub(super) fn rules(&self, raw: &[Spanned<RawRule>]) -> Result<RulesAndSets, UsageError> {
        let reserved = reserved_names();
        let mut names = HashSet::new();
        let mut out = Vec::new();
        let mut sets = Vec::new();
        for spanned in raw {
            let r = spanned.get_ref();
            let name = r.name.get_ref();
            let valid = (1..=40).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !valid {
                return Err(self.error(
                    &r.name.span(),
                    format!("[[rules]] name = \"{name}\": use 1-40 letters, digits, '-', '_' or '.', e.g. \"office-vpn\""),
                ));
            }
            if reserved.contains(name.as_str()) {
                return Err(self.error(
                    &r.name.span(),
                    format!("[[rules]] name = \"{name}\" is a built-in rule or counter of gotofw: choose another name"),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(self.error(
                    &r.name.span(),
                    format!("[[rules]] name = \"{name}\" is used twice: every rule needs a name of its own (counters are per name)"),
                ));
            }
            let protocols = match r.protocol.get_ref().as_str() {
                "tcp" => vec![Protocol::Tcp],
                "udp" => vec![Protocol::Udp],
                "tcp+udp" | "udp+tcp" => vec![Protocol::Tcp, Protocol::Udp],
                other => {
                    return Err(self.error(
                        &r.protocol.span(),
                        format!("[[rules]] '{name}': protocol = \"{other}\": use \"tcp\", \"udp\" or \"tcp+udp\" (rules match TCP and UDP ports)"),
                    ));
                }
            };
            let ports = parse_ports(r.ports.get_ref()).map_err(|why| {
                self.error(
                    &r.ports.span(),
                    format!("[[rules]] '{name}': ports {why}: give a port (1-65535), a range such as \"60000-60100\", or a list such as [22, \"60000-60100\"]"),
                )
            })?;
            let (networks, domains) = match (&r.networks, &r.domains) {
                (Some(_), Some(d)) => {
                    return Err(self.error(
                        &d.span(),
                        format!("[[rules]] '{name}': networks and domains both given: a rule goes to networks or to the addresses of domain sets, not both; keep one (or write two rules)"),
                    ));
                }
                (None, None) => {
                    return Err(self.error(
                        &r.name.span(),
                        format!("[[rules]] '{name}' has no destination: add networks = \"any\" or a list of CIDRs, or domains = [\"goto\"] (domain sets or patterns such as \"*.example.com\")"),
                    ));
                }
                (None, Some(d)) => {
                    let line = self.line(&r.name.span());
                    let (names, set) = self.rule_domains(name, r.direction, d)?;
                    if let Some(set) = set {
                        sets.push((set, line));
                    }
                    (None, names)
                }
                (Some(n), None) => (self.rule_networks(name, n)?, Vec::new()),
            };
            out.push((
                OperatorRule {
                    name: name.clone(),
                    direction: r.direction,
                    protocols,
                    ports,
                    networks,
                    domains,
                    action: r.action,
                    position: r.position,
                    description: r.description.clone().unwrap_or_default(),
                },
                self.line(&r.name.span()),
            ));
        }
        Ok((out, sets))
    }

    /// A rule's `networks`: `"any"` (`None`) or a list of CIDRs.
    fn rule_networks(
        &self,
        name: &str,
        networks: &Spanned<toml::Value>,
    ) -> Result<Option<Vec<IpNet>>, UsageError> {
        let parsed = match networks.get_ref() {
            toml::Value::String(s) if s == "any" => None,
            toml::Value::Array(items) if !items.is_empty() => {
                let mut nets = Vec::new();
                for item in items {
                    let toml::Value::String(text) = item else {
                        return Err(self.error(
                            &networks.span(),
                            format!("[[rules]] '{name}': networks holds {}, not a CIDR string: write e.g. [\"198.51.100.0/24\"]", shown(item)),
                        ));
                    };
                    nets.push(parse_network(text, "networks").map_err(|e| {
                        self.error(&networks.span(), format!("[[rules]] '{name}': {e}"))
                    })?);
                }
                Some(dedup_networks(nets))
            }
            toml::Value::Array(_) => {
                return Err(self.error(
                    &networks.span(),
                    format!("[[rules]] '{name}': networks = [] names no address, so the rule could never match: list at least one CIDR, or write \"any\""),
                ));
            }
            other => {
                return Err(self.error(
                    &networks.span(),
                    format!("[[rules]] '{name}': networks = {} is neither \"any\" nor a list of CIDRs: write \"any\" or e.g. [\"198.51.100.0/24\", \"2001:db8::/32\"]", shown(other)),
                ));
            }
        };
        Ok(parsed)
    }

    /// A rule's `domains`: the set names it lists, its own set (named after it) when it lists
    /// patterns, and that set.
    fn rule_domains(
        &self,
        name: &str,
        direction: RuleDirection,
        list: &Spanned<Vec<Spanned<String>>>,
    ) -> Result<(Vec<String>, Option<DomainSet>), UsageError> {
        if list.get_ref().is_empty() {
            return Err(self.error(
                &list.span(),
                format!("[[rules]] '{name}': domains = [] names no domain, so the rule could never match: list sets (\"goto\") or patterns (\"*.example.com\")"),
            ));
        }
        if direction == RuleDirection::Inbound {
            return Err(self.error(
                &list.span(),
                format!("[[rules]] '{name}': domains apply to outbound rules only (addresses learned from the answers to the clients' DNS queries): use networks for an inbound rule"),
            ));
        }
        let mut names: Vec<String> = Vec::new();
        let mut patterns: Vec<String> = Vec::new();
        for item in list.get_ref() {
            let text = item.get_ref();
            if text.contains(['.', '*']) {
                let pattern = Pattern::parse(text).map_err(|why| {
                    self.error(&item.span(), format!("[[rules]] '{name}': domains: {why}"))
                })?;
                if !patterns.contains(&pattern.text()) {
                    patterns.push(pattern.text());
                }
            } else if set_name_ok(text) {
                if !names.contains(text) {
                    names.push(text.clone());
                }
            } else {
                return Err(self.error(
                    &item.span(),
                    format!("[[rules]] '{name}': domains: \"{text}\" is neither a set name (lowercase letters, digits and '-', e.g. \"goto\") nor a pattern (\"*.example.com\", \"api.example.org\")"),
                ));
            }
        }
        if patterns.is_empty() {
            return Ok((names, None));
        }
        if names.iter().any(|n| n == name) || builtin(name).is_some() {
            return Err(self.error(
                &list.span(),
                format!("[[rules]] '{name}': its patterns make a domain set named '{name}', which is a set name already: rename the rule"),
            ));
        }
        names.push(name.to_owned());
        Ok((
            names,
            Some(DomainSet {
                name: name.to_owned(),
                patterns,
            }),
        ))
    }
}

/// What [`Locator::rules`] returns.
pub(super) type RulesAndSets = (Vec<(OperatorRule, usize)>, Vec<(DomainSet, usize)>);

/// Whether `name` can name a domain set: 1 to 40 lowercase letters, digits and '-'.
pub(super) fn set_name_ok(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Names an operator rule cannot take: every scenario rule, allowance and fixed counter.
pub(super) fn reserved_names() -> HashSet<String> {
    let mut names: HashSet<String> = Scenario::ALL
        .into_iter()
        .flat_map(|sc| Options::new(sc).rules())
        .map(|r| r.name)
        .collect();
    names.extend(Allowance::ALL.iter().map(|a| a.name().to_owned()));
    names.extend(FIXED.iter().map(|f| f.name.to_owned()));
    names
}
