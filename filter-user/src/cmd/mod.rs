//! One module per subcommand; each turns checked arguments into an effect and a report.

pub mod attach;
pub mod check_config;
pub mod completions;
pub mod detach;
pub mod domains;
pub mod explain;
pub mod flows;
pub mod learned;
pub mod log;
pub mod man;
pub mod metrics;
pub mod pac;
pub mod reload;
pub mod run;
pub mod scenarios;
pub mod set_scenario;
pub mod status;
pub mod watch;
