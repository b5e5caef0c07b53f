//! Developer tasks for gotofw, run as `cargo xtask <command>`.
//!
//! `main` only parses the command line and dispatches; each subcommand lives in
//! its own module. Every command that builds or tests runs [`setup`] first, so a
//! fresh machine needs nothing but `cargo xtask test`.

mod bench;
mod build;
mod deb;
mod demo;
mod exec;
mod fmt;
mod fuzz;
mod lint;
mod man;
mod paths;
mod setup;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Developer tasks for gotofw.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check and install what building and testing need: nightly rust-src,
    /// bpf-linker, the lab's system tools and the bpf file system. Idempotent.
    Setup,
    /// Run `setup`, then build the workspace (filter-user's build script
    /// builds the eBPF programs).
    Build(build::Args),
    /// Run `setup`, then the whole test suite in release mode. Kernel tests
    /// need root; without it they are skipped (and fail when CI=true).
    Test(test::Args),
    /// Run `setup`, then the namespace demo lab for one scenario, or with `--ha` the HA pair's
    /// failovers (needs root).
    Demo(demo::Args),
    /// Format all crates with nightly rustfmt (rustfmt.toml uses nightly options).
    Fmt(fmt::Args),
    /// Run `setup`, then clippy on all targets, denying every warning.
    Lint,
    /// Run `setup`, then fuzz the classifier for long: the differential test
    /// (kernel against host, root) with --cases N, or the cargo-fuzz target
    /// with --coverage-guided [--seconds N].
    Fuzz(fuzz::Args),
    /// Run `setup`, build gotofw, and write its man pages (gotofw.8 and one
    /// per command) to target/man, or to --out DIR.
    Man(man::Args),
    /// Run `setup`, build gotofw, then the benchmarks (root): write
    /// BENCHMARKS.md and benchmarks.json to the workspace root, or to --out DIR.
    Bench(bench::Args),
    /// Run `setup`, build gotofw, and make the Debian package
    /// target/debian/gotofw_VERSION_ARCH.deb with cargo-deb, checked by lintian; prints its path.
    Deb,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Setup => setup::run(),
        Command::Build(args) => build::run(args),
        Command::Test(args) => test::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Fmt(args) => fmt::run(args),
        Command::Lint => lint::run(),
        Command::Fuzz(args) => fuzz::run(args),
        Command::Man(args) => man::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Deb => deb::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            exec::exit_code(&err)
        }
    }
}
