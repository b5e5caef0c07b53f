//! `gotofw attach`: check everything, then load, fill, attach and pin in one step.

use crate::{
    cli::AttachArgs,
    config::{self, Overrides},
    error::UsageError,
    loader::{self, AttachPlan, FilterMode, Meta},
    output::print,
    plan::build_plan,
    system,
};

/// Turns the arguments (and the configuration file they name) into one plan per interface, or
/// the first thing wrong with them, and the file's notes. Touches nothing.
pub fn plans(args: &AttachArgs) -> anyhow::Result<(Vec<AttachPlan>, Vec<String>)> {
    let file = args.config.as_deref().map(config::load).transpose()?;
    let resolved = config::resolve(file.as_ref(), &Overrides::from(args))?;
    if resolved.interfaces.is_empty() {
        // clap asks for IFACE without --config; a file names at least one.
        return Err(UsageError::NoInterface.into());
    }
    let plans = resolved
        .interfaces
        .iter()
        .map(|iface| {
            build_plan(
                iface,
                &resolved.options,
                resolved.mode,
                resolved.xdp_mode,
                args.replace,
            )
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((plans, resolved.notes))
}

/// Runs the command: every interface, in order; when one fails, the filters this command
/// attached before it are detached again (swapped rule sets stay swapped).
pub fn run(args: &AttachArgs) -> anyhow::Result<()> {
    let (plans, notes) = plans(args)?;
    system::require_capabilities()?;
    for note in notes {
        eprintln!("gotofw: note: {note}");
    }
    for (i, plan) in plans.iter().enumerate() {
        match loader::attach(plan) {
            Ok(meta) => report(plan, &meta)?,
            Err(e) => {
                let mut undone = Vec::new();
                for done in plans[..i].iter().filter(|p| !p.replace) {
                    if loader::detach(&done.iface).is_ok() {
                        undone.push(done.iface.as_str());
                    }
                }
                if undone.is_empty() {
                    return Err(e);
                }
                return Err(e.context(format!(
                    "attaching to {} failed ({}, attached just before, detached again)",
                    plan.iface,
                    undone.join(", ")
                )));
            }
        }
    }
    Ok(())
}

fn report(plan: &AttachPlan, meta: &Meta) -> anyhow::Result<()> {
    let rules: Vec<String> = meta
        .rules
        .iter()
        .map(|r| {
            if r.kind == crate::rule::RuleKind::Operator && !r.local_ports.is_empty() {
                format!(
                    "{} (inbound {} to local {} from {})",
                    r.name,
                    r.protocol,
                    r.local_ports,
                    r.networks_text()
                )
            } else {
                format!(
                    "{} ({} {} to {})",
                    r.name,
                    r.protocol,
                    r.ports,
                    r.networks_text()
                )
            }
        })
        .collect();
    let verb = if plan.replace {
        "replaced the rule set on"
    } else {
        "attached gotofw to"
    };
    print(&format!(
        "{verb} {} (ifindex {}): scenario {}, {} mode{}, xdp {}\n  rules, first match first: {}\n  allowances: {}\n  then: block\n  pinned at {}; watch with `gotofw status {}`, remove with `gotofw detach {}`\n",
        plan.iface,
        plan.ifindex,
        meta.scenario,
        meta.mode,
        meta.egress_hook.map_or_else(
            || {
                if meta.mode == FilterMode::IngressOnly {
                    " (outbound traffic not filtered)".to_owned()
                } else {
                    String::new()
                }
            },
            |h| format!(" (egress {})", h.name())
        ),
        meta.xdp_mode.name(),
        rules.join(", "),
        if meta.allowances.is_empty() {
            "none".to_owned()
        } else {
            meta.allowances.join(", ")
        },
        system::pin_dir(&plan.iface)?.display(),
        plan.iface,
        plan.iface,
    ))?;
    Ok(())
}
