//! A call through the pair while the master fails: the media client (`call.py`, a TURN
//! allocation relaying data both ways) and an HTTPS download run from `lan`; gw1 fails, gw2
//! takes over, gw1 comes back (failback). Measures the media gaps, the loss, whether the
//! download completed on its one connection, and what gotofw on gw2 learned.

use std::{
    fmt, fs, thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{DOWNLOAD_BYTES, DOWNLOAD_SERVER, HaLab, TURN_SERVER};
use crate::{
    Gotofw, Netns, counter_in,
    daemon::{Bounds, Finished, run_bounded},
    gotofw::INET_ADDR,
    lab3::{TURN_PASSWORD, TURN_PEER, TURN_USER},
};

/// The media client.
const CALL_SCRIPT: &str = include_str!("call.py");
/// Media packets a second each way, as an audio stream sends (20 ms frames).
pub const MEDIA_RATE: u32 = 50;
/// How long the call sends.
const CALL: Duration = Duration::from_secs(20);
/// When gw1 fails, after the call and the download start.
const FAIL_AT: Duration = Duration::from_secs(4);
/// When gw2's flows are read, after the failure.
const FLOWS_AFTER: Duration = Duration::from_secs(4);
/// When gw1 comes back, after the failure.
const RESTORE_AFTER: Duration = Duration::from_secs(8);
/// The download's rate limit (curl `--limit-rate`), so that it spans the failover.
pub const DOWNLOAD_RATE: &str = "256k";
/// The download's TCP keepalive (curl `--keepalive-time`): idle seconds before a probe.
pub const KEEPALIVE_SECS: &str = "1";
/// Bound on the download (curl `--max-time`).
const DOWNLOAD_MAX_SECS: u64 = 90;

/// How the master fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Its keepalived is stopped (SIGTERM): it gives the addresses up at once.
    StopKeepalived,
    /// Both its LAN and WAN links are cut (`ip link set down`): the backup takes over once
    /// three adverts are missed.
    CutLinks,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::StopKeepalived => "keepalived stopped",
            Self::CutLinks => "links cut",
        })
    }
}

/// What the media client saw.
#[derive(Clone, Debug)]
pub struct Media {
    /// Packets sent to the relay.
    pub sent: u64,
    /// Distinct packets that came back through the relay.
    pub received: u64,
    /// `sent - received`.
    pub lost: u64,
    /// The client's UDP port.
    pub local_port: u16,
    /// The longest interval without relayed data back across the failover, in ms (0: none
    /// over 100 ms); `None` when media did not come back before the failback.
    pub failover_gap_ms: Option<f64>,
    /// The same across the failback; `None` when media did not come back before the end.
    pub failback_gap_ms: Option<f64>,
}

/// What the download did.
#[derive(Clone, Debug)]
pub struct Download {
    /// curl's `%{num_connects}`: 1 when the one connection carried it all.
    pub connects: u64,
    /// Bytes received.
    pub bytes: u64,
    /// The HTTP status.
    pub http_code: u16,
    /// Seconds it took.
    pub seconds: f64,
    /// The client's TCP port.
    pub local_port: u16,
    /// curl's exit status (0: success; `None`: killed at the bound).
    pub exit: Option<i32>,
    /// curl's own message, if any.
    pub error: String,
}

impl Download {
    /// Complete, on one connection, with status 200.
    pub fn survived(&self) -> bool {
        self.exit == Some(0)
            && self.connects == 1
            && self.http_code == 200
            && usize::try_from(self.bytes) == Ok(DOWNLOAD_BYTES)
    }
}

/// A flow of the call in gotofw's table (`gotofw flows --json`).
#[derive(Clone, Debug)]
pub struct FlowSeen {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The local (post-NAT) end.
    pub local: String,
    /// The remote end.
    pub remote: String,
    /// The rule that admitted it.
    pub rule: Option<String>,
    /// Its state.
    pub state: String,
    /// How it was opened (`syn`, `mid-stream`, `first-packet`); `None` when this gotofw does
    /// not say.
    pub opened: Option<String>,
    /// Packets each way.
    pub packets_in: u64,
    /// Packets each way.
    pub packets_out: u64,
}

