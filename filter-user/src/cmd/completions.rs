//! `gotofw completions`: a shell completion script, generated from the clap definitions.

use crate::{
    cli::{self, CompletionsArgs},
    cmd::print,
};

/// The completion script for `shell`.
pub fn script(shell: clap_complete::Shell) -> String {
    let mut cmd = cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "gotofw", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs the command.
pub fn run(args: &CompletionsArgs) -> anyhow::Result<()> {
    Ok(print(&script(args.shell))?)
}
