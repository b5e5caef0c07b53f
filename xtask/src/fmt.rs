//! `cargo xtask fmt`: format every crate with nightly rustfmt, which the
//! import options in rustfmt.toml need.

use anyhow::{Context, Result};

use crate::exec;

/// Options of `cargo xtask fmt`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only check that the code is formatted, changing nothing (for CI).
    #[arg(long)]
    check: bool,
}

/// Runs `cargo +nightly fmt --all` (with `-- --check` when asked).
pub fn run(args: &Args) -> Result<()> {
    let mut cargo = exec::cargo();
    cargo.args(["+nightly", "fmt", "--all"]);
    if args.check {
        cargo.args(["--", "--check"]);
    }
    exec::run(&mut cargo).context(
        "formatting failed; if rustfmt is missing, run `rustup component add rustfmt --toolchain nightly`",
    )
}
