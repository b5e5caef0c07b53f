//! The HA pair (`gotofw_tests::halab`): two gateways under Debian's keepalived and conntrackd,
//! gotofw attached in stateful mode on both from one configuration file, and a GoTo-like call
//! (a TURN allocation through coturn relaying 50 packets/s both ways, an HTTPS download at a
//! limited rate) while the master fails: once by stopping its keepalived, once by cutting its
//! links. The call must come through: the download completes on its one connection, the media
//! resumes within a bound, and gotofw on the backup holds the call's flows, learned from their
//! outbound packets (UDP from its first packet, TCP mid-stream).

use gotofw_tests::{
    Gotofw,
    halab::{FailoverReport, Failure, HaLab},
    require_root_or_skip,
};

/// The longest media gap accepted across a failover or a failback. keepalived's adverts every
/// 0.5 s make a cut master's loss noticed within about 1.75 s; the rest is ARP and the call's
/// first packets through the new master.
const MAX_GAP_MS: f64 = 5000.0;

fn print(report: &FailoverReport) {
    println!(
        "{}: takeover {} ms, media gap {:?} ms (failback {:?} ms), lost {}/{} packets, \
         download {} bytes on {} connection(s) in {:.1} s (curl exit {:?}{}), gw2 dropped {} \
         inbound packets; gw2 flows {:?}",
        report.failure,
        report.takeover.as_millis(),
        report.media.failover_gap_ms,
        report.media.failback_gap_ms,
        report.media.lost,
        report.media.sent,
        report.download.bytes,
        report.download.connects,
        report.download.seconds,
        report.download.exit,
        if report.download.error.is_empty() {
            String::new()
        } else {
            format!(": {}", report.download.error)
        },
        report.gw2_dropped_in,
        report.gw2_after,
    );
}

fn check(report: &FailoverReport) {
    let what = report.failure;
    assert!(
        report.gw2_before.is_empty(),
        "{what}: gw2 had the call's flows before it took over: {:?}",
        report.gw2_before
    );
    assert!(
        report.download.survived(),
        "{what}: the download did not complete on one connection: {:?}",
        report.download
    );
    let gap = report
        .media
        .failover_gap_ms
        .unwrap_or_else(|| panic!("{what}: the media did not come back: {:?}", report.media));
    assert!(gap < MAX_GAP_MS, "{what}: media gap {gap} ms");
    let failback = report.media.failback_gap_ms.unwrap_or_else(|| {
        panic!(
            "{what}: the media did not come back after the failback: {:?}",
            report.media
        )
    });
    assert!(
        failback < MAX_GAP_MS,
        "{what}: failback media gap {failback} ms"
    );
    assert!(report.media.received > 0, "{what}: {:?}", report.media);

    let udp = report
        .udp_flow()
        .unwrap_or_else(|| panic!("{what}: gw2 holds no UDP flow of the call"));
    let tcp = report
        .tcp_flow()
        .unwrap_or_else(|| panic!("{what}: gw2 holds no TCP flow of the download"));
    assert_eq!(udp.rule.as_deref(), Some("turn-udp"), "{what}: {udp:?}");
    assert_eq!(tcp.rule.as_deref(), Some("https"), "{what}: {tcp:?}");
    for flow in [udp, tcp] {
        assert!(
            flow.packets_out > 0 && flow.packets_in > 0,
            "{what}: gw2's flow carried no traffic both ways: {flow:?}"
        );
    }
    assert_eq!(tcp.state, "established", "{what}: {tcp:?}");
}

/// How each flow came back on gw2 (`opened` of `gotofw flows --json`).
fn check_opened(report: &FailoverReport) {
    let what = report.failure;
    let (Some(udp), Some(tcp)) = (report.udp_flow(), report.tcp_flow()) else {
        panic!(
            "{what}: gw2 lacks a flow of the call: {:?}",
            report.gw2_after
        );
    };
    // How each flow came back: from its first outbound packet on gw2, the UDP flow as a new
    // one, the TCP download picked up mid-stream (no SYN on gw2).
    assert_eq!(
        udp.opened.as_deref(),
        Some("first-packet"),
        "{what}: gw2 must have learned the UDP flow from its first outbound packet \
         (`opened` of `gotofw flows --json`): {udp:?}"
    );
    assert_eq!(
        tcp.opened.as_deref(),
        Some("mid-stream"),
        "{what}: gw2 must have picked up the TCP download mid-stream \
         (`opened` of `gotofw flows --json`): {tcp:?}"
    );
}

#[test]
fn a_call_survives_the_failover_of_the_master() {
    if !require_root_or_skip("a_call_survives_the_failover_of_the_master") {
        return;
    }
    let gotofw = Gotofw::default();
    let lab = HaLab::new().unwrap_or_else(|err| panic!("building the HA lab: {err:#}"));
    let _attached = lab
        .attach_gotofw(&gotofw)
        .unwrap_or_else(|err| panic!("{err:#}"));
    let mut reports = Vec::new();
    for failure in [Failure::StopKeepalived, Failure::CutLinks] {
        let report = lab
            .failover(&gotofw, failure)
            .unwrap_or_else(|err| panic!("{failure}: {err:#}\n{}", lab.daemon_logs()));
        print(&report);
        reports.push(report);
    }
    // Everything else first, for both failovers, then how the flows came back.
    for report in &reports {
        check(report);
    }
    for report in &reports {
        check_opened(report);
    }
}
