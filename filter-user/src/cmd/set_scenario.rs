//! `gotofw set-scenario`: swap the scenario of an attached filter atomically, keeping the flows
//! the new scenario still allows.

use anyhow::anyhow;

use crate::{
    cli::SetScenarioArgs,
    liveness,
    loader::{self, FilterMode},
    output::print,
    plan::build_plan,
    system,
};

/// Runs the command.
pub fn run(args: &SetScenarioArgs) -> anyhow::Result<()> {
    system::require_capabilities()?;
    // Read, change and swap under the interface lock, so that a change another command makes
    // meanwhile is not lost.
    let mut from = None;
    let mut broken = None;
    let meta = loader::attach_with(&args.iface, || {
        let old = loader::read_attached(&args.iface)?;
        // A filter that is not filtering is attached anew, not swapped (see `loader::attach_with`).
        broken = Some(liveness::of(&old)).filter(|h| !h.filtering());
        let mut options = old.meta.options.clone().ok_or_else(|| {
            anyhow!(
                "the filter on {} does not record how it was built: attach it again with `gotofw attach {} --scenario {} --replace` and its options",
                args.iface,
                args.iface,
                args.scenario
            )
        })?;
        from = Some(options.scenario);
        options.scenario = args.scenario;
        let mode = old.meta.mode.with_flows(old.meta.flows).ok_or_else(|| {
            anyhow!(
                "the filter on {} records mode {:?}, which this gotofw does not know: attach it again with `gotofw attach {} --scenario {} --replace`",
                args.iface,
                old.meta.mode.name(),
                args.iface,
                args.scenario
            )
        })?;
        build_plan(&args.iface, &options, mode, old.meta.xdp_mode, true)
    })?;
    let from = from.map_or_else(|| "?".to_owned(), |s| s.to_string());
    if let Some(health) = broken {
        print(&format!(
            "attached {} to {} anew ({} mode; its {from} filter was not filtering: {}); counters and flows restart\n",
            args.scenario,
            args.iface,
            meta.mode,
            health.text()
        ))?;
        return Ok(());
    }
    let flows = if meta.mode == FilterMode::Stateful {
        format!(
            "flows are kept; each is checked against {} at its next packet, and one the new rules do not allow stops there",
            args.scenario
        )
    } else {
        "no flows are kept: every packet is judged by the new rules from the next one".to_owned()
    };
    print(&format!(
        "switched {} from {from} to {} atomically ({} mode); {flows}; counters restart\n",
        args.iface, args.scenario, meta.mode
    ))?;
    Ok(())
}
