//! `cargo xtask build`: set-up, then `cargo build`.

use anyhow::{Context, Result};

use crate::{exec, setup};

/// Options of `cargo xtask build`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Build with optimisations (the profile the tests and the demo use).
    #[arg(long)]
    release: bool,
}

/// Runs set-up, then builds the workspace's default members. filter-ebpf is
/// not one of them: filter-user's build script builds it for the BPF target.
pub fn run(args: &Args) -> Result<()> {
    setup::run()?;
    let mut cargo = exec::cargo();
    cargo.arg("build");
    if args.release {
        cargo.arg("--release");
    }
    exec::run(&mut cargo).context("the build failed; see the compiler output above")
}
