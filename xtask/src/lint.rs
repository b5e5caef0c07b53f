//! `cargo xtask lint`: clippy on every target, warnings denied (the
//! workspace lints turn on clippy's pedantic group).

use anyhow::{Context, Result};

use crate::{exec, setup};

/// Runs set-up (clippy runs build scripts, and filter-user's builds the eBPF
/// crate), then `cargo clippy --all-targets -- -D warnings` on the default
/// members.
pub fn run() -> Result<()> {
    setup::run()?;
    exec::run(exec::cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))
        .context("clippy found problems; fix them (see above) or `#[expect]` them with a reason")
}
