//! `gotofw`: parses the command line and dispatches; errors become one line and an exit code.

use std::process::ExitCode;

use clap::Parser as _;
use filter_user::{
    cli::{Cli, Command},
    cmd,
    error::{EXIT_FAILURE, EXIT_NOT_FILTERING, EXIT_USAGE, NotFiltering, UsageError},
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Scenarios(args) => cmd::scenarios::run(args),
        Command::Attach(args) => cmd::attach::run(args),
        Command::Status(args) => cmd::status::run(args),
        Command::Detach(args) => cmd::detach::run(args),
        Command::CheckConfig(args) => cmd::check_config::run(args),
        Command::Metrics(args) => cmd::metrics::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Flows(args) => cmd::flows::run(args),
        Command::SetScenario(args) => cmd::set_scenario::run(args),
        Command::Reload(args) => cmd::reload::run(args),
        Command::Log(args) => cmd::log::run(args),
        Command::Explain(args) => cmd::explain::run(args),
        Command::Domains(args) => cmd::domains::run(args),
        Command::Pac(args) => cmd::pac::run(args),
        Command::Completions(args) => cmd::completions::run(args),
        Command::Man(args) => cmd::man::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = if err.downcast_ref::<UsageError>().is_some() {
                EXIT_USAGE
            } else if err.downcast_ref::<NotFiltering>().is_some() {
                EXIT_NOT_FILTERING
            } else {
                EXIT_FAILURE
            };
            eprintln!("gotofw: error: {err:#}");
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}
