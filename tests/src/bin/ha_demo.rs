//! `ha_demo`: a GoTo-like call through a pair of gateways while the master fails.
//!
//! Builds the HA lab (`gotofw_tests::halab`): a client behind two gateways that keepalived
//! (VRRP) and conntrackd (FTFW) make a pair, gotofw attached in stateful mode on both WAN
//! interfaces from one configuration file, coturn and nginx in the internet namespace. For each
//! failover it runs a call (a TURN allocation relaying 50 packets/s both ways, an HTTPS download
//! at a limited rate), fails the master (its keepalived stopped, or its links cut, in turn),
//! lets it come back, and prints the media gap, the loss, whether the download survived on its
//! one connection, and how gotofw on the backup learned the call's flows; then a summary.
//! Needs root.
//!
//! Exit status: 0 when every failover kept the call (download complete on one connection,
//! media back), 1 otherwise or when the lab cannot be built.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, Result};
use clap::Parser;
use gotofw_tests::{
    Gotofw, find_gotofw_bin,
    halab::{
        ADVERT_INT, DOWNLOAD_BYTES, DOWNLOAD_RATE, FailoverReport, Failure, HaLab, MEDIA_RATE,
    },
    is_root,
};

/// A call through an HA pair of gotofw gateways while the master fails. Needs root.
#[derive(Debug, Parser)]
#[command(name = "ha_demo", version, about, long_about = None)]
struct Args {
    /// The gotofw binary [default: $GOTOFW_BIN, else gotofw next to this program].
    #[arg(long, value_name = "PATH")]
    gotofw: Option<PathBuf>,
    /// How many failovers, alternately by stopping keepalived and by cutting the links.
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=50))]
    failovers: u32,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !is_root() {
        eprintln!("ha_demo: needs root: it creates network namespaces and attaches XDP programs");
        return ExitCode::FAILURE;
    }
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("ha_demo: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn flow_line(report: &FailoverReport) -> String {
    report
        .gw2_after
        .iter()
        .map(|flow| {
            format!(
                "{} {} {} {} opened {}",
                flow.protocol,
                flow.remote,
                flow.rule.as_deref().unwrap_or("-"),
                flow.state,
                flow.opened
                    .as_deref()
                    .unwrap_or("(not recorded by this gotofw)")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "not back".to_owned(), |ms| format!("{ms:.0} ms"))
}

fn run(args: &Args) -> Result<bool> {
    let bin = args
        .gotofw
        .clone()
        .map_or_else(find_gotofw_bin, Ok)
        .map_err(anyhow::Error::msg)?;
    let gotofw = Gotofw::at(bin);
    println!(
        "building the HA lab: lan (192.0.2.10) behind gw1 (keepalived priority 200) and gw2 (100), \
         VRRP adverts every {ADVERT_INT} s, conntrackd FTFW on the sync link, coturn and nginx in inet"
    );
    let lab = HaLab::new().context("building the HA lab")?;
    let _attached = lab.attach_gotofw(&gotofw)?;
    println!(
        "gotofw attached on both gateways' {} from {}",
        lab.wan(),
        lab.gotofw_config().display()
    );
    println!(
        "each call: TURN allocation on 68.64.0.10:3478, {MEDIA_RATE} packets/s relayed both ways, \
         and {} MiB over HTTPS from 198.51.100.10 (curl --limit-rate {DOWNLOAD_RATE}); gw1 fails 4 s in and \
         comes back 8 s later\n",
        DOWNLOAD_BYTES >> 20
    );
    let mut reports = Vec::new();
    for index in 0..args.failovers {
        let failure = if index % 2 == 0 {
            Failure::StopKeepalived
        } else {
            Failure::CutLinks
        };
        let report = lab.failover(&gotofw, failure).with_context(|| {
            format!("failover {} ({failure}):\n{}", index + 1, lab.daemon_logs())
        })?;
        println!(
            "failover {} ({}): gw2 took over in {} ms; media gap {}, failback gap {}, lost {}/{} \
             packets; download {} ({} bytes, {} connection(s), {:.1} s); gw2 dropped {} inbound \
             packet(s) before the flows came back\n  gw2 flows: {}",
            index + 1,
            report.failure,
            report.takeover.as_millis(),
            ms(report.media.failover_gap_ms),
            ms(report.media.failback_gap_ms),
            report.media.lost,
            report.media.sent,
            if report.download.survived() {
                "survived"
            } else {
                "FAILED"
            },
            report.download.bytes,
            report.download.connects,
            report.download.seconds,
            report.gw2_dropped_in,
            flow_line(&report),
        );
        reports.push(report);
    }
    println!("\nsummary over {} failover(s):", reports.len());
    for failure in [Failure::StopKeepalived, Failure::CutLinks] {
        let ours: Vec<&FailoverReport> = reports.iter().filter(|r| r.failure == failure).collect();
        if ours.is_empty() {
            continue;
        }
        let gaps: Vec<f64> = ours
            .iter()
            .filter_map(|r| r.media.failover_gap_ms)
            .collect();
        let lost: Vec<f64> = ours
            .iter()
            .map(|r| f64::from(u32::try_from(r.media.lost).unwrap_or(u32::MAX)))
            .collect();
        let takeover: Vec<f64> = ours
            .iter()
            .map(|r| r.takeover.as_secs_f64() * 1000.0)
            .collect();
        let survived = ours.iter().filter(|r| r.download.survived()).count();
        println!(
            "  {failure} ({}): media gap ms {}; lost packets {}; takeover ms {}; TCP survived {survived}/{}; media back {}/{}",
            ours.len(),
            spread(&gaps),
            spread(&lost),
            spread(&takeover),
            ours.len(),
            gaps.len(),
            ours.len(),
        );
    }
    let all_kept = reports.iter().all(|r| {
        r.download.survived()
            && r.media.failover_gap_ms.is_some()
            && r.media.failback_gap_ms.is_some()
    });
    Ok(all_kept)
}

/// `min / median / max` of `values`.
fn spread(values: &[f64]) -> String {
    if values.is_empty() {
        return "-".to_owned();
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        f64::midpoint(sorted[sorted.len() / 2 - 1], sorted[sorted.len() / 2])
    };
    format!(
        "min {:.0} / median {:.0} / max {:.0}",
        sorted[0],
        median,
        sorted[sorted.len() - 1]
    )
}
