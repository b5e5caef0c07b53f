//! `gotofw check-config`: read and check a configuration file, print the rule table it makes.

use filter_common::META_SIZE;

use crate::{
    cli::CheckConfigArgs,
    cmd::print,
    config::{self, Config, Overrides, Resolved},
    error::UsageError,
    kernel::RuleInfo,
    system,
};

/// Checks what only the whole rule set shows: that its description fits the filter's record.
pub fn check_size(config: &Config, resolved: &Resolved) -> Result<(), UsageError> {
    let rules: Vec<RuleInfo> = resolved
        .options
        .rules()
        .iter()
        .map(RuleInfo::from)
        .collect();
    // The record also holds the options and a few small fields; count those generously.
    let size = serde_json::to_vec(&rules).map_or(0, |v| v.len())
        + serde_json::to_vec(&resolved.options).map_or(0, |v| v.len())
        + 1024;
    if size > META_SIZE {
        return Err(UsageError::Config {
            location: config.path.display().to_string(),
            message: format!(
                "the rules and their networks take about {size} bytes of description, more than the {META_SIZE} a filter stores: list fewer networks (merge them into shorter prefixes)"
            ),
        });
    }
    Ok(())
}

/// Runs the command.
pub fn run(args: &CheckConfigArgs) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let mut resolved = config::resolve(Some(&config), &Overrides::default())?;
    check_size(&config, &resolved)?;
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
