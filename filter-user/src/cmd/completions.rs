//! `gotofw completions`: a shell completion script, generated from the clap definitions.

use crate::{
    cli::{self, CompletionsArgs},
    output::print,
};

/// The completion script for `shell`, of the visible commands only: the generators offer
/// hidden subcommands too, so the hidden `man` is left out of the command they are given.
pub fn script(shell: clap_complete::Shell) -> String {
    let full = cli::command();
    let mut cmd = clap::Command::new("gotofw")
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true)
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "gotofw", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs the command.
pub fn run(args: &CompletionsArgs) -> anyhow::Result<()> {
    Ok(print(&script(args.shell))?)
}
