//! `gotofw reload`: apply the configuration file to the filters it names, atomically per
//! interface (a swap into the pinned links, as `set-scenario` does), without a daemon.

use crate::{
    cli::ReloadArgs,
    config::{self, Overrides},
    plan::build_plan,
    reconcile, system,
};

/// Runs the command. Everything is checked before anything changes: the file and every interface
/// it names (a plan is built for each, rule set and capacity included, touching nothing), so bad
/// input found then (exit 2) leaves every filter as it was. What only an attach finds (another
/// program's XDP program on the interface) stops the loop there, the interfaces before it changed.
pub fn run(args: &ReloadArgs) -> anyhow::Result<()> {
    let file = config::load(&args.config)?;
    let resolved = config::resolve(Some(&file), &Overrides::default())?;
    for iface in &resolved.interfaces {
        build_plan(
            iface,
            &resolved.options,
            resolved.mode,
            resolved.xdp_mode,
            false,
        )
        .map_err(|e| e.context(format!("reloading {iface}: nothing was changed")))?;
    }
    system::require_capabilities()?;
    for iface in &resolved.interfaces {
        // One line per interface on standard error: attached, swapped, or kept as it was.
        let lines = reconcile::interface(&resolved, iface)
            .map_err(|e| e.context(format!("reloading {iface}")))?;
        for line in lines {
            eprintln!("gotofw: {line}");
        }
    }
    Ok(())
}
