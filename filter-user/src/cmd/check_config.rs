//! `gotofw check-config`: read and check a configuration file, print the rule table it makes.

use crate::{
    cli::CheckConfigArgs,
    config::{self, Overrides},
    output::print,
    system,
};

/// Runs the command.
pub fn run(args: &CheckConfigArgs) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let mut resolved = config::resolve(Some(&config), &Overrides::default())?;
    for iface in &resolved.interfaces {
        if system::ifindex(iface).is_err() {
            resolved.notes.push(format!(
                "interface {iface} does not exist in this network namespace: `gotofw attach` and `gotofw run` would fail here"
            ));
        }
    }
    print(&config::describe(&config, &resolved))?;
    Ok(())
}
