//! The operator's `[[rules]]`, checked.

use std::collections::HashSet;

use toml::Spanned;

use super::{
    load::Locator,
    raw::RawRule,
    values::{parse_ports, shown},
};
use crate::{
    error::UsageError,
    operator::OperatorRule,
    scenario::{Allowance, Options, Protocol, Scenario, dedup_networks, parse_network},
    slots::FIXED,
};

impl Locator<'_> {
    pub(super) fn rules(
        &self,
        raw: &[Spanned<RawRule>],
    ) -> Result<Vec<(OperatorRule, usize)>, UsageError> {
        let reserved = reserved_names();
        let mut names = HashSet::new();
        let mut out = Vec::new();
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
            let networks = match r.networks.get_ref() {
                toml::Value::String(s) if s == "any" => None,
                toml::Value::Array(items) if !items.is_empty() => {
                    let mut nets = Vec::new();
                    for item in items {
                        let toml::Value::String(text) = item else {
                            return Err(self.error(
                                &r.networks.span(),
                                format!("[[rules]] '{name}': networks holds {}, not a CIDR string: write e.g. [\"198.51.100.0/24\"]", shown(item)),
                            ));
                        };
                        nets.push(parse_network(text, "networks").map_err(|e| {
                            self.error(&r.networks.span(), format!("[[rules]] '{name}': {e}"))
                        })?);
                    }
                    Some(dedup_networks(nets))
                }
                toml::Value::Array(_) => {
                    return Err(self.error(
                        &r.networks.span(),
                        format!("[[rules]] '{name}': networks = [] names no address, so the rule could never match: list at least one CIDR, or write \"any\""),
                    ));
                }
                other => {
                    return Err(self.error(
                        &r.networks.span(),
                        format!("[[rules]] '{name}': networks = {} is neither \"any\" nor a list of CIDRs: write \"any\" or e.g. [\"198.51.100.0/24\", \"2001:db8::/32\"]", shown(other)),
                    ));
                }
            };
            out.push((
                OperatorRule {
                    name: name.clone(),
                    direction: r.direction,
                    protocols,
                    ports,
                    networks,
                    action: r.action,
                    position: r.position,
                    description: r.description.clone().unwrap_or_default(),
                },
                self.line(&r.name.span()),
            ));
        }
        Ok(out)
    }
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
