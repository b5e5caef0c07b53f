//! `gotofw`: parses the command line and dispatches; errors become one line and an exit code.

use std::process::ExitCode;

use clap::{Parser as _, error::ErrorKind};
use filter_user::{
    cli::{Cli, Command, clap_line},
    cmd,
    error::{
        EXIT_FAILURE, EXIT_NOT_FILTERING, EXIT_USAGE, NotFiltering, UsageError, shorten_values,
    },
};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return command_line_error(&err),
    };
    let result = match &cli.command {
        Command::Scenarios(args) => cmd::scenarios::run(args),
        Command::Attach(args) => cmd::attach::run(args),
        Command::Status(args) if args.watch => cmd::watch::run(args),
        Command::Status(args) => cmd::status::run(args),
        Command::Detach(args) => cmd::detach::run(args),
        Command::CheckConfig(args) => cmd::check_config::run(args),
        Command::Metrics(args) => cmd::metrics::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Flows(args) => cmd::flows::run(args),
        Command::Learned(args) => cmd::learned::run(args),
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
            eprintln!("gotofw: error: {}", shorten_values(&format!("{err:#}")));
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}

/// clap's answer to the command line: `--help` and `--version` (and the help that a bare
/// `gotofw` prints) as clap writes them; a bad command line as one `gotofw: error:` line, exit 2.
fn command_line_error(err: &clap::Error) -> ExitCode {
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = err.print();
        return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    eprintln!("gotofw: error: {}", clap_line(err, &args));
    ExitCode::from(u8::try_from(EXIT_USAGE).unwrap_or(2))
}
