//! `cargo xtask demo`: set-up, then the namespace demo lab (`gotofw-tests`'s
//! `demo` binary) for one scenario, driving a freshly built gotofw.

use anyhow::{Context, Result};

use crate::{exec, setup, test};

/// Options of `cargo xtask demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scenario to demonstrate: no-restrictions, udp-turn, tcp-turn or tcp-443.
    #[arg(long, default_value = "udp-turn", value_name = "NAME")]
    scenario: String,
}

/// Runs set-up, builds gotofw (as `cargo xtask test` does), then `cargo run
/// --release -p gotofw-tests --bin demo -- --scenario NAME --gotofw PATH`.
pub fn run(args: &Args) -> Result<()> {
    setup::run()?;
    let gotofw = test::build_gotofw()?;
    exec::run(
        exec::cargo()
            .args([
                "run",
                "--release",
                "-p",
                "gotofw-tests",
                "--bin",
                "demo",
                "--",
            ])
            .args(["--scenario", &args.scenario])
            .arg("--gotofw")
            .arg(&gotofw),
    )
    .context("the demo failed; see its output above (it needs root: it builds network namespaces)")
}
