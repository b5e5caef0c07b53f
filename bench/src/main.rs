//! `gotofw-bench`: runs gotofw's benchmarks and writes `BENCHMARKS.md` and `benchmarks.json`.
//! Normally started by `cargo xtask bench`, which builds gotofw first and passes `--gotofw`.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;

/// Runs gotofw's benchmarks (root; a few minutes, `--quick` seconds).
#[derive(Debug, Parser)]
#[command(name = "gotofw-bench", version, about)]
struct Args {
    /// Smoke mode: every item with tiny sizes (seconds; the numbers mean nothing).
    #[arg(long)]
    quick: bool,
    /// Directory for BENCHMARKS.md and benchmarks.json (default: the workspace root).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The gotofw binary items 4, 5 and 6 drive.
    #[arg(long, value_name = "PATH")]
    gotofw: PathBuf,
    /// The command line to record in the report (default: this program's).
    #[arg(long, value_name = "TEXT")]
    command: Option<String>,
    /// Only item 7 (domain rules: BPF_PROG_TEST_RUN, no veth lab), its section printed to
    /// standard output; BENCHMARKS.md and benchmarks.json are left as they are.
    #[arg(long)]
    dns_only: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let settings = if args.quick {
        bench::Settings::quick()
    } else {
        bench::Settings::full()
    };
    if args.dns_only {
        bench::preflight()?;
        let dns = bench::dns::dns_cost(&settings)?;
        print!("{}", bench::dns::markdown(&dns, settings.repeat));
        return Ok(());
    }
    let command = args
        .command
        .clone()
        .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "));
    let report = bench::run(&settings, &args.gotofw, &command)?;
    let out = args.out.clone().unwrap_or_else(bench::default_out_dir);
    bench::report::write(&report, &out)?;
    eprintln!(
        "wrote {} and {} ({:.0} s)",
        out.join(bench::report::MARKDOWN_FILE).display(),
        out.join(bench::report::JSON_FILE).display(),
        report.environment.seconds
    );
    Ok(())
}