/// One failover, measured.
#[derive(Clone, Debug)]
pub struct FailoverReport {
    /// How the master failed.
    pub failure: Failure,
    /// From the failure to gw2 holding both addresses (and gw1 neither).
    pub takeover: Duration,
    /// From gw1's return to it holding both addresses again.
    pub failback: Duration,
    /// The media.
    pub media: Media,
    /// The download.
    pub download: Download,
    /// The call's flows in gw2's table just before the failure (there should be none).
    pub gw2_before: Vec<FlowSeen>,
    /// The call's flows in gw2's table after the takeover.
    pub gw2_after: Vec<FlowSeen>,
    /// Inbound packets gotofw on gw2 dropped as `default-block` between the two reads.
    pub gw2_dropped_in: u64,
}

impl FailoverReport {
    /// The UDP flow of the call on gw2 after the takeover.
    pub fn udp_flow(&self) -> Option<&FlowSeen> {
        self.gw2_after.iter().find(|flow| flow.protocol == "udp")
    }

    /// The TCP flow of the download on gw2 after the takeover.
    pub fn tcp_flow(&self) -> Option<&FlowSeen> {
        self.gw2_after.iter().find(|flow| flow.protocol == "tcp")
    }
}

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        thread::sleep(at - now);
    }
}

impl HaLab {
    /// Runs a call through a failure of gw1 (which must be the master) and its return.
    pub fn failover(&self, gotofw: &Gotofw, failure: Failure) -> Result<FailoverReport> {
        self.wait_master(0)?;
        let script = self.dir().join("call.py");
        fs::write(&script, CALL_SCRIPT)?;
        let dropped_before = self.dropped_in(gotofw, 1)?;
        let call_args: Vec<String> = vec![
            script.display().to_string(),
            TURN_SERVER.to_string(),
            "3478".to_owned(),
            TURN_USER.to_owned(),
            TURN_PASSWORD.to_owned(),
            TURN_PEER.ip().to_string(),
            TURN_PEER.port().to_string(),
            CALL.as_secs().to_string(),
            MEDIA_RATE.to_string(),
        ];
        let curl_args: Vec<String> = [
            "-k",
            "-s",
            "-S",
            "-o",
            "/dev/null",
            "--limit-rate",
            DOWNLOAD_RATE,
            // The download sends nothing but ACKs: without data coming in it falls silent, and
            // gotofw on the new master drops the server's retransmissions until an outbound
            // packet comes. TCP keepalive after 1 s idle stands in for the traffic a real
            // client's connection carries (curl's default waits 60 s).
            "--keepalive-time",
            KEEPALIVE_SECS,
            "--max-time",
            &DOWNLOAD_MAX_SECS.to_string(),
            "-w",
            "%{num_connects} %{size_download} %{http_code} %{time_total} %{local_port}\\n",
            &format!("https://{DOWNLOAD_SERVER}/files/download"),
        ]
        .map(str::to_owned)
        .to_vec();

        let Self {
            gateways,
            lan,
            programs,
            wan,
            ..
        } = self;
        let wan = wan.as_str();
        let start = Instant::now();
        let (call, download, timeline) = thread::scope(|scope| -> Result<_> {
            let call = scope.spawn(|| {
                run_bounded(
                    lan,
                    &programs.python3,
                    &call_args,
                    Bounds {
                        deadline: CALL + Duration::from_secs(15),
                        progress: None,
                    },
                )
            });
            let download = scope.spawn(|| {
                run_bounded(
                    lan,
                    &programs.curl,
                    &curl_args,
                    Bounds {
                        deadline: Duration::from_secs(DOWNLOAD_MAX_SECS + 5),
                        progress: None,
                    },
                )
            });
            sleep_until(start + FAIL_AT);
            let gw2_before = flows_of(gotofw, &gateways[1].ns, wan)?;
            let failed_at = epoch();
            let fail_instant = Instant::now();
            match failure {
                Failure::StopKeepalived => gateways[0].stop_keepalived()?,
                Failure::CutLinks => {
                    let ns = &gateways[0].ns;
                    ns.ip(["link", "set", "lan0", "down"])?;
                    ns.ip(["link", "set", wan, "down"])?;
                }
            }
            let takeover = super::wait_master(gateways, wan, 1)?;
            sleep_until(fail_instant + FLOWS_AFTER);
            let gw2_after = flows_of(gotofw, &gateways[1].ns, wan)?;
            let dropped_after = dropped_in(gotofw, &gateways[1].ns, wan)?;
            sleep_until(fail_instant + RESTORE_AFTER);
            let restored_at = epoch();
            match failure {
                Failure::StopKeepalived => {
                    gateways[0].start_keepalived(
                        &programs.keepalived,
                        &programs.conntrackd,
                        wan,
                    )?;
                }
                Failure::CutLinks => {
                    let ns = &gateways[0].ns;
                    ns.ip(["link", "set", "lan0", "up"])?;
                    ns.ip(["link", "set", wan, "up"])?;
                    // The default route went with the link.
                    ns.ip(["route", "replace", "default", "via", &INET_ADDR.to_string()])?;
                }
            }
            let failback = super::wait_master(gateways, wan, 0)?;
            let call = call.join().expect("the call thread panicked")?;
            let download = download.join().expect("the download thread panicked")?;
            Ok((
                call,
                download,
                Timeline {
                    failed_at,
                    restored_at,
                    takeover,
                    failback,
                    gw2_before,
                    gw2_after,
                    dropped: dropped_after.saturating_sub(dropped_before),
                },
            ))
        })?;
        let media = parse_call(&call, &timeline)
            .with_context(|| format!("the media client failed; its output:\n{}", call.output))?;
        let download = parse_download(&download);
        // The call's own flows: those of its client ports (the NAT keeps them).
        let ours = |flows: Vec<FlowSeen>| -> Vec<FlowSeen> {
            flows
                .into_iter()
                .filter(|flow| {
                    let port = if flow.protocol == "udp" {
                        media.local_port
                    } else {
                        download.local_port
                    };
                    flow.local.ends_with(&format!(":{port}"))
                })
                .collect()
        };
        let gw2_before = ours(timeline.gw2_before);
        let gw2_after = ours(timeline.gw2_after);
        Ok(FailoverReport {
            failure,
            takeover: timeline.takeover,
            failback: timeline.failback,
            media,
            download,
            gw2_before,
            gw2_after,
            gw2_dropped_in: timeline.dropped,
        })
    }

