//! `cargo xtask test`: set-up, then the whole test suite, in release mode.
//!
//! This is the test command of the README and of CI (`.ci/run`). The
//! environment is passed through untouched: kernel tests decide for
//! themselves whether they can run (root) and whether skipping is allowed
//! (`CI=true` turns a skip into a failure).

use anyhow::{Context, Result};

use crate::{exec, setup};

/// Options of `cargo xtask test`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many tests run at once; each kernel test builds its own namespaces.
    #[arg(long, default_value_t = 2, value_name = "N")]
    test_threads: usize,
    /// Extra arguments for `cargo test`, e.g. `-p gotofw-tests`; after a
    /// further `--`, arguments for the test binaries, e.g. a test name filter.
    #[arg(last = true, value_name = "CARGO_TEST_ARGS")]
    rest: Vec<String>,
}

/// Runs set-up, then `cargo test --release`; fails with cargo's exit code.
pub fn run(args: &Args) -> Result<()> {
    setup::run()?;
    exec::run(exec::cargo().args(cargo_test_args(args)))
        .context("tests failed; see the output above")
}

/// `test --release [cargo args] -- --test-threads=N [harness args]`, leaving
/// out `--test-threads` when the harness arguments already set it.
fn cargo_test_args(args: &Args) -> Vec<String> {
    let (cargo_args, harness_args) = match args.rest.iter().position(|arg| arg == "--") {
        Some(split) => (&args.rest[..split], &args.rest[split + 1..]),
        None => (&args.rest[..], &[][..]),
    };
    let mut out = vec!["test".to_owned(), "--release".to_owned()];
    out.extend_from_slice(cargo_args);
    out.push("--".to_owned());
    if !harness_args
        .iter()
        .any(|arg| arg.starts_with("--test-threads"))
    {
        out.push(format!("--test-threads={}", args.test_threads));
    }
    out.extend_from_slice(harness_args);
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn args_for(line: &[&str]) -> Vec<String> {
        let cli = Cli::try_parse_from(std::iter::once("test").chain(line.iter().copied())).unwrap();
        cargo_test_args(&cli.args)
    }

    #[test]
    fn default_is_release_with_two_threads() {
        assert_eq!(
            args_for(&[]),
            ["test", "--release", "--", "--test-threads=2"]
        );
    }

    #[test]
    fn extra_arguments_go_to_cargo_then_to_the_harness() {
        assert_eq!(
            args_for(&[
                "--test-threads",
                "4",
                "--",
                "-p",
                "gotofw-tests",
                "--",
                "veth",
                "--nocapture"
            ]),
            [
                "test",
                "--release",
                "-p",
                "gotofw-tests",
                "--",
                "--test-threads=4",
                "veth",
                "--nocapture"
            ]
        );
    }

    #[test]
    fn harness_test_threads_wins() {
        assert_eq!(
            args_for(&["--", "--", "--test-threads=1"]),
            ["test", "--release", "--", "--test-threads=1"]
        );
    }
}
