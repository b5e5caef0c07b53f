//! Kernel tests on the three-namespace lab ([`Lab3`]): real GoTo-like clients
//! in `lan` (coturn's STUN and TURN clients, curl, UDP probes) behind a
//! masquerading gateway, real servers in `inet` (coturn, nginx, UDP echoes)
//! inside and outside GoTo's TURN networks, gotofw on the gateway's WAN.
//!
//! For every scenario, in every mode this gotofw has (stateless always;
//! stateful when `gotofw attach` without `--stateless` succeeds, else a note is
//! printed and only stateless runs), each test runs the whole matrix of
//! services and server addresses and checks, against `gotofw explain`:
//!
//! - every client completes when the connection is allowed and fails when it
//!   is blocked;
//! - what reached the gateway's stack through the WAN (an nftables counter
//!   behind XDP): something for every allowed endpoint, nothing at all from a
//!   blocked one; and nothing at all reaching a blocked endpoint's server, since both modes
//!   enforce the outbound rules at the egress;
//! - that the counter of the deciding rule in `gotofw status --json` moved by
//!   at least the packets nftables saw pass under it, and `default-block` by
//!   at least the packets of the blocked endpoints;
//! - unsolicited traffic from `inet` to the gateway's own WAN address, from
//!   source ports 443 and 3478 (and 45000): in **stateless** mode a packet is
//!   admitted whenever it comes *from* an allowed rule's port and network, so
//!   a TCP SYN from any host's port 443 reaches a listener on the gateway in
//!   every scenario (https allows TCP 443 to any address), a datagram from
//!   port 3478 of a TURN network reaches it under `udp-turn`, a SYN from there
//!   under `tcp-turn`, a datagram from port 45000 under `no-restrictions`. In
//!   **stateful** mode none of them reaches it: no inbound packet opens a flow.
//!
//! Before attaching anything each test runs the matrix once without a filter:
//! every client must complete, so that a broken lab cannot pass for a
//! blocking firewall. A blocked client costs its timeout (1.5 to 2 s) and an
//! allowed TURN client 1 to 6 s (it waits that long, at random, before
//! relaying); the probes of one round run in parallel.

use std::{collections::BTreeMap, thread, time::Instant};

use gotofw_tests::{
    Endpoint, Explained, GW_ADDR, Gotofw, Lab3, Mode, UNSOLICITED, counter_packets, explain,
    matrix, require_root_or_skip, stateful_support,
};

/// The gateway ports unsolicited traffic goes to: one per case and mode, from
/// here up, so that no case sees another's traffic or TIME_WAIT.
const UNSOLICITED_PORT_BASE: u16 = 7000;

fn verdict(ok: bool) -> &'static str {
    if ok { "completed" } else { "failed" }
}

/// The whole check of one scenario on a fresh lab.
fn scenario_matrix(scenario: &str) {
    let start = Instant::now();
    let gotofw = Gotofw::default();
    let lab = Lab3::new().unwrap_or_else(|err| panic!("building the lab: {err:#}"));

    let mut modes = vec![Mode::Stateless];
    match stateful_support(&gotofw, lab.gw(), lab.wan()) {
        Ok(()) => modes.push(Mode::Stateful),
        Err(message) => eprintln!(
            "note: {scenario}: stateful mode is not available ({message}); checking stateless mode only"
        ),
    }

    let probes = matrix();
    let baseline = lab.probe_all(&probes);
    let broken: Vec<String> = probes
        .iter()
        .zip(&baseline)
        .filter(|(_, outcome)| !outcome.ok)
        .map(|(probe, outcome)| format!("{probe}: {}", outcome.detail))
        .collect();
    assert!(
        broken.is_empty(),
        "the lab is broken: without a filter these clients failed:\n  {}\nserver logs:\n{}",
        broken.join("\n  "),
        lab.server_logs()
    );

    for (round, mode) in modes.into_iter().enumerate() {
        let ports = UNSOLICITED_PORT_BASE + (round * UNSOLICITED.len()) as u16;
        check_mode(&lab, &gotofw, scenario, mode, ports);
    }
    eprintln!("{scenario}: {:.1} s", start.elapsed().as_secs_f64());
}

