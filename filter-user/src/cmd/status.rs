//! `gotofw status`: what is attached where, and the counters.

use std::fmt::Write as _;

use crate::{
    cli::StatusArgs,
    error::NotFiltering,
    loader::FilterMode,
    output::{json, print, table},
    status_model::{Status, collect},
    system,
};

/// Runs the command (`--watch` is [`crate::cmd::watch::run`]'s, which the dispatcher calls).
pub fn run(args: &StatusArgs) -> anyhow::Result<()> {
    system::require_capabilities()?;
    let status = collect(args.iface.as_deref())?;
    if args.json {
        print(&json(&status)?)?;
        return not_filtering(&status);
    }
    let mut out = String::new();
    if status.interfaces.is_empty() {
        out.push_str(
            "no interface of this network namespace has a gotofw filter; attach one with `gotofw attach IFACE --scenario NAME` (stateful, the default)\n",
        );
    }
    for s in &status.interfaces {
        let _ = writeln!(
            out,
            "{}: {}, scenario {}, {} mode{}, xdp {}, {} link, {}, attached {}",
            s.interface,
            s.state_text(),
            s.scenario,
            s.mode,
            s.egress_hook.map_or_else(
                || {
                    if s.mode == FilterMode::IngressOnly {
                        " (outbound traffic not filtered)".to_owned()
                    } else {
                        String::new()
                    }
                },
                |h| format!(" (egress {})", h.name())
            ),
            s.xdp_mode.name(),
            s.link,
            match (s.log_rate, s.log_samples_lost) {
                (0, _) => "drop log off".to_owned(),
                (rate, Some(lost)) if lost > 0 =>
                    format!("drop log {rate}/s per CPU ({lost} samples lost: ring full)"),
                (rate, _) => format!("drop log {rate}/s per CPU"),
            },
            system::format_utc(s.attached_at),
        );
        if let Some(f) = &s.flows {
            let _ = writeln!(
                out,
                "  flows: {} live, {} in the table of {}",
                f.live, f.entries, f.table_size
            );
        }
        if let Some(line) = s.dns.line() {
            let _ = writeln!(out, "  {line}");
        }
        let mut rows = vec![
            [
                "RULE", "KIND", "ACTION", "DIR", "PROTO", "PORT", "NETWORKS", "PACKETS", "BYTES",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for c in &s.counters {
            let mut row = vec![c.name.clone(), c.kind.clone(), c.action.clone()];
            row.extend(c.match_cells());
            row.extend([c.packets.to_string(), c.bytes.to_string()]);
            rows.push(row);
        }
        out.push_str(&table(&rows));
    }
    if !status.other_namespaces.is_empty() {
        let _ = writeln!(
            out,
            "filters of other network namespaces (inspect them from there, or name the key: `gotofw status KEY`, `gotofw detach KEY`): {}",
            status.other_namespaces.join(", ")
        );
    }
    print(&out)?;
    not_filtering(&status)
}

/// The error (exit code 3) when a filter `status` showed is not filtering.
fn not_filtering(status: &Status) -> anyhow::Result<()> {
    let broken: Vec<String> = status
        .interfaces
        .iter()
        .filter(|s| !s.filtering)
        .map(|s| format!("{} ({})", s.interface, s.state.name()))
        .collect();
    if broken.is_empty() {
        return Ok(());
    }
    Err(NotFiltering(format!(
        "not filtering: {}; attach it anew with `gotofw reload`, `gotofw set-scenario IFACE NAME` or `gotofw attach IFACE --scenario NAME --replace`, or remove it with `gotofw detach IFACE`",
        broken.join(", ")
    ))
    .into())
}
