//! `gotofw detach`: unpin the link (the interface stops filtering), then the maps.

use crate::{cli::DetachArgs, cmd::print, kernel, system};

/// Runs the command.
pub fn run(args: &DetachArgs) -> anyhow::Result<()> {
    system::check_interface_name(&args.iface)?;
    system::require_capabilities()?;
    kernel::detach(&args.iface)?;
    print(&format!(
        "detached gotofw from {}; removed {}\n",
        args.iface,
        system::pin_dir(&args.iface).display()
    ))?;
    Ok(())
}
