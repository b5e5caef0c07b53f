//! The command line, as clap sees it. Each doc comment is the `--help` text.

use clap::{Args, Parser, Subcommand};

use crate::{
    kernel::XdpModeArg,
    scenario::{Protocol, RawNetworkArgs, Scenario},
};

/// gotofw: the GoTo meeting firewall scenarios, enforced in XDP on a gateway's WAN interface.
///
/// gotofw attaches an XDP program to the WAN interface that admits only the traffic of the chosen
/// GoTo scenario (plus ARP, neighbour discovery, DHCP, DNS, NTP and ICMP errors, each switchable)
/// and counts every packet under the rule that decided it. The filter stays attached, pinned under
/// /sys/fs/bpf/gotofw/<IFACE>/, after the command exits.
#[derive(Debug, Parser)]
#[command(
    name = "gotofw",
    version,
    propagate_version = true,
    after_help = "EXAMPLES:\n  gotofw scenarios\n  gotofw attach eth1 --scenario udp-turn --stateless\n  gotofw status eth1 --json\n  gotofw explain --scenario tcp-turn udp 68.64.0.10:3478\n  gotofw detach eth1\n\nEXIT STATUS:\n  0 success, 1 system failure, 2 bad input (nothing was changed)"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the scenarios with their rules, the allowances and the default action.
    #[command(
        after_help = "EXAMPLES:\n  gotofw scenarios\n  gotofw scenarios --json | jq '.scenarios[].name'"
    )]
    Scenarios(ScenariosArgs),
    /// Attach the filter to an interface with a scenario, pin it, and exit.
    #[command(
        after_help = "EXAMPLES:\n  gotofw attach eth1 --scenario udp-turn --stateless\n  gotofw attach eth1 --scenario udp-turn --turn-dst any --stateless\n  gotofw attach eth1 --scenario tcp-turn --network 2001:db8:77::/48 --stateless\n  gotofw attach eth1 --scenario tcp-443 --no-allow ntp --dns-server 192.0.2.53 --stateless\n  gotofw attach eth1 --scenario no-restrictions --stateless --replace"
    )]
    Attach(AttachArgs),
    /// Show the attached filters: scenario, mode, and packets and bytes per rule.
    #[command(
        after_help = "EXAMPLES:\n  gotofw status\n  gotofw status eth1 --json | jq '.interfaces[0].counters[] | select(.name==\"https\") | .packets'"
    )]
    Status(StatusArgs),
    /// Remove the filter from an interface: program, link and pins.
    #[command(after_help = "EXAMPLES:\n  gotofw detach eth1")]
    Detach(DetachArgs),
    /// Show which rule decides a connection to ADDR:PORT, and its reply, without attaching.
    #[command(
        after_help = "EXAMPLES:\n  gotofw explain --scenario udp-turn udp 68.64.0.10:3478\n  gotofw explain --scenario udp-turn udp 203.0.113.10:3478 --json\n  gotofw explain --scenario tcp-443 tcp [2001:db8::1]:443"
    )]
    Explain(ExplainArgs),
}

/// `gotofw scenarios`.
#[derive(Debug, Args)]
pub struct ScenariosArgs {
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// `gotofw attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The WAN interface to filter.
    #[arg(value_name = "IFACE")]
    pub iface: String,

    /// The GoTo scenario to enforce: no-restrictions, udp-turn, tcp-turn or tcp-443.
    #[arg(long, value_name = "NAME", value_parser = parse_scenario)]
    pub scenario: Scenario,

    #[command(flatten)]
    pub networks: RawNetworkArgs,

    /// Match replies by their source port and network (XDP only, no state). Required in this
    /// version: the stateful mode, which admits only replies to flows opened from inside, comes
    /// next and will be the default.
    #[arg(long)]
    pub stateless: bool,

    /// How to attach: auto (native when the driver can), native, or generic.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = XdpModeArg::Auto)]
    pub xdp_mode: XdpModeArg,

    /// Swap the rule set of the filter already attached to IFACE, atomically (counters restart).
    #[arg(long)]
    pub replace: bool,
}

/// `gotofw status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this interface (default: every interface with a filter).
    #[arg(value_name = "IFACE")]
    pub iface: Option<String>,

    /// Print JSON (format documented in the README).
    #[arg(long)]
    pub json: bool,
}

/// `gotofw detach`.
#[derive(Debug, Args)]
pub struct DetachArgs {
    /// The interface to clear.
    #[arg(value_name = "IFACE")]
    pub iface: String,
}

/// `gotofw explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The scenario to evaluate.
    #[arg(long, value_name = "NAME", value_parser = parse_scenario)]
    pub scenario: Scenario,

    #[command(flatten)]
    pub networks: RawNetworkArgs,

    /// Transport protocol of the connection.
    #[arg(value_enum, value_name = "PROTO")]
    pub protocol: Protocol,

    /// Remote end of the connection, ADDR:PORT (IPv6 as [ADDR]:PORT).
    #[arg(value_name = "ADDR:PORT")]
    pub destination: String,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_scenario(s: &str) -> Result<Scenario, String> {
    s.parse::<Scenario>().map_err(|e| e.to_string())
}
