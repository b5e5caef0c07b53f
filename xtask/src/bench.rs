//! `cargo xtask bench`: set-up, build gotofw, then run the benchmarks (`bench/`, root) and
//! write `BENCHMARKS.md` and `benchmarks.json`.
//!
//! The benchmark binary drives the gotofw binary of this tree (attach, status, detach, peak
//! memory), so gotofw is built first, as `cargo xtask test` builds it.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::{exec, setup, test};

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Smoke mode: every benchmark with tiny sizes, in seconds (the numbers mean nothing).
    #[arg(long)]
    quick: bool,
    /// Directory for BENCHMARKS.md and benchmarks.json (default: the workspace root).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Runs set-up, builds gotofw, then the benchmark binary.
pub fn run(args: &Args) -> Result<()> {
    setup::run()?;
    let gotofw = test::build_gotofw()?;
    let mut command = String::from("cargo xtask bench");
    let mut bench_args: Vec<String> = vec!["--gotofw".into(), gotofw.display().to_string()];
    if args.quick {
        command.push_str(" --quick");
        bench_args.push("--quick".into());
    }
    if let Some(out) = &args.out {
        command.push_str(" --out ");
        command.push_str(&out.display().to_string());
        // Relative to where `cargo xtask` was started, not to the workspace root.
        let out = std::env::current_dir().map_or_else(|_| out.clone(), |dir| dir.join(out));
        bench_args.extend(["--out".into(), out.display().to_string()]);
    }
    bench_args.extend(["--command".into(), command]);
    exec::run(
        exec::cargo()
            .args([
                "run",
                "--release",
                "-p",
                "bench",
                "--bin",
                "gotofw-bench",
                "--",
            ])
            .args(&bench_args),
    )
    .context("the benchmarks failed; see the output above")
}
