//! `gotofw attach`: check everything, then load, fill, attach and pin in one step.

use crate::{
    cli::AttachArgs,
    cmd::print,
    compile::{Compiled, FlowLimits, Mode},
    kernel::{self, AttachPlan, Meta, RuleInfo},
    scenario::{Allowance, Options},
    system,
};

/// Turns the arguments into a plan, or the first thing wrong with them. Touches nothing.
pub fn plan(args: &AttachArgs) -> anyhow::Result<AttachPlan> {
    let options = Options::from_raw(&args.networks, args.scenario)?;
    let mode = if args.stateless {
        Mode::Stateless
    } else {
        Mode::Stateful(FlowLimits {
            table_size: args.flows.flow_table_size,
            udp_timeout: args.flows.udp_timeout,
            tcp_established_timeout: args.flows.tcp_timeout,
            tcp_transitory_timeout: args.flows.tcp_transitory_timeout,
        })
    };
    let ifindex = system::ifindex(&args.iface)?;
    let rules = options.rules();
    let compiled = Compiled::with_mode(&rules, options.allowance_bits(), &mode)?;
    let meta = Meta {
        version: 1,
        interface: args.iface.clone(),
        ifindex,
        netns: system::netns_id()?,
        scenario: options.scenario.name().to_owned(),
        mode: mode.name().to_owned(),
        flows: match mode {
            Mode::Stateful(limits) => Some(limits),
            Mode::Stateless => None,
        },
        xdp_mode: args.xdp_mode,
        attached_at: system::unix_now(),
        rules: rules.iter().map(RuleInfo::from).collect(),
        allowances: Allowance::ALL
            .iter()
            .filter(|a| a.switch_bit().is_some() && !options.disabled.contains(a))
            .map(|a| a.name().to_owned())
            .collect(),
    };
    Ok(AttachPlan {
        iface: args.iface.clone(),
        ifindex,
        compiled,
        meta,
        xdp_mode: args.xdp_mode,
        replace: args.replace,
    })
}

/// Runs the command.
pub fn run(args: &AttachArgs) -> anyhow::Result<()> {
    let plan = plan(args)?;
    system::require_capabilities()?;
    let meta = &kernel::attach(&plan)?;
    let rules: Vec<String> = meta
        .rules
        .iter()
        .map(|r| {
            format!(
                "{} ({} {} to {})",
                r.name,
                r.protocol,
                r.ports,
                r.networks_text()
            )
        })
        .collect();
    let verb = if plan.replace {
        "replaced the rule set on"
    } else {
        "attached gotofw to"
    };
    print(&format!(
        "{verb} {} (ifindex {}): scenario {}, {} mode, xdp {}\n  rules, first match first: {}\n  allowances: {}\n  then: block\n  pinned at {}; watch with `gotofw status {}`, remove with `gotofw detach {}`\n",
        plan.iface,
        plan.ifindex,
        meta.scenario,
        meta.mode,
        serde_json::to_value(meta.xdp_mode)?
            .as_str()
            .unwrap_or("auto"),
        rules.join(", "),
        if meta.allowances.is_empty() {
            "none".to_owned()
        } else {
            meta.allowances.join(", ")
        },
        system::pin_dir(&plan.iface).display(),
        plan.iface,
        plan.iface,
    ))?;
    Ok(())
}
