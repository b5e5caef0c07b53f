//! `cargo xtask demo`: set-up, then the namespace demo lab (`gotofw-tests`'s
//! `demo` binary) for one scenario, driving a freshly built gotofw; with `--ha`,
//! the HA pair's failover demo (`ha_demo`) instead.

use anyhow::{Context, Result};

use crate::{exec, setup, test};

/// Options of `cargo xtask demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scenario to demonstrate: no-restrictions, udp-turn, tcp-turn or tcp-443.
    #[arg(
        long,
        default_value = "udp-turn",
        value_name = "NAME",
        conflicts_with = "ha"
    )]
    scenario: String,
    /// The HA pair instead: a call through two gateways (keepalived, conntrackd, gotofw on
    /// both) while the master fails; prints each failover's media gap, loss and TCP result.
    #[arg(long)]
    ha: bool,
    /// With --ha: how many failovers (alternately keepalived stopped and links cut).
    #[arg(long, default_value_t = 2, value_name = "N", requires = "ha")]
    failovers: u32,
}

/// Runs set-up, builds gotofw (as `cargo xtask test` does), then `cargo run
/// --release -p gotofw-tests --bin demo -- --scenario NAME --gotofw PATH`, or with `--ha`
/// `--bin ha_demo -- --failovers N --gotofw PATH`.
pub fn run(args: &Args) -> Result<()> {
    setup::run()?;
    let gotofw = test::build_gotofw()?;
    let mut command = exec::cargo();
    command.args(["run", "--release", "-p", "gotofw-tests", "--bin"]);
    if args.ha {
        command
            .args(["ha_demo", "--"])
            .args(["--failovers", &args.failovers.to_string()]);
    } else {
        command
            .args(["demo", "--"])
            .args(["--scenario", &args.scenario]);
    }
    exec::run(command.arg("--gotofw").arg(&gotofw)).context(
        "the demo failed; see its output above (it needs root: it builds network namespaces)",
    )
}
