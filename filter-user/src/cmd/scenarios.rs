//! `gotofw scenarios`: the scenarios as GoTo's document gives them, and the allowances.

use std::fmt::Write as _;

use serde::Serialize;

use crate::{
    cli::ScenariosArgs,
    loader::RuleInfo,
    output::{json, print, table},
    scenario::{Allowance, Options, RuleKind, Scenario, TURN_NETWORKS},
};

#[derive(Serialize)]
struct Listing {
    scenarios: Vec<ScenarioInfo>,
    allowances: Vec<AllowanceInfo>,
    turn_networks: Vec<&'static str>,
}

#[derive(Serialize)]
struct ScenarioInfo {
    name: &'static str,
    summary: &'static str,
    rules: Vec<ScenarioRule>,
    default_action: &'static str,
}

#[derive(Serialize)]
struct ScenarioRule {
    direction: &'static str,
    #[serde(flatten)]
    rule: RuleInfo,
}

#[derive(Serialize)]
struct AllowanceInfo {
    name: &'static str,
    summary: &'static str,
    default: &'static str,
}

fn listing() -> Listing {
    let scenarios = Scenario::ALL
        .into_iter()
        .map(|sc| ScenarioInfo {
            name: sc.name(),
            summary: sc.summary(),
            rules: Options::new(sc)
                .rules()
                .iter()
                .filter(|r| r.kind == RuleKind::Scenario)
                .map(|r| ScenarioRule {
                    direction: "outbound",
                    rule: RuleInfo::from(r),
                })
                .collect(),
            default_action: "block",
        })
        .collect();
    let allowances = Allowance::ALL
        .into_iter()
        .map(|a| AllowanceInfo {
            name: a.name(),
            summary: a.summary(),
            default: "on",
        })
        .collect();
    Listing {
        scenarios,
        allowances,
        turn_networks: TURN_NETWORKS.to_vec(),
    }
}

/// Runs the command.
pub fn run(args: &ScenariosArgs) -> anyhow::Result<()> {
    let listing = listing();
    if args.json {
        return Ok(print(&json(&listing)?)?);
    }
    let mut out = String::new();
    for sc in &listing.scenarios {
        let _ = writeln!(out, "{}: {}", sc.name, sc.summary);
        let mut rows = vec![
            [
                "RULE",
                "DIRECTION",
                "PROTO",
                "DST PORT",
                "DST NETWORKS",
                "ACTION",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for r in &sc.rules {
            rows.push(vec![
                r.rule.name.clone(),
                r.direction.into(),
                r.rule.protocol.clone(),
                r.rule.ports.clone(),
                r.rule.networks_text(),
                r.rule.action.clone(),
            ]);
        }
        rows.push(
            ["(default)", "any", "any", "any", "any", sc.default_action]
                .map(String::from)
                .to_vec(),
        );
        out.push_str(&table(&rows));
        out.push('\n');
    }
    let _ = write!(
        out,
        "TURN networks (extend with --network, replace with --replace-networks):\n  {}\n\n",
        listing.turn_networks.join(", ")
    );
    out.push_str(
        "Replies: in --stateless mode each rule also admits inbound packets from its port and \
         networks.\n\nInfrastructure allowances (on by default; switch off with --no-allow NAME):\n",
    );
    let rows: Vec<Vec<String>> = listing
        .allowances
        .iter()
        .map(|a| vec![a.name.to_owned(), a.summary.to_owned()])
        .collect();
    out.push_str(&table(&rows));
    Ok(print(&out)?)
}
