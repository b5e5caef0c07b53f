//! The clients: each probe run in `lan` against one server, bounded, and what it came to.

use std::{
    net::{SocketAddr, SocketAddrV4},
    path::Path,
    thread,
    time::{Duration, Instant},
};

use anyhow::Result;

use super::{Lab3, Outcome, Probe, Service, TURN_PASSWORD, TURN_PEER, TURN_USER};
use crate::{
    daemon::{Bounds, Finished, run_bounded},
    udp_probe,
};

/// A STUN binding answers in milliseconds; a blocked one costs this.
const STUN_DEADLINE: Duration = Duration::from_secs(2);
/// A TURN client that has no relay address by then cannot reach its server.
const TURN_ALLOCATE_WITHIN: Duration = Duration::from_secs(2);
/// `turnutils_uclient` waits 1 to 6 s (at random) after allocating before it
/// sends its data, then needs the echoes: the bound for one that got through.
const TURN_DEADLINE: Duration = Duration::from_secs(10);
/// curl's `--connect-timeout`: what a blocked HTTP(S) request costs.
const CURL_CONNECT_TIMEOUT: &str = "2";
/// curl's `--max-time` once connected.
const CURL_MAX_TIME: &str = "5";
/// The kill bound around curl.
const CURL_DEADLINE: Duration = Duration::from_secs(6);
/// How long the UDP echo probe waits for its echo.
const UDP_PROBE_TIMEOUT: Duration = Duration::from_millis(1500);
/// The messages each `turnutils_uclient` relays.
const TURN_MESSAGES: u64 = 3;

impl Lab3 {
    /// Runs one client in `lan` against one server and says how it went.
    /// Every client is bounded: one whose server does not answer costs about
    /// 1.5 to 2 s.
    pub fn probe(&self, probe: Probe) -> Result<Outcome> {
        let server = probe.server.to_string();
        let run = |program: &Path, args: Vec<String>, bounds: Bounds| {
            run_bounded(&self.lan, program, &args, bounds)
        };
        let start = Instant::now();
        let (ok, detail) = match probe.service {
            Service::Stun => {
                let finished = run(
                    &self.programs.stunclient,
                    vec![server],
                    Bounds {
                        deadline: STUN_DEADLINE,
                        progress: None,
                    },
                )?;
                let reflexive = finished
                    .output
                    .lines()
                    .find_map(|line| line.split("UDP reflexive addr: ").nth(1))
                    .map(str::trim);
                match reflexive {
                    Some(addr) if finished.success() => (true, format!("reflexive {addr}")),
                    _ => (false, failure(&finished)),
                }
            }
            Service::TurnUdp | Service::TurnTcp => {
                let mut args: Vec<String> = ["-v", "-c", "-n", &TURN_MESSAGES.to_string()]
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                if probe.service == Service::TurnTcp {
                    args.push("-t".to_owned());
                }
                args.extend(
                    [
                        "-u",
                        TURN_USER,
                        "-w",
                        TURN_PASSWORD,
                        "-e",
                        &TURN_PEER.ip().to_string(),
                        "-r",
                        &TURN_PEER.port().to_string(),
                        &server,
                    ]
                    .map(str::to_owned),
                );
                let finished = run(
                    &self.programs.uclient,
                    args,
                    Bounds {
                        deadline: TURN_DEADLINE,
                        progress: Some((TURN_ALLOCATE_WITHIN, "Received relay addr")),
                    },
                )?;
                match relayed(&finished.output) {
                    Some((sent, received))
                        if finished.success() && sent > 0 && received == sent =>
                    {
                        (true, format!("relayed {received}/{sent}"))
                    }
                    Some((sent, received)) if finished.success() => {
                        (false, format!("relayed {received}/{sent}"))
                    }
                    _ => (false, failure(&finished)),
                }
            }
            Service::Https | Service::Http => {
                let scheme = if probe.service == Service::Https {
                    "https"
                } else {
                    "http"
                };
                let args = [
                    "-k",
                    "-sS",
                    "--noproxy",
                    "*",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}\n",
                    "--connect-timeout",
                    CURL_CONNECT_TIMEOUT,
                    "--max-time",
                    CURL_MAX_TIME,
                    &format!("{scheme}://{server}/"),
                ]
                .map(str::to_owned)
                .to_vec();
                let finished = run(
                    &self.programs.curl,
                    args,
                    Bounds {
                        deadline: CURL_DEADLINE,
                        progress: None,
                    },
                )?;
                if finished.success() && finished.output.lines().any(|line| line == "200") {
                    (true, "HTTP 200".to_owned())
                } else if let Some(error) = finished
                    .output
                    .lines()
                    .find(|line| line.starts_with("curl: ("))
                {
                    (false, error.to_owned())
                } else {
                    (false, failure(&finished))
                }
            }
            Service::UdpEcho(port) => {
                let dst = SocketAddr::V4(SocketAddrV4::new(probe.server, port));
                if udp_probe(&self.lan, None, dst, UDP_PROBE_TIMEOUT) {
                    (true, "echo".to_owned())
                } else {
                    (
                        false,
                        format!("no echo in {} ms", UDP_PROBE_TIMEOUT.as_millis()),
                    )
                }
            }
        };
        Ok(Outcome {
            ok,
            detail,
            elapsed: start.elapsed(),
        })
    }

    /// Runs every probe at once, one thread each; returns their outcomes in
    /// order. A round costs about its slowest client.
    ///
    /// # Panics
    /// When a client cannot be started.
    pub fn probe_all(&self, probes: &[Probe]) -> Vec<Outcome> {
        thread::scope(|scope| {
            let running: Vec<_> = probes
                .iter()
                .map(|&probe| scope.spawn(move || self.probe(probe)))
                .collect();
            running
                .into_iter()
                .zip(probes)
                .map(|(thread, probe)| {
                    thread
                        .join()
                        .expect("a probe thread panicked")
                        .unwrap_or_else(|err| panic!("{probe}: {err:#}"))
                })
                .collect()
        })
    }
}

/// `(sent, received)` from `turnutils_uclient`'s closing line
/// `start_mclient: tot_send_msgs=3, tot_recv_msgs=3`.
fn relayed(output: &str) -> Option<(u64, u64)> {
    let line = output
        .lines()
        .rev()
        .find(|line| line.contains("start_mclient: tot_send_msgs="))?;
    let number = |key: &str| -> Option<u64> {
        let rest = line.split(key).nth(1)?;
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((number("tot_send_msgs=")?, number("tot_recv_msgs=")?))
}

/// Why a client run failed, in a few words.
fn failure(finished: &Finished) -> String {
    match finished.status {
        None => format!("no answer in {} ms", finished.elapsed.as_millis()),
        Some(status) => {
            let last = finished
                .output
                .lines()
                .rev()
                .find(|line| !line.trim().is_empty())
                .unwrap_or("")
                .trim();
            format!("{status}: {last}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uclient_totals_are_parsed() {
        let output = "1: : start_mclient: msz=1, tot_send_msgs=0, tot_recv_msgs=0\n\
                      4: : start_mclient: tot_send_msgs=3, tot_recv_msgs=2\n\
                      4: : start_mclient: tot_send_bytes ~ 300, tot_recv_bytes ~ 200\n";
        assert_eq!(relayed(output), Some((3, 2)));
        assert_eq!(relayed("allocate sent\n"), None);
    }
}
