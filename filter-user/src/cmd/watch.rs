//! `gotofw status --watch`: the counters redrawn every interval, with packets and bytes per
//! second since the previous frame. On a terminal each frame replaces the last (like top);
//! otherwise frames follow one another, separated by a blank line, for logs and scripts.

use std::{
    collections::HashMap,
    fmt::Write as _,
    io::{self, IsTerminal as _, Write as _},
    thread,
    time::{Duration, Instant},
};

use crate::{
    cli::StatusArgs,
    output::table,
    status_model::{self, Status},
    system,
};

/// Moves the cursor home and clears the screen.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// Runs `status --watch`.
pub fn run(args: &StatusArgs) -> anyhow::Result<()> {
    system::require_capabilities()?;
    let interval = Duration::from_secs_f64(args.interval);
    let terminal = io::stdout().is_terminal();
    let mut previous: Option<(Instant, Status)> = None;
    for frame in 1.. {
        let started = Instant::now();
        let status = status_model::collect(args.iface.as_deref())?;
        let since = previous.as_ref().map(|(at, s)| (started - *at, s));
        let mut text = String::new();
        if terminal {
            text.push_str(CLEAR);
        } else if frame > 1 {
            text.push('\n');
        }
        text.push_str(&render(&status, since, args.interval, frame, terminal));
        if !emit(&text)? {
            break; // the reader went away (`| head`)
        }
        if args.count.is_some_and(|n| frame >= n) {
            break;
        }
        previous = Some((started, status));
        thread::sleep(interval.saturating_sub(started.elapsed()));
    }
    Ok(())
}

/// Writes `text`; false when standard output is a closed pipe.
fn emit(text: &str) -> io::Result<bool> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
    }
}

/// Packets and bytes of every counter, by (pin key, direction, name).
fn counts(status: &Status) -> HashMap<(&str, &str, &str), (u64, u64)> {
    status
        .interfaces
        .iter()
        .flat_map(|s| {
            s.counters.iter().map(|c| {
                (
                    (s.key.as_str(), c.direction, c.name.as_str()),
                    (c.packets, c.bytes),
                )
            })
        })
        .collect()
}

/// Per second, `count - before` over `elapsed`; `None` when there is no earlier read or the
/// counter went backwards (the rule set was swapped, which restarts the counters).
pub fn rate(count: u64, before: Option<u64>, elapsed: Duration) -> Option<f64> {
    let before = before?;
    let secs = elapsed.as_secs_f64();
    if count < before || secs <= 0.0 {
        return None;
    }
    #[expect(
        clippy::cast_precision_loss,
        reason = "a rate is shown with three significant digits"
    )]
    Some((count - before) as f64 / secs)
}

/// A rate in three significant digits with an SI suffix: `0.5`, `12.0`, `830`, `1.2k`, `45.0M`.
pub fn human(rate: Option<f64>) -> String {
    let Some(rate) = rate else {
        return "-".to_owned();
    };
    let (value, suffix) = [(1e9, "G"), (1e6, "M"), (1e3, "k")]
        .into_iter()
        .find(|(scale, _)| rate >= *scale)
        .map_or((rate, ""), |(scale, suffix)| (rate / scale, suffix));
    let decimals = usize::from(value < if suffix.is_empty() { 100.0 } else { 10.0 });
    format!("{value:.decimals$}{suffix}")
}

/// One frame: a header line, then per interface its summary and counter table with rates.
fn render(
    status: &Status,
    since: Option<(Duration, &Status)>,
    interval: f64,
    frame: u64,
    terminal: bool,
) -> String {
    let before = since.map(|(_, s)| counts(s)).unwrap_or_default();
    let elapsed = since.map_or(Duration::ZERO, |(d, _)| d);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "gotofw status --watch: every {interval}s, {}, frame {frame}{}",
        system::format_utc(system::unix_now()),
        if terminal { " (Ctrl-C to stop)" } else { "" }
    );
    if status.interfaces.is_empty() {
        out.push_str("no interface of this network namespace has a gotofw filter\n");
    }
    for s in &status.interfaces {
        let _ = writeln!(
            out,
            "{}: {}, scenario {}, {} mode, attached {}",
            s.interface,
            s.state_text(),
            s.scenario,
            s.mode,
            system::format_utc(s.attached_at),
        );
        if let Some(f) = &s.flows {
            let _ = writeln!(
                out,
                "  flows: {} live, {} in the table of {}",
                f.live, f.entries, f.table_size
            );
        }
        let mut rows = vec![
            [
                "RULE", "ACTION", "DIR", "PROTO", "PORT", "NETWORKS", "PACKETS", "BYTES", "PKT/S",
                "BYTES/S",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for c in &s.counters {
            let old = before.get(&(s.key.as_str(), c.direction, c.name.as_str()));
            let mut row = vec![c.name.clone(), c.action.clone()];
            row.extend(c.match_cells());
            row.extend([
                c.packets.to_string(),
                c.bytes.to_string(),
                human(rate(c.packets, old.map(|o| o.0), elapsed)),
                human(rate(c.bytes, old.map(|o| o.1), elapsed)),
            ]);
            rows.push(row);
        }
        out.push_str(&table(&rows));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second_and_reset_on_a_swap() {
        let two = Duration::from_secs(2);
        assert_eq!(rate(30, Some(10), two), Some(10.0));
        assert_eq!(rate(5, Some(10), two), None);
        assert_eq!(rate(5, None, two), None);
        assert_eq!(rate(5, Some(5), Duration::ZERO), None);
    }

    #[test]
    fn human_rates_keep_three_digits() {
        let cases = [
            (None, "-"),
            (Some(0.0), "0.0"),
            (Some(0.26), "0.3"),
            (Some(12.0), "12.0"),
            (Some(830.4), "830"),
            (Some(1_234.0), "1.2k"),
            (Some(45_000.0), "45k"),
            (Some(2_500_000.0), "2.5M"),
            (Some(3e9), "3.0G"),
        ];
        for (value, text) in cases {
            assert_eq!(human(value), text, "{value:?}");
        }
    }
}
