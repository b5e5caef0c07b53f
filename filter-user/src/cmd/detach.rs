//! `gotofw detach`: unpin the link (the interface stops filtering), then the maps.

use crate::{cli::DetachArgs, loader, output::print, system};

/// Runs the command.
pub fn run(args: &DetachArgs) -> anyhow::Result<()> {
    let key = system::key_for(&args.iface)?;
    system::require_capabilities()?;
    loader::detach(&args.iface)?;
    print(&format!(
        "detached gotofw from {}; removed {}\n",
        args.iface,
        system::key_dir(&key)?.display()
    ))?;
    Ok(())
}
