//! `cargo xtask fuzz`: the long runs of the classifier's fuzzing.
//!
//! By default, the differential test (`tests/tests/differential.rs`) with many cases: random
//! hostile frames through the loaded XDP program and through the host classifier, which must
//! agree (root; CI runs the same tests with 150,000 cases per seed). With `--coverage-guided`,
//! a cargo-fuzz target (`fuzz/`) under libFuzzer: `classify` (the host classifier, the default)
//! or `dns` (the DNS answer parser, `--target dns`); nightly, and cargo-fuzz, installed when
//! missing.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::{exec, paths, setup};

/// The differential test's variables: cases and seed.
const CASES_ENV: &str = "GOTOFW_DIFF_CASES";
const SEED_ENV: &str = "GOTOFW_DIFF_SEED";

/// Options of `cargo xtask fuzz`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Cases of the differential run, split over the rule sets.
    #[arg(
        long,
        default_value_t = 1_000_000,
        value_name = "N",
        conflicts_with = "coverage_guided"
    )]
    cases: u64,
    /// Seed of the differential run, decimal or 0x-hex, to replay a failure [default: from the
    /// clock, printed].
    #[arg(long, value_name = "SEED", conflicts_with = "coverage_guided")]
    seed: Option<String>,
    /// Run the coverage-guided target (cargo-fuzz, libFuzzer) instead of the differential test.
    #[arg(long)]
    coverage_guided: bool,
    /// The coverage-guided target: `classify` (the classifier) or `dns` (the DNS answer parser).
    #[arg(
        long,
        default_value = "classify",
        value_parser = ["classify", "dns"],
        requires = "coverage_guided"
    )]
    target: String,
    /// How long the coverage-guided run lasts.
    #[arg(
        long,
        default_value_t = 600,
        value_name = "N",
        requires = "coverage_guided"
    )]
    seconds: u64,
}

/// Runs set-up, then the differential test or the coverage-guided target.
pub fn run(args: &Args) -> Result<()> {
    setup::run()?;
    if args.coverage_guided {
        coverage_guided(&args.target, args.seconds)
    } else {
        differential(args.cases, args.seed.as_deref())
    }
}

/// `cargo test --release -p gotofw-tests --test differential -- --exact differential_random_seed
/// --nocapture` with the cases and seed in the environment.
fn differential(cases: u64, seed: Option<&str>) -> Result<()> {
    if cases == 0 {
        bail!("--cases 0 runs nothing: give at least 1");
    }
    let mut cmd = exec::cargo();
    cmd.args(differential_args())
        .env(CASES_ENV, cases.to_string());
    match seed {
        Some(seed) => {
            cmd.env(SEED_ENV, seed);
        }
        None => {
            cmd.env_remove(SEED_ENV);
        }
    }
    exec::run(&mut cmd).context(
        "the differential run failed: the shrunk batch is in tests/regressions/ (see above)",
    )
}

fn differential_args() -> Vec<&'static str> {
    vec![
        "test",
        "--release",
        "-p",
        "gotofw-tests",
        "--test",
        "differential",
        "--",
        "--exact",
        "differential_random_seed",
        "--nocapture",
    ]
}

/// Installs cargo-fuzz if needed, writes the classifier's seed corpus if it is missing, then
/// runs `target` for `seconds`; new inputs go to a scratch corpus under `target/`, not into the
/// repository.
fn coverage_guided(target: &str, seconds: u64) -> Result<()> {
    if seconds == 0 {
        bail!("--seconds 0 runs nothing: give at least 1");
    }
    let has_cargo_fuzz = exec::probe(exec::cargo().args(["fuzz", "--version"]))
        .is_ok_and(|out| out.status.success());
    if !has_cargo_fuzz {
        exec::run(exec::cargo().args(["install", "cargo-fuzz", "--locked"]))
            .context("installing cargo-fuzz")?;
    }
    let root = paths::workspace_root();
    let seeds = Path::new("fuzz/corpus").join(target);
    let empty = std::fs::read_dir(root.join(&seeds)).map_or(true, |mut d| d.next().is_none());
    if empty && target == "classify" {
        exec::run(exec::cargo().args([
            "run",
            "--release",
            "--manifest-path",
            "fuzz/Cargo.toml",
            "--example",
            "seed_corpus",
        ]))
        .context("writing the seed corpus")?;
    }
    let scratch = root.join("target/fuzz-corpus").join(target);
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    exec::run(exec::cargo().args(fuzz_run_args(target, seconds, &scratch, &seeds)))
        .with_context(|| {
            format!(
                "the fuzz target failed to build or found a crash (its input is then in fuzz/artifacts/{target}/)"
            )
        })
}

/// `+nightly fuzz run TARGET SCRATCH SEEDS -- -max_total_time=N -print_final_stats=1`:
/// libFuzzer reads both corpora and writes new inputs to the first.
fn fuzz_run_args(target: &str, seconds: u64, scratch: &Path, seeds: &Path) -> Vec<String> {
    let path = |p: &Path| PathBuf::from(p).display().to_string();
    vec![
        "+nightly".to_owned(),
        "fuzz".to_owned(),
        "run".to_owned(),
        target.to_owned(),
        path(scratch),
        path(seeds),
        "--".to_owned(),
        format!("-max_total_time={seconds}"),
        "-print_final_stats=1".to_owned(),
    ]
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

    fn parse(line: &[&str]) -> Result<Args, clap::Error> {
        Cli::try_parse_from(std::iter::once("fuzz").chain(line.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn defaults_to_a_million_differential_cases() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.cases, 1_000_000);
        assert!(!args.coverage_guided);
        assert!(args.seed.is_none());
    }

    #[test]
    fn coverage_guided_takes_seconds_and_not_cases() {
        let args = parse(&["--coverage-guided", "--seconds", "30"]).unwrap();
        assert!(args.coverage_guided);
        assert_eq!(args.seconds, 30);
        assert!(parse(&["--coverage-guided", "--cases", "5"]).is_err());
        assert!(parse(&["--seconds", "5"]).is_err());
        assert_eq!(parse(&["--coverage-guided"]).unwrap().target, "classify");
        let dns = parse(&["--coverage-guided", "--target", "dns"]).unwrap();
        assert_eq!(dns.target, "dns");
        assert!(parse(&["--coverage-guided", "--target", "other"]).is_err());
        assert!(
            parse(&["--target", "dns"]).is_err(),
            "--target without --coverage-guided"
        );
    }

    #[test]
    fn differential_runs_only_the_random_seed_test() {
        let args = differential_args();
        assert_eq!(
            &args[..6],
            [
                "test",
                "--release",
                "-p",
                "gotofw-tests",
                "--test",
                "differential"
            ]
        );
        assert!(args.contains(&"differential_random_seed"));
    }

    #[test]
    fn fuzz_run_writes_to_the_scratch_corpus() {
        let args = fuzz_run_args(
            "classify",
            60,
            Path::new("/t/scratch"),
            Path::new("fuzz/corpus/classify"),
        );
        assert_eq!(
            args,
            [
                "+nightly",
                "fuzz",
                "run",
                "classify",
                "/t/scratch",
                "fuzz/corpus/classify",
                "--",
                "-max_total_time=60",
                "-print_final_stats=1"
            ]
        );
    }
}
