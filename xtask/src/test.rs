//! `cargo xtask test`: set-up, then the whole test suite, in release mode.
//!
//! This is the test command of the README and of CI (`.ci/run`). It builds
//! the `gotofw` binary first and names it in `GOTOFW_BIN`, so the CLI tests
//! (`tests/tests/netns_cli.rs`) drive the binary of this very tree. Otherwise
//! the environment is passed through untouched: kernel tests decide for
//! themselves whether they can run (root) and whether skipping is allowed
//! (`CI=true` turns a skip into a failure).

use std::{
    env,
    ffi::OsString,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

use crate::{exec, paths, setup};

/// The variable that tells the CLI tests and the demo which gotofw to run.
pub const GOTOFW_BIN: &str = "GOTOFW_BIN";

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

/// Runs set-up, builds gotofw, then `cargo test --release` with `GOTOFW_BIN`
/// set; fails with cargo's exit code.
pub fn run(args: &Args) -> Result<()> {
    setup::run()?;
    let gotofw = build_gotofw()?;
    exec::run(
        exec::cargo()
            .args(cargo_test_args(args))
            .env(GOTOFW_BIN, &gotofw),
    )
    .context("tests failed; see the output above")
}

/// Builds the release `gotofw` binary (`cargo build --release -p filter-user
/// --bin gotofw`) and returns its absolute path. When `GOTOFW_BIN` is already
/// set, builds nothing and returns that binary instead, so an installed or
/// packaged gotofw can be tested.
pub fn build_gotofw() -> Result<PathBuf> {
    if let Some(preset) = env::var_os(GOTOFW_BIN).filter(|bin| !bin.is_empty()) {
        let preset = paths::workspace_root().join(preset);
        if !preset.is_file() {
            bail!(
                "{GOTOFW_BIN}={} is not a file: unset it to test the binary of this tree",
                preset.display()
            );
        }
        eprintln!(
            "{GOTOFW_BIN} is set: using {} (not building gotofw)",
            preset.display()
        );
        return Ok(preset);
    }
    exec::run(exec::cargo().args(["build", "--release", "-p", "filter-user", "--bin", "gotofw"]))
        .context("building gotofw failed; see the compiler output above")?;
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .or_else(|| env::var_os("CARGO_BUILD_TARGET_DIR"))
        .filter(|dir| !dir.is_empty());
    let bin = release_binary(paths::workspace_root(), target_dir, "gotofw");
    if !bin.is_file() {
        bail!(
            "cargo built gotofw, but it is not at {}: set {GOTOFW_BIN} to its path",
            bin.display()
        );
    }
    Ok(bin)
}

/// Where cargo, run in `root`, puts the release binary `name`: in
/// `target_dir` (relative to `root` unless absolute) or `root/target`.
fn release_binary(root: &Path, target_dir: Option<OsString>, name: &str) -> PathBuf {
    let target = target_dir.map_or_else(|| root.join("target"), |dir| root.join(dir));
    target.join("release").join(name)
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
    fn release_binary_follows_the_target_dir() {
        let root = Path::new("/src/gotofw");
        assert_eq!(
            release_binary(root, None, "gotofw"),
            Path::new("/src/gotofw/target/release/gotofw")
        );
        assert_eq!(
            release_binary(root, Some("out".into()), "gotofw"),
            Path::new("/src/gotofw/out/release/gotofw")
        );
        assert_eq!(
            release_binary(root, Some("/tmp/t".into()), "gotofw"),
            Path::new("/tmp/t/release/gotofw")
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
