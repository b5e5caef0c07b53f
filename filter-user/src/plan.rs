//! From a validated rule set to an attach plan: the interface checked (it exists, its link type
//! is one gotofw parses), the rule set compiled to map contents, and the filter's record. What
//! `attach`, `reload`, `run` and `set-scenario` hand to [`loader::attach`]; touches nothing.

use crate::{
    compile::{Compiled, Mode},
    link_type,
    loader::{self, AttachPlan, DomainSetInfo, FilterMode, Meta, RuleInfo, XdpModeArg},
    scenario::{Allowance, Options},
    system,
};

/// The plan for attaching (or with `replace`, swapping in) `options` in `mode` on `iface`.
pub fn build_plan(
    iface: &str,
    options: &Options,
    mode: Mode,
    xdp_mode: XdpModeArg,
    replace: bool,
) -> anyhow::Result<AttachPlan> {
    let ifindex = system::ifindex(iface)?;
    let link = link_type::check(iface, ifindex)?;
    let rules = options.rules();
    let mut compiled = Compiled::for_options(options, &mode)?;
    compiled.config.log_rate = options.log_rate;
    compiled.config.link = link;
    let meta = Meta {
        version: loader::META_VERSION,
        interface: iface.to_owned(),
        ifindex,
        netns: system::netns_id()?,
        scenario: options.scenario.name().to_owned(),
        mode: FilterMode::from(&mode),
        flows: match mode {
            Mode::Stateful(limits) => Some(limits),
            Mode::Stateless | Mode::IngressOnly => None,
        },
        xdp_mode,
        egress_hook: None,
        clsact_qdisc: false,
        attached_at: system::unix_now(),
        rules: rules.iter().map(RuleInfo::from).collect(),
        options: Some(options.clone()),
        allowances: Allowance::ALL
            .iter()
            .filter(|a| a.switch_bit().is_some() && !options.disabled.contains(a))
            .map(|a| a.name().to_owned())
            .collect(),
        domain_sets: compiled
            .domain_sets
            .iter()
            .map(|(name, patterns)| DomainSetInfo {
                name: name.clone(),
                patterns: patterns.clone(),
            })
            .collect(),
    };
    Ok(AttachPlan {
        iface: iface.to_owned(),
        ifindex,
        compiled,
        meta,
        xdp_mode,
        egress_hook: options.egress_hook,
        replace,
    })
}
