//! The rule table `check-config` prints.

use std::{collections::HashSet, fmt::Write as _};

use super::{load::Config, raw::OnStop, resolve::Resolved};
use crate::{compile::Mode, operator::RuleDirection, scenario::Allowance};

/// The rule table `check-config` prints: every rule in match order, then the fixed allowances.
pub fn describe(config: &Config, resolved: &Resolved) -> String {
    let mut out = String::new();
    let o = &resolved.options;
    let _ = writeln!(out, "{}: ok", config.path.display());
    let _ = writeln!(out, "  interfaces: {}", resolved.interfaces.join(", "));
    let mode = match resolved.mode {
        Mode::Stateful(l) => format!(
            "stateful mode (flow table {}; idle timeouts: udp {} s, tcp {} s, half-open/closing tcp {} s)",
            l.table_size, l.udp_timeout, l.tcp_established_timeout, l.tcp_transitory_timeout
        ),
        Mode::Stateless => "stateless mode".to_owned(),
        Mode::IngressOnly => "ingress-only mode (outbound traffic not filtered)".to_owned(),
    };
    let _ = writeln!(
        out,
        "  scenario {}, {mode}, xdp {}",
        o.scenario,
        resolved.xdp_mode.name()
    );
    let _ = writeln!(out, "  rules, first match first:");
    let mut rows = vec![
        [
            "#", "RULE", "KIND", "ACTION", "CONN", "PROTO", "PORTS", "LOCAL", "NETWORKS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let inbound: HashSet<&str> = o
        .operator_rules
        .iter()
        .filter(|r| r.direction == RuleDirection::Inbound)
        .map(|r| r.name.as_str())
        .collect();
    for (i, rule) in o.rules().iter().enumerate() {
        let kind = rule.kind.name().to_owned();
        let (conn, ports) = if inbound.contains(rule.name.as_str()) {
            ("inbound", "any".to_owned())
        } else {
            ("outbound", rule.ports_text())
        };
        let local: Vec<String> = rule.local_ports.iter().map(ToString::to_string).collect();
        let networks = match &rule.networks {
            crate::scenario::Networks::Any => "any".to_owned(),
            crate::scenario::Networks::List(nets) => nets
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            crate::scenario::Networks::Domains(_) => rule.networks.to_string(),
        };
        rows.push(vec![
            (i + 1).to_string(),
            rule.name.clone(),
            kind,
            rule.action.to_string(),
            conn.to_owned(),
            rule.protocols_text(),
            ports,
            if local.is_empty() {
                "-".to_owned()
            } else {
                local.join(",")
            },
            networks,
        ]);
    }
    for line in crate::output::table(&rows).lines() {
        let _ = writeln!(out, "  {line}");
    }
    let fixed: Vec<&str> = Allowance::ALL
        .iter()
        .filter(|a| a.switch_bit().is_some() && !o.disabled.contains(a))
        .map(|a| a.name())
        .collect();
    let _ = writeln!(
        out,
        "  fixed allowances: {}",
        if fixed.is_empty() {
            "none".to_owned()
        } else {
            fixed.join(", ")
        }
    );
    let _ = writeln!(out, "  then: block");
    describe_domains(&mut out, o, &o.rules());
    let _ = writeln!(
        out,
        "  gotofw run: metrics {}; on stop, {}",
        config
            .metrics_listen
            .map_or_else(|| "off".to_owned(), |a| format!("on http://{a}/metrics")),
        match config.on_stop {
            OnStop::Keep => "keep the filters attached",
            OnStop::Detach => "detach the filters",
        }
    );
    for note in &resolved.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    out
}

/// The domain sets the rules name, with their patterns, and how addresses are learned; nothing
/// when no rule has a domain destination.
fn describe_domains(out: &mut String, o: &crate::scenario::Options, rules: &[crate::rule::Rule]) {
    let mut named: Vec<&str> = Vec::new();
    for rule in rules {
        for set in rule.networks.domain_sets().unwrap_or_default() {
            if !named.contains(&set.as_str()) {
                named.push(set);
            }
        }
    }
    if named.is_empty() {
        return;
    }
    for name in named {
        let patterns: Vec<String> = crate::domain_sets::builtin(name).map_or_else(
            || {
                o.domains
                    .sets
                    .iter()
                    .find(|s| s.name == name)
                    .map(|s| s.patterns.clone())
                    .unwrap_or_default()
            },
            |p| p.iter().map(crate::domain_sets::Pattern::text).collect(),
        );
        let _ = writeln!(out, "  domain set {name}: {}", patterns.join(", "));
    }
    let d = &o.domains;
    let _ = writeln!(
        out,
        "  learned addresses: from UDP DNS answers of {}, kept {}-{} s whatever the TTL, at most {}",
        if o.dns_servers.is_empty() {
            "any resolver".to_owned()
        } else {
            o.dns_servers
                .iter()
                .map(|n| n.addr().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
        d.ttl_min,
        d.ttl_max,
        d.table_size
    );
}