    /// The call's flows (UDP to the TURN server's 3478, TCP to the download server's 443) in
    /// gateway `index`'s gotofw table.
    pub fn call_flows(&self, gotofw: &Gotofw, index: usize) -> Result<Vec<FlowSeen>> {
        flows_of(gotofw, &self.gateways[index].ns, &self.wan)
    }

    /// Inbound `default-block` drops of gateway `index`'s gotofw.
    pub fn dropped_in(&self, gotofw: &Gotofw, index: usize) -> Result<u64> {
        dropped_in(gotofw, &self.gateways[index].ns, &self.wan)
    }
}

/// What happened when, in [`HaLab::failover`].
struct Timeline {
    failed_at: f64,
    restored_at: f64,
    takeover: Duration,
    failback: Duration,
    gw2_before: Vec<FlowSeen>,
    gw2_after: Vec<FlowSeen>,
    dropped: u64,
}

fn flows_of(gotofw: &Gotofw, ns: &Netns, wan: &str) -> Result<Vec<FlowSeen>> {
    let output = gotofw.run(ns, &["flows", wan, "--json"]);
    if !output.status.success() {
        bail!(
            "gotofw flows {wan} --json failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let json: Value = serde_json::from_slice(&output.stdout).context("flows --json")?;
    let wanted = [
        ("udp", format!("{TURN_SERVER}:3478")),
        ("tcp", format!("{DOWNLOAD_SERVER}:443")),
    ];
    let flows = json["interfaces"][0]["flows"]
        .as_array()
        .context("flows --json has no interfaces[0].flows")?;
    Ok(flows
        .iter()
        .filter(|flow| {
            wanted
                .iter()
                .any(|(proto, remote)| flow["protocol"] == *proto && flow["remote"] == *remote)
        })
        .map(|flow| FlowSeen {
            protocol: flow["protocol"].as_str().unwrap_or_default().to_owned(),
            local: flow["local"].as_str().unwrap_or_default().to_owned(),
            remote: flow["remote"].as_str().unwrap_or_default().to_owned(),
            rule: flow["rule"].as_str().map(str::to_owned),
            state: flow["state"].as_str().unwrap_or_default().to_owned(),
            opened: flow["opened"].as_str().map(str::to_owned),
            packets_in: flow["packets_in"].as_u64().unwrap_or(0),
            packets_out: flow["packets_out"].as_u64().unwrap_or(0),
        })
        .collect())
}

fn dropped_in(gotofw: &Gotofw, ns: &Netns, wan: &str) -> Result<u64> {
    let output = gotofw.run(ns, &["status", wan, "--json"]);
    if !output.status.success() {
        bail!(
            "gotofw status {wan} --json failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let status: Value = serde_json::from_slice(&output.stdout).context("status --json")?;
    Ok(counter_in(&status, "default-block", "ingress").0)
}

/// The longest gap of `gaps` (`[start, end, ms]`) that overlaps `from..to`: its length in ms
/// (0 when none did) and its end.
fn longest_gap(gaps: &[Value], from: f64, to: f64) -> (f64, f64) {
    gaps.iter()
        .filter_map(|gap| Some((gap[0].as_f64()?, gap[1].as_f64()?, gap[2].as_f64()?)))
        .filter(|&(start, end, _)| end > from && start < to)
        .fold((0.0, from), |longest, (_, end, ms)| {
            if ms > longest.0 { (ms, end) } else { longest }
        })
}

fn parse_call(call: &Finished, timeline: &Timeline) -> Result<Media> {
    if !call.success() {
        bail!("call.py ended with {:?}", call.status);
    }
    let line = call
        .output
        .lines()
        .rev()
        .find(|line| line.starts_with('{'))
        .context("call.py printed no result")?;
    let result: Value = serde_json::from_str(line).context("call.py's result")?;
    let number = |key: &str| result[key].as_u64().with_context(|| format!("no {key}"));
    let (sent, received) = (number("sent")?, number("received")?);
    let local_port = u16::try_from(number("local")?).context("local port")?;
    let gaps = result["gaps"].as_array().context("no gaps")?;
    let last_rx = result["last_rx"].as_f64().unwrap_or(0.0);
    // The gap across an event, when media came back after it and before `to`.
    let across = |from: f64, to: f64| {
        let (ms, end) = longest_gap(gaps, from, to);
        (last_rx > from && end < to).then_some(ms)
    };
    Ok(Media {
        sent,
        received,
        lost: sent.saturating_sub(received),
        local_port,
        failover_gap_ms: across(timeline.failed_at, timeline.restored_at),
        failback_gap_ms: across(timeline.restored_at, f64::MAX),
    })
}

fn parse_download(download: &Finished) -> Download {
    let line = download
        .output
        .lines()
        .rev()
        .find(|line| line.split_whitespace().count() == 5)
        .unwrap_or("0 0 0 0 0");
    let fields: Vec<&str> = line.split_whitespace().collect();
    let error = download
        .output
        .lines()
        .filter(|l| l.starts_with("curl:"))
        .collect::<Vec<_>>()
        .join("; ");
    Download {
        connects: fields[0].parse().unwrap_or(0),
        bytes: fields[1].parse().unwrap_or(0),
        http_code: fields[2].parse().unwrap_or(0),
        seconds: fields[3].parse().unwrap_or(0.0),
        local_port: fields[4].parse().unwrap_or(0),
        exit: download.status.and_then(|status| status.code()),
        error,
    }
}
