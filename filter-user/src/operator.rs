//! The operator's own rules (the `[[rules]]` of the configuration file), compiled into the same
//! rule list as the scenario's: each goes before the scenario's rules or after the allowances, as
//! the file says, and gets a bit, a counter and a name like any other rule.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::rule::{Action, Networks, PortRange, Protocol, Rule, RuleKind};

/// Every remote port: what an inbound rule admits connections from.
const ANY_PORT: PortRange = PortRange {
    first: 1,
    last: 65_535,
};

/// Who opens the connections a rule is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleDirection {
    /// Opened from inside, to `ports` of `networks` (as every scenario rule).
    Outbound,
    /// Opened from `networks` outside, to the gateway's own `ports` (a VPN or SSH endpoint).
    Inbound,
}

/// Where a rule goes in the first-match order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    /// Ahead of the scenario's rules: where they overlap, this rule decides.
    Before,
    /// After the scenario's rules and the allowances: it decides only what they do not.
    After,
}

/// One rule of the configuration file, checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorRule {
    /// Its name in counters and tables.
    pub name: String,
    /// Outbound or inbound connections.
    pub direction: RuleDirection,
    /// TCP, UDP or both.
    pub protocols: Vec<Protocol>,
    /// Remote ports (outbound) or the gateway's ports (inbound).
    pub ports: Vec<PortRange>,
    /// The remote networks; `None` for any address (or the domain sets).
    pub networks: Option<Vec<IpNet>>,
    /// The domain sets whose learned addresses the rule goes to, instead of networks (outbound
    /// rules, stateful mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    /// Allow or block.
    pub action: Action,
    /// Before or after the scenario's rules.
    pub position: Position,
    /// What it is for; a summary of the rule when the file gives none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl OperatorRule {
    /// The engine's rule: an outbound rule names remote ports; an inbound one names every remote
    /// port and the gateway's local ports, and may admit packets that no flow opened.
    pub fn rule(&self) -> Rule {
        let (remote_ports, local_ports) = match self.direction {
            RuleDirection::Outbound => (self.ports.clone(), Vec::new()),
            RuleDirection::Inbound => (vec![ANY_PORT], self.ports.clone()),
        };
        let networks = if self.domains.is_empty() {
            self.networks
                .as_ref()
                .map_or(Networks::Any, |nets| Networks::List(nets.clone()))
        } else {
            Networks::Domains(self.domains.clone())
        };
        let description = if self.description.is_empty() {
            self.summary()
        } else {
            self.description.clone()
        };
        Rule {
            name: self.name.clone(),
            kind: RuleKind::Operator,
            action: self.action,
            protocols: self.protocols.clone(),
            remote_ports,
            local_ports,
            networks,
            description,
            unsolicited_replies: self.direction == RuleDirection::Inbound,
        }
    }

    /// `outbound udp to 51820 of 198.51.100.7/32`, `inbound tcp to local 22 from any`.
    pub fn summary(&self) -> String {
        let protos: Vec<&str> = self.protocols.iter().map(|p| p.name()).collect();
        let ports: Vec<String> = self.ports.iter().map(ToString::to_string).collect();
        let nets = self.networks.as_ref().map_or_else(
            || {
                if self.domains.is_empty() {
                    "any address".to_owned()
                } else {
                    format!("domains {}", self.domains.join(","))
                }
            },
            |nets| {
                nets.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        );
        match self.direction {
            RuleDirection::Outbound => format!(
                "operator: outbound {} to port {} of {nets}",
                protos.join("+"),
                ports.join(",")
            ),
            RuleDirection::Inbound => format!(
                "operator: inbound {} to local port {} from {nets}",
                protos.join("+"),
                ports.join(",")
            ),
        }
    }
}

/// The whole list, first match first: the operator's `before` rules, `scenario` (the scenario's
/// rules and the allowances), then the operator's `after` rules; each group in file order.
pub fn place(operator: &[OperatorRule], scenario: Vec<Rule>) -> Vec<Rule> {
    let at = |position| {
        operator
            .iter()
            .filter(move |r| r.position == position)
            .map(OperatorRule::rule)
    };
    at(Position::Before)
        .chain(scenario)
        .chain(at(Position::After))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Options, Scenario};

    fn rule(name: &str, direction: RuleDirection, position: Position) -> OperatorRule {
        OperatorRule {
            name: name.into(),
            direction,
            protocols: vec![Protocol::Udp],
            ports: vec![PortRange::one(51_820)],
            networks: Some(vec!["198.51.100.7/32".parse().unwrap()]),
            domains: Vec::new(),
            action: Action::Allow,
            position,
            description: String::new(),
        }
    }

    #[test]
    fn rules_go_before_or_after_the_scenario_in_file_order() {
        let mut opts = Options::new(Scenario::TcpTurn);
        opts.operator_rules = vec![
            rule("late", RuleDirection::Outbound, Position::After),
            rule("early", RuleDirection::Outbound, Position::Before),
            rule("early2", RuleDirection::Inbound, Position::Before),
        ];
        let names: Vec<String> = opts.rules().into_iter().map(|r| r.name).collect();
        assert_eq!(
            names,
            [
                "early", "early2", "turn-tcp", "https", "dhcp", "dns", "ntp", "late"
            ]
        );
    }

    #[test]
    fn inbound_rules_name_local_ports_and_admit_unsolicited_packets() {
        let out = rule("vpn", RuleDirection::Outbound, Position::After).rule();
        assert_eq!(out.remote_ports, [PortRange::one(51_820)]);
        assert!(out.local_ports.is_empty() && !out.unsolicited_replies);
        assert_eq!(out.kind, RuleKind::Operator);
        assert_eq!(
            out.description,
            "operator: outbound udp to port 51820 of 198.51.100.7/32"
        );
        let inbound = rule("vpn", RuleDirection::Inbound, Position::After).rule();
        assert_eq!(inbound.remote_ports, [ANY_PORT]);
        assert_eq!(inbound.local_ports, [PortRange::one(51_820)]);
        assert!(inbound.unsolicited_replies);
    }
}