/// Attaches `scenario` in `mode`, runs the matrix and the unsolicited traffic,
/// checks everything, detaches.
fn check_mode(lab: &Lab3, gotofw: &Gotofw, scenario: &str, mode: Mode, ports: u16) {
    let what = format!("{scenario}, {} mode", mode.name());
    let expected: BTreeMap<Endpoint, Explained> = lab
        .endpoints()
        .iter()
        .map(|&endpoint| {
            let explained =
                explain(gotofw, scenario, mode, endpoint).unwrap_or_else(|err| panic!("{err:#}"));
            (endpoint, explained)
        })
        .collect();
    let attached = gotofw.attach(lab.gw(), lab.wan(), &mode.attach_args(scenario));
    // From now on ARP crosses the filter too (the non-ip allowance).
    lab.flush_neighbours().unwrap();

    let probes = matrix();
    let before = lab.counts().unwrap();
    let outcomes = lab.probe_all(&probes);
    let after = lab.counts().unwrap();
    // Read after nftables, so every packet nftables counted is in here too.
    let status = attached.status_json();
    let iface = &status["interfaces"][0];
    assert_eq!(iface["scenario"], scenario, "{status}");
    assert_eq!(iface["mode"], mode.name(), "{status}");

    let mut wrong = Vec::new();
    for (probe, outcome) in probes.iter().zip(&outcomes) {
        let allow = expected[&probe.endpoint()].allow;
        if outcome.ok != allow {
            wrong.push(format!(
                "{probe}: {} ({}), but `gotofw explain` says {}",
                verdict(outcome.ok),
                outcome.detail,
                if allow { "allow" } else { "block" }
            ));
        }
    }

    // Floors for the counters: packets nftables saw under each rule.
    let mut ingress_floor: BTreeMap<&str, u64> = BTreeMap::new();
    let mut egress_floor: BTreeMap<&str, u64> = BTreeMap::new();
    for (endpoint, explained) in &expected {
        let counts = after[endpoint].since(before[endpoint]);
        if explained.allow {
            if counts.seen_by_gw == 0 {
                wrong.push(format!(
                    "{endpoint}: allowed, but no packet from it reached the gateway ({counts:?})"
                ));
            }
            let ingress_rule = match mode {
                Mode::Stateless => &explained.reply_rule,
                Mode::Stateful => &explained.rule,
            };
            *ingress_floor.entry(ingress_rule).or_default() += counts.seen_by_gw;
            *egress_floor.entry(&explained.rule).or_default() += counts.sent_by_gw;
            continue;
        }
        if counts.seen_by_gw != 0 {
            wrong.push(format!(
                "{endpoint}: blocked, but {} packets from it reached the gateway's stack ({counts:?})",
                counts.seen_by_gw
            ));
        }
        // Both modes enforce the outbound rules at the egress: nothing gets out.
        if counts.to_server != 0 {
            wrong.push(format!(
                "{endpoint}: blocked, but {} packets to it reached the server ({counts:?})",
                counts.to_server
            ));
        }
        *egress_floor.entry("default-block").or_default() += counts.sent_by_gw;
    }
    for (direction, floor) in [("ingress", ingress_floor), ("egress", egress_floor)] {
        for (rule, least) in floor {
            let packets = counter_packets(&status, rule, direction);
            if packets < least {
                wrong.push(format!(
                    "{direction} counter {rule}: {packets} packets, but nftables saw {least} under it"
                ));
            }
        }
    }

    wrong.extend(check_unsolicited(lab, gotofw, scenario, mode, ports));

    let detach = attached.detach();
    assert!(
        detach.status.success(),
        "detach: {}",
        String::from_utf8_lossy(&detach.stderr)
    );
    drop(attached);
    assert!(
        wrong.is_empty(),
        "{what}:\n  {}\nstatus: {status:#}",
        wrong.join("\n  ")
    );
}

/// Sends each [`UNSOLICITED`] case to its own listener on the gateway's WAN
/// address, all at once; returns the cases whose outcome differs from the
/// expectation (stateless: reaches when explain's reply verdict allows it;
/// stateful: never reaches).
fn check_unsolicited(
    lab: &Lab3,
    gotofw: &Gotofw,
    scenario: &str,
    mode: Mode,
    ports: u16,
) -> Vec<String> {
    thread::scope(|scope| {
        let cases: Vec<_> = UNSOLICITED
            .iter()
            .enumerate()
            .map(|(index, &(transport, src))| {
                let port = ports + index as u16;
                scope.spawn(move || {
                    let endpoint = Endpoint {
                        transport,
                        addr: src,
                    };
                    let reply = explain(gotofw, scenario, Mode::Stateless, endpoint)
                        .unwrap_or_else(|err| panic!("{err:#}"));
                    let expect = mode == Mode::Stateless && reply.reply_allow;
                    let reached = lab
                        .reaches_gateway(transport, src, port)
                        .unwrap_or_else(|err| panic!("unsolicited {endpoint}: {err:#}"));
                    (reached != expect).then(|| {
                        format!(
                            "unsolicited {} from {src} to {GW_ADDR}:{port}: {}, expected {} \
                             ({} mode; stateless reply rule {})",
                            transport.name(),
                            if reached {
                                "reached the gateway"
                            } else {
                                "did not reach the gateway"
                            },
                            if expect { "to reach it" } else { "not to" },
                            mode.name(),
                            reply.reply_rule,
                        )
                    })
                })
            })
            .collect();
        cases
            .into_iter()
            .filter_map(|case| case.join().expect("an unsolicited case panicked"))
            .collect()
    })
}

#[test]
fn lab3_no_restrictions() {
    if !require_root_or_skip("lab3_no_restrictions") {
        return;
    }
    scenario_matrix("no-restrictions");
}

#[test]
fn lab3_udp_turn() {
    if !require_root_or_skip("lab3_udp_turn") {
        return;
    }
    scenario_matrix("udp-turn");
}

#[test]
fn lab3_tcp_turn() {
    if !require_root_or_skip("lab3_tcp_turn") {
        return;
    }
    scenario_matrix("tcp-turn");
}

#[test]
fn lab3_tcp_443() {
    if !require_root_or_skip("lab3_tcp_443") {
        return;
    }
    scenario_matrix("tcp-443");
}
